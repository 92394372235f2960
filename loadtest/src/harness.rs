//! `authbench run`, `load` and `serve`: the orchestration. `run` owns everything it measures:
//! one `redis-server` on a free port (emptied between strategies), one `authbench-server` child
//! per strategy variant, the scenarios, and `results.json` rewritten after every measurement.
//! Ctrl-C or SIGTERM sets a flag the engine watches; the run then stops at once, writes what
//! it has (marked interrupted), and every child is killed as its handle drops.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use authbench_server::redis_process::{RedisOptions, RedisServer, command_at};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{CpuPlacement, LoadArgs, RunArgs, ServeArgs, parse_cpus};
use crate::environment::Environment;
use crate::measure::{RedisProbe, cpus_allowed};
use crate::process::{ServerProcess, server_binary};
use crate::results::{Method, Placement, Results, ResultsWriter, RunRecord, run_id, timestamp};
use crate::scenario::{self, Knobs, Subject};
use crate::suite::{Scenario, SuitePlan, select_variants, variant};

/// Password of the seeded users on servers the harness starts.
pub const USER_PASSWORD: &str = "authbench-password";
/// Users each server seeds: steady tokens use user0..15, login flows user100 and up.
const SEEDED_USERS: &str = "2000";
/// A strategy at or above this fraction of the generator's own ceiling is `generator_bound`.
const GENERATOR_BOUND: f64 = 0.9;

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

/// The overall progress bar (hidden with --quiet or when stderr is not a terminal).
struct Progress {
    bar: ProgressBar,
    started: Instant,
    quiet: bool,
}

