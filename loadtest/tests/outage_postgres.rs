//! The outage scenario against PostgreSQL on known answers: a session server on a logged and on
//! an unlogged table, under open-loop load, its PostgreSQL frozen (SIGSTOP) or killed (SIGKILL)
//! and restarted with crash recovery. A hang answers nothing while it lasts and everything once
//! it ends; the crash keeps every session of the logged table (its commits are in the WAL) and
//! loses every one of the unlogged table. Each record is checked against the committed schema.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use authbench::results::{Fault, OutageRecord};
use authbench::server_binary;
use authbench::{OutagePlan, OutageStore, OutageTarget};
use serde_json::{Value, json};

const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/results.schema.json");

/// Requests per second offered: light, so that what shows is the store's fault.
const RATE: f64 = 200.0;

/// How long the store stays away: a hang lasts longer than the smoke suite's 1 s, because the
/// requests sent in its last 250 ms (the server's store deadline) are still waiting when it
/// ends and are answered 2xx; over 3 s they are a twelfth of the fault.
fn down(fault: Fault) -> Duration {
    if fault == Fault::Hang { Duration::from_secs(3) } else { Duration::from_secs(1) }
}

/// The smoke suite's phases, with a longer "after" so that it holds enough buckets to judge.
fn plan(fault: Fault) -> OutagePlan {
    OutagePlan {
        before: Duration::from_millis(500),
        fault: down(fault),
        after: Duration::from_millis(1500),
        connections: 16,
        threads: 1,
        keepers: 5,
        password: "authbench-password".into(),
    }
}

fn measure(unlogged: bool, fault: Fault) -> OutageRecord {
    let binary = server_binary().expect("authbench-server: run `cargo build -p authbench-server`");
    let variant = if unlogged { "session-pg-unlogged" } else { "session-pg" };
    let table = if unlogged { "unlogged" } else { "logged" };
    let args: Vec<String> =
        ["--strategy", "session", "--store", "postgres", "--postgres-table", table, "--users", "1000"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
    let target = OutageTarget {
        strategy: "session",
        variant,
        server_args: &args,
        store: OutageStore::Postgres { unlogged },
        binary: &binary,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let r =
        authbench::run_outage(&target, fault, RATE, &plan(fault), runtime.handle(), &Arc::new(AtomicBool::new(false)))
            .unwrap();
    eprintln!(
        "{variant} {}: available before {:.3}, during {:.3}, after {:.3}; down {:.0} ms; recovery {:?} ms; \
         revoked accepted {}/{}; sessions lost {}/{}; revocations lost {:?}/{}; dropped {}",
        r.fault.as_str(),
        r.availability_before,
        r.availability_during,
        r.availability_after,
        r.redis_back_ms - r.fault_start_ms,
        r.recovery_ms,
        r.revoked_accepted,
        r.revoked_probes,
        r.sessions_lost,
        r.keepers,
        r.revocations_lost,
        r.revoked_checked,
        r.dropped,
    );
    assert_matches_schema(&r);
    assert_eq!(r.persistence, if unlogged { "unlogged" } else { "wal" });
    assert_eq!(r.dropped, 0, "the generator dropped sends: {r:?}");
    assert!(r.availability_before > 0.99, "before {}", r.availability_before);
    // Fails closed: nothing is answered 2xx while PostgreSQL is away (but the last store
    // deadline of a hang, see `down`), and no revoked token gets in.
    assert!(r.availability_during < 0.15, "during {}", r.availability_during);
    assert_eq!(r.revoked_accepted, 0);
    assert!(r.revoked_probes > 0);
    assert_eq!(r.revocations_lost, Some(0), "a revoked token came back: {r:?}");
    assert!(r.recovery_ms.is_some(), "never recovered: {:?}", r.timeline);
    // The timeline runs on for "after" once the store is back, however long it took to come.
    let covered = r.timeline.len() as f64 * r.bucket_ms;
    assert!(covered >= r.redis_back_ms + 1500.0 - r.bucket_ms, "timeline ends at {covered} ms: {r:?}");
    r
}

/// The record against the schema's `OutageRecord`.
fn assert_matches_schema(r: &OutageRecord) {
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(SCHEMA).unwrap()).unwrap();
    let record = json!({
        "$schema": schema["$schema"],
        "$defs": schema["$defs"],
        "$ref": "#/$defs/OutageRecord",
    });
    let validator = jsonschema::validator_for(&record).unwrap();
    let doc = serde_json::to_value(r).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| format!("{}: {e}", e.instance_path())).collect();
    assert!(errors.is_empty(), "the record does not match {SCHEMA}:\n{}", errors.join("\n"));
}

fn hang(unlogged: bool) {
    let r = measure(unlogged, Fault::Hang);
    assert!(r.availability_after > 0.95, "after {}", r.availability_after);
    assert!((r.redis_back_ms - r.fault_start_ms - 3000.0).abs() < 200.0, "{r:?}");
    assert_eq!(r.sessions_lost, 0, "a hang lost sessions");
}

#[test]
fn a_logged_table_hang_answers_nothing_then_everything() {
    hang(false);
}

#[test]
fn an_unlogged_table_hang_answers_nothing_then_everything() {
    hang(true);
}

#[test]
fn a_logged_table_keeps_every_session_through_a_crash() {
    let r = measure(false, Fault::KillRecover);
    assert_eq!(r.sessions_lost, 0, "{r:?}");
    assert!(r.availability_after > 0.9, "after {}", r.availability_after);
}

#[test]
fn an_unlogged_table_loses_every_session_in_a_crash() {
    let r = measure(true, Fault::KillRecover);
    assert_eq!(r.sessions_lost, r.keepers, "{r:?}");
    // The load's own tokens are gone too: after the restart its users are refused (401), which
    // counts as the store answering again.
    assert!(r.availability_after < 0.1, "after {}", r.availability_after);
}
