//! What a suite measures: which strategy variants, which scenarios, for how long. Suites are
//! data, so `--suite`, `--strategies`, `--scenarios` and `--repetitions` only select and scale.

mod config;
mod estimate;
mod variant;

use std::time::Duration;

use authbench_server::StrategyName;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::results::{Fault, Kind, Scenario};
pub use config::{CpuPlacement, LoadConfig, RunConfig, ServeConfig};
pub use variant::{VARIANTS, Variant, select_variants, variant};

/// Password of the users every server the harness starts seeds (`user0`..).
pub const USER_PASSWORD: &str = "authbench-password";
/// The admin key of the servers the harness starts.
pub const ADMIN_KEY: &str = "authbench-admin";
/// Users each server seeds: steady tokens use user0..15, login flows user100 and up,
/// revocation victims user500..899, its background load user900..915.
pub const SEEDED_USERS: usize = 2000;
/// Revocation victims of one instance pairing: a user per kind and trial (user500.. for one
/// instance, user700.. for two), so trials run side by side on distinct victims.
pub const REVOCATION_VICTIMS_PER_PAIRING: usize = 200;
/// The most revocation trials the victims allow: one user per kind and trial in each pairing.
pub const MAX_REVOCATION_TRIALS: u32 = (REVOCATION_VICTIMS_PER_PAIRING / Kind::ALL.len()) as u32;
/// A run whose busiest generator thread was running or runnable for at least this share of its
/// window is `generator_bound`: the generator never waited for the server.
pub const GENERATOR_BOUND: f64 = 0.9;
/// The cost scenario's common rate, as a share of the lowest closed-loop rate any variant showed
/// in any round: a rate every variant sustains with margin, even in a slow round.
pub const COST_FRACTION: f64 = 0.5;
/// Foreign load, in CPUs, above which a measured window is thrown away and measured again:
/// a quarter of a CPU taken by processes other than the servers, Redis and the generator. On a
/// 2-core machine that is an eighth of it, enough to move a saturated variant's rate by more
/// than the differences compared; yet it is far above what an idle machine here reads (about
/// 0.01 CPU of background) and above the counters' rounding (10 ms ticks on each of a few
/// processes: a few hundredths of a CPU over a 1 s window), while one competing busy process
/// reads near 1.
pub const NOISE_THRESHOLD: f64 = 0.25;
/// How many times one window is measured again while it stays above [`NOISE_THRESHOLD`]; the
/// last measurement is kept, noisy or not, so a busy machine costs at most three windows each.
pub const NOISE_RETRIES: u32 = 2;

/// Refreshes a population point of `refresh` expects over its rounds, at least.
pub const MIN_REFRESHES: f64 = 100.0;

/// A named amount of measuring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SuiteName {
    /// About a minute: two rounds, short windows; run by the test suite.
    Smoke,
    /// Under fifteen minutes on 2 cores: what scripts/bench.sh runs.
    Default,
    /// Longer windows, more repetitions, every variant.
    Full,
}

impl SuiteName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Smoke => "smoke",
            Self::Default => "default",
            Self::Full => "full",
        }
    }
}