impl Progress {
    fn new(quiet: bool, estimate: Duration) -> Self {
        let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(estimate.as_secs().max(1)) };
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise} of ~{len}s] {bar:30} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Self { bar, started: Instant::now(), quiet }
    }

    fn step(&self, message: String) {
        self.bar.set_position(self.started.elapsed().as_secs());
        self.bar.set_message(message);
    }

    /// A line above the bar; printed plainly when no bar is drawn (not a terminal).
    fn println(&self, line: String) {
        if self.quiet {
            return;
        }
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn placement_of(p: &CpuPlacement) -> Placement {
    Placement {
        server: p.server.clone().unwrap_or_else(|| "unpinned".into()),
        generator: p
            .generator
            .as_ref()
            .map(|g| g.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
            .unwrap_or_else(|| "unpinned".into()),
        redis: p.redis.map_or_else(|| "unpinned".into(), |r| r.to_string()),
        observed: Default::default(),
    }
}

fn method_of(plan: &SuitePlan, timeout: Duration) -> Method {
    Method {
        repetitions: plan.repetitions,
        instances: plan.instances,
        warmup_s: plan.warmup.as_secs_f64(),
        steady_duration_s: plan.steady_duration.as_secs_f64(),
        connections: plan.connections,
        generator_threads: plan.threads,
        sweep_fractions: plan.sweep_fractions.clone(),
        sweep_step_s: plan.sweep_step.as_secs_f64(),
        login_duration_s: plan.login_duration.as_secs_f64(),
        login_users: plan.login_users,
        request_timeout_s: timeout.as_secs_f64(),
        notes: vec![
            "Every request is timed by the harness into an HdrHistogram in nanoseconds (3 significant digits); latencies are reported in microseconds.".into(),
            "steady: closed loop, each connection sends as soon as it has its answer; latency is service time; warm-up runs before each repetition and is not counted.".into(),
            "Each connection acts as a client: a token handed back in X-Refreshed-Token (versioned) replaces the one it was sent in place of, for that connection.".into(),
            "sweep: open loop at constant arrival rates, latency measured from each request's intended send time (coordinated omission corrected); service time and the pacer's send lag are recorded too.".into(),
            "login: goose user flows (login, /me, logout), each step timed around the goose call; argon2 and minting times come from the server's Server-Timing header.".into(),
            "CPU per request: /proc/<pid>/stat user+system deltas over the measured window (10 ms clock ticks) divided by requests; Redis commands per request: INFO commandstats deltas.".into(),
            "The generator, the server and Redis share this machine's CPUs unless --cpus pins them; see placement.".into(),
        ],
        redis_cluster: None,
    }
}

fn new_results(
    suite: &str,
    target: Option<String>,
    plan: &SuitePlan,
    placement: Placement,
    timeout: Duration,
) -> Results {
    let now = SystemTime::now();
    Results {
        schema_version: crate::results::SCHEMA_VERSION,
        run_id: run_id(now),
        started_at: timestamp(now),
        finished_at: None,
        complete: false,
        interrupted: false,
        command: std::env::args().collect(),
        suite: suite.to_owned(),
        target,
        environment: Environment::capture(),
        placement,
        method: method_of(plan, timeout),
        calibration: None,
        runs: Vec::new(),
        sweeps: Vec::new(),
        revocation: Vec::new(),
        outage: Vec::new(),
        scale: Vec::new(),
        rtt_injection: None,
        not_measured: Vec::new(),
    }
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

/// `authbench run`.
pub fn run(args: RunArgs) -> anyhow::Result<Finished> {
    let args = args.merge_file()?;
    let suite = args.suite.unwrap_or(crate::suite::SuiteName::Default);
    let mut plan = SuitePlan::new(suite);
    if let Some(wanted) = &args.strategies {
        plan.variants = select_variants(&plan.variants, wanted).map_err(|e| anyhow::anyhow!(e))?;
    }
    if let Some(scenarios) = &args.scenarios {
        plan.scenarios = scenarios.clone();
    }
    if let Some(r) = args.repetitions {
        anyhow::ensure!((1..=100).contains(&r), "--repetitions must be between 1 and 100");
        plan.repetitions = r;
    }
    if let Some(c) = args.connections {
        anyhow::ensure!((1..=10_000).contains(&c), "--connections must be between 1 and 10000");
        plan.connections = c;
    }
    if let Some(d) = args.duration {
        anyhow::ensure!(d >= Duration::from_millis(100), "--duration must be at least 100ms");
        plan.steady_duration = d;
    }
    if let Some(n) = args.instances {
        anyhow::ensure!((1..=2).contains(&n), "--instances must be 1 or 2");
        plan.instances = n;
    }
    plan.estimate = plan.estimated_time();
    let placement = match &args.cpus {
        Some(spec) => parse_cpus(spec).map_err(|e| anyhow::anyhow!(e))?,
        None => CpuPlacement::default(),
    };
    let cluster = match &args.redis_cluster {
        Some(urls) => {
            let urls: Vec<String> =
                urls.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
            anyhow::ensure!(!urls.is_empty(), "--redis-cluster: give seed URLs, e.g. {}", crate::cli::DEFAULT_CLUSTER);
            Some(Backing::cluster(&urls)?)
        }
        None => None,
    };
    // These scenarios stop, seed, relay or measure the memory of a Redis the harness owns.
    let mut skipped = Vec::new();
    if cluster.is_some() {
        plan.scenarios.retain(|s| {
            let owned = matches!(s, Scenario::Outage | Scenario::Scale | Scenario::Rtt | Scenario::Tokensize);
            if owned {
                skipped.push(format!(
                    "{}: needs a Redis authbench owns (stops, seeds or relays it); not run against the Redis Cluster",
                    s.as_str()
                ));
            }
            !owned
        });
        plan.estimate = plan.estimated_time();
    }
    let quiet = args.quiet || args.json;
    let binary = server_binary()?;
    // Missing tools are reported before anything starts.
    if plan.variants.iter().any(|v| v.uses_redis()) {
        which(
            "redis-server",
            "redis-server not found on PATH: run scripts/setup.sh (or `apt-get install redis-server`)",
        )?;
    }
    which("wrk", "wrk not found on PATH: run scripts/setup.sh (or `apt-get install wrk`)")?;

    let timeout = Duration::from_secs(10);
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("results"));
    let mut results = new_results(suite.as_str(), None, &plan, placement_of(&placement), timeout);
    results.not_measured.extend(skipped);
    if let Some(Backing::Cluster { urls, masters }) = &cluster {
        results.method.notes.push(
            "Redis Cluster: counters (commands, network bytes, CPU) are summed over its masters; a multi-key command the client splits by slot counts once per node it reaches.".into(),
        );
        results.method.redis_cluster = Some(crate::results::ClusterMethod {
            seeds: urls.clone(),
            masters: masters.iter().map(|(addr, _)| addr.to_string()).collect(),
        });
    }
    let dir = run_dir(&out, &results.run_id);
    let mut writer = ResultsWriter::new(dir, results)?;
    if !quiet {
        let names: Vec<&str> = plan.variants.iter().map(|v| v.name).collect();
        let scenarios: Vec<&str> = plan.scenarios.iter().map(|s| s.as_str()).collect();
        eprintln!(
            "authbench run: suite {} — {} × {} — {} repetitions — about {}",
            suite.as_str(),
            names.join(", "),
            scenarios.join(", "),
            plan.repetitions,
            humantime::format_duration(Duration::from_secs(plan.estimate.as_secs()))
        );
        eprintln!("results: {}", writer.path().display());
    }
    let cancel = cancel_flag();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let progress = Progress::new(quiet, plan.estimate);
    let outcome = run_plan(&plan, cluster, &placement, &binary, &mut writer, &cancel, &runtime, &progress);
    progress.finish();
    finalize(writer, &cancel, outcome)
}

/// Marks the results finished (complete, or interrupted, or failed), writes them a last time,
/// and passes the measuring error on, if any: what was measured stays on disk either way.
fn finalize(mut writer: ResultsWriter, cancel: &AtomicBool, outcome: anyhow::Result<()>) -> anyhow::Result<Finished> {
    let interrupted = cancel.load(Ordering::SeqCst);
    writer.results.finished_at = Some(timestamp(SystemTime::now()));
    writer.results.interrupted = interrupted;
    writer.results.complete = outcome.is_ok() && !interrupted;
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

/// The Redis the strategies of a run use.
#[derive(Debug)]
enum Backing {
    /// A `redis-server` the harness started and owns (and may pause, kill, relay).
    Own(RedisServer),
    /// A Redis Cluster on loopback that someone else runs (`scripts/redis-cluster.sh`): its
    /// seed URLs and its masters with their process ids.
    Cluster { urls: Vec<String>, masters: Vec<(std::net::SocketAddr, Option<u32>)> },
}

impl Backing {
    /// The server flags that point at it.
    fn server_args(&self) -> [String; 2] {
        match self {
            Self::Own(redis) => ["--redis-url".into(), redis.url()],
            Self::Cluster { urls, .. } => ["--redis-cluster".into(), urls.join(",")],
        }
    }

    /// Empties it: every strategy starts from nothing.
    fn flush(&self) -> anyhow::Result<()> {
        let addrs: Vec<std::net::SocketAddr> = match self {
            Self::Own(redis) => vec![redis.addr()],
            Self::Cluster { masters, .. } => masters.iter().map(|(addr, _)| *addr).collect(),
        };
        for addr in addrs {
            let reply =
                command_at(addr, "FLUSHALL").map_err(|e| anyhow::anyhow!("cannot empty Redis at {addr}: {e}"))?;
            anyhow::ensure!(reply == "+OK", "cannot empty Redis at {addr}: {reply}");
        }
        Ok(())
    }

    fn probe(&self) -> RedisProbe {
        match self {
            Self::Own(redis) => RedisProbe::of(redis),
            Self::Cluster { masters, .. } => RedisProbe { nodes: masters.clone() },
        }
    }

    /// The Redis the harness owns, if it does.
    fn own(&self) -> Option<&RedisServer> {
        match self {
            Self::Own(redis) => Some(redis),
            Self::Cluster { .. } => None,
        }
    }

    /// Finds the cluster behind `urls` (loopback only), checks that it serves every slot and
    /// lists its masters. Every failure is one line that says what to do.
    fn cluster(urls: &[String]) -> anyhow::Result<Self> {
        let start = "start one with scripts/redis-cluster.sh start";
        let mut seeds = Vec::new();
        for url in urls {
            let addr = url
                .strip_prefix("redis://")
                .and_then(|hostport| hostport.trim_end_matches('/').parse::<std::net::SocketAddr>().ok())
                .filter(|a| a.ip().is_loopback())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--redis-cluster: {url:?} is not redis://<loopback ip>:<port> (load stays on this machine)"
                    )
                })?;
            seeds.push(addr);
        }
        let (seed, nodes) =
            seeds
                .iter()
                .find_map(|addr| command_at(*addr, "CLUSTER NODES").ok().map(|n| (*addr, n)))
                .ok_or_else(|| anyhow::anyhow!("no Redis Cluster answers at {}: {start}", urls.join(",")))?;
        anyhow::ensure!(
            !nodes.starts_with('-'),
            "Redis at {seed} is not a cluster node ({}): {start}",
            nodes.lines().next().unwrap_or("")
        );
        let info = command_at(seed, "CLUSTER INFO").unwrap_or_default();
        anyhow::ensure!(
            info.contains("cluster_state:ok"),
            "the Redis Cluster at {seed} does not serve every slot (cluster_state is not ok): check scripts/redis-cluster.sh status"
        );
        let mut masters = Vec::new();
        for (host, port) in authbench_server::store::parse_masters(&nodes) {
            let addr = format!("{host}:{port}")
                .parse::<std::net::SocketAddr>()
                .ok()
                .or_else(|| (host == "localhost").then(|| std::net::SocketAddr::from(([127, 0, 0, 1], port))))
                .filter(|a| a.ip().is_loopback())
                .ok_or_else(|| anyhow::anyhow!("the Redis Cluster has a master at {host}:{port}, not on loopback: authbench only loads this machine"))?;
            masters.push((addr, crate::measure::redis_pid(addr)));
        }
        masters.sort();
        anyhow::ensure!(!masters.is_empty(), "the Redis Cluster at {seed} lists no master: {start}");
        Ok(Self::Cluster { urls: urls.to_vec(), masters })
    }
}

