//! The `scale` scenario: Redis memory per entry a strategy keeps (active session, jti, refresh
//! family, user version or revocation event) and latency with a large keyspace. Entries are
//! written straight into a fresh Redis in the strategies' own layout
//! (`authbench_server::strategy::seed`), memory is read from `INFO memory` before and after,
//! then the server starts on that Redis (pushed replays its whole log there) and a short steady
//! load draws its tokens evenly from the whole keyspace.

use std::time::{Duration, Instant};

use authbench_server::jwt::{JwtAlg, JwtKeys};
use authbench_server::redis_process::RedisServer;
use authbench_server::strategy::seed;

use super::{Knobs, MeLoad, Subject, steady};
use crate::engine::RequestTemplate;
use crate::observe::{RedisProbe, StoreProbe, redis_used_memory, rss_bytes};
use crate::plan::{SEEDED_USERS, Variant};
use crate::process::{variant_args, without_flag};
use crate::results::{EntryKind, RunRecord, ScaleRecord, Scenario};

/// `args` without a `--grace <value>` (or `--grace=<value>`) pair.
fn without_grace(args: &[String]) -> Vec<String> {
    without_flag(args, "--grace")
}

/// How long ago the seeded `versioned` tokens were issued: older than any grace a suite
/// variant runs with (30 s at most), so every request reads the versions from Redis.
const VERSIONED_TOKEN_AGE: Duration = Duration::from_secs(600);

/// Seeds `entries` for `variant` into a fresh Redis, measures memory, then a steady point.
pub fn run(variant: &Variant, entries: usize, knobs: &Knobs) -> anyhow::Result<(ScaleRecord, RunRecord)> {
    let runtime = &knobs.runtime;
    let redis = RedisServer::start()?;
    let probe = RedisProbe::of(&redis);
    let ttl = Duration::from_secs(3600);
    let users = SEEDED_USERS as u32;
    let sample = 4096.min(entries);
    let dir = std::env::temp_dir().join(format!("authbench-scale-{}-{}", std::process::id(), variant.name));
    std::fs::create_dir_all(&dir)?;
    let key_file = dir.join("jwt.key");
    let _ = std::fs::remove_file(&key_file);
    let keys = JwtKeys::new(JwtAlg::HS256, Some(&key_file)).map_err(|e| anyhow::anyhow!(e))?;
    let kind =
        variant.entry_kind().ok_or_else(|| anyhow::anyhow!("{} keeps no entries in Redis to scale", variant.name))?;
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
    let seed_seconds = started.elapsed().as_secs_f64();
    let after = redis_used_memory(&probe).unwrap_or(0);

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
    let spawned = Instant::now();
    // Unpinned, as the seeding was: this point measures the keyspace, not the placement.
    let server = knobs.launcher()?.unpinned().start(&args)?;
    let server_start_seconds = spawned.elapsed().as_secs_f64();
    let server_rss_bytes = server.pid().and_then(rss_bytes);
    let subject = Subject::started(variant, &server, &[], args, Some(StoreProbe::Redis(probe)), knobs)?;
    let templates: Vec<RequestTemplate> =
        tokens.iter().map(|t| RequestTemplate::get("/me", Some(t))).collect::<anyhow::Result<_>>()?;
    let token_bytes = tokens.first().map_or(0, |t| t.len() as u64);
    let load = MeLoad { templates, token_bytes };
    let mut point = knobs.point();
    point.plan.repetitions = 1;
    let mut record = steady(&subject, &point, &load, Scenario::Scale)?;
    record.keyspace_entries = Some(entries as u64);
    drop(server);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
    let scale = ScaleRecord {
        strategy: variant.strategy.as_str().to_owned(),
        variant: variant.name.to_owned(),
        entry_kind: kind.name().to_owned(),
        entries: entries as u64,
        used_memory_before: before,
        used_memory_after: after,
        bytes_per_entry: after.saturating_sub(before) as f64 / entries.max(1) as f64,
        seed_seconds,
        tokens_sampled: tokens.len() as u64,
        throughput_rps: record.throughput_rps.median,
        latency_p50_us: record.latency_us.p50,
        latency_p99_us: record.latency_us.p99,
        server_rss_bytes,
        server_start_seconds: Some(server_start_seconds),
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
