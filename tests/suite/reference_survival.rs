//! The survival kinds (`kaplan_meier`, `logrank`, `cox`) through the real binary: every survival
//! reference case of `tests/reference/` recomputed by `galley analyze` with the spec in
//! `tests/reference/specs/<case>.toml` and compared value by value with R; errors that must be
//! clear messages and a non-zero exit; and a study that draws the figures and tables into a PDF.

use std::path::Path;

use serde_json::Value;

use crate::common::{self, EXACT, ITERATIVE};

/// Run one reference case and compare every value of R's result; returns how many were compared.
fn check(dataset: &str, case: &str, tolerance: &dyn Fn(&str) -> f64) -> usize {
    let actual = common::analyze_reference(dataset, case);
    let reference = common::reference(dataset, case);
    let n = common::assert_matches(&actual, &reference, tolerance);
    assert!(n > 0, "{case}: nothing compared");
    eprintln!("{case}: {n} values match R");
    n
}

/// Kaplan-Meier and log-rank are closed forms: 1e-6 relative.
fn exact(_: &str) -> f64 {
    EXACT
}

/// Cox: the coefficients come from Newton-Raphson, so they, their SEs and everything built on them
/// (HRs, limits, z, p, the likelihood-ratio and Wald tests, the log-likelihood at the optimum, the
/// concordance of the fitted predictor) get 1e-4. The log-likelihood and the score test at beta = 0
/// are closed forms: 1e-6.
fn cox_tolerance(path: &str) -> f64 {
    if path.starts_with("loglik_null") || path.starts_with("score_test") {
        EXACT
    } else {
        ITERATIVE
    }
}

macro_rules! reference_cases {
    ($($name:ident: $dataset:literal, $tolerance:expr;)*) => {
        $(
            #[test]
            fn $name() {
                check($dataset, stringify!($name), &$tolerance);
            }
        )*
    };
}

reference_cases! {
    km_overall_log: "lung", exact;
    km_sex_log: "lung", exact;
    km_sex_loglog: "lung", exact;
    km_sex_plain: "lung", exact;
    logrank_sex: "lung", exact;
    peto_sex: "lung", exact;
    logrank_ecog: "lung", exact;
    logrank_sex_strata_ecog: "lung", exact;
    cox_efron: "lung", cox_tolerance;
    cox_breslow: "lung", cox_tolerance;
    cox_cluster_inst: "lung", cox_tolerance;
    km_trt: "veteran", exact;
    km_celltype: "veteran", exact;
    logrank_celltype: "veteran", exact;
    cox_factor: "veteran", cox_tolerance;
    cox_factor_breslow: "veteran", cox_tolerance;
}

#[test]
fn convenience_keys_and_exclusions() {
    // Rows with a missing strata / cluster value are left out, counted and warned about.
    let strata = common::analyze_reference("lung", "logrank_sex_strata_ecog");
    assert_eq!(strata["n"], 227);
    assert_eq!(strata["n_excluded"], 1);
    assert!(
        strata["warnings"][0]
            .as_str()
            .unwrap()
            .contains("1 of 228 rows left out"),
        "{strata}"
    );
    assert_eq!(strata["test"], "Stratified log-rank");
    let cluster = common::analyze_reference("lung", "cox_cluster_inst");
    assert_eq!(cluster["n_excluded"], 1);
    assert_eq!(cluster["by_term"]["sex"]["hr"], cluster["terms"][1]["hr"]);
    let km = common::analyze_reference("lung", "km_sex_log");
    assert_eq!(km["by_level"]["2"]["median"], 426.0);
    assert_eq!(
        km["by_level"]["1"]["at"]["365"]["surv"],
        km["groups"][0]["at"][1]["surv"]
    );
    assert_eq!(km["n_excluded"], 0);
    assert!(km.get("warnings").is_none());
    let peto = common::analyze_reference("lung", "peto_sex");
    assert_eq!(peto["test"], "Peto-Peto");
}

// ---------------------------------------------------------------------------------------------
// Errors: a located message, exit code 1, never a panic
// ---------------------------------------------------------------------------------------------

/// Run `galley analyze` on `csv` with `spec`; assert it fails cleanly and return stderr.
fn analyze_fails(csv: &str, spec: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.csv");
    let block = dir.path().join("block.toml");
    std::fs::write(&data, csv).unwrap();
    std::fs::write(&block, spec).unwrap();
    let out = common::galley(
        &[
            "analyze",
            "--data",
            data.to_str().unwrap(),
            "--block",
            block.to_str().unwrap(),
        ],
        dir.path(),
    );
    let err = common::stderr(&out);
    assert!(
        !out.status.success(),
        "expected a failure, got:\n{}",
        common::stdout(&out)
    );
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("error:"), "{err}");
    err
}

fn lung_csv() -> String {
    std::fs::read_to_string(common::root().join("tests/reference/lung/data.csv")).unwrap()
}

const SMALL: &str = "time,dead,arm\n5,1,A\n8,0,A\n12,1,B\n20,1,B\n";

