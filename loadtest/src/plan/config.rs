//! The validated configurations the commands run with: what `cli` turns flags and the TOML
//! file into. Everything here has been checked; the harness trusts it.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{SuitePlan, Variant};

/// Which CPUs each process may use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuPlacement {
    /// A `taskset -c` list for the servers.
    pub server: Option<String>,
    pub generator: Option<Vec<usize>>,
    pub redis: Option<usize>,
}

/// `authbench run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub plan: SuitePlan,
    pub placement: CpuPlacement,
    /// Where run directories are created.
    pub out: PathBuf,
    /// Seed URLs of a Redis Cluster on loopback to use instead of a Redis of authbench's own.
    pub cluster: Option<Vec<String>>,
    /// Scenarios the plan dropped because they need a Redis authbench owns, with the reason.
    pub not_measured: Vec<String>,
    /// No progress bar and no lines while measuring.
    pub quiet: bool,
}

/// `authbench load`: a server someone else runs.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub plan: SuitePlan,
    /// The target as given (`http://127.0.0.1:8080`) and as an address (loopback only).
    pub target_url: String,
    pub target: SocketAddr,
    pub user_password: String,
    pub admin_key: String,
    pub server_pid: Option<u32>,
    pub redis_port: Option<u16>,
    pub out: PathBuf,
    pub quiet: bool,
}

/// `authbench serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub variant: &'static Variant,
    /// 0 picks a free port.
    pub port: u16,
    /// Further `authbench-server` flags.
    pub server_args: Vec<String>,
}
