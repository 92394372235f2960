//! The outage instrument on a known answer: Redis frozen for 5 s under load must show a hole
//! of about 5 s in the session server's timeline, and service must come back right after.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use authbench::results::Fault;
use authbench::server_binary;
use authbench::{OutagePlan, OutageStore, OutageTarget};

#[test]
fn a_five_second_hang_leaves_a_five_second_hole() {
    let binary = server_binary().expect("authbench-server: run `cargo build -p authbench-server`");
    let plan = OutagePlan {
        before: Duration::from_secs(1),
        fault: Duration::from_secs(5),
        after: Duration::from_secs(2),
        connections: 16,
        threads: 1,
        keepers: 3,
        password: "authbench-password".into(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let args: Vec<String> = ["--strategy", "session", "--users", "1000"].iter().map(|s| (*s).to_owned()).collect();
    let target = OutageTarget {
        strategy: "session",
        variant: "session",
        server_args: &args,
        store: OutageStore::Redis,
        binary: &binary,
    };
    let r =
        authbench::run_outage(&target, Fault::Hang, 400.0, &plan, runtime.handle(), &Arc::new(AtomicBool::new(false)))
            .unwrap();
    // A bucket is in the hole when fewer than half of its expected successes (400/s × 100 ms)
    // arrived; empty buckets count, since nothing succeeded in them either.
    let expected = 400.0 * r.bucket_ms / 1000.0;
    let hole = r.timeline.iter().filter(|b| (b.ok as f64) < 0.5 * expected).count();
    let hole_s = hole as f64 * r.bucket_ms / 1000.0;
    assert!((4.5..=5.6).contains(&hole_s), "hole of {hole_s} s; {:?}", r.timeline);
    assert!(r.availability_before > 0.99, "{}", r.availability_before);
    assert!(r.availability_during < 0.1, "{}", r.availability_during);
    assert!(r.availability_after > 0.95, "{}", r.availability_after);
    assert!(r.recovery_ms.is_some_and(|ms| ms < 500.0), "{:?}", r.recovery_ms);
    assert!((r.redis_back_ms - r.fault_start_ms - 5000.0).abs() < 200.0);
    assert_eq!(r.sessions_lost, 0);
    assert_eq!(r.revocations_lost, Some(0));
    assert_eq!(r.revoked_accepted, 0);
}
