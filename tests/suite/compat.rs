//! The compatibility contract (docs/formats.md): every record a build writes carries its format
//! version; `diff`, `verify` and a study's `previous` report read version 1 (the records galley
//! wrote before they carried one, kept in tests/fixtures/compat/v1) and version 2 alike, and refuse
//! a newer version naming the file, the version and the versions read; study.toml declares its
//! format, and an unknown key near a known one gets a located "did you mean".
//!
//! A renamed or removed key's hint is tested in the library (`study::manifest`, `study::compat`):
//! no key has been renamed yet, so the binary's tables are empty.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::build::copy_dir;
use crate::common::{galley, root, stderr, stdout};

/// The records of a version-2 report and where each keeps its content.
const RECORDS: [(&str, &str, &str); 3] = [
    ("results.json", "galley-results/2", "blocks"),
    ("trail.json", "galley-trail/2", "entries"),
    ("reproduction.json", "galley-reproduction/2", "rows"),
];

fn v1(name: &str) -> PathBuf {
    root().join("tests/fixtures/compat/v1").join(name)
}

fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Pretty JSON and a line end, as galley writes a record.
fn write(path: &Path, value: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap();
    bytes.push(b'\n');
    std::fs::write(path, &bytes).unwrap();
    bytes
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// A private copy of the tiny fixture at `<dir>/study/tiny`, built into `<dir>/out` (as the
/// repository lays out study/ and output/, so the record finds the study by itself).
fn built_tiny(extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("study/tiny");
    copy_dir(&root().join("tests/fixtures/tiny"), &study);
    let mut args = vec!["build", "study/tiny", "--out", "out"];
    args.extend_from_slice(extra);
    let r = galley(&args, dir.path());
    assert!(r.status.success(), "{}", stderr(&r));
    let report = dir.path().join("out/tiny");
    (dir, report)
}

/// Rewrite the records of the report in `dir` as galley wrote them before records carried a
/// version (docs/formats.md, version 1): the content alone, and a provenance record without
/// `format` that lists the rewritten records' hashes.
fn as_version_1(dir: &Path) {
    let mut provenance = read(&dir.join("provenance.json"));
    for (file, _, key) in RECORDS {
        let path = dir.join(file);
        if path.exists() {
            let bytes = write(&path, &read(&path)[key]);
            provenance["outputs"][file] =
                json!({"sha256": sha256_hex(&bytes), "bytes": bytes.len()});
        }
    }
    let fields = provenance.as_object().unwrap().clone();
    let unversioned: serde_json::Map<String, Value> =
        fields.into_iter().filter(|(k, _)| k != "format").collect();
    write(&dir.join("provenance.json"), &Value::Object(unversioned));
}

#[test]
fn every_record_a_build_writes_starts_with_its_format_version() {
    let (_dir, report) = built_tiny(&["--audit"]);
    let stamps = [
        ("provenance.json", "galley-provenance/2"),
        ("results.json", "galley-results/2"),
        ("trail.json", "galley-trail/2"),
        ("reproduction.json", "galley-reproduction/2"),
    ];
    for (file, stamp) in stamps {
        let text = std::fs::read_to_string(report.join(file)).unwrap();
        assert!(
            text.starts_with(&format!("{{\n  \"format\": \"{stamp}\",\n")),
            "{file}: {}",
            &text[..text.len().min(80)]
        );
    }
    // The content is where docs/formats.md says: blocks by id, entries and rows as arrays.
    assert_eq!(
        read(&report.join("results.json"))["blocks"]["deaths"]["kind"],
        "count"
    );
    for (file, _, key) in &RECORDS[1..] {
        assert!(read(&report.join(file))[key].as_array().unwrap().len() > 1);
    }
    // The committed reports are in the current format too.
    for study in ["croome2016", "croome2016-2020"] {
        let record = read(&root().join("output").join(study).join("results.json"));
        assert_eq!(record["format"], "galley-results/2", "{study}");
    }
}

#[test]
fn diff_reads_version_1_records_as_before_and_version_2_alike() {
    // What galley printed for the version-1 records before records carried a version.
    let before = std::fs::read_to_string(root().join("tests/fixtures/compat/v1-diff.txt")).unwrap();
    let diff = |old: &Path, new: &Path| {
        let r = galley(
            &["diff", old.to_str().unwrap(), new.to_str().unwrap()],
            &root(),
        );
        assert!(r.status.success(), "{}", stderr(&r));
        stdout(&r)
    };
    let (old, new) = (v1("croome2016"), v1("croome2016-2020"));
    assert_eq!(diff(&old, &new), before);
    // The same records in version 2, on either side.
    let dir = tempfile::tempdir().unwrap();
    let upgraded = |from: &Path, name: &str| {
        let to = dir.path().join(name);
        std::fs::create_dir_all(&to).unwrap();
        let mut provenance = json!({"format": "galley-provenance/2"});
        for (k, v) in read(&from.join("provenance.json")).as_object().unwrap() {
            provenance[k] = v.clone();
        }
        write(&to.join("provenance.json"), &provenance);
        for (file, stamp, key) in &RECORDS[..2] {
            write(
                &to.join(file),
                &json!({"format": stamp, key.to_string(): read(&from.join(file))}),
            );
        }
        to
    };
    let (old2, new2) = (upgraded(&old, "old"), upgraded(&new, "new"));
    assert_eq!(diff(&old2, &new), before);
    assert_eq!(diff(&old, &new2), before);
    assert_eq!(diff(&old2, &new2), before);
}

#[test]
fn verify_reads_a_version_1_report() {
    let (dir, report) = built_tiny(&[]);
    as_version_1(&report);
    assert!(
        !std::fs::read_to_string(report.join("trail.json"))
            .unwrap()
            .contains("format")
    );
    let r = galley(&["verify", "out/tiny"], dir.path());
    assert_eq!(
        (r.status.code(), stdout(&r).as_str(), stderr(&r).as_str()),
        (
            Some(0),
            "identical: every output matches its provenance record and a rebuild reproduces it\n",
            ""
        )
    );
    // An edited version-1 record is still found out.
    std::fs::write(report.join("results.json"), "{}\n").unwrap();
    let r = galley(&["verify", "out/tiny"], dir.path());
    assert_eq!(
        (r.status.code(), stdout(&r).as_str()),
        (
            Some(4),
            "tampered: outputs differ from the provenance record, but the recorded inputs still rebuild the recorded outputs\n  output differs from its record: results.json\n"
        )
    );
}

#[test]
fn a_version_1_previous_report_gets_its_changes_appendix() {
    let (dir, _report) = built_tiny(&["--as-of", "2017-06-30"]);
    as_version_1(&dir.path().join("out/tiny"));
    let study = dir.path().join("study/tiny");
    let previous = study.join("previous");
    std::fs::create_dir_all(&previous).unwrap();
    for f in ["provenance.json", "results.json", "trail.json"] {
        std::fs::copy(dir.path().join("out/tiny").join(f), previous.join(f)).unwrap();
    }
    let manifest = study.join("study.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "published = \"published.toml\"",
        "published = \"published.toml\"\nprevious = \"previous\"",
    );
    std::fs::write(&manifest, text).unwrap();
    let r = galley(&["build", "study/tiny", "--out", "new"], dir.path());
    assert!(r.status.success(), "{}", stderr(&r));
    let typ = std::fs::read_to_string(dir.path().join("new/tiny/manuscript.typ")).unwrap();
    // deaths.n went from 3 to 7 (counted by hand in audit.rs's `as_of_censors...`).
    let row = typ
        .lines()
        .find(|l| l.contains("deaths\\.\u{200B}n]"))
        .expect("a row for deaths.n");
    assert!(row.contains("[3], [7]"), "{row}");

    // A previous trail from a newer galley stops the build, naming it.
    write(
        &previous.join("trail.json"),
        &json!({"format": "galley-trail/3", "entries": []}),
    );
    let r = galley(&["build", "study/tiny", "--out", "new"], dir.path());
    assert_eq!(
        (r.status.code(), stderr(&r)),
        (
            Some(1),
            format!(
                "error: `trail.json` is in format `galley-trail/3`, which this galley ({}) does not read: it reads galley-trail versions 1 and 2\n  --> study/tiny/previous/trail.json\n  = help: a newer galley wrote it: read it with that galley, or rebuild the report with this one\n\nerror: 1 problem found; nothing was written\n",
                env!("CARGO_PKG_VERSION")
            )
        )
    );
}

#[test]
fn diff_and_verify_refuse_a_newer_version_naming_file_version_and_versions_read() {
    let (dir, report) = built_tiny(&[]);
    let refused = |file: &str, stamp: &str, path: &str| {
        format!(
            "error: `{file}` is in format `{stamp}`, which this galley ({}) does not read: it reads {} versions 1 and 2\n  --> {path}\n  = help: a newer galley wrote it: read it with that galley, or rebuild the report with this one\n\nerror: 1 problem found; nothing was written\n",
            env!("CARGO_PKG_VERSION"),
            stamp.split('/').next().unwrap()
        )
    };
    let newer = dir.path().join("newer");
    copy_dir(&report, &newer);
    write(
        &newer.join("results.json"),
        &json!({"format": "galley-results/3", "blocks": {}}),
    );
    let r = galley(&["diff", "out/tiny", "newer"], dir.path());
    assert_eq!(
        (r.status.code(), stdout(&r), stderr(&r)),
        (
            Some(1),
            String::new(),
            refused("results.json", "galley-results/3", "newer/results.json")
        )
    );
    let mut provenance = read(&report.join("provenance.json"));
    provenance["format"] = json!("galley-provenance/3");
    write(&report.join("provenance.json"), &provenance);
    let r = galley(&["verify", "out/tiny"], dir.path());
    assert_eq!(
        (r.status.code(), stdout(&r), stderr(&r)),
        (
            Some(1),
            String::new(),
            refused(
                "provenance.json",
                "galley-provenance/3",
                "out/tiny/provenance.json"
            )
        )
    );
}

/// `galley check study/tiny` on a copy of the tiny fixture edited by `edit(file, text)`.
fn check_edited(file: &str, edit: impl Fn(&str) -> String) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("study/tiny");
    copy_dir(&root().join("tests/fixtures/tiny"), &study);
    let path = study.join(file);
    std::fs::write(&path, edit(&std::fs::read_to_string(&path).unwrap())).unwrap();
    let r = galley(&["check", "study/tiny"], dir.path());
    (r.status.code(), stderr(&r))
}

