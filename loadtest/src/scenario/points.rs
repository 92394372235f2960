//! The `rtt` and `tokensize` scenarios: one short steady point per step, each on a server
//! started for it, behind a delaying relay to Redis (rtt) or with padded claims (tokensize).

use std::time::Duration;

use authbench_server::redis_process::RedisServer;

use super::{Knobs, MeLoad, Subject, steady};
use crate::observe::{DelayRelay, RedisProbe, measure_rtt};
use crate::plan::Variant;
use crate::process::variant_args;
use crate::results::{RunRecord, Scenario};

/// How the rtt scenario puts Redis at a distance, for the method section.
pub const RTT_INJECTION: &str = "authbench's own delaying TCP relay on loopback (a reader and a writer thread per direction, std::thread::sleep until half the round trip has passed; bandwidth not limited)";

/// One steady point of `v` on a fresh server with `extra` flags, using Redis at `redis_url`
/// (emptied first) when the design has a store.
fn point(
    v: &Variant,
    extra: &[String],
    redis: Option<&RedisServer>,
    redis_url: Option<String>,
    scenario: Scenario,
    knobs: &Knobs,
) -> anyhow::Result<RunRecord> {
    if let (true, Some(redis)) = (v.uses_redis(), redis) {
        redis.command("FLUSHALL").map_err(|e| anyhow::anyhow!("cannot empty Redis: {e}"))?;
    }
    let url_flags = redis_url.map(|url| ["--redis-url".to_owned(), url]);
    let mut args = variant_args(v, url_flags.as_ref().map(|f| f.as_slice()));
    args.extend(extra.iter().cloned());
    let server = knobs.launcher()?.start(&args)?;
    let subject = Subject::started(v, &server, &[], args, redis.map(RedisProbe::of), knobs)?;
    let load = knobs.runtime.block_on(MeLoad::login(&subject, knobs.plan.connections.min(16)))?;
    steady(&subject, &knobs.point(), &load, scenario)
}

/// `v` with Redis `rtt` away (0: direct), through the relay.
pub fn rtt(v: &Variant, rtt: Duration, redis: Option<&RedisServer>, knobs: &Knobs) -> anyhow::Result<RunRecord> {
    let (url, measured, _relay) = match redis {
        Some(redis) if !rtt.is_zero() => {
            let relay = DelayRelay::start(redis.addr(), rtt)?;
            let measured = measure_rtt(relay.addr, 21);
            (Some(relay.url()), measured, Some(relay))
        }
        Some(redis) => (Some(redis.url()), measure_rtt(redis.addr(), 21), None),
        None => (None, None, None),
    };
    let mut record = point(v, &[], redis, url, Scenario::Rtt, knobs)?;
    record.redis_rtt_ms = Some(rtt.as_secs_f64() * 1e3);
    record.redis_rtt_measured_ms = if v.uses_redis() { measured.map(|d| d.as_secs_f64() * 1e3) } else { None };
    Ok(record)
}

/// `v` with `padding` extra bytes of claims in every token or session.
pub fn tokensize(v: &Variant, padding: usize, redis: Option<&RedisServer>, knobs: &Knobs) -> anyhow::Result<RunRecord> {
    let extra = ["--claims-padding".to_owned(), padding.to_string()];
    let mut record = point(v, &extra, redis, redis.map(RedisServer::url), Scenario::Tokensize, knobs)?;
    record.claims_padding_bytes = Some(padding as u64);
    Ok(record)
}
