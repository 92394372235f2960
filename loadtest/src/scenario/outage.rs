//! The `outage` scenario: what a design does when its store hangs, dies, or comes back empty.
//!
//! Each fault gets its own store and its own server: a Redis (with an append-only file for the
//! persistence case), or for a variant that keeps its sessions in PostgreSQL a fresh cluster,
//! frozen, or killed and brought back through crash recovery (a logged table keeps its rows, an
//! unlogged one comes back empty). Under a constant offered rate (half the strategy's measured
//! maximum, at most 2 000 req/s), with connections opened as clients need them, the fault is
//! injected at a known instant, and the load runs on for the plan's `after` once the store is
//! back, however long a restart took; every request is counted in the 100 ms bucket of its
//! intended send time, as available when answered 2xx within the client's 1 s deadline (a
//! client that waits out a slow answer within it was served), as a timeout otherwise. Around the
//! fault, the harness also checks the figures nobody publishes: revoked tokens accepted during
//! the fault, sessions lost and revocations lost by a restart.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use authbench_server::pg_process::PgServer;
use authbench_server::redis_process::{RedisOptions, RedisServer};
use hyper::Method;
use tokio::runtime::Handle;

use super::{Knobs, MeLoad, Subject, steady};
use crate::engine::{self, Keep, LoadSpec, RequestTemplate, Schedule, client};
use crate::plan::{USER_PASSWORD, Variant};
use crate::process::{Backing, ServerProcess, variant_args};
use crate::results::{Bucket, Fault, OutageRecord, Scenario};

/// Width of a timeline bucket.
pub const BUCKET: Duration = Duration::from_millis(100);

/// How long a client waits for an answer, from when it meant to send.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(1);

/// The highest rate an outage offers. While the store hangs, every answer waits out the server's
/// store deadline (250 ms), so the load holds rate × 0.25 s connections open; above about
/// 16 000 req/s that passes the 4 096 connections a server accepts, and the figure would be
/// the server's connection cap rather than the design's behaviour in the fault.
pub const OUTAGE_MAX_RPS: f64 = 2000.0;

/// How much later than planned a killed store may come back with the load still running:
/// PostgreSQL's restart runs crash recovery, which takes seconds on a busy machine.
pub const RESTART_ALLOWANCE: Duration = Duration::from_secs(10);

/// How long each phase lasts.
#[derive(Debug, Clone)]
pub struct OutagePlan {
    pub before: Duration,
    /// How long the store stays frozen (hang) or dead (kill) before it is resumed or restarted.
    pub fault: Duration,
    pub after: Duration,
    pub connections: usize,
    pub threads: usize,
    /// Tokens checked for loss by a restart, and tokens revoked before it.
    pub keepers: usize,
    pub password: String,
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

/// Where the server under an outage keeps its state, and so what the fault acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageStore {
    /// The design keeps nothing in a store: a Redis is started and failed all the same, and
    /// the record shows that the design does not notice.
    Unused,
    Redis,
    /// PostgreSQL, its session table logged (written through the WAL) or unlogged.
    Postgres {
        unlogged: bool,
    },
}

impl OutageStore {
    /// The store `v` keeps its state in.
    pub fn of(v: &Variant) -> Self {
        if v.uses_postgres() {
            Self::Postgres { unlogged: v.flag("--postgres-table") == Some("unlogged") }
        } else if v.uses_store() {
            Self::Redis
        } else {
            Self::Unused
        }
    }

    /// Whether `fault` can be injected into this store: the hang into either; the Redis kills
    /// into Redis, the kill with crash recovery into PostgreSQL.
    pub fn accepts(self, fault: Fault) -> bool {
        match self {
            Self::Postgres { .. } => matches!(fault, Fault::Hang | Fault::KillRecover),
            Self::Unused | Self::Redis => fault != Fault::KillRecover,
        }
    }

