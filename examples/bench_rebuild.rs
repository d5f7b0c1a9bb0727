//! Watch-mode rebuild timings: the example study built repeatedly in one process, as `galley watch`
//! rebuilds it (fonts, CSL locales, parsed sources and Typst's memoised layout kept between
//! rebuilds), after a one-sentence prose edit and after a one-block edit. Every edit makes text the
//! process has not seen before (toggling between two versions would let Typst answer the whole
//! document from its cache).
//!
//! ```text
//! cargo run --release --example bench_rebuild -- [RUNS] [STUDY]   # default: 15 study/croome2016
//! ```
//!
//! Prints each scenario's median and minimum wall time and the median of its typeset stage. A
//! benchmark, not a test: nothing here is asserted (the tests check the outputs' bytes).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use galley::cmd::watch::build_once;
use galley::pipeline::{BuildOptions, BuildReport};

/// The file an edit changes, and its new text for a run.
type Edit = fn(usize) -> (&'static str, String);

/// The start of a sentence of the discussion, with a word that differs at every edit.
fn prose(run: usize) -> (&'static str, String) {
    (
        "manuscript/discussion.md",
        format!("In this cohort{}, ", letters(run)),
    )
}

/// One spec value of the Kaplan-Meier block (its figure's axis breaks), different at every edit.
fn block(run: usize) -> (&'static str, String) {
    (
        "manuscript/results.md",
        format!("break_interval = {}\n", 13 + run),
    )
}

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

    let scenarios: [(&str, Edit, &str); 2] = [
        ("prose edit", prose, "In this cohort, "),
        ("block edit", block, "break_interval = 24\n"),
    ];
    for (name, edit, original) in scenarios {
        let mut walls = Vec::new();
        let mut typesets = Vec::new();
        let mut current = original.to_string();
        for run in 0..runs {
            let (file, next) = edit(run);
            replace_in(&study.join(file), &current, &next);
            current = next;
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
    // Typst's caches are evicted between rebuilds: memory stays flat however long watch runs.
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .map_or("?".to_string(), |l| l[name.len()..].trim().to_string())
        };
        println!(
            "memory after {} rebuilds: RSS {}, peak {}",
            2 + 2 * runs,
            field("VmRSS:"),
            field("VmHWM:")
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

fn replace_in(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("the edited file");
    assert!(text.contains(from), "`{}` has no `{from}`", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write the edited file");
}

/// A made-up word for run `n`: "a", "b", ..., "z", "ba", "bb", ...
fn letters(mut n: usize) -> String {
    let mut word = Vec::new();
    loop {
        word.push(b'a' + (n % 26) as u8);
        n /= 26;
        if n == 0 {
            break;
        }
    }
    word.reverse();
    String::from_utf8(word).expect("ASCII")
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
