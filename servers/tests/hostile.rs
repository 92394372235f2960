//! Hostile input over real HTTP: forged, tampered, expired, oversized and malformed tokens,
//! Redis glob characters, malformed bodies and paths. Every case must get the expected 4xx
//! with a JSON body; no case may get a 5xx or take the server down.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use authbench_server::config::StrategyName;
use authbench_server::jwt::{AUDIENCE, AccessClaims, ISSUER, JwtAlg, JwtKeys, now_secs};
use authbench_server::pg_store::PgTable;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::TestServer;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn claims(sub: &str) -> AccessClaims {
    let now = now_secs();
    AccessClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: sub.into(),
        exp: now + 600,
        nbf: now,
        iat: now,
        jti: authbench_server::token::new_jti().unwrap(),
        roles: vec!["admin".into()],
        pad: None,
        ver: None,
        gver: None,
        fam: None,
        iat_us: None,
    }
}

/// A token with an arbitrary header and payload and an HMAC-SHA256 signature under `secret`.
fn hs256(header: &Value, payload: &Value, secret: &[u8]) -> String {
    let signing_input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload.to_string().as_bytes()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", b64(tag.as_ref()))
}

fn unsigned(header: &Value, payload: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", b64(header.to_string().as_bytes()), b64(payload.to_string().as_bytes()))
}

/// A JSON value nested `depth` arrays deep.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!([inner]))
}

/// One hostile request and what it must get.
struct Case {
    name: &'static str,
    authorization: Option<Vec<u8>>,
    status: StatusCode,
    /// The acceptable `reason`s of a 401.
    reason: Option<&'static [&'static str]>,
}

fn case(name: &'static str, token: impl Into<String>, reason: &'static str) -> Case {
    case_any(name, token, Box::leak(Box::new([reason])))
}

