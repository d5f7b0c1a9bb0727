//! Kaplan-Meier, log-rank and Cox against R 4.2.2 / survival 3.5-3 (`tests/reference/`).
//!
//! Every number of each reference case is compared by walking the reference JSON alongside the
//! JSON our result serialises to, so field names are checked too. Tolerances: 1e-6 relative
//! (1e-12 absolute near zero) for closed-form quantities (Kaplan-Meier, log-rank, the Cox null
//! log-likelihood, score test at beta = 0, concordance); 1e-4 relative for quantities that depend
//! on the iteratively fitted Cox coefficients (coef, SEs, HR and CI, z, p, loglik, LR and Wald
//! tests), as `tests/reference/README.md` allows, since R stops Newton-Raphson at a relative
//! log-likelihood change of 1e-9 rather than at the exact maximum.
//!
//! Extra cases below the reference ones carry values printed by R (the call is quoted beside
//! each), or closed forms; none asserts a value this crate produced.

use galley_stats::cox::{CoxOptions, Ties, cox};
use galley_stats::km::{ConfType, KmOptions, kaplan_meier};
use galley_stats::logrank::logrank;
use nalgebra::DMatrix;
use serde_json::Value;
use std::collections::HashMap;

const REF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/reference");

// ---------------------------------------------------------------------------------------------
// Loading the reference data (private to this file; see the brief about tests/common).

/// A CSV column: numbers where they parse, text otherwise, `None` for an empty cell.
#[derive(Clone, Debug)]
enum Cell {
    Num(f64),
    Text(String),
    Missing,
}

struct Frame {
    cols: HashMap<String, Vec<Cell>>,
    nrows: usize,
}

impl Frame {
    fn load(dataset: &str) -> Frame {
        let path = format!("{REF}/{dataset}/data.csv");
        let mut rdr = csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let headers: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
        let mut cols: HashMap<String, Vec<Cell>> =
            headers.iter().map(|h| (h.clone(), Vec::new())).collect();
        let mut nrows = 0;
        for rec in rdr.records() {
            let rec = rec.unwrap();
            for (h, v) in headers.iter().zip(rec.iter()) {
                let cell = if v.is_empty() || v == "NA" {
                    Cell::Missing
                } else if let Ok(x) = v.parse::<f64>() {
                    Cell::Num(x)
                } else {
                    Cell::Text(v.to_string())
                };
                cols.get_mut(h).unwrap().push(cell);
            }
            nrows += 1;
        }
        Frame { cols, nrows }
    }

    /// Rows where none of `vars` is missing (complete cases, as the caller drops them).
    fn complete(&self, vars: &[&str]) -> Vec<usize> {
        (0..self.nrows)
            .filter(|&i| {
                vars.iter()
                    .all(|v| !matches!(self.cols[*v][i], Cell::Missing))
            })
            .collect()
    }

    fn num(&self, var: &str, rows: &[usize]) -> Vec<f64> {
        rows.iter()
            .map(|&i| match &self.cols[var][i] {
                Cell::Num(x) => *x,
                other => panic!("{var} row {i}: {other:?} is not a number"),
            })
            .collect()
    }

    /// The column as the text R would print for its level ("1", "squamous").
    fn level(&self, var: &str, i: usize) -> String {
        match &self.cols[var][i] {
            Cell::Num(x) => format!("{x}"),
            Cell::Text(s) => s.clone(),
            Cell::Missing => panic!("{var} row {i} is missing"),
        }
    }

    /// Group codes in the order of `labels` (the reference's level order).
    fn codes(&self, var: &str, rows: &[usize], labels: &[String]) -> Vec<usize> {
        rows.iter()
            .map(|&i| {
                let l = self.level(var, i);
                labels
                    .iter()
                    .position(|x| *x == l)
                    .unwrap_or_else(|| panic!("level {l} of {var} not in {labels:?}"))
            })
            .collect()
    }
}

