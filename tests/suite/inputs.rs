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

// Row 9 -------------------------------------------------------------------------------------------

/// A column named twice in a CSV header is an error on line 1 naming both positions, also when
/// the names differ only by spaces or a byte order mark (before, the second was silently ignored).
#[test]
fn a_column_named_twice_in_the_header_is_an_error_naming_both() {
    for (header_end, cells) in [
        (",died", ",yes"),
        (", died ", ",no"),
        (",\u{feff}died", ",no"),
    ] {
        let (_dir, study) = new_study();
        let csv = read(&study, "data/patients.csv");
        let mut lines: Vec<String> = csv.lines().map(str::to_string).collect();
        lines[0].push_str(header_end);
        for l in &mut lines[1..] {
            l.push_str(cells);
        }
        write(&study, "data/patients.csv", lines.join("\n") + "\n");
        check_fails(
            &study,
            &[
                "column `died` appears twice in the header: as column 8 and as column 9",
                "data/patients.csv:1:9",
            ],
        );
    }
}

// Row 11 ------------------------------------------------------------------------------------------

/// Category levels and labels that a spreadsheet would evaluate reach `tables/*.csv` with a
/// leading `'`; numbers (negative ones too) stay numbers.
#[test]
fn spreadsheet_formulas_in_levels_are_neutralised_in_the_tables_galley_writes() {
    let (dir, study) = new_study();
    edit(
        &study,
        "study.toml",
        "levels = [\"I\", \"II\", \"III\"], label = \"Stage\"",
        "levels = [\"=2+5\", \"@SUM(1+1)\", \"+Stage\"], label = \"Stage\"",
    );
    edit(
        &study,
        "study.toml",
        "levels = [\"female\", \"male\"]",
        "levels = [\"-1+2\", \"male\"]",
    );
    // The Cox table's own labels: one a formula after a tab, one the level as it is.
    edit(
        &study,
        "manuscript/main.md",
        "sex = \"Sex\", \"sex=female\" = \"Female\"",
        "sex = \"\\t@Sex\", \"sex=-1+2\" = \"-1+2\"",
    );
    let csv = read(&study, "data/patients.csv")
        .replace(",III,", ",+Stage,")
        .replace(",II,", ",@SUM(1+1),")
        .replace(",I,", ",=2+5,")
        .replace(",female,", ",-1+2,");
    write(&study, "data/patients.csv", csv);
    let out = run(&["build", "s", "--out", "o", "-q"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let cox = std::fs::read_to_string(dir.path().join("o/s/tables/cox.csv")).unwrap();
    for line in ["'=2+5,", "'@SUM(1+1),", "'+Stage,", "'-1+2,", "'\t@Sex,"] {
        assert!(cox.contains(line), "`{line}` not in:\n{cox}");
    }
    let mut cells = 0;
    for field in cox.split([',', '\n']) {
        let field = field.trim_matches('"');
        if field.starts_with(['=', '+', '@', '\t', '\r']) {
            panic!("a formula cell `{field}` in:\n{cox}");
        }
        if field.starts_with('-') {
            assert!(field.parse::<f64>().is_ok(), "`{field}` in:\n{cox}");
        }
        cells += 1;
    }
    assert!(cells > 10);
}

// Row 13 ------------------------------------------------------------------------------------------

/// A CSV of a million columns and one of five 2 MB cells: the error text stays small (a cap on
/// the problems per file with "… and N more", a cap on each echoed value). Before, 71 MB and
/// 10 MB of text.
#[test]
fn diagnostics_stay_bounded_whatever_the_input() {
    let (_dir, study) = new_study();
    let csv = read(&study, "data/patients.csv");
    let mut wide = String::new();
    for i in 0..1_000_000 {
        wide.push_str(&format!("c{i},"));
    }
    wide.push_str("id\nx\n");
    write(&study, "data/patients.csv", &wide);
    let err = check_fails(
        &study,
        &[
            "is missing from the file (the header has: c0, c1,",
            "… and 999981 more)",
            "more problem",
        ],
    );
    assert!(err.len() < 64 * 1024, "{} bytes of diagnostics", err.len());

    let big = "9".repeat(2 << 20) + "x";
    let mut lines: Vec<String> = csv.lines().map(str::to_string).collect();
    for line in &mut lines[1..6] {
        *line = line
            .replacen(",yes", &format!(",{big}"), 1)
            .replacen(",no", &format!(",{big}"), 1);
    }
    write(&study, "data/patients.csv", lines.join("\n") + "\n");
    let err = check_fails(&study, &["more characters)"]);
    assert!(err.len() < 64 * 1024, "{} bytes of diagnostics", err.len());

    // A manifest value echoed, on a line of megabytes: the message and the line shown are cut.
    write(&study, "data/patients.csv", &csv);
    edit(
        &study,
        "study.toml",
        "cutoff = 2023-06-30",
        &format!("cutoff = \"{big}\""),
    );
    let err = check_fails(&study, &["`study.cutoff` is `9999", "more characters)"]);
    assert!(err.len() < 16 * 1024, "{} bytes of diagnostics", err.len());
}
