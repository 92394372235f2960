//! The guide's line for the claim that a per-request session lookup needs an in-memory store
//! ("no database can take it"): each variant whose sessions live in PostgreSQL against `session`
//! on Redis, measured in the same rounds of this run. It meets when the database keeps at least
//! [`DB_CAPACITY_OF_REDIS`] of Redis's capacity (ratio taken round by round); its figures add what
//! the lookup costs, server plus store CPU per request and p99, at the rate both were offered.

use crate::results::{Estimate, Results, Scenario, Verdict};

use super::super::units::{ns, rate, ratio_interval, us};
use super::{Requirement, at_least, capabilities};

/// Share of the Redis session's capacity the database's must keep.
pub const DB_CAPACITY_OF_REDIS: f64 = 0.5;

/// The variant the database variants are compared with: sessions in Redis, one multiplexed
/// connection.
const REDIS_SESSION: &str = "session";

/// Server plus store CPU per request, round by round, in ns.
fn cpu_per_round(r: &Results, variant: &str) -> Option<Estimate> {
    let cost = r.run(variant, Scenario::Cost)?;
    let (server, store) = (cost.server_cpu_ns_per_request.as_ref()?, cost.redis_cpu_ns_per_request.as_ref()?);
    Estimate::of(&server.values.iter().zip(&store.values).map(|(a, b)| a + b).collect::<Vec<_>>())
}

pub fn database_lookup(r: &Results, variants: &[String]) -> Requirement {
    let mut line = Requirement::new(
        format!(
            "A session lookup per request in PostgreSQL keeps at least {:.0} % of the capacity of the same lookup in Redis (the claim that no database can take a lookup per request; ratio taken round by round).",
            DB_CAPACITY_OF_REDIS * 100.0
        ),
        "needs session (Redis) and a session-pg variant measured in the same rounds",
    );
    let Some(redis) = r.steady(REDIS_SESSION) else { return line };
    let Some(redis_capacity) = redis.throughput_rps.estimate() else { return line };
    let database = variants.iter().filter(|v| capabilities(r, v).is_some_and(|c| c.store == "postgres"));
    for v in database {
        let Some(s) = r.steady(v) else { continue };
        let Some(ratio) = s.throughput_rps.estimate().and_then(|e| e.ratio_to(&redis_capacity)) else { continue };
        let mut figures = vec![format!(
            "capacity {} vs {} req/s, {}",
            rate(s.throughput_rps.median),
            rate(redis.throughput_rps.median),
            ratio_interval(ratio.median, ratio.ci95)
        )];
        if let (Some(db), Some(kv)) = (cpu_per_round(r, v), cpu_per_round(r, REDIS_SESSION)) {
            let cpu = db.ratio_to(&kv).map(|c| format!(", {}", ratio_interval(c.median, c.ci95))).unwrap_or_default();
            figures.push(format!("server + store CPU {} vs {} per request{cpu}", ns(db.median), ns(kv.median)));
        }
        let p99 = |variant: &str| r.run(variant, Scenario::Cost)?.latency_p99_us.as_ref().map(|e| e.median);
        if let (Some(db), Some(kv), Some(at)) =
            (p99(v), p99(REDIS_SESSION), r.run(v, Scenario::Cost).and_then(|c| c.rate_rps))
        {
            figures.push(format!("p99 {} vs {} at {} req/s", us(db), us(kv), rate(at)));
        }
        let mut verdict = at_least(&ratio, DB_CAPACITY_OF_REDIS);
        // A generator-bound side's capacity is a floor, not the server's: it decides nothing.
        if s.generator_bound || redis.generator_bound {
            verdict = Verdict::Undecided;
            figures.push("generator-bound".into());
        }
        line.add(v, verdict, figures.join("; "));
    }
    line
}