    /// The record's `persistence`: what the store keeps through a kill.
    fn persistence(self, fault: Fault) -> &'static str {
        match self {
            Self::Postgres { unlogged: true } => "unlogged",
            Self::Postgres { unlogged: false } => "wal",
            Self::Unused | Self::Redis if fault == Fault::KillAof => "aof_everysec",
            Self::Unused | Self::Redis => "none",
        }
    }

    /// A fresh store for `fault`: PostgreSQL, or Redis (append-only for `KillAof`).
    fn start(self, fault: Fault) -> anyhow::Result<Backing> {
        anyhow::ensure!(self.accepts(fault), "the {} fault does not apply to a store {self:?}", fault.as_str());
        Ok(match self {
            Self::Postgres { .. } => Backing::Postgres(PgServer::start()?),
            Self::Unused | Self::Redis => Backing::Own(RedisServer::start_with(RedisOptions {
                append_only: fault == Fault::KillAof,
                ..RedisOptions::default()
            })?),
        })
    }
}

/// Acts `fault` out on `store`: frozen (SIGSTOP) for `down` then resumed, or killed (SIGKILL)
/// and restarted after `down` (Redis empty or from its append-only file, PostgreSQL through
/// crash recovery). Returns once the store is back.
fn inject(store: &mut Backing, fault: Fault, down: Duration) -> anyhow::Result<()> {
    let applies = match store {
        Backing::Postgres(_) => matches!(fault, Fault::Hang | Fault::KillRecover),
        Backing::Own(_) => fault != Fault::KillRecover,
        Backing::Cluster { .. } => false,
    };
    anyhow::ensure!(applies, "the {} fault does not apply to {}", fault.as_str(), store.process_name());
    if fault.kills() {
        store.kill()?;
        std::thread::sleep(down);
        store.restart()
    } else {
        store.pause()?;
        std::thread::sleep(down);
        store.resume()
    }
}

/// The server an outage is measured on: what it is and how to start it.
#[derive(Debug, Clone, Copy)]
pub struct OutageTarget<'a> {
    pub strategy: &'a str,
    pub variant: &'a str,
    /// Its flags; the flags that point it at the fault's own store are added unless the store
    /// is `Unused`.
    pub server_args: &'a [String],
    pub store: OutageStore,
    pub binary: &'a Path,
}

