//! The command line, validated into typed options at the edge (as oha turns flags into a
//! `WorkMode` early): nothing past here sees an unchecked string.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::plan::{
    CpuPlacement, LoadConfig, MAX_REVOCATION_TRIALS, RunConfig, ServeConfig, SuiteName, SuitePlan, VARIANTS,
    select_variants, variant,
};
use crate::results::Scenario;

/// Where `cargo bench` leaves criterion's estimates, relative to the workspace root.
pub const CRITERION_DIR: &str = "target/criterion";

#[derive(Debug, Parser)]
#[command(name = "authbench", version, about = "Measures what each auth design costs, on this machine")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start Redis and every strategy's server, run the scenarios, write results/<run-id>/.
    Run(RunArgs),
    /// Measure a server someone else runs (any language speaking authbench protocol 1).
    Load(LoadArgs),
    /// Start one strategy's server (and the Redis it needs) until Ctrl-C.
    Serve(ServeArgs),
    /// Render the report of a results directory from its results.json.
    Report {
        /// A directory holding results.json.
        dir: PathBuf,
        /// Where criterion's estimates are read from (included when present).
        #[arg(long, default_value = CRITERION_DIR, value_name = "DIR")]
        criterion: PathBuf,
    },
    /// Show two runs side by side with ratios (before/after a change, two machines, two Redis deployments).
    Compare {
        /// Run A: a run directory holding results.json, or a results.json file.
        a: PathBuf,
        /// Run B, compared against A (ratios are B/A).
        b: PathBuf,
    },
}

/// The cluster `scripts/redis-cluster.sh start` runs.
pub const DEFAULT_CLUSTER: &str = "redis://127.0.0.1:7301,redis://127.0.0.1:7302,redis://127.0.0.1:7303";

/// Output switches shared by the measuring commands.
#[derive(Debug, Clone, Copy, Args)]
pub struct OutputArgs {
    /// No progress bars and no table; only the paths of the results and the report.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print results.json to stdout at the end (implies --quiet for everything else).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunArgs {
    /// How much to measure: smoke (about 1 min), default (<15 min), full (longer).
    #[arg(long, value_enum)]
    pub suite: Option<SuiteName>,
    /// Strategies or variants, comma-separated (e.g. session,jwt-rs256); default: the suite's.
    #[arg(long, value_delimiter = ',')]
    pub strategies: Option<Vec<String>>,
    /// Scenarios, comma-separated; default: all of steady, sweep, login.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub scenarios: Option<Vec<Scenario>>,
    /// Rounds: steady, cost, rtt and tokensize measure every variant once per round, in a
    /// shuffled order (median and 95 % interval over the rounds are reported).
    #[arg(long, visible_alias = "rounds")]
    pub repetitions: Option<u32>,
    /// Trials per revocation kind and instance pairing (median and maximum are reported).
    #[arg(long, value_name = "N")]
    pub revocation_trials: Option<u32>,
    /// Where run directories are created.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// TOML file with any of these settings (flags win).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// CPU placement, e.g. server=0,generator=1,redis=1 (a value may be a range like 0-1).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Connections of the closed-loop and open-loop engines.
    #[arg(long)]
    pub connections: Option<usize>,
    /// Measured window of each steady repetition (and of the rate scenario), e.g. 5s.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde_opt")]
    pub duration: Option<Duration>,
    /// Open loop at this many requests per second for --duration (the rate scenario, as
    /// wrk2's -R); alone, it selects the rate scenario.
    #[arg(long, value_name = "RPS")]
    pub rate: Option<f64>,
    /// Most connections the open-loop generator may open at once (default: 1.25 × the
    /// rate × the 10 s request deadline, at most 8192); sends beyond are counted dropped.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Use a Redis Cluster on loopback instead of a redis-server of authbench's own: seed
    /// URLs, comma-separated; without a value, the cluster scripts/redis-cluster.sh starts.
    /// outage, scale, rtt and tokensize need a Redis authbench owns and are skipped.
    #[arg(long, num_args = 0..=1, default_missing_value = DEFAULT_CLUSTER, value_name = "URLS")]
    pub redis_cluster: Option<String>,
    /// Server instances per strategy (1 or 2), sharing Redis and key material; steady and
    /// sweep load is split across them, the revocation scenario always revokes on A, probes B.
    #[arg(long)]
    pub instances: Option<u32>,
    /// No progress bars and no table; only the paths of the results and the report.
    #[arg(long, short)]
    #[serde(skip)]
    pub quiet: bool,
    /// Print results.json to stdout at the end.
    #[arg(long)]
    #[serde(skip)]
    pub json: bool,
}

mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom)).transpose()
    }
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8080 (loopback only).
    #[arg(long)]
    pub target: String,
    /// Scenarios, comma-separated (default: steady, or rate when --rate is given).
    #[arg(long = "scenario", value_delimiter = ',', value_enum)]
    pub scenarios: Option<Vec<Scenario>>,
    /// Durations and rounds come from this suite.
    #[arg(long, value_enum, default_value_t = SuiteName::Default)]
    pub suite: SuiteName,
    /// Rounds of the steady and cost measurements (median and 95 % interval are reported).
    #[arg(long, visible_alias = "rounds")]
    pub repetitions: Option<u32>,
    /// Trials per revocation kind (median and maximum are reported).
    #[arg(long, value_name = "N")]
    pub revocation_trials: Option<u32>,
    #[arg(long)]
    pub connections: Option<usize>,
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Open loop at this many requests per second for --duration (the rate scenario, as
    /// wrk2's -R); alone, it selects the rate scenario.
    #[arg(long, value_name = "RPS")]
    pub rate: Option<f64>,
    /// Most connections the open-loop generator may open at once (default: 1.25 × the
    /// rate × the 10 s request deadline, at most 8192); sends beyond are counted dropped.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Password of the seeded users user0.. on the target.
    #[arg(long, default_value = "authbench-password")]
    pub user_password: String,
    /// The target's admin key (revocation scenario: ban, role change, revoke-all).
    #[arg(long, default_value = "authbench-admin")]
    pub admin_key: String,
    /// Process id of the server, to measure its CPU time and memory (same machine only).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Port of the server's Redis on 127.0.0.1, to count Redis commands per request.
    #[arg(long)]
    pub redis_port: Option<u16>,
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Strategy or variant (baseline, session, session-pool, jwt, jwt-rs256, hybrid, ...).
    #[arg(long)]
    pub strategy: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Further authbench-server flags, after `--`.
    #[arg(last = true)]
    pub server_args: Vec<String>,
}

/// Parses `server=0,generator=1,redis=1` (values may be ranges `a-b` for server and generator).
pub fn parse_cpus(spec: &str) -> Result<CpuPlacement, String> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut placement = CpuPlacement::default();
    let cpu = |s: &str| -> Result<usize, String> {
        let n: usize = s.trim().parse().map_err(|_| format!("--cpus: {s:?} is not a CPU number"))?;
        if n >= cores {
            return Err(format!("--cpus: CPU {n} does not exist (this machine has {cores})"));
        }
        Ok(n)
    };
    let list = |s: &str| -> Result<Vec<usize>, String> {
        match s.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (cpu(a)?, cpu(b)?);
                if a > b {
                    return Err(format!("--cpus: empty range {s}"));
                }
                Ok((a..=b).collect())
            }
            None => Ok(vec![cpu(s)?]),
        }
    };
    for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
        let (key, value) = part.split_once('=').ok_or_else(|| format!("--cpus: expected name=cpu, got {part:?}"))?;
        match key.trim() {
            "server" => {
                let cpus = list(value)?;
                placement.server = Some(cpus.iter().map(ToString::to_string).collect::<Vec<_>>().join(","));
            }
            "generator" => placement.generator = Some(list(value)?),
            "redis" => placement.redis = Some(cpu(value)?),
            other => return Err(format!("--cpus: unknown process {other:?} (server, generator, redis)")),
        }
    }
    Ok(placement)
}

/// Scenarios that stop, seed, relay or measure the memory of a Redis the harness owns.
fn needs_own_redis(s: Scenario) -> bool {
    matches!(s, Scenario::Outage | Scenario::Scale | Scenario::Rtt | Scenario::Tokensize)
}

