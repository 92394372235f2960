//! Defect 10: serde reads a struct from a JSON array too (`["user1","pw"]` is the sequence
//! form of `{"username","password"}`), so a body that is not an object was accepted. Every
//! protocol body (login, refresh, password, roles) must be an object; anything else is 400
//! and changes nothing.

use authbench_server::config::StrategyName;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, PASSWORD, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_array_is_not_a_login() {
    // `refresh` answers all four bodies: login, refresh, password and roles.
    let s = TestServer::start(StrategyName::Refresh, |_| {}).await;
    let token = s.login("user1").await;
    let refresh = s.refresh_token_of(&token).expect("refresh token");
    let c = &s.client;
    let json_body = |r: reqwest::RequestBuilder, body: String| r.header("content-type", "application/json").body(body);
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("login as an array", json_body(c.post(s.url("/login")), json!(["user2", PASSWORD]).to_string())),
        (
            "login as an array with a device",
            json_body(c.post(s.url("/login")), format!(" \n[\"user2\", {:?}, null]", PASSWORD)),
        ),
        ("refresh as an array", json_body(c.post(s.url("/refresh")), json!([refresh]).to_string())),
        (
            "password change as an array",
            json_body(c.post(s.url("/password")).bearer_auth(&token), json!([PASSWORD, "attacker-pw-1"]).to_string()),
        ),
        (
            "roles as an array",
            json_body(
                c.put(s.url("/admin/users/user1/roles")).header("x-admin-key", ADMIN_KEY),
                json!([["admin"]]).to_string(),
            ),
        ),
        ("login as a string", json_body(c.post(s.url("/login")), json!("user2").to_string())),
        ("login as null", json_body(c.post(s.url("/login")), "null".to_owned())),
    ];
    let mut failures = Vec::new();
    for (name, request) in cases {
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let json_error = serde_json::from_str::<Value>(&text).is_ok_and(|v| v["error"].is_string());
        if status != StatusCode::BAD_REQUEST || !json_error {
            failures.push(format!("{name}: {status} {text:?}, wanted 400 with a JSON error"));
        }
    }
    assert!(failures.is_empty(), "bodies that are not JSON objects were accepted:\n{}", failures.join("\n"));

    // Nothing changed: the password, the roles and the refresh token are as they were.
    let (status, body) = s.post_json("/login", json!({"username": "user1", "password": PASSWORD})).await;
    assert_eq!(status, StatusCode::OK, "user1's password changed: {body}");
    let (status, me) = s.me(body["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["roles"], json!(["user"]), "user1's roles changed");
    assert_eq!(s.refresh(&refresh).await.0, StatusCode::OK, "the refresh token was used up");
}
