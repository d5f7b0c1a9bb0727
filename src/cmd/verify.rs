//! `galley verify`: rebuild a report from its recorded inputs and compare.

use std::path::Path;

use crate::diagnostics::Failure;

pub fn run(
    output: &Path,
    study: Option<&Path>,
    json: bool,
    limits: &[String],
) -> Result<u8, Failure> {
    let report = crate::audit::verify(output, study, limits)?;
    if json {
        println!("{}", super::diff::json(&report)?);
    } else {
        print!("{report}");
    }
    Ok(report.verdict.exit_code())
}
