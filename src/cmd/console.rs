//! What the commands say on the terminal: progress while a build runs (a spinner naming the stage, on a
//! terminal only, never with `--quiet`), what was written and where, and with `--verbose` the time each
//! stage took. Diagnostics go to stderr, what was written to stdout.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::pipeline::{BuildReport, Progress};

#[derive(Debug, Clone, Copy, Default)]
pub struct Console {
    pub quiet: bool,
    pub verbose: bool,
}

/// A running spinner; cleared when dropped.
pub struct Spinner(Option<ProgressBar>);

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}

impl Console {
    /// A spinner that shows the current stage, when stderr is a terminal and not `--quiet`; with it,
    /// the pipeline's progress callback.
    pub fn spinner(&self, what: &str) -> (Spinner, Option<Progress>) {
        if self.quiet || !std::io::stderr().is_terminal() {
            return (Spinner(None), None);
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        let shown = bar.clone();
        let progress = Progress(Arc::new(move |stage: &str| {
            shown.set_message(stage_message(stage));
        }));
        (Spinner(Some(bar)), Some(progress))
    }

    /// A line about what was done (stdout), unless `--quiet`.
    pub fn info(&self, line: impl AsRef<str>) {
        if !self.quiet {
            println!("{}", line.as_ref());
        }
    }

    /// What a build wrote, and with `--verbose` (or `timings`) how long each stage took.
    pub fn report_build(&self, report: &BuildReport, timings: bool) {
        if timings || self.verbose {
            eprint!("{}", format_timings(report));
        }
        if self.quiet {
            return;
        }
        for line in written_lines(report) {
            println!("{line}");
        }
    }
}

/// The stage as a message: "typesetting the PDF" rather than "typeset".
fn stage_message(stage: &str) -> String {
    match stage {
        "load study" => "reading study.toml".into(),
        "load data" => "reading and checking the data".into(),
        "parse manuscript" => "reading the manuscript".into(),
        "analysis" => "running the analysis blocks".into(),
        "render" => "filling in the numbers".into(),
        "typeset" => "typesetting the PDF".into(),
        "html" => "writing the HTML page".into(),
        "write" | "write (during typeset)" => "writing the outputs".into(),
        other => other.to_string(),
    }
}

/// One line per stage and the total (the build's wall time: stages overlap), aligned.
pub fn format_timings(report: &BuildReport) -> String {
    // Per-block lines are indented parts of "analysis": not added again.
    let sum: Duration = report
        .timings
        .iter()
        .filter(|(stage, _)| !stage.starts_with(' '))
        .map(|(_, d)| *d)
        .sum();
    let total = if report.total.is_zero() {
        sum.as_secs_f64()
    } else {
        report.total.as_secs_f64()
    };
    let mut s = String::new();
    for (stage, d) in &report.timings {
        s.push_str(&format!("{:>10.1} ms  {stage}\n", d.as_secs_f64() * 1000.0));
    }
    s.push_str(&format!("{:>10.1} ms  total\n", total * 1000.0));
    s.push_str(&format!(
        "blocks: {} run, {} from the cache\n",
        report.blocks_run.len(),
        report.blocks_cached.len()
    ));
    s
}

/// "wrote output/x/manuscript.pdf" for each manuscript, then the rest of the folder in one line.
pub fn written_lines(report: &BuildReport) -> Vec<String> {
    let dir = display(&report.output_dir);
    let mut lines = Vec::new();
    for main in ["manuscript.pdf", "manuscript.html"] {
        if report.files.iter().any(|f| f == main) {
            lines.push(format!("wrote {dir}/{main}"));
        }
    }
    let others: Vec<&str> = report
        .files
        .iter()
        .map(String::as_str)
        .filter(|f| !f.starts_with("manuscript.") || *f == "manuscript.typ")
        .filter(|f| !f.contains('/'))
        .collect();
    let nested = report.files.iter().filter(|f| f.contains('/')).count();
    let mut rest = others.join(", ");
    if nested > 0 {
        rest.push_str(&format!(
            " and {nested} figure and table file{}",
            if nested == 1 { "" } else { "s" }
        ));
    }
    lines.push(format!("  with {rest} in {dir}/"));
    lines
}

fn display(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}
