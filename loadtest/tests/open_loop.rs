//! Known answers of the fixed-rate open loop, each of which a generator with a fixed pool of
//! connections, one pacer queue shared by them, or histograms of survivors only would get
//! wrong: a slow but parallel server is held at the offered rate; a stall shows in the tail
//! from the intended send time; a fail-open server that answers slowly during a store hang is
//! available and a fail-closed one is not; a generator limited on purpose reports its drops
//! instead of blaming the server; and the `rate` scenario end to end through the CLI.
//!
//! The tests measure time on loopback, so they run one at a time (see [`one_at_a_time`]).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use authbench::results::Bucket;
use authbench::{Keep, LoadOutcome, LoadSpec, RequestTemplate, Schedule, ServerProcess, server_binary};
use support::{OK, UNAVAILABLE, spawn_server, spawn_stalling, spawn_store_hang};

/// Two load runs at once would share the machine's cores and each measure the other.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

const WARMUP: Duration = Duration::from_millis(500);

/// Open loop at `rate` for `duration` after [`WARMUP`], on 2 generator threads starting with
/// 16 connections, a 10 s deadline and the default connection limit.
fn spec(addr: SocketAddr, rate: f64, duration: Duration) -> LoadSpec {
    LoadSpec {
        addr,
        others: Vec::new(),
        requests: vec![RequestTemplate::get("/me", None).unwrap()],
        connections: 16,
        threads: 2,
        warmup: WARMUP,
        duration,
        schedule: Schedule::Open { rate },
        timeout: Duration::from_secs(10),
        max_connections: None,
        cpus: None,
        population: None,
    }
}

/// When the clock of a run started now starts, so a server can be told when to misbehave.
fn clock() -> Instant {
    Instant::now() + Duration::from_millis(300)
}

