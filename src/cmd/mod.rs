//! The command line: one file per subcommand. This folder is the only place that reads the process
//! environment or prints; the stages below it take their configuration as values and return their
//! warnings with their results (`diagnostics::Warned`).

pub mod analyze;
mod build;
pub mod cli;
pub mod console;
mod diff;
pub mod scaffold;
pub mod serve;
mod simulate;
mod verify;
pub mod watch;

use std::process::ExitCode;

use crate::diagnostics::{Diagnostic, Failure};
use cli::{Cli, Command};
use console::Console;

/// Run a parsed command line; print the failure, if any, once; map the outcome to an exit code.
pub fn main(cli: Cli) -> ExitCode {
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("{failure}");
            let n = failure.error_count();
            eprintln!(
                "\nerror: {} problem{} found; nothing was written",
                n,
                if n == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<u8, Failure> {
    let console = Console {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let limits = cli.limits;
    match cli.command {
        Command::Build(args) => build::build(console, &args, limits),
        Command::Check {
            study,
            as_of,
            deny_warnings,
        } => build::check(console, &study, as_of.as_deref(), deny_warnings, &limits),
        Command::Watch {
            study,
            out,
            as_of,
            format,
            serve,
            port,
        } => {
            let as_of = parse_date(as_of.as_deref())?;
            watch::watch(watch::WatchOptions {
                study,
                build: crate::pipeline::BuildOptions {
                    out,
                    as_of,
                    formats: cli::formats(&format),
                    limits,
                    source_date_epoch: source_date_epoch(),
                    ..Default::default()
                },
                serve: serve.then_some(port),
                console,
            })?;
            Ok(0)
        }
        Command::New { path, template } => scaffold::run(console, &path, &template),
        Command::Analyze { data, block } => analyze::run(&data, &block, &limits),
        Command::Verify {
            output,
            study,
            json,
        } => verify::run(&output, study.as_deref(), json, &limits),
        Command::Diff { old, new, json } => diff::run(&old, &new, json),
        Command::Simulate {
            study,
            check,
            companion,
        } => simulate::run(console, &study, check, &companion),
    }
}

/// `SOURCE_DATE_EPOCH` from the environment (read here, passed down as a value).
fn source_date_epoch() -> Option<String> {
    std::env::var("SOURCE_DATE_EPOCH").ok()
}

fn parse_date(text: Option<&str>) -> Result<Option<jiff::civil::Date>, Failure> {
    match text {
        None => Ok(None),
        Some(t) => crate::study::dataset::check_date(t.trim(), None)
            .map(Some)
            .map_err(|expected| {
                Diagnostic::error(format!(
                    "--as-of `{}`: expected {expected}",
                    crate::diagnostics::excerpt(t)
                ))
                .into()
            }),
    }
}

/// Print warnings; with `deny`, they are the command's errors (printed by `main`, not here).
fn print_warnings(warnings: &[Diagnostic], deny: bool) -> Result<(), Failure> {
    if deny && !warnings.is_empty() {
        return Err(Failure::new(
            warnings
                .iter()
                .cloned()
                .map(Diagnostic::into_error)
                .collect(),
        ));
    }
    for w in warnings {
        eprintln!("{w}\n");
    }
    Ok(())
}
