//! Records, at build time, the compiler version and the versions of the crates whose cost
//! authbench measures (from the workspace Cargo.lock), so every result can name them.

use std::process::Command;

const MEASURED_CRATES: &[&str] =
    &["axum", "hyper", "tokio", "redis", "deadpool-redis", "jsonwebtoken", "aws-lc-rs", "argon2", "goose"];

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("cargo:rustc-env=AUTHBENCH_RUSTC_VERSION={version}");

    let lock = std::fs::read_to_string("../Cargo.lock").unwrap_or_default();
    let mut versions = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_owned());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take())
            && MEASURED_CRATES.contains(&n.as_str())
        {
            versions.push(format!("{n}={}", v.trim_matches('"')));
        }
    }
    println!("cargo:rustc-env=AUTHBENCH_CRATE_VERSIONS={}", versions.join(","));
    println!("cargo:rerun-if-changed=../Cargo.lock");
}
