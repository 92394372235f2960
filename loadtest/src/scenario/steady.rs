//! The `steady` scenario: closed loop at full speed, `repetitions` times after a warm-up each:
//! the maximum rate, service-time latency, and costs per request bracketed by the counters.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Knobs, MeLoad, Subject, mean_of, record, status_counts};
use crate::engine::{self, Keep, LoadOutcome};
use crate::observe::{CostSnapshot, Costs};
use crate::results::{RunRecord, Scenario, Spread};

/// Closed loop, `repetitions` times: throughput spread and merged latency. `scenario` names
/// the record: `steady`, or the steady point of rtt, tokensize or scale.
pub fn steady(subject: &Subject, knobs: &Knobs, load: &MeLoad, scenario: Scenario) -> anyhow::Result<RunRecord> {
    let plan = &knobs.plan;
    let mut merged: Option<LoadOutcome> = None;
    let mut rates = Vec::new();
    let mut costs_per_rep = Vec::new();
    let mut commands = BTreeMap::new();
    for _ in 0..plan.repetitions {
        // Warm-up is its own short run, so the counters bracket the measured window only.
        let warm = knobs.spec_for(subject, load.templates.clone(), Duration::ZERO, plan.warmup);
        engine::run(&warm, Keep::default(), &knobs.cancel)?;
        let before = CostSnapshot::take(&subject.pids(), subject.store.as_ref());
        let spec = knobs.spec_for(subject, load.templates.clone(), Duration::ZERO, plan.steady_duration);
        let outcome = engine::run(&spec, Keep::default(), &knobs.cancel)?;
        let after = CostSnapshot::take(&subject.pids(), subject.store.as_ref());
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
        if knobs.cancelled() {
            break;
        }
    }
    let outcome = merged.ok_or_else(|| anyhow::anyhow!("no repetition ran"))?;
    let throughput = Spread::of(&rates);
    let generator_bound = super::generator_limited(&outcome, knobs.generator_bound_threshold);
    Ok(RunRecord {
        connections: plan.connections,
        repetitions: rates.len() as u32,
        warmup_s: plan.warmup.as_secs_f64(),
        duration_s: plan.steady_duration.as_secs_f64(),
        throughput_rps: throughput,
        requests: outcome.requests,
        errors: outcome.failures(),
        status_counts: status_counts(&outcome),
        redis_commands_per_request: mean_of(&costs_per_rep, |c| c.redis_commands_per_request),
        redis_bytes_per_request: mean_of(&costs_per_rep, |c| c.redis_bytes_per_request),
        redis_commands: commands,
        server_cpu_us_per_request: mean_of(&costs_per_rep, |c| c.server_cpu_us_per_request),
        redis_cpu_us_per_request: mean_of(&costs_per_rep, |c| c.redis_cpu_us_per_request),
        generator_cpu_us_per_request: outcome.generator.cpu_us_per_request(),
        generator_busy: outcome.generator.busiest(),
        token_bytes: Some(load.token_bytes),
        generator_bound,
        ..record(subject, scenario, &outcome.latency)
    })
}
