//! Rebuilds in one process, as `galley watch` runs them: what the process keeps between rebuilds
//! (parsed sources re-parsed incrementally, Typst's memoised layout, the CSL locales) never changes
//! an output byte. Each in-process rebuild after an edit writes exactly what a fresh process writes.

use std::path::{Path, PathBuf};

use galley::cmd::watch::build_once;
use galley::pipeline::BuildOptions;

use crate::build::copy_dir;
use crate::common::{galley, root, stderr};

/// Every file of an output folder (the cache included), by relative path, with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.push((path.strip_prefix(dir).unwrap().to_path_buf(), bytes));
            }
        }
    }
    files.sort();
    files
}

fn fresh_process_build(study: &Path, out: &Path) {
    let r = galley(
        &[
            "build",
            study.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &root(),
    );
    assert!(r.status.success(), "{}", stderr(&r));
}

fn replace_in(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "`{from}` is not in {}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn in_process_rebuilds_after_edits_write_the_bytes_of_a_fresh_build() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("croome2016");
    copy_dir(&root().join("study/croome2016"), &study);
    let options = BuildOptions {
        out: dir.path().join("watched"),
        ..Default::default()
    };
    build_once(&study, &options).unwrap();

    let prose = (
        "manuscript/discussion.md",
        "In this cohort, ",
        "In this series, ",
    );
    let block = (
        "manuscript/results.md",
        "break_interval = 24\n",
        "break_interval = 12\n",
    );
    for (step, (file, from, to)) in [prose, block].into_iter().enumerate() {
        replace_in(&study.join(file), from, to);
        let report = build_once(&study, &options).unwrap();
        let typeset = report
            .timings
            .iter()
            .find(|(s, _)| s.starts_with("typeset"));
        assert_eq!(
            typeset.map(|(s, _)| s.as_str()),
            Some("typeset"),
            "the edit is re-typeset"
        );
        let fresh = dir.path().join(format!("fresh-{step}"));
        fresh_process_build(&study, &fresh);
        let watched = snapshot(&options.out.join("croome2016"));
        let expected = snapshot(&fresh.join("croome2016"));
        assert_eq!(
            watched.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            expected.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            "after the edit of {file}: the same files"
        );
        for ((path, a), (_, b)) in watched.iter().zip(&expected) {
            assert!(
                a == b,
                "after the edit of {file}: {} differs between the in-process rebuild and a fresh build",
                path.display()
            );
        }
    }
}
