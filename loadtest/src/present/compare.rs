//! About 570 lines, kept whole: the rows, their judges and the header are one table builder;
//! the next figure added should move the header and environment diff to a file of their own.
//!
//! `authbench compare A B`: two runs side by side, with B/A ratios and a verdict per figure
//! (before and after a change, two machines, two Redis deployments).
//!
//! The header says what each run is and which facts of the environment and of the method
//! differ; a different method is warned about, because then a ratio compares the method as
//! well as the code. Units are chosen here, at printing time; results hold base units.
//!
//! Verdicts: throughput is "~ within spread" when the min..max ranges of the two runs'
//! repetitions overlap, else faster or slower. Figures without a spread (percentiles over all
//! repetitions, costs, windows) are "~ within noise" when they differ by less than 5 % (or the
//! figure's resolution), else better or worse; counted figures (token bytes, errors) by any
//! difference at all.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::present::units::{bytes, count, cpu_us, ms, pct, per_request, rate, us};
use crate::results::{self, Kind, Method, Results, RevocationRecord, RunRecord, Scenario};

/// Figures without a spread that differ by less than this share are called noise.
const NOISE: f64 = 0.05;
/// Width of the metric column, of each run's column, and of the ratio column.
const NAME_W: usize = 39;
const CELL_W: usize = 26;
const RATIO_W: usize = 5;
/// Appended to a throughput measured at the load generator's own ceiling.
const GENERATOR_BOUND: &str = " †";
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

/// Which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
}

/// How large a difference must be before it counts.
#[derive(Debug, Clone, Copy)]
enum Noise {
    /// Throughput: overlapping min..max ranges of the repetitions are within spread (with a
    /// single repetition on either side, the relative band).
    Spread,
    /// Within `relative` of A's figure, or within `absolute` (the figure's resolution).
    Band { relative: f64, absolute: f64 },
    /// Counted figures: any difference is real.
    Exact,
}

/// How a metric is judged.
#[derive(Debug, Clone, Copy)]
struct Judge {
    better: Better,
    /// Words for a real improvement and a real regression.
    up: &'static str,
    down: &'static str,
    noise: Noise,
}

const THROUGHPUT: Judge = Judge { better: Better::Higher, up: "faster", down: "slower", noise: Noise::Spread };
const LATENCY: Judge =
    Judge { better: Better::Lower, up: "better", down: "worse", noise: Noise::Band { relative: NOISE, absolute: 0.0 } };
const HIGHER: Judge = Judge {
    better: Better::Higher,
    up: "better",
    down: "worse",
    noise: Noise::Band { relative: NOISE, absolute: 0.0 },
};
const COMMANDS: Judge =
    Judge { better: Better::Lower, up: "better", down: "worse", noise: Noise::Band { relative: 0.02, absolute: 0.02 } };
const COUNTED: Judge = Judge { better: Better::Lower, up: "better", down: "worse", noise: Noise::Exact };
/// Revocation windows: probes go out about every half millisecond.
const WINDOW: Judge =
    Judge { better: Better::Lower, up: "better", down: "worse", noise: Noise::Band { relative: NOISE, absolute: 1.0 } };
/// Availability: within one percentage point.
const AVAILABILITY: Judge =
    Judge { better: Better::Higher, up: "better", down: "worse", noise: Noise::Band { relative: 0.0, absolute: 0.01 } };

/// One run's figure in one row.
#[derive(Debug, Clone)]
struct Figure {
    text: String,
    /// What is compared; `f64::INFINITY` for "still accepted at the cap", "never", "no knee".
    value: f64,
    /// min..max over repetitions, when there were at least two.
    spread: Option<(f64, f64)>,
}

impl Figure {
    fn new(text: String, value: f64) -> Self {
        Self { text, value, spread: None }
    }
}

/// One row: a metric of one variant in both runs.
#[derive(Debug)]
struct Row {
    name: String,
    judge: Judge,
    a: Option<Figure>,
    b: Option<Figure>,
}

fn ratio(a: &Figure, b: &Figure) -> String {
    if !a.value.is_finite() || !b.value.is_finite() || a.value == 0.0 {
        return "–".to_owned();
    }
    let r = b.value / a.value;
    match r {
        r if !r.is_finite() => "–".to_owned(),
        r if r >= 100.0 => format!("{r:.0}"),
        r if r > 0.0 && r < 0.01 => "<0.01".to_owned(),
        r => format!("{r:.2}"),
    }
}

