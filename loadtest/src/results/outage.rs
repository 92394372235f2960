//! The records of the outage scenario: a fault of the store (Redis or PostgreSQL) injected
//! under open-loop load, the availability clients saw per bucket of time, and what a restart
//! lost.

use serde::{Deserialize, Serialize};

/// A failure of the store: `Hang` for either store, the kills for the store they name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// SIGSTOP, then SIGCONT: connections stay open, nothing answers.
    Hang,
    /// SIGKILL, then a restart with no persistence: everything in Redis is gone.
    #[serde(rename = "kill_restart_empty")]
    KillEmpty,
    /// SIGKILL, then a restart that replays the append-only file (appendfsync everysec).
    #[serde(rename = "kill_restart_aof")]
    KillAof,
    /// PostgreSQL: SIGKILL to the postmaster and every backend, then a restart on the same
    /// cluster with crash recovery: a logged table keeps its committed rows (the WAL is
    /// replayed), an unlogged one comes back empty.
    #[serde(rename = "kill_restart_recovery")]
    KillRecover,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Hang => "hang",
            Fault::KillEmpty => "kill_restart_empty",
            Fault::KillAof => "kill_restart_aof",
            Fault::KillRecover => "kill_restart_recovery",
        }
    }

    /// Whether the store is killed and restarted (every fault but the hang).
    pub fn kills(self) -> bool {
        self != Fault::Hang
    }
}

/// One fault measured against one variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutageRecord {
    pub strategy: String,
    pub variant: String,
    pub fault: Fault,
    /// The store's durability: Redis `none` or `aof_everysec`; PostgreSQL `wal` (a logged
    /// table) or `unlogged`.
    pub persistence: String,
    pub offered_rps: f64,
    pub connections: usize,
    /// Client deadline from the intended send time: a request not answered within it is a
    /// timeout.
    pub client_timeout_ms: f64,
    pub bucket_ms: f64,
    /// When the fault began and when the store was back (resumed, or restarted and answering),
    /// in ms from the start of the timeline (the name is from when the store was Redis alone).
    pub fault_start_ms: f64,
    pub redis_back_ms: f64,
    /// Share of requests answered 2xx within the client deadline, among those intended before,
    /// during and after the fault.
    pub availability_before: f64,
    pub availability_during: f64,
    pub availability_after: f64,
    /// From the store being back to the first 100 ms in which at least 95 % of outcomes were
    /// answers from a working store (2xx, or 401 for tokens a restart lost); null if never.
    pub recovery_ms: Option<f64>,
    /// Probes of a revoked token sent during the fault that were accepted (fail-open shows it).
    pub revoked_accepted: u64,
    pub revoked_probes: u64,
    /// Of `keepers` tokens valid before the fault, how many were refused after recovery.
    pub sessions_lost: u64,
    pub keepers: u64,
    /// Of the tokens revoked before the fault, how many were accepted again after recovery;
    /// null when the strategy cannot revoke a single token.
    pub revocations_lost: Option<u64>,
    pub revoked_checked: u64,
    /// Sends the generator dropped (connection limit reached); when not zero, the availability
    /// figures are not the server's.
    #[serde(default)]
    pub dropped: u64,
    /// Outcomes per bucket, by intended send time.
    pub timeline: Vec<Bucket>,
}

impl OutageRecord {
    /// The store the fault hit, as its `persistence` says: `PostgreSQL` for `wal` and
    /// `unlogged`, `Redis` otherwise.
    pub fn store(&self) -> &'static str {
        match self.persistence.as_str() {
            "wal" | "unlogged" => "PostgreSQL",
            _ => "Redis",
        }
    }
}

/// Outcome classes of a timeline bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bucket {
    /// 2xx answers.
    pub ok: u64,
    /// 401 answers.
    pub unauthorized: u64,
    /// 503 answers.
    pub unavailable: u64,
    /// Timeouts, abandoned sends and transport errors.
    pub timeout: u64,
    /// Any other status.
    pub other: u64,
    /// Sends the generator could not make (every connection busy at its limit): not an
    /// outcome of the server, so not in `total`.
    #[serde(default)]
    pub dropped: u64,
}

impl Bucket {
    /// Requests sent (dropped sends left out).
    pub fn total(&self) -> u64 {
        self.ok + self.unauthorized + self.unavailable + self.timeout + self.other
    }

    pub fn add(&mut self, o: &Bucket) {
        self.ok += o.ok;
        self.unauthorized += o.unauthorized;
        self.unavailable += o.unavailable;
        self.timeout += o.timeout;
        self.other += o.other;
        self.dropped += o.dropped;
    }
}
