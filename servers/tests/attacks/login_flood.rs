//! Defect 5: every login hashed on a blocking thread of its own with 19 MiB of argon2 memory,
//! so 128 concurrent wrong-password logins took the server to 2.3 GiB. Hashing is bounded
//! (one slot per core); a login or password change that cannot get a slot soon enough gets
//! 503 with `Retry-After`, and changes nothing.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use authbench_server::config::StrategyName;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::{ADMIN_KEY, PASSWORD, TestServer};

const BIN: &str = env!("CARGO_BIN_EXE_authbench-server");

/// An `authbench-server` child, killed on drop.
struct ServerChild {
    child: Child,
    addr: String,
}

impl ServerChild {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr =
            line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {line:?}")).to_owned();
        Self { child, addr }
    }

    /// Peak resident memory of the process so far (`VmHWM`), in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/<pid>/status");
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MIB: u64 = 1024 * 1024;

/// Checks one answer to a flooded request: `ok` statuses, or 503 with `Retry-After` and a JSON
/// error. Returns whether it was a 503.
fn overloaded_or(status: StatusCode, retry_after: Option<&str>, body: &str, ok: &[StatusCode]) -> Result<bool, String> {
    let json_error = serde_json::from_str::<Value>(body).is_ok_and(|v| v["error"].is_string());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let retry = retry_after.and_then(|v| v.parse::<u64>().ok());
        return match (retry, json_error) {
            (Some(_), true) => Ok(true),
            _ => Err(format!("503 without Retry-After seconds or JSON error: {retry_after:?} {body:?}")),
        };
    }
    if ok.contains(&status) { Ok(false) } else { Err(format!("unexpected {status} {body:?}")) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_cannot_exhaust_memory() {
    const LOGINS: usize = 128;
    const SEQUENTIAL: usize = 32;
    let server = tokio::task::spawn_blocking(|| {
        ServerChild::start(&[
            "--strategy",
            "jwt",
            "--listen",
            "127.0.0.1:0",
            "--users",
            "3",
            "--user-password",
            PASSWORD,
            "--admin-key",
            ADMIN_KEY,
        ])
    })
    .await
    .unwrap();
    let at_start = server.peak_rss();
    let url = format!("http://{}/login", server.addr);
    // One connection per login, all at once: what a flood of clients does.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let started = Instant::now();
    let mut flood = JoinSet::new();
    for i in 0..LOGINS {
        let (client, url) = (client.clone(), url.clone());
        flood.spawn(async move {
            let body = json!({"username": format!("user{}", i % 3), "password": "wrong password"});
            let response = client.post(&url).json(&body).send().await.unwrap();
            let status = response.status();
            let retry = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
            (status, retry, response.text().await.unwrap())
        });
    }
    let (mut refused, mut overloaded, mut failures) = (0, 0, Vec::new());
    while let Some(answer) = flood.join_next().await {
        let (status, retry, body) = answer.unwrap();
        match overloaded_or(status, retry.as_deref(), &body, &[StatusCode::UNAUTHORIZED]) {
            Ok(true) => overloaded += 1,
            Ok(false) => refused += 1,
            Err(e) => failures.push(e),
        }
    }
    let elapsed = started.elapsed();
    // Then a steady trickle: memory must not grow with the number of hashes either.
    for i in 0..SEQUENTIAL {
        let body = json!({"username": format!("user{}", i % 3), "password": "wrong password"});
        let response = client.post(&url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let peak = server.peak_rss();
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get) as u64;
    // One 19 MiB argon2 workspace per hashing thread (one thread per core), plus slack.
    let bound = at_start + cores * 24 * MIB + 64 * MIB;
    eprintln!(
        "{LOGINS} concurrent wrong-password logins in {elapsed:.2?}: {refused} x 401, {overloaded} x 503; \
         then {SEQUENTIAL} one at a time; peak RSS {} MiB (at start {} MiB, bound {} MiB)",
        peak / MIB,
        at_start / MIB,
        bound / MIB
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        peak <= bound,
        "{LOGINS} concurrent wrong-password logins and {SEQUENTIAL} more took the server to {} MiB peak RSS \
         (at start {} MiB); \
         hashing must hold at most {cores} x 19 MiB at once (bound {} MiB)",
        peak / MIB,
        at_start / MIB,
        bound / MIB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_flood_cannot_bypass_the_hashing_bound() {
    const USERS: usize = 24;
    // One slot and no waiting: any change that finds the slot taken must be turned away.
    let s = TestServer::start(StrategyName::Session, |c| {
        c.argon2_concurrency = 1;
        c.argon2_wait = Duration::ZERO;
    })
    .await;
    let mut tokens = Vec::new();
    for i in 0..USERS {
        // Logins one at a time always find the slot free.
        tokens.push(s.login(&format!("user{i}")).await);
    }
    let mut flood = JoinSet::new();
    for (i, token) in tokens.iter().enumerate() {
        let (client, url, token) = (s.client.clone(), s.url("/password"), token.clone());
        flood.spawn(async move {
            let body = json!({"current_password": PASSWORD, "new_password": format!("changed-{i}")});
            let response = client.post(&url).bearer_auth(&token).json(&body).send().await.unwrap();
            let status = response.status();
            let retry = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
            (i, status, retry, response.text().await.unwrap())
        });
    }
    let (mut changed, mut overloaded, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(answer) = flood.join_next().await {
        let (i, status, retry, body) = answer.unwrap();
        match overloaded_or(status, retry.as_deref(), &body, &[StatusCode::NO_CONTENT]) {
            Ok(true) => overloaded.push(i),
            Ok(false) => changed.push(i),
            Err(e) => failures.push(format!("user{i}: {e}")),
        }
    }
    eprintln!(
        "{USERS} concurrent password changes, one hashing slot: {} x 204, {} x 503",
        changed.len(),
        overloaded.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        !overloaded.is_empty(),
        "{USERS} concurrent password changes with one hashing slot and no wait all hashed at once ({} x 204): \
         the password path is not bounded",
        changed.len()
    );
    // A change turned away changed nothing: the old password and the old token still work.
    for i in overloaded {
        assert_eq!(s.me(&tokens[i]).await.0, StatusCode::OK, "user{i}: token revoked by a refused change");
        let (status, body) = s.post_json("/login", json!({"username": format!("user{i}"), "password": PASSWORD})).await;
        assert_eq!(status, StatusCode::OK, "user{i}: password changed by a refused change: {body}");
    }
}
