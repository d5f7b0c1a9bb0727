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

// Row 14 ------------------------------------------------------------------------------------------

/// The study's CSV with cell `from` of the first data row (column `enrolled` or `age`) replaced.
fn with_cell(study: &Path, from: &str, to: &str) {
    let csv = read(study, "data/patients.csv");
    let (header, rest) = csv.split_once('\n').unwrap();
    let (first, others) = rest.split_once('\n').unwrap();
    assert!(first.contains(from), "{first}");
    let first = first.replacen(from, to, 1);
    write(
        study,
        "data/patients.csv",
        format!("{header}\n{first}\n{others}"),
    );
}

/// Dates: a day or month that does not exist, a time, a year outside the allowed range each get
/// their own reason, located at the cell; the valid leap day passes.
#[test]
fn dates_say_what_is_wrong_with_them() {
    let (_dir, study) = new_study();
    let original = read(&study, "data/patients.csv");
    for (cell, reason) in [
        ("2015-02-30", "there is no day 30 in February 2015"),
        ("2015-02-29", "there is no day 29 in February 2015"),
        ("2015-13-01", "there is no month 13"),
        ("2015-04-31", "there is no day 31 in April 2015"),
        ("2015-02-01T10:00", "YYYY-MM-DD, without a time"),
        ("2015-02-01 10:00:00", "YYYY-MM-DD, without a time"),
        (
            "0000-05-18",
            "a date in the years 0001 to 9999 (year 0000 is outside them",
        ),
        ("0000-00-00", "there is no month 0"),
        ("18/05/2020", "expected a date as YYYY-MM-DD"),
    ] {
        write(&study, "data/patients.csv", &original);
        with_cell(&study, "2018-01-01", cell);
        check_fails(
            &study,
            &[
                &format!("column `enrolled`: found `{cell}`, expected"),
                reason,
                "data/patients.csv:2:6",
            ],
        );
    }
    write(&study, "data/patients.csv", &original);
    with_cell(&study, "2018-01-01", "2016-02-29");
    let out = run(&["check", "s"], study.parent().unwrap());
    assert!(out.status.success(), "{}", stderr(&out));

    // The cutoff in study.toml and --as-of say the same.
    edit(
        &study,
        "study.toml",
        "cutoff = 2023-06-30",
        "cutoff = \"2023-02-29\"",
    );
    check_fails(
        &study,
        &[
            "`study.cutoff` is `2023-02-29`, expected a date as YYYY-MM-DD (there is no day 29 in February 2023)",
            "study.toml:12:10",
        ],
    );
    edit(
        &study,
        "study.toml",
        "cutoff = \"2023-02-29\"",
        "cutoff = 2023-06-30",
    );
    let out = run(
        &["check", "s", "--as-of", "0000-01-01"],
        study.parent().unwrap(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--as-of `0000-01-01`: expected a date in the years 0001 to 9999"),
        "{}",
        stderr(&out)
    );
}

/// Numbers: out of range (`1e-400` would be 0, `1e400` infinity), NaN and infinity, integers
/// beyond 64 bits, thousands separators; a plain `+1` or ` 1 ` is a number.
#[test]
fn numbers_out_of_range_or_not_finite_are_refused_with_the_reason() {
    let (_dir, study) = new_study();
    edit(
        &study,
        "study.toml",
        "age = { type = \"integer\", min = 18, max = 100,",
        "age = { type = \"number\", min = -1e300, max = 1e300,",
    );
    let original = read(&study, "data/patients.csv");
    for (cell, reason) in [
        ("1e-400", "too small for a double and would be read as 0"),
        ("-1e-400", "too small for a double"),
        (
            "1e400",
            "magnitude at most about 1.8e308 (this one is out of range)",
        ),
        ("-1e400", "out of range"),
        ("nan", "a finite number (not NaN or infinity)"),
        ("NaN", "not NaN or infinity"),
        ("inf", "not NaN or infinity"),
        ("-infinity", "not NaN or infinity"),
        ("\"1,234.5\"", "without thousands separators"),
        ("\"0,5\"", "with `.` as the decimal point"),
    ] {
        write(&study, "data/patients.csv", &original);
        with_cell(&study, ",67,", &format!(",{cell},"));
        check_fails(
            &study,
            &["column `age`: found `", reason, "data/patients.csv:2:3"],
        );
    }
    for ok in ["+1", "\" 1 \"", "1e-310", "0e5", "-0.0"] {
        write(&study, "data/patients.csv", &original);
        with_cell(&study, ",67,", &format!(",{ok},"));
        let out = run(&["check", "s"], study.parent().unwrap());
        assert!(out.status.success(), "{ok}: {}", stderr(&out));
    }
    // An integer column: 64-bit range, separators.
    let (_dir, study) = new_study();
    for (cell, reason) in [
        (
            "99999999999999999999",
            "an integer from -9223372036854775808 to 9223372036854775807",
        ),
        (
            "\"1,000\"",
            "an integer, written without thousands separators",
        ),
    ] {
        with_cell(&study, ",67,", &format!(",{cell},"));
        check_fails(&study, &[reason, "data/patients.csv:2:3"]);
        with_cell(&study, &format!(",{cell},"), ",67,");
    }
}

/// Whole-file problems of a CSV: empty, only a header, an unclosed quote, bytes that are not
/// UTF-8, CR-only line ends: one specific message each, from `check`.
#[test]
fn whole_file_problems_of_a_csv_get_one_specific_message() {
    let (_dir, study) = new_study();
    let original = read(&study, "data/patients.csv");

    write(&study, "data/patients.csv", "");
    let err = check_fails(
        &study,
        &[
            "the file is empty; expected a header line naming the columns of table `patients` (id, arm,",
            "data/patients.csv:1",
        ],
    );
    assert!(!err.contains("is missing from the file"), "{err}");
    assert_eq!(err.matches("error:").count(), 2, "{err}");

    write(
        &study,
        "data/patients.csv",
        original.lines().next().unwrap().to_string() + "\n",
    );
    check_fails(
        &study,
        &[
            "the file has a header but no rows: table `patients` is empty",
            "data/patients.csv:2",
        ],
    );

    let unclosed = original.replacen(",male,II,", ",\"male,II,", 1);
    write(&study, "data/patients.csv", &unclosed);
    let line = unclosed.lines().position(|l| l.contains("\"male")).unwrap() + 1;
    let column = unclosed.lines().nth(line - 1).unwrap().find('"').unwrap() + 1;
    let err = check_fails(
        &study,
        &[&format!(
            "the quote opened at line {line}, column {column} is never closed"
        )],
    );
    assert!(!err.contains("fields"), "{err}");

    let mut latin1 = original.clone().into_bytes();
    let at = original.find("P003").unwrap();
    latin1[at + 1] = 0xe9;
    write(&study, "data/patients.csv", &latin1);
    check_fails(
        &study,
        &[
            "byte 0xe9 at line 4, column 2 is not part of a UTF-8 character",
            "data/patients.csv:4:2",
        ],
    );

    // CR-only line ends: read, and lines counted, as with LF.
    // A bad age on P003's row (line 4): its third cell becomes `x<age>`.
    let cr = original.replace('\n', "\r");
    let p003 = cr.find("P003,").unwrap();
    let age_at = p003 + cr[p003..].match_indices(',').nth(1).unwrap().0 + 1;
    let cr = format!("{}x{}", &cr[..age_at], &cr[age_at..]);
    write(&study, "data/patients.csv", cr);
    check_fails(&study, &["data/patients.csv:4:3"]);
}

/// CR-only line ends in the Markdown and in study.toml: read as line ends (before, the Markdown
/// gave "undefined value" errors); the whole study with CR-only files builds.
#[test]
fn cr_only_line_ends_are_line_ends() {
    let (dir, study) = new_study();
    for rel in [
        "study.toml",
        "manuscript/main.md",
        "manuscript/abstract.md",
        "data/patients.csv",
    ] {
        let text = read(&study, rel).replace('\n', "\r");
        write(&study, rel, text);
    }
    let out = run(&["build", "s", "--out", "o", "-q"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    // A located error still points at the right line.
    edit(&study, "study.toml", "seed = 1", "seed = x");
    check_fails(&study, &["study.toml:9:8"]);
}

/// `-q`: nothing but problems on the terminal, also for a study with published values (the
/// comparison was printed) and for `simulate`.
#[test]
fn quiet_prints_nothing_but_problems() {
    let (dir, study) = new_study();
    write(
        &study,
        "published.toml",
        "source = \"x\"\n[[quantity]]\nkey = \"n\"\nlabel = \"patients\"\npublished = 120\nvalue = \"cohort.n\"\ntolerance = 0\n",
    );
    edit(
        &study,
        "study.toml",
        "[manuscript]\n",
        "[manuscript]\npublished = \"published.toml\"\n",
    );
    let loud = run(&["build", "s", "--out", "o"], dir.path());
    assert!(loud.status.success(), "{}", stderr(&loud));
    assert!(
        stderr(&loud).contains("published versus reproduced"),
        "{}",
        stderr(&loud)
    );
    let quiet = run(&["build", "s", "--out", "o", "-q"], dir.path());
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    assert_eq!(stdout(&quiet), "");
    assert_eq!(stderr(&quiet), "");

    let croome = tempfile::tempdir().unwrap();
    let sim = croome.path().join("s");
    std::fs::create_dir(&sim).unwrap();
    let src = crate::common::root().join("study/croome2016");
    std::fs::copy(src.join("study.toml"), sim.join("study.toml")).unwrap();
    // Without the companion copy (it would write outside the folder).
    let spec = std::fs::read_to_string(src.join("simulation.toml")).unwrap();
    let spec: String = spec
        .lines()
        .filter(|l| !l.starts_with("copies"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(sim.join("simulation.toml"), spec).unwrap();
    let out = run(&["simulate", "s", "-q"], croome.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), "");
}
