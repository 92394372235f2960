//! The load engine checked on known answers: a server that answers at once, a server that
//! serves one request at a time, 20 ms each (the open loop must show the queueing a closed
//! loop hides), and a server that never answers (timeouts must be counted and the run must
//! still end on time). The fixed-rate open loop has its own known answers in `open_loop.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use authbench::{Keep, LoadSpec, RequestTemplate, Schedule};
use support::{OK, spawn_http, spawn_serial, spawn_server};

fn spec(addr: SocketAddr, connections: usize, duration: Duration, schedule: Schedule) -> LoadSpec {
    LoadSpec {
        addr,
        others: Vec::new(),
        requests: vec![RequestTemplate::get("/", None).unwrap()],
        connections,
        threads: 1,
        warmup: Duration::from_millis(100),
        duration,
        schedule,
        timeout: Duration::from_millis(500),
        max_connections: None,
        cpus: None,
        population: None,
    }
}

#[test]
fn closed_loop_counts_every_answer() {
    let addr = spawn_server(Some(Duration::ZERO));
    let outcome = authbench::run_load(
        &spec(addr, 4, Duration::from_secs(1), Schedule::Closed),
        Keep::default(),
        &Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    assert!(outcome.requests > 100, "{outcome:?}");
    assert_eq!(outcome.errors, 0);
    assert_eq!(outcome.statuses.get(&200), Some(&outcome.requests));
    assert_eq!(outcome.latency.len(), outcome.requests);
}

#[test]
fn open_loop_holds_the_offered_rate() {
    let addr = spawn_server(Some(Duration::ZERO));
    let rate = 400.0;
    let outcome = authbench::run_load(
        &spec(addr, 4, Duration::from_secs(2), Schedule::Open { rate }),
        Keep::default(),
        &Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    let expected = rate * 2.0;
    assert!((outcome.offered as f64 - expected).abs() <= expected * 0.02, "offered {}", outcome.offered);
    assert!((outcome.requests as f64) >= expected * 0.95, "achieved {}", outcome.requests);
    assert_eq!(outcome.dropped, 0);
    // The pacer's own lateness stays far below a millisecond timer wheel's.
    let lag_p50_us = outcome.pacer_lag.value_at_quantile(0.5) as f64 / 1000.0;
    assert!(lag_p50_us < 1000.0, "send lag p50 {lag_p50_us} µs");
}

#[test]
fn open_loop_exposes_queueing_that_service_time_hides() {
    // A server that answers one request at a time over all its connections, 20 ms each: its
    // capacity is 50/s however many connections a client opens.
    let each = Duration::from_millis(20);
    let no_cancel = Arc::new(AtomicBool::new(false));
    // A closed loop never lets a queue form: it reports the service time alone.
    let closed = authbench::run_load(
        &spec(spawn_serial(each), 1, Duration::from_millis(500), Schedule::Closed),
        Keep::default(),
        &no_cancel,
    )
    .unwrap();
    let closed_p50_ms = closed.latency.value_at_quantile(0.5) as f64 / 1e6;
    assert!((19.0..40.0).contains(&closed_p50_ms), "closed-loop p50 {closed_p50_ms} ms");
    // Offered 100/s, twice its capacity: the queue grows until requests wait out their 1 s
    // deadline. More connections cannot help, so the engine opens them but drops nothing; the
    // wait is in every latency from the intended send, timeouts at their deadline included.
    let mut open = spec(spawn_serial(each), 1, Duration::from_secs(2), Schedule::Open { rate: 100.0 });
    open.timeout = Duration::from_secs(1);
    let outcome = authbench::run_load(&open, Keep::default(), &no_cancel).unwrap();
    let latency_p99_ms = outcome.latency.value_at_quantile(0.99) as f64 / 1e6;
    eprintln!(
        "queueing: closed-loop p50 {closed_p50_ms:.2} ms; open loop p99 {latency_p99_ms:.2} ms, service p50 {:.2} ms, \
         {} timeouts, {} answered, peak {} of {} connections",
        outcome.service.value_at_quantile(0.5) as f64 / 1e6,
        outcome.timeouts,
        outcome.requests,
        outcome.peak_connections,
        outcome.connection_limit
    );
    assert!(
        latency_p99_ms > 10.0 * closed_p50_ms,
        "latency p99 {latency_p99_ms} ms, closed-loop p50 {closed_p50_ms} ms"
    );
    assert!(outcome.timeouts > 0, "{outcome:?}");
    assert_eq!(outcome.dropped, 0, "{outcome:?}");
    assert_eq!(outcome.latency.len(), outcome.requests + outcome.errors, "every request sent is in the latency");
    assert_eq!(outcome.latency.len(), outcome.offered);
    assert!(outcome.throughput() < 55.0, "answered {} /s", outcome.throughput());
}

#[test]
fn a_silent_server_times_out_and_the_run_still_ends() {
    let addr = spawn_server(None);
    let started = Instant::now();
    let outcome = authbench::run_load(
        &spec(addr, 2, Duration::from_secs(1), Schedule::Closed),
        Keep::default(),
        &Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    assert!(outcome.timeouts >= 2, "{outcome:?}");
    assert_eq!(outcome.requests, 0);
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
}

#[test]
fn connections_are_split_across_instances() {
    // Half the connections go to a server that answers, half to one that never does: both
    // answers and timeouts show up, which one target alone cannot produce.
    let answers = spawn_server(Some(Duration::ZERO));
    let silent = spawn_server(None);
    let mut spec = spec(answers, 4, Duration::from_secs(1), Schedule::Closed);
    spec.others = vec![silent];
    assert_eq!((0..4).map(|c| spec.target(c)).collect::<Vec<_>>(), [answers, silent, answers, silent]);
    let outcome = authbench::run_load(&spec, Keep::default(), &Arc::new(AtomicBool::new(false))).unwrap();
    assert!(outcome.requests > 100, "{outcome:?}");
    assert!(outcome.timeouts >= 2, "{outcome:?}");
}

/// A server that answers a request bearing `old-token` with `X-Refreshed-Token: new-token`,
/// and counts the requests bearing each.
fn spawn_refreshing_server() -> (SocketAddr, Arc<AtomicU64>, Arc<AtomicU64>) {
    let (old, new) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (o, n) = (old.clone(), new.clone());
    let addr = spawn_http(Arc::new(move |head| {
        if head.contains("bearer old-token") {
            o.fetch_add(1, Ordering::Relaxed);
            return Some((
                Duration::ZERO,
                b"HTTP/1.1 200 OK\r\nx-refreshed-token: new-token\r\ncontent-length: 2\r\n\r\nok".as_slice(),
            ));
        }
        if head.contains("bearer new-token") {
            n.fetch_add(1, Ordering::Relaxed);
        }
        Some((Duration::ZERO, OK))
    }));
    (addr, old, new)
}

#[test]
fn a_refreshed_token_is_adopted_by_its_connection() {
    let (addr, old, new) = spawn_refreshing_server();
    let mut spec = spec(addr, 4, Duration::from_millis(500), Schedule::Closed);
    spec.requests = vec![RequestTemplate::get("/me", Some("old-token")).unwrap()];
    let outcome = authbench::run_load(&spec, Keep::default(), &Arc::new(AtomicBool::new(false))).unwrap();
    // Each of the 4 connections sends the old token once, then only the one handed back.
    assert_eq!(old.load(Ordering::Relaxed), 4, "{outcome:?}");
    assert!(new.load(Ordering::Relaxed) > 100, "{outcome:?}");
}

#[test]
fn cancel_stops_a_run_early() {
    let addr = spawn_server(Some(Duration::ZERO));
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(600));
        flag.store(true, Ordering::SeqCst);
    });
    let started = Instant::now();
    let outcome =
        authbench::run_load(&spec(addr, 2, Duration::from_secs(30), Schedule::Closed), Keep::default(), &cancel)
            .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(outcome.requests > 0);
    assert!(outcome.window < Duration::from_secs(2), "window {:?}", outcome.window);
}

