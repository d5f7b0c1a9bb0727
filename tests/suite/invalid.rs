//! Every invalid fixture fails with a diagnostic naming the file and the line, and writes nothing. The
//! whole stderr is a reviewed snapshot (`tests/suite/snapshots/suite__invalid__*.snap`); see
//! `diagnostics.rs` for how to review and update them.

use insta::assert_snapshot;

use crate::common::{galley, root};
use crate::diagnostics::transcript;

/// Build `tests/fixtures/invalid/<name>` into a fresh output root, which must fail and leave the
/// output root empty; the exit code and stderr, normalised.
fn fails(name: &str) -> String {
    let out = tempfile::tempdir().unwrap();
    let study = format!("tests/fixtures/invalid/{name}");
    let result = galley(
        &["build", &study, "--out", out.path().to_str().unwrap()],
        &root(),
    );
    let text = transcript(&result, &[out.path()]);
    assert!(!result.status.success(), "{name}: the build passed\n{text}");
    let written: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert!(
        written.is_empty(),
        "{name}: a failed build wrote {written:?}"
    );
    text
}

#[test]
fn missing_manifest() {
    assert_snapshot!(fails("missing-manifest"));
}

#[test]
fn unknown_key_names_key_file_and_line() {
    assert_snapshot!(fails("unknown-key"));
}

#[test]
fn missing_data_file_points_at_the_manifest_line() {
    assert_snapshot!(fails("missing-data-file"));
}

#[test]
fn missing_column_names_the_column_and_the_header() {
    assert_snapshot!(fails("missing-column"));
}

#[test]
fn every_bad_value_is_reported_with_line_and_column() {
    assert_snapshot!(fails("bad-value"));
}

#[test]
fn undefined_template_variable_names_the_expression_and_line() {
    assert_snapshot!(fails("undefined-variable"));
}

#[test]
fn unknown_block_kind_lists_known_kinds() {
    assert_snapshot!(fails("unknown-kind"));
}

#[test]
fn duplicate_block_id_points_at_both() {
    assert_snapshot!(fails("duplicate-id"));
}

#[test]
fn typst_error_in_a_study_template_points_at_the_study_file() {
    assert_snapshot!(fails("typst-error"));
}

/// `check` reports the same problems as `build` (the same snapshot), and passes on a valid study.
#[test]
fn check_reports_without_writing() {
    let result = galley(&["check", "tests/fixtures/invalid/bad-value"], &root());
    let text = transcript(&result, &[]);
    assert_eq!(text, fails("bad-value"));
    let ok = galley(&["check", "tests/fixtures/tiny"], &root());
    assert_eq!(transcript(&ok, &[]), "exit code: 0\n---\n");
}
