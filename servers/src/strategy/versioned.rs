//! `versioned`: a signed JWT that carries the user's token version (`ver`) and the global one
//! (`gver`) from when it was issued. Password change, logout-all, ban and role change raise
//! the user's version in Redis; revoke-all raises the global one. A token younger than the
//! grace window (30 s by default) is trusted on its signature alone, with no Redis command;
//! an older one costs one `MGET` of the two versions, and when it passes, the answer carries a
//! fresh token (`X-Refreshed-Token`) so that a busy client stays inside the window. A revoked
//! token therefore keeps working until its `iat` is `grace` old: the window, and the Redis
//! commands per request, both depend on the grace.
//!
//! A version is not a counter but the time of the last revocation, in microseconds of Redis's
//! own clock (`TIME`), raised by a script to at least one above its old value. A counter starts
//! again from zero when Redis loses data, and a token carrying `ver=3` would then survive the
//! next three bans; a time is past every version handed out before, so the next ban ends every
//! older token whatever Redis forgot. The global version is created (at the time then) by the
//! first login and never expires, so its absence means Redis lost its data: every token is then
//! refused, including tokens it had revoked, and live users log in again; the next login
//! creates a global version above every token issued before. A ban Redis loses itself (an AOF
//! `everysec` crash just after it) is lost with it; the ban after it still ends everything.
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

/// Raises a version (KEYS[1]) to the time now on Redis's clock, in microseconds, and to at
/// least one above what it was; returns it. Written with `%d`: Lua would print a double in
/// exponent form.
const RAISE: &str = r"
local now = redis.call('TIME')
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
local v = math.max(tonumber(now[1]) * 1000000 + tonumber(now[2]), old + 1)
redis.call('SET', KEYS[1], string.format('%d', v))
return v
";

/// Creates the global version (KEYS[1]) at the time now if it is missing; returns it.
const ENSURE_GLOBAL: &str = r"
local v = redis.call('GET', KEYS[1])
if v then return tonumber(v) end
local now = redis.call('TIME')
local t = tonumber(now[1]) * 1000000 + tonumber(now[2])
redis.call('SET', KEYS[1], string.format('%d', t))
return t
";

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

    /// The user's version now (0 when never raised) and the global one, `None` when Redis has
    /// lost it.
    async fn versions(&self, username: &str) -> Result<(u64, Option<u64>), AuthError> {
        let cmd = redis::cmd("MGET").arg(user_version_key(username)).arg(GLOBAL_VERSION).to_owned();
        let (user, global): (Option<u64>, Option<u64>) = self.store.cmd(&cmd).await?;
        Ok((user.unwrap_or(0), global))
    }

    /// The versions a new token carries; creates the global version when it is missing.
    async fn versions_to_issue(&self, username: &str) -> Result<(u64, u64), AuthError> {
        let (user, global) = self.versions(username).await?;
        let global = match global {
            Some(global) => global,
            None => self.store.cmd(redis::cmd("EVAL").arg(ENSURE_GLOBAL).arg(1).arg(GLOBAL_VERSION)).await?,
        };
        Ok((user, global))
    }

    /// Raises the version at `key`: every token carrying an older one is revoked.
    async fn bump(&self, key: &str) -> Result<u64, AuthError> {
        Ok(self.store.cmd(redis::cmd("EVAL").arg(RAISE).arg(1).arg(key)).await?)
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
            let (_, gver) = self.versions_to_issue(username).await?;
            (ver, gver)
        } else {
            self.versions_to_issue(username).await?
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
        // No global version: Redis lost its data, and with it the revocations this token may
        // be subject to.
        let Some(global) = global else { return Err(TokenRejection::Revoked.into()) };
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
