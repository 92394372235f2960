//! Server configuration: command-line flags and an optional TOML file, merged and validated
//! into a [`ServerConfig`] before anything starts. The core never sees an unchecked value.
//!
//! The value types of the flags belong to the modules that act on them ([`JwtAlg`] to `jwt`,
//! [`RedisClientKind`] to `store`, [`JtiMode`] and [`FailMode`] to the hybrid strategy); this
//! module only reads and checks them, and only the crate root reads this module, handing each
//! strategy its own settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Deserialize;

use crate::http::BODY_READ_TIMEOUT;
use crate::jwt::JwtAlg;
use crate::pg_store::{PgSettings, PgTable, StoreKind, default_pool_size};
use crate::store::{RedisClientKind, RedisTarget};
use crate::strategy::{FailMode, JtiMode};
use crate::users::HashingLimit;

/// Which auth design the server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StrategyName {
    /// Checks nothing: the ceiling of the HTTP stack.
    Baseline,
    /// Opaque id, one Redis lookup per request.
    Session,
    /// Signed JWT, verified locally, no I/O.
    Jwt,
    /// Signed JWT plus a jti table in Redis.
    Hybrid,
    /// Short-lived JWT plus a rotated refresh token in Redis (reuse detected).
    Refresh,
    /// JWT carrying the user's token version, checked in Redis outside a grace window.
    Versioned,
    /// JWT plus an in-process denylist kept current from a Redis Stream; no Redis per request.
    Pushed,
}

impl StrategyName {
    /// The name as it appears on the command line and in `/capabilities`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Session => "session",
            Self::Jwt => "jwt",
            Self::Hybrid => "hybrid",
            Self::Refresh => "refresh",
            Self::Versioned => "versioned",
            Self::Pushed => "pushed",
        }
    }

    /// Whether the strategy keeps state in Redis.
    pub fn uses_store(self) -> bool {
        matches!(self, Self::Session | Self::Hybrid | Self::Refresh | Self::Versioned | Self::Pushed)
    }

    /// Whether the strategy issues signed JWTs.
    pub fn uses_jwt(self) -> bool {
        matches!(self, Self::Jwt | Self::Hybrid | Self::Refresh | Self::Versioned | Self::Pushed)
    }
}

