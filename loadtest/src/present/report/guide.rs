//! The decision guide: requirement → the strategies of this run that meet it, each statement
//! computed from this run's figures and printed with them. A requirement whose figures were not
//! measured says so; nothing is asserted that the data does not show.

use crate::results::{Capabilities, Fault, Results, Scenario};

use super::doc::{Block, Table};
use super::style::Palette;
use super::{dropped_by_phase, redis_per_request, worst_window};
use crate::present::units::{ms, pct, per_request, rate};

/// Thresholds of the guide's requirements (the guide prints them with each line).
pub const REVOCATION_MS: f64 = 1000.0;
pub const THROUGHPUT_OF_BASELINE: f64 = 0.9;
pub const AVAILABLE: f64 = 0.99;
pub const KNEE_FRACTION: f64 = 0.75;
pub const RTT_MS: f64 = 1.0;
pub const RTT_KEEP: f64 = 0.75;
pub const PADDING_BYTES: u64 = 1024;
pub const PADDING_KEEP: f64 = 0.9;
/// Below this many Redis commands per request, a design counts as having none on the request
/// path (a background follower's reads, or a versioned client's check once per grace window).
pub const NO_REDIS_PER_REQUEST: f64 = 0.001;

/// A requirement and, per variant, whether it is met and the figure that decides it.
struct Line {
    requirement: String,
    verdicts: Vec<(String, bool, String)>,
    /// Why nothing could be decided, when `verdicts` is empty.
    missing: String,
    /// A caveat printed with the line (e.g. a generator-bound baseline).
    caveat: Option<String>,
}

impl Line {
    fn new(requirement: impl Into<String>, missing: impl Into<String>) -> Self {
        Self { requirement: requirement.into(), verdicts: Vec::new(), missing: missing.into(), caveat: None }
    }

    fn add(&mut self, variant: &str, met: bool, figure: String) {
        self.verdicts.push((variant.to_owned(), met, figure));
    }

    fn cells(&self) -> Vec<String> {
        let list = |met: bool| {
            let items: Vec<String> = self
                .verdicts
                .iter()
                .filter(|v| v.1 == met)
                .map(|(variant, _, figure)| format!("**{variant}** ({figure})"))
                .collect();
            if items.is_empty() { "none".to_owned() } else { items.join("; ") }
        };
        let mut requirement = self.requirement.clone();
        if let Some(c) = &self.caveat {
            requirement.push_str(&format!(" Note: {c}"));
        }
        if self.verdicts.is_empty() {
            vec![requirement, format!("not measured in this run: {}", self.missing), "–".to_owned()]
        } else {
            vec![requirement, list(true), list(false)]
        }
    }
}

fn revocation_line(r: &Results, variants: &[String], instances: u32) -> Line {
    let loaded = r.revocation.iter().any(|x| x.instances == instances && x.background.is_some());
    let under = if loaded { ", under half the steady maximum of load" } else { "" };
    let mut line = Line::new(
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
        let windows: Vec<Option<f64>> = crate::results::Kind::ALL
            .iter()
            .filter_map(|k| r.revocation(v, *k, instances))
            .filter(|x| x.accepted_before_revoke > 0)
            .map(|x| x.window_ms)
            .collect();
        let same = windows.windows(2).all(|w| w.first() == w.get(1));
        if let Some((kind, w)) = worst_window(r, v, instances) {
            let all = same && windows.len() > 1;
            match (w, all) {
                (Some(w), true) => {
                    line.add(v, w <= REVOCATION_MS, format!("{} for all {} kinds", ms(w), windows.len()))
                }
                (Some(w), false) => line.add(v, w <= REVOCATION_MS, format!("worst {} for {}", ms(w), kind.as_str())),
                (None, true) => {
                    line.add(v, false, format!("all {} kinds still accepted at the probing cap", windows.len()))
                }
                (None, false) => line.add(v, false, format!("{} still accepted at the probing cap", kind.as_str())),
            }
        }
    }
    line
}

fn no_redis_line(r: &Results, variants: &[String]) -> Line {
    let mut line = Line::new(
        format!(
            "No Redis command on the request path: fewer than 1 per {:.0} requests (steady GET /me).",
            1.0 / NO_REDIS_PER_REQUEST
        ),
        "the steady scenario did not run",
    );
    for v in variants {
        if let Some(c) = r.steady(v).and_then(redis_per_request) {
            line.add(v, c < NO_REDIS_PER_REQUEST, format!("{} commands/request", per_request(c)));
        }
    }
    line
}

