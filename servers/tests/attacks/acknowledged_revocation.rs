//! The property: a revocation acknowledged at t leaves no token issued before t
//! working, over random interleavings of login, logout-all, ban and password change of one user.
//!
//! Each case is a few operations on a fresh user, each started after a random offset of up to
//! 40 ms, so that they overlap in every order; afterwards, for every revocation answered 204,
//! these tokens must be dead:
//! - from a login answered before the revocation was sent (issued before it, by any clock);
//! - from a login sent well before it (in flight when it was sent, see `IN_FLIGHT_MARGIN`);
//! - from a login with a password that an acknowledged password change replaced.
//!
//! And, so that "revoke everything" cannot pass: a login sent after every revocation of the
//! case was answered must succeed and work.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use reqwest::StatusCode;
use serde_json::json;

use super::password_race::{Attempt, Design, IN_FLIGHT_MARGIN, login_attempt, still_works};
use crate::support::{ADMIN_KEY, PASSWORD, TestServer};

/// Cases per design; each takes a fresh user, shrinking included.
const CASES: u32 = 16;
const MAX_SHRINK_ITERS: u32 = 16;
const USERS: u32 = 2 * (CASES + MAX_SHRINK_ITERS) + 4;
/// Longest a case may take; every operation is bounded by the client's own timeout too.
const CASE_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Login,
    /// A login, then `/logout-all` with its token.
    LogoutAll,
    Ban,
    /// A login, then `/password` with its token, from the password known now to a new one.
    Password,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![3 => Just(Op::Login), 1 => Just(Op::LogoutAll), 1 => Just(Op::Ban), 1 => Just(Op::Password)]
}

/// Operations of one case with their start offsets in milliseconds.
fn case() -> impl Strategy<Value = Vec<(Op, u64)>> {
    prop::collection::vec((op(), 0u64..40), 2..=6)
}

/// A login and the password it tried; `started` is taken before the password is read.
#[derive(Debug)]
struct Login {
    started: Instant,
    password: String,
    attempt: Attempt,
}

/// A revocation request: when it was sent and answered, what it answered, and the password
/// it replaced (password changes).
#[derive(Debug)]
struct Revocation {
    op: Op,
    sent: Instant,
    answered: Instant,
    status: StatusCode,
    replaced: Option<String>,
}

/// What one case saw.
#[derive(Debug, Default)]
struct Record {
    logins: Mutex<Vec<Login>>,
    revocations: Mutex<Vec<Revocation>>,
}

/// The user's password as the client knows it: the last one a change was acknowledged for.
struct Known(Mutex<String>);

