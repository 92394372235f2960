//! `session` on PostgreSQL beyond the shared suites: expired rows are refused and purged, a
//! table of the other persistence is refused at start, an unreachable PostgreSQL is one clear
//! error, and concurrent single-device logins leave one session.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::time::{Duration, Instant};

use authbench_server::config::StrategyName;
use authbench_server::pg_process::PgServer;
use authbench_server::pg_store::{PgTable, StoreKind};
use reqwest::StatusCode;
use support::TestServer;

/// A client of the test's own on `pg`, to look at the table the server writes.
async fn rows(pg: &PgServer, sql: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_are_refused_then_purged() {
    let s = TestServer::start_on_postgres(StrategyName::Session, PgTable::Logged, |c| {
        c.access_ttl = Duration::from_secs(1);
    })
    .await;
    let token = s.login("user1").await;
    assert_eq!(s.me(&token).await.0, StatusCode::OK);
    let pg = s.pg.as_ref().unwrap();
    assert_eq!(rows(pg, "SELECT count(*) FROM ab_sessions").await, 1);
    // exp is whole seconds: the session ends within 2 s of its login.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = s.me(&token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // The purge runs every second with a 1 s lifetime.
    let deadline = Instant::now() + Duration::from_secs(10);
    while rows(pg, "SELECT count(*) FROM ab_sessions").await != 0 {
        assert!(Instant::now() < deadline, "the expired row was never purged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_of_the_other_persistence_is_refused() {
    let s = TestServer::start_on_postgres(StrategyName::Session, PgTable::Logged, |_| {}).await;
    let mut config = s.config.clone();
    config.postgres_table = PgTable::Unlogged;
    let err = authbench_server::Server::build(config).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("table ab_sessions exists as a logged table"), "{text}");
    assert!(text.contains("cannot use PostgreSQL at postgres://"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_postgres_at_start_is_one_clear_error() {
    let port = authbench_server::redis_process::free_port().unwrap();
    let mut config = authbench_server::ServerConfig::new(StrategyName::Session);
    config.store = StoreKind::Postgres;
    config.postgres_url = format!("postgres://authbench@127.0.0.1:{port}/postgres");
    config.users = 1;
    let started = Instant::now();
    let err = authbench_server::Server::build(config).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("start postgres or pass --postgres-url"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_single_device_logins_leave_one_session() {
    let s = TestServer::start_on_postgres(StrategyName::Session, PgTable::Logged, |c| {
        c.max_sessions_per_user = Some(1);
    })
    .await;
    for _ in 0..5 {
        let logins = (0..8)
            .map(|_| s.post_json("/login", serde_json::json!({"username": "user3", "password": support::PASSWORD})));
        let answers = futures_util::future::join_all(logins).await;
        let mut live = 0;
        for (status, body) in answers {
            assert_eq!(status, StatusCode::OK, "{body}");
            if s.me(body["access_token"].as_str().unwrap()).await.0 == StatusCode::OK {
                live += 1;
            }
        }
        assert_eq!(live, 1, "single device: one of eight concurrent logins lives");
        let pg = s.pg.as_ref().unwrap();
        assert_eq!(rows(pg, "SELECT count(*) FROM ab_sessions WHERE username = 'user3'").await, 1);
    }
}
