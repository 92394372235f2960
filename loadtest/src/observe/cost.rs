//! Cost instruments read from outside the processes: CPU time and peak memory from `/proc`,
//! Redis command counts from `INFO commandstats`, Redis network bytes from `INFO stats`.

use std::collections::BTreeMap;

use std::net::SocketAddr;

use authbench_server::redis_process::{RedisServer, command_at};

/// The Redis to read counters from: one server, or every master of a cluster, each with its
/// process id when it runs here. Counters of several nodes are summed.
#[derive(Debug, Clone)]
pub struct RedisProbe {
    pub nodes: Vec<(SocketAddr, Option<u32>)>,
}

impl RedisProbe {
    pub fn of(redis: &RedisServer) -> Self {
        Self { nodes: vec![(redis.addr(), redis.pid())] }
    }

    /// A Redis at `addr` whose process may not be ours to see.
    pub fn at(addr: SocketAddr, pid: Option<u32>) -> Self {
        Self { nodes: vec![(addr, pid)] }
    }

    /// Every node's reply to `line`; none unless every node answers.
    fn command(&self, line: &str) -> Option<Vec<String>> {
        self.nodes.iter().map(|(addr, _)| command_at(*addr, line).ok()).collect()
    }

    /// CPU seconds of every node; none unless each is known.
    fn cpu_seconds(&self) -> Option<f64> {
        self.nodes.iter().map(|(_, pid)| pid.and_then(cpu_seconds)).sum()
    }
}

/// The process id a Redis reports in `INFO server`.
pub fn redis_pid(addr: SocketAddr) -> Option<u32> {
    let info = command_at(addr, "INFO server").ok()?;
    info.lines().find_map(|l| l.strip_prefix("process_id:")).and_then(|v| v.trim().parse().ok())
}

/// CPU time (user + system) a process has used, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn clock_ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        _ => 100.0,
    }
}

/// This process's own CPU time, in seconds.
pub fn own_cpu_seconds() -> Option<f64> {
    cpu_seconds(std::process::id())
}

/// Peak resident set size (VmHWM), in bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Resident set size now (VmRSS), in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, name: &str) -> Option<u64> {
    status_field(pid, name).and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok()).map(|kb| kb * 1024)
}

/// The CPUs a process may run on, as the kernel lists them (e.g. `0-1` or `0`).
pub fn cpus_allowed(pid: u32) -> Option<String> {
    status_field(pid, "Cpus_allowed_list:")
}

fn status_field(pid: u32, name: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned())
}

/// Calls per command since Redis started (`INFO commandstats`).
pub fn redis_command_calls(redis: &RedisProbe) -> Option<BTreeMap<String, u64>> {
    let mut calls = BTreeMap::new();
    for info in redis.command("INFO commandstats")? {
        for (name, n) in parse_commandstats(&info) {
            *calls.entry(name).or_insert(0) += n;
        }
    }
    Some(calls)
}

/// Parses `cmdstat_get:calls=10,usec=...` lines.
pub fn parse_commandstats(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?.parse().ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// Commands issued between two snapshots, leaving out the harness's own `INFO`.
pub fn command_delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .filter_map(|(name, &n)| {
            let d = n.saturating_sub(before.get(name).copied().unwrap_or(0));
            (d > 0).then(|| (name.clone(), d))
        })
        .collect()
}

/// Bytes Redis has read from and written to its clients since it started (`INFO stats`).
pub fn redis_net_bytes(redis: &RedisProbe) -> Option<u64> {
    redis.command("INFO stats")?.iter().map(|info| parse_net_bytes(info)).sum()
}

/// `total_net_input_bytes + total_net_output_bytes` from an `INFO stats` reply; none unless
/// both are present.
pub fn parse_net_bytes(info: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).and_then(|v| v.trim().parse().ok())
    };
    field("total_net_input_bytes")?.checked_add(field("total_net_output_bytes")?)
}

