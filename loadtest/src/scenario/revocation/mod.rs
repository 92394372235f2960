//! The `revocation` scenario: for every revocation kind, how long a revoked token keeps
//! working, on one instance and across two (revoke on A, probe on B), while the servers carry
//! an open-loop `GET /me` load. Each variant gets servers of its own, with a short token
//! lifetime so that a design that cannot revoke shows its token's real remaining life.
//!
//! Each kind is measured in several trials per instance pairing, each on a victim of its own
//! and with its revoke at a random phase after the victim's login, so a window that depends on
//! where the revoke lands in the issuing second or the grace shows as a distribution. Trials
//! of the per-user kinds all run side by side; revoke-all trials do too where one trial's
//! revoke cannot end another's token, and take turns where it can. The victim's tokens are
//! presented by a client that behaves as a real one (`victim.rs`): it adopts refreshed tokens
//! and refreshes an expired one.

mod bound;
mod probe;
mod victim;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use bound::Design;
pub use probe::{Pair, ProbePlan, measure, summarize};

use super::{Event, Knobs, Sink};
use crate::engine::{self, LoadOutcome, LoadSpec, RequestTemplate, Schedule, client};
use crate::plan::{ADMIN_KEY, REVOCATION_VICTIMS_PER_PAIRING, USER_PASSWORD, Variant};
use crate::process::{Backing, ServerProcess, further_instance_args, variant_args};
use crate::results::{BackgroundLoad, Capabilities, Kind, Record, RevocationRecord};
use bound::Phases;

/// Where and on whom the revocation kinds are measured.
#[derive(Debug, Clone)]
pub struct Target {
    pub strategy: String,
    pub variant: String,
    pub normal: Pair,
    /// Servers with the single-device policy (the normal ones when the strategy has none).
    pub single: Pair,
    pub instances: u32,
    /// Victims are `user{first_victim + trial × 7 + kind index}`.
    pub first_victim: usize,
    /// Offered rate of the background `GET /me` load the kinds are probed under (none: idle).
    pub background_rps: Option<f64>,
    /// How the design's revocations act, from its `/capabilities`.
    pub design: Design,
    /// Trials per kind.
    pub trials: u32,
}

impl Target {
    fn victim(&self, kind: Kind, trial: u32) -> String {
        let index = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        format!("user{}", self.first_victim + trial as usize * Kind::ALL.len() + index)
    }
}

/// Users whose tokens carry the background load (never victims).
const BACKGROUND_USERS: std::ops::Range<usize> = 900..916;

