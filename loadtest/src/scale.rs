//! The `scale` scenario: Redis memory per active session (or jti entry) and latency with a
//! large keyspace. Entries are written straight into a fresh Redis in the strategies' own
//! layout (`authbench_server::strategy::seed`), memory is read from `INFO memory` before and
//! after, then a short steady load draws its tokens evenly from the whole keyspace.

use std::path::Path;
use std::time::{Duration, Instant};

use authbench_server::config::JwtAlg;
use authbench_server::jwt::JwtKeys;
use authbench_server::redis_process::RedisServer;
use authbench_server::strategy::seed;
use serde::{Deserialize, Serialize};

use crate::engine::RequestTemplate;
use crate::measure::{RedisProbe, redis_used_memory};
use crate::process::ServerProcess;
use crate::results::RunRecord;
use crate::scenario::{self, Knobs, Subject};

/// What one keyspace size cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleRecord {
    pub strategy: String,
    pub variant: String,
    /// `session`, `live_jti` (hybrid allowlist) or `revoked_jti` (hybrid denylist: the table
    /// grows with revocations, not with sessions).
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
}

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
    let kind = match (variant.strategy, variant.args.contains(&"denylist")) {
        ("session", _) => "session",
        ("hybrid", true) => "revoked_jti",
        _ => "live_jti",
    };
    let before = redis_used_memory(&probe).unwrap_or(0);
    let started = Instant::now();
    let tokens = runtime.block_on(async {
        let client = redis::Client::open(redis.url())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        match kind {
            "session" => seed::sessions(&mut conn, entries, users, ttl, sample).await,
            "revoked_jti" => seed::revoked_jtis(&mut conn, &keys, entries, users, ttl, sample).await,
            _ => seed::live_jtis(&mut conn, &keys, entries, users, ttl, sample).await,
        }
    })?;
    let seed_seconds = started.elapsed().as_secs_f64();
    let after = redis_used_memory(&probe).unwrap_or(0);

    let mut args = server_args.to_vec();
    args.extend(["--redis-url".into(), redis.url(), "--jwt-key-file".into(), key_file.display().to_string()]);
    args.extend(["--access-ttl".into(), "1h".into()]);
    let server = ServerProcess::start(binary, &args, None)?;
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
        entry_kind: kind.to_owned(),
        entries: entries as u64,
        used_memory_before: before,
        used_memory_after: after,
        bytes_per_entry: after.saturating_sub(before) as f64 / entries.max(1) as f64,
        seed_seconds,
        tokens_sampled: tokens.len() as u64,
        throughput_rps: record.throughput_rps.median,
        latency_p50_us: record.latency_us.p50,
        latency_p99_us: record.latency_us.p99,
    };
    Ok((scale, record))
}
