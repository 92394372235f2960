//! Fills `session`'s PostgreSQL table directly, as the Redis seeding fills Redis: the rows a login
//! inserts (the same columns, the same JSON record), written by one `INSERT ... SELECT` over
//! `generate_series`, so 10^5 sessions cost one statement rather than 10^5 logins.
//!
//! The database makes the ids: session `i`'s id is the SHA-256 of a secret drawn here from the
//! CSPRNG followed by `:i`, in base64url without padding. That is the shape of
//! [`new_opaque_id`](crate::token::new_opaque_id) (43 characters), unguessable without the
//! secret, and spread over the key space as evenly as random ids, so the primary key's B-tree is
//! as a stream of logins would build it. The same derivation here gives the ids of the sampled
//! sessions, so none has to be read back.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{roles, sampled};
use crate::jwt::now_secs;
use crate::strategy::session;
use crate::token::new_opaque_id;

/// The table `session` keeps its rows in with `--store postgres`.
pub const PG_SESSIONS_TABLE: &str = session::PG_TABLE;

/// Why seeding statements could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PgSeedError {
    /// `getrandom::Error` is no `std::error::Error` here: kept as a value, not a source.
    #[error("no randomness for the id secret: {0}")]
    Random(getrandom::Error),
    #[error("cannot write the session record: {0}")]
    Record(#[from] serde_json::Error),
}

/// What [`pg_sessions`] hands back: the statement to run, and ids to present.
#[derive(Debug, Clone)]
pub struct PgSessionSeed {
    /// One `INSERT ... SELECT` writing every row (run it on a table the server created).
    pub sql: String,
    /// The ids of about `sample` of the sessions, spread over the whole table.
    pub ids: Vec<String>,
}

/// The statement that writes `count` live sessions of users `user0..user{users-1}` (round robin,
/// as the Redis seeding), each ending `ttl` from now, and the ids of about `sample` of them.
pub fn pg_sessions(count: usize, users: u32, ttl: Duration, sample: usize) -> Result<PgSessionSeed, PgSeedError> {
    let secret = new_opaque_id().map_err(PgSeedError::Random)?;
    let iat = now_secs();
    let exp = iat + ttl.as_secs();
    // Every row's record is this one with its own `sub`: the format stays `record_json`'s.
    let template = session::record_json("", &roles(), iat, exp)?.replace('\'', "''");
    let users = users.max(1);
    let sql = format!(
        "INSERT INTO {PG_SESSIONS_TABLE} (id, username, record, expires_at)
         SELECT rtrim(translate(encode(sha256(convert_to('{secret}:' || i, 'UTF8')), 'base64'), '+/', '-_'), '='),
                u.name,
                '{template}'::jsonb || jsonb_build_object('sub', u.name),
                to_timestamp({exp})
         FROM generate_series(0::bigint, {count}::bigint - 1) AS i,
              LATERAL (SELECT 'user' || (i % {users}) AS name) AS u"
    );
    let ids = (0..count).filter(|&i| sampled(i, count, sample)).map(|i| seeded_id(&secret, i)).collect();
    Ok(PgSessionSeed { sql, ids })
}

/// The id the statement gives row `i`: base64url(SHA-256(`{secret}:{i}`)).
fn seeded_id(secret: &str, i: usize) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("{secret}:{i}").as_bytes());
    URL_SAFE_NO_PAD.encode(digest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::token::is_opaque_id;

    #[test]
    fn seeded_ids_have_the_shape_of_opaque_ids_and_are_spread() {
        let seed = pg_sessions(1000, 7, Duration::from_secs(60), 10).unwrap();
        assert_eq!(seed.ids.len(), 10);
        assert!(seed.ids.iter().all(|id| is_opaque_id(id)), "{:?}", seed.ids);
        let mut distinct = seed.ids.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 10);
        assert!(seed.sql.contains("generate_series(0::bigint, 1000::bigint - 1)"), "{}", seed.sql);
        assert!(seed.sql.contains("% 7)"), "{}", seed.sql);
    }

    #[test]
    fn ids_are_the_sha256_of_the_secret_and_the_row_in_base64url() {
        // printf 'abc:0' | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '='
        assert_eq!(seeded_id("abc", 0), "Xzbvzob2iHfO4Y_aVjersqG7QJ9DJsx0H98TIAqiaYA");
    }
}
