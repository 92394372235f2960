//! Known answers of the population workload, end to end through the CLI against real servers
//! and a real Redis: with access tokens of 1 s and users at 10 requests a second (10 requests
//! per lifetime), a Poisson user refreshes once per 1 + 10 requests, so about one refresh per
//! ten user requests; with tokens of 3 s, once per 31; and a `versioned` client that
//! adopts the tokens handed back asks Redis once per grace interval (1 s, of which whole-second
//! `iat`s leave half on average): once per 1 + 10 × 0.5 requests. And clients refused with a
//! token the server never issued log in once each (one login at a time per user, the user's
//! other requests waiting for it) and send their request again; and a client turned away with
//! 503 and `Retry-After: 1` waits that second and sends the request again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use authbench::{Credentials, Keep, LoadSpec, Population, Schedule, ServerProcess, server_binary};
use authbench_server::redis_process::RedisServer;

/// Runs `authbench` with `args`, killed after 120 s.
fn authbench(args: &[&str]) -> (std::process::ExitStatus, String) {
    support::authbench(args, Duration::from_secs(120))
}

fn per_user_request(run: &serde_json::Value, kind: &str) -> f64 {
    run["extra_calls"][kind].as_f64().unwrap() / run["user_requests"].as_f64().unwrap()
}

