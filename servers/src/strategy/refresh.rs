//! `refresh`: a short-lived access JWT (60 s by default), verified locally with no I/O, plus an
//! opaque refresh token that is rotated on every `/refresh`. Redis is touched only at login and
//! refresh, so every revocation acts at refresh time and a revoked user keeps a working access
//! token for at most its remaining lifetime.
//!
//! A refresh token is `<family>.<secret>`, two 256-bit CSPRNG ids. Redis never holds either:
//! the family is stored under the SHA-256 of its id (`ab:rf:<digest>`), with the user and the
//! SHA-256 of the one secret currently valid in that family. A refresh presents a secret: if it
//! is the current one, it is replaced by a new one (rotation); if it is an older one, someone
//! is replaying a stolen token (reuse) and the whole family ends, so neither the thief nor the
//! victim can refresh again. The access token carries the family digest (`fam`), so a logout
//! ends its family. Families are indexed per user like sessions, for logout-all, password
//! change, ban and role change, and the single-device policy ends older families at login.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::Script;

use super::index::TokenIndex;
use super::jwt::{new_claims, padding};
use super::{AuthStrategy, Capabilities, Issued, Principal, RevocationSupport, UserRevocation};
use crate::error::AuthError;
use crate::jwt::{AccessClaims, JwtKeys, now_secs};
use crate::store::RedisStore;
use crate::token::{TokenRejection, is_opaque_id, new_opaque_id};
use crate::users::UserDirectory;

/// Key prefix of a family (by digest), and of a user's index of families.
pub(crate) const FAMILIES: &str = "ab:rf:";
pub(crate) const FAMILY_USERS: &str = "ab:ru:";

/// Rotates a family's secret if the one presented is current; ends the family if it is not.
///
/// A retry is not a replay: the secret a rotation replaced stays good until `ARGV[3]`
/// milliseconds after that rotation (the reuse interval), so a client whose refresh reached
/// Redis but whose answer it never got (a store timeout, a dropped connection) retries with the
/// same token and gets a working one. Answering it rotates again, to a new secret (the one the
/// lost answer carried is never delivered and dies); the replaced secret's deadline is not
/// extended, so a replay after the interval, or of any older secret, still ends the family. A
/// thief who replays the replaced secret inside the interval gets a pair, but the victim's
/// next refresh then presents a secret that is neither current nor just replaced, and the
/// family ends for both.
/// Time comes from Redis (`TIME`), the one clock every instance shares.
///
/// The record is `user current [previous deadline_ms]`; records written before the interval
/// existed (and seeded ones) have no previous secret.
/// KEYS: the family; ARGV: digest of the presented secret, digest of the new one, the reuse
/// interval in ms. Returns `{1, user}` rotated, `{3, user}` a retry within the interval
/// answered, `{2, user}` reuse detected (family ended), `{0, ''}` no family.
const ROTATE: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return {0, ''} end
local fields = {}
for f in string.gmatch(v, '%S+') do fields[#fields + 1] = f end
local user, current, previous, deadline = fields[1], fields[2], fields[3], tonumber(fields[4] or '0')
if not current then return {0, ''} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == current then
  redis.call('SET', KEYS[1], user .. ' ' .. ARGV[2] .. ' ' .. current .. ' ' .. (now + tonumber(ARGV[3])), 'KEEPTTL')
  return {1, user}
end
if previous and ARGV[1] == previous and now <= deadline then
  redis.call('SET', KEYS[1], user .. ' ' .. ARGV[2] .. ' ' .. previous .. ' ' .. deadline, 'KEEPTTL')
  return {3, user}
end
redis.call('DEL', KEYS[1])
return {2, user}
";
static ROTATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ROTATE));

/// SHA-256 of `text`, base64url without padding: how families and secrets are stored.
pub(crate) fn digest(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()))
}

/// The value of a family's key: its user and the digest of the one secret valid now.
pub(crate) fn family_record(username: &str, secret: &str) -> String {
    format!("{username} {}", digest(secret))
}

/// Claims of an access token issued now to `username` in the family with digest `family`.
pub(crate) fn access_claims(
    username: &str,
    roles: &[String],
    ttl: Duration,
    family: &str,
    pad: Option<&String>,
) -> Result<AccessClaims, AuthError> {
    let mut claims = new_claims(username, roles, ttl, now_secs(), pad)?;
    claims.fam = Some(family.to_owned());
    Ok(claims)
}

/// Splits `<family>.<secret>`, accepting nothing else.
fn parse(token: &str) -> Option<(&str, &str)> {
    let (family, secret) = token.split_once('.')?;
    (is_opaque_id(family) && is_opaque_id(secret)).then_some((family, secret))
}

/// A family digest as carried in the access token (the shape of [`digest`]'s output).
fn is_family_digest(s: &str) -> bool {
    is_opaque_id(s)
}

/// What `refresh` is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshSettings {
    /// Lifetime of an access token: how long a revoked user keeps access at most.
    pub access_ttl: Duration,
    /// Lifetime of a refresh-token family from its login.
    pub refresh_ttl: Duration,
    /// Live families kept per user (a login beyond it ends the oldest); `Some(1)` is the
    /// single-device policy.
    pub max_sessions_per_user: Option<u32>,
    /// Extra claim bytes per access token (0: none).
    pub claims_padding: usize,
    /// How long the secret a rotation replaced still answers one retry.
    pub reuse_interval: Duration,
}

#[derive(Debug)]
pub struct RefreshStrategy {
    keys: Arc<JwtKeys>,
    store: RedisStore,
    families: TokenIndex,
    single_device: bool,
    ttl: Duration,
    refresh_ttl: Duration,
    reuse_interval: Duration,
    pad: Option<String>,
}

