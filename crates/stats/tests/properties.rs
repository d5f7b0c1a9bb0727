//! Properties of the estimators over generated data (proptest), complementing the reference
//! comparisons with R in `survival.rs` and `regression.rs`:
//!
//! - Kaplan-Meier: survival non-increasing and within [0, 1], limits around it, counts adding up;
//!   permuting rows or renaming (relabelling) groups changes nothing; scaling time scales the
//!   table's times and the medians.
//! - Log-rank: invariant to row order and to relabelling; two identical groups give chi-square 0.
//! - Cox: coefficients invariant to row order, and equivariant to covariate scaling (x * c gives
//!   beta / c).
//! - Matching: without replacement no control is used twice; with any rule a control is never in
//!   one set twice; the caliper holds with the exact distance rule; with enough controls and no
//!   caliper every treated unit gets `ratio` controls.
//!
//! Case counts are modest (the whole file runs in a few seconds in a debug build); set
//! `PROPTEST_CASES` to run more.

use galley_stats::cox::{CoxOptions, Ties, cox};
use galley_stats::km::{ConfType, KaplanMeier, KmOptions, kaplan_meier};
use galley_stats::logrank::logrank;
use galley_stats::matching::{DistanceRule, MatchOrder, NearestOptions, nearest_neighbor};
use nalgebra::DMatrix;
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Survival data: integer times (so ties are common) 0..max_t, events, and group codes in
/// 0..k where every group has at least one row.
#[derive(Debug, Clone)]
struct SurvData {
    time: Vec<f64>,
    event: Vec<bool>,
    group: Vec<usize>,
    k: usize,
}

fn surv_data(max_n: usize, max_k: usize) -> impl Strategy<Value = SurvData> {
    surv_data_groups(1, max_n, max_k)
}

/// [`surv_data`] with at least `min_k` groups.
fn surv_data_groups(min_k: usize, max_n: usize, max_k: usize) -> impl Strategy<Value = SurvData> {
    (min_k..=max_k, 1..=30u32).prop_flat_map(move |(k, max_t)| {
        let n = k..=max_n.max(k);
        n.prop_flat_map(move |n| {
            (
                prop::collection::vec(0..=max_t, n),
                prop::collection::vec(any::<bool>(), n),
                prop::collection::vec(0..k, n),
            )
                .prop_map(move |(t, event, mut group)| {
                    // Every group gets a row: the first k rows are groups 0..k.
                    for (g, code) in group.iter_mut().enumerate().take(k) {
                        *code = g;
                    }
                    SurvData {
                        time: t.into_iter().map(f64::from).collect(),
                        event,
                        group,
                        k,
                    }
                })
        })
    })
}

fn labels(k: usize) -> Vec<String> {
    (0..k).map(|g| format!("g{g}")).collect()
}

/// A permutation of 0..n from a seed (Fisher-Yates with a small LCG: proptest shrinks the seed).
fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    let mut s = seed | 1;
    for i in (1..n).rev() {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = (s >> 33) as usize % (i + 1);
        p.swap(i, j);
    }
    p
}

fn permute<T: Clone>(v: &[T], p: &[usize]) -> Vec<T> {
    p.iter().map(|&i| v[i].clone()).collect()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    a == b || (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-12)
}

fn close_opt(a: Option<f64>, b: Option<f64>, rel: f64) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => close(a, b, rel),
        (None, None) => true,
        _ => false,
    }
}

