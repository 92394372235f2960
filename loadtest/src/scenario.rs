//! The measurements of this CLI: calibration, `steady`, `sweep` and `login`. Each takes a
//! [`Subject`] (a server and what can be observed of it) and returns result records; none
//! knows whether the harness started the server or someone else did.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::engine::{self, Keep, LoadOutcome, LoadSpec, Percentiles, RequestTemplate, Schedule};
use crate::flow;
use crate::measure::{CostSnapshot, Costs, RedisProbe, peak_rss_bytes};
use crate::results::{Calibration, LoginSplit, RunRecord, Spread, SweepSummary};
use crate::suite::SuitePlan;

/// A server being measured.
#[derive(Debug, Clone)]
pub struct Subject {
    pub addr: SocketAddr,
    /// Its process, when it runs on this machine and we know it.
    pub pid: Option<u32>,
    /// Further instances sharing its Redis and keys (`--instances`), with their processes;
    /// steady and sweep load is split across all of them.
    pub others: Vec<(SocketAddr, Option<u32>)>,
    pub redis: Option<RedisProbe>,
    pub variant: String,
    pub strategy: String,
    pub server_args: Vec<String>,
    pub capabilities: Option<serde_json::Value>,
    /// Password of the seeded users.
    pub password: String,
}

impl Subject {
    /// The processes of every instance known.
    pub fn pids(&self) -> Vec<u32> {
        self.pid.into_iter().chain(self.others.iter().filter_map(|(_, pid)| *pid)).collect()
    }

    /// The largest peak RSS over the instances.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        self.pids().into_iter().filter_map(peak_rss_bytes).max()
    }
}

/// The knobs every measurement shares.
#[derive(Debug, Clone)]
pub struct Knobs {
    pub plan: SuitePlan,
    pub generator_cpus: Option<Vec<usize>>,
    pub cancel: Arc<AtomicBool>,
    /// The engine's own ceiling against baseline, when calibrated.
    pub ceiling_rps: Option<f64>,
    pub generator_bound_threshold: f64,
    pub request_timeout: Duration,
}

impl Knobs {
    /// Load on every instance of `subject`.
    fn spec_for(
        &self,
        subject: &Subject,
        requests: Vec<RequestTemplate>,
        warmup: Duration,
        duration: Duration,
    ) -> LoadSpec {
        let mut spec = self.spec(subject.addr, requests, warmup, duration);
        spec.others = subject.others.iter().map(|(addr, _)| *addr).collect();
        spec
    }

    fn spec(&self, addr: SocketAddr, requests: Vec<RequestTemplate>, warmup: Duration, duration: Duration) -> LoadSpec {
        LoadSpec {
            addr,
            others: Vec::new(),
            requests,
            connections: self.plan.connections,
            threads: self.plan.threads,
            warmup,
            duration,
            schedule: Schedule::Closed,
            timeout: self.request_timeout,
            cpus: self.generator_cpus.clone(),
        }
    }
}

/// Logs distinct users in and returns one `/me` template per token (connections rotate over
/// them) and the token length.
pub async fn me_templates(subject: &Subject, count: usize) -> anyhow::Result<(Vec<RequestTemplate>, u64)> {
    let mut templates = Vec::with_capacity(count);
    let mut token_bytes = 0;
    for i in 0..count.max(1) {
        let token = crate::client::login(subject.addr, &format!("user{i}"), &subject.password).await?;
        token_bytes = token.len() as u64;
        templates.push(RequestTemplate::get("/me", Some(&token))?);
    }
    Ok((templates, token_bytes))
}

fn status_counts(outcome: &LoadOutcome) -> std::collections::BTreeMap<String, u64> {
    let mut counts: std::collections::BTreeMap<String, u64> =
        outcome.statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect();
    if outcome.timeouts > 0 {
        counts.insert("timeout".into(), outcome.timeouts);
    }
    if outcome.errors > outcome.timeouts {
        counts.insert("connection_error".into(), outcome.errors - outcome.timeouts);
    }
    counts
}

