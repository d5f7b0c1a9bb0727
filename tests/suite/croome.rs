//! The flagship study: the committed outputs are exactly what a rebuild writes, every templated value
//! appears in the PDF, and the 2020 snapshot censored at the paper's cutoff gives the 2015 results.

use std::path::{Path, PathBuf};

use crate::build::copy_dir;
use crate::common::{galley, root, stderr};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == ".cache") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn build(study: &str, out: &Path, extra: &[&str]) {
    let mut args = vec!["build", study, "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let r = galley(&args, &root());
    assert!(r.status.success(), "{study}: {}", stderr(&r));
}

#[test]
fn committed_outputs_are_reproduced_byte_for_byte() {
    for study in ["croome2016", "croome2016-2020"] {
        // Laid out as the repository is (`study/<name>`, `output/`): the record notes where the study
        // is from the output folder (`../../study/<name>`).
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("study").join(study);
        copy_dir(&root().join("study").join(study), &copy);
        let out = dir.path().join("output");
        build(copy.to_str().unwrap(), &out, &[]);
        let committed = root().join("output").join(study);
        let rebuilt = out.join(study);
        let names = files_under(&committed);
        assert_eq!(
            names,
            files_under(&rebuilt),
            "{study}: the set of output files differs"
        );
        for name in names {
            let a = std::fs::read(committed.join(&name)).unwrap();
            let b = std::fs::read(rebuilt.join(&name)).unwrap();
            assert!(
                a == b,
                "{study}: output/{study}/{} differs from a rebuild (run `cargo run --release -- build study/{study}` and commit)",
                name.display()
            );
        }
    }
}

#[test]
fn the_study_is_lint_clean_and_every_templated_value_is_in_the_pdf() {
    // --deny-warnings: no number is typed by hand in the prose (each comes from an expression or is
    // on the study's allow-list), so the trail covers every number the prose shows.
    let out = tempfile::tempdir().unwrap();
    build("study/croome2016", out.path(), &["--deny-warnings"]);
    let dir = out.path().join("croome2016");
    let trail: Vec<serde_json::Value> = crate::common::record(&dir.join("trail.json"));
    assert!(trail.len() > 100, "the trail has {} entries", trail.len());
    let text = match std::process::Command::new("pdftotext")
        .arg(dir.join("manuscript.pdf"))
        .arg("-")
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ if std::env::var_os("CI").is_some() => {
            panic!("pdftotext is needed: apt-get install -y poppler-utils")
        }
        _ => return eprintln!("skipped: pdftotext not installed"),
    };
    let squash = |s: &str| {
        s.split_whitespace()
            .collect::<String>()
            .replace('\u{2212}', "-")
            .replace('\u{a0}', "")
    };
    let pdf = squash(&text);
    let mut missing = Vec::new();
    for entry in &trail {
        let Some(shown) = entry["text"].as_str() else {
            continue;
        };
        if !shown.is_empty() && !pdf.contains(&squash(shown)) {
            missing.push(format!(
                "{}:{} `{}` -> `{shown}`",
                entry["file"], entry["line"], entry["expression"]
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "values in trail.json not found in the PDF:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_2020_snapshot_censored_at_2015_gives_the_2015_results() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("croome2016");
    copy_dir(&root().join("study/croome2016"), &study);
    let manifest = study.join("study.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("data/2015/"));
    // The 2020 export: its files, and last contacts up to its own cutoff.
    let text = text.replace("data/2015/", "data/2020/").replace(
        "min = \"1989-01-01\", max = \"2015-08-31\", label = \"Date of last contact",
        "min = \"1989-01-01\", max = \"2020-08-31\", label = \"Date of last contact",
    );
    std::fs::write(&manifest, text).unwrap();
    let out = dir.path().join("out");
    build(study.to_str().unwrap(), &out, &["--as-of", "2015-08-31"]);
    let read = |p: PathBuf| -> serde_json::Value { crate::common::record(&p) };
    let censored = read(out.join("croome2016/results.json"));
    let paper = read(root().join("output/croome2016/results.json"));
    for block in [
        "lr_os",
        "km_os",
        "cox_os",
        "lr_gp",
        "km_gp",
        "baseline",
        "major_cmp",
    ] {
        assert_eq!(censored[block], paper[block], "block `{block}` differs");
    }
    assert_eq!(
        read(out.join("croome2016/reproduction.json")),
        read(root().join("output/croome2016/reproduction.json"))
    );
}

#[test]
fn diff_between_the_2015_and_2020_reports_shows_survival_changes_and_an_unchanged_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("croome2016");
    copy_dir(&root().join("study/croome2016"), &study);
    let manifest = study.join("study.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("data/2015/", "data/2020/")
        .replace(
            "min = \"1989-01-01\", max = \"2015-08-31\", label = \"Date of last contact",
            "min = \"1989-01-01\", max = \"2020-08-31\", label = \"Date of last contact",
        );
    std::fs::write(&manifest, text).unwrap();
    let out = dir.path().join("out");
    build(study.to_str().unwrap(), &out, &["--as-of", "2020-08-31"]);
    let r = galley(
        &[
            "diff",
            "output/croome2016",
            out.join("croome2016").to_str().unwrap(),
            "--json",
        ],
        &root(),
    );
    assert!(r.status.success(), "{}", stderr(&r));
    let d: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(d["new_cutoff"], "2020-08-31");
    let changed: Vec<&str> = d["changed_blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let unchanged: Vec<&str> = d["unchanged_blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for survival in ["km_os", "lr_os", "cox_os"] {
        assert!(
            changed.contains(&survival),
            "{survival} should change: {changed:?}"
        );
    }
    // Baseline data are identical in both snapshots: Table 1 and the major-resection comparison stay.
    for baseline in ["baseline", "major_cmp"] {
        assert!(
            unchanged.contains(&baseline),
            "{baseline} should not change: {changed:?}"
        );
    }
    assert!(d["changed_values"].as_array().unwrap().iter().any(|c| {
        c["expression"]
            .as_str()
            .is_some_and(|e| e.contains("km_os"))
    }));
}
