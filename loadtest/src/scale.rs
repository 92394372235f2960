//! The `scale` scenario: Redis memory per entry a strategy keeps (active session, jti, refresh
//! family, user version or revocation event) and latency with a large keyspace. Entries are
//! written straight into a fresh Redis in the strategies' own layout
//! (`authbench_server::strategy::seed`), memory is read from `INFO memory` before and after,
//! then the server starts on that Redis (pushed replays its whole log there) and a short steady
//! load draws its tokens evenly from the whole keyspace.

use std::path::Path;
use std::time::{Duration, Instant};

use authbench_server::jwt::{JwtAlg, JwtKeys};
use authbench_server::redis_process::RedisServer;
use authbench_server::strategy::seed;
use serde::{Deserialize, Serialize};

use crate::engine::RequestTemplate;
use crate::measure::{RedisProbe, redis_used_memory, rss_bytes};
use crate::process::ServerProcess;
use crate::results::RunRecord;
use crate::scenario::{self, Knobs, Subject};

/// What one keyspace size cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleRecord {
    pub strategy: String,
    pub variant: String,
    /// What one entry is: an [`EntryKind`] name.
    pub entry_kind: String,
    pub entries: u64,
    /// Redis `used_memory` before and after seeding, bytes.
    pub used_memory_before: u64,
    pub used_memory_after: u64,
    /// (after − before) / entries: what one entry costs, index share included.
    pub bytes_per_entry: f64,
    pub seed_seconds: f64,
    /// Distinct tokens the load drew from, spread over the keyspace.
    pub tokens_sampled: u64,
    /// The steady point measured on that keyspace.
    pub throughput_rps: f64,
    pub latency_p50_us: f64,
    pub latency_p99_us: f64,
    /// The server's resident set (VmRSS) once it answers, before any load, bytes: for pushed
    /// it holds the denylist replayed from the log. Absent in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_rss_bytes: Option<u64>,
    /// Seconds from starting the server until it answered (pushed replays its log meanwhile).
    /// Absent in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_start_seconds: Option<f64>,
}

/// What one seeded entry is, in the strategy's own layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// `session`: a session record and its user-index entry.
    Session,
    /// `hybrid` allowlist: a live jti and its user-index entry.
    LiveJti,
    /// `hybrid` denylist: a revoked jti until its token's expiry.
    RevokedJti,
    /// `refresh`: a refresh-token family and its user-index entry.
    RefreshFamily,
    /// `versioned`: one user's token version (never expires).
    UserVersion,
    /// `pushed`: a jti revocation event in the log (and in every server's denylist).
    RevokedJtiEvent,
}

impl EntryKind {
    pub const ALL: [Self; 6] =
        [Self::Session, Self::LiveJti, Self::RevokedJti, Self::RefreshFamily, Self::UserVersion, Self::RevokedJtiEvent];

    /// The kind a variant's entries are, or `None` for a design that keeps nothing per entry.
    pub fn of(variant: &crate::suite::Variant) -> Option<Self> {
        Some(match variant.strategy {
            "session" => Self::Session,
            "hybrid" if variant.args.contains(&"denylist") => Self::RevokedJti,
            "hybrid" => Self::LiveJti,
            "refresh" => Self::RefreshFamily,
            "versioned" => Self::UserVersion,
            "pushed" => Self::RevokedJtiEvent,
            _ => return None,
        })
    }

    /// The `entry_kind` of a [`ScaleRecord`].
    pub fn name(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::LiveJti => "live_jti",
            Self::RevokedJti => "revoked_jti",
            Self::RefreshFamily => "refresh_family",
            Self::UserVersion => "user_version",
            Self::RevokedJtiEvent => "revoked_jti_event",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether there is one entry per logged-in session or device, so that Redis memory grows
    /// with the active users. Revocations (and versions, one per user ever revoked) do not.
    pub fn per_session(self) -> bool {
        matches!(self, Self::Session | Self::LiveJti | Self::RefreshFamily)
    }
}

/// `args` without a `--grace <value>` (or `--grace=<value>`) pair.
fn without_grace(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut skip = false;
    for a in args {
        if std::mem::take(&mut skip) {
            continue;
        }
        if a == "--grace" {
            skip = true;
        } else if !a.starts_with("--grace=") {
            out.push(a.clone());
        }
    }
    out
}

/// How long ago the seeded `versioned` tokens were issued: older than any grace a suite
/// variant runs with (30 s at most), so every request reads the versions from Redis.
const VERSIONED_TOKEN_AGE: Duration = Duration::from_secs(600);

/// Seeds `entries` for `variant` into a fresh Redis, measures memory, then a steady point.
#[allow(clippy::too_many_arguments)]
pub fn run(
    variant: &crate::suite::Variant,
    server_args: &[String],
    entries: usize,
    binary: &Path,
    knobs: &Knobs,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<(ScaleRecord, RunRecord)> {
    let redis = RedisServer::start()?;
    let probe = RedisProbe::of(&redis);
    let ttl = Duration::from_secs(3600);
    let users: u32 = 2000;
    let sample = 4096.min(entries);
    let dir = std::env::temp_dir().join(format!("authbench-scale-{}-{}", std::process::id(), variant.name));
    std::fs::create_dir_all(&dir)?;
    let key_file = dir.join("jwt.key");
    let _ = std::fs::remove_file(&key_file);
    let keys = JwtKeys::new(JwtAlg::HS256, Some(&key_file)).map_err(|e| anyhow::anyhow!(e))?;
    let kind =
        EntryKind::of(variant).ok_or_else(|| anyhow::anyhow!("{} keeps no entries in Redis to scale", variant.name))?;
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

    let mut args = server_args.to_vec();
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
    let server = ServerProcess::start(binary, &args, None)?;
    let server_start_seconds = spawned.elapsed().as_secs_f64();
    let server_rss_bytes = server.pid().and_then(rss_bytes);
    let subject = Subject {
        addr: server.addr,
        others: Vec::new(),
        pid: server.pid(),
        redis: Some(probe),
        variant: variant.name.to_owned(),
        strategy: variant.strategy.to_owned(),
        server_args: args,
        capabilities: Some(runtime.block_on(crate::client::capabilities(server.addr))?),
        password: crate::harness::USER_PASSWORD.to_owned(),
    };
    let templates: Vec<RequestTemplate> =
        tokens.iter().map(|t| RequestTemplate::get("/me", Some(t))).collect::<anyhow::Result<_>>()?;
    let token_bytes = tokens.first().map_or(0, |t| t.len() as u64);
    let mut point = knobs.clone();
    point.plan.repetitions = 1;
    point.plan.warmup = knobs.plan.point_warmup;
    point.plan.steady_duration = knobs.plan.point_duration;
    let mut record = scenario::steady(&subject, &point, &templates, token_bytes)?;
    record.scenario = "scale".into();
    record.keyspace_entries = Some(entries as u64);
    drop(server);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
    let scale = ScaleRecord {
        strategy: variant.strategy.to_owned(),
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
