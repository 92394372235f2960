//! What the terminal shows: one line per measurement while running (one per variant for the
//! whole revocation scenario), and a hyperfine-like table at the end (closed-loop figures per
//! variant, then one line per fixed-rate run, then revocation medians).
//! Figures print through [`units`](super::units).

mod steps;

pub use steps::{outage_summary, points_summary, population_summary, revocation_summary, scale_summary};

use std::fmt::Write;

use crate::present::report::revocations;
use crate::present::units::{
    bytes, count, cpu_us, interval, ms, ns, opt, pct, per_request, rate, ratio, ratio_interval, us,
};
use crate::results::{Estimate, Kind, OutageRecord, Record, Results, RevocationRecord, RunRecord, Scenario};

/// One line printed as each measurement finishes.
pub fn progress_line(r: &RunRecord) -> String {
    let bound = if r.generator_bound { "  [generator-bound]" } else { "" };
    match r.scenario {
        Scenario::Login => format!(
            "  {:<16} login  {} logins/s  p50 {}  argon2 p50 {}  mint p50 {}",
            r.variant,
            rate(r.throughput_rps.median),
            us(r.latency_us.p50),
            ms(r.login.as_ref().map_or(0.0, |l| l.argon2_ms_p50)),
            us(r.login.as_ref().map_or(0.0, |l| l.mint_us_p50)),
        ),
        Scenario::Rate | Scenario::Sweep => {
            let dropped = r.dropped.unwrap_or(0);
            let invalid =
                if r.latency_valid { String::new() } else { red("  latency invalid: generator dropped sends") };
            format!(
                "  {:<16} {:<6} {} req/s offered, {} sent  p50 {}  p99 {}  max {}  {}  dropped {}{invalid}{bound}",
                r.variant,
                r.scenario.as_str(),
                rate(r.offered_rps.unwrap_or(0.0)),
                rate(r.achieved_rps.unwrap_or(0.0)),
                us(r.latency_us.p50),
                us(r.latency_us.p99),
                us(r.latency_us.max),
                outcome_counts(r),
                if dropped > 0 { red(&dropped.to_string()) } else { "0".to_owned() },
            )
        }
        Scenario::Cost => {
            let cpu = |e: Option<&Estimate>| e.map_or_else(|| "–".to_owned(), |e| interval(e.median, e.ci95, ns));
            let p99 =
                r.latency_p99_us.as_ref().map_or_else(|| us(r.latency_us.p99), |e| interval(e.median, e.ci95, us));
            format!(
                "  {:<16} cost   at {} req/s, {} rounds: CPU/request server {}, store {}, generator {}; p99 {}  {}{bound}",
                r.variant,
                rate(r.rate_rps.unwrap_or(0.0)),
                r.rounds.unwrap_or(r.repetitions),
                cpu(r.server_cpu_ns_per_request.as_ref()),
                cpu(r.redis_cpu_ns_per_request.as_ref()),
                cpu(r.generator_cpu_ns_per_request.as_ref()),
                p99,
                outcome_counts(r),
            )
        }
        _ => {
            let t = &r.throughput_rps;
            let spread = match t.ci95 {
                Some(ci) => interval(t.median, ci, rate),
                None => rate(t.median),
            };
            format!(
                "  {:<16} {:<6} {} req/s  p50 {}  p99 {}  errors {}{bound}",
                r.variant,
                r.scenario.as_str(),
                spread,
                us(r.latency_us.p50),
                us(r.latency_us.p99),
                r.errors,
            )
        }
    }
}

/// `2xx 9 990, 5xx 10, timeout 0, error 0`: the classes every intended request ended in.
fn outcome_counts(r: &RunRecord) -> String {
    r.outcomes.iter().map(|(class, n)| format!("{class} {}", n)).collect::<Vec<_>>().join(", ")
}

/// Red when the progress lines' stream (stderr) is a terminal that shows colour (and
/// `NO_COLOR` unset); plain otherwise.
fn red(text: &str) -> String {
    use std::io::IsTerminal;
    paint_red(text, std::io::stderr().is_terminal())
}

/// As [`red`], for the table, which goes to stdout.
fn red_on_stdout(text: &str) -> String {
    use std::io::IsTerminal;
    paint_red(text, std::io::stdout().is_terminal())
}

