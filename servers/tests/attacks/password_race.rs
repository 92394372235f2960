//! Defect 1: an account change (password, roles, ban, logout-all) racing the logins in flight.
//!
//! The attacker holds the victim's password (or is the victim being banned) and keeps logins
//! running in parallel, so that some are between their password check and their token when
//! the change lands. Every login the attacker had in flight when the change was sent, and for a
//! password change every login with the old password at all, must end without a working token.
//! The helpers here (the designs, the race, the token check) are the other modules' too.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use authbench_server::config::StrategyName;
use authbench_server::pg_store::PgTable;
use authbench_server::store::RedisClientKind;
use authbench_server::strategy::JtiMode;
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestServer};

/// The designs that keep revocation state in a store, in the configurations attacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Design {
    Session,
    SessionPool,
    /// Sessions in PostgreSQL (a logged table).
    SessionPostgres,
    HybridAllowlist,
    HybridDenylist,
    Refresh,
    /// Grace 0: every request checks the version, so revocation is meant to be immediate.
    Versioned,
    Pushed,
}

impl Design {
    pub(crate) const ALL: [Self; 8] = [
        Self::Session,
        Self::SessionPool,
        Self::SessionPostgres,
        Self::HybridAllowlist,
        Self::HybridDenylist,
        Self::Refresh,
        Self::Versioned,
        Self::Pushed,
    ];

    /// A server of this design with its own Redis and `users` seeded users.
    pub(crate) async fn start(self, users: u32) -> TestServer {
        if self == Self::SessionPostgres {
            return TestServer::start_on_postgres(StrategyName::Session, PgTable::Logged, |c| c.users = users).await;
        }
        let strategy = match self {
            Self::Session | Self::SessionPool | Self::SessionPostgres => StrategyName::Session,
            Self::HybridAllowlist | Self::HybridDenylist => StrategyName::Hybrid,
            Self::Refresh => StrategyName::Refresh,
            Self::Versioned => StrategyName::Versioned,
            Self::Pushed => StrategyName::Pushed,
        };
        TestServer::start(strategy, |c| {
            c.users = users;
            match self {
                Self::SessionPool => c.redis_client = RedisClientKind::Pool,
                Self::HybridAllowlist => c.jti_mode = JtiMode::Allowlist,
                Self::HybridDenylist => c.jti_mode = JtiMode::Denylist,
                Self::Versioned => c.grace = Duration::ZERO,
                Self::Session | Self::SessionPostgres | Self::Refresh | Self::Pushed => {}
            }
        })
        .await
    }
}

/// One login the attacker sent, and what came back.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub sent: Instant,
    pub answered: Instant,
    pub status: StatusCode,
    pub body: Value,
}

/// Parallel login loops per race: on two cores, enough that one is always mid-argon2.
const LOOPS: usize = 4;
/// Bounds of one loop, whatever happens.
const MAX_LOGINS_PER_LOOP: usize = 40;
const RACE_LIMIT: Duration = Duration::from_secs(3);
/// How long the loops run before the change is sent, and after it is acknowledged (long
/// enough for every login in flight to land).
const LEAD: Duration = Duration::from_millis(60);
const TAIL: Duration = Duration::from_millis(250);
/// A login sent this long before the change counts as in flight when the change was sent: it
/// has reached the server and read the user's record by then, whatever the scheduling.
pub(crate) const IN_FLIGHT_MARGIN: Duration = Duration::from_millis(5);

/// Logs in as `username` with `password` over and over until `stop` or the deadline.
pub(crate) async fn login_loop(
    s: &TestServer,
    username: &str,
    password: &str,
    stop: &AtomicBool,
    deadline: Instant,
) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    for _ in 0..MAX_LOGINS_PER_LOOP {
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            break;
        }
        attempts.push(login_attempt(s, username, password).await);
    }
    attempts
}

/// One login, timed; a server error is a failure of the test in itself.
pub(crate) async fn login_attempt(s: &TestServer, username: &str, password: &str) -> Attempt {
    let sent = Instant::now();
    let (status, body) = s.post_json("/login", json!({"username": username, "password": password})).await;
    let answered = Instant::now();
    assert!(
        [StatusCode::OK, StatusCode::UNAUTHORIZED, StatusCode::CONFLICT].contains(&status),
        "login of {username} answered {status}: {body}"
    );
    Attempt { sent, answered, status, body }
}

/// What the attacker saw: its logins, and when the change was sent and acknowledged.
#[derive(Debug)]
pub(crate) struct Race {
    pub logins: Vec<Attempt>,
    pub change_sent: Instant,
    pub change_acked: Instant,
}

impl Race {
    /// The logins that returned a token.
    pub(crate) fn tokens(&self) -> impl Iterator<Item = &Attempt> {
        self.logins.iter().filter(|a| a.status == StatusCode::OK)
    }

