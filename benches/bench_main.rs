//! Entry point of the criterion micro-benchmarks; the groups live in `benchmarks/`.

// A benchmark whose setup fails has nothing to measure: aborting with the reason is the answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod benchmarks;

criterion::criterion_main! {
    benchmarks::jwt::benches,
    benchmarks::token_generation::benches,
    benchmarks::authenticate::benches,
}