/// Closed loop, `repetitions` times: throughput spread and merged latency.
pub fn steady(
    subject: &Subject,
    knobs: &Knobs,
    templates: &[RequestTemplate],
    token_bytes: u64,
) -> anyhow::Result<RunRecord> {
    let plan = &knobs.plan;
    let mut merged: Option<LoadOutcome> = None;
    let mut rates = Vec::new();
    let mut costs_per_rep = Vec::new();
    let mut commands = std::collections::BTreeMap::new();
    for _ in 0..plan.repetitions {
        // Warm-up is its own short run, so the counters bracket the measured window only.
        let warm = knobs.spec_for(subject, templates.to_vec(), Duration::ZERO, plan.warmup);
        engine::run(&warm, Keep::default(), &knobs.cancel)?;
        let before = CostSnapshot::take(&subject.pids(), subject.redis.as_ref());
        let spec = knobs.spec_for(subject, templates.to_vec(), Duration::ZERO, plan.steady_duration);
        let outcome = engine::run(&spec, Keep::default(), &knobs.cancel)?;
        let after = CostSnapshot::take(&subject.pids(), subject.redis.as_ref());
        let costs = Costs::between(&before, &after, outcome.requests);
        rates.push(outcome.throughput());
        for (k, v) in &costs.redis_commands {
            *commands.entry(k.clone()).or_insert(0) += v;
        }
        costs_per_rep.push(costs);
        match &mut merged {
            Some(m) => m.merge(outcome),
            None => merged = Some(outcome),
        }
        if knobs.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
    }
    let outcome = merged.ok_or_else(|| anyhow::anyhow!("no repetition ran"))?;
    let throughput = Spread::of(&rates);
    let generator_bound =
        knobs.ceiling_rps.is_some_and(|c| c > 0.0 && throughput.median >= knobs.generator_bound_threshold * c);
    Ok(RunRecord {
        scenario: "steady".into(),
        strategy: subject.strategy.clone(),
        variant: subject.variant.clone(),
        server_args: subject.server_args.clone(),
        capabilities: subject.capabilities.clone(),
        schedule: "closed".into(),
        connections: plan.connections,
        offered_rps: None,
        dropped_sends: None,
        repetitions: rates.len() as u32,
        warmup_s: plan.warmup.as_secs_f64(),
        duration_s: plan.steady_duration.as_secs_f64(),
        throughput_rps: throughput,
        latency_us: Percentiles::of(&outcome.latency),
        latency_basis: "service_time".into(),
        service_latency_us: None,
        send_lag_us: None,
        requests: outcome.requests,
        errors: outcome.failures(),
        status_counts: status_counts(&outcome),
        redis_commands_per_request: mean_of(&costs_per_rep, |c| c.redis_commands_per_request),
        redis_bytes_per_request: mean_of(&costs_per_rep, |c| c.redis_bytes_per_request),
        redis_commands: commands,
        server_cpu_us_per_request: mean_of(&costs_per_rep, |c| c.server_cpu_us_per_request),
        redis_cpu_us_per_request: mean_of(&costs_per_rep, |c| c.redis_cpu_us_per_request),
        generator_cpu_us_per_request: mean_of(&costs_per_rep, |c| c.generator_cpu_us_per_request),
        token_bytes: Some(token_bytes),
        server_peak_rss_bytes: subject.peak_rss_bytes(),
        generator_bound,
        login: None,
        redis_rtt_ms: None,
        redis_rtt_measured_ms: None,
        claims_padding_bytes: None,
        keyspace_entries: None,
        histogram: engine::serialize_histogram(&outcome.latency),
    })
}

