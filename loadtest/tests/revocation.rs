//! The revocation instrument on known answers: a session server told to apply revocations
//! 200 ms after acknowledging them must be measured at about 200 ms; an ordinary session
//! server at 0; a JWT server at the token's remaining lifetime plus the 2 s leeway; and two
//! JWT instances must disagree on revoke-all (the key rotation stays on A). Through the CLI,
//! trials of every kind against a JWT server: each kind once per trial, revokes at spread
//! phases, and every window just inside the bound the server's settings give. The victim's
//! client acts as a real one (a thief holding the pair): against `refresh` it refreshes once
//! its access token expires, is refused, and stays out; against `versioned` it adopts the
//! refreshed tokens it is handed and is still cut off within the grace; and against a server
//! that applies a revoke after the client's refresh, the record shows the thief let back in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use authbench::results::{Kind, RevocationRecord};
use authbench::{Pair, ProbePlan, measure_revocation, revocation_design, summarize_revocation};
use authbench::{ServerProcess, server_binary};
use authbench_server::redis_process::RedisServer;
use serde_json::Value;

fn plan(cap: Duration) -> ProbePlan {
    ProbePlan {
        probers: 4,
        interval: Duration::from_millis(2),
        lead: Duration::from_millis(100),
        settle: Duration::from_millis(300),
        cap,
        password: "authbench-password".into(),
        admin_key: "authbench-admin".into(),
    }
}

fn server(args: &[&str]) -> ServerProcess {
    server_with_users(args, 50)
}

fn server_with_users(args: &[&str], users: usize) -> ServerProcess {
    let binary = server_binary().expect("authbench-server: run `cargo build -p authbench-server`");
    let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    all.extend(["--users".into(), users.to_string()]);
    ServerProcess::start(&binary, &all, None).unwrap()
}

fn measure(kind: Kind, pair: Pair, victim: &str, cap: Duration) -> RevocationRecord {
    measure_at(kind, pair, victim, cap, Duration::ZERO)
}

/// One trial with its revoke `phase` after the lead, and the bound the server's settings give
/// (its `/capabilities`), as the scenario records it.
fn measure_at(kind: Kind, pair: Pair, victim: &str, cap: Duration, phase: Duration) -> RevocationRecord {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let design = revocation_design(pair.a).await.unwrap();
        let cancel = Arc::new(AtomicBool::new(false));
        let raw = measure_revocation(kind, pair, victim, &plan(cap), phase, &cancel).await.unwrap();
        let bound = raw.expected_bound_ms(&design, kind, 1, true);
        RevocationRecord { expected_bound_ms: bound, ..summarize_revocation("test", "test", kind, 1, true, raw, cap) }
    })
}

/// Checks one record against the committed schema's `RevocationRecord`.
fn assert_matches_schema(r: &RevocationRecord) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/results.schema.json");
    let full: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let schema = serde_json::json!({
        "$schema": full["$schema"],
        "$defs": full["$defs"],
        "$ref": "#/$defs/RevocationRecord",
    });
    let validator = jsonschema::validator_for(&schema).unwrap();
    let doc = serde_json::to_value(r).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| format!("{}: {e}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn a_known_200_ms_delay_is_measured_as_about_200_ms() {
    let redis = RedisServer::start().unwrap();
    let url = redis.url();
    let delayed = server(&["--strategy", "session", "--redis-url", &url, "--revocation-delay", "200ms"]);
    let pair = Pair { a: delayed.addr, b: delayed.addr };
    let r = measure(Kind::Logout, pair, "user1", Duration::from_secs(5));
    let window = r.window_ms.unwrap();
    assert!((150.0..350.0).contains(&window), "window {window} ms: {r:?}");
    assert!(r.accepted_after_ack > 50, "{r:?}");
    assert!(r.accepted_before_revoke > 0, "{r:?}");
    // Probes together reach at least one per millisecond.
    let span = r.timeline.last().unwrap().to_ms - r.timeline[0].from_ms;
    assert!(r.probes as f64 >= span, "{} probes over {span} ms", r.probes);

    let prompt = server(&["--strategy", "session", "--redis-url", &url]);
    let pair = Pair { a: prompt.addr, b: prompt.addr };
    let r = measure(Kind::AdminBan, pair, "user2", Duration::from_secs(5));
    assert_eq!(r.window_ms, Some(0.0), "{r:?}");
    assert_eq!(r.accepted_after_ack, 0);
    assert!(r.rejected_after_ack > 0);
}

