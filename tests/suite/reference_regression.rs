//! The non-survival kinds (`describe`, `compare`, `logistic`, `propensity_match`) against R, through
//! the real binary: `galley analyze` on each reference dataset with the spec in
//! `tests/reference/specs/`, every value of the reference JSON compared. Also the error paths of
//! these kinds and of `table1` / `aggregate`, and the `matching` fixture study built to a PDF.

use std::path::Path;

use serde_json::Value;

use crate::common::{self, EXACT, ITERATIVE, analyze_reference, assert_matches, reference};

/// Tolerance for closed-form results (descriptive statistics, tests).
fn exact(_: &str) -> f64 {
    EXACT
}

/// Logistic regression: the coefficients and everything built on them (SEs, z, p, ORs, CIs,
/// deviance, AIC) come from R's iterative fit, so ITERATIVE; the null deviance is closed form.
fn logistic_tolerance(path: &str) -> f64 {
    if path == "null_deviance" || path == "n" || path == "iterations" {
        EXACT
    } else {
        ITERATIVE
    }
}

/// Matching: the distances are fitted propensity scores (iterative fit), so ITERATIVE; the SMDs are
/// closed form given the (identical) matched sets, so EXACT.
fn matching_tolerance(path: &str) -> f64 {
    if path.starts_with("distance") {
        ITERATIVE
    } else {
        EXACT
    }
}

fn check(dataset: &str, case: &str, tolerance: &dyn Fn(&str) -> f64) -> usize {
    let actual = analyze_reference(dataset, case);
    let expected = reference(dataset, case);
    let n = assert_matches(&actual, &expected, tolerance);
    assert!(n > 5, "{case}: only {n} values compared");
    n
}

#[test]
fn describe_age_by_sex() {
    check("lung", "describe_age_by_sex", &exact);
}

#[test]
fn describe_meal_by_sex() {
    // meal.cal has missing values: `missing` per group.
    check("lung", "describe_meal_by_sex", &exact);
}

/// The `tests` cases bundle five tests; one spec per test (`<case>.<test>.toml`), each block's
/// output compared with that test's object.
fn check_tests(dataset: &str, case: &str) {
    let expected = reference(dataset, case);
    for test in ["chisq", "chisq_yates", "fisher", "wilcoxon", "welch_t"] {
        let actual = analyze_reference(dataset, &format!("{case}.{test}"));
        let n = assert_matches(&actual, &expected[test], &exact);
        assert!(n >= 2, "{case}.{test}: only {n} values compared");
        assert_eq!(actual["test"], test, "{case}.{test}");
    }
}

#[test]
fn tests_status_age_by_sex() {
    check_tests("lung", "tests_status_age_by_sex");
}

#[test]
fn tests_married_age_by_treat() {
    check_tests("lalonde", "tests_married_age_by_treat");
}

#[test]
fn logistic_prior() {
    check("veteran", "logistic_prior", &logistic_tolerance);
}

#[test]
fn logistic_ps() {
    check("lalonde", "logistic_ps", &logistic_tolerance);
}

/// R's JSON writer unboxes a one-control set (`"controls": "PSID300"`); galley always gives a list.
fn normalize_sets(mut expected: Value) -> Value {
    if let Some(sets) = expected["matched_sets"].as_array_mut() {
        for set in sets {
            if let Value::String(s) = &set["controls"] {
                set["controls"] = Value::Array(vec![Value::String(s.clone())]);
            }
        }
    }
    expected
}

fn check_match(case: &str) {
    let actual = analyze_reference("lalonde", case);
    let expected = normalize_sets(reference("lalonde", case));
    // Matched sets identical, in R's order (assert_matches compares the ids as strings).
    assert_eq!(
        actual["matched_sets"], expected["matched_sets"],
        "{case}: matched sets differ"
    );
    let n = assert_matches(&actual, &expected, &matching_tolerance);
    assert!(n > 600, "{case}: only {n} values compared");
}

