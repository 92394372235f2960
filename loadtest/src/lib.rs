//! The `authbench` CLI as a library: `main` parses and calls [`main_with`], so tests run the
//! same code in-process.
//!
//! - [`engine`]: the lean closed/open-loop HTTP load engine with nanosecond histograms.
//! - [`flow`]: goose user flows (login, /me, logout), timed by the harness.
//! - [`scenario`]: calibration, steady, sweep and login measurements.
//! - [`harness`]: `run` (owns Redis and the servers), `load` (someone else's server), `serve`.
//! - [`results`]: the versioned `results.json` and its writer.

pub mod cli;
pub mod client;
pub mod engine;
pub mod environment;
pub mod flow;
pub mod harness;
pub mod measure;
pub mod outage;
pub mod process;
pub mod relay;
pub mod results;
pub mod revocation;
pub mod scale;
pub mod scenario;
pub mod suite;
pub mod summary;

use std::process::ExitCode;

use cli::{Cli, Command};

/// Exit code of an interrupted run (128 + SIGINT), as shells expect.
const INTERRUPTED: u8 = 130;

/// Runs a parsed command line and returns the process exit code.
pub fn main_with(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Run(args) => {
            let (quiet, json) = (args.quiet, args.json);
            harness::run(args).map(|f| finish(&f, quiet, json))
        }
        Command::Load(args) => {
            let (quiet, json) = (args.output.quiet, args.output.json);
            harness::load(args).map(|f| finish(&f, quiet, json))
        }
        Command::Serve(args) => harness::serve(args).map(|()| ExitCode::SUCCESS),
        Command::Report { dir } => report(&dir).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("authbench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn finish(finished: &harness::Finished, quiet: bool, json: bool) -> ExitCode {
    let path = finished.dir.join("results.json");
    match results::load(&path) {
        Ok(results) if json => match serde_json::to_string_pretty(&results) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("authbench: {e}"),
        },
        Ok(results) if !quiet => print!("{}", summary::table(&results)),
        Ok(_) => {}
        Err(e) => eprintln!("authbench: {e:#}"),
    }
    if !json {
        println!("results: {}", path.display());
    }
    if finished.interrupted {
        eprintln!("authbench: interrupted; results.json holds what was measured (complete: false)");
        ExitCode::from(INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    }
}

/// `authbench report DIR`: for now the summary table of the results file.
fn report(dir: &std::path::Path) -> anyhow::Result<()> {
    let results = results::load(&dir.join("results.json"))?;
    print!("{}", summary::table(&results));
    Ok(())
}
