//! The `outage` scenario: what a design does when Redis hangs, dies, or comes back empty.
//!
//! Each fault gets its own Redis (with an append-only file for the persistence case) and its
//! own server. Under a constant offered rate (half the strategy's measured maximum), the fault
//! is injected at a known instant; outcomes are counted per 100 ms by when the client learned
//! them (the answer's arrival, or its 1 s deadline running out: a request not answered within
//! 1 s of its intended send time is a timeout, as a real client would have given up). Around the fault, the harness also checks
//! the figures nobody publishes: revoked tokens accepted during the fault, sessions lost and
//! revocations lost by a restart.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use authbench_server::redis_process::{RedisOptions, RedisServer};
use hyper::Method;
use serde::{Deserialize, Serialize};

use crate::client;
use crate::engine::{self, Bucket, Keep, LoadSpec, RequestTemplate, Schedule};
use crate::process::ServerProcess;

/// Width of a timeline bucket.
pub const BUCKET: Duration = Duration::from_millis(100);

/// A Redis failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// SIGSTOP, then SIGCONT: connections stay open, nothing answers.
    Hang,
    /// SIGKILL, then a restart with no persistence: everything in Redis is gone.
    #[serde(rename = "kill_restart_empty")]
    KillEmpty,
    /// SIGKILL, then a restart that replays the append-only file (appendfsync everysec).
    #[serde(rename = "kill_restart_aof")]
    KillAof,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Hang => "hang",
            Fault::KillEmpty => "kill_restart_empty",
            Fault::KillAof => "kill_restart_aof",
        }
    }
}

/// How long each phase lasts.
#[derive(Debug, Clone)]
pub struct OutagePlan {
    pub before: Duration,
    /// How long Redis stays frozen (hang) or dead (kill) before it is resumed or restarted.
    pub fault: Duration,
    pub after: Duration,
    pub connections: usize,
    pub threads: usize,
    /// Tokens checked for loss by a restart, and tokens revoked before it.
    pub keepers: usize,
    pub password: String,
}

/// One fault measured against one variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutageRecord {
    pub strategy: String,
    pub variant: String,
    pub fault: Fault,
    /// `none` or `aof_everysec`.
    pub persistence: String,
    pub offered_rps: f64,
    pub connections: usize,
    /// Client deadline: a request not answered (or not sent) within it is a timeout.
    pub client_timeout_ms: f64,
    pub bucket_ms: f64,
    /// When the fault began and when Redis was back (resumed, or restarted and answering),
    /// in ms from the start of the timeline.
    pub fault_start_ms: f64,
    pub redis_back_ms: f64,
    /// Share of outcomes that were 2xx answers, among those learned before, during and after
    /// the fault.
    pub availability_before: f64,
    pub availability_during: f64,
    pub availability_after: f64,
    /// From Redis being back to the first 100 ms in which at least 95 % of outcomes were
    /// answers from a working store (2xx, or 401 for tokens a restart lost); null if never.
    pub recovery_ms: Option<f64>,
    /// Probes of a revoked token sent during the fault that were accepted (fail-open shows it).
    pub revoked_accepted: u64,
    pub revoked_probes: u64,
    /// Of `keepers` tokens valid before the fault, how many were refused after recovery.
    pub sessions_lost: u64,
    pub keepers: u64,
    /// Of the tokens revoked before the fault, how many were accepted again after recovery;
    /// null when the strategy cannot revoke a single token.
    pub revocations_lost: Option<u64>,
    pub revoked_checked: u64,
    /// Outcomes per bucket, by when the client learned them.
    pub timeline: Vec<Bucket>,
}

async fn me_status(addr: SocketAddr, token: &str) -> u16 {
    let bearer = format!("Bearer {token}");
    client::call(addr, Method::GET, "/me", &[("authorization", &bearer)], None).await.map_or(0, |a| a.status)
}

