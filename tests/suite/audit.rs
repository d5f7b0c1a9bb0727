//! Provenance, verify, diff and as-of censoring through the real binary.

use std::path::Path;

use crate::build::copy_dir;
use crate::common::{galley, root, stderr, stdout};

fn build_into(study: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "build",
        study.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let r = galley(&args, &root());
    assert!(r.status.success(), "{}", stderr(&r));
}

/// A private copy of the tiny fixture (tests may edit it) and an output root.
fn workspace() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("tiny");
    copy_dir(&root().join("tests/fixtures/tiny"), &study);
    let out = dir.path().join("out");
    (dir, study, out)
}

#[test]
fn provenance_records_every_input_and_output_hash() {
    let (_dir, study, out) = workspace();
    build_into(&study, &out, &[]);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tiny/provenance.json")).unwrap())
            .unwrap();
    let inputs = record["inputs"].as_object().unwrap();
    for f in [
        "study.toml",
        "data/patients.csv",
        "manuscript/main.md",
        "manuscript/abstract.md",
        "references.bib",
        "published.toml",
    ] {
        assert!(inputs.contains_key(f), "input {f} not recorded");
    }
    // The recorded hash is the file's sha256 (as `sha256sum` would print it).
    use sha2::{Digest, Sha256};
    let csv = std::fs::read(study.join("data/patients.csv")).unwrap();
    assert_eq!(
        inputs["data/patients.csv"]["sha256"],
        hex::encode(Sha256::digest(&csv))
    );
    let outputs = record["outputs"].as_object().unwrap();
    for f in [
        "manuscript.pdf",
        "manuscript.typ",
        "results.json",
        "trail.json",
        "reproduction.json",
    ] {
        let bytes = std::fs::read(out.join("tiny").join(f)).unwrap();
        assert_eq!(
            outputs[f]["sha256"],
            hex::encode(Sha256::digest(&bytes)),
            "{f}"
        );
    }
    assert_eq!(record["seed"], 42);
    assert_eq!(record["cutoff"], "2020-12-31");
    let blocks = record["blocks"].as_array().unwrap();
    assert!(
        blocks
            .iter()
            .all(|b| b["spec_sha256"].as_str().is_some_and(|h| h.len() == 64))
    );
    assert!(
        blocks
            .iter()
            .any(|b| b["id"] == "deaths" && b["data"] == "cohort" && b["data_sha256"].is_string())
    );
}

#[test]
fn verify_says_identical_then_names_a_tampered_output_and_a_changed_input() {
    let (_dir, study, out) = workspace();
    build_into(&study, &out, &[]);
    let folder = out.join("tiny");
    let r = galley(&["verify", folder.to_str().unwrap()], &root());
    assert_eq!(r.status.code(), Some(0), "{}{}", stdout(&r), stderr(&r));
    assert!(stdout(&r).starts_with("identical"));

    let pdf_before = std::fs::read(folder.join("manuscript.pdf")).unwrap();
    std::fs::write(folder.join("results.json"), "{}\n").unwrap();
    let r = galley(&["verify", folder.to_str().unwrap()], &root());
    assert_eq!(r.status.code(), Some(4), "{}", stdout(&r));
    assert!(
        stdout(&r).contains("output differs from its record: results.json"),
        "{}",
        stdout(&r)
    );
    // verify never overwrites what it checks.
    assert_eq!(
        std::fs::read_to_string(folder.join("results.json")).unwrap(),
        "{}\n"
    );
    assert_eq!(
        std::fs::read(folder.join("manuscript.pdf")).unwrap(),
        pdf_before
    );

    let csv = study.join("data/patients.csv");
    let text = std::fs::read_to_string(&csv)
        .unwrap()
        .replace("p01,A,54", "p01,A,55");
    std::fs::write(&csv, text).unwrap();
    let r = galley(&["verify", folder.to_str().unwrap(), "--json"], &root());
    assert_eq!(r.status.code(), Some(2), "{}", stdout(&r));
    let report: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(report["verdict"], "inputs_changed");
    assert_eq!(
        report["changed_inputs"],
        serde_json::json!(["data/patients.csv"])
    );
}