fn run(spec: &LoadSpec, keep: Keep) -> LoadOutcome {
    authbench::run_load(spec, keep, &Arc::new(AtomicBool::new(false))).unwrap()
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Every intended send in the window is in the latency histogram (sent: answered, failed or
/// timed out) or dropped, never neither.
fn assert_every_send_accounted_for(o: &LoadOutcome) {
    assert_eq!(o.latency.len(), o.requests + o.errors, "a request sent is missing from the latency");
    assert_eq!(o.latency.len() + o.dropped, o.offered, "an intended send is unaccounted for");
}

#[test]
fn a_slow_parallel_server_is_held_at_the_offered_rate() {
    let _serial = one_at_a_time();
    // 200 ms per answer, answered concurrently: 1000/s needs about 200 requests in flight, far
    // more than the 16 connections the run starts with.
    let addr = spawn_server(Some(Duration::from_millis(200)));
    let o = run(&spec(addr, 1000.0, Duration::from_secs(5)), Keep::default());
    let (p50, p99) = (ms(o.latency.value_at_quantile(0.5)), ms(o.latency.value_at_quantile(0.99)));
    eprintln!(
        "held: achieved {:.1}/s, p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.2} ms, peak {} connections",
        o.achieved_rps(),
        ms(o.latency.max()),
        o.peak_connections
    );
    assert_eq!(o.offered, 5000);
    assert!(o.achieved_rps() >= 990.0, "achieved {} of 1000/s", o.achieved_rps());
    assert!((200.0..=220.0).contains(&p50), "p50 {p50} ms");
    assert_eq!((o.dropped, o.timeouts, o.errors), (0, 0, 0), "{o:?}");
    assert_eq!(o.statuses.get(&200), Some(&o.requests));
    assert!(o.latency_valid());
    assert_every_send_accounted_for(&o);
}

#[test]
fn a_stall_shows_in_the_tail_from_the_intended_send_time() {
    let _serial = one_at_a_time();
    // The server answers after 200 ms, except that requests arriving in [2 s, 3 s) of the
    // window are held until 3 s and answered at 3.2 s: the first of them waits 1.2 s.
    let t0 = clock();
    let window = t0 + WARMUP;
    let addr =
        spawn_stalling(Duration::from_millis(200), window + Duration::from_secs(2), window + Duration::from_secs(3));
    let o = run(&spec(addr, 1000.0, Duration::from_secs(5)), Keep { start_at: Some(t0), ..Keep::default() });
    let (p50, p99, max) =
        (ms(o.latency.value_at_quantile(0.5)), ms(o.latency.value_at_quantile(0.99)), ms(o.latency.max()));
    eprintln!(
        "stall: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms, achieved {:.1}/s, peak {} connections, \
         connection wait p99 {:.2} ms",
        o.achieved_rps(),
        o.peak_connections,
        ms(o.connection_wait.value_at_quantile(0.99))
    );
    // A fifth of the requests are held 0.2 to 1.2 s; the slowest 1 % (50) waited over 1.15 s.
    assert!(p99 > 1000.0, "p99 {p99} ms");
    assert!((1150.0..=1300.0).contains(&max), "max {max} ms");
    // The rest of the run is untouched.
    assert!((200.0..=230.0).contains(&p50), "p50 {p50} ms");
    assert_eq!((o.dropped, o.timeouts, o.errors), (0, 0, 0), "{o:?}");
    assert_every_send_accounted_for(&o);
}

/// Buckets of 100 ms; the store hangs during [1 s, 3 s) of a 4 s window.
const BUCKET: Duration = Duration::from_millis(100);
const HANG: std::ops::Range<usize> = 10..30;

/// A run at 2000/s with a 1 s deadline against a server whose store hangs in [`HANG`], and
/// answers `during` after 250 ms (its deadline on the store) for requests arriving then.
fn outage(during: &'static [u8]) -> LoadOutcome {
    let t0 = clock();
    let window = t0 + WARMUP;
    let at = |bucket: usize| window + BUCKET * bucket as u32;
    let addr =
        spawn_store_hang(at(HANG.start), at(HANG.end), Duration::from_millis(1), Duration::from_millis(250), during);
    let mut spec = spec(addr, 2000.0, Duration::from_secs(4));
    spec.timeout = Duration::from_secs(1);
    let o = run(&spec, Keep { timeline: Some(BUCKET), start_at: Some(t0), ..Keep::default() });
    assert_eq!(o.timeline.len(), 40, "{:?}", o.timeline);
    assert_eq!(o.dropped, 0, "{o:?}");
    assert!(o.timeline.iter().all(|b| b.dropped == 0), "{:?}", o.timeline);
    assert_every_send_accounted_for(&o);
    o
}

/// Share of `ok` in the buckets' totals.
fn available(buckets: &[Bucket]) -> f64 {
    let (ok, total) = buckets.iter().fold((0, 0), |(ok, total), b| (ok + b.ok, total + b.total()));
    ok as f64 / total.max(1) as f64
}

/// The lowest availability of any one bucket.
fn worst(buckets: &[Bucket]) -> f64 {
    buckets.iter().map(|b| available(std::slice::from_ref(b))).fold(1.0, f64::min)
}

#[test]
fn a_fail_open_server_is_available_through_a_store_hang() {
    let _serial = one_at_a_time();
    let o = outage(OK);
    let hang = &o.timeline[HANG];
    eprintln!(
        "fail-open: {:.4} available in the hang (worst bucket {:.4}), {:.4} outside; peak {} connections, \
         latency p99 {:.2} ms",
        available(hang),
        worst(hang),
        available(&o.timeline[..HANG.start]).min(available(&o.timeline[HANG.end..])),
        o.peak_connections,
        ms(o.latency.value_at_quantile(0.99))
    );
    // A client that waits out a 250 ms answer within its 1 s deadline was served.
    assert!(available(hang) >= 0.99, "{hang:?}");
    assert!(hang.iter().all(|b| b.total() >= 150), "every bucket holds its ~200 requests: {hang:?}");
    assert_eq!(o.timeouts, 0, "{o:?}");
}

#[test]
fn a_fail_closed_server_is_unavailable_through_a_store_hang() {
    let _serial = one_at_a_time();
    let o = outage(UNAVAILABLE);
    // A request sent in the last moments of a bucket may reach the server after the hang
    // ended: the hang's last bucket is checked with the whole, not alone.
    let inside = &o.timeline[HANG.start..HANG.end - 1];
    let hang = &o.timeline[HANG];
    let (before, after) = (&o.timeline[..HANG.start - 1], &o.timeline[HANG.end + 1..]);
    eprintln!(
        "fail-closed: {:.4} available in the hang, {:.4} before, {:.4} after",
        available(hang),
        available(before),
        available(after)
    );
    assert!(inside.iter().all(|b| b.ok == 0 && b.unavailable >= 150), "{inside:?}");
    assert!(available(hang) < 0.01, "{hang:?}");
    // The same server outside the hang: the zero above is the hang's, not the generator's.
    assert!(available(before) >= 0.99 && available(after) >= 0.99, "{:?}", o.timeline);
    assert_eq!(o.timeouts, 0, "{o:?}");
}

#[test]
fn a_generator_at_its_connection_limit_reports_drops_not_server_timeouts() {
    let _serial = one_at_a_time();
    // 10 connections held 200 ms per request carry 50/s of the 1000/s offered: ~950/s dropped.
    let addr = spawn_server(Some(Duration::from_millis(200)));
    let mut spec = spec(addr, 1000.0, Duration::from_secs(3));
    spec.max_connections = Some(10);
    spec.connections = 10;
    let o = run(&spec, Keep::default());
    let dropped_per_s = o.dropped as f64 / 3.0;
    let p99 = ms(o.latency.value_at_quantile(0.99));
    eprintln!(
        "limited: dropped {dropped_per_s:.1}/s, sent {:.1}/s, latency p99 {p99:.2} ms, peak {} connections",
        o.achieved_rps(),
        o.peak_connections
    );
    assert!((930.0..=960.0).contains(&dropped_per_s), "dropped {dropped_per_s}/s");
    assert!(!o.latency_valid());
    assert_eq!((o.timeouts, o.errors, o.failures()), (0, 0, 0), "{o:?}");
    let outcomes = o.outcomes();
    assert_eq!((outcomes["timeout"], outcomes["error"], outcomes["5xx"]), (0, 0, 0), "{outcomes:?}");
    // What was sent went out on time and was answered in the server's 200 ms.
    assert!((200.0..=230.0).contains(&p99), "p99 {p99} ms");
    assert!(o.peak_connections <= 10 && o.connection_limit == 10, "{o:?}");
    assert_every_send_accounted_for(&o);
}

/// Runs `authbench` with `args`, killed after 60 s.
fn authbench(args: &[&str]) -> (std::process::ExitStatus, String) {
    support::authbench(args, Duration::from_secs(60))
}

#[test]
fn the_rate_scenario_through_the_cli() {
    let _serial = one_at_a_time();
    let binary = server_binary().expect("authbench-server: run `cargo build -p authbench-server`");
    let args: Vec<String> = ["--strategy", "baseline", "--listen", "127.0.0.1:0", "--users", "20"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let server = ServerProcess::start(&binary, &args, None).unwrap();
    let target = format!("http://{}", server.addr);
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("open-loop-rate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let out_arg = out.to_str().unwrap();

    let (status, stderr) = authbench(&[
        "load",
        "--target",
        &target,
        "--rate",
        "500",
        "--duration",
        "1s",
        "--suite",
        "smoke",
        "--out",
        out_arg,
        "--quiet",
    ]);
    assert!(status.success(), "{status}: {stderr}");
    let file = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path().join("results.json")).next().unwrap();
    // Read as the tools that consume results.json read it.
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let runs = results["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    eprintln!("cli: achieved {}/s, outcomes {}", run["achieved_rps"], run["outcomes"]);
    assert_eq!(run["scenario"], "rate");
    assert_eq!(run["offered_rps"].as_f64(), Some(500.0));
    let achieved = run["achieved_rps"].as_f64().unwrap();
    assert!((475.0..=525.0).contains(&achieved), "achieved {achieved}/s");
    assert_eq!(run["dropped"].as_u64(), Some(0));
    assert!(run["outcomes"]["2xx"].as_u64().unwrap() > 0, "{}", run["outcomes"]);
    assert_eq!(run["latency_valid"], true);

    // The rate scenario without a rate is one line that says what to add.
    let (status, stderr) =
        authbench(&["load", "--target", &target, "--scenario", "rate", "--suite", "smoke", "--out", out_arg]);
    assert!(!status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--rate"), "{stderr}");
    let _ = std::fs::remove_dir_all(&out);
}
