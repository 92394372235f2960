//! The small HTTP/1.1 servers the engine tests measure against, on loopback, each on its own
//! thread and runtime: one that answers after a fixed delay (or never), one whose delay depends
//! on when a request arrives (a stall, a store hang), and one that serves a single request at a
//! time over all its connections. And the `authbench` binary run as a user runs it.

// Each test file uses some of these servers, not all of them.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
pub const UNAVAILABLE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";

/// What a test server does with a request, given its head in lower case, called when the head
/// has arrived: answer with these bytes after a delay, or never (`None`).
pub type Respond = Arc<dyn Fn(&str) -> Option<(Duration, &'static [u8])> + Send + Sync>;

/// A server answering every request as `respond` says, each connection independently.
pub fn spawn_http(respond: Respond) -> SocketAddr {
    serve(respond, None)
}

/// Answers every request with 200 after `delay`, or never when `delay` is `None`.
pub fn spawn_server(delay: Option<Duration>) -> SocketAddr {
    spawn_http(Arc::new(move |_| delay.map(|d| (d, OK))))
}

/// Answers with 200 after `delay`, except that requests arriving in `[from, until)` are held
/// and answered at `until + delay` (a server paused for `until - from`).
pub fn spawn_stalling(delay: Duration, from: Instant, until: Instant) -> SocketAddr {
    spawn_http(Arc::new(move |_| {
        let now = Instant::now();
        let wait = if now >= from && now < until { until + delay - now } else { delay };
        Some((wait, OK))
    }))
}

/// A server in front of a store that hangs during `[from, until)`: requests arriving then are
/// answered with `during` after `slow` (the server's deadline on the store), the others with
/// 200 after `fast`. `during` is 200 for a fail-open design, 503 for a fail-closed one.
pub fn spawn_store_hang(
    from: Instant,
    until: Instant,
    fast: Duration,
    slow: Duration,
    during: &'static [u8],
) -> SocketAddr {
    spawn_http(Arc::new(move |_| {
        let now = Instant::now();
        Some(if now >= from && now < until { (slow, during) } else { (fast, OK) })
    }))
}

/// Answers 200 after `each`, one request at a time over all connections (first come, first
/// served): its capacity is `1 / each` requests per second however many connections it has.
pub fn spawn_serial(each: Duration) -> SocketAddr {
    serve(Arc::new(move |_| Some((each, OK))), Some(Arc::new(tokio::sync::Mutex::new(()))))
}

/// Accepts connections until the process ends; with `turn`, a request is answered only while
/// holding it (the delay included).
fn serve(respond: Respond, turn: Option<Arc<tokio::sync::Mutex<()>>>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let respond = respond.clone();
                let turn = turn.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut pending = Vec::new();
                    loop {
                        let n = match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        pending.extend_from_slice(&buf[..n]);
                        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&pending[..end]).to_lowercase();
                            pending.drain(..end + 4);
                            let Some((delay, reply)) = respond(&head) else {
                                std::future::pending::<()>().await;
                                return;
                            };
                            let held = match &turn {
                                Some(turn) => Some(turn.lock().await),
                                None => None,
                            };
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            let written = stream.write_all(reply).await;
                            drop(held);
                            if written.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
    });
    rx.recv().unwrap()
}

/// Runs the `authbench` binary with `args`, killed after `limit`; returns its exit status and
/// stderr.
pub fn authbench(args: &[&str], limit: Duration) -> (std::process::ExitStatus, String) {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_authbench"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("authbench {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, reader.join().unwrap())
}