impl RefreshStrategy {
    pub fn new(settings: RefreshSettings, keys: Arc<JwtKeys>, store: RedisStore) -> Self {
        Self {
            keys,
            store,
            families: TokenIndex::new(FAMILIES, FAMILY_USERS, settings.max_sessions_per_user),
            single_device: settings.max_sessions_per_user == Some(1),
            ttl: settings.access_ttl,
            refresh_ttl: settings.refresh_ttl,
            reuse_interval: settings.reuse_interval,
            pad: padding(settings.claims_padding),
        }
    }

    /// An access token for `username` in the family with digest `family`.
    fn access_token(&self, username: &str, roles: &[String], family: &str) -> Result<String, AuthError> {
        let claims = access_claims(username, roles, self.ttl, family, self.pad.as_ref())?;
        Ok(self.keys.sign(&claims)?)
    }

    fn internal(e: impl std::fmt::Display) -> AuthError {
        AuthError::Internal(e.to_string())
    }
}

impl AuthStrategy for RefreshStrategy {
    fn capabilities(&self) -> Capabilities {
        // Requests never touch Redis; a login or refresh without it answers 503 (fails closed).
        Capabilities::new("refresh", Some(&self.store))
            .revocation(RevocationSupport { refresh: true, ..RevocationSupport::all(self.single_device) }, "access_ttl")
            .access_ttl(self.ttl)
            .jwt_alg(&self.keys)
            .refresh_ttl(self.refresh_ttl)
            .refresh_reuse_interval(self.reuse_interval)
    }

    async fn issue(&self, username: &str, roles: &Arc<[String]>, _device: Option<&str>) -> Result<Issued, AuthError> {
        let family = new_opaque_id().map_err(Self::internal)?;
        let secret = new_opaque_id().map_err(Self::internal)?;
        let family_digest = digest(&family);
        let record = family_record(username, &secret);
        self.families.insert(&self.store, username, &family_digest, &record, self.refresh_ttl).await?;
        Ok(Issued {
            access_token: self.access_token(username, roles, &family_digest)?,
            expires_in: self.ttl.as_secs(),
            refresh_token: Some(format!("{family}.{secret}")),
        })
    }

    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.keys.verify(token)?;
        let Some(family) = claims.fam.clone().filter(|f| is_family_digest(f)) else {
            return Err(TokenRejection::MissingClaim.into());
        };
        Ok(Principal {
            sub: claims.sub,
            roles: Arc::from(claims.roles),
            token_id: family,
            exp: claims.exp,
            refreshed: None,
        })
    }

    async fn refresh(&self, refresh_token: &str, users: &UserDirectory) -> Result<Issued, AuthError> {
        let (family, secret) = parse(refresh_token).ok_or(TokenRejection::Malformed)?;
        let family_digest = digest(family);
        let next = new_opaque_id().map_err(Self::internal)?;
        let mut script = ROTATE_SCRIPT.prepare_invoke();
        script
            .key(self.families.record_key(&family_digest))
            .arg(digest(secret))
            .arg(digest(&next))
            .arg(u64::try_from(self.reuse_interval.as_millis()).unwrap_or(u64::MAX));
        let (outcome, username): (u8, String) = self.store.script(&script).await?;
        match outcome {
            1 | 3 => {
                if outcome == 3 {
                    tracing::info!(user = %username, "refresh retried within the reuse interval: answered");
                }
                // The user may have been removed or given new roles since the login.
                let roles = users.roles(&username).ok_or(TokenRejection::Revoked)?;
                Ok(Issued {
                    access_token: self.access_token(&username, &roles, &family_digest)?,
                    expires_in: self.ttl.as_secs(),
                    refresh_token: Some(format!("{family}.{next}")),
                })
            }
            2 => {
                tracing::warn!(user = %username, "refresh token reused: its family is ended");
                self.families.remove(&self.store, &username, &family_digest).await?;
                Err(TokenRejection::Revoked.into())
            }
            _ => Err(TokenRejection::Revoked.into()),
        }
    }

    async fn logout(&self, principal: &Principal) -> Result<(), AuthError> {
        Ok(self.families.remove(&self.store, &principal.sub, &principal.token_id).await?)
    }

    async fn revoke_user(&self, username: &str, _kind: UserRevocation) -> Result<(), AuthError> {
        Ok(self.families.clear_user(&self.store, username).await?)
    }

    async fn roles_changed(&self, _username: &str, _roles: &Arc<[String]>) -> Result<(), AuthError> {
        // Roles travel in the access token, and every refresh reads them afresh from the
        // directory: the change takes effect at the next refresh, without a new login.
        Ok(())
    }

    async fn revoke_all(&self) -> Result<(), AuthError> {
        Ok(self.families.clear_all(&self.store).await?)
    }

    async fn health(&self) -> Result<(), AuthError> {
        Ok(self.store.ping().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_two_opaque_ids_parse() {
        let a = new_opaque_id().unwrap();
        let b = new_opaque_id().unwrap();
        assert_eq!(parse(&format!("{a}.{b}")), Some((a.as_str(), b.as_str())));
        assert_eq!(parse(&a), None);
        assert_eq!(parse(&format!("{a}.{b}.{a}")), None);
        assert_eq!(parse(&format!("{a}.*")), None);
        assert_eq!(parse(""), None);
        // A digest has the shape of an id, so it can be a key suffix.
        assert!(is_family_digest(&digest(&a)));
    }
}