#[test]
fn histograms_round_trip() {
    let mut h = authbench::results::new_histogram();
    for v in [1_000u64, 250_000, 3_000_000] {
        h.record(v).unwrap();
    }
    let back = authbench::results::deserialize_histogram(&authbench::results::serialize_histogram(&h)).unwrap();
    assert_eq!(back.len(), 3);
    assert_eq!(back.max(), h.max());
}

/// A server that answers at once and counts what it answered.
fn spawn_counting_server() -> (SocketAddr, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let addr = spawn_http(Arc::new(move |_| {
        c.fetch_add(1, Ordering::Relaxed);
        Some((Duration::ZERO, OK))
    }));
    (addr, count)
}

#[test]
fn an_open_loop_splits_its_sends_evenly_across_instances() {
    // One generator thread and two instances, at a rate where one warm connection would carry
    // everything: the split must follow the sends, not the connections in use.
    let (a, at_a) = spawn_counting_server();
    let (b, at_b) = spawn_counting_server();
    let mut spec = spec(a, 4, Duration::from_secs(1), Schedule::Open { rate: 400.0 });
    spec.others = vec![b];
    spec.threads = 1;
    let outcome = authbench::run_load(&spec, Keep::default(), &Arc::new(AtomicBool::new(false))).unwrap();
    let (at_a, at_b) = (at_a.load(Ordering::Relaxed), at_b.load(Ordering::Relaxed));
    assert_eq!(outcome.dropped, 0);
    assert!(at_a + at_b >= 400, "{at_a} + {at_b}");
    // Round robin per send; a send that waited for a connection may take the other instance's.
    assert!(at_a.abs_diff(at_b) <= (at_a + at_b) / 20, "split {at_a} / {at_b}");
}

#[test]
fn more_connections_than_the_ceiling_do_not_break_the_limit() {
    let mut spec = spec("127.0.0.1:9".parse().unwrap(), 9000, Duration::from_secs(1), Schedule::Open { rate: 10.0 });
    assert!(spec.connection_limit() <= authbench::CONNECTION_CEILING);
    spec.max_connections = Some(3);
    assert_eq!(spec.connection_limit(), 3);
}
