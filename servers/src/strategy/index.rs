//! Live-token records in Redis with a per-user index, shared by `session` (the record is the
//! session) and the hybrid allowlist (the record is a live jti).
//!
//! Layout: `{records}{id}` holds the record with a TTL, so Redis expires it by itself;
//! `{users}{username}` is a sorted set of the user's ids scored by expiry in milliseconds,
//! which makes "every token of this user" one read, and "the oldest sessions beyond N" a range.
//! Ids are checked for shape before they get here; the only patterns ever used (in
//! [`TokenIndex::clear_all`]) are this module's own prefixes.
//!
//! A record and its user's index are in different hash slots (the request path has the id
//! alone, and spreading records over a cluster is the point of one), so no command or pipeline
//! here spans both: record and index are written by separate commands sent together. A login
//! racing with a logout-all may therefore survive it, which is also what happens when the
//! login lands just after; a failure between the two leaves at worst an index entry whose
//! record is gone, which every reader already ignores.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{Cmd, pipe};

use crate::store::{RedisStore, StoreError};

/// One index: record and per-user key prefixes and the per-user limit.
#[derive(Debug, Clone)]
pub(crate) struct TokenIndex {
    records: &'static str,
    users: &'static str,
    /// Live tokens kept per user; a login beyond it ends the oldest (single-device when 1).
    max_per_user: Option<u32>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl TokenIndex {
    pub(crate) fn new(records: &'static str, users: &'static str, max_per_user: Option<u32>) -> Self {
        Self { records, users, max_per_user }
    }

    pub(crate) fn max_per_user(&self) -> Option<u32> {
        self.max_per_user
    }

    pub(crate) fn record_key(&self, id: &str) -> String {
        format!("{}{id}", self.records)
    }

    pub(crate) fn user_key(&self, username: &str) -> String {
        format!("{}{username}", self.users)
    }

    /// Stores a record for `ttl` and indexes it under the user; then, with a per-user limit,
    /// ends the user's oldest tokens beyond it. One round trip, two when something is ended.
    pub(crate) async fn insert(
        &self,
        store: &RedisStore,
        username: &str,
        id: &str,
        record: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let ttl_ms = ttl.as_millis() as u64;
        let user_key = self.user_key(username);
        let set = redis::cmd("SET").arg(self.record_key(id)).arg(record).arg("PX").arg(ttl_ms).to_owned();
        let mut p = pipe();
        p.atomic()
            .cmd("ZADD")
            .arg(&user_key)
            .arg(now + ttl_ms)
            .arg(id)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&user_key)
            .arg("-inf")
            .arg(now)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&user_key)
            .arg(ttl_ms)
            .ignore();
        let Some(max) = self.max_per_user else {
            tokio::try_join!(store.cmd::<()>(&set), store.pipe::<()>(&p, 5))?;
            return Ok(());
        };
        // Everything but the newest `max` members, oldest first.
        p.cmd("ZRANGE").arg(&user_key).arg(0).arg(-(i64::from(max)) - 1);
        let ((), (older,)): ((), (Vec<String>,)) = tokio::try_join!(store.cmd(&set), store.pipe(&p, 6))?;
        if older.is_empty() {
            return Ok(());
        }
        let zrem = redis::cmd("ZREM").arg(&user_key).arg(&older).to_owned();
        store.all::<()>(&[self.unlink_records(&older), zrem]).await?;
        Ok(())
    }

    /// Removes one record and its index entry.
    pub(crate) async fn remove(&self, store: &RedisStore, username: &str, id: &str) -> Result<(), StoreError> {
        let unlink = redis::cmd("UNLINK").arg(self.record_key(id)).to_owned();
        let zrem = redis::cmd("ZREM").arg(self.user_key(username)).arg(id).to_owned();
        store.all::<()>(&[unlink, zrem]).await?;
        Ok(())
    }

    /// The ids the user holds now (expired index entries excluded).
    pub(crate) async fn ids_of(&self, store: &RedisStore, username: &str) -> Result<Vec<String>, StoreError> {
        let cmd = redis::cmd("ZRANGE").arg(self.user_key(username)).arg(now_ms()).arg("+inf").arg("BYSCORE").to_owned();
        store.cmd(&cmd).await
    }

    /// Ends every token of a user: takes and deletes the index atomically (a login racing with
    /// this lands in a fresh index and survives, as it should), then deletes the records.
    pub(crate) async fn clear_user(&self, store: &RedisStore, username: &str) -> Result<(), StoreError> {
        let user_key = self.user_key(username);
        let mut p = pipe();
        p.atomic().cmd("ZRANGE").arg(&user_key).arg(0).arg(-1).cmd("DEL").arg(&user_key).ignore();
        let (ids,): (Vec<String>,) = store.pipe(&p, 4).await?;
        if ids.is_empty() {
            return Ok(());
        }
        // One UNLINK of many keys; on a cluster the client splits it by slot.
        store.cmd::<()>(&self.unlink_records(&ids)).await
    }

    /// Ends every token of every user by walking this index's own key prefixes.
    pub(crate) async fn clear_all(&self, store: &RedisStore) -> Result<(), StoreError> {
        for prefix in [self.records, self.users] {
            store.unlink_matching(&format!("{prefix}*")).await?;
        }
        Ok(())
    }

    fn unlink_records(&self, ids: &[String]) -> Cmd {
        let keys: Vec<String> = ids.iter().map(|id| self.record_key(id)).collect();
        redis::cmd("UNLINK").arg(keys).to_owned()
    }
}