    /// The logins that overlapped the change: sent before it was answered, answered after it
    /// was sent.
    pub(crate) fn overlapping(&self) -> Vec<&Attempt> {
        self.logins.iter().filter(|a| a.sent <= self.change_acked && a.answered >= self.change_sent).collect()
    }

    /// A login's times relative to the change's acknowledgement, for a failure message.
    pub(crate) fn timing(&self, a: &Attempt) -> String {
        let rel = |t: Instant| {
            if t >= self.change_acked {
                format!("+{:.1}ms", (t - self.change_acked).as_secs_f64() * 1e3)
            } else {
                format!("-{:.1}ms", (self.change_acked - t).as_secs_f64() * 1e3)
            }
        };
        format!("sent {} answered {}", rel(a.sent), rel(a.answered))
    }
}

/// Runs the login loops and, once they are mid-flight, `change`, which must answer 204.
pub(crate) async fn race<F, Fut>(s: &TestServer, username: &str, password: &str, change: F) -> Race
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = (StatusCode, Value)>,
{
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + RACE_LIMIT;
    let loops = join_all((0..LOOPS).map(|_| login_loop(s, username, password, &stop, deadline)));
    let changer = async {
        tokio::time::sleep(LEAD).await;
        let sent = Instant::now();
        let (status, body) = change().await;
        let acked = Instant::now();
        tokio::time::sleep(TAIL).await;
        stop.store(true, Ordering::Relaxed);
        (sent, acked, status, body)
    };
    let (logins, (change_sent, change_acked, status, body)) = tokio::join!(loops, changer);
    assert_eq!(status, StatusCode::NO_CONTENT, "the change itself failed: {body}");
    Race { logins: logins.into_iter().flatten().collect(), change_sent, change_acked }
}

/// Whether the token of a successful login still gets the attacker in. `refresh` keeps its
/// access tokens alive to their expiry by design; what its revocations end is the refresh
/// token, so that is what is tried (once: a refresh rotates it).
pub(crate) async fn still_works(s: &TestServer, login: &Value) -> bool {
    if s.capabilities.revocation_delay == "access_ttl" {
        let refresh = login["refresh_token"].as_str().expect("refresh_token");
        return s.refresh(refresh).await.0 == StatusCode::OK;
    }
    s.me(login["access_token"].as_str().expect("access_token")).await.0 == StatusCode::OK
}

fn password_body(current: &str, new: &str) -> Value {
    json!({"current_password": current, "new_password": new})
}

/// Fails with every design's finding, so one run shows which designs the attack beats; and
/// fails if no design had a login in flight at all, which would make the attack vacuous.
fn assert_no_findings(findings: &[String], in_flight: usize) {
    assert!(findings.is_empty(), "the attack worked:\n{}", findings.join("\n"));
    assert!(in_flight > 0, "no login was in flight when a change was sent: the race never ran");
}

