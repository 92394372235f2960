#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! `authbench compare A B` on two small runs written here (no measurement, no committed run
//! needed): every variant shows, throughput ratios are printed, a variant missing from B is
//! "only in A", a different method is warned about and the same method is not, and a missing
//! file is one readable error. Fixed-rate runs are compared by the rate offered, and the
//! committed schema 5 report fixture compares with a schema 6 run of rate records.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use authbench::results::{Results, RunRecord, SCHEMA_VERSION, Scenario};
use authbench::{Cli, Command};
use authbench::{compare, compare_paths};
use clap::Parser;
use serde_json::{Value, json};

fn percentiles(p50: f64) -> Value {
    json!({"p50": p50, "p90": p50 * 2.0, "p99": p50 * 4.0, "p999": p50 * 8.0, "p9999": p50 * 10.0,
           "max": p50 * 20.0, "mean": p50 * 1.2, "stdev": p50})
}

fn run(scenario: &str, strategy: &str, variant: &str, rps: [f64; 3], p50: f64) -> Value {
    let mut sorted = rps;
    sorted.sort_by(f64::total_cmp);
    json!({
        "scenario": scenario, "strategy": strategy, "variant": variant, "server_args": [],
        "capabilities": null, "schedule": "closed", "connections": 64, "offered_rps": null,
        "dropped_sends": null, "repetitions": 3, "warmup_s": 1.0, "duration_s": 4.0,
        "throughput_rps": {"median": sorted[1], "min": sorted[0], "max": sorted[2], "values": rps},
        "latency_us": percentiles(p50), "latency_basis": "service", "service_latency_us": null,
        "send_lag_us": null, "requests": 100_000, "errors": 0, "status_counts": {"200": 100_000},
        "redis_commands_per_request": if strategy == "jwt" { Value::Null } else { json!(1.0) },
        "redis_commands": {}, "server_cpu_us_per_request": 25.0, "redis_cpu_us_per_request": null,
        "generator_cpu_us_per_request": null, "token_bytes": 43, "server_peak_rss_bytes": null,
        "generator_bound": false, "login": null, "histogram": ""
    })
}

fn revocation(variant: &str, kind: &str, instances: u32, window_ms: Option<f64>) -> Value {
    json!({
        "strategy": variant, "variant": variant, "kind": kind, "instances": instances,
        "supported": window_ms == Some(0.0), "operation_status": 204, "ack_ms": 1.0,
        "window_ms": window_ms, "accepted_after_ack": 0, "accepted_before_revoke": 200,
        "rejected_after_ack": 1000, "errors_after_ack": 0, "probes": 1200, "cap_ms": 10_000.0,
        "token_lifetime_left_ms": 5900.0, "timeline": []
    })
}

