//! Every invalid fixture fails with a diagnostic naming the file and the line, and writes nothing.

use crate::common::{galley, root, stderr};

/// Build `tests/fixtures/invalid/<name>` into a fresh output root; assert failure, that each expected
/// fragment is in the diagnostics, and that the output root is still empty.
fn fails(name: &str, expected: &[&str]) {
    let out = tempfile::tempdir().unwrap();
    let study = format!("tests/fixtures/invalid/{name}");
    let result = galley(
        &["build", &study, "--out", out.path().to_str().unwrap()],
        &root(),
    );
    let err = stderr(&result);
    assert!(!result.status.success(), "{name}: the build should fail");
    assert_eq!(result.status.code(), Some(1), "{name}: exit code\n{err}");
    for fragment in expected {
        assert!(
            err.contains(fragment),
            "{name}: expected `{fragment}` in the diagnostics:\n{err}"
        );
    }
    assert!(!err.contains("panicked"), "{name}: panic\n{err}");
    assert!(!err.contains("RUST_BACKTRACE"), "{name}: panic\n{err}");
    let written: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert!(
        written.is_empty(),
        "{name}: a failed build wrote {written:?}"
    );
    // `check` reports the same problem (all these fail before typesetting except the Typst one).
}

#[test]
fn missing_manifest() {
    fails(
        "missing-manifest",
        &[
            "cannot read the manifest",
            "missing-manifest/study.toml",
            "galley new",
        ],
    );
}

#[test]
fn unknown_key_names_key_file_and_line() {
    fails(
        "unknown-key",
        &["unknown field `short_titel`", "unknown-key/study.toml:3:1"],
    );
}

#[test]
fn missing_data_file_points_at_the_manifest_line() {
    fails(
        "missing-data-file",
        &[
            "`data/patient.csv` not found",
            "missing-data-file/study.toml:25:8",
        ],
    );
}

#[test]
fn missing_column_names_the_column_and_the_header() {
    fails(
        "missing-column",
        &[
            "column `age` of table `patients` is missing",
            "missing-column/data/patients.csv:1",
        ],
    );
}

#[test]
fn every_bad_value_is_reported_with_line_and_column() {
    fails(
        "bad-value",
        &[
            "column `age`: found `seventy`, expected a finite number",
            "bad-value/data/patients.csv:5:3",
            "column `group`: found `C`, expected one of `A`, `B`",
            "bad-value/data/patients.csv:8:2",
            "found `2015-09-31`, expected a date as YYYY-MM-DD",
            "bad-value/data/patients.csv:8:4",
        ],
    );
}

#[test]
fn undefined_template_variable_names_the_expression_and_line() {
    fails(
        "undefined-variable",
        &[
            "undefined value",
            "`deaths.nn`",
            "undefined-variable/manuscript/main.md:30:15",
        ],
    );
}

#[test]
fn unknown_block_kind_lists_known_kinds() {
    fails(
        "unknown-kind",
        &[
            "unknown analysis block kind `cuont`",
            "unknown-kind/manuscript/main.md:20:1",
            "known kinds:",
        ],
    );
}

#[test]
fn duplicate_block_id_points_at_both() {
    fails(
        "duplicate-id",
        &[
            "duplicate analysis block id `cohort`",
            "duplicate-id/manuscript/main.md:19:1",
            "main.md:8",
        ],
    );
}

#[test]
fn typst_error_in_a_study_template_points_at_the_study_file() {
    fails(
        "typst-error",
        &[
            "Typst: unknown variable: documnt",
            "typst-error/template/article.typ:24:7",
        ],
    );
}

#[test]
fn check_reports_without_writing() {
    let result = galley(&["check", "tests/fixtures/invalid/bad-value"], &root());
    assert!(!result.status.success());
    assert!(stderr(&result).contains("bad-value/data/patients.csv:5:3"));
    let ok = galley(&["check", "tests/fixtures/tiny"], &root());
    assert!(ok.status.success(), "{}", stderr(&ok));
}
