//! galley: a literate, reproducible report generator for clinical research.
//!
//! The source tree is the pipeline, one folder per stage (see `docs/architecture.md`):
//! `study` (the study folder read and validated) -> `analysis` (blocks run into results, figures,
//! tables) -> `document` (templates filled, Markdown read into the typed manuscript) -> `render`
//! (Typst and HTML writers, the PDF typeset) -> `output` (the output folder written atomically).
//! `pipeline` runs those stages as a list of timed steps; `audit` checks built reports; `cmd` is the
//! command line. `records` holds the machine-readable output formats every stage may name, and
//! `diagnostics` the one way problems are reported. A module only uses the stages before it
//! (`tests/suite/architecture.rs` fails on an import cycle).

// Diagnostics are large (message, location, snippet, hints) and travel only on the cold error path;
// boxing them everywhere would cost clarity for no measurable gain.
#![allow(clippy::result_large_err)]

pub mod analysis;
pub mod audit;
pub mod cmd;
pub mod diagnostics;
pub mod document;
pub mod output;
pub mod pipeline;
pub mod random;
pub mod records;
pub mod render;
pub mod simulate;
pub mod study;
