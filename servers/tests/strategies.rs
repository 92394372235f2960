//! What only `versioned`, `refresh` and `pushed` do, beyond the shared protocol suite: the
//! grace window and the refreshed token of `versioned`, where `refresh` keeps (and does not
//! keep) state, and how `pushed` carries a revocation to another instance and rides out Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use authbench_server::config::StrategyName;
use authbench_server::jwt::JwtAlg;
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
    let mut con = redis::Client::open(s.redis.as_ref().unwrap().url()).unwrap().get_connection().unwrap();
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

/// Two `pushed` instances sharing one Redis and one key file.
async fn pushed_pair() -> (TestServer, TestServer) {
    let key_file = std::env::temp_dir().join(format!(
        "authbench-pushed-{}-{:?}.key",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_file(&key_file);
    let a = TestServer::start(StrategyName::Pushed, |c| c.jwt_key_file = Some(key_file.clone())).await;
    let b = TestServer::start_with_redis(a.config.clone(), None).await;
    (a, b)
}

/// Polls `GET /me` on `s` until the token is refused; returns how long that took.
async fn until_refused(s: &TestServer, token: &str, limit: Duration) -> Option<Duration> {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        let (status, body) = s.me(token).await;
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(body["reason"], "revoked", "{body}");
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_carries_each_revocation_to_the_other_instance_without_redis_per_request() {
    let (a, b) = pushed_pair().await;
    let token = a.login("user1").await;
    let other = a.login("user2").await;
    let before = redis_commands(&b).await;
    for _ in 0..20 {
        assert_eq!(b.me(&token).await.0, StatusCode::OK, "a token of A is accepted by B");
    }
    assert_eq!(redis_commands(&b).await, before, "a request on B touched Redis");

    // Logout on A: A refuses at once, B once the event arrives.
    assert_eq!(a.post_auth("/logout", &token, None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(a.me(&token).await.1["reason"], "revoked");
    assert!(until_refused(&b, &token, Duration::from_secs(3)).await.is_some(), "B never saw the logout");
    assert_eq!(b.me(&other).await.0, StatusCode::OK);

    // Per-user marks and the global mark travel the same way; logins after them work on both.
    assert_eq!(a.admin_post("/admin/users/user2/revoke").await.0, StatusCode::NO_CONTENT);
    assert!(until_refused(&b, &other, Duration::from_secs(3)).await.is_some());
    let fresh = b.login("user2").await;
    assert_eq!(a.me(&fresh).await.0, StatusCode::OK);
    assert_eq!(b.admin_post("/admin/revoke-all").await.0, StatusCode::NO_CONTENT);
    assert!(until_refused(&a, &fresh, Duration::from_secs(3)).await.is_some());
    let (_, caps) = b.get("/capabilities").await;
    assert_eq!(caps["push"]["connected"], true, "{caps}");
    assert!(caps["push"]["events"].as_u64().unwrap() >= 3, "{caps}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_serves_while_redis_hangs_says_how_stale_and_catches_up() {
    let (a, b) = pushed_pair().await;
    let token = a.login("user3").await;
    let victim = a.login("user4").await;
    a.redis.as_ref().unwrap().pause().unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Requests need no Redis: still served, from the state known before the hang.
    assert_eq!(b.me(&token).await.0, StatusCode::OK);
    let (_, caps) = b.get("/capabilities").await;
    assert!(caps["push"]["stale_ms"].as_u64().unwrap() >= 1000, "{caps}");
    let metrics = b.client.get(b.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let stale: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("authbench_push_staleness_ms "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(stale >= 1000, "{metrics}");
    // A revocation cannot be published while Redis hangs: the caller is told.
    let (status, _) = a.admin_post("/admin/users/user4/revoke").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    a.redis.as_ref().unwrap().resume().unwrap();
    // Back: the follower reconnects, and a revocation reaches B again.
    assert_eq!(a.admin_post("/admin/users/user4/revoke").await.0, StatusCode::NO_CONTENT);
    assert!(until_refused(&b, &victim, Duration::from_secs(5)).await.is_some(), "B did not catch up");
    let (_, caps) = b.get("/capabilities").await;
    assert_eq!(caps["push"]["connected"], true, "{caps}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_replays_the_log_when_an_instance_starts() {
    let (a, _b) = pushed_pair().await;
    let token = a.login("user5").await;
    assert_eq!(a.post_auth("/logout", &token, None).await.0, StatusCode::NO_CONTENT);
    // An instance started after the logout knows it before serving its first request.
    let late = TestServer::start_with_redis(a.config.clone(), None).await;
    assert_eq!(late.me(&token).await.1["reason"], "revoked");
}

/// A signing instance A and a verify-only instance B (public key alone) of `strategy`,
/// sharing A's Redis.
async fn signer_and_verifier(strategy: StrategyName, alg: JwtAlg, name: &str) -> (TestServer, TestServer) {
    let key_file = std::env::temp_dir().join(format!("authbench-verify-{}-{name}.key", std::process::id()));
    let _ = std::fs::remove_file(&key_file);
    let a = TestServer::start(strategy, |c| {
        c.jwt_alg = alg;
        c.jwt_key_file = Some(key_file.clone());
        c.grace = Duration::ZERO;
    })
    .await;
    let mut public = key_file.clone().into_os_string();
    public.push(".pub");
    let text = std::fs::read_to_string(&public).unwrap();
    // The public file holds the public key alone: not the private material of the key file.
    assert_ne!(text.trim(), std::fs::read_to_string(&key_file).unwrap().trim());
    let mut config = a.config.clone();
    config.jwt_key_file = None;
    config.jwt_public_key_file = Some(public.into());
    let b = TestServer::start_with_redis(config, None).await;
    let _ = std::fs::remove_file(&key_file);
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verify_only_instance_accepts_tokens_and_issues_none() {
    for (strategy, alg, name) in [
        (StrategyName::Jwt, JwtAlg::RS256, "jwt-rs256"),
        (StrategyName::Jwt, JwtAlg::EdDSA, "jwt-eddsa"),
        (StrategyName::Hybrid, JwtAlg::ES256, "hybrid-es256"),
        (StrategyName::Refresh, JwtAlg::EdDSA, "refresh-eddsa"),
        (StrategyName::Versioned, JwtAlg::ES256, "versioned-es256"),
        (StrategyName::Pushed, JwtAlg::ES256, "pushed-es256"),
    ] {
        let (a, b) = signer_and_verifier(strategy, alg, name).await;
        assert_eq!(b.capabilities.jwt_alg, a.capabilities.jwt_alg, "{name}");
        let token = a.login("user1").await;
        let (status, body) = b.me(&token).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        assert_eq!(body["sub"], "user1", "{name}");
        if strategy == StrategyName::Versioned {
            // Checked against Redis (grace 0) and passed, but B cannot mint the fresh token.
            assert_eq!(me_with_header(&b, &token).await, (StatusCode::OK, None), "{name}");
        }
        // B cannot sign: login (even with the right password) and refresh are not its job.
        let (status, body) = b.post_json("/login", json!({"username": "user1", "password": PASSWORD})).await;
        assert_eq!((status, body["error"].clone()), (StatusCode::NOT_IMPLEMENTED, json!("unsupported")), "{name}");
        if let Some(refresh_token) = a.refresh_token_of(&token) {
            assert_eq!(b.refresh(&refresh_token).await.0, StatusCode::NOT_IMPLEMENTED, "{name}");
            // The refresh token was not spent by B's refusal.
            assert_eq!(a.refresh(&refresh_token).await.0, StatusCode::OK, "{name}");
        }
        if strategy == StrategyName::Jwt {
            // Rotation would need a private key: B refuses, A's tokens still pass on B.
            assert_eq!(b.admin_post("/admin/revoke-all").await.0, StatusCode::NOT_IMPLEMENTED, "{name}");
            assert_eq!(b.me(&token).await.0, StatusCode::OK, "{name}");
        } else {
            // Revocations that need no signature work on B and reach A.
            assert_eq!(b.post_auth("/logout-all", &token, None).await.0, StatusCode::NO_CONTENT, "{name}");
            if !a.capabilities.revocation.refresh {
                let refused = until_refused(&a, &token, Duration::from_secs(2)).await;
                assert!(refused.is_some(), "{name}: revoked on B, still accepted on A");
            }
        }
        // A forged token signed with another key is refused on B as on A.
        let (other, _) = signer_and_verifier(StrategyName::Jwt, alg, &format!("{name}-other")).await;
        let forged = other.login("user1").await;
        let (status, body) = b.me(&forged).await;
        assert_eq!((status, body["reason"].clone()), (StatusCode::UNAUTHORIZED, json!("bad_signature")), "{name}");
    }
}

#[test]
fn verify_only_needs_an_asymmetric_key_and_excludes_a_key_file() {
    use authbench_server::config::ServerOptions;
    use clap::Parser;
    let parse = |args: &[&str]| {
        let mut argv = vec!["authbench-server"];
        argv.extend_from_slice(args);
        ServerOptions::try_parse_from(argv)
            .map_err(|e| e.to_string())
            .and_then(|o| o.resolve().map_err(|e| e.to_string()))
    };
    let err = parse(&["--strategy", "jwt", "--jwt-public-key-file", "/x.pub"]).unwrap_err();
    assert!(err.contains("HS256"), "{err}");
    assert!(parse(&["--strategy", "session", "--jwt-public-key-file", "/x.pub"]).is_err());
    assert!(
        parse(&["--strategy", "jwt", "--jwt-alg", "ES256", "--jwt-public-key-file", "/x.pub", "--jwt-key-file", "/k"])
            .is_err()
    );
    assert!(parse(&["--strategy", "jwt", "--jwt-alg", "ES256", "--jwt-public-key-file", "/x.pub"]).is_ok());
}
