//! The Redis store the stateful strategies share: one type over two clients, each call bounded
//! by a deadline and counted.
//!
//! Redis is either one server or a Redis Cluster ([`RedisTarget`]). Against a cluster every
//! command is routed by its key's slot: single-key commands and the multi-key reads and deletes
//! the redis crate splits by slot (`MGET`, `EXISTS`, `UNLINK`) work as they are; scripts (sent
//! by digest, [`RedisStore::script`]) and pipelines must stay inside one slot, so the strategies either keep related keys under one
//! hash tag or send one command per key ([`RedisStore::all`]).
//!
//! Two clients exist because their cost differs and the report shows it:
//! - `multiplexed`: one redis `ConnectionManager`, which pipelines every concurrent request over
//!   a single connection and reconnects by itself after an error.
//! - `pool`: a deadpool-redis pool of multiplexed connections. Its `recycle` sends
//!   `UNWATCH` + `PING` on *every* checkout and waits for the answer, so each pooled request pays
//!   a second round trip; deadpool-redis exposes no switch for that, so the best configuration
//!   is a small LIFO pool (hot connections), warmed at start, with every wait bounded.

use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use deadpool_redis::{PoolConfig, Runtime, Timeouts};
use futures_util::future::try_join_all;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, Pipeline, RedisResult, ScriptInvocation};
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

/// Why the store (Redis, or PostgreSQL for `pg_store`) could not answer. Every variant means
/// "treat the store as unavailable".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// PostgreSQL's own message (the server's for a statement it refused).
    #[error("postgres error: {0}")]
    Postgres(String),
    #[error("store pool: {0}")]
    Pool(String),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // Its `Display` says only "db error" for an error the server sent; the message is in the
        // source, which is kept here so that a log line or `{:#}` says it once.
        let text = match (e.as_db_error(), std::error::Error::source(&e)) {
            (Some(db), _) => format!("{}: {}", db.severity(), db.message()),
            (None, Some(source)) => format!("{e}: {source}"),
            (None, None) => e.to_string(),
        };
        Self::Postgres(text)
    }
}

impl StoreError {
    /// Label of the error in `/metrics`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            // The client's own response timeout can fire before ours: still a timeout.
            Self::Redis(e) if e.is_timeout() => "timeout",
            Self::Redis(_) => "redis",
            Self::Postgres(_) => "postgres",
            Self::Pool(_) => "pool",
        }
    }
}

/// How the server talks to Redis; both exist so their cost can be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisClientKind {
    /// One auto-reconnecting multiplexed connection (redis `ConnectionManager`).
    Multiplexed,
    /// A deadpool-redis pool of multiplexed connections.
    Pool,
}

impl RedisClientKind {
    /// `multiplexed` or `pool`, as `/capabilities` and the results name the client.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Multiplexed => "multiplexed",
            Self::Pool => "pool",
        }
    }
}

/// Where Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server, e.g. `redis://127.0.0.1:6379`.
    Single(String),
    /// The seed nodes of a Redis Cluster; the client learns the rest from them.
    Cluster(Vec<String>),
}

impl std::fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Single(url) => f.write_str(url),
            Self::Cluster(urls) => write!(f, "cluster {}", urls.join(",")),
        }
    }
}

/// How many keys one SCAN step asks for.
const SCAN_BATCH: usize = 1000;

#[derive(Clone)]
enum Backend {
    Multiplexed(ConnectionManager),
    Pool(deadpool_redis::Pool),
    /// The cluster client: one multiplexed connection per node, commands routed by slot.
    Cluster(ClusterConnection),
    ClusterPool(deadpool_redis::cluster::Pool),
}

/// Runs `$body` with `$conn` bound to a connection of `$backend`, whatever its kind.
macro_rules! with_connection {
    ($backend:expr, |$conn:ident| $body:expr) => {
        match $backend {
            Backend::Multiplexed(manager) => {
                let mut $conn = manager.clone();
                $body
            }
            Backend::Pool(pool) => {
                let mut $conn = pool.get().await.map_err(|e| StoreError::Pool(e.to_string()))?;
                $body
            }
            Backend::Cluster(cluster) => {
                let mut $conn = cluster.clone();
                $body
            }
            Backend::ClusterPool(pool) => {
                let mut $conn = pool.get().await.map_err(|e| StoreError::Pool(e.to_string()))?;
                $body
            }
        }
    };
}