/// A small but complete run: session and jwt (steady, login, sweep knee, revocation), outage
/// and scale for session.
fn results_a() -> Value {
    json!({
        "schema_version": SCHEMA_VERSION,
        "run_id": "2026-01-01T00-00-00Z", "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:09:00Z", "complete": true, "interrupted": false,
        "command": ["authbench", "run"], "suite": "default", "target": null,
        "environment": {
            "cpu_model": "Test CPU", "cores": 2, "kernel": "6.1.0", "os": "Debian GNU/Linux 12 (bookworm)",
            "rustc": "rustc 1.95.0", "redis_server": "Redis server v=7.0.15 sha=00000000:0 bits=64",
            "wrk": "wrk 4.1.0", "crates": {"axum": "0.8.9", "redis": "1.8.1"},
            "git_commit": "4ec42c0dd75de17314af881683eed7c378fefa31", "authbench_version": "0.1.0"
        },
        "placement": {"server": "unpinned", "generator": "unpinned", "redis": "unpinned", "observed": {}},
        "method": {
            "repetitions": 3, "warmup_s": 1.0, "steady_duration_s": 4.0, "connections": 64,
            "generator_threads": 2, "sweep_fractions": [0.1, 0.5, 1.0], "sweep_step_s": 1.5,
            "login_duration_s": 4.0, "login_users": 8, "request_timeout_s": 10.0, "notes": []
        },
        "calibration": null,
        "runs": [
            run("steady", "session", "session", [40_000.0, 38_000.0, 42_000.0], 1500.0),
            run("login", "session", "session", [64.0, 64.0, 64.0], 80_000.0),
            run("steady", "jwt", "jwt", [50_000.0, 49_000.0, 52_000.0], 1100.0),
            run("login", "jwt", "jwt", [73.0, 73.0, 73.0], 70_000.0),
        ],
        "sweeps": [
            {"strategy": "session", "variant": "session", "max_rps": 40_000.0, "offered_rps": [4000.0],
             "p99_us": [400.0], "knee_rps": 30_000.0},
            {"strategy": "jwt", "variant": "jwt", "max_rps": 50_000.0, "offered_rps": [5000.0],
             "p99_us": [300.0], "knee_rps": null}
        ],
        "revocation": [
            revocation("session", "logout", 1, Some(0.0)),
            revocation("session", "logout", 2, Some(0.0)),
            revocation("jwt", "logout", 1, Some(8800.0)),
            revocation("jwt", "logout", 2, None),
        ],
        "outage": [{
            "strategy": "session", "variant": "session", "fault": "hang", "persistence": "none",
            "offered_rps": 20_000.0, "connections": 64, "client_timeout_ms": 1000.0, "bucket_ms": 100.0,
            "fault_start_ms": 2000.0, "redis_back_ms": 7000.0, "availability_before": 1.0,
            "availability_during": 0.0001, "availability_after": 0.99, "recovery_ms": 99.6,
            "revoked_accepted": 0, "revoked_probes": 50, "sessions_lost": 0, "keepers": 20,
            "revocations_lost": 0, "revoked_checked": 20, "timeline": []
        }],
        "scale": [{
            "strategy": "session", "variant": "session", "entry_kind": "session", "entries": 10_000,
            "used_memory_before": 1_000_000, "used_memory_after": 4_344_240, "bytes_per_entry": 334.4,
            "seed_seconds": 0.5, "tokens_sampled": 1000, "throughput_rps": 41_000.0,
            "latency_p50_us": 1500.0, "latency_p99_us": 4400.0
        }],
        "not_measured": []
    })
}

fn parse(v: Value) -> Results {
    serde_json::from_value(v).expect("the test document matches Results")
}

/// A copy of `a` with session's steady throughput halved (every repetition) and jwt removed.
fn results_b(a: &Value) -> Value {
    let mut b = a.clone();
    b["run_id"] = json!("2026-01-02T00-00-00Z");
    let runs = b["runs"].as_array_mut().unwrap();
    runs.retain(|r| r["variant"] != "jwt");
    for r in runs.iter_mut().filter(|r| r["scenario"] == "steady") {
        let t = &mut r["throughput_rps"];
        for key in ["median", "min", "max"] {
            t[key] = json!(t[key].as_f64().unwrap() / 2.0);
        }
        let halved: Vec<f64> = t["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() / 2.0).collect();
        t["values"] = json!(halved);
    }
    for list in ["sweeps", "revocation"] {
        b[list].as_array_mut().unwrap().retain(|r| r["variant"] != "jwt");
    }
    b
}

/// The table row of `metric` in `variant`'s section.
fn row<'t>(text: &'t str, variant: &str, metric: &str) -> &'t str {
    let mut in_section = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_section = line == variant;
        } else if in_section && line.trim_start().starts_with(metric) {
            return line;
        }
    }
    panic!("no row {metric:?} for {variant:?} in:\n{text}");
}