/// Arguments of a further instance (B) started after the first (A) with `args`: for an
/// asymmetric JWT the private key stays with A, and B verifies with the public key A wrote
/// next to the shared key file (`FILE.pub`); it then cannot issue, so logins go to A.
fn further_instance_args(args: &[String]) -> Vec<String> {
    let value_of = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1));
    let asymmetric = value_of("--jwt-alg").is_some_and(|alg| alg != "HS256");
    let mut out = args.to_vec();
    if asymmetric && let Some(i) = out.iter().position(|a| a == "--jwt-key-file") {
        if let Some(flag) = out.get_mut(i) {
            *flag = "--jwt-public-key-file".into();
        }
        if let Some(path) = out.get_mut(i + 1) {
            path.push_str(".pub");
        }
    }
    out
}

fn server_args(v: &crate::suite::Variant, redis: Option<&Backing>) -> Vec<String> {
    let mut args: Vec<String> = v.args.iter().map(|s| (*s).to_owned()).collect();
    args.extend(["--users".into(), SEEDED_USERS.into(), "--user-password".into(), USER_PASSWORD.into()]);
    if let (true, Some(redis)) = (v.uses_redis(), redis) {
        args.extend(redis.server_args());
    }
    args
}

#[allow(clippy::too_many_arguments)]
fn run_plan(
    plan: &SuitePlan,
    cluster: Option<Backing>,
    placement: &CpuPlacement,
    binary: &Path,
    writer: &mut ResultsWriter,
    cancel: &Arc<AtomicBool>,
    runtime: &tokio::runtime::Runtime,
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut knobs = Knobs {
        plan: plan.clone(),
        generator_cpus: placement.generator.clone(),
        cancel: cancel.clone(),
        ceiling_rps: None,
        generator_bound_threshold: GENERATOR_BOUND,
        request_timeout: Duration::from_secs(10),
    };
    // Calibration: the generator and wrk against baseline, before anything else.
    let baseline = variant("baseline").ok_or_else(|| anyhow::anyhow!("baseline variant missing"))?;
    {
        progress.step("calibration: engine and wrk against baseline".into());
        let server = ServerProcess::start(binary, &server_args(baseline, None), placement.server.clone())?;
        let calibration = scenario::calibrate(server.addr, &knobs)?;
        knobs.ceiling_rps = Some(calibration.engine_rps.median);
        if let Some(pid) = server.pid().and_then(cpus_allowed) {
            writer.results.placement.observed.insert("server".into(), pid);
        }
        writer
            .results
            .placement
            .observed
            .insert("generator".into(), cpus_allowed(std::process::id()).unwrap_or_default());
        progress.println(format!(
            "calibration: engine {:.0} req/s, wrk {:.0} req/s against baseline (engine/wrk {:.2})",
            calibration.engine_rps.median,
            calibration.wrk_rps.as_ref().map_or(0.0, |w| w.median),
            calibration.engine_to_wrk.unwrap_or(0.0)
        ));
        writer.results.calibration = Some(calibration);
        writer.save()?;
    }
    let needs_redis = plan.variants.iter().any(|v| v.uses_redis());
    let redis = match cluster {
        Some(cluster) if needs_redis => {
            if let Some(pid) = cluster.probe().nodes.first().and_then(|(_, pid)| *pid).and_then(cpus_allowed) {
                writer.results.placement.observed.insert("redis".into(), pid);
            }
            Some(cluster)
        }
        _ if needs_redis => {
            let redis = RedisServer::start_with(RedisOptions { cpu: placement.redis, ..RedisOptions::default() })?;
            if let Some(pid) = redis.pid().and_then(cpus_allowed) {
                writer.results.placement.observed.insert("redis".into(), pid);
            }
            Some(Backing::Own(redis))
        }
        _ => None,
    };
    for v in &plan.variants {
        if cancel.load(Ordering::SeqCst) {
            break;
        }
        if let (true, Some(redis)) = (v.uses_redis(), &redis) {
            // Every strategy starts from an empty Redis.
            redis.flush()?;
        }
        progress.step(format!("{}: starting", v.name));
        let mut args = server_args(v, redis.as_ref());
        // Further instances share Redis and, for the JWT designs, the signing key.
        let key_file = std::env::temp_dir().join(format!("authbench-key-{}-{}", std::process::id(), v.name));
        let _ = std::fs::remove_file(&key_file);
        if plan.instances > 1 && v.uses_jwt() {
            args.extend(["--jwt-key-file".into(), key_file.display().to_string()]);
        }
        let server = ServerProcess::start(binary, &args, placement.server.clone())?;
        let mut more = Vec::new();
        for _ in 1..plan.instances {
            more.push(ServerProcess::start(binary, &further_instance_args(&args), placement.server.clone())?);
        }
        let capabilities = runtime.block_on(crate::client::capabilities(server.addr))?;
        let subject = Subject {
            addr: server.addr,
            others: more.iter().map(|s| (s.addr, s.pid())).collect(),
            pid: server.pid(),
            redis: if v.uses_redis() { redis.as_ref().map(Backing::probe) } else { None },
            variant: v.name.to_owned(),
            strategy: v.strategy.to_owned(),
            server_args: args,
            capabilities: Some(capabilities),
            password: USER_PASSWORD.to_owned(),
        };
        measure_subject(&subject, &knobs, writer, runtime, progress)?;
        drop(more);
        drop(server);
        let _ = std::fs::remove_file(&key_file);
        if plan.scenarios.contains(&Scenario::Revocation) && v.measures_revocation() && !cancel.load(Ordering::SeqCst) {
            progress.step(format!("{}: revocation", v.name));
            run_revocation(v, redis.as_ref(), binary, placement, &knobs, writer, runtime, progress)?;
        }
    }
    if plan.scenarios.contains(&Scenario::Outage) {
        run_outages(plan, binary, &knobs, writer, runtime, progress)?;
    }
    if plan.scenarios.contains(&Scenario::Rtt) || plan.scenarios.contains(&Scenario::Tokensize) {
        run_points(plan, binary, redis.as_ref().and_then(Backing::own), placement, &knobs, writer, runtime, progress)?;
    }
    if plan.scenarios.contains(&Scenario::Scale) {
        for v in plan.variants.iter().filter(|v| plan.measures_scale(v)) {
            for &entries in &plan.scale_sizes {
                if knobs.cancel.load(Ordering::SeqCst) {
                    return Ok(());
                }
                progress.step(format!("{}: scale, {entries} entries", v.name));
                let mut args: Vec<String> = v.args.iter().map(|s| (*s).to_owned()).collect();
                args.extend(["--users".into(), SEEDED_USERS.into(), "--user-password".into(), USER_PASSWORD.into()]);
                let (scale, record) = crate::scale::run(v, &args, entries, binary, &knobs, runtime)
                    .map_err(|e| anyhow::anyhow!("{} scale {entries}: {e:#}", v.name))?;
                let server = match (scale.server_rss_bytes, scale.server_start_seconds) {
                    (Some(rss), Some(start)) => {
                        format!(", server {:.1} MiB, up in {start:.2} s", rss as f64 / (1024.0 * 1024.0))
                    }
                    _ => String::new(),
                };
                progress.println(format!(
                    "  {:<16} scale  {:>8} × {}: {:.0} bytes each, {} req/s, p99 {:.0} µs{server}",
                    v.name,
                    entries,
                    scale.entry_kind,
                    scale.bytes_per_entry,
                    scale.throughput_rps.round(),
                    scale.latency_p99_us
                ));
                writer.results.scale.push(scale);
                writer.push(record)?;
            }
        }
    }
    Ok(())
}

