//! What a design's settings say about a revocation before it is measured: how long after the
//! acknowledgement its token may still be accepted (the expected bound printed beside the
//! measured window), whether a revoke-all by one trial ends the other trials' tokens (so its
//! trials must take turns), and the random phase each trial's revoke waits for.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::results::{Capabilities, Kind};

/// The authbench servers' leeway on `exp` (and `nbf`), in seconds. A server someone else runs
/// does not say its own; the bound assumes the same.
const LEEWAY_S: u64 = authbench_server::jwt::LEEWAY_SECS;

/// How a design's revocations act, as its `/capabilities` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Design {
    /// `revocation_delay`: `immediate`, `access_ttl`, `grace_window`, `propagation` or `n/a`.
    pub delay: String,
    /// Revocations act at refresh time: the access token lives on until it expires.
    pub at_refresh: bool,
    /// `versioned`: how long a token is trusted on its signature alone, in seconds.
    pub grace_s: Option<u64>,
    /// Lifetime of the tokens, in seconds.
    pub access_ttl_s: Option<u64>,
}

impl Design {
    pub fn of(caps: &Capabilities) -> Self {
        Self {
            delay: caps.revocation_delay.clone(),
            at_refresh: caps.revocation.get("refresh").copied().unwrap_or(false),
            grace_s: caps.extra.get("grace_s").and_then(serde_json::Value::as_u64),
            access_ttl_s: caps.access_ttl_s(),
        }
    }

    /// A grace shorter than the token's life (plus leeway): the one that decides the window.
    fn deciding_grace_s(&self) -> Option<u64> {
        let grace = self.grace_s.filter(|g| *g > 0)?;
        match self.access_ttl_s {
            Some(ttl) if grace > ttl + LEEWAY_S => None,
            _ => Some(grace),
        }
    }

    /// Whether a revoke-all ends every other token on the probed instance before that token
    /// would expire: then trials of revoke-all must take turns, each with a victim logged in
    /// after the one before was revoked. Where it waits for expiry (refresh; jwt across two
    /// instances, since the key rotates on A alone), or revokes nothing, they run side by side.
    pub fn revoke_all_ends_others(&self, instances: u32, supported: bool) -> bool {
        if !supported {
            return false;
        }
        match self.delay.as_str() {
            "n/a" => false,
            "access_ttl" => !self.at_refresh && instances == 1,
            "grace_window" => self.deciding_grace_s().is_some(),
            // immediate, propagation, and whatever a newer server says: take turns, to be safe.
            _ => true,
        }
    }

    /// The range the revoke's random delay after the login is drawn from: the grace where a
    /// grace shorter than the token's life decides the window (the revoke then lands anywhere
    /// in it), else one second (anywhere in the second `iat` and `exp` are counted in).
    pub fn phase_range(&self) -> Duration {
        match self.deciding_grace_s() {
            Some(g) if g > 1 => Duration::from_secs(g),
            _ => Duration::from_secs(1),
        }
    }
}

/// The times a JWT victim token carries, in whole seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenTimes {
    pub iat: u64,
    pub exp: u64,
}

impl TokenTimes {
    /// `iat` and `exp` of a JWT, read without verifying it; `None` for an opaque token.
    pub fn of(token: &str) -> Option<Self> {
        let payload = token.split('.').nth(1)?;
        let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        Some(Self { iat: claims.get("iat")?.as_u64()?, exp: claims.get("exp")?.as_u64()? })
    }

    /// The first wall-clock second at which the token is refused as expired: the servers
    /// compare `exp` with whole seconds and allow the leeway, so it works while
    /// `floor(now) <= exp + leeway`.
    fn expires_at(self) -> u64 {
        self.exp + LEEWAY_S + 1
    }
}