/// Trials of one kind and pairing: one row, judged on the median, with the longest beside it.
#[test]
fn revocation_trials_compare_as_one_row_by_their_median() {
    let a = results_a();
    let mut b = results_b(&a);
    let trial = |n: u32, window: f64| {
        let mut r = revocation("session", "logout", 1, Some(window));
        r["trial"] = json!(n);
        r
    };
    let list = b["revocation"].as_array_mut().unwrap();
    list.retain(|r| !(r["kind"] == "logout" && r["instances"] == 1));
    list.extend([trial(0, 400.0), trial(1, 10.0), trial(2, 900.0)]);
    let text = compare(&parse(a), &parse(b), "runs/a", "runs/b");
    let session = text.split("\njwt\n").next().unwrap().split("\nsession\n").nth(1).unwrap();
    let rows = session.lines().filter(|l| l.trim_start().starts_with("revoke logout (1 inst.)")).count();
    assert_eq!(rows, 1, "one row per kind and pairing for session:\n{text}");
    let window = row(&text, "session", "revoke logout (1 inst.)");
    assert!(window.contains("400 ms (max 900 ms, 3 trials)"), "median and longest of B: {window}");
    assert!(window.trim_end().ends_with("worse"), "0 ms against a median of 400 ms: {window}");
}

#[test]
fn every_variant_appears_with_throughput_ratio_and_only_in_a() {
    let a = results_a();
    let b = results_b(&a);
    let text = compare(&parse(a), &parse(b), "runs/a", "runs/b");
    println!("{text}");

    for variant in ["session", "jwt"] {
        assert!(text.lines().any(|l| l == variant), "variant {variant} has no section:\n{text}");
    }
    assert!(text.contains("runs/a") && text.contains("runs/b"), "labels are shown");

    let steady = row(&text, "session", "capacity req/s");
    assert!(steady.contains("40.0k [38.0k–42.0k]"), "A's median and spread: {steady}");
    assert!(steady.contains("20.0k [19.0k–21.0k]"), "B's median and spread: {steady}");
    assert!(steady.contains("0.50"), "the B/A ratio is printed: {steady}");
    assert!(steady.trim_end().ends_with("slower"), "ranges do not overlap, so B is slower: {steady}");

    let cpu = row(&text, "session", "server CPU/request");
    assert!(cpu.contains("= same"), "an unchanged figure: {cpu}");

    let jwt = row(&text, "jwt", "capacity req/s");
    assert!(jwt.trim_end().ends_with("only in A"), "jwt was removed from B: {jwt}");
    assert!(jwt.contains('–'), "the missing figure prints as –: {jwt}");
    assert!(row(&text, "jwt", "revoke logout (2 inst.)").contains("still accepted at 10 s cap"));
    assert!(row(&text, "jwt", "sweep knee").contains("none"));

    // Zero windows and a zero B/A are never divided by.
    let window = row(&text, "session", "revoke logout (1 inst.)");
    assert!(window.contains('–') && window.contains("= same"), "0 ms against 0 ms: {window}");
    assert!(!text.contains("NaN") && !text.contains(" inf"), "no division by zero leaks:\n{text}");

    assert!(row(&text, "session", "outage hang: availability").contains("= same"));
    assert!(row(&text, "session", "scale 10k session").contains("334 B"));
}

#[test]
fn overlapping_intervals_are_within_interval() {
    let a = results_a();
    let mut b = a.clone();
    // 41k (39k..43k) overlaps 40k (38k..42k).
    b["runs"][0]["throughput_rps"] =
        json!({"median": 41_000.0, "min": 39_000.0, "max": 43_000.0, "values": [41_000.0, 39_000.0, 43_000.0]});
    let text = compare(&parse(a), &parse(b), "a", "b");
    let steady = row(&text, "session", "capacity req/s");
    assert!(steady.contains("1.02") && steady.contains("~ within interval"), "{steady}");
}

#[test]
fn a_variant_only_in_b_and_generator_bound_are_marked() {
    let a = results_a();
    let mut b = a.clone();
    let mut extra = run("steady", "baseline", "baseline", [80_000.0, 79_000.0, 81_000.0], 500.0);
    extra["generator_bound"] = json!(true);
    b["runs"].as_array_mut().unwrap().push(extra);
    let text = compare(&parse(a), &parse(b), "a", "b");
    let steady = row(&text, "baseline", "capacity req/s");
    assert!(steady.contains("80.0k [79.0k–81.0k] †") && steady.trim_end().ends_with("only in B"), "{steady}");
    assert!(text.contains("† generator-bound"), "the marker is explained:\n{text}");
    // The variant order is A's first appearance, then B's.
    let order: Vec<&str> = text.lines().filter(|l| ["session", "jwt", "baseline"].contains(l)).collect();
    assert_eq!(order, ["session", "jwt", "baseline"]);
}

