//! A one-request HTTP client for the harness's own calls (capabilities, logins, admin
//! operations): nothing here is timed as part of a measurement.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request};

use super::http1::Http1;
use crate::results::Capabilities;

/// The answer to one call.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

/// A token pair as a `/login` or `/refresh` answer holds it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Issued {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// The access token's lifetime in seconds, as the server said (0 when it did not).
    #[serde(default)]
    pub expires_in: u64,
}

impl Issued {
    /// The pair in an answer body already parsed.
    pub fn from_json(json: &serde_json::Value) -> anyhow::Result<Self> {
        Ok(serde::Deserialize::deserialize(json)?)
    }
}

/// Sends one request on a fresh connection, with a 10 s deadline.
pub async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> anyhow::Result<Answer> {
    let mut http = Http1::new(addr);
    let mut builder = Request::builder().method(method).uri(path).header(HOST, http.host());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let payload = match body {
        Some(json) => {
            builder = builder.header(CONTENT_TYPE, "application/json");
            Bytes::from(json.to_string())
        }
        None => Bytes::new(),
    };
    let request = builder.body(Full::new(payload))?;
    let (head, body) = tokio::time::timeout(Duration::from_secs(10), http.exchange(request))
        .await
        .map_err(|_| anyhow::anyhow!("{addr}{path} did not answer within 10 s"))??;
    Ok(Answer { status: head.status().as_u16(), body })
}

/// Logs `username` in with the seeded password and returns the access token.
pub async fn login(addr: SocketAddr, username: &str, password: &str) -> anyhow::Result<String> {
    let body = serde_json::json!({"username": username, "password": password});
    let answer = call(addr, Method::POST, "/login", &[], Some(&body)).await?;
    anyhow::ensure!(
        answer.status == 200,
        "login of {username} at {addr} answered {}: {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    answer
        .json()?
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("login answer has no access_token"))
}

/// The server's `/capabilities`, typed, or an error naming what is wrong with it.
pub async fn capabilities(addr: SocketAddr) -> anyhow::Result<Capabilities> {
    let answer = call(addr, Method::GET, "/capabilities", &[], None).await?;
    anyhow::ensure!(answer.status == 200, "GET /capabilities answered {}", answer.status);
    let caps = answer.json()?;
    anyhow::ensure!(
        caps.get("protocol").and_then(serde_json::Value::as_u64) == Some(1),
        "the server does not speak authbench protocol 1: {caps}"
    );
    serde_json::from_value(caps).map_err(|e| anyhow::anyhow!("GET /capabilities does not follow protocol 1: {e}"))
}
