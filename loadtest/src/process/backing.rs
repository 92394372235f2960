//! The store the strategies of a run use: a `redis-server` the harness started and owns (it
//! may pause, kill, relay or seed it), a Redis Cluster on loopback that someone else runs, or a
//! PostgreSQL the harness started and owns (for the variants with `--store postgres`).

use std::net::SocketAddr;

use authbench_server::pg_process::{PgOptions, PgServer};
use authbench_server::redis_process::{RedisOptions, RedisServer, command_at};

use crate::observe::{PgProbe, RedisProbe, StoreProbe, redis_pid};
use crate::plan::Variant;

/// The store the strategies of a run use.
#[derive(Debug)]
pub enum Backing {
    /// A `redis-server` the harness started and owns (and may pause, kill, relay).
    Own(RedisServer),
    /// A Redis Cluster on loopback that someone else runs (`scripts/redis-cluster.sh`): its
    /// seed URLs and its masters with their process ids.
    Cluster { urls: Vec<String>, masters: Vec<(SocketAddr, Option<u32>)> },
    /// A PostgreSQL the harness started and owns.
    Postgres(PgServer),
}

impl Backing {
    /// A store of its own for `v`, started now (pinned to `cpu` when given): PostgreSQL for a
    /// variant that keeps its state there, else Redis.
    pub fn start_for(v: &Variant, cpu: Option<usize>) -> anyhow::Result<Self> {
        Ok(if v.uses_postgres() {
            Self::Postgres(PgServer::start_with(PgOptions { cpu, ..PgOptions::default() })?)
        } else {
            Self::Own(RedisServer::start_with(RedisOptions { cpu, ..RedisOptions::default() })?)
        })
    }

    /// `redis` or `postgres`: the process name its placement is recorded under.
    pub fn process_name(&self) -> &'static str {
        match self {
            Self::Own(_) | Self::Cluster { .. } => "redis",
            Self::Postgres(_) => "postgres",
        }
    }

    /// The server flags that point at it.
    pub fn server_args(&self) -> [String; 2] {
        match self {
            Self::Own(redis) => ["--redis-url".into(), redis.url()],
            Self::Cluster { urls, .. } => ["--redis-cluster".into(), urls.join(",")],
            Self::Postgres(pg) => ["--postgres-url".into(), pg.url()],
        }
    }

    /// Empties it: every strategy starts from nothing.
    pub fn flush(&self) -> anyhow::Result<()> {
        let addrs: Vec<SocketAddr> = match self {
            Self::Own(redis) => vec![redis.addr()],
            Self::Cluster { masters, .. } => masters.iter().map(|(addr, _)| *addr).collect(),
            Self::Postgres(pg) => {
                pg.psql("DROP TABLE IF EXISTS ab_sessions")
                    .map_err(|e| anyhow::anyhow!("cannot empty PostgreSQL at {}: {e}", pg.url()))?;
                return Ok(());
            }
        };
        for addr in addrs {
            let reply =
                command_at(addr, "FLUSHALL").map_err(|e| anyhow::anyhow!("cannot empty Redis at {addr}: {e}"))?;
            anyhow::ensure!(reply == "+OK", "cannot empty Redis at {addr}: {reply}");
        }
        Ok(())
    }

    /// What its counters are read through; none for a PostgreSQL that is not running.
    pub fn probe(&self) -> Option<StoreProbe> {
        Some(match self {
            Self::Own(redis) => StoreProbe::Redis(RedisProbe::of(redis)),
            Self::Cluster { masters, .. } => StoreProbe::Redis(RedisProbe { nodes: masters.clone() }),
            Self::Postgres(pg) => StoreProbe::Postgres(PgProbe::of(pg)?),
        })
    }

    /// The process id of its (first) server, when it runs here.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Self::Own(redis) => redis.pid(),
            Self::Cluster { masters, .. } => masters.first().and_then(|(_, pid)| *pid),
            Self::Postgres(pg) => pg.pid(),
        }
    }

    /// Freezes it (SIGSTOP): connections stay open, nothing answers. A cluster is not ours to
    /// freeze.
    pub fn pause(&self) -> anyhow::Result<()> {
        match self {
            Self::Own(redis) => Ok(redis.pause()?),
            Self::Postgres(pg) => Ok(pg.pause()?),
            Self::Cluster { .. } => anyhow::bail!("a Redis Cluster someone else runs is not frozen by authbench"),
        }
    }

    /// Lets a frozen store run again (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        match self {
            Self::Own(redis) => Ok(redis.resume()?),
            Self::Postgres(pg) => Ok(pg.resume()?),
            Self::Cluster { .. } => anyhow::bail!("a Redis Cluster someone else runs is not resumed by authbench"),
        }
    }

    /// Kills it (SIGKILL, no shutdown).
    pub fn kill(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Own(redis) => Ok(redis.kill()?),
            Self::Postgres(pg) => Ok(pg.kill()?),
            Self::Cluster { .. } => anyhow::bail!("a Redis Cluster someone else runs is not killed by authbench"),
        }
    }

    /// Starts it again on the same port: Redis empty or from its append-only file, PostgreSQL
    /// through crash recovery.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Own(redis) => Ok(redis.restart()?),
            Self::Postgres(pg) => Ok(pg.restart()?),
            Self::Cluster { .. } => anyhow::bail!("a Redis Cluster someone else runs is not restarted by authbench"),
        }
    }

    /// The Redis the harness owns, if it does.
    pub fn own(&self) -> Option<&RedisServer> {
        match self {
            Self::Own(redis) => Some(redis),
            Self::Cluster { .. } | Self::Postgres(_) => None,
        }
    }

    /// The PostgreSQL the harness owns, if it is one.
    pub fn postgres(&self) -> Option<&PgServer> {
        match self {
            Self::Postgres(pg) => Some(pg),
            Self::Own(_) | Self::Cluster { .. } => None,
        }
    }

    /// Finds the cluster behind `urls` (loopback only), checks that it serves every slot and
    /// lists its masters. Every failure is one line that says what to do.
    pub fn cluster(urls: &[String]) -> anyhow::Result<Self> {
        let start = "start one with scripts/redis-cluster.sh start";
        let mut seeds = Vec::new();
        for url in urls {
            let addr = url
                .strip_prefix("redis://")
                .and_then(|hostport| hostport.trim_end_matches('/').parse::<SocketAddr>().ok())
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
                .parse::<SocketAddr>()
                .ok()
                .or_else(|| (host == "localhost").then(|| SocketAddr::from(([127, 0, 0, 1], port))))
                .filter(|a| a.ip().is_loopback())
                .ok_or_else(|| anyhow::anyhow!("the Redis Cluster has a master at {host}:{port}, not on loopback: authbench only loads this machine"))?;
            masters.push((addr, redis_pid(addr)));
        }
        masters.sort();
        anyhow::ensure!(!masters.is_empty(), "the Redis Cluster at {seed} lists no master: {start}");
        Ok(Self::Cluster { urls: urls.to_vec(), masters })
    }
}
