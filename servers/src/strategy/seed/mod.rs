//! Fills Redis directly, in exactly the layout the strategies write at login (or at logout and
//! revocation, for the entries that stand for revocations), so the scale scenario can hold 10^6
//! sessions, jti entries, refresh families, user versions or revocation events without 10^6
//! logins (argon2 alone would take hours). Writes go in pipelines; the key prefixes, record
//! formats and commands are the strategies' own. `session`'s PostgreSQL table is filled the
//! same way by one statement (`postgres`).

mod population;
mod postgres;

use std::time::Duration;

use redis::aio::ConnectionLike;

use super::index::TokenIndex;
use super::{hybrid, marks, pushed, refresh, session, versioned};
use crate::jwt::{AccessClaims, JwtKeys, now_secs};
use crate::token::{new_jti, new_opaque_id};

pub use population::{Credentials, Design, population};
pub use postgres::{PG_SESSIONS_TABLE, PgSeedError, PgSessionSeed, pg_sessions};

/// Commands per pipeline: large enough to amortise round trips, small enough to keep Redis
/// responsive to anything else.
const BATCH: usize = 2000;

fn roles() -> Vec<String> {
    vec!["user".to_owned()]
}

/// Whether entry `i` of `count` is one of `sample` evenly spread ones (the tokens a load
/// then draws from, across the whole keyspace).
fn sampled(i: usize, count: usize, sample: usize) -> bool {
    sample > 0 && i.is_multiple_of((count / sample).max(1))
}

/// Writes `count` entries, `add` putting entry `i`'s commands into the pipeline, one
/// pipeline of [`BATCH`] entries at a time.
async fn write_batched(
    conn: &mut impl ConnectionLike,
    count: usize,
    mut add: impl FnMut(usize, &mut redis::Pipeline) -> redis::RedisResult<()>,
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for i in 0..count {
        add(i, &mut pipe)?;
        if (i + 1).is_multiple_of(BATCH) || i + 1 == count {
            pipe.query_async::<()>(conn).await?;
            pipe = redis::pipe();
        }
    }
    Ok(())
}

fn err(e: impl std::fmt::Display) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Client, "seeding", e.to_string()))
}

/// User `i` of `users`, round robin: `user{i mod users}`.
fn user_of(i: usize, users: u32) -> String {
    format!("user{}", i as u64 % u64::from(users.max(1)))
}

/// One entry of a [`TokenIndex`] as its `insert` writes it: the record with its TTL and the
/// user's index entry scored by expiry in ms. The index's own expiry is set once per user
/// (`first` of the user's entries; every entry has the same TTL, so once is enough).
fn index_entry(
    pipe: &mut redis::Pipeline,
    index: &TokenIndex,
    (user, id, record): (&str, &str, &str),
    ttl_ms: u64,
    first: bool,
) {
    let user_key = index.user_key(user);
    pipe.cmd("SET").arg(index.record_key(id)).arg(record).arg("PX").arg(ttl_ms).ignore();
    pipe.cmd("ZADD").arg(&user_key).arg(now_secs() * 1000 + ttl_ms).arg(id).ignore();
    if first {
        pipe.cmd("PEXPIRE").arg(&user_key).arg(ttl_ms).ignore();
    }
}

/// Writes `count` sessions of users `user0..user{users-1}` (round robin) with their user
/// indexes; returns the ids of about `sample` of them, spread over the whole keyspace.
pub async fn sessions(
    conn: &mut impl ConnectionLike,
    count: usize,
    users: u32,
    ttl: Duration,
    sample: usize,
) -> redis::RedisResult<Vec<String>> {
    let now = now_secs();
    let ttl_ms = ttl.as_millis() as u64;
    let index = TokenIndex::new(session::RECORDS, session::USERS, None);
    let mut picked = Vec::new();
    write_batched(conn, count, |i, pipe| {
        let id = new_opaque_id().map_err(err)?;
        let user = user_of(i, users);
        let record = session::record_json(&user, &roles(), now, now + ttl.as_secs()).map_err(err)?;
        index_entry(pipe, &index, (&user, &id, &record), ttl_ms, i < users as usize);
        if sampled(i, count, sample) {
            picked.push(id);
        }
        Ok(())
    })
    .await?;
    Ok(picked)
}