fn reference(case: &str) -> Value {
    let path = format!("{REF}/{case}.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn levels(reference: &Value) -> Vec<String> {
    reference["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["level"].as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Comparison.

/// Walks the reference and our serialised result together; every number of the reference is
/// compared with the tolerance `tol(path)`. Returns the worst relative error seen.
struct Compare<'a> {
    case: &'a str,
    tol: &'a dyn Fn(&str) -> f64,
    worst: f64,
    worst_at: String,
    compared: usize,
}

impl Compare<'_> {
    fn walk(&mut self, path: &str, want: &Value, got: &Value) {
        match want {
            Value::Object(m) => {
                for (k, w) in m {
                    if k == "_r_call" || k == "kind" {
                        continue;
                    }
                    let g = got
                        .get(k)
                        .unwrap_or_else(|| panic!("{}: {path}.{k} missing in result", self.case));
                    self.walk(&format!("{path}.{k}"), w, g);
                }
            }
            Value::Array(a) => {
                let b = got
                    .as_array()
                    .unwrap_or_else(|| panic!("{}: {path} is not an array", self.case));
                assert_eq!(a.len(), b.len(), "{}: {path} length", self.case);
                for (i, (w, g)) in a.iter().zip(b).enumerate() {
                    self.walk(&format!("{path}[{i}]"), w, g);
                }
            }
            Value::Null => assert!(
                got.is_null(),
                "{}: {path}: R has NA (null), we have {got}",
                self.case
            ),
            Value::Number(n) => {
                let w = n.as_f64().unwrap();
                let g = got
                    .as_f64()
                    .unwrap_or_else(|| panic!("{}: {path}: R has {w}, we have {got}", self.case));
                let tol = (self.tol)(path);
                let err = (g - w).abs();
                let rel = if w.abs() < 1e-12 {
                    assert!(err <= 1e-12, "{}: {path}: want {w}, got {g}", self.case);
                    0.0
                } else {
                    err / w.abs()
                };
                assert!(
                    rel <= tol,
                    "{}: {path}: want {w}, got {g} (relative error {rel:.2e} > {tol:.0e})",
                    self.case
                );
                if rel > self.worst {
                    self.worst = rel;
                    self.worst_at = path.to_string();
                }
                self.compared += 1;
            }
            Value::String(s) => assert_eq!(got.as_str(), Some(s.as_str()), "{}: {path}", self.case),
            Value::Bool(b) => assert_eq!(got.as_bool(), Some(*b), "{}: {path}", self.case),
        }
    }
}

fn compare(case: &str, want: &Value, got: &Value, tol: &dyn Fn(&str) -> f64) {
    let mut c = Compare {
        case,
        tol,
        worst: 0.0,
        worst_at: String::new(),
        compared: 0,
    };
    c.walk("", want, got);
    assert!(c.compared > 0);
    println!(
        "{case}: {} numbers, worst relative error {:.2e} at {}",
        c.compared, c.worst, c.worst_at
    );
}

const CLOSED_FORM: f64 = 1e-6;
/// Iteratively fitted Cox quantities (see the module comment).
const ITERATIVE: f64 = 1e-4;

fn closed_form(_: &str) -> f64 {
    CLOSED_FORM
}

/// Cox paths: the null log-likelihood, the score test at beta = 0, the counts and the
/// concordance (a ratio of pair counts) are closed form; the rest depends on the fitted beta.
fn cox_tol(path: &str) -> f64 {
    let closed = path == ".loglik_null"
        || path.starts_with(".score_test")
        || path == ".n"
        || path == ".events"
        || path == ".concordance"
        || path.ends_with(".df");
    if closed { CLOSED_FORM } else { ITERATIVE }
}

// ---------------------------------------------------------------------------------------------
// Kaplan-Meier.

fn check_km(case: &str, dataset: &str, group: Option<&str>, event_code: f64) {
    let want = reference(case);
    let data = Frame::load(dataset);
    let mut vars = vec!["time", "status"];
    if let Some(g) = group {
        vars.push(g);
    }
    let rows = data.complete(&vars);
    let time = data.num("time", &rows);
    let event: Vec<bool> = data
        .num("status", &rows)
        .iter()
        .map(|&s| s == event_code)
        .collect();
    let labels = levels(&want);
    let codes = match group {
        Some(g) => data.codes(g, &rows, &labels),
        None => vec![0; rows.len()],
    };
    let conf_type = match want["conf_type"].as_str().unwrap() {
        "log" => ConfType::Log,
        "log-log" => ConfType::LogLog,
        "plain" => ConfType::Plain,
        other => panic!("conf_type {other}"),
    };
    let times: Vec<f64> = want["groups"][0]["at"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["time"].as_f64().unwrap())
        .collect();
    let options = KmOptions {
        conf_type,
        conf_level: want["conf_level"].as_f64().unwrap(),
        times,
        extend: false,
    };
    let fit = kaplan_meier(&time, &event, &codes, &labels, &options).unwrap();
    compare(
        case,
        &want,
        &serde_json::to_value(&fit).unwrap(),
        &closed_form,
    );
}

#[test]
fn km_overall_log() {
    check_km("lung/km_overall_log", "lung", None, 2.0);
}

#[test]
fn km_sex_log() {
    check_km("lung/km_sex_log", "lung", Some("sex"), 2.0);
}

#[test]
fn km_sex_loglog() {
    check_km("lung/km_sex_loglog", "lung", Some("sex"), 2.0);
}

#[test]
fn km_sex_plain() {
    check_km("lung/km_sex_plain", "lung", Some("sex"), 2.0);
}

#[test]
fn km_trt() {
    check_km("veteran/km_trt", "veteran", Some("trt"), 1.0);
}

#[test]
fn km_celltype() {
    check_km("veteran/km_celltype", "veteran", Some("celltype"), 1.0);
}

// ---------------------------------------------------------------------------------------------
// Log-rank.

fn check_logrank(case: &str, dataset: &str, group: &str, strata: Option<&str>, event_code: f64) {
    let want = reference(case);
    let data = Frame::load(dataset);
    let mut vars = vec!["time", "status", group];
    if let Some(s) = strata {
        vars.push(s);
    }
    let rows = data.complete(&vars);
    let time = data.num("time", &rows);
    let event: Vec<bool> = data
        .num("status", &rows)
        .iter()
        .map(|&s| s == event_code)
        .collect();
    let labels = levels(&want);
    let codes = data.codes(group, &rows, &labels);
    let strata_codes = strata.map(|s| {
        let mut lv: Vec<String> = rows.iter().map(|&i| data.level(s, i)).collect();
        lv.sort();
        lv.dedup();
        data.codes(s, &rows, &lv)
    });
    let rho = want["rho"].as_f64().unwrap();
    let fit = logrank(&time, &event, &codes, &labels, strata_codes.as_deref(), rho).unwrap();
    compare(
        case,
        &want,
        &serde_json::to_value(&fit).unwrap(),
        &closed_form,
    );
}

#[test]
fn logrank_sex() {
    check_logrank("lung/logrank_sex", "lung", "sex", None, 2.0);
}

#[test]
fn peto_sex() {
    check_logrank("lung/peto_sex", "lung", "sex", None, 2.0);
}

#[test]
fn logrank_ecog() {
    check_logrank("lung/logrank_ecog", "lung", "ph.ecog", None, 2.0);
}

#[test]
fn logrank_sex_strata_ecog() {
    check_logrank(
        "lung/logrank_sex_strata_ecog",
        "lung",
        "sex",
        Some("ph.ecog"),
        2.0,
    );
}

#[test]
fn logrank_celltype() {
    check_logrank("veteran/logrank_celltype", "veteran", "celltype", None, 1.0);
}

// ---------------------------------------------------------------------------------------------
// Cox.

/// A numeric covariate, or the dummy of one level of a factor (`variable=level`).
enum Col<'a> {
    Num(&'a str),
    Dummy(&'a str, &'a str),
}

impl Col<'_> {
    fn var(&self) -> &str {
        match self {
            Col::Num(v) | Col::Dummy(v, _) => v,
        }
    }
    fn name(&self) -> String {
        match self {
            Col::Num(v) => v.to_string(),
            Col::Dummy(v, l) => format!("{v}={l}"),
        }
    }
}

