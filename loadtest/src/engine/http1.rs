//! The hyper HTTP/1.1 client connection of the crate: the revocation probers and the harness's
//! own one-off calls connect, handshake and send through it (the load engine's hot path has its
//! own, `wire.rs`, which does in one task what hyper does across two). Keep-alive,
//! `TCP_NODELAY` (a load of small requests must not wait for Nagle), and a new connection after
//! the server closed one or a request failed on it.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{SendRequest, handshake};
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A keep-alive connection to one server, opened on first use and again after a failure.
#[derive(Debug)]
pub struct Http1 {
    addr: SocketAddr,
    /// The `Host` header every request carries: the server's address.
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// What can go wrong on a connection.
#[derive(Debug, thiserror::Error)]
pub enum Http1Error {
    #[error("cannot connect to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("HTTP/1 error with {0}: {1}")]
    Http(SocketAddr, hyper::Error),
}

impl Http1 {
    /// A connection to `addr`, not opened yet.
    pub fn new(addr: SocketAddr) -> Self {
        // A socket address is always a valid header value.
        let host = HeaderValue::from_str(&addr.to_string()).unwrap_or(HeaderValue::from_static("localhost"));
        Self { addr, host, sender: None }
    }

    /// The `Host` header value for requests on this connection.
    pub fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// Opens the connection now (the engine does so before its clock starts, so handshakes are
    /// not measured); a no-op while one is open.
    pub async fn connect(&mut self) -> Result<(), Http1Error> {
        if self.sender.as_ref().is_some_and(|s| !s.is_closed()) {
            return Ok(());
        }
        let stream = TcpStream::connect(self.addr).await.map_err(|e| Http1Error::Connect(self.addr, e))?;
        stream.set_nodelay(true).map_err(|e| Http1Error::Connect(self.addr, e))?;
        let (sender, conn) = handshake(TokioIo::new(stream)).await.map_err(|e| Http1Error::Http(self.addr, e))?;
        // The connection is driven on a task of its own; it ends when the sender is dropped.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends `request` and returns the answer's head with its body still to be read. On an
    /// error the connection is dropped, and the next request opens a new one.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Response<Incoming>, Http1Error> {
        self.connect().await?;
        let Some(sender) = self.sender.as_mut() else { return Err(Http1Error::Connect(self.addr, closed())) };
        let sent = async {
            sender.ready().await?;
            sender.send_request(request).await
        };
        match sent.await {
            Ok(response) => Ok(response),
            Err(e) => {
                self.sender = None;
                Err(Http1Error::Http(self.addr, e))
            }
        }
    }

    /// Sends `request` and reads the whole answer.
    pub async fn exchange(&mut self, request: Request<Full<Bytes>>) -> Result<(Response<()>, Bytes), Http1Error> {
        let response = self.send(request).await?;
        let (head, body) = response.into_parts();
        match body.collect().await {
            Ok(body) => Ok((Response::from_parts(head, ()), body.to_bytes())),
            Err(e) => {
                self.sender = None;
                Err(Http1Error::Http(self.addr, e))
            }
        }
    }

    /// Drops the connection (a request on it timed out: its late answer must not be read as
    /// the next one's).
    pub fn reset(&mut self) {
        self.sender = None;
    }
}

fn closed() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "connection closed")
}