#[test]
fn unknown_field_is_named() {
    let err = analyze_fails(
        SMALL,
        "id = \"km\"\nkind = \"kaplan_meier\"\ndata = \"data\"\ntime = \"time\"\nevent = \"dead\"\nconf_typ = \"log\"\n",
    );
    assert!(err.contains("unknown field `conf_typ`"), "{err}");
}

#[test]
fn unknown_option_value_is_named() {
    let err = analyze_fails(
        SMALL,
        "id = \"cx\"\nkind = \"cox\"\ndata = \"data\"\ntime = \"time\"\nevent = \"dead\"\ncovariates = [\"arm\"]\nties = \"exact\"\n",
    );
    assert!(err.contains("unknown variant `exact`"), "{err}");
}

#[test]
fn missing_column_is_named_with_the_columns() {
    let err = analyze_fails(
        SMALL,
        "id = \"lr\"\nkind = \"logrank\"\ndata = \"data\"\ntime = \"time\"\nevent = \"dead\"\nby = \"group\"\n",
    );
    assert!(err.contains("has no column `group`"), "{err}");
    assert!(err.contains("time, dead, arm"), "{err}");
}

#[test]
fn event_column_must_be_zero_one() {
    let err = analyze_fails(
        &lung_csv(),
        "id = \"km\"\nkind = \"kaplan_meier\"\ndata = \"data\"\ntime = \"time\"\nevent = \"status\"\n",
    );
    assert!(err.contains("holds 2, expected 0 or 1"), "{err}");
    assert!(err.contains("status == 2"), "{err}");
}

#[test]
fn negative_times_are_refused() {
    let err = analyze_fails(
        "time,dead,arm\n5,1,A\n-3,0,A\n12,1,B\n20,1,B\n",
        "id = \"km\"\nkind = \"kaplan_meier\"\ndata = \"data\"\ntime = \"time\"\nevent = \"dead\"\nby = \"arm\"\n",
    );
    assert!(err.contains("negative on 1 data row(s) (2)"), "{err}");
}

#[test]
fn a_group_without_complete_rows_is_an_error() {
    // Group B has times only where the event status is missing.
    let err = analyze_fails(
        "time,dead,arm\n5,1,A\n8,0,A\n12,,B\n,1,B\n",
        "id = \"km\"\nkind = \"kaplan_meier\"\ndata = \"data\"\ntime = \"time\"\nevent = \"dead\"\nby = \"arm\"\n",
    );
    assert!(
        err.contains("group `B` of `arm` has no rows with complete data"),
        "{err}"
    );
}

#[test]
fn logrank_needs_two_groups() {
    let err = analyze_fails(
        "time,dead,arm\n5,1,A\n8,0,A\n12,1,A\n",
        "id = \"lr\"\nkind = \"logrank\"\ndata = \"data\"\ntime = \"time\"\nevent = \"dead\"\nby = \"arm\"\n",
    );
    assert!(err.contains("at least two groups"), "{err}");
    assert!(err.contains("one level (`A`)"), "{err}");
}

#[test]
fn levels_must_match_the_data() {
    let err = analyze_fails(
        SMALL,
        "id = \"lr\"\nkind = \"logrank\"\ndata = \"data\"\ntime = \"time\"\nevent = \"dead\"\nby = \"arm\"\nlevels = [\"B\"]\n",
    );
    assert!(err.contains("values not listed in `levels`: A"), "{err}");
    let err = analyze_fails(
        SMALL,
        "id = \"lr\"\nkind = \"logrank\"\ndata = \"data\"\ntime = \"time\"\nevent = \"dead\"\nby = \"arm\"\nlevels = [\"A\", \"C\"]\n",
    );
    assert!(err.contains("`C` is not a level of `arm`"), "{err}");
}

#[test]
fn cox_reference_and_levels_are_checked() {
    let spec = "id = \"cx\"\nkind = \"cox\"\ndata = \"data\"\ntime = \"time\"\nevent = \"dead\"\ncovariates = [\"arm\"]\n";
    let err = analyze_fails(SMALL, &format!("{spec}reference = {{ arm = \"C\" }}\n"));
    assert!(err.contains("`C` is not a level of `arm`"), "{err}");
    let err = analyze_fails(SMALL, &format!("{spec}levels = {{ time = [\"1\"] }}\n"));
    assert!(
        err.contains("`levels` names `time`, which is not among the covariates"),
        "{err}"
    );
    let err = analyze_fails(
        "time,dead,dose\n5,1,1\n8,0,2\n12,1,1\n20,1,2\n",
        "id = \"cx\"\nkind = \"cox\"\ndata = \"data\"\ntime = \"time\"\nevent = \"dead\"\ncovariates = [\"dose\"]\nlevels = { dose = [\"2\", \"1\"] }\n",
    );
    assert!(err.contains("`dose` is numeric"), "{err}");
    assert!(err.contains("factors = [\"dose\"]"), "{err}");
}