#[test]
fn verify_refuses_other_versions_and_non_outputs_clearly() {
    let (_dir, study, out) = workspace();
    build_into(&study, &out, &[]);
    let prov = out.join("tiny/provenance.json");
    let text = std::fs::read_to_string(&prov)
        .unwrap()
        .replace(env!("CARGO_PKG_VERSION"), "0.0.1-other");
    std::fs::write(&prov, text).unwrap();
    let r = galley(&["verify", out.join("tiny").to_str().unwrap()], &root());
    assert_eq!(r.status.code(), Some(1));
    assert!(
        stderr(&r).contains("built by galley 0.0.1-other"),
        "{}",
        stderr(&r)
    );

    let r = galley(&["verify", study.to_str().unwrap()], &root());
    assert_eq!(r.status.code(), Some(1));
    assert!(
        stderr(&r).contains("does not look like a galley output folder"),
        "{}",
        stderr(&r)
    );
}

#[test]
fn as_of_censors_and_diff_lists_what_changed() {
    let (_dir, study, out) = workspace();
    build_into(&study, &out, &[]);
    let early = tempfile::tempdir().unwrap();
    // At 2017-06-30 (by hand from the CSV): p10 (resected 2017-02-02) is still included; deaths on or
    // before the cutoff are p03 (2016-01-15), p06 (2017-02-02), p07 (2016-04-01): 3 deaths.
    build_into(&study, early.path(), &["--as-of", "2017-06-30"]);
    let results: serde_json::Value = crate::common::record(&early.path().join("tiny/results.json"));
    assert_eq!(results["deaths"]["result"]["n"], 3);
    assert_eq!(results["cohort"]["result"]["cutoff"], "2017-06-30");

    let r = galley(
        &[
            "diff",
            early.path().join("tiny").to_str().unwrap(),
            out.join("tiny").to_str().unwrap(),
            "--json",
        ],
        &root(),
    );
    assert!(r.status.success(), "{}", stderr(&r));
    let d: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(d["old_cutoff"], "2017-06-30");
    assert_eq!(d["new_cutoff"], "2020-12-31");
    assert!(
        d["changed_blocks"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("deaths"))
    );
    let change = d["changed_values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["expression"] == "deaths.n")
        .expect("deaths.n changed");
    assert_eq!(change["old_value"], 3);
    assert_eq!(change["new_value"], 7);
    assert_eq!(change["absolute_change"], 4.0);
    let text = galley(
        &[
            "diff",
            early.path().join("tiny").to_str().unwrap(),
            out.join("tiny").to_str().unwrap(),
        ],
        &root(),
    );
    assert!(
        stdout(&text).contains("cutoff: 2017-06-30 -> 2020-12-31"),
        "{}",
        stdout(&text)
    );
}

#[test]
fn a_cutoff_before_every_start_is_a_clear_error() {
    let (_dir, study, out) = workspace();
    let r = galley(
        &[
            "build",
            study.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--as-of",
            "2000-01-01",
        ],
        &root(),
    );
    assert_eq!(r.status.code(), Some(1));
    assert!(
        stderr(&r).contains("no patient starts follow-up on or before the cutoff 2000-01-01"),
        "{}",
        stderr(&r)
    );
    assert!(!out.exists());
}

#[test]
fn audit_mode_links_every_templated_value_to_an_appendix_entry() {
    let (_dir, study, out) = workspace();
    build_into(&study, &out, &["--audit", "--format", "pdf,html"]);
    let typ = std::fs::read_to_string(out.join("tiny/manuscript.typ")).unwrap();
    let html = std::fs::read_to_string(out.join("tiny/manuscript.html")).unwrap();
    let trail: Vec<serde_json::Value> = crate::common::record(&out.join("tiny/trail.json"));
    assert!(typ.contains("#heading(level: 1)[Appendix\\: audit trail]"));
    assert!(html.contains("<h2>Appendix: audit trail</h2>"), "{html}");
    // Every entry has an anchor; every prose entry's value is a link to it, in both manuscripts.
    for (i, entry) in trail.iter().enumerate() {
        assert!(
            typ.contains(&format!("#label(\"trail-{i}\")")),
            "no anchor for entry {i}"
        );
        assert!(
            html.contains(&format!("<span id=\"trail-{i}\"></span>")),
            "no HTML anchor for entry {i}"
        );
        if entry["context"] == "prose" {
            let text = entry["text"].as_str().unwrap();
            assert!(
                typ.contains(&format!("#link(label(\"trail-{i}\"))")),
                "entry {i} is not linked: {entry}"
            );
            assert!(
                html.contains(&format!(
                    "<a class=\"value\" href=\"#trail-{i}\">{text}</a>"
                )),
                "entry {i} is not linked in the HTML: {entry}"
            );
        }
    }
    // Without --audit, no links and no appendix.
    let plain = tempfile::tempdir().unwrap();
    build_into(&study, plain.path(), &[]);
    let typ = std::fs::read_to_string(plain.path().join("tiny/manuscript.typ")).unwrap();
    assert!(!typ.contains("trail-0"));
}

#[test]
fn a_manifest_naming_a_previous_report_gets_a_changes_appendix() {
    let (_dir, study, out) = workspace();
    let early = tempfile::tempdir().unwrap();
    build_into(&study, early.path(), &["--as-of", "2017-06-30"]);
    let previous = study.join("previous");
    std::fs::create_dir_all(&previous).unwrap();
    for f in ["provenance.json", "results.json", "trail.json"] {
        std::fs::copy(early.path().join("tiny").join(f), previous.join(f)).unwrap();
    }
    let manifest = study.join("study.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text.replace(
        "published = \"published.toml\"",
        "published = \"published.toml\"\nprevious = \"previous\"",
    );
    std::fs::write(&manifest, text).unwrap();
    build_into(&study, &out, &["--format", "pdf,html"]);
    let typ = std::fs::read_to_string(out.join("tiny/manuscript.typ")).unwrap();
    assert!(
        typ.contains("Changes since the previous report"),
        "no appendix"
    );
    // The HTML has the same appendix, with the same row.
    let html = std::fs::read_to_string(out.join("tiny/manuscript.html")).unwrap();
    assert!(
        html.contains("<h2>Changes since the previous report</h2>"),
        "no appendix in the HTML"
    );
    assert!(
        html.contains("The data cutoff moved from 2017-06-30 to 2020-12-31"),
        "{html}"
    );
    let html_row = html
        .lines()
        .find(|l| l.contains("<code>deaths.\u{200B}n</code>"))
        .expect("an HTML row for deaths.n");
    assert!(
        html_row.contains("<td class=\"right\">3</td><td class=\"right\">7</td>"),
        "{html_row}"
    );
    assert!(
        typ.contains("The data cutoff moved from 2017\\-06\\-30 to 2020\\-12\\-31"),
        "{typ}"
    );
    // deaths.n went from 3 to 7 (counted by hand in `as_of_censors_and_diff_lists_what_changed`).
    let row = typ
        .lines()
        .find(|l| l.contains("deaths\\.\u{200B}n]"))
        .expect("a row for deaths.n");
    assert!(row.contains("[3], [7]"), "{row}");
    // The previous records are inputs of the new build.
    let prov: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tiny/provenance.json")).unwrap())
            .unwrap();
    assert!(
        prov["inputs"]
            .as_object()
            .unwrap()
            .contains_key("previous/trail.json")
    );
}
