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
                let g = got.as_f64().unwrap_or_else(|| {
                    panic!("{}: {path}: R has {w}, we have {got}", self.case)
                });
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
    compare(case, &want, &serde_json::to_value(&fit).unwrap(), &closed_form);
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
    compare(case, &want, &serde_json::to_value(&fit).unwrap(), &closed_form);
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
