//! The rows of a variant's population points, paired by requests per access-token lifetime:
//! Redis commands per user request and server CPU per user request, both measured in rounds
//! and judged by their intervals. A run without population records reads "only in".

use super::judge::{COST, Figure, Judge, Measure, USER_COMMANDS};
use super::rows::estimate;
use crate::present::units::{ns, per_request, quantity};
use crate::results::{PopulationRun, Results, RunRecord, Scenario};

/// The end of the server CPU rows' names, by which the machine's drift is taken out of them.
pub(super) const CPU: &str = "CPU/user req";

/// The population point of `variant` at `key` requests per lifetime.
fn at<'r>(r: &'r Results, variant: &str, key: &str) -> Option<(&'r RunRecord, &'r PopulationRun)> {
    r.runs_of(variant, Scenario::Population)
        .into_iter()
        .filter_map(|x| Some((x, x.population.as_ref()?)))
        .find(|(_, p)| quantity(p.requests_per_lifetime) == key)
}

/// Commands per user request with its interval; 0 for a design that keeps no store.
fn commands(x: &RunRecord, p: &PopulationRun) -> Option<Figure> {
    match &p.redis_commands_per_user_request {
        Some(e) => Some(estimate(e, per_request)),
        None if x.capabilities.as_ref().is_some_and(|c| c.storeless()) => Some(Figure::new("0 (no store)".into(), 0.0)),
        None => None,
    }
}

/// Adds, for every requests-per-lifetime point of `variant` in A or B, its Redis commands and
/// server CPU per user request.
pub(super) fn rows(a: &Results, b: &Results, v: &str, add: &mut dyn for<'m> FnMut(String, Judge, &'m Measure<'m>)) {
    let keys = |r: &Results| -> Vec<(f64, String)> {
        r.runs_of(v, Scenario::Population)
            .into_iter()
            .filter_map(|x| x.population.as_ref())
            .map(|p| (p.requests_per_lifetime, quantity(p.requests_per_lifetime)))
            .collect()
    };
    let mut points = super::rows::union(keys(a), keys(b));
    points.sort_by(|x, y| x.0.total_cmp(&y.0));
    for (_, k) in points {
        add(format!("population {k}/lifetime: cmd/user req"), USER_COMMANDS, &|r| {
            at(r, v, &k).and_then(|(x, p)| commands(x, p))
        });
        add(format!("population {k}/lifetime: {CPU}"), COST, &|r| {
            at(r, v, &k).and_then(|(x, _)| x.server_cpu_ns_per_request.as_ref()).map(|e| estimate(e, ns))
        });
    }
}