/// Writes `count` live jtis (hybrid allowlist) with their user indexes; returns tokens signed
/// with `keys` for about `sample` of them.
pub async fn live_jtis(
    conn: &mut impl ConnectionLike,
    keys: &JwtKeys,
    count: usize,
    users: u32,
    ttl: Duration,
    sample: usize,
) -> redis::RedisResult<Vec<String>> {
    let ttl_ms = ttl.as_millis() as u64;
    let index = TokenIndex::new(hybrid::LIVE, hybrid::LIVE_USERS, None);
    let mut tokens = Vec::new();
    write_batched(conn, count, |i, pipe| {
        let user = user_of(i, users);
        let jti = new_jti().map_err(err)?;
        index_entry(pipe, &index, (&user, &jti, &user), ttl_ms, i < users as usize);
        if sampled(i, count, sample) {
            let mut claims = AccessClaims::new(&user, &roles(), ttl, now_secs()).map_err(err)?;
            claims.jti = jti;
            tokens.push(keys.sign(&claims).map_err(err)?);
        }
        Ok(())
    })
    .await?;
    Ok(tokens)
}

/// Writes `count` revoked jtis (hybrid denylist): the denylist grows with revocations, not
/// with sessions. Returns `sample` valid tokens (fresh jtis, not revoked) to load it with.
pub async fn revoked_jtis(
    conn: &mut impl ConnectionLike,
    keys: &JwtKeys,
    count: usize,
    users: u32,
    ttl: Duration,
    sample: usize,
) -> redis::RedisResult<Vec<String>> {
    let until = now_secs() + ttl.as_secs() + crate::jwt::LEEWAY_SECS + 1;
    write_batched(conn, count, |_, pipe| {
        let jti = new_jti().map_err(err)?;
        pipe.cmd("SET").arg(format!("{}{jti}", hybrid::DENIED)).arg(1).arg("EXAT").arg(until).ignore();
        Ok(())
    })
    .await?;
    // No mark is seeded, so any time of the revocation clock will do.
    let issued = redis_time_us(conn).await?;
    fresh_tokens(keys, users, ttl, issued, sample)
}

/// Redis's `TIME` in microseconds: the clock of the hybrid denylist's and `pushed`'s token
/// issue times ([`marks`]) and of `versioned`'s versions.
async fn redis_time_us(conn: &mut impl ConnectionLike) -> redis::RedisResult<u64> {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await?;
    Ok(secs * 1_000_000 + micros)
}

/// `sample` tokens of fresh jtis (revoked by nothing), for users `user0..` in turn, issued at
/// `issued_us` on the revocation clock.
fn fresh_tokens(
    keys: &JwtKeys,
    users: u32,
    ttl: Duration,
    issued_us: u64,
    sample: usize,
) -> redis::RedisResult<Vec<String>> {
    (0..sample)
        .map(|i| {
            let claims = marks::stamped_claims(&user_of(i, users), &roles(), ttl, issued_us, None).map_err(err)?;
            keys.sign(&claims).map_err(err)
        })
        .collect()
}