#[test]
fn cox_without_events_or_with_a_constant_covariate() {
    let err = analyze_fails(
        "time,dead,age\n5,0,50\n8,0,60\n12,0,70\n",
        "id = \"cx\"\nkind = \"cox\"\ndata = \"data\"\ntime = \"time\"\nevent = \"dead\"\ncovariates = [\"age\"]\n",
    );
    assert!(err.contains("no events"), "{err}");
    let err = analyze_fails(
        "time,dead,age\n5,1,50\n8,0,50\n12,1,50\n",
        "id = \"cx\"\nkind = \"cox\"\ndata = \"data\"\ntime = \"time\"\nevent = \"dead\"\ncovariates = [\"age\"]\n",
    );
    assert!(err.contains("\"age\" is constant"), "{err}");
}

#[test]
fn bad_confidence_level_and_rho() {
    let err = analyze_fails(
        SMALL,
        "id = \"km\"\nkind = \"kaplan_meier\"\ndata = \"data\"\ntime = \"time\"\nevent = \"dead\"\nconf_level = 95\n",
    );
    assert!(
        err.contains("`conf_level` must be between 0 and 1"),
        "{err}"
    );
    let err = analyze_fails(
        SMALL,
        "id = \"lr\"\nkind = \"logrank\"\ndata = \"data\"\ntime = \"time\"\nevent = \"dead\"\nby = \"arm\"\nrho = -1\n",
    );
    assert!(err.contains("`rho` must be"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// A study with the figures and tables
// ---------------------------------------------------------------------------------------------

fn fixture() -> std::path::PathBuf {
    common::root().join("tests/fixtures/survival")
}

/// Copy the survival fixture into a temporary folder, with `edit` applied to its manuscript.
fn fixture_copy(edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), dir.path());
    let main = dir.path().join("manuscript/main.md");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, edit(text)).unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
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

#[test]
fn survival_study_builds_with_figures_and_tables() {
    let out = tempfile::tempdir().unwrap();
    let result = common::galley(
        &[
            "build",
            fixture().to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ],
        &common::root(),
    );
    assert!(
        result.status.success(),
        "build failed:\n{}",
        common::stderr(&result)
    );
    let dest = std::fs::read_dir(out.path())
        .unwrap()
        .next()
        .expect("an output folder")
        .unwrap()
        .path();
    let pdf = std::fs::read(dest.join("manuscript.pdf")).unwrap();
    assert!(pdf.starts_with(b"%PDF"), "not a PDF");
    for figure in ["km_os", "cox_os"] {
        let svg = std::fs::read_to_string(dest.join("figures").join(format!("{figure}.svg")))
            .unwrap_or_else(|e| panic!("figures/{figure}.svg: {e}"));
        assert!(
            svg.starts_with("<svg") || svg.starts_with("<?xml"),
            "{figure}"
        );
    }
    let km_svg = std::fs::read_to_string(dest.join("figures/km_os.svg")).unwrap();
    assert!(km_svg.contains("Number at risk"), "risk table missing");
    assert!(km_svg.contains("Log-rank"), "test annotation missing");
    for table in ["km_os", "cox_os"] {
        let csv = std::fs::read_to_string(dest.join("tables").join(format!("{table}.csv")))
            .unwrap_or_else(|e| panic!("tables/{table}.csv: {e}"));
        assert!(csv.lines().count() > 2, "{table}: {csv}");
    }
    let cox_csv = std::fs::read_to_string(dest.join("tables/cox_os.csv")).unwrap();
    assert!(cox_csv.starts_with("Variable,HR (95% CI),p"), "{cox_csv}");
    assert!(cox_csv.contains("1 (reference)"), "{cox_csv}");
    let results: Value =
        serde_json::from_slice(&std::fs::read(dest.join("results.json")).unwrap()).unwrap();
    let text = results.to_string();
    assert!(!text.contains("NaN"), "{text}");
}

/// Build a copy of the fixture that is expected to fail; return stderr.
fn build_fails(edit: impl Fn(String) -> String) -> String {
    let study = fixture_copy(edit);
    let out = tempfile::tempdir().unwrap();
    let result = common::galley(
        &[
            "build",
            study.path().to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ],
        &common::root(),
    );
    let err = common::stderr(&result);
    assert!(!result.status.success(), "expected the build to fail");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn figure_test_must_name_an_earlier_logrank_block() {
    let err = build_fails(|t| t.replace("test = \"lr_os\"", "test = \"lr_missing\""));
    assert!(
        err.contains("no block `lr_missing` runs before this one"),
        "{err}"
    );
    assert!(err.contains("earlier logrank blocks: lr_os"), "{err}");
    let err = build_fails(|t| t.replace("test = \"lr_os\"", "test = \"cohort\""));
    assert!(err.contains("block `cohort` is a `derive` block"), "{err}");
}

#[test]
fn figure_labels_must_name_groups_and_terms() {
    let err = build_fails(|t| t.replace("labels = { A = ", "labels = { C = "));
    assert!(
        err.contains("`labels` names `C`, which is not a group"),
        "{err}"
    );
}
