//! Hostile or broken inputs of a study folder (issue 15, rows 8, 9, 11, 13, 14): every file galley
//! reads is refused unless it is a regular file; CSV headers, cells, dates and numbers get a located,
//! specific message from `check`; diagnostics stay bounded; CSV files galley writes cannot carry a
//! spreadsheet formula; `-q` is quiet.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{stderr, stdout};

/// A fresh copy of the study `galley new` writes, in its own temporary folder.
fn new_study() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["new", "s"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let study = dir.path().join("s");
    (dir, study)
}

/// Run galley in `cwd`; a run that has not ended after two minutes is a hang (the bug some tests
/// guard against), so it is killed and the test fails instead of blocking the suite.
fn run(args: &[&str], cwd: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_galley"))
        .args(args)
        .current_dir(cwd)
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("galley runs");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            panic!("galley {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// `galley check s` in the study's parent folder: must fail with every fragment in its stderr.
fn check_fails(study: &Path, fragments: &[&str]) -> String {
    let out = run(&["check", "s"], study.parent().unwrap());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "check should fail:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    for f in fragments {
        assert!(err.contains(f), "expected `{f}` in:\n{err}");
    }
    err
}

fn write(study: &Path, rel: &str, text: impl AsRef<[u8]>) {
    std::fs::write(study.join(rel), text).unwrap();
}

fn read(study: &Path, rel: &str) -> String {
    std::fs::read_to_string(study.join(rel)).unwrap()
}

/// Replace `from` by `to` in a file of the study (once; it must be there).
fn edit(study: &Path, rel: &str, from: &str, to: &str) {
    let text = read(study, rel);
    assert!(text.contains(from), "`{from}` not in {rel}");
    write(study, rel, text.replacen(from, to, 1));
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let ok = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(ok.success());
}

// Row 8 -------------------------------------------------------------------------------------------

/// Every file a study names, and `study.toml` itself, as a FIFO: refused as "not a regular file"
/// by `check` and `build` (before, `study.toml` as a FIFO hung both forever), and `simulate`.
#[cfg(unix)]
#[test]
fn a_fifo_in_place_of_any_input_is_refused_not_waited_for() {
    let (_dir, study) = new_study();
    edit(
        &study,
        "study.toml",
        "[manuscript]\n",
        "[manuscript]\npublished = \"published.toml\"\nprevious = \"prev\"\n",
    );
    std::fs::create_dir(study.join("prev")).unwrap();
    for rel in [
        "study.toml",
        "data/patients.csv",
        "manuscript/main.md",
        "manuscript/abstract.md",
        "published.toml",
        "prev/provenance.json",
        "references.bib",
    ] {
        let saved = study.join(rel).exists().then(|| read(&study, rel));
        mkfifo(&study.join(rel));
        for args in [&["check", "s"][..], &["build", "s", "--out", "o"]] {
            let command = args[0];
            let out = run(args, study.parent().unwrap());
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{command} {rel}:\n{err}");
            assert!(
                err.contains("FIFO") && err.contains("not a regular file")
                    || err.contains("expected a regular file"),
                "{command} {rel}:\n{err}"
            );
        }
        std::fs::remove_file(study.join(rel)).unwrap();
        if let Some(text) = saved {
            write(&study, rel, text);
        }
    }
    mkfifo(&study.join("simulation.toml"));
    let out = run(&["simulate", "s"], study.parent().unwrap());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
}
