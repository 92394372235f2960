//! The `scale` scenario: store memory per entry a strategy keeps (active session, jti, refresh
//! family, user version or revocation event) and latency with a large keyspace, each size on a
//! fresh store of its own.
//!
//! In Redis, entries are written straight in the strategies' own layout
//! (`authbench_server::strategy::seed`), memory is read from `INFO memory` before and after,
//! then the server starts on that Redis (pushed replays its whole log there). In PostgreSQL
//! (session-pg), the server starts first and creates its table, the sessions are inserted by
//! one statement, and the size is the table's with its indexes and TOAST
//! (`pg_total_relation_size`) before and after. Then a short steady load draws its tokens
//! evenly from the whole keyspace.

use std::time::{Duration, Instant};

use authbench_server::jwt::{JwtAlg, JwtKeys};
use authbench_server::pg_process::PgServer;
use authbench_server::redis_process::RedisServer;
use authbench_server::strategy::seed;

use super::{Knobs, MeLoad, Subject, steady};
use crate::engine::RequestTemplate;
use crate::observe::{PgProbe, RedisProbe, StoreProbe, redis_used_memory, rss_bytes};
use crate::plan::{SEEDED_USERS, Variant};
use crate::process::{ServerProcess, variant_args, without_flag};
use crate::results::{EntryKind, RunRecord, ScaleRecord, Scenario};

/// `args` without a `--grace <value>` (or `--grace=<value>`) pair.
fn without_grace(args: &[String]) -> Vec<String> {
    without_flag(args, "--grace")
}

/// How long ago the seeded `versioned` tokens were issued: older than any grace a suite
/// variant runs with (30 s at most), so every request reads the versions from Redis.
const VERSIONED_TOKEN_AGE: Duration = Duration::from_secs(600);

/// How long every seeded entry lives (and the servers' access lifetime): far beyond the point.
const ENTRY_TTL: Duration = Duration::from_secs(3600);

/// Tokens the load draws from, at most.
const SAMPLE: usize = 4096;

/// What seeding a store left.
struct Seeded {
    /// The store's size before and after, bytes (Redis `used_memory`, or the table's
    /// `pg_total_relation_size`).
    before: u64,
    after: u64,
    seconds: f64,
    /// Tokens of entries spread over the keyspace, for the load.
    tokens: Vec<String>,
}

/// A server started for the point, with what was seen of its start.
struct Started {
    server: ServerProcess,
    args: Vec<String>,
    start_seconds: f64,
    rss_bytes: Option<u64>,
}

/// Starts a server with `args`, unpinned as the seeding was: this point measures the keyspace,
/// not the placement.
fn start_server(args: Vec<String>, knobs: &Knobs) -> anyhow::Result<Started> {
    let spawned = Instant::now();
    let server = knobs.launcher()?.unpinned().start(&args)?;
    let start_seconds = spawned.elapsed().as_secs_f64();
    let rss_bytes = server.pid().and_then(rss_bytes);
    Ok(Started { server, args, start_seconds, rss_bytes })
}

