//! What only `versioned` and `refresh` do, beyond the shared protocol suite: the grace window
//! and the refreshed token of `versioned`, and where `refresh` keeps (and does not keep) state.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use authbench_server::config::StrategyName;
use reqwest::StatusCode;
use serde_json::json;
use support::{PASSWORD, TestServer};

async fn me_with_header(s: &TestServer, token: &str) -> (StatusCode, Option<String>) {
    let response = s.client.get(s.url("/me")).header("authorization", format!("Bearer {token}")).send().await.unwrap();
    let refreshed = response.headers().get("x-refreshed-token").map(|v| v.to_str().unwrap().to_owned());
    (response.status(), refreshed)
}

/// Redis commands the server has sent, from its own counter.
async fn redis_commands(s: &TestServer) -> u64 {
    let text = s.client.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("authbench_redis_commands_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_trusts_young_tokens_and_checks_old_ones() {
    let s = TestServer::start(StrategyName::Versioned, |c| c.grace = Duration::from_secs(1)).await;
    assert_eq!(s.capabilities.revocation_delay, "grace_window");
    assert_eq!(s.capabilities.grace_s, Some(1));
    let token = s.login("user1").await;
    let victim = s.login("user2").await;

    // Inside the grace window: accepted with no Redis command, no refreshed token.
    let before = redis_commands(&s).await;
    let (status, refreshed) = me_with_header(&s, &token).await;
    // The login second may already be over; only a young token skips Redis.
    if refreshed.is_none() {
        assert_eq!(status, StatusCode::OK);
        assert_eq!(redis_commands(&s).await, before, "a token inside the grace window cost a Redis command");
    }

    // A revoke is acknowledged; the victim's token still works while it is young...
    let (status, _) = s.admin_post("/admin/users/user2/revoke").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // ...and is refused once it is older than the grace.
    let (status, body) = s.me(&victim).await;
    assert_eq!((status, body["reason"].clone()), (StatusCode::UNAUTHORIZED, json!("revoked")), "{body}");

    // An old, valid token is checked (one MGET) and answered with a fresh token.
    let before = redis_commands(&s).await;
    let (status, refreshed) = me_with_header(&s, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(redis_commands(&s).await, before + 1);
    let fresh = refreshed.expect("X-Refreshed-Token on a checked token");
    assert_ne!(fresh, token);
    let (status, me) = s.me(&fresh).await;
    assert_eq!((status, me["sub"].clone()), (StatusCode::OK, json!("user1")));

    // Revoke-all bumps the global version: every old token goes, new logins work.
    assert_eq!(s.admin_post("/admin/revoke-all").await.0, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(s.me(&fresh).await.1["reason"], "revoked");
    let after = s.login("user1").await;
    assert_eq!(s.me(&after).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_refuses_tokens_without_versions_and_logout_is_unsupported() {
    let s = TestServer::start(StrategyName::Versioned, |c| c.grace = Duration::ZERO).await;
    // A signature-valid token of the same key but without `ver`/`gver` (e.g. minted by another
    // strategy sharing the key) is not a versioned token.
    let keys = s.jwt_keys.clone().unwrap();
    let claims = authbench_server::jwt::AccessClaims::new(
        "user1",
        &["user".to_owned()],
        Duration::from_secs(60),
        authbench_server::jwt::now_secs(),
    )
    .unwrap();
    let foreign = keys.sign(&claims).unwrap();
    let (status, body) = s.me(&foreign).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let token = s.login("user3").await;
    let (status, body) = s.post_auth("/logout", &token, None).await;
    assert_eq!((status, body), (StatusCode::NOT_IMPLEMENTED, json!({"error": "unsupported"})));
    assert_eq!(s.me(&token).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_keeps_no_usable_secret_in_redis_and_no_redis_command_per_request() {
    let s = TestServer::start(StrategyName::Refresh, |_| {}).await;
    assert_eq!(s.capabilities.access_ttl_s, 60, "refresh tokens exist so that access tokens can be short");
    let (status, body) = s.post_json("/login", json!({"username": "user1", "password": PASSWORD})).await;
    assert_eq!(status, StatusCode::OK);
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    let (family, secret) = refresh.split_once('.').unwrap();

    let before = redis_commands(&s).await;
    for _ in 0..20 {
        assert_eq!(s.me(access).await.0, StatusCode::OK);
    }
    assert_eq!(redis_commands(&s).await, before, "a request touched Redis");

    // Neither half of the refresh token appears in Redis, as a key or as a value.
    let mut con = redis::Client::open(s.config.redis_url.as_str()).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert!(keys.iter().any(|k| k.starts_with("ab:rf:")), "{keys:?}");
    for key in &keys {
        assert!(!key.contains(family) && !key.contains(secret), "{key}");
        if key.starts_with("ab:rf:") {
            let value: String = redis::cmd("GET").arg(key).query(&mut con).unwrap();
            assert!(!value.contains(secret) && !value.contains(family), "{value}");
        }
    }
}
