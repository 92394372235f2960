//! The one pluggable piece: [`AuthStrategy`]. Every design implements it, and every request
//! goes through the same extractor and handlers, so a benchmark measures the design, not
//! differences in plumbing.
//!
//! Each design lives in its own file with the small settings struct it is built from (and, for
//! hybrid, the modes its flags choose); the crate root fills those from the configuration, so
//! no strategy sees the server's whole configuration. What they report on `/capabilities` is
//! [`Capabilities`], built from [`Capabilities::new`] and the design's own statements.

mod baseline;
mod hybrid;
mod index;
mod jwt;
mod marks;
mod pushed;
mod refresh;
pub mod seed;
mod session;
mod versioned;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

pub use baseline::BaselineStrategy;
pub use hybrid::{FailMode, HybridSettings, HybridStrategy, JtiMode};
pub use jwt::{JwtSettings, JwtStrategy};
pub use pushed::{PushedSettings, PushedStrategy};
pub use refresh::{RefreshSettings, RefreshStrategy};
pub use session::{SessionSettings, SessionStrategy};
pub use versioned::{VersionedSettings, VersionedStrategy};

use crate::error::AuthError;
use crate::jwt::JwtKeys;
use crate::pg_store::PgTable;
use crate::store::RedisStore;
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// The protocol version every strategy speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The body of `GET /capabilities` (protocol version 1), plus the running configuration.
/// `Deserialize` too, so a client can read an answer back into the same type; the words are
/// strings rather than enums so that an answer from a newer server still reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub protocol: u32,
    pub strategy: String,
    /// `redis`, `postgres` or `none`.
    pub store: String,
    /// `closed`, `open` or `n/a`.
    pub fail_mode: String,
    pub revocation: RevocationSupport,
    /// `immediate`, `access_ttl`, `grace_window`, `propagation`, or `n/a` (baseline).
    pub revocation_delay: String,
    /// Lifetime of issued tokens, in seconds.
    pub access_ttl_s: u64,
    /// JWT algorithm, for the JWT strategies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_alg: Option<String>,
    /// `multiplexed` or `pool`, for the Redis strategies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_client: Option<String>,
    /// `logged` or `unlogged`: the session table, for a store in PostgreSQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_table: Option<String>,
    /// Connections the PostgreSQL pool holds: at most this many statements in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_pool_size: Option<u64>,
    /// `allowlist` or `denylist`, for hybrid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti_mode: Option<String>,
    /// `versioned`: how long a token is trusted without asking Redis, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_s: Option<u64>,
    /// `refresh`: lifetime of a refresh-token family, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_ttl_s: Option<u64>,
    /// `refresh`: how long a rotated-away refresh token still answers a retry, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_reuse_interval_ms: Option<u64>,
    /// `pushed`: how current the instance's revocation state is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushReport>,
}

impl Capabilities {
    /// The capabilities of `strategy` keeping its state in `store` (or nowhere), before the
    /// strategy states anything else: it revokes nothing, its tokens last 0 s, and it fails
    /// closed when it has a store (`n/a` without one). The methods below add the rest.
    pub fn new(strategy: &str, store: Option<&RedisStore>) -> Self {
        Self {
            protocol: PROTOCOL_VERSION,
            strategy: strategy.to_owned(),
            store: if store.is_some() { "redis" } else { "none" }.to_owned(),
            fail_mode: if store.is_some() { "closed" } else { "n/a" }.to_owned(),
            revocation: RevocationSupport::default(),
            revocation_delay: "n/a".to_owned(),
            access_ttl_s: 0,
            jwt_alg: None,
            redis_client: store.map(|s| s.client_kind().as_str().to_owned()),
            postgres_table: None,
            postgres_pool_size: None,
            jti_mode: None,
            grace_s: None,
            refresh_ttl_s: None,
            refresh_reuse_interval_ms: None,
            push: None,
        }
    }

    /// The state is kept in PostgreSQL, in a table of this persistence, through a pool of
    /// `pool_size` connections, not in Redis; a request fails closed without it.
    pub fn postgres(mut self, table: PgTable, pool_size: usize) -> Self {
        self.store = "postgres".to_owned();
        self.fail_mode = "closed".to_owned();
        self.redis_client = None;
        self.postgres_table = Some(table.as_str().to_owned());
        self.postgres_pool_size = Some(u64::try_from(pool_size).unwrap_or(u64::MAX));
        self
    }

    /// What the strategy revokes, and how long a revocation takes to act (`immediate`, ...).
    pub fn revocation(mut self, revocation: RevocationSupport, delay: &str) -> Self {
        self.revocation = revocation;
        self.revocation_delay = delay.to_owned();
        self
    }