/// Command-line flags. Every flag is optional here so that a TOML file can supply it;
/// defaults are applied after the merge, in [`ServerOptions::resolve`].
#[derive(Debug, Default, Parser, Deserialize)]
#[command(
    name = "authbench-server",
    version,
    about = "An auth server speaking the authbench protocol v1, one strategy per process"
)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerOptions {
    /// Auth design to run.
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyName>,
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Redis URL, for the strategies that use Redis.
    #[arg(long, conflicts_with = "redis_cluster")]
    pub redis_url: Option<String>,
    /// Redis Cluster seed nodes, comma-separated (instead of --redis-url), e.g.
    /// redis://127.0.0.1:7301,redis://127.0.0.1:7302 (scripts/redis-cluster.sh prints them).
    #[arg(long)]
    pub redis_cluster: Option<String>,
    /// Where a store-backed strategy keeps its state: Redis, or PostgreSQL (session only).
    #[arg(long, value_enum)]
    pub store: Option<StoreKind>,
    /// PostgreSQL URL, with --store postgres, e.g. postgres://authbench@127.0.0.1:5432/postgres.
    #[arg(long)]
    pub postgres_url: Option<String>,
    /// The sessions table with --store postgres: logged (durable) or unlogged (no WAL, emptied
    /// by a crash).
    #[arg(long, value_enum)]
    pub postgres_table: Option<PgTable>,
    /// Connections in the PostgreSQL pool; default: two per core.
    #[arg(long)]
    pub postgres_pool_size: Option<usize>,
    /// Key for the /admin endpoints, sent as X-Admin-Key. Without it the public default
    /// "authbench-admin" is used, on loopback only and with a warning.
    #[arg(long)]
    pub admin_key: Option<String>,
    /// Number of seeded users user0..user{N-1}.
    #[arg(long)]
    pub users: Option<u32>,
    /// Password shared by the seeded users.
    #[arg(long)]
    pub user_password: Option<String>,
    /// TOML file with any of these settings (flags win over the file).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// JWT signature algorithm (jwt and hybrid).
    #[arg(long, value_enum)]
    pub jwt_alg: Option<JwtAlg>,
    /// Lifetime of an access token or session, e.g. 15m, 20s.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub access_ttl: Option<Duration>,
    /// Redis client: one multiplexed connection or a deadpool pool.
    #[arg(long, value_enum)]
    pub redis_client: Option<RedisClientKind>,
    /// Connections in the pool (with --redis-client pool).
    #[arg(long)]
    pub redis_pool_size: Option<usize>,
    /// Deadline of every store call (Redis or PostgreSQL); a hung store gives 503 after about
    /// this long.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub redis_timeout: Option<Duration>,
    /// Hybrid table: allowlist of live jtis or denylist of revoked ones.
    #[arg(long, value_enum)]
    pub jti_mode: Option<JtiMode>,
    /// Hybrid behaviour when Redis is unreachable.
    #[arg(long, value_enum)]
    pub fail_mode: Option<FailMode>,
    /// Live sessions allowed per user; 1 is the single-device policy.
    #[arg(long)]
    pub max_sessions_per_user: Option<u32>,
    /// JWT key file shared by instances (created with a fresh key if missing). For RS256,
    /// ES256 and EdDSA the public key is also written to FILE.pub.
    #[arg(long)]
    pub jwt_key_file: Option<PathBuf>,
    /// Verify tokens with this public key alone (a FILE.pub from --jwt-key-file): the instance
    /// cannot sign, so /login, /refresh and key rotation answer 501 (RS256, ES256, EdDSA).
    #[arg(long, conflicts_with = "jwt_key_file")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Extra bytes of claims in every token (JWT) or session record, to measure what size costs.
    #[arg(long)]
    pub claims_padding: Option<usize>,
    /// Lifetime of a refresh-token family from its login (refresh), e.g. 24h.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub refresh_ttl: Option<Duration>,
    /// How long the refresh token just rotated away stays good for one retry (refresh), e.g.
    /// 5s; 0s: any second use is a replay.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub refresh_reuse_interval: Option<Duration>,
    /// How long a token is trusted without a Redis check (versioned), e.g. 30s; 0s checks always.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub grace: Option<Duration>,
    /// Acknowledge revocations at once but apply them this much later. A known error for
    /// checking the harness's revocation instrument; never for real use.
    #[arg(long, hide = true, value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub revocation_delay: Option<Duration>,
    /// Open connections at once; further clients wait in the kernel's accept queue.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Time a client has to send a whole request body once its head has arrived; a body that
    /// does not arrive in time gets 408 and the connection is closed. Default 10s.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub body_read_timeout: Option<Duration>,
    /// Password hashes (argon2id, 19 MiB each) computed at once; default: the number of cores.
    #[arg(long)]
    pub argon2_concurrency: Option<usize>,
    /// How long a login or password change waits for a hashing slot before it gets 503 with
    /// Retry-After, e.g. 1s.
    #[arg(long, value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub argon2_wait: Option<Duration>,
}

/// A configuration problem, reported as one line with exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub strategy: StrategyName,
    pub listen: SocketAddr,
    /// Redis: one server or a cluster.
    pub redis: RedisTarget,
    /// Which store a store-backed strategy uses.
    pub store: StoreKind,
    /// PostgreSQL, with `store: Postgres` (its deadline is `redis_timeout`, the store deadline).
    pub postgres_url: String,
    pub postgres_table: PgTable,
    pub postgres_pool_size: usize,
    pub admin_key: String,
    pub users: u32,
    pub user_password: String,
    pub jwt_alg: JwtAlg,
    pub access_ttl: Duration,
    pub redis_client: RedisClientKind,
    pub redis_pool_size: usize,
    pub redis_timeout: Duration,
    pub jti_mode: JtiMode,
    pub fail_mode: FailMode,
    pub max_sessions_per_user: Option<u32>,
    pub jwt_key_file: Option<PathBuf>,
    /// Verify-only: the public key, no signing key.
    pub jwt_public_key_file: Option<PathBuf>,
    /// Extra claim bytes per token or session record (0: none).
    pub claims_padding: usize,
    /// Test instrument: revocations are applied this long after they are acknowledged.
    pub revocation_delay: Option<Duration>,
    /// `refresh`: lifetime of a refresh-token family.
    pub refresh_ttl: Duration,
    /// `refresh`: how long the secret a rotation replaced may still be presented once more (a
    /// client retrying a refresh whose answer it never got).
    pub refresh_reuse_interval: Duration,
    /// `versioned`: age below which a token is trusted without asking Redis.
    pub grace: Duration,
    /// Open connections at once (each holds a permit until it closes).
    pub max_connections: usize,
    /// Deadline for a whole request body, counted from the end of its head.
    pub body_read_timeout: Duration,
    /// Password hashes computed at once: each holds 19 MiB of argon2 memory while it runs.
    pub argon2_concurrency: usize,
    /// How long a request waits for a hashing slot before it is turned away with 503.
    pub argon2_wait: Duration,
}

