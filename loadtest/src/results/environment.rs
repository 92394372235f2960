//! The machine and software a run measured on, recorded with every result so a figure can be
//! traced back to where it came from.

use serde::{Deserialize, Serialize};

/// What the run ran on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    pub cpu_model: String,
    /// Logical CPUs online.
    pub cores: usize,
    pub kernel: String,
    pub os: String,
    /// The compiler that built authbench.
    pub rustc: String,
    pub redis_server: Option<String>,
    pub wrk: Option<String>,
    /// Versions of the crates whose cost is being measured, from Cargo.lock at build time.
    pub crates: std::collections::BTreeMap<String, String>,
    /// `git rev-parse HEAD` of the working directory, with `-dirty` when it has changes.
    pub git_commit: Option<String>,
    pub authbench_version: String,
}