impl Known {
    fn get(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

/// Logs in with the password known now; returns the attempt and that password.
async fn login(s: &TestServer, user: &str, known: &Known, record: &Record) -> (Attempt, String) {
    let started = Instant::now();
    let password = known.get();
    let attempt = login_attempt(s, user, &password).await;
    record.logins.lock().unwrap().push(Login { started, password: password.clone(), attempt: attempt.clone() });
    (attempt, password)
}

async fn run_op(s: &TestServer, user: &str, (op, offset): (Op, u64), known: &Known, record: &Record, n: usize) {
    tokio::time::sleep(Duration::from_millis(offset)).await;
    let mut replaced = None;
    let request = match op {
        Op::Login => {
            login(s, user, known, record).await;
            return;
        }
        Op::Ban => s.client.post(s.url(&format!("/admin/users/{user}/revoke"))).header("x-admin-key", ADMIN_KEY),
        Op::LogoutAll | Op::Password => {
            let (own, current) = login(s, user, known, record).await;
            if own.status != StatusCode::OK {
                return;
            }
            let token = own.body["access_token"].as_str().unwrap().to_owned();
            let request = s.client.post(s.url(if op == Op::LogoutAll { "/logout-all" } else { "/password" }));
            let request = request.header("authorization", format!("Bearer {token}"));
            if op == Op::Password {
                let body = json!({"current_password": current, "new_password": format!("password-{user}-{n}")});
                replaced = Some(current);
                request.json(&body)
            } else {
                request
            }
        }
    };
    let sent = Instant::now();
    let (status, body) = crate::support::split(request.send().await.unwrap()).await;
    if op == Op::Password && status == StatusCode::NO_CONTENT {
        // Known before `answered` is taken, so that a login started after it uses the new one.
        *known.0.lock().unwrap() = format!("password-{user}-{n}");
    }
    let answered = Instant::now();
    let expected = [StatusCode::NO_CONTENT, StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN];
    assert!(expected.contains(&status), "{op:?} of {user} answered {status}: {body}");
    let replaced = replaced.filter(|_| status == StatusCode::NO_CONTENT);
    record.revocations.lock().unwrap().push(Revocation { op, sent, answered, status, replaced });
}

/// What the cases of one design exercised, for the test's output: a property that held only
/// because nothing overlapped would prove nothing.
#[derive(Debug, Default)]
struct Exercised {
    logins: AtomicUsize,
    /// Logins that overlapped an acknowledged revocation (sent before it was answered,
    /// answered after it was sent).
    overlapping: AtomicUsize,
    /// Tokens the property required dead, and found dead.
    ended: AtomicUsize,
    /// Logins answered 409 (their account changed while they ran).
    refused: AtomicUsize,
}

/// Runs one case on `user` and checks the property; the error says which token broke it.
async fn run_case(s: &TestServer, user: &str, ops: &[(Op, u64)], seen: &Exercised) -> Result<(), String> {
    let known = Known(Mutex::new(PASSWORD.to_owned()));
    let record = Record::default();
    let all = join_all(ops.iter().enumerate().map(|(n, op)| run_op(s, user, *op, &known, &record, n)));
    tokio::time::timeout(CASE_LIMIT, all).await.map_err(|_| "the case did not finish in time".to_owned())?;
    let logins = record.logins.into_inner().unwrap();
    let revocations = record.revocations.into_inner().unwrap();
    let acknowledged: Vec<&Revocation> = revocations.iter().filter(|r| r.status == StatusCode::NO_CONTENT).collect();
    seen.logins.fetch_add(logins.len(), Ordering::Relaxed);
    for (i, login) in logins.iter().enumerate() {
        let a = &login.attempt;
        if acknowledged.iter().any(|r| a.sent <= r.answered && a.answered >= r.sent) {
            seen.overlapping.fetch_add(1, Ordering::Relaxed);
        }
        if a.status == StatusCode::CONFLICT {
            seen.refused.fetch_add(1, Ordering::Relaxed);
        }
        let quiet = revocations.iter().all(|r| r.answered < login.started);
        let must_die = acknowledged.iter().find(|r| {
            a.answered < r.sent || a.sent + IN_FLIGHT_MARGIN <= r.sent || r.replaced.as_ref() == Some(&login.password)
        });
        if a.status != StatusCode::OK {
            if quiet {
                return Err(format!("login {i}, after every revocation was answered, got {}: {}", a.status, a.body));
            }
            continue;
        }
        let works = still_works(s, &a.body).await;
        if let Some(r) = must_die.filter(|_| works) {
            let ms = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64() * 1e3;
            let since = |t: Instant| {
                if t >= r.sent { format!("+{:.1}ms", ms(r.sent, t)) } else { format!("-{:.1}ms", ms(t, r.sent)) }
            };
            return Err(format!(
                "login {i} (sent {}, answered {} from the {:?} sent, which was answered after {:.1}ms) still works \
                 after the revocation's 204",
                since(a.sent),
                since(a.answered),
                r.op,
                ms(r.sent, r.answered)
            ));
        }
        if quiet && !works {
            return Err(format!("login {i}, after every revocation was answered, got a token that does not work"));
        }
        if must_die.is_some() {
            seen.ended.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Runs the property over `CASES` random cases against one server of `design`.
fn property_holds(design: Design) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server = runtime.block_on(design.start(USERS));
    let next_user = AtomicU32::new(0);
    let seen = Exercised::default();
    let config = ProptestConfig {
        cases: CASES,
        max_shrink_iters: MAX_SHRINK_ITERS,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case(), |ops| {
        let user = format!("user{}", next_user.fetch_add(1, Ordering::Relaxed));
        runtime.block_on(run_case(&server, &user, &ops, &seen)).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{design:?}: {e}");
    }
    let n = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    println!(
        "{design:?}: {CASES} cases, {} logins, {} overlapping an acknowledged revocation, {} tokens required dead and \
         dead, {} logins refused with 409",
        n(&seen.logins),
        n(&seen.overlapping),
        n(&seen.ended),
        n(&seen.refused)
    );
    assert!(n(&seen.overlapping) > 0, "{design:?}: no login overlapped a revocation; the cases tested nothing");
}

#[test]
fn no_token_issued_before_an_acknowledged_revocation_outlives_it_session() {
    property_holds(Design::SessionPool);
}

#[test]
fn no_token_issued_before_an_acknowledged_revocation_outlives_it_session_postgres() {
    property_holds(Design::SessionPostgres);
}

#[test]
fn no_token_issued_before_an_acknowledged_revocation_outlives_it_hybrid_allowlist() {
    property_holds(Design::HybridAllowlist);
}

#[test]
fn no_token_issued_before_an_acknowledged_revocation_outlives_it_hybrid_denylist() {
    property_holds(Design::HybridDenylist);
}

#[test]
fn no_token_issued_before_an_acknowledged_revocation_outlives_it_versioned() {
    property_holds(Design::Versioned);
}

#[test]
fn no_token_issued_before_an_acknowledged_revocation_outlives_it_pushed() {
    property_holds(Design::Pushed);
}
