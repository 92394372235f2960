//! The `authbench` CLI as a library: `main` parses and calls [`main_with`], so tests run the
//! same code in-process.
//!
//! # Layout
//!
//! Measurement flows one way, and imports point down this list (a test reads the module graph
//! and fails on an import that points up):
//!
//! - `results`: the `results.json` schema, its writer and reader. Imports nothing else of the
//!   crate; every record type lives here.
//! - `plan`: what to measure, as data (suites, variants, scenarios, the time estimate). No I/O.
//! - `cli`: clap and the TOML file, validated into the typed configs of `plan`.
//! - `engine`: load generation: the pacer, the one HTTP/1 connection type, closed and open loop.
//! - `observe`: what is read from outside the processes: `/proc`, Redis `INFO`, the delaying
//!   relay, the environment, a typed `/capabilities` client.
//! - `process`: the `authbench-server` children (start on a free port, stop on drop).
//! - `scenario`: one file per scenario; each runs a measurement and returns records.
//! - `harness`: owns processes, Redis and the results writer: `run`, `load`, `serve`. The
//!   orchestration talks to a `Fleet`, so it is tested over a fake one in milliseconds.
//! - `present`: everything that renders [`results::Results`]: the one units module, terminal
//!   lines and tables, `compare`, and the report (Markdown, HTML, charts, guide).

mod cli;
mod engine;
mod harness;
mod observe;
mod plan;
mod present;
mod process;
pub mod results;
mod scenario;

use std::path::Path;
use std::process::ExitCode;

use cli::CRITERION_DIR;
pub use cli::{Cli, Command};
pub use engine::{
    CONNECTION_CEILING, Credentials, Keep, LoadOutcome, LoadSpec, Population, RequestTemplate, Schedule,
    run as run_load,
};
pub use harness::Finished;
pub use present::compare::{compare, compare_paths};
pub use present::report::render as render_report;
pub use process::{ServerProcess, server_binary};
pub use scenario::outage::{OutagePlan, OutageStore, OutageTarget, run as run_outage};
pub use scenario::revocation::{
    Design as RevocationDesign, Pair, ProbePlan, design_at as revocation_design, measure as measure_revocation,
    summarize as summarize_revocation,
};

/// Exit code of an interrupted run (128 + SIGINT), as shells expect.
const INTERRUPTED: u8 = 130;

/// Runs a parsed command line and returns the process exit code.
pub fn main_with(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Run(args) => {
            let (quiet, json) = (args.quiet, args.json);
            args.into_config().and_then(harness::run).map(|f| finish(&f, quiet, json))
        }
        Command::Load(args) => {
            let (quiet, json) = (args.output.quiet, args.output.json);
            args.into_config().and_then(harness::load).map(|f| finish(&f, quiet, json))
        }
        Command::Serve(args) => args.into_config().and_then(harness::serve).map(|()| ExitCode::SUCCESS),
        Command::Compare { a, b } => present::compare::print(&a, &b).map(|()| ExitCode::SUCCESS),
        Command::Report { dir, criterion } => report(&dir, &criterion).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("authbench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn finish(finished: &Finished, quiet: bool, json: bool) -> ExitCode {
    let path = finished.dir.join("results.json");
    match results::load(&path) {
        Ok(results) if json => match serde_json::to_string_pretty(&results) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("authbench: {e}"),
        },
        Ok(results) if !quiet => print!("{}", present::terminal::table(&results)),
        Ok(_) => {}
        Err(e) => eprintln!("authbench: {e:#}"),
    }
    if !json {
        println!("results: {}", path.display());
    }
    // The report is rendered from the file just written, interrupted or not: it shows what was
    // measured and says what was not.
    let mut code = ExitCode::SUCCESS;
    match present::report::render(&finished.dir, Some(Path::new(CRITERION_DIR))) {
        Ok(rendered) if !json => {
            println!("report:  {}", rendered.markdown.display());
            println!("report:  {}", rendered.html.display());
        }
        Ok(_) => {}
        Err(e) => {
            eprintln!(
                "authbench: the report could not be rendered ({e:#}); results.json is complete, retry with `authbench report {}`",
                finished.dir.display()
            );
            code = ExitCode::FAILURE;
        }
    }
    if finished.interrupted {
        eprintln!("authbench: interrupted; results.json holds what was measured (complete: false)");
        ExitCode::from(INTERRUPTED)
    } else {
        code
    }
}

/// `authbench report DIR`: the summary table, then report.md, report.html and charts/.
fn report(dir: &Path, criterion: &Path) -> anyhow::Result<()> {
    let results = results::load(&dir.join("results.json"))?;
    print!("{}", present::terminal::table(&results));
    let rendered = present::report::render(dir, Some(criterion))?;
    println!("report:  {}", rendered.markdown.display());
    println!("report:  {}", rendered.html.display());
    Ok(())
}
