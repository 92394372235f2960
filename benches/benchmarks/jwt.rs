//! `jwt_sign` and `jwt_verify`: the signature cost of each algorithm, without any strategy
//! around it. Verification is what the `jwt` and `hybrid` designs pay on every request.

use std::hint::black_box;

use authbench_benches::access_claims;
use authbench_server::jwt::{JwtAlg, JwtKeys};
use criterion::{BenchmarkId, Criterion, criterion_group};

/// Every algorithm a server can be configured with, as the CLI spells it.
const ALGORITHMS: [(JwtAlg, &str); 4] =
    [(JwtAlg::HS256, "HS256"), (JwtAlg::RS256, "RS256"), (JwtAlg::ES256, "ES256"), (JwtAlg::EdDSA, "EdDSA")];

/// Keys are generated once per algorithm: RSA key generation alone takes far longer than
/// anything measured here.
fn keys() -> Vec<(&'static str, JwtKeys)> {
    ALGORITHMS
        .iter()
        .map(|&(alg, name)| (name, JwtKeys::generate(alg).unwrap_or_else(|e| panic!("{name} key: {e}"))))
        .collect()
}

fn jwt_sign(c: &mut Criterion) {
    let claims = access_claims().expect("claims");
    let mut group = c.benchmark_group("jwt_sign");
    for (name, keys) in keys() {
        group.bench_function(BenchmarkId::from_parameter(name), |b| b.iter(|| keys.sign(black_box(&claims))));
    }
    group.finish();
}

fn jwt_verify(c: &mut Criterion) {
    let claims = access_claims().expect("claims");
    let mut group = c.benchmark_group("jwt_verify");
    for (name, keys) in keys() {
        let token = keys.sign(&claims).unwrap_or_else(|e| panic!("{name} sign: {e}"));
        // Measuring a rejection would be measuring the wrong path.
        assert!(keys.verify(&token).is_ok(), "{name}: a freshly signed token does not verify");
        group.bench_function(BenchmarkId::from_parameter(name), |b| b.iter(|| keys.verify(black_box(&token))));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = super::config();
    targets = jwt_sign, jwt_verify
}