/// A case where more than one reason is right (e.g. a truncated signature may no longer be
/// valid base64).
fn case_any(name: &'static str, token: impl Into<String>, reasons: &'static [&'static str]) -> Case {
    Case {
        name,
        authorization: Some(format!("Bearer {}", token.into()).into_bytes()),
        status: StatusCode::UNAUTHORIZED,
        reason: Some(reasons),
    }
}

fn raw(name: &'static str, header: &[u8], reason: &'static str) -> Case {
    Case {
        name,
        authorization: Some(header.to_vec()),
        status: StatusCode::UNAUTHORIZED,
        reason: Some(Box::leak(Box::new([reason]))),
    }
}

/// Runs every case against `/me`, then checks that the server still serves a valid token.
async fn run_cases(s: &TestServer, cases: Vec<Case>, valid: &str) {
    let mut failures = Vec::new();
    let count = cases.len();
    for c in cases {
        let mut request = s.client.get(s.url("/me"));
        if let Some(h) = &c.authorization {
            request = request.header("authorization", h.as_slice());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let challenge = response.headers().get("www-authenticate").cloned();
        let text = response.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let mut problems = Vec::new();
        if status != c.status {
            problems.push(format!("status {status}, wanted {}", c.status));
        }
        if body.is_null() {
            problems.push(format!("body is not JSON: {text:?}"));
        }
        if let Some(reasons) = c.reason {
            if !reasons.iter().any(|r| body["reason"] == *r) {
                problems.push(format!("reason {}, wanted one of {reasons:?}", body["reason"]));
            }
            if reasons != ["missing"]
                && challenge.as_ref().is_none_or(|v| !v.to_str().unwrap_or("").contains("invalid_token"))
            {
                problems.push("no WWW-Authenticate invalid_token".to_owned());
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", c.name, problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{} of {count} hostile cases failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(s.me(valid).await.0, StatusCode::OK, "server no longer accepts a valid token");
}

/// Cases every token-checking strategy must reject the same way.
fn common_cases() -> Vec<Case> {
    vec![
        Case { name: "no header", authorization: None, status: StatusCode::UNAUTHORIZED, reason: Some(&["missing"]) },
        raw("Basic scheme", b"Basic dXNlcjA6cGFzc3dvcmQ=", "malformed"),
        raw("scheme only", b"Bearer", "malformed"),
        raw("empty token", b"Bearer ", "malformed"),
        raw("two tokens", b"Bearer abc def", "malformed"),
        raw("non-UTF-8 token", b"Bearer \xff\xfe\xfd", "malformed"),
        raw("latin-1 token", b"Bearer caf\xe9", "malformed"),
        case("redis glob *", "*", "malformed"),
        case("redis glob pattern", "ab:s:*", "malformed"),
        case("redis glob ?", "??????????????????????????????????????????", "malformed"),
        case("redis glob class", "[a-z]*", "malformed"),
        case("key separator", "ab:s:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "malformed"),
        case("backslash", "a\\b", "malformed"),
        case("oversized 13 KiB", "a".repeat(13 * 1024), "oversized"),
        case("percent-encoded", "%2A%2A%2A", "malformed"),
    ]
}

/// Cases for the JWT strategies, forged against the server's own key ring.
fn jwt_cases(keys: &JwtKeys) -> Vec<Case> {
    let alg = format!("{:?}", keys.algorithm());
    let good = keys.sign(&claims("user1")).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let (h, p, sig) = (parts[0], parts[1], parts[2]);
    let payload = serde_json::to_value(claims("user1")).unwrap();
    let mut tampered = payload.clone();
    tampered["sub"] = json!("user2");
    let now = now_secs();
    let expired = AccessClaims { exp: now - 60, iat: now - 600, nbf: now - 600, ..claims("user1") };
    let future = AccessClaims { nbf: now + 60, ..claims("user1") };
    let other = JwtKeys::generate(JwtAlg::HS256).unwrap();
    let other_same_alg = JwtKeys::generate(match keys.algorithm() {
        jsonwebtoken::Algorithm::HS256 => JwtAlg::HS256,
        jsonwebtoken::Algorithm::RS256 => JwtAlg::RS256,
        jsonwebtoken::Algorithm::ES256 => JwtAlg::ES256,
        _ => JwtAlg::EdDSA,
    })
    .unwrap();
    let header = |alg: &str| json!({"alg": alg, "typ": "JWT"});
    let payload_without = |field: &str| {
        let mut p = payload.clone();
        p.as_object_mut().unwrap().remove(field);
        p
    };
    let no_exp = payload_without("exp");
    let no_jti = payload_without("jti");
    let no_iat = payload_without("iat");
    let mut cases = vec![
        case("alg none", unsigned(&header("none"), &payload, ""), "malformed"),
        case("alg None", unsigned(&header("None"), &payload, ""), "malformed"),
        case("alg NONE", unsigned(&header("NONE"), &payload, ""), "malformed"),
        case("alg nOnE", unsigned(&header("nOnE"), &payload, ""), "malformed"),
        case("alg none, signature kept", unsigned(&header("none"), &payload, sig), "malformed"),
        case("alg missing", unsigned(&json!({"typ": "JWT"}), &payload, sig), "malformed"),
        case("stripped signature", format!("{h}.{p}."), "bad_signature"),
        case("two segments", format!("{h}.{p}"), "malformed"),
        case("four segments", format!("{good}.{sig}"), "malformed"),
        case("tampered payload", format!("{h}.{}.{sig}", b64(tampered.to_string().as_bytes())), "bad_signature"),
        case_any("truncated signature", &good[..good.len() - 11], &["bad_signature", "malformed"]),
        case("truncated in the payload", &good[..h.len() + 10], "malformed"),
        case("signature of another key", other_same_alg.sign(&claims("user1")).unwrap(), "bad_signature"),
        case("expired", keys.sign(&expired).unwrap(), "expired"),
        case("not yet valid", keys.sign(&future).unwrap(), "not_yet_valid"),
        case(
            "wrong issuer",
            keys.sign(&AccessClaims { iss: "evil".into(), ..claims("user1") }).unwrap(),
            "wrong_audience",
        ),
        case(
            "wrong audience",
            keys.sign(&AccessClaims { aud: "other".into(), ..claims("user1") }).unwrap(),
            "wrong_audience",
        ),
        // The signature is checked before the payload is parsed: garbage under a foreign
        // signature is a bad signature, never a parser exercise.
        case("payload is an array, forged", unsigned(&header(&alg), &json!([1, 2]), sig), "bad_signature"),
        case("payload is not base64", format!("{h}.***.{sig}"), "malformed"),
        case("payload is not JSON, forged", format!("{h}.{}.{sig}", b64(b"not json")), "bad_signature"),
        case(
            "header with jku",
            unsigned(&json!({"alg": alg, "jku": "http://127.0.0.1:1/keys"}), &payload, sig),
            "bad_signature",
        ),
        // Claim sets signed with the server's real key, which it must still refuse.
        case_any("missing exp, validly signed", keys.sign(&no_exp).unwrap(), &["missing_claim", "malformed"]),
        case("missing jti, validly signed", keys.sign(&no_jti).unwrap(), "malformed"),
        case("missing iat, validly signed", keys.sign(&no_iat).unwrap(), "malformed"),
        case("exp as a string, validly signed", keys.sign(&json!({"exp": "9999999999"})).unwrap(), "malformed"),
        case("payload an array, validly signed", keys.sign(&json!([1, 2])).unwrap(), "malformed"),
        case("deeply nested, validly signed", keys.sign(&json!({"x": nested(200)})).unwrap(), "malformed"),
    ];
    if alg == "HS256" {
        // Claims checks only run after the signature, so forge these with the real secret's
        // absence in mind: the server must refuse them on the signature alone.
        cases.push(case("HS256 under a guessed secret", hs256(&header("HS256"), &payload, b"secret"), "bad_signature"));
        cases.push(case(
            "RS256 token to an HS256 server",
            {
                let rsa = JwtKeys::generate(JwtAlg::EdDSA).unwrap();
                rsa.sign(&claims("user1")).unwrap()
            },
            "bad_algorithm",
        ));
    } else {
        let public = keys.public_key_der().unwrap();
        // Key confusion: an HS256 token whose HMAC key is the server's public key.
        cases.push(case(
            "HS256 with the public key as secret",
            hs256(&header("HS256"), &payload, &public),
            "bad_algorithm",
        ));
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&public)
        );
        cases.push(case(
            "HS256 with the public key PEM as secret",
            hs256(&header("HS256"), &payload, pem.as_bytes()),
            "bad_algorithm",
        ));
        cases.push(case("HS256 token from another server", other.sign(&claims("user1")).unwrap(), "bad_algorithm"));
        cases.push(case("missing jti", hs256(&header("HS256"), &no_jti, b"k"), "bad_algorithm"));
    }
    cases
}

/// Malformed bodies, paths and methods: the same for every strategy.
async fn body_and_path_cases(s: &TestServer, token: &str) {
    let login = s.url("/login");
    let mut failures = Vec::new();
    let mut check = |name: &str, status: StatusCode, want: StatusCode, body: &str| {
        let json_ok = serde_json::from_str::<Value>(body).is_ok_and(|v| v["error"].is_string());
        if status != want || !json_ok {
            failures.push(format!("{name}: {status} {body:?}, wanted {want} with a JSON error"));
        }
    };
    let c = &s.client;
    let send = |r: reqwest::RequestBuilder| async move {
        let r = r.send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    };
    let json_post = |url: &str, body: &'static [u8]| c.post(url).header("content-type", "application/json").body(body);
    let (st, b) = send(json_post(&login, b"{")).await;
    check("truncated JSON", st, StatusCode::BAD_REQUEST, &b);
    let (st, b) = send(json_post(&login, b"{\"username\":1,\"password\":2}")).await;
    check("wrong types", st, StatusCode::BAD_REQUEST, &b);
    let (st, b) = send(json_post(&login, b"{\"username\":\"user1\"}")).await;
    check("missing field", st, StatusCode::BAD_REQUEST, &b);
    let (st, b) = send(json_post(&login, b"\xff\xfe{}")).await;
    check("non-UTF-8 body", st, StatusCode::BAD_REQUEST, &b);
    let (st, b) = send(json_post(&login, b"[]")).await;
    check("array body", st, StatusCode::BAD_REQUEST, &b);
    let (st, b) = send(c.post(&login).body("{\"username\":\"user1\",\"password\":\"x\"}")).await;
    check("no content type", st, StatusCode::UNSUPPORTED_MEDIA_TYPE, &b);
    let (st, b) = send(c.post(&login).header("content-type", "text/plain").body("{}")).await;
    check("text/plain body", st, StatusCode::UNSUPPORTED_MEDIA_TYPE, &b);
    let big = format!("{{\"username\":\"{}\",\"password\":\"x\"}}", "u".repeat(20 * 1024));
    let (st, b) = send(c.post(&login).header("content-type", "application/json").body(big)).await;
    check("20 KiB body", st, StatusCode::PAYLOAD_TOO_LARGE, &b);
    let long_user = json!({"username": "u".repeat(10_000), "password": "x"});
    let (st, b) = send(c.post(&login).json(&long_user)).await;
    check("10 KB username", st, StatusCode::UNAUTHORIZED, &b);
    let nul_user = json!({"username": "user1\u{0}", "password": support::PASSWORD});
    let (st, b) = send(c.post(&login).json(&nul_user)).await;
    check("NUL in username", st, StatusCode::UNAUTHORIZED, &b);
    let glob_user = json!({"username": "user*", "password": support::PASSWORD});
    let (st, b) = send(c.post(&login).json(&glob_user)).await;
    check("glob username", st, StatusCode::UNAUTHORIZED, &b);
    let (st, b) = send(c.get(&login)).await;
    check("GET /login", st, StatusCode::METHOD_NOT_ALLOWED, &b);
    let (st, b) = send(c.get(s.url("/no/such/route"))).await;
    check("unknown route", st, StatusCode::NOT_FOUND, &b);
    let (st, b) = send(c.post(s.url("/admin/users/*/revoke")).header("x-admin-key", support::ADMIN_KEY)).await;
    check("glob in admin path", st, StatusCode::NOT_FOUND, &b);
    let (st, b) = send(c.post(s.url("/admin/users/%FF%FE/revoke")).header("x-admin-key", support::ADMIN_KEY)).await;
    check("non-UTF-8 path segment", st, StatusCode::BAD_REQUEST, &b);
    let (st, b) = send(
        c.put(s.url("/admin/users/user1/roles"))
            .header("x-admin-key", support::ADMIN_KEY)
            .json(&json!({"roles": "admin"})),
    )
    .await;
    check("roles not a list", st, StatusCode::BAD_REQUEST, &b);
    let (st, b) = send(c.post(s.url("/admin/revoke-all")).header("x-admin-key", &b"\x80x"[..])).await;
    check("bad admin key", st, StatusCode::FORBIDDEN, &b);
    let (st, b) =
        send(c.post(s.url("/password")).bearer_auth(token).header("content-type", "application/json").body("{")).await;
    check("malformed /password body", st, StatusCode::BAD_REQUEST, &b);
    let (st, b) =
        send(c.post(s.url("/refresh")).header("content-type", "application/json").body("{\"refresh_token\":[]}")).await;
    check("malformed /refresh body", st, StatusCode::BAD_REQUEST, &b);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Oversized request head: hyper answers 431 before the app sees it (no JSON is possible
    // there), and the server keeps serving.
    // hyper enforces the head limit at its buffer's growth steps: a 40 KB head still reaches the
    // app (which rejects the token as oversized), an 80 KB one does not.
    let huge = format!("Bearer {}", "a".repeat(80 * 1024));
    let status = c.get(s.url("/me")).header("authorization", huge).send().await.map(|r| r.status());
    if let Ok(status) = status {
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    assert_eq!(s.me(token).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_rejects_hostile_tokens() {
    let s = TestServer::start(StrategyName::Session, |_| {}).await;
    let valid = s.login("user1").await;
    let mut cases = common_cases();
    cases.push(case("42 characters", "a".repeat(42), "malformed"));
    cases.push(case("44 characters", "a".repeat(44), "malformed"));
    cases.push(case("unknown id", "A".repeat(43), "revoked"));
    cases.push(case("id with glob", format!("{}*", "a".repeat(42)), "malformed"));
    cases.push(case("a JWT", "eyJhbGciOiJIUzI1NiJ9.e30.sig", "malformed"));
    cases.push(case("valid id plus suffix", format!("{valid}x"), "malformed"));
    run_cases(&s, cases, &valid).await;
    body_and_path_cases(&s, &valid).await;
    // Nothing the hostile cases sent may have created keys beyond the one session.
    let keys = s.redis.as_ref().unwrap().command("DBSIZE").unwrap();
    assert_eq!(keys, ":2", "one session record and its user index");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_postgres_rejects_hostile_tokens() {
    let s = TestServer::start_on_postgres(StrategyName::Session, PgTable::Logged, |_| {}).await;
    let valid = s.login("user1").await;
    let mut cases = common_cases();
    cases.push(case("42 characters", "a".repeat(42), "malformed"));
    cases.push(case("unknown id", "A".repeat(43), "revoked"));
    cases.push(case("id with SQL", format!("{}'--", "a".repeat(40)), "malformed"));
    cases.push(case("id with LIKE wildcard", format!("{}%", "a".repeat(42)), "malformed"));
    cases.push(case("valid id plus suffix", format!("{valid}x"), "malformed"));
    run_cases(&s, cases, &valid).await;
    body_and_path_cases(&s, &valid).await;
    // Nothing the hostile cases sent may have written a row beyond the one session.
    let (client, connection) =
        tokio_postgres::connect(&s.pg.as_ref().unwrap().url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let n: i64 = client.query_one("SELECT count(*) FROM ab_sessions", &[]).await.unwrap().get(0);
    assert_eq!(n, 1, "one session row");
}

async fn jwt_server(strategy: StrategyName, alg: JwtAlg) {
    let s = TestServer::start(strategy, |c| c.jwt_alg = alg).await;
    let valid = s.login("user1").await;
    let keys = s.jwt_keys.clone().unwrap();
    let mut cases = common_cases();
    cases.extend(jwt_cases(&keys));
    cases.push(case("an opaque session id", "A".repeat(43), "malformed"));
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    run_cases(&s, cases, &valid).await;
    body_and_path_cases(&s, &valid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_hs256_rejects_hostile_tokens() {
    jwt_server(StrategyName::Jwt, JwtAlg::HS256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_rs256_rejects_hostile_tokens() {
    jwt_server(StrategyName::Jwt, JwtAlg::RS256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_es256_rejects_hostile_tokens() {
    jwt_server(StrategyName::Jwt, JwtAlg::ES256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_eddsa_rejects_hostile_tokens() {
    jwt_server(StrategyName::Jwt, JwtAlg::EdDSA).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_rejects_hostile_tokens() {
    jwt_server(StrategyName::Hybrid, JwtAlg::RS256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rejects_hostile_tokens() {
    jwt_server(StrategyName::Refresh, JwtAlg::HS256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_rejects_hostile_tokens() {
    jwt_server(StrategyName::Pushed, JwtAlg::HS256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_rejects_hostile_tokens() {
    jwt_server(StrategyName::Versioned, JwtAlg::ES256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_survives_hostile_bodies() {
    let s = TestServer::start(StrategyName::Baseline, |_| {}).await;
    let valid = s.login("user1").await;
    body_and_path_cases(&s, &valid).await;
}
