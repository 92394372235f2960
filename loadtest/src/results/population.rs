//! What a population run adds to its `runs[]` entry: the users, their rate, the access
//! lifetime, and what each user request cost in calls and store commands, with the figure a
//! design's own rules expect.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Estimate, Percentiles};

/// One population point of one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PopulationRun {
    /// Simulated users, each with credentials of its own.
    pub users: u64,
    /// Each user's mean request rate (Poisson arrivals).
    pub user_rate_rps: f64,
    /// Lifetime of the access tokens the server issued, seconds.
    pub access_ttl_s: f64,
    /// `user_rate_rps × access_ttl_s`: requests a user sends in one token's lifetime.
    pub requests_per_lifetime: f64,
    /// Requests the users meant to send in the measured windows (each one's own request, not
    /// the calls its client added).
    pub user_requests: u64,
    /// Calls the clients added, by kind: `refresh`, `login`, `retry`.
    pub extra_calls: BTreeMap<String, u64>,
    /// Those of them answered other than 2xx, or not answered.
    pub extra_calls_failed: BTreeMap<String, u64>,
    /// How long those calls took, from their write to their answer, by kind (kinds with calls).
    #[serde(default)]
    pub extra_call_latency_us: BTreeMap<String, Percentiles>,
    /// Redis commands per user request, per round (the added calls' included); null without
    /// Redis.
    pub redis_commands_per_user_request: Option<Estimate>,
    /// What the design's rules predict for it at this point, and how.
    pub expected_redis_commands_per_user_request: f64,
    pub expected_basis: String,
    /// `versioned`: the grace below which a token is trusted without Redis, seconds.
    pub grace_s: Option<f64>,
    /// How the users' first credentials were obtained.
    pub seeding: String,
}

impl PopulationRun {
    /// Added calls of `kind` per user request.
    pub fn per_user_request(&self, kind: &str) -> f64 {
        self.extra_calls.get(kind).copied().unwrap_or(0) as f64 / self.user_requests.max(1) as f64
    }
}