fn check_km_shape(km: &KaplanMeier, data: &SurvData) -> Result<(), TestCaseError> {
    let mut total = 0;
    for (g, curve) in km.groups.iter().enumerate() {
        let n_g = data.group.iter().filter(|&&c| c == g).count();
        prop_assert_eq!(curve.n, n_g);
        total += curve.n;
        let mut prev = 1.0;
        let mut prev_risk = usize::MAX;
        let mut counted = 0;
        for row in &curve.table {
            prop_assert!(
                row.surv.is_finite() && (0.0..=1.0).contains(&row.surv),
                "{row:?}"
            );
            prop_assert!(
                row.surv <= prev,
                "survival increases: {} after {prev}",
                row.surv
            );
            prop_assert!(row.n_risk <= prev_risk);
            prop_assert_eq!(row.n_risk, n_g - counted);
            counted += row.n_event + row.n_censor;
            for v in [row.std_err, row.std_err_log, row.lower, row.upper]
                .into_iter()
                .flatten()
            {
                prop_assert!(v.is_finite() && v >= 0.0, "{row:?}");
            }
            if let (Some(lo), Some(hi)) = (row.lower, row.upper) {
                prop_assert!(lo <= row.surv + 1e-12 && row.surv <= hi + 1e-12, "{row:?}");
                prop_assert!(hi <= 1.0 && lo >= 0.0, "{row:?}");
            }
            prev = row.surv;
            prev_risk = row.n_risk;
        }
        prop_assert_eq!(counted, n_g);
        let events = curve.table.iter().map(|r| r.n_event).sum::<usize>();
        prop_assert_eq!(curve.events, events);
        // The median is a time of the curve (or a midpoint of two), where survival is <= 0.5.
        if let Some(m) = curve.median {
            let first = curve.table.first().map_or(0.0, |r| r.time);
            let last = curve.table.last().map_or(0.0, |r| r.time);
            prop_assert!(
                m >= first && m <= last,
                "median {m} outside [{first}, {last}]"
            );
            prop_assert!(curve.surv_at(m) <= 0.5 + 1e-9);
        }
    }
    prop_assert_eq!(total, data.time.len());
    Ok(())
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn km_is_a_non_increasing_survival_curve(data in surv_data(40, 3), conf in 0..3u8) {
        let options = KmOptions {
            conf_type: [ConfType::Log, ConfType::LogLog, ConfType::Plain][conf as usize],
            times: vec![0.0, 2.5, 10.0, 1e9],
            ..KmOptions::default()
        };
        let km = kaplan_meier(&data.time, &data.event, &data.group, &labels(data.k), &options).unwrap();
        check_km_shape(&km, &data)?;
        for curve in &km.groups {
            for at in &curve.at {
                prop_assert!((0.0..=1.0).contains(&at.surv));
                prop_assert_eq!(at.surv, curve.surv_at(at.time));
            }
        }
    }

    #[test]
    fn km_ignores_row_order_and_group_names(data in surv_data(40, 3), seed in any::<u64>(), shift in 0..3usize) {
        let options = KmOptions::default();
        let base = kaplan_meier(&data.time, &data.event, &data.group, &labels(data.k), &options).unwrap();
        // Rows permuted, and group codes rotated with their labels: the curve of each label is
        // identical (the product-limit table depends only on counts at each time).
        let p = permutation(data.time.len(), seed);
        let k = data.k;
        let rotated: Vec<usize> = data.group.iter().map(|&g| (g + shift) % k).collect();
        let mut new_labels = vec![String::new(); k];
        for g in 0..k {
            new_labels[(g + shift) % k] = format!("g{g}");
        }
        let other = kaplan_meier(
            &permute(&data.time, &p),
            &permute(&data.event, &p),
            &permute(&rotated, &p),
            &new_labels,
            &options,
        )
        .unwrap();
        for curve in &base.groups {
            let twin = other.groups.iter().find(|c| c.level == curve.level).unwrap();
            prop_assert_eq!(&curve.table, &twin.table);
            prop_assert_eq!(curve.median, twin.median);
            prop_assert_eq!(curve.median_lower, twin.median_lower);
            prop_assert_eq!(curve.median_upper, twin.median_upper);
        }
    }

    #[test]
    fn scaling_time_scales_the_medians(data in surv_data(40, 2), c in prop::sample::select(vec![0.5, 2.0, 3.7, 10.0, 365.25, 1e-3, 1e6])) {
        let options = KmOptions::default();
        let base = kaplan_meier(&data.time, &data.event, &data.group, &labels(data.k), &options).unwrap();
        let scaled_time: Vec<f64> = data.time.iter().map(|t| t * c).collect();
        let scaled = kaplan_meier(&scaled_time, &data.event, &data.group, &labels(data.k), &options).unwrap();
        for (a, b) in base.groups.iter().zip(&scaled.groups) {
            prop_assert_eq!(a.table.len(), b.table.len());
            for (ra, rb) in a.table.iter().zip(&b.table) {
                prop_assert!(close(ra.time * c, rb.time, 1e-12));
                prop_assert_eq!(ra.surv, rb.surv);
            }
            let scale = |m: Option<f64>| m.map(|m| m * c);
            prop_assert!(close_opt(scale(a.median), b.median, 1e-12), "{:?} * {c} vs {:?}", a.median, b.median);
            prop_assert!(close_opt(scale(a.median_lower), b.median_lower, 1e-12));
            prop_assert!(close_opt(scale(a.median_upper), b.median_upper, 1e-12));
        }
    }

    #[test]
    fn logrank_ignores_row_order_and_group_names(data in surv_data_groups(2, 40, 3), seed in any::<u64>(), rho in prop::sample::select(vec![0.0, 1.0, 0.5])) {
        let base = match logrank(&data.time, &data.event, &data.group, &labels(data.k), None, rho) {
            Ok(lr) => lr,
            Err(e) => {
                // Every event where everyone at risk dies (variance 0), as R's survdiff.
                prop_assert!(e.message.contains("singular"), "{e}");
                return Ok(());
            }
        };
        prop_assert!(base.chisq.is_finite() && base.chisq >= -1e-9, "{base:?}");
        if let Some(p) = base.p {
            prop_assert!((0.0..=1.0).contains(&p));
        }
        let p = permutation(data.time.len(), seed);
        let k = data.k;
        // Reverse the codes: group g becomes k - 1 - g, labels follow.
        let reversed: Vec<usize> = data.group.iter().map(|&g| k - 1 - g).collect();
        let new_labels: Vec<String> = (0..k).map(|g| format!("g{}", k - 1 - g)).collect();
        let other = logrank(
            &permute(&data.time, &p),
            &permute(&data.event, &p),
            &permute(&reversed, &p),
            &new_labels,
            None,
            rho,
        )
        .unwrap();
        prop_assert!(close(base.chisq, other.chisq, 1e-8) || (base.chisq - other.chisq).abs() < 1e-10, "{} vs {}", base.chisq, other.chisq);
        prop_assert_eq!(base.df, other.df);
        for g in &base.groups {
            let twin = other.groups.iter().find(|o| o.level == g.level).unwrap();
            prop_assert!(close(g.observed, twin.observed, 1e-12));
            prop_assert!(close(g.expected, twin.expected, 1e-10));
        }
    }

    #[test]
    fn logrank_of_identical_groups_is_zero(data in surv_data(30, 1), rho in prop::sample::select(vec![0.0, 1.0])) {
        // The same patients twice, once in each group.
        let n = data.time.len();
        let time: Vec<f64> = data.time.iter().chain(&data.time).copied().collect();
        let event: Vec<bool> = data.event.iter().chain(&data.event).copied().collect();
        let group: Vec<usize> = (0..2 * n).map(|i| usize::from(i >= n)).collect();
        let lr = match logrank(&time, &event, &group, &["a", "b"], None, rho) {
            Ok(lr) => lr,
            Err(e) => {
                // Every event at a time where everyone at risk dies: variance 0, as R's survdiff
                // (which stops in solve()).
                prop_assert!(e.message.contains("singular"), "{e}");
                return Ok(());
            }
        };
        prop_assert!(lr.chisq.abs() < 1e-10, "{lr:?}");
        prop_assert!(close(lr.groups[0].observed, lr.groups[1].observed, 1e-12));
        prop_assert!(close(lr.groups[0].expected, lr.groups[0].observed, 1e-9), "{lr:?}");
        if let Some(p) = lr.p {
            prop_assert!(p > 0.9999, "{lr:?}");
        }
    }
}

