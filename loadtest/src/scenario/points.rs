//! The `rtt` and `tokensize` scenarios: a short closed-loop point per variant and step, each on
//! a server started for it, behind a delaying relay to its store, Redis or PostgreSQL (rtt), or
//! with padded claims (tokensize); every point's server runs at once and the points are measured
//! in rounds.

use std::time::Duration;

use authbench_server::pg_process::PgServer;
use authbench_server::redis_process::RedisServer;
use authbench_server::strategy::seed::PG_SESSIONS_TABLE;

use super::rounds::{self, Cell, Windows};
use super::{Event, Knobs, MeLoad, Sink, Subject};
use crate::observe::{DelayRelay, PgProbe, RedisProbe, StoreProbe, measure_pg_rtt, measure_rtt};
use crate::plan::NOISE_THRESHOLD;
use crate::plan::{Variant, variant};
use crate::process::{ServerProcess, variant_args};
use crate::results::{Record, RunRecord, Scenario};

/// How the rtt scenario puts the store at a distance, for the method section.
pub const RTT_INJECTION: &str = "authbench's own delaying TCP relay on loopback (a reader and a writer thread per direction, std::thread::sleep until half the round trip has passed; bandwidth not limited)";

/// A point's server, with what must live as long as it does.
struct Point {
    subject: Subject,
    load: MeLoad,
    label: String,
    _server: ServerProcess,
    _relay: Option<DelayRelay>,
    rtt_ms: Option<(f64, Option<f64>)>,
    padding: Option<u64>,
}

/// Where a point's server finds its store: the flags that point at it (through a relay or not)
/// and what the store's counters are read through.
struct StoreAt {
    flags: [String; 2],
    probe: Option<StoreProbe>,
}

impl StoreAt {
    fn redis(redis: &RedisServer, url: String) -> Self {
        Self { flags: ["--redis-url".into(), url], probe: Some(StoreProbe::Redis(RedisProbe::of(redis))) }
    }

    fn postgres(pg: &PgServer, url: String) -> Self {
        Self { flags: ["--postgres-url".into(), url], probe: PgProbe::of(pg).map(StoreProbe::Postgres) }
    }
}

/// Starts `v` with `extra` flags, on `store` when the design has one.
fn start(
    v: &Variant,
    extra: &[String],
    store: Option<StoreAt>,
    knobs: &Knobs,
) -> anyhow::Result<(Subject, MeLoad, ServerProcess)> {
    let store = store.filter(|_| v.uses_store());
    let mut args = variant_args(v, store.as_ref().map(|s| s.flags.as_slice()));
    args.extend(extra.iter().cloned());
    let server = knobs.launcher()?.start(&args)?;
    let subject = Subject::started(v, &server, &[], args, store.and_then(|s| s.probe), knobs)?;
    let load = knobs.runtime.block_on(MeLoad::login(&subject, knobs.plan.connections.min(16)))?;
    Ok((subject, load, server))
}

/// Measures every point in rounds (a short closed loop each, in a shuffled order per round)
/// and returns their records, decorated with what distinguishes them.
fn measure(points: &[Point], scenario: Scenario, knobs: &Knobs, sink: Sink<'_>) -> anyhow::Result<Vec<RunRecord>> {
    let knobs = knobs.point();
    let cells: Vec<Cell<'_>> =
        points.iter().map(|p| Cell { subject: &p.subject, load: &p.load, label: &p.label }).collect();
    let windows = Windows { closed: Some(scenario), cost: false };
    let measured = rounds::measure(&cells, windows, None, &knobs, sink)?;
    sink(Event::Record(Record::Noise { threshold: NOISE_THRESHOLD, windows: measured.noise.clone() }))?;
    if measured.kept_noisy > 0 {
        sink(Event::Record(Record::Note(format!(
            "{}: {} window(s) kept although other processes used more than {NOISE_THRESHOLD} CPU during them (the budget of repeats ran out or they stayed noisy): see noise.",
            scenario.as_str(),
            measured.kept_noisy
        ))))?;
    }
    let mut records = Vec::new();
    for (i, (cell, point)) in cells.iter().zip(points).enumerate() {
        if let Some(mut record) = rounds::closed_record(&measured, i, cell, scenario, &knobs) {
            if let Some((rtt, measured)) = point.rtt_ms {
                record.redis_rtt_ms = Some(rtt);
                record.redis_rtt_measured_ms = measured;
            }
            record.claims_padding_bytes = point.padding;
            records.push(record);
        }
    }
    Ok(records)
}

