//! `authbench report DIR`: renders `report.md`, a self-contained `report.html` and
//! `charts/*.svg|png` from `DIR/results.json` alone.
//!
//! Every section is built once as [`doc::Block`]s, so the Markdown and the HTML say the same
//! thing. Figures come from the results file; thresholds used by the decision guide are the
//! guide's own and are printed with it.

pub mod charts;
pub mod criterion;
pub mod doc;
pub mod guide;
pub mod style;

use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::SeriesLabelPosition;

use crate::results::{Capabilities, Fault, Kind, OutageRecord, Results, RevocationRecord, RunRecord, Scenario};
use charts::{Bar, Bars, Figure, Mark, Panel, Series, Shade, Timeline, TimelineRow, Unit};
use doc::{Block, ChartRef, Table};
use style::Palette;

use crate::present::units::{bytes, cpu_us, ms, ns, opt, pct, per_request, rate, ratio, us};

/// What `render` wrote.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub markdown: PathBuf,
    pub html: PathBuf,
    pub charts: Vec<PathBuf>,
}

/// Renders the report of `dir` (which holds results.json); criterion estimates are read from
/// `criterion_dir` when given and present.
pub fn render(dir: &Path, criterion_dir: Option<&Path>) -> anyhow::Result<Rendered> {
    let results = crate::results::load(&dir.join("results.json"))?;
    let charts_dir = dir.join("charts");
    std::fs::create_dir_all(&charts_dir).with_context(|| format!("cannot create {}", charts_dir.display()))?;
    let bench = criterion_dir.map(criterion::read).transpose()?.flatten();
    let mut report = Report {
        r: &results,
        palette: Palette::of(&results),
        dir: &charts_dir,
        blocks: Vec::new(),
        charts: Vec::new(),
    };
    report.build(bench.as_ref())?;
    let markdown = dir.join("report.md");
    let html = dir.join("report.html");
    std::fs::write(&markdown, doc::markdown(&report.blocks))
        .with_context(|| format!("cannot write {}", markdown.display()))?;
    let title = format!("authbench report {}", results.run_id);
    std::fs::write(&html, doc::html(&title, &report.blocks))
        .with_context(|| format!("cannot write {}", html.display()))?;
    Ok(Rendered { markdown, html, charts: report.charts })
}

struct Report<'a> {
    r: &'a Results,
    palette: Palette,
    dir: &'a Path,
    blocks: Vec<Block>,
    charts: Vec<PathBuf>,
}

/// Redis commands per request, with 0 for a strategy that reports it has no store.
pub(crate) fn redis_per_request(run: &RunRecord) -> Option<f64> {
    run.redis_commands_per_request.or_else(|| {
        let storeless = run.capabilities.as_ref().is_some_and(Capabilities::storeless);
        (storeless || run.strategy == "baseline").then_some(0.0)
    })
}

/// The longest window over the kinds a variant was probed for; `None` inside means a token
/// still accepted at the cap.
pub(crate) fn worst_window(r: &Results, variant: &str, instances: u32) -> Option<(Kind, Option<f64>)> {
    let mut worst: Option<(Kind, Option<f64>)> = None;
    for kind in Kind::ALL {
        let Some(rec) = r.revocation(variant, kind, instances) else { continue };
        if rec.accepted_before_revoke == 0 {
            continue;
        }
        let w = rec.window_ms;
        let worse = match (worst, w) {
            (None, _) => true,
            (Some((_, None)), _) => false,
            (Some((_, Some(_))), None) => true,
            (Some((_, Some(a))), Some(b)) => b > a,
        };
        if worse {
            worst = Some((kind, w));
        }
    }
    worst
}

pub(crate) fn window_text(rec: &RevocationRecord) -> String {
    match rec.window_ms {
        _ if rec.accepted_before_revoke == 0 => "token never worked".to_owned(),
        Some(w) => ms(w),
        None => format!("> {} (cap)", ms(rec.cap_ms)),
    }
}

fn fault_label(f: Fault) -> &'static str {
    match f {
        Fault::Hang => "Redis hangs (SIGSTOP)",
        Fault::KillEmpty => "Redis killed, restarted empty",
        Fault::KillAof => "Redis killed, restarted from AOF",
    }
}

