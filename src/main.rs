//! The `galley` command: parse the arguments and hand them to `cmd`, which runs the command, prints
//! its diagnostics once and says which exit code ends the process.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    galley::cmd::main(galley::cmd::cli::Cli::parse())
}