/// Round trips sampled to measure a point's store round trip (their median is kept).
const RTT_SAMPLES: usize = 21;

/// Where `v`'s server finds its store at round trip `rtt` (through a relay unless `rtt` is
/// zero), the store round trip measured there, and the relay. PostgreSQL for a variant that
/// keeps its state there, else Redis; nothing for a design without a store.
fn store_at(
    v: &Variant,
    rtt: Duration,
    redis: Option<&RedisServer>,
    pg: Option<&PgServer>,
) -> anyhow::Result<(Option<StoreAt>, Option<Duration>, Option<DelayRelay>)> {
    if v.uses_postgres() {
        let pg = pg.ok_or_else(|| anyhow::anyhow!("rtt: {} needs a PostgreSQL and was given none", v.name))?;
        if rtt.is_zero() {
            return Ok((Some(StoreAt::postgres(pg, pg.url())), measure_pg_rtt(pg.addr(), RTT_SAMPLES), None));
        }
        let relay = DelayRelay::start(pg.addr(), rtt)?;
        let measured = measure_pg_rtt(relay.addr, RTT_SAMPLES);
        return Ok((Some(StoreAt::postgres(pg, relay.postgres_url())), measured, Some(relay)));
    }
    Ok(match redis {
        Some(redis) if v.uses_redis() && !rtt.is_zero() => {
            let relay = DelayRelay::start(redis.addr(), rtt)?;
            let measured = measure_rtt(relay.addr, RTT_SAMPLES);
            (Some(StoreAt::redis(redis, relay.url())), measured, Some(relay))
        }
        Some(redis) => (Some(StoreAt::redis(redis, redis.url())), measure_rtt(redis.addr(), RTT_SAMPLES), None),
        None => (None, None, None),
    })
}

/// Every variant of `variants` with its store at each round trip of `rtts` (0: direct, else
/// through a relay of the point's own), all servers up at once on the run's Redis or, for the
/// variants that keep their state there, on `pg` (each emptied first), measured in rounds.
/// Designs without a store path are measured alike: they are the controls, and must read "no
/// change".
pub fn rtt(
    variants: &[&Variant],
    rtts: &[Duration],
    redis: Option<&RedisServer>,
    pg: Option<&PgServer>,
    knobs: &Knobs,
    sink: Sink<'_>,
) -> anyhow::Result<Vec<RunRecord>> {
    if let Some(redis) = redis {
        redis.command("FLUSHALL").map_err(|e| anyhow::anyhow!("cannot empty Redis: {e}"))?;
    }
    if let Some(pg) = pg {
        // The servers create the table again at start.
        pg.psql(&format!("DROP TABLE IF EXISTS {PG_SESSIONS_TABLE}"))
            .map_err(|e| anyhow::anyhow!("cannot empty PostgreSQL: {e}"))?;
    }
    let mut points = Vec::new();
    for v in variants {
        for &rtt in rtts {
            sink(Event::Status(format!("rtt: starting {} at {:.2} ms", v.name, rtt.as_secs_f64() * 1e3)))?;
            let (store, measured, relay) = store_at(v, rtt, redis, pg)?;
            let (subject, load, server) = start(v, &[], store, knobs)?;
            let measured = if v.uses_store() { measured.map(|d| d.as_secs_f64() * 1e3) } else { None };
            points.push(Point {
                subject,
                load,
                label: format!("{} at {:.2} ms", v.name, rtt.as_secs_f64() * 1e3),
                _server: server,
                _relay: relay,
                rtt_ms: Some((rtt.as_secs_f64() * 1e3, measured)),
                padding: None,
            });
        }
    }
    measure(&points, Scenario::Rtt, knobs, sink)
}

