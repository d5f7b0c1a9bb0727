//! galley-stats against R: every number in the reference files of the non-survival kinds
//! (`tests/reference/README.md`): describe, tests, logistic, propensity_match.
//!
//! Tolerances (relative; absolute 1e-12 when the reference is within 1e-12 of zero):
//! - CLOSED = 1e-6 for closed-form quantities (means, SDs, quantiles, test statistics and their p,
//!   SMDs before matching, SMDs after matching given identical matched sets);
//! - FITTED = 1e-6 for what rests on an iterative fit (logistic coefficients, SEs, z, p, odds
//!   ratios and intervals, deviance, propensity distances). The README allows 1e-4; we follow
//!   glm.fit's iterations exactly and observe errors below 1e-10, so we hold the tighter bound.
//!   The worst error per file is printed (`cargo test -- --nocapture`).
//!
//! Counts, matched sets (controls in R's order) and the IRLS iteration count must be identical.

use galley_stats::describe::{Summary, describe_by};
use galley_stats::design::{Covariate, model_matrix};
use galley_stats::hypothesis::{
    CrossTab, chisq_test, chisq_test_yates, fisher_test, split_two_groups, welch_t_test,
    wilcoxon_rank_sum,
};
use galley_stats::logistic::{LogisticOptions, logistic_regression};
use galley_stats::matching::{DistanceRule, Link, NearestOptions, propensity_match};
use serde_json::Value;

const CLOSED: f64 = 1e-6;
const FITTED: f64 = 1e-6;

