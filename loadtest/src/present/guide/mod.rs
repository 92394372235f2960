//! The decision guide's verdicts: per requirement and variant, `meets`, `fails` or
//! `undecided`, each computed from this run's figures and printed with them. A figure measured
//! in rounds decides only when its 95 % interval lies wholly on one side of the threshold; a
//! ratio between two configurations is taken round by round. Counted figures (commands per
//! request, revoked tokens accepted, sessions lost) decide as they are. The report renders the
//! verdicts (`report/guide.rs`), `compare` lines two runs' up, and the harness stores them in
//! `results.json`.

mod points;
mod population;
mod store;

use crate::results::{
    Capabilities, Estimate, Fault, GuideEntry, Kind, OutageRecord, Results, RunRecord, Scenario, Side, Verdict,
};

use super::report::killed_and_restarted;
use super::units::{ms, pct, per_request, rate, ratio_interval};
use points::{rtt, tokensize};

/// Thresholds of the guide's requirements (the guide prints them with each line).
pub const REVOCATION_MS: f64 = 1000.0;
pub const THROUGHPUT_OF_BASELINE: f64 = 0.9;
pub const AVAILABLE: f64 = 0.99;
pub const KNEE_FRACTION: f64 = 0.75;
pub const RTT_MS: f64 = 1.0;
pub const RTT_KEEP: f64 = 0.75;
pub const PADDING_BYTES: u64 = 1024;
pub const PADDING_KEEP: f64 = 0.9;
/// Below this many store calls (Redis commands, PostgreSQL statements) per request, a design counts as having none on the request
/// path (a background follower's reads, or a versioned client's check once per grace window).
/// Those reads follow time and tokens, not requests, so their share moves with the rate: a
/// versioned design with a 1 s grace read 0.0009 per request at capacity and 0.0010 at the
/// common rate in the same run. A design on the request path reads at least 1; one in a
/// hundred leaves a factor of ten either side.
pub const NO_REDIS_PER_REQUEST: f64 = 0.01;

/// One requirement and its verdict per variant measured for it.
#[derive(Debug, Clone)]
pub struct Requirement {
    pub text: String,
    /// (variant, verdict, the figures that decided it).
    pub verdicts: Vec<(String, Verdict, String)>,
    /// Why nothing could be decided, when `verdicts` is empty.
    pub missing: String,
    /// A caveat printed with the line (e.g. a generator-bound baseline).
    pub caveat: Option<String>,
}

impl Requirement {
    fn new(text: impl Into<String>, missing: impl Into<String>) -> Self {
        Self { text: text.into(), verdicts: Vec::new(), missing: missing.into(), caveat: None }
    }

    fn add(&mut self, variant: &str, verdict: Verdict, figures: String) {
        self.verdicts.push((variant.to_owned(), verdict, figures));
    }

    fn of(&self, variant: &str) -> Option<&(String, Verdict, String)> {
        self.verdicts.iter().find(|v| v.0 == variant)
    }
}

/// Every (requirement, variant) verdict, flat, as `results.json` keeps them.
pub fn entries(r: &Results) -> Vec<GuideEntry> {
    requirements(r)
        .into_iter()
        .flat_map(|req| {
            req.verdicts.into_iter().map(move |(variant, verdict, figures)| GuideEntry {
                requirement: req.text.clone(),
                variant,
                verdict,
                figures,
            })
        })
        .collect()
}