struct CoxCase<'a> {
    dataset: &'a str,
    event_code: f64,
    cols: Vec<Col<'a>>,
    ties: Ties,
    strata: Option<&'a str>,
    cluster: Option<&'a str>,
}

fn fit_cox(case: &CoxCase) -> galley_stats::cox::Cox {
    let data = Frame::load(case.dataset);
    let mut vars = vec!["time", "status"];
    vars.extend(case.cols.iter().map(|c| c.var()));
    vars.extend(case.strata);
    vars.extend(case.cluster);
    let rows = data.complete(&vars);
    let time = data.num("time", &rows);
    let event: Vec<bool> = data
        .num("status", &rows)
        .iter()
        .map(|&s| s == case.event_code)
        .collect();
    let p = case.cols.len();
    let x = DMatrix::from_fn(rows.len(), p, |i, j| match &case.cols[j] {
        Col::Num(v) => data.num(v, &rows[i..=i])[0],
        Col::Dummy(v, l) => f64::from(data.level(v, rows[i]) == *l),
    });
    let names: Vec<String> = case.cols.iter().map(Col::name).collect();
    let strata: Option<Vec<usize>> = case.strata.map(|s| {
        let mut lv: Vec<String> = rows.iter().map(|&i| data.level(s, i)).collect();
        lv.sort();
        lv.dedup();
        data.codes(s, &rows, &lv)
    });
    let cluster: Option<Vec<usize>> = case
        .cluster
        .map(|c| data.num(c, &rows).iter().map(|&v| v as usize).collect());
    let options = CoxOptions {
        ties: case.ties,
        strata: strata.as_deref(),
        cluster: cluster.as_deref(),
        ..CoxOptions::default()
    };
    cox(&time, &event, &x, &names, &options).unwrap()
}

fn check_cox(name: &str, case: CoxCase) {
    let want = reference(name);
    let fit = fit_cox(&case);
    assert!(fit.warnings.is_empty(), "{name}: {:?}", fit.warnings);
    compare(name, &want, &serde_json::to_value(&fit).unwrap(), &cox_tol);
}

#[test]
fn cox_efron() {
    check_cox(
        "lung/cox_efron",
        CoxCase {
            dataset: "lung",
            event_code: 2.0,
            cols: vec![Col::Num("age"), Col::Num("sex"), Col::Num("ph.ecog")],
            ties: Ties::Efron,
            strata: None,
            cluster: None,
        },
    );
}

#[test]
fn cox_breslow() {
    check_cox(
        "lung/cox_breslow",
        CoxCase {
            dataset: "lung",
            event_code: 2.0,
            cols: vec![Col::Num("age"), Col::Num("sex"), Col::Num("ph.ecog")],
            ties: Ties::Breslow,
            strata: None,
            cluster: None,
        },
    );
}

#[test]
fn cox_cluster_inst() {
    check_cox(
        "lung/cox_cluster_inst",
        CoxCase {
            dataset: "lung",
            event_code: 2.0,
            cols: vec![Col::Num("age"), Col::Num("sex")],
            ties: Ties::Efron,
            strata: None,
            cluster: Some("inst"),
        },
    );
}

fn celltype_dummies<'a>() -> Vec<Col<'a>> {
    // Reference level squamous, as R's factor order in the reference.
    vec![
        Col::Dummy("celltype", "smallcell"),
        Col::Dummy("celltype", "adeno"),
        Col::Dummy("celltype", "large"),
    ]
}

#[test]
fn cox_factor() {
    let mut cols = vec![Col::Num("trt")];
    cols.extend(celltype_dummies());
    cols.extend([Col::Num("karno"), Col::Num("age")]);
    check_cox(
        "veteran/cox_factor",
        CoxCase {
            dataset: "veteran",
            event_code: 1.0,
            cols,
            ties: Ties::Efron,
            strata: None,
            cluster: None,
        },
    );
}

#[test]
fn cox_factor_breslow() {
    let mut cols = vec![Col::Num("trt")];
    cols.extend(celltype_dummies());
    cols.push(Col::Num("karno"));
    check_cox(
        "veteran/cox_factor_breslow",
        CoxCase {
            dataset: "veteran",
            event_code: 1.0,
            cols,
            ties: Ties::Breslow,
            strata: None,
            cluster: None,
        },
    );
}

// ---------------------------------------------------------------------------------------------
// More R results (R 4.2.2, survival 3.5-3, printed with options(digits = 15)) for features the
// reference files do not exercise: stratified Cox, Breslow + strata + cluster, per-subject robust
// variance, other rho, stratified G-rho, and Kaplan-Meier corner cases.

fn assert_rel(what: &str, got: f64, want: f64, tol: f64) {
    let ok = if want.abs() < 1e-12 {
        (got - want).abs() <= 1e-12
    } else {
        ((got - want) / want).abs() <= tol
    };
    assert!(ok, "{what}: want {want}, got {got}");
}

fn assert_opt(what: &str, got: Option<f64>, want: Option<f64>, tol: f64) {
    match (got, want) {
        (Some(g), Some(w)) => assert_rel(what, g, w, tol),
        (None, None) => {}
        _ => panic!("{what}: want {want:?}, got {got:?}"),
    }
}

fn lung_strata_case<'a>(ties: Ties, strata: &'a str, cluster: Option<&'a str>) -> CoxCase<'a> {
    CoxCase {
        dataset: "lung",
        event_code: 2.0,
        cols: vec![Col::Num("age"), Col::Num("sex")],
        ties,
        strata: Some(strata),
        cluster,
    }
}

