//! The single-point scenarios on PostgreSQL, end to end through the CLI against a real server
//! and a real PostgreSQL (smoke knobs): with the table 1 ms away, session-pg's store round trip
//! reads about 1 ms and its median latency grows by at least that much, since every request
//! reads the table; and the scale point seeds its rows, sizes them and measures a load on them,
//! server and PostgreSQL CPU per request included.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

/// Runs `authbench run --suite smoke --strategies session-pg` with `args` and returns its
/// results.
fn run_smoke(name: &str, args: &[&str]) -> serde_json::Value {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut all =
        vec!["run", "--suite", "smoke", "--strategies", "session-pg", "--out", out.to_str().unwrap(), "--quiet"];
    all.extend(args);
    let (status, stderr) = support::authbench(&all, Duration::from_secs(90));
    assert!(status.success(), "{status}: {stderr}");
    let file = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path().join("results.json")).next().unwrap();
    let results = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&out);
    results
}

#[test]
fn a_table_one_millisecond_away_reads_one_millisecond_and_costs_at_least_that() {
    let results = run_smoke("pg-rtt", &["--scenarios", "rtt", "--rounds", "3"]);
    let runs: Vec<&serde_json::Value> =
        results["runs"].as_array().unwrap().iter().filter(|r| r["scenario"] == "rtt").collect();
    let at = |ms: f64| *runs.iter().find(|r| r["redis_rtt_ms"].as_f64() == Some(ms)).unwrap();
    let (direct, far) = (at(0.0), at(1.0));
    for r in [direct, far] {
        eprintln!(
            "session-pg at {} ms: store round trip {} ms, p50 {} us, {} req/s",
            r["redis_rtt_ms"], r["redis_rtt_measured_ms"], r["latency_us"]["p50"], r["throughput_rps"]["median"]
        );
        assert_eq!(r["variant"], "session-pg");
        assert!(r["errors"].as_u64() == Some(0), "{}", r["status_counts"]);
    }
    let measured = |r: &serde_json::Value| r["redis_rtt_measured_ms"].as_f64().unwrap();
    assert!(measured(direct) < 0.5, "direct: {}", measured(direct));
    assert!((0.9..1.8).contains(&measured(far)), "through the relay: {}", measured(far));
    let p50 = |r: &serde_json::Value| r["latency_us"]["p50"].as_f64().unwrap();
    assert!(p50(far) - p50(direct) >= 900.0, "p50 {} us then {} us", p50(direct), p50(far));
    // session-pg reads its table on every request: not a control, so nothing was measured twice.
    assert!(!results.to_string().contains("rtt: a control"), "{}", results["method"]["notes"]);
}

#[test]
fn the_scale_point_sizes_seeded_rows_and_loads_them() {
    let results = run_smoke("pg-scale", &["--scenarios", "scale"]);
    let scale = results["scale"].as_array().unwrap();
    assert_eq!(scale.len(), 1, "{scale:?}");
    let s = &scale[0];
    eprintln!(
        "session-pg scale: {} rows, {} B before, {} B after, {} B per session, seeded in {} s, {} req/s, p50 {} us, p99 {} us",
        s["entries"],
        s["used_memory_before"],
        s["used_memory_after"],
        s["bytes_per_entry"],
        s["seed_seconds"],
        s["throughput_rps"],
        s["latency_p50_us"],
        s["latency_p99_us"]
    );
    assert_eq!(
        (s["variant"].as_str(), s["entry_kind"].as_str(), s["entries"].as_u64()),
        (Some("session-pg"), Some("session"), Some(10_000))
    );
    // A row (id, user, record, expiry, seq and its header) and its three index entries: a few
    // hundred bytes, not a few dozen and not kilobytes.
    let per_row = s["bytes_per_entry"].as_f64().unwrap();
    assert!((150.0..1000.0).contains(&per_row), "{per_row} B per session");
    assert!(s["tokens_sampled"].as_u64().unwrap() >= 4000);
    let run = results["runs"].as_array().unwrap().iter().find(|r| r["scenario"] == "scale").unwrap();
    eprintln!(
        "server {} us + PostgreSQL {} us of CPU per request",
        run["server_cpu_us_per_request"], run["redis_cpu_us_per_request"]
    );
    assert_eq!(run["keyspace_entries"], 10_000);
    assert_eq!(run["errors"], 0, "{}", run["status_counts"]);
    assert!(run["status_counts"]["200"].as_u64().unwrap() > 100, "{}", run["status_counts"]);
    assert!(run["redis_cpu_us_per_request"].as_f64().unwrap() > 0.0, "PostgreSQL's CPU is counted");
}