/// The parameters of one suite.
#[derive(Debug, Clone)]
pub struct SuitePlan {
    pub name: SuiteName,
    pub variants: Vec<&'static Variant>,
    pub scenarios: Vec<Scenario>,
    /// Rounds: steady, cost, rtt and tokensize measure every configuration once per round,
    /// in a shuffled order, this many times (`--repetitions`); calibration repeats at most 3.
    pub repetitions: u32,
    /// Server instances the steady, sweep and login load runs against (1 or 2).
    pub instances: u32,
    pub warmup: Duration,
    pub steady_duration: Duration,
    pub connections: usize,
    pub threads: usize,
    /// Sweep steps as fractions of the steady maximum.
    pub sweep_fractions: Vec<f64>,
    pub sweep_step: Duration,
    pub sweep_warmup: Duration,
    /// The rate scenario's arrival rate (`--rate`), requests per second; it runs for
    /// `steady_duration` after `warmup`.
    pub rate: Option<f64>,
    /// Open loop: most connections the generator may open (`--max-connections`); by default
    /// enough for the rate times the request deadline, up to the engine's ceiling.
    pub rate_connection_limit: Option<usize>,
    /// The cost scenario's window after its warm-up (the same connections, no gap); its rate is
    /// `rate` when given, else [`COST_FRACTION`] of the slowest variant's first-round maximum.
    pub cost_warmup: Duration,
    pub cost_duration: Duration,
    pub login_duration: Duration,
    /// Concurrent goose users in the login scenario.
    pub login_users: usize,
    pub calibration_duration: Duration,
    /// Access-token lifetime the revocation scenario runs its servers with: short, so the
    /// window of a design that cannot revoke is the token's real remaining lifetime.
    pub revocation_ttl: Duration,
    /// Probing stops once refusals have lasted this long after the last acceptance.
    pub revocation_settle: Duration,
    /// Trials per revocation kind and instance pairing, each on a victim of its own with the
    /// revoke at a random phase; side by side wherever one trial's revoke cannot end another's
    /// token (`--revocation-trials`).
    pub revocation_trials: u32,
    /// How long Redis is frozen in the hang fault (dead, in the kill faults, for a fifth of it).
    pub outage_fault: Duration,
    /// Load before and after the fault.
    pub outage_before: Duration,
    pub outage_after: Duration,
    /// Redis round-trip times the rtt scenario injects (0: direct).
    pub rtt_steps: Vec<Duration>,
    /// Extra claim sizes the tokensize scenario measures, in bytes.
    pub token_paddings: Vec<usize>,
    /// Keyspace sizes the scale scenario seeds.
    pub scale_sizes: Vec<usize>,
    /// Population: simulated users, each user's mean request rate (Poisson), and the requests
    /// per access-token lifetime `refresh` is measured at (its lifetime is set to give them;
    /// designs whose tokens do not expire within a run are measured once).
    pub population_users: u32,
    pub user_rate: f64,
    pub requests_per_lifetime: Vec<f64>,
    /// Population: rounds per point, one after the other with no silence between (the clients
    /// going on with what they hold), the first after a warm-up. Windows of whole seconds:
    /// `versioned` with a grace of whole seconds checks in bursts after each second begins.
    pub population_rounds: u32,
    pub population_warmup: Duration,
    pub population_window: Duration,
    /// Measured window of one rtt or tokensize point (one repetition, after `point_warmup`).
    pub point_duration: Duration,
    pub point_warmup: Duration,
    /// Rough wall time, said up front.
    pub estimate: Duration,
}

pub(crate) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