/// How long a rotated-away refresh secret answers a retry by default: long enough for a client
/// to retry after a store timeout (250 ms) or a dropped answer, short enough that a thief's
/// replay minutes later is still caught (Auth0's reuse interval, Okta's grace period).
pub const DEFAULT_REUSE_INTERVAL: Duration = Duration::from_secs(5);
/// A longer interval would let a replay pass unnoticed for too long.
const MAX_REUSE_INTERVAL: Duration = Duration::from_secs(60);

/// The admin key when none is given. It is in the source and the README, so anyone who can
/// reach the server could use it: it is accepted on loopback only, with a warning.
pub const DEFAULT_ADMIN_KEY: &str = "authbench-admin";

/// Most padding a token may carry: base64 turns 8 KiB into 11 KiB, under the 12 KiB token cap.
const MAX_CLAIMS_PADDING: usize = 8192;

/// Longest accepted access lifetime: a week. Longer lifetimes only hide revocation windows.
const MAX_ACCESS_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

impl ServerConfig {
    /// A configuration with every default, for the given strategy; tests and benches start here.
    pub fn new(strategy: StrategyName) -> Self {
        Self {
            strategy,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            redis: RedisTarget::Single("redis://127.0.0.1:6379".to_owned()),
            store: StoreKind::Redis,
            postgres_url: "postgres://authbench@127.0.0.1:5432/postgres".to_owned(),
            postgres_table: PgTable::Logged,
            postgres_pool_size: default_pool_size(),
            admin_key: DEFAULT_ADMIN_KEY.to_owned(),
            users: 1000,
            user_password: "authbench-password".to_owned(),
            jwt_alg: JwtAlg::HS256,
            // Refresh tokens exist so that access tokens can be short-lived.
            access_ttl: Duration::from_secs(if strategy == StrategyName::Refresh { 60 } else { 15 * 60 }),
            redis_client: RedisClientKind::Multiplexed,
            redis_pool_size: 8,
            redis_timeout: Duration::from_millis(250),
            jti_mode: JtiMode::Allowlist,
            fail_mode: FailMode::Closed,
            max_sessions_per_user: None,
            jwt_key_file: None,
            jwt_public_key_file: None,
            claims_padding: 0,
            revocation_delay: None,
            refresh_ttl: Duration::from_secs(24 * 3600),
            refresh_reuse_interval: DEFAULT_REUSE_INTERVAL,
            grace: Duration::from_secs(30),
            max_connections: 4096,
            body_read_timeout: BODY_READ_TIMEOUT,
            argon2_concurrency: HashingLimit::default().concurrency,
            argon2_wait: HashingLimit::default().wait,
        }
    }

    /// Whether the strategy keeps its state in Redis.
    pub fn uses_redis(&self) -> bool {
        self.strategy.uses_store() && self.store == StoreKind::Redis
    }

    /// Whether the strategy keeps its state in PostgreSQL.
    pub fn uses_postgres(&self) -> bool {
        self.strategy.uses_store() && self.store == StoreKind::Postgres
    }

    /// The PostgreSQL settings, under the store deadline.
    pub fn pg_settings(&self) -> PgSettings {
        PgSettings {
            url: self.postgres_url.clone(),
            table: self.postgres_table,
            pool_size: self.postgres_pool_size,
            timeout: self.redis_timeout,
        }
    }

    /// Whether the admin endpoints accept the public default key.
    pub fn uses_default_admin_key(&self) -> bool {
        self.admin_key == DEFAULT_ADMIN_KEY
    }