fn paint_red(text: &str, terminal: bool) -> String {
    if terminal && std::env::var_os("NO_COLOR").is_none() { format!("\x1b[31m{text}\x1b[0m") } else { text.to_owned() }
}

/// The line printed as a record arrives while a run measures; none for records that are a
/// part of another's line (sweep steps, the run behind a scale point, placement).
pub fn record_line(record: &Record) -> Option<String> {
    Some(match record {
        Record::Calibration(c) => format!(
            "calibration: engine {} req/s, wrk {} req/s against baseline (engine/wrk {})",
            rate(c.engine_rps.median),
            opt(c.wrk_rps.as_ref().map(|w| w.median), rate),
            opt(c.engine_to_wrk, ratio)
        ),
        Record::Run(r) => match r.scenario {
            Scenario::Sweep | Scenario::Scale => return None,
            // One line per variant once every point ran: `points_summary`, `population_summary`.
            Scenario::Rtt | Scenario::Tokensize | Scenario::Population => return None,
            _ => progress_line(r),
        },
        Record::Sweep(s) => format!(
            "  {:<16} sweep  knee {}",
            s.variant,
            s.knee_rps.map_or("none within the steps".to_owned(), |k| format!("at {} req/s", rate(k)))
        ),
        // The scenario's one line per variant comes when it ends: `revocation_summary`.
        Record::Revocation(_) => return None,
        // One line per variant once its faults or sizes are all measured: `outage_summary`,
        // `scale_summary`.
        Record::Outage(_) | Record::Scale(_) => return None,
        Record::Note(note) => format!("  note: {note}"),
        Record::Noise { .. } => return None,
        Record::Placement { .. } => return None,
    })
}

/// The summary table of a results file.
pub fn table(results: &Results) -> String {
    let mut out = String::new();
    if let Some(c) = &results.calibration {
        let _ = writeln!(
            out,
            "Generator calibration against baseline: engine {} req/s, wrk {} req/s, engine/wrk {} ({} × {} s, {} connections)",
            rate(c.engine_rps.median),
            c.wrk_rps.as_ref().map_or("–".into(), |w| rate(w.median)),
            opt(c.engine_to_wrk, ratio),
            c.repetitions,
            c.duration_s,
            c.connections
        );
    }
    let mut variants: Vec<&str> = Vec::new();
    for r in results
        .runs
        .iter()
        .filter(|r| matches!(r.scenario, Scenario::Steady | Scenario::Cost | Scenario::Sweep | Scenario::Login))
    {
        if !variants.contains(&r.variant.as_str()) {
            variants.push(&r.variant);
        }
    }
    if !variants.is_empty() {
        variant_table(&mut out, results, &variants);
    }
    let steady = results.runs.iter().find(|r| r.scenario == Scenario::Steady);
    if let Some(s) = steady {
        let _ = writeln!(
            out,
            "\nRounds: {} of {} s after {} s warm-up on the same connections, {} connections, every variant once per round in a shuffled order; [95 %] is the interval of the median over the rounds.",
            s.repetitions, s.duration_s, s.warmup_s, s.connections
        );
    }
    rate_table(&mut out, results);
    if !results.revocation.is_empty() {
        let _ = writeln!(
            out,
            "\nrevocation window (last accepted probe after the acknowledgement), median over trials, ms; 1 / 2 instances:"
        );
        let kinds = Kind::ALL;
        let mut header = format!("{:<20}", "variant");
        for k in kinds {
            let _ = write!(header, " {:>17}", k.as_str());
        }
        let _ = writeln!(out, "{header}");
        let mut variants: Vec<&str> = Vec::new();
        for r in &results.revocation {
            if !variants.contains(&r.variant.as_str()) {
                variants.push(&r.variant);
            }
        }
        for v in variants {
            let mut line = format!("{v:<20}");
            for k in kinds {
                let cell = |instances: u32| {
                    revocations::stats(results, v, k, instances)
                        .filter(revocations::WindowStats::measured)
                        .map_or("–".to_owned(), |s| s.median_ms.map_or("∞".to_owned(), |w| format!("{w:.0}")))
                };
                let _ = write!(line, " {:>17}", format!("{} / {}", cell(1), cell(2)));
            }
            let _ = writeln!(out, "{line}");
        }
    }
    if !results.not_measured.is_empty() {
        let _ = writeln!(out, "not measured: {}", results.not_measured.join("; "));
    }
    out
}