fn path(rel: &str) -> String {
    format!("{}/../../tests/reference/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn json(rel: &str) -> Value {
    let text = std::fs::read_to_string(path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// A data.csv: header and string cells (empty = missing).
struct Data {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Data {
    fn read(rel: &str) -> Data {
        let mut r = csv::Reader::from_path(path(rel)).unwrap();
        let headers = r.headers().unwrap().iter().map(String::from).collect();
        let rows = r
            .records()
            .map(|rec| rec.unwrap().iter().map(String::from).collect())
            .collect();
        Data { headers, rows }
    }

    fn col(&self, name: &str) -> Vec<String> {
        let j = self
            .headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"));
        self.rows.iter().map(|r| r[j].clone()).collect()
    }

    fn opt(&self, name: &str) -> Vec<Option<f64>> {
        self.col(name)
            .iter()
            .map(|s| {
                if s.is_empty() || s == "NA" {
                    None
                } else {
                    Some(s.parse().unwrap())
                }
            })
            .collect()
    }

    fn num(&self, name: &str) -> Vec<f64> {
        self.opt(name)
            .into_iter()
            .map(|v| v.expect("complete column"))
            .collect()
    }

    /// Codes 0..k for the given levels, in that order.
    fn codes(&self, name: &str, levels: &[&str]) -> Vec<usize> {
        self.col(name)
            .iter()
            .map(|s| {
                levels
                    .iter()
                    .position(|l| l == s)
                    .unwrap_or_else(|| panic!("{name}: unexpected level {s}"))
            })
            .collect()
    }
}

/// Compares numbers and remembers the worst relative error of a reference file.
struct Checker {
    file: &'static str,
    worst: f64,
    worst_what: String,
    checked: usize,
}

impl Checker {
    fn new(file: &'static str) -> Self {
        Checker {
            file,
            worst: 0.0,
            worst_what: String::new(),
            checked: 0,
        }
    }

    fn num(&mut self, what: &str, actual: f64, expected: &Value, rel: f64) {
        let e = expected.as_f64().unwrap_or_else(|| {
            panic!(
                "{}: {what}: reference {expected} is not a number",
                self.file
            )
        });
        self.checked += 1;
        let err = (actual - e).abs();
        let ok = if e.abs() <= 1e-12 {
            err <= 1e-12
        } else {
            err <= rel * e.abs()
        };
        let relerr = if e.abs() <= 1e-12 { err } else { err / e.abs() };
        if relerr > self.worst {
            self.worst = relerr;
            self.worst_what = what.to_string();
        }
        assert!(
            ok,
            "{}: {what}: got {actual:e}, R has {e:e} (relative error {relerr:e} > {rel:e})",
            self.file
        );
    }

    fn opt(&mut self, what: &str, actual: Option<f64>, expected: &Value, rel: f64) {
        match (actual, expected.is_null()) {
            (None, true) => self.checked += 1,
            (Some(a), false) => self.num(what, a, expected, rel),
            _ => panic!("{}: {what}: got {actual:?}, R has {expected}", self.file),
        }
    }

    fn int(&mut self, what: &str, actual: usize, expected: &Value) {
        self.checked += 1;
        assert_eq!(
            Some(actual as u64),
            expected.as_u64(),
            "{}: {what}",
            self.file
        );
    }

    fn report(&self) {
        eprintln!(
            "{}: {} values checked, worst relative error {:.2e} ({})",
            self.file, self.checked, self.worst, self.worst_what
        );
    }
}

// ---------------------------------------------------------------------------------------------
// describe

fn check_summary(c: &mut Checker, who: &str, s: &Summary, r: &Value) {
    c.int(&format!("{who} n"), s.n, &r["n"]);
    c.int(&format!("{who} missing"), s.missing, &r["missing"]);
    for (name, v) in [
        ("mean", s.mean),
        ("sd", s.sd),
        ("median", s.median),
        ("q1", s.q1),
        ("q3", s.q3),
        ("min", s.min),
        ("max", s.max),
    ] {
        // Closed form: 1e-6.
        c.opt(&format!("{who} {name}"), v, &r[name], CLOSED);
    }
}

fn describe_case(file: &'static str, variable: &str) {
    let r = json(file);
    let lung = Data::read("lung/data.csv");
    let values = lung.opt(variable);
    let sex = lung.codes("sex", &["1", "2"]);
    let labels: Vec<String> = vec!["1".into(), "2".into()];
    let d = describe_by(&values, &sex, &labels).unwrap();
    let mut c = Checker::new(file);
    assert_eq!(r["variable"], variable);
    check_summary(&mut c, "overall", &d.overall, &r["overall"]);
    let groups = r["groups"].as_array().unwrap();
    assert_eq!(groups.len(), d.groups.len());
    for (g, rg) in d.groups.iter().zip(groups) {
        assert_eq!(g.level, rg["level"].as_str().unwrap());
        check_summary(&mut c, &format!("group {}", g.level), &g.summary, rg);
    }
    c.report();
}

#[test]
fn describe_age_by_sex() {
    describe_case("lung/describe_age_by_sex.json", "age");
}

#[test]
fn describe_meal_by_sex() {
    describe_case("lung/describe_meal_by_sex.json", "meal.cal");
}

// ---------------------------------------------------------------------------------------------
// tests

fn tests_case(
    file: &'static str,
    table_rows: Vec<usize>,
    table_cols: Vec<usize>,
    values: Vec<f64>,
    group: Vec<usize>,
) {
    let r = json(file);
    let mut c = Checker::new(file);
    let t = CrossTab::from_codes(&table_rows, 2, &table_cols, 2).unwrap();

    // Closed form: 1e-6.
    let chi = chisq_test(&t).unwrap();
    c.num(
        "chisq statistic",
        chi.statistic,
        &r["chisq"]["statistic"],
        CLOSED,
    );
    c.int("chisq df", chi.df, &r["chisq"]["df"]);
    c.num("chisq p", chi.p, &r["chisq"]["p"], CLOSED);

    let y = chisq_test_yates(&t).unwrap().unwrap();
    c.num(
        "yates statistic",
        y.statistic,
        &r["chisq_yates"]["statistic"],
        CLOSED,
    );
    c.int("yates df", y.df, &r["chisq_yates"]["df"]);
    c.num("yates p", y.p, &r["chisq_yates"]["p"], CLOSED);

    // Fisher p is a finite sum (1e-6). The odds ratio is R's uniroot result, which we reproduce
    // step for step (Brent with R's tolerance), so 1e-6 as well.
    let f = fisher_test(&t).unwrap();
    c.num("fisher p", f.p, &r["fisher"]["p"], CLOSED);
    c.opt(
        "fisher odds_ratio",
        f.odds_ratio,
        &r["fisher"]["odds_ratio"],
        CLOSED,
    );

    let (x1, x2) = split_two_groups(&values, &group).unwrap();
    let w = wilcoxon_rank_sum(&x1, &x2, Some(false), true).unwrap();
    c.num(
        "wilcoxon W",
        w.statistic,
        &r["wilcoxon"]["statistic"],
        CLOSED,
    );
    c.num("wilcoxon p", w.p, &r["wilcoxon"]["p"], CLOSED);
    assert_eq!(Value::Bool(w.exact), r["wilcoxon"]["exact"]);
    assert_eq!(Value::Bool(w.correct), r["wilcoxon"]["correct"]);

    let wt = welch_t_test(&x1, &x2, 0.95).unwrap();
    let rw = &r["welch_t"];
    for (name, v) in [
        ("statistic", wt.statistic),
        ("df", wt.df),
        ("p", wt.p),
        ("mean_1", wt.mean_1),
        ("mean_2", wt.mean_2),
        ("lower", wt.lower),
        ("upper", wt.upper),
    ] {
        c.num(&format!("welch {name}"), v, &rw[name], CLOSED);
    }
    c.report();
}

#[test]
fn tests_status_age_by_sex() {
    let lung = Data::read("lung/data.csv");
    let status = lung.codes("status", &["1", "2"]);
    let sex = lung.codes("sex", &["1", "2"]);
    let age = lung.num("age");
    tests_case(
        "lung/tests_status_age_by_sex.json",
        status,
        sex.clone(),
        age,
        sex,
    );
}

#[test]
fn tests_married_age_by_treat() {
    let d = Data::read("lalonde/data.csv");
    let married = d.codes("married", &["0", "1"]);
    let treat = d.codes("treat", &["0", "1"]);
    let age = d.num("age");
    tests_case(
        "lalonde/tests_married_age_by_treat.json",
        married,
        treat.clone(),
        age,
        treat,
    );
}

// ---------------------------------------------------------------------------------------------
// logistic

fn logistic_case(file: &'static str, y: Vec<bool>, covs: Vec<Covariate>) {
    let r = json(file);
    let mut c = Checker::new(file);
    let m = model_matrix(&covs, true).unwrap();
    let fit = logistic_regression(&y, &m, LogisticOptions::default()).unwrap();
    assert!(
        fit.converged && fit.warnings.is_empty(),
        "{:?}",
        fit.warnings
    );
    c.int("n", fit.n, &r["n"]);
    let terms = r["terms"].as_array().unwrap();
    assert_eq!(terms.len(), fit.terms.len(), "number of terms");
    for (t, rt) in fit.terms.iter().zip(terms) {
        assert_eq!(t.term, rt["term"].as_str().unwrap());
        for (name, v) in [
            ("coef", t.coef),
            ("se", t.se),
            ("z", t.z),
            ("p", t.p),
            ("or", t.or),
            ("lower", t.lower),
            ("upper", t.upper),
        ] {
            // Iteratively fitted: FITTED (1e-6).
            c.opt(&format!("{} {name}", t.term), v, &rt[name], FITTED);
        }
    }
    // Deviance and AIC: iterative, FITTED (1e-6); the null deviance is closed form (1e-6).
    c.num(
        "null_deviance",
        fit.null_deviance,
        &r["null_deviance"],
        CLOSED,
    );
    c.num("deviance", fit.deviance, &r["deviance"], FITTED);
    c.num("aic", fit.aic, &r["aic"], FITTED);
    // Same IRLS path as glm.fit: same iteration count.
    c.int("iterations", fit.iterations, &r["iterations"]);
    c.report();
}

fn lalonde_covariates(d: &Data) -> Vec<Covariate> {
    let race_levels = ["black", "hispan", "white"];
    vec![
        Covariate::numeric("age", d.num("age")),
        Covariate::numeric("educ", d.num("educ")),
        Covariate::categorical(
            "race",
            d.codes("race", &race_levels),
            race_levels.iter().map(|s| s.to_string()).collect(),
        )
        .with_reference("black")
        .unwrap(),
        Covariate::numeric("married", d.num("married")),
        Covariate::numeric("nodegree", d.num("nodegree")),
        Covariate::numeric("re74", d.num("re74")),
        Covariate::numeric("re75", d.num("re75")),
    ]
}

#[test]
fn logistic_prior() {
    let d = Data::read("veteran/data.csv");
    let y: Vec<bool> = d.num("prior").iter().map(|&v| v == 10.0).collect();
    let levels = ["squamous", "smallcell", "adeno", "large"];
    let covs = vec![
        Covariate::numeric("age", d.num("age")),
        Covariate::numeric("karno", d.num("karno")),
        Covariate::categorical(
            "celltype",
            d.codes("celltype", &levels),
            levels.iter().map(|s| s.to_string()).collect(),
        )
        .with_reference("squamous")
        .unwrap(),
    ];
    logistic_case("veteran/logistic_prior.json", y, covs);
}

#[test]
fn logistic_ps() {
    let d = Data::read("lalonde/data.csv");
    let y: Vec<bool> = d.num("treat").iter().map(|&v| v == 1.0).collect();
    logistic_case("lalonde/logistic_ps.json", y, lalonde_covariates(&d));
}

// ---------------------------------------------------------------------------------------------
// propensity_match

fn controls_of(v: &Value) -> Vec<String> {
    // R's JSON writer unboxes a single control to a string.
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|s| s.as_str().unwrap().to_string()).collect(),
        Value::Null => vec![],
        _ => panic!("unexpected controls {v}"),
    }
}

fn match_case(file: &'static str, link: Link) {
    let r = json(file);
    let d = Data::read("lalonde/data.csv");
    let ids = d.col("id");
    let treat: Vec<bool> = d.num("treat").iter().map(|&v| v == 1.0).collect();
    let options = NearestOptions {
        ratio: r["ratio"].as_u64().unwrap() as usize,
        caliper: r["caliper"].as_f64(),
        // The reference was made with MatchIt 4.5.1, whose distance comparison truncates.
        rule: DistanceRule::MatchIt451,
        ..Default::default()
    };
    let pm = propensity_match(&ids, &treat, &lalonde_covariates(&d), link, &options).unwrap();
    let mut c = Checker::new(file);
    c.int("ratio", pm.ratio, &r["ratio"]);
    c.opt("caliper", pm.caliper, &r["caliper"], 0.0);
    assert_eq!(pm.link.as_str(), r["link"].as_str().unwrap());
    c.int("n_treated", pm.n_treated, &r["n_treated"]);
    c.int("n_control", pm.n_control, &r["n_control"]);
    c.int(
        "n_treated_matched",
        pm.n_treated_matched,
        &r["n_treated_matched"],
    );
    c.int(
        "n_control_matched",
        pm.n_control_matched,
        &r["n_control_matched"],
    );

    // Distances rest on the fitted model: FITTED (1e-6).
    let rd = r["distance"].as_object().unwrap();
    assert_eq!(rd.len(), pm.distance.0.len());
    for (id, v) in &pm.distance.0 {
        c.num(&format!("distance {id}"), *v, &rd[id.as_str()], FITTED);
    }

    // Matched sets: identical, controls in R's order.
    let rs = r["matched_sets"].as_array().unwrap();
    assert_eq!(rs.len(), pm.matched_sets.len(), "number of matched sets");
    let mut differing = Vec::new();
    for (s, want) in pm.matched_sets.iter().zip(rs) {
        assert_eq!(s.treated, want["treated"].as_str().unwrap());
        let wc = controls_of(&want["controls"]);
        if s.controls != wc {
            differing.push(format!("{}: got {:?}, R {:?}", s.treated, s.controls, wc));
        }
        c.checked += 1;
    }
    assert!(
        differing.is_empty(),
        "{file}: {} matched sets differ from R:\n{}",
        differing.len(),
        differing.join("\n")
    );

    // SMDs: before matching closed form; after matching closed form given identical sets: 1e-6.
    for (key, got) in [("smd_before", &pm.smd_before), ("smd_after", &pm.smd_after)] {
        let want = r[key].as_object().unwrap();
        assert_eq!(want.len(), got.0.len(), "{key}: number of covariates");
        for (name, v) in &got.0 {
            let w = want
                .get(name)
                .unwrap_or_else(|| panic!("{key}: R has no {name}"));
            c.opt(&format!("{key} {name}"), *v, w, CLOSED);
        }
    }
    c.report();
}

#[test]
fn match_1to1() {
    match_case("lalonde/match_1to1.json", Link::Logit);
}

#[test]
fn match_1to2_caliper() {
    match_case("lalonde/match_1to2_caliper.json", Link::Logit);
}

#[test]
fn match_1to4_caliper_logit() {
    match_case("lalonde/match_1to4_caliper_logit.json", Link::LinearLogit);
}

/// The documented rule (`DistanceRule::Exact`, MatchIt >= 4.5.4) cannot be checked against the
/// 4.5.1 reference, so check its defining properties on the same data: every control lies within
/// the caliper, and no treated unit skipped a strictly closer control that was still free when
/// its turn came (greedy nearest, 1:1).
#[test]
fn exact_rule_properties_on_lalonde() {
    let d = Data::read("lalonde/data.csv");
    let ids = d.col("id");
    let treat: Vec<bool> = d.num("treat").iter().map(|&v| v == 1.0).collect();
    let covs = lalonde_covariates(&d);
    let opts = NearestOptions {
        ratio: 2,
        caliper: Some(0.2),
        ..Default::default()
    };
    let pm = propensity_match(&ids, &treat, &covs, Link::Logit, &opts).unwrap();
    let m = &pm.matching;
    let dist: Vec<f64> = pm.distance.0.iter().map(|(_, v)| *v).collect();
    let width = m.caliper_width.unwrap();
    for s in &m.sets {
        for &c in &s.controls {
            assert!((dist[s.treated] - dist[c]).abs() <= width);
        }
    }
    // A real caliper on the propensity score drops treated units (4.5.1 matched all 185).
    assert!(m.n_treated_matched < m.n_treated);

    let pm =
        propensity_match(&ids, &treat, &covs, Link::Logit, &NearestOptions::default()).unwrap();
    let m = &pm.matching;
    // Replay the greedy order: treated by decreasing distance (stable).
    let mut order: Vec<&galley_stats::matching::MatchedSet> = m.sets.iter().collect();
    order.sort_by(|a, b| dist[b.treated].total_cmp(&dist[a.treated]));
    let mut used = vec![false; dist.len()];
    for s in order {
        let c = s.controls[0];
        let best = (0..dist.len())
            .filter(|&j| !treat[j] && !used[j])
            .map(|j| (dist[s.treated] - dist[j]).abs())
            .fold(f64::INFINITY, f64::min);
        assert_eq!(
            (dist[s.treated] - dist[c]).abs(),
            best,
            "{}",
            ids[s.treated]
        );
        used[c] = true;
    }
}

/// Scale target: 1,000,000 units with 10,000 treated, 1:4 without replacement, in under 1.5 s
/// (release build). Run with `cargo test --release -p galley-stats -- --ignored`.
#[test]
#[ignore]
fn matching_scales_to_a_million_units() {
    use galley_stats::matching::nearest_neighbor;
    let n = 1_000_000;
    // Deterministic pseudo-random propensity scores (xorshift), treated skewed high.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let treat: Vec<bool> = (0..n).map(|i| i % 100 == 0).collect();
    let distance: Vec<f64> = treat
        .iter()
        .map(|&t| {
            let u = next();
            if t { 0.3 + 0.7 * u } else { u * u }
        })
        .collect();
    for caliper in [None, Some(0.2)] {
        let opts = NearestOptions {
            ratio: 4,
            caliper,
            ..Default::default()
        };
        let start = std::time::Instant::now();
        let m = nearest_neighbor(&treat, &distance, &opts).unwrap();
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "1:4 of {} treated among {n} units, caliper {caliper:?}: {secs:.3} s ({} controls matched)",
            m.n_treated, m.n_control_matched
        );
        assert_eq!(m.n_treated, 10_000);
        if !cfg!(debug_assertions) {
            assert!(secs < 1.5, "took {secs} s");
        }
    }
}
