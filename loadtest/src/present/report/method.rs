//! The report's closing sections: criterion estimates and how every figure was obtained.

use super::*;

impl Report<'_> {
    pub(super) fn criterion(&mut self, bench: Option<&criterion::Criterion>) {
        self.h2("Micro-benchmarks (criterion)");
        match bench {
            None => self.p("No criterion results found (`target/criterion/*/new/estimates.json`). Run `cargo bench -p authbench-benches`, then `authbench report` again, to include them."),
            Some(c) => {
                let mut t = Table::new(["benchmark", "mean", "95 % CI", "median", "std. dev."]);
                for b in &c.benchmarks {
                    t.row(vec![
                        b.id.clone(),
                        ns(b.mean_ns),
                        format!("{} – {}", ns(b.mean_lo_ns), ns(b.mean_hi_ns)),
                        ns(b.median_ns),
                        ns(b.std_dev_ns),
                    ]);
                }
                t.note = Some(format!(
                    "criterion estimates read from {} (newest file written {}); they come from `cargo bench`, not from this run, so check that date against this run's.",
                    c.dir.display(),
                    c.newest.as_deref().unwrap_or("unknown")
                ));
                self.push(Block::Table(t));
            }
        }
    }

    pub(super) fn method(&mut self) {
        let r = self.r;
        self.h2("Method and environment");
        let e = &r.environment;
        let mut t = Table::new(["", ""]);
        let mut kv = |k: &str, v: String| t.row(vec![k.to_owned(), v]);
        kv("command", r.command.join(" "));
        kv("CPU", format!("{} ({} cores)", e.cpu_model, e.cores));
        kv("OS, kernel", format!("{}, {}", e.os, e.kernel));
        kv("rustc", e.rustc.clone());
        kv("Redis", e.redis_server.clone().unwrap_or_else(|| "–".into()));
        kv("wrk", e.wrk.clone().unwrap_or_else(|| "–".into()));
        kv("crates", e.crates.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "));
        kv(
            "CPU placement",
            format!(
                "server {}, generator {}, Redis {}; observed: {}",
                r.placement.server,
                r.placement.generator,
                r.placement.redis,
                r.placement.observed.iter().map(|(k, v)| format!("{k} on {v}")).collect::<Vec<_>>().join(", ")
            ),
        );
        let m = &r.method;
        kv(
            "repetitions, warm-up",
            format!("{} × {} s steady after {} s warm-up", m.repetitions, m.steady_duration_s, m.warmup_s),
        );
        kv("connections, generator threads", format!("{}, {}", m.connections, m.generator_threads));
        kv(
            "server instances",
            if m.instances > 1 {
                format!(
                    "{}: steady and sweep load split evenly across them; login flows against the first",
                    m.instances
                )
            } else {
                "1 (the revocation scenario adds a second one for its A→B case)".into()
            },
        );
        kv(
            "Redis",
            match &m.redis_cluster {
                Some(c) => format!(
                    "a Redis Cluster of {} masters ({}), run outside authbench; counters summed over the masters",
                    c.masters.len(),
                    c.masters.join(", ")
                ),
                None => "one redis-server started by authbench on loopback, emptied before each strategy".into(),
            },
        );
        kv("request timeout", format!("{} s", m.request_timeout_s));
        if let Some(c) = &r.calibration {
            kv(
                "generator calibration",
                format!(
                    "closed loop against baseline, {} × {} s, {} connections, {} threads: engine {} req/s ({}–{}), wrk {} req/s ({}) with the same connections and threads; engine/wrk {}. wrk is the cross-check of the engine's ceiling: below 1, the engine is the slower client of the two. `{}`",
                    c.repetitions,
                    c.duration_s,
                    c.connections,
                    c.threads,
                    rate(c.engine_rps.median),
                    rate(c.engine_rps.min),
                    rate(c.engine_rps.max),
                    opt(c.wrk_rps.as_ref().map(|w| w.median), rate),
                    opt(c.wrk_rps.as_ref(), |w| format!("{}–{}", rate(w.min), rate(w.max))),
                    opt(c.engine_to_wrk, ratio),
                    c.wrk_command.as_deref().unwrap_or("wrk not run")
                ),
            );
        } else {
            kv("generator calibration", "not run".into());
        }
        kv("generator-bound", self.generator_bound_method());
        if let Some(n) = &r.noise {
            kv("noise", noise_line(n));
        }
        self.push(Block::Table(t));
        self.push(Block::List(m.notes.clone()));
        self.push(Block::Heading(3, "Not measured".into()));
        let mut missing = r.not_measured.clone();
        missing.push("Everything ran on one machine over loopback: no network between client, server and Redis beyond the injected round trips of the rtt scenario.".into());
        self.push(Block::List(missing));
    }

    /// How `generator_bound` was decided, and which records of this run it flagged.
    fn generator_bound_method(&self) -> String {
        let flagged: Vec<String> = self
            .r
            .runs
            .iter()
            .filter(|x| x.generator_bound)
            .map(|x| {
                let mut why = Vec::new();
                if let Some(n) = x.dropped.filter(|n| *n > 0 && !x.latency_valid) {
                    why.push(format!("{n} sends dropped"));
                }
                if let Some(b) = x.generator_busy {
                    why.push(format!("busiest thread {}", pct(b)));
                }
                let at = x.offered_rps.map_or_else(String::new, |o| format!(" at {} req/s", rate(o)));
                let why = if why.is_empty() { String::new() } else { format!(" ({})", why.join(", ")) };
                format!("{} {}{at}{why}", x.variant, x.scenario.as_str())
            })
            .collect();
        let flagged = if flagged.is_empty() {
            "no record of this run is flagged".to_owned()
        } else {
            format!("flagged in this run: {}", flagged.join("; "))
        };
        format!("a record is flagged when {}; {flagged}.", generator_bound_rule(self.r))
    }
}

/// How many windows the noise monitor watched and repeated, and how noisy the worst was.
fn noise_line(n: &crate::results::Noise) -> String {
    let worst = n.worst().map_or_else(String::new, |w| format!(" ({})", w.label));
    format!(
        "{} windows watched, {} repeated above {} of foreign load (processes other than the servers, Redis and the generator); worst {}{worst}, steal at most {}",
        n.windows,
        n.repeated,
        cpus(n.threshold),
        cpus(n.max_foreign_cpu),
        pct(n.max_steal)
    )
}
