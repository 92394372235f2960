//! A real `redis-server` child process on a free loopback port, owned by whoever starts it:
//! tests, benchmarks and the harness. The owner can pause it (SIGSTOP), resume it, kill it
//! (SIGKILL) and restart it on the same port and data directory. Dropping it kills it and
//! removes its directory, so no test leaves a Redis behind.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a started Redis may take to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a Redis could not be started or controlled.
#[derive(Debug, thiserror::Error)]
pub enum RedisProcessError {
    #[error("redis-server not found on PATH: run scripts/setup.sh (or `apt-get install redis-server`)")]
    NotInstalled,
    #[error("cannot start redis-server: {0}")]
    Spawn(std::io::Error),
    #[error("redis-server on port {port} did not answer PING within {timeout:?}{log}")]
    NotReady { port: u16, timeout: Duration, log: String },
    #[error("cannot signal redis-server: {0}")]
    Signal(nix::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How the Redis is run.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// `appendonly yes` with `appendfsync everysec`; otherwise no persistence at all.
    pub append_only: bool,
    /// Bind this port instead of a free one.
    pub port: Option<u16>,
    /// Extra `--name value` arguments, e.g. `maxmemory`.
    pub extra: Vec<(String, String)>,
    /// CPU to pin the process to (Linux `taskset`), when set.
    pub cpu: Option<usize>,
}

/// A running (or paused, or killed) `redis-server`.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    options: RedisOptions,
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl RedisServer {
    /// Starts a Redis with no persistence on a free port and waits until it answers.
    pub fn start() -> Result<Self, RedisProcessError> {
        Self::start_with(RedisOptions::default())
    }

    /// Starts a Redis as `options` say and waits until it answers.
    pub fn start_with(options: RedisOptions) -> Result<Self, RedisProcessError> {
        let mut last = None;
        // A port found free can be taken before Redis binds it; try a few.
        for _ in 0..5 {
            let port = match options.port {
                Some(port) => port,
                None => free_port()?,
            };
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            let dir = std::env::temp_dir().join(format!("authbench-redis-{}-{port}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let mut server = Self { child: None, port, dir, options: options.clone() };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e @ (RedisProcessError::NotInstalled | RedisProcessError::Spawn(_))) => return Err(e),
                Err(e) => last = Some(e),
            }
            if options.port.is_some() {
                break;
            }
        }
        Err(last.unwrap_or(RedisProcessError::NotInstalled))
    }

    fn spawn(&mut self) -> Result<(), RedisProcessError> {
        let mut cmd = match self.options.cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg("redis-server");
                c
            }
            None => Command::new("redis-server"),
        };
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--save")
            .arg("")
            .arg("--daemonize")
            .arg("no")
            .arg("--loglevel")
            .arg("warning")
            .arg("--logfile")
            .arg(self.log_path())
            .arg("--appendonly")
            .arg(if self.options.append_only { "yes" } else { "no" })
            .arg("--appendfsync")
            .arg("everysec");
        for (name, value) in &self.options.extra {
            cmd.arg(format!("--{name}")).arg(value);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RedisProcessError::NotInstalled,
            _ => RedisProcessError::Spawn(e),
        })?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn wait_ready(&mut self) -> Result<(), RedisProcessError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                break; // exited: port taken, bad option, ...
            }
            if ping(self.addr(), Duration::from_millis(200)) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop_child();
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let log = log.lines().last().map(|l| format!(": {l}")).unwrap_or_default();
        Err(RedisProcessError::NotReady { port: self.port, timeout: READY_TIMEOUT, log })
    }

    /// Loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Socket address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Data directory (append-only file, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn signal(&self, signal: Signal) -> Result<(), RedisProcessError> {
        let pid = self.pid().ok_or(RedisProcessError::Signal(nix::Error::ESRCH))?;
        let pid = i32::try_from(pid).map_err(|_| RedisProcessError::Signal(nix::Error::ESRCH))?;
        kill(Pid::from_raw(pid), signal).map_err(RedisProcessError::Signal)
    }

    /// Freezes the process (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) -> Result<(), RedisProcessError> {
        self.signal(Signal::SIGSTOP)
    }

    /// Lets a paused process run again (SIGCONT).
    pub fn resume(&self) -> Result<(), RedisProcessError> {
        self.signal(Signal::SIGCONT)
    }

    /// Kills the process (SIGKILL) and reaps it; data not yet persisted is lost.
    pub fn kill(&mut self) -> Result<(), RedisProcessError> {
        self.signal(Signal::SIGKILL)?;
        if let Some(mut child) = self.child.take() {
            child.wait()?;
        }
        Ok(())
    }

    /// Starts again on the same port and directory (an append-only file is replayed).
    pub fn restart(&mut self) -> Result<(), RedisProcessError> {
        if self.child.is_some() {
            self.kill()?;
        }
        self.spawn()
    }

    /// Sends one inline command and returns the raw reply (e.g. `INFO memory`).
    pub fn command(&self, line: &str) -> Result<String, RedisProcessError> {
        command_at(self.addr(), line)
    }

    fn stop_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A Redis Cluster of `redis-server` children on loopback: each master owns an equal share of
/// the 16384 slots, no replicas. Built without `redis-cli` (slots assigned and nodes introduced
/// with `CLUSTER ADDSLOTSRANGE` and `CLUSTER MEET`); dropping it kills every node.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

/// How long a new cluster may take to agree that every slot is served.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(20);

