//! `authbench`: parses the command line and hands it to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    authbench::main_with(authbench::Cli::parse())
}
