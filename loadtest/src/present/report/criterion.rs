//! criterion's estimates (`<dir>/**/new/estimates.json`), when `cargo bench` has written them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Clone)]
pub struct Criterion {
    pub dir: PathBuf,
    /// Modification time of the newest estimates file, RFC 3339.
    pub newest: Option<String>,
    pub benchmarks: Vec<Benchmark>,
}

#[derive(Debug, Clone)]
pub struct Benchmark {
    pub id: String,
    pub mean_ns: f64,
    pub mean_lo_ns: f64,
    pub mean_hi_ns: f64,
    pub median_ns: f64,
    pub std_dev_ns: f64,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
    confidence_interval: Interval,
}

#[derive(Deserialize)]
struct Interval {
    lower_bound: f64,
    upper_bound: f64,
}

#[derive(Deserialize)]
struct Estimates {
    mean: Estimate,
    median: Estimate,
    std_dev: Estimate,
}

#[derive(Deserialize)]
struct BenchmarkId {
    full_id: String,
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            // `base` and `change` hold older samples; `report` holds criterion's own HTML.
            if path.file_name().is_some_and(|n| n == "new") {
                let file = path.join("estimates.json");
                if file.is_file() {
                    found.push(file);
                }
            } else if !path.file_name().is_some_and(|n| n == "base" || n == "change" || n == "report") {
                walk(&path, found);
            }
        }
    }
}

/// Reads every benchmark under `dir`; `None` when there is none.
pub fn read(dir: &Path) -> anyhow::Result<Option<Criterion>> {
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    let mut benchmarks = Vec::new();
    let mut newest: Option<std::time::SystemTime> = None;
    for file in &files {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        let e: Estimates =
            serde_json::from_str(&text).with_context(|| format!("{} is not criterion's estimates", file.display()))?;
        let id = file
            .parent()
            .map(|p| p.join("benchmark.json"))
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str::<BenchmarkId>(&t).ok())
            .map(|b| b.full_id)
            .unwrap_or_else(|| {
                file.parent()
                    .and_then(Path::parent)
                    .and_then(|p| p.strip_prefix(dir).ok())
                    .map_or_else(|| file.display().to_string(), |p| p.display().to_string())
            });
        if let Ok(modified) = std::fs::metadata(file).and_then(|m| m.modified()) {
            newest = Some(newest.map_or(modified, |n| n.max(modified)));
        }
        benchmarks.push(Benchmark {
            id,
            mean_ns: e.mean.point_estimate,
            mean_lo_ns: e.mean.confidence_interval.lower_bound,
            mean_hi_ns: e.mean.confidence_interval.upper_bound,
            median_ns: e.median.point_estimate,
            std_dev_ns: e.std_dev.point_estimate,
        });
    }
    if benchmarks.is_empty() {
        return Ok(None);
    }
    Ok(Some(Criterion { dir: dir.to_path_buf(), newest: newest.map(crate::results::timestamp), benchmarks }))
}
