//! Watch-mode rebuild timings: the example study built repeatedly in one process, as `galley watch`
//! rebuilds it (fonts, CSL locales, parsed sources and Typst's memoised layout kept between
//! rebuilds), after a one-sentence prose edit and after a one-block edit.
//!
//! ```text
//! cargo run --release --example bench_rebuild -- [RUNS] [STUDY]   # default: 15 study/croome2016
//! ```
//!
//! Prints each scenario's median and minimum wall time and the median of its typeset stage. A
//! benchmark, not a test: nothing here is asserted (the tests check the outputs' bytes).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use galley::pipeline::{BuildOptions, BuildReport};
use galley::watch::build_once;

/// A sentence of the discussion, toggled between two wordings.
const PROSE: (&str, &str, &str) = (
    "manuscript/discussion.md",
    "In this cohort, ",
    "In this series, ",
);
/// One spec value of the Kaplan-Meier block (its figure's axis breaks), toggled.
const BLOCK: (&str, &str, &str) = (
    "manuscript/results.md",
    "break_interval = 24\n",
    "break_interval = 12\n",
);

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map_or(15, |a| a.parse().expect("RUNS"));
    let source = PathBuf::from(args.next().unwrap_or_else(|| "study/croome2016".into()));
    let work = tempfile::tempdir().expect("a temporary folder");
    let study = work
        .path()
        .join(source.file_name().expect("a study folder"));
    copy_dir(&source, &study);
    let options = BuildOptions {
        out: work.path().join("out"),
        ..Default::default()
    };

    let (first, report) = timed(&study, &options);
    println!(
        "first build in the process (cold: no output folder): {:.1} ms (typeset {:.1} ms)",
        ms(first),
        ms(typeset(&report))
    );
    let (unchanged, _) = timed(&study, &options);
    println!("rebuild, nothing changed: {:.1} ms", ms(unchanged));

    for (name, edit) in [("prose edit", PROSE), ("block edit", BLOCK)] {
        let mut walls = Vec::new();
        let mut typesets = Vec::new();
        for _ in 0..runs {
            toggle(&study, edit);
            let (wall, report) = timed(&study, &options);
            walls.push(wall);
            typesets.push(typeset(&report));
        }
        println!(
            "rebuild after a {name}: median {:.1} ms, min {:.1} ms (typeset median {:.1} ms), {runs} runs",
            ms(median(&mut walls)),
            ms(*walls.iter().min().unwrap()),
            ms(median(&mut typesets)),
        );
    }
}

fn timed(study: &Path, options: &BuildOptions) -> (Duration, BuildReport) {
    let start = Instant::now();
    let report = build_once(study, options).unwrap_or_else(|f| panic!("{f}"));
    (start.elapsed(), report)
}

fn typeset(report: &BuildReport) -> Duration {
    report
        .timings
        .iter()
        .filter(|(stage, _)| stage.starts_with("typeset"))
        .map(|(_, d)| *d)
        .sum()
}

/// Swap the edit's two wordings in its file (whichever is present).
fn toggle(study: &Path, (file, a, b): (&str, &str, &str)) {
    let path = study.join(file);
    let text = std::fs::read_to_string(&path).expect("the edited file");
    let edited = if text.contains(a) {
        text.replacen(a, b, 1)
    } else {
        assert!(text.contains(b), "`{file}` has neither `{a}` nor `{b}`");
        text.replacen(b, a, 1)
    };
    std::fs::write(&path, edited).expect("write the edited file");
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the study copy");
    for entry in std::fs::read_dir(from).expect("read the study folder") {
        let entry = entry.expect("a folder entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a study file");
        }
    }
}
