//! The `population` scenario: many users, each with credentials of its own and requests at its
//! own Poisson rate, whose clients refresh, log in again and adopt fresh tokens as client
//! libraries do (`engine::population`). It measures what one *user* request costs, the calls
//! its client added included: Redis commands, server CPU, latency, against requests per
//! access-token lifetime (the user's rate times the lifetime).
//!
//! Each point runs on a Redis and a server of its own. The users' first credentials are
//! written straight into Redis in the design's own layout (`authbench_server::strategy::seed`),
//! not obtained by N logins, with token ages drawn from the state a long-running population is
//! in: a user's token was issued at its last renewal, so its age is uniform over the renewal
//! period `D` (the lifetime for `refresh`, the grace for `versioned`) with probability
//! `D / (D + 1/rate)`, and otherwise `D` plus an exponential wait for the user's next request.
//! Without it, every token would be fresh at the start and no refresh would fall in a short
//! window. The rounds follow each other on the same server, the clients going on with what they
//! hold.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use authbench_server::StrategyName;
use authbench_server::jwt::{JwtAlg, JwtKeys};
use authbench_server::redis_process::RedisServer;
use authbench_server::strategy::seed::{self, Design};

use super::rounds::{Shuffle, bracketed};
use super::{Event, Knobs, Sink, Subject, record};
use crate::engine::{Credentials, LoadOutcome, Population, Schedule};
use crate::observe::{RedisProbe, StoreProbe};
use crate::plan::{NOISE_THRESHOLD, USER_PASSWORD, Variant};
use crate::process::{variant_args, without_flag};
use crate::results::{Estimate, Percentiles, PopulationRun, Record, RunRecord, Scenario, Spread};

/// `args` with `flag`'s value set to `value` (replaced where the args already give it).
fn with_flag(args: &[String], flag: &str, value: &str) -> Vec<String> {
    let mut out = without_flag(args, flag);
    out.extend([flag.to_owned(), value.to_owned()]);
    out
}

/// The seeding layout of `v`'s design.
fn design_of(v: &Variant) -> Design {
    match v.strategy {
        StrategyName::Baseline => Design::Baseline,
        StrategyName::Session => Design::Session,
        StrategyName::Hybrid if v.flag("--jti-mode") == Some("denylist") => Design::HybridDenylist,
        StrategyName::Hybrid => Design::HybridAllowlist,
        StrategyName::Jwt => Design::Jwt,
        StrategyName::Refresh => Design::Refresh,
        StrategyName::Versioned => Design::Versioned,
        StrategyName::Pushed => Design::Pushed,
    }
}

/// `versioned`'s grace: the variant's `--grace`, else the server's default (30 s).
fn grace_of(v: &Variant) -> Option<Duration> {
    (v.strategy == StrategyName::Versioned)
        .then(|| v.flag("--grace").and_then(|g| humantime::parse_duration(g).ok()).unwrap_or(Duration::from_secs(30)))
}

/// What a design's rules predict for Redis commands per user request, and the rule: `refresh`
/// refreshes at the first request after its token expired, so a Poisson user refreshes once per
/// `1 + requests per lifetime` requests; `versioned` asks Redis (one `MGET`) once per grace
/// interval ([`versioned_checks`]).
fn expected(v: &Variant, requests_per_lifetime: f64, rate: f64, commands_per_refresh: f64) -> (f64, String) {
    match v.strategy {
        StrategyName::Session | StrategyName::Hybrid => (1.0, "one lookup per request".into()),
        StrategyName::Jwt | StrategyName::Baseline => (0.0, "no store on the request path".into()),
        StrategyName::Pushed => (0.0, "no command per request (revocations arrive by push)".into()),
        StrategyName::Refresh => (
            commands_per_refresh / (1.0 + requests_per_lifetime),
            format!("{commands_per_refresh:.2} commands per refresh / (1 + requests per lifetime)"),
        ),
        StrategyName::Versioned => {
            let grace = grace_of(v).unwrap_or_default().as_secs_f64();
            (
                versioned_checks(grace, rate),
                format!("1 MGET per check: 1 / (user rate × (grace {grace:.0} s + E⌊wait⌋))"),
            )
        }
    }
}

