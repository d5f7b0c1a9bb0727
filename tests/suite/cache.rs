//! The block cache and the typesetting skip: hits give identical bytes, edits re-run only what they
//! touch, corrupted entries are ignored.

use std::path::Path;

use crate::build::copy_dir;
use crate::common::{galley, root, stderr};

fn build(study: &Path, out: &Path) -> String {
    let r = galley(
        &[
            "build",
            study.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--timings",
        ],
        &root(),
    );
    assert!(r.status.success(), "{}", stderr(&r));
    stderr(&r)
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for name in [
        "manuscript.pdf",
        "manuscript.typ",
        "results.json",
        "trail.json",
        "provenance.json",
    ] {
        files.push((name.to_string(), std::fs::read(dir.join(name)).unwrap()));
    }
    files
}

fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("survival");
    copy_dir(&root().join("tests/fixtures/survival"), &study);
    (dir, study)
}

#[test]
fn a_cache_hit_gives_the_same_bytes_as_a_cold_build() {
    let (dir, study) = fixture();
    let out = dir.path().join("out");
    let first = build(&study, &out);
    assert!(first.contains("blocks: 4 run, 0 from the cache"), "{first}");
    let cold = snapshot(&out.join("survival"));
    let second = build(&study, &out);
    assert!(
        second.contains("blocks: 0 run, 4 from the cache"),
        "{second}"
    );
    assert!(second.contains("typeset (unchanged, reused)"), "{second}");
    assert_eq!(snapshot(&out.join("survival")), cold);
}

#[test]
fn an_edited_block_reruns_and_an_untouched_one_does_not() {
    let (dir, study) = fixture();
    let out = dir.path().join("out");
    build(&study, &out);
    let main = study.join("manuscript/main.md");
    let text = std::fs::read_to_string(&main).unwrap();
    // Edit the Cox block only (its confidence level).
    assert!(text.contains("kind = \"cox\""));
    let edited = text.replacen("kind = \"cox\"", "kind = \"cox\"\nconf_level = 0.9", 1);
    std::fs::write(&main, edited).unwrap();
    let log = build(&study, &out);
    assert!(log.contains("blocks: 1 run, 3 from the cache"), "{log}");
    assert!(
        log.contains("block cox_os\n") || log.contains("block cox_os\r\n"),
        "{log}"
    );
    assert!(log.contains("block km_os (cached)"), "{log}");
    // Editing prose only re-runs nothing but re-typesets.
    let prose = std::fs::read_to_string(&main)
        .unwrap()
        .replacen("died.", "had died.", 1);
    std::fs::write(&main, prose).unwrap();
    let log = build(&study, &out);
    assert!(log.contains("blocks: 0 run, 4 from the cache"), "{log}");
    assert!(!log.contains("typeset (unchanged"), "{log}");
}

#[test]
fn a_corrupted_cache_entry_is_ignored() {
    let (dir, study) = fixture();
    let out = dir.path().join("out");
    build(&study, &out);
    let reference = snapshot(&out.join("survival"));
    let blocks = out.join("survival/.cache/blocks");
    let mut entries: Vec<_> = std::fs::read_dir(&blocks)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 4);
    // One truncated, one with a payload edited but the checksum left as it was.
    let bytes = std::fs::read(&entries[0]).unwrap();
    std::fs::write(&entries[0], &bytes[..bytes.len() / 2]).unwrap();
    let text = std::fs::read_to_string(&entries[1]).unwrap();
    let tampered = text.replacen("\\\"n\\\":", "\\\"n\\\":9", 1);
    assert_ne!(tampered, text, "the entry holds a result with an `n`");
    std::fs::write(&entries[1], tampered).unwrap();
    // The PDF record too.
    std::fs::write(out.join("survival/.cache/typeset.json"), "{not json").unwrap();
    let log = build(&study, &out);
    assert!(log.contains("blocks: 2 run, 2 from the cache"), "{log}");
    assert_eq!(snapshot(&out.join("survival")), reference);
}