/// The variants of a run, in the order they were first measured.
fn variants(r: &Results) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let names = r
        .runs
        .iter()
        .map(|x| &x.variant)
        .chain(r.revocation.iter().map(|x| &x.variant))
        .chain(r.outage.iter().map(|x| &x.variant))
        .chain(r.scale.iter().map(|x| &x.variant));
    for name in names {
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// `meets` when the interval lies wholly at or above `threshold`, `fails` when wholly below.
fn at_least(e: &Estimate, threshold: f64) -> Verdict {
    match e.against(threshold) {
        Side::Above => Verdict::Meets,
        Side::Below => Verdict::Fails,
        Side::Straddles if e.ci95[0] == threshold => Verdict::Meets,
        Side::Straddles => Verdict::Undecided,
    }
}

/// Both requirements: fails if either fails, meets if both meet.
fn both(a: Verdict, b: Verdict) -> Verdict {
    match (a, b) {
        (Verdict::Fails, _) | (_, Verdict::Fails) => Verdict::Fails,
        (Verdict::Meets, Verdict::Meets) => Verdict::Meets,
        _ => Verdict::Undecided,
    }
}

/// The guide, requirement by requirement.
pub fn requirements(r: &Results) -> Vec<Requirement> {
    let variants = variants(r);
    let mut lines = Vec::new();
    let rev1 = revocation(r, &variants, 1);
    let rev2 = revocation(r, &variants, 2);
    let no_redis = no_redis(r, &variants);
    // The combination people argue about: fast revocation without a store lookup per request.
    let mut combined = Requirement::new(
        format!("Revocation within {} and no store call per request, both.", ms(REVOCATION_MS)),
        "needs both the revocation and the steady scenario",
    );
    for v in &variants {
        if let (Some(a), Some(b)) = (rev1.of(v), no_redis.of(v)) {
            combined.add(v, both(a.1, b.1), format!("{}; {}", a.2, b.2));
        }
    }
    lines.extend([rev1, rev2, no_redis, combined]);
    lines.push(throughput(r, &variants));
    lines.push(store::database_lookup(r, &variants));
    lines.push(knee(r, &variants));
    lines.push(available(&variants, "while its store hangs", |v| r.outage(v, Fault::Hang)));
    lines.push(available(&variants, "while its store is down", |v| killed_and_restarted(r, v)));
    lines.extend(outage_safety(r, &variants));
    lines.push(memory(r, &variants));
    lines.push(rtt(r, &variants));
    lines.push(tokensize(r, &variants));
    lines.extend(population::requirements(r, &variants));
    lines
}

fn revocation(r: &Results, variants: &[String], instances: u32) -> Requirement {
    let loaded = r.revocation.iter().any(|x| x.instances == instances && x.background.is_some());
    let under = if loaded { ", under half the steady maximum of load" } else { "" };
    let mut line = Requirement::new(
        if instances == 1 {
            format!(
                "Every revocation kind takes effect within {} (revoke and probe on one instance{under}).",
                ms(REVOCATION_MS)
            )
        } else {
            format!(
                "Every revocation kind takes effect within {} across {instances} instances (revoke on A, probe on B{under}).",
                ms(REVOCATION_MS)
            )
        },
        if instances == 1 { "the revocation scenario did not run" } else { "no two-instance revocation was measured" },
    );
    for v in variants {
        // Every trial of every kind whose token worked before the revoke.
        let trials: Vec<_> = r
            .revocation
            .iter()
            .filter(|x| &x.variant == v && x.instances == instances && x.accepted_before_revoke > 0)
            .collect();
        if trials.is_empty() {
            continue;
        }
        let kinds = Kind::ALL.iter().filter(|k| trials.iter().any(|t| t.kind == **k)).count();
        let worst = trials.iter().max_by(|a, b| {
            let key = |w: Option<f64>| w.unwrap_or(f64::INFINITY);
            key(a.window_ms).total_cmp(&key(b.window_ms))
        });
        let Some(worst) = worst else { continue };
        let n = trials.len();
        let of = if n == kinds { format!("{kinds} kinds") } else { format!("{n} trials of {kinds} kinds") };
        match worst.window_ms {
            None => line.add(v, Verdict::Fails, format!("{} still accepted at the probing cap", worst.kind.as_str())),
            Some(w) if w > REVOCATION_MS => {
                line.add(v, Verdict::Fails, format!("worst {} for {}, over {of}", ms(w), worst.kind.as_str()))
            }
            Some(w) => {
                // A design whose settings allow a longer window than any trial happened to show
                // cannot be said to meet the bound from a few draws.
                let bound = trials.iter().filter_map(|t| t.expected_bound_ms).reduce(f64::max);
                match bound {
                    Some(b) if b > REVOCATION_MS => line.add(
                        v,
                        Verdict::Undecided,
                        format!("worst {} over {of}, but its settings allow up to {}", ms(w), ms(b)),
                    ),
                    _ => line.add(v, Verdict::Meets, format!("worst {} over {of}", ms(w))),
                }
            }
        }
    }
    line
}

/// The record a per-request figure is read from: the cost scenario's, else steady's.
fn per_request_run<'a>(r: &'a Results, v: &str) -> Option<&'a RunRecord> {
    r.steady(v).or_else(|| r.run(v, Scenario::Cost))
}

