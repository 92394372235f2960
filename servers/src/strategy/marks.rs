//! Revocation marks, shared by hybrid's denylist and `pushed`: a mark on a user (or on
//! everyone) ends every token issued before it. Both sides of that comparison are read from one
//! clock, the revocation clock in Redis, and are compared in one unit, microseconds:
//!
//! - Every login draws its token's issue time (the `iat_us` claim), and every revoke its mark,
//!   inside one script: Redis's own `TIME`, raised above the last value drawn (kept in the
//!   clock key). Values are therefore distinct and rise in the order Redis ran the scripts,
//!   whatever the servers' clocks say. A token issued before a revoke's script ran drew a
//!   smaller value and is ended by the mark; one issued after it drew a larger value and is
//!   not. That settles every interleaving of a login with a revoke, and leaves nothing for a
//!   per-raise `+1` to do: the clock runs ahead of `TIME` only while scripts run faster than
//!   one per microsecond, which Redis cannot sustain, so no loop of logins and logouts can push
//!   a mark seconds ahead of the clock.
//! - A token's `exp` counts from its issue time, and a mark (like the clock key) expires at an
//!   absolute time (`EXAT`) derived from its own value: that second plus the token lifetime, the
//!   leeway and one more second. By then every token it ends has expired, and any value drawn
//!   afterwards is Redis's `TIME`, already past it: a forgotten mark is never recreated below
//!   what it was, so forgetting it lets nothing back in. (A server whose clock lags Redis's by
//!   more than that one second would accept an ended token a little longer.)
//!
//! The clock and the marks of one design share a hash tag, so each script stays in one slot of
//! a Redis Cluster. Every login writes the clock key: logins are rare next to requests, and an
//! unwritten clock could hand a login and a later revoke the same microsecond.

use std::time::Duration;

use std::sync::LazyLock;

use redis::{Script, ScriptInvocation};

use super::jwt::new_claims;
use crate::error::AuthError;
use crate::jwt::{AccessClaims, LEEWAY_SECS, now_secs};
use crate::token::TokenRejection;

/// Draws a time: `TIME` in microseconds, above the clock key (KEYS[1]). Lua numbers are doubles,
/// exact up to 2^53 µs (year 2255); values are written with `%d`, never in exponent form.
macro_rules! draw {
    () => {
        r"
local function num(k) return tonumber(redis.call('GET', k) or '0') end
local now = redis.call('TIME')
local t = math.max(tonumber(now[1]) * 1000000 + tonumber(now[2]), num(KEYS[1]) + 1)
"
    };
}

/// Stores the drawn time `t` as the clock (KEYS[1]), expiring at `t`'s second plus ARGV[1]
/// seconds; leaves `v` and `exat` for the script's other keys.
macro_rules! store {
    () => {
        r"
local v = string.format('%d', t)
local exat = string.format('%d', math.floor(t / 1000000) + tonumber(ARGV[1]))
redis.call('SET', KEYS[1], v, 'EXAT', exat)
"
    };
}

/// The issue time of a token. KEYS: clock, user mark, global mark; ARGV: life (s). Never below
/// a standing mark, so a token is not born ended even if the clock key was lost.
const ISSUE: &str = concat!(draw!(), "t = math.max(t, num(KEYS[2]), num(KEYS[3]))\n", store!(), "return t\n");
/// Sent by digest (`EVALSHA`), not text.
static ISSUE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ISSUE));

/// Raises a mark to a time drawn now, and with a log key appends the event to it, trimming the
/// events older than the retention by age (on the time just drawn) and naming the log with a
/// new epoch if it has none (see `pushed`).
/// KEYS: clock, mark[, log, epoch]; ARGV: life (s)[, event kind, event value, retention (ms),
/// new epoch].
const RAISE: &str = concat!(
    draw!(),
    "t = math.max(t, num(KEYS[2]) + 1)\n",
    store!(),
    r"
redis.call('SET', KEYS[2], v, 'EXAT', exat)
if KEYS[3] then
  redis.call('SET', KEYS[4], ARGV[5] .. ':' .. string.format('%d', t), 'NX')
  local oldest = string.format('%d', math.floor(t / 1000) - tonumber(ARGV[4]))
  redis.call('XADD', KEYS[3], 'MINID', oldest, '*', 'k', ARGV[2], 'v', ARGV[3], 'n', v)
end
return t
"
);
static RAISE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RAISE));

/// The revocation log a raised mark is appended to (`pushed`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventLog<'a> {
    pub(crate) stream: &'a str,
    /// The key of the log's epoch, and the epoch to create if it has none.
    pub(crate) epoch_key: &'a str,
    pub(crate) new_epoch: &'a str,
    /// Events older than this (ms) concern only expired tokens and are trimmed.
    pub(crate) retention_ms: u64,
}

