//! The records of the scale scenario: what one entry a design keeps in its store (Redis, or
//! PostgreSQL for session-pg) costs in memory or on disk, and latency with a large keyspace.

use serde::{Deserialize, Serialize};

/// What one keyspace size cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleRecord {
    pub strategy: String,
    pub variant: String,
    /// What one entry is: an [`EntryKind`] name.
    pub entry_kind: String,
    pub entries: u64,
    /// The store's size before and after seeding, bytes: Redis `used_memory`, or for a
    /// PostgreSQL store `pg_total_relation_size` of the sessions table (rows, indexes, TOAST).
    pub used_memory_before: u64,
    pub used_memory_after: u64,
    /// (after − before) / entries: what one entry costs, index share included.
    pub bytes_per_entry: f64,
    pub seed_seconds: f64,
    /// Distinct tokens the load drew from, spread over the keyspace.
    pub tokens_sampled: u64,
    /// The steady point measured on that keyspace.
    pub throughput_rps: f64,
    pub latency_p50_us: f64,
    pub latency_p99_us: f64,
    /// The server's resident set (VmRSS) once it answers, before any load, bytes: for pushed
    /// it holds the denylist replayed from the log. On PostgreSQL the server starts (and creates
    /// its table) before the seeding. Absent in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_rss_bytes: Option<u64>,
    /// Seconds from starting the server until it answered (pushed replays its log meanwhile).
    /// Absent in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_start_seconds: Option<f64>,
}

/// What one seeded entry is, in the strategy's own layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// `session`: a session record and its user-index entry.
    Session,
    /// `hybrid` allowlist: a live jti and its user-index entry.
    LiveJti,
    /// `hybrid` denylist: a revoked jti until its token's expiry.
    RevokedJti,
    /// `refresh`: a refresh-token family and its user-index entry.
    RefreshFamily,
    /// `versioned`: one user's token version (never expires).
    UserVersion,
    /// `pushed`: a jti revocation event in the log (and in every server's denylist).
    RevokedJtiEvent,
}

impl EntryKind {
    pub const ALL: [Self; 6] =
        [Self::Session, Self::LiveJti, Self::RevokedJti, Self::RefreshFamily, Self::UserVersion, Self::RevokedJtiEvent];

    /// The `entry_kind` of a [`ScaleRecord`].
    pub fn name(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::LiveJti => "live_jti",
            Self::RevokedJti => "revoked_jti",
            Self::RefreshFamily => "refresh_family",
            Self::UserVersion => "user_version",
            Self::RevokedJtiEvent => "revoked_jti_event",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether there is one entry per logged-in session or device, so that Redis memory grows
    /// with the active users. Revocations (and versions, one per user ever revoked) do not.
    pub fn per_session(self) -> bool {
        matches!(self, Self::Session | Self::LiveJti | Self::RefreshFamily)
    }
}