/// Seeds `entries` for `variant` into a fresh store of its own (Redis, or PostgreSQL for a
/// variant that keeps its sessions there), measures its size, then a steady point.
pub fn run(variant: &Variant, entries: usize, knobs: &Knobs) -> anyhow::Result<(ScaleRecord, RunRecord)> {
    let kind =
        variant.entry_kind().ok_or_else(|| anyhow::anyhow!("{} keeps no entries in a store to scale", variant.name))?;
    if variant.uses_postgres() {
        return postgres(variant, kind, entries, knobs);
    }
    let runtime = &knobs.runtime;
    let redis = RedisServer::start()?;
    let probe = RedisProbe::of(&redis);
    let users = SEEDED_USERS as u32;
    let sample = SAMPLE.min(entries);
    let ttl = ENTRY_TTL;
    let dir = std::env::temp_dir().join(format!("authbench-scale-{}-{}", std::process::id(), variant.name));
    std::fs::create_dir_all(&dir)?;
    let key_file = dir.join("jwt.key");
    let _ = std::fs::remove_file(&key_file);
    let keys = JwtKeys::new(JwtAlg::HS256, Some(&key_file)).map_err(|e| anyhow::anyhow!(e))?;
    let before = redis_used_memory(&probe).unwrap_or(0);
    let started = Instant::now();
    let tokens = runtime.block_on(async {
        let client = redis::Client::open(redis.url())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        match kind {
            EntryKind::Session => seed::sessions(&mut conn, entries, users, ttl, sample).await,
            EntryKind::LiveJti => seed::live_jtis(&mut conn, &keys, entries, users, ttl, sample).await,
            EntryKind::RevokedJti => seed::revoked_jtis(&mut conn, &keys, entries, users, ttl, sample).await,
            EntryKind::RefreshFamily => seed::refresh_families(&mut conn, &keys, entries, users, ttl, sample).await,
            EntryKind::UserVersion => {
                seed::user_versions(&mut conn, &keys, entries, ttl, VERSIONED_TOKEN_AGE, sample).await
            }
            EntryKind::RevokedJtiEvent => {
                seed::jti_events(&mut conn, &keys, entries, users, ttl, sample).await.map(|t| t.valid)
            }
        }
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let after = redis_used_memory(&probe).unwrap_or(0);
    let seeded = Seeded { before, after, seconds, tokens };

    let mut args = variant_args(variant, None);
    if kind == EntryKind::UserVersion {
        args = without_grace(&args);
        // Every request past the grace reads the versions, and the load's connections adopt
        // each fresh token handed back (X-Refreshed-Token), which a grace of 1 s would trust for
        // the next second: without a grace, every request reads the version keyspace.
        args.extend(["--grace".into(), "0s".into()]);
    }
    args.extend(["--redis-url".into(), redis.url(), "--jwt-key-file".into(), key_file.display().to_string()]);
    args.extend(["--access-ttl".into(), "1h".into()]);
    let started = start_server(args, knobs)?;
    let measured = measure(variant, kind, entries, seeded, started, StoreProbe::Redis(probe), knobs);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
    measured
}

/// The PostgreSQL point of `variant` (session rows): a fresh PostgreSQL, the server started on
/// it (it creates the table), the rows inserted by one statement, then the point.
fn postgres(
    variant: &Variant,
    kind: EntryKind,
    entries: usize,
    knobs: &Knobs,
) -> anyhow::Result<(ScaleRecord, RunRecord)> {
    anyhow::ensure!(kind == EntryKind::Session, "{} keeps no {} rows in PostgreSQL", variant.name, kind.name());
    let pg = PgServer::start()?;
    let url = ["--postgres-url".to_owned(), pg.url()];
    let mut args = variant_args(variant, Some(&url));
    args.extend(["--access-ttl".into(), "1h".into()]);
    let started = start_server(args, knobs)?;
    let table = seed::PG_SESSIONS_TABLE;
    let size = || -> anyhow::Result<u64> {
        let text = pg.psql(&format!("SELECT pg_total_relation_size('{table}')"))?;
        text.parse().map_err(|e| anyhow::anyhow!("pg_total_relation_size read {text:?}: {e}"))
    };
    let before = size()?;
    let clock = Instant::now();
    let seed = seed::pg_sessions(entries, SEEDED_USERS as u32, ENTRY_TTL, SAMPLE.min(entries))?;
    pg.psql(&seed.sql).map_err(|e| anyhow::anyhow!("seeding {entries} sessions into PostgreSQL: {e}"))?;
    let seconds = clock.elapsed().as_secs_f64();
    let after = size()?;
    // Statistics for the planner (ANALYZE), and the table as autovacuum leaves it: tuples
    // marked visible and committed, so that neither an autovacuum of the fresh rows nor the
    // first reads setting their hint bits land in the window. Its visibility map and free space
    // map are not counted in the rows' size, measured above.
    pg.psql(&format!("VACUUM (ANALYZE) {table}"))?;
    let probe = StoreProbe::Postgres(
        PgProbe::of(&pg).ok_or_else(|| anyhow::anyhow!("PostgreSQL at {} is not running", pg.url()))?,
    );
    let seeded = Seeded { before, after, seconds, tokens: seed.ids };
    let measured = measure(variant, kind, entries, seeded, started, probe, knobs);
    drop(pg);
    measured
}

/// The steady point on a seeded store and the records of the size; stops the server.
fn measure(
    variant: &Variant,
    kind: EntryKind,
    entries: usize,
    seeded: Seeded,
    started: Started,
    probe: StoreProbe,
    knobs: &Knobs,
) -> anyhow::Result<(ScaleRecord, RunRecord)> {
    let Started { server, args, start_seconds, rss_bytes } = started;
    let subject = Subject::started(variant, &server, &[], args, Some(probe), knobs)?;
    let templates: Vec<RequestTemplate> =
        seeded.tokens.iter().map(|t| RequestTemplate::get("/me", Some(t))).collect::<anyhow::Result<_>>()?;
    let token_bytes = seeded.tokens.first().map_or(0, |t| t.len() as u64);
    let load = MeLoad { templates, token_bytes };
    let mut point = knobs.point();
    point.plan.repetitions = 1;
    let mut record = steady(&subject, &point, &load, Scenario::Scale)?;
    record.keyspace_entries = Some(entries as u64);
    drop(server);
    let scale = ScaleRecord {
        strategy: variant.strategy.as_str().to_owned(),
        variant: variant.name.to_owned(),
        entry_kind: kind.name().to_owned(),
        entries: entries as u64,
        used_memory_before: seeded.before,
        used_memory_after: seeded.after,
        bytes_per_entry: seeded.after.saturating_sub(seeded.before) as f64 / entries.max(1) as f64,
        seed_seconds: seeded.seconds,
        tokens_sampled: seeded.tokens.len() as u64,
        throughput_rps: record.throughput_rps.median,
        latency_p50_us: record.latency_us.p50,
        latency_p99_us: record.latency_us.p99,
        server_rss_bytes: rss_bytes,
        server_start_seconds: Some(start_seconds),
    };
    Ok((scale, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grace_flag_is_dropped_with_its_value() {
        let args: Vec<String> = ["--strategy", "versioned", "--grace", "1s", "--users", "5", "--grace=2s"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(without_grace(&args), ["--strategy", "versioned", "--users", "5"]);
    }

    #[test]
    fn entry_kinds_round_trip_by_name() {
        for k in EntryKind::ALL {
            assert_eq!(EntryKind::from_name(k.name()), Some(k));
        }
        assert_eq!(EntryKind::from_name("kerberos"), None);
    }
}
