//! How long a plan takes, said before it starts: from its windows, with start-up, logins and
//! seeding included roughly. The test suite checks the named suites against their budgets.

use std::time::Duration;

use super::{SuitePlan, secs};
use crate::results::{Fault, Scenario};

impl SuitePlan {
    /// Wall time the plan should take, from its windows (start-up and logins included roughly).
    pub fn estimated_time(&self) -> Duration {
        let reps = f64::from(self.repetitions);
        let mut total = 0.0;
        let ttl = self.revocation_ttl.as_secs_f64();
        let settle = self.revocation_settle.as_secs_f64();
        let trials = f64::from(self.revocation_trials.max(1));
        // Each group of trials logs the background load's 16 users in first (when steady ran,
        // the background has a rate).
        let background = if self.scenarios.contains(&Scenario::Steady) { 0.5 } else { 0.0 };
        // A group of trials side by side: the victims' logins and the lead, the longest window
        // counted from the login (the phase is inside it), the settle.
        let together = |from_login: f64| background + 0.3 + from_login + settle;
        // Revoke-all trials in turns: each its login and lead, half a second of phase on
        // average, its window and the settle.
        let turns = |window: f64| background + trials * (0.15 + 0.5 + window + settle);
        // Refused only at expiry: lifetime, 2 s of leeway and exp's whole second, from the login.
        let expiry = ttl + 2.5;
        for v in &self.variants {
            if !(self.scenarios.contains(&Scenario::Revocation) && v.measures_revocation()) {
                continue;
            }
            for &n in self.revocation_instances() {
                // Per instance count: start-up, the per-user kinds, then revoke-all.
                total += 0.5
                    + match v.strategy.as_str() {
                        // Revoke-all rotates the key on one instance and ends every token there
                        // (trials take turns); the other instance keeps accepting until expiry.
                        "jwt" => together(expiry) + if n == 1 { turns(0.0) } else { together(expiry) },
                        // Revocations act at refresh time, or after the grace window (30 s is
                        // longer than any suite's token lifetime): every trial side by side.
                        "refresh" | "versioned" if v.name != "versioned-g1" => 2.0 * together(expiry),
                        // The revoke lands anywhere in the 1 s grace (the window is what is left of
                        // it); revoke-all trials take turns.
                        "versioned" => together(1.1) + turns(0.2),
                        // Never refuses: each group runs to its 1 s cap after the revoke.
                        "baseline" => 2.0 * together(2.0),
                        // At once (or as fast as a push): revoke-all trials take turns.
                        _ => together(1.0) + turns(0.0),
                    };
            }
        }
        if self.scenarios.contains(&Scenario::Outage) {
            for v in self.outage_variants() {
                for f in self.outage_faults(v) {
                    // Kills add a second of load and a restart; every fault adds logins and
                    // start-up, longer with an append-only file to sync or a PostgreSQL to
                    // create (initdb and start, about 1.5 s).
                    let down = if f.kills() { 1.5 } else { 0.0 };
                    let setup = if f == Fault::KillAof || v.uses_postgres() { 3.0 } else { 1.5 };
                    total += (self.outage_before + self.outage_fault + self.outage_after).as_secs_f64() + down + setup;
                }
            }
        }
        // Rounds: every window has its warm-up and a quarter second of connecting and reading
        // counters; every server starts and logs in once (about 0.7 s).
        let window = |warmup: Duration, duration: Duration| (warmup + duration).as_secs_f64() + 0.25;
        let has = |s: Scenario| self.scenarios.contains(&s);
        let mut per_round = 0.0;
        if has(Scenario::Steady) {
            per_round += window(self.warmup, self.steady_duration);
        }
        if has(Scenario::Cost) {
            per_round += window(self.cost_warmup, self.cost_duration);
        }
        if per_round > 0.0 {
            total += self.variants.len() as f64 * (reps * per_round + 0.7);
        }
        let point = reps * window(self.point_warmup, self.point_duration) + 0.8;
        for v in &self.variants {
            if has(Scenario::Rtt) && self.measures_rtt(v) {
                total += self.rtt_steps.len() as f64 * point;
            }
            if has(Scenario::Tokensize) && self.measures_tokensize(v) {
                total += self.token_paddings.len() as f64 * point;
            }
            if has(Scenario::Population) && self.measures_population(v) {
                // Per point: Redis, seeding (about 50k users a second) and the server, then
                // the rounds, each connecting and reading counters.
                let setup = 1.5 + f64::from(self.population_users) / 50_000.0 + self.population_warmup.as_secs_f64();
                for ttl in self.population_lifetimes(v) {
                    let window = self.population_window_for(v, ttl).as_secs_f64();
                    total += setup + f64::from(self.population_rounds) * (window + 0.2);
                }
            }
            if has(Scenario::Scale) && self.measures_scale(v) {
                // One window per size (no rounds), on a Redis and a server of its own; seeding
                // runs at about 100k entries per second on 2 cores.
                let once = window(self.point_warmup, self.point_duration) + 1.5;
                total += self.scale_sizes.iter().map(|n| once + *n as f64 / 100_000.0).sum::<f64>();
            }
        }
        let mut per_variant = 0.5;
        for s in &self.scenarios {
            per_variant += match s {
                Scenario::Revocation
                | Scenario::Outage
                | Scenario::Rtt
                | Scenario::Tokensize
                | Scenario::Scale
                | Scenario::Population
                | Scenario::Steady
                | Scenario::Cost => 0.0,
                Scenario::Sweep => {
                    self.sweep_fractions.len() as f64 * (self.sweep_warmup + self.sweep_step).as_secs_f64() + 0.3
                }
                Scenario::Rate => (self.warmup + self.steady_duration).as_secs_f64() + 0.5,
                // goose runs whole seconds.
                Scenario::Login => self.login_duration.as_secs_f64().ceil() + 1.0,
            };
        }
        let calibration = 2.0 * reps.min(3.0) * self.calibration_duration.as_secs_f64() + 3.0;
        secs(per_variant * self.variants.len() as f64 + calibration + total)
    }
}