/// Every variant of `variants` with each of `paddings` extra bytes of claims in every token or
/// session, all servers up at once on the run's Redis (emptied first), measured in rounds. The
/// session's token does not grow with its claims: its row is the control for their Redis cost.
pub fn tokensize(
    variants: &[&Variant],
    paddings: &[usize],
    redis: Option<&RedisServer>,
    knobs: &Knobs,
    sink: Sink<'_>,
) -> anyhow::Result<Vec<RunRecord>> {
    if let Some(redis) = redis {
        redis.command("FLUSHALL").map_err(|e| anyhow::anyhow!("cannot empty Redis: {e}"))?;
    }
    let mut points = Vec::new();
    for v in variants {
        for &padding in paddings {
            sink(Event::Status(format!("tokensize: starting {} with +{padding} B", v.name)))?;
            let extra = ["--claims-padding".to_owned(), padding.to_string()];
            let store = redis.filter(|_| v.uses_redis()).map(|r| StoreAt::redis(r, r.url()));
            let (subject, load, server) = start(v, &extra, store, knobs)?;
            points.push(Point {
                subject,
                load,
                label: format!("{} +{padding} B", v.name),
                _server: server,
                _relay: None,
                rtt_ms: None,
                padding: Some(padding as u64),
            });
        }
    }
    measure(&points, Scenario::Tokensize, knobs, sink)
}

/// Below this many Redis commands per request a design has no store on its request path (the
/// guide's threshold, one in a hundred): its rtt points are controls.
const NO_STORE_PATH: f64 = 0.01;

/// Whether a record's points are controls: a design with no store on its request path. A
/// PostgreSQL design's statements are not counted, so what it is decides (session-pg reads its
/// table on every request); for Redis designs, the commands measured per request.
fn is_control(record: &RunRecord) -> bool {
    let on_postgres_path = variant(&record.variant).is_some_and(|v| v.uses_postgres() && v.store_on_request_path());
    !on_postgres_path && record.redis_commands_per_request.is_none_or(|c| c < NO_STORE_PATH)
}

/// The rtt controls that read a change: designs with no store path whose capacity at some
/// round trip differs from their capacity direct by more than the interval allows (the ratio's
/// 95 % interval, taken round by round, excludes 1). Each as `jwt at 1.0 ms: 1.12 [1.05, 1.20]`.
pub fn moved_controls(records: &[RunRecord]) -> Vec<String> {
    let mut moved = Vec::new();
    let direct = records.iter().filter(|r| r.redis_rtt_ms == Some(0.0));
    for base in direct.filter(|r| is_control(r)) {
        let Some(base_e) = base.throughput_rps.estimate() else { continue };
        for far in records.iter().filter(|r| r.variant == base.variant && r.redis_rtt_ms.is_some_and(|m| m > 0.0)) {
            let Some(ratio) = far.throughput_rps.estimate().and_then(|e| e.ratio_to(&base_e)) else { continue };
            if ratio.ci95[0] > 1.0 || ratio.ci95[1] < 1.0 {
                moved.push(format!(
                    "{} at {} ms: {:.2} [{:.2}, {:.2}]",
                    far.variant,
                    far.redis_rtt_ms.unwrap_or(0.0),
                    ratio.median,
                    ratio.ci95[0],
                    ratio.ci95[1]
                ));
            }
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use hdrhistogram::Histogram;

    use super::*;

    /// A direct rtt point of `variant` that sent `commands` Redis commands per request.
    fn direct(variant: &str, commands: Option<f64>) -> RunRecord {
        let subject = Subject {
            addr: ([127, 0, 0, 1], 0).into(),
            pid: None,
            others: Vec::new(),
            store: None,
            variant: variant.to_owned(),
            strategy: String::new(),
            server_args: Vec::new(),
            capabilities: None,
            password: String::new(),
        };
        let latency = Histogram::<u64>::new(3).unwrap();
        RunRecord {
            redis_rtt_ms: Some(0.0),
            redis_commands_per_request: commands,
            ..super::super::record(&subject, Scenario::Rtt, &latency)
        }
    }

    #[test]
    fn a_table_read_on_every_request_is_no_control_though_redis_counts_nothing() {
        assert!(!is_control(&direct("session-pg", None)), "session-pg reads PostgreSQL on every request");
        assert!(!is_control(&direct("session", Some(1.0))));
        assert!(is_control(&direct("jwt", None)));
        assert!(is_control(&direct("versioned-g1", Some(0.004))), "below one command in a hundred requests");
    }
}
