//! The report's sections on single points: memory with the keyspace, the store's round trip,
//! token size, and logins.

use super::*;

impl Report<'_> {
    pub(super) fn scale(&mut self) -> anyhow::Result<()> {
        self.h2("Memory and scale");
        if self.r.scale.is_empty() {
            self.p("Not measured in this run: the scale scenario did not run.");
            return Ok(());
        }
        // Server memory and start-up (pushed replays its log there) when the run recorded them.
        let server = self.r.scale.iter().any(|s| s.server_rss_bytes.is_some() || s.server_start_seconds.is_some());
        let mut columns = vec![
            "variant",
            "entry",
            "entries",
            "store size (Redis used_memory; PostgreSQL table + indexes)",
            "bytes per entry",
            "req/s (one window)",
            "p50",
            "p99",
        ];
        if server {
            columns.extend(["server RSS", "server start"]);
        }
        let mut t = Table::new(columns);
        let mut panel =
            Panel::new("entries in the store (log scale)", Unit::Count, "store bytes per entry", Unit::Bytes);
        panel.x_log = true;
        // Head room above the highest line for the legend, which lists one line per variant.
        let highest = self.r.scale.iter().map(|s| s.bytes_per_entry).fold(0.0, f64::max);
        panel.y_range = Some((0.0, (highest * (1.0 + 0.1 * self.variants().len() as f64)).max(1.0)));
        panel.legend = SeriesLabelPosition::UpperRight;
        for v in self.variants() {
            let mut recs: Vec<_> = self.r.scale.iter().filter(|s| s.variant == v).collect();
            if recs.is_empty() {
                continue;
            }
            recs.sort_by_key(|s| s.entries);
            for s in &recs {
                let mut row = vec![
                    v.clone(),
                    s.entry_kind.clone(),
                    s.entries.to_string(),
                    bytes(s.used_memory_after as f64),
                    format!("{:.0}", s.bytes_per_entry),
                    rate(s.throughput_rps),
                    us(s.latency_p50_us),
                    us(s.latency_p99_us),
                ];
                if server {
                    row.push(s.server_rss_bytes.map_or_else(|| "–".to_owned(), |b| bytes(b as f64)));
                    row.push(s.server_start_seconds.map_or_else(|| "–".to_owned(), |t| format!("{t:.2} s")));
                }
                t.row(row);
            }
            let kind = recs.first().map(|s| s.entry_kind.clone()).unwrap_or_default();
            panel.series.push(Series {
                label: format!("{v} ({kind})"),
                colour: self.palette.colour(&v),
                points: recs.iter().map(|s| (s.entries as f64, s.bytes_per_entry)).collect(),
                markers: true,
            });
        }
        let mut caption = "Entries seeded in each strategy's own key layout (the entry column says what one entry is); bytes per entry = (used_memory after − before) / entries. Latency: steady load with tokens drawn over the whole keyspace.".to_owned();
        if server {
            caption.push_str(" Server RSS: the server's resident memory once it answers, before the load (pushed holds its replayed denylist there); server start: from starting it until it answers, the replay included.");
        }
        t.note = Some(caption.clone());
        self.push(Block::Table(t));
        let fig = Figure::single("Store memory per entry versus entries", panel);
        self.chart(&fig, "memory", "Store memory per entry", caption)
    }

    pub(super) fn rtt(&mut self) -> anyhow::Result<()> {
        self.h2("Store round-trip time");
        let mut panel = Panel::new(
            "round trip added between server and store (ms)",
            Unit::Ms,
            "throughput (requests per second)",
            Unit::Rate,
        );
        panel.legend = SeriesLabelPosition::UpperRight;
        let mut t = Table::new([
            "variant",
            "added RTT",
            "measured store RTT",
            "req/s [95 %]",
            "÷ direct, round by round",
            "p50",
            "p99",
        ]);
        for v in self.variants() {
            let mut runs = self.r.runs_of(&v, Scenario::Rtt);
            if runs.is_empty() {
                continue;
            }
            runs.sort_by(|a, b| a.redis_rtt_ms.unwrap_or(0.0).total_cmp(&b.redis_rtt_ms.unwrap_or(0.0)));
            let direct = runs.first().and_then(|r| r.throughput_rps.estimate());
            // A design with no store on its request path is a control: it must read no change.
            let control = runs.first().and_then(|r| redis_per_request(r)).is_some_and(|c| c < 0.001);
            for r in &runs {
                t.row(vec![
                    if control { format!("{v} (control)") } else { v.clone() },
                    opt(r.redis_rtt_ms, ms),
                    opt(r.redis_rtt_measured_ms, |m| format!("{m:.2} ms")),
                    spread_text(&r.throughput_rps),
                    per_round_ratio(r, direct.as_ref()),
                    us(r.latency_us.p50),
                    us(r.latency_us.p99),
                ]);
            }
            panel.series.push(Series {
                label: v.clone(),
                colour: self.palette.colour(&v),
                points: runs.iter().map(|r| (r.redis_rtt_ms.unwrap_or(0.0), r.throughput_rps.median)).collect(),
                markers: true,
            });
        }
        if panel.series.is_empty() {
            self.p("Not measured in this run: the rtt scenario did not run.");
            return Ok(());
        }
        let mut caption = format!(
            "Closed-loop load with the store (Redis, or PostgreSQL for the session-pg variants) reached through {}; every point's server runs at once and the points are measured in rounds, each round in a shuffled order. Median over the rounds with its 95 % interval; the ratio to the direct point is taken round by round, \"≈ same\" when its interval holds 1. Measured store RTT: Redis PING, PostgreSQL SSLRequest, median of 21. Controls (no store on the request path) must read \"≈ same\"; when one does not, the scenario is measured again and the method section says so.",
            self.r.rtt_injection.as_deref().unwrap_or("a delaying relay")
        );
        caption.push_str(&pool_limits(self.r));
        t.note = Some(caption.clone());
        self.push(Block::Table(t));
        let fig = Figure::single("Throughput versus store round-trip time", panel);
        self.chart(&fig, "rtt", "Throughput versus store round-trip time", caption)
    }

    pub(super) fn tokensize(&mut self) -> anyhow::Result<()> {
        self.h2("Token size");
        let mut tp = Panel::new(
            "extra claim bytes per token or session",
            Unit::Count,
            "throughput (requests per second)",
            Unit::Rate,
        );
        let mut cpu = Panel::new(
            "extra claim bytes per token or session",
            Unit::Count,
            "server CPU per request (µs)",
            Unit::Plain,
        );
        tp.title = Some("throughput".into());
        cpu.title = Some("server CPU per request".into());
        tp.legend = SeriesLabelPosition::LowerLeft;
        cpu.legend = SeriesLabelPosition::LowerRight;
        let mut t = Table::new([
            "variant",
            "extra claims",
            "token bytes",
            "req/s [95 %]",
            "÷ no extra claims, round by round",
            "p99",
            "server CPU µs/req",
        ]);
        for v in self.variants() {
            let mut runs = self.r.runs_of(&v, Scenario::Tokensize);
            if runs.is_empty() {
                continue;
            }
            runs.sort_by_key(|r| r.claims_padding_bytes.unwrap_or(0));
            let plain = runs.first().and_then(|r| r.throughput_rps.estimate());
            for r in &runs {
                t.row(vec![
                    v.clone(),
                    opt(r.claims_padding_bytes, |b| format!("{b} B")),
                    opt(r.token_bytes, |b| b.to_string()),
                    spread_text(&r.throughput_rps),
                    per_round_ratio(r, plain.as_ref()),
                    us(r.latency_us.p99),
                    opt(r.server_cpu_us_per_request, cpu_us),
                ]);
            }
            let colour = self.palette.colour(&v);
            let x = |r: &RunRecord| r.claims_padding_bytes.unwrap_or(0) as f64;
            tp.series.push(Series {
                label: v.clone(),
                colour,
                points: runs.iter().map(|r| (x(r), r.throughput_rps.median)).collect(),
                markers: true,
            });
            cpu.series.push(Series {
                label: v.clone(),
                colour,
                points: runs.iter().filter_map(|r| r.server_cpu_us_per_request.map(|c| (x(r), c))).collect(),
                markers: true,
            });
        }
        if tp.series.is_empty() {
            self.p("Not measured in this run: the tokensize scenario did not run.");
            return Ok(());
        }
        let caption = format!(
            "Closed-loop load with extra claim bytes in every token (JWT strategies) or stored session (session strategies), every point's server up at once and the points measured in rounds: a session token keeps its length while its stored session grows, so session's row is the control that prices the claims in Redis alone; token lengths are in the table. The ratio to no extra claims is taken round by round, \"≈ same\" when its interval holds 1. {}.",
            self.method_line()
        );
        t.note = Some(caption.clone());
        self.push(Block::Table(t));
        let fig = Figure { title: "What token size costs".into(), panels: vec![tp, cpu], columns: 2 };
        self.chart(&fig, "token_size", "What token size costs", caption)
    }

    pub(super) fn logins(&mut self) {
        self.h2("Logins");
        let mut t = Table::new([
            "variant",
            "logins/s (min–max)",
            "flow step p50",
            "p99",
            "argon2 p50",
            "argon2 p99",
            "token minting p50",
            "p99",
        ]);
        for v in self.variants() {
            let Some(l) = self.r.run(&v, Scenario::Login) else { continue };
            let split = l.login.as_ref();
            t.row(vec![
                v.clone(),
                format!(
                    "{} ({}–{})",
                    rate(l.throughput_rps.median),
                    rate(l.throughput_rps.min),
                    rate(l.throughput_rps.max)
                ),
                us(l.latency_us.p50),
                us(l.latency_us.p99),
                opt(split, |s| format!("{:.1} ms", s.argon2_ms_p50)),
                opt(split, |s| format!("{:.1} ms", s.argon2_ms_p99)),
                opt(split, |s| us(s.mint_us_p50)),
                opt(split, |s| us(s.mint_us_p99)),
            ]);
        }
        if t.rows.is_empty() {
            self.p("Not measured in this run: the login scenario did not run.");
            return;
        }
        let m = &self.r.method;
        t.note = Some(format!(
            "goose user flows (log in, GET /me, log out), {} users for {} s; argon2 and minting times from the server's Server-Timing header. Password hashing (argon2id) dominates a login for every strategy.",
            m.login_users, m.login_duration_s
        ));
        self.push(Block::Table(t));
    }
}