/// One line per variant: capacity (closed loop) with its interval, then what a request costs
/// at the rate common to every variant (CPU of server and store, latency from the intended send
/// time), its sweep knee and its login rate.
fn variant_table(out: &mut String, results: &Results, variants: &[&str]) {
    let common = results.runs.iter().find(|r| r.scenario == Scenario::Cost).and_then(|r| r.rate_rps);
    let _ = writeln!(
        out,
        "\n{:<20} {:>24} {:>24} {:>24} {:>9} {:>8} {:>7} {:>11} {:>9}",
        "variant",
        "capacity req/s [95 %]",
        "server CPU/req [95 %]",
        "store CPU/req [95 %]",
        "p99",
        "store/r",
        "token B",
        "knee req/s",
        "logins/s"
    );
    for &v in variants {
        let steady = results.steady(v);
        let cost = results.run(v, Scenario::Cost);
        let login = results.run(v, Scenario::Login);
        let knee = results.sweep(v).map(|s| s.knee_rps);
        let throughput = steady.map_or("–".into(), |s| match s.throughput_rps.ci95 {
            Some(ci) => interval(s.throughput_rps.median, ci, rate),
            None => rate(s.throughput_rps.median),
        });
        let cpu = |e: Option<&Estimate>| e.map_or_else(|| "–".to_owned(), |e| interval(e.median, e.ci95, ns));
        let _ = writeln!(
            out,
            "{:<20} {:>24} {:>24} {:>24} {:>9} {:>8} {:>7} {:>11} {:>9}{}",
            v,
            throughput,
            cpu(cost.and_then(|c| c.server_cpu_ns_per_request.as_ref())),
            cpu(cost.and_then(|c| c.redis_cpu_ns_per_request.as_ref())),
            cost.map_or("–".into(), |c| us(c.latency_us.p99)),
            opt(cost.or(steady).and_then(|s| s.redis_commands_per_request), per_request),
            steady.or(cost).and_then(|s| s.token_bytes).map_or("–".into(), |t| t.to_string()),
            match knee {
                Some(Some(k)) => rate(k),
                Some(None) => "none".into(),
                None => "–".into(),
            },
            login.map_or("–".into(), |l| rate(l.throughput_rps.median)),
            if steady.is_some_and(|s| s.generator_bound) { "  ← generator-bound" } else { "" },
        );
    }
    if let Some(rate_rps) = common {
        let _ = writeln!(
            out,
            "CPU per request and p99 (from the intended send time) at {} req/s, the rate every variant was offered.",
            rate(rate_rps)
        );
    }
}

