//! A client whose `/refresh` timed out on a frozen store retries with the same refresh token,
//! as every client library does. The rotation it never heard of must not count as a replay
//! (which would end the whole family and log the user out); a real replay after the reuse
//! interval must still end it.

use std::time::Duration;

use authbench_server::config::StrategyName;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::TestServer;

#[tokio::test]
async fn a_refresh_retried_after_a_store_timeout_keeps_the_user_logged_in() {
    let server = TestServer::start(StrategyName::Refresh, |c| {
        c.redis_timeout = Duration::from_millis(250);
    })
    .await;
    let access = server.login("user1").await;
    let refresh = server.refresh_token_of(&access).unwrap();
    let redis = server.redis.as_ref().unwrap();

    // The first attempt reaches Redis, which is frozen: the client gets 503 and the rotation
    // happens when Redis wakes up.
    redis.pause().unwrap();
    let (status, body) = server.post_json("/refresh", json!({"refresh_token": refresh})).await;
    redis.resume().unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The retry, with the same token, right after.
    let (status, body) = server.post_json("/refresh", json!({"refresh_token": refresh})).await;
    assert_eq!(status, StatusCode::OK, "the retry ended the family: {body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let next = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(server.me(&access).await.0, StatusCode::OK);
    let (status, body) = server.post_json("/refresh", json!({"refresh_token": next})).await;
    assert_eq!(status, StatusCode::OK, "the token handed to the retry does not refresh: {body}");
}

#[tokio::test]
async fn a_stolen_refresh_token_replayed_after_the_reuse_interval_ends_the_family() {
    let server = TestServer::start(StrategyName::Refresh, |c| {
        c.refresh_reuse_interval = Duration::from_millis(500);
    })
    .await;
    let access = server.login("user1").await;
    let stolen = server.refresh_token_of(&access).unwrap();
    let (status, body) = server.post_json("/refresh", json!({"refresh_token": stolen})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let victims = body["refresh_token"].as_str().unwrap().to_owned();

    tokio::time::sleep(Duration::from_millis(800)).await;
    let (status, _) = server.post_json("/refresh", json!({"refresh_token": stolen})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a replay past the interval is refused");
    let (status, _) = server.post_json("/refresh", json!({"refresh_token": victims})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "and the family it came from is ended");
}

#[tokio::test]
async fn a_refresh_token_two_rotations_old_is_a_replay_even_inside_the_interval() {
    let server = TestServer::start(StrategyName::Refresh, |_| {}).await;
    let access = server.login("user1").await;
    let first = server.refresh_token_of(&access).unwrap();
    let (_, body) = server.post_json("/refresh", json!({"refresh_token": first})).await;
    let second = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = server.post_json("/refresh", json!({"refresh_token": second})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let third = body["refresh_token"].as_str().unwrap().to_owned();
    // `first` is neither the current secret nor the one just replaced.
    let (status, _) = server.post_json("/refresh", json!({"refresh_token": first})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server.post_json("/refresh", json!({"refresh_token": third})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the family is ended");
}
