//! Measuring in rounds: every configuration (a variant, or a variant at one rtt or claim size)
//! runs on servers started once, and each round measures every configuration once, in a
//! shuffled order, so the drift of a shared machine hits all of them alike. A figure is then
//! the median over the rounds with its 95 % interval, and two configurations' ratio is taken
//! round by round.
//!
//! Two kinds of window, each with its warm-up on the same connections and no gap before the
//! measured part: a closed loop (capacity: `steady`, and the rtt and tokensize points), in
//! every round; then an open loop at one rate common to every configuration (`cost`), in as many
//! rounds again, at half the lowest capacity the closed rounds saw.
//! Costs are read at the edges of the measured part only, from a thread that wakes there.

use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;

use super::{Event, Knobs, MeLoad, Sink, Subject, record, status_counts};
use crate::engine::{self, Keep, LoadOutcome, LoadSpec, Schedule};
use crate::observe::{CostSnapshot, Costs, NoiseWatch, NoiseWindow, StoreProbe};
use crate::plan::{COST_FRACTION, NOISE_RETRIES, NOISE_THRESHOLD};
use crate::results::{Estimate, NoiseSample, Percentiles, RunRecord, Scenario, Spread};

/// One configuration measured in the rounds.
#[derive(Debug, Clone, Copy)]
pub struct Cell<'a> {
    pub subject: &'a Subject,
    pub load: &'a MeLoad,
    /// How progress names it (`session`, `session at 1 ms`).
    pub label: &'a str,
}

/// Which windows each round measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Windows {
    /// The closed loop (capacity), recorded as this scenario (steady, rtt, tokensize).
    pub closed: Option<Scenario>,
    /// The open loop at the common rate (the cost scenario).
    pub cost: bool,
}

/// What one window measured, per round.
#[derive(Debug, Clone, Default)]
struct Round {
    throughput: f64,
    p50_us: f64,
    p99_us: f64,
    server_ns: Option<f64>,
    redis_ns: Option<f64>,
    generator_ns: Option<f64>,
    costs: Costs,
    busy: Option<f64>,
    flagged: bool,
}

/// One cell's windows of one kind over every round: per-round figures and the merged load.
#[derive(Debug, Default)]
struct Series {
    rounds: Vec<Round>,
    merged: Option<LoadOutcome>,
    /// Windows measured again because other processes loaded the machine.
    repeated: u32,
}

impl Series {
    fn add(&mut self, outcome: LoadOutcome, costs: Costs, knobs: &Knobs) {
        let latency = Percentiles::of(&outcome.latency);
        let ns = |us: Option<f64>| us.map(|u| u * 1e3);
        self.rounds.push(Round {
            throughput: outcome.throughput(),
            p50_us: latency.p50,
            p99_us: latency.p99,
            server_ns: ns(costs.server_cpu_us_per_request),
            redis_ns: ns(costs.redis_cpu_us_per_request),
            generator_ns: ns(outcome.generator.cpu_us_per_request()),
            busy: outcome.generator.busiest(),
            flagged: super::generator_limited(&outcome, knobs.generator_bound_threshold),
            costs,
        });
        match &mut self.merged {
            Some(m) => m.merge(outcome),
            None => self.merged = Some(outcome),
        }
    }

    fn estimate(&self, field: impl Fn(&Round) -> Option<f64>) -> Option<Estimate> {
        let values: Option<Vec<f64>> = self.rounds.iter().map(field).collect();
        values.and_then(|v| Estimate::of(&v))
    }

    fn mean(&self, field: impl Fn(&Round) -> Option<f64>) -> Option<f64> {
        let values: Vec<f64> = self.rounds.iter().filter_map(field).collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }

    /// Flagged when the generator set the pace in more than half the rounds.
    fn generator_bound(&self) -> bool {
        2 * self.rounds.iter().filter(|r| r.flagged).count() > self.rounds.len()
    }
}

/// A small, seedable shuffle (splitmix64): the order of a round need not be cryptographic, only
/// different from round to round and reproducible from the seed the method records.
#[derive(Debug, Clone)]
pub struct Shuffle(u64);

impl Shuffle {
    pub fn from_clock() -> Self {
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Self(nanos)
    }

    fn next(&mut self) -> u64 {
        engine::population::splitmix64(&mut self.0)
    }

    /// A number in (0, 1].
    pub fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// A random order of `0..n` (Fisher–Yates).
    pub fn order(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        order
    }
}

