//! The `bootstrap` block end to end: its estimates on R's lung data equal R's Kaplan-Meier medians
//! and one-year survival (`tests/reference/lung/km_sex_log.json`, from survfit), its interval is
//! a proper percentile interval around them, rebuilds give the same bytes, and the replicate limit
//! stops a block asking for a million.

use serde_json::Value;

use crate::common::{galley, root, stderr, stdout};

fn analyze(spec: &str) -> Value {
    let out = galley(
        &[
            "analyze",
            "--data",
            "tests/reference/lung/data.csv",
            "--block",
            &format!("tests/fixtures/bootstrap/{spec}.toml"),
        ],
        &root(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn reference_group(level: &str) -> Value {
    let text =
        std::fs::read_to_string(root().join("tests/reference/lung/km_sex_log.json")).unwrap();
    let km: Value = serde_json::from_str(&text).unwrap();
    km["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["level"] == level)
        .unwrap()
        .clone()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn median_difference_estimate_is_rs_medians_and_the_interval_covers_it() {
    let r = analyze("lung_median_difference");
    let (men, women) = (reference_group("1"), reference_group("2"));
    let (m1, m2) = (
        men["median"].as_f64().unwrap(),
        women["median"].as_f64().unwrap(),
    );
    assert!(
        close(r["by_level"]["1"]["value"].as_f64().unwrap(), m1),
        "{r}"
    );
    assert!(
        close(r["by_level"]["2"]["value"].as_f64().unwrap(), m2),
        "{r}"
    );
    assert!(close(r["estimate"].as_f64().unwrap(), m2 - m1), "{r}");
    assert_eq!(r["by_level"]["1"]["n"], men["n"]);
    assert_eq!(r["by_level"]["2"]["n"], women["n"]);
    let (lo, hi) = (r["lower"].as_f64().unwrap(), r["upper"].as_f64().unwrap());
    assert!(lo < m2 - m1 && m2 - m1 < hi, "{r}");
    assert!(r["se"].as_f64().unwrap() > 0.0);
    assert_eq!(r["replicates"], 2000);
    assert_eq!(
        r["defined"].as_u64().unwrap() + r["undefined"].as_u64().unwrap(),
        2000
    );
}

#[test]
fn survival_difference_estimate_is_rs_one_year_survival() {
    let r = analyze("lung_survival_difference");
    let at = |g: &Value| {
        g["at"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["time"] == 365)
            .unwrap()["surv"]
            .as_f64()
            .unwrap()
    };
    let (s1, s2) = (at(&reference_group("1")), at(&reference_group("2")));
    assert!(close(r["estimate"].as_f64().unwrap(), s2 - s1), "{r}");
    assert_eq!(r["at"], 365.0);
    assert_eq!(r["conf_level"], 0.9);
    let (lo, hi) = (r["lower"].as_f64().unwrap(), r["upper"].as_f64().unwrap());
    assert!(
        lo < s2 - s1 && s2 - s1 < hi && (-1.0..=1.0).contains(&lo),
        "{r}"
    );
    assert_eq!(r["undefined"], 0);
}

#[test]
fn the_same_block_gives_the_same_numbers_every_time() {
    assert_eq!(
        analyze("lung_median_difference"),
        analyze("lung_median_difference")
    );
}

#[test]
fn a_million_replicates_are_refused_at_the_limit_with_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("million.toml");
    let text = std::fs::read_to_string(
        root().join("tests/fixtures/bootstrap/lung_median_difference.toml"),
    )
    .unwrap()
    .replace("replicates = 2000", "replicates = 1000000");
    std::fs::write(&spec, text).unwrap();
    let out = galley(
        &[
            "analyze",
            "--data",
            "tests/reference/lung/data.csv",
            "--block",
            spec.to_str().unwrap(),
        ],
        &root(),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "asks for 1000000 replicates, more than the limit of 100000 (`bootstrap_replicates`)"
        ),
        "{err}"
    );
    assert!(err.contains("million.toml:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