#[test]
fn a_different_method_is_warned_about_and_the_same_is_not() {
    let a = results_a();
    let same = compare(&parse(a.clone()), &parse(results_b(&a)), "a", "b");
    assert!(!same.contains("WARNING"), "same method, complete runs: no warning:\n{same}");
    assert!(same.contains("Method: the same settings"));
    assert!(same.contains("Environment: the same machine"));

    let mut b = a.clone();
    b["method"]["repetitions"] = json!(5);
    b["method"]["steady_duration_s"] = json!(10.0);
    b["environment"]["kernel"] = json!("6.12.0");
    b["environment"]["crates"]["axum"] = json!("0.8.10");
    let text = compare(&parse(a), &parse(b), "a", "b");
    let warning: String = text
        .lines()
        .skip_while(|l| !l.starts_with("WARNING"))
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(warning.contains("different methods"), "method difference is warned about:\n{text}");
    assert!(warning.contains("repetitions 3 → 5") && warning.contains("duration 4 s → 10 s"), "{warning}");
    let env = text.lines().find(|l| l.starts_with("Environment differs")).expect("environment differences");
    assert!(env.contains("kernel") && env.contains("crates") && !env.contains("machine"), "{env}");
    assert!(text.contains("axum 0.8.9 → 0.8.10"));
}

#[test]
fn an_interrupted_run_is_warned_about() {
    let a = results_a();
    let mut b = results_b(&a);
    b["complete"] = json!(false);
    b["interrupted"] = json!(true);
    let text = compare(&parse(a), &parse(b), "a", "b");
    assert!(text.contains("INTERRUPTED") && text.contains("WARNING: B is incomplete (interrupted)"), "{text}");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("authbench-compare-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, v: &Value) {
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(v).unwrap()).unwrap();
}

#[test]
fn loads_a_run_directory_or_a_results_file() {
    let (da, db) = (scratch("dir-a"), scratch("dir-b"));
    let a = results_a();
    write(&da, &a);
    write(&db, &results_b(&a));
    let text = compare_paths(&da, &db.join("results.json")).unwrap();
    assert!(text.contains(&da.display().to_string()));
    assert!(row(&text, "session", "capacity req/s").contains("0.50"));
    let code = authbench::main_with(Cli::parse_from([
        OsStr::new("authbench"),
        OsStr::new("compare"),
        da.as_os_str(),
        db.as_os_str(),
    ]));
    assert_eq!(code, ExitCode::SUCCESS);
    let _ = std::fs::remove_dir_all(&da);
    let _ = std::fs::remove_dir_all(&db);
}

#[test]
fn a_missing_or_foreign_file_is_one_readable_error() {
    let dir = scratch("missing");
    write(&dir, &results_a());
    let missing = dir.join("no-such-run");
    let err = compare_paths(&dir, &missing).unwrap_err();
    let message = format!("{err:#}");
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(message.contains("no-such-run") && message.contains("no such run directory"), "{message}");

    let empty = scratch("empty");
    let message = format!("{:#}", compare_paths(&empty, &dir).unwrap_err());
    assert!(
        !message.contains('\n') && message.contains("results.json") && message.contains("cannot read"),
        "{message}"
    );

    let mut old = results_a();
    old["schema_version"] = json!(1);
    let old_dir = scratch("old");
    write(&old_dir, &old);
    let message = format!("{:#}", compare_paths(&dir, &old_dir).unwrap_err());
    assert!(!message.contains('\n') && message.contains("schema version"), "{message}");

    let cli =
        Cli::try_parse_from([OsStr::new("authbench"), OsStr::new("compare"), dir.as_os_str(), missing.as_os_str()])
            .unwrap();
    assert!(matches!(&cli.command, Command::Compare { .. }));
    assert_eq!(authbench::main_with(cli), ExitCode::FAILURE);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&old_dir);
    let _ = std::fs::remove_dir_all(&empty);
}

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/results.json");

