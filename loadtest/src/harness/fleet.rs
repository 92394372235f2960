//! The seam between the orchestration and the processes it measures (as hyperfine's
//! `Executor` sits between its scheduler and the commands it times). The orchestration decides
//! *what* is measured and in which order ([`steps`]), writes every record the moment it
//! arrives, stops on Ctrl-C and passes errors on; a [`Fleet`] does each measurement. The real
//! fleets start servers and Redis (`local`) or aim at someone else's server (`remote`); the
//! tests drive the orchestration over a fake one (`fake.rs`) in milliseconds.

use std::fmt;

use anyhow::Context as _;

use super::progress::Progress;
use crate::plan::{NOISE_THRESHOLD, SuitePlan};
use crate::present::terminal;
use crate::results::{Fault, Record, ResultsWriter, Scenario};
use crate::scenario::rounds::{self, Cell, Windows};
use crate::scenario::{self, Event, Knobs, MeLoad, Sink, Subject};

/// One measurement of a run, named by the variant it measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The generator (and wrk) against baseline.
    Calibration,
    /// Steady (capacity) and cost (CPU at one common rate) of these variants, in rounds, on
    /// servers started once and kept until each variant's `Release`.
    Rounds(Vec<String>),
    Sweep(String),
    /// Open loop at a fixed rate (requests per second).
    Rate(String, f64),
    Login(String),
    /// The servers steady, sweep and login shared for this variant can go.
    Release(String),
    Revocation(String),
    Outage(String, Fault),
    /// Every rtt point (variant × round trip), in rounds.
    Rtt,
    /// Every tokensize point (variant × claim size), in rounds.
    Tokensize,
    /// One variant's population points, each on servers of its own.
    Population(String),
    Scale(String, usize),
}

