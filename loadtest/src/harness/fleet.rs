//! The seam between the orchestration and the processes it measures (as hyperfine's
//! `Executor` sits between its scheduler and the commands it times). The orchestration decides
//! *what* is measured and in which order ([`steps`]), writes every record the moment it
//! arrives, stops on Ctrl-C and passes errors on; a [`Fleet`] does each measurement. The real
//! fleets start servers and Redis (`local`) or aim at someone else's server (`remote`); the
//! tests drive the orchestration over a fake one in milliseconds.

use std::fmt;
use std::time::Duration;

use anyhow::Context as _;

use super::progress::Progress;
use crate::plan::SuitePlan;
use crate::present::terminal;
use crate::results::{Fault, Record, ResultsWriter, Scenario};
use crate::scenario::{self, Event, Knobs, MeLoad, Sink, Subject};

/// One measurement of a run, named by the variant it measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The generator (and wrk) against baseline.
    Calibration,
    Steady(String),
    Sweep(String),
    /// Open loop at a fixed rate (requests per second).
    Rate(String, f64),
    Login(String),
    /// The servers steady, sweep and login shared for this variant can go.
    Release(String),
    Revocation(String),
    Outage(String, Fault),
    Rtt(String, Duration),
    Tokensize(String, usize),
    Scale(String, usize),
}

impl Step {
    /// The variant the step measures, if any.
    pub fn variant(&self) -> Option<&str> {
        match self {
            Self::Calibration => None,
            Self::Steady(v)
            | Self::Sweep(v)
            | Self::Rate(v, _)
            | Self::Login(v)
            | Self::Release(v)
            | Self::Revocation(v)
            | Self::Outage(v, _)
            | Self::Rtt(v, _)
            | Self::Tokensize(v, _)
            | Self::Scale(v, _) => Some(v),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Calibration => write!(f, "calibration: engine and wrk against baseline"),
            Self::Steady(v) => write!(f, "{v}: steady"),
            Self::Sweep(v) => write!(f, "{v}: sweep"),
            Self::Rate(v, rate) => write!(f, "{v}: fixed rate, {rate} req/s"),
            Self::Login(v) => write!(f, "{v}: login flows"),
            Self::Release(v) => write!(f, "{v}: stopping its servers"),
            Self::Revocation(v) => write!(f, "{v}: revocation"),
            Self::Outage(v, fault) => write!(f, "{v}: outage, {}", fault.as_str()),
            Self::Rtt(v, rtt) => write!(f, "{v}: rtt {:.2} ms", rtt.as_secs_f64() * 1e3),
            Self::Tokensize(v, pad) => write!(f, "{v}: tokensize +{pad} B"),
            Self::Scale(v, entries) => write!(f, "{v}: scale, {entries} entries"),
        }
    }
}

/// What a step may need from the measurements before it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Known {
    /// The variant's closed-loop maximum, when steady measured it.
    pub max_rps: Option<f64>,
}

