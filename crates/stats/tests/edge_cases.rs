//! Numerical edge cases: each has a defined result or a clear `StatsError`, never a panic and never
//! a NaN or an infinity in a result (a value that is not estimable is `None`).
//!
//! All censored, all events at one time, one patient per group, ties everywhere, perfectly
//! separated logistic data, a covariate constant within the data, huge and tiny values (1e300,
//! 1e-300). Dates before 1900 and after 2100 are galley's (`galley::dataset`), tested in the
//! integration suite (`tests/suite/fuzz_regressions.rs`).

use galley_stats::StatsError;
use galley_stats::cox::{Cox, CoxOptions, Ties, cox};
use galley_stats::design::{Covariate, model_matrix};
use galley_stats::km::{ConfType, KaplanMeier, KmOptions, kaplan_meier};
use galley_stats::logistic::{LogisticFit, LogisticOptions, logistic_regression};
use galley_stats::logrank::{LogRank, logrank};
use galley_stats::matching::{Link, NearestOptions, nearest_neighbor, propensity_match};
use nalgebra::DMatrix;

/// No token of the value's debug form is `NaN` or `inf` (f64's spellings; words such as
/// "infinite" in a warning are other tokens).
fn assert_finite<T: std::fmt::Debug>(what: &str, value: &T) {
    let text = format!("{value:?}");
    let bad = text
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .find(|t| *t == "NaN" || *t == "inf");
    assert!(bad.is_none(), "{what}: non-finite value in {text}");
}

fn km_all(time: &[f64], event: &[bool], conf: ConfType) -> KaplanMeier {
    let group = vec![0; time.len()];
    let options = KmOptions {
        conf_type: conf,
        times: vec![0.0, 1.0, 5.0],
        ..KmOptions::default()
    };
    let km = kaplan_meier(time, event, &group, &["all"], &options).expect("a curve");
    assert_finite("Kaplan-Meier", &km);
    km
}

const CONFS: [ConfType; 3] = [ConfType::Log, ConfType::LogLog, ConfType::Plain];

fn expect_error<T: std::fmt::Debug>(result: Result<T, StatsError>, words: &[&str]) -> StatsError {
    let e = result.expect_err("an error");
    for w in words {
        assert!(e.message.contains(w), "`{}` does not say `{w}`", e.message);
    }
    e
}

// ---------------------------------------------------------------------------------------------
// All censored.

#[test]
fn all_censored() {
    let time = [1.0, 2.0, 2.0, 5.0];
    let event = [false; 4];
    for conf in CONFS {
        let km = km_all(&time, &event, conf);
        let g = &km.groups[0];
        assert_eq!(g.events, 0);
        assert!(g.table.iter().all(|r| r.surv == 1.0));
        assert_eq!(
            (g.median, g.median_lower, g.median_upper),
            (None, None, None)
        );
    }
    let lr = logrank(&time, &event, &[0, 0, 1, 1], &["a", "b"], None, 0.0).unwrap();
    assert_finite("log-rank", &lr);
    assert_eq!((lr.chisq, lr.df, lr.p), (0.0, 0, None));

    let x = DMatrix::from_column_slice(4, 1, &[1.0, 2.0, 3.0, 4.0]);
    expect_error(
        cox(&time, &event, &x, &["x"], &CoxOptions::default()),
        &["no events"],
    );
}

// ---------------------------------------------------------------------------------------------
// All events at one time.

#[test]
fn all_events_at_one_time() {
    let time = [3.0; 5];
    let event = [true; 5];
    for conf in CONFS {
        let km = km_all(&time, &event, conf);
        let g = &km.groups[0];
        assert_eq!(g.table.len(), 1);
        assert_eq!(g.table[0].surv, 0.0);
        assert_eq!(g.median, Some(3.0));
        // Nothing is defined once everyone has failed: no standard error, no limits.
        assert_eq!(g.table[0].std_err_log, None);
        assert_eq!(
            g.at.len(),
            2,
            "times 0 and 1 (5 is after the last follow-up)"
        );
        assert_eq!(g.at[0].surv, 1.0);
    }
    // Log-rank: everyone at risk dies at the one time, so the hypergeometric variance is 0 and
    // O - E is 0/0; R's survdiff stops too (solve() of a singular matrix). A clear error.
    expect_error(
        logrank(&time, &event, &[0, 0, 1, 1, 1], &["a", "b"], None, 0.0),
        &["log-rank test", "singular"],
    );
    // Some survivors at that time: a defined statistic, observed = expected.
    let lr = logrank(
        &time,
        &[true, false, true, false, true],
        &[0, 0, 1, 1, 1],
        &["a", "b"],
        None,
        0.0,
    )
    .unwrap();
    assert_finite("log-rank", &lr);
    assert_eq!(lr.df, 1);
    assert!(lr.chisq >= 0.0 && lr.p.is_some(), "{lr:?}");
    // Cox: one risk set with everyone dying in it; the likelihood is flat in beta under Breslow
    // (every denominator is the whole set), and Efron gives a finite fit or a clear refusal.
    let x = DMatrix::from_column_slice(5, 1, &[0.0, 1.0, 0.0, 1.0, 1.0]);
    for ties in [Ties::Efron, Ties::Breslow] {
        let options = CoxOptions {
            ties,
            ..CoxOptions::default()
        };
        match cox(&time, &event, &x, &["x"], &options) {
            Ok(fit) => assert_finite("Cox", &fit),
            Err(e) => assert!(e.message.starts_with("Cox model:"), "{e}"),
        }
    }
    // Events at time 0.
    let km = km_all(&[0.0, 0.0, 1.0], &[true, false, true], ConfType::Log);
    assert_eq!(km.groups[0].table[0].time, 0.0);
    assert!((km.groups[0].table[0].surv - 2.0 / 3.0).abs() < 1e-15);
}

