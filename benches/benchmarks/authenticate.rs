//! `authenticate`: the per-request work of each design, in-process, through the strategy the
//! server runs (`AuthStrategy::authenticate`), so HTTP plumbing is left out. The Redis-backed
//! designs talk to a real `redis-server` on loopback, started once for the whole group.
//!
//! Hybrid uses the server's default algorithm (HS256), so `hybrid-* - jwt/HS256` is the price
//! of its Redis lookup.

use std::hint::black_box;
use std::sync::Arc;

use authbench_benches::{USERNAME, current_thread_runtime, user_roles};
use authbench_server::StrategyName;
use authbench_server::config::ServerConfig;
use authbench_server::jwt::{JwtAlg, JwtKeys};
use authbench_server::metrics::Metrics;
use authbench_server::redis_process::{RedisProcessError, RedisServer};
use authbench_server::store::{RedisClientKind, RedisStore, RedisTarget};
use authbench_server::strategy::{AuthStrategy, HybridStrategy, JtiMode, JwtStrategy, SessionStrategy};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group};
use tokio::runtime::Runtime;

fn authenticate(c: &mut Criterion) {
    let runtime = current_thread_runtime().expect("tokio runtime");
    let mut group = c.benchmark_group("authenticate");
    for (alg, name) in [(JwtAlg::HS256, "HS256"), (JwtAlg::ES256, "ES256")] {
        let mut config = ServerConfig::new(StrategyName::Jwt);
        config.jwt_alg = alg;
        let strategy = JwtStrategy::new(config.jwt_settings(), jwt_keys(&config));
        bench_strategy(&mut group, &runtime, BenchmarkId::new("jwt", name), &strategy);
    }
    match RedisServer::start() {
        Ok(redis) => bench_redis_strategies(&mut group, &runtime, &redis),
        // Machines without Redis still get the local-only figures.
        Err(RedisProcessError::NotInstalled) => {
            println!("authenticate: redis-server not found on PATH, skipping the session and hybrid benchmarks");
        }
        Err(e) => panic!("authenticate: {e}"),
    }
    group.finish();
}

fn bench_redis_strategies(group: &mut BenchmarkGroup<'_, WallTime>, runtime: &Runtime, redis: &RedisServer) {
    for (client, name) in [(RedisClientKind::Multiplexed, "multiplexed"), (RedisClientKind::Pool, "pool")] {
        let config = redis_config(StrategyName::Session, redis, client);
        let store = runtime.block_on(connect(&config, Arc::new(Metrics::new())));
        let strategy = SessionStrategy::new(config.session_settings(), store);
        bench_strategy(group, runtime, BenchmarkId::new("session", name), &strategy);
    }
    for (mode, name) in [(JtiMode::Allowlist, "hybrid-allowlist"), (JtiMode::Denylist, "hybrid-denylist")] {
        let mut config = redis_config(StrategyName::Hybrid, redis, RedisClientKind::Multiplexed);
        config.jti_mode = mode;
        config.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        let metrics = Arc::new(Metrics::new());
        let store = runtime.block_on(connect(&config, metrics.clone()));
        let strategy = HybridStrategy::new(config.hybrid_settings(), jwt_keys(&config), store, metrics);
        bench_strategy(group, runtime, BenchmarkId::new(name, "multiplexed"), &strategy);
    }
}

/// The server's defaults, pointed at the benchmark's Redis, so the figures are those of a
/// server started with only `--strategy` and `--redis-client`.
fn redis_config(strategy: StrategyName, redis: &RedisServer, client: RedisClientKind) -> ServerConfig {
    let mut config = ServerConfig::new(strategy);
    config.redis = RedisTarget::Single(redis.url());
    config.redis_client = client;
    config.validate().unwrap_or_else(|e| panic!("{}: {e}", strategy.as_str()));
    config
}

fn jwt_keys(config: &ServerConfig) -> Arc<JwtKeys> {
    Arc::new(JwtKeys::generate(config.jwt_alg).unwrap_or_else(|e| panic!("{:?} key: {e}", config.jwt_alg)))
}

async fn connect(config: &ServerConfig, metrics: Arc<Metrics>) -> RedisStore {
    RedisStore::connect(&config.redis, config.redis_client, config.redis_timeout, config.redis_pool_size, metrics)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", config.redis))
}

/// Issues one token as a login would, then measures checking it. Every measured check must
/// accept the token: a rejection or a Redis error would time a different path than a real
/// request takes, so it aborts the run rather than hide in the figures.
fn bench_strategy<S: AuthStrategy>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &Runtime,
    id: BenchmarkId,
    strategy: &S,
) {
    let issued = runtime.block_on(strategy.issue(USERNAME, &user_roles(), None)).expect("issue a token");
    let token = issued.access_token.as_str();
    group.bench_function(id, |b| {
        b.to_async(runtime).iter(move || async move {
            strategy.authenticate(black_box(token)).await.unwrap_or_else(|e| panic!("token rejected: {e}"))
        });
    });
}

criterion_group! {
    name = benches;
    config = super::config();
    targets = authenticate
}