/// A fixed-rate record of `variant` made from its steady record: `dropped` sends the generator
/// could not make (latency invalid and generator-bound when not zero).
fn rate_record(results: &Results, variant: &str, offered: f64, achieved: f64, p99_us: f64, dropped: u64) -> RunRecord {
    let mut r = results.steady(variant).unwrap().clone();
    r.scenario = Scenario::Rate;
    r.schedule = "open".into();
    r.latency_basis = "intended_send_time".into();
    r.offered_rps = Some(offered);
    r.achieved_rps = Some(achieved);
    r.dropped = Some(dropped);
    r.latency_valid = dropped == 0;
    r.generator_bound = dropped > 0;
    r.latency_us.p99 = p99_us;
    r.outcomes = [("2xx".to_owned(), (achieved * 5.0) as u64)].into();
    r
}

/// The committed schema 5 fixture, read as a schema 6 run with jwt measured at 1000 req/s
/// (clean) and at 5000 req/s (the generator dropped 1234 sends).
fn v6_with_rate_records() -> Results {
    let mut b = authbench::results::load(Path::new(FIXTURE)).unwrap();
    b.schema_version = SCHEMA_VERSION;
    b.run_id = "2026-11-28T00-00-00Z".into();
    let clean = rate_record(&b, "jwt", 1000.0, 1000.0, 1500.0, 0);
    let dropped = rate_record(&b, "jwt", 5000.0, 4753.0, 987_000.0, 1234);
    b.runs.extend([clean, dropped]);
    b
}

#[test]
fn a_schema_5_run_compares_with_a_schema_6_run_and_its_rate_records() {
    let a = authbench::results::load(Path::new(FIXTURE)).unwrap();
    assert_eq!(a.schema_version, 5, "the fixture is the proof that schema 5 still reads");
    let b = v6_with_rate_records();
    let text = compare(&a, &b, "runs/v5", "runs/v6");
    println!("{text}");

    // The figures both have compare as before.
    assert!(row(&text, "jwt", "capacity req/s").contains("= same"));
    // A schema 5 run has no rate records: they are B's alone, paired by the rate offered.
    for metric in ["rate 1000 req/s: achieved req/s", "rate 1000 req/s: p99", "rate 1000 req/s: dropped"] {
        let line = row(&text, "jwt", metric);
        assert!(line.trim_end().ends_with("only in B"), "{line}");
    }
    assert!(row(&text, "jwt", "rate 1000 req/s: achieved").contains("1000"));
    assert!(row(&text, "jwt", "rate 5000 req/s: achieved").contains("4753 †"), "generator-bound");
    assert!(row(&text, "jwt", "rate 5000 req/s: p99").contains("987.0 ms ✗"), "latency not the server's");
    assert!(row(&text, "jwt", "rate 5000 req/s: dropped").contains("1234"));
    assert!(text.contains("✗ not the server's latency: the generator dropped sends"), "the mark is explained");
    // Each file's generator_bound is explained the way that file decided it.
    let note: String =
        text.lines().skip_while(|l| !l.starts_with("† generator-bound")).take(6).collect::<Vec<_>>().join(" ");
    assert!(
        note.contains("in A, measured at 90.0 % or more") && note.contains("in B, the generator dropped sends"),
        "{note}"
    );
}

#[test]
fn rate_records_are_compared_by_the_rate_offered() {
    let a = v6_with_rate_records();
    let mut b = v6_with_rate_records();
    b.runs.retain(|r| r.scenario != Scenario::Rate);
    let worse = rate_record(&b, "jwt", 1000.0, 940.0, 3000.0, 12);
    let faster = rate_record(&b, "jwt", 5000.0, 4998.0, 950_000.0, 0);
    let new = rate_record(&b, "jwt", 2000.0, 2000.0, 1600.0, 0);
    b.runs.extend([worse, faster, new]);
    let text = compare(&a, &b, "a", "b");

    let achieved = row(&text, "jwt", "rate 1000 req/s: achieved");
    assert!(achieved.contains("0.94") && achieved.trim_end().ends_with("worse"), "{achieved}");
    let p99 = row(&text, "jwt", "rate 1000 req/s: p99");
    assert!(p99.contains("1.50 ms") && p99.contains("3.00 ms ✗") && p99.trim_end().ends_with("worse"), "{p99}");
    let dropped = row(&text, "jwt", "rate 1000 req/s: dropped");
    assert!(dropped.trim_end().ends_with("worse"), "any drop counts: {dropped}");
    assert!(row(&text, "jwt", "rate 5000 req/s: dropped").trim_end().ends_with("better"));
    assert!(row(&text, "jwt", "rate 5000 req/s: achieved").trim_end().ends_with("better"));
    assert!(row(&text, "jwt", "rate 2000 req/s: p99").trim_end().ends_with("only in B"));
    // A 1 % difference in an achieved rate is noise.
    let mut c = a.clone();
    for r in c.runs.iter_mut().filter(|r| r.scenario == Scenario::Rate) {
        r.achieved_rps = r.achieved_rps.map(|x| x * 0.995);
    }
    let text = compare(&a, &c, "a", "c");
    assert!(row(&text, "jwt", "rate 1000 req/s: achieved").contains("~ within noise"));
}

