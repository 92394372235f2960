//! `hybrid`: a signed JWT (checked exactly as `jwt` does) plus a jti table in Redis, so
//! revocation takes effect at once at the price of one Redis round trip per request.
//!
//! - allowlist: a key per live jti (TTL to `exp`) and a per-user index, as sessions have; a
//!   token whose jti is absent is revoked. One `EXISTS` per request.
//! - denylist: revoked jtis until their `exp`, plus revocation marks per user and for everyone.
//!   A mark `M` revokes every token with `iat < M`; tokens issued afterwards carry `iat >= M`, so a
//!   user can log in again in the same second. One `MGET` of three keys per request.
//!
//! Marks have one-second resolution (they compare with `iat`), so a mark is always set one above
//! the highest `iat` already issued: under the single-device policy every login raises the
//! user's mark, which can run a little ahead of the clock, and revoke-all therefore raises the
//! global mark above the highest user mark as well as above the clock.
//!
//! When Redis fails, `fail_mode` decides: closed answers 503, open accepts the signature-valid
//! token (and counts it, because a revoked token may be among them).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use clap::ValueEnum;
use redis::Script;
use serde::{Deserialize, Serialize};

use super::index::TokenIndex;
use super::jwt::{new_claims, padding, principal_of};
use super::{AuthStrategy, Capabilities, Issued, Principal, RevocationSupport, UserRevocation};
use crate::error::AuthError;
use crate::jwt::{AccessClaims, JwtKeys, LEEWAY_SECS, now_secs};
use crate::metrics::Metrics;
use crate::store::RedisStore;
use crate::token::{TokenRejection, is_jti};

/// What the hybrid table in Redis holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JtiMode {
    /// A key per live jti; absent means revoked.
    Allowlist,
    /// Revoked jtis plus per-user and global "not before" marks.
    Denylist,
}

impl JtiMode {
    /// The mode as the flag and `/capabilities` name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowlist => "allowlist",
            Self::Denylist => "denylist",
        }
    }
}

/// What the hybrid strategy does when Redis cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Answer 503: no request is accepted without the revocation check.
    Closed,
    /// Accept signature-valid tokens: availability over revocation.
    Open,
}

impl FailMode {
    /// The mode as the flag and `/capabilities` name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
        }
    }
}

/// What `hybrid` is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HybridSettings {
    /// Lifetime of an access token.
    pub access_ttl: Duration,
    /// What the table in Redis holds.
    pub jti_mode: JtiMode,
    /// What a request gets when Redis cannot answer.
    pub fail_mode: FailMode,
    /// Live tokens kept per user (allowlist; a login beyond it ends the oldest); `Some(1)` is
    /// the single-device policy, which the denylist keeps by raising the user's mark.
    pub max_sessions_per_user: Option<u32>,
    /// Extra claim bytes per token (0: none).
    pub claims_padding: usize,
}

/// Allowlist key prefix of a live jti, and of a user's index of them.
pub(crate) const LIVE: &str = "ab:ja:";
pub(crate) const LIVE_USERS: &str = "ab:jau:";
/// Denylist key prefix of a revoked jti.
pub(crate) const DENIED: &str = "ab:jd:";
/// Denylist revocation mark of one user. The marks share the hash tag `{abj}`: the scripts that
/// raise them read and write several at once, which a Redis Cluster allows within one slot.
const USER_MARK: &str = "ab:{abj}:m:";
/// Denylist revocation mark of everyone.
const GLOBAL_MARK: &str = "ab:{abj}:m-all";

/// The highest user mark ever set (within a token lifetime); revoke-all must exceed it.
const HIGHEST_USER_MARK: &str = "ab:{abj}:m-top";