pub fn guide(r: &Results) -> Vec<Block> {
    let palette = Palette::of(r);
    let variants: Vec<String> = palette.names().map(str::to_owned).collect();
    let mut lines = Vec::new();

    let rev1 = revocation_line(r, &variants, 1);
    let rev2 = revocation_line(r, &variants, 2);
    let no_redis = no_redis_line(r, &variants);

    // The combination people argue about: fast revocation without a store lookup per request.
    let mut both = Line::new(
        format!("Revocation within {} and no Redis command per request, both.", ms(REVOCATION_MS)),
        "needs both the revocation and the steady scenario",
    );
    for v in &variants {
        let rev = rev1.verdicts.iter().find(|x| &x.0 == v);
        let red = no_redis.verdicts.iter().find(|x| &x.0 == v);
        if let (Some(a), Some(b)) = (rev, red) {
            both.add(v, a.1 && b.1, format!("{}, {}", a.2, b.2));
        }
    }
    lines.push(rev1);
    lines.push(rev2);
    lines.push(no_redis);
    lines.push(both);

    let mut tp = Line::new(
        format!("Throughput at least {:.0} % of baseline (steady median).", THROUGHPUT_OF_BASELINE * 100.0),
        "the steady scenario did not run for baseline and the others",
    );
    if let Some(base) = r.steady("baseline") {
        let b = base.throughput_rps.median;
        // Only from the records' own flag: a variant is generator-bound when its record says so.
        let mut caveats = Vec::new();
        if base.generator_bound {
            caveats.push(format!(
                "baseline measured {} req/s and is generator-bound: the true ceiling is at least that, so the ratios are upper bounds.",
                rate(b)
            ));
        }
        let bound: Vec<&str> = variants
            .iter()
            .filter(|v| v.as_str() != "baseline" && r.steady(v).is_some_and(|s| s.generator_bound))
            .map(String::as_str)
            .collect();
        if !bound.is_empty() {
            let (is, its) = if bound.len() == 1 { ("is", "its") } else { ("are", "each one's") };
            caveats.push(format!(
                "{} {is} generator-bound: {its} true throughput is at least what was measured, so {its} ratio is a lower bound.",
                bound.join(", ")
            ));
        }
        if !caveats.is_empty() {
            tp.caveat = Some(caveats.join(" "));
        }
        for v in variants.iter().filter(|v| v.as_str() != "baseline") {
            if let Some(s) = r.steady(v)
                && b > 0.0
            {
                let f = s.throughput_rps.median / b;
                tp.add(
                    v,
                    f >= THROUGHPUT_OF_BASELINE,
                    format!("{} req/s, {:.0} % of baseline", rate(s.throughput_rps.median), f * 100.0),
                );
            }
        }
    }
    lines.push(tp);

    let mut knee = Line::new(
        format!(
            "Latency still flat at {:.0} % of its own closed-loop maximum (no sweep knee at or below that rate).",
            KNEE_FRACTION * 100.0
        ),
        "the sweep scenario did not run",
    );
    for v in &variants {
        if let Some(s) = r.sweeps.iter().find(|s| &s.variant == v) {
            match s.knee_rps {
                None => knee.add(v, true, format!("no knee up to {} req/s", rate(s.max_rps))),
                Some(k) => {
                    let f = if s.max_rps > 0.0 { k / s.max_rps } else { 0.0 };
                    knee.add(v, f > KNEE_FRACTION, format!("knee at {} req/s, {:.0} % of max", rate(k), f * 100.0));
                }
            }
        }
    }
    lines.push(knee);

    for (fault, what) in [(Fault::Hang, "while Redis hangs"), (Fault::KillEmpty, "while Redis is down")] {
        let mut line = Line::new(
            format!("Keeps answering {what} (at least {:.0} % of requests answered 2xx).", AVAILABLE * 100.0),
            "the outage scenario did not run",
        );
        for v in &variants {
            if let Some(o) = r.outage(v, fault) {
                let [_, dropped, _] = dropped_by_phase(o);
                let figure = if dropped > 0 {
                    format!(
                        "{} available, not the server's: the generator dropped {dropped} sends",
                        pct(o.availability_during)
                    )
                } else {
                    format!("{} available", pct(o.availability_during))
                };
                line.add(v, o.availability_during >= AVAILABLE, figure);
            }
        }
        lines.push(line);
    }

    let mut safe = Line::new(
        "Never accepts a revoked token while Redis is unavailable (fails closed).",
        "the outage scenario did not run",
    );
    for v in &variants {
        let recs: Vec<_> = r.outage.iter().filter(|o| &o.variant == v).collect();
        if recs.is_empty() {
            continue;
        }
        let accepted: u64 = recs.iter().map(|o| o.revoked_accepted).sum();
        let probes: u64 = recs.iter().map(|o| o.revoked_probes).sum();
        let caps = capabilities(r, v);
        let revokes = caps.map(|c| c.revocation.iter().filter(|(k, _)| k.as_str() != "refresh").any(|(_, on)| *on));
        let delay = caps.map(|c| c.revocation_delay.as_str());
        let figure = format!("{accepted}/{probes} revoked-token probes accepted");
        match (revokes, delay) {
            (Some(false), _) if accepted > 0 => safe.add(v, false, format!("{figure}; it does not revoke at all")),
            (_, Some("access_ttl")) if accepted > 0 => {
                safe.add(v, false, format!("{figure}; its revocations wait for the access token to expire"))
            }
            _ => safe.add(v, accepted == 0, figure),
        }
    }
    lines.push(safe);

    let mut sessions = Line::new(
        "Logged-in users stay logged in when Redis restarts without persistence.",
        "the outage scenario did not run",
    );
    let mut revs =
        Line::new("Revocations survive a Redis restart without persistence.", "the outage scenario did not run");
    for v in &variants {
        if let Some(o) = r.outage(v, Fault::KillEmpty) {
            sessions.add(
                v,
                o.sessions_lost == 0,
                format!("{}/{} users lost their session", o.sessions_lost, o.keepers),
            );
            if let Some(lost) = o.revocations_lost {
                revs.add(v, lost == 0, format!("{lost}/{} revoked tokens accepted again", o.revoked_checked));
            }
        }
    }
    lines.push(sessions);
    lines.push(revs);

    let mut memory =
        Line::new("Redis memory does not grow with the number of active users.", "the scale scenario did not run");
    for v in &variants {
        let largest = r.scale.iter().filter(|s| &s.variant == v).max_by_key(|s| s.entries);
        if let Some(s) = largest {
            // An unknown kind counts as growing: the line must not pass on a guess.
            let per_user = crate::results::EntryKind::from_name(&s.entry_kind).is_none_or(|k| k.per_session());
            memory.add(
                v,
                !per_user,
                format!("{:.0} B per {} at {} entries", s.bytes_per_entry, s.entry_kind.replace('_', " "), s.entries),
            );
        } else if capabilities(r, v).is_some_and(Capabilities::storeless) {
            memory.add(v, true, "keeps nothing in Redis".into());
        }
    }
    if !r.scale.is_empty() {
        lines.push(memory);
    } else {
        lines.push(Line::new(memory.requirement, memory.missing));
    }

    let mut rtt = Line::new(
        format!("Keeps {:.0} % of its throughput with Redis {} away (rtt scenario).", RTT_KEEP * 100.0, ms(RTT_MS)),
        "the rtt scenario did not run",
    );
    for v in &variants {
        let runs = r.runs_of(v, Scenario::Rtt);
        let at = |t: f64| runs.iter().find(|x| x.redis_rtt_ms.is_some_and(|m| (m - t).abs() < 1e-9));
        if let (Some(direct), Some(far)) = (at(0.0), at(RTT_MS))
            && direct.throughput_rps.median > 0.0
        {
            let f = far.throughput_rps.median / direct.throughput_rps.median;
            rtt.add(
                v,
                f >= RTT_KEEP,
                format!(
                    "{} → {} req/s, {:.0} %",
                    rate(direct.throughput_rps.median),
                    rate(far.throughput_rps.median),
                    f * 100.0
                ),
            );
        }
    }
    lines.push(rtt);

    let mut size = Line::new(
        format!(
            "{} B of extra claims costs less than {:.0} % of throughput (tokensize scenario).",
            PADDING_BYTES,
            (1.0 - PADDING_KEEP) * 100.0
        ),
        "the tokensize scenario did not run",
    );
    for v in &variants {
        let runs = r.runs_of(v, Scenario::Tokensize);
        let at = |p: u64| runs.iter().find(|x| x.claims_padding_bytes == Some(p));
        if let (Some(small), Some(big)) = (at(0), at(PADDING_BYTES))
            && small.throughput_rps.median > 0.0
        {
            let f = big.throughput_rps.median / small.throughput_rps.median;
            size.add(
                v,
                f >= PADDING_KEEP,
                format!(
                    "{} → {} req/s ({:.0} %), token {} → {} B",
                    rate(small.throughput_rps.median),
                    rate(big.throughput_rps.median),
                    f * 100.0,
                    small.token_bytes.unwrap_or(0),
                    big.token_bytes.unwrap_or(0)
                ),
            );
        }
    }
    lines.push(size);

    let mut t = Table::new(["requirement", "met in this run by", "not met by"]);
    for line in &lines {
        t.row(line.cells());
    }
    t.note = Some(
        "Statements compare single medians from one machine; where two strategies' spreads overlap (see the tables below), treat them as equal. A strategy not listed on a line was not measured for it."
            .into(),
    );
    vec![Block::Table(t)]
}

/// The `/capabilities` answer recorded with any run of the variant.
fn capabilities<'a>(r: &'a Results, variant: &str) -> Option<&'a Capabilities> {
    r.runs.iter().filter(|x| x.variant == variant).find_map(|x| x.capabilities.as_ref())
}