/// One line per fixed-rate run: what was offered and achieved, latency from the intended send
/// time, and every intended request by how it ended, drops in red.
fn rate_table(out: &mut String, results: &Results) {
    let runs: Vec<&RunRecord> = results.runs.iter().filter(|r| r.scenario == Scenario::Rate).collect();
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nfixed rate (open loop; latency from the intended send time):\n{:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}  outcomes",
        "variant", "offered", "achieved", "p50", "p99", "max", "gen µs", "dropped"
    );
    for r in runs {
        let dropped = r.dropped.unwrap_or(0);
        // Padded before it is painted, so the escape codes do not count towards the width.
        let dropped = if dropped > 0 { red_on_stdout(&format!("{dropped:>8}")) } else { format!("{dropped:>8}") };
        let invalid = if r.latency_valid { "" } else { "  latency invalid: generator dropped sends" };
        let bound = if r.generator_bound { "  ← generator-bound" } else { "" };
        let _ = writeln!(
            out,
            "{:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {dropped}  {}{invalid}{bound}",
            r.variant,
            opt(r.offered_rps, rate),
            opt(r.achieved_rps, rate),
            us(r.latency_us.p50),
            us(r.latency_us.p99),
            us(r.latency_us.max),
            opt(r.generator_cpu_us_per_request, cpu_us),
            outcome_counts(r),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// The committed report fixture (schema 5) with two fixed-rate runs of jwt added: one
    /// clean, one whose generator dropped sends.
    fn with_rate_runs() -> Results {
        let mut results: Results = serde_json::from_str(include_str!("../../../tests/fixtures/results.json")).unwrap();
        let steady = results.steady("jwt").unwrap().clone();
        for (offered, dropped) in [(1000.0, 0), (5000.0, 1234)] {
            let mut r = steady.clone();
            r.scenario = Scenario::Rate;
            r.schedule = "open".into();
            r.offered_rps = Some(offered);
            r.achieved_rps = Some(offered - dropped as f64 / 5.0);
            r.dropped = Some(dropped);
            r.latency_valid = dropped == 0;
            r.generator_bound = dropped > 0;
            r.outcomes = [("2xx".to_owned(), 4997), ("5xx".to_owned(), 1), ("timeout".to_owned(), 2)].into();
            results.runs.push(r);
        }
        results
    }

    #[test]
    fn the_table_lists_fixed_rate_runs_with_their_drops() {
        let text = table(&with_rate_runs());
        let block = text.split("fixed rate (open loop").nth(1).expect("no fixed-rate block");
        let clean = block.lines().find(|l| l.starts_with("jwt") && l.contains(" 1000 ")).unwrap();
        assert!(clean.contains("2xx 4997, 5xx 1, timeout 2") && !clean.contains("invalid"), "{clean}");
        let bad = block.lines().find(|l| l.starts_with("jwt") && l.contains(" 5000 ")).unwrap();
        assert!(bad.contains(" 1234  2xx") && bad.contains("latency invalid: generator dropped sends"), "{bad}");
        assert!(bad.ends_with("← generator-bound"), "{bad}");
        // The steady table is still there, before it.
        assert!(text.find("capacity req/s").unwrap() < text.find("fixed rate").unwrap());
    }

    /// The fixture's revocation records (one trial each) with two more trials of jwt's
    /// logout on two instances: 2 s and 9 s against the fixture's first.
    fn with_trials() -> Results {
        let mut results: Results = serde_json::from_str(include_str!("../../../tests/fixtures/results.json")).unwrap();
        let first = results.revocation("jwt", Kind::Logout, 2).unwrap().clone();
        for (trial, window) in [(1, 2000.0), (2, 9000.0)] {
            let mut r = first.clone();
            r.trial = trial;
            r.window_ms = Some(window);
            r.window_answer_ms = Some(window + 1.0);
            r.expected_bound_ms = Some(9500.0);
            results.revocation.push(r);
        }
        results
    }

    #[test]
    fn a_variant_gets_one_revocation_line_however_many_records() {
        let results = with_trials();
        assert!(record_line(&Record::Revocation(results.revocation.clone())).is_none());
        let line = revocation_summary(&results, "session").unwrap();
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(line.starts_with("  session          revoke 1 trial(s) × 7 kinds on 1 and 2 inst."), "{line}");
        assert!(line.contains("longest median 0.0 ms"), "{line}");
        let line = revocation_summary(&results, "jwt").unwrap();
        assert!(line.contains("revoke 3 trial(s) × 7 kinds"), "{line}");
        assert!(revocation_summary(&results, "no-such-variant").is_none());
    }

    #[test]
    fn the_revocation_table_shows_the_median_over_trials() {
        let results = with_trials();
        let first = results.revocation("jwt", Kind::Logout, 2).unwrap().window_ms;
        let mut windows = [first.unwrap_or(f64::INFINITY), 2000.0, 9000.0];
        windows.sort_by(f64::total_cmp);
        let median = windows[1];
        let text = table(&results);
        let jwt = text.lines().rfind(|l| l.starts_with("jwt ")).unwrap();
        let logout = jwt.split_whitespace().skip(1).take(3).collect::<Vec<_>>().join(" ");
        let shown = if median.is_finite() { format!("{median:.0}") } else { "∞".to_owned() };
        assert!(logout.ends_with(&format!("/ {shown}")), "{jwt}");
    }

    #[test]
    fn a_run_of_fixed_rates_alone_has_no_empty_steady_table() {
        let mut results = with_rate_runs();
        results.runs.retain(|r| r.scenario == Scenario::Rate);
        results.revocation.clear();
        let text = table(&results);
        assert!(!text.contains("capacity req/s"), "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("jwt")).count(), 2, "{text}");
    }
}
