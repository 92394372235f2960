//! Child processes authbench owns: `authbench-server` instances and the Redis they use (a
//! `redis-server` through `authbench_server::redis_process`, or a cluster someone else runs).
//! Each child is killed when its handle drops, so an error, a panic or Ctrl-C leaves nothing
//! running.

mod backing;
mod server;

use std::path::PathBuf;

pub use backing::Backing;
pub use server::{ServerProcess, server_binary};

use crate::plan::{SEEDED_USERS, USER_PASSWORD, Variant};

/// Starts `authbench-server` children the same way every time: one binary, one CPU placement.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub binary: PathBuf,
    /// `taskset -c` list for every server, when placement pins them.
    pub cpus: Option<String>,
}

impl Launcher {
    /// The same launcher with no CPU placement.
    pub fn unpinned(&self) -> Self {
        Self { binary: self.binary.clone(), cpus: None }
    }

    /// Starts a server with `args` and waits until it listens.
    pub fn start(&self, args: &[String]) -> anyhow::Result<ServerProcess> {
        ServerProcess::start(&self.binary, args, self.cpus.clone())
    }
}

/// The flags every server of `v` starts with: the variant's own, the seeded users and their
/// password, and the store (Redis or PostgreSQL) it uses when the design has one.
pub fn variant_args(v: &Variant, redis: Option<&[String]>) -> Vec<String> {
    let mut args = v.server_args();
    args.extend(["--users".into(), SEEDED_USERS.to_string(), "--user-password".into(), USER_PASSWORD.into()]);
    if let (true, Some(redis)) = (v.uses_store(), redis) {
        args.extend(redis.iter().cloned());
    }
    args
}

/// `args` without `flag` and its value (`--flag value` or `--flag=value`), so the caller can
/// give it one of its own.
pub fn without_flag(args: &[String], flag: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut skip = false;
    for a in args {
        if std::mem::take(&mut skip) {
            continue;
        }
        if a == flag {
            skip = true;
        } else if !a.strip_prefix(flag).is_some_and(|rest| rest.starts_with('=')) {
            out.push(a.clone());
        }
    }
    out
}

/// Arguments of a further instance (B) started after the first (A) with `args`: for an
/// asymmetric JWT the private key stays with A, and B verifies with the public key A wrote
/// next to the shared key file (`FILE.pub`); it then cannot issue, so logins go to A.
pub fn further_instance_args(args: &[String]) -> Vec<String> {
    let value_of = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1));
    let asymmetric = value_of("--jwt-alg").is_some_and(|alg| alg != "HS256");
    let mut out = args.to_vec();
    if asymmetric && let Some(i) = out.iter().position(|a| a == "--jwt-key-file") {
        if let Some(flag) = out.get_mut(i) {
            *flag = "--jwt-public-key-file".into();
        }
        if let Some(path) = out.get_mut(i + 1) {
            path.push_str(".pub");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_asymmetric_instance_gets_the_public_key_alone() {
        let args = |alg: &str| -> Vec<String> {
            ["--strategy", "jwt", "--jwt-alg", alg, "--jwt-key-file", "/tmp/k"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        };
        let b = further_instance_args(&args("ES256"));
        assert_eq!(b[4..], ["--jwt-public-key-file".to_owned(), "/tmp/k.pub".to_owned()]);
        assert_eq!(further_instance_args(&args("HS256")), args("HS256"));
        let none: Vec<String> = vec!["--strategy".into(), "session".into()];
        assert_eq!(further_instance_args(&none), none);
    }
}
