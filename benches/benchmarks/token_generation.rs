//! `token_generation`: minting the random part of a token, an opaque session id (256 bits)
//! against a JWT id (128 bits); both read the operating system's CSPRNG.

use std::hint::black_box;

use authbench_server::token::{new_jti, new_opaque_id};
use criterion::{BenchmarkId, Criterion, criterion_group};

fn token_generation(c: &mut Criterion) {
    let mut group = c.benchmark_group("token_generation");
    group.bench_function(BenchmarkId::from_parameter("new_opaque_id"), |b| b.iter(|| black_box(new_opaque_id())));
    group.bench_function(BenchmarkId::from_parameter("new_jti"), |b| b.iter(|| black_box(new_jti())));
    group.finish();
}

criterion_group! {
    name = benches;
    config = super::config();
    targets = token_generation
}
