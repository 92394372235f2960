//! What is read from outside the processes being measured: CPU time and memory from `/proc`,
//! Redis counters from `INFO`, the environment of the run, and the delaying relay that puts
//! Redis at a known round trip. Nothing here generates load.

mod cost;
mod environment;
mod relay;
mod schedstat;

pub use cost::{
    CostSnapshot, Costs, RedisProbe, cpus_allowed, peak_rss_bytes, redis_pid, redis_used_memory, rss_bytes,
};
pub use environment::capture_environment;
pub use relay::{DelayRelay, measure_rtt};
#[expect(unused_imports, reason = "not called yet: CostSnapshot reads threads itself")]
pub use schedstat::process_cpu_ns;

/// Held by the tests that spawn CPU-burning children, so that one's busy child does not run
/// into another's reading.
#[cfg(test)]
static CHILD_CPU: std::sync::Mutex<()> = std::sync::Mutex::new(());
