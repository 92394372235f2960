//! `session`: the client holds an opaque random id; every request costs one Redis `GET`.
//! Revocation is deleting the key, so it takes effect at once; claims (roles) live in the
//! record, so a role change is visible on the next request.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::index::TokenIndex;
use super::{AuthStrategy, Capabilities, Issued, Principal, RevocationSupport, UserRevocation};
use crate::error::AuthError;
use crate::jwt::now_secs;
use crate::store::RedisStore;
use crate::token::{TokenRejection, is_opaque_id, new_opaque_id};

/// What Redis holds for one session.
#[derive(Debug, Serialize, Deserialize)]
struct SessionRecord {
    sub: String,
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<String>,
    iat: u64,
    exp: u64,
    /// Filler of `--claims-padding` bytes: the session's claims grow in Redis, not on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pad: Option<String>,
}

/// Key prefix of a session record.
pub(crate) const RECORDS: &str = "ab:s:";
/// Key prefix of a user's session index.
pub(crate) const USERS: &str = "ab:su:";

/// The record a login stores, as JSON (the seeding of the scale scenario writes the same).
pub(crate) fn record_json(sub: &str, roles: &[String], iat: u64, exp: u64) -> Result<String, serde_json::Error> {
    serde_json::to_string(&SessionRecord {
        sub: sub.to_owned(),
        roles: roles.to_vec(),
        device: None,
        iat,
        exp,
        pad: None,
    })
}

/// Longest device label stored with a session.
const MAX_DEVICE_BYTES: usize = 128;

/// What `session` is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// Lifetime of a session.
    pub access_ttl: Duration,
    /// Live sessions kept per user (a login beyond it ends the oldest); `Some(1)` is the
    /// single-device policy, `None` no limit.
    pub max_sessions_per_user: Option<u32>,
    /// Extra claim bytes per session record (0: none): they grow Redis, not the wire.
    pub claims_padding: usize,
}

#[derive(Debug)]
pub struct SessionStrategy {
    store: RedisStore,
    index: TokenIndex,
    ttl: Duration,
    pad: Option<String>,
}

impl SessionStrategy {
    pub fn new(settings: SessionSettings, store: RedisStore) -> Self {
        Self {
            store,
            index: TokenIndex::new(RECORDS, USERS, settings.max_sessions_per_user),
            ttl: settings.access_ttl,
            pad: super::jwt::padding(settings.claims_padding),
        }
    }
}

impl AuthStrategy for SessionStrategy {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new("session", Some(&self.store))
            .revocation(RevocationSupport::all(self.index.max_per_user() == Some(1)), "immediate")
            .access_ttl(self.ttl)
    }

    async fn issue(&self, username: &str, roles: &Arc<[String]>, device: Option<&str>) -> Result<Issued, AuthError> {
        let id = new_opaque_id().map_err(|e| AuthError::Internal(e.to_string()))?;
        let iat = now_secs();
        let record = SessionRecord {
            sub: username.to_owned(),
            roles: roles.to_vec(),
            device: device.map(|d| d.chars().take(MAX_DEVICE_BYTES).collect()),
            iat,
            exp: iat + self.ttl.as_secs(),
            pad: self.pad.clone(),
        };
        let json = serde_json::to_string(&record).map_err(|e| AuthError::Internal(e.to_string()))?;
        self.index.insert(&self.store, username, &id, &json, self.ttl).await?;
        Ok(Issued { access_token: id, expires_in: self.ttl.as_secs(), refresh_token: None })
    }

    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        if !is_opaque_id(token) {
            return Err(TokenRejection::Malformed.into());
        }
        let record: Option<String> = self.store.cmd(redis::cmd("GET").arg(self.index.record_key(token))).await?;
        let record = record.ok_or(TokenRejection::Revoked)?;
        let record: SessionRecord = serde_json::from_str(&record).map_err(|e| {
            tracing::warn!(error = %e, "unreadable session record");
            TokenRejection::Revoked
        })?;
        Ok(Principal {
            sub: record.sub,
            roles: Arc::from(record.roles),
            token_id: token.to_owned(),
            exp: record.exp,
            refreshed: None,
        })
    }

    async fn logout(&self, principal: &Principal) -> Result<(), AuthError> {
        Ok(self.index.remove(&self.store, &principal.sub, &principal.token_id).await?)
    }

    async fn revoke_user(&self, username: &str, _kind: UserRevocation) -> Result<(), AuthError> {
        Ok(self.index.clear_user(&self.store, username).await?)
    }

    async fn roles_changed(&self, username: &str, roles: &Arc<[String]>) -> Result<(), AuthError> {
        // Rewrite each live record in place; KEEPTTL leaves its expiry alone and XX skips a
        // session that ended in between.
        let ids = self.index.ids_of(&self.store, username).await?;
        if ids.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.index.record_key(id)).collect();
        let values: Vec<Option<String>> = self.store.cmd(redis::cmd("MGET").arg(&keys)).await?;
        let mut rewrites = Vec::with_capacity(keys.len());
        for (key, value) in keys.iter().zip(values) {
            let Some(mut record) = value.and_then(|v| serde_json::from_str::<SessionRecord>(&v).ok()) else {
                continue;
            };
            record.roles = roles.to_vec();
            let json = serde_json::to_string(&record).map_err(|e| AuthError::Internal(e.to_string()))?;
            rewrites.push(redis::cmd("SET").arg(key).arg(json).arg("XX").arg("KEEPTTL").to_owned());
        }
        // One command per record: the records are spread over a cluster's slots.
        self.store.all::<()>(&rewrites).await?;
        Ok(())
    }

    async fn revoke_all(&self) -> Result<(), AuthError> {
        Ok(self.index.clear_all(&self.store).await?)
    }

    async fn health(&self) -> Result<(), AuthError> {
        Ok(self.store.ping().await?)
    }
}
