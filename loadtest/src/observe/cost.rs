//! Cost instruments read from outside the processes: CPU time and peak memory from `/proc`,
//! Redis command counts from `INFO commandstats`, Redis network bytes from `INFO stats`
//! (PostgreSQL's, in `store.rs`). The server's and the store's CPU time come from their threads' scheduler counters, in
//! nanoseconds (`schedstat.rs`); `/proc/<pid>/stat`'s clock ticks remain for the generator's
//! whole process, whose threads come and go within a window.

use std::collections::BTreeMap;

use std::net::SocketAddr;

use authbench_server::redis_process::{RedisServer, command_at};

use super::schedstat::ProcessCpu;
use super::store::{StoreCpu, StoreProbe, store_ns_between};

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

    /// The CPU counters of every node's threads; none unless each is known.
    pub(super) fn cpu(&self) -> Option<BTreeMap<u32, ProcessCpu>> {
        self.nodes.iter().map(|(_, pid)| pid.and_then(|pid| Some((pid, ProcessCpu::read(pid)?)))).collect()
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

pub(super) fn clock_ticks() -> f64 {
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
    /// Every server instance's threads, by process id; none unless each one's are known.
    server_cpu: Option<BTreeMap<u32, ProcessCpu>>,
    /// The store's CPU counters (every Redis node's threads; PostgreSQL's processes); none
    /// unless each is known.
    store_cpu: Option<StoreCpu>,
    /// This process's CPU time in 10 ms clock ticks, as nanoseconds: the login scenario's goose
    /// threads exit within the window, and only the process-wide count keeps what they ran.
    generator_cpu_ns: Option<u64>,
    pub redis_commands: Option<BTreeMap<String, u64>>,
    /// Requests the servers answered, read with the calls when the calls are the servers' own
    /// count (PostgreSQL): calls per request are then taken against these.
    server_requests: Option<u64>,
    /// Redis network bytes in + out so far; read last, after the command counts.
    pub redis_net_bytes: Option<u64>,
}

impl CostSnapshot {
    /// `server_pids`: every instance of the server measured; their CPU time is summed.
    pub fn take(server_pids: &[u32], store: Option<&StoreProbe>) -> Self {
        let server_cpu = (!server_pids.is_empty())
            .then(|| server_pids.iter().map(|&pid| Some((pid, ProcessCpu::read(pid)?))).collect())
            .flatten();
        let redis = store.and_then(StoreProbe::redis);
        let (calls, server_requests) = store.and_then(StoreProbe::calls).map_or((None, None), |(c, r)| (Some(c), r));
        Self {
            server_cpu,
            store_cpu: store.and_then(StoreProbe::cpu),
            generator_cpu_ns: own_cpu_seconds().map(|s| (s * 1e9).round() as u64),
            redis_commands: calls,
            server_requests,
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
        let per = |ns: Option<u64>| ns.filter(|_| requests > 0).map(|ns| ns as f64 / 1e3 / requests as f64);
        let commands = match (&before.redis_commands, &after.redis_commands) {
            (Some(b), Some(a)) => Some(command_delta(b, a)),
            _ => None,
        };
        Self {
            server_cpu_us_per_request: per(cpu_ns_between(before.server_cpu.as_ref(), after.server_cpu.as_ref())),
            redis_cpu_us_per_request: per(store_ns_between(before.store_cpu.as_ref(), after.store_cpu.as_ref())),
            generator_cpu_us_per_request: per(match (before.generator_cpu_ns, after.generator_cpu_ns) {
                (Some(b), Some(a)) => Some(a.saturating_sub(b)),
                _ => None,
            }),
            // Calls the servers counted go over the requests they counted between the same two
            // reads (a read answered late under load would otherwise shift the window).
            redis_commands_per_request: match (before.server_requests, after.server_requests) {
                (Some(b), Some(a)) if a > b => {
                    commands.as_ref().map(|c| c.values().sum::<u64>() as f64 / (a - b) as f64)
                }
                _ => {
                    commands.as_ref().filter(|_| requests > 0).map(|c| c.values().sum::<u64>() as f64 / requests as f64)
                }
            },
            redis_bytes_per_request: match (before.redis_net_bytes, after.redis_net_bytes) {
                (Some(b), Some(a)) if requests > 0 => Some(a.saturating_sub(b) as f64 / requests as f64),
                _ => None,
            },
            redis_commands: commands.unwrap_or_default(),
        }
    }
}

/// Nanoseconds on a CPU of the same processes between two snapshots, thread by thread; none
/// unless both snapshots read every process.
pub(super) fn cpu_ns_between(
    before: Option<&BTreeMap<u32, ProcessCpu>>,
    after: Option<&BTreeMap<u32, ProcessCpu>>,
) -> Option<u64> {
    let (before, after) = (before?, after?);
    (before.len() == after.len())
        .then(|| after.iter().map(|(pid, a)| Some(a.ns_since(before.get(pid)?))).sum())
        .flatten()
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
    fn cpu_per_request_adds_up_threads_of_every_process() {
        let at = |server: Vec<(u32, ProcessCpu)>, redis: Option<ProcessCpu>, generator_ns: u64| CostSnapshot {
            server_cpu: Some(server.into_iter().collect()),
            store_cpu: redis.map(|r| StoreCpu::Threads([(7, r)].into())),
            generator_cpu_ns: Some(generator_ns),
            ..CostSnapshot::default()
        };
        let before = at(
            vec![(100, ProcessCpu::of(&[(100, 1_000_000), (101, 9_000_000_000)])), (200, ProcessCpu::of(&[(200, 0)]))],
            Some(ProcessCpu::of(&[(7, 50_000)])),
            10_000_000,
        );
        // Server 100's thread 101 exited (its 9 s before the window must not come off), 102
        // started; 1000 requests.
        let after = at(
            vec![
                (100, ProcessCpu::of(&[(100, 3_000_000), (102, 500_000)])),
                (200, ProcessCpu::of(&[(200, 1_500_000)])),
            ],
            Some(ProcessCpu::of(&[(7, 2_050_000)])),
            30_000_000,
        );
        let costs = Costs::between(&before, &after, 1000);
        assert_eq!(costs.server_cpu_us_per_request, Some(4.0));
        assert_eq!(costs.redis_cpu_us_per_request, Some(2.0));
        assert_eq!(costs.generator_cpu_us_per_request, Some(20.0));

        // A server gone at the end, or never read, gives no figure rather than a low one.
        let gone = at(vec![(100, ProcessCpu::of(&[(100, 3_000_000)]))], None, 30_000_000);
        let costs = Costs::between(&before, &gone, 1000);
        assert_eq!((costs.server_cpu_us_per_request, costs.redis_cpu_us_per_request), (None, None));
        assert_eq!(Costs::between(&before, &after, 0).server_cpu_us_per_request, None);
    }

    #[test]
    fn a_snapshot_of_this_process_reads_its_threads() {
        let me = std::process::id();
        let before = CostSnapshot::take(&[me], None);
        // Until this thread has run 30 ms by its own counter (at most 3 s of wall time).
        let ran = || {
            let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
            text.split_whitespace().next().and_then(|f| f.parse::<u64>().ok()).unwrap_or(0)
        };
        let (start, wall) = (ran(), std::time::Instant::now());
        while ran() < start + 30_000_000 && wall.elapsed() < std::time::Duration::from_secs(3) {
            std::hint::spin_loop();
        }
        let after = CostSnapshot::take(&[me], None);
        // At least the 30 ms spun on this thread, over 1000 requests: 30 µs each.
        let server = Costs::between(&before, &after, 1000).server_cpu_us_per_request;
        assert!(server.is_some_and(|us| us >= 25.0), "{server:?}");
        assert!(CostSnapshot::take(&[], None).server_cpu.is_none());
        assert!(CostSnapshot::take(&[me, u32::MAX], None).server_cpu.is_none());
    }

    #[test]
    fn own_process_is_readable() {
        assert!(own_cpu_seconds().is_some());
        assert!(peak_rss_bytes(std::process::id()).unwrap_or(0) > 0);
        assert!(cpus_allowed(std::process::id()).is_some());
    }
}
