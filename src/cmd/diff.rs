//! `galley diff`: what changed between two reports.

use std::path::Path;

use crate::diagnostics::{Diagnostic, Failure};

pub fn run(old: &Path, new: &Path, json: bool) -> Result<u8, Failure> {
    let report = crate::audit::diff(old, new)?;
    if json {
        println!("{}", self::json(&report)?);
    } else {
        print!("{report}");
    }
    Ok(0)
}

/// A report as pretty JSON; a value that cannot be written is an error, never an empty line.
pub fn json(value: &impl serde::Serialize) -> Result<String, Failure> {
    serde_json::to_string_pretty(value).map_err(|e| {
        Diagnostic::error(format!("the report could not be written as JSON: {e}")).into()
    })
}
