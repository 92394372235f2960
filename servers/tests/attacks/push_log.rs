//! `pushed` keeps its denylist in memory, fed from a Redis Stream. An attacker holding a token
//! waits for the log to lose its past (Redis restarted empty, its clock behind the ids the
//! instances already read), so that the victim's revocation, appended after, never reaches
//! the other instance.

use std::time::Duration;

use authbench_server::config::StrategyName;
use reqwest::StatusCode;

use crate::support::TestServer;

/// Two `pushed` instances sharing one Redis and one key file.
async fn pair(name: &str) -> (TestServer, TestServer) {
    let key_file = std::env::temp_dir().join(format!("authbench-attack-push-{name}-{}.key", std::process::id()));
    let _ = std::fs::remove_file(&key_file);
    let a = TestServer::start(StrategyName::Pushed, |c| c.jwt_key_file = Some(key_file.clone())).await;
    let b = TestServer::start_with_redis(a.config.clone(), None).await;
    (a, b)
}

async fn refused_within(s: &TestServer, token: &str, limit: Duration) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if s.me(token).await.0 == StatusCode::UNAUTHORIZED {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_appended_after_redis_restarted_empty_with_a_clock_behind_still_reaches_every_instance() {
    let (a, b) = pair("reset").await;
    let redis = a.redis.as_ref().unwrap();
    // The log before the restart ends with ids far ahead of the clock the restarted Redis has:
    // an event from a clock that ran ahead (or, equally, a restart on a clock set back).
    let mut con = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    let _: String = redis::cmd("XADD")
        .arg("ab:{abp}:log")
        .arg("99999999999999-0")
        .arg("k")
        .arg("jti")
        .arg("v")
        .arg("nothing")
        .arg("n")
        .arg(0)
        .query(&mut con)
        .unwrap();
    let stolen = a.login("user7").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(b.me(&stolen).await.0, StatusCode::OK);

    // Redis loses everything (a restart without persistence).
    let _: String = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The victim is banned on A; B must learn it.
    assert_eq!(a.admin_post("/admin/users/user7/revoke").await.0, StatusCode::NO_CONTENT);
    assert_eq!(a.me(&stolen).await.0, StatusCode::UNAUTHORIZED, "A applies its own ban at once");
    assert!(refused_within(&b, &stolen, Duration::from_secs(5)).await, "B never learned the ban after the reset");

    // And B says what happened to its log.
    let (_, caps) = b.get("/capabilities").await;
    assert!(caps["push"]["resets"].as_u64().unwrap_or(0) >= 1, "{caps}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_flood_of_events_can_push_a_live_tokens_revocation_out_of_the_log() {
    // The log keeps events by age, not by count: what concerns a token that can still be
    // accepted stays, whatever came after; only events older than a token's life go.
    let (a, _b) = pair("age").await;
    let ttl = a.config.access_ttl.as_secs();
    let redis = a.redis.as_ref().unwrap();
    let mut con = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    let len = |con: &mut redis::Connection| -> u64 { redis::cmd("XLEN").arg("ab:{abp}:log").query(con).unwrap() };
    let stolen = a.login("user8").await;
    assert_eq!(a.admin_post("/admin/users/user8/revoke").await.0, StatusCode::NO_CONTENT);
    // A flood of other revocations after it.
    for i in 0..300 {
        assert_eq!(a.admin_post(&format!("/admin/users/user{}/revoke", 10 + i % 30)).await.0, StatusCode::NO_CONTENT);
    }
    assert_eq!(len(&mut con), 301, "every event of a live token's lifetime is kept");
    // A new instance replays the log and refuses the victim's stolen token.
    let c = TestServer::start_with_redis(a.config.clone(), None).await;
    let (status, body) = c.me(&stolen).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(ttl > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_forgets_only_what_no_live_token_needs() {
    let key_file = std::env::temp_dir().join(format!("authbench-attack-push-short-{}.key", std::process::id()));
    let _ = std::fs::remove_file(&key_file);
    // Tokens live 1 s, plus 2 s of leeway: the log keeps an event 4 s.
    let a = TestServer::start(StrategyName::Pushed, |c| {
        c.jwt_key_file = Some(key_file.clone());
        c.access_ttl = Duration::from_secs(1);
    })
    .await;
    let mut con = redis::Client::open(a.redis.as_ref().unwrap().url()).unwrap().get_connection().unwrap();
    let len = |con: &mut redis::Connection| -> u64 { redis::cmd("XLEN").arg("ab:{abp}:log").query(con).unwrap() };
    for user in ["user1", "user2"] {
        assert_eq!(a.admin_post(&format!("/admin/users/{user}/revoke")).await.0, StatusCode::NO_CONTENT);
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(a.admin_post("/admin/users/user3/revoke").await.0, StatusCode::NO_CONTENT);
    assert_eq!(len(&mut con), 3, "events younger than a token's life stay");
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(a.admin_post("/admin/users/user4/revoke").await.0, StatusCode::NO_CONTENT);
    assert_eq!(len(&mut con), 2, "the two events older than 4 s went, user3's and user4's stay");
}