/// `used_memory` of Redis, in bytes.
pub fn redis_used_memory(redis: &RedisProbe) -> Option<u64> {
    redis
        .command("INFO memory")?
        .iter()
        .map(|info| {
            info.lines().find_map(|l| l.strip_prefix("used_memory:")).and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}

/// A snapshot of the counters a measurement window is bracketed by.
#[derive(Debug, Clone, Default)]
pub struct CostSnapshot {
    pub server_cpu: Option<f64>,
    pub redis_cpu: Option<f64>,
    pub generator_cpu: Option<f64>,
    pub redis_commands: Option<BTreeMap<String, u64>>,
    /// Redis network bytes in + out so far; read last, after the command counts.
    pub redis_net_bytes: Option<u64>,
}

impl CostSnapshot {
    /// `server_pids`: every instance of the server measured; their CPU time is summed.
    pub fn take(server_pids: &[u32], redis: Option<&RedisProbe>) -> Self {
        let cpu: Vec<f64> = server_pids.iter().filter_map(|pid| cpu_seconds(*pid)).collect();
        Self {
            server_cpu: (!cpu.is_empty() && cpu.len() == server_pids.len()).then(|| cpu.iter().sum()),
            redis_cpu: redis.and_then(RedisProbe::cpu_seconds),
            generator_cpu: own_cpu_seconds(),
            redis_commands: redis.and_then(redis_command_calls),
            redis_net_bytes: redis.and_then(redis_net_bytes),
        }
    }
}

/// Per-request costs between two snapshots.
#[derive(Debug, Clone, Default)]
pub struct Costs {
    pub server_cpu_us_per_request: Option<f64>,
    pub redis_cpu_us_per_request: Option<f64>,
    pub generator_cpu_us_per_request: Option<f64>,
    pub redis_commands_per_request: Option<f64>,
    /// Redis network bytes in + out per request. Unlike the command counts, this includes the
    /// harness's own `INFO` requests and replies (a few KB per window, negligible against the
    /// hundreds of thousands of requests a window holds).
    pub redis_bytes_per_request: Option<f64>,
    pub redis_commands: BTreeMap<String, u64>,
}

impl Costs {
    pub fn between(before: &CostSnapshot, after: &CostSnapshot, requests: u64) -> Self {
        let per = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if requests > 0 => Some((b - a).max(0.0) * 1e6 / requests as f64),
            _ => None,
        };
        let commands = match (&before.redis_commands, &after.redis_commands) {
            (Some(b), Some(a)) => Some(command_delta(b, a)),
            _ => None,
        };
        Self {
            server_cpu_us_per_request: per(before.server_cpu, after.server_cpu),
            redis_cpu_us_per_request: per(before.redis_cpu, after.redis_cpu),
            generator_cpu_us_per_request: per(before.generator_cpu, after.generator_cpu),
            redis_commands_per_request: commands
                .as_ref()
                .filter(|_| requests > 0)
                .map(|c| c.values().sum::<u64>() as f64 / requests as f64),
            redis_bytes_per_request: match (before.redis_net_bytes, after.redis_net_bytes) {
                (Some(b), Some(a)) if requests > 0 => Some(a.saturating_sub(b) as f64 / requests as f64),
                _ => None,
            },
            redis_commands: commands.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_deltas_leave_out_info() {
        let before = parse_commandstats(
            "# Commandstats\r\ncmdstat_get:calls=10,usec=5,usec_per_call=0.5\r\ncmdstat_info:calls=1,usec=1\r\n",
        );
        let after = parse_commandstats(
            "cmdstat_get:calls=110,usec=50\r\ncmdstat_exists:calls=3,usec=1\r\ncmdstat_info:calls=2,usec=1\r\n",
        );
        let d = command_delta(&before, &after);
        assert_eq!(d.get("get"), Some(&100));
        assert_eq!(d.get("exists"), Some(&3));
        assert_eq!(d.get("info"), None);
    }

    #[test]
    fn net_bytes_add_input_and_output() {
        let info = "# Stats\r\ntotal_connections_received:3\r\ntotal_net_input_bytes:1200\r\n\
                    total_net_output_bytes:34000\r\ntotal_net_repl_input_bytes:7\r\n";
        assert_eq!(parse_net_bytes(info), Some(35200));
        assert_eq!(parse_net_bytes("total_net_input_bytes:5\r\n"), None);
        assert_eq!(parse_net_bytes(""), None);
    }

    #[test]
    fn bytes_per_request_is_the_delta_over_requests() {
        let at = |bytes| CostSnapshot { redis_net_bytes: bytes, ..CostSnapshot::default() };
        let costs = Costs::between(&at(Some(1_000)), &at(Some(41_000)), 100);
        assert_eq!(costs.redis_bytes_per_request, Some(400.0));
        assert_eq!(Costs::between(&at(Some(1_000)), &at(Some(41_000)), 0).redis_bytes_per_request, None);
        assert_eq!(Costs::between(&at(None), &at(Some(41_000)), 100).redis_bytes_per_request, None);
    }

    #[test]
    fn own_process_is_readable() {
        assert!(own_cpu_seconds().is_some());
        assert!(peak_rss_bytes(std::process::id()).unwrap_or(0) > 0);
        assert!(cpus_allowed(std::process::id()).is_some());
    }
}
