//! The `rate` scenario: open loop at one fixed arrival rate (`--rate`, as wrk2's `-R`) for the
//! steady duration, every intended request accounted for; and the record every open-loop run
//! (rate, and each sweep step) makes of what the engine measured.

use std::time::Duration;

use super::{Knobs, MeLoad, Subject, record, status_counts};
use crate::engine::{self, Keep, LoadOutcome, Schedule};
use crate::observe::{CostSnapshot, Costs};
use crate::results::{Percentiles, RunRecord, Scenario, Spread};

/// Open loop at `rate` requests per second: a warm-up of the suite's length at the same rate,
/// then `steady_duration` measured.
pub fn rate(subject: &Subject, knobs: &Knobs, load: &MeLoad, rate: f64) -> anyhow::Result<RunRecord> {
    let plan = &knobs.plan;
    let (outcome, costs) = open_loop(subject, knobs, load, rate, plan.warmup, plan.steady_duration)?;
    Ok(open_record(subject, knobs, Scenario::Rate, &outcome, &costs, rate, load.token_bytes))
}

/// One open-loop run at `rate` against every instance of `subject`, with the servers' and
/// Redis's costs over it (warm-up included: per-request costs divide by every request sent).
pub(super) fn open_loop(
    subject: &Subject,
    knobs: &Knobs,
    load: &MeLoad,
    rate: f64,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<(LoadOutcome, Costs)> {
    let mut spec = knobs.spec_for(subject, load.templates.clone(), warmup, duration);
    spec.schedule = Schedule::Open { rate };
    spec.max_connections = knobs.plan.rate_connection_limit;
    let before = CostSnapshot::take(&subject.pids(), subject.store.as_ref());
    let outcome = engine::run(&spec, Keep::default(), &knobs.cancel)?;
    let after = CostSnapshot::take(&subject.pids(), subject.store.as_ref());
    let costs = Costs::between(&before, &after, outcome.generator.sent);
    Ok((outcome, costs))
}

/// The record of one open-loop run.
pub(super) fn open_record(
    subject: &Subject,
    knobs: &Knobs,
    scenario: Scenario,
    outcome: &LoadOutcome,
    costs: &Costs,
    rate: f64,
    token_bytes: u64,
) -> RunRecord {
    let warmup = match scenario {
        Scenario::Sweep => knobs.plan.sweep_warmup,
        _ => knobs.plan.warmup,
    };
    let base = RunRecord {
        connections: knobs.plan.connections,
        warmup_s: warmup.as_secs_f64(),
        duration_s: outcome.window.as_secs_f64(),
        throughput_rps: Spread::of(&[outcome.throughput()]),
        requests: outcome.requests,
        errors: outcome.failures(),
        status_counts: status_counts(outcome),
        redis_commands_per_request: costs.redis_commands_per_request,
        redis_bytes_per_request: costs.redis_bytes_per_request,
        redis_commands: costs.redis_commands.clone(),
        server_cpu_us_per_request: costs.server_cpu_us_per_request,
        redis_cpu_us_per_request: costs.redis_cpu_us_per_request,
        generator_cpu_us_per_request: outcome.generator.cpu_us_per_request(),
        generator_busy: outcome.generator.busiest(),
        token_bytes: Some(token_bytes),
        generator_bound: super::generator_limited(outcome, knobs.generator_bound_threshold),
        ..record(subject, scenario, &outcome.latency)
    };
    open_fields(outcome, rate, base)
}

/// The fields every open-loop record has, at `rate`, over `base`: what was offered, achieved
/// and dropped, every intended request's outcome, and the parts of the latency apart.
pub(super) fn open_fields(outcome: &LoadOutcome, rate: f64, base: RunRecord) -> RunRecord {
    RunRecord {
        schedule: "open".into(),
        offered_rps: Some(rate),
        achieved_rps: Some(outcome.achieved_rps()),
        dropped: Some(outcome.dropped),
        outcomes: outcome.outcomes(),
        latency_valid: outcome.latency_valid(),
        peak_connections: Some(outcome.peak_connections),
        connection_limit: Some(outcome.connection_limit),
        latency_basis: "intended_send_time".into(),
        service_latency_us: Some(Percentiles::of(&outcome.service)),
        pacer_lag_us: Some(Percentiles::of(&outcome.pacer_lag)),
        connection_wait_us: Some(Percentiles::of(&outcome.connection_wait)),
        ..base
    }
}