/// The per-cell results of [`measure`], turned into records by [`closed_record`] and
/// [`cost_record`].
#[derive(Debug, Default)]
pub struct Measured {
    closed: Vec<Series>,
    cost: Vec<Series>,
    /// The common rate of the cost windows, when they ran.
    pub rate: Option<f64>,
    /// Every window the noise monitor watched, repeats included.
    pub noise: Vec<NoiseSample>,
    /// Noisy windows that may still be measured again: a tenth of the windows planned (at
    /// least two), so a machine that stays busy costs a tenth more time, not three times as much.
    repeats_left: u32,
    /// Whether a noisy window was kept because no repeat was left.
    pub kept_noisy: u32,
}

/// Runs `knobs.plan.repetitions` rounds over `cells`. The cost windows' rate is `rate` when
/// given, else [`COST_FRACTION`] of the lowest closed-loop rate any cell showed in any round.
pub fn measure(
    cells: &[Cell<'_>],
    windows: Windows,
    rate: Option<f64>,
    knobs: &Knobs,
    sink: Sink<'_>,
) -> anyhow::Result<Measured> {
    let plan = &knobs.plan;
    let rounds = plan.repetitions.max(1);
    let mut shuffle = Shuffle::from_clock();
    let mut m = Measured {
        closed: cells.iter().map(|_| Series::default()).collect(),
        cost: cells.iter().map(|_| Series::default()).collect(),
        rate,
        noise: Vec::new(),
        repeats_left: 0,
        kept_noisy: 0,
    };
    let kinds = u32::from(windows.closed.is_some()) + u32::from(windows.cost);
    m.repeats_left = (cells.len() as u32 * rounds * kinds / 10).max(2);
    for round in 0..rounds {
        if let Some(scenario) = windows.closed {
            for i in shuffle.order(cells.len()) {
                let (Some(cell), Some(series)) = (cells.get(i), m.closed.get_mut(i)) else { continue };
                if knobs.cancelled() {
                    return Ok(m);
                }
                sink(Event::Status(format!("round {}/{rounds}: {} {}", round + 1, cell.label, scenario.as_str())))?;
                let spec = knobs.spec_for(cell.subject, cell.load.templates.clone(), plan.warmup, plan.steady_duration);
                let label = format!("{} {} round {}", cell.label, scenario.as_str(), round + 1);
                let mut watch =
                    Watch { series, noise: &mut m.noise, left: &mut m.repeats_left, kept: &mut m.kept_noisy };
                let (outcome, costs) = watched(cell.subject, &spec, knobs, &label, &mut watch, sink)?;
                series.add(outcome, costs, knobs);
            }
        }
    }
    if !windows.cost {
        return Ok(m);
    }
    // The common rate: a share of the lowest capacity any cell showed in any round. A shared
    // machine switches between speeds (a variant measured 41.6k and 67.8k req/s in rounds of
    // one run); a share of a fast round's capacity left a variant queueing at the common rate
    // in its slow rounds.
    let rate = match m.rate {
        Some(rate) => rate,
        None => {
            let slowest =
                m.closed.iter().flat_map(|s| s.rounds.iter()).map(|r| r.throughput).fold(f64::INFINITY, f64::min);
            let slowest = if slowest.is_finite() { slowest } else { probe_slowest(cells, knobs, sink)? };
            let rate = (slowest * COST_FRACTION).max(1.0).round();
            m.rate = Some(rate);
            rate
        }
    };
    for round in 0..rounds {
        for i in shuffle.order(cells.len()) {
            let (Some(cell), Some(series)) = (cells.get(i), m.cost.get_mut(i)) else { continue };
            if knobs.cancelled() {
                return Ok(m);
            }
            sink(Event::Status(format!("round {}/{rounds}: {} cost at {rate:.0} req/s", round + 1, cell.label)))?;
            let mut spec =
                knobs.spec_for(cell.subject, cell.load.templates.clone(), plan.cost_warmup, plan.cost_duration);
            spec.schedule = Schedule::Open { rate };
            spec.max_connections = plan.rate_connection_limit;
            let label = format!("{} cost round {}", cell.label, round + 1);
            let mut watch = Watch { series, noise: &mut m.noise, left: &mut m.repeats_left, kept: &mut m.kept_noisy };
            let (outcome, costs) = watched(cell.subject, &spec, knobs, &label, &mut watch, sink)?;
            series.add(outcome, costs, knobs);
        }
    }
    Ok(m)
}

/// The slowest cell's closed-loop rate, by a short probe of each (when no closed windows ran).
fn probe_slowest(cells: &[Cell<'_>], knobs: &Knobs, sink: Sink<'_>) -> anyhow::Result<f64> {
    let mut slowest = f64::INFINITY;
    for cell in cells {
        sink(Event::Status(format!("{}: probing the maximum for the common rate", cell.label)))?;
        let spec =
            knobs.spec_for(cell.subject, cell.load.templates.clone(), knobs.plan.warmup, knobs.plan.steady_duration);
        let outcome = engine::run(&spec, Keep::default(), &knobs.cancel)?;
        slowest = slowest.min(outcome.throughput());
    }
    anyhow::ensure!(slowest.is_finite() && slowest > 0.0, "no cell answered the probe for the common rate");
    Ok(slowest)
}

/// What a watched window accounts to: its series' repeats, the run's noise samples, and the
/// repeats left in the budget.
struct Watch<'m> {
    series: &'m mut Series,
    noise: &'m mut Vec<NoiseSample>,
    left: &'m mut u32,
    kept: &'m mut u32,
}

/// One window, measured again (at most [`NOISE_RETRIES`] times, while the run's budget of
/// repeats lasts) while other processes used more than [`NOISE_THRESHOLD`] CPUs of the machine;
/// the last measurement is kept, noisy or not, and every one is accounted for in `noise`.
fn watched(
    subject: &Subject,
    spec: &LoadSpec,
    knobs: &Knobs,
    label: &str,
    watch: &mut Watch<'_>,
    sink: Sink<'_>,
) -> anyhow::Result<(LoadOutcome, Costs)> {
    let mut attempt = 0;
    loop {
        let (outcome, costs, window) = bracketed(subject, spec, knobs, None)?;
        let noisy = window.as_ref().is_some_and(|w| w.above(NOISE_THRESHOLD));
        let again = noisy && attempt < NOISE_RETRIES && *watch.left > 0 && !knobs.cancelled();
        if let Some(w) = &window {
            watch.noise.push(w.sample(label, again));
        }
        if !again {
            if noisy {
                *watch.kept += 1;
            }
            return Ok((outcome, costs));
        }
        watch.series.repeated += 1;
        *watch.left -= 1;
        attempt += 1;
        let foreign = window.map_or(0.0, |w| w.foreign_cpu);
        sink(Event::Status(format!("{label}: other processes used {foreign:.2} CPU, measuring again")))?;
    }
}

/// One load whose costs (and the machine's other load) are read exactly at the edges of its
/// measured window (after the warm-up, on the same connections). Its clock starts at `t0`
/// when given (a load going on from the one before), else shortly.
pub(super) fn bracketed(
    subject: &Subject,
    spec: &LoadSpec,
    knobs: &Knobs,
    t0: Option<Instant>,
) -> anyhow::Result<(LoadOutcome, Costs, Option<NoiseWindow>)> {
    // The engine opens its connections before its clock starts; 200 ms is ample on loopback.
    let t0 = t0.unwrap_or_else(|| Instant::now() + Duration::from_millis(200));
    let start = t0 + spec.warmup;
    let end = start + spec.duration;
    let pids = subject.pids();
    let store = subject.store.clone();
    // Ours: the servers, their store and this process (the generator).
    let mut ours = pids.clone();
    ours.extend(store.iter().flat_map(StoreProbe::pids));
    ours.push(std::process::id());
    let cancel = knobs.cancel.clone();
    let reader = std::thread::Builder::new().name("authbench-costs".into()).spawn(move || {
        let wait = |until: Instant| {
            while Instant::now() < until && !cancel.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
            }
        };
        wait(start);
        let before = CostSnapshot::take(&pids, store.as_ref());
        let watch = NoiseWatch::start(&ours);
        wait(end);
        let noise = watch.finish();
        let after = CostSnapshot::take(&pids, store.as_ref());
        (before, after, noise)
    })?;
    let outcome = engine::run(spec, Keep { start_at: Some(t0), ..Keep::default() }, &knobs.cancel);
    let (before, after, noise) = reader.join().map_err(|_| anyhow::anyhow!("the cost reader panicked"))?;
    let outcome = outcome?;
    let costs = Costs::between(&before, &after, outcome.requests);
    Ok((outcome, costs, noise))
}

