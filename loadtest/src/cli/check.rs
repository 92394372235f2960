//! Turning checked flags into a plan: every value `run`, `load` and `serve` accept is validated
//! here, once, with an error that says what to give instead.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{DEFAULT_CLUSTER, LoadArgs, RunArgs, ServeArgs};
use crate::plan::{
    CpuPlacement, LoadConfig, MAX_REVOCATION_TRIALS, RunConfig, ServeConfig, SuiteName, SuitePlan, VARIANTS,
    select_variants, variant,
};
use crate::results::Scenario;

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
    matches!(s, Scenario::Outage | Scenario::Scale | Scenario::Rtt | Scenario::Tokensize | Scenario::Population)
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

/// Busiest population the generator is asked for (users × rate), requests per second.
const MAX_POPULATION_RPS: f64 = 100_000.0;

/// `--users`, `--user-rate` and `--requests-per-lifetime`: a population the machine can offer,
/// at token lifetimes of at least a second.
fn population(
    plan: &mut SuitePlan,
    users: Option<u32>,
    rate: Option<f64>,
    lifetimes: Option<&Vec<f64>>,
) -> anyhow::Result<()> {
    if let Some(n) = users {
        anyhow::ensure!((1..=1_000_000).contains(&n), "--users must be between 1 and 1000000");
        plan.population_users = n;
    }
    if let Some(r) = rate {
        anyhow::ensure!(r > 0.0 && r.is_finite(), "--user-rate must be a positive number of requests per second");
        plan.user_rate = r;
    }
    let offered = f64::from(plan.population_users) * plan.user_rate;
    anyhow::ensure!(
        offered <= MAX_POPULATION_RPS,
        "--users × --user-rate is {offered:.0} req/s; at most {MAX_POPULATION_RPS:.0}: fewer users or a lower rate"
    );
    if let Some(list) = lifetimes {
        anyhow::ensure!(!list.is_empty(), "--requests-per-lifetime: give at least one value, e.g. 1,10,100");
        for l in list {
            anyhow::ensure!(
                l.is_finite() && *l / plan.user_rate >= 1.0 && *l / plan.user_rate <= 7.0 * 24.0 * 3600.0,
                "--requests-per-lifetime {l} at --user-rate {} needs a token lifetime of {:.2} s; tokens last \
                 between 1 s and 7 days: choose values between {} and {:.0}",
                plan.user_rate,
                l / plan.user_rate,
                plan.user_rate,
                plan.user_rate * 7.0 * 24.0 * 3600.0
            );
        }
        plan.requests_per_lifetime = list.clone();
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
        self.users = self.users.or(file.users);
        self.user_rate = self.user_rate.or(file.user_rate);
        self.requests_per_lifetime = self.requests_per_lifetime.or(file.requests_per_lifetime);
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
        population(&mut plan, args.users, args.user_rate, args.requests_per_lifetime.as_ref())?;
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
