//! The report's population section: what a *user* request costs in Redis commands when many
//! users at their own rates run clients that refresh, log in again and adopt fresh tokens,
//! against requests per access-token lifetime. The workload in words, the chart, a table per
//! point judged against the design's own rule (within 1.5× or not, and why not), and where each
//! design's store traffic crosses session's.

mod chart;
mod judge;

use super::*;
use crate::present::units::{count, quantity, seconds};
use crate::results::PopulationRun;
use chart::{Design, Expected, Point, PopulationChart};
use judge::{Crossing, SAME_BAND, TOLERANCE, Verdict, ZERO_BELOW, crossing};

/// Fewer refreshes than this over a point's rounds leave a figure that counting alone moves.
const FEW_REFRESHES: u64 = 100;

/// A population point's Redis commands per user request.
#[derive(Debug, Clone, Copy)]
enum Measured<'a> {
    Commands(&'a Estimate),
    /// The design keeps nothing in a store: no Redis to count, and nothing to count.
    NoStore,
    Missing,
}

impl Measured<'_> {
    fn of<'a>(run: &RunRecord, p: &'a PopulationRun) -> Measured<'a> {
        match &p.redis_commands_per_user_request {
            Some(e) => Measured::Commands(e),
            None if redis_per_request(run) == Some(0.0) => Measured::NoStore,
            None => Measured::Missing,
        }
    }

    fn median(self) -> Option<f64> {
        match self {
            Self::Commands(e) => Some(e.median),
            Self::NoStore => Some(0.0),
            Self::Missing => None,
        }
    }

    fn text(self) -> String {
        match self {
            Self::Commands(e) => interval(e.median, e.ci95, per_request),
            Self::NoStore => "0 (no store)".into(),
            Self::Missing => "–".into(),
        }
    }
}

fn verdict(m: Measured<'_>, expected: f64) -> Verdict {
    match m {
        Measured::Commands(e) => Verdict::of(e.median, e.ci95[0], e.ci95[1], expected),
        Measured::NoStore => Verdict::of(0.0, 0.0, 0.0, expected),
        Measured::Missing => Verdict::Unknown,
    }
}

/// Why a point may be off its rule, from what the record holds.
fn why_off(run: &RunRecord, p: &PopulationRun) -> String {
    let mut reasons = Vec::new();
    let refreshes = p.extra_calls.get("refresh").copied().unwrap_or(0);
    if run.strategy == "refresh" && refreshes < FEW_REFRESHES {
        reasons.push(format!(
            "only {refreshes} refreshes fell in its rounds, so counting alone moves its figure by about {}",
            pct(1.0 / (refreshes.max(1) as f64).sqrt())
        ));
    }
    for (kind, n) in p.extra_calls_failed.iter().filter(|(_, n)| **n > 0) {
        reasons.push(format!("{n} of its {kind} calls failed"));
    }
    if run.errors > 0 {
        reasons.push(format!("{} requests were answered other than 2xx or not at all", run.errors));
    }
    if let Some(why) = not_the_servers(run) {
        reasons.push(why);
    }
    if reasons.is_empty() {
        reasons.push(format!(
            "no failed call, error or dropped send in the record explains it: the rule ({}) and what the server did (its commands: {}) disagree",
            p.expected_basis,
            commands_text(run)
        ));
    }
    reasons.join("; ")
}

fn commands_text(run: &RunRecord) -> String {
    if run.redis_commands.is_empty() {
        return "none".into();
    }
    run.redis_commands.iter().map(|(c, n)| format!("{c} {n}")).collect::<Vec<_>>().join(", ")
}

