//! The measurements: one file per scenario, each behind one small entry point that takes a
//! [`Subject`] (a server and what can be observed of it) or starts the servers it needs, and
//! returns result records. None knows whether the harness started the subject or someone else
//! did; none writes results (the harness does).

mod calibrate;
mod flow;
mod login;
pub mod outage;
pub mod points;
pub mod population;
mod rate;
pub mod revocation;
pub mod rounds;
pub mod scale;
mod steady;
mod sweep;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::runtime::Handle;

pub use calibrate::calibrate;
pub use login::login;
pub use rate::rate;
pub use steady::steady;
pub use sweep::{probe_max, sweep};

use crate::engine::{LoadOutcome, LoadSpec, RequestTemplate, Schedule, client};
use crate::observe::{Costs, StoreProbe, peak_rss_bytes};
use crate::plan::{SuitePlan, USER_PASSWORD, Variant};
use crate::process::{Launcher, ServerProcess};
use crate::results::{Capabilities, Percentiles, Record, RunRecord, Scenario, Spread, serialize_histogram};

/// What a scenario hands back while it runs: each record as soon as it is measured (the
/// harness writes it at once, so an interruption keeps it), and what it is doing now.
#[derive(Debug)]
// A handful of events per measurement: their size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    Status(String),
    Record(Record),
}

/// Where a scenario sends its [`Event`]s; an error from it stops the scenario.
pub type Sink<'a> = &'a mut dyn FnMut(Event) -> anyhow::Result<()>;

/// A server being measured.
#[derive(Debug, Clone)]
pub struct Subject {
    pub addr: SocketAddr,
    /// Its process, when it runs on this machine and we know it.
    pub pid: Option<u32>,
    /// Further instances sharing its Redis and keys (`--instances`), with their processes;
    /// steady and sweep load is split across all of them.
    pub others: Vec<(SocketAddr, Option<u32>)>,
    /// Its store (Redis, or PostgreSQL), to read its CPU time and counters.
    pub store: Option<StoreProbe>,
    pub variant: String,
    pub strategy: String,
    pub server_args: Vec<String>,
    pub capabilities: Option<Capabilities>,
    /// Password of the seeded users.
    pub password: String,
}

impl Subject {
    /// A variant's server (and further instances) that this run started, with what
    /// `/capabilities` says of it.
    pub fn started(
        v: &Variant,
        server: &ServerProcess,
        others: &[ServerProcess],
        server_args: Vec<String>,
        store: Option<StoreProbe>,
        knobs: &Knobs,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            addr: server.addr,
            pid: server.pid(),
            others: others.iter().map(|s| (s.addr, s.pid())).collect(),
            // A PostgreSQL's statements are counted by the servers that send them.
            store: if v.uses_store() {
                let addrs: Vec<SocketAddr> =
                    std::iter::once(server.addr).chain(others.iter().map(|s| s.addr)).collect();
                store.map(|s| s.counting(&addrs))
            } else {
                None
            },
            variant: v.name.to_owned(),
            strategy: v.strategy.as_str().to_owned(),
            server_args,
            capabilities: Some(knobs.runtime.block_on(client::capabilities(server.addr))?),
            password: USER_PASSWORD.to_owned(),
        })
    }

    /// The processes of every instance known.
    pub fn pids(&self) -> Vec<u32> {
        self.pid.into_iter().chain(self.others.iter().filter_map(|(_, pid)| *pid)).collect()
    }

    /// The largest peak RSS over the instances.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        self.pids().into_iter().filter_map(peak_rss_bytes).max()
    }
}

/// What every measurement of a run shares: the plan, where the generator runs, how to stop,
/// the runtime the async parts run on, and how servers are started.
#[derive(Debug, Clone)]
pub struct Knobs {
    pub plan: SuitePlan,
    /// The runtime of the harness's own calls (logins, capabilities, probes); the engine
    /// runs its generator threads on runtimes of their own.
    pub runtime: Handle,
    /// How servers are started; `None` when measuring a server someone else runs.
    pub launcher: Option<Launcher>,
    pub generator_cpus: Option<Vec<usize>>,
    pub cancel: Arc<AtomicBool>,
    pub generator_bound_threshold: f64,
    pub request_timeout: Duration,
}