// ---------------------------------------------------------------------------------------------
// One patient per group.

#[test]
fn one_patient_per_group() {
    let time = [2.0, 5.0, 7.0];
    let event = [true, false, true];
    let group = [0, 1, 2];
    for conf in CONFS {
        let km = kaplan_meier(
            &time,
            &event,
            &group,
            &["a", "b", "c"],
            &KmOptions {
                conf_type: conf,
                ..KmOptions::default()
            },
        )
        .unwrap();
        assert_finite("Kaplan-Meier", &km);
        assert_eq!(km.groups[0].median, Some(2.0));
        assert_eq!(km.groups[1].median, None);
        assert_eq!(km.groups[0].table[0].surv, 0.0);
    }
    let lr = logrank(&time, &event, &group, &["a", "b", "c"], None, 0.0).unwrap();
    assert_finite("log-rank", &lr);
    assert!(lr.chisq >= 0.0);
    let lr = logrank(&time, &event, &group, &["a", "b", "c"], None, 1.0).unwrap();
    assert_finite("Peto-Peto", &lr);
    // One patient only: a curve, no test.
    let km = km_all(&[4.0], &[true], ConfType::LogLog);
    assert_eq!(km.groups[0].median, Some(4.0));
    expect_error(
        logrank(&[4.0], &[true], &[0], &["a"], None, 0.0),
        &["two groups"],
    );
    // A label with no patient is refused by name.
    expect_error(
        kaplan_meier(
            &time,
            &event,
            &[0, 0, 2],
            &["a", "b", "c"],
            &KmOptions::default(),
        ),
        &["\"b\"", "no observations"],
    );
    // Cox with one patient: the covariate is necessarily constant.
    let x = DMatrix::from_column_slice(1, 1, &[1.0]);
    expect_error(
        cox(&[4.0], &[true], &x, &["x"], &CoxOptions::default()),
        &["constant"],
    );
}

// ---------------------------------------------------------------------------------------------
// Ties everywhere.