fn merged_latency(series: &Series) -> Histogram<u64> {
    series.merged.as_ref().map_or_else(crate::results::new_histogram, |m| m.latency.clone())
}

/// What every record measured in rounds carries: per-round throughput with its interval, the
/// merged load's counts, per-round costs as means and as estimates, and latency over every round.
fn series_record(
    series: &Series,
    outcome: &LoadOutcome,
    cell: &Cell<'_>,
    scenario: Scenario,
    knobs: &Knobs,
) -> RunRecord {
    let rounds = series.rounds.len() as u32;
    let mut commands = std::collections::BTreeMap::new();
    for r in &series.rounds {
        for (k, v) in &r.costs.redis_commands {
            *commands.entry(k.clone()).or_insert(0) += v;
        }
    }
    RunRecord {
        connections: knobs.plan.connections,
        repetitions: rounds,
        rounds: Some(rounds),
        throughput_rps: Spread::of(&series.rounds.iter().map(|r| r.throughput).collect::<Vec<_>>()),
        requests: outcome.requests,
        errors: outcome.failures(),
        status_counts: status_counts(outcome),
        redis_commands_per_request: series.mean(|r| r.costs.redis_commands_per_request),
        redis_bytes_per_request: series.mean(|r| r.costs.redis_bytes_per_request),
        redis_commands: commands,
        server_cpu_us_per_request: series.mean(|r| r.costs.server_cpu_us_per_request),
        redis_cpu_us_per_request: series.mean(|r| r.costs.redis_cpu_us_per_request),
        generator_cpu_us_per_request: series.mean(|r| r.generator_ns.map(|n| n / 1e3)),
        generator_busy: series.rounds.iter().filter_map(|r| r.busy).reduce(f64::max),
        server_cpu_ns_per_request: series.estimate(|r| r.server_ns),
        redis_cpu_ns_per_request: series.estimate(|r| r.redis_ns),
        generator_cpu_ns_per_request: series.estimate(|r| r.generator_ns),
        latency_p50_us: series.estimate(|r| Some(r.p50_us)),
        latency_p99_us: series.estimate(|r| Some(r.p99_us)),
        token_bytes: Some(cell.load.token_bytes),
        generator_bound: series.generator_bound(),
        noisy_windows: Some(series.repeated),
        ..record(cell.subject, scenario, &merged_latency(series))
    }
}