/// The rtt and tokensize scenarios: one short steady measurement per point, each on a
/// server started for it (behind a delaying relay, or with padded claims).
#[allow(clippy::too_many_arguments)]
fn run_points(
    plan: &SuitePlan,
    binary: &Path,
    redis: Option<&RedisServer>,
    placement: &CpuPlacement,
    knobs: &Knobs,
    writer: &mut ResultsWriter,
    runtime: &tokio::runtime::Runtime,
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut point_knobs = knobs.clone();
    point_knobs.plan.repetitions = 1;
    point_knobs.plan.warmup = plan.point_warmup;
    point_knobs.plan.steady_duration = plan.point_duration;
    let measure_point = |v: &crate::suite::Variant,
                         extra: &[String],
                         redis_url: Option<String>,
                         label: &str|
     -> anyhow::Result<RunRecord> {
        if let (true, Some(redis)) = (v.uses_redis(), redis) {
            redis.command("FLUSHALL").map_err(|e| anyhow::anyhow!("cannot empty Redis: {e}"))?;
        }
        let mut args: Vec<String> = v.args.iter().map(|s| (*s).to_owned()).collect();
        args.extend(["--users".into(), SEEDED_USERS.into(), "--user-password".into(), USER_PASSWORD.into()]);
        if let (true, Some(url)) = (v.uses_redis(), redis_url) {
            args.extend(["--redis-url".into(), url]);
        }
        args.extend(extra.iter().cloned());
        progress.step(format!("{}: {label}", v.name));
        let server = ServerProcess::start(binary, &args, placement.server.clone())?;
        let subject = Subject {
            addr: server.addr,
            others: Vec::new(),
            pid: server.pid(),
            redis: if v.uses_redis() { redis.map(RedisProbe::of) } else { None },
            variant: v.name.to_owned(),
            strategy: v.strategy.to_owned(),
            server_args: args,
            capabilities: Some(runtime.block_on(crate::client::capabilities(server.addr))?),
            password: USER_PASSWORD.to_owned(),
        };
        let (templates, token_bytes) = runtime.block_on(scenario::me_templates(&subject, plan.connections.min(16)))?;
        scenario::steady(&subject, &point_knobs, &templates, token_bytes)
    };
    if plan.scenarios.contains(&Scenario::Rtt) {
        writer.results.rtt_injection = Some(
            "authbench's own delaying TCP relay on loopback (a reader and a writer thread per direction, std::thread::sleep until half the round trip has passed; bandwidth not limited)".into(),
        );
        for v in plan.variants.iter().filter(|v| plan.measures_rtt(v)) {
            for &rtt in &plan.rtt_steps {
                if knobs.cancel.load(Ordering::SeqCst) {
                    return Ok(());
                }
                let (url, measured, _relay) = match redis {
                    Some(redis) if !rtt.is_zero() => {
                        let relay = crate::relay::DelayRelay::start(redis.addr(), rtt)?;
                        let measured = crate::relay::measure_rtt(relay.addr, 21);
                        (Some(relay.url()), measured, Some(relay))
                    }
                    Some(redis) => (Some(redis.url()), crate::relay::measure_rtt(redis.addr(), 21), None),
                    None => (None, None, None),
                };
                let label = format!("rtt {:.2} ms", rtt.as_secs_f64() * 1e3);
                let mut record = measure_point(v, &[], url, &label)?;
                record.scenario = "rtt".into();
                record.redis_rtt_ms = Some(rtt.as_secs_f64() * 1e3);
                record.redis_rtt_measured_ms =
                    if v.uses_redis() { measured.map(|d| d.as_secs_f64() * 1e3) } else { None };
                progress.println(format!("{}  (Redis {label})", crate::summary::progress_line(&record)));
                writer.push(record)?;
            }
        }
    }
    if plan.scenarios.contains(&Scenario::Tokensize) {
        for v in plan.variants.iter().filter(|v| plan.measures_tokensize(v)) {
            for &pad in &plan.token_paddings {
                if knobs.cancel.load(Ordering::SeqCst) {
                    return Ok(());
                }
                let extra = ["--claims-padding".to_owned(), pad.to_string()];
                let label = format!("tokensize +{pad} B");
                let mut record = measure_point(v, &extra, redis.map(RedisServer::url), &label)?;
                record.scenario = "tokensize".into();
                record.claims_padding_bytes = Some(pad as u64);
                progress.println(format!(
                    "{}  (+{pad} B of claims, token {} B)",
                    crate::summary::progress_line(&record),
                    record.token_bytes.unwrap_or(0)
                ));
                writer.push(record)?;
            }
        }
    }
    Ok(())
}