/// Checks per request of a `versioned` user at `rate` with a grace of whole seconds: a token
/// issued at `t` carries `iat = ⌊t⌋` and is checked at the user's first request once
/// `⌊now⌋ − iat ≥ grace`, that is after the second `iat + grace` begins; the check comes an
/// exponential wait `W` into it and issues the next token, so checks are `grace + ⌊W⌋` apart on
/// average, `E⌊W⌋ = e^-r / (1 − e^-r)`, and each interval holds `rate` times its length in
/// requests.
fn versioned_checks(grace: f64, rate: f64) -> f64 {
    if grace <= 0.0 || rate <= 0.0 {
        return 1.0;
    }
    let floor_wait = (-rate).exp() / (1.0 - (-rate).exp());
    (1.0 / (rate * (grace + floor_wait))).min(1.0)
}

/// How old a user's token is in a long-running population renewing every `period` at `rate`.
fn steady_age(period: f64, rate: f64, rng: &mut Shuffle) -> f64 {
    if period <= 0.0 {
        return 0.0;
    }
    let waiting = 1.0 / rate.max(1e-9);
    if rng.unit() <= period / (period + waiting) { rng.unit() * period } else { period - rng.unit().ln() * waiting }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The warm-up of a round after the first: the sends due while one round's threads end and the
/// next one's start leave late, and are not measured.
const HAND_OVER: Duration = Duration::from_millis(100);

/// Measures `v` at every access lifetime the plan gives it; one record per point.
pub fn run(v: &Variant, knobs: &Knobs, sink: Sink<'_>) -> anyhow::Result<Vec<RunRecord>> {
    let mut records = Vec::new();
    for ttl in knobs.plan.population_lifetimes(v) {
        if knobs.cancelled() {
            break;
        }
        // A point Ctrl-C stopped before any round ended has nothing to record.
        records.extend(point(v, ttl, knobs, sink)?);
    }
    Ok(records)
}

/// Per round: user requests, Redis commands, and the window's costs.
struct Round {
    outcome: LoadOutcome,
    commands: Option<u64>,
    by_command: std::collections::BTreeMap<String, u64>,
    server_ns: Option<f64>,
    redis_ns: Option<f64>,
    redis_bytes: Option<f64>,
}

/// One point: `v`'s server with access tokens lasting `ttl`, under the plan's population.
fn point(v: &Variant, ttl: Duration, knobs: &Knobs, sink: Sink<'_>) -> anyhow::Result<Option<RunRecord>> {
    let plan = &knobs.plan;
    let users = plan.population_users.max(1);
    let rate = plan.user_rate;
    let requests_per_lifetime = rate * ttl.as_secs_f64();
    sink(Event::Status(format!(
        "{}: population of {users} at {requests_per_lifetime:.0} requests per lifetime",
        v.name
    )))?;
    let redis = if v.uses_redis() { Some(RedisServer::start()?) } else { None };
    let dir = std::env::temp_dir().join(format!("authbench-population-{}-{}", std::process::id(), v.name));
    std::fs::create_dir_all(&dir)?;
    let key_file = dir.join("jwt.key");
    let _ = std::fs::remove_file(&key_file);
    let keys = JwtKeys::new(JwtAlg::HS256, Some(&key_file)).map_err(|e| anyhow::anyhow!(e))?;
    let long = Duration::from_secs(24 * 3600).max(ttl);
    let period = match v.strategy {
        StrategyName::Refresh => ttl.as_secs_f64(),
        StrategyName::Versioned => grace_of(v).unwrap_or_default().as_secs_f64(),
        _ => 0.0,
    };
    // The server first, so the clients start right after their credentials are written: a
    // silence between the two would let tokens expire unrenewed, and the users renew together.
    let mut args = with_flag(&variant_args(v, None), "--users", &users.to_string());
    args = with_flag(&args, "--access-ttl", &format!("{}s", ttl.as_secs()));
    args.extend(["--jwt-key-file".into(), key_file.display().to_string()]);
    if let Some(redis) = &redis {
        args.extend(["--redis-url".into(), redis.url()]);
    }
    let server = knobs.launcher()?.start(&args)?;
    let probe = redis.as_ref().map(|r| StoreProbe::Redis(RedisProbe::of(r)));
    let subject = Subject::started(v, &server, &[], args, probe, knobs)?;

    let mut rng = Shuffle::from_clock();
    let ages: Vec<f64> = (0..users).map(|_| steady_age(period, rate, &mut rng)).collect();
    let now = unix_now();
    let issued_at = |i: usize| (now - ages.get(i).copied().unwrap_or(0.0)).max(0.0) as u64;
    let design = design_of(v);
    let held = knobs.runtime.block_on(async {
        match &redis {
            Some(redis) => {
                let client = redis::Client::open(redis.url())?;
                let mut conn = client.get_multiplexed_async_connection().await?;
                seed::population(&mut conn, &keys, design, users, (ttl, long), &issued_at).await
            }
            None => seed::population(&mut NoStore, &keys, design, users, (ttl, long), &issued_at).await,
        }
    })?;
    // The clients' clocks start with the load: a token `age` old expires `expires_in − age`
    // later, as a client that received it `age` ago counts it (from the moment it arrived, not
    // from the whole second in its `iat`). The server sees the seeding's fraction of a second
    // more, which its 2 s of leeway covers.
    let start = Instant::now() + Duration::from_millis(200);
    let expiry = |age: f64, lifetime: u64| {
        let left = lifetime as f64 - age;
        if left >= 0.0 { start + Duration::from_secs_f64(left) } else { start - Duration::from_secs_f64(-left) }
    };
    let mut population = Population {
        users: held
            .into_iter()
            .zip(ages.iter().chain(std::iter::repeat(&0.0)))
            .map(|(c, age)| Credentials {
                expires_at: (c.expires_in > 0).then(|| expiry(*age, c.expires_in)),
                lifetime: (c.expires_in > 0).then(|| Duration::from_secs(c.expires_in)),
                username: c.username,
                access_token: c.access_token,
                refresh_token: c.refresh_token,
            })
            .collect(),
        password: USER_PASSWORD.to_owned(),
        path: "/me".into(),
        seed: rng.unit().to_bits(),
    };
    let total_rate = f64::from(users) * rate;
    let window = plan.population_window_for(v, ttl);
    let mut rounds: Vec<Round> = Vec::new();
    let mut noise = Vec::new();
    // Each round goes on from where the one before ended, with no silence between: its warm-up
    // only covers the hand-over (the sends due while the threads change are sent late).
    let mut t0 = start;
    for round in 0..plan.population_rounds.max(1) {
        if knobs.cancelled() {
            break;
        }
        sink(Event::Status(format!(
            "{} population round {}/{}: {users} users at {total_rate:.0} req/s, tokens of {}s",
            v.name,
            round + 1,
            plan.population_rounds,
            ttl.as_secs()
        )))?;
        let warmup = if round == 0 { plan.population_warmup } else { HAND_OVER };
        let mut spec = knobs.spec_for(&subject, Vec::new(), warmup, window);
        spec.schedule = Schedule::Open { rate: total_rate };
        spec.max_connections = plan.rate_connection_limit;
        // Arrivals of their own each round: the same draws again would send the same users at
        // the same moments, and leave the others silent.
        population.seed = rng.unit().to_bits();
        spec.population = Some(Arc::new(population.clone()));
        let (mut outcome, costs, watched) = bracketed(&subject, &spec, knobs, Some(t0))?;
        t0 += warmup + window;
        if let Some(w) = &watched {
            noise.push(w.sample(format!("{} population {}s round {}", v.name, ttl.as_secs(), round + 1), false));
        }
        population.carry_on(std::mem::take(&mut outcome.holdings));
        let answered = outcome.requests as f64;
        let scale = |per_answered: Option<f64>| per_answered.map(|x| x * answered / outcome.offered.max(1) as f64);
        rounds.push(Round {
            commands: subject.store.as_ref().map(|_| costs.redis_commands.values().sum()),
            by_command: costs.redis_commands,
            server_ns: scale(costs.server_cpu_us_per_request).map(|us| us * 1e3),
            redis_ns: scale(costs.redis_cpu_us_per_request).map(|us| us * 1e3),
            redis_bytes: scale(costs.redis_bytes_per_request),
            outcome,
        });
    }
    sink(Event::Record(Record::Noise { threshold: NOISE_THRESHOLD, windows: noise }))?;
    let record = population_record(v, &subject, (ttl, window), rounds, knobs);
    drop(server);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
    match record {
        Some(record) => Ok(Some(record)),
        None if knobs.cancelled() => Ok(None),
        None => anyhow::bail!("{}: no population round was measured", v.name),
    }
}

/// A Redis connection for the designs that keep nothing in Redis: seeding them sends nothing.
struct NoStore;

impl redis::aio::ConnectionLike for NoStore {
    fn req_packed_command<'a>(&'a mut self, _: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async { Err(redis::RedisError::from((redis::ErrorKind::Client, "this design has no store"))) })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        _: &'a redis::Pipeline,
        _: usize,
        _: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        Box::pin(async { Err(redis::RedisError::from((redis::ErrorKind::Client, "this design has no store"))) })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// The record of one point over its rounds.
fn population_record(
    v: &Variant,
    subject: &Subject,
    (ttl, window): (Duration, Duration),
    rounds: Vec<Round>,
    knobs: &Knobs,
) -> Option<RunRecord> {
    let plan = &knobs.plan;
    let rate = plan.user_rate;
    let requests_per_lifetime = rate * ttl.as_secs_f64();
    let commands_total: u64 = rounds.iter().map(|r| r.commands.unwrap_or(0)).sum();
    let mut by_command = std::collections::BTreeMap::new();
    for (name, n) in rounds.iter().flat_map(|r| r.by_command.iter()) {
        *by_command.entry(name.clone()).or_insert(0) += n;
    }
    let per_round = |f: &dyn Fn(&Round) -> Option<f64>| -> Option<Estimate> {
        let values: Option<Vec<f64>> = rounds.iter().map(f).collect();
        values.and_then(|v| Estimate::of(&v))
    };
    let commands = per_round(&|r| r.commands.map(|c| c as f64 / r.outcome.offered.max(1) as f64));
    let server_ns = per_round(&|r| r.server_ns);
    let redis_ns = per_round(&|r| r.redis_ns);
    let p50 = per_round(&|r| Some(Percentiles::of(&r.outcome.latency).p50));
    let p99 = per_round(&|r| Some(Percentiles::of(&r.outcome.latency).p99));
    let generator_ns = per_round(&|r| {
        r.outcome
            .generator
            .cpu_us_per_request()
            .map(|us| us * 1e3 * r.outcome.requests as f64 / r.outcome.offered.max(1) as f64)
    });
    let server_us = server_ns_mean(&rounds);
    let bytes: Vec<f64> = rounds.iter().filter_map(|r| r.redis_bytes).collect();
    let redis_bytes = (!bytes.is_empty()).then(|| bytes.iter().sum::<f64>() / bytes.len() as f64);
    let throughput: Vec<f64> = rounds.iter().map(|r| r.outcome.requests as f64 / window.as_secs_f64()).collect();
    let generator_bound = rounds.iter().any(|r| super::generator_limited(&r.outcome, knobs.generator_bound_threshold));
    let measured = rounds.len() as u32;
    let mut merged = rounds.into_iter().map(|r| r.outcome).reduce(|mut all, one| {
        all.merge(one);
        all
    })?;
    // Every round's window: the rates over the merged counts are per second of all of them.
    merged.window = window * measured;
    let user_requests = merged.offered;
    let count = |kind: &str| merged.extra_calls.get(kind).map_or(0, |c| c.calls);
    let failed = |kind: &str| merged.extra_calls.get(kind).map_or(0, |c| c.failed);
    let kinds = crate::engine::ExtraKind::ALL.map(|k| k.name());
    let refreshes = count("refresh");
    let commands_per_refresh = if refreshes > 0 { commands_total as f64 / refreshes as f64 } else { 1.0 };
    let (expected_commands, basis) = expected(v, requests_per_lifetime, rate, commands_per_refresh);
    let base = RunRecord {
        connections: plan.connections,
        repetitions: measured,
        rounds: Some(measured),
        warmup_s: plan.population_warmup.as_secs_f64(),
        duration_s: window.as_secs_f64(),
        throughput_rps: Spread::of(&throughput),
        requests: merged.requests,
        errors: merged.failures(),
        status_counts: super::status_counts(&merged),
        redis_commands_per_request: commands.as_ref().map(|e| e.median),
        redis_commands: by_command,
        redis_bytes_per_request: redis_bytes,
        server_cpu_ns_per_request: server_ns,
        redis_cpu_ns_per_request: redis_ns,
        generator_cpu_ns_per_request: generator_ns,
        server_cpu_us_per_request: server_us,
        latency_p50_us: p50,
        latency_p99_us: p99,
        generator_bound,
        population: Some(PopulationRun {
            users: u64::from(plan.population_users),
            user_rate_rps: rate,
            access_ttl_s: ttl.as_secs_f64(),
            requests_per_lifetime,
            user_requests,
            extra_calls: kinds.iter().map(|k| ((*k).to_owned(), count(k))).collect(),
            extra_calls_failed: kinds.iter().map(|k| ((*k).to_owned(), failed(k))).collect(),
            extra_call_latency_us: merged
                .extra_calls
                .iter()
                .filter(|(_, c)| c.calls > 0)
                .map(|(k, c)| ((*k).to_owned(), Percentiles::of(&c.latency)))
                .collect(),
            redis_commands_per_user_request: commands,
            expected_redis_commands_per_user_request: expected_commands,
            expected_basis: basis,
            grace_s: grace_of(v).map(|g| g.as_secs_f64()),
            seeding: "credentials written into the design's own store layout (as logins leave them), token ages \
                      drawn from a long-running population's steady state"
                .into(),
        }),
        ..record(subject, Scenario::Population, &merged.latency)
    };
    Some(super::rate::open_fields(&merged, f64::from(plan.population_users) * rate, base))
}

/// Mean server CPU per user request over the rounds, µs.
fn server_ns_mean(rounds: &[Round]) -> Option<f64> {
    let values: Vec<f64> = rounds.iter().filter_map(|r| r.server_ns).collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64 / 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_is_set_once_whatever_the_args_gave() {
        let args: Vec<String> =
            ["--strategy", "refresh", "--users", "5", "--access-ttl=3s"].iter().map(|s| (*s).to_owned()).collect();
        let set = with_flag(&with_flag(&args, "--users", "10000"), "--access-ttl", "10s");
        assert_eq!(set, ["--strategy", "refresh", "--users", "10000", "--access-ttl", "10s"]);
    }

    #[test]
    fn steady_ages_spend_the_renewal_share_inside_the_period() {
        // Period 10 s at 1 request a second: valid 10/11 of the time, else expired by Exp(1).
        let mut rng = Shuffle::from_clock();
        let ages: Vec<f64> = (0..20_000).map(|_| steady_age(10.0, 1.0, &mut rng)).collect();
        let inside = ages.iter().filter(|a| **a <= 10.0).count() as f64 / ages.len() as f64;
        assert!((inside - 10.0 / 11.0).abs() < 0.02, "share inside the period: {inside}");
        let over: Vec<f64> = ages.iter().filter(|a| **a > 10.0).map(|a| a - 10.0).collect();
        let mean = over.iter().sum::<f64>() / over.len() as f64;
        assert!((mean - 1.0).abs() < 0.15, "mean wait past the period: {mean}");
        assert!(steady_age(0.0, 1.0, &mut rng) == 0.0);
    }

    #[test]
    fn versioned_checks_once_per_grace_of_whole_seconds() {
        // Busy users check right after each second boundary: once a second.
        assert!((versioned_checks(1.0, 10.0) - 0.1).abs() < 1e-3);
        // Rare users: about 1 / (1 + rate × (grace − ½)).
        let rare = versioned_checks(30.0, 0.01);
        assert!((rare - 1.0 / (1.0 + 0.01 * 29.5)).abs() < 1e-3, "{rare}");
        // No grace: every request asks.
        assert_eq!(versioned_checks(0.0, 5.0), 1.0);
    }
}
