//! The scale scenario's seeding writes exactly what the strategies read: seeded sessions and
//! allowlisted jtis are accepted by a real server, and the denylist seeding leaves valid
//! tokens valid; seeded refresh families are the ones a logout and a logout-all end; seeded
//! user versions are read on every request past the grace (a stale `ver` is refused); seeded
//! revocation events are replayed by a starting `pushed` server, which refuses their tokens;
//! sessions seeded into PostgreSQL are rows a real server reads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use authbench_server::config::{ServerConfig, StrategyName};
use authbench_server::jwt::{JwtAlg, JwtKeys};
use authbench_server::pg_store::PgTable;
use authbench_server::redis_process::RedisServer;
use authbench_server::store::RedisTarget;
use authbench_server::strategy::{JtiMode, seed};
use reqwest::StatusCode;
use support::TestServer;

async fn connection(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// A fresh HS256 key file under a directory of its own (removed by the caller).
fn key_file(test: &str) -> (std::path::PathBuf, JwtKeys) {
    let dir = std::env::temp_dir().join(format!("authbench-seed-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("k");
    let _ = std::fs::remove_file(&key);
    let keys = JwtKeys::new(JwtAlg::HS256, Some(&key)).unwrap();
    (key, keys)
}

/// A server of `strategy` on `redis`, signing with the key in `key`.
async fn server_on(strategy: StrategyName, redis: RedisServer, key: &std::path::Path) -> TestServer {
    let mut config = ServerConfig::new(strategy);
    config.redis = RedisTarget::Single(redis.url());
    config.users = 50;
    config.jwt_key_file = Some(key.to_path_buf());
    config.admin_key = "seed-test-admin-key".to_owned();
    TestServer::start_with_redis(config, Some(redis)).await
}

fn dbsize(s: &TestServer) -> u64 {
    let reply = s.redis.as_ref().unwrap().command("DBSIZE").unwrap();
    reply.trim_start_matches(':').parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_sessions_are_real_sessions() {
    let redis = RedisServer::start().unwrap();
    let ids = seed::sessions(&mut connection(&redis).await, 4000, 50, Duration::from_secs(600), 10).await.unwrap();
    assert!(ids.len() >= 10, "{}", ids.len());
    assert_eq!(redis.command("DBSIZE").unwrap(), ":4050", "4000 records and 50 user indexes");
    let mut config = ServerConfig::new(StrategyName::Session);
    config.redis = RedisTarget::Single(redis.url());
    config.users = 50;
    let s = TestServer::start_with_redis(config, Some(redis)).await;
    for id in &ids {
        let (status, me) = s.me(id).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        assert!(me["sub"].as_str().unwrap().starts_with("user"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_seeded_into_postgres_are_rows_a_real_server_reads() {
    // The server creates the table at start; the seeding fills it behind its back.
    let s = TestServer::start_on_postgres(StrategyName::Session, PgTable::Logged, |c| c.users = 7).await;
    let pg = s.pg.as_ref().unwrap();
    let seed = seed::pg_sessions(4000, 7, Duration::from_secs(600), 10).unwrap();
    pg.psql(&seed.sql).unwrap();
    let table = seed::PG_SESSIONS_TABLE;
    assert_eq!(pg.psql(&format!("SELECT count(*) FROM {table}")).unwrap(), "4000");
    assert_eq!(pg.psql(&format!("SELECT count(DISTINCT username) FROM {table}")).unwrap(), "7");
    let live = format!(
        "SELECT count(*) FROM {table} WHERE expires_at > now() + interval '590 s' AND record->>'sub' = username"
    );
    assert_eq!(pg.psql(&live).unwrap(), "4000", "every row live for the ttl, its record's user its own");
    // Rows 0, 400, 800, ...: user (400 k) mod 7.
    assert_eq!(seed.ids.len(), 10);
    for (k, id) in seed.ids.iter().enumerate() {
        let (status, me) = s.me(id).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        assert_eq!(me["sub"], format!("user{}", 400 * k % 7), "{me}");
    }
    let stranger = authbench_server::token::new_opaque_id().unwrap();
    assert_eq!(s.me(&stranger).await.0, StatusCode::UNAUTHORIZED, "an id not seeded is refused");
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
        config.redis = RedisTarget::Single(redis.url());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_refresh_families_are_the_ones_logout_and_logout_all_end() {
    let (key, keys) = key_file("refresh");
    let redis = RedisServer::start().unwrap();
    let ttl = Duration::from_secs(600);
    let tokens = seed::refresh_families(&mut connection(&redis).await, &keys, 3000, 50, ttl, 10).await.unwrap();
    assert!(tokens.len() >= 10, "{}", tokens.len());
    let s = server_on(StrategyName::Refresh, redis, &key).await;
    assert_eq!(dbsize(&s), 3050, "3000 families and 50 user indexes");
    for t in &tokens {
        let (status, me) = s.me(t).await;
        assert_eq!(status, StatusCode::OK, "{me}");
    }
    // The token's `fam` names a seeded family: logout ends exactly that record...
    let (status, body) = s.post_auth("/logout", &tokens[0], None).await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(dbsize(&s), 3049);
    // ... and the user index lists the user's other 59 families (sampled tokens are every
    // 300th family, all of user0), which logout-all ends with the index.
    let (status, body) = s.post_auth("/logout-all", &tokens[1], None).await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(dbsize(&s), 3049 - 59 - 1);
    let _ = std::fs::remove_dir_all(key.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_user_versions_are_read_past_the_grace_and_refuse_a_stale_version() {
    let (key, keys) = key_file("versioned");
    let redis = RedisServer::start().unwrap();
    let (ttl, age) = (Duration::from_secs(600), Duration::from_secs(60));
    let tokens = seed::user_versions(&mut connection(&redis).await, &keys, 4000, ttl, age, 10).await.unwrap();
    assert!(tokens.len() >= 10, "{}", tokens.len());
    assert_eq!(redis.command("DBSIZE").unwrap(), ":4001", "4000 user versions and the global one");
    let mut config = ServerConfig::new(StrategyName::Versioned);
    config.redis = RedisTarget::Single(redis.url());
    config.users = 50;
    config.jwt_key_file = Some(key.clone());
    config.grace = Duration::from_secs(1);
    let s = TestServer::start_with_redis(config, Some(redis)).await;
    for t in &tokens {
        let response = s.client.get(s.url("/me")).bearer_auth(t).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        // A fresh token comes back only after the versions were read from Redis and passed.
        assert!(response.headers().contains_key("x-refreshed-token"), "the versions were not read");
    }
    // The users are user0..user3999, beyond the 50 the server knows: /me does not ask the directory.
    let last = keys.verify(tokens.last().unwrap()).unwrap();
    assert!(last.sub.trim_start_matches("user").parse::<u32>().unwrap() >= 50, "{}", last.sub);
    for t in &tokens {
        let mut stale = keys.verify(t).unwrap();
        stale.ver = stale.ver.map(|v| v - 1);
        let (status, body) = s.me(&keys.sign(&stale).unwrap()).await;
        assert_eq!((status, body["reason"].as_str()), (StatusCode::UNAUTHORIZED, Some("revoked")), "{body}");
        let mut old_global = keys.verify(t).unwrap();
        old_global.gver = Some(0);
        assert_eq!(s.me(&keys.sign(&old_global).unwrap()).await.0, StatusCode::UNAUTHORIZED);
    }
    let _ = std::fs::remove_dir_all(key.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_revocation_events_are_replayed_at_start_and_refuse_their_tokens() {
    let (key, keys) = key_file("pushed");
    let redis = RedisServer::start().unwrap();
    let ttl = Duration::from_secs(600);
    let tokens = seed::jti_events(&mut connection(&redis).await, &keys, 3000, 50, ttl, 10).await.unwrap();
    assert_eq!(tokens.valid.len(), 10);
    assert!(tokens.revoked.len() >= 10, "{}", tokens.revoked.len());
    assert_eq!(redis.command("DBSIZE").unwrap(), ":2", "the stream and its epoch");
    let s = server_on(StrategyName::Pushed, redis, &key).await;
    let push = s.capabilities.push.as_ref().unwrap();
    assert_eq!(push.events, 3000, "every event replayed before serving");
    for t in &tokens.valid {
        let (status, me) = s.me(t).await;
        assert_eq!(status, StatusCode::OK, "{me}");
    }
    for t in &tokens.revoked {
        let (status, body) = s.me(t).await;
        assert_eq!((status, body["reason"].as_str()), (StatusCode::UNAUTHORIZED, Some("revoked")), "{body}");
    }
    let _ = std::fs::remove_dir_all(key.parent().unwrap());
}
