//! What a suite measures: which strategy variants, which scenarios, for how long. Suites are
//! data, so `--suite`, `--strategies`, `--scenarios` and `--repetitions` only select and scale.

use std::time::Duration;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// A named amount of measuring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SuiteName {
    /// Under a minute: every strategy once, short windows; run by the test suite.
    Smoke,
    /// Under ten minutes on 2 cores: what scripts/bench.sh runs.
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

/// The scenarios this CLI runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Closed loop at full speed: maximum throughput and latency percentiles.
    Steady,
    /// Open loop at fixed arrival rates: latency against offered load.
    Sweep,
    /// Goose user flows (log in, call /me, log out): tokens issued per second.
    Login,
    /// How long a revoked token keeps working, per revocation kind, on one and two instances.
    Revocation,
    /// Redis hangs, dies and restarts (empty or from its append-only file) under load.
    Outage,
    /// Steady load with Redis behind an injected round-trip time.
    Rtt,
    /// Steady load with 0, 1 and 4 KiB of extra claims.
    Tokensize,
    /// Redis memory per session or jti entry, and latency, with 10^4 .. 10^6 entries.
    Scale,
}

impl Scenario {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Steady => "steady",
            Self::Sweep => "sweep",
            Self::Login => "login",
            Self::Revocation => "revocation",
            Self::Outage => "outage",
            Self::Rtt => "rtt",
            Self::Tokensize => "tokensize",
            Self::Scale => "scale",
        }
    }
}

/// A strategy plus the server flags that configure it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// e.g. `session-pool`.
    pub name: &'static str,
    /// e.g. `session`.
    pub strategy: &'static str,
    /// Flags for `authbench-server` (the harness adds `--listen`, `--redis-url`, users).
    pub args: &'static [&'static str],
}

impl Variant {
    /// Whether the revocation scenario measures this variant. Variants that only change the
    /// Redis client or the signature algorithm revoke exactly as their sibling does, so they
    /// are left out to keep the suite short.
    pub fn measures_revocation(&self) -> bool {
        matches!(
            self.name,
            "baseline"
                | "session"
                | "jwt"
                | "hybrid"
                | "hybrid-denylist"
                | "refresh"
                | "versioned"
                | "versioned-g1"
                | "pushed"
        )
    }

    pub fn uses_redis(&self) -> bool {
        matches!(self.strategy, "session" | "hybrid" | "refresh" | "versioned" | "pushed")
    }

    /// Whether losing Redis can change what a request gets: a command on the request path, or
    /// state that a restart may lose (pushed keeps serving but its log goes).
    pub fn outage_matters(&self) -> bool {
        self.redis_on_request_path() || self.strategy == "pushed"
    }

    /// Whether the strategy signs JWTs, so that instances must share a key file.
    pub fn uses_jwt(&self) -> bool {
        matches!(self.strategy, "jwt" | "hybrid" | "refresh" | "versioned" | "pushed")
    }

    /// Whether an authenticated request may cost a Redis command (refresh's never does; its
    /// Redis is for logins and refreshes).
    pub fn redis_on_request_path(&self) -> bool {
        matches!(self.strategy, "session" | "hybrid" | "versioned")
    }
}

/// Every variant the harness knows, in report order.
pub const VARIANTS: &[Variant] = &[
    Variant { name: "baseline", strategy: "baseline", args: &["--strategy", "baseline"] },
    Variant { name: "session", strategy: "session", args: &["--strategy", "session"] },
    Variant { name: "session-pool", strategy: "session", args: &["--strategy", "session", "--redis-client", "pool"] },
    Variant { name: "jwt", strategy: "jwt", args: &["--strategy", "jwt", "--jwt-alg", "HS256"] },
    Variant { name: "jwt-rs256", strategy: "jwt", args: &["--strategy", "jwt", "--jwt-alg", "RS256"] },
    Variant { name: "jwt-es256", strategy: "jwt", args: &["--strategy", "jwt", "--jwt-alg", "ES256"] },
    Variant { name: "jwt-eddsa", strategy: "jwt", args: &["--strategy", "jwt", "--jwt-alg", "EdDSA"] },
    Variant { name: "hybrid", strategy: "hybrid", args: &["--strategy", "hybrid"] },
    Variant { name: "hybrid-denylist", strategy: "hybrid", args: &["--strategy", "hybrid", "--jti-mode", "denylist"] },
    Variant { name: "hybrid-pool", strategy: "hybrid", args: &["--strategy", "hybrid", "--redis-client", "pool"] },
    Variant { name: "hybrid-open", strategy: "hybrid", args: &["--strategy", "hybrid", "--fail-mode", "open"] },
    Variant { name: "refresh", strategy: "refresh", args: &["--strategy", "refresh"] },
    Variant { name: "versioned", strategy: "versioned", args: &["--strategy", "versioned"] },
    // A grace of one second: Redis is asked for every token older than that.
    Variant { name: "versioned-g1", strategy: "versioned", args: &["--strategy", "versioned", "--grace", "1s"] },
    Variant { name: "pushed", strategy: "pushed", args: &["--strategy", "pushed"] },
];

