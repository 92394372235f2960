//! The `sweep` scenario: open loop at increasing fractions of the closed-loop maximum, latency
//! from each request's intended send time, and where it turns up (the knee).

use super::rate::{open_loop, open_record};
use super::{Event, Knobs, MeLoad, Sink, Subject, steady};
use crate::results::{Record, Scenario, SweepSummary};

/// Open loop at fractions of `max_rps`: one record per step, handed to `sink` as measured,
/// and the knee.
pub fn sweep(
    subject: &Subject,
    knobs: &Knobs,
    load: &MeLoad,
    max_rps: f64,
    sink: Sink<'_>,
) -> anyhow::Result<SweepSummary> {
    let plan = &knobs.plan;
    let mut offered = Vec::new();
    let mut p99 = Vec::new();
    let mut achieved = Vec::new();
    for &fraction in &plan.sweep_fractions {
        if knobs.cancelled() {
            break;
        }
        let rate = (max_rps * fraction).max(1.0);
        let (outcome, costs) = open_loop(subject, knobs, load, rate, plan.sweep_warmup, plan.sweep_step)?;
        let record = open_record(subject, knobs, Scenario::Sweep, &outcome, &costs, rate, load.token_bytes);
        offered.push(rate);
        p99.push(record.latency_us.p99);
        achieved.push(outcome.achieved_rps());
        sink(Event::Record(Record::Run(Box::new(record))))?;
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

/// The closed-loop maximum the steps are fractions of, when steady did not measure it: one
/// repetition as long as a step.
pub fn probe_max(subject: &Subject, knobs: &Knobs, load: &MeLoad) -> anyhow::Result<f64> {
    let mut probe = knobs.clone();
    probe.plan.repetitions = 1;
    probe.plan.steady_duration = knobs.plan.sweep_step;
    Ok(steady(subject, &probe, load, Scenario::Steady)?.throughput_rps.median)
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
