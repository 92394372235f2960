//! The report's fixed-rate subsection: each `rate` record (open loop at one arrival rate, every
//! intended request accounted for), what clients saw and where the time and the CPU went, with
//! a plain warning on every record whose latency is not the server's.

use super::*;

/// The outcome classes shown, in order; `3xx` only when some record saw one.
const CLASSES: [&str; 6] = ["2xx", "3xx", "4xx", "5xx", "timeout", "error"];

impl Report<'_> {
    pub(super) fn fixed_rate(&mut self) {
        let mut records: Vec<&RunRecord> = Vec::new();
        for v in self.variants() {
            let mut of_variant = self.r.runs_of(&v, Scenario::Rate);
            of_variant.sort_by(|a, b| a.offered_rps.unwrap_or(0.0).total_cmp(&b.offered_rps.unwrap_or(0.0)));
            records.extend(of_variant);
        }
        if records.is_empty() {
            return;
        }
        self.push(Block::Heading(3, "Fixed rate".into()));
        let classes: Vec<&str> = CLASSES
            .into_iter()
            .filter(|c| *c != "3xx" || records.iter().any(|r| r.outcomes.get(*c).is_some_and(|n| *n > 0)))
            .collect();
        let label = |r: &RunRecord| {
            let mut text = r.variant.clone();
            if !r.latency_valid {
                text.push_str(" ✗");
            }
            if r.generator_bound {
                text.push_str(" ⚑");
            }
            text
        };

        let mut head = vec!["variant", "offered req/s", "achieved req/s", "dropped"];
        head.extend(classes.iter().copied());
        head.extend(["p50", "p99", "p99.9", "max"]);
        let mut seen = Table::new(head);
        for r in &records {
            let mut row =
                vec![label(r), opt(r.offered_rps, rate), opt(r.achieved_rps, rate), opt(r.dropped, |n| n.to_string())];
            row.extend(classes.iter().map(|c| r.outcomes.get(*c).copied().unwrap_or(0).to_string()));
            let mark = if r.latency_valid { "" } else { " ✗" };
            let l = &r.latency_us;
            row.extend([l.p50, l.p99, l.p999, l.max].map(|v| format!("{}{mark}", us(v))));
            seen.row(row);
        }
        let first = records.first().copied();
        seen.note = Some(format!(
            "Open loop at one fixed arrival rate (`--rate`, as wrk2's `-R`), {} s measured after {} s at the same rate. Every intended request ends in one outcome class (timeout: not answered within the {} s client deadline from its intended send time) or was dropped by the generator (every connection busy at its limit: never counted as a server timeout). Latency from each request's intended send time to when the client learned its outcome, for every request sent. ✗: latency not the server's (the generator dropped sends). ⚑ generator-bound: {}.",
            first.map_or(0.0, |r| r.duration_s),
            first.map_or(0.0, |r| r.warmup_s),
            self.r.method.request_timeout_s,
            generator_bound_rule(self.r)
        ));
        self.push(Block::Table(seen));

        let mut cost = Table::new([
            "variant",
            "offered req/s",
            "pacer lag p99",
            "connection wait p99",
            "service p50",
            "connections peak / limit",
            "server CPU µs/req",
            "store CPU µs/req",
            "generator CPU µs/req",
            "generator busy",
        ]);
        for r in &records {
            cost.row(vec![
                label(r),
                opt(r.offered_rps, rate),
                opt(r.pacer_lag_us, |p| us(p.p99)),
                opt(r.connection_wait_us, |p| us(p.p99)),
                opt(r.service_latency_us, |p| us(p.p50)),
                match (r.peak_connections, r.connection_limit) {
                    (Some(peak), Some(limit)) => format!("{peak} / {limit}"),
                    (peak, limit) => format!("{} / {}", opt(peak, |n| n.to_string()), opt(limit, |n| n.to_string())),
                },
                opt(r.server_cpu_us_per_request, cpu_us),
                opt(r.redis_cpu_us_per_request, cpu_us),
                opt(r.generator_cpu_us_per_request, cpu_us),
                opt(r.generator_busy, pct),
            ]);
        }
        cost.note = Some("Where the time went: pacer lag is how late the generator emitted a send against its schedule (its own error, inside the latency above); connection wait is from that emit to the request leaving on a free or newly opened connection (waiting for the server to free one); service is from leaving to the end of the answer. Connections are opened on demand up to the limit. CPU per request sent, warm-up included: the server's and Redis's from /proc, the generator's from its own threads' scheduler counters; generator busy: the share of the window its busiest thread was running or waiting for a CPU.".into());
        self.push(Block::Table(cost));

        for r in records {
            if let Some(why) = not_the_servers(r) {
                self.push(Block::Warning(format!("**{}** at {} req/s: {why}.", r.variant, opt(r.offered_rps, rate))));
            }
        }
    }
}
