//! `versioned`: a signed JWT that carries the user's token version (`ver`) and the global one
//! (`gver`) from when it was issued. Password change, logout-all, ban and role change increment
//! the user's version in Redis; revoke-all increments the global one. A token younger than the
//! grace window (30 s by default) is trusted on its signature alone, with no Redis command;
//! an older one costs one `MGET` of the two versions, and when it passes, the answer carries a
//! fresh token (`X-Refreshed-Token`) so that a busy client stays inside the window. A revoked
//! token therefore keeps working until its `iat` is `grace` old: the window, and the Redis
//! commands per request, both depend on the grace.
//!
//! One token cannot be revoked alone (there is no per-token state): logout answers 501. Version
//! keys never expire: a version that lapsed could let an old token pass again.

use std::sync::Arc;
use std::time::Duration;

use super::jwt::{new_claims, padding};
use super::{AuthStrategy, Capabilities, Issued, Principal, RevocationSupport, UserRevocation};
use crate::error::AuthError;
use crate::jwt::{AccessClaims, JwtKeys, now_secs};
use crate::store::RedisStore;
use crate::token::TokenRejection;

/// Key prefix of a user's token version, and the key of the global one.
pub(crate) const USER_VERSION: &str = "ab:v:";
pub(crate) const GLOBAL_VERSION: &str = "ab:v-all";

/// The key of a user's token version.
pub(crate) fn user_version_key(username: &str) -> String {
    format!("{USER_VERSION}{username}")
}

/// Claims of a token issued to `username` with `iat` (now, except when seeding older tokens),
/// carrying the user's and the global version.
pub(crate) fn versioned_claims(
    username: &str,
    roles: &[String],
    ttl: Duration,
    iat: u64,
    (ver, gver): (u64, u64),
    pad: Option<&String>,
) -> Result<AccessClaims, AuthError> {
    let mut claims = new_claims(username, roles, ttl, iat, pad)?;
    claims.ver = Some(ver);
    claims.gver = Some(gver);
    Ok(claims)
}

/// What `versioned` is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionedSettings {
    /// Lifetime of an access token.
    pub access_ttl: Duration,
    /// Age below which a token is trusted without asking Redis (0: always ask).
    pub grace: Duration,
    /// The single-device policy: a login ends the user's older tokens. One version per user
    /// can express no other limit.
    pub single_device: bool,
    /// Extra claim bytes per token (0: none).
    pub claims_padding: usize,
}

#[derive(Debug)]
pub struct VersionedStrategy {
    keys: Arc<JwtKeys>,
    store: RedisStore,
    single_device: bool,
    ttl: Duration,
    grace: Duration,
    pad: Option<String>,
}

impl VersionedStrategy {
    pub fn new(settings: VersionedSettings, keys: Arc<JwtKeys>, store: RedisStore) -> Self {
        Self {
            keys,
            store,
            single_device: settings.single_device,
            ttl: settings.access_ttl,
            grace: settings.grace,
            pad: padding(settings.claims_padding),
        }
    }

    /// The user's and the global version now (0 when never incremented).
    async fn versions(&self, username: &str) -> Result<(u64, u64), AuthError> {
        let cmd = redis::cmd("MGET").arg(user_version_key(username)).arg(GLOBAL_VERSION).to_owned();
        let (user, global): (Option<u64>, Option<u64>) = self.store.cmd(&cmd).await?;
        Ok((user.unwrap_or(0), global.unwrap_or(0)))
    }

    async fn bump(&self, key: &str) -> Result<u64, AuthError> {
        Ok(self.store.cmd(redis::cmd("INCR").arg(key)).await?)
    }

    fn sign(&self, username: &str, roles: &[String], ver: u64, gver: u64) -> Result<String, AuthError> {
        let claims = versioned_claims(username, roles, self.ttl, now_secs(), (ver, gver), self.pad.as_ref())?;
        Ok(self.keys.sign(&claims)?)
    }

    /// Whether the token is still inside the grace window (trusted without asking Redis).
    fn fresh(&self, claims: &AccessClaims) -> bool {
        now_secs().saturating_sub(claims.iat) < self.grace.as_secs()
    }
}

impl AuthStrategy for VersionedStrategy {
    fn capabilities(&self) -> Capabilities {
        // Inside the grace window tokens work without Redis; outside it, 503 (fails closed).
        let delay = if self.grace.is_zero() { "immediate" } else { "grace_window" };
        Capabilities::new("versioned", Some(&self.store))
            .revocation(RevocationSupport { logout: false, ..RevocationSupport::all(self.single_device) }, delay)
            .access_ttl(self.ttl)
            .jwt_alg(&self.keys)
            .grace(self.grace)
    }

    async fn issue(&self, username: &str, roles: &Arc<[String]>, _device: Option<&str>) -> Result<Issued, AuthError> {
        let (ver, gver) = if self.single_device {
            // A login ends the older devices' tokens (once they leave the grace window).
            let ver = self.bump(&user_version_key(username)).await?;
            let (_, gver) = self.versions(username).await?;
            (ver, gver)
        } else {
            self.versions(username).await?
        };
        Ok(Issued {
            access_token: self.sign(username, roles, ver, gver)?,
            expires_in: self.ttl.as_secs(),
            refresh_token: None,
        })
    }

    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.keys.verify(token)?;
        let (Some(ver), Some(gver)) = (claims.ver, claims.gver) else {
            return Err(TokenRejection::MissingClaim.into());
        };
        if self.fresh(&claims) {
            return Ok(super::jwt::principal_of(claims));
        }
        let (user, global) = self.versions(&claims.sub).await?;
        if ver < user || gver < global {
            return Err(TokenRejection::Revoked.into());
        }
        // A verify-only instance cannot hand out a fresh token; the checked one still passes.
        let refreshed = match self.sign(&claims.sub, &claims.roles, ver, gver) {
            Ok(token) => Some(token),
            Err(AuthError::Unsupported) => None,
            Err(e) => return Err(e),
        };
        let mut principal = super::jwt::principal_of(claims);
        principal.refreshed = refreshed;
        Ok(principal)
    }

    async fn logout(&self, _principal: &Principal) -> Result<(), AuthError> {
        Err(AuthError::Unsupported)
    }

    async fn revoke_user(&self, username: &str, _kind: UserRevocation) -> Result<(), AuthError> {
        self.bump(&user_version_key(username)).await.map(|_| ())
    }

    async fn roles_changed(&self, username: &str, _roles: &Arc<[String]>) -> Result<(), AuthError> {
        // Roles travel in the token: the old ones must go; the next login carries the new roles.
        self.revoke_user(username, UserRevocation::AdminRevoke).await
    }

    async fn revoke_all(&self) -> Result<(), AuthError> {
        self.bump(GLOBAL_VERSION).await.map(|_| ())
    }

    async fn health(&self) -> Result<(), AuthError> {
        Ok(self.store.ping().await?)
    }
}
