//! Fills Redis directly, in exactly the layout the strategies write at login, so the scale
//! scenario can hold 10^6 sessions or jti entries without 10^6 logins (argon2 alone would take
//! hours). Writes go in pipelines; the key prefixes and record formats are the strategies' own.

use std::time::Duration;

use redis::aio::ConnectionLike;

use super::{hybrid, session};
use crate::jwt::{AccessClaims, JwtKeys, now_secs};
use crate::token::{new_jti, new_opaque_id};

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
    let exp_ms = now * 1000 + ttl_ms;
    let mut picked = Vec::new();
    write_batched(conn, count, |i, pipe| {
        let id = new_opaque_id().map_err(err)?;
        let user = format!("user{}", i as u64 % u64::from(users.max(1)));
        let record = session::record_json(&user, &roles(), now, now + ttl.as_secs()).map_err(err)?;
        pipe.cmd("SET").arg(format!("{}{id}", session::RECORDS)).arg(record).arg("PX").arg(ttl_ms).ignore();
        pipe.cmd("ZADD").arg(format!("{}{user}", session::USERS)).arg(exp_ms).arg(&id).ignore();
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
    let exp_ms = now_secs() * 1000 + ttl_ms;
    let mut tokens = Vec::new();
    write_batched(conn, count, |i, pipe| {
        let user = format!("user{}", i as u64 % u64::from(users.max(1)));
        let jti = new_jti().map_err(err)?;
        pipe.cmd("SET").arg(format!("{}{jti}", hybrid::LIVE)).arg(&user).arg("PX").arg(ttl_ms).ignore();
        pipe.cmd("ZADD").arg(format!("{}{user}", hybrid::LIVE_USERS)).arg(exp_ms).arg(&jti).ignore();
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
    let mut tokens = Vec::with_capacity(sample);
    for i in 0..sample {
        let user = format!("user{}", i as u64 % u64::from(users.max(1)));
        let claims = AccessClaims::new(&user, &roles(), ttl, now_secs()).map_err(err)?;
        tokens.push(keys.sign(&claims).map_err(err)?);
    }
    Ok(tokens)
}
