//! `hybrid`: a signed JWT (checked exactly as `jwt` does) plus a jti table in Redis, so
//! revocation takes effect at once at the price of one Redis round trip per request.
//!
//! - allowlist: a key per live jti (TTL to `exp`) and a per-user index, as sessions have; a
//!   token whose jti is absent is revoked. One `EXISTS` per request.
//! - denylist: revoked jtis until their `exp`, plus revocation marks per user and for everyone
//!   ([`super::marks`]): a mark ends every token issued before it, both times drawn from one
//!   clock in Redis, so a user can log in again right after a revoke. One `MGET` of three keys
//!   per request; a login draws its token's issue time (one script), and under the
//!   single-device policy raises the user's mark instead, which ends every older token.
//!
//! When Redis fails, `fail_mode` decides: closed answers 503, open accepts the signature-valid
//! token (and counts it, because a revoked token may be among them).

use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::index::TokenIndex;
use super::jwt::{new_claims, padding, principal_of};
use super::marks::{self, Mark, MarkKeys};
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
/// Denylist revocation clock and marks. They share the hash tag `{abj}`: the scripts that
/// draw from the clock also read or raise a mark, which a Redis Cluster allows within one slot.
const MARKS: MarkKeys = MarkKeys { clock: "ab:{abj}:clock", user: "ab:{abj}:m:", global: "ab:{abj}:m-all" };

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

    /// Ends every token issued before now that `mark` covers; returns the new mark.
    async fn raise(&self, mark: Mark<'_>) -> Result<u64, AuthError> {
        Ok(self.store.script(&MARKS.raise(mark, marks::life_secs(self.ttl), None)).await?)
    }

    /// Checks the jti table for a token whose signature and claims are already valid.
    async fn check_table(&self, claims: &AccessClaims) -> Result<bool, AuthError> {
        match self.mode {
            JtiMode::Allowlist => {
                let live: bool = self.store.cmd(redis::cmd("EXISTS").arg(self.index.record_key(&claims.jti))).await?;
                Ok(live)
            }
            JtiMode::Denylist => {
                let issued = marks::issued_us(claims)?;
                let cmd = redis::cmd("MGET")
                    .arg(format!("{DENIED}{}", claims.jti))
                    .arg(MARKS.user_key(&claims.sub))
                    .arg(MARKS.global)
                    .to_owned();
                let (denied, user_mark, global_mark): (Option<String>, Option<u64>, Option<u64>) =
                    self.store.cmd(&cmd).await?;
                Ok(denied.is_none() && !marks::ends(user_mark, issued) && !marks::ends(global_mark, issued))
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
                let issued = if self.single_device {
                    // Raising the user's mark ends every older token: the single-device policy.
                    // The new token is issued at the mark, which does not end it.
                    self.raise(Mark::User(username)).await?
                } else {
                    self.store.script(&MARKS.issue(username, marks::life_secs(self.ttl))).await?
                };
                let claims = marks::stamped_claims(username, roles, self.ttl, issued, self.pad.as_ref())?;
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
                self.raise(Mark::User(username)).await?;
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
                self.raise(Mark::Global).await?;
                Ok(())
            }
        }
    }

    async fn health(&self) -> Result<(), AuthError> {
        Ok(self.store.ping().await?)
    }
}
