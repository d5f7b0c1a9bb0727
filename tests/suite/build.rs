//! Building fixture studies end to end through the real binary.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::common::{galley, root, stderr};

fn build(study: &str, out: &Path) {
    let result = galley(&["build", study, "--out", out.to_str().unwrap()], &root());
    assert!(
        result.status.success(),
        "build of {study} failed:\n{}",
        stderr(&result)
    );
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn tiny_study_builds_a_pdf_with_sources_beside_it() {
    let out = tempfile::tempdir().unwrap();
    build("tests/fixtures/tiny", out.path());
    let dir = out.path().join("tiny");
    for f in [
        "manuscript.pdf",
        "manuscript.typ",
        "article.typ",
        "references.bib",
        "results.json",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    let pdf = std::fs::read(dir.join("manuscript.pdf")).unwrap();
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    let results: serde_json::Value = crate::common::record(&dir.join("results.json"));
    // Counted by hand from the CSV: 10 patients, 7 marked dead, every death before the cutoff
    // 2020-12-31; 3 of the deaths in group A.
    assert_eq!(results["cohort"]["result"]["n"], 10);
    assert_eq!(results["deaths"]["result"]["n"], 7);
    assert_eq!(results["deaths"]["result"]["levels"]["A"]["n"], 3);
    // p05's last contact 2021-03-01 is after the cutoff 2020-12-31: censored there.
    assert_eq!(results["cohort"]["result"]["censored_at_cutoff"], 1);
}

#[test]
fn same_inputs_give_the_same_bytes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    build("tests/fixtures/tiny", a.path());
    build("tests/fixtures/tiny", b.path());
    for f in ["manuscript.pdf", "manuscript.typ", "results.json"] {
        assert_eq!(
            sha256(&a.path().join("tiny").join(f)),
            sha256(&b.path().join("tiny").join(f)),
            "{f} differs"
        );
    }
}

#[test]
fn a_failed_build_leaves_previous_outputs_and_other_files_untouched() {
    let out = tempfile::tempdir().unwrap();
    build("tests/fixtures/tiny", out.path());
    let before = sha256(&out.path().join("tiny/manuscript.pdf"));
    std::fs::write(out.path().join("notes.txt"), "mine").unwrap();
    // Same folder name, broken template: copy the fixture and break it.
    let broken = tempfile::tempdir().unwrap();
    let study = broken.path().join("tiny");
    copy_dir(&root().join("tests/fixtures/tiny"), &study);
    let main = study.join("manuscript/main.md");
    let text = std::fs::read_to_string(&main)
        .unwrap()
        .replace("{{ deaths.n }} deaths", "{{ deaths.missing_key }} deaths");
    std::fs::write(&main, text).unwrap();
    let result = galley(
        &[
            "build",
            study.to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ],
        &root(),
    );
    assert!(!result.status.success());
    assert_eq!(sha256(&out.path().join("tiny/manuscript.pdf")), before);
    assert_eq!(
        std::fs::read_to_string(out.path().join("notes.txt")).unwrap(),
        "mine"
    );
    let names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "stray files: {names:?}");
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
