//! The report's performance sections: the summary table (with what a request costs the server,
//! Redis and the generator), throughput and latency charts, and latency against offered load.

use super::*;

impl Report<'_> {
    pub(super) fn summary(&mut self) -> anyhow::Result<()> {
        self.h2("Summary");
        let mut t = Table::new([
            "variant",
            "capacity req/s [95 %]",
            "server CPU/req [95 %]",
            "store CPU/req [95 %]",
            "generator CPU/req",
            "p99 at the common rate [95 %]",
            "store calls/req",
            "Redis B/req",
            "token B",
            "sweep knee req/s",
            "logins/s",
        ]);
        let interval_of = |e: Option<&Estimate>, f: fn(f64) -> String| {
            e.map_or_else(|| "–".to_owned(), |e| interval(e.median, e.ci95, f))
        };
        let mut common = None;
        for v in self.variants() {
            let s = self.r.steady(&v);
            let c = self.r.run(&v, Scenario::Cost);
            let knee = self.r.sweeps.iter().find(|x| x.variant == v);
            if s.is_none() && c.is_none() && knee.is_none() && self.r.run(&v, Scenario::Login).is_none() {
                continue;
            }
            common = common.or(c.and_then(|c| c.rate_rps));
            let flag = if s.is_some_and(|s| s.generator_bound) { " ⚑ generator-bound" } else { "" };
            // Files before schema 7 have no cost records: their saturation figures stand in.
            let per = c.or(s);
            t.row(vec![
                format!("{v}{flag}"),
                opt(s, |s| match s.throughput_rps.ci95 {
                    Some(ci) => interval(s.throughput_rps.median, ci, rate),
                    None => format!(
                        "{} ({}–{})",
                        rate(s.throughput_rps.median),
                        rate(s.throughput_rps.min),
                        rate(s.throughput_rps.max)
                    ),
                }),
                match c.and_then(|c| c.server_cpu_ns_per_request.as_ref()) {
                    Some(e) => interval(e.median, e.ci95, ns),
                    None => opt(s.and_then(|s| s.server_cpu_us_per_request), |u| ns(u * 1e3)),
                },
                match c.and_then(|c| c.redis_cpu_ns_per_request.as_ref()) {
                    Some(e) => interval(e.median, e.ci95, ns),
                    None => opt(s.and_then(|s| s.redis_cpu_us_per_request), |u| ns(u * 1e3)),
                },
                match c.and_then(|c| c.generator_cpu_ns_per_request.as_ref()) {
                    Some(e) => ns(e.median),
                    None => opt(s.and_then(|s| s.generator_cpu_us_per_request), |u| ns(u * 1e3)),
                },
                match c {
                    Some(c) => interval_of(c.latency_p99_us.as_ref(), us),
                    None => opt(s, |s| format!("{} (closed loop)", us(s.latency_us.p99))),
                },
                opt(per.and_then(redis_per_request), per_request),
                opt(per.and_then(|s| s.redis_bytes_per_request), |b| format!("{b:.0}")),
                opt(s.or(c).and_then(|s| s.token_bytes), |b| b.to_string()),
                match knee {
                    None => "–".into(),
                    Some(k) => k.knee_rps.map_or_else(|| format!("none up to {}", rate(k.max_rps)), rate),
                },
                opt(self.r.run(&v, Scenario::Login), |l| rate(l.throughput_rps.median)),
            ]);
        }
        let cost = match common {
            Some(r) => format!(
                "CPU per request and p99 at {} req/s, the open-loop rate every variant was offered (half the lowest capacity any variant showed in a round): server and store (Redis; PostgreSQL's postmaster, backends and the children it reaped) from the kernel's per-thread scheduler counters over the measured window, the generator's from its own threads (what the load itself cost, on the same machine); p99 from each request's intended send time",
                rate(r)
            ),
            None => "CPU per request at each variant's own saturation (no cost scenario in this run); latency is the closed loop's service time".into(),
        };
        t.note = Some(format!(
            "Capacity: closed loop, {}; [95 %] is the interval of the median over the rounds. {cost}. Store calls: Redis commands from INFO commandstats deltas, PostgreSQL statements from the servers' own counter (/metrics); Redis bytes from INFO deltas. ⚑ generator-bound: {}.",
            self.method_line(),
            generator_bound_rule(self.r)
        ));
        self.push(Block::Table(t));
        self.summary_behaviour();
        self.throughput_chart()?;
        self.spectrum_chart()?;
        Ok(())
    }

    /// Revocation, availability and memory per variant in one table.
    pub(super) fn summary_behaviour(&mut self) {
        let mut t = Table::new([
            "variant",
            "worst revocation window (1 instance)",
            "worst window (A→B)",
            "available while its store hangs",
            "available while its store is down",
            "sessions lost on a restart (Redis empty, PostgreSQL crash recovery)",
            "store bytes per entry",
        ]);
        let mut any = false;
        for v in self.variants() {
            let w1 = worst_window(self.r, &v, 1);
            let w2 = worst_window(self.r, &v, 2);
            let hang = self.r.outage(&v, Fault::Hang);
            let kill = killed_and_restarted(self.r, &v);
            let mem = self.r.scale.iter().filter(|s| s.variant == v).max_by_key(|s| s.entries);
            if w1.is_none() && w2.is_none() && hang.is_none() && kill.is_none() && mem.is_none() {
                continue;
            }
            any = true;
            let available = |o: &OutageRecord| {
                let [_, during, _] = dropped_by_phase(o);
                let mark = if during > 0 { " ✗ generator dropped sends" } else { "" };
                format!("{}{mark}", pct(o.availability_during))
            };
            let win = |w: Option<(Kind, Option<f64>)>| match w {
                None => "–".to_owned(),
                Some((k, Some(x))) => format!("{} ({})", ms(x), k.as_str()),
                Some((k, None)) => format!("still accepted at cap ({})", k.as_str()),
            };
            t.row(vec![
                v.clone(),
                win(w1),
                win(w2),
                opt(hang, available),
                opt(kill, available),
                opt(kill, |o| format!("{}/{}", o.sessions_lost, o.keepers)),
                opt(mem, |m| format!("{:.0} ({} {})", m.bytes_per_entry, m.entries, m.entry_kind)),
            ]);
        }
        if any {
            t.note = Some("Worst window: the longest time a revoked token kept working after the revoke was acknowledged, over the kinds probed (details under Revocation). Availability: share of requests answered 2xx while the store (Redis, or PostgreSQL for the variants that keep their sessions there) was unavailable (details under Store failure). Memory: the store's growth per seeded entry at the largest keyspace measured (Redis used_memory; PostgreSQL's pg_total_relation_size of the sessions table).".into());
            self.push(Block::Table(t));
        }
    }

    pub(super) fn throughput_chart(&mut self) -> anyhow::Result<()> {
        let rows: Vec<Bar> = self
            .variants()
            .iter()
            .filter_map(|v| self.r.steady(v))
            .map(|s| Bar {
                label: s.variant.clone(),
                colour: self.palette.colour(&s.variant),
                value: s.throughput_rps.median,
                min: s.throughput_rps.ci95.map_or(s.throughput_rps.min, |c| c[0]),
                max: s.throughput_rps.ci95.map_or(s.throughput_rps.max, |c| c[1]),
                note: format!(
                    "{}{}",
                    rate(s.throughput_rps.median),
                    if s.generator_bound { "  generator-bound" } else { "" }
                ),
                flagged: s.generator_bound,
            })
            .collect();
        if rows.is_empty() {
            self.p("Steady throughput was not measured in this run (the steady scenario did not run).");
            return Ok(());
        }
        let cal = self.r.calibration.as_ref().map(|c| {
            format!(
                "generator ceiling against baseline: {} req/s (wrk {}); pale bars are generator-bound",
                rate(c.engine_rps.median),
                c.wrk_rps.as_ref().map_or("–".into(), |w| rate(w.median))
            )
        });
        let bars = Bars {
            title: "Capacity per strategy (median, whiskers: 95 % interval)".into(),
            x_desc: "completed requests per second".into(),
            unit: Unit::Rate,
            rows,
            legend: cal,
        };
        let caption = format!(
            "Closed loop GET /me, {}. Bar: median over the rounds; whiskers: its 95 % interval (min and max for files before schema 7).",
            self.method_line()
        );
        self.chart(&bars, "throughput", "Steady throughput per strategy", caption)
    }

    pub(super) fn spectrum_chart(&mut self) -> anyhow::Result<()> {
        let mut panel = Panel::new("percentile", Unit::Nines, "latency (log scale)", Unit::Us);
        panel.y_log = true;
        panel.x_range = Some((0.0, 4.0));
        panel.legend = SeriesLabelPosition::UpperLeft;
        let mut fallback = Vec::new();
        for v in self.variants() {
            let Some(s) = self.r.steady(&v) else { continue };
            let points = match crate::results::deserialize_histogram(&s.histogram) {
                Ok(h) if !h.is_empty() => (0..=400)
                    .map(|i| {
                        let x = f64::from(i) / 100.0;
                        let q = 1.0 - 10f64.powf(-x);
                        (x, h.value_at_quantile(q) as f64 / 1000.0)
                    })
                    .collect(),
                _ => {
                    fallback.push(v.clone());
                    let l = &s.latency_us;
                    vec![(std::f64::consts::LOG10_2, l.p50), (1.0, l.p90), (2.0, l.p99), (3.0, l.p999), (4.0, l.p9999)]
                }
            };
            panel.series.push(Series { label: v.clone(), colour: self.palette.colour(&v), points, markers: false });
        }
        if panel.series.is_empty() {
            return Ok(());
        }
        let mut caption = format!(
            "Latency percentile spectrum of the steady runs to p99.99, from the HdrHistogram of every request over all repetitions (nanosecond resolution, 3 significant digits). Closed loop, service time; {}.",
            self.method_line()
        );
        if !fallback.is_empty() {
            caption.push_str(&format!(
                " No histogram for {}: drawn through its recorded percentiles only.",
                fallback.join(", ")
            ));
        }
        let fig = Figure::single("Latency percentile spectrum (steady, closed loop)", panel);
        self.chart(&fig, "latency_spectrum", "Latency percentile spectrum", caption)
    }

    pub(super) fn latency(&mut self) -> anyhow::Result<()> {
        self.h2("Latency versus offered load");
        if self.r.sweeps.is_empty() {
            self.p("Not measured in this run: the sweep scenario did not run.");
        } else {
            self.sweep()?;
        }
        self.fixed_rate();
        Ok(())
    }

    /// The sweep's table and chart. A step whose latency is not the server's (the generator
    /// dropped sends) is marked in the table and left out of the chart.
    fn sweep(&mut self) -> anyhow::Result<()> {
        let mut panel =
            Panel::new("offered load (requests per second)", Unit::Rate, "p99 latency (log scale)", Unit::Us);
        panel.y_log = true;
        panel.legend = SeriesLabelPosition::LowerRight;
        let mut t = Table::new(["variant", "closed-loop max req/s", "offered req/s → p99", "knee"]);
        let mut left_out = Vec::new();
        let mut not_sent = false;
        for v in self.variants() {
            let Some(s) = self.r.sweeps.iter().find(|x| x.variant == v) else { continue };
            let colour = self.palette.colour(&v);
            let steps = self.r.runs_of(&v, Scenario::Sweep);
            let step_at = |offered: f64| {
                steps.iter().find(|r| r.offered_rps.is_some_and(|o| (o - offered).abs() <= 1e-6 * offered.abs()))
            };
            let mut cells = Vec::new();
            let mut points = Vec::new();
            for (x, y) in s.offered_rps.iter().copied().zip(s.p99_us.iter().copied()) {
                let step = step_at(x);
                let dropped = step.and_then(|r| r.dropped).unwrap_or(0);
                match step {
                    Some(r) if !r.latency_valid => {
                        cells.push(format!("{} → ✗ {} ({dropped} dropped)", rate(x), us(y)));
                        left_out.push(format!("{v} at {} req/s ({dropped} sends dropped)", rate(x)));
                    }
                    _ if dropped > 0 => {
                        not_sent = true;
                        cells.push(format!("{} → {} ({dropped} not sent)", rate(x), us(y)));
                        points.push((x, y));
                    }
                    _ => {
                        cells.push(format!("{} → {}", rate(x), us(y)));
                        points.push((x, y));
                    }
                }
            }
            if let Some(k) = s.knee_rps
                && let Some(&(x, y)) = points.iter().find(|p| (p.0 - k).abs() < 1e-6)
            {
                panel.marks.push(Mark { x, y, colour, text: String::new() });
            }
            t.row(vec![
                v.clone(),
                rate(s.max_rps),
                cells.join(", "),
                s.knee_rps.map_or_else(|| "none (latency stays flat)".into(), rate),
            ]);
            let label = match s.knee_rps {
                Some(k) => format!("{v} (knee {})", rate(k)),
                None => format!("{v} (no knee)"),
            };
            panel.series.push(Series { label, colour, points, markers: true });
        }
        let m = &self.r.method;
        let connections = if self.r.schema_version >= 6 {
            format!("connections opened as clients need them ({} to start with)", m.connections)
        } else {
            format!("{} connections", m.connections)
        };
        let fractions = m.sweep_fractions.iter().map(|f| format!("{:.0} %", f * 100.0)).collect::<Vec<_>>().join(", ");
        let mut caption = format!(
            "Open loop at constant arrival rates of {fractions} of each variant's closed-loop maximum, {} s per step, {connections}; latency from each request's intended send time (coordinated omission corrected). Knee: first rate whose p99 exceeds ten times the p99 at the lowest rate (and 1 ms), or whose achieved rate falls 5 % short. Steps where the generator dropped sends at its connection limit (✗ in the table) are not drawn: their latency is not the server's.",
            m.sweep_step_s
        );
        if left_out.is_empty() {
            caption.push_str(" No step of this run was left out.");
        } else {
            caption.push_str(&format!(" Left out: {}.", left_out.join("; ")));
        }
        let fig = Figure::single("p99 latency versus offered load (open loop)", panel);
        self.chart(&fig, "latency_vs_load", "p99 latency versus offered load", caption.clone())?;
        if not_sent {
            caption.push_str(" Not sent: sends no connection could start before the step ended, in a step still drawn (schema 5 files counted them so and did not judge a step's latency by them).");
        }
        t.note = Some(caption);
        self.push(Block::Table(t));
        Ok(())
    }
}