fn verdict(judge: Judge, a: Option<&Figure>, b: Option<&Figure>) -> &'static str {
    let (a, b) = match (a, b) {
        (Some(a), Some(b)) => (a, b),
        (Some(_), None) => return "only in A",
        (None, Some(_)) => return "only in B",
        (None, None) => return "",
    };
    if a.value == b.value {
        return "= same";
    }
    let (x, y) = (a.value, b.value);
    let within = x.is_finite()
        && y.is_finite()
        && match judge.noise {
            Noise::Spread => match (a.spread, b.spread) {
                (Some((a_min, a_max)), Some((b_min, b_max))) => a_min <= b_max && b_min <= a_max,
                _ => (y - x).abs() <= NOISE * x.abs(),
            },
            Noise::Band { relative, absolute } => (y - x).abs() <= (relative * x.abs()).max(absolute),
            Noise::Exact => false,
        };
    if within {
        return if matches!(judge.noise, Noise::Spread) && a.spread.is_some() && b.spread.is_some() {
            "~ within spread"
        } else {
            "~ within noise"
        };
    }
    let b_higher = y > x;
    if b_higher == (judge.better == Better::Higher) { judge.up } else { judge.down }
}

fn window(x: &RevocationRecord) -> Figure {
    match x.window_ms {
        Some(w) => Figure::new(ms(w), w),
        None => Figure::new(format!("still accepted at {:.0} s cap", x.cap_ms / 1000.0), f64::INFINITY),
    }
}

fn throughput(r: &RunRecord) -> Figure {
    let t = &r.throughput_rps;
    let mut text = format!("{} ({}..{})", rate(t.median), rate(t.min), rate(t.max));
    if r.generator_bound {
        text.push_str(GENERATOR_BOUND);
    }
    Figure { text, value: t.median, spread: (t.values.len() >= 2).then_some((t.min, t.max)) }
}

