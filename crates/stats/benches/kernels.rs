//! Kernel benchmarks at n = 10^4, 10^5, 10^6 on bench.R's simulated cohort (5 covariates), through
//! galley_stats' public API. Run with `cargo bench -p galley-stats` (see `benches/README.md` at
//! the top of the repository). `cargo test` does not build or run them.
//!
//! Treated units for the propensity model and matching: n / 100 (10,000 at a million, as
//! `bench.R 1000000 10000`).

mod common;

use common::{Cohort, kernels};
use std::sync::OnceLock;

const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];

fn main() {
    divan::main();
}

/// The cohort of size `n`, simulated once per process.
fn cohort(n: usize) -> &'static Cohort {
    static DATA: [OnceLock<Cohort>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let k = SIZES
        .iter()
        .position(|&s| s == n)
        .expect("a benchmarked size");
    DATA[k].get_or_init(|| common::simulate(n, common::default_treated(n), 1))
}

fn ids(n: usize) -> &'static [String] {
    static IDS: [OnceLock<Vec<String>>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let k = SIZES
        .iter()
        .position(|&s| s == n)
        .expect("a benchmarked size");
    IDS[k].get_or_init(|| kernels::ids(n))
}

// One iteration per sample; 10 samples (the largest size takes up to ~1 s per call).
#[divan::bench(args = SIZES, sample_count = 10, sample_size = 1)]
fn km(bencher: divan::Bencher, n: usize) {
    let c = cohort(n);
    bencher.bench(|| kernels::km(c));
}

#[divan::bench(args = SIZES, sample_count = 10, sample_size = 1)]
fn logrank(bencher: divan::Bencher, n: usize) {
    let c = cohort(n);
    bencher.bench(|| kernels::logrank_test(c));
}

#[divan::bench(args = SIZES, sample_count = 10, sample_size = 1)]
fn cox_efron(bencher: divan::Bencher, n: usize) {
    let c = cohort(n);
    bencher.bench(|| kernels::cox_efron(c));
}

#[divan::bench(args = SIZES, sample_count = 10, sample_size = 1)]
fn logistic_irls(bencher: divan::Bencher, n: usize) {
    let c = cohort(n);
    bencher.bench(|| kernels::logistic(c));
}

/// Propensity model + 1:4 greedy matching + balance table (`propensity_match`).
#[divan::bench(args = SIZES, sample_count = 10, sample_size = 1)]
fn match_1to4(bencher: divan::Bencher, n: usize) {
    let (c, ids) = (cohort(n), ids(n));
    bencher.bench(|| kernels::matching(c, ids));
}

/// The 1:4 matching step alone, on a fitted propensity score.
#[divan::bench(args = SIZES, sample_count = 10, sample_size = 1)]
fn match_1to4_nn_only(bencher: divan::Bencher, n: usize) {
    let c = cohort(n);
    let ps = kernels::logistic(c).fitted;
    let opts = kernels::match_options();
    bencher.bench(|| galley_stats::matching::nearest_neighbor(&c.treat, &ps, &opts).unwrap());
}
