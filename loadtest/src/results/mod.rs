//! `results.json`: the single source every report is rendered from. Base units (seconds,
//! microseconds, bytes) in the field names; the schema is versioned and described by
//! `loadtest/schema/results.schema.json`, which a test validates real output against.
//!
//! This module is the schema: it imports nothing else of the crate. Scenarios fill its records,
//! the harness writes them, presentation reads them.
//!
//! The file is rewritten after every measurement (as hyperfine's exporters are), through a
//! temporary file and a rename, so an interrupted run keeps everything measured up to then.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod capabilities;
mod environment;
mod estimate;
mod guide;
mod noise;
mod outage;
mod population;
mod revocation;
mod run;
mod scale;

use serde::{Deserialize, Serialize};

pub use capabilities::Capabilities;
pub use environment::Environment;
pub use estimate::{CONFIDENCE, Estimate, Side, range_coverage};
pub use guide::{GuideEntry, Verdict};
pub use noise::{Noise, NoiseSample};
pub use outage::{Bucket, Fault, OutageRecord};
pub use population::PopulationRun;
pub use revocation::{BackgroundLoad, Kind, RevocationRecord, Segment};
pub use run::{
    LoginSplit, MAX_TRACKABLE_NS, Percentiles, RunRecord, Scenario, SweepSummary, deserialize_histogram, new_histogram,
    serialize_histogram,
};
pub use scale::{EntryKind, ScaleRecord};

/// Bumped on any change that could break a reader.
pub const SCHEMA_VERSION: u32 = 9;
/// The oldest version this authbench still reads (version 6 added the fixed-rate fields,
/// version 7 the rounds: cost records, intervals, the guide's verdicts, the noise monitor and
/// revocation in trials, each a record of its own; version 8 the population scenario and what
/// the revocation victim's client did; version 9 the PostgreSQL store: its outage fault and
/// persistence values, and store figures that may be PostgreSQL's).
pub const OLDEST_READABLE: u32 = 5;

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub schema_version: u32,
    pub run_id: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// True once every planned measurement ran; false while running or after an interruption.
    pub complete: bool,
    pub interrupted: bool,
    /// The command line that produced the file.
    pub command: Vec<String>,
    /// `smoke`, `default`, `full`, or `load` for a run against an external server.
    pub suite: String,
    /// For `authbench load`: the server measured.
    pub target: Option<String>,
    pub environment: Environment,
    pub placement: Placement,
    pub method: Method,
    pub calibration: Option<Calibration>,
    pub runs: Vec<RunRecord>,
    /// Per strategy variant, where latency turns up as offered load grows.
    pub sweeps: Vec<SweepSummary>,
    /// Per variant, revocation kind, instance count and trial: how long a revoked token kept
    /// working.
    #[serde(default)]
    pub revocation: Vec<RevocationRecord>,
    /// Per variant and Redis fault: availability, recovery, and what a restart lost.
    #[serde(default)]
    pub outage: Vec<OutageRecord>,
    /// Per variant and keyspace size: Redis memory per entry and latency.
    #[serde(default)]
    pub scale: Vec<ScaleRecord>,
    /// Figures that could not be measured in this run, and why.
    pub not_measured: Vec<String>,
    /// How Redis round-trip time was injected in the rtt scenario.
    #[serde(default)]
    pub rtt_injection: Option<String>,
    /// The decision guide's verdicts, computed from this file's figures when the run ends
    /// (`authbench report` and `compare` compute them again from the figures).
    #[serde(default)]
    pub guide: Vec<GuideEntry>,
    /// How much other load the machine carried while windows were measured; none in files
    /// before schema 7 and in runs that watched no window.
    #[serde(default)]
    pub noise: Option<Noise>,
}

impl Results {
    /// The first record of `scenario` for `variant` (steady and login have one per variant).
    pub fn run(&self, variant: &str, scenario: Scenario) -> Option<&RunRecord> {
        self.runs.iter().find(|x| x.scenario == scenario && x.variant == variant)
    }

    /// The closed-loop record of `variant`.
    pub fn steady(&self, variant: &str) -> Option<&RunRecord> {
        self.run(variant, Scenario::Steady)
    }

