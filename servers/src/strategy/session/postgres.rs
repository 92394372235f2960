//! `session`'s records in PostgreSQL: one row per session in `ab_sessions`, keyed by the session
//! id, with the user, the same JSON record Redis holds (as `jsonb`) and an `expires_at`.
//!
//! PostgreSQL has no TTL, so expiry is twofold: every read asks for `expires_at > now` (the
//! server's clock, the one that set `exp`), so an expired row is never honoured, and a purge task
//! deletes expired rows in bounded batches so the table does not grow without end.
//!
//! Every operation is one statement, so the revocation contract of [`AuthStrategy`] holds by
//! what a statement sees: a login's `INSERT` has committed when `issue` returns; a revocation's
//! `DELETE ... WHERE username = $1` (or a role change's `UPDATE`) runs on a snapshot taken after
//! it began, so it finds every row whose login returned before. The per-user limit trims after
//! the insert (`DELETE` of the user's rows beyond the newest N by insertion order): of two
//! concurrent logins, the later trim runs after both inserts and keeps only the newest.
//!
//! [`AuthStrategy`]: crate::strategy::AuthStrategy

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_postgres::types::Json;

use super::SessionRecord;
use crate::pg_store::{PgStore, PgTable};
use crate::store::StoreError;

/// The table, and the persistence it must have.
pub(crate) const TABLE: &str = "ab_sessions";

/// Rows one purge statement deletes at most: a bounded lock and WAL burst per statement.
const PURGE_BATCH: i64 = 10_000;

/// Creates the table if missing and refuses one that exists with the other persistence.
pub(crate) fn schema(table: PgTable) -> String {
    let (unlogged, persistence) = match table {
        PgTable::Logged => ("", 'p'),
        PgTable::Unlogged => ("UNLOGGED ", 'u'),
    };
    let other = match table {
        PgTable::Logged => "an UNLOGGED",
        PgTable::Unlogged => "a logged",
    };
    format!(
        "SET client_min_messages = warning;
         CREATE {unlogged}TABLE IF NOT EXISTS {TABLE} (
             id text PRIMARY KEY,
             username text NOT NULL,
             record jsonb NOT NULL,
             expires_at timestamptz NOT NULL,
             seq bigserial NOT NULL
         );
         CREATE INDEX IF NOT EXISTS {TABLE}_username ON {TABLE} (username);
         CREATE INDEX IF NOT EXISTS {TABLE}_expires_at ON {TABLE} (expires_at);
         DO $$ BEGIN
             IF (SELECT relpersistence FROM pg_class WHERE oid = '{TABLE}'::regclass) <> '{persistence}' THEN
                 RAISE EXCEPTION 'table {TABLE} exists as {other} table: drop it or use a fresh database';
             END IF;
         END $$;"
    )
}

/// The sessions table behind a [`PgStore`].
#[derive(Debug, Clone)]
pub(crate) struct PgSessions {
    store: PgStore,
    /// Live sessions kept per user.
    max_per_user: Option<u32>,
}

impl PgSessions {
    pub(crate) fn new(store: PgStore, max_per_user: Option<u32>, ttl: Duration) -> Self {
        let sessions = Self { store, max_per_user };
        sessions.spawn_purge(purge_interval(ttl));
        sessions
    }

    pub(crate) fn store(&self) -> &PgStore {
        &self.store
    }

    /// Stores a session, then with a per-user limit ends the user's oldest beyond it.
    pub(crate) async fn insert(
        &self,
        id: &str,
        record: &SessionRecord,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO ab_sessions (id, username, record, expires_at) VALUES ($1, $2, $3, $4)";
        self.store.execute(sql, &[&id, &record.sub, &Json(record), &expires_at]).await?;
        if let Some(max) = self.max_per_user {
            let sql = "DELETE FROM ab_sessions WHERE id IN \
                       (SELECT id FROM ab_sessions WHERE username = $1 ORDER BY seq DESC OFFSET $2)";
            self.store.execute(sql, &[&record.sub, &i64::from(max)]).await?;
        }
        Ok(())
    }

    /// The live record of session `id`, if any.
    pub(crate) async fn get(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let sql = "SELECT record FROM ab_sessions WHERE id = $1 AND expires_at > $2";
        let rows = self.store.query(sql, &[&id, &SystemTime::now()]).await?;
        Ok(match rows.first() {
            Some(row) => match row.try_get::<_, Json<SessionRecord>>(0) {
                Ok(Json(record)) => Some(record),
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable session record");
                    None
                }
            },
            None => None,
        })
    }

    /// Ends one session of `username`.
    pub(crate) async fn remove(&self, username: &str, id: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM ab_sessions WHERE id = $1 AND username = $2";
        self.store.execute(sql, &[&id, &username]).await.map(drop)
    }

    /// Ends every session of `username`.
    pub(crate) async fn clear_user(&self, username: &str) -> Result<(), StoreError> {
        self.store.execute("DELETE FROM ab_sessions WHERE username = $1", &[&username]).await.map(drop)
    }

    /// Rewrites the roles of every live session of `username`.
    pub(crate) async fn set_roles(&self, username: &str, roles: &Arc<[String]>) -> Result<(), StoreError> {
        let sql = "UPDATE ab_sessions SET record = jsonb_set(record, '{roles}', $2) \
                   WHERE username = $1 AND expires_at > $3";
        let roles: &[String] = roles;
        self.store.execute(sql, &[&username, &Json(roles), &SystemTime::now()]).await.map(drop)
    }

    /// Ends every session.
    pub(crate) async fn clear_all(&self) -> Result<(), StoreError> {
        self.store.execute("DELETE FROM ab_sessions", &[]).await.map(drop)
    }

    /// Deletes expired rows, a batch per statement, until a batch comes back short.
    pub(crate) async fn purge_expired(&self) -> Result<u64, StoreError> {
        let sql = "DELETE FROM ab_sessions WHERE id IN \
                   (SELECT id FROM ab_sessions WHERE expires_at <= $1 LIMIT $2)";
        let mut purged = 0;
        loop {
            let n = self.store.execute(sql, &[&SystemTime::now(), &PURGE_BATCH]).await?;
            purged += n;
            if n < PURGE_BATCH as u64 {
                return Ok(purged);
            }
        }
    }

    /// Purges every `interval` for as long as the runtime runs; a failed purge (the store is
    /// down) is tried again at the next tick.
    fn spawn_purge(&self, interval: Duration) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let sessions = self.clone();
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match sessions.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(rows = n, "purged expired sessions"),
                    Err(e) => tracing::debug!(error = %e, "purge of expired sessions failed"),
                }
            }
        });
    }
}

/// Half the session lifetime, between 1 s and a minute: an expired row lives at most that much
/// longer, and a short lifetime does not leave the table full of dead rows.
fn purge_interval(ttl: Duration) -> Duration {
    (ttl / 2).clamp(Duration::from_secs(1), Duration::from_secs(60))
}