#[test]
fn cox_strata_efron_matches_r() {
    // lung2 <- lung[!is.na(lung$ph.ecog), ]
    // coxph(Surv(time, status == 2) ~ age + sex + strata(ph.ecog), data = lung2)
    let fit = fit_cox(&lung_strata_case(Ties::Efron, "ph.ecog", None));
    assert_eq!(fit.n, 227);
    let coef = [0.0107721611223054, -0.553516925796372];
    let se = [0.00925380366045511, 0.170872813183384];
    for j in 0..2 {
        assert_opt("coef", fit.terms[j].coef, Some(coef[j]), ITERATIVE);
        assert_opt("se", fit.terms[j].se, Some(se[j]), ITERATIVE);
    }
    assert_rel("loglik0", fit.loglik_null, -566.906517584651, CLOSED_FORM);
    assert_rel("loglik", fit.loglik, -560.674008643024, ITERATIVE);
    assert_rel("score", fit.score_test.chisq, 12.1626790204074, CLOSED_FORM);
    assert_rel(
        "wald",
        fit.wald_test.unwrap().chisq,
        11.9049461372039,
        ITERATIVE,
    );
    assert_opt("C", fit.concordance, Some(0.582737845032927), CLOSED_FORM);
}

#[test]
fn cox_breslow_strata_cluster_matches_r() {
    // l3 <- lung[!is.na(lung$inst) & !is.na(lung$ph.ecog), ]
    // coxph(Surv(time, status == 2) ~ age + sex + ph.ecog + strata(I(ph.ecog > 1)), data = l3,
    //       ties = 'breslow', cluster = inst)
    let data = Frame::load("lung");
    let rows = data.complete(&["time", "status", "age", "sex", "ph.ecog", "inst"]);
    let time = data.num("time", &rows);
    let event: Vec<bool> = data
        .num("status", &rows)
        .iter()
        .map(|&s| s == 2.0)
        .collect();
    let (age, sex, ecog) = (
        data.num("age", &rows),
        data.num("sex", &rows),
        data.num("ph.ecog", &rows),
    );
    let x = DMatrix::from_fn(rows.len(), 3, |i, j| [age[i], sex[i], ecog[i]][j]);
    let strata: Vec<usize> = ecog.iter().map(|&e| usize::from(e > 1.0)).collect();
    let cluster: Vec<usize> = data
        .num("inst", &rows)
        .iter()
        .map(|&v| v as usize)
        .collect();
    let options = CoxOptions {
        ties: Ties::Breslow,
        strata: Some(&strata),
        cluster: Some(&cluster),
        ..CoxOptions::default()
    };
    let fit = cox(&time, &event, &x, &["age", "sex", "ph.ecog"], &options).unwrap();
    assert_eq!(fit.n, 226);
    let coef = [0.0115965616255255, -0.572412587407234, 0.430446101561273];
    let se = [0.00924843261456721, 0.169356171694158, 0.197593525011579];
    let robust = [0.00711176645262679, 0.118486447735174, 0.116034906348594];
    for j in 0..3 {
        assert_opt("coef", fit.terms[j].coef, Some(coef[j]), ITERATIVE);
        assert_opt("se", fit.terms[j].se, Some(se[j]), ITERATIVE);
        assert_opt("robust", fit.terms[j].robust_se, Some(robust[j]), ITERATIVE);
        let z = coef[j] / robust[j];
        assert_opt("z (robust)", fit.terms[j].z, Some(z), ITERATIVE);
    }
    assert_rel("loglik0", fit.loglik_null, -641.70202482283, CLOSED_FORM);
    assert_rel("loglik", fit.loglik, -632.898373804904, ITERATIVE);
    assert_rel("score", fit.score_test.chisq, 17.1628794416889, CLOSED_FORM);
    assert_rel(
        "wald",
        fit.wald_test.unwrap().chisq,
        33.4316750547116,
        ITERATIVE,
    );
    assert_opt("C", fit.concordance, Some(0.608090294941506), CLOSED_FORM);
}

#[test]
fn cox_per_subject_cluster_matches_r() {
    // coxph(Surv(time, status == 2) ~ age + sex, data = lung, cluster = seq_len(nrow(lung)))
    let data = Frame::load("lung");
    let rows = data.complete(&["time", "status", "age", "sex"]);
    let time = data.num("time", &rows);
    let event: Vec<bool> = data
        .num("status", &rows)
        .iter()
        .map(|&s| s == 2.0)
        .collect();
    let (age, sex) = (data.num("age", &rows), data.num("sex", &rows));
    let x = DMatrix::from_fn(rows.len(), 2, |i, j| [age[i], sex[i]][j]);
    let id: Vec<usize> = (0..rows.len()).collect();
    let options = CoxOptions {
        cluster: Some(&id),
        ..CoxOptions::default()
    };
    let fit = cox(&time, &event, &x, &["age", "sex"], &options).unwrap();
    assert_opt(
        "robust age",
        fit.terms[0].robust_se,
        Some(0.00950463812360186),
        ITERATIVE,
    );
    assert_opt(
        "robust sex",
        fit.terms[1].robust_se,
        Some(0.160174167834172),
        ITERATIVE,
    );
}