    /// Rejects combinations that would make the server say something untrue about itself,
    /// and a public admin key on an address other hosts can reach.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.users == 0 {
            return invalid("--users must be at least 1");
        }
        if self.user_password.is_empty() || self.user_password.len() > crate::users::MAX_PASSWORD_BYTES {
            return invalid("--user-password must be 1 to 1024 bytes");
        }
        if self.admin_key.len() < 8 {
            return invalid("--admin-key must be at least 8 bytes");
        }
        if self.uses_default_admin_key() && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "the default admin key \"{DEFAULT_ADMIN_KEY}\" is public: give --admin-key to listen on {} (beyond loopback)",
                self.listen
            )));
        }
        if self.access_ttl < Duration::from_secs(1) || self.access_ttl > MAX_ACCESS_TTL {
            return invalid("--access-ttl must be between 1s and 7days");
        }
        if self.redis_timeout < Duration::from_millis(1) || self.redis_timeout > Duration::from_secs(60) {
            return invalid("--redis-timeout must be between 1ms and 60s");
        }
        if self.claims_padding > MAX_CLAIMS_PADDING {
            return invalid("--claims-padding must be at most 8192 bytes (tokens are capped at 12 KiB)");
        }
        if self.redis_pool_size == 0 || self.redis_pool_size > 1024 {
            return invalid("--redis-pool-size must be between 1 and 1024");
        }
        // Only `refresh` issues refresh tokens; the others never read --refresh-ttl.
        if self.strategy == StrategyName::Refresh
            && (self.refresh_ttl < self.access_ttl || self.refresh_ttl > Duration::from_secs(90 * 24 * 3600))
        {
            return invalid("--refresh-ttl must be at least --access-ttl and at most 90days");
        }
        if self.refresh_reuse_interval > MAX_REUSE_INTERVAL {
            return invalid("--refresh-reuse-interval must be at most 60s (a replay inside it is not caught)");
        }
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            return invalid("--max-connections must be between 1 and 1000000");
        }
        if self.body_read_timeout < Duration::from_millis(1) || self.body_read_timeout > Duration::from_secs(300) {
            return invalid("--body-read-timeout must be between 1ms and 300s");
        }
        if self.argon2_concurrency == 0 || self.argon2_concurrency > 1024 {
            return invalid("--argon2-concurrency must be between 1 and 1024");
        }
        if self.argon2_wait > Duration::from_secs(60) {
            return invalid("--argon2-wait must be at most 60s");
        }
        if self.grace > MAX_ACCESS_TTL {
            return invalid("--grace must be at most 7days (at or above --access-ttl, Redis is never asked)");
        }
        if self.store == StoreKind::Postgres {
            if self.strategy != StrategyName::Session {
                return invalid("--store postgres is supported by --strategy session only");
            }
            if !(self.postgres_url.starts_with("postgres://") || self.postgres_url.starts_with("postgresql://")) {
                return invalid(
                    "--postgres-url must start with postgres:// (e.g. postgres://authbench@127.0.0.1:5432/postgres)",
                );
            }
            if self.postgres_pool_size == 0 || self.postgres_pool_size > 1024 {
                return invalid("--postgres-pool-size must be between 1 and 1024");
            }
        }
        if self.uses_redis() {
            match &self.redis {
                RedisTarget::Single(url) if !url.starts_with("redis://") => {
                    return invalid("--redis-url must start with redis:// (e.g. redis://127.0.0.1:6379)");
                }
                RedisTarget::Cluster(urls) if urls.is_empty() || urls.iter().any(|u| !u.starts_with("redis://")) => {
                    return invalid(
                        "--redis-cluster must be comma-separated redis:// URLs (e.g. redis://127.0.0.1:7301,redis://127.0.0.1:7302)",
                    );
                }
                _ => {}
            }
        }
        if self.jwt_public_key_file.is_some() {
            if self.jwt_key_file.is_some() {
                return invalid("--jwt-public-key-file and --jwt-key-file exclude each other: verify-only or signing");
            }
            if !self.strategy.uses_jwt() || self.jwt_alg == JwtAlg::HS256 {
                return invalid(
                    "--jwt-public-key-file needs a JWT strategy with --jwt-alg RS256, ES256 or EdDSA (HS256 has no public key)",
                );
            }
        }
        if self.fail_mode == FailMode::Open && self.strategy != StrategyName::Hybrid {
            return invalid(
                "--fail-mode open only applies to --strategy hybrid (a session cannot be checked without Redis)",
            );
        }
        if self.jti_mode != JtiMode::Allowlist && self.strategy != StrategyName::Hybrid {
            return invalid("--jti-mode only applies to --strategy hybrid");
        }
        match self.max_sessions_per_user {
            Some(0) => return invalid("--max-sessions-per-user must be at least 1"),
            Some(_) if !self.strategy.uses_store() => {
                return invalid("--max-sessions-per-user needs server-side state: use --strategy session or hybrid");
            }
            Some(n) if n > 1 && self.strategy == StrategyName::Versioned => {
                return invalid(
                    "--strategy versioned keeps one version per user, so it supports --max-sessions-per-user 1 only",
                );
            }
            Some(n) if n > 1 && self.jti_mode == JtiMode::Denylist && self.strategy == StrategyName::Hybrid => {
                return invalid(
                    "--jti-mode denylist keeps no per-user token list, so it supports --max-sessions-per-user 1 only",
                );
            }
            _ => {}
        }
        Ok(())
    }
}