/// Looks a variant up by name.
pub fn variant(name: &str) -> Option<&'static Variant> {
    VARIANTS.iter().find(|v| v.name == name)
}

/// The parameters of one suite.
#[derive(Debug, Clone)]
pub struct SuitePlan {
    pub name: SuiteName,
    pub variants: Vec<&'static Variant>,
    pub scenarios: Vec<Scenario>,
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
    pub login_duration: Duration,
    /// Concurrent goose users in the login scenario.
    pub login_users: usize,
    pub calibration_duration: Duration,
    /// Access-token lifetime the revocation scenario runs its servers with: short, so the
    /// window of a design that cannot revoke is the token's real remaining lifetime.
    pub revocation_ttl: Duration,
    /// Probing stops once refusals have lasted this long after the last acceptance.
    pub revocation_settle: Duration,
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
    /// Measured window of one rtt or tokensize point (one repetition, after `point_warmup`).
    pub point_duration: Duration,
    pub point_warmup: Duration,
    /// Rough wall time, said up front.
    pub estimate: Duration,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

impl SuitePlan {
    pub fn new(name: SuiteName) -> Self {
        let names: &[&str] = match name {
            SuiteName::Smoke => &["baseline", "session", "jwt", "hybrid"],
            // session-pool, jwt-rs256 and versioned with its 30 s grace (which, within a default
            // run's short token lifetimes, behaves as jwt does) are in the full suite.
            SuiteName::Default => {
                &["baseline", "session", "jwt", "hybrid", "hybrid-denylist", "refresh", "versioned-g1", "pushed"]
            }
            SuiteName::Full => &[
                "baseline",
                "session",
                "session-pool",
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
            Scenario::Sweep,
            Scenario::Login,
            Scenario::Revocation,
            Scenario::Outage,
            Scenario::Rtt,
            Scenario::Tokensize,
            Scenario::Scale,
        ];
        let rtt_steps = vec![secs(0.0), secs(0.00025), secs(0.001), secs(0.005)];
        let token_paddings = vec![0, 1024, 4096];
        let mut plan = match name {
            SuiteName::Smoke => Self {
                name,
                variants,
                scenarios,
                repetitions: 1,
                instances: 1,
                warmup: secs(0.3),
                steady_duration: secs(1.0),
                connections: 16,
                threads,
                sweep_fractions: vec![0.25, 0.75],
                sweep_step: secs(0.7),
                sweep_warmup: secs(0.2),
                login_duration: secs(1.5),
                login_users: 4,
                calibration_duration: secs(1.0),
                revocation_ttl: secs(2.0),
                revocation_settle: secs(0.3),
                outage_fault: secs(1.0),
                outage_before: secs(0.5),
                outage_after: secs(1.0),
                rtt_steps: vec![secs(0.0), secs(0.001)],
                token_paddings: vec![0, 4096],
                scale_sizes: vec![10_000],
                point_duration: secs(0.5),
                point_warmup: secs(0.2),
                estimate: Duration::ZERO,
            },
            SuiteName::Default => Self {
                name,
                variants,
                scenarios,
                repetitions: 3,
                instances: 1,
                warmup: secs(1.0),
                steady_duration: secs(3.0),
                connections: 64,
                threads,
                sweep_fractions: vec![0.25, 0.5, 0.75, 1.0],
                sweep_step: secs(1.5),
                sweep_warmup: secs(0.3),
                login_duration: secs(2.0),
                login_users: 8,
                calibration_duration: secs(2.0),
                revocation_ttl: secs(4.0),
                revocation_settle: secs(0.5),
                outage_fault: secs(2.5),
                outage_before: secs(1.0),
                outage_after: secs(2.0),
                rtt_steps: vec![secs(0.0), secs(0.001), secs(0.005)],
                token_paddings,
                scale_sizes: vec![10_000, 100_000],
                point_duration: secs(1.0),
                point_warmup: secs(0.5),
                estimate: Duration::ZERO,
            },
            SuiteName::Full => Self {
                name,
                variants,
                scenarios,
                repetitions: 5,
                instances: 1,
                warmup: secs(2.0),
                steady_duration: secs(10.0),
                connections: 64,
                threads,
                sweep_fractions: vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1],
                sweep_step: secs(5.0),
                sweep_warmup: secs(1.0),
                login_duration: secs(10.0),
                login_users: 8,
                calibration_duration: secs(5.0),
                revocation_ttl: secs(20.0),
                revocation_settle: secs(1.0),
                outage_fault: secs(5.0),
                outage_before: secs(2.0),
                outage_after: secs(5.0),
                rtt_steps,
                token_paddings,
                scale_sizes: vec![10_000, 100_000, 1_000_000],
                point_duration: secs(5.0),
                point_warmup: secs(1.0),
                estimate: Duration::ZERO,
            },
        };
        if name == SuiteName::Smoke {
            // The smoke suite checks that every scenario of the test suite's concern works end to
            // end in under a minute; rtt and tokensize are steady runs with other server flags.
            plan.scenarios.retain(|s| !matches!(s, Scenario::Rtt | Scenario::Tokensize | Scenario::Scale));
        }
        plan.estimate = plan.estimated_time();
        plan
    }

