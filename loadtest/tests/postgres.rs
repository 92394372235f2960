//! Sessions in PostgreSQL measured end to end through the CLI against real servers, a real
//! Redis and a real PostgreSQL the harness starts: the known answer is one store call per
//! `GET /me` for `session` on either store (a Redis `GET`, a PostgreSQL `SELECT`, the latter
//! counted by the servers), the database's CPU is counted, and the guide compares the two.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

#[test]
fn a_postgres_session_costs_one_statement_per_request_and_is_compared_with_redis() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("postgres-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let args = [
        "run",
        "--suite",
        "smoke",
        "--scenarios",
        "steady,cost",
        "--strategies",
        "session,session-pg",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    let (status, stderr) = support::authbench(&args, Duration::from_secs(120));
    assert!(status.success(), "{status}: {stderr}");
    let file = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path().join("results.json")).next().unwrap();
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let run = |variant: &str, scenario: &str| {
        results["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["variant"] == variant && r["scenario"] == scenario)
            .unwrap_or_else(|| panic!("no {scenario} record for {variant}"))
            .clone()
    };
    for variant in ["session", "session-pg"] {
        let cost = run(variant, "cost");
        let calls = cost["redis_commands_per_request"].as_f64().unwrap();
        let cpu = cost["redis_cpu_ns_per_request"]["median"].as_f64().unwrap();
        eprintln!("{variant}: {calls:.3} store calls per request, store CPU {cpu:.0} ns per request");
        assert!((0.95..=1.05).contains(&calls), "{variant}: one lookup per GET /me, read {calls}");
        assert!(cpu > 1000.0, "{variant}: a lookup costs the store at least a microsecond, read {cpu} ns");
    }
    let pg = run("session-pg", "steady");
    assert_eq!(pg["capabilities"]["store"], "postgres");
    assert_eq!(pg["capabilities"]["postgres_table"], "logged");
    assert!(pg["redis_commands"].get("postgres_statements").is_some(), "{}", pg["redis_commands"]);
    let observed = &results["placement"]["observed"];
    assert!(observed["postgres"].is_string(), "{observed}");
    let guide: Vec<&serde_json::Value> = results["guide"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["requirement"].as_str().unwrap().starts_with("A session lookup per request in PostgreSQL"))
        .collect();
    assert_eq!(guide.len(), 1, "one database variant compared: {guide:?}");
    assert_eq!(guide[0]["variant"], "session-pg");
    let figures = guide[0]["figures"].as_str().unwrap();
    assert!(
        figures.contains("capacity") && figures.contains("server + store CPU") && figures.contains("p99"),
        "{figures}"
    );
}