/// Opens every connection of a pool now; the pool keeps them.
macro_rules! warm {
    ($pool:expr, $size:expr) => {{
        let mut held = Vec::with_capacity($size);
        for _ in 0..$size {
            held.push($pool.get().await.map_err(|e| StoreError::Pool(e.to_string()))?);
        }
    }};
}
/// A connection of its own, for a reader that blocks (`XREAD BLOCK`) and must not hold up
/// the requests multiplexed on the shared one.
#[allow(missing_debug_implementations)]
pub enum DedicatedConnection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl DedicatedConnection {
    pub async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Self::Single(conn) => cmd.query_async(conn).await,
            Self::Cluster(conn) => cmd.query_async(conn).await,
        }
    }
}

/// A cheap-to-clone handle on Redis with a deadline on every call.
#[derive(Clone)]
pub struct RedisStore {
    backend: Backend,
    target: RedisTarget,
    /// Deadline of one call, pool checkout included.
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backend {
            Backend::Multiplexed(_) => "multiplexed",
            Backend::Pool(_) => "pool",
            Backend::Cluster(_) => "cluster",
            Backend::ClusterPool(_) => "cluster pool",
        };
        f.debug_struct("RedisStore")
            .field("target", &self.target)
            .field("client", &kind)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisStore {
    /// Connects (and for a pool, opens every connection) so that the first request
    /// measures the steady state, not the handshake. Fails if Redis is not reachable now.
    pub async fn connect(
        target: &RedisTarget,
        kind: RedisClientKind,
        timeout: Duration,
        pool_size: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let pool_config = || {
            let mut pool_config = PoolConfig::new(pool_size);
            pool_config.timeouts = Timeouts { wait: Some(timeout), create: Some(timeout), recycle: Some(timeout) };
            pool_config.queue_mode = deadpool_redis::QueueMode::Lifo;
            pool_config
        };
        let backend = match (target, kind) {
            (RedisTarget::Single(url), RedisClientKind::Multiplexed) => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(timeout))
                    .set_connection_timeout(Some(timeout))
                    // Reconnect fast once Redis is back: the outage scenario measures recovery.
                    .set_min_delay(Duration::from_millis(5))
                    .set_max_delay(Duration::from_millis(250))
                    .set_number_of_retries(2);
                let manager = tokio::time::timeout(timeout * 4, client.get_connection_manager_with_config(config))
                    .await
                    .map_err(|_| StoreError::Timeout(timeout * 4))??;
                Backend::Multiplexed(manager)
            }
            (RedisTarget::Single(url), RedisClientKind::Pool) => {
                let mut config = deadpool_redis::Config::from_url(url.as_str());
                config.pool = Some(pool_config());
                let pool = config.create_pool(Some(Runtime::Tokio1)).map_err(|e| StoreError::Pool(e.to_string()))?;
                warm!(pool, pool_size);
                Backend::Pool(pool)
            }
            (RedisTarget::Cluster(urls), RedisClientKind::Multiplexed) => {
                let client = cluster_client(urls, timeout)?;
                let conn = tokio::time::timeout(timeout * 4, client.get_async_connection())
                    .await
                    .map_err(|_| StoreError::Timeout(timeout * 4))??;
                Backend::Cluster(conn)
            }
            (RedisTarget::Cluster(urls), RedisClientKind::Pool) => {
                let mut config = deadpool_redis::cluster::Config::from_urls(urls.clone());
                config.pool = Some(pool_config());
                let pool = config.create_pool(Some(Runtime::Tokio1)).map_err(|e| StoreError::Pool(e.to_string()))?;
                warm!(pool, pool_size);
                Backend::ClusterPool(pool)
            }
        };
        let store = Self { backend, target: target.clone(), timeout, metrics };
        // A cluster client connects lazily: ask every master now, so that a wrong address
        // fails at start and the first request does not pay the handshakes.
        store.ping().await?;
        Ok(store)
    }

    /// The client this store talks to Redis with, for one server or a cluster alike.
    pub fn client_kind(&self) -> RedisClientKind {
        match self.backend {
            Backend::Multiplexed(_) | Backend::Cluster(_) => RedisClientKind::Multiplexed,
            Backend::Pool(_) | Backend::ClusterPool(_) => RedisClientKind::Pool,
        }
    }

    /// Whether Redis is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, RedisTarget::Cluster(_))
    }

    /// A connection of its own (see [`DedicatedConnection`]) whose replies may take up to
    /// `response_timeout`.
    pub async fn dedicated(&self, response_timeout: Duration) -> RedisResult<DedicatedConnection> {
        let connect_timeout = self.timeout.max(Duration::from_millis(100));
        match &self.target {
            RedisTarget::Single(url) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout));
                let client = redis::Client::open(url.as_str())?;
                Ok(DedicatedConnection::Single(client.get_multiplexed_async_connection_with_config(&config).await?))
            }
            RedisTarget::Cluster(urls) => {
                let client = ClusterClient::builder(urls.iter().map(String::as_str))
                    .connection_timeout(connect_timeout)
                    .response_timeout(response_timeout)
                    .retries(1)
                    .build()?;
                Ok(DedicatedConnection::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// Runs one command.
    pub async fn cmd<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        self.metrics.redis_commands.inc();
        let result = tokio::time::timeout(self.timeout, async {
            with_connection!(&self.backend, |conn| Ok(cmd.query_async(&mut conn).await?))
        })
        .await;
        self.finish(result)
    }

    /// Runs a Lua script by its digest (`EVALSHA`), loading it first where Redis does not know
    /// it yet (the first call, or a Redis restarted empty; on a cluster, `SCRIPT LOAD` goes to
    /// every master). Each call sends 40 bytes of digest rather than the script's text, which
    /// `EVAL` would send, and Redis would parse, every time.
    pub async fn script<T: FromRedisValue>(&self, invocation: &ScriptInvocation<'_>) -> Result<T, StoreError> {
        self.metrics.redis_commands.inc();
        let result = tokio::time::timeout(self.timeout, async {
            with_connection!(&self.backend, |conn| Ok(invocation.invoke_async(&mut conn).await?))
        })
        .await;
        self.finish(result)
    }

    /// Runs independent commands concurrently and returns their replies in order: one round
    /// trip on one server (they share the multiplexed connection), in parallel across the
    /// nodes of a cluster. Unlike a pipeline, the commands may touch keys in different slots;
    /// unlike `MULTI`, they are not atomic together.
    pub async fn all<T: FromRedisValue>(&self, cmds: &[Cmd]) -> Result<Vec<T>, StoreError> {
        try_join_all(cmds.iter().map(|cmd| self.cmd(cmd))).await
    }

    /// Runs a pipeline (one round trip) of `commands` commands. On a cluster every key of the
    /// pipeline must be in one slot.
    pub async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline, commands: u64) -> Result<T, StoreError> {
        self.metrics.redis_commands.inc_by(commands);
        let result = tokio::time::timeout(self.timeout, async {
            with_connection!(&self.backend, |conn| Ok(pipe.query_async(&mut conn).await?))
        })
        .await;
        self.finish(result)
    }

    /// Deletes every key whose name matches `pattern` (a `SCAN MATCH` glob), on every master
    /// of a cluster. Not atomic: keys written meanwhile may survive. Each step has the usual
    /// deadline; the walk as a whole takes as long as the keyspace needs.
    pub async fn unlink_matching(&self, pattern: &str) -> Result<(), StoreError> {
        let masters = match &self.backend {
            Backend::Cluster(conn) => masters(&mut conn.clone()).await?,
            Backend::ClusterPool(pool) => {
                let mut conn = pool.get().await.map_err(|e| StoreError::Pool(e.to_string()))?;
                masters(&mut conn).await?
            }
            Backend::Multiplexed(_) | Backend::Pool(_) => Vec::new(),
        };
        let nodes: Vec<Option<(String, u16)>> =
            if masters.is_empty() { vec![None] } else { masters.into_iter().map(Some).collect() };
        for node in nodes {
            let mut cursor: u64 = 0;
            loop {
                let scan =
                    redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(SCAN_BATCH).to_owned();
                let (next, keys): (u64, Vec<String>) = match &node {
                    None => self.cmd(&scan).await?,
                    Some((host, port)) => self.cmd_on(&scan, host, *port).await?,
                };
                if !keys.is_empty() {
                    self.cmd::<()>(redis::cmd("UNLINK").arg(&keys)).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    /// Runs one command on the cluster node at `host:port`.
    async fn cmd_on<T: FromRedisValue>(&self, cmd: &Cmd, host: &str, port: u16) -> Result<T, StoreError> {
        self.metrics.redis_commands.inc();
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host: host.to_owned(), port });
        let result = tokio::time::timeout(self.timeout, async {
            let value = match &self.backend {
                Backend::Cluster(conn) => conn.clone().route_command(cmd.clone(), routing).await?,
                Backend::ClusterPool(pool) => {
                    let mut conn = pool.get().await.map_err(|e| StoreError::Pool(e.to_string()))?;
                    conn.route_command(cmd.clone(), routing).await?
                }
                Backend::Multiplexed(_) | Backend::Pool(_) => {
                    return Err(StoreError::Pool("not a cluster".to_owned()));
                }
            };
            Ok(T::from_redis_value(value).map_err(redis::RedisError::from)?)
        })
        .await;
        self.finish(result)
    }

    /// `PING`, for `/healthz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.cmd(&redis::cmd("PING")).await?;
        Ok(())
    }

    fn finish<T>(&self, result: Result<Result<T, StoreError>, tokio::time::error::Elapsed>) -> Result<T, StoreError> {
        let result = result.unwrap_or(Err(StoreError::Timeout(self.timeout)));
        if let Err(e) = &result {
            self.metrics.redis_error(e.kind());
        }
        result
    }
}