fn no_redis(r: &Results, variants: &[String]) -> Requirement {
    let mut line = Requirement::new(
        format!(
            "No store call on the request path (Redis command or PostgreSQL statement): fewer than 1 per {:.0} requests (GET /me).",
            1.0 / NO_REDIS_PER_REQUEST
        ),
        "neither the steady nor the cost scenario ran",
    );
    for v in variants {
        if let Some(c) = per_request_run(r, v).and_then(super::report::redis_per_request) {
            let verdict = if c < NO_REDIS_PER_REQUEST { Verdict::Meets } else { Verdict::Fails };
            line.add(v, verdict, format!("{} calls/request", per_request(c)));
        }
    }
    line
}

fn throughput(r: &Results, variants: &[String]) -> Requirement {
    let mut line = Requirement::new(
        format!(
            "Capacity at least {:.0} % of baseline's (closed loop, ratio taken round by round).",
            THROUGHPUT_OF_BASELINE * 100.0
        ),
        "the steady scenario did not run for baseline and the others",
    );
    let Some(base) = r.steady("baseline") else { return line };
    let Some(base_e) = base.throughput_rps.estimate() else { return line };
    let mut caveats = Vec::new();
    if base.generator_bound {
        caveats.push(format!(
            "baseline measured {} req/s and is generator-bound: its true ceiling is higher, so a ratio is an upper bound and cannot show the requirement met.",
            rate(base.throughput_rps.median)
        ));
    }
    for v in variants.iter().filter(|v| v.as_str() != "baseline") {
        let Some(s) = r.steady(v) else { continue };
        let Some(ratio) = s.throughput_rps.estimate().and_then(|e| e.ratio_to(&base_e)) else { continue };
        let mut verdict = at_least(&ratio, THROUGHPUT_OF_BASELINE);
        // An upper bound can only fail; a lower bound can only meet.
        if base.generator_bound && verdict == Verdict::Meets && !s.generator_bound {
            verdict = Verdict::Undecided;
        }
        if s.generator_bound && verdict == Verdict::Fails && !base.generator_bound {
            verdict = Verdict::Undecided;
        }
        line.add(
            v,
            verdict,
            format!(
                "{} req/s, {} of baseline",
                rate(s.throughput_rps.median),
                ratio_interval(ratio.median, ratio.ci95)
            ),
        );
    }
    if !caveats.is_empty() {
        line.caveat = Some(caveats.join(" "));
    }
    line
}

