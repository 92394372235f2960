//! Live-token records in Redis with a per-user index, shared by `session` (the record is the
//! session), the hybrid allowlist (the record is a live jti) and `refresh` (the record is a
//! refresh-token family).
//!
//! Layout: `{records}{id}` holds the record with a TTL, so Redis expires it by itself;
//! `{users}{username}` is a sorted set of the user's ids scored by expiry in milliseconds,
//! which makes "every token of this user" one read, and "the oldest sessions beyond N" a range.
//! Ids are checked for shape before they get here; the only patterns ever used (in
//! [`TokenIndex::clear_all`]) are this module's own prefixes.
//!
//! The invariant every revocation relies on: a record that lives is named by its user's index,
//! so that [`TokenIndex::clear_user`] (logout-all, password change, ban, role change) finds it.
//! Writes keep it as follows.
//! - On one Redis, a login writes the record and its index entry in one `MULTI`/`EXEC`, and an
//!   end of tokens unlinks records and index entries in another: no command of another client
//!   (whatever connection of a pool it comes on) runs between them.
//! - On a Redis Cluster the record and its user's index hash to different slots, and no
//!   transaction spans two slots. Giving a user's records the index's hash tag would put them
//!   in one slot, but the request path has the token alone (a session id, a refresh family) and
//!   could not name the key, and it would pile a user's records onto one node. So the order of
//!   the writes carries the invariant instead: a login writes the record, waits for Redis to
//!   confirm it, and only then indexes it; an end of tokens unlinks the records, waits, and only
//!   then drops their index entries. `clear_user` reads the index, then ends what it named the
//!   same way (records, then entries): every id it reads has its record stored already, so the
//!   unlink ends it; an id indexed after the read stays indexed for the next revocation, and
//!   its login, which answers only once the id is indexed, overlapped this revocation rather
//!   than preceding it (and within one instance is refused for it, see `users`). A failure
//!   part-way leaves every live record still indexed, so a retried revocation ends it (taking
//!   the index first, as an earlier version did, could leave live records that no revocation
//!   finds again), or leaves at worst a record that no index names and no client holds (a
//!   login that answered 503), which expires with its TTL, or an index entry whose record is
//!   gone, which every reader ignores.

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

    pub(crate) fn record_key(&self, id: &str) -> String {
        format!("{}{id}", self.records)
    }

    pub(crate) fn user_key(&self, username: &str) -> String {
        format!("{}{username}", self.users)
    }

    /// Stores a record for `ttl` and indexes it under the user (one `MULTI` on one Redis, the
    /// record first and then the index on a cluster; see the module comment); then, with a
    /// per-user limit, ends the user's oldest tokens beyond it. One round trip on one Redis,
    /// two on a cluster, and one or two more when something is ended.
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
        // The record expires at the very instant its index entry's score says (PXAT, not PX: one
        // clock for both), so that no pruning of expired entries drops the entry of a record
        // that still lives.
        let expires = now + ttl_ms;
        let set = redis::cmd("SET").arg(self.record_key(id)).arg(record).arg("PXAT").arg(expires).to_owned();
        let mut p = pipe();
        p.atomic();
        let mut commands = 3;
        if store.is_cluster() {
            store.cmd::<()>(&set).await?;
        } else {
            p.add_command(set).ignore();
            commands += 1;
        }
        p.cmd("ZADD")
            .arg(&user_key)
            .arg(expires)
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
            // MULTI and EXEC count as commands too.
            return store.pipe::<()>(&p, commands + 2).await;
        };
        // Everything but the newest `max` members, oldest first.
        p.cmd("ZRANGE").arg(&user_key).arg(0).arg(-(i64::from(max)) - 1);
        let (older,): (Vec<String>,) = store.pipe(&p, commands + 3).await?;
        if older.is_empty() {
            return Ok(());
        }
        self.end(store, username, &older).await
    }

    /// Removes one record and its index entry.
    pub(crate) async fn remove(&self, store: &RedisStore, username: &str, id: &str) -> Result<(), StoreError> {
        self.end(store, username, &[id.to_owned()]).await
    }

    /// Ends tokens of a user: unlinks their records, then drops their index entries (one
    /// `MULTI` on one Redis, one after the other on a cluster), so that no failure in between
    /// leaves a live record that no index names.
    async fn end(&self, store: &RedisStore, username: &str, ids: &[String]) -> Result<(), StoreError> {
        let unlink = self.unlink_records(ids);
        let zrem = redis::cmd("ZREM").arg(self.user_key(username)).arg(ids).to_owned();
        if store.is_cluster() {
            // One UNLINK of many keys; the cluster client splits it by slot.
            store.cmd::<()>(&unlink).await?;
            return store.cmd::<()>(&zrem).await;
        }
        let mut p = pipe();
        p.atomic().add_command(unlink).ignore().add_command(zrem).ignore();
        store.pipe::<()>(&p, 4).await
    }

    /// The ids the user holds now (expired index entries excluded).
    pub(crate) async fn ids_of(&self, store: &RedisStore, username: &str) -> Result<Vec<String>, StoreError> {
        let cmd = redis::cmd("ZRANGE").arg(self.user_key(username)).arg(now_ms()).arg("+inf").arg("BYSCORE").to_owned();
        store.cmd(&cmd).await
    }

    /// Ends every token of a user: reads the index, then ends what it names as [`end`] does,
    /// records first and index entries after. A failure part-way (a store timeout, a client
    /// gone) therefore leaves every live record still named by the index, so the retried
    /// revocation finds and ends it; taking the index first would leave live records no later
    /// revocation can find. A login that indexes its token after the read overlapped this
    /// revocation, and its own re-check refuses it (see the module comment).
    ///
    /// [`end`]: Self::end
    pub(crate) async fn clear_user(&self, store: &RedisStore, username: &str) -> Result<(), StoreError> {
        let ids: Vec<String> = store.cmd(redis::cmd("ZRANGE").arg(self.user_key(username)).arg(0).arg(-1)).await?;
        if ids.is_empty() {
            return Ok(());
        }
        self.end(store, username, &ids).await
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