#[test]
fn logrank_other_rho_and_strata_match_r() {
    let data = Frame::load("lung");
    // survdiff(Surv(time, status == 2) ~ sex, data = lung, rho = 0.5)$chisq
    let rows = data.complete(&["time", "status", "sex"]);
    let time = data.num("time", &rows);
    let event: Vec<bool> = data
        .num("status", &rows)
        .iter()
        .map(|&s| s == 2.0)
        .collect();
    let labels = ["1".to_string(), "2".to_string()];
    let sex = data.codes("sex", &rows, &labels);
    let fit = logrank(&time, &event, &sex, &labels, None, 0.5).unwrap();
    assert_rel("chisq rho 0.5", fit.chisq, 12.2506683372477, CLOSED_FORM);

    // sd <- survdiff(Surv(time, status == 2) ~ ph.ecog + strata(sex), data = lung, rho = 1)
    // sd$chisq; rowSums(sd$obs); rowSums(sd$exp)
    let rows = data.complete(&["time", "status", "sex", "ph.ecog"]);
    let time = data.num("time", &rows);
    let event: Vec<bool> = data
        .num("status", &rows)
        .iter()
        .map(|&s| s == 2.0)
        .collect();
    let ecog_labels: Vec<String> = (0..4).map(|e| e.to_string()).collect();
    let ecog = data.codes("ph.ecog", &rows, &ecog_labels);
    let sex = data.codes("sex", &rows, &labels);
    let fit = logrank(&time, &event, &ecog, &ecog_labels, Some(&sex), 1.0).unwrap();
    assert_rel("chisq", fit.chisq, 24.5561453463421, CLOSED_FORM);
    assert_eq!(fit.df, 3);
    let obs = [
        19.17463111971771,
        47.58628258272421,
        30.35828843992377,
        0.802919708029197,
    ];
    let exp = [
        30.49130896571269,
        50.84359420972551,
        16.38283911291288,
        0.204379562043796,
    ];
    for g in 0..4 {
        assert_rel("observed", fit.groups[g].observed, obs[g], CLOSED_FORM);
        assert_rel("expected", fit.groups[g].expected, exp[g], CLOSED_FORM);
    }
}

fn km1(
    time: &[f64],
    event: &[bool],
    conf_type: ConfType,
    times: &[f64],
    extend: bool,
) -> galley_stats::km::KmGroup {
    let options = KmOptions {
        conf_type,
        times: times.to_vec(),
        extend,
        ..KmOptions::default()
    };
    let zeros = vec![0; time.len()];
    let mut fit = kaplan_meier(time, event, &zeros, &["all"], &options).unwrap();
    fit.groups.remove(0)
}

#[test]
fn km_median_flat_at_half_to_the_end_follows_print_survfit() {
    // fit <- survfit(Surv(c(1,2,3,4), c(1,1,0,0)) ~ 1); summary(fit)$table
    // median 2, 0.95LCL 1, 0.95UCL NA (quantile(fit, 0.5) would say 3; print says 2).
    let g = km1(
        &[1.0, 2.0, 3.0, 4.0],
        &[true, true, false, false],
        ConfType::Log,
        &[],
        false,
    );
    assert_eq!(g.median, Some(2.0));
    assert_eq!(g.median_lower, Some(1.0));
    assert_eq!(g.median_upper, None);
}

#[test]
fn km_loglog_plain_and_summary_times_match_r() {
    // t <- c(1,2,3,4,5,6); s <- c(0,1,0,1,1,0)
    // fit <- survfit(Surv(t, s) ~ 1, conf.type = 'log-log')
    let t = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let s = [false, true, false, true, true, false];
    let times = [-1.0, 0.0, 0.5, 2.0, 2.5, 6.0, 7.0, f64::NAN];
    let g = km1(&t, &s, ConfType::LogLog, &times, false);
    let surv = [
        1.0,
        0.8,
        0.8,
        0.533333333333333,
        0.266666666666667,
        0.266666666666667,
    ];
    let se = [
        0.0,
        0.223606797749979,
        0.223606797749979,
        0.465474668125631,
        0.846561673280020,
        0.846561673280020,
    ];
    let lower = [
        None,
        Some(0.20380926326763926),
        Some(0.20380926326763926),
        Some(0.06833208784720288),
        Some(0.00967700057888136),
        Some(0.00967700057888136),
    ];
    let upper = [
        None,
        Some(0.969179788866743),
        Some(0.969179788866743),
        Some(0.863071182738792),
        Some(0.686136279157012),
        Some(0.686136279157012),
    ];
    assert_eq!(g.table.len(), 6);
    for (i, r) in g.table.iter().enumerate() {
        assert_rel("surv", r.surv, surv[i], 1e-12);
        assert_opt("std.err", r.std_err_log, Some(se[i]), 1e-12);
        // log-log limits are NA where S = 1
        assert_opt("lower", r.lower, lower[i], 1e-12);
        assert_opt("upper", r.upper, upper[i], 1e-12);
    }
    // summary(fit)$table: median 5, 0.95LCL 2, 0.95UCL NA
    assert_eq!(
        (g.median, g.median_lower, g.median_upper),
        (Some(5.0), Some(2.0), None)
    );
    // summary(fit, times = c(-1, 0, 0.5, 2, 2.5, 6, 7)): 7 is after the last time and dropped
    let want = [
        (-1.0, 6, 1.0, 0.0, 1.0, 1.0),
        (0.0, 6, 1.0, 0.0, 1.0, 1.0),
        (0.5, 6, 1.0, 0.0, 1.0, 1.0),
        (
            2.0,
            5,
            0.8,
            0.178885438199983,
            0.20380926326763926,
            0.969179788866743,
        ),
        (
            2.5,
            4,
            0.8,
            0.178885438199983,
            0.20380926326763926,
            0.969179788866743,
        ),
        (
            6.0,
            1,
            0.266666666666667,
            0.225749779541339,
            0.00967700057888136,
            0.686136279157012,
        ),
    ];
    assert_eq!(g.at.len(), want.len());
    for (a, w) in g.at.iter().zip(want) {
        assert_eq!((a.time, a.n_risk), (w.0, w.1));
        assert_rel("at surv", a.surv, w.2, 1e-12);
        assert_opt("at se", a.std_err, Some(w.3), 1e-12);
        assert_opt("at lower", a.lower, Some(w.4), 1e-12);
        assert_opt("at upper", a.upper, Some(w.5), 1e-12);
    }
    // summary(fit, times = c(3, 10), extend = TRUE): n.risk 4 and 0, last values carried on
    let ext = g.summary_at(&[10.0, 3.0], true);
    assert_eq!(
        (ext[0].time, ext[0].n_risk, ext[1].time, ext[1].n_risk),
        (3.0, 4, 10.0, 0)
    );
    assert_rel("extended surv", ext[1].surv, 0.266666666666667, 1e-12);

    // conf.type = 'plain': clipped to [0, 1]
    let g = km1(&t, &s, ConfType::Plain, &[], false);
    let lower = [
        1.0,
        0.4493909837693675,
        0.4493909837693675,
        0.0467660878709485,
        0.0,
        0.0,
    ];
    let upper = [1.0, 1.0, 1.0, 1.0, 0.709128104085547, 0.709128104085547];
    for (i, r) in g.table.iter().enumerate() {
        assert_opt("plain lower", r.lower, Some(lower[i]), 1e-12);
        assert_opt("plain upper", r.upper, Some(upper[i]), 1e-12);
    }
}

