//! What is read from outside the processes being measured: CPU time and memory from `/proc`,
//! Redis counters from `INFO`, the load of everything else on the machine, the environment of
//! the run, and the delaying relay that puts a store at a known round trip. Nothing here
//! generates load.

mod cost;
mod environment;
mod noise;
mod relay;
mod schedstat;
mod store;

pub use cost::{
    CostSnapshot, Costs, RedisProbe, cpus_allowed, peak_rss_bytes, redis_pid, redis_used_memory, rss_bytes,
};
pub use environment::capture_environment;
pub use noise::{NoiseWatch, NoiseWindow};
pub use relay::{DelayRelay, measure_pg_rtt, measure_rtt};
pub use store::{PgProbe, StoreProbe};

/// Held by the tests that spawn CPU-burning children or judge the machine's foreign load, so
/// that one's busy child is not the other's noise.
#[cfg(test)]
static CHILD_CPU: std::sync::Mutex<()> = std::sync::Mutex::new(());
