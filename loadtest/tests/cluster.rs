//! `authbench run --redis-cluster` against a real three-master Redis Cluster started here (the
//! test owns its nodes and kills them when it ends): the run completes, says it used the
//! cluster, skips the scenarios that need a Redis authbench owns with a line saying so, sums
//! the counters over the masters, spreads session keys over every master, and measures the
//! same revocation windows as against one Redis. A cluster that is not there, or not on
//! loopback, is one readable line.
//!
//! Needs `redis-server` and `wrk` on PATH and the `authbench-server` binary next to `authbench`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use authbench::results::Results;
use authbench_server::redis_process::{RedisCluster, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_authbench");
const DEADLINE: Duration = Duration::from_secs(180);

/// Runs `authbench run` with `args`, bounded by [`DEADLINE`], output through files.
fn authbench(args: &[&str], name: &str) -> Output {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cluster-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (out, err) = (dir.join("stdout.txt"), dir.join("stderr.txt"));
    let mut child = Command::new(BIN)
        .arg("run")
        .args(args)
        .args(["--quiet", "--out"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "authbench run {args:?} still running after {DEADLINE:?}: {}",
                std::fs::read_to_string(&err).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output { status, stdout: std::fs::read(&out).unwrap(), stderr: std::fs::read(&err).unwrap() }
}

/// `GET` calls a node has served.
fn gets(node: &authbench_server::redis_process::RedisServer) -> u64 {
    let stats = node.command("INFO commandstats").unwrap();
    stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[test]
fn a_run_against_a_cluster_measures_the_cluster() {
    let cluster = RedisCluster::start(3).unwrap();
    let urls = cluster.urls().join(",");
    let output = authbench(
        &[
            "--suite",
            "smoke",
            "--redis-cluster",
            &urls,
            "--strategies",
            "session,pushed",
            "--scenarios",
            "steady,revocation,outage",
        ],
        "run",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {}\nstdout:\n{stdout}\nstderr:\n{stderr}", output.status);
    let path = stdout.lines().find_map(|l| l.strip_prefix("results: ")).expect("results line");
    let results: Results = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert!(results.complete);

    let method = results.method.redis_cluster.as_ref().expect("method.redis_cluster");
    assert_eq!(method.seeds, cluster.urls());
    assert_eq!(method.masters.len(), 3, "{:?}", method.masters);
    assert!(
        results.not_measured.iter().any(|l| l.starts_with("outage:") && l.contains("Redis Cluster")),
        "{:?}",
        results.not_measured
    );
    assert!(results.outage.is_empty());

    let steady = |variant: &str| results.steady(variant).expect("steady record");
    let session = steady("session");
    assert!(session.errors == 0 && session.requests > 1000, "{} errors of {}", session.errors, session.requests);
    // One GET per request, counted on whichever master holds the key; the sum covers them all.
    let per_request = session.redis_commands_per_request.expect("redis commands counted");
    assert!((0.95..1.2).contains(&per_request), "session: {per_request} Redis commands per request");
    assert!(steady("pushed").redis_commands_per_request.expect("counted") < 0.01);
    // Session ids are random, so their keys (and the GETs) land on every master.
    for node in cluster.nodes() {
        assert!(gets(node) > 100, "master {} served {} GETs", node.url(), gets(node));
    }

    // Revocation is as prompt as against one Redis.
    for variant in ["session", "pushed"] {
        let records: Vec<_> = results.revocation.iter().filter(|r| r.variant == variant).collect();
        // Every kind, in each of the smoke suite's trials.
        assert!(records.len() >= 7 && records.len() % 7 == 0, "{variant}: {} revocation records", records.len());
        for r in records {
            assert!(r.supported, "{variant} {:?} unsupported", r.kind);
            let window = r.window_ms.unwrap_or(f64::INFINITY);
            assert!(window < 50.0, "{variant} {:?}: window {window} ms", r.kind);
        }
    }
}

#[test]
fn a_missing_or_remote_cluster_is_one_line() {
    let nobody = format!("redis://127.0.0.1:{}", free_port().unwrap());
    for (urls, expected) in [(nobody.as_str(), "scripts/redis-cluster.sh start"), ("redis://10.1.2.3:7301", "loopback")]
    {
        let output = authbench(&["--suite", "smoke", "--redis-cluster", urls, "--strategies", "session"], "missing");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains(expected), "{stderr}");
    }
}
