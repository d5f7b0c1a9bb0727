//! Logistic regression as R's `glm(y ~ ..., family = binomial)` fits it (`glm.fit`: iteratively
//! reweighted least squares, logit link), with `summary.glm`'s Wald z tests and
//! `confint.default`'s Wald intervals, exponentiated to odds ratios.
//!
//! The iteration follows `glm.fit` step for step so coefficients, deviance and the iteration
//! count agree with R: start from mu = (y + 0.5) / 2, solve each weighted least-squares step by a
//! QR decomposition (never the normal equations: covariates such as earnings in dollars make
//! X'WX too ill-conditioned), stop when |dev - dev_old| / (|dev| + 0.1) < epsilon, at most
//! `max_iter` steps. Standard errors come from the QR of the last step, as `summary.glm`'s.

use crate::design::ModelMatrix;
use crate::par::{CHUNK, ordered_sum};
use crate::qr::BLOCK;
use crate::{Result, StatsError, finite};
use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

/// Fitting controls (R's `glm.control()` defaults) and the confidence level of the intervals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogisticOptions {
    /// Relative deviance change that counts as converged (R: 1e-8).
    pub epsilon: f64,
    /// Most IRLS iterations (R: 25).
    pub max_iter: usize,
    /// Level of the Wald intervals (0.95).
    pub conf_level: f64,
}

impl Default for LogisticOptions {
    fn default() -> Self {
        LogisticOptions {
            epsilon: 1e-8,
            max_iter: 25,
            conf_level: 0.95,
        }
    }
}

/// One coefficient: estimate, standard error, Wald z and two-sided p, odds ratio and its Wald
/// interval. `None` where a value is not finite (e.g. the odds ratio of a separated covariate).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogisticTerm {
    pub term: String,
    pub coef: Option<f64>,
    pub se: Option<f64>,
    pub z: Option<f64>,
    pub p: Option<f64>,
    pub or: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

/// A fitted logistic regression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogisticFit {
    pub n: usize,
    pub terms: Vec<LogisticTerm>,
    pub null_deviance: f64,
    pub deviance: f64,
    pub aic: f64,
    /// IRLS iterations used (R's `iter`).
    pub iterations: usize,
    pub converged: bool,
    /// Problems R would warn about: non-convergence, fitted probabilities of 0 or 1.
    pub warnings: Vec<String>,
    /// Coefficients in term order (for prediction; not part of the report).
    #[serde(skip)]
    pub coefficients: Vec<f64>,
    /// Fitted probabilities, one per observation.
    #[serde(skip)]
    pub fitted: Vec<f64>,
    /// Linear predictors (log odds), one per observation.
    #[serde(skip)]
    pub linear_predictor: Vec<f64>,
}

// R's binomial()$linkinv and $mu.eta (family.c) bound the linear predictor at +-30; `link`
// computes both.
const THRESH: f64 = 30.0;
const MTHRESH: f64 = -30.0;

fn linkinv(eta: f64) -> f64 {
    let tmp = if eta < MTHRESH {
        f64::EPSILON
    } else if eta > THRESH {
        1.0 / f64::EPSILON
    } else {
        eta.exp()
    };
    tmp / (1.0 + tmp)
}

/// `(linkinv(eta), mu_eta(eta))` with one `exp`, bit for bit the values of the two.
fn link(eta: f64) -> (f64, f64) {
    if (MTHRESH..=THRESH).contains(&eta) {
        let e = eta.exp();
        let op = 1.0 + e;
        (e / op, e / (op * op))
    } else {
        (linkinv(eta), f64::EPSILON)
    }
}

fn y_log_y(y: f64, mu: f64) -> f64 {
    if y != 0.0 { y * (y / mu).ln() } else { 0.0 }
}

/// Binomial deviance for 0/1 responses (R's `binomial()$dev.resids`, summed).
fn deviance(y: &[f64], mu: &[f64]) -> f64 {
    y.iter()
        .zip(mu)
        .map(|(&y, &m)| 2.0 * (y_log_y(y, m) + y_log_y(1.0 - y, 1.0 - m)))
        .sum()
}

/// [`deviance`] with the same fitted value for every observation (the null model).
fn deviance_at(y: &[f64], mu: f64) -> f64 {
    y.iter()
        .map(|&y| 2.0 * (y_log_y(y, mu) + y_log_y(1.0 - y, 1.0 - mu)))
        .sum()
}