    /// Every record of `scenario` for `variant`, in the order measured (sweep steps, points).
    pub fn runs_of(&self, variant: &str, scenario: Scenario) -> Vec<&RunRecord> {
        self.runs.iter().filter(|x| x.scenario == scenario && x.variant == variant).collect()
    }

    /// The first record of a kind and instance pairing (trial 0 as measured); every trial is in
    /// `revocation`.
    pub fn revocation(&self, variant: &str, kind: Kind, instances: u32) -> Option<&RevocationRecord> {
        self.revocation.iter().find(|x| x.variant == variant && x.kind == kind && x.instances == instances)
    }

    pub fn outage(&self, variant: &str, fault: Fault) -> Option<&OutageRecord> {
        self.outage.iter().find(|x| x.variant == variant && x.fault == fault)
    }

    pub fn scale(&self, variant: &str, entries: u64) -> Option<&ScaleRecord> {
        self.scale.iter().find(|x| x.variant == variant && x.entries == entries)
    }

    pub fn sweep(&self, variant: &str) -> Option<&SweepSummary> {
        self.sweeps.iter().find(|s| s.variant == variant)
    }
}

/// Which process ran on which CPUs: as asked, and as the kernel reported it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Placement {
    /// `unpinned`, or the CPU list given with `--cpus`.
    pub server: String,
    pub generator: String,
    pub redis: String,
    /// `Cpus_allowed_list` of each process as observed during the run.
    pub observed: BTreeMap<String, String>,
}

/// How every figure was obtained.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Method {
    pub repetitions: u32,
    /// Server instances per strategy that steady and sweep load was split across.
    #[serde(default = "one")]
    pub instances: u32,
    pub warmup_s: f64,
    pub steady_duration_s: f64,
    pub connections: usize,
    pub generator_threads: usize,
    pub sweep_fractions: Vec<f64>,
    pub sweep_step_s: f64,
    pub login_duration_s: f64,
    pub login_users: usize,
    pub request_timeout_s: f64,
    /// How latency is measured, in words, for the report.
    pub notes: Vec<String>,
    /// Set when the strategies used a Redis Cluster rather than one redis-server of the harness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_cluster: Option<ClusterMethod>,
}

/// The Redis Cluster a run used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterMethod {
    /// Seed URLs the servers were given.
    pub seeds: Vec<String>,
    /// `host:port` of every master when the run started.
    pub masters: Vec<String>,
}

fn one() -> u32 {
    1
}

/// A spread over repetitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// 95 % interval of the median over the values (see [`Estimate`]); absent for one value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<[f64; 2]>,
    /// In the order measured (round order, where the values are rounds).
    pub values: Vec<f64>,
}

impl Spread {
    pub fn of(values: &[f64]) -> Self {
        // A non-finite value would serialize as null and break the schema: keep finite ones only.
        let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let median = match sorted.len() {
            0 => 0.0,
            n if n % 2 == 1 => sorted.get(n / 2).copied().unwrap_or(0.0),
            n => (sorted.get(n / 2 - 1).copied().unwrap_or(0.0) + sorted.get(n / 2).copied().unwrap_or(0.0)) / 2.0,
        };
        let ci95 = (values.len() >= 2).then(|| Estimate::of(&values).map(|e| e.ci95)).flatten();
        Self {
            median,
            min: sorted.first().copied().unwrap_or(0.0),
            max: sorted.last().copied().unwrap_or(0.0),
            ci95,
            values,
        }
    }

    /// The values as an estimate (median, interval, values in order).
    pub fn estimate(&self) -> Option<Estimate> {
        Estimate::of(&self.values)
    }
}