/// The sweep has one pass, so its knee decides only with margin: meets when every step up to
/// the fraction stays under half the knee's latency limit and within 3 % of its offered rate;
/// fails when one exceeds twice the limit or falls 10 % short; undecided between.
fn knee(r: &Results, variants: &[String]) -> Requirement {
    let mut line = Requirement::new(
        format!(
            "Latency still flat at {:.0} % of its own closed-loop maximum (no sweep knee at or below that rate).",
            KNEE_FRACTION * 100.0
        ),
        "the sweep scenario did not run",
    );
    for v in variants {
        let Some(s) = r.sweep(v) else { continue };
        let steps = r.runs_of(v, Scenario::Sweep);
        let base = s.p99_us.first().copied().unwrap_or(0.0);
        let limit = (10.0 * base).max(1000.0);
        let upto: Vec<&&RunRecord> =
            steps.iter().filter(|x| x.offered_rps.is_some_and(|o| o <= s.max_rps * KNEE_FRACTION * 1.0001)).collect();
        if upto.is_empty() {
            continue;
        }
        let worst_p99 = upto.iter().map(|x| x.latency_us.p99).fold(0.0, f64::max);
        let worst_share = upto
            .iter()
            .filter_map(|x| Some(x.achieved_rps? / x.offered_rps.filter(|o| *o > 0.0)?))
            .fold(f64::INFINITY, f64::min);
        let verdict = if worst_p99 > 2.0 * limit || worst_share < 0.90 {
            Verdict::Fails
        } else if worst_p99 < limit / 2.0 && worst_share >= 0.97 {
            Verdict::Meets
        } else {
            Verdict::Undecided
        };
        line.add(
            v,
            verdict,
            format!(
                "p99 up to {} at ≤ {:.0} % of {} req/s (knee limit {}), one pass",
                super::units::us(worst_p99),
                KNEE_FRACTION * 100.0,
                rate(s.max_rps),
                super::units::us(limit)
            ),
        );
    }
    line
}

/// Wilson 95 % interval of a share `p` of `n` trials.
fn wilson(p: f64, n: f64) -> [f64; 2] {
    if n <= 0.0 {
        return [0.0, 1.0];
    }
    let z = 1.96f64;
    let denominator = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denominator;
    [(centre - half).max(0.0), (centre + half).min(1.0)]
}

/// The availability line for the fault `record` finds for a variant.
fn available<'a>(variants: &[String], what: &str, record: impl Fn(&str) -> Option<&'a OutageRecord>) -> Requirement {
    let mut line = Requirement::new(
        format!("Keeps answering {what} (at least {:.0} % of requests answered 2xx).", AVAILABLE * 100.0),
        "the outage scenario did not run",
    );
    for v in variants {
        let Some(o) = record(v) else { continue };
        let [_, dropped, _] = super::report::dropped_by_phase(o);
        let n = requests_during(o);
        let [lo, hi] = wilson(o.availability_during, n);
        let mut verdict = if lo >= AVAILABLE {
            Verdict::Meets
        } else if hi < AVAILABLE {
            Verdict::Fails
        } else {
            Verdict::Undecided
        };
        let figure = if dropped > 0 {
            // The generator, not the server, lost those: nothing can be said of the server.
            verdict = Verdict::Undecided;
            format!("{} available, not the server's: the generator dropped {dropped} sends", pct(o.availability_during))
        } else {
            format!("{} available [{}–{}] of {n:.0} requests", pct(o.availability_during), pct(lo), pct(hi))
        };
        line.add(v, verdict, figure);
    }
    line
}

/// Requests meant for the fault's span, from the timeline (by intended send time).
fn requests_during(o: &OutageRecord) -> f64 {
    if o.bucket_ms <= 0.0 {
        return 0.0;
    }
    let bucket = |ms: f64| (ms / o.bucket_ms).floor().max(0.0) as usize;
    let (start, back) = (bucket(o.fault_start_ms), bucket(o.redis_back_ms));
    o.timeline.iter().skip(start).take(back.saturating_sub(start)).map(|b| b.total() as f64).sum()
}

