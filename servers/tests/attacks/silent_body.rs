//! Defect 6: only the request head had a read timeout, so a client that announced a body and
//! never sent it held its connection (and one of the server's connection permits) forever;
//! enough of them stopped the accept loop. A body must now arrive within the body read
//! timeout, or the client gets 408 and the connection is closed.

use std::time::{Duration, Instant};

use authbench_server::config::StrategyName;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TestServer;

const BODY_READ_TIMEOUT: Duration = Duration::from_millis(400);

/// A request head announcing 100 bytes of body, none of which will come.
const SILENT_HEAD: &[u8] =
    b"POST /login HTTP/1.1\r\nHost: authbench\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_body_cannot_hold_its_connection() {
    let s = TestServer::start(StrategyName::Jwt, |c| c.body_read_timeout = BODY_READ_TIMEOUT).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(SILENT_HEAD).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let limit = BODY_READ_TIMEOUT * 5;
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await;
    let elapsed = started.elapsed();
    assert!(
        read.is_ok(),
        "a body that never came still held its connection after {elapsed:.2?} (body read timeout {BODY_READ_TIMEOUT:?}): \
         no answer and no close; read so far: {:?}",
        String::from_utf8_lossy(&answer)
    );
    let text = String::from_utf8_lossy(&answer);
    eprintln!("silent body: answered and closed after {elapsed:.2?}: {:?}", text.lines().next().unwrap_or("(closed)"));
    if !answer.is_empty() {
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        let json: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("408 body is not JSON ({e}): {text}"));
        assert_eq!(json["error"], "request_timeout", "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_body_flood_cannot_stop_the_accept_loop() {
    const PERMITS: usize = 32;
    const SILENT: usize = 3 * PERMITS;
    let s = TestServer::start(StrategyName::Jwt, |c| {
        c.body_read_timeout = BODY_READ_TIMEOUT;
        c.max_connections = PERMITS;
    })
    .await;
    // More silent clients than the server has connection permits; the kernel completes the
    // handshakes of those the server has not accepted yet, so every head is on its way.
    let mut silent = Vec::new();
    for _ in 0..SILENT {
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        stream.write_all(SILENT_HEAD).await.unwrap();
        silent.push(stream);
    }
    let started = Instant::now();
    let limit = BODY_READ_TIMEOUT * 10;
    let normal = tokio::time::timeout(limit, s.get("/capabilities")).await;
    let elapsed = started.elapsed();
    assert!(
        normal.is_ok(),
        "{SILENT} connections whose bodies never came kept a normal request from being served for {elapsed:.2?} \
         ({PERMITS} connection permits, body read timeout {BODY_READ_TIMEOUT:?})"
    );
    let (status, _) = normal.unwrap();
    assert_eq!(status, StatusCode::OK);
    eprintln!("{SILENT} silent bodies against {PERMITS} permits: a normal request served after {elapsed:.2?}");
    drop(silent);
}
