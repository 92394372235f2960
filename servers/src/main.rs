//! `authbench-server`: parses flags (and an optional TOML file), binds, prints
//! `listening on <addr>` once, and serves until SIGTERM or Ctrl-C.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use authbench_server::config::DEFAULT_ADMIN_KEY;
use authbench_server::{Server, ServerOptions};
use clap::Parser;
use clap::error::ErrorKind;
use tokio::net::TcpListener;

fn main() -> ExitCode {
    let options = match ServerOptions::try_parse() {
        Ok(options) => options,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message spans several lines; the first says what is wrong.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            eprintln!("authbench-server: {first} (see --help)");
            return ExitCode::from(2);
        }
    };
    let config = match options.resolve() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("authbench-server: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("authbench-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("authbench-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: authbench_server::ServerConfig) -> anyhow::Result<()> {
    let listen = config.listen;
    let strategy = config.strategy;
    if config.uses_default_admin_key() {
        tracing::warn!(
            "the admin endpoints accept the public default admin key \"{DEFAULT_ADMIN_KEY}\": \
             give --admin-key unless this server is for local benchmarking only"
        );
    }
    let server = Server::build(config).await?;
    let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, strategy = strategy.as_str(), "ready");
    // The one line on stdout: the harness waits for it.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {addr}")?;
    stdout.flush()?;
    drop(stdout);
    server.serve(listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