/// Per observation: the linear predictor, the fitted probability and d mu / d eta.
struct Fitted {
    eta: Vec<f64>,
    mu: Vec<f64>,
    mu_eta: Vec<f64>,
}

impl Fitted {
    fn new(n: usize) -> Self {
        Fitted {
            eta: vec![0.0; n],
            mu: vec![0.0; n],
            mu_eta: vec![0.0; n],
        }
    }

    /// Run `f(first_row, eta, mu, mu_eta)` on the row chunks (in parallel) and sum what it
    /// returns in chunk order (see `crate::par`: the same bits on any thread count).
    fn par_chunks(
        &mut self,
        f: impl Fn(usize, &mut [f64], &mut [f64], &mut [f64]) -> f64 + Sync,
    ) -> f64 {
        let parts: Vec<f64> = self
            .eta
            .par_chunks_mut(CHUNK)
            .zip(self.mu.par_chunks_mut(CHUNK))
            .zip(self.mu_eta.par_chunks_mut(CHUNK))
            .enumerate()
            .map(|(c, ((e, m), me))| f(c * CHUNK, e, m, me))
            .collect();
        ordered_sum(&parts)
    }
}

/// Fit `y ~ X` by maximum likelihood with the logit link. `x` should contain the intercept
/// column (see [`crate::design::model_matrix`]). Errors on mismatched lengths, an outcome that
/// never or always occurs, or a rank-deficient step; non-convergence and separation are reported
/// as warnings in the result, as R does.
pub fn logistic_regression(
    y: &[bool],
    x: &ModelMatrix,
    options: LogisticOptions,
) -> Result<LogisticFit> {
    let events = check_logistic(y, x, &options)?;
    let (n, p) = (y.len(), x.ncols());
    let yf: Vec<f64> = y.iter().map(|&v| if v { 1.0 } else { 0.0 }).collect();
    let irls = irls(&x.x, &yf, &options)?;
    let Fitted { eta, mu, .. } = irls.fit;
    let mut warnings = Vec::new();
    if !irls.converged {
        warnings.push(format!(
            "the logistic fit did not converge in {} iterations (glm.fit: algorithm did not converge)",
            options.max_iter
        ));
    }
    let eps = 10.0 * f64::EPSILON;
    if mu.iter().any(|&m| m > 1.0 - eps || m < eps) {
        warnings.push(
            "fitted probabilities numerically 0 or 1 occurred: the outcome is (quasi-)perfectly separated by the covariates, so some estimates and standard errors are not reliable"
                .to_string(),
        );
    }

    // Null deviance: intercept-only fit is the overall mean; without intercept, mu = 1/2.
    let null_mu = if x.intercept {
        events as f64 / n as f64
    } else {
        0.5
    };
    let null_deviance = ordered_sum(
        &yf.par_chunks(CHUNK)
            .map(|yc| deviance_at(yc, null_mu))
            .collect::<Vec<f64>>(),
    );
    // For 0/1 data with unit weights, -2 log-likelihood equals the deviance.
    let aic = irls.deviance + 2.0 * p as f64;
    let terms = logistic_terms(x, &irls.coef, irls.r_last.as_ref(), options.conf_level);
    Ok(LogisticFit {
        n,
        terms,
        null_deviance,
        deviance: irls.deviance,
        aic,
        iterations: irls.iterations,
        converged: irls.converged,
        warnings,
        coefficients: irls.coef.iter().copied().collect(),
        fitted: mu,
        linear_predictor: eta,
    })
}

