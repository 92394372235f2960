//! A population's credentials, seeded in each design's own layout: one set per user
//! (`user0..user{N-1}`), as that user's client would hold it after a login, without N logins.
//! Access tokens can be given their own issue times, so a population starts in the state a long
//! running one is in (tokens of every age, some about to expire), not with every token fresh.

use std::time::Duration;

use redis::aio::ConnectionLike;

use super::{err, fresh_tokens, index_entry, redis_time_us, roles, write_batched};
use crate::jwt::{JwtKeys, now_secs};
use crate::strategy::index::TokenIndex;
use crate::strategy::{jwt, refresh, versioned};
use crate::token::new_opaque_id;

/// The designs a population can be seeded for, by the state their logins leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    /// No token checked: every client holds the same placeholder.
    Baseline,
    Session,
    HybridAllowlist,
    HybridDenylist,
    Jwt,
    Refresh,
    Versioned,
    Pushed,
}

/// What one user's client holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub access_token: String,
    /// `refresh` only: `<family>.<secret>`.
    pub refresh_token: Option<String>,
    /// When the access token was issued, Unix seconds (its `iat`).
    pub issued_at: u64,
    /// Its lifetime from `issued_at`, seconds (the `expires_in` a login would have answered).
    pub expires_in: u64,
}

/// The token `baseline` hands out (it checks none).
const BASELINE_TOKEN: &str = "baseline";

/// Seeds `users` users' credentials for `design`: access tokens lasting `ttl` (sessions and
/// refresh families last `long_ttl`), user `i`'s access token issued at `issued_at(i)` (Unix
/// seconds, at most now) where the design lets a token's age matter (`jwt`, `refresh`,
/// `versioned`; the others are issued now).
pub async fn population(
    conn: &mut impl ConnectionLike,
    keys: &JwtKeys,
    design: Design,
    users: u32,
    (ttl, long_ttl): (Duration, Duration),
    issued_at: &dyn Fn(usize) -> u64,
) -> redis::RedisResult<Vec<Credentials>> {
    let n = users as usize;
    let now = now_secs();
    let held = |username: String, access_token: String, issued: u64, lifetime: Duration| Credentials {
        username,
        access_token,
        refresh_token: None,
        issued_at: issued,
        expires_in: lifetime.as_secs(),
    };
    let user = |i: usize| format!("user{i}");
    let tokens = match design {
        Design::Baseline => (0..n).map(|i| held(user(i), BASELINE_TOKEN.into(), now, long_ttl)).collect(),
        Design::Session => {
            let ids = super::sessions(conn, n, users, long_ttl, n).await?;
            ids.into_iter().enumerate().map(|(i, id)| held(user(i), id, now, long_ttl)).collect()
        }
        Design::HybridAllowlist => {
            let tokens = super::live_jtis(conn, keys, n, users, ttl, n).await?;
            tokens.into_iter().enumerate().map(|(i, t)| held(user(i), t, now, ttl)).collect()
        }
        Design::HybridDenylist | Design::Pushed => {
            let issued = redis_time_us(conn).await?;
            let tokens = fresh_tokens(keys, users, ttl, issued, n)?;
            tokens.into_iter().enumerate().map(|(i, t)| held(user(i), t, issued / 1_000_000, ttl)).collect()
        }
        Design::Jwt => (0..n)
            .map(|i| {
                let iat = issued_at(i).min(now);
                let claims = jwt::new_claims(&user(i), &roles(), ttl, iat, None).map_err(err)?;
                Ok(held(user(i), keys.sign(&claims).map_err(err)?, iat, ttl))
            })
            .collect::<redis::RedisResult<_>>()?,
        Design::Refresh => refresh_pairs(conn, keys, users, (ttl, long_ttl), issued_at).await?,
        Design::Versioned => versioned_tokens(conn, keys, users, ttl, issued_at).await?,
    };
    Ok(tokens)
}

/// A refresh family per user, with the pair its login would have handed out: the refresh
/// token `<family>.<secret>` (the family stored under its digest with the secret's digest, as
/// `refresh` writes it) and an access token of the family issued at `issued_at(i)`.
async fn refresh_pairs(
    conn: &mut impl ConnectionLike,
    keys: &JwtKeys,
    users: u32,
    (ttl, family_ttl): (Duration, Duration),
    issued_at: &dyn Fn(usize) -> u64,
) -> redis::RedisResult<Vec<Credentials>> {
    let now = now_secs();
    let ttl_ms = family_ttl.as_millis() as u64;
    let index = TokenIndex::new(refresh::FAMILIES, refresh::FAMILY_USERS, None);
    let mut out = Vec::with_capacity(users as usize);
    write_batched(conn, users as usize, |i, pipe| {
        let username = format!("user{i}");
        let family = new_opaque_id().map_err(err)?;
        let secret = new_opaque_id().map_err(err)?;
        let family_digest = refresh::digest(&family);
        let record = refresh::family_record(&username, &secret);
        index_entry(pipe, &index, (&username, &family_digest, &record), ttl_ms, true);
        let iat = issued_at(i).min(now);
        let mut claims = refresh::access_claims(&username, &roles(), ttl, &family_digest, None).map_err(err)?;
        claims.iat = iat;
        claims.nbf = iat;
        claims.exp = iat + ttl.as_secs();
        out.push(Credentials {
            access_token: keys.sign(&claims).map_err(err)?,
            refresh_token: Some(format!("{family}.{secret}")),
            issued_at: iat,
            expires_in: ttl.as_secs(),
            username,
        });
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Every user's token version (the time of a last revocation, before any token below was
/// issued), the global version, and a token per user carrying them issued at `issued_at(i)`.
async fn versioned_tokens(
    conn: &mut impl ConnectionLike,
    keys: &JwtKeys,
    users: u32,
    ttl: Duration,
    issued_at: &dyn Fn(usize) -> u64,
) -> redis::RedisResult<Vec<Credentials>> {
    let now = now_secs();
    let n = users as usize;
    let earliest = (0..n).map(|i| issued_at(i).min(now)).min().unwrap_or(now);
    // Versions are microseconds of Redis's clock; a revocation a minute before the oldest token.
    let redis_now = redis_time_us(conn).await?;
    let lead_us = now.saturating_sub(earliest).saturating_add(60) * 1_000_000;
    let user_version = redis_now.saturating_sub(lead_us);
    let global = redis_now.saturating_sub(lead_us + 3_600_000_000);
    redis::cmd("SET").arg(versioned::GLOBAL_VERSION).arg(global).query_async::<()>(conn).await?;
    let mut out = Vec::with_capacity(n);
    write_batched(conn, n, |i, pipe| {
        let username = format!("user{i}");
        pipe.cmd("SET").arg(versioned::user_version_key(&username)).arg(user_version).ignore();
        let iat = issued_at(i).min(now);
        let claims =
            versioned::versioned_claims(&username, &roles(), ttl, iat, (user_version, global), None).map_err(err)?;
        out.push(Credentials {
            access_token: keys.sign(&claims).map_err(err)?,
            refresh_token: None,
            issued_at: iat,
            expires_in: ttl.as_secs(),
            username,
        });
        Ok(())
    })
    .await?;
    Ok(out)
}