/// The outage scenario: each fault against each variant that has one, at half the variant's
/// measured maximum (a short closed-loop probe finds it when steady did not run).
fn run_outages(
    plan: &SuitePlan,
    binary: &Path,
    knobs: &Knobs,
    writer: &mut ResultsWriter,
    runtime: &tokio::runtime::Runtime,
    progress: &Progress,
) -> anyhow::Result<()> {
    let outage_plan = crate::outage::OutagePlan {
        before: plan.outage_before,
        fault: plan.outage_fault,
        after: plan.outage_after,
        connections: plan.connections,
        threads: plan.threads,
        keepers: if plan.name == crate::suite::SuiteName::Smoke { 5 } else { 20 },
        password: USER_PASSWORD.to_owned(),
    };
    for v in plan.outage_variants() {
        let steady = writer.results.runs.iter().find(|r| r.variant == v.name && r.scenario == "steady");
        let max = match steady {
            Some(r) => r.throughput_rps.median,
            None => {
                progress.step(format!("{}: probing the maximum for the outage rate", v.name));
                let redis = if v.uses_redis() { Some(RedisServer::start()?) } else { None };
                let redis = redis.map(Backing::Own);
                let server = ServerProcess::start(binary, &server_args(v, redis.as_ref()), None)?;
                let subject = Subject {
                    addr: server.addr,
                    others: Vec::new(),
                    pid: server.pid(),
                    redis: None,
                    variant: v.name.to_owned(),
                    strategy: v.strategy.to_owned(),
                    server_args: Vec::new(),
                    capabilities: None,
                    password: USER_PASSWORD.to_owned(),
                };
                let (templates, bytes) = runtime.block_on(scenario::me_templates(&subject, 8))?;
                let mut probe = knobs.clone();
                probe.plan.repetitions = 1;
                probe.plan.steady_duration = Duration::from_secs(1);
                scenario::steady(&subject, &probe, &templates, bytes)?.throughput_rps.median
            }
        };
        for fault in plan.outage_faults(v) {
            if knobs.cancel.load(Ordering::SeqCst) {
                return Ok(());
            }
            progress.step(format!("{}: outage, {}", v.name, fault.as_str()));
            let mut args: Vec<String> = v.args.iter().map(|s| (*s).to_owned()).collect();
            args.extend(["--users".into(), SEEDED_USERS.into(), "--user-password".into(), USER_PASSWORD.into()]);
            let record = crate::outage::run(
                v.strategy,
                v.name,
                &args,
                v.uses_redis(),
                binary,
                fault,
                (max / 2.0).max(100.0),
                &outage_plan,
                runtime,
                &knobs.cancel,
            )
            .map_err(|e| anyhow::anyhow!("{} outage {}: {e:#}", v.name, fault.as_str()))?;
            progress.println(crate::summary::outage_line(&record));
            writer.results.outage.push(record);
            writer.save()?;
        }
    }
    Ok(())
}

/// Where and on whom the revocation kinds are measured.
struct RevocationTarget<'a> {
    strategy: &'a str,
    variant: &'a str,
    normal: crate::revocation::Pair,
    /// Servers with the single-device policy (the normal ones when the strategy has none).
    single: crate::revocation::Pair,
    instances: u32,
    /// Victims are `user{first_victim + kind index}`.
    first_victim: usize,
    /// Offered rate of the background `GET /me` load the kinds are probed under (none: idle).
    background_rps: Option<f64>,
}

/// Users whose tokens carry the background load of the revocation scenario (never victims).
const BACKGROUND_USERS: std::ops::Range<usize> = 900..916;