/// Applies `--rate` and `--max-connections`: the rate scenario needs a rate; a rate alone
/// selects it; a rate with scenarios that leave it out is a mistake worth saying.
fn fixed_rate(
    plan: &mut SuitePlan,
    rate: Option<f64>,
    max_connections: Option<usize>,
    scenarios_given: bool,
) -> anyhow::Result<()> {
    if let Some(r) = rate {
        anyhow::ensure!(r.is_finite() && (1.0..=1_000_000.0).contains(&r), "--rate must be between 1 and 1000000");
        if !scenarios_given {
            plan.scenarios = vec![Scenario::Rate];
        }
        anyhow::ensure!(
            plan.scenarios.contains(&Scenario::Rate),
            "--rate applies to the rate scenario: add rate to the scenarios (e.g. --scenarios steady,rate)"
        );
    }
    anyhow::ensure!(
        rate.is_some() || !plan.scenarios.contains(&Scenario::Rate),
        "the rate scenario needs --rate RPS (requests per second), e.g. --rate 1000"
    );
    if let Some(n) = max_connections {
        anyhow::ensure!((1..=16_384).contains(&n), "--max-connections must be between 1 and 16384");
    }
    plan.rate = rate;
    plan.rate_connection_limit = max_connections;
    Ok(())
}

/// `--revocation-trials`: at least one, and no more than the seeded victims allow.
fn revocation_trials(plan: &mut SuitePlan, trials: Option<u32>) -> anyhow::Result<()> {
    if let Some(n) = trials {
        anyhow::ensure!(
            (1..=MAX_REVOCATION_TRIALS).contains(&n),
            "--revocation-trials must be between 1 and {MAX_REVOCATION_TRIALS} (one victim per kind and trial)"
        );
        plan.revocation_trials = n;
    }
    Ok(())
}

impl RunArgs {
    /// Fills unset fields from the TOML file named by `--config`.
    fn merge_file(mut self) -> anyhow::Result<Self> {
        let Some(path) = self.config.clone() else { return Ok(self) };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        let file: RunArgs = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!("config file {}: {}", path.display(), e.message().lines().next().unwrap_or("invalid TOML"))
        })?;
        self.suite = self.suite.or(file.suite);
        self.strategies = self.strategies.or(file.strategies);
        self.scenarios = self.scenarios.or(file.scenarios);
        self.repetitions = self.repetitions.or(file.repetitions);
        self.revocation_trials = self.revocation_trials.or(file.revocation_trials);
        self.out = self.out.or(file.out);
        self.cpus = self.cpus.or(file.cpus);
        self.connections = self.connections.or(file.connections);
        self.duration = self.duration.or(file.duration);
        self.rate = self.rate.or(file.rate);
        self.max_connections = self.max_connections.or(file.max_connections);
        self.redis_cluster = self.redis_cluster.or(file.redis_cluster);
        self.instances = self.instances.or(file.instances);
        Ok(self)
    }

    /// Merges the TOML file and checks every value: the one place `run`'s flags are validated.
    pub fn into_config(self) -> anyhow::Result<RunConfig> {
        let args = self.merge_file()?;
        let suite = args.suite.unwrap_or(SuiteName::Default);
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
        revocation_trials(&mut plan, args.revocation_trials)?;
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
        fixed_rate(&mut plan, args.rate, args.max_connections, args.scenarios.is_some())?;
        let placement = match &args.cpus {
            Some(spec) => parse_cpus(spec).map_err(|e| anyhow::anyhow!(e))?,
            None => CpuPlacement::default(),
        };
        let cluster = match &args.redis_cluster {
            Some(urls) => {
                let urls: Vec<String> =
                    urls.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
                anyhow::ensure!(!urls.is_empty(), "--redis-cluster: give seed URLs, e.g. {DEFAULT_CLUSTER}");
                Some(urls)
            }
            None => None,
        };
        let mut not_measured = Vec::new();
        if cluster.is_some() {
            plan.scenarios.retain(|s| {
                if needs_own_redis(*s) {
                    not_measured.push(format!(
                        "{}: needs a Redis authbench owns (stops, seeds or relays it); not run against the Redis Cluster",
                        s.as_str()
                    ));
                }
                !needs_own_redis(*s)
            });
        }
        plan.estimate = plan.estimated_time();
        Ok(RunConfig {
            plan,
            placement,
            out: args.out.clone().unwrap_or_else(|| PathBuf::from("results")),
            cluster,
            not_measured,
            quiet: args.quiet || args.json,
        })
    }
}

