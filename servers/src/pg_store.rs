//! The PostgreSQL store `session` may keep its sessions in instead of Redis: a deadpool-postgres
//! pool of tokio-postgres connections, every statement prepared once per connection and bounded
//! by the same deadline as a Redis call, counted in `/metrics`.
//!
//! The pool recycles a connection by checking that it is still open (`RecyclingMethod::Fast`):
//! unlike the Redis pool's `PING`, a checkout costs no round trip. It is sized from the cores
//! (two connections per core by default: a backend process each, and the server's request
//! tasks rarely hold one longer than a statement) and opened whole at start, so the first
//! requests measure the steady state and the harness sees a stable set of backends.
//!
//! The table is created at start if missing, as an ordinary logged table or as an UNLOGGED one
//! ([`PgTable`]): no WAL for its writes, emptied by the crash recovery after a kill. A table that
//! exists with the other persistence is refused rather than silently measured as the wrong one.

use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::metrics::Metrics;
use crate::store::StoreError;

/// Whether the session table is written through the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PgTable {
    /// An ordinary table: every write is in the WAL, sessions survive a crash.
    Logged,
    /// `UNLOGGED`: no WAL, faster writes; a crash (kill) empties it.
    Unlogged,
}

impl PgTable {
    /// `logged` or `unlogged`, as `/capabilities` and the results name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logged => "logged",
            Self::Unlogged => "unlogged",
        }
    }
}

/// Which store a store-backed strategy keeps its state in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Redis,
    Postgres,
}

/// Where PostgreSQL is and how to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSettings {
    /// e.g. `postgres://authbench@127.0.0.1:5432/postgres`.
    pub url: String,
    pub table: PgTable,
    /// Connections in the pool.
    pub pool_size: usize,
    /// Deadline of one statement, pool checkout (and connecting) included.
    pub timeout: Duration,
}

/// How long opening one connection may take, apart from the requests that wait for it.
const CREATE_TIMEOUT: Duration = Duration::from_secs(5);

/// The pool size when none is given: two connections per core.
pub fn default_pool_size() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}

/// A cheap-to-clone handle on PostgreSQL with a deadline on every statement.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    table: PgTable,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("table", &self.table)
            .field("pool_size", &self.pool.status().max_size)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl PgStore {
    /// Connects, opens every connection of the pool and runs `schema` (statements separated
    /// by `;`, run once, outside any deadline but the connect's). Fails if PostgreSQL is not
    /// reachable now.
    pub async fn connect(settings: &PgSettings, schema: &str, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config =
            settings.url.parse().map_err(|e: tokio_postgres::Error| StoreError::Pool(e.to_string()))?;
        config.connect_timeout(settings.timeout.max(Duration::from_millis(100)));
        config.application_name("authbench-server");
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.timeout))
            // Opening a connection may take longer than a request waits (a restarted server
            // under load forks a backend per connection): see `checkout`.
            .create_timeout(Some(CREATE_TIMEOUT.max(settings.timeout)))
            .recycle_timeout(Some(settings.timeout))
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let store = Self { pool, table: settings.table, timeout: settings.timeout, metrics };
        let client = store.pool.get().await.map_err(pool_error)?;
        client.batch_execute(schema).await?;
        drop(client);
        let mut held = Vec::with_capacity(settings.pool_size);
        for _ in 0..settings.pool_size {
            held.push(store.pool.get().await.map_err(pool_error)?);
        }
        Ok(store)
    }

    /// Connections the pool holds at most.
    pub fn pool_size(&self) -> usize {
        self.pool.status().max_size
    }

    /// Whether the table is logged.
    pub fn table(&self) -> PgTable {
        self.table
    }

    /// Runs one prepared statement and returns its rows.
    pub async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        let result = tokio::time::timeout(self.timeout, async {
            let client = self.checkout().await?;
            let statement = client.prepare_cached(sql).await?;
            Ok(client.query(&statement, params).await?)
        })
        .await;
        self.finish(result)
    }

    /// Runs one prepared statement and returns how many rows it changed.
    pub async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let result = tokio::time::timeout(self.timeout, async {
            let client = self.checkout().await?;
            let statement = client.prepare_cached(sql).await?;
            Ok(client.execute(&statement, params).await?)
        })
        .await;
        self.finish(result)
    }

    /// A connection of the pool. With one idle, it is taken at once. Without, the pool may open
    /// one, and that runs in a task of its own: a request that gives up at its deadline does
    /// not abandon the connection half-opened, which then joins the pool for the next request.
    /// Otherwise, after PostgreSQL restarts under load, every attempt would be cut at the request
    /// deadline and the pool would never fill again while the load lasts.
    async fn checkout(&self) -> Result<deadpool_postgres::Object, StoreError> {
        if self.pool.status().available > 0 {
            return self.pool.get().await.map_err(pool_error);
        }
        let pool = self.pool.clone();
        match tokio::spawn(async move { pool.get().await }).await {
            Ok(got) => got.map_err(pool_error),
            Err(e) => Err(StoreError::Pool(e.to_string())),
        }
    }

    /// `SELECT 1`, for `/healthz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.query("SELECT 1", &[]).await.map(drop)
    }

    /// Counts the statement once it has ended (answered, failed or timed out), as the request it
    /// serves is counted once answered: read together, the two counters agree under any backlog.
    fn finish<T>(&self, result: Result<Result<T, StoreError>, tokio::time::error::Elapsed>) -> Result<T, StoreError> {
        self.metrics.postgres_statements.inc();
        let result = result.unwrap_or(Err(StoreError::Timeout(self.timeout)));
        if let Err(e) = &result {
            self.metrics.postgres_error(e.kind());
        }
        result
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => StoreError::from(e),
        e => StoreError::Pool(e.to_string()),
    }
}
