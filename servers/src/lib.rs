//! authbench servers: one axum app, one [`AuthStrategy`](strategy::AuthStrategy) per auth
//! design, all speaking the authbench protocol version 1 (see shared/DESIGN.md).
//!
//! [`Server::build`] turns a validated [`ServerConfig`] into a running app; [`Server::serve`]
//! takes a bound listener and a shutdown future, so tests bind port 0 and run it in-process.
//! [`redis_process`] starts and controls a real `redis-server`, for tests, benches and the harness;
//! [`pg_process`] does the same for a PostgreSQL server.
//!
//! The modules depend on each other one way, lowest first: `redis_process`, `pg_process`, `token`, `users`,
//! `jwt`, `metrics`, `store`, `pg_store`, `error`, `strategy`, `http`, `serve`, `config` (checked by
//! `tests/layers.rs`). Only this root reads the configuration: it hands each strategy the
//! small settings struct that strategy defines.

pub mod config;
pub mod error;
pub mod http;
pub mod jwt;
pub mod metrics;
pub mod pg_process;
pub mod pg_store;
pub mod redis_process;
pub mod serve;
pub mod store;
pub mod strategy;
pub mod token;
pub mod users;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;

pub use config::{ServerConfig, ServerOptions, StrategyName};
use http::AppState;
use jwt::JwtKeys;
use metrics::Metrics;
use pg_store::PgStore;
use store::{RedisStore, RedisTarget};
use strategy::{
    AuthStrategy, BaselineStrategy, Capabilities, HybridSettings, HybridStrategy, JwtSettings, JwtStrategy,
    PushedSettings, PushedStrategy, RefreshSettings, RefreshStrategy, SessionSettings, SessionStrategy,
    VersionedSettings, VersionedStrategy,
};
use users::{HashingLimit, UserDirectory};

/// A server ready to serve: the router of its strategy, and handles tests need.
#[derive(Debug)]
pub struct Server {
    router: Router,
    capabilities: Capabilities,
    jwt_keys: Option<Arc<JwtKeys>>,
    metrics: Arc<Metrics>,
    /// Open connections at once.
    max_connections: usize,
}

impl Server {
    /// Seeds the users, generates keys, connects to Redis (if the strategy needs it) and builds
    /// the router. Fails with a readable message when Redis is unreachable.
    pub async fn build(config: ServerConfig) -> anyhow::Result<Self> {
        config.validate()?;
        let metrics = Arc::new(Metrics::new());
        let (count, password) = (config.users, config.user_password.clone());
        let limit = HashingLimit { concurrency: config.argon2_concurrency, wait: config.argon2_wait };
        let users = tokio::task::spawn_blocking(move || UserDirectory::seed_with_limit(count, &password, limit))
            .await?
            .map_err(|e| anyhow::anyhow!("cannot seed the users: {e}"))?;
        let users = Arc::new(users);
        let jwt_keys = match config.strategy {
            s if s.uses_jwt() => {
                let alg = config.jwt_alg;
                let key_file = config.jwt_key_file.clone();
                let keys = match config.jwt_public_key_file.clone() {
                    Some(public) => JwtKeys::verify_only(alg, &public).map_err(|e| anyhow::anyhow!("{e}"))?,
                    None => tokio::task::spawn_blocking(move || JwtKeys::new(alg, key_file.as_deref()))
                        .await?
                        .map_err(|e| anyhow::anyhow!("cannot generate a {alg:?} key: {e}"))?,
                };
                Some(Arc::new(keys))
            }
            _ => None,
        };
        let pg = if config.uses_postgres() {
            let schema = SessionStrategy::pg_schema(config.postgres_table);
            let store = PgStore::connect(&config.pg_settings(), &schema, metrics.clone()).await.with_context(|| {
                format!("cannot use PostgreSQL at {} (start postgres or pass --postgres-url)", config.postgres_url)
            })?;
            Some(store)
        } else {
            None
        };
        let store = if config.uses_redis() {
            let store = RedisStore::connect(
                &config.redis,
                config.redis_client,
                config.redis_timeout,
                config.redis_pool_size,
                metrics.clone(),
            )
            .await
            .with_context(|| match &config.redis {
                RedisTarget::Single(url) => {
                    format!("cannot reach Redis at {url} (start redis-server or pass --redis-url)")
                }
                RedisTarget::Cluster(urls) => format!(
                    "cannot reach a Redis Cluster at {} (start one with scripts/redis-cluster.sh start)",
                    urls.join(",")
                ),
            })?;
            Some(store)
        } else {
            None
        };
        let admin = Admin {
            key: config.admin_key.clone(),
            revocation_delay: config.revocation_delay,
            issues: jwt_keys.as_ref().is_none_or(|k| k.can_sign()),
            body_read_timeout: config.body_read_timeout,
        };
        if let Some(pg) = pg {
            let strategy = SessionStrategy::postgres(config.session_settings(), pg);
            let (router, capabilities) = assemble(strategy, users, &metrics, &admin);
            return Ok(Self { router, capabilities, jwt_keys, metrics, max_connections: config.max_connections });
        }
        let (router, capabilities) = match (config.strategy, jwt_keys.clone(), store) {
            (StrategyName::Baseline, _, _) => assemble(BaselineStrategy::new(), users, &metrics, &admin),
            (StrategyName::Session, _, Some(store)) => {
                assemble(SessionStrategy::new(config.session_settings(), store), users, &metrics, &admin)
            }
            (StrategyName::Jwt, Some(keys), _) => {
                assemble(JwtStrategy::new(config.jwt_settings(), keys), users, &metrics, &admin)
            }
            (StrategyName::Hybrid, Some(keys), Some(store)) => {
                let strategy = HybridStrategy::new(config.hybrid_settings(), keys, store, metrics.clone());
                assemble(strategy, users, &metrics, &admin)
            }
            (StrategyName::Refresh, Some(keys), Some(store)) => {
                assemble(RefreshStrategy::new(config.refresh_settings(), keys, store), users, &metrics, &admin)
            }
            (StrategyName::Versioned, Some(keys), Some(store)) => {
                assemble(VersionedStrategy::new(config.versioned_settings(), keys, store), users, &metrics, &admin)
            }
            (StrategyName::Pushed, Some(keys), Some(store)) => {
                let strategy = PushedStrategy::new(config.pushed_settings(), keys, store, metrics.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot read the revocation log from Redis: {e}"))?;
                assemble(strategy, users, &metrics, &admin)
            }
            (strategy, _, _) => anyhow::bail!("internal: {strategy:?} was built without its dependencies"),
        };
        Ok(Self { router, capabilities, jwt_keys, metrics, max_connections: config.max_connections })
    }

    /// The app, for in-process use (`tower::ServiceExt::oneshot`).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// What the server reports on `/capabilities`.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// The JWT key ring, for the JWT strategies; tests use it to forge hostile tokens.
    pub fn jwt_keys(&self) -> Option<Arc<JwtKeys>> {
        self.jwt_keys.clone()
    }

    /// The server's counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        serve::serve(listener, self.router, self.max_connections, shutdown).await
    }
}

