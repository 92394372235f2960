//! The benchmark groups, one file each, and the measurement settings they share.

pub mod authenticate;
pub mod jwt;
pub mod token_generation;

use std::time::Duration;

use criterion::Criterion;

/// Shorter than criterion's defaults (5 s measuring, 3 s warming) so the whole suite runs in a
/// few minutes; the operations take micro- or milliseconds, so 3 s still gives every sample
/// thousands of iterations.
pub fn config() -> Criterion {
    Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1))
}
