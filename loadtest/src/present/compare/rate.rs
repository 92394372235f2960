//! The rows of a variant's fixed-rate runs (`rate` records), paired by the rate offered: what
//! was achieved, p99 from the intended send time, and the sends the generator dropped. A run
//! from before schema 6 has no rate records, so its side reads "only in".

use super::judge::{ACHIEVED, COUNTED, Figure, Judge, LATENCY, Measure};
use super::{GENERATOR_BOUND, NOT_SERVERS};
use crate::present::units::{rate, us};
use crate::results::{Results, RunRecord, Scenario};

/// The rate record of `variant` offered `offered` req/s (the key printed in the row's name).
fn at<'r>(r: &'r Results, variant: &str, offered: &str) -> Option<&'r RunRecord> {
    r.runs_of(variant, Scenario::Rate).into_iter().find(|x| key(x) == offered)
}

fn key(x: &RunRecord) -> String {
    x.offered_rps.map_or_else(|| "?".to_owned(), rate)
}

/// Adds, for every rate offered to `variant` in A or B, its achieved rate, p99 and drops.
pub(super) fn rows(a: &Results, b: &Results, v: &str, add: &mut dyn for<'m> FnMut(String, Judge, &'m Measure<'m>)) {
    let offered = |r: &Results| -> Vec<String> { r.runs_of(v, Scenario::Rate).into_iter().map(key).collect() };
    for k in super::rows::union(offered(a), offered(b)) {
        add(format!("rate {k} req/s: achieved req/s"), ACHIEVED, &|r| {
            at(r, v, &k).and_then(|x| {
                let achieved = x.achieved_rps?;
                let mark = if x.generator_bound { GENERATOR_BOUND } else { "" };
                Some(Figure::new(format!("{}{mark}", rate(achieved)), achieved))
            })
        });
        add(format!("rate {k} req/s: p99"), LATENCY, &|r| {
            at(r, v, &k).map(|x| {
                let mark = if x.latency_valid { "" } else { NOT_SERVERS };
                Figure::new(format!("{}{mark}", us(x.latency_us.p99)), x.latency_us.p99)
            })
        });
        add(format!("rate {k} req/s: dropped"), COUNTED, &|r| {
            at(r, v, &k).map(|x| {
                let n = x.dropped.unwrap_or(0);
                Figure::new(n.to_string(), n as f64)
            })
        });
    }
}
