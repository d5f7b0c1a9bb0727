//! Missing values as R treats them. A row whose analysis variable is missing after its expression is
//! evaluated (`status == 1` on an unknown status is NA, not false) is left out, counted and warned
//! about; the estimates then equal R's (`tests/reference/missing/`, made by the R script beside
//! them) and those of the same data with the rows removed beforehand (R's `na.omit`).

use std::path::Path;

use proptest::prelude::*;
use serde_json::Value;

use crate::common::{galley, root, stderr};

fn reference() -> Value {
    let path = root().join("tests/reference/missing/therneau_book1.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn close(actual: &Value, expected: f64, tolerance: f64, what: &str) {
    let a = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {actual}"));
    let scale = expected.abs().max(1e-300);
    assert!(
        (a - expected).abs() / scale <= tolerance,
        "{what}: {a} vs {expected}"
    );
}

/// `galley analyze` on the Therneau & Grambsch data with the block spec in `spec`.
fn run_book1(spec: &Path) -> std::process::Output {
    let data = root().join("tests/reference/missing/therneau_book1.csv");
    galley(
        &[
            "analyze",
            "--data",
            data.to_str().unwrap(),
            "--block",
            spec.to_str().unwrap(),
        ],
        &root(),
    )
}

/// `galley analyze` on the Therneau & Grambsch data with a block body; the JSON it prints.
fn analyze_book1(body: &str) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, format!("id = \"b\"\ndata = \"data\"\n{body}")).unwrap();
    let out = run_book1(&spec);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    (serde_json::from_slice(&out.stdout).unwrap(), err)
}

/// The Breslow estimate solves 2 - r/(r+1) - 2r/(r+3) = 0 and the Efron estimate
/// 2 - r/(r+1) - r/(r+3) - r/(r+5) = 0 (r = exp(beta)), the partial-likelihood scores of the six
/// rows with a known status written out by hand. Solved here by bisection, independently of galley.
fn closed_form(ties: &str) -> f64 {
    let score = |r: f64| match ties {
        "breslow" => 2.0 - r / (r + 1.0) - 2.0 * r / (r + 3.0),
        _ => 2.0 - r / (r + 1.0) - r / (r + 3.0) - r / (r + 5.0),
    };
    let (mut lo, mut hi) = (1.0, 100.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if score(mid) > 0.0 { lo = mid } else { hi = mid }
    }
    (0.5 * (lo + hi)).ln()
}

#[test]
fn the_hand_computed_cox_example_drops_the_unknown_status_in_both_forms_of_the_event() {
    let r = reference();
    // The closed form of the Breslow estimate, log((3 + sqrt(33)) / 2), is also in R's file.
    close(
        &r["breslow_closed_form"],
        closed_form("breslow"),
        1e-12,
        "closed form",
    );
    for ties in ["breslow", "efron"] {
        for (form, event) in [("column", "status"), ("expression", "status == 1")] {
            let case = format!("{ties}_{form}");
            let (v, _) = analyze_book1(&format!(
                "kind = \"cox\"\ntime = \"time\"\nevent = \"{event}\"\ncovariates = [\"x\"]\nties = \"{ties}\"\n"
            ));
            let expected = &r[case.as_str()];
            assert_eq!(v["n"], expected["n"], "{case}: n");
            assert_eq!(v["events"], expected["events"], "{case}: events");
            assert_eq!(v["n_excluded"], 1, "{case}");
            assert_eq!(v["excluded_by"][event], 1, "{case}: {}", v["excluded_by"]);
            let term = &v["terms"][0];
            close(
                &term["coef"],
                expected["coef"].as_f64().unwrap(),
                1e-6,
                &case,
            );
            close(&term["coef"], closed_form(ties), 1e-8, &case);
            close(&term["se"], expected["se"].as_f64().unwrap(), 1e-6, &case);
            close(
                &v["loglik"],
                expected["loglik"][1].as_f64().unwrap(),
                1e-6,
                &case,
            );
            close(
                &v["loglik_null"],
                expected["loglik"][0].as_f64().unwrap(),
                1e-6,
                &case,
            );
            let warning = v["warnings"][0].as_str().unwrap_or_default();
            assert!(
                warning.contains(&format!(
                    "1 of 7 rows left out for missing values (complete cases; missing: `{event}` 1)"
                )),
                "{case}: {warning}"
            );
        }
    }
}