/// Raises a user's mark to `max(user, global, now) + 1` and records it as the highest user
/// mark if it is. KEYS: user mark, global mark, highest user mark; ARGV: now, ttl (seconds).
const RAISE_USER_MARK: &str = r"
local function num(k) return tonumber(redis.call('GET', k) or '0') end
local n = math.max(num(KEYS[1]), num(KEYS[2]), tonumber(ARGV[1])) + 1
redis.call('SET', KEYS[1], n, 'EX', ARGV[2])
if n > num(KEYS[3]) then redis.call('SET', KEYS[3], n, 'EX', ARGV[2]) end
return n
";
static RAISE_USER_MARK_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RAISE_USER_MARK));

/// Raises the global mark to `max(global, highest user mark, now) + 1`, so that it also ends
/// tokens whose `iat` a user mark pushed ahead of the clock. KEYS: global mark, highest user
/// mark; ARGV: now, ttl (seconds).
const RAISE_GLOBAL_MARK: &str = r"
local function num(k) return tonumber(redis.call('GET', k) or '0') end
local n = math.max(num(KEYS[1]), num(KEYS[2]), tonumber(ARGV[1])) + 1
redis.call('SET', KEYS[1], n, 'EX', ARGV[2])
return n
";
static RAISE_GLOBAL_MARK_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RAISE_GLOBAL_MARK));

#[derive(Debug)]
pub struct HybridStrategy {
    keys: Arc<JwtKeys>,
    store: RedisStore,
    mode: JtiMode,
    fail_mode: FailMode,
    /// Allowlist table (unused in denylist mode).
    index: TokenIndex,
    single_device: bool,
    ttl: Duration,
    metrics: Arc<Metrics>,
    /// Filler claim of `--claims-padding` bytes, built once.
    pad: Option<String>,
}

impl HybridStrategy {
    pub fn new(settings: HybridSettings, keys: Arc<JwtKeys>, store: RedisStore, metrics: Arc<Metrics>) -> Self {
        Self {
            keys,
            store,
            mode: settings.jti_mode,
            fail_mode: settings.fail_mode,
            index: TokenIndex::new(LIVE, LIVE_USERS, settings.max_sessions_per_user),
            single_device: settings.max_sessions_per_user == Some(1),
            ttl: settings.access_ttl,
            metrics,
            pad: padding(settings.claims_padding),
        }
    }

    /// How long a revocation mark must outlive the revoke: every token older than it has
    /// expired by then.
    fn mark_ttl_secs(&self) -> u64 {
        self.ttl.as_secs() + LEEWAY_SECS + 1
    }

    /// Runs a mark-raising script and returns the new mark.
    async fn raise(&self, script: &Script, keys: &[&str]) -> Result<u64, AuthError> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        invocation.arg(now_secs()).arg(self.mark_ttl_secs());
        Ok(self.store.script(&invocation).await?)
    }

    /// Ends every token of `username` issued so far; returns the new mark.
    async fn raise_user_mark(&self, username: &str) -> Result<u64, AuthError> {
        self.raise(&RAISE_USER_MARK_SCRIPT, &[&format!("{USER_MARK}{username}"), GLOBAL_MARK, HIGHEST_USER_MARK]).await
    }

    /// Checks the jti table for a token whose signature and claims are already valid.
    async fn check_table(&self, claims: &AccessClaims) -> Result<bool, AuthError> {
        match self.mode {
            JtiMode::Allowlist => {
                let live: bool = self.store.cmd(redis::cmd("EXISTS").arg(self.index.record_key(&claims.jti))).await?;
                Ok(live)
            }
            JtiMode::Denylist => {
                let cmd = redis::cmd("MGET")
                    .arg(format!("{DENIED}{}", claims.jti))
                    .arg(format!("{USER_MARK}{}", claims.sub))
                    .arg(GLOBAL_MARK)
                    .to_owned();
                let (denied, user_mark, global_mark): (Option<String>, Option<u64>, Option<u64>) =
                    self.store.cmd(&cmd).await?;
                let below = |mark: Option<u64>| mark.is_some_and(|m| claims.iat < m);
                Ok(denied.is_none() && !below(user_mark) && !below(global_mark))
            }
        }
    }
}

