//! A real PostgreSQL server as a child process on a free loopback port, owned by whoever starts
//! it (tests, benchmarks, the harness), as `redis_process` owns Redis: a fresh cluster from
//! `initdb` in a temporary directory, `postgres` listening on 127.0.0.1 only, with trust
//! authentication for the one user `authbench` (loopback only, a throwaway cluster).
//!
//! The owner can pause it (SIGSTOP to the postmaster and every process it forked, so open
//! connections hang as a frozen host would), resume it, kill it (SIGKILL to all of them: no
//! shutdown checkpoint, the WAL is replayed at the next start) and restart it on the same port
//! and data directory. Dropping it kills it and removes its directory.
//!
//! `initdb` and `postgres` refuse to run as root; as root (CI, these machines) they run as the
//! unprivileged `postgres` user the Debian package creates (the child switches to it before it
//! starts the binary, so the server is our own child and is reaped by us). The binaries are
//! found under `/usr/lib/postgresql/<version>/bin` (the Debian layout, newest version first),
//! else on `PATH`.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User, geteuid};

use crate::redis_process::free_port;

/// How long a started server may take to accept connections (crash recovery included).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The one role of the cluster.
pub const USER: &str = "authbench";

/// The unprivileged account `initdb` and `postgres` run as when we are root.
const RUN_AS: &str = "postgres";

/// Why a PostgreSQL server could not be started or controlled.
#[derive(Debug, thiserror::Error)]
pub enum PgProcessError {
    #[error(
        "PostgreSQL not found (no initdb under /usr/lib/postgresql/*/bin or on PATH): run scripts/setup.sh (or `apt-get install postgresql`)"
    )]
    NotInstalled,
    #[error(
        "running as root, PostgreSQL needs the unprivileged `postgres` user: install the Debian `postgresql` package"
    )]
    NoUnprivilegedUser,
    #[error("initdb failed: {0}")]
    Initdb(String),
    #[error("cannot start postgres: {0}")]
    Spawn(std::io::Error),
    #[error("postgres on port {port} did not accept connections within {timeout:?}{log}")]
    NotReady { port: u16, timeout: Duration, log: String },
    #[error("query failed: {0}")]
    Query(String),
    #[error("cannot signal postgres: {0}")]
    Signal(nix::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How the server is run.
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// Bind this port instead of a free one.
    pub port: Option<u16>,
    /// CPU to pin the postmaster (and so every backend it forks) to, when set.
    pub cpu: Option<usize>,
    /// Extra `-c name=value` settings.
    pub settings: Vec<(String, String)>,
}

/// A running (or paused, or killed) PostgreSQL server.
#[derive(Debug)]
pub struct PgServer {
    child: Option<Child>,
    port: u16,
    /// The temporary directory: the cluster (`data/`), the socket and the log live in it.
    dir: PathBuf,
    options: PgOptions,
    bin: PathBuf,
}

/// The directory holding PostgreSQL's server binaries: the newest
/// `/usr/lib/postgresql/<version>/bin` with an `initdb`, else the one `initdb` on PATH is in.
pub fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|p| p.join("initdb").is_file())
}

impl PgServer {
    /// A fresh cluster on a free port, started and accepting connections.
    pub fn start() -> Result<Self, PgProcessError> {
        Self::start_with(PgOptions::default())
    }

    /// A fresh cluster started as `options` say.
    pub fn start_with(options: PgOptions) -> Result<Self, PgProcessError> {
        let bin = bin_dir().ok_or(PgProcessError::NotInstalled)?;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("authbench-pg-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut server = Self { child: None, port: 0, dir, options, bin };
        server.give_away(&server.dir.clone())?;
        server.initdb()?;
        let mut last = None;
        // A port found free can be taken before the server binds it; try a few.
        for _ in 0..5 {
            server.port = match server.options.port {
                Some(port) => port,
                None => free_port()?,
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e @ PgProcessError::Spawn(_)) => return Err(e),
                Err(e) => last = Some(e),
            }
            if server.options.port.is_some() {
                break;
            }
        }
        Err(last.unwrap_or(PgProcessError::NotInstalled))
    }