/// Background load while revocations are probed: an open-loop `GET /me` stream at `rate`,
/// split over every server of the target, until `stop` is set. Returns the engine's thread.
fn start_background(
    target: &RevocationTarget<'_>,
    rate: f64,
    knobs: &Knobs,
    runtime: &tokio::runtime::Runtime,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<crate::engine::LoadOutcome>>> {
    let mut addrs = vec![target.normal.a, target.normal.b, target.single.a, target.single.b];
    addrs.sort();
    addrs.dedup();
    let first = target.normal.a;
    addrs.retain(|a| *a != first);
    let templates = runtime.block_on(async {
        let mut templates = Vec::new();
        for i in BACKGROUND_USERS {
            let token = crate::client::login(first, &format!("user{i}"), USER_PASSWORD).await?;
            templates.push(crate::engine::RequestTemplate::get("/me", Some(&token))?);
        }
        Ok::<_, anyhow::Error>(templates)
    })?;
    let spec = crate::engine::LoadSpec {
        addr: first,
        others: addrs,
        requests: templates,
        connections: knobs.plan.connections,
        threads: 1,
        warmup: Duration::ZERO,
        // Bounded: the probing of one group never takes longer than its cap and settle.
        duration: knobs.plan.revocation_cap() + knobs.plan.revocation_settle + Duration::from_secs(5),
        schedule: crate::engine::Schedule::Open { rate },
        timeout: knobs.request_timeout,
        cpus: None,
    };
    let stop = stop.clone();
    Ok(std::thread::spawn(move || crate::engine::run(&spec, crate::engine::Keep::default(), &stop)))
}

/// Measures every revocation kind: the per-user kinds together (each on its own victim), then
/// revoke-all alone; records and saves after each group.
fn measure_revocation_kinds(
    target: &RevocationTarget<'_>,
    supported: &dyn Fn(crate::revocation::Kind) -> bool,
    probe_plan: &crate::revocation::ProbePlan,
    knobs: &Knobs,
    writer: &mut ResultsWriter,
    runtime: &tokio::runtime::Runtime,
    progress: &Progress,
) -> anyhow::Result<()> {
    use crate::revocation::Kind;
    let batch: Vec<Kind> = Kind::ALL.iter().copied().filter(|k| *k != Kind::RevokeAll).collect();
    for group in [batch, vec![Kind::RevokeAll]] {
        progress.step(format!(
            "{}: revocation, {} instance(s), {}",
            target.variant,
            target.instances,
            if group.len() == 1 { "revoke-all" } else { "per-user kinds" }
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let background = match target.background_rps {
            Some(rate) => Some(start_background(target, rate, knobs, runtime, &stop)?),
            None => None,
        };
        let measured = runtime.block_on(async {
            let mut tasks = Vec::new();
            for kind in &group {
                let pair = if *kind == Kind::SingleDevice { target.single } else { target.normal };
                let index = Kind::ALL.iter().position(|k| k == kind).unwrap_or(0);
                let victim = format!("user{}", target.first_victim + index);
                let plan = probe_plan.clone();
                let cancel = knobs.cancel.clone();
                let kind = *kind;
                tasks.push(tokio::spawn(async move {
                    (kind, crate::revocation::measure(kind, pair, &victim, &plan, &cancel).await)
                }));
            }
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await);
            }
            out
        });
        stop.store(true, Ordering::SeqCst);
        let load = match background {
            Some(thread) => {
                let outcome = thread.join().map_err(|_| anyhow::anyhow!("background load thread panicked"))??;
                Some(crate::revocation::BackgroundLoad {
                    offered_rps: target.background_rps.unwrap_or(0.0),
                    achieved_rps: outcome.throughput(),
                    // A 401 is an answer: revoke-all also ends the background tokens.
                    failures: outcome.failures().saturating_sub(outcome.statuses.get(&401).copied().unwrap_or(0)),
                })
            }
            None => None,
        };
        for joined in measured {
            let (kind, raw) = joined?;
            let raw = raw.map_err(|e| anyhow::anyhow!("{} {}: {e:#}", target.variant, kind.as_str()))?;
            let record = crate::revocation::summarize(
                target.strategy,
                target.variant,
                kind,
                target.instances,
                supported(kind),
                raw,
                probe_plan.cap,
            );
            let record = crate::revocation::RevocationRecord { background: load.clone(), ..record };
            progress.println(crate::summary::revocation_line(&record));
            writer.results.revocation.push(record);
        }
        writer.save()?;
        if knobs.cancel.load(Ordering::SeqCst) {
            break;
        }
    }
    Ok(())
}

/// The revocation scenario for one variant: its own servers with a short token lifetime (and a
/// shared key file, so two instances accept each other's tokens), one and two instances.
#[allow(clippy::too_many_arguments)]
fn run_revocation(
    v: &crate::suite::Variant,
    redis: Option<&Backing>,
    binary: &Path,
    placement: &CpuPlacement,
    knobs: &Knobs,
    writer: &mut ResultsWriter,
    runtime: &tokio::runtime::Runtime,
    progress: &Progress,
) -> anyhow::Result<()> {
    use crate::revocation::{Kind, Pair};
    let plan = &knobs.plan;
    let key_dir = std::env::temp_dir().join(format!("authbench-keys-{}-{}", std::process::id(), v.name));
    std::fs::create_dir_all(&key_dir)?;
    for &instances in plan.revocation_instances() {
        let key_file = key_dir.join(format!("{instances}.key"));
        let _ = std::fs::remove_file(&key_file);
        let mut args = server_args(v, redis);
        args.extend(["--access-ttl".into(), format!("{}s", plan.revocation_ttl.as_secs().max(1))]);
        if v.uses_jwt() {
            args.extend(["--jwt-key-file".into(), key_file.display().to_string()]);
        }
        let start_pair = |extra: &[&str]| -> anyhow::Result<(ServerProcess, Option<ServerProcess>)> {
            let mut a_args = args.clone();
            a_args.extend(extra.iter().map(|s| (*s).to_owned()));
            let a = ServerProcess::start(binary, &a_args, placement.server.clone())?;
            let b = if instances == 2 {
                Some(ServerProcess::start(binary, &further_instance_args(&a_args), placement.server.clone())?)
            } else {
                None
            };
            Ok((a, b))
        };
        let pair_of = |s: &(ServerProcess, Option<ServerProcess>)| Pair {
            a: s.0.addr,
            b: s.1.as_ref().map_or(s.0.addr, |b| b.addr),
        };
        let normal = start_pair(&[])?;
        // The single-device policy is a server setting; strategies that cannot have it are
        // probed on the normal servers, where a second login ends nothing.
        let single = if v.uses_redis() { Some(start_pair(&["--max-sessions-per-user", "1"])?) } else { None };
        let normal_pair = pair_of(&normal);
        let single_pair = single.as_ref().map_or(normal_pair, pair_of);
        let caps = runtime.block_on(crate::client::capabilities(normal_pair.a))?;
        let single_caps = runtime.block_on(crate::client::capabilities(single_pair.a))?;
        let supported = |kind: Kind| {
            let caps = if kind == Kind::SingleDevice { &single_caps } else { &caps };
            caps.pointer(&format!("/revocation/{}", kind.capability()))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false)
        };
        // A server that checks nothing (revocation_delay "n/a") can never refuse: probing it to
        // the full cap would only say so more slowly.
        let checks_nothing = caps.get("revocation_delay").and_then(serde_json::Value::as_str) == Some("n/a");
        let cap = if checks_nothing { Duration::from_secs(1) } else { plan.revocation_cap() };
        let probe_plan = crate::revocation::ProbePlan {
            probers: 4,
            interval: Duration::from_millis(2),
            lead: Duration::from_millis(100),
            settle: plan.revocation_settle,
            cap,
            password: USER_PASSWORD.to_owned(),
            admin_key: "authbench-admin".to_owned(),
        };
        let victims = RevocationTarget {
            strategy: v.strategy,
            variant: v.name,
            normal: normal_pair,
            single: single_pair,
            instances,
            first_victim: 500 + (instances as usize - 1) * 10,
            // Half the variant's measured maximum, as in the outage scenario: a server at work.
            background_rps: writer
                .results
                .runs
                .iter()
                .find(|r| r.variant == v.name && r.scenario == "steady")
                .map(|r| (r.throughput_rps.median / 2.0).max(100.0)),
        };
        measure_revocation_kinds(&victims, &supported, &probe_plan, knobs, writer, runtime, progress)?;
        drop(single);
        drop(normal);
    }
    let _ = std::fs::remove_dir_all(&key_dir);
    Ok(())
}

