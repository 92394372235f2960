//! The store behind a measured server, as the cost instruments read it: Redis (its nodes'
//! threads, `INFO` counters) or a PostgreSQL of the harness's (its process tree, and the
//! statements the servers count).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use authbench_server::pg_process::{PgServer, server_pids};

use super::cost::{RedisProbe, clock_ticks, cpu_ns_between, redis_command_calls};
use super::schedstat::ProcessCpu;

/// A PostgreSQL of the harness's, known by its postmaster: its CPU time is the postmaster's, every
/// backend's and auxiliary process's it has forked (each a process of its own), and what the
/// children that exited had used (the postmaster reaps them: `/proc/<pid>/stat`'s `cutime` and
/// `cstime`, in clock ticks).
///
/// PostgreSQL keeps no per-statement counter that is both exact and current (its statistics reach
/// shared memory up to a second late), so the statements come from the servers' own counter,
/// `authbench_postgres_statements_total` on `/metrics`, summed over `servers`.
#[derive(Debug, Clone)]
pub struct PgProbe {
    pub postmaster: u32,
    /// The servers using it, whose statements are counted.
    pub servers: Vec<SocketAddr>,
}

impl PgProbe {
    pub fn of(pg: &PgServer) -> Option<Self> {
        pg.pid().map(|postmaster| Self { postmaster, servers: Vec::new() })
    }

    /// Statements the servers have sent and requests they have answered (other than
    /// `/metrics`), by their own counts read together; none unless each answers.
    fn statements(&self) -> Option<(BTreeMap<String, u64>, u64)> {
        let mut statements = 0;
        let mut requests = 0;
        for addr in &self.servers {
            let text = metrics_of(*addr)?;
            statements += parse_counter(&text, "authbench_postgres_statements_total")?;
            requests += served_requests(&text);
        }
        (!self.servers.is_empty()).then(|| (BTreeMap::from([("postgres_statements".to_owned(), statements)]), requests))
    }

    fn cpu(&self) -> Option<StoreCpu> {
        let procs: BTreeMap<u32, ProcessCpu> =
            server_pids(self.postmaster).into_iter().filter_map(|pid| Some((pid, ProcessCpu::read(pid)?))).collect();
        procs.contains_key(&self.postmaster).then_some(())?;
        let reaped_ns = (children_cpu_seconds(self.postmaster)? * 1e9).round() as u64;
        Some(StoreCpu::Group { procs, reaped_ns })
    }
}

/// What the store of a measured server is, to read its counters: Redis (CPU time, command
/// counts, network bytes) or PostgreSQL (CPU time of its processes).
#[derive(Debug, Clone)]
pub enum StoreProbe {
    Redis(RedisProbe),
    Postgres(PgProbe),
}

impl StoreProbe {
    /// The store's processes now, for the noise monitor's "ours".
    pub fn pids(&self) -> Vec<u32> {
        match self {
            Self::Redis(redis) => redis.nodes.iter().filter_map(|(_, pid)| *pid).collect(),
            Self::Postgres(pg) => server_pids(pg.postmaster),
        }
    }

    /// Tells a PostgreSQL probe which servers' statements to count.
    pub fn counting(mut self, servers: &[SocketAddr]) -> Self {
        if let Self::Postgres(pg) = &mut self {
            pg.servers = servers.to_vec();
        }
        self
    }

    /// Store calls so far, by name: Redis's commands, or the servers' PostgreSQL statements
    /// with the requests the servers answered, read at the same instant.
    pub(super) fn calls(&self) -> Option<(BTreeMap<String, u64>, Option<u64>)> {
        match self {
            Self::Redis(redis) => redis_command_calls(redis).map(|calls| (calls, None)),
            Self::Postgres(pg) => pg.statements().map(|(calls, requests)| (calls, Some(requests))),
        }
    }

    /// The Redis, when the store is Redis.
    pub fn redis(&self) -> Option<&RedisProbe> {
        match self {
            Self::Redis(redis) => Some(redis),
            Self::Postgres(_) => None,
        }
    }

    pub(super) fn cpu(&self) -> Option<StoreCpu> {
        match self {
            Self::Redis(redis) => redis.cpu().map(StoreCpu::Threads),
            Self::Postgres(pg) => pg.cpu(),
        }
    }
}

/// CPU counters of a store at one instant.
#[derive(Debug, Clone)]
pub(super) enum StoreCpu {
    /// Long-lived processes (Redis nodes), thread by thread; a window needs every one at both ends.
    Threads(BTreeMap<u32, ProcessCpu>),
    /// A process tree whose members come and go (PostgreSQL): the live ones, and what the exited
    /// ones used in total, from their parent.
    Group { procs: BTreeMap<u32, ProcessCpu>, reaped_ns: u64 },
}

/// `addr`'s `/metrics` (a plain HTTP/1.1 GET, 2 s deadline).
fn metrics_of(addr: SocketAddr) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(2))).ok()?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