const FAULTS: [Fault; 3] = [Fault::Hang, Fault::KillEmpty, Fault::KillAof];

impl Report<'_> {
    fn push(&mut self, b: Block) {
        self.blocks.push(b);
    }

    fn h2(&mut self, t: &str) {
        self.push(Block::Heading(2, t.to_owned()));
    }

    fn p(&mut self, t: impl Into<String>) {
        self.push(Block::Para(t.into()));
    }

    fn chart<C: charts::Draw>(&mut self, c: &C, file: &str, title: &str, caption: String) -> anyhow::Result<()> {
        let svg = charts::save(c, self.dir, file)?;
        self.charts.push(self.dir.join(format!("{file}.svg")));
        self.charts.push(self.dir.join(format!("{file}.png")));
        self.push(Block::Chart(ChartRef { file: file.to_owned(), title: title.to_owned(), caption, svg }));
        Ok(())
    }

    fn variants(&self) -> Vec<String> {
        self.palette.names().map(str::to_owned).collect()
    }

    fn method_line(&self) -> String {
        let m = &self.r.method;
        let instances =
            if m.instances > 1 { format!(", load split over {} server instances", m.instances) } else { String::new() };
        format!(
            "{} repetitions of {} s after {} s warm-up, {} connections, {} generator threads{instances}",
            m.repetitions, m.steady_duration_s, m.warmup_s, m.connections, m.generator_threads
        )
    }

    fn build(&mut self, bench: Option<&criterion::Criterion>) -> anyhow::Result<()> {
        self.header();
        self.summary()?;
        let guide = guide::guide(self.r);
        self.h2("Decision guide");
        self.p("Each line is a requirement, the strategies of this run that meet it and the figures that decide it. Thresholds are the guide's; every number is this run's. Where a figure was not measured, the line says so instead of guessing.");
        self.blocks.extend(guide);
        self.latency()?;
        self.revocation()?;
        self.outage()?;
        self.scale()?;
        self.rtt()?;
        self.tokensize()?;
        self.logins();
        self.criterion(bench);
        self.method();
        Ok(())
    }

    fn header(&mut self) {
        let r = self.r;
        self.push(Block::Heading(1, format!("authbench report: {}", r.run_id)));
        let e = &r.environment;
        self.p(format!(
            "Suite **{}**, started {}, finished {}. Machine: {} ({} cores), {}, kernel {}. authbench {} at commit {}.",
            r.suite,
            r.started_at,
            r.finished_at.as_deref().unwrap_or("never (interrupted)"),
            e.cpu_model,
            e.cores,
            e.os,
            e.kernel,
            e.authbench_version,
            e.git_commit.as_deref().map_or("unknown", |c| c.get(..12).unwrap_or(c)),
        ));
        if !r.complete || r.interrupted {
            self.push(Block::Warning(
                "this run did not complete (interrupted or stopped early): the report shows only what was measured before it stopped.".into(),
            ));
        }
        if let Some(t) = &r.target {
            self.p(format!("Measured against an external server at `{t}`."));
        }
        if r.placement.server == "unpinned" {
            self.p("Server, generator and Redis shared all CPUs of this machine (no `--cpus` pinning): each figure includes the others' competition for CPU.");
        }
    }

    fn summary(&mut self) -> anyhow::Result<()> {
        self.h2("Summary");
        let mut t = Table::new([
            "variant",
            "steady req/s (min–max)",
            "p50",
            "p99",
            "p99.9",
            "server CPU µs/req",
            "Redis cmd/req",
            "Redis B/req",
            "token B",
            "sweep knee req/s",
            "logins/s",
        ]);
        for v in self.variants() {
            let s = self.r.steady(&v);
            let knee = self.r.sweeps.iter().find(|x| x.variant == v);
            if s.is_none() && knee.is_none() && self.r.run(&v, Scenario::Login).is_none() {
                continue;
            }
            let flag = if s.is_some_and(|s| s.generator_bound) { " ⚑ generator-bound" } else { "" };
            t.row(vec![
                format!("{v}{flag}"),
                opt(s, |s| {
                    format!(
                        "{} ({}–{})",
                        rate(s.throughput_rps.median),
                        rate(s.throughput_rps.min),
                        rate(s.throughput_rps.max)
                    )
                }),
                opt(s, |s| us(s.latency_us.p50)),
                opt(s, |s| us(s.latency_us.p99)),
                opt(s, |s| us(s.latency_us.p999)),
                opt(s.and_then(|s| s.server_cpu_us_per_request), cpu_us),
                opt(s.and_then(redis_per_request), per_request),
                opt(s.and_then(|s| s.redis_bytes_per_request), |b| format!("{b:.0}")),
                opt(s.and_then(|s| s.token_bytes), |b| b.to_string()),
                match knee {
                    None => "–".into(),
                    Some(k) => k.knee_rps.map_or_else(|| format!("none up to {}", rate(k.max_rps)), rate),
                },
                opt(self.r.run(&v, Scenario::Login), |l| rate(l.throughput_rps.median)),
            ]);
        }
        let threshold = self.r.calibration.as_ref().map_or(0.9, |c| c.generator_bound_threshold);
        t.note = Some(format!(
            "Steady: closed loop, {}; throughput is the median over repetitions with min–max; latency percentiles over all repetitions (service time). CPU from /proc over the measured window; Redis commands and bytes from INFO deltas. ⚑ generator-bound: measured at ≥ {:.0} % of the generator's own ceiling against baseline, so the generator, not the server, may have set the pace.",
            self.method_line(),
            threshold * 100.0
        ));
        self.push(Block::Table(t));
        self.summary_behaviour();
        self.throughput_chart()?;
        self.spectrum_chart()?;
        Ok(())
    }

    /// Revocation, availability and memory per variant in one table.
    fn summary_behaviour(&mut self) {
        let mut t = Table::new([
            "variant",
            "worst revocation window (1 instance)",
            "worst window (A→B)",
            "available while Redis hangs",
            "available while Redis is down",
            "sessions lost on empty restart",
            "Redis bytes per entry",
        ]);
        let mut any = false;
        for v in self.variants() {
            let w1 = worst_window(self.r, &v, 1);
            let w2 = worst_window(self.r, &v, 2);
            let hang = self.r.outage(&v, Fault::Hang);
            let kill = self.r.outage(&v, Fault::KillEmpty);
            let mem = self.r.scale.iter().filter(|s| s.variant == v).max_by_key(|s| s.entries);
            if w1.is_none() && w2.is_none() && hang.is_none() && kill.is_none() && mem.is_none() {
                continue;
            }
            any = true;
            let win = |w: Option<(Kind, Option<f64>)>| match w {
                None => "–".to_owned(),
                Some((k, Some(x))) => format!("{} ({})", ms(x), k.as_str()),
                Some((k, None)) => format!("still accepted at cap ({})", k.as_str()),
            };
            t.row(vec![
                v.clone(),
                win(w1),
                win(w2),
                opt(hang, |o| pct(o.availability_during)),
                opt(kill, |o| pct(o.availability_during)),
                opt(kill, |o| format!("{}/{}", o.sessions_lost, o.keepers)),
                opt(mem, |m| format!("{:.0} ({} {})", m.bytes_per_entry, m.entries, m.entry_kind)),
            ]);
        }
        if any {
            t.note = Some("Worst window: the longest time a revoked token kept working after the revoke was acknowledged, over the kinds probed (details under Revocation). Availability: share of requests answered 2xx while Redis was unavailable (details under Redis failure). Memory: Redis used_memory delta per seeded entry at the largest keyspace measured.".into());
            self.push(Block::Table(t));
        }
    }

    fn throughput_chart(&mut self) -> anyhow::Result<()> {
        let rows: Vec<Bar> = self
            .variants()
            .iter()
            .filter_map(|v| self.r.steady(v))
            .map(|s| Bar {
                label: s.variant.clone(),
                colour: self.palette.colour(&s.variant),
                value: s.throughput_rps.median,
                min: s.throughput_rps.min,
                max: s.throughput_rps.max,
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
            title: "Steady throughput per strategy (median, whiskers min–max)".into(),
            x_desc: "completed requests per second".into(),
            unit: Unit::Rate,
            rows,
            legend: cal,
        };
        let caption = format!(
            "Closed loop GET /me, {}. Bar: median over repetitions; whiskers: min and max.",
            self.method_line()
        );
        self.chart(&bars, "throughput", "Steady throughput per strategy", caption)
    }

    fn spectrum_chart(&mut self) -> anyhow::Result<()> {
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

    fn latency(&mut self) -> anyhow::Result<()> {
        self.h2("Latency versus offered load");
        if self.r.sweeps.is_empty() {
            self.p("Not measured in this run: the sweep scenario did not run.");
            return Ok(());
        }
        let mut panel =
            Panel::new("offered load (requests per second)", Unit::Rate, "p99 latency (log scale)", Unit::Us);
        panel.y_log = true;
        panel.legend = SeriesLabelPosition::LowerRight;
        let mut t = Table::new(["variant", "closed-loop max req/s", "offered req/s → p99", "knee"]);
        for v in self.variants() {
            let Some(s) = self.r.sweeps.iter().find(|x| x.variant == v) else { continue };
            let colour = self.palette.colour(&v);
            let points: Vec<(f64, f64)> = s.offered_rps.iter().copied().zip(s.p99_us.iter().copied()).collect();
            if let Some(k) = s.knee_rps
                && let Some(&(x, y)) = points.iter().find(|p| (p.0 - k).abs() < 1e-6)
            {
                panel.marks.push(Mark { x, y, colour, text: String::new() });
            }
            t.row(vec![
                v.clone(),
                rate(s.max_rps),
                points.iter().map(|(x, y)| format!("{} → {}", rate(*x), us(*y))).collect::<Vec<_>>().join(", "),
                s.knee_rps.map_or_else(|| "none (latency stays flat)".into(), rate),
            ]);
            let label = match s.knee_rps {
                Some(k) => format!("{v} (knee {})", rate(k)),
                None => format!("{v} (no knee)"),
            };
            panel.series.push(Series { label, colour, points, markers: true });
        }
        let m = &self.r.method;
        let fractions = m.sweep_fractions.iter().map(|f| format!("{:.0} %", f * 100.0)).collect::<Vec<_>>().join(", ");
        let caption = format!(
            "Open loop at constant arrival rates of {fractions} of each variant's closed-loop maximum, {} s per step, {} connections; latency from each request's intended send time (coordinated omission corrected). Knee: first rate whose p99 exceeds ten times the p99 at the lowest rate (and 1 ms), or whose achieved rate falls 5 % short.",
            m.sweep_step_s, m.connections
        );
        let fig = Figure::single("p99 latency versus offered load (open loop)", panel);
        self.chart(&fig, "latency_vs_load", "p99 latency versus offered load", caption.clone())?;
        t.note = Some(caption);
        self.push(Block::Table(t));
        Ok(())
    }

    fn revocation(&mut self) -> anyhow::Result<()> {
        self.h2("Revocation");
        if self.r.revocation.is_empty() {
            self.p("Not measured in this run: the revocation scenario did not run.");
            return Ok(());
        }
        self.p("How long a revoked token keeps working: probes send `GET /me` with the victim's token continuously before and after the revoking request; the window is the send time of the last accepted probe after the revoke was acknowledged. ✓: the server says it supports the kind; ✗: it answers 501 and the token works until it expires (or past the probing cap).");
        let mut head = vec!["variant".to_owned(), "instances".to_owned()];
        head.extend(Kind::ALL.iter().map(|k| k.as_str().to_owned()));
        let mut t = Table::new(head);
        let mut instance_counts: Vec<u32> = self.r.revocation.iter().map(|x| x.instances).collect();
        instance_counts.sort_unstable();
        instance_counts.dedup();
        for v in self.variants() {
            for &n in &instance_counts {
                if !self.r.revocation.iter().any(|x| x.variant == v && x.instances == n) {
                    continue;
                }
                let mut row = vec![v.clone(), if n == 1 { "1".into() } else { format!("{n} (revoke on A, probe B)") }];
                for kind in Kind::ALL {
                    row.push(opt(self.r.revocation(&v, kind, n), |x| {
                        format!("{} {}", if x.supported { "✓" } else { "✗" }, window_text(x))
                    }));
                }
                t.row(row);
            }
        }
        let probe = self.r.revocation.first().map(|x| x.cap_ms).unwrap_or(0.0);
        t.note = Some(format!(
            "Capability matrix: supported per /capabilities, and the window measured in this run. Probing stops at a cap ({} for the first record; longer when the token's own lifetime ends sooner than never).",
            ms(probe)
        ));
        self.push(Block::Table(t));
        let loads: Vec<String> = self
            .variants()
            .iter()
            .filter_map(|v| {
                let loaded: Vec<&crate::results::BackgroundLoad> = self
                    .r
                    .revocation
                    .iter()
                    .filter(|x| &x.variant == v)
                    .filter_map(|x| x.background.as_ref())
                    .collect();
                let first = loaded.first()?;
                let served = loaded.iter().map(|b| b.achieved_rps).fold(f64::INFINITY, f64::min);
                let failures: u64 = loaded.iter().map(|b| b.failures).sum();
                Some(format!(
                    "{v} {} req/s offered (at least {} served{})",
                    rate(first.offered_rps),
                    rate(served),
                    if failures > 0 { format!(", {failures} failed") } else { String::new() }
                ))
            })
            .collect();
        if loads.is_empty() {
            self.p("The servers were idle while probed (no steady maximum to derive a background load from).");
        } else {
            self.p(format!(
                "Probed under load: while each kind was probed, an open-loop `GET /me` load at half the variant's steady maximum ran against every server of the scenario (other users' tokens): {}.",
                loads.join("; ")
            ));
        }
        for kind in Kind::ALL {
            let mut rows = Vec::new();
            for v in self.variants() {
                for &n in &instance_counts {
                    let Some(rec) = self.r.revocation(&v, kind, n) else { continue };
                    let segments = rec
                        .timeline
                        .iter()
                        .map(|s| {
                            let o = match s.outcome.as_str() {
                                "accepted" => charts::Outcome::Accepted,
                                "rejected" => charts::Outcome::Rejected,
                                _ => charts::Outcome::Error,
                            };
                            (s.from_ms, s.to_ms, o)
                        })
                        .collect();
                    rows.push(TimelineRow {
                        label: if n == 1 { v.clone() } else { format!("{v} A→B") },
                        colour: self.palette.colour(&v),
                        segments,
                        note: format!("{} {}", if rec.supported { "window" } else { "unsupported," }, window_text(rec)),
                    });
                }
            }
            if rows.is_empty() {
                continue;
            }
            let tl = Timeline {
                title: format!("Revocation timeline: {}", kind.as_str()),
                x_desc: "probe send time relative to the revoke's acknowledgement (ms)".into(),
                rows,
            };
            let caption = format!(
                "Kind `{}`: every probe of the victim's token, by send time, relative to the acknowledgement of the revoking request (vertical line). Red: accepted; green: rejected; grey: errors. A→B rows revoke on instance A and probe instance B.",
                kind.as_str()
            );
            self.chart(
                &tl,
                &format!("revocation_{}", kind.as_str()),
                &format!("Revocation timeline: {}", kind.as_str()),
                caption,
            )?;
        }
        Ok(())
    }

    fn outage(&mut self) -> anyhow::Result<()> {
        self.h2("Redis failure");
        if self.r.outage.is_empty() {
            self.p("Not measured in this run: the outage scenario did not run.");
            return Ok(());
        }
        let mut t = Table::new([
            "variant",
            "fault",
            "available before",
            "during",
            "after",
            "recovery",
            "revoked token accepted",
            "sessions lost",
            "revocations lost",
        ]);
        for v in self.variants() {
            for f in FAULTS {
                let Some(o) = self.r.outage(&v, f) else { continue };
                t.row(vec![
                    v.clone(),
                    f.as_str().to_owned(),
                    pct(o.availability_before),
                    pct(o.availability_during),
                    pct(o.availability_after),
                    o.recovery_ms.map_or_else(|| "never".into(), ms),
                    format!("{}/{}", o.revoked_accepted, o.revoked_probes),
                    format!("{}/{}", o.sessions_lost, o.keepers),
                    o.revocations_lost.map_or_else(|| "n/a".into(), |n| format!("{n}/{}", o.revoked_checked)),
                ]);
            }
        }
        let first = self.r.outage.first();
        t.note = Some(format!(
            "Open loop at {} connections against each variant at half its closed-loop maximum; client timeout {}; Redis unavailable for about {} per fault. Available: share of requests answered 2xx. Recovery: from Redis back to the first 100 ms bucket at ≥ 99 % of the pre-fault success rate. Revoked token accepted: probes with an already revoked token answered 2xx during the fault (fail-open shows here). Sessions lost: logged-in users whose token stopped working after the restart. Revocations lost: revoked tokens accepted again after the restart.",
            first.map_or(0, |o| o.connections),
            first.map_or("–".into(), |o| ms(o.client_timeout_ms)),
            first.map_or("–".into(), |o| ms(o.redis_back_ms - o.fault_start_ms)),
        ));
        self.push(Block::Table(t));
        for f in FAULTS {
            let records: Vec<&OutageRecord> = self.r.outage.iter().filter(|o| o.fault == f).collect();
            if records.is_empty() {
                continue;
            }
            // Small multiples: one panel per variant, the same axes, the fault shaded in each.
            let mut panels = Vec::new();
            for o in &records {
                let mut panel =
                    Panel::new("time since the fault began (s)", Unit::Seconds, "answered 2xx (%)", Unit::Percent);
                panel.title = Some(o.variant.clone());
                panel.y_range = Some((0.0, 112.0));
                let step = o.bucket_ms / 1000.0;
                let start = o.fault_start_ms / 1000.0;
                let end = o.timeline.len() as f64 * step - start;
                panel.x_range = Some((-start, end.max(1.0)));
                panel.shades.push(Shade {
                    from: 0.0,
                    to: (o.redis_back_ms - o.fault_start_ms) / 1000.0,
                    label: String::new(),
                });
                let points = o
                    .timeline
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        let total = b.ok + b.unauthorized + b.unavailable + b.timeout + b.other;
                        let share = if total == 0 { 0.0 } else { b.ok as f64 * 100.0 / total as f64 };
                        (i as f64 * step - start, share)
                    })
                    .collect();
                panel.series.push(Series {
                    label: String::new(),
                    colour: self.palette.colour(&o.variant),
                    points,
                    markers: false,
                });
                panels.push(panel);
            }
            let caption = format!(
                "{}: share of requests answered 2xx per {} bucket (by completion), with the time Redis was unavailable shaded; each variant's clock starts at its own fault. A bucket where nothing completed counts as 0 %.",
                fault_label(f),
                ms(records.first().map_or(100.0, |o| o.bucket_ms))
            );
            let columns = if panels.len() > 4 { 3 } else { 2 };
            let fig =
                Figure { title: format!("Success rate through a Redis fault: {}", fault_label(f)), panels, columns };
            self.chart(
                &fig,
                &format!("outage_{}", f.as_str()),
                &format!("Outage timeline: {}", fault_label(f)),
                caption,
            )?;
        }
        Ok(())
    }

    fn scale(&mut self) -> anyhow::Result<()> {
        self.h2("Memory and scale");
        if self.r.scale.is_empty() {
            self.p("Not measured in this run: the scale scenario did not run.");
            return Ok(());
        }
        // Server memory and start-up (pushed replays its log there) when the run recorded them.
        let server = self.r.scale.iter().any(|s| s.server_rss_bytes.is_some() || s.server_start_seconds.is_some());
        let mut columns =
            vec!["variant", "entry", "entries", "Redis used_memory", "bytes per entry", "req/s", "p50", "p99"];
        if server {
            columns.extend(["server RSS", "server start"]);
        }
        let mut t = Table::new(columns);
        let mut panel = Panel::new("entries in Redis (log scale)", Unit::Count, "Redis bytes per entry", Unit::Bytes);
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
        let fig = Figure::single("Redis memory per entry versus entries", panel);
        self.chart(&fig, "memory", "Redis memory per entry", caption)
    }

    fn rtt(&mut self) -> anyhow::Result<()> {
        self.h2("Redis round-trip time");
        let mut panel = Panel::new(
            "round trip added between server and Redis (ms)",
            Unit::Ms,
            "throughput (requests per second)",
            Unit::Rate,
        );
        panel.legend = SeriesLabelPosition::UpperRight;
        let mut t = Table::new(["variant", "added RTT", "measured PING RTT", "req/s (min–max)", "p50", "p99"]);
        for v in self.variants() {
            let mut runs = self.r.runs_of(&v, Scenario::Rtt);
            if runs.is_empty() {
                continue;
            }
            runs.sort_by(|a, b| a.redis_rtt_ms.unwrap_or(0.0).total_cmp(&b.redis_rtt_ms.unwrap_or(0.0)));
            for r in &runs {
                t.row(vec![
                    v.clone(),
                    opt(r.redis_rtt_ms, ms),
                    opt(r.redis_rtt_measured_ms, |m| format!("{m:.2} ms")),
                    format!(
                        "{} ({}–{})",
                        rate(r.throughput_rps.median),
                        rate(r.throughput_rps.min),
                        rate(r.throughput_rps.max)
                    ),
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
        let caption = format!(
            "Steady closed-loop load with Redis reached through {}. Median over repetitions.",
            self.r.rtt_injection.as_deref().unwrap_or("a delaying relay")
        );
        t.note = Some(caption.clone());
        self.push(Block::Table(t));
        let fig = Figure::single("Throughput versus Redis round-trip time", panel);
        self.chart(&fig, "rtt", "Throughput versus Redis round-trip time", caption)
    }

    fn tokensize(&mut self) -> anyhow::Result<()> {
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
        let mut t =
            Table::new(["variant", "extra claims", "token bytes", "req/s (min–max)", "p99", "server CPU µs/req"]);
        for v in self.variants() {
            let mut runs = self.r.runs_of(&v, Scenario::Tokensize);
            if runs.is_empty() {
                continue;
            }
            runs.sort_by_key(|r| r.claims_padding_bytes.unwrap_or(0));
            for r in &runs {
                t.row(vec![
                    v.clone(),
                    opt(r.claims_padding_bytes, |b| format!("{b} B")),
                    opt(r.token_bytes, |b| b.to_string()),
                    format!(
                        "{} ({}–{})",
                        rate(r.throughput_rps.median),
                        rate(r.throughput_rps.min),
                        rate(r.throughput_rps.max)
                    ),
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
            "Steady closed-loop load with extra claim bytes in every token (JWT strategies) or stored session (session strategies): a session token keeps its length while its stored session grows; token lengths are in the table. {}.",
            self.method_line()
        );
        t.note = Some(caption.clone());
        self.push(Block::Table(t));
        let fig = Figure { title: "What token size costs".into(), panels: vec![tp, cpu], columns: 2 };
        self.chart(&fig, "token_size", "What token size costs", caption)
    }

    fn logins(&mut self) {
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

    fn criterion(&mut self, bench: Option<&criterion::Criterion>) {
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

    fn method(&mut self) {
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
                    "against baseline, {} × {} s, {} connections: engine {} req/s ({}–{}), wrk {} req/s; engine/wrk {}. `{}`",
                    c.repetitions,
                    c.duration_s,
                    c.connections,
                    rate(c.engine_rps.median),
                    rate(c.engine_rps.min),
                    rate(c.engine_rps.max),
                    c.wrk_rps.as_ref().map_or("–".into(), |w| rate(w.median)),
                    opt(c.engine_to_wrk, ratio),
                    c.wrk_command.as_deref().unwrap_or("wrk not run")
                ),
            );
        } else {
            kv("generator calibration", "not run".into());
        }
        self.push(Block::Table(t));
        self.push(Block::List(m.notes.clone()));
        self.push(Block::Heading(3, "Not measured".into()));
        let mut missing = r.not_measured.clone();
        missing.push("Everything ran on one machine over loopback: no network between client, server and Redis beyond the injected round trips of the rtt scenario.".into());
        self.push(Block::List(missing));
    }
}
