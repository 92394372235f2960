//! The `authbench` CLI as a library: `main` parses and calls [`main_with`], so tests run the
//! same code in-process.
//!
//! - [`engine`]: the lean closed/open-loop HTTP load engine with nanosecond histograms.
//! - [`flow`]: goose user flows (login, /me, logout), timed by the harness.
//! - [`scenario`]: calibration, steady, sweep and login measurements.
//! - [`harness`]: `run` (owns Redis and the servers), `load` (someone else's server), `serve`.
//! - [`results`]: the versioned `results.json` and its writer.
//! - [`report`]: report.md, report.html and charts rendered from a results file.
//! - [`compare`]: two runs side by side with ratios.

pub mod cli;
pub mod client;
pub mod compare;
pub mod engine;
pub mod environment;
pub mod flow;
pub mod harness;
pub mod measure;
pub mod outage;
pub mod process;
pub mod relay;
pub mod report;
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
        Command::Compare { a, b } => compare::print(&a, &b).map(|()| ExitCode::SUCCESS),
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
    // The report is rendered from the file just written, interrupted or not: it shows what was
    // measured and says what was not.
    let mut code = ExitCode::SUCCESS;
    match report::render(&finished.dir, Some(std::path::Path::new(CRITERION_DIR))) {
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

/// Where `cargo bench` leaves criterion's estimates, relative to the workspace root.
pub const CRITERION_DIR: &str = "target/criterion";

/// `authbench report DIR`: the summary table, then report.md, report.html and charts/.
fn report(dir: &std::path::Path, criterion: &std::path::Path) -> anyhow::Result<()> {
    let results = results::load(&dir.join("results.json"))?;
    print!("{}", summary::table(&results));
    let rendered = report::render(dir, Some(criterion))?;
    println!("report:  {}", rendered.markdown.display());
    println!("report:  {}", rendered.html.display());
    Ok(())
}