    /// A command for PostgreSQL binary `name`, run as the unprivileged user when we are root.
    fn command(&self, name: &str) -> Result<Command, PgProcessError> {
        as_server_user(Command::new(self.bin.join(name)))
    }

    /// Hands `path` to the unprivileged user when we are root (the server writes into it).
    fn give_away(&self, path: &Path) -> Result<(), PgProcessError> {
        if !geteuid().is_root() {
            return Ok(());
        }
        let status = Command::new("chown")
            .arg(format!("{RUN_AS}:"))
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if status.success() { Ok(()) } else { Err(PgProcessError::NoUnprivilegedUser) }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    fn initdb(&self) -> Result<(), PgProcessError> {
        let out = self
            .command("initdb")?
            .arg("-D")
            .arg(self.data())
            .arg("-U")
            .arg(USER)
            .arg("--auth=trust")
            .arg("--encoding=UTF8")
            .arg("--locale=C")
            .arg("--no-instructions")
            // A throwaway cluster: no need to wait for its files to reach the disk.
            .arg("--no-sync")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => PgProcessError::NotInstalled,
                _ => PgProcessError::Spawn(e),
            })?;
        if out.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out.stderr);
        Err(PgProcessError::Initdb(text.lines().last().unwrap_or("no output").to_owned()))
    }

    fn spawn(&mut self) -> Result<(), PgProcessError> {
        let mut cmd = match self.options.cpu {
            Some(cpu) => {
                // taskset execs the server in place: still our child, as the same user.
                let mut c = as_server_user(Command::new("taskset"))?;
                c.arg("-c").arg(cpu.to_string()).arg(self.bin.join("postgres"));
                c
            }
            None => self.command("postgres")?,
        };
        cmd.arg("-D")
            .arg(self.data())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg("listen_addresses=127.0.0.1")
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            .arg("-c")
            .arg("max_connections=200");
        for (name, value) in &self.options.settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        let log = std::fs::File::create(self.log_path())?;
        // Its own process group, apart from ours (a Ctrl-C to the harness is the harness's to
        // handle); its children each make a group of their own, see `signal`.
        cmd.process_group(0).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        self.child = Some(cmd.spawn().map_err(PgProcessError::Spawn)?);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), PgProcessError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                break; // exited: port taken, bad setting, ...
            }
            if self.ready() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.stop_child();
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let log = log.lines().last().map(|l| format!(": {l}")).unwrap_or_default();
        Err(PgProcessError::NotReady { port: self.port, timeout: READY_TIMEOUT, log })
    }

    /// Whether the server accepts connections (`pg_isready`).
    pub fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-t", "1", "-U", USER, "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Socket address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `postgres://authbench@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql` with `psql` and returns what it printed, unaligned and without headers (one
    /// line per row, `|` between fields): for the harness's own queries (sizes, emptying).
    pub fn psql(&self, sql: &str) -> Result<String, PgProcessError> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", &self.url(), "-c", sql])
            .stdin(Stdio::null())
            .output()?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned());
        }
        let text = String::from_utf8_lossy(&out.stderr);
        Err(PgProcessError::Query(text.lines().next().unwrap_or("psql failed").to_owned()))
    }

    /// The postmaster's process id while running (backends are its children).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The directory holding the cluster and the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sends `signal` to the postmaster and every process it forked. Each backend and auxiliary
    /// process makes itself a process-group leader (`setsid`), so one `killpg` would reach the
    /// postmaster alone. The postmaster is stopped first, so that it forks nothing between the
    /// listing of its children and their signal, and receives `signal` last, so that its
    /// children are still its own (not orphans handed to init) when they are listed.
    fn signal(&self, signal: Signal) -> Result<(), PgProcessError> {
        let pid = self.pid().ok_or(PgProcessError::Signal(nix::Error::ESRCH))?;
        let postmaster = Pid::from_raw(i32::try_from(pid).map_err(|_| PgProcessError::Signal(nix::Error::ESRCH))?);
        if signal != Signal::SIGCONT {
            kill(postmaster, Signal::SIGSTOP).map_err(PgProcessError::Signal)?;
        }
        for child in children_of(pid) {
            if let Ok(child) = i32::try_from(child) {
                // A backend may have exited since it was listed.
                let _ = kill(Pid::from_raw(child), signal);
            }
        }
        kill(postmaster, signal).map_err(PgProcessError::Signal)
    }

    /// The postmaster and every process it has forked now (backends, checkpointer, WAL
    /// writer, autovacuum, ...): what the server's CPU time is spread over.
    pub fn pids(&self) -> Vec<u32> {
        self.pid().map(server_pids).unwrap_or_default()
    }

    /// Freezes the postmaster and every backend (SIGSTOP): connections stay open, nothing
    /// answers.
    pub fn pause(&self) -> Result<(), PgProcessError> {
        self.signal(Signal::SIGSTOP)
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) -> Result<(), PgProcessError> {
        self.signal(Signal::SIGCONT)
    }

    /// Kills the postmaster and every backend (SIGKILL) and reaps it: no checkpoint; what the
    /// WAL holds is replayed at the next start, unlogged tables come back empty.
    pub fn kill(&mut self) -> Result<(), PgProcessError> {
        self.signal(Signal::SIGKILL)?;
        if let Some(mut child) = self.child.take() {
            child.wait()?;
        }
        // The shared memory the backends held goes with the last of them.
        std::thread::sleep(Duration::from_millis(100));
        Ok(())
    }

    /// Starts again on the same port and cluster (crash recovery runs if it was killed).
    pub fn restart(&mut self) -> Result<(), PgProcessError> {
        if self.child.is_some() {
            self.kill()?;
        }
        let _ = std::fs::remove_file(self.data().join("postmaster.pid"));
        self.spawn()
    }

    fn stop_child(&mut self) {
        if self.child.is_some() {
            let _ = self.signal(Signal::SIGCONT);
            let _ = self.signal(Signal::SIGKILL);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

/// The postmaster `postmaster` and every process it has forked now.
pub fn server_pids(postmaster: u32) -> Vec<u32> {
    let mut pids = vec![postmaster];
    pids.extend(children_of(postmaster));
    pids
}

/// The processes whose parent is `parent`, from `/proc`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().is_some_and(|stat| {
                // `pid (comm) state ppid ...`: the command may hold spaces and parentheses.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    .is_some_and(|ppid| ppid == parent)
            })
        })
        .collect()
}