impl LoadArgs {
    /// Checks the target (loopback only) and the scenarios `load` can run.
    pub fn into_config(self) -> anyhow::Result<LoadConfig> {
        let target = parse_target(&self.target)?;
        let mut plan = SuitePlan::new(self.suite);
        plan.variants.clear();
        plan.scenarios = self.scenarios.clone().unwrap_or_else(|| vec![Scenario::Steady]);
        if let Some(r) = self.repetitions {
            plan.repetitions = r.clamp(1, 100);
        }
        revocation_trials(&mut plan, self.revocation_trials)?;
        if let Some(c) = self.connections {
            plan.connections = c.clamp(1, 10_000);
        }
        if let Some(d) = self.duration {
            plan.steady_duration = d.max(Duration::from_millis(100));
        }
        fixed_rate(&mut plan, self.rate, self.max_connections, self.scenarios.is_some())?;
        plan.estimate = plan.estimated_time();
        for s in &plan.scenarios {
            anyhow::ensure!(
                !needs_own_redis(*s),
                "the {} scenario stops Redis, seeds it or restarts the server with other flags, which only \
                 `authbench run` can do with the servers it owns; `load` runs steady, sweep, rate, login and revocation",
                s.as_str()
            );
        }
        Ok(LoadConfig {
            plan,
            target_url: self.target,
            target,
            user_password: self.user_password,
            admin_key: self.admin_key,
            server_pid: self.server_pid,
            redis_port: self.redis_port,
            out: self.out.unwrap_or_else(|| PathBuf::from("results")),
            quiet: self.output.quiet || self.output.json,
        })
    }
}

impl ServeArgs {
    pub fn into_config(self) -> anyhow::Result<ServeConfig> {
        let variant = variant(&self.strategy).ok_or_else(|| {
            let known: Vec<&str> = VARIANTS.iter().map(|v| v.name).collect();
            anyhow::anyhow!("unknown strategy {:?}; known: {}", self.strategy, known.join(", "))
        })?;
        Ok(ServeConfig { variant, port: self.port, server_args: self.server_args })
    }
}

/// Accepts `http://127.0.0.1:PORT` or `http://[::1]:PORT` (or localhost): load goes to
/// loopback only.
pub fn parse_target(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("--target must be an http:// URL, e.g. http://127.0.0.1:8080"))?;
    let hostport = rest.trim_end_matches('/');
    anyhow::ensure!(!hostport.contains('/'), "--target takes a base URL without a path");
    let hostport = hostport.replacen("localhost", "127.0.0.1", 1);
    let addr: SocketAddr = hostport.parse().map_err(|_| anyhow::anyhow!("--target {url:?} is not http://IP:PORT"))?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "--target {url}: authbench sends load to loopback addresses only (127.0.0.0/8 or [::1])"
    );
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_placement_parses() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let p = parse_cpus("server=0,redis=0").unwrap();
        assert_eq!(p.server.as_deref(), Some("0"));
        assert_eq!(p.redis, Some(0));
        assert!(parse_cpus("server=x").is_err());
        assert!(parse_cpus(&format!("server={cores}")).is_err());
        assert!(parse_cpus("gpu=0").is_err());
    }

    #[test]
    fn targets_must_be_loopback() {
        assert!(parse_target("http://127.0.0.1:8080").is_ok());
        assert!(parse_target("http://localhost:8080/").is_ok());
        assert!(parse_target("http://[::1]:8080").is_ok());
        assert!(parse_target("http://10.0.0.1:8080").is_err());
        assert!(parse_target("https://127.0.0.1:8080").is_err());
        assert!(parse_target("http://127.0.0.1:8080/me").is_err());
    }
}
