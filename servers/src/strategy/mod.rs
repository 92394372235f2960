//! The one pluggable piece: [`AuthStrategy`]. Every design implements it, and every request
//! goes through the same extractor and handlers, so a benchmark measures the design, not
//! differences in plumbing.

mod baseline;
mod hybrid;
mod index;
mod jwt;
mod pushed;
mod refresh;
pub mod seed;
mod session;
mod versioned;

use std::future::Future;
use std::sync::Arc;

use axum::http::HeaderMap;
use serde::Serialize;

pub use baseline::BaselineStrategy;
pub use hybrid::{FailMode, HybridStrategy, JtiMode};
pub use jwt::JwtStrategy;
pub use pushed::PushedStrategy;
pub use refresh::RefreshStrategy;
pub use session::SessionStrategy;
pub use versioned::VersionedStrategy;

use crate::error::AuthError;
use crate::users::UserDirectory;

/// Who a valid token belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    pub sub: String,
    pub roles: Arc<[String]>,
    /// Session id or jti: what a logout revokes.
    #[serde(skip)]
    pub token_id: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// A fresh token to hand back (`X-Refreshed-Token`), when the strategy minted one.
    #[serde(skip)]
    pub refreshed: Option<String>,
}

/// What `/login` hands out.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: Option<String>,
}

/// A revocation that applies to every token of one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRevocation {
    /// `POST /logout-all`.
    LogoutAll,
    /// `POST /password`, after the new password is stored.
    PasswordChange,
    /// `POST /admin/users/{username}/revoke`.
    AdminRevoke,
}

/// Which revocation kinds a strategy performs; the `revocation` object of `/capabilities`.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct RevocationSupport {
    pub logout: bool,
    pub logout_all: bool,
    pub single_device: bool,
    pub password_change: bool,
    pub admin_revoke: bool,
    pub role_change: bool,
    pub revoke_all: bool,
    pub refresh: bool,
}

impl RevocationSupport {
    /// Every kind a store-backed design performs (single-device as configured), none of them
    /// at refresh time; strategies state their exceptions with struct update syntax.
    pub fn all(single_device: bool) -> Self {
        Self {
            logout: true,
            logout_all: true,
            single_device,
            password_change: true,
            admin_revoke: true,
            role_change: true,
            revoke_all: true,
            refresh: false,
        }
    }
}

/// The body of `GET /capabilities` (protocol version 1), plus the running configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Capabilities {
    pub protocol: u32,
    pub strategy: &'static str,
    /// `redis` or `none`.
    pub store: &'static str,
    /// `closed`, `open` or `n/a`.
    pub fail_mode: &'static str,
    pub revocation: RevocationSupport,
    /// `immediate`, `access_ttl`, `grace_window`, `propagation`, or `n/a` (baseline).
    pub revocation_delay: &'static str,
    /// Lifetime of issued tokens, in seconds.
    pub access_ttl_s: u64,
    /// JWT algorithm, for the JWT strategies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_alg: Option<String>,
    /// `multiplexed` or `pool`, for the Redis strategies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_client: Option<&'static str>,
    /// `allowlist` or `denylist`, for hybrid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti_mode: Option<&'static str>,
    /// `versioned`: how long a token is trusted without asking Redis, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_s: Option<u64>,
    /// `refresh`: lifetime of a refresh-token family, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_ttl_s: Option<u64>,
    /// `pushed`: how current the instance's revocation state is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<PushReport>,
}

/// How current a `pushed` instance's view of the revocation log is.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// Whether the follower's connection to Redis is up.
    pub connected: bool,
    /// Milliseconds since the follower last heard from Redis (null before the first contact).
    pub stale_ms: Option<u64>,
    /// Events applied from the log since start.
    pub events: u64,
    /// Stream id of the last event applied.
    pub last_id: String,
}

/// An auth design. Methods return `Send` futures so handlers stay generic without boxing.
pub trait AuthStrategy: Send + Sync + 'static {
    /// What this strategy can revoke and how it behaves when its store fails.
    fn capabilities(&self) -> Capabilities;

    /// Mints a token for a user whose password has just been verified.
    fn issue(
        &self,
        username: &str,
        roles: &Arc<[String]>,
        device: Option<&str>,
    ) -> impl Future<Output = Result<Issued, AuthError>> + Send;

    /// Checks a bearer token.
    fn authenticate(&self, token: &str) -> impl Future<Output = Result<Principal, AuthError>> + Send;

    /// Checks a request. The default reads `Authorization: Bearer`; baseline overrides it to
    /// check nothing at all.
    fn authenticate_request(&self, headers: &HeaderMap) -> impl Future<Output = Result<Principal, AuthError>> + Send {
        async move { self.authenticate(crate::token::bearer_token(headers)?).await }
    }

    /// Whether tokens identify a user at all; baseline's do not, so it refuses the account
    /// operations (/password, role changes) that would act on its fixed user.
    fn verifies_tokens(&self) -> bool {
        true
    }

    /// Ends the session or token presented.
    fn logout(&self, principal: &Principal) -> impl Future<Output = Result<(), AuthError>> + Send;

    /// Ends every token of a user.
    fn revoke_user(&self, username: &str, kind: UserRevocation) -> impl Future<Output = Result<(), AuthError>> + Send;

    /// Makes a role change visible to existing tokens (the directory already holds the new
    /// roles). A strategy that cannot do so returns `Ok` and says so in `/capabilities`.
    fn roles_changed(
        &self,
        username: &str,
        roles: &Arc<[String]>,
    ) -> impl Future<Output = Result<(), AuthError>> + Send;

    /// Ends every token of every user.
    fn revoke_all(&self) -> impl Future<Output = Result<(), AuthError>> + Send;

    /// Exchanges a refresh token; the new access token carries the user's current roles from
    /// `users`. Only `refresh` issues refresh tokens.
    fn refresh(
        &self,
        _refresh_token: &str,
        _users: &UserDirectory,
    ) -> impl Future<Output = Result<Issued, AuthError>> + Send {
        async { Err(AuthError::Unsupported) }
    }

    /// Whether every store the strategy needs answers now.
    fn health(&self) -> impl Future<Output = Result<(), AuthError>> + Send {
        async { Ok(()) }
    }
}