/// Does the measurements. Each sends its records to `sink` as they are measured.
pub trait Fleet {
    fn measure(&mut self, step: &Step, known: Known, sink: Sink<'_>) -> anyhow::Result<()>;
}

/// The steps of a plan, in order: calibration; per variant its steady, sweep and login (in
/// the plan's order) on servers it keeps until `Release`, then its revocation on servers of
/// its own; then outages, rtt and tokensize points, and scale, which start their own.
pub fn steps(plan: &SuitePlan, calibrate: bool) -> Vec<Step> {
    let has = |s: Scenario| plan.scenarios.contains(&s);
    let mut steps = Vec::new();
    if calibrate {
        steps.push(Step::Calibration);
    }
    for v in &plan.variants {
        steps.extend(subject_steps(plan, v.name, v.measures_revocation()));
    }
    if has(Scenario::Outage) {
        for v in plan.outage_variants() {
            steps.extend(plan.outage_faults(v).into_iter().map(|f| Step::Outage(v.name.to_owned(), f)));
        }
    }
    if has(Scenario::Rtt) {
        for v in plan.variants.iter().filter(|v| plan.measures_rtt(v)) {
            steps.extend(plan.rtt_steps.iter().map(|rtt| Step::Rtt(v.name.to_owned(), *rtt)));
        }
    }
    if has(Scenario::Tokensize) {
        for v in plan.variants.iter().filter(|v| plan.measures_tokensize(v)) {
            steps.extend(plan.token_paddings.iter().map(|pad| Step::Tokensize(v.name.to_owned(), *pad)));
        }
    }
    if has(Scenario::Scale) {
        for v in plan.variants.iter().filter(|v| plan.measures_scale(v)) {
            steps.extend(plan.scale_sizes.iter().map(|n| Step::Scale(v.name.to_owned(), *n)));
        }
    }
    steps
}

/// The steps of one subject (a variant, or the server `load` measures): its steady, sweep and
/// login (and fixed rate) in the plan's order on servers kept until `Release`, then its
/// revocation.
pub fn subject_steps(plan: &SuitePlan, name: &str, measures_revocation: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    for s in &plan.scenarios {
        match s {
            Scenario::Steady => steps.push(Step::Steady(name.to_owned())),
            Scenario::Sweep => steps.push(Step::Sweep(name.to_owned())),
            Scenario::Rate => steps.extend(plan.rate.map(|r| Step::Rate(name.to_owned(), r))),
            Scenario::Login => steps.push(Step::Login(name.to_owned())),
            _ => {}
        }
    }
    if !steps.is_empty() {
        steps.push(Step::Release(name.to_owned()));
    }
    if plan.scenarios.contains(&Scenario::Revocation) && measures_revocation {
        steps.push(Step::Revocation(name.to_owned()));
    }
    steps
}

/// Steady, sweep or login on a subject whose servers run, the same for every fleet; `load` (the
/// `/me` requests) is needed by steady and sweep only.
pub fn subject_step(
    step: &Step,
    subject: &Subject,
    load: Option<&MeLoad>,
    knobs: &Knobs,
    known: Known,
    sink: Sink<'_>,
) -> anyhow::Result<()> {
    let load = || load.ok_or_else(|| anyhow::anyhow!("{step}: no tokens to load with"));
    match step {
        Step::Steady(_) => {
            let record = scenario::steady(subject, knobs, load()?, Scenario::Steady)?;
            sink(Event::Record(Record::Run(Box::new(record))))
        }
        Step::Sweep(name) => {
            let max = match known.max_rps {
                Some(max) => max,
                None => {
                    // No steady run: a short closed-loop probe finds the maximum.
                    sink(Event::Status(format!("{name}: probing the maximum")))?;
                    scenario::probe_max(subject, knobs, load()?)?
                }
            };
            let summary = scenario::sweep(subject, knobs, load()?, max, sink)?;
            sink(Event::Record(Record::Sweep(summary)))
        }
        Step::Rate(_, rate) => {
            let record = scenario::rate(subject, knobs, load()?, *rate)?;
            sink(Event::Record(Record::Run(Box::new(record))))
        }
        Step::Login(_) => {
            let record = knobs.runtime.block_on(scenario::login(subject, knobs))?;
            sink(Event::Record(Record::Run(Box::new(record))))
        }
        other => anyhow::bail!("{other} is not a step on a running subject"),
    }
}

/// What the orchestration works with: where results go, what the user sees, whether to stop.
#[derive(Debug)]
pub struct Context<'a> {
    pub writer: &'a mut ResultsWriter,
    pub progress: &'a Progress,
    pub cancel: &'a std::sync::atomic::AtomicBool,
}

