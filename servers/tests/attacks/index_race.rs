//! Defect 9: a login writes its record and its user's index entry as separate commands.
//!
//! With the pool client each command travels on a connection of its own (on a cluster, to a
//! node of its own), so nothing orders them: when the record's write is the slow one, the index
//! entry lands first, and a logout-all that takes the index then and unlinks the records it
//! names runs before the record exists. The record then lands with no index entry, a session
//! that no logout-all, ban or password change can find. The attacker needs only a slow link for
//! the record's write: here a relay in front of the real Redis holds back every chunk that
//! carries a `SET` for 100 ms. It logs in on one instance while the other ends the user's
//! sessions again and again (a ban is the same index walk as logout-all, and needs no token);
//! then the victim logs out everywhere once, with nothing in flight: every token the attacker
//! got must be dead.
//!
//! Two instances, because within one instance a login that overlaps a revocation of its user
//! is refused (defect 1); across instances only the store's own writes keep the index whole.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use authbench_server::config::{ServerConfig, StrategyName};
use authbench_server::redis_process::RedisServer;
use authbench_server::store::{RedisClientKind, RedisTarget};
use authbench_server::strategy::JtiMode;
use futures_util::future::join_all;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::password_race::{login_loop, still_works};
use crate::support::{ADMIN_KEY, PASSWORD, TestServer};

/// How long the attacker's logins run at most, and how many bans the other instance sends
/// meanwhile at most.
const RACE: Duration = Duration::from_millis(1200);
const MAX_BANS: usize = 5000;
const LOOPS: usize = 3;
/// How long the relay holds back a chunk carrying a `SET`; well inside the server's deadline.
const HOLD: Duration = Duration::from_millis(100);

/// A relay on loopback in front of Redis that delays, per connection and in order, every
/// chunk the client sends that carries a `SET` command. Dropping it stops accepting.
struct SlowSetRelay {
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl SlowSetRelay {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else { continue };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = client_read.read(&mut buf).await {
                        let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else { break };
                        if chunk.windows(7).any(|w| w == b"\r\nSET\r\n") {
                            tokio::time::sleep(HOLD).await;
                        }
                        if server_write.write_all(chunk).await.is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
            }
        });
        Self { addr, accept }
    }
}

impl Drop for SlowSetRelay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The designs whose records sit in a per-user index, each on the pool client.
#[derive(Debug, Clone, Copy)]
enum Setup {
    Session,
    HybridAllowlist,
    Refresh,
}

/// Instance A (the attacker's) reaches Redis through the relay; B directly. Both use the pool
/// client and share a signing key.
async fn pair(setup: Setup) -> (TestServer, TestServer, SlowSetRelay) {
    let strategy = match setup {
        Setup::Session => StrategyName::Session,
        Setup::HybridAllowlist => StrategyName::Hybrid,
        Setup::Refresh => StrategyName::Refresh,
    };
    let redis = RedisServer::start().unwrap();
    let relay = SlowSetRelay::start(redis.addr()).await;
    let key_file = std::env::temp_dir().join(format!(
        "authbench-index-race-{}-{setup:?}-{:?}.key",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_file(&key_file);
    let mut config = ServerConfig::new(strategy);
    config.users = 4;
    config.user_password = PASSWORD.to_owned();
    config.admin_key = ADMIN_KEY.to_owned();
    config.redis_client = RedisClientKind::Pool;
    config.redis_timeout = Duration::from_secs(1);
    config.jti_mode = JtiMode::Allowlist;
    config.jwt_key_file = Some(key_file);
    config.redis = RedisTarget::Single(redis.url());
    let b = TestServer::start_with_redis(config.clone(), None).await;
    config.redis = RedisTarget::Single(format!("redis://{}", relay.addr));
    let a = TestServer::start_with_redis(config, Some(redis)).await;
    (a, b, relay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_racing_logout_all_keeps_a_session_that_no_later_logout_all_ends() {
    let mut findings = Vec::new();
    for setup in [Setup::Session, Setup::HybridAllowlist, Setup::Refresh] {
        let (a, b, _relay) = pair(setup).await;
        let stop = AtomicBool::new(false);
        let deadline = Instant::now() + RACE;
        let logins = join_all((0..LOOPS).map(|_| login_loop(&a, "user1", PASSWORD, &stop, deadline)));
        let bans = async {
            let mut bans = 0;
            while bans < MAX_BANS && Instant::now() < deadline {
                let (status, body) = b.admin_post("/admin/users/user1/revoke").await;
                assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
                bans += 1;
            }
            stop.store(true, Ordering::Relaxed);
            bans
        };
        let (logins, bans) = tokio::join!(logins, bans);

        // Nothing in flight now: the victim logs out everywhere, once.
        let own = b.login("user1").await;
        let (status, body) = b.post_auth("/logout-all", &own, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

        let tokens: Vec<_> = logins.into_iter().flatten().filter(|l| l.status == StatusCode::OK).collect();
        let mut working = 0;
        for login in &tokens {
            if still_works(&a, &login.body).await {
                working += 1;
            }
        }
        if working > 0 {
            findings.push(format!(
                "{setup:?}: {working} of {} sessions minted while {bans} bans ran survive a logout-all with \
                 nothing in flight",
                tokens.len()
            ));
        }
    }
    assert!(findings.is_empty(), "the attack worked:\n{}", findings.join("\n"));
}