/// Mean of the repetitions that have a figure; none when no repetition has one.
fn mean_of(costs: &[Costs], field: impl Fn(&Costs) -> Option<f64>) -> Option<f64> {
    let values: Vec<f64> = costs.iter().filter_map(field).collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Open loop at fractions of `max_rps`: one record per step and the knee.
pub fn sweep(
    subject: &Subject,
    knobs: &Knobs,
    templates: &[RequestTemplate],
    token_bytes: u64,
    max_rps: f64,
    mut on_step: impl FnMut(&RunRecord) -> anyhow::Result<()>,
) -> anyhow::Result<SweepSummary> {
    let plan = &knobs.plan;
    let mut offered = Vec::new();
    let mut p99 = Vec::new();
    let mut achieved = Vec::new();
    for &fraction in &plan.sweep_fractions {
        if knobs.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let rate = (max_rps * fraction).max(1.0);
        let mut spec = knobs.spec_for(subject, templates.to_vec(), plan.sweep_warmup, plan.sweep_step);
        spec.schedule = Schedule::Open { rate };
        let before = CostSnapshot::take(&subject.pids(), subject.redis.as_ref());
        let outcome = engine::run(&spec, Keep::default(), &knobs.cancel)?;
        let after = CostSnapshot::take(&subject.pids(), subject.redis.as_ref());
        // The counters include the step's warm-up; per-request costs use every request sent.
        let sent = outcome.requests
            + (outcome.requests as f64 * plan.sweep_warmup.as_secs_f64() / plan.sweep_step.as_secs_f64().max(1e-9))
                as u64;
        let costs = Costs::between(&before, &after, sent);
        let record = RunRecord {
            scenario: "sweep".into(),
            strategy: subject.strategy.clone(),
            variant: subject.variant.clone(),
            server_args: subject.server_args.clone(),
            capabilities: subject.capabilities.clone(),
            schedule: "open".into(),
            connections: plan.connections,
            offered_rps: Some(rate),
            dropped_sends: Some(outcome.dropped),
            repetitions: 1,
            warmup_s: plan.sweep_warmup.as_secs_f64(),
            duration_s: plan.sweep_step.as_secs_f64(),
            throughput_rps: Spread::of(&[outcome.throughput()]),
            latency_us: Percentiles::of(&outcome.latency),
            latency_basis: "intended_send_time".into(),
            service_latency_us: Some(Percentiles::of(&outcome.service)),
            send_lag_us: Some(Percentiles::of(&outcome.send_lag)),
            requests: outcome.requests,
            errors: outcome.failures(),
            status_counts: status_counts(&outcome),
            redis_commands_per_request: costs.redis_commands_per_request,
            redis_bytes_per_request: costs.redis_bytes_per_request,
            redis_commands: costs.redis_commands.clone(),
            server_cpu_us_per_request: costs.server_cpu_us_per_request,
            redis_cpu_us_per_request: costs.redis_cpu_us_per_request,
            generator_cpu_us_per_request: costs.generator_cpu_us_per_request,
            token_bytes: Some(token_bytes),
            server_peak_rss_bytes: subject.peak_rss_bytes(),
            generator_bound: false,
            login: None,
            redis_rtt_ms: None,
            redis_rtt_measured_ms: None,
            claims_padding_bytes: None,
            keyspace_entries: None,
            histogram: engine::serialize_histogram(&outcome.latency),
        };
        offered.push(rate);
        p99.push(record.latency_us.p99);
        achieved.push(outcome.throughput());
        on_step(&record)?;
    }
    let knee_rps = knee(&offered, &p99, &achieved);
    Ok(SweepSummary {
        strategy: subject.strategy.clone(),
        variant: subject.variant.clone(),
        max_rps,
        offered_rps: offered,
        p99_us: p99,
        knee_rps,
    })
}

/// Where latency turns up: the first offered rate whose p99 (from the intended send time)
/// exceeds ten times the p99 at the lowest rate and at least 1 ms, or whose achieved rate falls
/// more than 5 % short of the offered one. A factor of ten, not two or three, because at low
/// load a p99 of a few hundred microseconds moves by that much from scheduling noise alone.
pub fn knee(offered: &[f64], p99_us: &[f64], achieved: &[f64]) -> Option<f64> {
    let base = p99_us.first().copied().unwrap_or(0.0);
    let limit = (10.0 * base).max(1000.0);
    offered.iter().zip(p99_us.iter().zip(achieved)).find(|(o, (p, a))| **p > limit || **a < 0.95 * **o).map(|(o, _)| *o)
}

/// Goose user flows: logins per second, login latency, argon2 and minting time.
pub async fn login(subject: &Subject, knobs: &Knobs) -> anyhow::Result<RunRecord> {
    let plan = &knobs.plan;
    let before = CostSnapshot::take(&subject.pids(), subject.redis.as_ref());
    // Flow users are user100.. so they never log the steady scenario's users out.
    let outcome =
        flow::run_login_flows(subject.addr, plan.login_users, 100, &subject.password, plan.login_duration).await?;
    let after = CostSnapshot::take(&subject.pids(), subject.redis.as_ref());
    let costs = Costs::between(&before, &after, outcome.logins);
    let window = outcome.window.as_secs_f64().max(1e-9);
    let rate = outcome.logins as f64 / window;
    let ms =
        |h: &hdrhistogram::Histogram<u64>, q: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1e6 };
    let us =
        |h: &hdrhistogram::Histogram<u64>, q: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1e3 };
    let mut status_counts = std::collections::BTreeMap::new();
    status_counts.insert("login_ok".into(), outcome.logins);
    status_counts.insert("failed_steps".into(), outcome.failures);
    Ok(RunRecord {
        scenario: "login".into(),
        strategy: subject.strategy.clone(),
        variant: subject.variant.clone(),
        server_args: subject.server_args.clone(),
        capabilities: subject.capabilities.clone(),
        schedule: "closed".into(),
        connections: plan.login_users,
        offered_rps: None,
        dropped_sends: None,
        repetitions: 1,
        warmup_s: 0.0,
        duration_s: outcome.window.as_secs_f64(),
        throughput_rps: Spread::of(&[rate]),
        latency_us: Percentiles::of(&outcome.login),
        latency_basis: "service_time".into(),
        service_latency_us: None,
        send_lag_us: None,
        requests: outcome.logins,
        errors: outcome.failures,
        status_counts,
        // Per login: the flow's /me and /logout calls are included, so these are per flow.
        redis_commands_per_request: costs.redis_commands_per_request,
        redis_bytes_per_request: costs.redis_bytes_per_request,
        redis_commands: costs.redis_commands,
        server_cpu_us_per_request: costs.server_cpu_us_per_request,
        redis_cpu_us_per_request: costs.redis_cpu_us_per_request,
        generator_cpu_us_per_request: costs.generator_cpu_us_per_request,
        token_bytes: Some(outcome.token_bytes),
        server_peak_rss_bytes: subject.peak_rss_bytes(),
        generator_bound: false,
        login: Some(LoginSplit {
            samples: outcome.argon2.len(),
            argon2_ms_p50: ms(&outcome.argon2, 0.5),
            argon2_ms_p99: ms(&outcome.argon2, 0.99),
            mint_us_p50: us(&outcome.mint, 0.5),
            mint_us_p99: us(&outcome.mint, 0.99),
        }),
        redis_rtt_ms: None,
        redis_rtt_measured_ms: None,
        claims_padding_bytes: None,
        keyspace_entries: None,
        histogram: engine::serialize_histogram(&outcome.login),
    })
}

