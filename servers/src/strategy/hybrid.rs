//! `hybrid`: a signed JWT (checked exactly as `jwt` does) plus a jti table in Redis, so
//! revocation takes effect at once at the price of one Redis round trip per request.
//!
//! - allowlist: a key per live jti (TTL to `exp`) and a per-user index, as sessions have; a
//!   token whose jti is absent is revoked. One `EXISTS` per request.
//! - denylist: revoked jtis until their `exp`, plus revocation marks per user and for everyone.
//!   A mark `M` revokes every token with `iat < M`; tokens issued afterwards carry `iat >= M`, so a
//!   user can log in again in the same second. One `MGET` of three keys per request.
//!
//! Marks have one-second resolution (they compare with `iat`). Under the single-device policy
//! each login raises the user's mark by one, so a user logging in several times within one
//! second carries marks slightly ahead of the clock; a revoke-all in that same second raises
//! the global mark from the clock and can miss those few tokens. The allowlist has no such edge.
//!
//! When Redis fails, `fail_mode` decides: closed answers 503, open accepts the signature-valid
//! token (and counts it, because a revoked token may be among them).

use std::sync::Arc;
use std::time::Duration;

use super::index::TokenIndex;
use super::jwt::{jwt_alg_name, new_claims, principal_of};
use super::{AuthStrategy, Capabilities, Issued, Principal, RevocationSupport, UserRevocation};
use crate::config::{FailMode, JtiMode, ServerConfig};
use crate::error::{AuthError, TokenRejection};
use crate::jwt::{AccessClaims, JwtKeys, LEEWAY_SECS, now_secs};
use crate::metrics::Metrics;
use crate::store::RedisStore;
use crate::token::is_jti;

/// Denylist key prefix of a revoked jti.
const DENIED: &str = "ab:jd:";
/// Denylist revocation mark of one user.
const USER_MARK: &str = "ab:jm:";
/// Denylist revocation mark of everyone.
const GLOBAL_MARK: &str = "ab:jm-all";

/// Raises a revocation mark to `max(current, ARGV[1]) + 1` atomically and returns it. KEYS[1] is
/// the mark to raise; KEYS[2], when given, is another mark the result must also exceed.
const RAISE_MARK: &str = r"
local m = tonumber(redis.call('GET', KEYS[1]) or '0')
if KEYS[2] then m = math.max(m, tonumber(redis.call('GET', KEYS[2]) or '0')) end
local n = math.max(m, tonumber(ARGV[1])) + 1
redis.call('SET', KEYS[1], n, 'EX', ARGV[2])
return n
";

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
    redis_client: &'static str,
    metrics: Arc<Metrics>,
}

impl HybridStrategy {
    pub fn new(config: &ServerConfig, keys: Arc<JwtKeys>, store: RedisStore, metrics: Arc<Metrics>) -> Self {
        Self {
            keys,
            store,
            mode: config.jti_mode,
            fail_mode: config.fail_mode,
            index: TokenIndex::new("ab:ja:", "ab:jau:", config.max_sessions_per_user),
            single_device: config.max_sessions_per_user == Some(1),
            ttl: config.access_ttl,
            redis_client: crate::redis_client_name(config.redis_client),
            metrics,
        }
    }

    /// How long a revocation mark must outlive the revoke: every token older than it has
    /// expired by then.
    fn mark_ttl_secs(&self) -> u64 {
        self.ttl.as_secs() + LEEWAY_SECS + 1
    }

    async fn raise_mark(&self, key: &str, also_above: Option<&str>) -> Result<u64, AuthError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RAISE_MARK).arg(if also_above.is_some() { 2 } else { 1 }).arg(key);
        if let Some(other) = also_above {
            cmd.arg(other);
        }
        cmd.arg(now_secs()).arg(self.mark_ttl_secs());
        Ok(self.store.cmd(&cmd).await?)
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
        Capabilities {
            protocol: 1,
            strategy: "hybrid",
            store: "redis",
            fail_mode: match self.fail_mode {
                FailMode::Closed => "closed",
                FailMode::Open => "open",
            },
            revocation: RevocationSupport {
                logout: true,
                logout_all: true,
                single_device: self.single_device,
                password_change: true,
                admin_revoke: true,
                role_change: true,
                revoke_all: true,
                refresh: false,
            },
            revocation_delay: "immediate",
            access_ttl_s: self.ttl.as_secs(),
            jwt_alg: Some(jwt_alg_name(&self.keys)),
            redis_client: Some(self.redis_client),
            jti_mode: Some(match self.mode {
                JtiMode::Allowlist => "allowlist",
                JtiMode::Denylist => "denylist",
            }),
        }
    }

    async fn issue(&self, username: &str, roles: &Arc<[String]>, _device: Option<&str>) -> Result<Issued, AuthError> {
        let (claims, token) = match self.mode {
            JtiMode::Allowlist => {
                let claims = new_claims(username, roles, self.ttl, now_secs())?;
                let token = self.keys.sign(&claims).map_err(AuthError::Internal)?;
                self.index.insert(&self.store, username, &claims.jti, username, self.ttl).await?;
                (claims, token)
            }
            JtiMode::Denylist => {
                let user_mark = format!("{USER_MARK}{username}");
                // A new token must not be born revoked: its iat is at least every mark.
                let iat = if self.single_device {
                    // Raising the user's mark ends every older token: the single-device policy.
                    self.raise_mark(&user_mark, Some(GLOBAL_MARK)).await?
                } else {
                    let marks: (Option<u64>, Option<u64>) =
                        self.store.cmd(redis::cmd("MGET").arg(&user_mark).arg(GLOBAL_MARK)).await?;
                    now_secs().max(marks.0.unwrap_or(0)).max(marks.1.unwrap_or(0))
                };
                let claims = new_claims(username, roles, self.ttl, iat)?;
                let token = self.keys.sign(&claims).map_err(AuthError::Internal)?;
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
                // Above the global mark too: tokens issued after a revoke-all carry iat >= it.
                self.raise_mark(&format!("{USER_MARK}{username}"), Some(GLOBAL_MARK)).await?;
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
                self.raise_mark(GLOBAL_MARK, None).await?;
                Ok(())
            }
        }
    }

    async fn health(&self) -> Result<(), AuthError> {
        Ok(self.store.ping().await?)
    }
}
