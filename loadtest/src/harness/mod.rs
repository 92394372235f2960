//! `authbench run`, `load` and `serve`. `run` owns everything it measures: one `redis-server`
//! on a free port (emptied between strategies), `authbench-server` children per variant, and
//! `results.json`, rewritten after every measurement. Ctrl-C or SIGTERM sets a flag the engine
//! watches; the run then stops at once, writes what it has (marked interrupted), and every
//! child is killed as its handle drops.
//!
//! The order of measurements and the writing of their records is [`fleet::orchestrate`]'s;
//! the processes are a [`fleet::Fleet`]'s (`local` for `run`, `remote` for `load`).

#[cfg(test)]
mod fake;
mod fleet;
mod header;
mod local;
mod progress;
mod remote;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::engine::client;
use crate::observe::{RedisProbe, StoreProbe};
use crate::plan::{ADMIN_KEY, CpuPlacement, LoadConfig, RunConfig, ServeConfig, USER_PASSWORD};
use crate::process::{Backing, Launcher, ServerProcess, server_binary};
use crate::results::{ClusterMethod, ResultsWriter, Scenario, timestamp};
use crate::scenario::{Subject, points};
use fleet::{Context, orchestrate, steps};
use progress::Progress;

/// Installs the Ctrl-C / SIGTERM handler once and returns the flag it sets.
pub fn cancel_flag() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let handler_flag = flag.clone();
        // goose installs its own handler later; ctrlc allows one per process, so ours stays.
        let _ = ctrlc::set_handler(move || {
            if handler_flag.swap(true, Ordering::SeqCst) {
                eprintln!("authbench: interrupted again, stopping now");
            } else {
                eprintln!("authbench: interrupted, keeping what was measured and stopping the servers");
            }
        });
        flag
    })
    .clone()
}

/// A unique run directory under `out`.
fn run_dir(out: &Path, id: &str) -> PathBuf {
    let mut dir = out.join(id);
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = out.join(format!("{id}-{n}"));
    }
    dir
}

/// What a finished (or interrupted) measuring command hands back to `main`.
#[derive(Debug)]
pub struct Finished {
    pub dir: PathBuf,
    pub interrupted: bool,
}

/// Marks the results finished (complete, or interrupted, or failed), writes them a last time,
/// and passes the measuring error on, if any: what was measured stays on disk either way.
fn finalize(mut writer: ResultsWriter, cancel: &AtomicBool, outcome: anyhow::Result<()>) -> anyhow::Result<Finished> {
    let interrupted = cancel.load(Ordering::SeqCst);
    writer.results.finished_at = Some(timestamp(SystemTime::now()));
    writer.results.interrupted = interrupted;
    writer.results.complete = outcome.is_ok() && !interrupted;
    writer.results.guide = crate::present::guide::entries(&writer.results);
    writer.save()?;
    outcome?;
    Ok(Finished { dir: writer.dir().to_path_buf(), interrupted })
}

fn which(program: &str, message: &str) -> anyhow::Result<()> {
    let found =
        std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()));
    anyhow::ensure!(found, "{message}");
    Ok(())
}

/// The runtime of the harness's own calls; two workers, as the machines it is made for.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

/// `authbench run`.
pub fn run(config: RunConfig) -> anyhow::Result<Finished> {
    let plan = &config.plan;
    let binary = server_binary()?;
    // Missing tools are reported before anything starts.
    if plan.variants.iter().any(|v| v.uses_redis()) {
        which(
            "redis-server",
            "redis-server not found on PATH: run scripts/setup.sh (or `apt-get install redis-server`)",
        )?;
    }
    if plan.variants.iter().any(|v| v.uses_postgres()) && authbench_server::pg_process::bin_dir().is_none() {
        anyhow::bail!(
            "PostgreSQL not found (no initdb under /usr/lib/postgresql/*/bin or on PATH), needed by {}: run scripts/setup.sh (or `apt-get install postgresql`)",
            plan.variants.iter().filter(|v| v.uses_postgres()).map(|v| v.name).collect::<Vec<_>>().join(", ")
        );
    }
    which("wrk", "wrk not found on PATH: run scripts/setup.sh (or `apt-get install wrk`)")?;
    let cluster = config.cluster.as_deref().map(Backing::cluster).transpose()?;

    let mut results = header::new_results(
        plan.name.as_str(),
        None,
        plan,
        header::placement_of(&config.placement),
        local::REQUEST_TIMEOUT,
    );
    results.not_measured.extend(config.not_measured.iter().cloned());
    if plan.scenarios.contains(&Scenario::Rtt) {
        results.rtt_injection = Some(points::RTT_INJECTION.into());
    }
    if let Some(Backing::Cluster { urls, masters }) = &cluster {
        results.method.notes.push(
            "Redis Cluster: counters (commands, network bytes, CPU) are summed over its masters; a multi-key command the client splits by slot counts once per node it reaches.".into(),
        );
        results.method.redis_cluster = Some(ClusterMethod {
            seeds: urls.clone(),
            masters: masters.iter().map(|(addr, _)| addr.to_string()).collect(),
        });
    }
    let dir = run_dir(&config.out, &results.run_id);
    let mut writer = ResultsWriter::new(dir, results)?;
    if !config.quiet {
        let names: Vec<&str> = plan.variants.iter().map(|v| v.name).collect();
        let scenarios: Vec<&str> = plan.scenarios.iter().map(|s| s.as_str()).collect();
        // Rounds of the scenarios that measure in them; the population has its own.
        let mut rounds = Vec::new();
        if plan
            .scenarios
            .iter()
            .any(|s| matches!(s, Scenario::Steady | Scenario::Cost | Scenario::Rtt | Scenario::Tokensize))
        {
            rounds.push(format!("{} rounds", plan.repetitions));
        }
        if plan.scenarios.contains(&Scenario::Population) {
            rounds.push(format!("population {} rounds", plan.population_rounds));
        }
        let rounds = if rounds.is_empty() { String::new() } else { format!(" — {}", rounds.join(", ")) };
        eprintln!(
            "authbench run: suite {} — {} × {}{rounds} — about {}",
            plan.name.as_str(),
            names.join(", "),
            scenarios.join(", "),
            humantime::format_duration(Duration::from_secs(plan.estimate.as_secs()))
        );
        eprintln!("results: {}", writer.path().display());
    }
    let cancel = cancel_flag();
    let runtime = runtime()?;
    let launcher = Launcher { binary, cpus: config.placement.server.clone() };
    let knobs = local::knobs(plan.clone(), &config.placement, Some(launcher), runtime.handle().clone(), cancel.clone());
    let mut fleet = local::LocalFleet::new(knobs, config.placement.clone(), cluster);
    let progress = Progress::new(config.quiet, plan.estimate);
    let outcome = orchestrate(
        &steps(plan, true),
        &mut fleet,
        &mut Context { writer: &mut writer, progress: &progress, cancel: &cancel },
    );
    progress.finish();
    // Servers and Redis stop here, before the results are marked finished.
    drop(fleet);
    finalize(writer, &cancel, outcome)
}