/// Runs the plan's scenarios against one subject, saving after each.
fn measure_subject(
    subject: &Subject,
    knobs: &Knobs,
    writer: &mut ResultsWriter,
    runtime: &tokio::runtime::Runtime,
    progress: &Progress,
) -> anyhow::Result<()> {
    let plan = &knobs.plan;
    let cancel = &knobs.cancel;
    let tokens = plan.connections.min(16);
    let (templates, token_bytes) = runtime.block_on(scenario::me_templates(subject, tokens))?;
    let mut max_rps = None;
    for s in &plan.scenarios {
        if cancel.load(Ordering::SeqCst) {
            break;
        }
        match s {
            Scenario::Steady => {
                progress.step(format!("{}: steady", subject.variant));
                let record = scenario::steady(subject, knobs, &templates, token_bytes)?;
                max_rps = Some(record.throughput_rps.median);
                progress.println(crate::summary::progress_line(&record));
                writer.push(record)?;
            }
            Scenario::Sweep => {
                let max = match max_rps {
                    Some(m) => m,
                    None => {
                        // No steady run: a short closed-loop probe finds the maximum.
                        progress.step(format!("{}: probing the maximum", subject.variant));
                        let mut probe = knobs.clone();
                        probe.plan.repetitions = 1;
                        probe.plan.steady_duration = plan.sweep_step;
                        let r = scenario::steady(subject, &probe, &templates, token_bytes)?;
                        r.throughput_rps.median
                    }
                };
                progress.step(format!("{}: sweep", subject.variant));
                let summary = scenario::sweep(subject, knobs, &templates, token_bytes, max, |record| {
                    writer.push(record.clone())
                })?;
                progress.println(format!(
                    "  {:<16} sweep  knee {}",
                    subject.variant,
                    summary.knee_rps.map_or("none within the steps".to_owned(), |k| format!("at {k:.0} req/s"))
                ));
                writer.results.sweeps.push(summary);
                writer.save()?;
            }
            // Need servers of their own (short lifetimes, two instances, own Redis, a relay,
            // padded claims): run by the caller.
            Scenario::Revocation | Scenario::Outage | Scenario::Rtt | Scenario::Tokensize | Scenario::Scale => {}
            Scenario::Login => {
                progress.step(format!("{}: login flows", subject.variant));
                let record = runtime.block_on(scenario::login(subject, knobs))?;
                progress.println(crate::summary::progress_line(&record));
                writer.push(record)?;
            }
        }
    }
    Ok(())
}