impl RedisCluster {
    /// Starts `masters` nodes (at least 1) and waits until every node reports `cluster_state:ok`.
    pub fn start(masters: usize) -> Result<Self, RedisProcessError> {
        let masters = masters.max(1);
        let mut nodes = Vec::with_capacity(masters);
        let mut bus_ports = Vec::with_capacity(masters);
        for _ in 0..masters {
            // The bus port defaults to port + 10000, which may be taken or above 65535.
            let bus = free_port()?;
            bus_ports.push(bus);
            let options = RedisOptions {
                extra: vec![
                    ("cluster-enabled".into(), "yes".into()),
                    ("cluster-config-file".into(), "nodes.conf".into()),
                    ("cluster-port".into(), bus.to_string()),
                    ("cluster-node-timeout".into(), "5000".into()),
                ],
                ..RedisOptions::default()
            };
            nodes.push(RedisServer::start_with(options)?);
        }
        let cluster = Self { nodes };
        let not_ready =
            |port: u16, log: String| RedisProcessError::NotReady { port, timeout: CLUSTER_READY_TIMEOUT, log };
        let per_node = 16384 / masters;
        for (i, node) in cluster.nodes.iter().enumerate() {
            let first = i * per_node;
            let last = if i + 1 == masters { 16383 } else { first + per_node - 1 };
            let reply = node.command(&format!("CLUSTER ADDSLOTSRANGE {first} {last}"))?;
            if reply != "+OK" {
                return Err(not_ready(node.port(), format!(": CLUSTER ADDSLOTSRANGE answered {reply}")));
            }
        }
        let (first, others) = cluster.nodes.split_first().ok_or(RedisProcessError::NotInstalled)?;
        for (node, bus) in others.iter().zip(bus_ports.iter().skip(1)) {
            let reply = first.command(&format!("CLUSTER MEET 127.0.0.1 {} {bus}", node.port()))?;
            if reply != "+OK" {
                return Err(not_ready(node.port(), format!(": CLUSTER MEET answered {reply}")));
            }
        }
        let deadline = Instant::now() + CLUSTER_READY_TIMEOUT;
        let known = format!("cluster_known_nodes:{masters}");
        loop {
            let ready = cluster.nodes.iter().all(|n| {
                n.command("CLUSTER INFO").is_ok_and(|info| info.contains("cluster_state:ok") && info.contains(&known))
            });
            if ready {
                return Ok(cluster);
            }
            if Instant::now() > deadline {
                return Err(not_ready(first.port(), ": the cluster never reached cluster_state:ok".to_owned()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The seed URLs, `redis://127.0.0.1:<port>` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes, for commands to one of them.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop_child();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends one inline command to the Redis at `addr` and returns the raw reply: simple replies as
/// their line (`+OK`, `:3`), bulk replies as their content.
pub fn command_at(addr: SocketAddr, line: &str) -> Result<String, RedisProcessError> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{line}\r\n").as_bytes())?;
    read_reply(&mut stream)
}

/// Whether something on `addr` answers a RESP `PING` with `+PONG`.
pub fn ping(addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else { return false };
    if stream.set_read_timeout(Some(timeout)).is_err() || stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    stream.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Reads one RESP reply: a simple line, or a bulk string of known length.
fn read_reply(stream: &mut TcpStream) -> Result<String, RedisProcessError> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        stream.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).trim_end().to_owned();
    match head.strip_prefix('$').map(str::parse::<i64>) {
        Some(Ok(len)) if len >= 0 => {
            let mut body = vec![0u8; usize::try_from(len).unwrap_or(0) + 2];
            stream.read_exact(&mut body)?;
            body.truncate(body.len().saturating_sub(2));
            Ok(String::from_utf8_lossy(&body).into_owned())
        }
        _ => Ok(head),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_pauses_kills_and_restarts() {
        let mut redis = RedisServer::start().unwrap();
        assert!(ping(redis.addr(), Duration::from_secs(1)));
        assert_eq!(redis.command("SET k v").unwrap(), "+OK");
        assert_eq!(redis.command("GET k").unwrap(), "v");
        redis.pause().unwrap();
        assert!(!ping(redis.addr(), Duration::from_millis(200)));
        redis.resume().unwrap();
        assert!(ping(redis.addr(), Duration::from_secs(1)));
        redis.kill().unwrap();
        assert!(!ping(redis.addr(), Duration::from_millis(200)));
        redis.restart().unwrap();
        // No persistence: the restart is empty.
        assert_eq!(redis.command("EXISTS k").unwrap(), ":0");
        assert!(redis.command("INFO memory").unwrap().contains("used_memory:"));
    }

    #[test]
    fn a_cluster_serves_every_slot() {
        let cluster = RedisCluster::start(3).unwrap();
        assert_eq!(cluster.urls().len(), 3);
        for node in cluster.nodes() {
            let info = node.command("CLUSTER INFO").unwrap();
            assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
            assert!(info.contains("cluster_known_nodes:3"), "{info}");
        }
        // A key is served by exactly one node; the others redirect.
        let replies: Vec<String> = cluster.nodes().iter().map(|n| n.command("SET k v").unwrap()).collect();
        assert_eq!(replies.iter().filter(|r| *r == "+OK").count(), 1, "{replies:?}");
        assert!(replies.iter().filter(|r| r.starts_with("-MOVED")).count() == 2, "{replies:?}");
    }
}