/// `authbench load`: the same measurements against a server someone else runs.
pub fn load(config: LoadConfig) -> anyhow::Result<Finished> {
    let plan = &config.plan;
    let runtime = runtime()?;
    let capabilities = runtime
        .block_on(client::capabilities(config.target))
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", config.target_url))?;
    let mut results = header::new_results(
        "load",
        Some(config.target_url.clone()),
        plan,
        header::placement_of(&CpuPlacement::default()),
        local::REQUEST_TIMEOUT,
    );
    if config.server_pid.is_none() {
        results.not_measured.push("server CPU and memory: no --server-pid given".into());
    }
    if config.redis_port.is_none() {
        results.not_measured.push("Redis commands and CPU per request: no --redis-port given".into());
    }
    results
        .not_measured
        .push("generator ceiling: no calibration against wrk in `load` (generator_bound still comes from the generator's own CPU and drops)".into());
    let mut writer = ResultsWriter::new(run_dir(&config.out, &results.run_id), results)?;
    let store = config
        .redis_port
        .map(|port| StoreProbe::Redis(RedisProbe::at(std::net::SocketAddr::from(([127, 0, 0, 1], port)), None)));
    let subject = Subject {
        addr: config.target,
        others: Vec::new(),
        pid: config.server_pid,
        store,
        variant: capabilities.strategy.clone(),
        strategy: capabilities.strategy.clone(),
        server_args: Vec::new(),
        capabilities: Some(capabilities.clone()),
        password: config.user_password.clone(),
    };
    let cancel = cancel_flag();
    let knobs = local::knobs(plan.clone(), &CpuPlacement::default(), None, runtime.handle().clone(), cancel.clone());
    if !config.quiet {
        eprintln!(
            "authbench load: {} ({}) — results: {}",
            config.target_url,
            subject.strategy,
            writer.path().display()
        );
    }
    let mut steps = Vec::new();
    if plan.scenarios.iter().any(|s| matches!(s, Scenario::Steady | Scenario::Cost)) {
        steps.push(fleet::Step::Rounds(vec![subject.variant.clone()]));
    }
    steps.extend(fleet::subject_steps(plan, &subject.variant, true));
    let mut fleet = remote::RemoteFleet::new(knobs, subject, capabilities, &config);
    let progress = Progress::new(config.quiet, plan.estimate);
    let outcome =
        orchestrate(&steps, &mut fleet, &mut Context { writer: &mut writer, progress: &progress, cancel: &cancel });
    progress.finish();
    finalize(writer, &cancel, outcome)
}

/// `authbench serve`: one strategy (and its Redis) until Ctrl-C.
pub fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let v = config.variant;
    let store = if v.uses_store() { Some(Backing::start_for(v, None)?) } else { None };
    let mut server_args = v.server_args();
    server_args.extend(store.iter().flat_map(Backing::server_args));
    server_args.extend(config.server_args.iter().cloned());
    if config.port != 0 {
        server_args.extend(["--listen".into(), format!("127.0.0.1:{}", config.port)]);
    }
    let server = ServerProcess::start(&server_binary()?, &server_args, None)?;
    println!("serving {} on http://{} (Ctrl-C stops it)", v.name, server.addr);
    if let Some(store) = &store {
        let [_, url] = store.server_args();
        println!("{} on {url} (pid {})", store.process_name(), store.pid().unwrap_or(0));
    }
    println!("users user0..user999, password {USER_PASSWORD:?}, admin key {ADMIN_KEY:?}");
    let cancel = cancel_flag();
    while !cancel.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
