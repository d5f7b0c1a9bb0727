//! `galley simulate`: regenerate a study's simulated data from its `simulation.toml`.

use std::path::Path;

use super::console::Console;
use crate::diagnostics::Failure;

pub fn run(
    console: Console,
    study: &Path,
    check: bool,
    companion: &[std::path::PathBuf],
) -> Result<u8, Failure> {
    let report = crate::simulate::run(study, check, companion)?;
    for (folder, cutoff) in &report.written {
        let verb = if check { "up to date" } else { "wrote" };
        console.info(format!(
            "{verb} {}/{folder} (cutoff {cutoff})",
            study.display()
        ));
    }
    Ok(0)
}