#[test]
fn km_summary_with_events_at_time_zero_matches_r() {
    // fit <- survfit(Surv(c(0,0,2,3), c(1,0,1,0)) ~ 1); summary(fit, times = c(-1, 0, 1))
    let g = km1(
        &[0.0, 0.0, 2.0, 3.0],
        &[true, false, true, false],
        ConfType::Log,
        &[-1.0, 0.0, 1.0],
        false,
    );
    let n_risk: Vec<usize> = g.at.iter().map(|a| a.n_risk).collect();
    assert_eq!(n_risk, vec![4, 4, 2]);
    for a in &g.at {
        assert_rel("surv", a.surv, 0.75, 1e-12);
        assert_opt("se", a.std_err, Some(0.21650635094611), 1e-12);
        assert_opt("lower", a.lower, Some(0.425932268497982), 1e-12);
        assert_opt("upper", a.upper, Some(1.0), 1e-12);
    }
}

// ---------------------------------------------------------------------------------------------
// Closed forms and edge cases.

#[test]
fn km_without_censoring_is_the_empirical_survival_function() {
    let t = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0];
    let g = km1(&t, &[true; 8], ConfType::Log, &[], false);
    let n = t.len() as f64;
    assert_eq!(g.table.len(), 7);
    for r in &g.table {
        let s = t.iter().filter(|&&x| x > r.time).count() as f64 / n;
        assert_rel("surv", r.surv, s, 1e-14);
        assert_eq!(r.n_risk, t.iter().filter(|&&x| x >= r.time).count());
        if s > 0.0 {
            // Greenwood without censoring is the binomial variance S (1 - S) / n.
            assert_opt(
                "std_err",
                r.std_err,
                Some((s * (1.0 - s) / n).sqrt()),
                1e-12,
            );
        } else {
            assert_eq!(
                (r.std_err_log, r.std_err, r.lower, r.upper),
                (None, None, None, None)
            );
        }
    }
    // S is exactly 0.5 from 3 (4/8 left) until 4 (3/8): the midpoint rule gives 3.5.
    assert_eq!(g.median, Some(3.5));
    assert_eq!(g.events, 8);
}

#[test]
fn km_median_midpoint_when_curve_is_exactly_half() {
    // S = 0.5 after time 2 (2 of 4), then drops at 5: the median is (2 + 5) / 2.
    let g = km1(&[1.0, 2.0, 5.0, 6.0], &[true; 4], ConfType::Log, &[], false);
    assert_eq!(g.median, Some(3.5));
}

#[test]
fn km_all_censored() {
    let g = km1(
        &[2.0, 1.0, 3.0],
        &[false; 3],
        ConfType::Log,
        &[1.5, 9.0],
        false,
    );
    assert_eq!(g.events, 0);
    assert_eq!(
        (g.median, g.median_lower, g.median_upper),
        (None, None, None)
    );
    for r in &g.table {
        assert_eq!(
            (r.surv, r.std_err_log, r.lower, r.upper),
            (1.0, Some(0.0), Some(1.0), Some(1.0))
        );
    }
    assert_eq!(g.at.len(), 1); // 9 is after the last follow-up
    assert_eq!((g.at[0].n_risk, g.at[0].surv), (2, 1.0));
    assert_eq!(g.censor_times(), vec![1.0, 2.0, 3.0]);
    let ll = km1(&[2.0, 1.0, 3.0], &[false; 3], ConfType::LogLog, &[], false);
    assert!(
        ll.table
            .iter()
            .all(|r| r.lower.is_none() && r.upper.is_none())
    );
}

#[test]
fn km_risk_table_helpers() {
    let t = [1.0, 2.0, 2.0, 4.0, 7.0];
    let e = [true, false, true, false, true];
    let g = km1(&t, &e, ConfType::Log, &[], false);
    let at: Vec<usize> = [0.0, 1.0, 1.5, 2.0, 3.0, 7.0, 8.0]
        .iter()
        .map(|&x| g.n_risk_at(x))
        .collect();
    assert_eq!(at, vec![5, 5, 4, 4, 2, 1, 0]);
    assert_eq!(g.censor_times(), vec![2.0, 4.0]);
    assert_rel("S(3)", g.surv_at(3.0), 0.8 * 0.75, 1e-15);
    assert_eq!(g.surv_at(0.5), 1.0);
}

#[test]
fn km_merges_times_equal_up_to_rounding_like_r() {
    // R's timefix: 0.1 + 0.2 and 0.3 are one time.
    let g = km1(
        &[0.1 + 0.2, 0.3, 1.0],
        &[true, true, false],
        ConfType::Log,
        &[],
        false,
    );
    assert_eq!(g.table.len(), 2);
    assert_eq!(g.table[0].n_event, 2);
}

#[test]
fn km_groups_are_listed_in_label_order() {
    let fit = kaplan_meier(
        &[1.0, 2.0, 3.0, 4.0],
        &[true, true, false, true],
        &[1, 0, 1, 0],
        &["b", "a"],
        &KmOptions::default(),
    )
    .unwrap();
    assert_eq!(fit.groups[0].level, "b");
    assert_eq!(fit.groups[0].n, 2);
    assert_eq!(fit.groups[0].table[0].time, 2.0);
    assert_eq!(fit.groups[1].table[0].time, 1.0);
}

