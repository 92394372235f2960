//! The `login` scenario: goose user flows (log in, call `/me`, log out) against the subject:
//! tokens issued per second, login latency, and the server's own split of a login's time.

use std::collections::BTreeMap;

use super::{Knobs, Subject, flow, record};
use crate::observe::{CostSnapshot, Costs};
use crate::results::{LoginSplit, RunRecord, Scenario, Spread};

/// Goose user flows: logins per second, login latency, argon2 and minting time.
pub async fn login(subject: &Subject, knobs: &Knobs) -> anyhow::Result<RunRecord> {
    let plan = &knobs.plan;
    let before = CostSnapshot::take(&subject.pids(), subject.store.as_ref());
    // Flow users are user100.. so they never log the steady scenario's users out.
    let outcome =
        flow::run_login_flows(subject.addr, plan.login_users, 100, &subject.password, plan.login_duration).await?;
    let after = CostSnapshot::take(&subject.pids(), subject.store.as_ref());
    let costs = Costs::between(&before, &after, outcome.logins);
    let window = outcome.window.as_secs_f64().max(1e-9);
    let rate = outcome.logins as f64 / window;
    let ms =
        |h: &hdrhistogram::Histogram<u64>, q: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1e6 };
    let us =
        |h: &hdrhistogram::Histogram<u64>, q: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1e3 };
    let mut status_counts = BTreeMap::new();
    status_counts.insert("login_ok".into(), outcome.logins);
    status_counts.insert("failed_steps".into(), outcome.failures);
    Ok(RunRecord {
        connections: plan.login_users,
        duration_s: outcome.window.as_secs_f64(),
        throughput_rps: Spread::of(&[rate]),
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
        login: Some(LoginSplit {
            samples: outcome.argon2.len(),
            argon2_ms_p50: ms(&outcome.argon2, 0.5),
            argon2_ms_p99: ms(&outcome.argon2, 0.99),
            mint_us_p50: us(&outcome.mint, 0.5),
            mint_us_p99: us(&outcome.mint, 0.99),
        }),
        ..record(subject, Scenario::Login, &outcome.login)
    })
}