impl SuitePlan {
    pub fn new(name: SuiteName) -> Self {
        let names: &[&str] = match name {
            SuiteName::Smoke => &["baseline", "session", "jwt", "hybrid"],
            // session-pool, jwt-rs256 and versioned with its 30 s grace (which, within a default
            // run's short token lifetimes, behaves as jwt does) are in the full suite.
            SuiteName::Default => &[
                "baseline",
                "session",
                "session-pg",
                "jwt",
                "hybrid",
                "hybrid-denylist",
                "refresh",
                "versioned-g1",
                "pushed",
            ],
            SuiteName::Full => &[
                "baseline",
                "session",
                "session-pool",
                "session-pg",
                "session-pg-unlogged",
                "jwt",
                "jwt-rs256",
                "jwt-es256",
                "jwt-eddsa",
                "hybrid",
                "hybrid-denylist",
                "hybrid-pool",
                "refresh",
                "versioned",
                "versioned-g1",
                "pushed",
            ],
        };
        let variants = names.iter().filter_map(|n| variant(n)).collect();
        let threads = std::thread::available_parallelism().map_or(1, usize::from).clamp(1, 4);
        let scenarios = vec![
            Scenario::Steady,
            Scenario::Cost,
            Scenario::Sweep,
            Scenario::Login,
            Scenario::Revocation,
            Scenario::Outage,
            Scenario::Rtt,
            Scenario::Tokensize,
            Scenario::Scale,
            Scenario::Population,
        ];
        let rtt_steps = vec![secs(0.0), secs(0.00025), secs(0.001), secs(0.005)];
        let token_paddings = vec![0, 1024, 4096];
        let mut plan = match name {
            SuiteName::Smoke => Self {
                name,
                variants,
                scenarios,
                repetitions: 2,
                instances: 1,
                warmup: secs(0.2),
                steady_duration: secs(0.3),
                connections: 16,
                threads,
                sweep_fractions: vec![0.25, 0.75],
                sweep_step: secs(0.7),
                sweep_warmup: secs(0.2),
                rate: None,
                rate_connection_limit: None,
                cost_warmup: secs(0.2),
                cost_duration: secs(0.3),
                login_duration: secs(1.5),
                login_users: 4,
                calibration_duration: secs(1.0),
                revocation_ttl: secs(2.0),
                revocation_settle: secs(0.3),
                revocation_trials: 2,
                outage_fault: secs(1.0),
                outage_before: secs(0.5),
                outage_after: secs(1.0),
                rtt_steps: vec![secs(0.0), secs(0.001)],
                token_paddings: vec![0, 4096],
                scale_sizes: vec![10_000],
                population_users: 2_000,
                user_rate: 1.0,
                requests_per_lifetime: vec![1.0, 10.0],
                population_rounds: 2,
                population_warmup: secs(0.3),
                population_window: secs(1.0),
                point_duration: secs(0.4),
                point_warmup: secs(0.2),
                estimate: Duration::ZERO,
            },
            SuiteName::Default => Self {
                name,
                variants,
                scenarios,
                // Nine rounds: the interval of the median is then [x(2), x(8)] (96 % coverage),
                // which one odd round of a bimodal machine does not widen, as the whole range of
                // six would be.
                repetitions: 9,
                instances: 1,
                warmup: secs(0.3),
                steady_duration: secs(0.6),
                connections: 64,
                threads,
                sweep_fractions: vec![0.25, 0.5, 0.75, 1.0],
                sweep_step: secs(1.2),
                sweep_warmup: secs(0.3),
                rate: None,
                rate_connection_limit: None,
                cost_warmup: secs(0.3),
                cost_duration: secs(0.6),
                login_duration: secs(2.0),
                login_users: 8,
                calibration_duration: secs(2.0),
                revocation_ttl: secs(4.0),
                revocation_settle: secs(0.5),
                revocation_trials: 3,
                outage_fault: secs(2.0),
                outage_before: secs(1.0),
                outage_after: secs(1.5),
                rtt_steps: vec![secs(0.0), secs(0.001), secs(0.005)],
                // 1 KiB of claims reads as the line between 0 and 4 KiB; the full suite has it.
                token_paddings: vec![0, 4096],
                scale_sizes: vec![10_000, 100_000],
                population_users: 10_000,
                user_rate: 1.0,
                requests_per_lifetime: vec![1.0, 10.0, 100.0, 1000.0],
                population_rounds: 3,
                population_warmup: secs(0.3),
                population_window: secs(1.0),
                point_duration: secs(0.3),
                point_warmup: secs(0.15),
                estimate: Duration::ZERO,
            },
            SuiteName::Full => Self {
                name,
                variants,
                scenarios,
                repetitions: 10,
                instances: 1,
                warmup: secs(1.0),
                steady_duration: secs(4.0),
                connections: 64,
                threads,
                sweep_fractions: vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1],
                sweep_step: secs(5.0),
                sweep_warmup: secs(1.0),
                rate: None,
                rate_connection_limit: None,
                cost_warmup: secs(1.0),
                cost_duration: secs(4.0),
                login_duration: secs(10.0),
                login_users: 8,
                calibration_duration: secs(5.0),
                revocation_ttl: secs(20.0),
                revocation_settle: secs(1.0),
                revocation_trials: 5,
                outage_fault: secs(5.0),
                outage_before: secs(2.0),
                outage_after: secs(5.0),
                rtt_steps,
                token_paddings,
                scale_sizes: vec![10_000, 100_000, 1_000_000],
                population_users: 20_000,
                user_rate: 0.5,
                requests_per_lifetime: vec![1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0],
                population_rounds: 5,
                population_warmup: secs(1.0),
                population_window: secs(4.0),
                point_duration: secs(5.0),
                point_warmup: secs(1.0),
                estimate: Duration::ZERO,
            },
        };
        if name == SuiteName::Smoke {
            // The smoke suite checks that every scenario of the test suite's concern works end to
            // end in under a minute; rtt and tokensize are steady runs with other server flags.
            plan.scenarios
                .retain(|s| !matches!(s, Scenario::Rtt | Scenario::Tokensize | Scenario::Scale | Scenario::Population));
        }
        plan.estimate = plan.estimated_time();
        plan
    }

    /// Whether the population scenario measures `v`: every design that checks a token.
    pub fn measures_population(&self, v: &Variant) -> bool {
        // Its seeding writes Redis: the PostgreSQL variants are measured by the other scenarios.
        v.strategy != StrategyName::Baseline && !v.uses_postgres()
    }

    /// The access-token lifetimes `v` is measured at in the population scenario: one per
    /// requests-per-lifetime point for `refresh` (whole seconds, at least one), one hour (longer
    /// than any run) for the designs whose store traffic does not depend on it.
    pub fn population_lifetimes(&self, v: &Variant) -> Vec<Duration> {
        if v.strategy != StrategyName::Refresh {
            return vec![Duration::from_secs(3600)];
        }
        let mut out: Vec<Duration> = self
            .requests_per_lifetime
            .iter()
            .map(|l| Duration::from_secs((l / self.user_rate.max(1e-9)).round().max(1.0) as u64))
            .collect();
        out.dedup();
        out
    }

    /// The measured window of each population round at access lifetime `ttl` for `v`: the
    /// plan's, or longer (whole seconds) for a `refresh` point where the rounds together would
    /// expect fewer than [`MIN_REFRESHES`] refreshes (a Poisson user refreshes once per lifetime
    /// plus its mean gap): fewer make the figure a count of a few dozen, off by a fifth from one
    /// run to the next on counting alone.
    pub fn population_window_for(&self, v: &Variant, ttl: Duration) -> Duration {
        let window = self.population_window;
        if v.strategy != StrategyName::Refresh {
            return window;
        }
        let per_second = f64::from(self.population_users) / (ttl.as_secs_f64() + 1.0 / self.user_rate.max(1e-9));
        let needed = MIN_REFRESHES / per_second.max(1e-9) / f64::from(self.population_rounds.max(1));
        window.max(Duration::from_secs_f64(needed.ceil()))
    }

    /// How long probing may last after a revoke is acknowledged: past the token's lifetime and
    /// the 2 s leeway, so a design that cannot revoke shows its full window.
    pub fn revocation_cap(&self) -> Duration {
        // exp has one-second resolution and the servers allow 2 s of leeway.
        self.revocation_ttl + Duration::from_secs(4)
    }

    /// The faults the outage scenario injects for a variant: where its store matters, the hang
    /// and that store's kills (Redis: restarted empty and from its append-only file;
    /// PostgreSQL: restarted through crash recovery), only the hang in the smoke suite; the
    /// hang alone for designs that never call a store.
    pub fn outage_faults(&self, v: &Variant) -> Vec<Fault> {
        match (self.name, v.outage_matters()) {
            (SuiteName::Smoke, true) => vec![Fault::Hang],
            (SuiteName::Smoke, false) => vec![],
            (_, true) if v.uses_postgres() => vec![Fault::Hang, Fault::KillRecover],
            (_, true) => vec![Fault::Hang, Fault::KillEmpty, Fault::KillAof],
            (_, false) => vec![Fault::Hang],
        }
    }

    /// Whether the outage scenario measures this variant (client and algorithm variants fail
    /// as their siblings do).
    pub fn measures_outage(&self, v: &Variant) -> bool {
        matches!(
            v.name,
            "baseline"
                | "session"
                | "session-pg"
                | "session-pg-unlogged"
                | "jwt"
                | "hybrid"
                | "hybrid-denylist"
                | "hybrid-open"
                | "refresh"
                | "versioned-g1"
                | "pushed"
        )
    }

    /// Whether the rtt scenario measures this variant: the Redis designs, plus jwt as the flat
    /// line they are compared with.
    pub fn measures_rtt(&self, v: &Variant) -> bool {
        matches!(v.name, "session" | "session-pool" | "session-pg" | "hybrid" | "jwt" | "versioned-g1")
    }

    /// Whether the scale scenario measures this variant: the designs that keep an entry per
    /// session, refresh family, user version or revocation in Redis. Client variants store
    /// what their sibling does; of versioned, one variant is enough (the seeded tokens are past
    /// any grace, so both read the versions on every request): versioned-g1 when the plan has it.
    pub fn measures_scale(&self, v: &Variant) -> bool {
        match v.strategy {
            StrategyName::Refresh | StrategyName::Pushed => true,
            StrategyName::Versioned => {
                v.name == "versioned-g1" || !self.variants.iter().any(|o| o.name == "versioned-g1")
            }
            _ => matches!(v.name, "session" | "session-pg" | "hybrid" | "hybrid-denylist"),
        }
    }

    /// Whether the tokensize scenario measures this variant (baseline sends no token it reads).
    pub fn measures_tokensize(&self, v: &Variant) -> bool {
        matches!(v.name, "session" | "jwt" | "hybrid")
    }

    /// Instance counts the revocation scenario runs with: the smoke suite's short pass uses
    /// one; the others add the two-instance (revoke on A, probe on B) case.
    pub fn revocation_instances(&self) -> &'static [u32] {
        if self.name == SuiteName::Smoke { &[1] } else { &[1, 2] }
    }
}

impl SuitePlan {
    /// The variants the outage scenario runs: the plan's, plus hybrid with fail-open whenever
    /// hybrid is measured, since failing open is the point of that comparison.
    pub fn outage_variants(&self) -> Vec<&'static Variant> {
        let mut out: Vec<&'static Variant> =
            self.variants.iter().copied().filter(|v| self.measures_outage(v)).collect();
        if out.iter().any(|v| v.name == "hybrid") && !out.iter().any(|v| v.name == "hybrid-open") {
            out.extend(variant("hybrid-open"));
        }
        out
    }
}

#[cfg(test)]
mod tests;