/// `cmd`, switched to the unprivileged user before it starts when we are root: the child is
/// then the server itself, and its owner reaps it.
fn as_server_user(mut cmd: Command) -> Result<Command, PgProcessError> {
    if geteuid().is_root() {
        let user = User::from_name(RUN_AS).ok().flatten().ok_or(PgProcessError::NoUnprivilegedUser)?;
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw()).env("HOME", &user.dir);
    }
    Ok(cmd)
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop_child();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A real cluster: started, frozen (not ready), thawed, killed and started again, gone
    /// when dropped (scripts/setup.sh installs PostgreSQL; without it this fails saying so).
    #[test]
    fn a_real_postgres_starts_freezes_restarts_and_goes() {
        let mut pg = PgServer::start().unwrap_or_else(|e| panic!("{e}"));
        assert!(pg.ready());
        assert!(pg.url().starts_with("postgres://authbench@127.0.0.1:"));
        assert_eq!(pg.psql("SELECT 1 + 1").unwrap(), "2");
        assert!(pg.psql("SELECT nonsense").unwrap_err().to_string().contains("nonsense"));
        pg.pause().unwrap();
        assert!(!pg.ready(), "a frozen server does not answer");
        pg.resume().unwrap();
        assert!(pg.ready());
        let port = pg.port();
        pg.kill().unwrap();
        assert!(!pg.ready());
        pg.restart().unwrap();
        assert!(pg.ready() && pg.port() == port, "back on its port after crash recovery");
        let dir = pg.dir().to_owned();
        drop(pg);
        assert!(!dir.exists(), "its directory goes with it");
    }
}
