//! The accept loop: HTTP/1.1 over hyper with explicit limits, a connection cap, and graceful
//! shutdown (as mini-redis's `server::run` does: a listener, a shutdown future, a semaphore).
//!
//! axum's own `serve` does not expose hyper's buffer limit or header read timeout, which are
//! part of the hostile-input guarantees, so the loop is written out here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Largest read buffer hyper keeps for a request head; a head that does not fit gets 431.
/// hyper checks it as its buffer grows, so heads up to about twice this size can get through
/// to the app (measured: 40 KB reaches the app, 70 KB gets 431), where tokens over
/// `MAX_TOKEN_BYTES` are refused anyway.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 64;
/// Time a client has to send a complete request head (slow-loris guard). The body has a
/// deadline of its own (`--body-read-timeout`), kept by `http`'s `read_body`.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` completes, then drains open connections.
/// At most `max_connections` are open at once; further clients wait in the kernel's accept queue.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small request/response pairs: Nagle would add delay to every one of them.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::trace!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}, closing"),
    }
    Ok(())
}
