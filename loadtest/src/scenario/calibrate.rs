//! Calibration: the generator's own ceiling, measured against `baseline` by the engine and by
//! wrk in alternation, so every other figure can be read against what the generator can do.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use super::Knobs;
use crate::engine::{self, Keep, RequestTemplate};
use crate::results::{Calibration, Percentiles, Spread, new_histogram};

/// Runs wrk against `url` and returns its requests per second.
pub fn wrk_rps(
    url: &str,
    connections: usize,
    threads: usize,
    duration: Duration,
    cpus: Option<&[usize]>,
) -> anyhow::Result<(f64, String)> {
    let secs = duration.as_secs().max(1);
    let args = vec![
        format!("-t{threads}"),
        format!("-c{connections}"),
        format!("-d{secs}s"),
        "--timeout".to_owned(),
        "10s".to_owned(),
        url.to_owned(),
    ];
    let mut cmd = match cpus {
        Some(cpus) if !cpus.is_empty() => {
            let list = cpus.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
            let mut c = Command::new("taskset");
            c.arg("-c").arg(list).arg("wrk");
            c
        }
        _ => Command::new("wrk"),
    };
    let out = cmd.args(&args).output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            anyhow::anyhow!("wrk not found on PATH: run scripts/setup.sh (or `apt-get install wrk`)")
        }
        _ => anyhow::anyhow!("cannot run wrk: {e}"),
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("could not read wrk's output: {}", text.lines().last().unwrap_or("")))?;
    Ok((rps, format!("wrk {}", args.join(" "))))
}

/// The generator against baseline, and wrk against the same server, in alternation.
pub fn calibrate(addr: SocketAddr, knobs: &Knobs) -> anyhow::Result<Calibration> {
    let plan = &knobs.plan;
    let templates = vec![RequestTemplate::get("/me", None)?];
    let mut engine_rates = Vec::new();
    let mut wrk_rates = Vec::new();
    let mut wrk_command = None;
    let mut latency = new_histogram();
    let url = format!("http://{addr}/me");
    for _ in 0..plan.repetitions.min(3) {
        let warm = knobs.spec(addr, templates.clone(), Duration::ZERO, plan.warmup.min(Duration::from_millis(500)));
        engine::run(&warm, Keep::default(), &knobs.cancel)?;
        let spec = knobs.spec(addr, templates.clone(), Duration::ZERO, plan.calibration_duration);
        let outcome = engine::run(&spec, Keep::default(), &knobs.cancel)?;
        engine_rates.push(outcome.throughput());
        let _ = latency.add(&outcome.latency);
        let (rps, command) =
            wrk_rps(&url, plan.connections, plan.threads, plan.calibration_duration, knobs.generator_cpus.as_deref())?;
        wrk_rates.push(rps);
        wrk_command = Some(command);
        if knobs.cancelled() {
            break;
        }
    }
    let engine_rps = Spread::of(&engine_rates);
    let wrk = Spread::of(&wrk_rates);
    let ratio = (wrk.median > 0.0).then(|| engine_rps.median / wrk.median);
    Ok(Calibration {
        connections: plan.connections,
        threads: plan.threads,
        duration_s: plan.calibration_duration.as_secs_f64(),
        repetitions: engine_rates.len() as u32,
        engine_rps,
        engine_latency_us: Percentiles::of(&latency),
        wrk_rps: Some(wrk),
        wrk_command,
        engine_to_wrk: ratio,
        generator_bound_threshold: knobs.generator_bound_threshold,
    })
}
