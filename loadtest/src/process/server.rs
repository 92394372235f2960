//! An `authbench-server` child: found, started on a free loopback port, waited for, and
//! killed when its handle drops.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a server may take to print `listening on` (key generation and password hashing
/// happen before it).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Finds the `authbench-server` binary: `$AUTHBENCH_SERVER_BIN`, next to this executable (or
/// one directory up, for test binaries under `deps/`), then `PATH`.
pub fn server_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("AUTHBENCH_SERVER_BIN") {
        return Ok(PathBuf::from(path));
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join("authbench-server");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("authbench-server");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    anyhow::bail!(
        "authbench-server not found next to authbench or on PATH: run `cargo build --release` (scripts/setup.sh does)"
    )
}

/// A running `authbench-server`.
#[derive(Debug)]
pub struct ServerProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// Lines the server wrote to stderr, kept for error messages.
    stderr: mpsc::Receiver<String>,
}

impl ServerProcess {
    /// Starts the server with `args` (plus `--listen 127.0.0.1:0` unless they name an
    /// address), optionally pinned to the CPU list `cpus`, and waits for `listening on`.
    pub fn start(binary: &Path, args: &[String], cpus: Option<String>) -> anyhow::Result<Self> {
        let mut cmd = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        cmd.args(args);
        if !args.iter().any(|a| a == "--listen") {
            cmd.arg("--listen").arg("127.0.0.1:0");
        }
        cmd.env("RUST_LOG", "warn").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| anyhow::anyhow!("cannot start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (line_tx, line_rx) = mpsc::channel::<String>();
        if let Some(stdout) = stdout {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                if reader.read_line(&mut line).is_ok() {
                    let _ = line_tx.send(line);
                }
                // Keep draining so the server never blocks on a full pipe.
                let mut sink = Vec::new();
                let _ = reader.read_to_end(&mut sink);
            });
        }
        let (err_tx, err_rx) = mpsc::channel::<String>();
        if let Some(stderr) = stderr {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if err_tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut server = Self { child: Some(child), addr: SocketAddr::from(([127, 0, 0, 1], 0)), stderr: err_rx };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            match line_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    let addr = line.trim().strip_prefix("listening on ").and_then(|a| a.parse().ok());
                    match addr {
                        Some(addr) => {
                            server.addr = addr;
                            return Ok(server);
                        }
                        None => anyhow::bail!("authbench-server printed {line:?} instead of `listening on <addr>`"),
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    if let Some(status) = server.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                        anyhow::bail!("authbench-server exited ({status}) before listening: {}", server.last_error());
                    }
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(100));
                    let why = server.last_error();
                    anyhow::bail!("authbench-server did not come up within {STARTUP_TIMEOUT:?}: {why}");
                }
            }
        }
    }

    /// The last line the server wrote to stderr.
    pub fn last_error(&self) -> String {
        let lines: Vec<String> = self.stderr.try_iter().collect();
        lines.last().cloned().unwrap_or_else(|| "no output".to_owned())
    }

    /// Process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server: SIGTERM, then SIGKILL if it has not exited within two seconds.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
