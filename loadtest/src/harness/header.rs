//! The head of a results file: when and how the run was made, on what, with which method.
//! The method notes are the report's account of how every figure was obtained.

use std::time::{Duration, SystemTime};

use crate::observe::capture_environment;
use crate::plan::{CpuPlacement, SuitePlan};
use crate::results::{Method, Placement, Results, SCHEMA_VERSION, run_id, timestamp};

pub fn placement_of(p: &CpuPlacement) -> Placement {
    Placement {
        server: p.server.clone().unwrap_or_else(|| "unpinned".into()),
        generator: p
            .generator
            .as_ref()
            .map(|g| g.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
            .unwrap_or_else(|| "unpinned".into()),
        redis: p.redis.map_or_else(|| "unpinned".into(), |r| r.to_string()),
        observed: Default::default(),
    }
}

fn method_of(plan: &SuitePlan, timeout: Duration) -> Method {
    Method {
        repetitions: plan.repetitions,
        instances: plan.instances,
        warmup_s: plan.warmup.as_secs_f64(),
        steady_duration_s: plan.steady_duration.as_secs_f64(),
        connections: plan.connections,
        generator_threads: plan.threads,
        sweep_fractions: plan.sweep_fractions.clone(),
        sweep_step_s: plan.sweep_step.as_secs_f64(),
        login_duration_s: plan.login_duration.as_secs_f64(),
        login_users: plan.login_users,
        request_timeout_s: timeout.as_secs_f64(),
        notes: vec![
            "Every request is timed by the harness into an HdrHistogram in nanoseconds (3 significant digits); latencies are reported in microseconds.".into(),
            "steady: closed loop, each connection sends as soon as it has its answer; latency is service time; warm-up runs before each repetition and is not counted.".into(),
            "Each connection acts as a client: a token handed back in X-Refreshed-Token (versioned) replaces the one it was sent in place of, for that connection.".into(),
            "sweep: open loop at constant arrival rates, latency measured from each request's intended send time (coordinated omission corrected); service time and the pacer's send lag are recorded too.".into(),
            "login: goose user flows (login, /me, logout), each step timed around the goose call; argon2 and minting times come from the server's Server-Timing header.".into(),
            "CPU per request: /proc/<pid>/stat user+system deltas over the measured window (10 ms clock ticks) divided by requests; Redis commands per request: INFO commandstats deltas.".into(),
            "The generator, the server and Redis share this machine's CPUs unless --cpus pins them; see placement.".into(),
        ],
        redis_cluster: None,
    }
}

pub fn new_results(
    suite: &str,
    target: Option<String>,
    plan: &SuitePlan,
    placement: Placement,
    timeout: Duration,
) -> Results {
    let now = SystemTime::now();
    Results {
        schema_version: SCHEMA_VERSION,
        run_id: run_id(now),
        started_at: timestamp(now),
        finished_at: None,
        complete: false,
        interrupted: false,
        command: std::env::args().collect(),
        suite: suite.to_owned(),
        target,
        environment: capture_environment(),
        placement,
        method: method_of(plan, timeout),
        calibration: None,
        runs: Vec::new(),
        sweeps: Vec::new(),
        revocation: Vec::new(),
        outage: Vec::new(),
        scale: Vec::new(),
        rtt_injection: None,
        not_measured: Vec::new(),
    }
}
