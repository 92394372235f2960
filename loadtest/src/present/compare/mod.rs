//! `authbench compare A B`: two runs side by side, with B/A ratios and a verdict per figure
//! (before and after a change, two machines, two Redis deployments).
//!
//! The header says what each run is and which facts of the environment and of the method
//! differ (`header`); a different method is warned about, because then a ratio compares the
//! method as well as the code. Then per variant every figure either run has (`rows`, and `rate`
//! for fixed-rate runs), each judged (`judge`). Units are chosen here, at printing time;
//! results hold base units.
//!
//! Verdicts: a figure measured in rounds (capacity, CPU per request and latency at the common
//! rate, rtt, tokensize and population points) is "~ within interval" when the two runs' 95 %
//! intervals overlap, else faster or slower (better or worse). Figures without an interval (windows,
//! availability, the one-pass knee) are "~ within noise" inside a band (5 %, or the figure's
//! resolution), else better or worse; counted figures (token bytes, errors) by any difference
//! at all. Then the guide's verdicts of both runs, and every one that differs (`verdicts`).

use std::fmt::Write;
use std::path::{Path, PathBuf};

mod header;
mod judge;
mod population;
mod rate;
mod rows;
mod verdicts;

use crate::results::{self, Results};
use header::{describe, environment_differences, method_differences};
use judge::{Figure, NOISE, Row, ratio};
use rows::{rows, variants};

use super::report::generator_bound_rule;

/// Width of the metric column, of each run's column, and of the ratio column.
const NAME_W: usize = 39;
const CELL_W: usize = 26;
const RATIO_W: usize = 5;
/// Appended to a throughput the load generator, not the server, set the pace of.
const GENERATOR_BOUND: &str = " †";
/// Appended to a latency that is not the server's (the generator dropped sends).
const NOT_SERVERS: &str = " ✗";
/// Longest line of running text.
const WIDTH: usize = 118;

/// `ARG` may be a run directory holding results.json, or the path of a results.json.
pub fn results_path(arg: &Path) -> PathBuf {
    if arg.is_dir() { arg.join("results.json") } else { arg.to_path_buf() }
}

/// Loads both runs and renders the comparison; the labels are the paths as given.
pub fn compare_paths(a: &Path, b: &Path) -> anyhow::Result<String> {
    for arg in [a, b] {
        anyhow::ensure!(arg.exists(), "{}: no such run directory or results.json", arg.display());
    }
    let ra = results::load(&results_path(a))?;
    let rb = results::load(&results_path(b))?;
    Ok(compare(&ra, &rb, &a.display().to_string(), &b.display().to_string()))
}

/// `authbench compare A B`: prints the comparison.
pub fn print(a: &Path, b: &Path) -> anyhow::Result<()> {
    print!("{}", compare_paths(a, b)?);
    Ok(())
}

/// Writes `text` as lines of at most `WIDTH` characters, breaking at spaces.
fn wrapped(out: &mut String, text: &str) {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > WIDTH {
            let _ = writeln!(out, "{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{line}");
    }
}

fn row_line(out: &mut String, name: &str, a: &str, b: &str, ratio: &str, verdict: &str) {
    let line = format!("  {name:<NAME_W$} {a:>CELL_W$}  {b:>CELL_W$}  {ratio:>RATIO_W$}  {verdict}");
    let _ = writeln!(out, "{}", line.trim_end());
}

