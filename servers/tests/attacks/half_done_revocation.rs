//! A revocation cut off part-way (its store call timed out, its client hung up) must leave
//! nothing behind that a retry cannot end; and a revocation a design cannot perform must not
//! be a lever to keep the victim from logging in.

use std::time::{Duration, Instant};

use authbench_server::config::StrategyName;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{PASSWORD, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_cut_off_by_a_store_timeout_and_retried_still_ends_the_thiefs_session() {
    let s = TestServer::start(StrategyName::Session, |c| c.redis_timeout = Duration::from_millis(250)).await;
    let redis = s.redis.as_ref().unwrap();
    for attempt in 0..6 {
        let user = format!("user{}", 20 + attempt);
        let thief = s.login(&user).await;
        let victim = s.login(&user).await;
        // Redis freezes once the change is past its token check, while argon2 runs: the
        // revocation's store call then times out.
        let body = json!({"current_password": PASSWORD, "new_password": "n3w-password"});
        let ((status, answer), ()) = tokio::join!(s.post_auth("/password", &victim, Some(body.clone())), async {
            tokio::time::sleep(Duration::from_millis(4)).await;
            redis.pause().unwrap();
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        redis.resume().unwrap();
        if status != StatusCode::SERVICE_UNAVAILABLE {
            // The freeze came too early or too late for this attempt: try again.
            eprintln!("attempt {attempt}: {status} {answer}");
            continue;
        }
        // Whatever the frozen store ran once it woke up has run.
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The victim was told nothing changed: logs in with the old password and retries.
        let again = s.login(&user).await;
        let (status, answer) = s.post_auth("/password", &again, Some(body)).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
        let (status, answer) = s.me(&thief).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "the thief's session outlived the retried change: {answer}");
        return;
    }
    panic!("no attempt caught the change inside its revocation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_token_that_cannot_be_revoked_cannot_lock_its_owner_out_either() {
    // jwt cannot end a user's tokens: logout-all answers 501. Repeating it must not refuse
    // the owner's logins (a change opened for a revocation that never runs would).
    let s = TestServer::start(StrategyName::Jwt, |_| {}).await;
    let stolen = s.login("user5").await;
    let until = Instant::now() + Duration::from_millis(1500);
    let spam = async {
        let mut calls = 0;
        while Instant::now() < until {
            let (status, _) = s.post_auth("/logout-all", &stolen, None).await;
            assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
            calls += 1;
        }
        calls
    };
    let logins = async {
        let mut refused = Vec::new();
        while Instant::now() < until {
            let (status, body) = s.post_json("/login", json!({"username": "user5", "password": PASSWORD})).await;
            if status != StatusCode::OK {
                refused.push(format!("{status} {body}"));
            }
        }
        refused
    };
    let (calls, refused) = tokio::join!(spam, logins);
    assert!(calls > 10, "{calls}");
    assert_eq!(refused, Vec::<String>::new(), "the owner was refused while a thief repeated logout-all");
}