/// Requests a server has answered, every route and status but `/metrics` (the harness's reads).
fn served_requests(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("authbench_http_requests_total{") && !l.contains("route=\"/metrics\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// `name value` from a Prometheus text exposition.
fn parse_counter(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok()).map(|v| v as u64)
}

/// `cutime + cstime` of `pid`: CPU seconds of its children that exited and were reaped.
fn children_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // cutime and cstime are fields 16 and 17 of the full line: 14 and 15 after the name.
    let cutime: f64 = fields.get(13)?.parse().ok()?;
    let cstime: f64 = fields.get(14)?.parse().ok()?;
    Some((cutime + cstime) / clock_ticks())
}

/// Nanoseconds on a CPU of a store between two snapshots; none unless both read it.
pub(super) fn store_ns_between(before: Option<&StoreCpu>, after: Option<&StoreCpu>) -> Option<u64> {
    match (before?, after?) {
        (StoreCpu::Threads(b), StoreCpu::Threads(a)) => cpu_ns_between(Some(b), Some(a)),
        (StoreCpu::Group { procs: b, reaped_ns: rb }, StoreCpu::Group { procs: a, reaped_ns: ra }) => {
            // Live at the end: since the start, or whole if started since. Exited since the
            // start: the total the parent reaped, less what they had used at the start.
            let live: u64 = a
                .iter()
                .map(|(pid, cpu)| {
                    b.get(pid).map_or_else(|| cpu.ns_since(&ProcessCpu::default()), |then| cpu.ns_since(then))
                })
                .sum();
            let exited_before: u64 = b
                .iter()
                .filter(|(pid, _)| !a.contains_key(pid))
                .map(|(_, cpu)| cpu.ns_since(&ProcessCpu::default()))
                .sum();
            Some(live + ra.saturating_sub(*rb).saturating_sub(exited_before))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_is_read_from_the_exposition() {
        let text = "# HELP authbench_postgres_statements PostgreSQL statements issued.\n\
                    # TYPE authbench_postgres_statements counter\nauthbench_postgres_statements_total 1234\n\
                    authbench_redis_commands_total 0\n";
        assert_eq!(parse_counter(text, "authbench_postgres_statements_total"), Some(1234));
        assert_eq!(parse_counter(text, "authbench_postgres_statements"), None);
        assert_eq!(parse_counter(text, "authbench_missing_total"), None);
        let requests = "authbench_http_requests_total{route=\"/me\",status=\"200\"} 90\n\
                        authbench_http_requests_total{route=\"/me\",status=\"503\"} 10\n\
                        authbench_http_requests_total{route=\"/metrics\",status=\"200\"} 4\n";
        assert_eq!(served_requests(requests), 100);
    }

    #[test]
    fn a_process_tree_counts_children_that_come_and_go() {
        let group = |procs: &[(u32, u64)], reaped_ns| StoreCpu::Group {
            procs: procs.iter().map(|&(pid, ns)| (pid, ProcessCpu::of(&[(pid, ns)]))).collect(),
            reaped_ns,
        };
        // Postmaster 1; backend 2 lives through; 3 exits in the window having used 5 ms in total
        // (2 ms of it before), reaped into the parent's count; 4 starts in the window.
        let before = group(&[(1, 10_000_000), (2, 40_000_000), (3, 2_000_000)], 100_000_000);
        let after = group(&[(1, 11_000_000), (2, 47_000_000), (4, 3_000_000)], 105_000_000);
        // 1 + 7 + 3 (live) + 3 (what 3 ran in the window) = 14 ms.
        assert_eq!(store_ns_between(Some(&before), Some(&after)), Some(14_000_000));
        let threads = StoreCpu::Threads(BTreeMap::new());
        assert_eq!(store_ns_between(Some(&before), Some(&threads)), None);
        assert_eq!(store_ns_between(None, Some(&after)), None);
    }

    #[test]
    fn a_real_postgres_is_probed_through_its_backends() {
        let pg = PgServer::start().unwrap_or_else(|e| panic!("{e}"));
        let probe = StoreProbe::Postgres(PgProbe::of(&pg).unwrap());
        let pids = probe.pids();
        // The postmaster and its auxiliary processes (checkpointer, WAL writer, ...).
        assert!(pids.len() >= 3, "{pids:?}");
        let before = super::super::cost::CostSnapshot::take(&[], Some(&probe));
        // Work in a backend: a psql session that runs a query and exits (reaped by the postmaster).
        let bin = authbench_server::pg_process::bin_dir().unwrap();
        let status = std::process::Command::new(bin.join("psql"))
            .args(["-X", "-q", "-d", &pg.url(), "-c", "SELECT count(*) FROM generate_series(1, 3000000)"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let after = super::super::cost::CostSnapshot::take(&[], Some(&probe));
        let costs = super::super::cost::Costs::between(&before, &after, 1);
        // Counting three million rows takes well over 20 ms of a backend's time.
        assert!(costs.redis_cpu_us_per_request.is_some_and(|us| us > 20_000.0), "{:?}", costs.redis_cpu_us_per_request);
        assert!(costs.redis_commands_per_request.is_none());
    }
}
