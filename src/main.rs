//! The `galley` command: parse arguments, run, print diagnostics once, map the outcome to an exit code.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use galley::cmd::cli::{Cli, Command};
use galley::cmd::console::Console;
use galley::diagnostics::{Diagnostic, Failure};
use galley::pipeline::{self, BuildOptions};

fn main() -> ExitCode {
    let cli = Cli::parse();
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

fn parse_date(text: Option<&str>) -> Result<Option<jiff::civil::Date>, Failure> {
    match text {
        None => Ok(None),
        Some(t) => galley::study::dataset::check_date(t.trim(), None)
            .map(Some)
            .map_err(|expected| {
                Diagnostic::error(format!(
                    "--as-of `{}`: expected {expected}",
                    galley::diagnostics::excerpt(t)
                ))
                .into()
            }),
    }
}

fn print_warnings(warnings: &[Diagnostic], deny: bool) -> Result<(), Failure> {
    for w in warnings {
        eprintln!("{w}\n");
    }
    if deny && !warnings.is_empty() {
        let errors = warnings.iter().cloned().map(|mut w| {
            w.severity = galley::diagnostics::Severity::Error;
            w
        });
        return Err(Failure::new(errors.collect()));
    }
    Ok(())
}

fn run(cli: Cli) -> Result<u8, Failure> {
    let console = Console {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let limits = cli.limits;
    match cli.command {
        Command::Build {
            study,
            out,
            as_of,
            format,
            timings,
            deny_warnings,
            audit,
            no_cache,
        } => {
            let as_of = parse_date(as_of.as_deref())?;
            if deny_warnings {
                let warnings = pipeline::check(&study, as_of, &limits)?;
                print_warnings(&warnings, true)?;
            }
            let (spinner, progress) = console.spinner("building");
            let options = BuildOptions {
                out,
                as_of,
                formats: galley::cmd::cli::formats(&format),
                progress,
                audit,
                limits,
                no_cache,
            };
            let report = pipeline::build(&study, &options);
            drop(spinner);
            let report = report?;
            print_warnings(&report.warnings, false)?;
            // Quiet means quiet except problems: the comparison is a report, not one.
            if let Some(rows) = report.reproduction.as_ref().filter(|_| !console.quiet) {
                eprint!("{}", galley::study::published::summary(rows));
            }
            console.report_build(&report, timings);
            Ok(0)
        }
        Command::New { path, template } => {
            let files = galley::cmd::scaffold::new_study(&path, &template)?;
            if !console.quiet {
                println!("created the study {}:", path.display());
                for f in &files {
                    println!("  {}", f.display());
                }
                println!(
                    "\nnext: galley build {0}        (writes output/{1}/manuscript.pdf)\n      galley watch {0} --serve  (live preview in the browser)",
                    path.display(),
                    path.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                );
            }
            Ok(0)
        }
        Command::Watch {
            study,
            out,
            as_of,
            format,
            serve,
            port,
        } => {
            let as_of = parse_date(as_of.as_deref())?;
            galley::cmd::watch::watch(galley::cmd::watch::WatchOptions {
                study,
                build: BuildOptions {
                    out,
                    as_of,
                    formats: galley::cmd::cli::formats(&format),
                    progress: None,
                    audit: false,
                    limits,
                    no_cache: false,
                },
                serve: serve.then_some(port),
                console,
            })?;
            Ok(0)
        }
        Command::Check {
            study,
            as_of,
            deny_warnings,
        } => {
            let as_of = parse_date(as_of.as_deref())?;
            let warnings = pipeline::check(&study, as_of, &limits)?;
            print_warnings(&warnings, deny_warnings)?;
            console.info(format!("{}: ok (nothing written)", study.display()));
            Ok(0)
        }
        Command::Analyze { data, block } => {
            let value = galley::cmd::analyze::analyze(&data, &block, &limits)?;
            let mut out = std::io::stdout().lock();
            let _ = serde_json::to_writer_pretty(&mut out, &value);
            let _ = writeln!(out);
            Ok(0)
        }
        Command::Verify {
            output,
            study,
            json,
        } => {
            let report = galley::audit::verify(&output, study.as_deref(), &limits)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{report}");
            }
            Ok(report.verdict.exit_code())
        }
        Command::Diff { old, new, json } => {
            let report = galley::audit::diff(&old, &new)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{report}");
            }
            Ok(0)
        }
        Command::Simulate {
            study,
            check,
            companion,
        } => {
            let report = galley::simulate::run(&study, check, &companion)?;
            for (folder, cutoff) in &report.written {
                let verb = if check { "up to date" } else { "wrote" };
                console.info(format!(
                    "{verb} {}/{folder} (cutoff {cutoff})",
                    study.display()
                ));
            }
            Ok(0)
        }
    }
}