/// The closed-loop record of cell `i` (steady, or an rtt or tokensize point): throughput per
/// round with its interval, latency over every round, costs per round.
pub fn closed_record(m: &Measured, i: usize, cell: &Cell<'_>, scenario: Scenario, knobs: &Knobs) -> Option<RunRecord> {
    let series = m.closed.get(i).filter(|s| !s.rounds.is_empty())?;
    let outcome = series.merged.as_ref()?;
    Some(RunRecord {
        warmup_s: knobs.plan.warmup.as_secs_f64(),
        duration_s: knobs.plan.steady_duration.as_secs_f64(),
        ..series_record(series, outcome, cell, scenario, knobs)
    })
}

/// The cost record of cell `i`: CPU per request of server, Redis and generator at the common
/// rate, per round, with latency from the intended send time (the open-loop fields as every
/// open-loop record has them, [`super::rate::open_fields`]).
pub fn cost_record(m: &Measured, i: usize, cell: &Cell<'_>, knobs: &Knobs) -> Option<RunRecord> {
    let series = m.cost.get(i).filter(|s| !s.rounds.is_empty())?;
    let outcome = series.merged.as_ref()?;
    let rate = m.rate?;
    let base = series_record(series, outcome, cell, Scenario::Cost, knobs);
    Some(RunRecord {
        rate_rps: Some(rate),
        warmup_s: knobs.plan.cost_warmup.as_secs_f64(),
        duration_s: knobs.plan.cost_duration.as_secs_f64(),
        redis_commands: std::collections::BTreeMap::new(),
        generator_bound: base.generator_bound || outcome.dropped > 0,
        ..super::rate::open_fields(outcome, rate, base)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_round_visits_every_cell_once_in_changing_orders() {
        let mut shuffle = Shuffle(7);
        let orders: Vec<Vec<usize>> = (0..6).map(|_| shuffle.order(8)).collect();
        for order in &orders {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..8).collect::<Vec<_>>());
        }
        assert!(orders.windows(2).any(|w| w[0] != w[1]), "the order changes between rounds");
    }
}