#[test]
fn a_study_of_a_newer_format_is_refused_at_its_format_version() {
    // Its new keys are not what is reported: the format is.
    let (code, err) = check_edited("study.toml", |t| {
        format!(
            "format_version = 2\n{}",
            t.replace("seed = 42", "seeds = [42]")
        )
    });
    assert_eq!(
        (code, err),
        (
            Some(1),
            format!(
                "error: this study is in study format 2, which this galley ({}) does not read: it reads study format 1\n  --> study/tiny/study.toml:1:18\n  |\n1 | format_version = 2\n  |                  ^\n  = help: a newer galley wrote it: build it with that galley (docs/formats.md lists what each format changed)\n\nerror: 1 problem found; nothing was written\n",
                env!("CARGO_PKG_VERSION")
            )
        )
    );
    let (code, err) = check_edited("study.toml", |t| format!("format_version = 1\n{t}"));
    assert_eq!((code, err.as_str()), (Some(0), ""));
}

#[test]
fn a_misspelt_key_near_a_known_one_gets_a_located_did_you_mean() {
    let (code, err) = check_edited("study.toml", |t| t.replace("seed = 42", "sede = 42"));
    assert_eq!(
        (code, err.as_str()),
        (
            Some(1),
            "error: unknown field `sede`, expected one of `title`, `short_title`, `keywords`, `seed`, `cutoff`, `data_statement`, `venue`\n  --> study/tiny/study.toml:5:1\n  |\n5 | sede = 42\n  | ^\n  = help: did you mean `seed`?\n\nerror: 1 problem found; nothing was written\n"
        )
    );
    let (code, err) = check_edited("manuscript/main.md", |t| {
        t.replace("by = \"group\"", "bye = \"group\"")
    });
    assert_eq!(
        (code, err.as_str()),
        (
            Some(1),
            "error: in analysis block `deaths` (count): unknown field `bye`, expected one of `id`, `kind`, `data`, `where`, `by`, `missing`\n  --> study/tiny/manuscript/main.md:23:1\n   |\n23 | bye = \"group\"\n   | ^\n  = help: did you mean `by`?\n\nerror: 1 problem found; nothing was written\n"
        )
    );
    // A value too: a column type.
    let (code, err) = check_edited("study.toml", |t| {
        t.replace("type = \"category\"", "type = \"categroy\"")
    });
    assert_eq!(code, Some(1));
    assert!(
        err.contains("  = help: did you mean `category`?\n"),
        "{err}"
    );
    // Nothing close: no guess.
    let (_, err) = check_edited("study.toml", |t| t.replace("seed = 42", "random = 42"));
    assert!(!err.contains("did you mean"), "{err}");
}
