//! The shared protocol suite, written once and run over real HTTP against every strategy and
//! configuration: every endpoint, every revocation kind a strategy claims in `/capabilities`,
//! and the 501 (or the surviving token) of every kind it does not claim.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use authbench_server::config::{ServerConfig, StrategyName};
use authbench_server::jwt::JwtAlg;
use authbench_server::pg_store::PgTable;
use authbench_server::store::RedisClientKind;
use authbench_server::strategy::{FailMode, JtiMode};
use reqwest::StatusCode;
use serde_json::json;
use support::{PASSWORD, TestServer};

/// One server configuration the suite runs against.
#[derive(Debug, Clone, Copy)]
enum Variant {
    Baseline,
    Session(RedisClientKind, Option<u32>),
    Jwt(JwtAlg),
    Hybrid(JtiMode, FailMode, RedisClientKind, Option<u32>),
    Refresh(Option<u32>),
    /// Grace 0: every request checks the version, so revocation is immediate here; the grace
    /// window itself is tested in strategies.rs.
    Versioned(Option<u32>),
    Pushed(Option<u32>),
    /// The same, against a three-master Redis Cluster.
    Cluster(&'static Variant),
    /// `session` with its sessions in PostgreSQL.
    SessionPg(PgTable, Option<u32>),
}

async fn start(variant: Variant) -> TestServer {
    if let Variant::SessionPg(table, max) = variant {
        return TestServer::start_on_postgres(StrategyName::Session, table, |c| c.max_sessions_per_user = max).await;
    }
    let Variant::Cluster(inner) = variant else { return start_on(variant, false).await };
    start_on(*inner, true).await
}

/// Starts `strategy` tweaked, on a single Redis or a cluster.
async fn launch(strategy: StrategyName, cluster: bool, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
    if cluster { TestServer::start_on_cluster(strategy, tweak).await } else { TestServer::start(strategy, tweak).await }
}

async fn start_on(variant: Variant, cluster: bool) -> TestServer {
    match variant {
        Variant::Baseline => launch(StrategyName::Baseline, cluster, |_| {}).await,
        Variant::Session(client, max) => {
            launch(StrategyName::Session, cluster, |c| {
                c.redis_client = client;
                c.max_sessions_per_user = max;
            })
            .await
        }
        Variant::Jwt(alg) => launch(StrategyName::Jwt, cluster, |c| c.jwt_alg = alg).await,
        Variant::Hybrid(mode, fail, client, max) => {
            launch(StrategyName::Hybrid, cluster, |c| {
                c.jti_mode = mode;
                c.fail_mode = fail;
                c.redis_client = client;
                c.max_sessions_per_user = max;
                c.jwt_alg = JwtAlg::ES256;
            })
            .await
        }
        Variant::Refresh(max) => {
            launch(StrategyName::Refresh, cluster, |c| {
                c.max_sessions_per_user = max;
                c.jwt_alg = JwtAlg::EdDSA;
            })
            .await
        }
        Variant::Pushed(max) => {
            launch(StrategyName::Pushed, cluster, |c| {
                c.max_sessions_per_user = max;
                c.jwt_alg = JwtAlg::RS256;
            })
            .await
        }
        Variant::Cluster(inner) => Box::pin(start_on(*inner, true)).await,
        Variant::SessionPg(..) => Box::pin(start(variant)).await,
        Variant::Versioned(max) => {
            launch(StrategyName::Versioned, cluster, |c| {
                c.max_sessions_per_user = max;
                c.grace = std::time::Duration::ZERO;
            })
            .await
        }
    }
}

/// Whether revocations act at refresh time: the access token lives on until it expires, the
/// refresh token issued with it is what dies.
fn acts_at_refresh(s: &TestServer) -> bool {
    s.capabilities.revocation.refresh && s.capabilities.revocation_delay == "access_ttl"
}

/// The status a revocation endpoint answers: 204 when the strategy performs it, else 501.
fn op_status(supported: bool) -> StatusCode {
    if supported { StatusCode::NO_CONTENT } else { StatusCode::NOT_IMPLEMENTED }
}

/// Asserts what a token experiences after a revocation: 401 `revoked` if revoked, else 200.
async fn assert_revoked(s: &TestServer, token: &str, revoked: bool, what: &str) {
    if acts_at_refresh(s) {
        let (status, body) = s.me(token).await;
        assert_eq!(status, StatusCode::OK, "{what}: the access token lives until it expires: {body}");
        if let Some(refresh) = s.refresh_token_of(token) {
            let (status, body) = s.refresh(&refresh).await;
            if revoked {
                assert_eq!((status, body["reason"].clone()), (StatusCode::UNAUTHORIZED, json!("revoked")), "{what}");
            } else {
                assert_eq!(status, StatusCode::OK, "{what}: refresh refused: {body}");
                let next = body["refresh_token"].as_str().unwrap().to_owned();
                s.refresh_tokens.lock().unwrap().insert(token.to_owned(), next);
            }
        }
        return;
    }
    let (status, body) = s.me(token).await;
    if revoked {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: token still accepted: {body}");
        assert_eq!(body["error"], "invalid_token", "{what}");
        assert_eq!(body["reason"], "revoked", "{what}: {body}");
    } else {
        assert_eq!(status, StatusCode::OK, "{what}: token not accepted: {body}");
    }
}

async fn login_me(s: TestServer) {
    let response = s
        .client
        .post(s.url("/login"))
        .json(&json!({"username": "user1", "password": PASSWORD, "device": "laptop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.headers()["server-timing"].to_str().unwrap().starts_with("argon2;dur="));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].is_u64());
    assert_eq!(body["refresh_token"].is_string(), s.capabilities.revocation.refresh, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let (status, me) = s.me(token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    if s.capabilities.strategy == "baseline" {
        assert!(me["sub"].is_string());
    } else {
        assert_eq!(me["sub"], "user1");
        assert_eq!(me["roles"], json!(["user"]));
        assert!(me["exp"].as_u64().unwrap() > authbench_server::jwt::now_secs());
    }
    // Without a token: baseline checks nothing, everyone else says 401 without an error code.
    let response = s.client.get(s.url("/me")).send().await.unwrap();
    if s.capabilities.strategy == "baseline" {
        assert_eq!(response.status(), StatusCode::OK);
    } else {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"authbench\"");
        let (_, body) = support::split(response).await;
        assert_eq!(body["reason"], "missing");
    }
}

async fn bad_credentials_look_alike(s: TestServer) {
    let wrong = s.post_json("/login", json!({"username": "user1", "password": "nope"})).await;
    let unknown = s.post_json("/login", json!({"username": "nobody", "password": PASSWORD})).await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown);
    assert_eq!(wrong.1, json!({"error": "invalid_credentials"}));
}

async fn capabilities_health_metrics(s: TestServer) {
    let (status, caps) = s.get("/capabilities").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(caps["protocol"], 1);
    assert_eq!(caps["strategy"], s.config.strategy.as_str());
    let store = match (s.config.uses_redis(), s.config.uses_postgres()) {
        (true, _) => "redis",
        (_, true) => "postgres",
        _ => "none",
    };
    assert_eq!(caps["store"], store);
    if s.config.uses_postgres() {
        assert_eq!(caps["postgres_table"], s.config.postgres_table.as_str(), "{caps}");
        assert_eq!(caps["postgres_pool_size"], s.config.postgres_pool_size, "{caps}");
        assert!(caps.get("redis_client").is_none(), "{caps}");
    }
    for kind in [
        "logout",
        "logout_all",
        "single_device",
        "password_change",
        "admin_revoke",
        "role_change",
        "revoke_all",
        "refresh",
    ] {
        assert!(caps["revocation"][kind].is_boolean(), "{kind} in {caps}");
    }
    assert!(
        ["immediate", "access_ttl", "grace_window", "propagation", "n/a"]
            .contains(&caps["revocation_delay"].as_str().unwrap())
    );
    assert!(["closed", "open", "n/a"].contains(&caps["fail_mode"].as_str().unwrap()));
    assert_eq!(s.get("/healthz").await, (StatusCode::OK, json!({"status": "ok"})));
    let token = s.login("user1").await;
    s.me(&token).await;
    let text = s.client.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("authbench_http_requests_total{route=\"/login\",status=\"200\"} 1"), "{text}");
    assert!(text.contains("authbench_auth_outcomes_total{outcome=\"ok\"}"), "{text}");
    assert!(text.contains("authbench_redis_commands_total"), "{text}");
    if s.config.uses_redis() {
        assert!(!text.contains("authbench_redis_commands_total 0"), "{text}");
    }
    if s.config.uses_postgres() {
        assert!(text.contains("authbench_redis_commands_total 0"), "{text}");
        assert!(!text.contains("authbench_postgres_statements_total 0"), "{text}");
    }
}

async fn logout(s: TestServer) {
    let supported = s.capabilities.revocation.logout;
    // Under the single-device policy a second login would itself end the first.
    let bystander_user = if s.capabilities.revocation.single_device { "user13" } else { "user2" };
    let bystander = s.login(bystander_user).await;
    let victim = s.login("user2").await;
    let (status, body) = s.post_auth("/logout", &victim, None).await;
    assert_eq!(status, op_status(supported), "{body}");
    if !supported {
        assert_eq!(body, json!({"error": "unsupported"}));
    }
    assert_revoked(&s, &victim, supported, "logged-out token").await;
    assert_revoked(&s, &bystander, false, "another device").await;
}

async fn logout_all(s: TestServer) {
    let supported = s.capabilities.revocation.logout_all;
    let laptop = s.login("user3").await;
    let phone = s.login("user3").await;
    let other = s.login("user4").await;
    let (status, _) = s.post_auth("/logout-all", &phone, None).await;
    assert_eq!(status, op_status(supported));
    assert_revoked(&s, &laptop, supported || s.capabilities.revocation.single_device, "laptop").await;
    assert_revoked(&s, &phone, supported, "phone").await;
    assert_revoked(&s, &other, false, "another user").await;
    if supported {
        let fresh = s.login("user3").await;
        assert_revoked(&s, &fresh, false, "a login after logout-all").await;
    }
}

async fn password_change(s: TestServer) {
    let token = s.login("user5").await;
    let other = s.login("user6").await;
    let body = |current: &str| json!({"current_password": current, "new_password": "a-new-password"});
    if s.capabilities.strategy == "baseline" {
        let (status, _) = s.post_auth("/password", &token, Some(body(PASSWORD))).await;
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
        return;
    }
    let (status, err) = s.post_auth("/password", &token, Some(body("wrong"))).await;
    assert_eq!((status, err), (StatusCode::FORBIDDEN, json!({"error": "wrong_password"})));
    let (status, err) = s.post_auth("/password", &token, Some(json!({"current_password": PASSWORD}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (status, _) = s.post_auth("/password", &token, Some(body(PASSWORD))).await;
    // The password changes for every strategy; whether old tokens die is the capability.
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_revoked(&s, &token, s.capabilities.revocation.password_change, "token from before the change").await;
    assert_revoked(&s, &other, false, "another user").await;
    let old = s.post_json("/login", json!({"username": "user5", "password": PASSWORD})).await;
    assert_eq!(old.0, StatusCode::UNAUTHORIZED);
    let new = s.post_json("/login", json!({"username": "user5", "password": "a-new-password"})).await;
    assert_eq!(new.0, StatusCode::OK);
    assert_revoked(&s, new.1["access_token"].as_str().unwrap(), false, "token from the new password").await;
}

async fn admin_revoke(s: TestServer) {
    let supported = s.capabilities.revocation.admin_revoke;
    let victim = s.login("user7").await;
    let other = s.login("user8").await;
    let wrong_key =
        s.client.post(s.url("/admin/users/user7/revoke")).header("x-admin-key", "nope").send().await.unwrap();
    assert_eq!(support::split(wrong_key).await, (StatusCode::FORBIDDEN, json!({"error": "forbidden"})));
    let no_key = s.client.post(s.url("/admin/users/user7/revoke")).send().await.unwrap();
    assert_eq!(no_key.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        s.admin_post("/admin/users/nobody/revoke").await,
        (StatusCode::NOT_FOUND, json!({"error": "unknown_user"}))
    );
    let (status, _) = s.admin_post("/admin/users/user7/revoke").await;
    assert_eq!(status, op_status(supported));
    assert_revoked(&s, &victim, supported, "revoked user's token").await;
    assert_revoked(&s, &other, false, "another user").await;
}

async fn role_change(s: TestServer) {
    let token = s.login("user9").await;
    let (status, _) = s.admin_put_roles("user9", &["user", "admin"]).await;
    if s.capabilities.strategy == "baseline" {
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
        return;
    }
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, me) = s.me(&token).await;
    if acts_at_refresh(&s) {
        // The access token keeps its roles until it expires; a refresh carries the new ones.
        assert_eq!((status, me["roles"].clone()), (StatusCode::OK, json!(["user"])));
        let (status, refreshed) = s.refresh(&s.refresh_token_of(&token).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{refreshed}");
        let (_, me) = s.me(refreshed["access_token"].as_str().unwrap()).await;
        assert_eq!(me["roles"], json!(["user", "admin"]));
    } else if s.capabilities.revocation.role_change {
        // Either the old token now shows the new roles, or it is gone.
        match status {
            StatusCode::OK => assert_eq!(me["roles"], json!(["user", "admin"])),
            StatusCode::UNAUTHORIZED => assert_eq!(me["reason"], "revoked"),
            other => panic!("unexpected {other}: {me}"),
        }
    } else {
        assert_eq!((status, me["roles"].clone()), (StatusCode::OK, json!(["user"])), "old token keeps old roles");
    }
    let fresh = s.login("user9").await;
    assert_eq!(s.me(&fresh).await.1["roles"], json!(["user", "admin"]));
    let (status, body) = s.admin_put_roles("user9", &["Not Valid"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(s.admin_put_roles("nobody", &["user"]).await.0, StatusCode::NOT_FOUND);
}

async fn revoke_all(s: TestServer) {
    let supported = s.capabilities.revocation.revoke_all;
    let a = s.login("user10").await;
    let b = s.login("user11").await;
    let (status, _) = s.admin_post("/admin/revoke-all").await;
    assert_eq!(status, op_status(supported));
    assert_revoked(&s, &a, supported, "user10").await;
    assert_revoked(&s, &b, supported, "user11").await;
    let fresh = s.login("user10").await;
    assert_revoked(&s, &fresh, false, "a login after revoke-all").await;
}

async fn single_device(s: TestServer) {
    let single = s.capabilities.revocation.single_device;
    let first = s.login("user12").await;
    let second = s.login("user12").await;
    assert_revoked(&s, &first, single, "the older device").await;
    assert_revoked(&s, &second, false, "the newest device").await;
    let third = s.login("user12").await;
    assert_revoked(&s, &second, single, "the second device after a third login").await;
    assert_revoked(&s, &third, false, "the newest device").await;
}

async fn refresh_rotates_and_detects_reuse(s: TestServer) {
    if !s.capabilities.revocation.refresh {
        let (status, body) = s.post_json("/refresh", json!({"refresh_token": "anything"})).await;
        assert_eq!((status, body), (StatusCode::NOT_IMPLEMENTED, json!({"error": "unsupported"})));
        return;
    }
    let access = s.login("user14").await;
    let first = s.refresh_token_of(&access).unwrap();
    // Rotation: a new pair, and the new access token works.
    let (status, body) = s.refresh(&first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let second = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(s.me(body["access_token"].as_str().unwrap()).await.0, StatusCode::OK);
    // The rotated-out token answers one retry within the reuse interval (a client that never
    // got the answer): a new pair again, and `second`, which that client never saw, dies.
    let (status, body) = s.refresh(&first).await;
    assert_eq!(status, StatusCode::OK, "a retry within the reuse interval: {body}");
    let third = body["refresh_token"].as_str().unwrap().to_owned();
    // `second` is neither current nor just replaced: a replay, which ends the family, and the
    // current token dies with it.
    assert_eq!(s.refresh(&second).await.1["reason"], "revoked");
    assert_eq!(s.refresh(&third).await.1["reason"], "revoked");
    assert_eq!(s.refresh(&first).await.1["reason"], "revoked");
    // Another login of the same user is another family, untouched.
    let other = s.login("user14").await;
    assert_eq!(s.refresh(&s.refresh_token_of(&other).unwrap()).await.0, StatusCode::OK);
    // Shapes that are not a refresh token: 401 malformed; a body without one: 400.
    for bad in ["", "x", "a.b", &format!("{first}.{first}"), "*.*", &"A".repeat(5000)] {
        let (status, body) = s.refresh(bad).await;
        assert_eq!((status, body["reason"].clone()), (StatusCode::UNAUTHORIZED, json!("malformed")), "{bad:.40}");
    }
    assert_eq!(s.post_json("/refresh", json!({})).await.0, StatusCode::BAD_REQUEST);
}

macro_rules! protocol_suite {
    ($($name:ident => $variant:expr),* $(,)?) => {$(
        mod $name {
            use super::*;
            protocol_suite!(@tests $variant; login_me, bad_credentials_look_alike, capabilities_health_metrics,
                logout, logout_all, password_change, admin_revoke, role_change, revoke_all, single_device,
                refresh_rotates_and_detects_reuse);
        }
    )*};
    (@tests $variant:expr; $($check:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            super::$check(super::start($variant).await).await;
        }
    )*};
}

use FailMode::{Closed, Open};
use JtiMode::{Allowlist, Denylist};
use RedisClientKind::{Multiplexed, Pool};

protocol_suite! {
    baseline => Variant::Baseline,
    session_multiplexed => Variant::Session(Multiplexed, None),
    session_pool => Variant::Session(Pool, None),
    session_single_device => Variant::Session(Multiplexed, Some(1)),
    jwt_hs256 => Variant::Jwt(JwtAlg::HS256),
    jwt_rs256 => Variant::Jwt(JwtAlg::RS256),
    jwt_es256 => Variant::Jwt(JwtAlg::ES256),
    jwt_eddsa => Variant::Jwt(JwtAlg::EdDSA),
    hybrid_allowlist => Variant::Hybrid(Allowlist, Closed, Multiplexed, None),
    hybrid_allowlist_pool => Variant::Hybrid(Allowlist, Closed, Pool, None),
    hybrid_allowlist_single_device => Variant::Hybrid(Allowlist, Closed, Multiplexed, Some(1)),
    hybrid_denylist => Variant::Hybrid(Denylist, Closed, Multiplexed, None),
    hybrid_denylist_single_device => Variant::Hybrid(Denylist, Closed, Multiplexed, Some(1)),
    hybrid_fail_open => Variant::Hybrid(Allowlist, Open, Multiplexed, None),
    refresh => Variant::Refresh(None),
    refresh_single_device => Variant::Refresh(Some(1)),
    versioned => Variant::Versioned(None),
    versioned_single_device => Variant::Versioned(Some(1)),
    pushed => Variant::Pushed(None),
    pushed_single_device => Variant::Pushed(Some(1)),
    cluster_session_single_device => Variant::Cluster(&Variant::Session(Multiplexed, Some(1))),
    cluster_hybrid_allowlist_pool => Variant::Cluster(&Variant::Hybrid(Allowlist, Closed, Pool, None)),
    cluster_hybrid_denylist => Variant::Cluster(&Variant::Hybrid(Denylist, Closed, Multiplexed, None)),
    cluster_refresh => Variant::Cluster(&Variant::Refresh(None)),
    cluster_versioned => Variant::Cluster(&Variant::Versioned(None)),
    cluster_pushed => Variant::Cluster(&Variant::Pushed(Some(1))),
    session_pg => Variant::SessionPg(PgTable::Logged, None),
    session_pg_unlogged_single_device => Variant::SessionPg(PgTable::Unlogged, Some(1)),
}
