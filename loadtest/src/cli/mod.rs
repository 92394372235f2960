//! The command line, validated into typed options at the edge (as oha turns flags into a
//! `WorkMode` early): nothing past here sees an unchecked string.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

mod check;

use crate::plan::SuiteName;
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
    /// Start the stores (Redis; PostgreSQL for session-pg) and every strategy's server, run the scenarios, write results/<run-id>/.
    Run(RunArgs),
    /// Measure a server someone else runs (any language speaking authbench protocol 1).
    Load(LoadArgs),
    /// Start one strategy's server (and the store it needs: Redis or PostgreSQL) until Ctrl-C.
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
    /// Population: simulated users, each with credentials of its own.
    #[arg(long, value_name = "N")]
    pub users: Option<u32>,
    /// Population: each user's mean request rate (Poisson), requests per second.
    #[arg(long, value_name = "RPS")]
    pub user_rate: Option<f64>,
    /// Population: requests per access-token lifetime `refresh` is measured at, comma-separated
    /// (its token lifetime is this over --user-rate, in whole seconds).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub requests_per_lifetime: Option<Vec<f64>>,
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

#[cfg(test)]
mod tests {
    use super::check::{parse_cpus, parse_target};

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