#[test]
fn match_1to1() {
    check_match("match_1to1");
}

#[test]
fn match_1to2_caliper() {
    check_match("match_1to2_caliper");
}

#[test]
fn match_1to4_caliper_logit() {
    check_match("match_1to4_caliper_logit");
}

// ---------------------------------------------------------------------------------------------
// Errors through the binary: a clear message and a non-zero exit (or a warning), never a panic.

/// Run `galley analyze` on `csv` (text) with `spec` (text) in a temporary folder.
fn analyze_text(csv: &str, spec: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.csv");
    let block = dir.path().join("block.toml");
    std::fs::write(&data, csv).unwrap();
    std::fs::write(&block, spec).unwrap();
    common::galley(
        &[
            "analyze",
            "--data",
            data.to_str().unwrap(),
            "--block",
            block.to_str().unwrap(),
        ],
        dir.path(),
    )
}

fn lalonde_csv() -> String {
    std::fs::read_to_string(common::root().join("tests/reference/lalonde/data.csv")).unwrap()
}

fn assert_fails(out: &std::process::Output, needles: &[&str]) {
    let err = common::stderr(out);
    assert!(
        !out.status.success(),
        "expected a failure; stdout:\n{}",
        common::stdout(out)
    );
    assert!(!err.contains("panicked"), "galley panicked:\n{err}");
    for needle in needles {
        assert!(err.contains(needle), "expected `{needle}` in:\n{err}");
    }
}

#[test]
fn unknown_field_is_an_error() {
    let out = analyze_text(
        &lalonde_csv(),
        "id = \"m\"\nkind = \"propensity_match\"\ndata = \"data\"\ntreatment = \"treat\"\ncovariates = [\"age\"]\nratoi = 2\n",
    );
    assert_fails(&out, &["unknown field `ratoi`"]);
    let out = analyze_text(
        &lalonde_csv(),
        "id = \"t\"\nkind = \"table1\"\ndata = \"data\"\nby = \"treat\"\nvariables = [{ name = \"age\", lable = \"Age\" }]\n",
    );
    assert_fails(&out, &["unknown field `lable`"]);
}

#[test]
fn missing_column_is_an_error() {
    let out = analyze_text(
        &lalonde_csv(),
        "id = \"l\"\nkind = \"logistic\"\ndata = \"data\"\noutcome = \"treat\"\ncovariates = [\"age\", \"income\"]\n",
    );
    assert_fails(&out, &["no column `income`", "its columns are"]);
    let out = analyze_text(
        &lalonde_csv(),
        "id = \"d\"\nkind = \"describe\"\ndata = \"data\"\nvariable = \"agee\"\n",
    );
    assert_fails(&out, &["no column `agee`"]);
}

#[test]
fn covariate_with_one_level_is_an_error() {
    let csv = "y,x,site\n1,1.0,A\n0,2.0,A\n1,3.0,A\n0,4.0,A\n1,2.5,A\n";
    let out = analyze_text(
        csv,
        "id = \"l\"\nkind = \"logistic\"\ndata = \"data\"\noutcome = \"y\"\ncovariates = [\"x\", \"site\"]\n",
    );
    assert_fails(&out, &["site"]);
    let err = common::stderr(&out);
    assert!(err.contains("level"), "{err}");
}

#[test]
fn fewer_than_two_groups_is_an_error() {
    let csv = "g,x\nA,1\nA,2\nA,3\n,4\n";
    let out = analyze_text(
        csv,
        "id = \"c\"\nkind = \"compare\"\ndata = \"data\"\nvariable = \"x\"\nby = \"g\"\n",
    );
    assert_fails(&out, &["exactly two groups", "found 1 (A)"]);
    // Three groups are an error too.
    let csv = "g,x\nA,1\nB,2\nC,3\n";
    let out = analyze_text(
        csv,
        "id = \"c\"\nkind = \"compare\"\ndata = \"data\"\nvariable = \"x\"\nby = \"g\"\n",
    );
    assert_fails(&out, &["found 3 (A, B, C)"]);
}