/// How long after the acknowledgement (at `ack_unix_s`, wall clock) the design's settings let
/// the victim's token be accepted, in ms; `None` where no setting bounds it. `token` is the
/// access token the victim's client held at the acknowledgement (a refresh or an adopted
/// `X-Refreshed-Token` before it replaces the login's), `refreshable` whether the client held
/// a refresh token too.
///
/// - A kind the server does not perform: the token lives until it expires; with a refresh
///   token, the holder refreshes past every expiry, and nothing within probing bounds it.
/// - `immediate`: 0.
/// - `access_ttl`: until expiry when revocations act at refresh time (the client's refresh
///   after it must be refused, so the token held at the acknowledgement is the last to work);
///   otherwise (jwt, whose one lever is revoke-all rotating the key) 0 on the instance that
///   rotated, expiry on another.
/// - `grace_window`: until `iat + grace` (a token younger than the grace is not checked; `iat`
///   and the server's clock count whole seconds), or expiry if that comes first. A token
///   handed back after a check is younger than the login's and moves this on: the one held at
///   the acknowledgement counts, not one handed back after it.
/// - `propagation` and `n/a`: none (the delay is the push's, or nothing is ever refused).
pub fn expected_bound_ms(
    design: &Design,
    kind: Kind,
    instances: u32,
    supported: bool,
    token: Option<TokenTimes>,
    refreshable: bool,
    ack_unix_s: f64,
) -> Option<f64> {
    let until = |unix_s: u64| ((unix_s as f64 - ack_unix_s) * 1e3).max(0.0);
    let expiry = token.map(|t| until(t.expires_at()));
    if design.delay == "n/a" {
        return None;
    }
    if !supported {
        return if refreshable { None } else { expiry };
    }
    match design.delay.as_str() {
        "immediate" => Some(0.0),
        "access_ttl" if design.at_refresh => expiry,
        "access_ttl" if kind == Kind::RevokeAll && instances == 1 => Some(0.0),
        "access_ttl" => expiry,
        "grace_window" => {
            let t = token?;
            let grace = design.grace_s?;
            Some(until((t.iat + grace).min(t.expires_at())))
        }
        _ => None,
    }
}

/// The random delays of the trials' revokes: xorshift64*, seeded from the clock and the
/// process id. Phases need to be spread, not unpredictable, so no cryptographic generator.
#[derive(Debug, Clone)]
pub struct Phases(u64);

impl Phases {
    pub fn from_clock() -> Self {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Self::seeded(nanos ^ (u64::from(std::process::id()) << 32))
    }

    pub fn seeded(seed: u64) -> Self {
        // Zero is xorshift's one fixed point.
        Self(seed | 1)
    }