impl Knobs {
    /// Whether Ctrl-C (or SIGTERM) asked the run to stop.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// The launcher, for the scenarios that start servers of their own.
    pub fn launcher(&self) -> anyhow::Result<&Launcher> {
        self.launcher
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("this scenario starts its own servers, which `load` cannot"))
    }

    /// A copy whose closed-loop windows are short points: `point_warmup`, then
    /// `point_duration` (rtt and tokensize points, once per round; the scale point once).
    pub fn point(&self) -> Self {
        let mut point = self.clone();
        point.plan.warmup = self.plan.point_warmup;
        point.plan.steady_duration = self.plan.point_duration;
        point
    }

    /// Load on every instance of `subject`.
    pub fn spec_for(
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

    pub fn spec(
        &self,
        addr: SocketAddr,
        requests: Vec<RequestTemplate>,
        warmup: Duration,
        duration: Duration,
    ) -> LoadSpec {
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
            max_connections: None,
            cpus: self.generator_cpus.clone(),
            population: None,
        }
    }
}

/// The `/me` requests a load sends: one template per token (connections rotate over them).
#[derive(Debug, Clone)]
pub struct MeLoad {
    pub templates: Vec<RequestTemplate>,
    /// Length of one bearer token.
    pub token_bytes: u64,
}

impl MeLoad {
    /// Logs `count` distinct users (`user0`..) in at `subject`.
    pub async fn login(subject: &Subject, count: usize) -> anyhow::Result<Self> {
        let mut templates = Vec::with_capacity(count);
        let mut token_bytes = 0;
        for i in 0..count.max(1) {
            let token = client::login(subject.addr, &format!("user{i}"), &subject.password).await?;
            token_bytes = token.len() as u64;
            templates.push(RequestTemplate::get("/me", Some(&token))?);
        }
        Ok(Self { templates, token_bytes })
    }
}

/// The record every load scenario starts from: who was measured, with nothing measured yet.
/// Each scenario fills in what it measured with struct update syntax.
fn record(subject: &Subject, scenario: Scenario, latency: &Histogram<u64>) -> RunRecord {
    RunRecord {
        scenario,
        strategy: subject.strategy.clone(),
        variant: subject.variant.clone(),
        server_args: subject.server_args.clone(),
        capabilities: subject.capabilities.clone(),
        schedule: "closed".into(),
        connections: 0,
        offered_rps: None,
        achieved_rps: None,
        dropped: None,
        outcomes: BTreeMap::new(),
        latency_valid: true,
        peak_connections: None,
        connection_limit: None,
        repetitions: 1,
        warmup_s: 0.0,
        duration_s: 0.0,
        throughput_rps: Spread::of(&[]),
        latency_us: Percentiles::of(latency),
        latency_basis: "service_time".into(),
        service_latency_us: None,
        pacer_lag_us: None,
        connection_wait_us: None,
        requests: 0,
        errors: 0,
        status_counts: BTreeMap::new(),
        redis_commands_per_request: None,
        redis_bytes_per_request: None,
        redis_commands: BTreeMap::new(),
        server_cpu_us_per_request: None,
        redis_cpu_us_per_request: None,
        generator_cpu_us_per_request: None,
        generator_busy: None,
        token_bytes: None,
        server_peak_rss_bytes: subject.peak_rss_bytes(),
        generator_bound: false,
        login: None,
        redis_rtt_ms: None,
        redis_rtt_measured_ms: None,
        claims_padding_bytes: None,
        keyspace_entries: None,
        rate_rps: None,
        rounds: None,
        server_cpu_ns_per_request: None,
        redis_cpu_ns_per_request: None,
        generator_cpu_ns_per_request: None,
        latency_p50_us: None,
        latency_p99_us: None,
        noisy_windows: None,
        population: None,
        histogram: serialize_histogram(latency),
    }
}

/// The answers of a load by status, with timeouts and connection errors as their own entries.
fn status_counts(outcome: &LoadOutcome) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> = outcome.statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect();
    if outcome.timeouts > 0 {
        counts.insert("timeout".into(), outcome.timeouts);
    }
    if outcome.errors > outcome.timeouts {
        counts.insert("connection_error".into(), outcome.errors - outcome.timeouts);
    }
    counts
}

/// Whether the generator, not the server, set a run's figures: it dropped sends (its
/// connection limit bound), or its busiest thread was running or waiting for a CPU for at least
/// `threshold` of the window (it never waited for an answer, so the server could have done more).
fn generator_limited(outcome: &LoadOutcome, threshold: f64) -> bool {
    outcome.dropped > 0 || outcome.generator.busiest().is_some_and(|b| b >= threshold)
}

/// Mean of the repetitions that have a figure; none when no repetition has one.
fn mean_of(costs: &[Costs], field: impl Fn(&Costs) -> Option<f64>) -> Option<f64> {
    let values: Vec<f64> = costs.iter().filter_map(field).collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}