/// Two runs side by side: what each is, what differs between them, then per variant every
/// figure of A and B with B/A and a verdict.
pub fn compare(a: &Results, b: &Results, a_label: &str, b_label: &str) -> String {
    let mut out = String::new();
    describe(&mut out, "A", a_label, a);
    describe(&mut out, "B", b_label, b);
    if a.run_id == b.run_id {
        let _ = writeln!(out, "note: A and B have the same run id.");
    }
    let _ = writeln!(out);

    let env = environment_differences(a, b);
    if env.is_empty() {
        let _ = writeln!(
            out,
            "Environment: the same machine, OS, kernel, rustc, Redis, wrk, crate versions and CPU placement."
        );
    } else {
        let names: Vec<&str> = env.iter().map(|(n, _)| *n).collect();
        let _ = writeln!(out, "Environment differs (A → B): {}", names.join(", "));
        for (name, detail) in &env {
            let _ = writeln!(out, "  {name:<10} {detail}");
        }
    }
    let method = method_differences(a, b);
    if method.is_empty() {
        let _ = writeln!(out, "Method: the same settings (repetitions, durations, connections, sweep, login).");
    } else {
        wrapped(
            &mut out,
            &format!(
                "WARNING: the runs were measured with different methods ({}): a ratio below compares the methods as \
                 well as what was measured.",
                method.join(", ")
            ),
        );
    }
    for (letter, r) in [("A", a), ("B", b)] {
        if !r.complete {
            let other = if letter == "A" { "B" } else { "A" };
            let why = if r.interrupted { " (interrupted)" } else { "" };
            wrapped(
                &mut out,
                &format!("WARNING: {letter} is incomplete{why}: what it did not measure shows as \"only in {other}\"."),
            );
        }
    }

    let table: Vec<(&str, Vec<Row>)> = variants(a, b).into_iter().map(|v| (v, rows(a, b, v))).collect();
    let verdicts: Vec<&str> = table.iter().flat_map(|(_, rows)| rows.iter().map(Row::verdict)).collect();
    let tally = |words: &[&str]| verdicts.iter().filter(|v| words.contains(v)).count();
    let _ = writeln!(out);
    wrapped(
        &mut out,
        &format!(
            "B against A: {} better or faster, {} worse or slower, {} unchanged (same, or within interval or noise), \
         {} only in A, {} only in B.",
            tally(&["faster", "better"]),
            tally(&["slower", "worse"]),
            tally(&["= same", "~ within interval", "~ within noise"]),
            tally(&["only in A"]),
            tally(&["only in B"]),
        ),
    );
    let _ = writeln!(out);
    let _ =
        writeln!(out, "{:<w$} {:>CELL_W$}  {:>CELL_W$}  {:>RATIO_W$}  verdict", "", "A", "B", "B/A", w = NAME_W + 2);
    let mut bound = false;
    let mut not_servers = false;
    for (i, (v, rows)) in table.iter().enumerate() {
        if i > 0 {
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "{v}");
        for row in rows {
            let cell = |f: Option<&Figure>| f.map_or_else(|| "–".to_owned(), |f| f.text.clone());
            let (fa, fb) = (row.a.as_ref(), row.b.as_ref());
            bound |= [fa, fb].iter().flatten().any(|f| f.text.ends_with(GENERATOR_BOUND));
            not_servers |= [fa, fb].iter().flatten().any(|f| f.text.ends_with(NOT_SERVERS));
            let ratio = match (fa, fb) {
                (Some(x), Some(y)) => ratio(x, y),
                _ => "–".to_owned(),
            };
            row_line(&mut out, &row.name, &cell(fa), &cell(fb), &ratio, row.verdict());
        }
    }

    verdicts::section(&mut out, a, b);
    if let Some(line) = rows::drift_line(a, b) {
        let _ = writeln!(out);
        wrapped(&mut out, &line);
    }

    let _ = writeln!(out);
    if bound {
        let (rule_a, rule_b) = (generator_bound_rule(a), generator_bound_rule(b));
        let rule = if rule_a == rule_b { rule_a } else { format!("in A, {rule_a}; in B, {rule_b}") };
        wrapped(&mut out, &format!("† generator-bound: {rule}."));
    }
    if not_servers {
        wrapped(
            &mut out,
            "✗ not the server's latency: the generator dropped sends at its connection limit, so the requests it \
             could not send are missing from the percentile and the generator, not the server, was the limit.",
        );
    }
    wrapped(
        &mut out,
        &format!(
            "B/A is B's figure over A's (– when either is missing, zero or unbounded). A figure measured in \
             rounds (capacity, CPU per request and latency at the common rate, rtt, tokensize and population \
             points) is \"~ within interval\" when the two runs' 95 % intervals overlap; figures without an interval are \"~ within \
             noise\" under a {:.0} % difference (or their resolution: 1 ms for revocation windows, one timeline bucket \
             for recovery, 1 percentage point for availability, 1 % for an achieved rate; a third for the one-pass \
             sweep knee, 15 % for the one-window login rate); token bytes, errors and dropped sends count any \
             difference.",
            NOISE * 100.0
        ),
    );
    wrapped(
        &mut out,
        "Revocation: how long a revoked token kept working after the acknowledgement, per kind, on 1 and 2 \
         instances. Sweep knee: the first offered rate where latency turns up; none when it stays flat up to the \
         steady maximum. Rate: open loop at one fixed rate, paired by the rate offered: the rate achieved, p99 \
         from the intended send time, and sends the generator dropped. Outage: availability during the store's \
         fault, recovery once the store is back. Scale: store memory per entry. Population N/lifetime: the point \
         at N requests per access-token lifetime, Redis commands (cmd) and server CPU per user request, the calls \
         its client added included.",
    );
    out
}