#[test]
fn km_errors() {
    let o = KmOptions::default();
    let err = |r: galley_stats::Result<galley_stats::km::KaplanMeier>| r.unwrap_err().message;
    assert!(err(kaplan_meier(&[], &[], &[], &["all"], &o)).contains("no observations"));
    assert!(err(kaplan_meier(&[1.0], &[true, false], &[0], &["all"], &o)).contains("lengths"));
    assert!(err(kaplan_meier(&[1.0, 2.0], &[true; 2], &[0], &["all"], &o)).contains("lengths"));
    assert!(err(kaplan_meier(&[-1.0], &[true], &[0], &["all"], &o)).contains("non-negative"));
    assert!(err(kaplan_meier(&[f64::NAN], &[true], &[0], &["all"], &o)).contains("finite"));
    assert!(err(kaplan_meier(&[f64::INFINITY], &[true], &[0], &["all"], &o)).contains("finite"));
    assert!(
        err(kaplan_meier(
            &[1.0, 2.0],
            &[true; 2],
            &[0, 0],
            &["a", "b"],
            &o
        ))
        .contains("\"b\" has no observations")
    );
    assert!(
        err(kaplan_meier(
            &[1.0, 2.0],
            &[true; 2],
            &[0, 2],
            &["a", "b"],
            &o
        ))
        .contains("no label")
    );
    let bad = KmOptions {
        conf_level: 1.0,
        ..KmOptions::default()
    };
    assert!(err(kaplan_meier(&[1.0], &[true], &[0], &["all"], &bad)).contains("confidence level"));
}

#[test]
fn logrank_of_identical_groups_is_zero() {
    let t = [1.0, 2.0, 2.0, 3.0, 5.0, 8.0];
    let e = [true, true, false, true, false, true];
    let time: Vec<f64> = t.iter().chain(&t).copied().collect();
    let event: Vec<bool> = e.iter().chain(&e).copied().collect();
    let group: Vec<usize> = (0..12).map(|i| i / 6).collect();
    for rho in [0.0, 1.0] {
        let fit = logrank(&time, &event, &group, &["a", "b"], None, rho).unwrap();
        assert!(fit.chisq.abs() < 1e-12, "chisq {}", fit.chisq);
        assert_eq!(fit.df, 1);
        assert_rel("p", fit.p.unwrap(), 1.0, 1e-9);
        for g in &fit.groups {
            assert_rel("O = E", g.observed, g.expected, 1e-12);
        }
    }
}

#[test]
fn logrank_two_subjects_closed_form() {
    // t = 1: both at risk, one death in a: E_a = E_b = 1/2, V = 1 * 1 / 1 * (1/2)(1/2) = 1/4;
    // t = 2: b alone (no variance), E_b += 1. chisq = (1 - 3/2)^2 / (1/4) = 1.
    let fit = logrank(&[1.0, 2.0], &[true, true], &[0, 1], &["a", "b"], None, 0.0).unwrap();
    assert_rel("chisq", fit.chisq, 1.0, 1e-14);
    assert_rel("E_a", fit.groups[0].expected, 0.5, 1e-14);
    assert_rel("E_b", fit.groups[1].expected, 1.5, 1e-14);
    assert_rel("p", fit.p.unwrap(), 0.31731050786291415, 1e-12); // 2 (1 - pnorm(1))
}

#[test]
fn logrank_group_without_expected_events_is_dropped_like_r() {
    // b is censored before any event: no expected events, so no test (R: chisq 0, df 0).
    let fit = logrank(
        &[2.0, 3.0, 1.0],
        &[true, true, false],
        &[0, 0, 1],
        &["a", "b"],
        None,
        0.0,
    )
    .unwrap();
    assert_eq!((fit.chisq, fit.df, fit.p), (0.0, 0, None));
}

#[test]
fn logrank_errors() {
    let err = |r: galley_stats::Result<galley_stats::logrank::LogRank>| r.unwrap_err().message;
    assert!(
        err(logrank(&[1.0, 2.0], &[true; 2], &[0, 0], &["a"], None, 0.0)).contains("two groups")
    );
    assert!(
        err(logrank(
            &[1.0, 2.0],
            &[true; 2],
            &[0, 0],
            &["a", "b"],
            None,
            0.0
        ))
        .contains("\"b\" has no observations")
    );
    assert!(
        err(logrank(
            &[1.0, 2.0],
            &[true; 2],
            &[0, 1],
            &["a", "b"],
            None,
            -1.0
        ))
        .contains("rho")
    );
    assert!(
        err(logrank(
            &[1.0, 2.0],
            &[true; 2],
            &[0, 1],
            &["a", "b"],
            Some(&[0]),
            0.0
        ))
        .contains("lengths")
    );
    assert!(err(logrank(&[], &[], &[], &["a", "b"], None, 0.0)).contains("no observations"));
}

#[test]
fn cox_score_test_without_ties_is_the_logrank_test() {
    // With distinct times and one binary covariate, the score test at beta = 0 is the log-rank.
    let time = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
    let event = [
        true, true, false, true, true, true, false, true, true, false,
    ];
    let group = [0, 1, 0, 0, 1, 0, 1, 1, 0, 1];
    let x = DMatrix::from_fn(10, 1, |i, _| group[i] as f64);
    let lr = logrank(&time, &event, &group, &["a", "b"], None, 0.0).unwrap();
    for ties in [Ties::Efron, Ties::Breslow] {
        let opts = CoxOptions {
            ties,
            ..CoxOptions::default()
        };
        let fit = cox(&time, &event, &x, &["b"], &opts).unwrap();
        assert_rel("score = log-rank", fit.score_test.chisq, lr.chisq, 1e-12);
    }
}