    /// A delay uniform in `[0, range)`.
    pub fn next(&mut self, range: Duration) -> Duration {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        // The top 53 bits as a fraction in [0, 1).
        let fraction = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        range.mul_f64(fraction)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn design(delay: &str, at_refresh: bool, grace_s: Option<u64>) -> Design {
        Design { delay: delay.into(), at_refresh, grace_s, access_ttl_s: Some(4) }
    }

    fn jwt_of(claims: &serde_json::Value) -> String {
        format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    #[test]
    fn token_times_are_read_from_a_jwt_and_not_from_an_opaque_token() {
        let token = jwt_of(&serde_json::json!({"iat": 1000, "exp": 1004, "sub": "user1"}));
        assert_eq!(TokenTimes::of(&token), Some(TokenTimes { iat: 1000, exp: 1004 }));
        assert_eq!(TokenTimes::of("abcdefOpaqueSessionId"), None);
        assert_eq!(TokenTimes::of("a.b.c"), None);
    }

    #[test]
    fn bounds_follow_the_settings() {
        // Issued at 1000.6 s (iat 1000), 4 s lifetime (exp 1004); acknowledged at 1001.5 s.
        let token = Some(TokenTimes { iat: 1000, exp: 1004 });
        let ack = 1001.5;
        let bound = |d: &Design, kind, instances, supported| {
            expected_bound_ms(d, kind, instances, supported, token, false, ack)
        };
        // Refused from 1007 s on (exp 1004 + 2 s leeway, counted in whole seconds): 5.5 s.
        let expiry = Some(5500.0);
        let jwt = design("access_ttl", false, None);
        assert_eq!(bound(&jwt, Kind::Logout, 1, false), expiry);
        assert_eq!(bound(&jwt, Kind::RevokeAll, 1, true), Some(0.0));
        assert_eq!(bound(&jwt, Kind::RevokeAll, 2, true), expiry, "B keeps its key");
        let refresh = design("access_ttl", true, None);
        let with_refresh_token = |kind, supported| expected_bound_ms(&refresh, kind, 1, supported, token, true, ack);
        assert_eq!(with_refresh_token(Kind::AdminBan, true), expiry, "the refresh after it is refused");
        assert_eq!(with_refresh_token(Kind::RevokeAll, true), expiry);
        assert_eq!(with_refresh_token(Kind::SingleDevice, false), None, "refreshed past every expiry");
        // A token refreshed before the ack, issued at 1001 s: its own expiry, 1 s later.
        let refreshed = Some(TokenTimes { iat: 1001, exp: 1005 });
        assert_eq!(expected_bound_ms(&refresh, Kind::AdminBan, 1, true, refreshed, true, ack), Some(6500.0));
        // A 1 s grace: trusted until 1001 s, before the ack: refused at once.
        let g1 = design("grace_window", false, Some(1));
        assert_eq!(bound(&g1, Kind::AdminBan, 2, true), Some(0.0));
        let g2 = design("grace_window", false, Some(2));
        assert_eq!(bound(&g2, Kind::AdminBan, 2, true), Some(500.0));
        // Handed a fresh token (iat 1001) after a check before the ack: trusted until 1002 s.
        let adopted = Some(TokenTimes { iat: 1001, exp: 1005 });
        assert_eq!(expected_bound_ms(&g1, Kind::AdminBan, 2, true, adopted, false, ack), Some(500.0));
        assert_eq!(bound(&g2, Kind::Logout, 1, false), expiry, "versioned cannot log one token out");
        // A grace longer than the token's life: expiry decides.
        let g30 = design("grace_window", false, Some(30));
        assert_eq!(bound(&g30, Kind::PasswordChange, 1, true), expiry);
        assert_eq!(bound(&design("immediate", false, None), Kind::Logout, 2, true), Some(0.0));
        assert_eq!(bound(&design("propagation", false, None), Kind::Logout, 2, true), None);
        assert_eq!(bound(&design("n/a", false, None), Kind::Logout, 1, false), None);
        // A token whose times cannot be read bounds nothing but what acts at once.
        assert_eq!(expected_bound_ms(&jwt, Kind::Logout, 1, false, None, false, ack), None);
        // After the expiry, the bound is 0, never negative.
        assert_eq!(expected_bound_ms(&jwt, Kind::Logout, 1, false, token, false, 1010.0), Some(0.0));
    }

    #[test]
    fn revoke_all_takes_turns_only_where_it_ends_the_other_trials_tokens() {
        assert!(design("immediate", false, None).revoke_all_ends_others(2, true));
        assert!(design("propagation", false, None).revoke_all_ends_others(1, true));
        assert!(design("access_ttl", false, None).revoke_all_ends_others(1, true));
        assert!(!design("access_ttl", false, None).revoke_all_ends_others(2, true));
        assert!(!design("access_ttl", true, None).revoke_all_ends_others(1, true));
        assert!(design("grace_window", false, Some(1)).revoke_all_ends_others(1, true));
        assert!(!design("grace_window", false, Some(30)).revoke_all_ends_others(1, true));
        assert!(!design("n/a", false, None).revoke_all_ends_others(1, false));
        assert!(!design("immediate", false, None).revoke_all_ends_others(1, false));
    }

    #[test]
    fn phases_spread_over_their_range() {
        assert_eq!(design("immediate", false, None).phase_range(), Duration::from_secs(1));
        assert_eq!(design("grace_window", false, Some(1)).phase_range(), Duration::from_secs(1));
        assert_eq!(design("grace_window", false, Some(3)).phase_range(), Duration::from_secs(3));
        assert_eq!(design("grace_window", false, Some(30)).phase_range(), Duration::from_secs(1));
        let mut phases = Phases::seeded(42);
        let range = Duration::from_secs(1);
        let drawn: Vec<f64> = (0..1000).map(|_| phases.next(range).as_secs_f64()).collect();
        assert!(drawn.iter().all(|d| (0.0..1.0).contains(d)));
        // Every tenth of the range is hit, roughly evenly.
        for tenth in 0..10 {
            let n = drawn.iter().filter(|d| (**d * 10.0).floor() as usize == tenth).count();
            assert!((60..140).contains(&n), "tenth {tenth}: {n} of 1000");
        }
    }
}
