//! The guide's lines on the rtt and tokensize points: how much capacity a design keeps when
//! Redis moves away or its tokens grow, each a ratio taken round by round.

use super::{PADDING_BYTES, PADDING_KEEP, RTT_KEEP, RTT_MS, Requirement, at_least};
use crate::present::units::{ms, rate, ratio_interval};
use crate::results::{Estimate, Results, RunRecord, Scenario};

/// The ratio, round by round, of two points of one variant's scenario.
fn point_ratio(
    r: &Results,
    v: &str,
    scenario: Scenario,
    key: impl Fn(&RunRecord) -> bool,
    base: impl Fn(&RunRecord) -> bool,
) -> Option<(Estimate, f64, f64)> {
    let runs = r.runs_of(v, scenario);
    let far = runs.iter().find(|x| key(x))?;
    let near = runs.iter().find(|x| base(x))?;
    let ratio = far.throughput_rps.estimate()?.ratio_to(&near.throughput_rps.estimate()?)?;
    Some((ratio, near.throughput_rps.median, far.throughput_rps.median))
}

pub(super) fn rtt(r: &Results, variants: &[String]) -> Requirement {
    let mut line = Requirement::new(
        format!(
            "Keeps {:.0} % of its capacity with its store {} away (rtt scenario, ratio taken round by round).",
            RTT_KEEP * 100.0,
            ms(RTT_MS)
        ),
        "the rtt scenario did not run",
    );
    let at = |t: f64| move |x: &RunRecord| x.redis_rtt_ms.is_some_and(|m| (m - t).abs() < 1e-9);
    for v in variants {
        if let Some((ratio, near, far)) = point_ratio(r, v, Scenario::Rtt, at(RTT_MS), at(0.0)) {
            line.add(
                v,
                at_least(&ratio, RTT_KEEP),
                format!("{} → {} req/s, {}", rate(near), rate(far), ratio_interval(ratio.median, ratio.ci95)),
            );
        }
    }
    line
}

pub(super) fn tokensize(r: &Results, variants: &[String]) -> Requirement {
    let mut line = Requirement::new(
        format!(
            "{} B of extra claims costs less than {:.0} % of capacity (tokensize scenario, ratio taken round by round).",
            PADDING_BYTES,
            (1.0 - PADDING_KEEP) * 100.0
        ),
        "the tokensize scenario did not run",
    );
    let at = |p: u64| move |x: &RunRecord| x.claims_padding_bytes == Some(p);
    for v in variants {
        if let Some((ratio, near, far)) = point_ratio(r, v, Scenario::Tokensize, at(PADDING_BYTES), at(0)) {
            let bytes = |p: u64| {
                r.runs_of(v, Scenario::Tokensize)
                    .into_iter()
                    .find(|x| x.claims_padding_bytes == Some(p))
                    .and_then(|x| x.token_bytes)
                    .unwrap_or(0)
            };
            line.add(
                v,
                at_least(&ratio, PADDING_KEEP),
                format!(
                    "{} → {} req/s, {}, token {} → {} B",
                    rate(near),
                    rate(far),
                    ratio_interval(ratio.median, ratio.ci95),
                    bytes(0),
                    bytes(PADDING_BYTES)
                ),
            );
        }
    }
    line
}