/// `authbench load`: the same measurements against a server someone else runs.
pub fn load(args: LoadArgs) -> anyhow::Result<Finished> {
    let target = parse_target(&args.target)?;
    let mut plan = SuitePlan::new(args.suite);
    plan.variants.clear();
    plan.scenarios = args.scenarios.clone();
    if let Some(r) = args.repetitions {
        plan.repetitions = r.clamp(1, 100);
    }
    if let Some(c) = args.connections {
        plan.connections = c.clamp(1, 10_000);
    }
    if let Some(d) = args.duration {
        plan.steady_duration = d.max(Duration::from_millis(100));
    }
    plan.estimate = plan.estimated_time();
    for s in &plan.scenarios {
        anyhow::ensure!(
            !matches!(s, Scenario::Outage | Scenario::Scale | Scenario::Rtt | Scenario::Tokensize),
            "the {} scenario stops Redis, seeds it or restarts the server with other flags, which only \
             `authbench run` can do with the servers it owns; `load` runs steady, sweep, login and revocation",
            s.as_str()
        );
    }
    let quiet = args.output.quiet || args.output.json;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let capabilities =
        runtime.block_on(crate::client::capabilities(target)).map_err(|e| anyhow::anyhow!("{}: {e:#}", args.target))?;
    let strategy = capabilities.get("strategy").and_then(|s| s.as_str()).unwrap_or("unknown").to_owned();
    let timeout = Duration::from_secs(10);
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("results"));
    let mut results =
        new_results("load", Some(args.target.clone()), &plan, placement_of(&CpuPlacement::default()), timeout);
    if args.server_pid.is_none() {
        results.not_measured.push("server CPU and memory: no --server-pid given".into());
    }
    if args.redis_port.is_none() {
        results.not_measured.push("Redis commands and CPU per request: no --redis-port given".into());
    }
    results
        .not_measured
        .push("generator ceiling: no calibration against wrk in `load` (generator_bound is never set)".into());
    let dir = run_dir(&out, &results.run_id);
    let mut writer = ResultsWriter::new(dir, results)?;
    let redis = args.redis_port.map(|port| RedisProbe::at(std::net::SocketAddr::from(([127, 0, 0, 1], port)), None));
    let subject = Subject {
        addr: target,
        others: Vec::new(),
        pid: args.server_pid,
        redis,
        variant: strategy.clone(),
        strategy,
        server_args: Vec::new(),
        capabilities: Some(capabilities),
        password: args.user_password.clone(),
    };
    let cancel = cancel_flag();
    let knobs = Knobs {
        plan: plan.clone(),
        generator_cpus: None,
        cancel: cancel.clone(),
        ceiling_rps: None,
        generator_bound_threshold: GENERATOR_BOUND,
        request_timeout: timeout,
    };
    if !quiet {
        eprintln!("authbench load: {} ({}) — results: {}", args.target, subject.strategy, writer.path().display());
    }
    let progress = Progress::new(quiet, plan.estimate);
    let mut outcome = measure_subject(&subject, &knobs, &mut writer, &runtime, &progress);
    if outcome.is_ok() && plan.scenarios.contains(&Scenario::Revocation) {
        // One instance: the target. Its own token lifetime sets the cap (plus leeway), at most 60 s.
        let caps = subject.capabilities.clone().unwrap_or_default();
        let ttl = caps.get("access_ttl_s").and_then(serde_json::Value::as_u64).filter(|t| *t > 0);
        let cap = ttl.map_or(plan.revocation_cap(), |t| Duration::from_secs((t + 4).min(60)));
        let probe_plan = crate::revocation::ProbePlan {
            probers: 4,
            interval: Duration::from_millis(2),
            lead: Duration::from_millis(100),
            settle: plan.revocation_settle,
            cap,
            password: args.user_password.clone(),
            admin_key: args.admin_key.clone(),
        };
        let pair = crate::revocation::Pair { a: target, b: target };
        let supported = |kind: crate::revocation::Kind| {
            caps.pointer(&format!("/revocation/{}", kind.capability()))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false)
        };
        let revocation_target = RevocationTarget {
            strategy: &subject.strategy,
            variant: &subject.variant,
            normal: pair,
            single: pair,
            instances: 1,
            first_victim: 500,
            background_rps: None,
        };
        outcome = measure_revocation_kinds(
            &revocation_target,
            &supported,
            &probe_plan,
            &knobs,
            &mut writer,
            &runtime,
            &progress,
        );
    }
    progress.finish();
    finalize(writer, &cancel, outcome)
}

/// Accepts `http://127.0.0.1:PORT` or `http://[::1]:PORT` (or localhost): load goes to
/// loopback only.
pub fn parse_target(url: &str) -> anyhow::Result<std::net::SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("--target must be an http:// URL, e.g. http://127.0.0.1:8080"))?;
    let hostport = rest.trim_end_matches('/');
    anyhow::ensure!(!hostport.contains('/'), "--target takes a base URL without a path");
    let hostport = hostport.replacen("localhost", "127.0.0.1", 1);
    let addr: std::net::SocketAddr =
        hostport.parse().map_err(|_| anyhow::anyhow!("--target {url:?} is not http://IP:PORT"))?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "--target {url}: authbench sends load to loopback addresses only (127.0.0.0/8 or [::1])"
    );
    Ok(addr)
}

/// `authbench serve`: one strategy (and its Redis) until Ctrl-C.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let v = variant(&args.strategy).ok_or_else(|| {
        let known: Vec<&str> = crate::suite::VARIANTS.iter().map(|v| v.name).collect();
        anyhow::anyhow!("unknown strategy {:?}; known: {}", args.strategy, known.join(", "))
    })?;
    let binary = server_binary()?;
    let redis = if v.uses_redis() { Some(RedisServer::start()?) } else { None };
    let mut server_args: Vec<String> = v.args.iter().map(|s| (*s).to_owned()).collect();
    if let Some(redis) = &redis {
        server_args.extend(["--redis-url".into(), redis.url()]);
    }
    server_args.extend(args.server_args.iter().cloned());
    if args.port != 0 {
        server_args.extend(["--listen".into(), format!("127.0.0.1:{}", args.port)]);
    }
    let server = ServerProcess::start(&binary, &server_args, None)?;
    println!("serving {} on http://{} (Ctrl-C stops it)", v.name, server.addr);
    if let Some(redis) = &redis {
        println!("redis on {} (pid {})", redis.url(), redis.pid().unwrap_or(0));
    }
    println!("users user0..user999, password {USER_PASSWORD:?}, admin key \"authbench-admin\"");
    let cancel = cancel_flag();
    while !cancel.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_must_be_loopback() {
        assert!(parse_target("http://127.0.0.1:8080").is_ok());
        assert!(parse_target("http://localhost:8080/").is_ok());
        assert!(parse_target("http://[::1]:8080").is_ok());
        assert!(parse_target("http://10.0.0.1:8080").is_err());
        assert!(parse_target("https://127.0.0.1:8080").is_err());
        assert!(parse_target("http://127.0.0.1:8080/me").is_err());
    }

    #[test]
    fn a_second_asymmetric_instance_gets_the_public_key_alone() {
        let args = |alg: &str| -> Vec<String> {
            ["--strategy", "jwt", "--jwt-alg", alg, "--jwt-key-file", "/tmp/k"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        };
        let b = further_instance_args(&args("ES256"));
        assert_eq!(b[4..], ["--jwt-public-key-file".to_owned(), "/tmp/k.pub".to_owned()]);
        assert_eq!(further_instance_args(&args("HS256")), args("HS256"));
        let none: Vec<String> = vec!["--strategy".into(), "session".into()];
        assert_eq!(further_instance_args(&none), none);
    }
}