/// A cost record at the common rate whose server CPU per request is `server` ns in each round.
fn cost(variant: &str, server: [f64; 6]) -> Value {
    let mut r = run("cost", variant, variant, [1000.0, 1000.0, 1000.0], 100.0);
    let estimate = |values: [f64; 6]| {
        let mut sorted = values;
        sorted.sort_by(f64::total_cmp);
        json!({"median": (sorted[2] + sorted[3]) / 2.0, "ci95": [sorted[0], sorted[5]], "values": values})
    };
    r["rate_rps"] = json!(1000.0);
    r["rounds"] = json!(6);
    r["server_cpu_ns_per_request"] = estimate(server);
    r
}

#[test]
fn the_machines_own_drift_is_taken_out_through_baseline_and_said() {
    let mut a = results_a();
    a["runs"]
        .as_array_mut()
        .unwrap()
        .push(cost("baseline", [10_000.0, 10_200.0, 9_900.0, 10_100.0, 10_000.0, 9_800.0]));
    a["runs"]
        .as_array_mut()
        .unwrap()
        .push(cost("session", [20_000.0, 20_400.0, 19_800.0, 20_200.0, 20_000.0, 19_600.0]));
    // B: the machine is 20 % faster for every process; session's code did not change.
    let mut b = a.clone();
    let faster = |r: &mut Value, values: [f64; 6]| {
        r["server_cpu_ns_per_request"] = json!({"median": values[0] * 0.8, "ci95": [values[5] * 0.8, values[1] * 0.8], "values": values.map(|v| v * 0.8)});
    };
    for r in b["runs"].as_array_mut().unwrap().iter_mut().filter(|r| r["scenario"] == "cost") {
        let values: Vec<f64> =
            r["server_cpu_ns_per_request"]["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        faster(r, [values[0], values[1], values[2], values[3], values[4], values[5]]);
    }
    let text = compare(&parse(a.clone()), &parse(b), "a", "b");
    assert!(row(&text, "baseline", "server CPU/request").ends_with("better"), "the control shows the machine:\n{text}");
    let session = row(&text, "session", "server CPU/request");
    assert!(session.ends_with("= same") || session.ends_with("~ within interval"), "{text}");
    // jwt has no cost record here: its saturation figure is judged as measured.
    assert!(row(&text, "jwt", "server CPU/request").ends_with("= same"), "{text}");
    assert!(text.contains("Machine drift: baseline") && text.contains("0.80× the server CPU"), "{text}");
    // A real change to session alone is still seen through the drift.
    let mut c = a.clone();
    for r in
        c["runs"].as_array_mut().unwrap().iter_mut().filter(|r| r["scenario"] == "cost" && r["variant"] == "session")
    {
        r["server_cpu_ns_per_request"] =
            json!({"median": 30_000.0, "ci95": [29_500.0, 30_500.0], "values": vec![30_000.0; 6]});
    }
    let text = compare(&parse(a), &parse(c), "a", "c");
    assert!(row(&text, "session", "server CPU/request").ends_with("worse"), "{text}");
}

/// A real default run of the population scenario alone (schema 8).
const POPULATION: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/population-results.json");

/// The population point of `variant` at `per_lifetime` requests per lifetime.
fn point<'r>(r: &'r mut Results, variant: &str, per_lifetime: f64) -> &'r mut RunRecord {
    r.runs
        .iter_mut()
        .find(|x| {
            x.variant == variant && x.population.as_ref().is_some_and(|p| p.requests_per_lifetime == per_lifetime)
        })
        .unwrap()
}