/// The distinct values of a figure over the points, in order, joined by `sep`.
fn distinct(values: impl Iterator<Item = String>, sep: &str) -> String {
    let mut seen: Vec<String> = Vec::new();
    for v in values {
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    seen.join(sep)
}

type PointRef<'r> = (&'r RunRecord, &'r PopulationRun);

impl<'a> Report<'a> {
    /// Every population point, in the report's variant order, then by requests per lifetime.
    fn population_points(&self) -> Vec<(String, Vec<PointRef<'a>>)> {
        let r: &'a Results = self.r;
        let mut out = Vec::new();
        for v in self.variants() {
            let mut points: Vec<PointRef<'a>> = r
                .runs_of(&v, Scenario::Population)
                .into_iter()
                .filter_map(|run| Some((run, run.population.as_ref()?)))
                .collect();
            if points.is_empty() {
                continue;
            }
            points.sort_by(|a, b| a.1.requests_per_lifetime.total_cmp(&b.1.requests_per_lifetime));
            out.push((v, points));
        }
        out
    }

    pub(super) fn population(&mut self) -> anyhow::Result<()> {
        let designs = self.population_points();
        let all: Vec<PointRef<'_>> = designs.iter().flat_map(|(_, p)| p.iter().copied()).collect();
        let Some((first_run, first)) = all.first().copied() else { return Ok(()) };
        self.h2("Clients like real ones: store traffic per user request");
        // Figures every point shares, as a rule; where points differ, each value once.
        let users = distinct(all.iter().map(|(_, p)| count(p.users)), " or ");
        let user_rate = distinct(all.iter().map(|(_, p)| rate(p.user_rate_rps)), " or ");
        let total = distinct(all.iter().map(|(_, p)| rate(p.users as f64 * p.user_rate_rps)), " or ");
        let rounds = distinct(all.iter().map(|(r, _)| r.rounds.unwrap_or(r.repetitions).to_string()), " or ");
        let window = distinct(all.iter().map(|(r, _)| seconds(r.duration_s)), " or ");
        let warmup = distinct(all.iter().map(|(r, _)| seconds(r.warmup_s)), " or ");
        let seeding = distinct(all.iter().map(|(_, p)| p.seeding.clone()), "; ");
        // A refresh point whose rounds would expect few refreshes measures longer rounds.
        let longer = if window.contains(" or ") {
            " A `refresh` point whose rounds would expect fewer than 100 refreshes in all has longer rounds (whole seconds), so its figure is not a count of a few dozen."
        } else {
            ""
        };
        self.p(format!(
            "The workload: {users} users, each sending {user_rate} req/s on average with Poisson arrivals ({total} req/s in all, open loop), from clients that behave as client libraries do: they adopt a token handed back in `X-Refreshed-Token`, call `/refresh` when their access token expires (or the server answers 401 `expired`) and retry, log in again when refused, and respect `Retry-After` on 503. Seeding: {seeding}. Each point runs on a server and a Redis of its own, {rounds} rounds of {window} after {warmup} of warm-up, one round straight after the other with the clients going on with what they hold. Every call a client added (refresh, login, retry) is counted in the cost of the user request that caused it: Redis commands, server CPU and the latency the user saw.{longer}"
        ));
        let (per_point, fixed): (Vec<_>, Vec<_>) = designs.iter().partition(|(_, p)| p.len() > 1);
        let mut which = "Which figures come from which workload: capacity (steady) and cost per request (cost) come from a few hot connections re-sending 16 tokens of 16 users thousands of times a second, in windows far shorter than any token's lifetime, so no token there expires or is refreshed; this section comes from the population.".to_owned();
        if !per_point.is_empty() {
            let names: Vec<String> = per_point.iter().map(|(v, _)| format!("**{v}**")).collect();
            let lifetimes =
                distinct(per_point.iter().flat_map(|(_, p)| p.iter().map(|(_, x)| seconds(x.access_ttl_s))), ", ");
            which.push_str(&format!(
                " {}'s access lifetime is set per point ({lifetimes}) to give its requests per lifetime.",
                names.join(", ")
            ));
        }
        if !fixed.is_empty() {
            let ttl = distinct(fixed.iter().flat_map(|(_, p)| p.iter().map(|(_, x)| seconds(x.access_ttl_s))), " or ");
            let at = distinct(
                fixed.iter().flat_map(|(_, p)| p.iter().map(|(_, x)| quantity(x.requests_per_lifetime))),
                " or ",
            );
            which.push_str(&format!(
                " The other designs' tokens last {ttl}, longer than the run: each has one point, at requests per lifetime = user rate × lifetime = {at}, and its expected line is flat by design (what it costs per request does not depend on the lifetime)."
            ));
        }
        self.p(which);
        self.population_chart(&designs, first_run, first)?;
        self.population_table(&designs);
        self.population_crossings(&designs);
        Ok(())
    }

    fn population_chart(
        &mut self,
        designs: &[(String, Vec<PointRef<'_>>)],
        first_run: &RunRecord,
        first: &PopulationRun,
    ) -> anyhow::Result<()> {
        let mut chart = PopulationChart {
            title: "Redis commands per user request versus requests per token lifetime".into(),
            designs: Vec::new(),
            notes: Vec::new(),
        };
        let mut lines = Vec::new();
        for (v, points) in designs {
            let expected_of: Vec<f64> =
                points.iter().map(|(_, p)| p.expected_redis_commands_per_user_request).collect();
            let lowest = expected_of.iter().copied().fold(f64::INFINITY, f64::min);
            let highest = expected_of.iter().copied().fold(0.0, f64::max);
            let expected = if highest > lowest * 1.01 {
                // Expected to fall with the lifetime: c = expected × (1 + L) at each point, the
                // commands of one refresh.
                let per_refresh: Vec<f64> = points
                    .iter()
                    .map(|(_, p)| p.expected_redis_commands_per_user_request * (1.0 + p.requests_per_lifetime))
                    .collect();
                let c = Estimate::of(&per_refresh).map_or(0.0, |e| e.median);
                lines.push(format!("{v}: {} commands per refresh ÷ (1 + requests per lifetime)", quantity(c)));
                if c > 0.0 { Expected::PerLifetime { per_refresh: c } } else { Expected::Zero }
            } else {
                match expected_of.first().copied() {
                    Some(e) if e > 0.0 => Expected::Flat(e),
                    _ => Expected::Zero,
                }
            };
            let mut drawn = Vec::new();
            for (run, p) in points {
                let m = Measured::of(run, p);
                let e = p.expected_redis_commands_per_user_request;
                match m {
                    Measured::Commands(est) if est.median > 0.0 => {
                        drawn.push(Point {
                            x: p.requests_per_lifetime,
                            median: est.median,
                            lo: est.ci95[0],
                            hi: est.ci95[1],
                        });
                        if e <= 0.0 {
                            let total: u64 = run.redis_commands.values().sum();
                            chart.notes.push(format!(
                                "{v}: 0 expected, so no line; its {} per user request are {total} commands in all rounds ({})",
                                per_request(est.median),
                                commands_text(run)
                            ));
                        }
                    }
                    Measured::Missing => chart.notes.push(format!(
                        "{v} at {} requests per lifetime: Redis commands not measured",
                        quantity(p.requests_per_lifetime)
                    )),
                    _ if e <= 0.0 => chart.notes.push(format!(
                        "{v}: 0 commands per user request, 0 expected ({}): not drawn",
                        p.expected_basis
                    )),
                    _ => chart.notes.push(format!(
                        "{v} at {} requests per lifetime: 0 measured, {} expected",
                        quantity(p.requests_per_lifetime),
                        per_request(e)
                    )),
                }
            }
            let label = if drawn.is_empty() { format!("{v} (see below)") } else { v.clone() };
            chart.designs.push(Design { label, colour: self.palette.colour(v), points: drawn, expected });
        }
        let rounds = first_run.rounds.unwrap_or(first_run.repetitions);
        let e = &self.r.environment;
        let mut caption = format!(
            "Redis commands per user request (the calls its client added included) against requests per access-token lifetime (user rate × lifetime), both axes logarithmic: dots are the median over {rounds} rounds, bars its 95 % interval. Faint lines: what each design's rules expect ({}; the others flat at their expected value). {} users at {} req/s each (Poisson arrivals), rounds of {} after {} of warm-up; {} ({} cores).",
            if lines.is_empty() { "none varies with the lifetime".to_owned() } else { lines.join("; ") },
            count(first.users),
            rate(first.user_rate_rps),
            distinct(designs.iter().flat_map(|(_, ps)| ps.iter().map(|(r, _)| seconds(r.duration_s))), " or "),
            seconds(first_run.warmup_s),
            e.cpu_model,
            e.cores
        );
        if !chart.notes.is_empty() {
            caption.push_str(&format!(
                " A log axis has no zero, so what sits at zero is not drawn at a floor it never had but said under the chart: {}.",
                chart.notes.join("; ")
            ));
        }
        if chart.dodged() {
            caption.push_str(" Points at the same requests per lifetime and nearly the same height are set slightly apart so each shows.");
        }
        self.chart(&chart, "population", "Store traffic per user request", caption)
    }

    fn population_table(&mut self, designs: &[(String, Vec<PointRef<'_>>)]) {
        let mut t = Table::new([
            "variant",
            "requests per lifetime",
            "access TTL",
            "user requests",
            "refresh / login / retry per user req",
            "Redis cmd / user req [95 %]",
            "expected",
            "measured ÷ expected [95 %]",
            "verdict",
            "server CPU / user req [95 %]",
            "p99 [95 %]",
        ]);
        let mut warnings = Vec::new();
        let mut bases = Vec::new();
        for (v, points) in designs {
            for (run, p) in points {
                let m = Measured::of(run, p);
                let e = p.expected_redis_commands_per_user_request;
                let extra = |kind: &str| {
                    let failed = p.extra_calls_failed.get(kind).copied().unwrap_or(0);
                    let mut notes = Vec::new();
                    if failed > 0 {
                        notes.push(format!("{failed} failed"));
                    }
                    if let Some(took) = p.extra_call_latency_us.get(kind) {
                        notes.push(format!("p99 {}", us(took.p99)));
                    }
                    let mark = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) };
                    format!("{}{mark}", per_request(p.per_user_request(kind)))
                };
                let judged = verdict(m, e);
                let ratio_text = match m {
                    Measured::Commands(est) if e > 0.0 => {
                        ratio_interval(est.median / e, [est.ci95[0] / e, est.ci95[1] / e])
                    }
                    _ => "–".into(),
                };
                let mut verdict_text = judged.text();
                if !matches!(judged, Verdict::Within | Verdict::WithinZero | Verdict::Unknown) {
                    verdict_text.push_str(" ⚠");
                    warnings.push(format!(
                        "**{v}** at {} requests per lifetime: {} Redis commands per user request against {} expected, {}. Why it may be: {}.",
                        quantity(p.requests_per_lifetime),
                        m.text(),
                        per_request(e),
                        judged.text(),
                        why_off(run, p)
                    ));
                }
                t.row(vec![
                    v.clone(),
                    quantity(p.requests_per_lifetime),
                    seconds(p.access_ttl_s),
                    p.user_requests.to_string(),
                    ["refresh", "login", "retry"].map(extra).join(" / "),
                    m.text(),
                    per_request(e),
                    ratio_text,
                    verdict_text,
                    opt(run.server_cpu_ns_per_request.as_ref(), |c| interval(c.median, c.ci95, ns)),
                    opt(run.latency_p99_us.as_ref(), |l| interval(l.median, l.ci95, us)),
                ]);
            }
            let basis = distinct(points.iter().map(|(_, p)| p.expected_basis.clone()), "; ");
            bases.push(format!("{v}: {basis}"));
        }
        t.note = Some(format!(
            "One row per point. User requests: what the users meant to send in the measured windows; refresh / login / retry: the calls their clients added, per user request (failed ones said, and how long the calls took: their p99 from write to answer). Redis commands from INFO commandstats over each round's window divided by that round's user requests, median over the rounds with its 95 % interval; server CPU per user request the same way, from the kernel's per-thread counters; p99 from each user request's intended send time, the refresh it triggered included. Expected, by each design's rules: {}. Verdict: within {tol}× when the interval reaches into [expected ÷ {tol}, expected × {tol}]; where 0 is expected, when the median is below {zero}.",
            bases.join("; "),
            tol = quantity(TOLERANCE),
            zero = quantity(ZERO_BELOW)
        ));
        self.push(Block::Table(t));
        if warnings.is_empty() {
            self.p(format!(
                "Every point is within its design's rule: within {}× of what the rule expects, or below {} where it expects 0.",
                quantity(TOLERANCE),
                quantity(ZERO_BELOW)
            ));
        }
        for w in warnings {
            self.push(Block::Warning(w));
        }
    }

    fn population_crossings(&mut self, designs: &[(String, Vec<PointRef<'_>>)]) {
        self.push(Block::Heading(3, "Where each design's store traffic crosses session's".into()));
        let curve = |points: &[PointRef<'_>]| -> Vec<(f64, f64)> {
            points.iter().filter_map(|(r, p)| Some((p.requests_per_lifetime, Measured::of(r, p).median()?))).collect()
        };
        let session = designs.iter().find(|(_, p)| p.first().is_some_and(|(r, _)| r.strategy == "session"));
        let level = session.and_then(|(_, p)| Estimate::of(&curve(p).iter().map(|(_, y)| *y).collect::<Vec<_>>()));
        let (Some((name, _)), Some(level)) = (session, level) else {
            self.p("Session was not measured in this run's population, so there is no line of session's to cross.");
            return;
        };
        let s = level.median;
        self.p(format!(
            "From the measured medians: **{name}** makes {} Redis commands per user request. A design measured at several lifetimes crosses session's where its curve meets that figure, interpolated on log-log between the two points around the crossing; a design with one point is flat by design and is compared with session's from it (about the same within {}).",
            per_request(s),
            pct(SAME_BAND)
        ));
        let mut items = Vec::new();
        for (v, points) in designs.iter().filter(|(v, _)| v != name) {
            let c = curve(points);
            if c.is_empty() {
                items.push(format!("**{v}**: not measured (no Redis command count)."));
                continue;
            }
            let span = || {
                let (lo, hi) = (c.first().map_or(0.0, |p| p.0), c.last().map_or(0.0, |p| p.0));
                format!("{}–{} requests per lifetime", quantity(lo), quantity(hi))
            };
            let one = || c.first().map_or_else(String::new, |(_, y)| per_request(*y));
            items.push(match crossing(&c, s) {
                Crossing::Crosses { falls, at, between: (x0, x1) } => {
                    let way = if falls { "falls below" } else { "rises above" };
                    match at {
                        Some(x) => format!(
                            "**{v}**: {way} session's at about **{}** requests per lifetime (between its points at {} and {}).",
                            quantity(x),
                            quantity(x0),
                            quantity(x1)
                        ),
                        None => format!("**{v}**: {way} session's between its points at {} and {} requests per lifetime.", quantity(x0), quantity(x1)),
                    }
                }
                Crossing::Below if c.len() > 1 => format!("**{v}**: below session's at every point ({}).", span()),
                Crossing::Above if c.len() > 1 => format!("**{v}**: above session's at every point ({}).", span()),
                Crossing::Below => format!("**{v}**: always below ({} against {}).", one(), per_request(s)),
                Crossing::Above => format!("**{v}**: always above ({} against {}).", one(), per_request(s)),
                Crossing::Same => format!("**{v}**: about the same ({} against {}).", one(), per_request(s)),
            });
        }
        self.push(Block::List(items));
    }
}
