//! The records of the revocation scenario: per kind of revocation, instance pairing and trial,
//! how long a revoked token kept working after the revoke was acknowledged (bounded by the
//! send and the answer time of the last accepted probe), what the design's settings let it
//! live, and every probe as a timeline.

use serde::{Deserialize, Serialize};

/// The revocation kinds of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Logout,
    LogoutAll,
    SingleDevice,
    PasswordChange,
    AdminBan,
    RoleChange,
    RevokeAll,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Logout,
        Kind::LogoutAll,
        Kind::SingleDevice,
        Kind::PasswordChange,
        Kind::AdminBan,
        Kind::RoleChange,
        Kind::RevokeAll,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Logout => "logout",
            Kind::LogoutAll => "logout_all",
            Kind::SingleDevice => "single_device",
            Kind::PasswordChange => "password_change",
            Kind::AdminBan => "admin_ban",
            Kind::RoleChange => "role_change",
            Kind::RevokeAll => "revoke_all",
        }
    }

    /// The key of `/capabilities`' `revocation` object that says whether this kind is supported.
    pub fn capability(self) -> &'static str {
        match self {
            Kind::AdminBan => "admin_revoke",
            other => other.as_str(),
        }
    }
}

/// A run of consecutive probes (by send time) with the same outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Segment {
    /// Send time of the first and last probe of the run, in ms relative to the acknowledgement.
    pub from_ms: f64,
    pub to_ms: f64,
    /// `accepted`, `rejected` or `error` (503, timeout, ...).
    pub outcome: String,
    pub probes: u64,
}

/// One trial of one kind measured against one server configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevocationRecord {
    pub strategy: String,
    pub variant: String,
    pub kind: Kind,
    /// 1: revoke and probe on one server; 2: revoke on A, probe on B.
    pub instances: u32,
    /// Which trial of this kind and instance pairing, from 0; each trial has a victim of its
    /// own. Files before schema 7 measured one trial, read as 0.
    #[serde(default)]
    pub trial: u32,
    /// What `/capabilities` claims for this kind.
    pub supported: bool,
    /// HTTP status of the revoking request (204, 501, 200 for a login, ...).
    pub operation_status: u16,
    /// From sending the revoke (t0) to its acknowledgement (t1), ms.
    pub ack_ms: f64,
    /// Last accepted probe sent after t1, minus t1, in ms; 0 when none; null when the token was
    /// still accepted at the cap. The lower bound of the window: the token was accepted at some
    /// moment between this probe's send and its answer.
    pub window_ms: Option<f64>,
    /// The answer time of the last accepted probe, minus t1, in ms (0 when it was answered
    /// before t1); null when `window_ms` is. The upper bound of the window.
    #[serde(default)]
    pub window_answer_ms: Option<f64>,
    /// How long after t1 the design's settings let the token be accepted, in ms, from its
    /// `iat` and `exp` and the ack's wall-clock time: lifetime left plus the servers' leeway
    /// (and exp's whole second) where the revocation waits for expiry, the grace where it waits
    /// for the grace, 0 where it acts at once; null where no setting bounds it (propagation,
    /// a server that checks nothing, a token whose times cannot be read).
    #[serde(default)]
    pub expected_bound_ms: Option<f64>,
    /// From the victim's login answer to sending the revoke, in ms: a lead plus a random
    /// delay, so the revoke lands at a random point of the issuing second and of a grace.
    #[serde(default)]
    pub revoke_after_login_ms: Option<f64>,
    pub accepted_after_ack: u64,
    /// Probes accepted before the revoke was sent: 0 means the token never worked on the
    /// probed instance and the window says nothing.
    pub accepted_before_revoke: u64,
    pub rejected_after_ack: u64,
    pub errors_after_ack: u64,
    pub probes: u64,
    pub cap_ms: f64,
    /// The lifetime left at t1 of the access token the victim's client held then (the login's,
    /// or one a refresh or `X-Refreshed-Token` gave it before), by the `expires_in` it came
    /// with, counted from its arrival, in ms.
    pub token_lifetime_left_ms: f64,
    /// Every probe, as runs of equal outcomes ordered by send time.
    pub timeline: Vec<Segment>,
    /// The `GET /me` load the servers carried meanwhile; absent when probed idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<BackgroundLoad>,
    /// `POST /refresh` calls the victim's client (whoever holds the pair its login returned)
    /// sent at or after t1: once its access token expired by `expires_in`, or a probe was
    /// refused as `expired`. Absent when the design issued no refresh token, and in files
    /// before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshes_after_revoke: Option<u64>,
    /// Of those, the refreshes the server granted: a new pair for the holder of a revoked one.
    /// A sound design grants none (a role change may: the new pair carries the new role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_after_revoke: Option<u64>,
    /// Tokens the victim's client adopted from `X-Refreshed-Token` over the trial (before and
    /// after t1). Absent in files before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_tokens: Option<u64>,
}

/// Load the servers carried while a revocation was probed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackgroundLoad {
    /// Open-loop arrival rate over all the servers of the pair (and the single-device pair).
    pub offered_rps: f64,
    /// Requests answered per second over the probing.
    pub achieved_rps: f64,
    /// Timeouts, connection errors and non-2xx/401 answers.
    pub failures: u64,
}