/// Cox data: continuous covariates, integer times, at least a few events.
#[derive(Debug, Clone)]
struct CoxData {
    time: Vec<f64>,
    event: Vec<bool>,
    x: Vec<Vec<f64>>,
}

fn cox_data() -> impl Strategy<Value = CoxData> {
    (12..40usize, 1..=2usize).prop_flat_map(|(n, p)| {
        (
            prop::collection::vec(1..=20u32, n),
            prop::collection::vec(prop::bool::weighted(0.7), n),
            prop::collection::vec(prop::collection::vec(-3.0..3.0f64, n), p),
        )
            .prop_map(|(t, event, x)| CoxData {
                time: t.into_iter().map(f64::from).collect(),
                event,
                x,
            })
    })
}

fn matrix(x: &[Vec<f64>]) -> DMatrix<f64> {
    let n = x[0].len();
    DMatrix::from_fn(n, x.len(), |i, j| x[j][i])
}

fn terms(p: usize) -> Vec<String> {
    (0..p).map(|j| format!("x{j}")).collect()
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn cox_ignores_row_order(data in cox_data(), seed in any::<u64>(), efron in any::<bool>()) {
        let options = CoxOptions { ties: if efron { Ties::Efron } else { Ties::Breslow }, ..CoxOptions::default() };
        let p = data.x.len();
        let base = cox(&data.time, &data.event, &matrix(&data.x), &terms(p), &options);
        let perm = permutation(data.time.len(), seed);
        let x2: Vec<Vec<f64>> = data.x.iter().map(|c| permute(c, &perm)).collect();
        let other = cox(&permute(&data.time, &perm), &permute(&data.event, &perm), &matrix(&x2), &terms(p), &options);
        match (base, other) {
            (Ok(a), _) | (_, Ok(a)) if !a.warnings.is_empty() => {
                // A monotone likelihood (a coefficient heading to infinity) or no convergence:
                // where Newton-Raphson stops depends on rounding, so only finiteness is checked.
                prop_assert!(a.loglik.is_finite());
            }
            (Ok(a), Ok(b)) if !b.warnings.is_empty() => {
                prop_assert!(a.loglik.is_finite() && b.loglik.is_finite());
            }
            (Ok(a), Ok(b)) => {
                prop_assert!(close(a.loglik, b.loglik, 1e-9), "{} vs {}", a.loglik, b.loglik);
                prop_assert!(close(a.score_test.chisq, b.score_test.chisq, 1e-8));
                for (ta, tb) in a.terms.iter().zip(&b.terms) {
                    // Summation order differs; Newton-Raphson stops at a relative log-likelihood
                    // change of 1e-9, so allow for the last step landing differently.
                    prop_assert!(close_opt(ta.coef, tb.coef, 1e-6), "{ta:?} vs {tb:?}");
                    prop_assert!(close_opt(ta.se, tb.se, 1e-6), "{ta:?} vs {tb:?}");
                }
                prop_assert!(close_opt(a.concordance, b.concordance, 1e-12));
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "one order fits, the other not: {a:?} / {b:?}"),
        }
    }

    #[test]
    fn cox_coefficients_scale_inversely_with_the_covariate(data in cox_data(), c in prop::sample::select(vec![2.0, 0.1, 1000.0, -1.0, 1e-4, 3.3])) {
        let options = CoxOptions::default();
        let p = data.x.len();
        let base = cox(&data.time, &data.event, &matrix(&data.x), &terms(p), &options);
        let mut scaled_x = data.x.clone();
        for v in scaled_x[0].iter_mut() {
            *v *= c;
        }
        let scaled = cox(&data.time, &data.event, &matrix(&scaled_x), &terms(p), &options);
        match (base, scaled) {
            (Ok(a), _) | (_, Ok(a)) if !a.warnings.is_empty() => {
                // A monotone likelihood (a coefficient heading to infinity) or no convergence:
                // where Newton-Raphson stops depends on rounding, so only finiteness is checked.
                prop_assert!(a.loglik.is_finite());
            }
            (Ok(a), Ok(b)) if !b.warnings.is_empty() => {
                prop_assert!(a.loglik.is_finite() && b.loglik.is_finite());
            }
            (Ok(a), Ok(b)) => {
                prop_assert!(close(a.loglik, b.loglik, 1e-9));
                let (ba, bb) = (a.terms[0].coef, b.terms[0].coef);
                prop_assert!(close_opt(ba.map(|b| b / c), bb, 1e-6), "{ba:?} / {c} vs {bb:?}");
                prop_assert!(close_opt(a.terms[0].se.map(|s| s / c.abs()), b.terms[0].se, 1e-6));
                prop_assert!(close_opt(a.terms[0].p, b.terms[0].p, 1e-6));
                if p > 1 {
                    prop_assert!(close_opt(a.terms[1].coef, b.terms[1].coef, 1e-6));
                }
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "scaling changed whether the model fits: {a:?} / {b:?}"),
        }
    }
}