/// Each strategy's settings, from the configuration: the one place the two meet, so that a
/// strategy depends on what it uses and not on every flag of the server.
impl ServerConfig {
    /// What `session` is built from.
    pub fn session_settings(&self) -> SessionSettings {
        SessionSettings {
            access_ttl: self.access_ttl,
            max_sessions_per_user: self.max_sessions_per_user,
            claims_padding: self.claims_padding,
        }
    }

    /// What `jwt` is built from.
    pub fn jwt_settings(&self) -> JwtSettings {
        JwtSettings { access_ttl: self.access_ttl, claims_padding: self.claims_padding }
    }

    /// What `hybrid` is built from.
    pub fn hybrid_settings(&self) -> HybridSettings {
        HybridSettings {
            access_ttl: self.access_ttl,
            jti_mode: self.jti_mode,
            fail_mode: self.fail_mode,
            max_sessions_per_user: self.max_sessions_per_user,
            claims_padding: self.claims_padding,
        }
    }

    /// What `refresh` is built from.
    pub fn refresh_settings(&self) -> RefreshSettings {
        RefreshSettings {
            access_ttl: self.access_ttl,
            refresh_ttl: self.refresh_ttl,
            reuse_interval: self.refresh_reuse_interval,
            max_sessions_per_user: self.max_sessions_per_user,
            claims_padding: self.claims_padding,
        }
    }

    /// What `versioned` is built from.
    pub fn versioned_settings(&self) -> VersionedSettings {
        VersionedSettings {
            access_ttl: self.access_ttl,
            grace: self.grace,
            single_device: self.max_sessions_per_user == Some(1),
            claims_padding: self.claims_padding,
        }
    }

    /// What `pushed` is built from.
    pub fn pushed_settings(&self) -> PushedSettings {
        PushedSettings {
            access_ttl: self.access_ttl,
            single_device: self.max_sessions_per_user == Some(1),
            claims_padding: self.claims_padding,
        }
    }
}

/// Settings of the app state beside the strategy: the admin key, the test instrument's
/// revocation delay, whether this instance issues tokens, and the body read timeout.
struct Admin {
    key: String,
    revocation_delay: Option<std::time::Duration>,
    /// False on a verify-only instance: it holds a public key and cannot issue tokens.
    issues: bool,
    body_read_timeout: std::time::Duration,
}

fn assemble<S: AuthStrategy>(
    strategy: S,
    users: Arc<UserDirectory>,
    metrics: &Arc<Metrics>,
    admin: &Admin,
) -> (Router, Capabilities) {
    let capabilities = strategy.capabilities();
    let mut state = AppState::new(strategy, users, metrics.clone(), &admin.key);
    state.revocation_delay = admin.revocation_delay;
    state.issues = admin.issues;
    state.body_read_timeout = admin.body_read_timeout;
    let state = Arc::new(state);
    (http::router(state), capabilities)
}