impl Context<'_> {
    fn cancelled(&self) -> bool {
        self.cancel.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Runs `steps` on `fleet`: every record is written as it arrives and its line printed (a
/// revocation step's one line when it ends); a Ctrl-C ends the run after the current step; an
/// error ends it and is passed on, with the step it happened in. What was written stays written
/// either way.
pub fn orchestrate(steps: &[Step], fleet: &mut dyn Fleet, ctx: &mut Context<'_>) -> anyhow::Result<()> {
    for step in steps {
        if ctx.cancelled() {
            break;
        }
        ctx.progress.step(step.to_string());
        let known = Known {
            max_rps: step.variant().and_then(|v| ctx.writer.results.steady(v)).map(|r| r.throughput_rps.median),
        };
        let writer = &mut *ctx.writer;
        let progress = ctx.progress;
        let mut sink = |event: Event| -> anyhow::Result<()> {
            match event {
                Event::Status(text) => progress.step(text),
                Event::Record(record) => {
                    if let Some(line) = terminal::record_line(&record) {
                        progress.println(line);
                    }
                    writer.add(record)?;
                }
            }
            Ok(())
        };
        fleet.measure(step, known, &mut sink).with_context(|| step.to_string())?;
        // The revocation scenario prints one line for the variant, from all its trials.
        if let Step::Revocation(v) = step
            && let Some(line) = terminal::revocation_summary(&ctx.writer.results, v)
        {
            ctx.progress.println(line);
        }
    }
    Ok(())
}

/// A fleet that measures nothing and answers at once, so the orchestration is tested in
/// milliseconds: it hands back made-up records of the right kind, and can be told to fail
/// at a step or to behave as if Ctrl-C came during one.
#[cfg(test)]
pub mod fake {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::{Fleet, Known, Step};
    use crate::results::{
        BackgroundLoad, Calibration, Kind, OutageRecord, Percentiles, Record, RevocationRecord, RunRecord, ScaleRecord,
        Scenario, Spread, SweepSummary,
    };
    use crate::scenario::{Event, Sink};

    #[derive(Debug, Default)]
    pub struct FakeFleet {
        /// Every step asked for, with what it was told.
        pub seen: Vec<(Step, Known)>,
        /// Fail at this step (its records are not sent).
        pub fail_at: Option<Step>,
        /// Set this flag (as Ctrl-C would) after sending this step's records.
        pub interrupt_at: Option<(Step, Arc<AtomicBool>)>,
        /// Steady throughput handed back, per call.
        pub steady_rps: f64,
    }

    fn percentiles() -> Percentiles {
        Percentiles {
            p50: 100.0,
            p90: 150.0,
            p99: 200.0,
            p999: 300.0,
            p9999: 400.0,
            max: 500.0,
            mean: 110.0,
            stdev: 20.0,
        }
    }

    pub fn run_record(variant: &str, scenario: Scenario, rps: f64) -> RunRecord {
        RunRecord {
            scenario,
            strategy: variant.split('-').next().unwrap_or(variant).to_owned(),
            variant: variant.to_owned(),
            server_args: Vec::new(),
            capabilities: None,
            schedule: "closed".into(),
            connections: 4,
            offered_rps: None,
            achieved_rps: None,
            dropped: None,
            outcomes: Default::default(),
            latency_valid: true,
            peak_connections: None,
            connection_limit: None,
            repetitions: 1,
            warmup_s: 0.0,
            duration_s: 1.0,
            throughput_rps: Spread::of(&[rps]),
            latency_us: percentiles(),
            latency_basis: "service_time".into(),
            service_latency_us: None,
            pacer_lag_us: None,
            connection_wait_us: None,
            requests: rps as u64,
            errors: 0,
            status_counts: Default::default(),
            redis_commands_per_request: None,
            redis_bytes_per_request: None,
            redis_commands: Default::default(),
            server_cpu_us_per_request: None,
            redis_cpu_us_per_request: None,
            generator_cpu_us_per_request: None,
            generator_busy: None,
            token_bytes: None,
            server_peak_rss_bytes: None,
            generator_bound: false,
            login: None,
            redis_rtt_ms: None,
            redis_rtt_measured_ms: None,
            claims_padding_bytes: None,
            keyspace_entries: None,
            histogram: String::new(),
        }
    }

    fn revocation(variant: &str, kind: Kind) -> RevocationRecord {
        RevocationRecord {
            strategy: variant.to_owned(),
            variant: variant.to_owned(),
            kind,
            instances: 1,
            trial: 0,
            supported: true,
            operation_status: 204,
            ack_ms: 1.0,
            window_ms: Some(0.0),
            window_answer_ms: Some(0.5),
            expected_bound_ms: Some(0.0),
            revoke_after_login_ms: Some(600.0),
            accepted_after_ack: 0,
            accepted_before_revoke: 10,
            rejected_after_ack: 10,
            errors_after_ack: 0,
            probes: 20,
            cap_ms: 1000.0,
            token_lifetime_left_ms: 1000.0,
            timeline: Vec::new(),
            background: Some(BackgroundLoad { offered_rps: 100.0, achieved_rps: 100.0, failures: 0 }),
        }
    }

    impl Fleet for FakeFleet {
        fn measure(&mut self, step: &Step, known: Known, sink: Sink<'_>) -> anyhow::Result<()> {
            self.seen.push((step.clone(), known));
            if self.fail_at.as_ref() == Some(step) {
                anyhow::bail!("the fake fleet fails here");
            }
            let mut send = |record: Record| sink(Event::Record(record));
            match step {
                Step::Calibration => send(Record::Calibration(Calibration {
                    connections: 4,
                    threads: 1,
                    duration_s: 1.0,
                    repetitions: 1,
                    engine_rps: Spread::of(&[1000.0]),
                    engine_latency_us: percentiles(),
                    wrk_rps: Some(Spread::of(&[1000.0])),
                    wrk_command: None,
                    engine_to_wrk: Some(1.0),
                    generator_bound_threshold: 0.9,
                }))?,
                Step::Steady(v) => send(Record::Run(Box::new(run_record(v, Scenario::Steady, self.steady_rps))))?,
                Step::Sweep(v) => {
                    let max = known.max_rps.unwrap_or(1.0);
                    for fraction in [0.5, 1.0] {
                        let mut r = run_record(v, Scenario::Sweep, max * fraction);
                        r.offered_rps = Some(max * fraction);
                        send(Record::Run(Box::new(r)))?;
                    }
                    send(Record::Sweep(SweepSummary {
                        strategy: v.clone(),
                        variant: v.clone(),
                        max_rps: max,
                        offered_rps: vec![max / 2.0, max],
                        p99_us: vec![200.0, 200.0],
                        knee_rps: None,
                    }))?;
                }
                Step::Rate(v, rate) => {
                    let mut r = run_record(v, Scenario::Rate, *rate);
                    r.offered_rps = Some(*rate);
                    send(Record::Run(Box::new(r)))?;
                }
                Step::Login(v) => send(Record::Run(Box::new(run_record(v, Scenario::Login, 10.0))))?,
                Step::Release(_) => {}
                Step::Revocation(v) => {
                    send(Record::Revocation(
                        Kind::ALL.iter().filter(|k| **k != Kind::RevokeAll).map(|k| revocation(v, *k)).collect(),
                    ))?;
                    send(Record::Revocation(vec![revocation(v, Kind::RevokeAll)]))?;
                }
                Step::Outage(v, fault) => send(Record::Outage(OutageRecord {
                    strategy: v.clone(),
                    variant: v.clone(),
                    fault: *fault,
                    persistence: "none".into(),
                    offered_rps: known.max_rps.unwrap_or(200.0) / 2.0,
                    connections: 4,
                    client_timeout_ms: 1000.0,
                    dropped: 0,
                    bucket_ms: 100.0,
                    fault_start_ms: 0.0,
                    redis_back_ms: 0.0,
                    availability_before: 1.0,
                    availability_during: 0.0,
                    availability_after: 1.0,
                    recovery_ms: Some(0.0),
                    revoked_accepted: 0,
                    revoked_probes: 0,
                    sessions_lost: 0,
                    keepers: 0,
                    revocations_lost: Some(0),
                    revoked_checked: 0,
                    timeline: Vec::new(),
                }))?,
                Step::Rtt(v, rtt) => {
                    let mut r = run_record(v, Scenario::Rtt, 900.0);
                    r.redis_rtt_ms = Some(rtt.as_secs_f64() * 1e3);
                    send(Record::Run(Box::new(r)))?;
                }
                Step::Tokensize(v, pad) => {
                    let mut r = run_record(v, Scenario::Tokensize, 900.0);
                    r.claims_padding_bytes = Some(*pad as u64);
                    send(Record::Run(Box::new(r)))?;
                }
                Step::Scale(v, entries) => {
                    send(Record::Scale(ScaleRecord {
                        strategy: v.clone(),
                        variant: v.clone(),
                        entry_kind: "session".into(),
                        entries: *entries as u64,
                        used_memory_before: 0,
                        used_memory_after: 300 * *entries as u64,
                        bytes_per_entry: 300.0,
                        seed_seconds: 0.1,
                        tokens_sampled: 16,
                        throughput_rps: 900.0,
                        latency_p50_us: 100.0,
                        latency_p99_us: 200.0,
                        server_rss_bytes: None,
                        server_start_seconds: None,
                    }))?;
                    send(Record::Run(Box::new(run_record(v, Scenario::Scale, 900.0))))?;
                }
            }
            if let Some((at, flag)) = &self.interrupt_at
                && at == step
            {
                flag.store(true, Ordering::SeqCst);
            }
            Ok(())
        }
    }
}
