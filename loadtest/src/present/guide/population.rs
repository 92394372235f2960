//! The guide's lines on clients like real ones (the population scenario): store commands per
//! *user* request at a given number of requests per token lifetime, the refreshes and logins
//! the clients added included.

use super::Requirement;
use crate::present::units::{interval, per_request, seconds};
use crate::results::{PopulationRun, Results, RunRecord, Scenario, Verdict};

/// The store traffic a line asks to stay under, commands per user request.
pub const STORE_PER_USER_REQUEST: f64 = 0.1;

/// Requests per lifetime the lines are asked at: a client that sends a request every minute
/// with 10-minute tokens, and one every 9 s with 15-minute tokens.
pub const AT_REQUESTS_PER_LIFETIME: [f64; 2] = [10.0, 100.0];

/// One line per [`AT_REQUESTS_PER_LIFETIME`].
pub(super) fn requirements(r: &Results, variants: &[String]) -> Vec<Requirement> {
    AT_REQUESTS_PER_LIFETIME.iter().map(|at| line(r, variants, *at)).collect()
}

fn line(r: &Results, variants: &[String], at: f64) -> Requirement {
    let mut line = Requirement::new(
        format!(
            "Fewer than {STORE_PER_USER_REQUEST} Redis commands per user request with real clients at {at:.0} requests \
             per token lifetime (population scenario: refreshes and logins included)."
        ),
        "the population scenario did not run",
    );
    for v in variants {
        let points: Vec<(&RunRecord, &PopulationRun)> =
            r.runs_of(v, Scenario::Population).into_iter().filter_map(|x| Some((x, x.population.as_ref()?))).collect();
        // A design measured at one lifetime only (its tokens outlive the run) has store traffic
        // that does not follow the lifetime: its one point answers for every lifetime.
        let point = match points.as_slice() {
            [one] => Some((*one, true)),
            many => many.iter().find(|(_, p)| (p.requests_per_lifetime / at - 1.0).abs() < 0.01).map(|x| (*x, false)),
        };
        let Some(((_, p), flat)) = point else { continue };
        let refreshes = p.per_user_request("refresh");
        let mut figures = match &p.redis_commands_per_user_request {
            Some(e) => format!("{} commands per user request", interval(e.median, e.ci95, per_request)),
            None => "no store".to_owned(),
        };
        if refreshes > 0.0 {
            figures.push_str(&format!(", {} refreshes per user request", per_request(refreshes)));
        }
        if flat {
            figures.push_str(&format!("; tokens of {}, which do not drive it", seconds(p.access_ttl_s)));
        }
        let verdict = match &p.redis_commands_per_user_request {
            None => Verdict::Meets,
            Some(e) if e.ci95[1] < STORE_PER_USER_REQUEST => Verdict::Meets,
            Some(e) if e.ci95[0] >= STORE_PER_USER_REQUEST => Verdict::Fails,
            Some(_) => Verdict::Undecided,
        };
        line.add(v, verdict, figures);
    }
    line
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::results::Estimate;

    /// The committed fixture with population records: refresh at 10 and 100 requests per
    /// lifetime, session at one, jwt without a store, versioned straddling the threshold.
    fn results() -> Results {
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results.json");
        let mut r = crate::results::load(&fixture).unwrap();
        let base = r.steady("session").unwrap().clone();
        let point = |variant: &str, at: f64, ttl: f64, commands: Option<&[f64]>, refreshes: u64| {
            let mut x = base.clone();
            x.variant = variant.into();
            x.scenario = Scenario::Population;
            x.population = Some(PopulationRun {
                users: 1000,
                user_rate_rps: 1.0,
                access_ttl_s: ttl,
                requests_per_lifetime: at,
                user_requests: 1000,
                extra_calls: [("refresh".to_owned(), refreshes)].into(),
                extra_calls_failed: Default::default(),
                extra_call_latency_us: Default::default(),
                redis_commands_per_user_request: commands.and_then(Estimate::of),
                expected_redis_commands_per_user_request: 0.0,
                expected_basis: String::new(),
                grace_s: None,
                seeding: String::new(),
            });
            x
        };
        r.runs.push(point("refresh", 10.0, 10.0, Some(&[0.35, 0.36, 0.37]), 90));
        r.runs.push(point("refresh", 100.0, 100.0, Some(&[0.036, 0.038, 0.04]), 9));
        r.runs.push(point("session", 3600.0, 3600.0, Some(&[1.0, 1.0, 1.0]), 0));
        r.runs.push(point("jwt", 3600.0, 3600.0, None, 0));
        r.runs.push(point("versioned-g1", 3600.0, 3600.0, Some(&[0.08, 0.09, 0.12]), 0));
        r
    }

    #[test]
    fn refresh_meets_the_line_only_where_its_tokens_last_for_enough_requests() {
        let r = results();
        let variants: Vec<String> = ["session", "jwt", "refresh", "versioned-g1"].map(String::from).to_vec();
        let [at_ten, at_hundred] = [line(&r, &variants, 10.0), line(&r, &variants, 100.0)];
        let verdict = |l: &Requirement, v: &str| l.of(v).map(|x| x.1);
        assert_eq!(verdict(&at_ten, "refresh"), Some(Verdict::Fails));
        assert_eq!(verdict(&at_hundred, "refresh"), Some(Verdict::Meets));
        for l in [&at_ten, &at_hundred] {
            assert_eq!(verdict(l, "session"), Some(Verdict::Fails), "one lookup per request whatever the lifetime");
            assert_eq!(verdict(l, "jwt"), Some(Verdict::Meets));
            assert_eq!(verdict(l, "versioned-g1"), Some(Verdict::Undecided), "its interval straddles 0.1");
        }
        assert!(at_hundred.of("refresh").unwrap().2.contains("0.0090 refreshes per user request"));
        assert!(at_ten.of("session").unwrap().2.contains("tokens of 1 h"));
        // Not measured at a lifetime the line asks about: no verdict, rather than a guess.
        assert_eq!(line(&r, &variants, 1000.0).of("refresh"), None);
    }
}
