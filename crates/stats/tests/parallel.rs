//! The parallel kernels (`src/par.rs`): above one chunk of rows, where the work is split across
//! threads, results must be
//! - the same bits on any number of threads (reports are rebuilt byte for byte), and
//! - the same estimates as the sequential computation, which the R reference tests cover on
//!   small data. Here a small data set is repeated until it spans several chunks: the repeated
//!   data have known estimates (those of the small set; standard errors shrink by the square
//!   root of the number of copies).

use galley_stats::cox::{Cox, CoxOptions, Ties, cox};
use galley_stats::design::{Covariate, ModelMatrix, model_matrix};
use galley_stats::logistic::{LogisticFit, LogisticOptions, logistic_regression};
use galley_stats::matching::{DistanceRule, Link, NearestOptions, propensity_match};

/// splitmix64, uniform on [0, 1).
fn uniform(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// A cohort like bench.R's: times rounded to 0.1 (many ties), 70% events, three strata and
/// 400 clusters, and a treatment that depends on the covariates.
struct Cohort {
    time: Vec<f64>,
    event: Vec<bool>,
    strata: Vec<usize>,
    cluster: Vec<usize>,
    treat: Vec<bool>,
    age: Vec<f64>,
    sex: Vec<f64>,
    x4: Vec<f64>,
}

impl Cohort {
    fn simulate(n: usize, seed: u64) -> Cohort {
        let mut st = seed;
        let mut c = Cohort {
            time: vec![],
            event: vec![],
            strata: vec![],
            cluster: vec![],
            treat: vec![],
            age: vec![],
            sex: vec![],
            x4: vec![],
        };
        for i in 0..n {
            let normal = |st: &mut u64| (0..12).map(|_| uniform(st)).sum::<f64>() - 6.0;
            let age = 60.0 + 10.0 * normal(&mut st);
            let sex = f64::from(uniform(&mut st) < 0.5);
            let x4 = normal(&mut st);
            let rate = 0.01 * (0.02 * (age - 60.0) + 0.3 * sex).exp();
            let t = -(1.0 - uniform(&mut st)).ln() / rate;
            let lin = -2.0 + 0.03 * (age - 60.0) + 0.5 * sex - 0.4 * x4;
            c.time.push((t * 10.0).round() / 10.0 + 0.1);
            c.event.push(uniform(&mut st) < 0.7);
            c.strata.push(i % 3);
            c.cluster.push(i % 400);
            c.treat.push(uniform(&mut st) < 1.0 / (1.0 + (-lin).exp()));
            c.age.push(age);
            c.sex.push(sex);
            c.x4.push(x4);
        }
        c
    }

    /// Every row `copies` times, copies one after another.
    fn repeated(&self, copies: usize) -> Cohort {
        fn rep<T: Clone>(v: &[T], k: usize) -> Vec<T> {
            (0..k).flat_map(|_| v.iter().cloned()).collect()
        }
        Cohort {
            time: rep(&self.time, copies),
            event: rep(&self.event, copies),
            strata: rep(&self.strata, copies),
            cluster: rep(&self.cluster, copies),
            treat: rep(&self.treat, copies),
            age: rep(&self.age, copies),
            sex: rep(&self.sex, copies),
            x4: rep(&self.x4, copies),
        }
    }

    fn covariates(&self) -> Vec<Covariate> {
        vec![
            Covariate::numeric("age", self.age.clone()),
            Covariate::numeric("sex", self.sex.clone()),
            Covariate::numeric("x4", self.x4.clone()),
        ]
    }

    fn design(&self, intercept: bool) -> ModelMatrix {
        model_matrix(&self.covariates(), intercept).unwrap()
    }

    fn cox(&self, ties: Ties, stratified: bool) -> Cox {
        let m = self.design(false);
        let options = CoxOptions {
            ties,
            strata: stratified.then_some(&self.strata[..]),
            cluster: stratified.then_some(&self.cluster[..]),
            ..CoxOptions::default()
        };
        cox(&self.time, &self.event, &m.x, &m.names, &options).unwrap()
    }

    fn logistic(&self) -> LogisticFit {
        logistic_regression(&self.treat, &self.design(true), LogisticOptions::default()).unwrap()
    }
}

/// Run `f` in a rayon pool of `threads` threads.
fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

fn bits(v: impl IntoIterator<Item = f64>) -> Vec<u64> {
    v.into_iter().map(f64::to_bits).collect()
}

/// Everything a Cox fit reports, to the bit (JSON numbers round-trip exactly).
fn cox_bits(fit: &Cox) -> String {
    serde_json::to_string(fit).unwrap()
}

/// Everything a logistic fit reports, plus its (unserialised) fitted values and coefficients.
fn logistic_bits(fit: &LogisticFit) -> (String, Vec<u64>, Vec<u64>, Vec<u64>) {
    (
        serde_json::to_string(fit).unwrap(),
        bits(fit.coefficients.iter().copied()),
        bits(fit.fitted.iter().copied()),
        bits(fit.linear_predictor.iter().copied()),
    )
}

// 100,000 rows: three full chunks of 32,768 and a partial one.
const N: usize = 100_000;

#[test]
fn thread_count_changes_no_bit() {
    let c = Cohort::simulate(N, 11);
    let run = || {
        (
            cox_bits(&c.cox(Ties::Efron, false)),
            cox_bits(&c.cox(Ties::Breslow, true)),
            logistic_bits(&c.logistic()),
        )
    };
    let one = in_pool(1, run);
    let four = in_pool(4, run);
    assert_eq!(one.0, four.0, "Cox (Efron, concordance)");
    assert_eq!(one.1, four.1, "Cox (Breslow, strata, clusters)");
    assert_eq!(one.2, four.2, "logistic");
    // And the global pool, whatever its size on this machine.
    assert_eq!(one, run());
}

#[test]
fn propensity_matching_is_the_same_on_any_thread_count() {
    let c = Cohort::simulate(N, 12);
    let ids: Vec<String> = (1..=N).map(|i| i.to_string()).collect();
    let options = NearestOptions {
        ratio: 2,
        rule: DistanceRule::Exact,
        ..NearestOptions::default()
    };
    let run = || {
        let pm = propensity_match(&ids, &c.treat, &c.covariates(), Link::Logit, &options).unwrap();
        serde_json::to_string(&pm).unwrap()
    };
    assert_eq!(in_pool(1, run), in_pool(3, run));
}

/// Relative difference, at least absolute near zero.
fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

#[test]
fn logistic_over_many_chunks_matches_the_one_chunk_fit() {
    let small = Cohort::simulate(5_000, 21);
    let copies = 20; // 100,000 rows
    let (a, b) = (small.logistic(), small.repeated(copies).logistic());
    let k = copies as f64;
    for (s, l) in a.terms.iter().zip(&b.terms) {
        let (cs, cl) = (s.coef.unwrap(), l.coef.unwrap());
        assert!(rel(cl, cs) < 1e-9, "{}: {cl} vs {cs}", s.term);
        let (ss, sl) = (s.se.unwrap(), l.se.unwrap());
        assert!(rel(sl * k.sqrt(), ss) < 1e-9, "{}: se {sl} vs {ss}", s.term);
    }
    assert!(rel(b.deviance, k * a.deviance) < 1e-9);
    assert!(rel(b.null_deviance, k * a.null_deviance) < 1e-9);
}

#[test]
fn cox_over_many_chunks_matches_the_one_chunk_fit() {
    // Breslow's likelihood of k copies of each row is k times the original's, less a constant,
    // so the estimates are the original's; Efron's correction is not invariant to copies (they
    // are ties), so it is checked through the segmented-pass unit tests instead.
    let small = Cohort::simulate(5_000, 31);
    let copies = 20;
    let (a, b) = (
        small.cox(Ties::Breslow, false),
        small.repeated(copies).cox(Ties::Breslow, false),
    );
    let k = copies as f64;
    for (s, l) in a.terms.iter().zip(&b.terms) {
        let (cs, cl) = (s.coef.unwrap(), l.coef.unwrap());
        assert!(rel(cl, cs) < 1e-8, "{}: {cl} vs {cs}", s.term);
        let (ss, sl) = (s.se.unwrap(), l.se.unwrap());
        assert!(rel(sl * k.sqrt(), ss) < 1e-8, "{}: se {sl} vs {ss}", s.term);
    }
    assert!(rel(b.score_test.chisq, k * a.score_test.chisq) < 1e-8);
    assert!(rel(b.lr_test.chisq, k * a.lr_test.chisq) < 1e-8);
}