    /// Wall time the plan should take, from its windows (start-up and logins included roughly).
    /// How long probing may last after a revoke is acknowledged: past the token's lifetime and
    /// the 2 s leeway, so a design that cannot revoke shows its full window.
    pub fn revocation_cap(&self) -> Duration {
        // exp has one-second resolution and the servers allow 2 s of leeway.
        self.revocation_ttl + Duration::from_secs(4)
    }

    /// The faults the outage scenario injects for a variant: all three where Redis matters
    /// (only the hang in the smoke suite), the hang alone for designs that never call Redis.
    pub fn outage_faults(&self, v: &Variant) -> Vec<crate::outage::Fault> {
        use crate::outage::Fault;
        match (self.name, v.outage_matters()) {
            (SuiteName::Smoke, true) => vec![Fault::Hang],
            (SuiteName::Smoke, false) => vec![],
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
        matches!(v.name, "session" | "session-pool" | "hybrid" | "jwt" | "versioned-g1")
    }

    /// Whether the scale scenario measures this variant: the designs that keep an entry per
    /// session, refresh family, user version or revocation in Redis. Client variants store
    /// what their sibling does; of versioned, one variant is enough (the seeded tokens are past
    /// any grace, so both read the versions on every request): versioned-g1 when the plan has it.
    pub fn measures_scale(&self, v: &Variant) -> bool {
        match v.strategy {
            "refresh" | "pushed" => true,
            "versioned" => v.name == "versioned-g1" || !self.variants.iter().any(|o| o.name == "versioned-g1"),
            _ => matches!(v.name, "session" | "hybrid" | "hybrid-denylist"),
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

    pub fn estimated_time(&self) -> Duration {
        let reps = f64::from(self.repetitions);
        let mut total = 0.0;
        let ttl = self.revocation_ttl.as_secs_f64();
        let settle = self.revocation_settle.as_secs_f64();
        for v in &self.variants {
            if !(self.scenarios.contains(&Scenario::Revocation) && v.measures_revocation()) {
                continue;
            }
            for &n in self.revocation_instances() {
                // Per instance count: the per-user kinds together, then revoke-all, plus start-up.
                total += 1.0
                    + match v.strategy {
                        // Refused only at expiry (lifetime + leeway + rounding); revoke-all rotates
                        // the key on one instance, the other keeps accepting until expiry.
                        "jwt" => (ttl + 2.5) + if n == 1 { settle + 0.3 } else { ttl + 2.5 },
                        // Revocations act at refresh time, or after the grace window (30 s is
                        // longer than any suite's token lifetime).
                        "refresh" | "versioned" if v.name != "versioned-g1" => 2.0 * (ttl + 2.5),
                        "versioned" => 2.0 * (settle + 1.5),
                        // Never refuses: each batch runs to its 1 s cap.
                        "baseline" => 2.0 * 1.3,
                        _ => 2.0 * (settle + 0.3),
                    };
            }
        }
        if self.scenarios.contains(&Scenario::Outage) {
            for v in self.outage_variants() {
                for f in self.outage_faults(v) {
                    // Kills add a second of load and a restart; every fault adds logins and start-up.
                    let down = if f == crate::outage::Fault::Hang { 0.0 } else { 1.5 };
                    let setup = if f == crate::outage::Fault::KillAof { 3.0 } else { 1.5 };
                    total += (self.outage_before + self.outage_fault + self.outage_after).as_secs_f64() + down + setup;
                }
            }
        }
        let point = (self.point_duration + self.point_warmup).as_secs_f64() + 1.0;
        for v in &self.variants {
            if self.scenarios.contains(&Scenario::Rtt) && self.measures_rtt(v) {
                total += self.rtt_steps.len() as f64 * point;
            }
            if self.scenarios.contains(&Scenario::Tokensize) && self.measures_tokensize(v) {
                total += self.token_paddings.len() as f64 * point;
            }
            if self.scenarios.contains(&Scenario::Scale) && self.measures_scale(v) {
                // Seeding runs at about 100k entries per second on 2 cores.
                total += self.scale_sizes.iter().map(|n| point + *n as f64 / 100_000.0 + 0.5).sum::<f64>();
            }
        }
        let mut per_variant = 0.5;
        for s in &self.scenarios {
            per_variant += match s {
                Scenario::Revocation | Scenario::Outage | Scenario::Rtt | Scenario::Tokensize | Scenario::Scale => 0.0,
                Scenario::Steady => reps * (self.warmup + self.steady_duration).as_secs_f64() + 0.3,
                Scenario::Sweep => {
                    self.sweep_fractions.len() as f64 * (self.sweep_warmup + self.sweep_step).as_secs_f64() + 0.3
                }
                // goose runs whole seconds.
                Scenario::Login => self.login_duration.as_secs_f64().ceil() + 1.0,
            };
        }
        let calibration = 2.0 * reps * self.calibration_duration.as_secs_f64() + 3.0;
        secs(per_variant * self.variants.len() as f64 + calibration + total)
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

/// Chooses variants from a `--strategies` list: a strategy name selects every variant of that
/// strategy in the suite, a variant name selects exactly that variant.
pub fn select_variants(suite: &[&'static Variant], wanted: &[String]) -> Result<Vec<&'static Variant>, String> {
    let mut chosen: Vec<&'static Variant> = Vec::new();
    for w in wanted {
        let of_strategy: Vec<&'static Variant> = suite.iter().copied().filter(|s| s.strategy == w.as_str()).collect();
        let matches = if !of_strategy.is_empty() { of_strategy } else { variant(w).into_iter().collect() };
        if matches.is_empty() {
            let known: Vec<&str> = VARIANTS.iter().map(|v| v.name).collect();
            return Err(format!("unknown strategy {w:?}; known: {}", known.join(", ")));
        }
        for m in matches {
            if !chosen.contains(&m) {
                chosen.push(m);
            }
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_fit_their_budgets() {
        let smoke = SuitePlan::new(SuiteName::Smoke).estimated_time();
        let default = SuitePlan::new(SuiteName::Default).estimated_time();
        assert!(smoke < Duration::from_secs(60), "smoke {smoke:?}");
        assert!(default < Duration::from_secs(600), "default {default:?}");
    }

    #[test]
    fn scale_measures_every_design_that_keeps_entries_once() {
        let names = |plan: &SuitePlan| {
            plan.variants.iter().filter(|v| plan.measures_scale(v)).map(|v| v.name).collect::<Vec<_>>()
        };
        let expected = ["session", "hybrid", "hybrid-denylist", "refresh", "versioned-g1", "pushed"];
        assert_eq!(names(&SuitePlan::new(SuiteName::Default)), expected);
        assert_eq!(names(&SuitePlan::new(SuiteName::Full)), expected);
        let mut alone = SuitePlan::new(SuiteName::Smoke);
        alone.variants = vec![variant("versioned").unwrap()];
        assert_eq!(names(&alone), ["versioned"]);
        for v in VARIANTS {
            assert_eq!(
                crate::scale::EntryKind::of(v).is_some(),
                v.uses_redis(),
                "{}: a Redis design has an entry kind",
                v.name
            );
        }
    }

    #[test]
    fn strategies_select_variants() {
        let plan = SuitePlan::new(SuiteName::Default);
        let names = |v: Vec<&Variant>| v.iter().map(|v| v.name).collect::<Vec<_>>();
        assert_eq!(names(select_variants(&plan.variants, &["session".into()]).unwrap()), ["session"]);
        let full = SuitePlan::new(SuiteName::Full);
        assert_eq!(
            names(select_variants(&full.variants, &["versioned".into()]).unwrap()),
            ["versioned", "versioned-g1"]
        );
        assert_eq!(names(select_variants(&plan.variants, &["jwt-es256".into()]).unwrap()), ["jwt-es256"]);
        assert!(select_variants(&plan.variants, &["kerberos".into()]).is_err());
    }
}