/// The inputs and options of [`logistic_regression`]; returns the number of events.
fn check_logistic(y: &[bool], x: &ModelMatrix, options: &LogisticOptions) -> Result<usize> {
    let n = y.len();
    let p = x.ncols();
    if n == 0 {
        return Err(StatsError::new(
            "no observations to fit the logistic regression",
        ));
    }
    if x.nrows() != n {
        return Err(StatsError::new(format!(
            "the outcome has {n} values but the covariates have {} rows",
            x.nrows()
        )));
    }
    if p == 0 {
        return Err(StatsError::new("the logistic model has no terms"));
    }
    if n < p {
        return Err(StatsError::new(format!(
            "{p} coefficients cannot be estimated from {n} observations"
        )));
    }
    let events = y.iter().filter(|&&v| v).count();
    if events == 0 || events == n {
        return Err(StatsError::new(format!(
            "the outcome is {} for every observation; a logistic regression needs both outcomes",
            if events == 0 { "absent" } else { "present" }
        )));
    }
    if !(options.conf_level > 0.0 && options.conf_level < 1.0) || options.max_iter == 0 {
        return Err(StatsError::new(
            "invalid fitting options: the confidence level must be in (0, 1) and max_iter positive",
        ));
    }
    Ok(events)
}

/// Where iteratively reweighted least squares ended.
struct Irls {
    fit: Fitted,
    coef: DVector<f64>,
    /// R of the last weighted least-squares step (for the covariance).
    r_last: Option<DMatrix<f64>>,
    converged: bool,
    iterations: usize,
    deviance: f64,
}

/// glm.fit's IRLS from its starting values, until the relative change of the deviance is below
/// `epsilon` or `max_iter` steps.
fn irls(xm: &DMatrix<f64>, yf: &[f64], options: &LogisticOptions) -> Result<Irls> {
    let (n, p) = (yf.len(), xm.ncols());
    // glm.fit: mustart = (weights * y + 0.5) / (weights + 1), eta = linkfun(mustart).
    let mut fit = Fitted::new(n);
    let mut dev_old = fit.par_chunks(|lo, eta, mu, mu_eta| {
        for (((e, m), me), &y) in eta.iter_mut().zip(mu.iter_mut()).zip(mu_eta).zip(&yf[lo..]) {
            let ms = (y + 0.5) / 2.0;
            *e = (ms / (1.0 - ms)).ln();
            (*m, *me) = link(*e);
        }
        deviance(&yf[lo..lo + mu.len()], mu)
    });
    let mut coef_old: Option<DVector<f64>> = None;
    let mut coef = DVector::zeros(p);
    let mut r_last: Option<DMatrix<f64>> = None;
    let mut converged = false;
    let mut iterations = 0;
    let mut dev = dev_old;
    // The next iterate's values; swapped with `fit` on success.
    let mut next = Fitted::new(n);
    for iter in 1..=options.max_iter {
        iterations = iter;
        let (start, r) = weighted_ls(xm, yf, &fit)?;
        let mut start = start;
        dev = predict(xm, &start, yf, &mut next);
        // glm.fit halves the step while the deviance is not finite (cannot happen with the
        // bounded logit, kept for safety).
        let mut halvings = 0;
        while !dev.is_finite() {
            let Some(old) = &coef_old else {
                return Err(StatsError::new(
                    "the logistic fit diverged at the first step; no valid coefficients found",
                ));
            };
            halvings += 1;
            if halvings > options.max_iter {
                return Err(StatsError::new(
                    "the logistic fit diverged and step-halving could not recover",
                ));
            }
            start = (&start + old) / 2.0;
            dev = predict(xm, &start, yf, &mut next);
        }
        std::mem::swap(&mut fit, &mut next);
        coef = start;
        r_last = Some(r);
        if (dev - dev_old).abs() / (dev.abs() + 0.1) < options.epsilon {
            converged = true;
            break;
        }
        dev_old = dev;
        coef_old = Some(coef.clone());
    }
    Ok(Irls {
        fit,
        coef,
        r_last,
        converged,
        iterations,
        deviance: dev,
    })
}

/// One row per coefficient: Wald SE, z, p and the odds ratio with its interval at `conf_level`.
fn logistic_terms(
    x: &ModelMatrix,
    coef: &DVector<f64>,
    r_last: Option<&DMatrix<f64>>,
    conf_level: f64,
) -> Vec<LogisticTerm> {
    let cov = r_last.and_then(unscaled_covariance);
    let nd = Normal::standard();
    let zq = nd.inverse_cdf(1.0 - (1.0 - conf_level) / 2.0);
    (0..x.ncols())
        .map(|j| {
            let b = coef[j];
            let se = cov.as_ref().map(|c| c[(j, j)].sqrt()).and_then(finite);
            let z = se.map(|s| b / s).and_then(finite);
            let pval = z.map(|z| 2.0 * nd.cdf(-z.abs()));
            LogisticTerm {
                term: x.names[j].clone(),
                coef: finite(b),
                se,
                z,
                p: pval,
                or: finite(b.exp()),
                lower: se.and_then(|s| finite((b - zq * s).exp())),
                upper: se.and_then(|s| finite((b + zq * s).exp())),
            }
        })
        .collect()
}

