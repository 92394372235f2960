//! The `authbench-server` binary as a user runs it: one `listening on` line on stdout, clean
//! exit on SIGTERM, one readable line and exit code 2 for a bad flag or config file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_authbench-server");

/// Runs the binary to completion and returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn prints_one_line_serves_and_stops_on_sigterm() {
    let mut child = Command::new(BIN)
        .args(["--strategy", "jwt", "--listen", "127.0.0.1:0", "--jwt-alg", "ES256", "--users", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {line:?}")).to_owned();
    assert!(addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"), "{addr}");

    // A real request over the printed address, with a plain TCP client.
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(&mut stream, b"GET /capabilities HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"jwt_alg\":\"ES256\""), "{response}");

    kill(Pid::from_raw(i32::try_from(child.id()).unwrap()), Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "stdout must hold exactly one line");
}

#[test]
fn bad_flags_and_files_give_one_line_and_exit_2() {
    let dir = std::env::temp_dir().join(format!("authbench-bin-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad_toml = dir.join("bad.toml");
    std::fs::write(&bad_toml, "strategy = \"jwt\"\nusers = \"many\"\n").unwrap();
    let bad_toml = bad_toml.to_string_lossy().into_owned();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![], "--strategy is required"),
        (vec!["--strategy", "kerberos"], "invalid value 'kerberos'"),
        (vec!["--strategy", "jwt", "--bogus"], "unexpected argument '--bogus'"),
        (vec!["--strategy", "jwt", "--access-ttl", "soon"], "invalid value 'soon'"),
        (vec!["--strategy", "session", "--fail-mode", "open"], "only applies to --strategy hybrid"),
        (vec!["--config", "/nonexistent/authbench.toml"], "cannot read config file"),
        (vec!["--config", &bad_toml], "config file"),
    ];
    for (args, expected) in cases {
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr:?} lacks {expected:?}");
    }
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("--max-sessions-per-user"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreachable_redis_is_one_line_and_exit_1() {
    let port = authbench_server::redis_process::free_port().unwrap().to_string();
    let url = format!("redis://127.0.0.1:{port}");
    let (code, stdout, stderr) = run(&["--strategy", "session", "--redis-url", &url, "--users", "1"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stdout, "");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("authbench-server: cannot reach Redis at"), "{stderr}");
}