fn cluster_client(urls: &[String], timeout: Duration) -> RedisResult<ClusterClient> {
    ClusterClient::builder(urls.iter().map(String::as_str))
        .connection_timeout(timeout)
        .response_timeout(timeout)
        // Redirections after a failover or resharding are retried; our deadline bounds them.
        .retries(2)
        .min_retry_wait(5)
        .max_retry_wait(250)
        .build()
}

/// The `host:port` of every master, from `CLUSTER NODES`.
async fn masters(conn: &mut ClusterConnection) -> Result<Vec<(String, u16)>, StoreError> {
    let value = conn
        .route_command(
            redis::cmd("CLUSTER").arg("NODES").to_owned(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await?;
    let text = String::from_redis_value(value).map_err(redis::RedisError::from)?;
    Ok(parse_masters(&text))
}

/// Masters in `CLUSTER NODES` output: `<id> <host:port@cport[,hostname]> <flags> ...`.
pub fn parse_masters(text: &str) -> Vec<(String, u16)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_id, address, flags) = (fields.next()?, fields.next()?, fields.next()?);
            if !flags.split(',').any(|f| f == "master") || flags.split(',').any(|f| f == "fail" || f == "noaddr") {
                return None;
            }
            let address = address.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some((host.trim_matches(['[', ']']).to_owned(), port.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_masters;

    #[test]
    fn masters_are_read_from_cluster_nodes() {
        let text = "\
07c3 127.0.0.1:7301@17301 myself,master - 0 0 1 connected 0-5460
67ed 127.0.0.1:7302@17302,node-b master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:7304@17304 slave 07c3 0 1426238317239 4 connected
e7d1 [::1]:7303@17303 master - 0 1426238316232 3 connected 10923-16383
a1b2 127.0.0.1:7305@17305 master,fail - 0 0 5 disconnected
";
        assert_eq!(
            parse_masters(text),
            vec![("127.0.0.1".to_owned(), 7301), ("127.0.0.1".to_owned(), 7302), ("::1".to_owned(), 7303)]
        );
    }
}
