//! Defect 2: revocation marks pushed ahead of the clock. The hybrid denylist and `pushed` end
//! every token of a user issued before a mark; an attacker who can raise their own mark many
//! times a second (log in, log out everywhere, again) must not be able to push it so far ahead
//! that, once it is forgotten, a token issued meanwhile outlives the next ban.
//!
//! The attack, over HTTP: pump the victim account's mark with login + logout-all rounds, wait
//! until the pumped mark is about to be forgotten, log in (the token the attacker keeps), wait
//! until the mark is gone, and let an admin ban the user. The kept token must be refused.
//!
//! And the rule the fix rests on, checked under concurrency: a token whose login was answered
//! before a ban was sent is ended by it; a login sent after the ban was acknowledged is served.

use std::time::{Duration, Instant};

use authbench_server::config::StrategyName;
use authbench_server::strategy::JtiMode;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{PASSWORD, TestServer};

/// Hybrid denylist and `pushed`, with short tokens.
async fn servers() -> (TestServer, TestServer) {
    let hybrid = TestServer::start(StrategyName::Hybrid, |c| {
        c.jti_mode = JtiMode::Denylist;
        c.access_ttl = ACCESS_TTL;
    })
    .await;
    let pushed = TestServer::start(StrategyName::Pushed, |c| c.access_ttl = ACCESS_TTL).await;
    (hybrid, pushed)
}

/// Short tokens, so that a mark (which lives as long as the tokens it ends) is forgotten
/// within seconds.
const ACCESS_TTL: Duration = Duration::from_secs(3);
/// Login + logout-all rounds; each raised the mark one second on the code this guards against.
const PUMP_ROUNDS: usize = 25;
/// Bound on the pumping, whatever the machine.
const PUMP_LIMIT: Duration = Duration::from_secs(8);
/// When, after the last raise, the kept token is issued: late enough that it outlives the
/// mark, early enough that the mark still stands.
const LOGIN_AFTER: Duration = Duration::from_millis(3200);
/// When, after the last raise, the admin bans the user: after a mark of ttl + leeway + 1 s
/// has expired, while the kept token is still valid.
const BAN_AFTER: Duration = Duration::from_millis(6300);

