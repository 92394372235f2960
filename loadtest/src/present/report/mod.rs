//! `authbench report DIR`: renders `report.md`, a self-contained `report.html` and
//! `charts/*.svg|png` from `DIR/results.json` alone.
//!
//! Every section is built once as [`doc::Block`]s, so the Markdown and the HTML say the same
//! thing. Figures come from the results file; thresholds used by the decision guide are the
//! guide's own and are printed with it.

mod behaviour;
pub mod charts;
pub mod criterion;
pub mod doc;
pub mod guide;
mod method;
mod performance;
mod points;
mod population;
mod rate;
mod ratios;
pub(crate) mod revocations;
pub mod style;

use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::SeriesLabelPosition;

use crate::results::{
    Capabilities, Estimate, Fault, Kind, OutageRecord, Results, RevocationRecord, RunRecord, Scenario,
};
use charts::{Bar, Bars, Figure, Mark, Panel, Series, Shade, Timeline, TimelineRow, Unit};
use doc::{Block, ChartRef, Table};
use style::Palette;

use crate::present::units::{
    bytes, cpu_us, cpus, interval, ms, ns, opt, pct, per_request, rate, ratio, ratio_interval, us,
};

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

/// Store calls per request (Redis commands, or PostgreSQL statements), with 0 for a strategy
/// that reports it has no store.
pub(crate) fn redis_per_request(run: &RunRecord) -> Option<f64> {
    run.redis_commands_per_request.or_else(|| {
        let storeless = run.capabilities.as_ref().is_some_and(Capabilities::storeless);
        (storeless || run.strategy == "baseline").then_some(0.0)
    })
}

/// The longest window over the kinds a variant was probed for, each kind's the longest of its
/// trials (a requirement met "within X" must hold in every trial); `None` inside means a token
/// still accepted at the cap. Kinds whose token never worked on the probed instance are left out.
pub(crate) fn worst_window(r: &Results, variant: &str, instances: u32) -> Option<(Kind, Option<f64>)> {
    let mut worst: Option<(Kind, Option<f64>)> = None;
    for kind in Kind::ALL {
        let Some(stats) = revocations::stats(r, variant, kind, instances) else { continue };
        if !stats.measured() {
            continue;
        }
        let w = stats.max_ms;
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

/// How this file decided `generator_bound`, in words: from the generator's own use since
/// schema 6, from the calibration ceiling before.
pub fn generator_bound_rule(r: &Results) -> String {
    let threshold = r.calibration.as_ref().map_or(0.9, |c| c.generator_bound_threshold);
    if r.schema_version >= 6 {
        format!(
            "the generator dropped sends (its connection limit was reached), or its busiest thread was running or waiting for a CPU for at least {} of the window: the generator, not the server, set the pace, so a throughput so flagged is a lower bound on the server",
            pct(threshold)
        )
    } else {
        format!(
            "measured at {} or more of the generator's own ceiling against baseline (how schema {} files decided it), so the generator, not the server, may have set the pace",
            pct(threshold),
            r.schema_version
        )
    }
}

/// Whether an open-loop record's latency describes the server, and if not, why, in words.
pub(crate) fn not_the_servers(run: &RunRecord) -> Option<String> {
    (!run.latency_valid).then(|| {
        let limit = match (run.connection_limit, run.peak_connections) {
            (Some(limit), Some(peak)) => format!(" of {limit} connections ({peak} held at the peak)"),
            (Some(limit), None) => format!(" of {limit} connections"),
            _ => String::new(),
        };
        format!(
            "its latency is not the server's: the generator dropped {} sends at its connection limit{limit}, so the requests it could not send are missing from the percentiles and the generator, not the server, was the limit",
            run.dropped.unwrap_or(0)
        )
    })
}

/// Sends the generator dropped before, during and after an outage's fault, from its timeline
/// (buckets by intended send time, split as the availability shares are). A record whose
/// timeline does not place its drops counts them in every phase.
pub(crate) fn dropped_by_phase(o: &OutageRecord) -> [u64; 3] {
    let in_buckets: u64 = o.timeline.iter().map(|b| b.dropped).sum();
    if in_buckets == 0 || o.bucket_ms <= 0.0 {
        return [o.dropped; 3];
    }
    let bucket = |ms: f64| (ms / o.bucket_ms).floor().max(0.0) as usize;
    let (start, back) = (bucket(o.fault_start_ms), bucket(o.redis_back_ms));
    let mut phases = [0; 3];
    for (i, b) in o.timeline.iter().enumerate() {
        let phase = if i < start {
            0
        } else if i < back {
            1
        } else {
            2
        };
        if let Some(n) = phases.get_mut(phase) {
            *n += b.dropped;
        }
    }
    phases
}

/// A variant's record of its store killed and restarted as it is run by default: Redis with no
/// persistence (restarted empty), PostgreSQL through crash recovery.
pub(crate) fn killed_and_restarted<'a>(r: &'a Results, variant: &str) -> Option<&'a OutageRecord> {
    r.outage(variant, Fault::KillEmpty).or_else(|| r.outage(variant, Fault::KillRecover))
}

/// A fault in a few words, the store left out (a table row names its variant).
pub(crate) fn fault_name(f: Fault) -> &'static str {
    match f {
        Fault::Hang => "hang",
        Fault::KillEmpty => "kill, restart empty",
        Fault::KillAof => "kill, restart from AOF",
        Fault::KillRecover => "kill, restart (crash recovery)",
    }
}

/// A fault said of the stores it hit in `records` (`Redis`, `PostgreSQL`, or both, in the
/// order they come), for a chart's title.
fn fault_label(f: Fault, records: &[&OutageRecord]) -> String {
    let mut stores: Vec<&str> = Vec::new();
    for o in records {
        if !stores.contains(&o.store()) {
            stores.push(o.store());
        }
    }
    let store = if stores.is_empty() { "the store".to_owned() } else { stores.join(" or ") };
    match f {
        Fault::Hang => format!("{store} hangs (SIGSTOP)"),
        Fault::KillEmpty => format!("{store} killed, restarted empty"),
        Fault::KillAof => format!("{store} killed, restarted from AOF"),
        Fault::KillRecover => format!("{store} killed, restarted with crash recovery"),
    }
}

const FAULTS: [Fault; 4] = [Fault::Hang, Fault::KillEmpty, Fault::KillAof, Fault::KillRecover];

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
        // Files before schema 7 repeated each variant back to back; since, every round visits
        // every variant once in a shuffled order.
        let rounds = if self.r.schema_version >= 7 {
            format!(
                "{} rounds (every variant once per round, shuffled; the whole range covers the median with {:.1} %)",
                m.repetitions,
                crate::results::range_coverage(m.repetitions as usize) * 100.0
            )
        } else {
            format!("{} repetitions", m.repetitions)
        };
        format!(
            "{rounds} of {} s after {} s warm-up, {} connections, {} generator threads{instances}",
            m.steady_duration_s, m.warmup_s, m.connections, m.generator_threads
        )
    }

    fn build(&mut self, bench: Option<&criterion::Criterion>) -> anyhow::Result<()> {
        self.header();
        self.summary()?;
        self.ratios();
        let guide = guide::guide(self.r);
        self.h2("Decision guide");
        self.p("Each line is a requirement, the strategies of this run that meet it and the figures that decide it. Thresholds are the guide's; every number is this run's. Where a figure was not measured, the line says so instead of guessing.");
        self.blocks.extend(guide);
        self.latency()?;
        self.population()?;
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
}
