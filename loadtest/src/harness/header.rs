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
            "sweep and rate: open loop at constant arrival rates, each generator thread pacing its share on a timerfd; connections open on demand (idle ones close after 1 s) up to a limit (1.25 × rate × the request deadline, at most 8192 and what the descriptor limit allows, or --max-connections). Every intended request is counted: answered (by status class), failed, timed out (not answered within the deadline from its intended send time), or dropped when every connection was busy at the limit. Latency is measured from the intended send time for every request sent, timeouts at their deadline (coordinated omission corrected); the pacer's lag, the wait for a connection and the service time are recorded apart. A run with drops is marked: its latency is not the server's.".into(),
            "rate: the open loop at one fixed rate (--rate), after a warm-up at the same rate.".into(),
            "login: goose user flows (login, /me, logout), each step timed around the goose call; argon2 and minting times come from the server's Server-Timing header.".into(),
            "CPU per request: the server's and its store's (Redis; PostgreSQL's postmaster and every backend, plus what the children it reaped had used) time on a CPU over the measured window, in nanoseconds from each thread's scheduler counters (/proc/<pid>/task/<tid>/schedstat, thread by thread, so a thread that exits loses only what it ran in the window), divided by requests; store calls per request: Redis's INFO commandstats deltas, or the PostgreSQL statements the servers counted (authbench_postgres_statements_total on /metrics). The generator's CPU per request comes from its own threads' scheduler counters (/proc/thread-self/schedstat) over every request they sent; in login, from the whole process's /proc/self/stat (10 ms clock ticks), since goose's threads come and go.".into(),
            "generator-bound: a run is flagged when the generator dropped sends, or when its busiest thread was running or waiting for a CPU for at least 90 % of the window (it never waited for the server, so the server might have done more). The engine's rate against wrk on baseline (calibration) is the cross-check of the generator's ceiling.".into(),
            "The generator, the server and its store share this machine's CPUs unless --cpus pins them; see placement.".into(),
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
        guide: Vec::new(),
        noise: None,
        not_measured: Vec::new(),
    }
}
