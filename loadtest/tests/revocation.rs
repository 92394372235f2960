//! The revocation instrument on known answers: a session server told to apply revocations
//! 200 ms after acknowledging them must be measured at about 200 ms; an ordinary session
//! server at 0; a JWT server at the token's remaining lifetime plus the 2 s leeway; and two
//! JWT instances must disagree on revoke-all (the key rotation stays on A). Through the CLI,
//! trials of every kind against a JWT server: each kind once per trial, revokes at spread
//! phases, and every window just inside the bound the server's settings give.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use authbench::results::{Kind, RevocationRecord};
use authbench::{Pair, ProbePlan, measure_revocation, summarize_revocation};
use authbench::{ServerProcess, server_binary};
use authbench_server::redis_process::RedisServer;

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
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let raw = runtime
        .block_on(measure_revocation(kind, pair, victim, &plan(cap), Duration::ZERO, &Arc::new(AtomicBool::new(false))))
        .unwrap();
    summarize_revocation("test", "test", kind, 1, true, raw, cap)
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