#[test]
fn population_points_are_compared_by_requests_per_lifetime() {
    let a = authbench::results::load(Path::new(POPULATION)).unwrap();
    let mut b = a.clone();
    // refresh at 10 per lifetime makes half as many commands again; versioned's CPU moves inside
    // its interval; refresh at 1000 is not in B.
    let commands = point(&mut b, "refresh", 10.0).population.as_mut().unwrap();
    let e = commands.redis_commands_per_user_request.as_mut().unwrap();
    e.median *= 1.5;
    e.ci95 = e.ci95.map(|v| v * 1.5);
    e.values.iter_mut().for_each(|v| *v *= 1.5);
    let cpu = point(&mut b, "versioned-g1", 3600.0).server_cpu_ns_per_request.as_mut().unwrap();
    cpu.median += 200.0;
    b.runs.retain(|x| !(x.variant == "refresh" && x.population.as_ref().unwrap().requests_per_lifetime == 1000.0));
    let text = compare(&a, &b, "a", "b");

    let worse = row(&text, "refresh", "population 10/lifetime: cmd/user req");
    assert!(worse.contains("0.35 [0.34–0.36]") && worse.contains("0.53 [0.52–0.55]"), "{worse}");
    assert!(worse.contains("1.50") && worse.trim_end().ends_with("worse"), "{worse}");
    let same = row(&text, "refresh", "population 1/lifetime: cmd/user req");
    assert!(same.trim_end().ends_with("= same"), "{same}");
    let cpu = row(&text, "versioned-g1", "population 3600/lifetime: CPU/user req");
    assert!(cpu.contains("39.2 µs [38.8 µs–39.9 µs]") && cpu.trim_end().ends_with("~ within interval"), "{cpu}");
    assert!(row(&text, "refresh", "population 1000/lifetime: cmd/user req").trim_end().ends_with("only in A"));
    // A design with no store compares as 0 commands, not as a missing figure.
    let jwt = row(&text, "jwt", "population 3600/lifetime: cmd/user req");
    assert!(jwt.contains("0 (no store)") && jwt.trim_end().ends_with("= same"), "{jwt}");
    // refresh's points in order of requests per lifetime.
    let refresh = text.split("\nrefresh\n").nth(1).unwrap().split("\n\n").next().unwrap();
    let order: Vec<&str> =
        refresh.lines().filter(|l| l.contains("cmd/user req")).map(|l| l.split(':').next().unwrap().trim()).collect();
    assert_eq!(
        order,
        ["population 1/lifetime", "population 10/lifetime", "population 100/lifetime", "population 1000/lifetime"]
    );

    // The machine 20 % faster in B (baseline's cost shows it): a population CPU figure 20 %
    // lower is the machine, not the design.
    let baseline = |server: [f64; 6]| -> RunRecord { serde_json::from_value(cost("baseline", server)).unwrap() };
    let mut a = a;
    let mut b = a.clone();
    a.runs.push(baseline([10_000.0, 10_200.0, 9_900.0, 10_100.0, 10_000.0, 9_800.0]));
    b.runs.push(baseline([8_000.0, 8_160.0, 7_920.0, 8_080.0, 8_000.0, 7_840.0]));
    let cpu = point(&mut b, "session", 3600.0).server_cpu_ns_per_request.as_mut().unwrap();
    *cpu = authbench::results::Estimate::of(&cpu.values.iter().map(|v| v * 0.8).collect::<Vec<_>>()).unwrap();
    let text = compare(&a, &b, "a", "b");
    let session = row(&text, "session", "population 3600/lifetime: CPU/user req");
    let verdict = session.trim_end();
    assert!(
        session.contains("0.80") && (verdict.ends_with("= same") || verdict.ends_with("~ within interval")),
        "{text}"
    );
}
