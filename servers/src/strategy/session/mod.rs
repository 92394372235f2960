//! `session`: the client holds an opaque random id; every request costs one store lookup, a
//! Redis `GET` or a PostgreSQL `SELECT` by primary key (`postgres`). Revocation is deleting the
//! record, so it takes effect at once; claims (roles) live in the record, so a role change is
//! visible on the next request.

mod postgres;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::index::TokenIndex;
use super::{AuthStrategy, Capabilities, Issued, Principal, RevocationSupport, UserRevocation};
use crate::error::AuthError;
use crate::jwt::now_secs;
use crate::pg_store::PgStore;
use crate::store::RedisStore;
use crate::token::{TokenRejection, is_opaque_id, new_opaque_id};

use postgres::PgSessions;
pub(crate) use postgres::TABLE as PG_TABLE;

/// What the store holds for one session.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
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

/// Where the sessions are kept.
#[derive(Debug)]
enum Records {
    /// A key per session with a TTL, indexed per user (see `index`).
    Redis { store: RedisStore, index: TokenIndex },
    /// A row per session (see `postgres`).
    Postgres(PgSessions),
}

#[derive(Debug)]
pub struct SessionStrategy {
    records: Records,
    max_per_user: Option<u32>,
    ttl: Duration,
    pad: Option<String>,
}

impl SessionStrategy {
    /// Sessions in Redis.
    pub fn new(settings: SessionSettings, store: RedisStore) -> Self {
        let index = TokenIndex::new(RECORDS, USERS, settings.max_sessions_per_user);
        Self::with(settings, Records::Redis { store, index })
    }

    /// Sessions in PostgreSQL, on a store connected with [`SessionStrategy::pg_schema`]. Starts
    /// the purge of expired rows on the current runtime.
    pub fn postgres(settings: SessionSettings, store: PgStore) -> Self {
        let sessions = PgSessions::new(store, settings.max_sessions_per_user, settings.access_ttl);
        Self::with(settings, Records::Postgres(sessions))
    }

    /// The statements that create the sessions table of `table`'s persistence.
    pub fn pg_schema(table: crate::pg_store::PgTable) -> String {
        postgres::schema(table)
    }

    fn with(settings: SessionSettings, records: Records) -> Self {
        Self {
            records,
            max_per_user: settings.max_sessions_per_user,
            ttl: settings.access_ttl,
            pad: super::jwt::padding(settings.claims_padding),
        }
    }
}

impl AuthStrategy for SessionStrategy {
    fn capabilities(&self) -> Capabilities {
        let base = match &self.records {
            Records::Redis { store, .. } => Capabilities::new("session", Some(store)),
            Records::Postgres(sessions) => {
                Capabilities::new("session", None).postgres(sessions.store().table(), sessions.store().pool_size())
            }
        };
        base.revocation(RevocationSupport::all(self.max_per_user == Some(1)), "immediate").access_ttl(self.ttl)
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
        match &self.records {
            Records::Redis { store, index } => {
                let json = serde_json::to_string(&record).map_err(|e| AuthError::Internal(e.to_string()))?;
                index.insert(store, username, &id, &json, self.ttl).await?;
            }
            Records::Postgres(sessions) => {
                sessions.insert(&id, &record, UNIX_EPOCH + Duration::from_secs(record.exp)).await?;
            }
        }
        Ok(Issued { access_token: id, expires_in: self.ttl.as_secs(), refresh_token: None })
    }

    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        if !is_opaque_id(token) {
            return Err(TokenRejection::Malformed.into());
        }
        let record = match &self.records {
            Records::Redis { store, index } => {
                let record: Option<String> = store.cmd(redis::cmd("GET").arg(index.record_key(token))).await?;
                let record = record.ok_or(TokenRejection::Revoked)?;
                serde_json::from_str(&record).map_err(|e| {
                    tracing::warn!(error = %e, "unreadable session record");
                    TokenRejection::Revoked
                })?
            }
            Records::Postgres(sessions) => sessions.get(token).await?.ok_or(TokenRejection::Revoked)?,
        };
        Ok(Principal {
            sub: record.sub,
            roles: Arc::from(record.roles),
            token_id: token.to_owned(),
            exp: record.exp,
            refreshed: None,
        })
    }

    async fn logout(&self, principal: &Principal) -> Result<(), AuthError> {
        match &self.records {
            Records::Redis { store, index } => index.remove(store, &principal.sub, &principal.token_id).await?,
            Records::Postgres(sessions) => sessions.remove(&principal.sub, &principal.token_id).await?,
        }
        Ok(())
    }

    async fn revoke_user(&self, username: &str, _kind: UserRevocation) -> Result<(), AuthError> {
        match &self.records {
            Records::Redis { store, index } => index.clear_user(store, username).await?,
            Records::Postgres(sessions) => sessions.clear_user(username).await?,
        }
        Ok(())
    }

    async fn roles_changed(&self, username: &str, roles: &Arc<[String]>) -> Result<(), AuthError> {
        let (store, index) = match &self.records {
            Records::Redis { store, index } => (store, index),
            Records::Postgres(sessions) => return Ok(sessions.set_roles(username, roles).await?),
        };
        // Rewrite each live record in place; KEEPTTL leaves its expiry alone and XX skips a
        // session that ended in between.
        let ids = index.ids_of(store, username).await?;
        if ids.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = ids.iter().map(|id| index.record_key(id)).collect();
        let values: Vec<Option<String>> = store.cmd(redis::cmd("MGET").arg(&keys)).await?;
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
        store.all::<()>(&rewrites).await?;
        Ok(())
    }

    async fn revoke_all(&self) -> Result<(), AuthError> {
        match &self.records {
            Records::Redis { store, index } => index.clear_all(store).await?,
            Records::Postgres(sessions) => sessions.clear_all().await?,
        }
        Ok(())
    }

    async fn health(&self) -> Result<(), AuthError> {
        match &self.records {
            Records::Redis { store, .. } => store.ping().await?,
            Records::Postgres(sessions) => sessions.store().ping().await?,
        }
        Ok(())
    }
}
