//! Reads the machine and software a run measures on, for [`Environment`].

use std::process::Command;

use crate::results::Environment;

fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
    String::from_utf8_lossy(&text).lines().next().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty())
}

/// Reads the machine and the versions of what is measured.
pub fn capture_environment() -> Environment {
    {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|v| v.split_once(':')).map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let os = std::fs::read_to_string("/etc/os-release")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned()))
            .unwrap_or_else(|| std::env::consts::OS.to_owned());
        let git_commit = first_line("git", &["rev-parse", "HEAD"]).map(|commit| {
            let dirty = Command::new("git")
                .args(["status", "--porcelain", "--untracked-files=no"])
                .output()
                .map(|o| !o.stdout.is_empty())
                .unwrap_or(false);
            if dirty { format!("{commit}-dirty") } else { commit }
        });
        let crates = env!("AUTHBENCH_CRATE_VERSIONS")
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Environment {
            cpu_model,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
            os,
            rustc: env!("AUTHBENCH_RUSTC_VERSION").to_owned(),
            redis_server: first_line("redis-server", &["--version"]),
            wrk: first_line("wrk", &["--version"]),
            crates,
            git_commit,
            authbench_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}
