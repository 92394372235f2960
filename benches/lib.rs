//! Shared fixtures for the criterion benchmarks: the claims a server would sign, the user every
//! benchmark logs in as, and the runtime the async benchmarks run on.

use std::sync::Arc;

use authbench_server::StrategyName;
use authbench_server::config::ServerConfig;
use authbench_server::jwt::{AccessClaims, now_secs};

/// The seeded user every benchmark acts as; the name the load generator's first user has.
pub const USERNAME: &str = "user0";

/// The roles of a seeded user, so tokens and session records are the size the servers produce.
pub fn user_roles() -> Arc<[String]> {
    Arc::from(vec!["user".to_owned()])
}

/// Claims exactly as the `jwt` strategy issues them, with the server's default lifetime, so a
/// signed token has the size and content of a real one and stays valid for the whole run.
pub fn access_claims() -> Result<AccessClaims, String> {
    let ttl = ServerConfig::new(StrategyName::Jwt).access_ttl;
    AccessClaims::new(USERNAME, &user_roles(), ttl, now_secs()).map_err(|e| e.to_string())
}

/// A single-threaded runtime with I/O and timers (the store puts a deadline on every call).
/// One thread keeps cross-thread wake-ups out of the figures: a request, the Redis client's
/// connection task and the reply all run where criterion measures.
pub fn current_thread_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}
