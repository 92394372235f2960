//! The records of the load scenarios (steady, sweep, login, and the steady points of rtt,
//! tokensize and scale), and the latency figures they carry: percentiles in microseconds and
//! the whole HdrHistogram, encoded so runs can be merged later.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::{Capabilities, Estimate, PopulationRun, Spread};

/// The scenarios a run can measure; a [`RunRecord`] names the one that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Closed loop at full speed: maximum throughput and latency percentiles.
    Steady,
    /// Open loop at fixed arrival rates: latency against offered load.
    Sweep,
    /// Open loop at one fixed arrival rate (`--rate`), every intended request accounted for.
    Rate,
    /// Open loop at one rate common to every variant, in rounds: CPU per request of the
    /// server, Redis and generator, and latency from the intended send time.
    Cost,
    /// Goose user flows (log in, call /me, log out): tokens issued per second.
    Login,
    /// How long a revoked token keeps working, per revocation kind, on one and two instances.
    Revocation,
    /// The store hangs, dies and restarts under load (Redis empty or from its append-only
    /// file, PostgreSQL through crash recovery).
    Outage,
    /// Steady load with Redis behind an injected round-trip time.
    Rtt,
    /// Steady load with 0, 1 and 4 KiB of extra claims.
    Tokensize,
    /// Redis memory per session or jti entry, and latency, with 10^4 .. 10^6 entries.
    Scale,
    /// Many users at their own rates, with clients that refresh, log in again and adopt fresh
    /// tokens: cost per user request against requests per token lifetime.
    Population,
}

impl Scenario {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Steady => "steady",
            Self::Sweep => "sweep",
            Self::Rate => "rate",
            Self::Cost => "cost",
            Self::Login => "login",
            Self::Revocation => "revocation",
            Self::Outage => "outage",
            Self::Rtt => "rtt",
            Self::Tokensize => "tokensize",
            Self::Scale => "scale",
            Self::Population => "population",
        }
    }
}

/// One measured configuration of one scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// `steady`, `sweep`, `rate`, `login`, or the steady point of `rtt`, `tokensize` or `scale`.
    pub scenario: Scenario,
    /// Strategy as the server reports it (`session`, `jwt`, ...).
    pub strategy: String,
    /// Strategy plus configuration (`session-pool`, `jwt-rs256`, ...).
    pub variant: String,
    pub server_args: Vec<String>,
    /// The server's `/capabilities` answer.
    pub capabilities: Option<Capabilities>,
    /// `closed` (as fast as answers come) or `open` (constant arrival rate).
    pub schedule: String,
    pub connections: usize,
    /// Open loop: the rate asked for.
    pub offered_rps: Option<f64>,
    /// Open loop: requests sent per second (answered, failed or timed out).
    #[serde(default)]
    pub achieved_rps: Option<f64>,
    /// Open loop: intended sends the generator could not make (every connection busy at its
    /// limit). Not a server outcome; when not zero, `latency_valid` is false.
    #[serde(default, alias = "dropped_sends")]
    pub dropped: Option<u64>,
    /// Open loop: every intended request by how it ended: `2xx`, `4xx`, `5xx`, `timeout`,
    /// `error` (and `3xx` when seen).
    #[serde(default)]
    pub outcomes: BTreeMap<String, u64>,
    /// Whether the latency figures describe the server (false when the generator dropped sends).
    #[serde(default = "yes")]
    pub latency_valid: bool,
    /// Open loop: connections the generator held at most, and its limit.
    #[serde(default)]
    pub peak_connections: Option<usize>,
    #[serde(default)]
    pub connection_limit: Option<usize>,
    pub repetitions: u32,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// Completed requests per second, per repetition.
    pub throughput_rps: Spread,
    /// Over all repetitions. Closed loop: service time. Open loop: from the intended send time.
    pub latency_us: Percentiles,
    pub latency_basis: String,
    /// Open loop: from the actual send.
    pub service_latency_us: Option<Percentiles>,
    /// Open loop: how late the pacer emitted sends against their schedule (the generator's own
    /// error, included in `latency_us`).
    #[serde(default)]
    pub pacer_lag_us: Option<Percentiles>,
    /// Open loop: from the pacer's emit to the request leaving (a free or new connection).
    #[serde(default)]
    pub connection_wait_us: Option<Percentiles>,
    pub requests: u64,
    /// Non-2xx answers plus transport errors and timeouts.
    pub errors: u64,
    pub status_counts: BTreeMap<String, u64>,
    pub redis_commands_per_request: Option<f64>,
    /// Redis network bytes in + out per request, from INFO stats deltas.
    #[serde(default)]
    pub redis_bytes_per_request: Option<f64>,
    pub redis_commands: BTreeMap<String, u64>,
    pub server_cpu_us_per_request: Option<f64>,
    pub redis_cpu_us_per_request: Option<f64>,
    /// CPU time of the generator's own threads per request sent, from their scheduler counters.
    pub generator_cpu_us_per_request: Option<f64>,
    /// Share of the window the busiest generator thread was running or waiting for a CPU:
    /// near 1.0, the generator never waited for the server.
    #[serde(default)]
    pub generator_busy: Option<f64>,
    /// Length of the bearer token sent with each request; for login, of the token issued.
    pub token_bytes: Option<u64>,
    pub server_peak_rss_bytes: Option<u64>,
    pub generator_bound: bool,
    /// Login scenario: server-side time split, from the `Server-Timing` header.
    pub login: Option<LoginSplit>,
    /// rtt scenario: the round trip added between server and store, in ms. Named for Redis,
    /// the first store measured; for a PostgreSQL variant it is PostgreSQL's.
    #[serde(default)]
    pub redis_rtt_ms: Option<f64>,
    /// rtt scenario: the store round trip measured through the relay (directly at 0), in ms:
    /// Redis `PING`, or for a PostgreSQL variant the answer to an SSLRequest on a fresh
    /// connection. Named for Redis; it holds whichever store the variant uses.
    #[serde(default)]
    pub redis_rtt_measured_ms: Option<f64>,
    /// tokensize scenario: extra claim bytes the server put in every token or session.
    #[serde(default)]
    pub claims_padding_bytes: Option<u64>,
    /// scale scenario: entries in the keyspace the load drew its tokens from.
    #[serde(default)]
    pub keyspace_entries: Option<u64>,
    /// Measured in rounds (steady, cost, rtt, tokensize): the rate every variant was offered
    /// (cost), the rounds, and per-request costs and latency as a median over the rounds
    /// with its 95 % interval. CPU comes from the kernel's per-thread scheduler counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_rps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_ns_per_request: Option<Estimate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_cpu_ns_per_request: Option<Estimate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_cpu_ns_per_request: Option<Estimate>,
    /// Per-round p50 and p99 (µs); from the intended send time in an open loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_us: Option<Estimate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p99_us: Option<Estimate>,
    /// Windows of this record measured again because other processes used the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noisy_windows: Option<u32>,
    /// population scenario: the users, their rate, the token lifetime, and what a user request
    /// cost in added calls and store commands.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub population: Option<PopulationRun>,
    /// HdrHistogram (V2, deflate, base64) of `latency_us` in nanoseconds, for merging runs.
    pub histogram: String,
}