/// Waits (up to 15 s) until `/healthz` answers 200.
async fn wait_healthy(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if client::call(addr, Method::GET, "/healthz", &[], None).await.is_ok_and(|a| a.status == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn share_ok(buckets: &[Bucket]) -> f64 {
    let total: u64 = buckets.iter().map(Bucket::total).sum();
    let ok: u64 = buckets.iter().map(|b| b.ok).sum();
    if total == 0 { 0.0 } else { ok as f64 / total as f64 }
}

/// Runs one fault against a fresh Redis and server for `variant`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    strategy: &str,
    variant: &str,
    server_args: &[String],
    uses_redis: bool,
    binary: &Path,
    fault: Fault,
    rate: f64,
    plan: &OutagePlan,
    runtime: &tokio::runtime::Runtime,
    cancel: &Arc<AtomicBool>,
) -> anyhow::Result<OutageRecord> {
    let append_only = fault == Fault::KillAof;
    let mut redis = RedisServer::start_with(RedisOptions { append_only, ..RedisOptions::default() })?;
    let mut args = server_args.to_vec();
    if uses_redis {
        args.extend(["--redis-url".into(), redis.url()]);
    }
    let server = ServerProcess::start(binary, &args, None)?;
    let addr = server.addr;
    let password = plan.password.clone();

    // Tokens: the load's, the keepers', and revoked ones.
    let (templates, keepers, revoked, can_revoke) = runtime.block_on(async {
        let mut templates = Vec::new();
        for i in 0..8 {
            let token = client::login(addr, &format!("user{i}"), &password).await?;
            templates.push(RequestTemplate::get("/me", Some(&token))?);
        }
        let mut keepers = Vec::new();
        for i in 0..plan.keepers {
            keepers.push(client::login(addr, &format!("user{}", 700 + i), &password).await?);
        }
        let mut revoked = Vec::new();
        let mut can_revoke = true;
        for i in 0..=plan.keepers {
            let token = client::login(addr, &format!("user{}", 800 + i), &password).await?;
            let bearer = format!("Bearer {token}");
            let status = client::call(addr, Method::POST, "/logout", &[("authorization", &bearer)], None).await?.status;
            can_revoke &= status == 204;
            revoked.push(token);
        }
        Ok::<_, anyhow::Error>((templates, keepers, revoked, can_revoke))
    })?;
    if append_only {
        // appendfsync everysec: give the revocations time to reach the disk before the kill.
        std::thread::sleep(Duration::from_millis(1500));
    }

    let start = Instant::now() + Duration::from_millis(300);
    let fault_at = start + plan.before;
    let duration = plan.before
        + plan.fault
        + plan.after
        + if fault == Fault::Hang { Duration::ZERO } else { Duration::from_secs(1) };
    let spec = LoadSpec {
        addr,
        others: Vec::new(),
        requests: templates,
        connections: plan.connections,
        threads: plan.threads,
        warmup: Duration::ZERO,
        duration,
        schedule: Schedule::Open { rate },
        timeout: Duration::from_secs(1),
        cpus: None,
    };
    let keep = Keep {
        server_timing: false,
        timeline: Some(BUCKET),
        max_send_lag: Some(Duration::from_secs(1)),
        start_at: Some(start),
    };
    let load_cancel = cancel.clone();
    let load = std::thread::spawn(move || engine::run(&spec, keep, &load_cancel));

    // A revoked token probed throughout: does the fault let it back in?
    let victim = revoked.last().cloned().unwrap_or_default();
    let stop = Arc::new(AtomicBool::new(false));
    let probe_stop = stop.clone();
    let prober = runtime.spawn(async move {
        let mut seen = Vec::new();
        while !probe_stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            let status = me_status(addr, &victim).await;
            seen.push((sent, status));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen
    });

    std::thread::sleep(fault_at.saturating_duration_since(Instant::now()));
    let fault_start = Instant::now();
    let injected = match fault {
        Fault::Hang => redis.pause().and_then(|()| {
            std::thread::sleep(plan.fault);
            redis.resume()
        }),
        Fault::KillEmpty | Fault::KillAof => redis.kill().and_then(|()| {
            std::thread::sleep(plan.fault);
            redis.restart()
        }),
    };
    let back = Instant::now();
    let outcome = load.join().map_err(|_| anyhow::anyhow!("load thread panicked"))?;
    stop.store(true, Ordering::Relaxed);
    injected?;
    let outcome = outcome?;
    let probes = runtime.block_on(prober)?;

    // After recovery: which tokens survived, which revocations held.
    let (lost, relapsed) = runtime.block_on(async {
        wait_healthy(addr).await;
        let mut lost = 0;
        for t in &keepers {
            if me_status(addr, t).await == 401 {
                lost += 1;
            }
        }
        let mut relapsed = 0;
        for t in &revoked {
            if me_status(addr, t).await == 200 {
                relapsed += 1;
            }
        }
        (lost, relapsed)
    });
    drop(server);
    drop(redis);

    let ms = |t: Instant| t.saturating_duration_since(start).as_secs_f64() * 1e3;
    let bucket_of = |t: Instant| (t.saturating_duration_since(start).as_nanos() / BUCKET.as_nanos()) as usize;
    let timeline = outcome.timeline;
    let (f0, f1) = (bucket_of(fault_start), bucket_of(back));
    let slice =
        |a: usize, b: usize| timeline.get(a.min(timeline.len())..b.min(timeline.len())).unwrap_or_default().to_vec();
    // Recovered: the server answers from Redis again (2xx or 401, no 503 or timeout). After an
    // empty restart the 401s are the logged-out users; `sessions_lost` counts them.
    let recovery_ms = timeline.iter().enumerate().skip(f1).find_map(|(i, b)| {
        (b.total() > 0 && (b.ok + b.unauthorized) as f64 >= 0.95 * b.total() as f64)
            .then(|| ((i as f64 * BUCKET.as_secs_f64() * 1e3) - ms(back)).max(0.0))
    });
    let during: Vec<&(Instant, u16)> = probes.iter().filter(|(t, _)| *t >= fault_start && *t <= back).collect();
    Ok(OutageRecord {
        strategy: strategy.to_owned(),
        variant: variant.to_owned(),
        fault,
        persistence: if append_only { "aof_everysec".into() } else { "none".into() },
        offered_rps: rate,
        connections: plan.connections,
        client_timeout_ms: 1000.0,
        bucket_ms: BUCKET.as_secs_f64() * 1e3,
        fault_start_ms: ms(fault_start),
        redis_back_ms: ms(back),
        availability_before: share_ok(&slice(0, f0)),
        // The bucket Redis came back in belongs to "after": its answers arrived once it was back.
        availability_during: share_ok(&slice(f0, f1)),
        availability_after: share_ok(&slice(f1, timeline.len())),
        recovery_ms,
        revoked_accepted: during.iter().filter(|(_, s)| *s == 200).count() as u64,
        revoked_probes: during.len() as u64,
        sessions_lost: lost,
        keepers: keepers.len() as u64,
        revocations_lost: can_revoke.then_some(relapsed),
        revoked_checked: revoked.len() as u64,
        timeline,
    })
}