/// Runs one fault against a fresh store and server for `target`.
pub fn run(
    target: &OutageTarget<'_>,
    fault: Fault,
    rate: f64,
    plan: &OutagePlan,
    runtime: &Handle,
    cancel: &Arc<AtomicBool>,
) -> anyhow::Result<OutageRecord> {
    let append_only = fault == Fault::KillAof;
    let mut store = target.store.start(fault)?;
    let mut args = target.server_args.to_vec();
    if target.store != OutageStore::Unused {
        args.extend(store.server_args());
    }
    let server = ServerProcess::start(target.binary, &args, None)?;
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
    // Once the store is back the load runs `after` more (a second more after a kill, for the
    // server to reconnect), however long the store took: after a kill the load is planned with
    // room for a slow restart, and stopped when that time is up.
    let settle = plan.after + if fault.kills() { Duration::from_secs(1) } else { Duration::ZERO };
    let allowance = if fault.kills() { RESTART_ALLOWANCE } else { Duration::ZERO };
    let duration = plan.before + plan.fault + settle + allowance;
    let spec = LoadSpec {
        addr,
        others: Vec::new(),
        requests: templates,
        connections: plan.connections,
        threads: plan.threads,
        warmup: Duration::ZERO,
        duration,
        schedule: Schedule::Open { rate },
        timeout: CLIENT_DEADLINE,
        max_connections: None,
        cpus: None,
        population: None,
    };
    let keep = Keep { server_timing: false, timeline: Some(BUCKET), start_at: Some(start) };
    let load_stop = Arc::new(AtomicBool::new(false));
    let load_cancel = load_stop.clone();
    let load = std::thread::spawn(move || engine::run(&spec, keep, &load_cancel));
    // The user's Ctrl-C stops the load at once, as it stops any other.
    let forward = {
        let (cancel, load_stop) = (cancel.clone(), load_stop.clone());
        std::thread::spawn(move || {
            while !load_stop.load(Ordering::Relaxed) {
                if cancel.load(Ordering::Relaxed) {
                    load_stop.store(true, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

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
    let injected = inject(&mut store, fault, plan.fault);
    let back = Instant::now();
    let end = back + settle;
    while !load.is_finished() && Instant::now() < end {
        std::thread::sleep(end.saturating_duration_since(Instant::now()).min(Duration::from_millis(20)));
    }
    load_stop.store(true, Ordering::Relaxed);
    let _ = forward.join();
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
    drop(store);

    let ms = |t: Instant| t.saturating_duration_since(start).as_secs_f64() * 1e3;
    let bucket_of = |t: Instant| (t.saturating_duration_since(start).as_nanos() / BUCKET.as_nanos()) as usize;
    let timeline = outcome.timeline;
    let (f0, f1) = (bucket_of(fault_start), bucket_of(back));
    let slice =
        |a: usize, b: usize| timeline.get(a.min(timeline.len())..b.min(timeline.len())).unwrap_or_default().to_vec();
    // Recovered: the server answers from its store again (2xx or 401, no 503 or timeout). After
    // a restart that lost sessions the 401s are the logged-out users; `sessions_lost` counts
    // them.
    let recovery_ms = timeline.iter().enumerate().skip(f1).find_map(|(i, b)| {
        (b.total() > 0 && (b.ok + b.unauthorized) as f64 >= 0.95 * b.total() as f64)
            .then(|| ((i as f64 * BUCKET.as_secs_f64() * 1e3) - ms(back)).max(0.0))
    });
    let during: Vec<&(Instant, u16)> = probes.iter().filter(|(t, _)| *t >= fault_start && *t <= back).collect();
    Ok(OutageRecord {
        strategy: target.strategy.to_owned(),
        variant: target.variant.to_owned(),
        fault,
        persistence: target.store.persistence(fault).into(),
        offered_rps: rate,
        connections: plan.connections,
        client_timeout_ms: CLIENT_DEADLINE.as_secs_f64() * 1e3,
        dropped: outcome.dropped,
        bucket_ms: BUCKET.as_secs_f64() * 1e3,
        fault_start_ms: ms(fault_start),
        redis_back_ms: ms(back),
        availability_before: share_ok(&slice(0, f0)),
        // The bucket the store came back in belongs to "after": its answers arrived once it was
        // back.
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

/// The closed-loop maximum of `v` on a fresh server (and store), for an outage rate when the
/// steady scenario did not run: one short repetition.
pub fn probe_max(v: &Variant, knobs: &Knobs) -> anyhow::Result<f64> {
    let store = if v.uses_store() { Some(Backing::start_for(v, None)?) } else { None };
    let flags = store.as_ref().map(Backing::server_args);
    let args = variant_args(v, flags.as_ref().map(|f| f.as_slice()));
    let server = knobs.launcher()?.unpinned().start(&args)?;
    let subject = Subject::started(v, &server, &[], args, None, knobs)?;
    let load = knobs.runtime.block_on(MeLoad::login(&subject, 8))?;
    let mut probe = knobs.clone();
    probe.plan.repetitions = 1;
    probe.plan.steady_duration = Duration::from_secs(1);
    Ok(steady(&subject, &probe, &load, Scenario::Steady)?.throughput_rps.median)
}

/// One fault against `v` at half its measured maximum (at least 100 and at most
/// [`OUTAGE_MAX_RPS`] requests per second).
pub fn run_variant(v: &Variant, fault: Fault, max_rps: f64, knobs: &Knobs) -> anyhow::Result<OutageRecord> {
    let plan = &knobs.plan;
    let outage_plan = OutagePlan {
        before: plan.outage_before,
        fault: plan.outage_fault,
        after: plan.outage_after,
        connections: plan.connections,
        threads: plan.threads,
        keepers: if plan.name == crate::plan::SuiteName::Smoke { 5 } else { 20 },
        password: USER_PASSWORD.to_owned(),
    };
    let target = OutageTarget {
        strategy: v.strategy.as_str(),
        variant: v.name,
        server_args: &variant_args(v, None),
        store: OutageStore::of(v),
        binary: &knobs.launcher()?.binary,
    };
    run(&target, fault, (max_rps / 2.0).clamp(100.0, OUTAGE_MAX_RPS), &outage_plan, &knobs.runtime, &knobs.cancel)
}