#[test]
fn cox_separated_data_warns_of_an_infinite_coefficient() {
    // Everyone with x = 1 fails first: beta -> infinity, as R warns
    // ("Loglik converged before variable 1; coefficient may be infinite").
    let time = [4.0, 5.0, 6.0, 1.0, 2.0, 3.0];
    let x = DMatrix::from_column_slice(6, 1, &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    let fit = cox(&time, &[true; 6], &x, &["x"], &CoxOptions::default()).unwrap();
    assert!(
        fit.warnings
            .iter()
            .any(|w| w.contains("\"x\" may be infinite")),
        "{:?}",
        fit.warnings
    );
    assert_eq!(
        (fit.terms[0].coef, fit.terms[0].hr, fit.terms[0].p),
        (None, None, None)
    );
    assert!(fit.wald_test.is_none());
    // The partial likelihood tends to (1/3)(1/2)(1/3)(1/2) = 1/36 (R: -3.58351894008267).
    assert_rel("loglik", fit.loglik, -(36f64.ln()), 1e-6);
}

#[test]
fn cox_errors_name_the_term() {
    let time = [1.0, 2.0, 3.0, 4.0, 5.0];
    let event = [true, false, true, true, false];
    let o = CoxOptions::default();
    let err = |r: galley_stats::Result<galley_stats::cox::Cox>| r.unwrap_err().message;
    let a = [1.0, 3.0, 2.0, 5.0, 4.0];
    let constant = DMatrix::from_fn(5, 2, |i, j| if j == 0 { a[i] } else { 7.0 });
    assert!(
        err(cox(&time, &event, &constant, &["age", "site"], &o)).contains("\"site\" is constant")
    );
    let collinear = DMatrix::from_fn(5, 3, |i, j| [a[i], (i % 2) as f64, 2.0 * a[i] + 1.0][j]);
    assert!(
        err(cox(&time, &event, &collinear, &["a", "b", "c"], &o))
            .contains("\"c\" is a linear combination")
    );
    let x = DMatrix::from_column_slice(5, 1, &a);
    assert!(err(cox(&time, &[false; 5], &x, &["a"], &o)).contains("no events"));
    assert!(err(cox(&time[..4], &event[..4], &x, &["a"], &o)).contains("rows"));
    assert!(err(cox(&time, &event, &x, &["a", "b"], &o)).contains("term names"));
    let nan = DMatrix::from_column_slice(5, 1, &[1.0, f64::NAN, 2.0, 3.0, 4.0]);
    assert!(err(cox(&time, &event, &nan, &["a"], &o)).contains("row 2"));
    let bad_cluster = CoxOptions {
        cluster: Some(&[1, 2]),
        ..CoxOptions::default()
    };
    assert!(err(cox(&time, &event, &x, &["a"], &bad_cluster)).contains("cluster"));
    assert!(err(cox(&[], &[], &DMatrix::zeros(0, 1), &["a"], &o)).contains("no observations"));
}

// ---------------------------------------------------------------------------------------------
// Scale: run with
//   cargo test -p galley-stats --release --test survival -- --ignored --nocapture
// Targets at n = 1e6 (release): KM < 0.25 s, log-rank < 0.15 s, Cox (5 covariates, Efron) < 0.7 s.

#[test]
#[ignore]
fn timing_one_million() {
    use std::time::Instant;
    let n = 1_000_000;
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut unif = move || {
        // splitmix64
        state = state.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let p = 5;
    let mut x = DMatrix::zeros(n, p);
    let mut time = vec![0.0; n];
    let mut event = vec![false; n];
    let mut group = vec![0usize; n];
    for i in 0..n {
        let age = 40.0 + 40.0 * unif();
        let sex = f64::from(unif() < 0.5);
        let ecog = (unif() * 4.0).floor();
        let bio = unif() + unif() + unif() - 1.5;
        let site = f64::from(unif() < 0.3);
        let eta = 0.02 * (age - 60.0) - 0.5 * sex + 0.4 * ecog + 0.3 * bio + 0.2 * site;
        let t = -unif().ln() / (0.002 * eta.exp());
        let c = 2000.0 * unif();
        // Whole days, as in the clinical data: many ties.
        time[i] = t.min(c).ceil();
        event[i] = t <= c;
        group[i] = sex as usize;
        for (j, v) in [age, sex, ecog, bio, site].into_iter().enumerate() {
            x[(i, j)] = v;
        }
    }
    // Best of three: the machine is shared, the minimum is the least disturbed run.
    fn best<T>(mut f: impl FnMut() -> T) -> (T, f64) {
        let mut out = None;
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t0 = Instant::now();
            let r = f();
            best = best.min(t0.elapsed().as_secs_f64());
            out = Some(r);
        }
        (out.unwrap(), best)
    }
    let (km, t_km) =
        best(|| kaplan_meier(&time, &event, &group, &["1", "2"], &KmOptions::default()).unwrap());
    let (lr, t_lr) = best(|| logrank(&time, &event, &group, &["1", "2"], None, 0.0).unwrap());
    let names = ["age", "sex", "ecog", "bio", "site"];
    let (fit, t_cox) = best(|| cox(&time, &event, &x, &names, &CoxOptions::default()).unwrap());
    let cl: Vec<usize> = (0..n).map(|i| i % 100).collect();
    let opts = CoxOptions {
        cluster: Some(&cl),
        ..CoxOptions::default()
    };
    let (_, t_cl) = best(|| cox(&time, &event, &x, &names, &opts).unwrap());
    println!(
        "n = {n}: KM {:.3} s ({} rows), log-rank {:.3} s (chisq {:.1}), Cox Efron p = 5 {:.3} s \
         ({} iterations, coef {:?}), with 100 clusters {:.3} s",
        t_km,
        km.groups[0].table.len() + km.groups[1].table.len(),
        t_lr,
        lr.chisq,
        t_cox,
        fit.iterations,
        fit.terms
            .iter()
            .map(|t| t.coef.unwrap())
            .collect::<Vec<_>>(),
        t_cl,
    );
}