/// The linear predictor `eta = X b`, fitted values `mu` and d mu / d eta at `b`, written into
/// `fit`; returns the deviance. One parallel pass over row chunks: each chunk's columns and outputs stay
/// in cache while its predictor, inverse link and deviance terms are computed.
fn predict(x: &DMatrix<f64>, b: &DVector<f64>, y: &[f64], fit: &mut Fitted) -> f64 {
    let (n, p) = x.shape();
    let xs = x.as_slice();
    fit.par_chunks(|lo, eta, mu, mu_eta| {
        let hi = lo + eta.len();
        // Each row accumulates its terms in column order from -0.0 (as `Iterator::sum`), the
        // same for identical rows, so units with equal covariates get bit-identical predictions
        // (matching depends on exact ties); column by column, so the column-major matrix is read
        // in order.
        eta.fill(-0.0);
        for j in 0..p {
            let bj = b[j];
            for (e, &v) in eta.iter_mut().zip(&xs[j * n + lo..j * n + hi]) {
                *e += v * bj;
            }
        }
        // d mu / d eta too, for the next step's weights: one exp per row serves both.
        for ((m, me), &e) in mu.iter_mut().zip(mu_eta.iter_mut()).zip(eta.iter()) {
            (*m, *me) = link(e);
        }
        deviance(&y[lo..hi], mu)
    })
}

/// One IRLS step: weighted least squares of the working response z on X, with weights and z
/// from the current `eta` and `mu` (variance mu (1 - mu)), by Householder QR of the augmented
/// matrix [W X | W z], streamed in row blocks (`crate::qr`): the top-left p x p of its R factor is
/// X'W's R, the last column above the diagonal is Q'(W z). The weights are computed block by
/// block as the QR consumes them; neither W X nor the weights are stored. Returns the solution
/// and the R factor.
fn weighted_ls(x: &DMatrix<f64>, y: &[f64], fit: &Fitted) -> Result<(DVector<f64>, DMatrix<f64>)> {
    let (eta, mu, mu_eta) = (&fit.eta, &fit.mu, &fit.mu_eta);
    let (n, p) = x.shape();
    let q = p + 1;
    let xs = x.as_slice();
    let raug = crate::qr::r_factor(n, q, |i0, b, blk| {
        let mut w = [0.0f64; BLOCK];
        let rows = i0..i0 + b;
        let zw = &mut blk[p * BLOCK..p * BLOCK + b];
        for (k, (((&e, &m), &me), &yi)) in eta[rows.clone()]
            .iter()
            .zip(&mu[rows.clone()])
            .zip(&mu_eta[rows.clone()])
            .zip(&y[rows.clone()])
            .enumerate()
        {
            let var = m * (1.0 - m);
            w[k] = (me * me / var).sqrt();
            zw[k] = (e + (yi - m) / me) * w[k];
        }
        for j in 0..p {
            let col = &xs[j * n + rows.start..j * n + rows.end];
            for ((o, &v), &wi) in blk[j * BLOCK..j * BLOCK + b].iter_mut().zip(col).zip(&w) {
                *o = v * wi;
            }
        }
    });
    let r = DMatrix::from_fn(p, p, |i, j| raug[j * q + i]);
    let max_diag = (0..p).map(|j| r[(j, j)].abs()).fold(0.0, f64::max);
    if (0..p).any(|j| r[(j, j)].abs() <= 1e-11 * max_diag) || max_diag == 0.0 {
        return Err(StatsError::new(
            "the weighted covariate matrix became rank deficient during fitting; check for covariates that separate the outcome or duplicate each other",
        ));
    }
    let qtz = DVector::from_column_slice(&raug[p * q..p * q + p]);
    let beta = r
        .solve_upper_triangular(&qtz)
        .ok_or_else(|| StatsError::new("singular weighted least-squares step"))?;
    Ok((beta, r))
}