/// Variants in order of first appearance in A, then in B.
fn variants<'r>(a: &'r Results, b: &'r Results) -> Vec<&'r str> {
    let mut out: Vec<&str> = Vec::new();
    for r in [a, b] {
        let names = r
            .runs
            .iter()
            .map(|x| x.variant.as_str())
            .chain(r.sweeps.iter().map(|x| x.variant.as_str()))
            .chain(r.revocation.iter().map(|x| x.variant.as_str()))
            .chain(r.outage.iter().map(|x| x.variant.as_str()))
            .chain(r.scale.iter().map(|x| x.variant.as_str()));
        for name in names {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// Keys in order of first appearance in A, then in B.
fn union<K: PartialEq>(a: Vec<K>, b: Vec<K>) -> Vec<K> {
    let mut out = Vec::new();
    for k in a.into_iter().chain(b) {
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// Every row of one variant that has a figure in at least one run.
fn rows(a: &Results, b: &Results, v: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut add = |name: String, judge: Judge, f: &dyn Fn(&Results) -> Option<Figure>| {
        let (fa, fb) = (f(a), f(b));
        if fa.is_some() || fb.is_some() {
            rows.push(Row { name, judge, a: fa, b: fb });
        }
    };
    add("steady req/s (min..max)".into(), THROUGHPUT, &|r| r.steady(v).map(throughput));
    add("steady p50".into(), LATENCY, &|r| r.steady(v).map(|s| Figure::new(us(s.latency_us.p50), s.latency_us.p50)));
    add("steady p99".into(), LATENCY, &|r| r.steady(v).map(|s| Figure::new(us(s.latency_us.p99), s.latency_us.p99)));
    add("steady p99.9".into(), LATENCY, &|r| {
        r.steady(v).map(|s| Figure::new(us(s.latency_us.p999), s.latency_us.p999))
    });
    if [a, b].iter().any(|r| r.steady(v).is_some_and(|s| s.errors > 0)) {
        add("steady errors".into(), COUNTED, &|r| {
            r.steady(v).map(|s| Figure::new(s.errors.to_string(), s.errors as f64))
        });
    }
    add("server CPU µs/request".into(), LATENCY, &|r| {
        r.steady(v).and_then(|s| s.server_cpu_us_per_request).map(|c| Figure::new(cpu_us(c), c))
    });
    add("Redis commands/request".into(), COMMANDS, &|r| {
        r.steady(v).and_then(|s| s.redis_commands_per_request).map(|c| Figure::new(per_request(c), c))
    });
    add("Redis bytes/request".into(), LATENCY, &|r| {
        r.steady(v).and_then(|s| s.redis_bytes_per_request).map(|b| Figure::new(bytes(b), b))
    });
    add("token bytes".into(), COUNTED, &|r| {
        r.steady(v).and_then(|s| s.token_bytes).map(|t| Figure::new(format!("{t} B"), t as f64))
    });
    add("sweep knee req/s".into(), HIGHER, &|r| {
        r.sweeps.iter().find(|s| s.variant == v).map(|s| match s.knee_rps {
            Some(k) => Figure::new(rate(k), k),
            None => Figure::new("none (flat)".into(), f64::INFINITY),
        })
    });
    add("login logins/s".into(), THROUGHPUT, &|r| {
        r.run(v, Scenario::Login).map(|l| {
            let t = &l.throughput_rps;
            Figure { text: rate(t.median), value: t.median, spread: (t.values.len() >= 2).then_some((t.min, t.max)) }
        })
    });

    let of_variant = |r: &Results| -> Vec<(Kind, u32)> {
        r.revocation.iter().filter(|x| x.variant == v).map(|x| (x.kind, x.instances)).collect()
    };
    let mut keys = union(of_variant(a), of_variant(b));
    // Kinds in protocol order, one instance before two.
    keys.sort_by_key(|(kind, instances)| (Kind::ALL.iter().position(|k| k == kind), *instances));
    for (kind, instances) in keys {
        add(format!("revoke {} ({instances} inst.)", kind.as_str()), WINDOW, &|r| {
            r.revocation.iter().find(|x| x.variant == v && x.kind == kind && x.instances == instances).map(window)
        });
    }

    let faults = |r: &Results| -> Vec<_> { r.outage.iter().filter(|x| x.variant == v).map(|x| x.fault).collect() };
    for fault in union(faults(a), faults(b)) {
        add(format!("outage {}: availability", fault.as_str()), AVAILABILITY, &|r| {
            r.outage(v, fault).map(|x| Figure::new(pct(x.availability_during), x.availability_during))
        });
        let bucket = [a, b].iter().filter_map(|r| r.outage(v, fault)).map(|x| x.bucket_ms).fold(0.0, f64::max);
        let judge = Judge { noise: Noise::Band { relative: NOISE, absolute: bucket }, ..LATENCY };
        add(format!("outage {}: recovery", fault.as_str()), judge, &|r| {
            r.outage(v, fault).map(|x| match x.recovery_ms {
                Some(m) => Figure::new(ms(m), m),
                None => Figure::new("never".into(), f64::INFINITY),
            })
        });
    }

    // rtt and tokensize points, by the round trip injected and the claim bytes added.
    let point = |r: &Results, scenario: Scenario, key: &dyn Fn(&RunRecord) -> String| -> Vec<String> {
        r.runs_of(v, scenario).into_iter().map(key).collect()
    };
    let rtt_key = |x: &RunRecord| x.redis_rtt_ms.map_or_else(String::new, |m| format!("{m}"));
    for key in union(point(a, Scenario::Rtt, &rtt_key), point(b, Scenario::Rtt, &rtt_key)) {
        add(format!("rtt {key} ms: req/s"), THROUGHPUT, &|r| {
            r.runs_of(v, Scenario::Rtt).into_iter().find(|x| rtt_key(x) == key).map(throughput)
        });
    }
    let pad_key = |x: &RunRecord| x.claims_padding_bytes.map_or_else(String::new, |p| p.to_string());
    for key in union(point(a, Scenario::Tokensize, &pad_key), point(b, Scenario::Tokensize, &pad_key)) {
        add(format!("tokensize +{key} B: req/s"), THROUGHPUT, &|r| {
            r.runs_of(v, Scenario::Tokensize).into_iter().find(|x| pad_key(x) == key).map(throughput)
        });
    }

    let sizes = |r: &Results| -> Vec<u64> { r.scale.iter().filter(|x| x.variant == v).map(|x| x.entries).collect() };
    for entries in union(sizes(a), sizes(b)) {
        let kind = [a, b].iter().find_map(|r| r.scale(v, entries)).map_or("", |x| x.entry_kind.as_str());
        add(format!("scale {} {kind}: bytes/entry", count(entries)), LATENCY, &|r| {
            r.scale(v, entries).map(|x| Figure::new(bytes(x.bytes_per_entry), x.bytes_per_entry))
        });
    }
    rows
}

fn redis_version(env: &results::Environment) -> String {
    match &env.redis_server {
        Some(text) => {
            text.split_whitespace().find_map(|w| w.strip_prefix("v=")).map_or_else(|| text.clone(), str::to_owned)
        }
        None => "none".to_owned(),
    }
}

fn short_commit(commit: Option<&str>) -> String {
    match commit {
        Some(c) => {
            let (hash, dirty) = c.strip_suffix("-dirty").map_or((c, ""), |h| (h, "-dirty"));
            format!("{}{dirty}", hash.get(..12).unwrap_or(hash))
        }
        None => "unknown".to_owned(),
    }
}

fn describe(out: &mut String, letter: &str, label: &str, r: &Results) {
    let env = &r.environment;
    let state = if r.complete {
        "complete"
    } else if r.interrupted {
        "INTERRUPTED"
    } else {
        "INCOMPLETE"
    };
    let suite = match &r.target {
        Some(t) => format!("{} {t}", r.suite),
        None => r.suite.clone(),
    };
    let _ = writeln!(out, "{letter}  {label}");
    let _ = writeln!(
        out,
        "   run {}, suite {suite}, {state}; {}, {} cores; commit {}; redis {}",
        r.run_id,
        env.cpu_model,
        env.cores,
        short_commit(env.git_commit.as_deref()),
        redis_version(env),
    );
}

/// Facts of the environment that differ, each with what A and B had.
fn environment_differences(a: &Results, b: &Results) -> Vec<(&'static str, String)> {
    let (ea, eb) = (&a.environment, &b.environment);
    let mut out = Vec::new();
    let mut fact = |name: &'static str, x: String, y: String| {
        if x != y {
            out.push((name, format!("{x} → {y}")));
        }
    };
    fact("machine", format!("{}, {} cores", ea.cpu_model, ea.cores), format!("{}, {} cores", eb.cpu_model, eb.cores));
    fact("os", ea.os.clone(), eb.os.clone());
    fact("kernel", ea.kernel.clone(), eb.kernel.clone());
    fact("rustc", ea.rustc.clone(), eb.rustc.clone());
    fact("redis", redis_version(ea), redis_version(eb));
    fact("wrk", ea.wrk.clone().unwrap_or_else(|| "none".into()), eb.wrk.clone().unwrap_or_else(|| "none".into()));
    fact("authbench", ea.authbench_version.clone(), eb.authbench_version.clone());
    let asked = |p: &results::Placement| format!("server {}, generator {}, redis {}", p.server, p.generator, p.redis);
    fact("placement", asked(&a.placement), asked(&b.placement));
    let observed =
        |p: &results::Placement| p.observed.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
    fact("CPUs seen", observed(&a.placement), observed(&b.placement));
    let names = union(ea.crates.keys().collect(), eb.crates.keys().collect());
    let crates: Vec<String> = names
        .into_iter()
        .filter_map(|name| {
            let (x, y) = (ea.crates.get(name), eb.crates.get(name));
            (x != y).then(|| {
                let show = |v: Option<&String>| v.map_or_else(|| "absent".to_owned(), Clone::clone);
                format!("{name} {} → {}", show(x), show(y))
            })
        })
        .collect();
    if !crates.is_empty() {
        out.push(("crates", crates.join(", ")));
    }
    out
}

/// Settings of the method (and the suite) that differ, as `name A → B`.
fn method_differences(a: &Results, b: &Results) -> Vec<String> {
    let (ma, mb) = (&a.method, &b.method);
    let mut out = Vec::new();
    let mut setting = |name: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{name} {x} → {y}"));
        }
    };
    setting("suite", a.suite.clone(), b.suite.clone());
    setting("repetitions", ma.repetitions.to_string(), mb.repetitions.to_string());
    setting("server instances", ma.instances.to_string(), mb.instances.to_string());
    let redis = |m: &Method| {
        m.redis_cluster
            .as_ref()
            .map_or_else(|| "one redis-server".to_owned(), |c| format!("cluster of {} masters", c.masters.len()))
    };
    setting("Redis", redis(ma), redis(mb));
    setting("steady duration", format!("{} s", ma.steady_duration_s), format!("{} s", mb.steady_duration_s));
    setting("warm-up", format!("{} s", ma.warmup_s), format!("{} s", mb.warmup_s));
    setting("connections", ma.connections.to_string(), mb.connections.to_string());
    setting("generator threads", ma.generator_threads.to_string(), mb.generator_threads.to_string());
    setting("sweep fractions", format!("{:?}", ma.sweep_fractions), format!("{:?}", mb.sweep_fractions));
    setting("sweep step", format!("{} s", ma.sweep_step_s), format!("{} s", mb.sweep_step_s));
    setting("login duration", format!("{} s", ma.login_duration_s), format!("{} s", mb.login_duration_s));
    setting("login users", ma.login_users.to_string(), mb.login_users.to_string());
    setting("request timeout", format!("{} s", ma.request_timeout_s), format!("{} s", mb.request_timeout_s));
    out
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
    let verdicts: Vec<&str> =
        table.iter().flat_map(|(_, rows)| rows.iter().map(|r| verdict(r.judge, r.a.as_ref(), r.b.as_ref()))).collect();
    let tally = |words: &[&str]| verdicts.iter().filter(|v| words.contains(v)).count();
    let _ = writeln!(out);
    wrapped(
        &mut out,
        &format!(
            "B against A: {} better or faster, {} worse or slower, {} unchanged (same or within spread or noise), \
         {} only in A, {} only in B.",
            tally(&["faster", "better"]),
            tally(&["slower", "worse"]),
            tally(&["= same", "~ within spread", "~ within noise"]),
            tally(&["only in A"]),
            tally(&["only in B"]),
        ),
    );
    let _ = writeln!(out);
    let _ =
        writeln!(out, "{:<w$} {:>CELL_W$}  {:>CELL_W$}  {:>RATIO_W$}  verdict", "", "A", "B", "B/A", w = NAME_W + 2);
    let mut bound = false;
    for (i, (v, rows)) in table.iter().enumerate() {
        if i > 0 {
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "{v}");
        for row in rows {
            let cell = |f: Option<&Figure>| f.map_or_else(|| "–".to_owned(), |f| f.text.clone());
            let (fa, fb) = (row.a.as_ref(), row.b.as_ref());
            bound |= [fa, fb].iter().flatten().any(|f| f.text.ends_with(GENERATOR_BOUND));
            let ratio = match (fa, fb) {
                (Some(x), Some(y)) => ratio(x, y),
                _ => "–".to_owned(),
            };
            row_line(&mut out, &row.name, &cell(fa), &cell(fb), &ratio, verdict(row.judge, fa, fb));
        }
    }

    let _ = writeln!(out);
    if bound {
        let threshold = [a, b].iter().find_map(|r| r.calibration.as_ref()).map_or(0.9, |c| c.generator_bound_threshold);
        wrapped(
            &mut out,
            &format!(
                "† generator-bound: measured at {:.0} % or more of the load generator's own ceiling (its calibration \
                 against baseline); the generator, not the server, may have set the pace.",
                threshold * 100.0
            ),
        );
    }
    wrapped(
        &mut out,
        &format!(
            "B/A is B's figure over A's (– when either is missing, zero or unbounded). Throughput is \"~ within \
             spread\" when the runs' min..max ranges over repetitions overlap; figures without a spread are \"~ within \
             noise\" under a {:.0} % difference (or their resolution: 1 ms for revocation windows, one timeline bucket \
             for recovery, 1 percentage point for availability); token bytes and errors count any difference.",
            NOISE * 100.0
        ),
    );
    wrapped(
        &mut out,
        "Revocation: how long a revoked token kept working after the acknowledgement, per kind, on 1 and 2 \
         instances. Sweep knee: the first offered rate where latency turns up; none when it stays flat up to the \
         steady maximum. Outage: availability during the Redis fault, recovery once Redis is back. Scale: Redis \
         memory per entry.",
    );
    out
}