#[test]
fn clients_refresh_once_per_lifetime_and_versioned_ones_once_per_grace() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("population-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let (status, stderr) = authbench(&[
        "run",
        "--suite",
        "smoke",
        "--scenarios",
        "population",
        "--strategies",
        "refresh,versioned-g1",
        "--users",
        "200",
        "--user-rate",
        "10",
        "--requests-per-lifetime",
        "10,30",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(status.success(), "{status}: {stderr}");
    let file = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path().join("results.json")).next().unwrap();
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let runs: Vec<&serde_json::Value> =
        results["runs"].as_array().unwrap().iter().filter(|r| r["scenario"] == "population").collect();
    assert_eq!(runs.len(), 3, "refresh at two lifetimes, versioned-g1 at one: {runs:?}");
    for run in &runs {
        eprintln!(
            "{} at {} requests per lifetime: {} user requests, extra calls {}, commands per user request {} (expected {})",
            run["variant"],
            run["requests_per_lifetime"],
            run["user_requests"],
            run["extra_calls"],
            run["redis_commands_per_user_request"]["median"],
            run["expected_redis_commands_per_user_request"]
        );
        assert_eq!(run["users"], 200);
        assert_eq!(run["user_rate_rps"].as_f64(), Some(10.0));
        // Every user request was answered 2xx: no client was locked out, none gave up.
        let outcomes = &run["outcomes"];
        assert_eq!(outcomes["2xx"], run["user_requests"], "{outcomes}");
        assert_eq!(run["extra_calls"]["login"], 0, "nobody had to log in again: {}", run["extra_calls"]);
        assert_eq!(run["extra_calls_failed"]["refresh"], 0, "{}", run["extra_calls_failed"]);
        // 2 000 requests a second for two windows of a second.
        let sent = run["user_requests"].as_f64().unwrap();
        assert!((3_400.0..=4_600.0).contains(&sent), "user requests {sent}");
    }
    let refresh = |lifetime: f64| {
        runs.iter()
            .find(|r| r["variant"] == "refresh" && r["requests_per_lifetime"].as_f64() == Some(lifetime))
            .unwrap()
    };
    // Every refresh was timed, from its write to its answer.
    let took = refresh(10.0)["extra_call_latency_us"]["refresh"]["p99"].as_f64().unwrap();
    assert!(took > 0.0 && took < 1e6, "refresh p99 {took} µs");
    // About one refresh per ten user requests (1 / 11 exactly for Poisson users).
    let at_ten = per_user_request(refresh(10.0), "refresh");
    assert!((0.065..=0.125).contains(&at_ten), "refreshes per user request at 10 per lifetime: {at_ten}");
    // One per 31 at 30 per lifetime: fewer refreshes when tokens live for more requests.
    let at_thirty = per_user_request(refresh(30.0), "refresh");
    assert!((0.02..=0.047).contains(&at_thirty), "refreshes per user request at 30 per lifetime: {at_thirty}");
    // Store commands follow the refreshes, within the factor the report checks.
    for run in &runs {
        let measured = run["redis_commands_per_user_request"]["median"].as_f64().unwrap();
        let expected = run["expected_redis_commands_per_user_request"].as_f64().unwrap();
        assert!(
            measured / expected > 1.0 / 1.5 && measured / expected < 1.5,
            "{}: {measured} commands per user request, expected {expected}",
            run["variant"]
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// Clients holding a token the server never issued: each user's first request is refused, its
/// client logs in (argon2 on a server hashing two at a time, which answers 503 with Retry-After
/// when its queue is full) and sends the request again; its other requests wait for that one
/// login. So every user logs in exactly once, and every user request ends 2xx.
#[test]
fn refused_clients_log_in_once_each_and_retry() {
    let redis = RedisServer::start().unwrap();
    let binary = server_binary().expect("authbench-server: run `cargo build -p authbench-server`");
    let args: Vec<String> =
        ["--strategy", "session", "--redis-url", &redis.url(), "--users", "40", "--listen", "127.0.0.1:0"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
    let server = ServerProcess::start(&binary, &args, None).unwrap();
    let users = (0..40)
        .map(|i| Credentials {
            username: format!("user{i}"),
            access_token: format!("never-issued-{i}"),
            refresh_token: None,
            expires_at: None,
            lifetime: None,
        })
        .collect();
    let population = Population { users, password: "authbench-password".into(), path: "/me".into(), seed: 42 };
    let spec = LoadSpec {
        addr: server.addr,
        others: Vec::new(),
        requests: Vec::new(),
        connections: 8,
        threads: 2,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(3),
        // 40 users at 5 requests a second each.
        schedule: Schedule::Open { rate: 200.0 },
        timeout: Duration::from_secs(10),
        max_connections: None,
        cpus: None,
        population: Some(Arc::new(population)),
    };
    let o = authbench::run_load(&spec, Keep::default(), &Arc::new(AtomicBool::new(false))).unwrap();
    let calls = |kind: &str| o.extra_calls.get(kind).map_or((0, 0), |c| (c.calls, c.failed));
    let (logins, logins_failed) = calls("login");
    let (retries, retries_failed) = calls("retry");
    eprintln!(
        "{} user requests, statuses {:?}, logins {logins} ({logins_failed} refused), retries {retries} ({retries_failed} refused)",
        o.offered, o.statuses
    );
    assert_eq!(logins - logins_failed, 40, "one login per user that got in");
    assert!(retries >= 40, "every first request sent again after the login: {retries}");
    assert_eq!(o.statuses.get(&200).copied(), Some(o.offered), "every user request ends 2xx: {:?}", o.statuses);
    assert_eq!((o.errors, o.dropped), (0, 0));
    // Each client went on with the session it got: the holdings carry it.
    assert_eq!(o.holdings.len(), 40);
    assert!(o.holdings.iter().all(|(_, c)| !c.access_token.starts_with("never-issued")));
}

/// A server that turns the first request away with 503 and `Retry-After: 1`, then answers
/// 200: the user's client waits the second (within its 10 s deadline) and sends the request
/// again, so the request ends 2xx, one retry is counted, and the user saw at least a second.
#[test]
fn a_client_waits_out_retry_after_and_tries_again() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n";
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let addr = support::spawn_http(Arc::new(move |_| {
        let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
        Some((Duration::ZERO, if first { BUSY } else { support::OK }))
    }));
    let user = Credentials {
        username: "user0".into(),
        access_token: "token".into(),
        refresh_token: None,
        expires_at: None,
        lifetime: None,
    };
    let population = Population { users: vec![user], password: "pw".into(), path: "/me".into(), seed: 7 };
    let spec = LoadSpec {
        addr,
        others: Vec::new(),
        requests: Vec::new(),
        connections: 1,
        threads: 1,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(2),
        schedule: Schedule::Open { rate: 5.0 },
        timeout: Duration::from_secs(10),
        max_connections: None,
        cpus: None,
        population: Some(Arc::new(population)),
    };
    let o = authbench::run_load(&spec, Keep::default(), &Arc::new(AtomicBool::new(false))).unwrap();
    let retries = o.extra_calls.get("retry").map_or(0, |c| c.calls);
    let slowest = o.latency.max() as f64 / 1e9;
    eprintln!("{} user requests, statuses {:?}, retries {retries}, slowest {slowest:.2} s", o.offered, o.statuses);
    assert!(o.offered > 0);
    assert_eq!(o.statuses.get(&200).copied(), Some(o.offered), "{:?}", o.statuses);
    assert_eq!(retries, 1, "one request was turned away, and sent once more");
    assert!((1.0..2.0).contains(&slowest), "the turned-away request waited its second: {slowest} s");
}