impl AuthStrategy for HybridStrategy {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new("hybrid", Some(&self.store))
            .revocation(RevocationSupport::all(self.single_device), "immediate")
            .fail_mode(self.fail_mode.as_str())
            .access_ttl(self.ttl)
            .jwt_alg(&self.keys)
            .jti_mode(self.mode.as_str())
    }

    async fn issue(&self, username: &str, roles: &Arc<[String]>, _device: Option<&str>) -> Result<Issued, AuthError> {
        let (claims, token) = match self.mode {
            JtiMode::Allowlist => {
                let claims = new_claims(username, roles, self.ttl, now_secs(), self.pad.as_ref())?;
                let token = self.keys.sign(&claims)?;
                self.index.insert(&self.store, username, &claims.jti, username, self.ttl).await?;
                (claims, token)
            }
            JtiMode::Denylist => {
                let user_mark = format!("{USER_MARK}{username}");
                // A new token must not be born revoked: its iat is at least every mark.
                let iat = if self.single_device {
                    // Raising the user's mark ends every older token: the single-device policy.
                    self.raise_user_mark(username).await?
                } else {
                    let marks: (Option<u64>, Option<u64>) =
                        self.store.cmd(redis::cmd("MGET").arg(&user_mark).arg(GLOBAL_MARK)).await?;
                    now_secs().max(marks.0.unwrap_or(0)).max(marks.1.unwrap_or(0))
                };
                let claims = new_claims(username, roles, self.ttl, iat, self.pad.as_ref())?;
                let token = self.keys.sign(&claims)?;
                (claims, token)
            }
        };
        Ok(Issued { access_token: token, expires_in: claims.exp.saturating_sub(now_secs()), refresh_token: None })
    }

    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.keys.verify(token)?;
        if !is_jti(&claims.jti) {
            return Err(TokenRejection::Malformed.into());
        }
        match self.check_table(&claims).await {
            Ok(true) => Ok(principal_of(claims)),
            Ok(false) => Err(TokenRejection::Revoked.into()),
            Err(AuthError::Store(e)) if self.fail_mode == FailMode::Open => {
                tracing::debug!(error = %e, "redis unavailable, failing open");
                self.metrics.auth_fail_open();
                Ok(principal_of(claims))
            }
            Err(e) => Err(e),
        }
    }

    async fn logout(&self, principal: &Principal) -> Result<(), AuthError> {
        match self.mode {
            JtiMode::Allowlist => Ok(self.index.remove(&self.store, &principal.sub, &principal.token_id).await?),
            JtiMode::Denylist => {
                // Kept until the token would have expired anyway (plus leeway), then Redis drops it.
                let until = principal.exp + LEEWAY_SECS + 1;
                let cmd = redis::cmd("SET")
                    .arg(format!("{DENIED}{}", principal.token_id))
                    .arg(1)
                    .arg("EXAT")
                    .arg(until)
                    .to_owned();
                Ok(self.store.cmd::<()>(&cmd).await?)
            }
        }
    }

    async fn revoke_user(&self, username: &str, _kind: UserRevocation) -> Result<(), AuthError> {
        match self.mode {
            JtiMode::Allowlist => Ok(self.index.clear_user(&self.store, username).await?),
            JtiMode::Denylist => {
                self.raise_user_mark(username).await?;
                Ok(())
            }
        }
    }

    async fn roles_changed(&self, username: &str, _roles: &Arc<[String]>) -> Result<(), AuthError> {
        // Roles travel inside the token: the old tokens must go, the next login carries the new roles.
        self.revoke_user(username, UserRevocation::AdminRevoke).await
    }

    async fn revoke_all(&self) -> Result<(), AuthError> {
        match self.mode {
            JtiMode::Allowlist => Ok(self.index.clear_all(&self.store).await?),
            JtiMode::Denylist => {
                self.raise(&RAISE_GLOBAL_MARK_SCRIPT, &[GLOBAL_MARK, HIGHEST_USER_MARK]).await?;
                Ok(())
            }
        }
    }

    async fn health(&self) -> Result<(), AuthError> {
        Ok(self.store.ping().await?)
    }
}
