//! Command-line interface (clap derive). `cmd` dispatches; the work is in the stages.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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
    /// Print only errors and warnings (no progress, no list of what was written, no published-versus-reproduced table).
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also print how long each stage of a build took.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// Set a resource limit of build, check, watch, verify and analyze, over the manifest's [limits]; repeatable.
    /// Names: input_file_mb, table_rows, markdown_depth, template_seconds, bootstrap_replicates
    /// (see docs/guide.md, "Resource limits").
    #[arg(long = "limit", global = true, value_name = "NAME=VALUE")]
    pub limits: Vec<String>,
}

/// A manuscript format `--format` can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// manuscript.pdf, typeset by Typst.
    Pdf,
    /// manuscript.html: one self-contained page (inline SVG figures, embedded CSS).
    Html,
}

/// `--format pdf,html` as the pipeline's formats.
pub fn formats(list: &[Format]) -> crate::pipeline::Formats {
    crate::pipeline::Formats {
        pdf: list.contains(&Format::Pdf),
        html: list.contains(&Format::Html),
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a study: validate, analyse, render and typeset to <out>/<study>/manuscript.pdf.
    Build(BuildArgs),
    /// Create a new study folder with a small working example: `galley new study/demo`.
    ///
    /// The study (manifest, simulated data with its schema, manuscript with analysis blocks,
    /// bibliography) builds at once with `galley build <path>`. An existing folder is never touched.
    New {
        /// The folder to create; its name is the study's name (outputs go to output/<name>/).
        path: PathBuf,
        /// The kind of study to start from.
        #[arg(long, default_value = "cohort-survival")]
        template: String,
    },
    /// Rebuild a study on every change to its folder; with --serve, show it in the browser, live.
    ///
    /// Build errors are printed (and shown in the page) and the watch goes on. Stop it with Ctrl-C.
    Watch {
        /// The study folder (holding study.toml).
        study: PathBuf,
        /// Output root; the study's outputs go to <out>/<study-folder-name>/.
        #[arg(long, default_value = "output")]
        out: PathBuf,
        /// Data cutoff (YYYY-MM-DD) overriding the manifest's.
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
        /// Manuscript formats to write on each rebuild (html is added with --serve).
        #[arg(long, value_enum, value_delimiter = ',', default_value = "pdf")]
        format: Vec<Format>,
        /// Serve the HTML manuscript on http://127.0.0.1:<port>/ and reload the page on every rebuild.
        #[arg(long)]
        serve: bool,
        /// Port for --serve (on 127.0.0.1 only); 0 picks a free one.
        #[arg(long, default_value_t = 8000)]
        port: u16,
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
        /// The study folder to rebuild from (default: the one the record locates from the output
        /// folder, if it lies beside the output root; see docs/security.md).
        #[arg(long, value_name = "DIR")]
        study: Option<PathBuf>,
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
        /// A companion study folder that the spec's `copies` may write into (the only place outside the
        /// study folder galley simulate writes; repeat for several).
        #[arg(long, value_name = "FOLDER")]
        companion: Vec<PathBuf>,
    },
}

/// The arguments of `galley build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The study folder (holding study.toml).
    pub study: PathBuf,
    /// Output root; the study's outputs go to <out>/<study-folder-name>/.
    #[arg(long, default_value = "output")]
    pub out: PathBuf,
    /// Data cutoff (YYYY-MM-DD) overriding the manifest's: survival is censored at this date.
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Manuscript formats to write, comma-separated: pdf, html.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "pdf")]
    pub format: Vec<Format>,
    /// Print the time each stage took (as --verbose).
    #[arg(long)]
    pub timings: bool,
    /// Treat warnings as errors.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Add an audit-trail appendix to the manuscript (PDF and HTML); every templated number links to its entry.
    #[arg(long)]
    pub audit: bool,
    /// Reuse nothing of the previous build (block results, PDF): run every block and typeset.
    #[arg(long)]
    pub no_cache: bool,
}
