//! `galley build` and `galley check`.

use std::path::Path;

use super::cli::BuildArgs;
use super::console::Console;
use super::{parse_date, print_warnings, source_date_epoch};
use crate::diagnostics::Failure;
use crate::pipeline::{self, BuildOptions};

pub fn build(console: Console, args: &BuildArgs, limits: Vec<String>) -> Result<u8, Failure> {
    let as_of = parse_date(args.as_of.as_deref())?;
    let (spinner, progress) = console.spinner("building");
    let options = BuildOptions {
        out: args.out.clone(),
        as_of,
        formats: super::cli::formats(&args.format),
        progress,
        audit: args.audit,
        limits,
        no_cache: args.no_cache,
        deny_warnings: args.deny_warnings,
        source_date_epoch: source_date_epoch(),
    };
    let report = pipeline::build(&args.study, &options);
    drop(spinner);
    let report = report?;
    print_warnings(&report.warnings, false)?;
    // Quiet means quiet except problems: the comparison is a report, not one.
    if let Some(rows) = report.reproduction.as_ref().filter(|_| !console.quiet) {
        eprint!("{}", crate::study::published::summary(rows));
    }
    console.report_build(&report, args.timings);
    Ok(0)
}

pub fn check(
    console: Console,
    study: &Path,
    as_of: Option<&str>,
    deny_warnings: bool,
    limits: &[String],
) -> Result<u8, Failure> {
    let as_of = parse_date(as_of)?;
    let warnings = pipeline::check(study, as_of, limits)?;
    print_warnings(&warnings, deny_warnings)?;
    console.info(format!("{}: ok (nothing written)", study.display()));
    Ok(0)
}