#[test]
fn ties_everywhere() {
    // Two times, each shared by events and censorings in both groups.
    let time = [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0];
    let event = [true, false, true, false, true, false, true, true];
    let group = [0, 0, 1, 1, 0, 0, 1, 1];
    for conf in CONFS {
        let km = kaplan_meier(
            &time,
            &event,
            &group,
            &["a", "b"],
            &KmOptions {
                conf_type: conf,
                ..KmOptions::default()
            },
        )
        .unwrap();
        assert_finite("Kaplan-Meier", &km);
        // Group a: 4 at risk, 1 death at t = 1 (S = 3/4), then 2 at risk, 1 death (S = 3/8).
        let a = &km.groups[0];
        assert_eq!(a.table.len(), 2);
        assert!((a.table[0].surv - 0.75).abs() < 1e-15);
        assert!((a.table[1].surv - 0.375).abs() < 1e-15);
        assert_eq!(a.median, Some(2.0));
    }
    for rho in [0.0, 1.0] {
        let lr = logrank(&time, &event, &group, &["a", "b"], None, rho).unwrap();
        assert_finite("log-rank", &lr);
    }
    let x = DMatrix::from_column_slice(8, 1, &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
    for ties in [Ties::Efron, Ties::Breslow] {
        let fit = cox(
            &time,
            &event,
            &x,
            &["b"],
            &CoxOptions {
                ties,
                ..CoxOptions::default()
            },
        )
        .unwrap();
        assert_finite("Cox", &fit);
        assert!(fit.terms[0].coef.is_some());
    }
    // Near-ties closer than R's tolerance are one time (aeqSurv): 1 and 1 + 1e-12.
    let km = km_all(
        &[1.0, 1.0 + 1e-12, 2.0],
        &[true, true, false],
        ConfType::Log,
    );
    assert_eq!(km.groups[0].table.len(), 2);
    assert_eq!(km.groups[0].table[0].n_event, 2);
}

// ---------------------------------------------------------------------------------------------
// Perfect separation and constant covariates.

fn logistic(y: &[bool], covs: &[Covariate]) -> Result<LogisticFit, StatsError> {
    let m = model_matrix(covs, true)?;
    logistic_regression(y, &m, LogisticOptions::default())
}

#[test]
fn perfectly_separated_logistic_data() {
    let x: Vec<f64> = (0..12).map(f64::from).collect();
    let y: Vec<bool> = (0..12).map(|i| i >= 6).collect();
    let fit = logistic(&y, &[Covariate::numeric("x", x)]).unwrap();
    assert_finite("logistic", &fit);
    assert!(
        fit.warnings.iter().any(|w| w.contains("separated")),
        "{:?}",
        fit.warnings
    );
    // A binary covariate that predicts the outcome exactly (quasi-complete separation).
    let x: Vec<f64> = (0..10).map(|i| f64::from(i % 2)).collect();
    let y: Vec<bool> = (0..10).map(|i| i % 2 == 1).collect();
    // As R's glm: it "converges" with fitted probabilities of 2e-11 (not below R's 10 eps, so no
    // warning) and a standard error so large that the interval is (0, not estimable).
    let fit = logistic(&y, &[Covariate::numeric("x", x)]).unwrap();
    assert_finite("logistic", &fit);
    let t = &fit.terms[1];
    assert!(t.se.unwrap() > 1e3 && t.p.unwrap() > 0.99, "{t:?}");
    assert_eq!(t.upper, None);
    // Propensity matching on a separating covariate: defined or refused, never NaN.
    let ids: Vec<String> = (0..10).map(|i| format!("u{i}")).collect();
    let treat: Vec<bool> = (0..10).map(|i| i >= 5).collect();
    let age: Vec<f64> = (0..10).map(|i| 40.0 + f64::from(i)).collect();
    for link in [Link::Logit, Link::LinearLogit] {
        match propensity_match(
            &ids,
            &treat,
            &[Covariate::numeric("age", age.clone())],
            link,
            &NearestOptions {
                caliper: Some(0.2),
                ..NearestOptions::default()
            },
        ) {
            Ok(m) => assert_finite("propensity match", &m.matched_sets),
            Err(e) => assert!(!e.message.is_empty()),
        }
    }
}

#[test]
fn covariate_constant_within_the_data() {
    let y = [true, false, true, false, true, false];
    expect_error(
        logistic(&y, &[Covariate::numeric("dose", vec![5.0; 6])]),
        &["dose", "constant"],
    );
    let time = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let x = DMatrix::from_column_slice(6, 1, &[5.0; 6]);
    expect_error(
        cox(&time, &y, &x, &["dose"], &CoxOptions::default()),
        &["\"dose\"", "constant"],
    );
    // Constant next to a varying covariate: named, not the other one.
    let x = DMatrix::from_column_slice(
        6,
        2,
        &[1.0, 3.0, 2.0, 5.0, 4.0, 6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    );
    expect_error(
        cox(&time, &y, &x, &["age", "sex"], &CoxOptions::default()),
        &["\"sex\""],
    );
    // Constant within strata only: every stratum's risk sets see one value, so the coefficient
    // is not estimable there (R: NA with a singularity note); galley refuses it by name.
    let strata = [0, 0, 0, 1, 1, 1];
    let x = DMatrix::from_column_slice(6, 1, &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    let options = CoxOptions {
        strata: Some(&strata),
        ..CoxOptions::default()
    };
    match cox(&time, &y, &x, &["site_dose"], &options) {
        Ok(fit) => {
            assert_finite("Cox", &fit);
            assert_eq!(fit.terms[0].coef, None, "{fit:?}");
        }
        Err(e) => assert!(e.message.contains("\"site_dose\""), "{e}"),
    }
    // A categorical covariate with one level in the data.
    expect_error(
        logistic(
            &y,
            &[Covariate::categorical(
                "arm",
                vec![0; 6],
                vec!["a".into(), "b".into()],
            )],
        ),
        &["arm"],
    );
}

// ---------------------------------------------------------------------------------------------
// Huge and tiny values.

fn cox_fit(time: &[f64], event: &[bool], x: &[f64]) -> Result<Cox, StatsError> {
    let m = DMatrix::from_column_slice(x.len(), 1, x);
    cox(time, event, &m, &["x"], &CoxOptions::default())
}

#[test]
fn huge_and_tiny_survival_times() {
    let event = [true, false, true, true, false, true];
    for scale in [1e300, 1e-300, f64::MAX / 8.0, f64::MIN_POSITIVE] {
        let time: Vec<f64> = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .map(|t| t * scale)
            .collect();
        let km = km_all(&time, &event, ConfType::Log);
        if scale > 1.0 {
            // Huge times give the curve of 1..6 (the mean of the times, which R's time fix
            // divides by, must not overflow: it did near f64::MAX, merging every time into one).
            assert_eq!(km.groups[0].table.len(), 6, "scale {scale}");
            let median = km.groups[0].median.expect("median");
            assert!(
                (median / scale - 4.0).abs() < 1e-12,
                "scale {scale}: {median}"
            );
        } else {
            // Tiny times are closer than R's absolute tolerance (sqrt(eps), aeqSurv): one time,
            // as survfit gives.
            assert_eq!(km.groups[0].table.len(), 1, "scale {scale}");
            assert_eq!(km.groups[0].table[0].n_event, 4);
        }
        let lr: LogRank =
            logrank(&time, &event, &[0, 1, 0, 1, 0, 1], &["a", "b"], None, 0.0).unwrap();
        assert_finite("log-rank", &lr);
        let fit = cox_fit(&time, &event, &[0.0, 1.0, 0.0, 1.0, 1.0, 0.0]).unwrap();
        assert_finite("Cox", &fit);
    }
    // Tiny and huge together: defined, finite.
    let time = [1e-300, 1.0, 1e300, 5e-301, 2.0, 1e299];
    let km = km_all(&time, &event, ConfType::Plain);
    assert!(km.groups[0].median.is_some());
    // Infinite and negative times are refused by row.
    expect_error(
        kaplan_meier(
            &[1.0, f64::INFINITY],
            &[true, true],
            &[0, 0],
            &["a"],
            &KmOptions::default(),
        ),
        &["row 2"],
    );
    expect_error(
        logrank(
            &[1.0, -1e-300],
            &[true, true],
            &[0, 1],
            &["a", "b"],
            None,
            0.0,
        ),
        &["row 2"],
    );
}

#[test]
fn huge_and_tiny_covariates() {
    let time = [5.0, 1.0, 4.0, 2.0, 6.0, 3.0, 8.0, 7.0];
    let event = [true, true, false, true, true, true, false, true];
    let base = [0.3, 1.2, -0.7, 2.0, 0.1, 1.5, -1.1, 0.4];
    let reference = cox_fit(&time, &event, &base).unwrap();
    let b0 = reference.terms[0].coef.unwrap();
    for scale in [1e300, 1e-300, 1e150, 1e-150] {
        let x: Vec<f64> = base.iter().map(|v| v * scale).collect();
        match cox_fit(&time, &event, &x) {
            Ok(fit) => {
                assert_finite("Cox", &fit);
                // beta / c when x * c; the coefficient itself may be out of range (1e300).
                if let Some(b) = fit.terms[0].coef {
                    assert!(
                        (b * scale / b0 - 1.0).abs() < 1e-6,
                        "scale {scale}: {b} vs {b0}"
                    );
                }
            }
            Err(e) => assert!(e.message.contains("\"x\""), "scale {scale}: {e}"),
        }
        let y: Vec<bool> = event.to_vec();
        match logistic(&y, &[Covariate::numeric("x", x.clone())]) {
            Ok(fit) => assert_finite("logistic", &fit),
            Err(e) => assert!(!e.message.is_empty(), "scale {scale}"),
        }
    }
    // Matching on huge and tiny distances, with a caliper.
    // The matches do not depend on the unit of the distance (the caliper is in SDs). Squares of
    // 1e300 overflowed the SD, which was then refused as "no spread".
    let treat = [true, false, true, false, false, false];
    let base = [0.9, 0.8, 0.5, 0.55, 0.45, 0.1];
    for caliper in [None, Some(0.25), Some(0.5)] {
        let options = NearestOptions {
            caliper,
            ..NearestOptions::default()
        };
        let reference = nearest_neighbor(&treat, &base, &options).unwrap();
        for scale in [1e300, 1e-300, f64::MAX / 2.0] {
            let d: Vec<f64> = base.iter().map(|v| v * scale).collect();
            match nearest_neighbor(&treat, &d, &options) {
                Ok(m) => {
                    assert_finite("matching", &m);
                    assert_eq!(m.sets, reference.sets, "scale {scale}, caliper {caliper:?}");
                }
                Err(e) => panic!("scale {scale}, caliper {caliper:?}: {e}"),
            }
        }
    }
}