fn yes() -> bool {
    true
}

/// Where the time of a login goes, as the server reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginSplit {
    pub samples: u64,
    pub argon2_ms_p50: f64,
    pub argon2_ms_p99: f64,
    pub mint_us_p50: f64,
    pub mint_us_p99: f64,
}

/// Latency against offered load for one variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepSummary {
    pub strategy: String,
    pub variant: String,
    /// The closed-loop maximum the steps are fractions of.
    pub max_rps: f64,
    /// Offered rates, in step order.
    pub offered_rps: Vec<f64>,
    pub p99_us: Vec<f64>,
    /// First offered rate whose p99 exceeds ten times the p99 at the lowest rate (and 1 ms), or
    /// whose achieved rate falls 5 % short of the offered one; null when latency stays flat.
    pub knee_rps: Option<f64>,
}

/// Highest latency a histogram records (ns); slower answers are clamped and counted as such.
pub const MAX_TRACKABLE_NS: u64 = 60_000_000_000;

/// A fresh latency histogram: 1 ns .. 60 s at 3 significant digits (sub-microsecond
/// resolution below a millisecond).
#[allow(clippy::expect_used)] // constant bounds, valid for hdrhistogram: cannot fail
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, 3).expect("valid histogram bounds")
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
    pub mean: f64,
    pub stdev: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        if h.is_empty() {
            return Self { p50: 0.0, p90: 0.0, p99: 0.0, p999: 0.0, p9999: 0.0, max: 0.0, mean: 0.0, stdev: 0.0 };
        }
        Self {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            p9999: us(h.value_at_quantile(0.9999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
            stdev: h.stdev() / 1000.0,
        }
    }
}

/// A histogram in HdrHistogram's V2 deflate format, base64: mergeable across machines.
pub fn serialize_histogram(h: &Histogram<u64>) -> String {
    use base64::Engine;
    use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
    let mut buf = Vec::new();
    match V2DeflateSerializer::new().serialize(h, &mut buf) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(buf),
        Err(_) => String::new(),
    }
}

/// Reads back [`serialize_histogram`]'s output.
pub fn deserialize_histogram(text: &str) -> anyhow::Result<Histogram<u64>> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(text)?;
    let mut cursor = std::io::Cursor::new(bytes);
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut cursor)
        .map_err(|e| anyhow::anyhow!("bad histogram: {e:?}"))
}
