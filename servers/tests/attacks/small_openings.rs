//! Defect 11, the smaller openings: a refresh-ttl check that refused other strategies, a
//! default admin key used without a word, and Lua scripts sent in full (EVAL) on every call.
//! (The fourth, a global mutex taken by forged tokens naming a retired key, has no behaviour
//! to observe from outside; `jwt.rs` keeps the retired key ids in a lock-free set.)

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use authbench_server::config::{ServerOptions, StrategyName};
use authbench_server::strategy::JtiMode;
use clap::Parser;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;

use crate::support::TestServer;

const BIN: &str = env!("CARGO_BIN_EXE_authbench-server");

fn resolve(args: &[&str]) -> Result<(), String> {
    let argv = std::iter::once("authbench-server").chain(args.iter().copied());
    ServerOptions::try_parse_from(argv).map_err(|e| e.to_string())?.resolve().map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn a_long_lived_jwt_server_is_not_refused_for_a_refresh_ttl_it_never_uses() {
    for strategy in ["jwt", "hybrid", "session", "versioned", "pushed"] {
        let result = resolve(&["--strategy", strategy, "--access-ttl", "2days"]);
        assert!(result.is_ok(), "--strategy {strategy} --access-ttl 2days: {result:?}");
    }
    // Where refresh tokens exist, a family shorter than its access token is still refused.
    let result = resolve(&["--strategy", "refresh", "--access-ttl", "2days"]);
    assert!(result.as_ref().is_err_and(|e| e.contains("--refresh-ttl")), "{result:?}");
}

#[test]
fn an_attacker_cannot_count_on_a_silent_default_admin_key() {
    // Reachable from other hosts, the public default key is refused outright.
    for listen in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8080"] {
        let result = resolve(&["--strategy", "jwt", "--listen", listen]);
        assert!(
            result.as_ref().is_err_and(|e| e.contains("--admin-key") && e.contains("authbench-admin")),
            "--listen {listen} without --admin-key: {result:?}, wanted a refusal naming the default key"
        );
        assert!(resolve(&["--strategy", "jwt", "--listen", listen, "--admin-key", "a-key-of-our-own"]).is_ok());
    }
    // On loopback it is allowed, and named in a warning.
    let mut child = Command::new(BIN)
        .args(["--strategy", "jwt", "--listen", "127.0.0.1:0", "--users", "1"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on 127.0.0.1:"), "{line:?}");
    kill(Pid::from_raw(i32::try_from(child.id()).unwrap()), Signal::SIGTERM).unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let _ = child.wait();
    let warning = stderr.lines().find(|l| l.contains("WARN") && l.contains("admin"));
    assert!(
        warning.is_some_and(|w| w.contains("authbench-admin")),
        "started with the default admin key and no warning naming it; stderr: {stderr:?}"
    );
}

/// `INFO commandstats` calls of `command`, 0 when Redis has never run it.
fn calls(stats: &str, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Bytes Redis has read from its clients so far.
fn net_input(info: &str) -> u64 {
    info.lines().find_map(|l| l.strip_prefix("total_net_input_bytes:")).and_then(|n| n.trim().parse().ok()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_cost_redis_a_digest_not_their_text_on_every_call() {
    const ROUNDS: usize = 5;
    let servers = [
        ("hybrid denylist", TestServer::start(StrategyName::Hybrid, |c| c.jti_mode = JtiMode::Denylist).await),
        ("pushed", TestServer::start(StrategyName::Pushed, |_| {}).await),
        ("refresh", TestServer::start(StrategyName::Refresh, |_| {}).await),
    ];
    let mut failures = Vec::new();
    for (name, s) in &servers {
        let redis = s.redis.as_ref().unwrap();
        // Each round runs every script of the strategy once: a user mark (logout-all), the
        // global mark (revoke-all), or a refresh-token rotation.
        let round = || async {
            let token = s.login("user1").await;
            if *name == "refresh" {
                let refresh = s.refresh_token_of(&token).unwrap();
                assert_eq!(s.refresh(&refresh).await.0, StatusCode::OK);
            } else {
                assert_eq!(s.post_auth("/logout-all", &token, None).await.0, StatusCode::NO_CONTENT);
                assert_eq!(s.admin_post("/admin/revoke-all").await.0, StatusCode::NO_CONTENT);
            }
        };
        round().await; // warm-up: the first call may load the script
        tokio::time::sleep(Duration::from_millis(50)).await;
        redis.command("CONFIG RESETSTAT").unwrap();
        let before = net_input(&redis.command("INFO stats").unwrap());
        for _ in 0..ROUNDS {
            round().await;
        }
        let stats = redis.command("INFO commandstats").unwrap();
        let bytes = net_input(&redis.command("INFO stats").unwrap()) - before;
        let (eval, evalsha) = (calls(&stats, "eval"), calls(&stats, "evalsha"));
        eprintln!("{name}: {ROUNDS} rounds after warm-up: {eval} EVAL, {evalsha} EVALSHA, {bytes} bytes into Redis");
        if eval > 0 || evalsha == 0 {
            failures.push(format!("{name}: {eval} EVAL and {evalsha} EVALSHA calls after warm-up ({bytes} bytes in)"));
        }
        // A Redis that forgot its scripts (restarted empty, flushed) is taught them again.
        redis.command("SCRIPT FLUSH").unwrap();
        round().await;
    }
    assert!(failures.is_empty(), "scripts went as their full text:\n{}", failures.join("\n"));
}
