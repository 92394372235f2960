//! Defect 3: `versioned` counters that go backwards when Redis loses data. A token carries
//! the user's version from its login; a ban must end it whatever Redis forgot before the ban:
//! everything (FLUSHALL), everything by a restart without persistence, or its last writes (a
//! restart from a snapshot taken before them, as an AOF `everysec` crash leaves it). And a
//! token revoked before Redis forgot must not work again afterwards.
//!
//! Grace 0 throughout: every request asks Redis, so what is tested is the versions, not the
//! grace window.

use std::time::Duration;

use authbench_server::config::StrategyName;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::TestServer;

/// How Redis forgets.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// `FLUSHALL`.
    Flush,
    /// Killed and restarted with no persistence: empty.
    RestartEmpty,
    /// Killed and restarted from a snapshot taken before the last ban.
    RestartFromSnapshot,
}

async fn versioned() -> TestServer {
    TestServer::start(StrategyName::Versioned, |c| c.grace = Duration::ZERO).await
}

/// Kills Redis and starts it again on the same port and directory; the server reconnects.
async fn restart(s: &mut TestServer) {
    s.redis.as_mut().unwrap().restart().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while s.get("/healthz").await.0 != StatusCode::OK && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Bans `user` the way a user can: log in, log out everywhere.
async fn logout_all(s: &TestServer, user: &str) {
    let token = s.login(user).await;
    assert_eq!(s.post_auth("/logout-all", &token, None).await.0, StatusCode::NO_CONTENT);
}

/// Three bans, a token issued after them, Redis forgets, one more ban: the token must go.
async fn ban_after_loss(loss: Loss) -> (StatusCode, serde_json::Value) {
    let mut s = versioned().await;
    logout_all(&s, "user1").await;
    logout_all(&s, "user1").await;
    if let Loss::RestartFromSnapshot = loss {
        s.redis.as_ref().unwrap().command("SAVE").unwrap();
    }
    logout_all(&s, "user1").await;
    let kept = s.login("user1").await;
    assert_eq!(s.me(&kept).await.0, StatusCode::OK);
    match loss {
        Loss::Flush => {
            s.redis.as_ref().unwrap().command("FLUSHALL").unwrap();
        }
        Loss::RestartEmpty | Loss::RestartFromSnapshot => restart(&mut s).await,
    }
    let (status, body) = s.admin_post("/admin/users/user1/revoke").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{loss:?}: ban: {body}");
    s.me(&kept).await
}

fn refused_as_revoked((status, body): &(StatusCode, serde_json::Value)) -> bool {
    (*status, &body["reason"]) == (StatusCode::UNAUTHORIZED, &json!("revoked"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_survives_no_ban_after_redis_forgets_its_version() {
    let (flush, empty, snapshot) = tokio::join!(
        ban_after_loss(Loss::Flush),
        ban_after_loss(Loss::RestartEmpty),
        ban_after_loss(Loss::RestartFromSnapshot)
    );
    let survivors: Vec<String> =
        [(Loss::Flush, flush), (Loss::RestartEmpty, empty), (Loss::RestartFromSnapshot, snapshot)]
            .into_iter()
            .filter(|(_, answer)| !refused_as_revoked(answer))
            .map(|(loss, (status, body))| format!("{loss:?}: {status} {body}"))
            .collect();
    assert_eq!(survivors, Vec::<String>::new(), "a token issued before the ban still works after it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_does_not_come_back_when_redis_restarts_empty() {
    let mut back = Vec::new();
    for loss in [Loss::Flush, Loss::RestartEmpty] {
        let mut s = versioned().await;
        let revoked = s.login("user3").await;
        let (status, body) = s.admin_post("/admin/users/user3/revoke").await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(s.me(&revoked).await.1["reason"], "revoked");
        match loss {
            Loss::Flush => {
                s.redis.as_ref().unwrap().command("FLUSHALL").unwrap();
            }
            Loss::RestartEmpty | Loss::RestartFromSnapshot => restart(&mut s).await,
        }
        let answer = s.me(&revoked).await;
        if !refused_as_revoked(&answer) {
            back.push(format!("{loss:?}: {} {}", answer.0, answer.1));
        }
        // Whoever logs in after the loss is served.
        let fresh = s.login("user3").await;
        assert_eq!(s.me(&fresh).await.0, StatusCode::OK, "{loss:?}");
    }
    assert_eq!(back, Vec::<String>::new(), "a token revoked before Redis forgot works again");
}
