//! The scale scenario's seeding writes exactly what the strategies read: seeded sessions and
//! allowlisted jtis are accepted by a real server, and the denylist seeding leaves valid
//! tokens valid.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use authbench_server::config::{JtiMode, JwtAlg, ServerConfig, StrategyName};
use authbench_server::jwt::JwtKeys;
use authbench_server::redis_process::RedisServer;
use authbench_server::strategy::seed;
use reqwest::StatusCode;
use support::TestServer;

async fn connection(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_sessions_are_real_sessions() {
    let redis = RedisServer::start().unwrap();
    let ids = seed::sessions(&mut connection(&redis).await, 4000, 50, Duration::from_secs(600), 10).await.unwrap();
    assert!(ids.len() >= 10, "{}", ids.len());
    assert_eq!(redis.command("DBSIZE").unwrap(), ":4050", "4000 records and 50 user indexes");
    let mut config = ServerConfig::new(StrategyName::Session);
    config.redis = authbench_server::config::RedisTarget::Single(redis.url());
    config.users = 50;
    let s = TestServer::start_with_redis(config, Some(redis)).await;
    for id in &ids {
        let (status, me) = s.me(id).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        assert!(me["sub"].as_str().unwrap().starts_with("user"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_jtis_are_accepted_and_denylist_seeding_keeps_valid_tokens_valid() {
    let dir = std::env::temp_dir().join(format!("authbench-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("k");
    let keys = JwtKeys::new(JwtAlg::HS256, Some(&key)).unwrap();
    for mode in [JtiMode::Allowlist, JtiMode::Denylist] {
        let redis = RedisServer::start().unwrap();
        let mut conn = connection(&redis).await;
        let ttl = Duration::from_secs(600);
        let tokens = match mode {
            JtiMode::Allowlist => seed::live_jtis(&mut conn, &keys, 3000, 50, ttl, 5).await.unwrap(),
            JtiMode::Denylist => seed::revoked_jtis(&mut conn, &keys, 3000, 50, ttl, 5).await.unwrap(),
        };
        assert!(tokens.len() >= 5);
        let mut config = ServerConfig::new(StrategyName::Hybrid);
        config.redis = authbench_server::config::RedisTarget::Single(redis.url());
        config.users = 50;
        config.jti_mode = mode;
        config.jwt_key_file = Some(key.clone());
        let s = TestServer::start_with_redis(config, Some(redis)).await;
        for t in &tokens {
            assert_eq!(s.me(t).await.0, StatusCode::OK, "{mode:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
