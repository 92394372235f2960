//! The `rtt` and `tokensize` scenarios: a short closed-loop point per variant and step, each on
//! a server started for it, behind a delaying relay to Redis (rtt) or with padded claims
//! (tokensize); every point's server runs at once and the points are measured in rounds.

use std::time::Duration;

use authbench_server::redis_process::RedisServer;

use super::rounds::{self, Cell, Windows};
use super::{Event, Knobs, MeLoad, Sink, Subject};
use crate::observe::{DelayRelay, RedisProbe, StoreProbe, measure_rtt};
use crate::plan::NOISE_THRESHOLD;
use crate::plan::Variant;
use crate::process::{ServerProcess, variant_args};
use crate::results::{Record, RunRecord, Scenario};

/// How the rtt scenario puts Redis at a distance, for the method section.
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

/// Starts `v` with `extra` flags, using Redis at `redis_url` when the design has a store.
fn start(
    v: &Variant,
    extra: &[String],
    redis: Option<&RedisServer>,
    redis_url: Option<String>,
    knobs: &Knobs,
) -> anyhow::Result<(Subject, MeLoad, ServerProcess)> {
    let url_flags = redis_url.filter(|_| v.uses_redis()).map(|url| ["--redis-url".to_owned(), url]);
    let mut args = variant_args(v, url_flags.as_ref().map(|f| f.as_slice()));
    args.extend(extra.iter().cloned());
    let server = knobs.launcher()?.start(&args)?;
    let probe = if v.uses_redis() { redis.map(|r| StoreProbe::Redis(RedisProbe::of(r))) } else { None };
    let subject = Subject::started(v, &server, &[], args, probe, knobs)?;
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

/// Every variant of `variants` with Redis at each round trip of `rtts` (0: direct, else through
/// the relay), all servers up at once on the run's Redis (emptied first), measured in rounds.
/// Designs without a store path are measured alike: they are the controls, and must read "no
/// change".
pub fn rtt(
    variants: &[&Variant],
    rtts: &[Duration],
    redis: Option<&RedisServer>,
    knobs: &Knobs,
    sink: Sink<'_>,
) -> anyhow::Result<Vec<RunRecord>> {
    if let Some(redis) = redis {
        redis.command("FLUSHALL").map_err(|e| anyhow::anyhow!("cannot empty Redis: {e}"))?;
    }
    let mut points = Vec::new();
    for v in variants {
        for &rtt in rtts {
            sink(Event::Status(format!("rtt: starting {} at {:.2} ms", v.name, rtt.as_secs_f64() * 1e3)))?;
            let (url, measured, relay) = match redis {
                Some(redis) if v.uses_redis() && !rtt.is_zero() => {
                    let relay = DelayRelay::start(redis.addr(), rtt)?;
                    let measured = measure_rtt(relay.addr, 21);
                    (Some(relay.url()), measured, Some(relay))
                }
                Some(redis) => (Some(redis.url()), measure_rtt(redis.addr(), 21), None),
                None => (None, None, None),
            };
            let (subject, load, server) = start(v, &[], redis, url, knobs)?;
            let measured = if v.uses_redis() { measured.map(|d| d.as_secs_f64() * 1e3) } else { None };
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
            let (subject, load, server) = start(v, &extra, redis, redis.map(RedisServer::url), knobs)?;
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

/// The rtt controls that read a change: designs with no store path whose capacity at some
/// round trip differs from their capacity direct by more than the interval allows (the ratio's
/// 95 % interval, taken round by round, excludes 1). Each as `jwt at 1.0 ms: 1.12 [1.05, 1.20]`.
pub fn moved_controls(records: &[RunRecord]) -> Vec<String> {
    let mut moved = Vec::new();
    let direct = records.iter().filter(|r| r.redis_rtt_ms == Some(0.0));
    for base in direct.filter(|r| r.redis_commands_per_request.is_none_or(|c| c < NO_STORE_PATH)) {
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