/// The generator measured against `baseline`, by itself and by wrk, in the same run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Calibration {
    pub connections: usize,
    pub threads: usize,
    pub duration_s: f64,
    pub repetitions: u32,
    /// The lean engine's closed-loop rate against baseline: the generator's own ceiling.
    pub engine_rps: Spread,
    pub engine_latency_us: Percentiles,
    /// wrk against the same server (`run` requires wrk; null only in files from other tools).
    pub wrk_rps: Option<Spread>,
    pub wrk_command: Option<String>,
    /// engine / wrk (median over median).
    pub engine_to_wrk: Option<f64>,
    /// A run whose busiest generator thread was running or waiting for a CPU for at least this
    /// share of its window is flagged `generator_bound` (as is one with generator drops). Up to
    /// schema 5: a strategy at or above this fraction of `engine_rps.median`.
    pub generator_bound_threshold: f64,
}

/// One measurement's output, as the harness receives it and the writer files it.
#[derive(Debug, Clone)]
pub enum Record {
    Calibration(Calibration),
    /// A steady, sweep-step, login, rtt, tokensize or scale record (boxed: it is by far the
    /// largest).
    Run(Box<RunRecord>),
    Sweep(SweepSummary),
    /// The kinds of one revocation group, measured together.
    Revocation(Vec<RevocationRecord>),
    Outage(OutageRecord),
    Scale(ScaleRecord),
    /// A sentence for the method section (how a measurement went, e.g. repeated for noise).
    Note(String),
    /// Windows the noise monitor watched, against its threshold (CPUs of foreign load).
    Noise {
        threshold: f64,
        windows: Vec<NoiseSample>,
    },
    /// The CPUs a process (`server`, `generator`, `redis`) was seen allowed to run on.
    Placement {
        process: String,
        cpus: String,
    },
}

/// Writes `results.json` into a run directory after every measurement.
#[derive(Debug)]
pub struct ResultsWriter {
    dir: PathBuf,
    pub results: Results,
}

impl ResultsWriter {
    pub fn new(dir: PathBuf, results: Results) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("cannot create the results directory {}: {e}", dir.display()))?;
        let writer = Self { dir, results };
        writer.save()?;
        Ok(writer)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("results.json")
    }

    /// Writes the file atomically (temporary file, then rename).
    pub fn save(&self) -> anyhow::Result<()> {
        let tmp = self.dir.join("results.json.tmp");
        let text = serde_json::to_string_pretty(&self.results)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, self.path())?;
        Ok(())
    }

    /// Files a record where it belongs and rewrites the file.
    pub fn add(&mut self, record: Record) -> anyhow::Result<()> {
        let r = &mut self.results;
        match record {
            Record::Calibration(c) => r.calibration = Some(c),
            Record::Run(run) => r.runs.push(*run),
            Record::Sweep(s) => r.sweeps.push(s),
            Record::Revocation(group) => r.revocation.extend(group),
            Record::Outage(o) => r.outage.push(o),
            Record::Scale(s) => r.scale.push(s),
            Record::Note(note) => r.method.notes.push(note),
            Record::Noise { threshold, windows } => {
                let mut all = r.noise.take().map(|n| n.per_window).unwrap_or_default();
                all.extend(windows);
                r.noise = Some(Noise::of(threshold, all));
            }
            Record::Placement { process, cpus } => {
                r.placement.observed.insert(process, cpus);
            }
        }
        self.save()
    }
}

/// Reads a results file, checking its schema version.
pub fn load(path: &Path) -> anyhow::Result<Results> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", path.display()))?;
    let version = value.get("schema_version").and_then(serde_json::Value::as_u64);
    anyhow::ensure!(
        version.is_some_and(|v| (u64::from(OLDEST_READABLE)..=u64::from(SCHEMA_VERSION)).contains(&v)),
        "{} has schema version {}; this authbench reads versions {OLDEST_READABLE} to {SCHEMA_VERSION} (re-run it, or use the authbench that wrote it)",
        path.display(),
        version.map_or_else(|| "none".to_owned(), |v| v.to_string())
    );
    serde_json::from_value(value).map_err(|e| anyhow::anyhow!("{} does not match the schema: {e}", path.display()))
}

/// `2026-11-22T05-30-00Z`: sortable and valid as a directory name everywhere.
pub fn run_id(now: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(now).to_string().replace(':', "-")
}

/// RFC 3339 timestamp.
pub fn timestamp(now: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(now).to_string()
}