impl Step {
    /// The variant the step measures, if any.
    pub fn variant(&self) -> Option<&str> {
        match self {
            Self::Calibration | Self::Rounds(_) | Self::Rtt | Self::Tokensize => None,
            Self::Sweep(v)
            | Self::Rate(v, _)
            | Self::Login(v)
            | Self::Release(v)
            | Self::Revocation(v)
            | Self::Outage(v, _)
            | Self::Population(v)
            | Self::Scale(v, _) => Some(v),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Calibration => write!(f, "calibration: engine and wrk against baseline"),
            Self::Rounds(vs) => write!(f, "steady and cost in rounds: {}", vs.join(", ")),
            Self::Sweep(v) => write!(f, "{v}: sweep"),
            Self::Rate(v, rate) => write!(f, "{v}: fixed rate, {rate} req/s"),
            Self::Login(v) => write!(f, "{v}: login flows"),
            Self::Release(v) => write!(f, "{v}: stopping its servers"),
            Self::Revocation(v) => write!(f, "{v}: revocation"),
            Self::Outage(v, fault) => write!(f, "{v}: outage, {}", fault.as_str()),
            Self::Rtt => write!(f, "rtt points in rounds"),
            Self::Tokensize => write!(f, "tokensize points in rounds"),
            Self::Population(v) => write!(f, "{v}: population"),
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

/// The steps of a plan, in order: calibration; steady and cost of every variant in rounds;
/// per variant its sweep and login (in the plan's order) on the servers the rounds started,
/// kept until `Release`, then its revocation on servers of its own; then outages, rtt and
/// tokensize points, and scale, which start their own.
pub fn steps(plan: &SuitePlan, calibrate: bool) -> Vec<Step> {
    let has = |s: Scenario| plan.scenarios.contains(&s);
    let mut steps = Vec::new();
    if calibrate {
        steps.push(Step::Calibration);
    }
    if has(Scenario::Steady) || has(Scenario::Cost) {
        steps.push(Step::Rounds(plan.variants.iter().map(|v| v.name.to_owned()).collect()));
    }
    for v in &plan.variants {
        steps.extend(subject_steps(plan, v.name, v.measures_revocation()));
    }
    if has(Scenario::Outage) {
        for v in plan.outage_variants() {
            steps.extend(plan.outage_faults(v).into_iter().map(|f| Step::Outage(v.name.to_owned(), f)));
        }
    }
    if has(Scenario::Rtt) && plan.variants.iter().any(|v| plan.measures_rtt(v)) {
        steps.push(Step::Rtt);
    }
    if has(Scenario::Tokensize) && plan.variants.iter().any(|v| plan.measures_tokensize(v)) {
        steps.push(Step::Tokensize);
    }
    if has(Scenario::Population) {
        steps.extend(
            plan.variants.iter().filter(|v| plan.measures_population(v)).map(|v| Step::Population(v.name.to_owned())),
        );
    }
    if has(Scenario::Scale) {
        for v in plan.variants.iter().filter(|v| plan.measures_scale(v)) {
            steps.extend(plan.scale_sizes.iter().map(|n| Step::Scale(v.name.to_owned(), *n)));
        }
    }
    steps
}

/// The steps of one subject (a variant, or the server `load` measures) after the rounds: its
/// sweep and login (and fixed rate) in the plan's order on servers kept until `Release`, then
/// its revocation.
pub fn subject_steps(plan: &SuitePlan, name: &str, measures_revocation: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    let rounds = plan.scenarios.iter().any(|s| matches!(s, Scenario::Steady | Scenario::Cost));
    for s in &plan.scenarios {
        match s {
            Scenario::Sweep => steps.push(Step::Sweep(name.to_owned())),
            Scenario::Rate => steps.extend(plan.rate.map(|r| Step::Rate(name.to_owned(), r))),
            Scenario::Login => steps.push(Step::Login(name.to_owned())),
            _ => {}
        }
    }
    if !steps.is_empty() || rounds {
        steps.push(Step::Release(name.to_owned()));
    }
    if plan.scenarios.contains(&Scenario::Revocation) && measures_revocation {
        steps.push(Step::Revocation(name.to_owned()));
    }
    steps
}

/// Steady and cost of `cells` in rounds, the same for every fleet: one record per cell and
/// scenario once every round ran (or Ctrl-C ended them), so the terminal prints one line each.
pub fn rounds_step(cells: &[Cell<'_>], knobs: &Knobs, sink: Sink<'_>) -> anyhow::Result<()> {
    let plan = &knobs.plan;
    let windows = Windows {
        closed: plan.scenarios.contains(&Scenario::Steady).then_some(Scenario::Steady),
        cost: plan.scenarios.contains(&Scenario::Cost),
    };
    let measured = rounds::measure(cells, windows, plan.rate, knobs, sink)?;
    sink(Event::Record(Record::Noise { threshold: NOISE_THRESHOLD, windows: measured.noise.clone() }))?;
    if measured.kept_noisy > 0 {
        sink(Event::Record(Record::Note(format!(
            "steady and cost: {} window(s) kept although other processes used more than {NOISE_THRESHOLD} CPU during them (the budget of repeats ran out or they stayed noisy): see noise.",
            measured.kept_noisy
        ))))?;
    }
    for (i, cell) in cells.iter().enumerate() {
        if let Some(record) = rounds::closed_record(&measured, i, cell, Scenario::Steady, knobs) {
            sink(Event::Record(Record::Run(Box::new(record))))?;
        }
    }
    for (i, cell) in cells.iter().enumerate() {
        if let Some(record) = rounds::cost_record(&measured, i, cell, knobs) {
            sink(Event::Record(Record::Run(Box::new(record))))?;
        }
    }
    Ok(())
}

/// Sweep, rate or login on a subject whose servers run, the same for every fleet; `load` (the
/// `/me` requests) is needed by sweep and rate only.
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
    for (i, step) in steps.iter().enumerate() {
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
        // The revocation scenario prints one line for the variant, from all its trials; rtt and
        // tokensize one per variant, from all its points.
        if let Step::Revocation(v) = step
            && let Some(line) = terminal::revocation_summary(&ctx.writer.results, v)
        {
            ctx.progress.println(line);
        }
        let points = match step {
            Step::Rtt => Some(Scenario::Rtt),
            Step::Tokensize => Some(Scenario::Tokensize),
            _ => None,
        };
        for line in points.map(|s| terminal::points_summary(&ctx.writer.results, s)).unwrap_or_default() {
            ctx.progress.println(line);
        }
        // Outage and scale: one line per variant after its last fault or size.
        let next = steps.get(i + 1);
        let line = match step {
            Step::Outage(v, _) if !matches!(next, Some(Step::Outage(w, _)) if w == v) => {
                terminal::outage_summary(&ctx.writer.results, v)
            }
            Step::Scale(v, _) if !matches!(next, Some(Step::Scale(w, _)) if w == v) => {
                terminal::scale_summary(&ctx.writer.results, v)
            }
            Step::Population(v) => terminal::population_summary(&ctx.writer.results, v),
            _ => None,
        };
        if let Some(line) = line {
            ctx.progress.println(line);
        }
    }
    Ok(())
}