    /// What a request does when the store cannot answer (`closed` or `open`).
    pub fn fail_mode(mut self, fail_mode: &str) -> Self {
        self.fail_mode = fail_mode.to_owned();
        self
    }

    /// The lifetime of the access tokens (or sessions) the strategy issues.
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl_s = ttl.as_secs();
        self
    }

    /// The algorithm the strategy's tokens are signed with.
    pub fn jwt_alg(mut self, keys: &JwtKeys) -> Self {
        self.jwt_alg = Some(format!("{:?}", keys.algorithm()));
        self
    }

    /// `hybrid`: what its table in Redis holds (`allowlist` or `denylist`).
    pub fn jti_mode(mut self, mode: &str) -> Self {
        self.jti_mode = Some(mode.to_owned());
        self
    }

    /// `versioned`: how long a token is trusted without asking Redis.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_s = Some(grace.as_secs());
        self
    }

    /// `refresh`: the lifetime of a refresh-token family.
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_ttl_s = Some(ttl.as_secs());
        self
    }

    /// `refresh`: how long a rotated-away refresh token still answers a retry.
    pub fn refresh_reuse_interval(mut self, interval: Duration) -> Self {
        self.refresh_reuse_interval_ms = Some(u64::try_from(interval.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// `pushed`: how current the instance's revocation state is.
    pub fn push(mut self, report: PushReport) -> Self {
        self.push = Some(report);
        self
    }
}

/// How current a `pushed` instance's view of the revocation log is.
#[derive(Default, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushReport {
    /// Whether the follower's connection to Redis is up.
    pub connected: bool,
    /// Milliseconds since the follower last heard from Redis (null before the first contact).
    pub stale_ms: Option<u64>,
    /// Events applied from the log since start.
    pub events: u64,
    /// Stream id of the last event applied.
    pub last_id: String,
    /// The epoch of the log followed (a random id made with the log; null before there is one).
    #[serde(default)]
    pub epoch: Option<String>,
    /// Times the log was found replaced (Redis lost it) and replayed from its start.
    #[serde(default)]
    pub resets: u64,
    /// Times events not yet applied were found trimmed away, and the log replayed.
    #[serde(default)]
    pub gaps: u64,
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
    ///
    /// The contract logins rely on (see `users`): a revocation ends every token whose
    /// [`issue`](Self::issue) returned before the revocation began, and so does
    /// [`roles_changed`](Self::roles_changed) where it revokes (or rewrites) tokens. A login
    /// whose `issue` returns after a change of its user began is refused before the token leaves
    /// the server, and one that starts after it reads the new record, so together no
    /// interleaving of a login with a password change, role change, ban or logout-all hands out
    /// a token the change should have ended. Why each design keeps it:
    /// - `session`, hybrid allowlist, `refresh`: `issue` returns once the record and its index
    ///   entry are stored (see `index`), and the revocation takes the index and deletes every
    ///   record it names; `session`'s role change rewrites every record the index names.
    /// - hybrid denylist and `pushed`: a token's `iat` is `max(now, marks read at issue)`; the
    ///   revocation raises the user's mark to `max(marks, now) + 1`, with `now` read later from
    ///   the same clock, so above the `iat` of every token issued before it.
    /// - `versioned`: a token carries the version read at issue; the revocation increments it
    ///   in Redis, so every such token is below it (once out of the grace window).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::JwtAlg;

    #[test]
    fn capabilities_read_back_as_written() {
        let bare = Capabilities::new("baseline", None);
        let json = serde_json::to_value(&bare).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 7, "the optional fields stay absent: {json}");
        assert_eq!(serde_json::from_value::<Capabilities>(json).unwrap(), bare);

        let keys = JwtKeys::generate(JwtAlg::EdDSA).unwrap();
        let full = Capabilities::new("everything", None)
            .revocation(RevocationSupport::all(true), "grace_window")
            .fail_mode("open")
            .access_ttl(Duration::from_secs(60))
            .jwt_alg(&keys)
            .jti_mode("denylist")
            .grace(Duration::from_secs(30))
            .refresh_ttl(Duration::from_secs(3600))
            .push(PushReport { connected: true, events: 3, last_id: "1-0".to_owned(), ..PushReport::default() });
        let json = serde_json::to_value(&full).unwrap();
        assert_eq!(json["jwt_alg"], "EdDSA");
        assert_eq!(json["push"]["stale_ms"], serde_json::Value::Null);
        assert_eq!(serde_json::from_value::<Capabilities>(json).unwrap(), full);
    }
}