#[test]
fn kaplan_meier_and_logrank_leave_out_the_unknown_status_as_r_does() {
    let r = reference();
    let (km, _) =
        analyze_book1("kind = \"kaplan_meier\"\ntime = \"time\"\nevent = \"status == 1\"\n");
    let group = &km["groups"][0];
    assert_eq!(group["n"], r["km"]["n"]);
    let times: Vec<f64> = group["table"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["time"].as_f64().unwrap())
        .collect();
    assert_eq!(times, [1.0, 6.0, 8.0, 9.0]);
    for (i, row) in group["table"].as_array().unwrap().iter().enumerate() {
        close(
            &row["surv"],
            r["km"]["surv"][i].as_f64().unwrap().max(0.0),
            1e-6,
            "surv",
        );
        assert_eq!(row["n_risk"], r["km"]["n_risk"][i]);
    }
    let dir = tempfile::tempdir().unwrap();
    // The log-rank test by x >= 1: a derived group, then the test.
    let lr = analyze_in(
        dir.path(),
        &std::fs::read_to_string(root().join("tests/reference/missing/therneau_book1.csv"))
            .unwrap()
            .replace("\"time\",\"status\",\"x\"", "time,status,x,level")
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i == 0 {
                    l.to_string()
                } else {
                    let x: f64 = l.rsplit(',').next().unwrap().parse().unwrap();
                    format!("{l},{}", if x >= 1.0 { "high" } else { "low" })
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
        "kind = \"logrank\"\ntime = \"time\"\nevent = \"status == 1\"\nby = \"level\"\nlevels = [\"low\", \"high\"]\n",
    )
    .expect("log-rank runs");
    assert_eq!(lr["n"], r["logrank"]["n"]);
    close(
        &lr["chisq"],
        r["logrank"]["chisq"].as_f64().unwrap(),
        1e-6,
        "chisq",
    );
    for g in 0..2 {
        close(
            &lr["groups"][g]["expected"],
            r["logrank"]["expected"][g].as_f64().unwrap(),
            1e-6,
            "expected",
        );
    }
}

#[test]
fn the_missing_policy_silences_or_fails() {
    let body = "kind = \"cox\"\ntime = \"time\"\nevent = \"status == 1\"\ncovariates = [\"x\"]\n";
    let (v, _) = analyze_book1(&format!("{body}missing = \"exclude\"\n"));
    assert_eq!(v["n_excluded"], 1);
    assert!(v.get("warnings").is_none(), "{v}");

    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.toml");
    std::fs::write(
        &spec,
        format!("id = \"b\"\ndata = \"data\"\n{body}missing = \"fail\"\n"),
    )
    .unwrap();
    let out = run_book1(&spec);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("1 of 7 rows have a missing analysis variable (missing: `status == 1` 1)"),
        "{err}"
    );
    assert!(
        err.contains("spec.toml:7"),
        "located at the `missing` key: {err}"
    );

    std::fs::write(
        &spec,
        format!("id = \"b\"\ndata = \"data\"\n{body}missing = \"drop\"\n"),
    )
    .unwrap();
    let out = run_book1(&spec);
    assert!(
        stderr(&out).contains("unknown variant `drop`, expected one of `warn`, `exclude`, `fail`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_where_condition_drops_and_counts_rows_where_it_is_missing() {
    for (kind, selected) in [("filter", 4), ("count", 4)] {
        let (v, _) = analyze_book1(&format!("kind = \"{kind}\"\nwhere = \"status == 1\"\n"));
        assert_eq!(v["n"], selected, "{kind}");
        assert_eq!(v["where_missing"], 1, "{kind}");
        let warning = v["warnings"][0].as_str().unwrap_or_default();
        assert!(
            warning.contains("`where = \"status == 1\"` is missing on 1 of 7 rows (it reads `status`), so they are left out"),
            "{kind}: {warning}"
        );
    }
    // `or true` decides without the missing status, so nothing is dropped (R: NA | TRUE is TRUE).
    let (v, _) = analyze_book1("kind = \"filter\"\nwhere = \"status == 1 or x >= 0\"\n");
    assert_eq!(
        (v["n"].as_u64(), v["where_missing"].as_u64()),
        (Some(7), Some(0))
    );
    assert!(v.get("warnings").is_none());
    // Testing for missingness keeps the row explicitly.
    let (v, _) = analyze_book1("kind = \"count\"\nwhere = \"status is none\"\n");
    assert_eq!(v["n"], 1);
}

/// Run one block on CSV text (dataset `data`); `None` if the block fails.
fn analyze_in(dir: &Path, csv: &str, body: &str) -> Option<Value> {
    let data = dir.join("data.csv");
    let spec = dir.join("spec.toml");
    std::fs::write(&data, csv).unwrap();
    std::fs::write(&spec, format!("id = \"b\"\ndata = \"data\"\n{body}")).unwrap();
    galley::cmd::analyze::analyze(&data, &spec, &[]).ok()
}

/// Result keys that describe the exclusions themselves, which differ by design between the data
/// with missing values and the data with those rows removed.
const EXCLUSION_KEYS: &[&str] = &[
    "n_excluded",
    "excluded_by",
    "excluded",
    "missing",
    "warnings",
];

fn without_exclusions(mut v: Value) -> Value {
    if let Value::Object(map) = &mut v {
        for k in EXCLUSION_KEYS {
            map.remove(*k);
        }
    }
    v
}

/// The blocks defined on complete cases, each reading a column through an expression, and the
/// columns each reads.
const BLOCKS: &[(&str, &[&str])] = &[
    (
        "kind = \"kaplan_meier\"\ntime = \"time\"\nevent = \"status == 2\"\nby = \"arm\"\ntimes = [10]\n",
        &["time", "status", "arm"],
    ),
    (
        "kind = \"logrank\"\ntime = \"time\"\nevent = \"status == 2\"\nby = \"arm\"\n",
        &["time", "status", "arm"],
    ),
    (
        "kind = \"cox\"\ntime = \"time\"\nevent = \"status == 2\"\ncovariates = [\"x\", \"arm\"]\n",
        &["time", "status", "arm", "x"],
    ),
    (
        "kind = \"bootstrap\"\ntime = \"time\"\nevent = \"status == 2\"\nby = \"arm\"\nstatistic = \"survival_difference\"\nat = 10\nreplicates = 200\n",
        &["time", "status", "arm"],
    ),
    (
        "kind = \"logistic\"\noutcome = \"status == 2\"\ncovariates = [\"x\", \"age\"]\n",
        &["status", "x", "age"],
    ),
    (
        "kind = \"compare\"\nvariable = \"x\"\nby = \"arm\"\ntest = \"welch_t\"\n",
        &["x", "arm"],
    ),
    (
        "kind = \"compare\"\nvariable = \"x\"\nby = \"arm\"\ntest = \"wilcoxon\"\n",
        &["x", "arm"],
    ),
    (
        "kind = \"propensity_match\"\ntreatment = \"arm == 'B'\"\ncovariates = [\"x\", \"age\"]\nid_column = \"id\"\n",
        &["arm", "x", "age"],
    ),
];

const COLUMNS: [&str; 5] = ["time", "status", "arm", "x", "age"];

/// A cohort of `n` rows: id, time (with ties), status 1/2, arm A/B, x, age.
fn cohort(seed: &[u32], n: usize) -> Vec<[String; 6]> {
    (0..n)
        .map(|i| {
            let s = seed[i % seed.len()]
                .wrapping_mul(2654435761)
                .wrapping_add(i as u32 * 97);
            [
                format!("p{i}"),
                format!("{}", 1 + s % 23),
                format!("{}", 1 + (s >> 5) % 2),
                if (s >> 7).is_multiple_of(2) { "A" } else { "B" }.to_string(),
                format!("{:.3}", ((s >> 9) % 1000) as f64 / 250.0 - 2.0),
                format!("{}", 40 + (s >> 13) % 40),
            ]
        })
        .collect()
}

fn csv(rows: &[[String; 6]]) -> String {
    let mut out = String::from("id,time,status,arm,x,age\n");
    for r in rows {
        out.push_str(&r.join(","));
        out.push('\n');
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// R's `na.omit`: missing values placed at random in the columns a block reads (directly or
    /// through an expression) give the same estimates as the same data with those rows removed.
    #[test]
    fn missing_values_give_the_estimates_of_the_rows_removed(
        seed in prop::collection::vec(any::<u32>(), 8..16),
        n in 40usize..70,
        holes in prop::collection::vec((any::<prop::sample::Index>(), 0usize..5), 1..8),
    ) {
        let rows = cohort(&seed, n);
        let mut with_na = rows.clone();
        for (row, column) in &holes {
            with_na[row.index(n)][column + 1] = String::new();
        }
        let dir = tempfile::tempdir().unwrap();
        let mut compared = 0;
        for (body, reads) in BLOCKS {
            // The rows with a hole in a column this block reads, removed beforehand.
            let read: Vec<usize> = reads
                .iter()
                .map(|c| COLUMNS.iter().position(|k| k == c).unwrap() + 1)
                .collect();
            let kept: Vec<[String; 6]> = with_na
                .iter()
                .filter(|r| read.iter().all(|&c| !r[c].is_empty()))
                .cloned()
                .collect();
            let a = analyze_in(dir.path(), &csv(&with_na), body);
            let b = analyze_in(dir.path(), &csv(&kept), body);
            match (a, b) {
                (Some(a), Some(b)) => {
                    prop_assert_eq!(&a["n_excluded"], &Value::from(n - kept.len()), "{}", body);
                    prop_assert_eq!(without_exclusions(a), without_exclusions(b), "{}", body);
                    compared += 1;
                }
                (None, None) => {}
                (a, b) => prop_assert!(false, "{body}: only one of the runs failed: {a:?} / {b:?}"),
            }
        }
        prop_assert!(compared >= BLOCKS.len() - 1, "only {compared} blocks ran on both data sets");
    }
}