/// Which mark a revoke raises.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mark<'a> {
    /// Ends the tokens of one user.
    User(&'a str),
    /// Ends every token.
    Global,
}

/// The keys of one design's clock and marks, all under one hash tag.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MarkKeys {
    pub(crate) clock: &'static str,
    /// Prefix of a user's mark; the username follows.
    pub(crate) user: &'static str,
    pub(crate) global: &'static str,
}

impl MarkKeys {
    pub(crate) fn user_key(&self, username: &str) -> String {
        format!("{}{username}", self.user)
    }

    /// The script that draws the issue time of a token of `username` (one round trip).
    pub(crate) fn issue(&self, username: &str, life_secs: u64) -> ScriptInvocation<'static> {
        let mut invocation = ISSUE_SCRIPT.prepare_invoke();
        invocation.key(self.clock).key(self.user_key(username)).key(self.global).arg(life_secs);
        invocation
    }

    /// The script that raises `mark` to a time drawn now and returns that time; with `log`, it
    /// also appends the event `k` = `user` or `all`, `v` = the username, `n` = the mark.
    pub(crate) fn raise(&self, mark: Mark<'_>, life_secs: u64, log: Option<EventLog<'_>>) -> ScriptInvocation<'static> {
        let (key, kind, value) = match mark {
            Mark::User(username) => (self.user_key(username), "user", username),
            Mark::Global => (self.global.to_owned(), "all", ""),
        };
        let mut invocation = RAISE_SCRIPT.prepare_invoke();
        invocation.key(self.clock).key(key);
        match log {
            Some(log) => {
                invocation.key(log.stream).key(log.epoch_key);
                invocation.arg(life_secs).arg(kind).arg(value).arg(log.retention_ms).arg(log.new_epoch);
            }
            None => {
                invocation.arg(life_secs);
            }
        }
        invocation
    }
}

/// How long after its own second a mark must stand: every token it ends has expired by then,
/// the leeway included.
pub(crate) fn life_secs(access_ttl: Duration) -> u64 {
    access_ttl.as_secs() + LEEWAY_SECS + 1
}

/// Claims of a token issued at `issued_us` on the revocation clock, valid for `ttl` from then.
pub(crate) fn stamped_claims(
    username: &str,
    roles: &[String],
    ttl: Duration,
    issued_us: u64,
    pad: Option<&String>,
) -> Result<AccessClaims, AuthError> {
    let iat = issued_us / 1_000_000;
    let mut claims = new_claims(username, roles, ttl, iat, pad)?;
    claims.exp = iat + ttl.as_secs();
    // A server whose clock is behind Redis's must not see the token as not yet valid.
    claims.nbf = iat.min(now_secs());
    claims.iat_us = Some(issued_us);
    Ok(claims)
}

/// The token's issue time on the revocation clock; a token without one (minted by another
/// design sharing the key, or before marks were in microseconds) cannot be checked.
pub(crate) fn issued_us(claims: &AccessClaims) -> Result<u64, TokenRejection> {
    claims.iat_us.ok_or(TokenRejection::MissingClaim)
}

/// Whether `mark` ends a token issued at `issued_us`.
pub(crate) fn ends(mark: Option<u64>, issued_us: u64) -> bool {
    mark.is_some_and(|m| issued_us < m)
}

/// Whether a mark has outlived every token it ends, on this server's clock (`now_secs`), which
/// is also the clock that decides those tokens' expiry.
pub(crate) fn outlived(mark_us: u64, life_secs: u64, now_secs: u64) -> bool {
    (mark_us / 1_000_000).saturating_add(life_secs) < now_secs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_ends_what_was_issued_before_it_and_stands_until_those_expire() {
        assert!(ends(Some(1_000_001), 1_000_000));
        assert!(!ends(Some(1_000_000), 1_000_000), "a token drawn at the mark was issued after it");
        assert!(!ends(None, 0));
        let ttl = Duration::from_secs(60);
        let issued = 1_700_000_000_999_999;
        let claims = stamped_claims("u", &["user".to_owned()], ttl, issued, None).unwrap();
        assert_eq!((claims.iat, claims.exp, claims.iat_us), (1_700_000_000, 1_700_000_060, Some(issued)));
        let mark = issued + 1;
        // The token is accepted until exp + leeway; its mark stands a second past that.
        let last_accepted = claims.exp + LEEWAY_SECS;
        assert!(!outlived(mark, life_secs(ttl), last_accepted + 1));
        assert!(outlived(mark, life_secs(ttl), mark / 1_000_000 + life_secs(ttl) + 1));
    }
}
