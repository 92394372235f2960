//! Store failures against the servers that use one (and the one that does not): a hung Redis
//! or PostgreSQL (SIGSTOP) gives 503 within about the store timeout rather than a hung request,
//! service comes back by itself after SIGCONT and after a restart, and fail-open accepts
//! instead. A PostgreSQL killed and restarted keeps the sessions of a logged table and loses
//! those of an unlogged one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::time::{Duration, Instant};

use authbench_server::config::StrategyName;
use authbench_server::pg_process::PgServer;
use authbench_server::pg_store::PgTable;
use authbench_server::redis_process::RedisServer;
use authbench_server::store::RedisClientKind;
use authbench_server::strategy::FailMode;
use reqwest::StatusCode;
use support::TestServer;

const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// Bound on "about the timeout": generous for a loaded 2-core CI machine, far below a hang.
const ANSWER_BOUND: Duration = Duration::from_secs(3);
/// How long service may take to come back after Redis does.
const RECOVERY_BOUND: Duration = Duration::from_secs(10);

async fn start(strategy: StrategyName, client: RedisClientKind, fail: FailMode) -> TestServer {
    TestServer::start(strategy, |c| {
        c.redis_timeout = REDIS_TIMEOUT;
        c.redis_client = client;
        c.fail_mode = fail;
    })
    .await
}

/// `/me` status and how long it took.
async fn timed_me(s: &TestServer, token: &str) -> (StatusCode, Duration) {
    let started = Instant::now();
    let (status, _) = s.me(token).await;
    (status, started.elapsed())
}