/// Background load while revocations are probed: an open-loop `GET /me` stream at `rate`,
/// split over every server of the target, until `stop` is set (or, as a bound, `lasting`
/// has passed). Returns the engine's thread.
fn start_background(
    target: &Target,
    rate: f64,
    lasting: Duration,
    knobs: &Knobs,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<LoadOutcome>>> {
    let mut addrs = vec![target.normal.a, target.normal.b, target.single.a, target.single.b];
    addrs.sort();
    addrs.dedup();
    let first = target.normal.a;
    addrs.retain(|a| *a != first);
    let templates = knobs.runtime.block_on(async {
        let mut templates = Vec::new();
        for i in BACKGROUND_USERS {
            let token = client::login(first, &format!("user{i}"), USER_PASSWORD).await?;
            templates.push(RequestTemplate::get("/me", Some(&token))?);
        }
        Ok::<_, anyhow::Error>(templates)
    })?;
    let spec = LoadSpec {
        addr: first,
        others: addrs,
        requests: templates,
        connections: knobs.plan.connections,
        threads: 1,
        warmup: Duration::ZERO,
        duration: lasting,
        schedule: Schedule::Open { rate },
        timeout: knobs.request_timeout,
        max_connections: None,
        cpus: None,
        population: None,
    };
    let stop = stop.clone();
    Ok(std::thread::spawn(move || engine::run(&spec, engine::Keep::default(), &stop)))
}

/// Measures `trials` side by side (each a kind and a trial number, on its own victim, with its
/// own phase) and returns their records; the probers of each probe less often as more trials
/// run together, so the probe load stays that of one trial.
fn measure_together(
    target: &Target,
    supported: &dyn Fn(Kind) -> bool,
    trials: &[(Kind, u32, Duration)],
    probe_plan: &ProbePlan,
    knobs: &Knobs,
) -> anyhow::Result<Vec<RevocationRecord>> {
    let mut numbers: Vec<u32> = trials.iter().map(|(_, trial, _)| *trial).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let together = u32::try_from(numbers.len()).unwrap_or(1).max(1);
    let mut plan = probe_plan.clone();
    plan.interval = probe_plan.interval * together;
    let measured = knobs.runtime.block_on(async {
        let mut tasks = Vec::new();
        for &(kind, trial, phase) in trials {
            let pair = if kind == Kind::SingleDevice { target.single } else { target.normal };
            let victim = target.victim(kind, trial);
            let plan = plan.clone();
            let cancel = knobs.cancel.clone();
            tasks.push(tokio::spawn(async move {
                (kind, trial, measure(kind, pair, &victim, &plan, phase, &cancel).await)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await);
        }
        out
    });
    let mut records = Vec::new();
    for joined in measured {
        let (kind, trial, raw) = joined?;
        let raw = raw.map_err(|e| anyhow::anyhow!("{} {} trial {trial}: {e:#}", target.variant, kind.as_str()))?;
        let supported = supported(kind);
        let expected_bound_ms = raw.expected_bound_ms(&target.design, kind, target.instances, supported);
        let record =
            summarize(&target.strategy, &target.variant, kind, target.instances, supported, raw, probe_plan.cap);
        records.push(RevocationRecord { trial, expected_bound_ms, ..record });
    }
    Ok(records)
}

/// Measures every revocation kind in `target.trials` trials: the per-user kinds together (each
/// trial on its own victim), then revoke-all, side by side or in turns; hands the records of
/// each group on as soon as it is measured.
pub fn measure_kinds(
    target: &Target,
    supported: &dyn Fn(Kind) -> bool,
    probe_plan: &ProbePlan,
    knobs: &Knobs,
    sink: Sink<'_>,
) -> anyhow::Result<()> {
    let mut phases = Phases::from_clock();
    let range = target.design.phase_range();
    let trials = target.trials.max(1);
    let per_user: Vec<(Kind, u32, Duration)> = (0..trials)
        .flat_map(|t| Kind::ALL.iter().filter(|k| **k != Kind::RevokeAll).map(move |k| (*k, t)))
        .map(|(k, t)| (k, t, phases.next(range)))
        .collect();
    let revoke_all: Vec<(Kind, u32, Duration)> =
        (0..trials).map(|t| (Kind::RevokeAll, t, phases.next(range))).collect();
    // A revoke-all that ends every token on the probed instance: one trial at a time, each
    // victim logged in after the revoke before it.
    let batches: Vec<Vec<(Kind, u32, Duration)>> =
        if target.design.revoke_all_ends_others(target.instances, supported(Kind::RevokeAll)) {
            revoke_all.iter().map(|t| vec![*t]).collect()
        } else {
            vec![revoke_all]
        };
    let groups = [("per-user kinds", vec![per_user]), ("revoke-all", batches)];
    for (name, batches) in groups {
        sink(Event::Status(format!(
            "{}: revocation, {} instance(s), {name}, {trials} trial(s)",
            target.variant, target.instances
        )))?;
        let stop = Arc::new(AtomicBool::new(false));
        // Bounded: no batch probes for longer than its lead, phase, cap and settle.
        let per_batch = probe_plan.lead + range + probe_plan.cap + probe_plan.settle + Duration::from_secs(2);
        let lasting = per_batch * u32::try_from(batches.len()).unwrap_or(u32::MAX) + Duration::from_secs(3);
        let background = match target.background_rps {
            Some(rate) => Some(start_background(target, rate, lasting, knobs, &stop)?),
            None => None,
        };
        let mut records = Vec::new();
        let mut failed = None;
        for batch in &batches {
            match measure_together(target, supported, batch, probe_plan, knobs) {
                Ok(r) => records.extend(r),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
            if knobs.cancelled() {
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
        let load = match background {
            Some(thread) => {
                let outcome = thread.join().map_err(|_| anyhow::anyhow!("background load thread panicked"))??;
                Some(BackgroundLoad {
                    offered_rps: target.background_rps.unwrap_or(0.0),
                    achieved_rps: outcome.throughput(),
                    // A 401 is an answer: revoke-all also ends the background tokens.
                    failures: outcome.failures().saturating_sub(outcome.statuses.get(&401).copied().unwrap_or(0)),
                })
            }
            None => None,
        };
        if let Some(e) = failed {
            return Err(e);
        }
        let records = records.into_iter().map(|r| RevocationRecord { background: load.clone(), ..r }).collect();
        sink(Event::Record(Record::Revocation(records)))?;
        if knobs.cancelled() {
            break;
        }
    }
    Ok(())
}

/// The design a server's `/capabilities` describes, for the bounds of its windows.
pub async fn design_at(addr: SocketAddr) -> anyhow::Result<Design> {
    Ok(Design::of(&client::capabilities(addr).await?))
}

/// How the probes of a variant are paced and capped; `cap` bounds the probing after a revoke.
fn probe_plan(knobs: &Knobs, cap: Duration, password: &str, admin_key: &str) -> ProbePlan {
    ProbePlan {
        probers: 4,
        interval: Duration::from_millis(2),
        lead: Duration::from_millis(100),
        settle: knobs.plan.revocation_settle,
        cap,
        password: password.to_owned(),
        admin_key: admin_key.to_owned(),
    }
}

/// The scenario for one variant of a run: its own servers with a short token lifetime (and a
/// shared key file, so two instances accept each other's tokens), one and two instances.
/// `background_rps` is the load the servers carry meanwhile.
pub fn run_variant(
    v: &Variant,
    redis: Option<&Backing>,
    background_rps: Option<f64>,
    knobs: &Knobs,
    sink: Sink<'_>,
) -> anyhow::Result<()> {
    let plan = &knobs.plan;
    let launcher = knobs.launcher()?;
    let key_dir = std::env::temp_dir().join(format!("authbench-keys-{}-{}", std::process::id(), v.name));
    std::fs::create_dir_all(&key_dir)?;
    let redis_flags = redis.map(Backing::server_args);
    for &instances in plan.revocation_instances() {
        let key_file = key_dir.join(format!("{instances}.key"));
        let _ = std::fs::remove_file(&key_file);
        let mut args = variant_args(v, redis_flags.as_ref().map(|f| f.as_slice()));
        args.extend(["--access-ttl".into(), format!("{}s", plan.revocation_ttl.as_secs().max(1))]);
        if v.uses_jwt() {
            args.extend(["--jwt-key-file".into(), key_file.display().to_string()]);
        }
        let start_pair = |extra: &[&str]| -> anyhow::Result<(ServerProcess, Option<ServerProcess>)> {
            let mut a_args = args.clone();
            a_args.extend(extra.iter().map(|s| (*s).to_owned()));
            let a = launcher.start(&a_args)?;
            let b = if instances == 2 { Some(launcher.start(&further_instance_args(&a_args))?) } else { None };
            Ok((a, b))
        };
        let pair_of = |s: &(ServerProcess, Option<ServerProcess>)| -> Pair {
            Pair { a: s.0.addr, b: s.1.as_ref().map_or(s.0.addr, |b| b.addr) }
        };
        let normal = start_pair(&[])?;
        // The single-device policy is a server setting; strategies that cannot have it are
        // probed on the normal servers, where a second login ends nothing.
        let single = if v.uses_store() { Some(start_pair(&["--max-sessions-per-user", "1"])?) } else { None };
        let normal_pair = pair_of(&normal);
        let single_pair = single.as_ref().map_or(normal_pair, pair_of);
        let caps = knobs.runtime.block_on(client::capabilities(normal_pair.a))?;
        let single_caps = knobs.runtime.block_on(client::capabilities(single_pair.a))?;
        let supported = |kind: Kind| {
            let caps = if kind == Kind::SingleDevice { &single_caps } else { &caps };
            caps.supports(kind)
        };
        // A server that checks nothing (revocation_delay "n/a") can never refuse: probing it to
        // the full cap would only say so more slowly.
        let cap = if caps.checks_nothing() { Duration::from_secs(1) } else { plan.revocation_cap() };
        let target = Target {
            strategy: v.strategy.as_str().to_owned(),
            variant: v.name.to_owned(),
            normal: normal_pair,
            single: single_pair,
            instances,
            first_victim: 500 + (instances as usize - 1) * REVOCATION_VICTIMS_PER_PAIRING,
            background_rps,
            design: Design::of(&caps),
            trials: plan.revocation_trials,
        };
        measure_kinds(&target, &supported, &probe_plan(knobs, cap, USER_PASSWORD, ADMIN_KEY), knobs, sink)?;
        drop(single);
        drop(normal);
    }
    let _ = std::fs::remove_dir_all(&key_dir);
    Ok(())
}

/// The scenario against a server someone else runs: one instance, the target; its own token
/// lifetime (plus leeway) caps the probing, at most 60 s.
pub fn run_remote(
    target: SocketAddr,
    caps: &Capabilities,
    password: &str,
    admin_key: &str,
    knobs: &Knobs,
    sink: Sink<'_>,
) -> anyhow::Result<()> {
    let cap = caps.access_ttl_s().map_or(knobs.plan.revocation_cap(), |t| Duration::from_secs((t + 4).min(60)));
    let pair = Pair { a: target, b: target };
    let target = Target {
        strategy: caps.strategy.clone(),
        variant: caps.strategy.clone(),
        normal: pair,
        single: pair,
        instances: 1,
        first_victim: 500,
        background_rps: None,
        design: Design::of(caps),
        trials: knobs.plan.revocation_trials,
    };
    measure_kinds(&target, &|kind| caps.supports(kind), &probe_plan(knobs, cap, password, admin_key), knobs, sink)
}
