//! `galley simulate`: write a study's simulated data snapshots from its generative spec,
//! `simulation.toml` in the study folder (format: docs/guide.md, "Simulating a cohort").
//!
//! The spec holds the whole model: strata of rows with their sizes, variables drawn in file order
//! (distributions whose parameters may differ by stratum, missingness, derived and conditional
//! variables), latent event and censoring times whose time ratios depend on other variables, child
//! tables built to exact counts, and snapshots: the same rows seen at each cutoff, with follow-up as of
//! that date (`min(event, censoring, cutoff)`). So censoring a later snapshot at an earlier cutoff
//! gives exactly the earlier snapshot. This module knows no clinical domain.
//!
//! - `spec`: the file as written and its checked form, `Model` (located errors);
//! - `draws`: the random numbers (ChaCha8, its stream scheme, uniforms and inverse CDFs);
//! - `model`: drawing the rows and child tables;
//! - `write`: the CSV snapshots, their companion copies and `--check`.

use std::path::{Path, PathBuf};

use crate::diagnostics::{Diagnostic, Result, io_error};

pub mod model;
pub mod spec;
mod write;

pub use crate::random::Draws;
pub use model::{Drawn, Row, Value};
pub use spec::{Model, SPEC_FILE};
pub use write::{Report, run, snapshot_files};

/// `simulation.toml`'s text: a regular file only (a FIFO would hang `simulate`), at most 16 MiB.
pub(crate) fn read_spec(file: &Path) -> Result<String> {
    let bytes = crate::study::read_regular(file, 16 * 1024 * 1024)
        .map_err(|e| io_error("read", file, &e))?
        .map_err(|why| {
            let why = match why {
                crate::study::NotRegular::Kind(kind) => kind.to_string(),
                crate::study::NotRegular::TooBig(_) => "larger than 16 MiB".to_string(),
            };
            Diagnostic::error(format!("cannot read `{}`: it is {why}", file.display()))
                .in_file(file)
        })?;
    String::from_utf8(bytes)
        .map_err(|e| crate::diagnostics::not_utf8(file, e.as_bytes(), e.utf8_error()).into())
}

/// A spec read from a study folder and checked.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub root: PathBuf,
    pub model: Model,
}

impl Simulation {
    /// Read and check `<study>/simulation.toml`.
    pub fn load(study_dir: &Path) -> Result<Simulation> {
        let file = study_dir.join(SPEC_FILE);
        let source = read_spec(&file)?;
        Simulation::parse(study_dir, &source, &file)
    }

    /// Parse and check spec text; `file` locates diagnostics.
    pub fn parse(study_dir: &Path, source: &str, file: &Path) -> Result<Simulation> {
        Ok(Simulation {
            root: study_dir.to_path_buf(),
            model: Model::parse(source, file)?,
        })
    }

    /// Draw the rows and child tables.
    pub fn draw(&self) -> Result<Drawn> {
        self.model.draw(&self.root.join(SPEC_FILE))
    }
}