/// Polls `/me` until it answers something other than 503; returns that status.
async fn wait_until_not_503(s: &TestServer, token: &str) -> StatusCode {
    let deadline = Instant::now() + RECOVERY_BOUND;
    loop {
        let (status, _) = s.me(token).await;
        if status != StatusCode::SERVICE_UNAVAILABLE || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn redis(s: &mut TestServer) -> &mut RedisServer {
    s.redis.as_mut().unwrap()
}

/// Hang, resume, kill and restart empty, against a strategy that fails closed.
async fn fails_closed_and_recovers(strategy: StrategyName, client: RedisClientKind) {
    let mut s = start(strategy, client, FailMode::Closed).await;
    let token = s.login("user1").await;
    assert_eq!(s.me(&token).await.0, StatusCode::OK);

    redis(&mut s).pause().unwrap();
    let (status, took) = timed_me(&s, &token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < ANSWER_BOUND, "503 took {took:?} with a {REDIS_TIMEOUT:?} Redis timeout");
    let (status, body) = s.me(&token).await;
    assert_eq!((status, body), (StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"error": "store_unavailable"})));
    assert_eq!(s.get("/healthz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    let login = s.post_json("/login", serde_json::json!({"username": "user2", "password": support::PASSWORD})).await;
    assert_eq!(login.0, StatusCode::SERVICE_UNAVAILABLE);

    redis(&mut s).resume().unwrap();
    assert_eq!(wait_until_not_503(&s, &token).await, StatusCode::OK, "no recovery after SIGCONT");
    assert_eq!(s.get("/healthz").await.0, StatusCode::OK);

    // Killed and restarted without persistence: the server reconnects by itself, and the
    // session (or allowlisted jti) is gone: the user is logged out.
    redis(&mut s).kill().unwrap();
    assert_eq!(s.me(&token).await.0, StatusCode::SERVICE_UNAVAILABLE);
    redis(&mut s).restart().unwrap();
    assert_eq!(wait_until_not_503(&s, &token).await, StatusCode::UNAUTHORIZED, "state should be lost");
    let fresh = s.login("user1").await;
    assert_eq!(s.me(&fresh).await.0, StatusCode::OK);
}

fn pg(s: &mut TestServer) -> &mut PgServer {
    s.pg.as_mut().unwrap()
}

/// Hang, resume, kill and restart (crash recovery), against `session` on PostgreSQL: whether
/// the session outlives the crash is the table's persistence.
async fn postgres_fails_closed_and_recovers(table: PgTable) {
    let mut s = TestServer::start_on_postgres(StrategyName::Session, table, |c| c.redis_timeout = REDIS_TIMEOUT).await;
    let token = s.login("user1").await;
    assert_eq!(s.me(&token).await.0, StatusCode::OK);

    pg(&mut s).pause().unwrap();
    let (status, took) = timed_me(&s, &token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < ANSWER_BOUND, "503 took {took:?} with a {REDIS_TIMEOUT:?} store timeout");
    // Every connection of the pool is stuck behind a statement now; the next ones still answer.
    for _ in 0..6 {
        let (status, took) = timed_me(&s, &token).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(took < ANSWER_BOUND, "503 took {took:?}");
    }
    assert_eq!(s.get("/healthz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    let login = s.post_json("/login", serde_json::json!({"username": "user2", "password": support::PASSWORD})).await;
    assert_eq!(login.0, StatusCode::SERVICE_UNAVAILABLE);

    pg(&mut s).resume().unwrap();
    assert_eq!(wait_until_not_503(&s, &token).await, StatusCode::OK, "no recovery after SIGCONT");
    assert_eq!(s.get("/healthz").await.0, StatusCode::OK);

    pg(&mut s).kill().unwrap();
    assert_eq!(s.me(&token).await.0, StatusCode::SERVICE_UNAVAILABLE);
    pg(&mut s).restart().unwrap();
    let expected = match table {
        PgTable::Logged => StatusCode::OK,
        PgTable::Unlogged => StatusCode::UNAUTHORIZED,
    };
    assert_eq!(wait_until_not_503(&s, &token).await, expected, "{table:?} table after a crash");
    let fresh = s.login("user1").await;
    assert_eq!(s.me(&fresh).await.0, StatusCode::OK);
    let metrics = s.client.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("authbench_postgres_errors_total{kind=\"timeout\"}"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_postgres_logged_keeps_sessions_through_a_crash() {
    postgres_fails_closed_and_recovers(PgTable::Logged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_postgres_unlogged_loses_sessions_in_a_crash() {
    postgres_fails_closed_and_recovers(PgTable::Unlogged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_multiplexed_fails_closed_and_recovers() {
    fails_closed_and_recovers(StrategyName::Session, RedisClientKind::Multiplexed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_pool_fails_closed_and_recovers() {
    fails_closed_and_recovers(StrategyName::Session, RedisClientKind::Pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_closed_fails_closed_and_recovers() {
    fails_closed_and_recovers(StrategyName::Hybrid, RedisClientKind::Multiplexed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_open_accepts_during_a_hang_including_revoked_tokens() {
    let mut s = start(StrategyName::Hybrid, RedisClientKind::Multiplexed, FailMode::Open).await;
    let token = s.login("user1").await;
    let revoked = s.login("user2").await;
    assert_eq!(s.post_auth("/logout", &revoked, None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(s.me(&revoked).await.0, StatusCode::UNAUTHORIZED);

    redis(&mut s).pause().unwrap();
    let (status, took) = timed_me(&s, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(took < ANSWER_BOUND, "fail-open answer took {took:?}");
    // The price of failing open: a revoked token works while Redis is away.
    assert_eq!(s.me(&revoked).await.0, StatusCode::OK);
    redis(&mut s).resume().unwrap();
    let deadline = Instant::now() + RECOVERY_BOUND;
    while s.me(&revoked).await.0 != StatusCode::UNAUTHORIZED {
        assert!(Instant::now() < deadline, "revocation not enforced again after SIGCONT");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = s.client.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("authbench_auth_outcomes_total{outcome=\"fail_open\"} 0"), "{metrics}");
    assert!(metrics.contains("authbench_redis_errors_total{kind=\"timeout\"}"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_does_not_notice_redis() {
    let s = TestServer::start(StrategyName::Jwt, |_| {}).await;
    let redis = RedisServer::start().unwrap();
    let token = s.login("user1").await;
    redis.pause().unwrap();
    assert_eq!(s.me(&token).await.0, StatusCode::OK);
    assert_eq!(s.get("/healthz").await.0, StatusCode::OK);
    redis.resume().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_at_start_is_one_clear_error() {
    let port = authbench_server::redis_process::free_port().unwrap();
    let mut config = authbench_server::ServerConfig::new(StrategyName::Session);
    config.redis = authbench_server::store::RedisTarget::Single(format!("redis://127.0.0.1:{port}"));
    config.users = 1;
    let err = authbench_server::Server::build(config).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("cannot reach Redis at redis://127.0.0.1:"), "{text}");
    assert!(text.contains("start redis-server or pass --redis-url"), "{text}");
}

/// After a crash and restart under load, the pool fills again while the load goes on: the
/// requests time out at the store deadline, but the connections they asked for are opened to
/// the end and kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_postgres_recovers_under_load_after_a_crash() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut s = TestServer::start_on_postgres(StrategyName::Session, PgTable::Logged, |c| {
        c.redis_timeout = REDIS_TIMEOUT;
        c.postgres_pool_size = 4;
    })
    .await;
    let token = s.login("user1").await;
    let stop = Arc::new(AtomicBool::new(false));
    // 64 clients in closed loops: every connection of the pool is wanted all the time.
    let mut loops = Vec::new();
    for _ in 0..64 {
        let (client, url, token, stop) = (s.client.clone(), s.url("/me"), token.clone(), stop.clone());
        loops.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = client.get(&url).bearer_auth(&token).send().await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    pg(&mut s).kill().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| pg(&mut s).restart().unwrap());
    let back = Instant::now();
    let status = wait_until_not_503(&s, &token).await;
    let took = back.elapsed();
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        let _ = l.await;
    }
    assert_eq!(status, StatusCode::OK, "no recovery under load within {RECOVERY_BOUND:?} of the restart");
    println!("served again {took:?} after the restart, under load");
}
