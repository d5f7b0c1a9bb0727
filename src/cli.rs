//! Command-line interface (clap derive). `main.rs` dispatches; the work is in the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "galley",
    version,
    about = "Literate, reproducible reports for clinical research: a study folder in, a manuscript PDF out.",
    long_about = "galley reads a study folder (study.toml, CSV data, Markdown manuscript with analysis blocks), \
validates the data, runs every analysis block, fills the numbers into the prose and typesets a manuscript PDF, \
with machine-readable results beside it. The same inputs always give the same bytes."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a study: validate, analyse, render and typeset to <out>/<study>/manuscript.pdf.
    Build {
        /// The study folder (holding study.toml).
        study: PathBuf,
        /// Output root; the study's outputs go to <out>/<study-folder-name>/.
        #[arg(long, default_value = "output")]
        out: PathBuf,
        /// Data cutoff (YYYY-MM-DD) overriding the manifest's: survival is censored at this date.
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
        /// Print the time each stage took.
        #[arg(long)]
        timings: bool,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Validate the manifest, the data and the manuscript and run the analysis, writing nothing.
    Check {
        /// The study folder (holding study.toml).
        study: PathBuf,
        /// Data cutoff (YYYY-MM-DD) overriding the manifest's.
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Rebuild a report from the inputs its provenance record names, in a temporary folder, and compare.
    ///
    /// Exit code: 0 identical; 2 inputs changed since the build; 3 the same inputs gave different
    /// outputs (a determinism bug); 4 outputs were altered after the build; 1 verification impossible.
    Verify {
        /// A report's output folder (holding provenance.json), e.g. output/croome2016.
        output: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List what changed between two versions of a report: inputs, block results, every reported value.
    Diff {
        /// The earlier report's output folder.
        old: PathBuf,
        /// The later report's output folder.
        new: PathBuf,
        /// Print the differences as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run one analysis block on one CSV file and print its result as JSON.
    Analyze {
        /// The CSV file (column types are inferred: integer, number, date, else categorical).
        #[arg(long)]
        data: PathBuf,
        /// A TOML file holding one analysis block spec (`id`, `kind`, and the kind's fields).
        #[arg(long)]
        block: PathBuf,
    },
    /// Write a study's simulated data snapshots from its generative spec (simulation.toml).
    Simulate {
        /// The study folder (holding simulation.toml).
        study: PathBuf,
        /// Write nothing; fail if the data files on disk differ from what the spec generates.
        #[arg(long)]
        check: bool,
    },
}