/// (R'R)^-1 from the R factor (R's `chol2inv`).
fn unscaled_covariance(r: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    let p = r.ncols();
    let rinv = r.clone().solve_upper_triangular(&DMatrix::identity(p, p))?;
    Some(&rinv * rinv.transpose())
}

#[cfg(test)]
mod unit {
    use super::*;
    use crate::design::{Covariate, model_matrix};

    #[test]
    fn single_binary_covariate_gives_log_odds_ratio() {
        // 2x2: exposed 12 events / 8 non-events, unexposed 5 / 15.
        let mut y = Vec::new();
        let mut x = Vec::new();
        for (exp, ev, non) in [(1.0, 12, 8), (0.0, 5, 15)] {
            y.extend(std::iter::repeat_n(true, ev));
            y.extend(std::iter::repeat_n(false, non));
            x.extend(std::iter::repeat_n(exp, ev + non));
        }
        let m = model_matrix(&[Covariate::numeric("exposed", x)], true).unwrap();
        let fit = logistic_regression(&y, &m, LogisticOptions::default()).unwrap();
        let log_or = ((12.0 * 15.0) / (8.0 * 5.0f64)).ln();
        let se = (1.0 / 12.0 + 1.0 / 8.0 + 1.0 / 5.0 + 1.0 / 15.0f64).sqrt();
        let t = &fit.terms[1];
        assert!((t.coef.unwrap() - log_or).abs() < 1e-9, "{:?}", t.coef);
        // The SE uses the weights of the last IRLS step (as R's), a hair from the limit.
        assert!((t.se.unwrap() - se).abs() < 1e-6 * se, "{:?} vs {se}", t.se);
        assert!((fit.terms[0].coef.unwrap() - (5.0f64 / 15.0).ln()).abs() < 1e-9);
        assert!(fit.converged && fit.warnings.is_empty());
        // Null deviance: -2 sum log(p_bar) with p_bar = 17/40.
        let pb: f64 = 17.0 / 40.0;
        let nd = -2.0 * (17.0 * pb.ln() + 23.0 * (1.0 - pb).ln());
        assert!((fit.null_deviance - nd).abs() < 1e-10);
        assert!((fit.aic - fit.deviance - 4.0).abs() < 1e-12);
    }

    /// R's binomial()$mu.eta, as family.c computes it on its own.
    fn mu_eta(eta: f64) -> f64 {
        if !(MTHRESH..=THRESH).contains(&eta) {
            f64::EPSILON
        } else {
            let e = eta.exp();
            let op = 1.0 + e;
            e / (op * op)
        }
    }

    #[test]
    fn link_is_linkinv_and_mu_eta_to_the_bit() {
        let mut etas: Vec<f64> = (-40_000..=40_000).map(|i| f64::from(i) * 1e-3).collect();
        etas.extend([
            -30.0,
            30.0,
            -30.000001,
            30.000001,
            f64::NAN,
            f64::INFINITY,
            -0.0,
        ]);
        for eta in etas {
            let (mu, me) = link(eta);
            assert_eq!(mu.to_bits(), linkinv(eta).to_bits(), "{eta}");
            assert_eq!(me.to_bits(), mu_eta(eta).to_bits(), "{eta}");
        }
    }

    #[test]
    fn separation_warns_without_nan() {
        let x: Vec<f64> = (0..20).map(|i| i as f64).collect();
        let y: Vec<bool> = (0..20).map(|i| i >= 10).collect();
        let m = model_matrix(&[Covariate::numeric("x", x)], true).unwrap();
        let fit = logistic_regression(&y, &m, LogisticOptions::default()).unwrap();
        assert!(
            fit.warnings
                .iter()
                .any(|w| w.contains("numerically 0 or 1"))
        );
        let json = serde_json::to_string(&fit).unwrap();
        assert!(!json.contains("NaN"));
        assert!(fit.deviance.is_finite());
    }

    #[test]
    fn errors() {
        let m = model_matrix(&[Covariate::numeric("x", vec![1.0, 2.0, 3.0])], true).unwrap();
        let o = LogisticOptions::default();
        assert!(logistic_regression(&[true, true, true], &m, o).is_err());
        assert!(logistic_regression(&[true, false], &m, o).is_err());
        assert!(logistic_regression(&[], &m, o).is_err());
    }
}
