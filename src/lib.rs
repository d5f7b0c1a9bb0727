//! galley: a literate, reproducible report generator for clinical research.
//!
//! The build is a pipeline of typed stages (see `pipeline.rs`):
//! `Study` (manifest + files) -> `Dataset`s -> `Document` (prose + analysis blocks) -> `Analysis`
//! (results, figures, tables) -> Typst sources -> PDF -> output folder.

// Diagnostics are large (message, location, snippet, hints) and travel only on the cold error path;
// boxing them everywhere would cost clarity for no measurable gain.
#![allow(clippy::result_large_err)]

pub mod analysis;
pub mod analyze;
pub mod artifacts;
pub mod audit;
pub mod bibliography;
pub mod cache;
pub mod cli;
pub mod console;
pub mod dataset;
pub mod diagnostics;
pub mod document;
pub mod format;
pub mod html;
pub mod limits;
pub mod links;
pub mod manifest;
pub mod manuscript;
pub mod output;
pub mod pipeline;
pub mod reproduction;
pub mod sandbox;
pub mod scaffold;
pub mod serve;
pub mod simulate;
pub mod study;
pub mod template;
pub mod trail;
pub mod typeset;
pub mod watch;