fn outage_safety(r: &Results, variants: &[String]) -> [Requirement; 3] {
    let mut safe = Requirement::new(
        "Never accepts a revoked token while its store is unavailable (fails closed).",
        "the outage scenario did not run",
    );
    let mut sessions = Requirement::new(
        "Logged-in users stay logged in when the store is killed and restarted (Redis without persistence, PostgreSQL through crash recovery).",
        "the outage scenario did not run",
    );
    let mut revs = Requirement::new(
        "Revocations survive the store being killed and restarted (Redis without persistence, PostgreSQL through crash recovery).",
        "the outage scenario did not run",
    );
    let yes = |ok: bool| if ok { Verdict::Meets } else { Verdict::Fails };
    for v in variants {
        let recs: Vec<_> = r.outage.iter().filter(|o| &o.variant == v).collect();
        if !recs.is_empty() {
            let accepted: u64 = recs.iter().map(|o| o.revoked_accepted).sum();
            let probes: u64 = recs.iter().map(|o| o.revoked_probes).sum();
            let caps = capabilities(r, v);
            let revokes = caps.map(|c| c.revocation.iter().filter(|(k, _)| k.as_str() != "refresh").any(|(_, on)| *on));
            let delay = caps.map(|c| c.revocation_delay.as_str());
            let figure = format!("{accepted}/{probes} revoked-token probes accepted");
            match (revokes, delay) {
                (Some(false), _) if accepted > 0 => {
                    safe.add(v, Verdict::Fails, format!("{figure}; it does not revoke at all"))
                }
                (_, Some("access_ttl")) if accepted > 0 => safe.add(
                    v,
                    Verdict::Fails,
                    format!("{figure}; its revocations wait for the access token to expire"),
                ),
                _ => safe.add(v, yes(accepted == 0), figure),
            }
        }
        if let Some(o) = killed_and_restarted(r, v) {
            sessions.add(
                v,
                yes(o.sessions_lost == 0),
                format!("{}/{} users lost their session", o.sessions_lost, o.keepers),
            );
            if let Some(lost) = o.revocations_lost {
                revs.add(v, yes(lost == 0), format!("{lost}/{} revoked tokens accepted again", o.revoked_checked));
            }
        }
    }
    [safe, sessions, revs]
}

fn memory(r: &Results, variants: &[String]) -> Requirement {
    let mut line = Requirement::new(
        "Store memory (Redis, or the PostgreSQL table) does not grow with the number of active users.",
        "the scale scenario did not run",
    );
    if r.scale.is_empty() {
        return line;
    }
    for v in variants {
        let largest = r.scale.iter().filter(|s| &s.variant == v).max_by_key(|s| s.entries);
        if let Some(s) = largest {
            // An unknown kind counts as growing: the line must not pass on a guess.
            let per_user = crate::results::EntryKind::from_name(&s.entry_kind).is_none_or(|k| k.per_session());
            line.add(
                v,
                if per_user { Verdict::Fails } else { Verdict::Meets },
                format!("{:.0} B per {} at {} entries", s.bytes_per_entry, s.entry_kind.replace('_', " "), s.entries),
            );
        } else if capabilities(r, v).is_some_and(Capabilities::storeless) {
            line.add(v, Verdict::Meets, "keeps nothing in Redis".into());
        }
    }
    line
}

/// The `/capabilities` answer recorded with any run of the variant.
fn capabilities<'a>(r: &'a Results, variant: &str) -> Option<&'a Capabilities> {
    r.runs.iter().filter(|x| x.variant == variant).find_map(|x| x.capabilities.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_decides_only_when_it_clears_the_threshold() {
        let e = |v: &[f64]| Estimate::of(v).unwrap();
        assert_eq!(at_least(&e(&[0.95, 0.96, 0.97, 0.98, 0.99]), 0.9), Verdict::Meets);
        assert_eq!(at_least(&e(&[0.80, 0.82, 0.84, 0.85, 0.86]), 0.9), Verdict::Fails);
        assert_eq!(at_least(&e(&[0.85, 0.88, 0.91, 0.93, 0.95]), 0.9), Verdict::Undecided);
        assert_eq!(both(Verdict::Meets, Verdict::Undecided), Verdict::Undecided);
        assert_eq!(both(Verdict::Fails, Verdict::Undecided), Verdict::Fails);
        let [lo, hi] = wilson(0.995, 5000.0);
        assert!(lo > 0.99 && hi < 1.0, "{lo} {hi}");
        let [lo, hi] = wilson(0.99, 100.0);
        assert!(lo < 0.99 && hi > 0.99, "{lo} {hi}");
    }
}