impl ServerOptions {
    /// Reads the TOML file named by `--config`, if any, and merges: flags, then file, then defaults.
    pub fn resolve(self) -> Result<ServerConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => Some(read_file(path)?),
            None => None,
        };
        let file = file.unwrap_or_default();
        let strategy = self.strategy.or(file.strategy).ok_or_else(|| {
            ConfigError::Invalid(
                "--strategy is required (baseline, session, jwt, hybrid, refresh, versioned or pushed)".to_owned(),
            )
        })?;
        let d = ServerConfig::new(strategy);
        let config = ServerConfig {
            strategy,
            listen: self.listen.or(file.listen).unwrap_or(d.listen),
            redis: match (self.redis_url.or(file.redis_url), self.redis_cluster.or(file.redis_cluster)) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::Invalid(
                        "give either a Redis URL or Redis Cluster nodes, not both".to_owned(),
                    ));
                }
                (Some(url), None) => RedisTarget::Single(url),
                (None, Some(nodes)) => RedisTarget::Cluster(
                    nodes.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect(),
                ),
                (None, None) => d.redis,
            },
            store: self.store.or(file.store).unwrap_or(d.store),
            postgres_url: self.postgres_url.or(file.postgres_url).unwrap_or(d.postgres_url),
            postgres_table: self.postgres_table.or(file.postgres_table).unwrap_or(d.postgres_table),
            postgres_pool_size: self.postgres_pool_size.or(file.postgres_pool_size).unwrap_or(d.postgres_pool_size),
            admin_key: self.admin_key.or(file.admin_key).unwrap_or(d.admin_key),
            users: self.users.or(file.users).unwrap_or(d.users),
            user_password: self.user_password.or(file.user_password).unwrap_or(d.user_password),
            jwt_alg: self.jwt_alg.or(file.jwt_alg).unwrap_or(d.jwt_alg),
            access_ttl: self.access_ttl.or(file.access_ttl).unwrap_or(d.access_ttl),
            redis_client: self.redis_client.or(file.redis_client).unwrap_or(d.redis_client),
            redis_pool_size: self.redis_pool_size.or(file.redis_pool_size).unwrap_or(d.redis_pool_size),
            redis_timeout: self.redis_timeout.or(file.redis_timeout).unwrap_or(d.redis_timeout),
            jti_mode: self.jti_mode.or(file.jti_mode).unwrap_or(d.jti_mode),
            fail_mode: self.fail_mode.or(file.fail_mode).unwrap_or(d.fail_mode),
            max_sessions_per_user: self.max_sessions_per_user.or(file.max_sessions_per_user),
            jwt_key_file: self.jwt_key_file.or(file.jwt_key_file),
            jwt_public_key_file: self.jwt_public_key_file.or(file.jwt_public_key_file),
            claims_padding: self.claims_padding.or(file.claims_padding).unwrap_or(0),
            revocation_delay: self.revocation_delay.or(file.revocation_delay),
            refresh_ttl: self.refresh_ttl.or(file.refresh_ttl).unwrap_or(d.refresh_ttl),
            refresh_reuse_interval: self
                .refresh_reuse_interval
                .or(file.refresh_reuse_interval)
                .unwrap_or(d.refresh_reuse_interval),
            grace: self.grace.or(file.grace).unwrap_or(d.grace),
            max_connections: self.max_connections.or(file.max_connections).unwrap_or(d.max_connections),
            body_read_timeout: self.body_read_timeout.or(file.body_read_timeout).unwrap_or(d.body_read_timeout),
            argon2_concurrency: self.argon2_concurrency.or(file.argon2_concurrency).unwrap_or(d.argon2_concurrency),
            argon2_wait: self.argon2_wait.or(file.argon2_wait).unwrap_or(d.argon2_wait),
        };
        config.validate()?;
        Ok(config)
    }
}