#[test]
fn separated_logistic_warns_without_nan() {
    let csv = "y,x\n0,1\n0,2\n0,3\n0,4\n1,5\n1,6\n1,7\n1,8\n";
    let out = analyze_text(
        csv,
        "id = \"l\"\nkind = \"logistic\"\ndata = \"data\"\noutcome = \"y\"\ncovariates = [\"x\"]\n",
    );
    let text = common::stdout(&out);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let warnings = v["warnings"].as_array().unwrap();
    assert!(!warnings.is_empty(), "no warning for separated data: {v}");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("0 or 1")),
        "{warnings:?}"
    );
}

#[test]
fn bad_aggregate_function_is_an_error() {
    // `galley analyze` names the CSV both `data` and by its stem: aggregate the table into itself.
    let csv = "id,size\np1,3\np2,5\n";
    let out = analyze_text(
        csv,
        "id = \"a\"\nkind = \"aggregate\"\ndata = \"data\"\ninto = \"data\"\nby = \"id\"\n[columns]\nbig = \"median(size)\"\n",
    );
    assert_fails(&out, &["unknown summary function `median`", "count()"]);
    let out = analyze_text(
        csv,
        "id = \"a\"\nkind = \"aggregate\"\ndata = \"data\"\ninto = \"data\"\nby = \"id\"\n[columns]\nbig = \"any size > 3\"\n",
    );
    assert_fails(&out, &["is not a summary"]);
}

#[test]
fn aggregate_through_the_binary() {
    let csv = "id,size\np1,3\np2,5\n";
    let out = analyze_text(
        csv,
        "id = \"a\"\nkind = \"aggregate\"\ndata = \"data\"\ninto = \"data\"\nby = \"id\"\n[columns]\nn = \"count()\"\nbig = \"any(size > 3)\"\n",
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["n"], 2);
    assert_eq!(v["without_children"], 0);
}

// ---------------------------------------------------------------------------------------------
// The fixture study: aggregate, table1 before/after matching, propensity match with a Love plot,
// a count on the matched cohort; built to a PDF.

#[test]
fn matching_fixture_builds() {
    let root = common::root();
    let study = root.join("tests/fixtures/matching");
    let out = tempfile::tempdir().unwrap();
    let run = common::galley(
        &[
            "build",
            study.to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ],
        &root,
    );
    assert!(
        run.status.success(),
        "build failed:\n{}",
        common::stderr(&run)
    );
    let dir = out.path().join("matching");
    for file in [
        "manuscript.pdf",
        "results.json",
        "figures/ps.svg",
        "tables/baseline.csv",
        "tables/ps.csv",
        "figures/age.svg",
        "figures/fracture.svg",
        "tables/fracture.csv",
    ] {
        assert!(dir.join(file).is_file(), "missing output {file}");
    }
    let results: Value = crate::common::record(&dir.join("results.json"));
    let result = |id: &str| -> &Value {
        let r = &results[id]["result"];
        assert!(r.is_object(), "no result `{id}` in results.json");
        r
    };
    let ps = result("ps");
    let treated = ps["n_treated_matched"].as_u64().unwrap();
    let controls = ps["n_control_matched"].as_u64().unwrap();
    let n = result("matched_n")["n"].as_u64().unwrap();
    assert_eq!(
        n,
        treated + controls,
        "the count block sees the matched cohort"
    );
    let csv = std::fs::read_to_string(dir.join("tables/baseline.csv")).unwrap();
    assert!(csv.starts_with("Characteristic,"), "{csv}");
    assert!(
        Path::new(&dir.join("figures/ps.svg"))
            .metadata()
            .unwrap()
            .len()
            > 1000
    );
}