/// Runs wrk against `url` and returns its requests per second.
pub fn wrk_rps(
    url: &str,
    connections: usize,
    threads: usize,
    duration: Duration,
    cpus: Option<&[usize]>,
) -> anyhow::Result<(f64, String)> {
    let secs = duration.as_secs().max(1);
    let args = vec![
        format!("-t{threads}"),
        format!("-c{connections}"),
        format!("-d{secs}s"),
        "--timeout".to_owned(),
        "10s".to_owned(),
        url.to_owned(),
    ];
    let mut cmd = match cpus {
        Some(cpus) if !cpus.is_empty() => {
            let list = cpus.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
            let mut c = Command::new("taskset");
            c.arg("-c").arg(list).arg("wrk");
            c
        }
        _ => Command::new("wrk"),
    };
    let out = cmd.args(&args).output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            anyhow::anyhow!("wrk not found on PATH: run scripts/setup.sh (or `apt-get install wrk`)")
        }
        _ => anyhow::anyhow!("cannot run wrk: {e}"),
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("could not read wrk's output: {}", text.lines().last().unwrap_or("")))?;
    Ok((rps, format!("wrk {}", args.join(" "))))
}

/// The generator against baseline, and wrk against the same server, in alternation.
pub fn calibrate(addr: SocketAddr, knobs: &Knobs) -> anyhow::Result<Calibration> {
    let plan = &knobs.plan;
    let templates = vec![RequestTemplate::get("/me", None)?];
    let mut engine_rates = Vec::new();
    let mut wrk_rates = Vec::new();
    let mut wrk_command = None;
    let mut latency = engine::new_histogram();
    let url = format!("http://{addr}/me");
    for _ in 0..plan.repetitions {
        let warm = knobs.spec(addr, templates.clone(), Duration::ZERO, plan.warmup.min(Duration::from_millis(500)));
        engine::run(&warm, Keep::default(), &knobs.cancel)?;
        let spec = knobs.spec(addr, templates.clone(), Duration::ZERO, plan.calibration_duration);
        let outcome = engine::run(&spec, Keep::default(), &knobs.cancel)?;
        engine_rates.push(outcome.throughput());
        let _ = latency.add(&outcome.latency);
        let (rps, command) =
            wrk_rps(&url, plan.connections, plan.threads, plan.calibration_duration, knobs.generator_cpus.as_deref())?;
        wrk_rates.push(rps);
        wrk_command = Some(command);
        if knobs.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
    }
    let engine_rps = Spread::of(&engine_rates);
    let wrk = Spread::of(&wrk_rates);
    let ratio = (wrk.median > 0.0).then(|| engine_rps.median / wrk.median);
    Ok(Calibration {
        connections: plan.connections,
        threads: plan.threads,
        duration_s: plan.calibration_duration.as_secs_f64(),
        repetitions: engine_rates.len() as u32,
        engine_rps,
        engine_latency_us: Percentiles::of(&latency),
        wrk_rps: Some(wrk),
        wrk_command,
        engine_to_wrk: ratio,
        generator_bound_threshold: knobs.generator_bound_threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knee_ignores_noise_and_finds_the_turn() {
        let offered = [1000.0, 2000.0, 3000.0, 4000.0];
        // p99 triples at 2000 (noise), explodes at 3000.
        assert_eq!(knee(&offered, &[200.0, 600.0, 9000.0, 50_000.0], &offered), Some(3000.0));
        // Flat latency, but the server falls behind at 4000.
        assert_eq!(knee(&offered, &[200.0, 210.0, 220.0, 230.0], &[1000.0, 2000.0, 3000.0, 3500.0]), Some(4000.0));
        assert_eq!(knee(&offered, &[200.0, 210.0, 220.0, 230.0], &offered), None);
    }
}
