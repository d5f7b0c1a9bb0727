//! Fuzz regressions: every input kept under `tests/fuzz-corpus/<target>/` (crashes the fuzzers
//! found, and a few seeds) replayed through the same entry point as the cargo-fuzz target
//! (`fuzz/src/lib.rs`, compiled here unchanged), so `cargo test` guards every fixed crash without
//! a fuzzer or a nightly toolchain. See `fuzz/README.md` for running the fuzzers themselves.
//!
//! Also here, because they need galley rather than the statistics crate: dates before 1900 and
//! after 2100 through `galley::study::dataset::parse_date` and a `survival_time` block.

#[path = "../../fuzz/src/lib.rs"]
mod harness;

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = crate::common::root().join("tests/fuzz-corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    files.sort();
    files
}

/// Replay each file of a target's corpus; report every input that fails, not just the first.
fn replay(target: &str, run: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    let files = corpus(target);
    assert!(!files.is_empty(), "tests/fuzz-corpus/{target}/ is empty");
    let mut failed = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).expect("corpus file");
        if std::panic::catch_unwind(|| run(&bytes)).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "fuzz regressions fail on:\n{}",
        failed.join("\n")
    );
}

#[test]
fn fuzz_regressions_manifest() {
    let dir = tempfile::tempdir().expect("temporary study folder");
    harness::prepare_study(dir.path());
    replay("manifest", |data| harness::manifest_in(dir.path(), data));
}

#[test]
fn fuzz_regressions_csv() {
    replay("csv", harness::csv);
}

#[test]
fn fuzz_regressions_bibliography() {
    replay("bibliography", harness::bibliography);
}

#[test]
fn fuzz_regressions_markdown() {
    replay("markdown", harness::markdown);
}

#[test]
fn fuzz_regressions_template() {
    replay("template", harness::template);
}

#[test]
fn fuzz_regressions_analysis() {
    replay("analysis", harness::analysis);
}

#[test]
fn fuzz_regressions_provenance() {
    replay("provenance", harness::provenance);
}

#[test]
fn fuzz_targets_have_corpus_folders() {
    for target in harness::TARGETS {
        assert!(!corpus(target).is_empty(), "no corpus for {target}");
        assert!(
            crate::common::root()
                .join("fuzz/fuzz_targets")
                .join(format!("{target}.rs"))
                .is_file()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Dates before 1900 and after 2100.

#[test]
fn dates_before_1900_and_after_2100() {
    use galley::study::dataset::{days_since_epoch, parse_date};
    use jiff::civil::date;
    assert_eq!(parse_date("1899-12-31", None), Some(date(1899, 12, 31)));
    assert_eq!(parse_date("1600-02-29", None), Some(date(1600, 2, 29)));
    assert_eq!(parse_date("0001-01-01", None), Some(date(1, 1, 1)));
    assert_eq!(parse_date("2101-01-01", None), Some(date(2101, 1, 1)));
    assert_eq!(parse_date("9999-12-31", None), Some(date(9999, 12, 31)));
    assert_eq!(parse_date("2400-02-29", None), Some(date(2400, 2, 29)));
    // Not dates: 1900 and 2100 are not leap years; no five-digit or signed years in ISO columns.
    for bad in [
        "1900-02-29",
        "2100-02-29",
        "10000-01-01",
        "+2020-01-01",
        "-001-01-01",
        "1899-13-01",
    ] {
        assert_eq!(parse_date(bad, None), None, "{bad}");
    }
    // A custom format reaches the same range.
    assert_eq!(
        parse_date("31/12/1850", Some("%d/%m/%Y")),
        Some(date(1850, 12, 31))
    );
    assert_eq!(
        parse_date("01/01/2150", Some("%d/%m/%Y")),
        Some(date(2150, 1, 1))
    );
    // Day counts are exact across the centuries (no 1900-based epoch, no two-digit years).
    assert_eq!(days_since_epoch(date(1900, 1, 1)), -25567.0);
    assert_eq!(days_since_epoch(date(2100, 1, 1)), 47482.0);
    assert_eq!(days_since_epoch(date(1, 1, 1)), -719162.0);
}

#[test]
fn survival_time_across_centuries() {
    // Follow-up from 1899 to 1901 (two years, 1900 not a leap year) and from 2099 to 2101; with
    // no cutoff (an odd-length input: see harness::analysis) nothing is censored administratively.
    let mut manuscript = String::from(
        "```analysis\nid = \"s\"\nkind = \"survival_time\"\ndata = \"patients\"\nstart = \"start\"\n\
         end = \"end\"\nevent = \"alive == false\"\nunit = \"days\"\n```\n",
    );
    if manuscript.len() % 2 == 0 {
        manuscript.push('\n');
    }
    let results = harness::analysis_results(manuscript.as_bytes());
    let s = results["s"].as_ref().expect("survival_time runs");
    assert_eq!(s["n"], 5, "{s}");
    assert_eq!(s["censored_at_cutoff"], 0, "{s}");

    // The derived times, checked through a count over them.
    let manuscript = format!(
        "{manuscript}\n```analysis\nid = \"c\"\nkind = \"count\"\ndata = \"s\"\n\
         where = \"time == 623 or time == 903\"\n```\n"
    );
    let manuscript = if manuscript.len() % 2 == 0 {
        manuscript + " "
    } else {
        manuscript
    };
    let results = harness::analysis_results(manuscript.as_bytes());
    // 1899-05-02 -> 1901-01-15: 365 + 243 + 15 = 623 days; 2099-03-20 -> 2101-09-09: 903 days.
    let c = results["c"].as_ref().expect("count runs");
    assert_eq!(c["n"], 2, "{c}");

    // With the cutoff (even length), follow-up starting after 2020-12-31 is excluded.
    let even = if manuscript.len() % 2 == 0 {
        manuscript.clone()
    } else {
        manuscript.clone() + " "
    };
    let results = harness::analysis_results(even.as_bytes());
    let s = results["s"].as_ref().expect("survival_time runs");
    assert_eq!(s["excluded_after_cutoff"], 1, "{s}");
    assert_eq!(s["n"], 4, "{s}");
}
