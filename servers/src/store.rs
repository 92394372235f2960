//! The Redis store the stateful strategies share: one type over two clients, each call bounded
//! by a deadline and counted.
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

use deadpool_redis::{PoolConfig, Runtime, Timeouts};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, Pipeline};

use crate::config::RedisClientKind;
use crate::metrics::Metrics;

/// Why the store could not answer. Every variant means "treat Redis as unavailable".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis pool: {0}")]
    Pool(String),
}

impl StoreError {
    /// Label of the error in `/metrics`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            // The client's own response timeout can fire before ours: still a timeout.
            Self::Redis(e) if e.is_timeout() => "timeout",
            Self::Redis(_) => "redis",
            Self::Pool(_) => "pool",
        }
    }
}

#[derive(Clone)]
enum Backend {
    Multiplexed(ConnectionManager),
    Pool(deadpool_redis::Pool),
}

/// A cheap-to-clone handle on Redis with a deadline on every call.
#[derive(Clone)]
pub struct RedisStore {
    backend: Backend,
    /// Deadline of one call, pool checkout included.
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backend {
            Backend::Multiplexed(_) => "multiplexed",
            Backend::Pool(_) => "pool",
        };
        f.debug_struct("RedisStore").field("client", &kind).field("timeout", &self.timeout).finish()
    }
}

impl RedisStore {
    /// Connects (and for a pool, opens every connection) so that the first request
    /// measures the steady state, not the handshake. Fails if Redis is not reachable now.
    pub async fn connect(
        url: &str,
        kind: RedisClientKind,
        timeout: Duration,
        pool_size: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let backend = match kind {
            RedisClientKind::Multiplexed => {
                let client = redis::Client::open(url)?;
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
            RedisClientKind::Pool => {
                let mut config = deadpool_redis::Config::from_url(url);
                let mut pool_config = PoolConfig::new(pool_size);
                pool_config.timeouts = Timeouts { wait: Some(timeout), create: Some(timeout), recycle: Some(timeout) };
                pool_config.queue_mode = deadpool_redis::QueueMode::Lifo;
                config.pool = Some(pool_config);
                let pool = config.create_pool(Some(Runtime::Tokio1)).map_err(|e| StoreError::Pool(e.to_string()))?;
                // Open every connection now; the pool keeps them.
                let mut held = Vec::with_capacity(pool_size);
                for _ in 0..pool_size {
                    held.push(pool.get().await.map_err(|e| StoreError::Pool(e.to_string()))?);
                }
                drop(held);
                Backend::Pool(pool)
            }
        };
        Ok(Self { backend, timeout, metrics })
    }

    /// Runs one command.
    pub async fn cmd<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        self.metrics.redis_commands.inc();
        let result = tokio::time::timeout(self.timeout, async {
            match &self.backend {
                Backend::Multiplexed(manager) => {
                    let mut conn = manager.clone();
                    Ok(cmd.query_async(&mut conn).await?)
                }
                Backend::Pool(pool) => {
                    let mut conn = pool.get().await.map_err(|e| StoreError::Pool(e.to_string()))?;
                    Ok(cmd.query_async(&mut conn).await?)
                }
            }
        })
        .await;
        self.finish(result)
    }

    /// Runs a pipeline (one round trip) of `commands` commands.
    pub async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline, commands: u64) -> Result<T, StoreError> {
        self.metrics.redis_commands.inc_by(commands);
        let result = tokio::time::timeout(self.timeout, async {
            match &self.backend {
                Backend::Multiplexed(manager) => {
                    let mut conn = manager.clone();
                    Ok(pipe.query_async(&mut conn).await?)
                }
                Backend::Pool(pool) => {
                    let mut conn = pool.get().await.map_err(|e| StoreError::Pool(e.to_string()))?;
                    Ok(pipe.query_async(&mut conn).await?)
                }
            }
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