#[test]
fn jwt_windows_are_the_remaining_lifetime_and_revoke_all_stays_on_one_instance() {
    let dir = std::env::temp_dir().join(format!("authbench-rev-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("jwt.key");
    let key = key.to_str().unwrap();
    let args = ["--strategy", "jwt", "--access-ttl", "2s", "--jwt-key-file", key];
    let a = server(&args);
    let b = server(&args);
    let cap = Duration::from_secs(6);
    let r = measure(Kind::Logout, Pair { a: a.addr, b: a.addr }, "user1", cap);
    assert_eq!(r.operation_status, 501);
    let window = r.window_ms.unwrap();
    // 2 s lifetime, exp rounded to the second, 2 s leeway: between 2 and 5 s after the ack.
    assert!((2000.0..5000.0).contains(&window), "window {window} ms");
    let same = measure(Kind::RevokeAll, Pair { a: a.addr, b: a.addr }, "user2", cap);
    assert_eq!(same.window_ms, Some(0.0), "{same:?}");
    // Fresh instances: after A's rotation, B could not verify tokens A issues at all.
    let key2 = dir.join("jwt2.key");
    let args2 = ["--strategy", "jwt", "--access-ttl", "2s", "--jwt-key-file", key2.to_str().unwrap()];
    let (a2, b2) = (server(&args2), server(&args2));
    let across = measure(Kind::RevokeAll, Pair { a: a2.addr, b: b2.addr }, "user3", cap);
    assert!(across.accepted_before_revoke > 0, "{across:?}");
    assert!(across.window_ms.unwrap() > 2000.0, "instance B never rotated: {across:?}");
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn trials_through_the_cli_are_distinct_spread_and_inside_the_settings_bound() {
    // Victims are user500 and up: a user per kind and trial.
    let server = server_with_users(&["--strategy", "jwt", "--access-ttl", "2s"], 600);
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("revocation-trials-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new(env!("CARGO_BIN_EXE_authbench"))
        .args(["load", "--target", &format!("http://{}", server.addr), "--scenario", "revocation"])
        .args(["--suite", "smoke", "--revocation-trials", "2", "--quiet", "--out", out.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}: {stderr}", output.status);
    let file = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path().join("results.json")).next().unwrap();
    let results = authbench::results::load(&file).unwrap();
    assert_eq!(results.revocation.len(), 2 * Kind::ALL.len(), "{:#?}", results.revocation);
    for kind in Kind::ALL {
        let trials: Vec<&RevocationRecord> = results.revocation.iter().filter(|r| r.kind == kind).collect();
        let mut numbers: Vec<u32> = trials.iter().map(|r| r.trial).collect();
        numbers.sort_unstable();
        assert_eq!(numbers, [0, 1], "{}: one record per trial", kind.as_str());
        for r in &trials {
            let what = format!("{} trial {}", kind.as_str(), r.trial);
            assert!(r.accepted_before_revoke > 0, "{what}: {r:?}");
            // A lead of 100 ms, then a phase below a second (logins of trials side by side may
            // add a little).
            let after = r.revoke_after_login_ms.unwrap();
            assert!((99.0..1600.0).contains(&after), "{what}: revoke {after} ms after the login");
            let (window, answer) = (r.window_ms.unwrap(), r.window_answer_ms.unwrap());
            assert!(answer >= window, "{what}: answer {answer} before send {window}");
            let bound = r.expected_bound_ms.unwrap_or_else(|| panic!("{what}: jwt's settings bound every window"));
            eprintln!(
                "{what}: revoke {after:.0} ms after login, window {window:.1} … {answer:.1} ms, bound {bound:.1} ms"
            );
            if kind == Kind::RevokeAll {
                // The key rotates on the one instance: refused at once.
                assert!(r.supported && window < 50.0 && bound == 0.0, "{what}: {r:?}");
            } else {
                // Not revocable: accepted until exp + 2 s of leeway has passed in whole seconds;
                // the last accepted probe went out at most a few probe intervals before that.
                assert!(!r.supported, "{what}");
                assert!(
                    window <= bound + 10.0 && window >= bound - 100.0,
                    "{what}: window {window} ms, bound {bound} ms"
                );
            }
        }
    }
    // The phases differ between trials (a random delay each, not a fixed lead).
    let mut after: Vec<f64> = results.revocation.iter().filter_map(|r| r.revoke_after_login_ms).collect();
    after.sort_by(f64::total_cmp);
    after.dedup_by(|a, b| (*a - *b).abs() < 1.0);
    assert!(after.len() > Kind::ALL.len(), "revokes not spread: {after:?}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_refresh_token_victim_is_refused_at_refresh_and_stays_out() {
    let redis = RedisServer::start().unwrap();
    let server = server(&["--strategy", "refresh", "--redis-url", &redis.url(), "--access-ttl", "2s"]);
    let pair = Pair { a: server.addr, b: server.addr };
    // Logged out everywhere: the family of the pair the thief holds is ended with the rest.
    let r = measure_at(Kind::LogoutAll, pair, "user1", Duration::from_secs(8), Duration::ZERO);
    eprintln!(
        "refresh logout_all: window {:?} ms, bound {:?} ms, lifetime left {:.0} ms, refreshes {:?} granted {:?}",
        r.window_ms, r.expected_bound_ms, r.token_lifetime_left_ms, r.refreshes_after_revoke, r.refreshed_after_revoke
    );
    assert!(r.accepted_before_revoke > 0, "{r:?}");
    assert!(r.refreshes_after_revoke >= Some(1), "the client never refreshed after its token expired: {r:?}");
    assert_eq!(r.refreshed_after_revoke, Some(0), "a refresh was granted after the revoke: {r:?}");
    let window = r.window_ms.unwrap_or_else(|| panic!("still accepted at the cap: the thief got back in: {r:?}"));
    // The access token held at the revoke lives on until it expires, exp's whole second and the
    // 2 s leeway included; not one probe after.
    let bound = r.expected_bound_ms.unwrap();
    assert!(window <= bound + 10.0, "window {window} ms past the bound {bound} ms");
    assert!(window <= r.token_lifetime_left_ms + 3000.0 + 10.0, "window {window} ms past expiry and leeway: {r:?}");
    assert!((1000.0..5000.0).contains(&bound), "bound {bound} ms is not the 2 s token's expiry plus leeway");
    assert!(r.rejected_after_ack > 0, "{r:?}");
    assert_matches_schema(&r);
}

#[test]
fn a_refresh_granted_after_the_revoke_lets_the_thief_in_past_the_bound() {
    // Acknowledged at once, applied 2.5 s later: after the client's refresh at 2 s, which is
    // granted, so the thief holds a fresh pair when the family finally ends.
    let redis = RedisServer::start().unwrap();
    let url = redis.url();
    let server =
        server(&["--strategy", "refresh", "--redis-url", &url, "--access-ttl", "2s", "--revocation-delay", "2500ms"]);
    let pair = Pair { a: server.addr, b: server.addr };
    let r = measure_at(Kind::AdminBan, pair, "user1", Duration::from_secs(9), Duration::ZERO);
    eprintln!(
        "late refresh admin_ban: window {:?} ms, bound {:?} ms, refreshes {:?} granted {:?}",
        r.window_ms, r.expected_bound_ms, r.refreshes_after_revoke, r.refreshed_after_revoke
    );
    assert!(r.refreshed_after_revoke >= Some(1), "{r:?}");
    let bound = r.expected_bound_ms.unwrap();
    assert!(r.window_ms.is_none_or(|w| w > bound + 1000.0), "the thief's new token did not show: {r:?}");
}

#[test]
fn a_versioned_victim_adopts_refreshed_tokens_and_is_cut_off_within_the_grace() {
    let redis = RedisServer::start().unwrap();
    let url = redis.url();
    let server = server(&["--strategy", "versioned", "--redis-url", &url, "--grace", "1s", "--access-ttl", "4s"]);
    let pair = Pair { a: server.addr, b: server.addr };
    // Revoked 1.3 s after the login: past the wall-clock second in which the login's token was
    // issued, so it has been checked and the client handed (and using) a fresh one.
    let r = measure_at(Kind::AdminBan, pair, "user1", Duration::from_secs(6), Duration::from_millis(1200));
    eprintln!(
        "versioned admin_ban: window {:?} ms, bound {:?} ms, adopted {:?}",
        r.window_ms, r.expected_bound_ms, r.adopted_tokens
    );
    assert!(r.accepted_before_revoke > 0, "{r:?}");
    assert!(r.adopted_tokens >= Some(1), "no X-Refreshed-Token adopted before the revoke: {r:?}");
    assert_eq!(r.refreshes_after_revoke, None, "versioned issues no refresh token: {r:?}");
    let window = r.window_ms.unwrap_or_else(|| panic!("still accepted at the cap: {r:?}"));
    let bound = r.expected_bound_ms.unwrap();
    assert!(window <= bound + 10.0, "window {window} ms past the bound {bound} ms");
    assert!(bound <= 1000.0, "bound {bound} ms: the grace is 1 s");
    assert_matches_schema(&r);
}