/// Writes `count` refresh-token families (`refresh`) of users `user0..user{users-1}` with
/// their user indexes, as a login does; returns access tokens signed with `keys` for about
/// `sample` of the families, carrying the family digest (`fam`) as `refresh` issues them.
pub async fn refresh_families(
    conn: &mut impl ConnectionLike,
    keys: &JwtKeys,
    count: usize,
    users: u32,
    ttl: Duration,
    sample: usize,
) -> redis::RedisResult<Vec<String>> {
    let ttl_ms = ttl.as_millis() as u64;
    let index = TokenIndex::new(refresh::FAMILIES, refresh::FAMILY_USERS, None);
    let mut tokens = Vec::new();
    write_batched(conn, count, |i, pipe| {
        let user = user_of(i, users);
        let family = refresh::digest(&new_opaque_id().map_err(err)?);
        let record = refresh::family_record(&user, &new_opaque_id().map_err(err)?);
        index_entry(pipe, &index, (&user, &family, &record), ttl_ms, i < users as usize);
        if sampled(i, count, sample) {
            let claims = refresh::access_claims(&user, &roles(), ttl, &family, None).map_err(err)?;
            tokens.push(keys.sign(&claims).map_err(err)?);
        }
        Ok(())
    })
    .await?;
    Ok(tokens)
}

/// Writes the token versions (`versioned`) of `count` distinct users `user0..user{count-1}`,
/// never expiring, and the global version. Returns tokens for about `sample` of the users
/// carrying their current versions, issued `age` ago: older than the server's grace, every
/// request with them reads both versions from Redis.
pub async fn user_versions(
    conn: &mut impl ConnectionLike,
    keys: &JwtKeys,
    count: usize,
    ttl: Duration,
    age: Duration,
    sample: usize,
) -> redis::RedisResult<Vec<String>> {
    // What a few revocations leave behind: the times of the last ones, on Redis's clock, a
    // few seconds before the tokens were issued; the global version from an hour before.
    let issued_us = redis_time_us(conn).await?.saturating_sub(age.as_micros() as u64);
    let version = |i: usize| issued_us.saturating_sub((1 + (i % 4) as u64) * 1_000_000);
    let global = issued_us.saturating_sub(3_600_000_000);
    redis::cmd("SET").arg(versioned::GLOBAL_VERSION).arg(global).query_async::<()>(conn).await?;
    let iat = now_secs().saturating_sub(age.as_secs());
    let mut tokens = Vec::new();
    write_batched(conn, count, |i, pipe| {
        let user = format!("user{i}");
        pipe.cmd("SET").arg(versioned::user_version_key(&user)).arg(version(i)).ignore();
        if sampled(i, count, sample) {
            let claims =
                versioned::versioned_claims(&user, &roles(), ttl, iat, (version(i), global), None).map_err(err)?;
            tokens.push(keys.sign(&claims).map_err(err)?);
        }
        Ok(())
    })
    .await?;
    Ok(tokens)
}

/// Tokens handed back by [`jti_events`].
#[derive(Debug, Clone, Default)]
pub struct JtiEventTokens {
    /// Tokens of no revocation (fresh jtis): what a load presents.
    pub valid: Vec<String>,
    /// Tokens whose jti one of the seeded events revokes.
    pub revoked: Vec<String>,
}

/// Appends `count` jti revocation events (`pushed`, as its logout appends them: the jti until
/// the token's `exp`, in the future so no server prunes them) to the revocation log. Returns
/// `sample` valid tokens, and the tokens of about `sample` of the revoked jtis.
pub async fn jti_events(
    conn: &mut impl ConnectionLike,
    keys: &JwtKeys,
    count: usize,
    users: u32,
    ttl: Duration,
    sample: usize,
) -> redis::RedisResult<JtiEventTokens> {
    let mut tokens = JtiEventTokens::default();
    let epoch = new_opaque_id().map_err(err)?;
    let retention = pushed::retention_ms(ttl);
    let issued = redis_time_us(conn).await?;
    write_batched(conn, count, |i, pipe| {
        let user = user_of(i, users);
        let claims = marks::stamped_claims(&user, &roles(), ttl, issued, None).map_err(err)?;
        pipe.add_command(pushed::jti_event_command(&claims.jti, claims.exp, retention, &epoch)).ignore();
        if sampled(i, count, sample) {
            tokens.revoked.push(keys.sign(&claims).map_err(err)?);
        }
        Ok(())
    })
    .await?;
    tokens.valid = fresh_tokens(keys, users, ttl, issued, sample)?;
    Ok(tokens)
}