/// How the logins in flight at the change ended, for the test's output.
fn outcomes(race: &Race, in_flight: &[&Attempt]) -> String {
    let count = |status: StatusCode| in_flight.iter().filter(|a| a.status == status).count();
    let answered_after = in_flight.iter().filter(|a| a.answered > race.change_acked).count();
    format!(
        "{} in flight ({answered_after} answered after the 204): {} got a token, {} got 401, {} got 409",
        in_flight.len(),
        count(StatusCode::OK),
        count(StatusCode::UNAUTHORIZED),
        count(StatusCode::CONFLICT)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_password_still_mints_a_working_token_after_the_victim_changes_it() {
    let (mut findings, mut in_flight_total) = (Vec::new(), 0);
    for design in Design::ALL {
        let s = design.start(8).await;
        let own = s.login("user1").await;
        let race = race(&s, "user1", PASSWORD, || {
            s.post_auth("/password", &own, Some(password_body(PASSWORD, "the-victims-new-password")))
        })
        .await;
        let mut working = Vec::new();
        for login in race.tokens() {
            if still_works(&s, &login.body).await {
                working.push(race.timing(login));
            }
        }
        let answered_after = race.tokens().filter(|a| a.answered > race.change_acked).count();
        if !working.is_empty() {
            findings.push(format!(
                "{design:?}: {} tokens from the old password still work after the change's 204 ({answered_after} \
                 logins with it answered 200 after the 204): {working:?}",
                working.len()
            ));
        }
        let overlapping = race.overlapping();
        in_flight_total += overlapping.len();
        println!("{design:?}: logins with the old password {}", outcomes(&race, &overlapping));
    }
    assert_no_findings(&findings, in_flight_total);
}

/// What is wrong when logins in flight as `what` was sent left working tokens, if anything;
/// and how many were in flight.
async fn in_flight_logins_end_with(design: Design, s: &TestServer, what: &str, race: Race) -> (Option<String>, usize) {
    let in_flight: Vec<_> = race.logins.iter().filter(|a| a.sent + IN_FLIGHT_MARGIN <= race.change_sent).collect();
    let mut working = Vec::new();
    for login in in_flight.iter().filter(|a| a.status == StatusCode::OK) {
        if still_works(s, &login.body).await {
            working.push(race.timing(login));
        }
    }
    let in_flight_at_send: Vec<_> = in_flight.iter().copied().filter(|a| a.answered >= race.change_sent).collect();
    println!("{design:?}: logins sent before the {what}: {}", outcomes(&race, &in_flight_at_send));
    let finding = (!working.is_empty()).then(|| {
        format!(
            "{design:?}: {} of the {} logins sent before the {what} still work after its 204: {working:?}",
            working.len(),
            in_flight.iter().filter(|a| a.status == StatusCode::OK).count()
        )
    });
    (finding, in_flight_at_send.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_in_flight_during_a_ban_yields_a_working_token() {
    let (mut findings, mut in_flight) = (Vec::new(), 0);
    for design in Design::ALL {
        let s = design.start(8).await;
        let race = race(&s, "user1", PASSWORD, || s.admin_post("/admin/users/user1/revoke")).await;
        let (finding, n) = in_flight_logins_end_with(design, &s, "ban", race).await;
        findings.extend(finding);
        in_flight += n;
    }
    assert_no_findings(&findings, in_flight);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_in_flight_during_logout_all_yields_a_working_token() {
    let (mut findings, mut in_flight) = (Vec::new(), 0);
    for design in Design::ALL {
        let s = design.start(8).await;
        let own = s.login("user1").await;
        let race = race(&s, "user1", PASSWORD, || s.post_auth("/logout-all", &own, None)).await;
        let (finding, n) = in_flight_logins_end_with(design, &s, "logout-all", race).await;
        findings.extend(finding);
        in_flight += n;
    }
    assert_no_findings(&findings, in_flight);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_in_flight_during_a_role_change_keeps_the_old_roles() {
    let (mut findings, mut in_flight_total) = (Vec::new(), 0);
    // `refresh` is left out: its access tokens keep their roles to expiry by design, and each
    // refresh reads the roles afresh.
    for design in Design::ALL.into_iter().filter(|d| *d != Design::Refresh) {
        let s = design.start(8).await;
        let race = race(&s, "user1", PASSWORD, || s.admin_put_roles("user1", &["user", "auditor"])).await;
        let mut old_roles = Vec::new();
        for login in race.tokens() {
            let (status, me) = s.me(login.body["access_token"].as_str().unwrap()).await;
            if status == StatusCode::OK && me["roles"] != json!(["user", "auditor"]) {
                old_roles.push(format!("{} roles {}", race.timing(login), me["roles"]));
            }
        }
        if !old_roles.is_empty() {
            findings.push(format!(
                "{design:?}: {} working tokens carry the roles from before the change's 204: {old_roles:?}",
                old_roles.len()
            ));
        }
        let overlapping = race.overlapping();
        in_flight_total += overlapping.len();
        println!("{design:?}: logins during the role change {}", outcomes(&race, &overlapping));
    }
    assert_no_findings(&findings, in_flight_total);
}

/// The password is stored before the revocation runs; when the revocation cannot run (Redis
/// hangs) the victim is told 503, which must still mean "nothing changed": the old password
/// stays, so the victim can log in again (the revocation may have landed after its deadline)
/// and retry the same change, which then ends the attacker's tokens. `pushed` authenticates
/// without Redis, so the request gets as far as the revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_during_a_password_change_locks_the_victim_out_of_retrying_it() {
    let s = Design::Pushed.start(4).await;
    let own = s.login("user1").await;
    let attackers = login_attempt(&s, "user1", PASSWORD).await;
    let change = password_body(PASSWORD, "after-the-outage");
    let redis = s.redis.as_ref().unwrap();
    redis.pause().unwrap();
    let (status, error) = s.post_auth("/password", &own, Some(change.clone())).await;
    redis.resume().unwrap();
    assert_eq!((status, error), (StatusCode::SERVICE_UNAVAILABLE, json!({"error": "store_unavailable"})));
    let back = Instant::now() + Duration::from_secs(5);
    while s.get("/healthz").await.0 != StatusCode::OK {
        assert!(Instant::now() < back, "Redis did not come back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(login_attempt(&s, "user1", "after-the-outage").await.status, StatusCode::UNAUTHORIZED);

    let own = s.login("user1").await;
    let (status, body) = s.post_auth("/password", &own, Some(change)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "the retry failed: {body}");
    assert!(!still_works(&s, &attackers.body).await, "the attacker's token outlived the retried change");
    assert_eq!(login_attempt(&s, "user1", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(login_attempt(&s, "user1", "after-the-outage").await.status, StatusCode::OK);
}