async fn pump_then_ban(s: &TestServer, user: &str) -> (StatusCode, serde_json::Value) {
    let started = Instant::now();
    let mut rounds = 0;
    while rounds < PUMP_ROUNDS && started.elapsed() < PUMP_LIMIT {
        let token = s.login(user).await;
        let (status, body) = s.post_auth("/logout-all", &token, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "logout-all: {body}");
        rounds += 1;
    }
    let last_raise = Instant::now();
    eprintln!("{}: {rounds} login + logout-all rounds in {:?}", s.capabilities.strategy, started.elapsed());
    tokio::time::sleep_until((last_raise + LOGIN_AFTER).into()).await;
    let kept = s.login(user).await;
    let (status, body) = s.me(&kept).await;
    assert_eq!(status, StatusCode::OK, "a fresh login must work: {body}");
    tokio::time::sleep_until((last_raise + BAN_AFTER).into()).await;
    let (status, body) = s.admin_post(&format!("/admin/users/{user}/revoke")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "ban: {body}");
    s.me(&kept).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_pumped_ahead_of_the_clock_does_not_void_a_later_ban() {
    let (hybrid, pushed) = servers().await;
    let (on_hybrid, on_pushed) = tokio::join!(pump_then_ban(&hybrid, "user2"), pump_then_ban(&pushed, "user2"));
    let survivors: Vec<String> = [("hybrid denylist", on_hybrid), ("pushed", on_pushed)]
        .into_iter()
        .filter(|(_, (status, body))| (*status, &body["reason"]) != (StatusCode::UNAUTHORIZED, &json!("revoked")))
        .map(|(name, (status, body))| format!("{name}: {status} {body}"))
        .collect();
    assert_eq!(survivors, Vec::<String>::new(), "a token issued before the ban still works after it");
}

/// Rounds of logins racing a ban, and the time they may take; they stop early once enough
/// logins fell on each side of a ban.
const RACE_ROUNDS: usize = 40;
const RACE_LIMIT: Duration = Duration::from_secs(4);
const RACE_ENOUGH: usize = 6;

/// One login racing the ban: when it was sent and answered, and the token; none when the
/// server refused the login because the ban overlapped it (409 `account_changed`).
struct Raced {
    sent: Instant,
    answered: Instant,
    token: Option<String>,
}

/// What the rule decided about the logins racing bans on one server.
#[derive(Debug, Default)]
struct Verdicts {
    /// Logins answered before a ban was sent (the ban must end their tokens).
    before: usize,
    /// Logins sent after a ban was acknowledged (their tokens must work).
    after: usize,
    broken: Vec<String>,
}

/// Logins of `user` sent before, during and after bans of the same user.
async fn logins_racing_bans(s: &TestServer, user: &str) -> Verdicts {
    let login = || async {
        let sent = Instant::now();
        let (status, body) = s.post_json("/login", json!({"username": user, "password": PASSWORD})).await;
        let answered = Instant::now();
        let token = match status {
            StatusCode::OK => Some(body["access_token"].as_str().expect("access_token").to_owned()),
            StatusCode::CONFLICT if body["error"] == "account_changed" => None,
            other => panic!("login {user}: {other} {body}"),
        };
        Raced { sent, answered, token }
    };
    let ban = || async {
        let sent = Instant::now();
        let (status, body) = s.admin_post(&format!("/admin/users/{user}/revoke")).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "ban: {body}");
        (sent, Instant::now())
    };
    let started = Instant::now();
    let mut verdicts = Verdicts::default();
    for round in 0..RACE_ROUNDS {
        let enough = verdicts.before >= RACE_ENOUGH && verdicts.after >= RACE_ENOUGH;
        if enough || started.elapsed() > RACE_LIMIT {
            break;
        }
        // The ban is sent a little later each round (a login takes tens of milliseconds of
        // argon2), so that it lands before, inside and after the logins' own Redis calls.
        let delay = Duration::from_millis(8 * (round as u64 % 12));
        let late_ban = async {
            tokio::time::sleep(delay).await;
            ban().await
        };
        let (a, b, (ban_sent, ban_acked)) = tokio::join!(login(), login(), late_ban);
        let after = login().await;
        for raced in [a, b, after] {
            // A login the ban overlapped and the server refused yields nothing to judge.
            let Some(token) = &raced.token else { continue };
            let want = if raced.answered < ban_sent {
                verdicts.before += 1;
                StatusCode::UNAUTHORIZED
            } else if raced.sent > ban_acked {
                verdicts.after += 1;
                StatusCode::OK
            } else {
                continue;
            };
            let (status, body) = s.me(token).await;
            if status != want {
                let strategy = &s.capabilities.strategy;
                verdicts.broken.push(format!("{strategy}: round {round}: wanted {want}, got {status} {body}"));
            }
        }
    }
    verdicts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_racing_a_ban_neither_survives_it_nor_is_born_revoked() {
    let (hybrid, pushed) = servers().await;
    let (on_hybrid, on_pushed) =
        tokio::join!(logins_racing_bans(&hybrid, "user3"), logins_racing_bans(&pushed, "user3"));
    eprintln!(
        "logins answered before a ban / sent after its ack: hybrid {} / {}, pushed {} / {}",
        on_hybrid.before, on_hybrid.after, on_pushed.before, on_pushed.after
    );
    for v in [&on_hybrid, &on_pushed] {
        assert!(v.before >= 1 && v.after >= 1, "no login fell on one side of a ban: {v:?}");
    }
    let broken: Vec<String> = on_hybrid.broken.into_iter().chain(on_pushed.broken).collect();
    assert_eq!(broken, Vec::<String>::new(), "a login on the wrong side of a ban");
}