#[derive(Debug, Clone)]
struct MatchData {
    treat: Vec<bool>,
    distance: Vec<f64>,
}

fn match_data() -> impl Strategy<Value = MatchData> {
    (2..40usize).prop_flat_map(|n| {
        (
            prop::collection::vec(prop::bool::weighted(0.35), n),
            // Few distinct values, so ties between units are frequent.
            prop::collection::vec(
                prop_oneof![(0..8u32).prop_map(|v| f64::from(v) / 8.0), 0.0..1.0f64],
                n,
            ),
        )
            .prop_map(|(mut treat, distance)| {
                treat[0] = true;
                treat[1] = false;
                MatchData { treat, distance }
            })
    })
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn matching_respects_replacement_ratio_and_caliper(
        data in match_data(),
        ratio in 1..=3usize,
        replace in any::<bool>(),
        caliper in prop::option::of(prop::sample::select(vec![0.01, 0.1, 0.25, 1.0])),
        order in prop::sample::select(vec![MatchOrder::Largest, MatchOrder::Smallest, MatchOrder::Data]),
    ) {
        let options = NearestOptions { ratio, caliper, replace, order, rule: DistanceRule::Exact };
        let m = match nearest_neighbor(&data.treat, &data.distance, &options) {
            Ok(m) => m,
            Err(e) => {
                // The only refusal possible here: a caliper that excludes every control.
                prop_assert!(caliper.is_some(), "{e}");
                prop_assert!(e.message.contains("no matches"), "{e}");
                return Ok(());
            }
        };
        let n1 = data.treat.iter().filter(|&&t| t).count();
        prop_assert_eq!(m.sets.len(), n1);
        let mut used = vec![0usize; data.treat.len()];
        for set in &m.sets {
            prop_assert!(data.treat[set.treated]);
            prop_assert!(set.controls.len() <= ratio);
            for (i, &c) in set.controls.iter().enumerate() {
                prop_assert!(!data.treat[c], "unit {c} is treated");
                prop_assert!(!set.controls[..i].contains(&c), "control {c} twice in one set");
                used[c] += 1;
                if let Some(w) = m.caliper_width {
                    let d = (data.distance[set.treated] - data.distance[c]).abs();
                    prop_assert!(d <= w, "control {c} at {d} > caliper width {w}");
                }
            }
        }
        if !replace {
            prop_assert!(used.iter().all(|&u| u <= 1), "a control used twice without replacement: {used:?}");
        }
        let n0 = data.treat.len() - n1;
        if caliper.is_none() && (replace || n0 >= n1 * ratio) {
            let want = if replace { ratio.min(n0) } else { ratio };
            for set in &m.sets {
                prop_assert_eq!(set.controls.len(), want, "{:?}", set);
            }
        }
        // Weights: 1 per matched treated unit, controls rescaled to the number matched.
        let matched_controls = used.iter().filter(|&&u| u > 0).count();
        prop_assert_eq!(m.n_control_matched, matched_controls);
        let wc: f64 = (0..data.treat.len()).filter(|&i| !data.treat[i]).map(|i| m.weights[i]).sum();
        prop_assert!(close(wc, matched_controls as f64, 1e-12), "{wc} vs {matched_controls}");
        for (i, w) in m.weights.iter().enumerate() {
            prop_assert!(w.is_finite() && *w >= 0.0);
            if data.treat[i] {
                prop_assert!(*w == 0.0 || *w == 1.0);
            }
        }
    }

    /// Each treated unit takes its nearest available control: with ratio 1, no caliper and no
    /// replacement, no control left unused is strictly closer to a treated unit than the control
    /// that unit took, at the moment it chose (checked on the first treated unit to choose).
    #[test]
    fn first_treated_unit_gets_a_nearest_control(data in match_data()) {
        let options = NearestOptions { order: MatchOrder::Data, ..NearestOptions::default() };
        let m = nearest_neighbor(&data.treat, &data.distance, &options).unwrap();
        let first = &m.sets[0];
        let taken = first.controls[0];
        let d = |c: usize| (data.distance[first.treated] - data.distance[c]).abs();
        for c in (0..data.treat.len()).filter(|&c| !data.treat[c]) {
            prop_assert!(d(c) >= d(taken), "control {c} at {} is nearer than {taken} at {}", d(c), d(taken));
        }
    }
}