/// A throughput with its interval (files before schema 7: min–max over repetitions).
fn spread_text(t: &crate::results::Spread) -> String {
    match t.ci95 {
        Some(ci) => interval(t.median, ci, rate),
        None => format!("{} ({}–{})", rate(t.median), rate(t.min), rate(t.max)),
    }
}

/// A point's throughput over the first point's, round by round: "–" for the first point
/// itself, "≈ same (…)" when the interval holds 1.
fn per_round_ratio(r: &RunRecord, first: Option<&Estimate>) -> String {
    let Some(e) = r.throughput_rps.estimate() else { return "–".to_owned() };
    match first.and_then(|f| e.ratio_to(f)) {
        Some(q) if q.values.iter().all(|v| (*v - 1.0).abs() < 1e-12) => "–".to_owned(),
        Some(q) if q.ci95[0] <= 1.0 && q.ci95[1] >= 1.0 => format!("≈ same ({})", ratio_interval(q.median, q.ci95)),
        Some(q) => ratio_interval(q.median, q.ci95),
        None => "–".to_owned(),
    }
}

/// What bounds the PostgreSQL points: each server holds a pool of connections, one statement in
/// flight on each, so a round trip caps it at pool ÷ round trip requests per second (Redis's
/// multiplexed connection pipelines instead). Empty when no PostgreSQL point was measured.
fn pool_limits(r: &Results) -> String {
    let mut pools: Vec<(String, u64)> = Vec::new();
    for x in r.runs.iter().filter(|x| x.scenario == Scenario::Rtt) {
        let pool = x.capabilities.as_ref().and_then(|c| c.extra.get("postgres_pool_size")?.as_u64());
        if let Some(pool) = pool
            && !pools.iter().any(|(v, _)| *v == x.variant)
        {
            pools.push((x.variant.clone(), pool));
        }
    }
    pool_sentence(&pools)
}

fn pool_sentence(pools: &[(String, u64)]) -> String {
    let Some((_, first)) = pools.first() else { return String::new() };
    let each: Vec<String> = pools.iter().map(|(v, n)| format!("{v} keeps {n} PostgreSQL connections")).collect();
    format!(
        " {}: one statement in flight on each, so a round trip of t caps it at connections ÷ t requests per second ({first} connections at 1 ms: {} req/s), where Redis's one multiplexed connection pipelines every request.",
        each.join("; "),
        rate(*first as f64 * 1000.0)
    )
}

#[cfg(test)]
mod tests {
    use super::pool_sentence;

    #[test]
    fn the_pool_bound_is_said_with_its_figures() {
        assert_eq!(pool_sentence(&[]), "");
        let text = pool_sentence(&[("session-pg".to_owned(), 8)]);
        assert!(text.contains("session-pg keeps 8 PostgreSQL connections"), "{text}");
        assert!(text.contains("(8 connections at 1 ms: 8000 req/s)"), "{text}");
    }
}