fn read_file(path: &Path) -> Result<ServerOptions, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile { path: path.to_owned(), source })?;
    toml::from_str(&text).map_err(|e| ConfigError::ParseFile {
        path: path.to_owned(),
        // toml's message spans several lines with a source excerpt; the first names the problem.
        message: e.message().lines().next().unwrap_or("invalid TOML").to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServerConfig, String> {
        let mut argv = vec!["authbench-server"];
        argv.extend_from_slice(args);
        ServerOptions::try_parse_from(argv).map_err(|e| e.to_string())?.resolve().map_err(|e| e.to_string())
    }

    #[test]
    fn flags_become_typed_values() {
        let c = parse(&["--strategy", "hybrid", "--access-ttl", "20s", "--jwt-alg", "EdDSA", "--jti-mode", "denylist"])
            .unwrap();
        assert_eq!(c.strategy, StrategyName::Hybrid);
        assert_eq!(c.access_ttl, Duration::from_secs(20));
        assert_eq!(c.jwt_alg, JwtAlg::EdDSA);
        assert_eq!(c.jti_mode, JtiMode::Denylist);
    }

    #[test]
    fn misleading_combinations_are_rejected() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--strategy", "session", "--fail-mode", "open"]).is_err());
        assert!(parse(&["--strategy", "jwt", "--max-sessions-per-user", "1"]).is_err());
        assert!(parse(&["--strategy", "jwt", "--jti-mode", "denylist"]).is_err());
        assert!(parse(&["--strategy", "hybrid", "--jti-mode", "denylist", "--max-sessions-per-user", "2"]).is_err());
        assert!(parse(&["--strategy", "jwt", "--access-ttl", "0s"]).is_err());
        assert!(parse(&["--strategy", "session", "--redis-url", "http://x"]).is_err());
        assert!(parse(&["--strategy", "session", "--redis-cluster", ","]).is_err());
        assert!(parse(&["--strategy", "hybrid", "--store", "postgres"]).is_err());
        assert!(parse(&["--strategy", "session", "--store", "postgres", "--postgres-url", "redis://x"]).is_err());
        assert!(parse(&["--strategy", "session", "--store", "postgres", "--postgres-pool-size", "0"]).is_err());
        assert!(parse(&["--strategy", "session", "--redis-cluster", "redis://a:1,b:2"]).is_err());
        assert!(
            parse(&["--strategy", "session", "--redis-url", "redis://a:1", "--redis-cluster", "redis://b:2"]).is_err()
        );
    }

    #[test]
    fn postgres_flags_become_settings() {
        let c = parse(&[
            "--strategy",
            "session",
            "--store",
            "postgres",
            "--postgres-url",
            "postgres://authbench@127.0.0.1:5999/postgres",
            "--postgres-table",
            "unlogged",
            "--redis-timeout",
            "100ms",
        ])
        .unwrap();
        assert!(c.uses_postgres() && !c.uses_redis());
        let pg = c.pg_settings();
        assert_eq!(pg.url, "postgres://authbench@127.0.0.1:5999/postgres");
        assert_eq!((pg.table, pg.timeout), (PgTable::Unlogged, Duration::from_millis(100)));
        assert!(pg.pool_size >= 2);
    }

    #[test]
    fn cluster_nodes_are_a_list() {
        let c = parse(&["--strategy", "hybrid", "--redis-cluster", "redis://127.0.0.1:7301, redis://127.0.0.1:7302"])
            .unwrap();
        assert_eq!(
            c.redis,
            RedisTarget::Cluster(vec!["redis://127.0.0.1:7301".to_owned(), "redis://127.0.0.1:7302".to_owned()])
        );
    }

    #[test]
    fn file_values_apply_and_flags_win() {
        let dir = std::env::temp_dir().join(format!("authbench-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server.toml");
        std::fs::write(&path, "strategy = \"session\"\naccess-ttl = \"30s\"\nusers = 5\n").unwrap();
        let p = path.to_string_lossy().into_owned();
        let c = parse(&["--config", &p, "--users", "7"]).unwrap();
        assert_eq!(c.strategy, StrategyName::Session);
        assert_eq!(c.access_ttl, Duration::from_secs(30));
        assert_eq!(c.users, 7);
        std::fs::write(&path, "strategy = \"session\"\nbogus = 1\n").unwrap();
        let err = parse(&["--config", &p]).unwrap_err();
        assert!(err.contains("bogus"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
