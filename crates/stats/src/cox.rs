//! Cox proportional hazards model, reproducing R's
//! `coxph(Surv(time, status) ~ x1 + ... + strata(s), ties = , cluster = )` (survival 3.5-3).
//!
//! - Fitting follows `coxfit6.c`: covariates centred and scaled, Newton-Raphson from beta = 0 with
//!   step-halving, convergence when `|1 - loglik_old / loglik_new| <= eps` (1e-9), at most 20
//!   iterations, Cholesky with R's tolerance (`toler.chol = eps^0.75`); Efron or Breslow ties.
//! - The score (log-rank) test is the one at beta = 0, the Wald test uses the reported variance
//!   (robust when clustered, as `coxph` does), the likelihood-ratio test compares with beta = 0.
//! - With a cluster, the robust variance is `coxph`'s: score residuals (`coxscore2.c`, Efron- or
//!   Breslow-weighted) times the model variance give dfbeta residuals; summed within clusters D,
//!   the variance is D'D (no small-sample factor, as in R). z, p and the CI then use the robust SE;
//!   the score test stays the model-based one (R's `fit$score`; `fit$rscore` is not reported).
//! - Concordance is `coxph`'s `concordance`: Harrell's C of the linear predictor, pairs compared
//!   within strata, a censoring at an event's time counted as surviving longer, pairs with both
//!   events at one time not comparable, ties in the predictor counting 1/2.
//!
//! Formulas: Therneau & Grambsch (2000), chapters 3 and 7 (Efron approximation, score residuals,
//! sandwich variance). Cost: one sort by time, then O(n p^2) per Newton iteration; the concordance
//! uses a Fenwick tree (O(n log n)).
//!
//! Above `crate::par::CHUNK` rows the passes over the data use every core: the likelihood in
//! segments of tied-time-aligned rows (`Sorted::eval`), the concordance in intervals of the
//! linear predictor (`concordance`). Both split by the data, never by the thread count, so a
//! fit is the same bit for bit on any machine (`tests/parallel.rs`).

use crate::par::{self, CHUNK};
use crate::surv::{
    check_codes, check_response, chisq_sf, normal_two_sided, partition_by, radix_sort, sort_key,
    sort_times, z_for_level,
};
use crate::{Result, StatsError, finite};
use nalgebra::DMatrix;
use rayon::prelude::*;
use serde::Serialize;
use std::ops::Range;

/// How tied event times enter the partial likelihood (R's `ties`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ties {
    /// R's default.
    #[default]
    Efron,
    Breslow,
}

/// Options of [`cox`].
#[derive(Clone, Debug)]
pub struct CoxOptions<'a> {
    pub ties: Ties,
    /// Strata codes `0..s`: separate baseline hazards, one coefficient vector (R's `strata()`).
    pub strata: Option<&'a [usize]>,
    /// Cluster identifiers (any values; equal values are one cluster): robust variance.
    pub cluster: Option<&'a [usize]>,
    /// Confidence level of the hazard ratio intervals (R's `conf.int`, 0.95).
    pub conf_level: f64,
    /// R's `iter.max` (20).
    pub iter_max: usize,
    /// R's `eps` (1e-9): relative change in the log partial likelihood that ends the iterations.
    pub eps: f64,
}

impl Default for CoxOptions<'_> {
    fn default() -> Self {
        CoxOptions {
            ties: Ties::Efron,
            strata: None,
            cluster: None,
            conf_level: 0.95,
            iter_max: 20,
            eps: 1e-9,
        }
    }
}

/// A chi-square test.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChisqTest {
    pub chisq: f64,
    pub df: usize,
    pub p: Option<f64>,
}

/// One model coefficient. Fields are `None` when not estimable (a coefficient that may be infinite).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CoxTerm {
    pub term: String,
    pub coef: Option<f64>,
    /// Model-based standard error.
    pub se: Option<f64>,
    /// Robust (sandwich) standard error; only with a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub robust_se: Option<f64>,
    pub hr: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub z: Option<f64>,
    pub p: Option<f64>,
}

/// A fitted Cox model.
#[derive(Clone, Debug, Serialize)]
pub struct Cox {
    pub ties: Ties,
    pub n: usize,
    pub events: usize,
    pub terms: Vec<CoxTerm>,
    pub loglik_null: f64,
    pub loglik: f64,
    pub lr_test: ChisqTest,
    /// Uses the robust variance when clustered; `None` when a coefficient may be infinite.
    pub wald_test: Option<ChisqTest>,
    /// Score (log-rank) test at beta = 0, model-based as R's `fit$score`.
    pub score_test: ChisqTest,
    pub concordance: Option<f64>,
    /// Newton-Raphson iterations used (informative; R's `fit$iter`).
    pub iterations: usize,
    /// Problems that leave a result (non-convergence, possibly infinite coefficients).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Fit a Cox model of `time` (finite, >= 0) and `event` on the columns of `x` (n x p, complete
/// cases, already expanded to dummies), named by `terms`. Errors for a constant covariate or one
/// that is a linear combination of earlier ones (naming it), for data without events, and for
/// malformed input.
pub fn cox<S: AsRef<str>>(
    time: &[f64],
    event: &[bool],
    x: &DMatrix<f64>,
    terms: &[S],
    options: &CoxOptions<'_>,
) -> Result<Cox> {
    let checked = check_inputs(time, event, x, terms, options)?;
    let names: Vec<&str> = terms.iter().map(AsRef::as_ref).collect();
    let (data, scale, rows) = prepare(time, event, x, &names, &checked, options.ties)?;
    let fit = newton(&data, &names, options)?;
    Ok(summarise(
        &data, &rows, &scale, fit, &names, &checked, options,
    ))
}

const WHAT: &str = "Cox model";

/// R's `toler.chol` (`eps^0.75`): below it a pivot of the Cholesky counts as zero.
fn toler_chol() -> f64 {
    f64::EPSILON.powf(0.75)
}

/// What [`check_inputs`] found: the number of events, the normal quantile of the confidence
/// level, and the strata codes with their count (one stratum without them).
struct Checked<'a> {
    events: usize,
    z_level: f64,
    strata: &'a [usize],
    ns: usize,
}

/// Every input check, in the order its errors are reported: lengths, finite covariates, events,
/// options, strata codes, cluster length.
fn check_inputs<'a, S: AsRef<str>>(
    time: &[f64],
    event: &[bool],
    x: &DMatrix<f64>,
    terms: &[S],
    options: &CoxOptions<'a>,
) -> Result<Checked<'a>> {
    check_response(WHAT, time, event)?;
    let n = time.len();
    let p = x.ncols();
    if x.nrows() != n {
        return Err(StatsError::new(format!(
            "{WHAT}: the covariates have {} rows but there are {n} survival times",
            x.nrows()
        )));
    }
    if terms.len() != p {
        return Err(StatsError::new(format!(
            "{WHAT}: {} term names were given for {p} covariate columns",
            terms.len()
        )));
    }
    if p == 0 {
        return Err(StatsError::new(format!("{WHAT}: there are no covariates")));
    }
    let cols = columns(x);
    // A branch-free pass per column (it vectorises), columns in parallel; the row is looked up
    // only on failure.
    let finite_cols = par::map(n, &cols, |col| {
        col.iter().fold(true, |ok, v| ok & v.is_finite())
    });
    if let Some(j) = finite_cols.iter().position(|&ok| !ok)
        && let Some(i) = cols[j].iter().position(|v| !v.is_finite())
    {
        return Err(StatsError::new(format!(
            "{WHAT}: covariate \"{}\" is not a finite number in row {}",
            terms[j].as_ref(),
            i + 1
        )));
    }
    let events = event.iter().filter(|&&e| e).count();
    if events == 0 {
        return Err(StatsError::new(format!(
            "{WHAT}: there are no events, so no coefficient can be estimated"
        )));
    }
    let z_level = z_for_level(WHAT, options.conf_level)?;
    if options.eps.is_nan() || options.eps <= 0.0 || options.iter_max == 0 {
        return Err(StatsError::new(format!(
            "{WHAT}: eps must be positive and iter_max at least 1"
        )));
    }
    let (strata, ns) = match options.strata {
        Some(s) => (s, check_codes(WHAT, "strata", s, n)?),
        None => (&[][..], 1), // one stratum: partition_by leaves the time order as it is
    };
    if let Some(c) = options.cluster
        && c.len() != n
    {
        return Err(StatsError::new(format!(
            "{WHAT}: the cluster identifiers ({}) and survival times ({n}) have different lengths",
            c.len()
        )));
    }
    Ok(Checked {
        events,
        z_level,
        strata,
        ns,
    })
}

/// The columns of `x` as slices (nalgebra stores column-major).
fn columns(x: &DMatrix<f64>) -> Vec<&[f64]> {
    let n = x.nrows();
    (0..x.ncols())
        .map(|j| &x.as_slice()[j * n..(j + 1) * n])
        .collect()
}

/// The data in fitting order, each covariate's scale factor (1 / mean |x - mean|), and the input
/// row of each sorted row. An error names a constant covariate.
fn prepare(
    time: &[f64],
    event: &[bool],
    x: &DMatrix<f64>,
    names: &[&str],
    checked: &Checked<'_>,
    ties: Ties,
) -> Result<(Sorted, Vec<f64>, Vec<u32>)> {
    let (n, p) = (time.len(), x.ncols());
    let cols = columns(x);
    // One sort by time, then by stratum (stable): ascending time within each stratum block.
    // Independent of it, and run alongside: centring and scaling (see `centre_and_scale`).
    let (sorted, centred) = par::join(n, || sort_times(time), || centre_and_scale(&cols, n, p));
    let (scale, unsorted) = centred.map_err(|j| {
        StatsError::new(format!(
            "{WHAT}: covariate \"{}\" is constant, so its coefficient cannot be estimated",
            names[j]
        ))
    })?;
    let (rows, times, start) = partition_by(sorted, checked.strata, checked.ns);
    let mut xs = vec![0.0; n * p];
    xs.par_chunks_mut(CHUNK * p)
        .zip(rows.par_chunks(CHUNK))
        .for_each(|(dst, rows)| {
            for (d, &r) in dst.chunks_exact_mut(p).zip(rows) {
                d.copy_from_slice(&unsorted[r as usize * p..(r as usize + 1) * p]);
            }
        });
    drop(unsorted);
    let mut status = vec![false; n];
    status
        .par_chunks_mut(CHUNK)
        .zip(rows.par_chunks(CHUNK))
        .for_each(|(st, rows)| {
            for (s, &r) in st.iter_mut().zip(rows) {
                *s = event[r as usize];
            }
        });
    let segments = segments(&times, &start, CHUNK);
    let tasks = tasks(&segments, CHUNK);
    let data = Sorted {
        p,
        xs,
        status,
        times,
        start,
        segments,
        tasks,
        efron: ties == Ties::Efron,
    };
    Ok((data, scale, rows))
}

/// Centring and scaling as coxfit6 (scale = 1 / mean |x - mean|; Newton-Raphson is invariant to
/// it, but it keeps the information matrix well conditioned and the tolerances meaningful), then
/// the centred, scaled rows in input order (a transpose), so that each row is later copied whole
/// to its sorted position: one random read of p adjacent values per row instead of p scattered
/// ones. Each column's sums and each value are computed as in a sequential pass; only the order
/// of the memory accesses changes. Returns the scales and the rows; `Err(j)`: covariate j is
/// constant.
fn centre_and_scale(
    cols: &[&[f64]],
    n: usize,
    p: usize,
) -> std::result::Result<(Vec<f64>, Vec<f64>), usize> {
    let centring = par::map(n, cols, |col| {
        let m = sum8(col.iter().copied()) / n as f64;
        let mad = sum8(col.iter().map(|v| (v - m).abs())) / n as f64;
        (m, mad)
    });
    let mut means = vec![0.0; p];
    let mut scale = vec![1.0; p];
    for (j, &(m, mad)) in centring.iter().enumerate() {
        if mad.is_nan() || mad <= 0.0 || (mad / m.abs().max(f64::MIN_POSITIVE)) < 1e-13 {
            return Err(j);
        }
        means[j] = m;
        scale[j] = 1.0 / mad;
    }
    let mut unsorted = vec![0.0; n * p];
    unsorted
        .par_chunks_mut(CHUNK * p)
        .enumerate()
        .for_each(|(c, dst)| {
            for (k, d) in dst.chunks_exact_mut(p).enumerate() {
                for (j, v) in d.iter_mut().enumerate() {
                    *v = (cols[j][c * CHUNK + k] - means[j]) * scale[j];
                }
            }
        });
    Ok((scale, unsorted))
}

/// What Newton-Raphson ends with, in the scaled coordinates.
struct Fit {
    beta_s: Vec<f64>,
    /// Inverse information at `beta_s`.
    var_s: Vec<f64>,
    /// Score at `beta_s`.
    u_final: Vec<f64>,
    loglik: f64,
    loglik_null: f64,
    score_chisq: f64,
    iterations: usize,
    warnings: Vec<String>,
}

/// Newton-Raphson from beta = 0 with step-halving, as coxfit6. Errors when the information at
/// beta = 0 is singular (naming the covariate) or the log-likelihood is not finite at the end.
fn newton(data: &Sorted, names: &[&str], options: &CoxOptions<'_>) -> Result<Fit> {
    let p = data.p;
    let toler = toler_chol();
    let mut ws = Workspace::new(p, data.status.len());
    let mut beta = vec![0.0; p];
    let (mut loglik, score_chisq, mut newbeta, mut imat) = first_step(data, &mut ws, names)?;
    let loglik_null = loglik;
    let mut halving = false;
    let mut converged = false;
    let mut iterations = 0;
    let mut newlk = loglik;
    for iter in 1..=options.iter_max {
        iterations = iter;
        newlk = data.eval(&newbeta, &mut ws);
        imat = ws.imat_full();
        cholesky2(&mut imat, p, toler);
        if newlk.is_finite() && (1.0 - loglik / newlk).abs() <= options.eps && !halving {
            converged = true;
            break;
        }
        if iter == options.iter_max {
            break;
        }
        if !newlk.is_finite() || newlk < loglik {
            // Not improving (or the risk scores overflowed): halve the step, as coxfit6.
            halving = true;
            for (nb, b) in newbeta.iter_mut().zip(&beta) {
                *nb = (*nb + *b) / 2.0;
            }
        } else {
            halving = false;
            loglik = newlk;
            let mut u = ws.u.clone();
            chsolve2(&imat, p, &mut u);
            beta.clone_from(&newbeta);
            for (nb, s) in newbeta.iter_mut().zip(&u) {
                *nb += s;
            }
        }
    }
    let u_final = ws.u.clone();
    chinv2(&mut imat, p);
    let mut warnings = Vec::new();
    if !converged {
        warnings.push(format!(
            "the Cox model did not converge in {} iterations; estimates are unreliable",
            options.iter_max
        ));
    }
    if !newlk.is_finite() {
        return Err(StatsError::new(format!(
            "{WHAT}: the fit failed (the log partial likelihood is not finite)"
        )));
    }
    Ok(Fit {
        beta_s: newbeta,
        var_s: imat,
        u_final,
        loglik: newlk,
        loglik_null,
        score_chisq,
        iterations,
        warnings,
    })
}

/// Iteration 0: beta = 0 gives the null log-likelihood, the score test and the first step.
/// Returns them with the new beta and the factored information; an error names the first
/// covariate that is a linear combination of earlier ones.
fn first_step(
    data: &Sorted,
    ws: &mut Workspace,
    names: &[&str],
) -> Result<(f64, f64, Vec<f64>, Vec<f64>)> {
    let p = data.p;
    let beta = vec![0.0; p];
    let loglik = data.eval(&beta, ws);
    let mut imat = ws.imat_full();
    let rank0 = cholesky2(&mut imat, p, toler_chol());
    if rank0 < p {
        let j = (0..p).find(|&j| imat[j * p + j] == 0.0).unwrap_or(p - 1);
        return Err(StatsError::new(format!(
            "{WHAT}: covariate \"{}\" is a linear combination of the covariates before it \
             (or does not vary within risk sets), so its coefficient cannot be estimated",
            names[j]
        )));
    }
    let mut step = ws.u.clone();
    chsolve2(&imat, p, &mut step);
    let score_chisq: f64 = ws.u.iter().zip(&step).map(|(u, s)| u * s).sum();
    let newbeta: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b + s).collect();
    Ok((loglik, score_chisq, newbeta, imat))
}

/// The fit on the original scale: coefficients and their table, the likelihood-ratio, score and
/// Wald tests, and the concordance of the linear predictor.
fn summarise(
    data: &Sorted,
    rows: &[u32],
    scale: &[f64],
    fit: Fit,
    names: &[&str],
    checked: &Checked<'_>,
    options: &CoxOptions<'_>,
) -> Cox {
    let (n, p) = (data.status.len(), data.p);
    let coef: Vec<f64> = (0..p).map(|j| fit.beta_s[j] * scale[j]).collect();
    let var: Vec<f64> = (0..p * p)
        .map(|ij| fit.var_s[ij] * scale[ij / p] * scale[ij % p])
        .collect();
    let mut warnings = fit.warnings;
    let bad = infinite_terms(
        &fit.u_final,
        &coef,
        &var,
        scale,
        names,
        options.eps,
        &mut warnings,
    );
    let robust: Option<Vec<f64>> = options
        .cluster
        .map(|cluster| robust_variance(data, rows, cluster, &fit.beta_s, &fit.var_s, scale));
    let used = robust.as_deref().unwrap_or(&var);
    let terms = term_table(names, &coef, &var, robust.as_deref(), &bad, checked.z_level);
    let lr = 2.0 * (fit.loglik - fit.loglik_null);
    let wald_test = if bad.iter().any(|&b| b) {
        None
    } else {
        Some(wald(used, &coef))
    };
    let mut lp = vec![0.0; n];
    lp.par_chunks_mut(CHUNK)
        .zip(data.xs.par_chunks(CHUNK * p))
        .for_each(|(lp, xs)| {
            for (l, x) in lp.iter_mut().zip(xs.chunks_exact(p)) {
                *l = (0..p).map(|j| x[j] * fit.beta_s[j]).sum();
            }
        });
    let ranges = if n > CHUNK { RANK_RANGES } else { 1 };
    Cox {
        ties: options.ties,
        n,
        events: checked.events,
        terms,
        loglik_null: fit.loglik_null,
        loglik: fit.loglik,
        lr_test: ChisqTest {
            chisq: lr,
            df: p,
            p: chisq_sf(lr, p),
        },
        wald_test,
        score_test: ChisqTest {
            chisq: fit.score_chisq,
            df: p,
            p: chisq_sf(fit.score_chisq, p),
        },
        concordance: concordance(&lp, &data.status, &data.times, &data.start, ranges),
        iterations: fit.iterations,
        warnings,
    }
}

/// Terms whose coefficient may be infinite (coxph.fit's check: u' V large relative to beta),
/// or whose information became singular; each gets a warning.
fn infinite_terms(
    u_final: &[f64],
    coef: &[f64],
    var: &[f64],
    scale: &[f64],
    names: &[&str],
    eps: f64,
    warnings: &mut Vec<String>,
) -> Vec<bool> {
    let p = coef.len();
    let toler_inf = eps.sqrt();
    let mut bad = vec![false; p];
    for j in 0..p {
        let infs: f64 = (0..p)
            .map(|i| u_final[i] / scale[i] * var[i * p + j])
            .sum::<f64>()
            .abs();
        let singular = var[j * p + j] == 0.0;
        if singular || (infs > eps && infs > toler_inf * coef[j].abs()) {
            bad[j] = true;
            warnings.push(format!(
                "the coefficient of \"{}\" may be infinite (the log partial likelihood converged \
                 before it); it is not reported",
                names[j]
            ));
        }
    }
    bad
}

/// Robust variance on the original scale, from dfbeta residuals summed within clusters.
fn robust_variance(
    data: &Sorted,
    rows: &[u32],
    cluster: &[usize],
    beta_s: &[f64],
    var_s: &[f64],
    scale: &[f64],
) -> Vec<f64> {
    let p = data.p;
    let resid = data.score_residuals(beta_s);
    let cl: Vec<usize> = rows.iter().map(|&r| cluster[r as usize]).collect();
    let mut ids = cl.clone();
    ids.sort_unstable();
    ids.dedup();
    let mut sums = vec![0.0; ids.len() * p];
    for (i, c) in cl.iter().enumerate() {
        let g = ids.binary_search(c).unwrap_or(0);
        for j in 0..p {
            sums[g * p + j] += resid[i * p + j];
        }
    }
    // D = sums * var_s (per cluster row), robust_s = D'D, then back to the original scale.
    let mut rob = vec![0.0; p * p];
    let mut d = vec![0.0; p];
    for g in 0..ids.len() {
        for j in 0..p {
            d[j] = (0..p).map(|k| sums[g * p + k] * var_s[k * p + j]).sum();
        }
        for a in 0..p {
            for b in 0..p {
                rob[a * p + b] += d[a] * d[b];
            }
        }
    }
    (0..p * p)
        .map(|ij| rob[ij] * scale[ij / p] * scale[ij % p])
        .collect()
}

/// One row per coefficient: z, p and the interval use the robust SE when there is one; a term
/// that may be infinite is reported as not estimable.
fn term_table(
    names: &[&str],
    coef: &[f64],
    var: &[f64],
    robust: Option<&[f64]>,
    bad: &[bool],
    z_level: f64,
) -> Vec<CoxTerm> {
    let p = coef.len();
    let used = robust.unwrap_or(var);
    (0..p)
        .map(|j| {
            let se = var[j * p + j].sqrt();
            let robust_se = robust.map(|r| r[j * p + j].sqrt());
            let se_used = used[j * p + j].sqrt();
            let b = coef[j];
            let z = b / se_used;
            let keep = !bad[j];
            let ok = |v: f64| if keep { finite(v) } else { None };
            CoxTerm {
                term: names[j].to_string(),
                coef: ok(b),
                se: ok(se),
                robust_se: robust_se.and_then(ok),
                hr: ok(b.exp()),
                lower: ok((b - z_level * se_used).exp()),
                upper: ok((b + z_level * se_used).exp()),
                z: ok(z),
                p: ok(normal_two_sided(z)),
            }
        })
        .collect()
}

/// coxph.wtest: b' V^- b through the same tolerant Cholesky; df is V's rank.
fn wald(var: &[f64], coef: &[f64]) -> ChisqTest {
    let p = coef.len();
    let mut v = var.to_vec();
    let rank = cholesky2(&mut v, p, toler_chol());
    let mut sol = coef.to_vec();
    chsolve2(&v, p, &mut sol);
    let w: f64 = sol.iter().zip(coef).map(|(a, b)| a * b).sum();
    ChisqTest {
        chisq: w,
        df: rank,
        p: chisq_sf(w, rank),
    }
}

/// Sum with eight independent accumulators (the loop vectorises; a single running sum is a
/// serial chain of additions, several times slower at a million rows).
fn sum8(values: impl Iterator<Item = f64>) -> f64 {
    let mut acc = [0.0f64; 8];
    for (i, v) in values.enumerate() {
        acc[i & 7] += v;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// The data in fitting order: ascending time within stratum blocks, covariates centred and
/// scaled, row-major.
struct Sorted {
    p: usize,
    xs: Vec<f64>,
    status: Vec<bool>,
    times: Vec<f64>,
    /// Stratum `s` occupies `start[s]..start[s + 1]`.
    start: Vec<usize>,
    /// The rows cut into runs for the parallel passes, in row order.
    segments: Vec<Segment>,
    /// Consecutive segments computed by one rayon task, in row order (see [`tasks`]).
    tasks: Vec<Range<usize>>,
    efron: bool,
}

/// A run of rows `lo..hi` of one stratum. A stratum is cut every [`CHUNK`] rows, each cut moved
/// forward past any tie, so a tied time (which Efron's correction treats as a whole) is never
/// split. The cuts depend on the data only, never on the thread count (`crate::par`).
struct Segment {
    lo: usize,
    hi: usize,
    /// The stratum's first segment: its rows are in no other segment's risk sets.
    first: bool,
    /// The stratum's last segment: its risk sets hold no rows of other segments.
    last: bool,
}

fn segments(times: &[f64], start: &[usize], chunk: usize) -> Vec<Segment> {
    let mut out = Vec::with_capacity(times.len() / chunk + start.len());
    for w in start.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        let mut a = lo;
        while a < hi {
            let mut b = a.saturating_add(chunk).min(hi);
            while b < hi && times[b] == times[b - 1] {
                b += 1;
            }
            out.push(Segment {
                lo: a,
                hi: b,
                first: a == lo,
                last: b == hi,
            });
            a = b;
        }
    }
    out
}

/// Group consecutive segments into tasks of about [`CHUNK`] rows (many small strata make one
/// task, a large stratum one task per segment). A task is computed sequentially, so up to
/// [`CHUNK`] rows everything is one task, computed in exactly the sequential order.
fn tasks(segments: &[Segment], chunk: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut first, mut rows) = (0, 0);
    for (k, seg) in segments.iter().enumerate() {
        let len = seg.hi - seg.lo;
        if k > first && rows + len > chunk {
            out.push(first..k);
            (first, rows) = (k, 0);
        }
        rows += len;
    }
    if first < segments.len() {
        out.push(first..segments.len());
    }
    out
}

/// Results of [`Sorted::eval`], and its per-row risk scores, reused across iterations.
struct Workspace {
    p: usize,
    u: Vec<f64>,
    /// Lower triangle, packed: (i, j) with j <= i at i (i + 1) / 2 + j.
    imat: Vec<f64>,
    /// exp(x_i' beta), in fitting order.
    risk: Vec<f64>,
}

impl Workspace {
    fn new(p: usize, n: usize) -> Self {
        Workspace {
            p,
            u: vec![0.0; p],
            imat: vec![0.0; p * (p + 1) / 2],
            risk: vec![0.0; n],
        }
    }

    /// The information matrix as a full p x p row-major matrix.
    fn imat_full(&self) -> Vec<f64> {
        let p = self.p;
        let mut m = vec![0.0; p * p];
        for i in 0..p {
            for j in 0..=i {
                let v = self.imat[i * (i + 1) / 2 + j];
                m[i * p + j] = v;
                m[j * p + i] = v;
            }
        }
        m
    }
}

/// One task's share of the log partial likelihood, score and information, and its scratch.
struct Acc {
    loglik: f64,
    u: Vec<f64>,
    imat: Vec<f64>,
    a: Vec<f64>,
    a2: Vec<f64>,
    cmat: Vec<f64>,
    cmat2: Vec<f64>,
    xb: Vec<f64>,
}

impl Acc {
    fn new(p: usize) -> Self {
        let t = p * (p + 1) / 2;
        Acc {
            loglik: 0.0,
            u: vec![0.0; p],
            imat: vec![0.0; t],
            a: vec![0.0; p],
            a2: vec![0.0; p],
            cmat: vec![0.0; t],
            cmat2: vec![0.0; t],
            xb: vec![0.0; p],
        }
    }
}

/// Subtract `w * xbar` from the score `u` and add `w * (cmat / denom - xbar xbar')` to the
/// information, where xbar = a / denom (left in `xb`).
#[inline]
fn add_info(
    u: &mut [f64],
    imat: &mut [f64],
    xb: &mut [f64],
    a: &[f64],
    cmat: &[f64],
    denom: f64,
    w: f64,
) {
    for ((x, u), &a) in xb.iter_mut().zip(u.iter_mut()).zip(a) {
        *x = a / denom;
        *u -= w * *x;
    }
    let mut idx = 0;
    for r in 0..xb.len() {
        for c in 0..=r {
            imat[idx] += w * (cmat[idx] / denom - xb[r] * xb[c]);
            idx += 1;
        }
    }
}

/// Add `risk * x` to `a` and `risk * x x'` (lower triangle, packed) to `cmat`.
#[inline]
fn add_risk(a: &mut [f64], cmat: &mut [f64], risk: f64, x: &[f64]) {
    let mut off = 0;
    for (r, (aa, &xr)) in a.iter_mut().zip(x).enumerate() {
        let rx = risk * xr;
        *aa += rx;
        let row = &mut cmat[off..off + r + 1];
        for (cc, &xc) in row.iter_mut().zip(&x[..=r]) {
            *cc += rx * xc;
        }
        off += r + 1;
    }
}

impl Sorted {
    /// Log partial likelihood at `beta`; leaves the score in `ws.u` and the information in
    /// `ws.imat`. Mirrors coxfit6's accumulation (reverse time within each stratum), with
    /// Efron's tied deaths summed in closed form (see [`Sorted::accumulate`]).
    ///
    /// The risk-set sums run backwards in time through a whole stratum, so a segment's sums
    /// start from the totals of the segments after it. Two parallel passes over the tasks:
    /// the first computes each row's risk score and each segment's totals (sum of risk, of
    /// risk x and of risk x x'); suffix sums of the totals, in segment order, give each
    /// segment's starting sums; the second runs coxfit6's accumulation within each segment from
    /// those. The tasks' shares are then added in task order.
    fn eval(&self, beta: &[f64], ws: &mut Workspace) -> f64 {
        let p = self.p;
        let t = p * (p + 1) / 2;
        let m = 1 + p + t; // denominator, a, cmat
        let nseg = self.segments.len();

        // Pass 1: risk scores and the totals of every segment that has an earlier one in its
        // stratum (the first segment's totals are in no one's risk sets).
        let mut risk_parts = Vec::with_capacity(self.tasks.len());
        let mut rest = &mut ws.risk[..];
        for task in &self.tasks {
            let rows = self.segments[task.end - 1].hi - self.segments[task.start].lo;
            let (head, tail) = rest.split_at_mut(rows);
            risk_parts.push(head);
            rest = tail;
        }
        let totals: Vec<Vec<f64>> = self
            .tasks
            .par_iter()
            .zip(risk_parts)
            .map(|(task, risk)| self.risk_and_totals(task.clone(), beta, risk))
            .collect();
        let totals = totals.concat();
        // Starting sums of each segment: the totals of the later segments of its stratum, added
        // from the last segment backwards (the order the sequential pass meets them).
        let mut starts = vec![0.0; nseg * m];
        let mut run = vec![0.0; m];
        for k in (0..nseg).rev() {
            let seg = &self.segments[k];
            if seg.last {
                run.fill(0.0);
            }
            starts[k * m..(k + 1) * m].copy_from_slice(&run);
            if !seg.first {
                for (r, v) in run.iter_mut().zip(&totals[k * m..(k + 1) * m]) {
                    *r += v;
                }
            }
        }

        // Pass 2: each task's share.
        let risk = &ws.risk;
        let parts: Vec<Acc> = self
            .tasks
            .par_iter()
            .map(|task| {
                let mut acc = Acc::new(p);
                for k in task.clone() {
                    self.accumulate(
                        &self.segments[k],
                        &starts[k * m..(k + 1) * m],
                        beta,
                        risk,
                        &mut acc,
                    );
                }
                acc
            })
            .collect();
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            ws.u.fill(0.0);
            ws.imat.fill(0.0);
            return 0.0;
        };
        let mut loglik = first.loglik;
        ws.u.copy_from_slice(&first.u);
        ws.imat.copy_from_slice(&first.imat);
        for acc in parts {
            loglik += acc.loglik;
            for (u, v) in ws.u.iter_mut().zip(&acc.u) {
                *u += v;
            }
            for (i, v) in ws.imat.iter_mut().zip(&acc.imat) {
                *i += v;
            }
        }
        loglik
    }

    /// Pass 1 of [`Sorted::eval`] for the segments `task`: the risk scores of their rows (into
    /// `risk`, which starts at the task's first row) and each segment's totals (denominator, a,
    /// cmat), zero for a first segment, whose totals no one needs.
    fn risk_and_totals(&self, task: Range<usize>, beta: &[f64], risk: &mut [f64]) -> Vec<f64> {
        let p = self.p;
        let m = 1 + p + p * (p + 1) / 2;
        let row0 = self.segments[task.start].lo;
        let mut tot = vec![0.0; task.len() * m];
        for (k, seg) in self.segments[task].iter().enumerate() {
            let (denom, rest) = tot[k * m..(k + 1) * m].split_at_mut(1);
            let (a, cmat) = rest.split_at_mut(p);
            for i in (seg.lo..seg.hi).rev() {
                let x = &self.xs[i * p..(i + 1) * p];
                let zbeta: f64 = x.iter().zip(beta).map(|(a, b)| a * b).sum();
                let r = zbeta.exp();
                risk[i - row0] = r;
                if !seg.first {
                    denom[0] += r;
                    add_risk(a, cmat, r, x);
                }
            }
        }
        tot
    }

    /// coxfit6's accumulation over one segment, backwards in time, starting from the risk-set
    /// sums `start` (denominator, a, cmat) of the later segments of its stratum.
    fn accumulate(&self, seg: &Segment, start: &[f64], beta: &[f64], risk: &[f64], acc: &mut Acc) {
        let p = self.p;
        // Plain slices and a local sum: the optimiser keeps them in registers (through `acc`
        // every store would force the fields to be reloaded).
        let Acc {
            loglik: acc_loglik,
            u,
            imat,
            a,
            a2,
            cmat,
            cmat2,
            xb,
        } = acc;
        let (u, imat, xb) = (&mut u[..], &mut imat[..], &mut xb[..]);
        let (a, a2, cmat, cmat2) = (&mut a[..], &mut a2[..], &mut cmat[..], &mut cmat2[..]);
        let mut loglik = *acc_loglik;
        let (lo, hi) = (seg.lo, seg.hi);
        let mut denom = start[0];
        a.copy_from_slice(&start[1..1 + p]);
        cmat.copy_from_slice(&start[1 + p..]);
        let mut i = hi;
        while i > lo {
            let t = self.times[i - 1];
            let mut ndead = 0usize;
            let mut denom2 = 0.0;
            a2.fill(0.0);
            cmat2.fill(0.0);
            while i > lo && self.times[i - 1] == t {
                i -= 1;
                let x = &self.xs[i * p..(i + 1) * p];
                let r = risk[i];
                if self.status[i] {
                    ndead += 1;
                    denom2 += r;
                    // The same sum as pass 1's, so the same bits.
                    let zbeta: f64 = x.iter().zip(beta).map(|(a, b)| a * b).sum();
                    loglik += zbeta;
                    for (u, xv) in u.iter_mut().zip(x) {
                        *u += xv;
                    }
                    add_risk(a2, cmat2, r, x);
                } else {
                    denom += r;
                    add_risk(a, cmat, r, x);
                }
            }
            if ndead == 0 {
                continue;
            }
            if !self.efron || ndead == 1 {
                // Breslow (and any single death): all deaths in the risk set once.
                denom += denom2;
                let dw = ndead as f64;
                loglik -= dw * denom.ln();
                for (v, v2) in a.iter_mut().zip(a2.iter()) {
                    *v += v2;
                }
                for (c, c2) in cmat.iter_mut().zip(cmat2.iter()) {
                    *c += c2;
                }
                add_info(u, imat, xb, a, cmat, denom, dw);
            } else {
                // Efron: the deaths enter the denominator in ndead equal parts. Part j
                // (1..=ndead) has the sums D_j = D + j d2, A_j = A + j a2, C_j = C + j c2, with
                // (d2, a2, c2) the deaths' sums over ndead, and adds A_j / D_j to the score's
                // subtraction and C_j / D_j - A_j A_j' / D_j^2 to the information. Summed over
                // the parts, that is the risk set's sums times five scalar sums over j, so the
                // p x p work is done once per time, not once per death.
                let nd = ndead as f64;
                let d2 = denom2 / nd;
                let (mut s1, mut t1, mut s2, mut t2, mut u2) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for j in 1..=ndead {
                    let jf = j as f64;
                    let dj = denom + jf * d2;
                    loglik -= dj.ln();
                    let inv = 1.0 / dj;
                    let inv2 = inv * inv;
                    s1 += inv;
                    t1 += jf * inv;
                    s2 += inv2;
                    t2 += jf * inv2;
                    u2 += jf * jf * inv2;
                }
                // a2 and cmat2 hold the deaths' totals: one part is 1/nd of them.
                let (t1, t2, u2) = (t1 / nd, t2 / nd, u2 / (nd * nd));
                for ((u, &a), &a2) in u.iter_mut().zip(a.iter()).zip(a2.iter()) {
                    *u -= a * s1 + a2 * t1;
                }
                let mut idx = 0;
                for r in 0..p {
                    for c in 0..=r {
                        let cross = a[r] * a2[c] + a2[r] * a[c];
                        imat[idx] += cmat[idx] * s1 + cmat2[idx] * t1
                            - (a[r] * a[c] * s2 + cross * t2 + a2[r] * a2[c] * u2);
                        idx += 1;
                    }
                }
                // Afterwards every death is in the risk set of earlier times.
                denom += denom2;
                for (v, v2) in a.iter_mut().zip(a2.iter()) {
                    *v += v2;
                }
                for (c, c2) in cmat.iter_mut().zip(cmat2.iter()) {
                    *c += c2;
                }
            }
        }
        *acc_loglik = loglik;
    }

    /// Score residuals (scaled coordinates, row-major, fitting order) at `beta`, as R's
    /// `residuals(fit, type = "score")` (`coxscore2.c`): for subject l,
    /// sum over event times of dN_l (x_l - mean xbar) - r_l sum_j w_lj (x_l - xbar_j) / den_j,
    /// with Efron's fractional denominators den_j and weights w_lj = 1 - j/d for the tied deaths.
    fn score_residuals(&self, beta: &[f64]) -> Vec<f64> {
        let p = self.p;
        let n = self.status.len();
        let risk: Vec<f64> = (0..n)
            .map(|i| {
                let x = &self.xs[i * p..(i + 1) * p];
                x.iter().zip(beta).map(|(a, b)| a * b).sum::<f64>().exp()
            })
            .collect();
        let mut resid = vec![0.0; n * p];
        let mut inc = Increments::default();
        for s in 0..self.start.len() - 1 {
            let rows = self.start[s]..self.start[s + 1];
            self.hazard_increments(&risk, rows.clone(), &mut inc);
            self.stratum_residuals(&risk, rows, &inc, &mut resid);
        }
        resid
    }

    /// Backward pass over one stratum's rows: the hazard increments at each event time.
    fn hazard_increments(&self, risk: &[f64], rows: Range<usize>, inc: &mut Increments) {
        let p = self.p;
        let (lo, hi) = (rows.start, rows.end);
        inc.haz.clear();
        inc.e_haz.clear();
        inc.hx.clear();
        inc.e_hx.clear();
        inc.xmean.clear();
        let mut denom = 0.0;
        let mut a = vec![0.0; p];
        let mut a2 = vec![0.0; p];
        let mut xbar = vec![0.0; p];
        let mut i = hi;
        while i > lo {
            let t = self.times[i - 1];
            let mut nd = 0usize;
            let mut e_denom = 0.0;
            a2.iter_mut().for_each(|v| *v = 0.0);
            while i > lo && self.times[i - 1] == t {
                i -= 1;
                let x = &self.xs[i * p..(i + 1) * p];
                denom += risk[i];
                for j in 0..p {
                    a[j] += risk[i] * x[j];
                }
                if self.status[i] {
                    nd += 1;
                    e_denom += risk[i];
                    for j in 0..p {
                        a2[j] += risk[i] * x[j];
                    }
                }
            }
            if nd == 0 {
                continue;
            }
            let (mut h, mut eh) = (0.0, 0.0);
            let base = inc.hx.len();
            inc.hx.resize(base + p, 0.0);
            inc.e_hx.resize(base + p, 0.0);
            inc.xmean.resize(base + p, 0.0);
            let parts = if self.efron { nd } else { 1 };
            let d = nd as f64;
            for k in 0..parts {
                let (frac, hz) = if self.efron {
                    let frac = k as f64 / d;
                    (frac, 1.0 / (denom - frac * e_denom))
                } else {
                    (0.0, d / denom)
                };
                let den = denom - frac * e_denom;
                h += hz;
                eh += (1.0 - frac) * hz;
                for j in 0..p {
                    xbar[j] = (a[j] - frac * a2[j]) / den;
                    inc.hx[base + j] += xbar[j] * hz;
                    inc.e_hx[base + j] += (1.0 - frac) * xbar[j] * hz;
                    inc.xmean[base + j] += xbar[j] / parts as f64;
                }
            }
            inc.haz.push(h);
            inc.e_haz.push(eh);
        }
    }

    /// Forward pass over one stratum's rows: the cumulative hazard H and sum of xbar dH before
    /// each time give each subject's residual.
    fn stratum_residuals(
        &self,
        risk: &[f64],
        rows: Range<usize>,
        inc: &Increments,
        resid: &mut [f64],
    ) {
        let p = self.p;
        let (lo, hi) = (rows.start, rows.end);
        let mut cum_h = 0.0;
        let mut cum_hx = vec![0.0; p];
        let mut k = inc.haz.len();
        let mut i = lo;
        while i < hi {
            let t = self.times[i];
            let mut j_end = i;
            let mut any_death = false;
            while j_end < hi && self.times[j_end] == t {
                any_death |= self.status[j_end];
                j_end += 1;
            }
            if any_death {
                k -= 1;
            }
            for l in i..j_end {
                let x = &self.xs[l * p..(l + 1) * p];
                let r = risk[l];
                let out = &mut resid[l * p..(l + 1) * p];
                let b = k * p;
                if !any_death {
                    for j in 0..p {
                        out[j] = -r * (x[j] * cum_h - cum_hx[j]);
                    }
                } else if self.status[l] {
                    for j in 0..p {
                        out[j] = (x[j] - inc.xmean[b + j])
                            - r * (x[j] * (cum_h + inc.e_haz[k]) - (cum_hx[j] + inc.e_hx[b + j]));
                    }
                } else {
                    for j in 0..p {
                        out[j] = -r * (x[j] * (cum_h + inc.haz[k]) - (cum_hx[j] + inc.hx[b + j]));
                    }
                }
            }
            if any_death {
                cum_h += inc.haz[k];
                for (c, h) in cum_hx.iter_mut().zip(&inc.hx[k * p..(k + 1) * p]) {
                    *c += h;
                }
            }
            i = j_end;
        }
    }
}

/// Per event time of a stratum, in reverse time order (as the backward pass finds them): hazard
/// increments for the subjects that stay (`haz`, `hx`) and for the tied deaths (`e_haz`, `e_hx`),
/// and the mean xbar of the deaths (`xmean`); the vectors hold p values per time.
#[derive(Default)]
struct Increments {
    haz: Vec<f64>,
    e_haz: Vec<f64>,
    hx: Vec<f64>,
    e_hx: Vec<f64>,
    xmean: Vec<f64>,
}

/// Harrell's concordance of the linear predictor `lp` (higher = shorter survival) within strata,
/// as `concordancefit(reverse = TRUE)` with R's tie rules. Rows are in ascending time within each
/// stratum block. `None` when no pair is comparable.
///
/// Each death is compared with the rows still at risk after it (later times, and censorings at
/// its own time, which count as followed longer): those with a lower predictor are concordant,
/// an equal one is a tie, a higher one discordant. Counting needs the rows at risk ordered by
/// predictor, a Fenwick tree over predictor ranks filled backwards in time. To use more than
/// one core, the predictor's values are cut into `ranges` intervals of about equal size (at
/// quantiles of a fixed sample): each interval's task ranks only its own rows (a smaller sort)
/// and sweeps all rows backwards in time, keeping its tree for its own rows and a plain count of
/// the rows below its interval. A death gets all its comparisons from its interval's task. The
/// counts are integers, added exactly, so the result does not depend on how the work is split.
fn concordance(
    lp: &[f64],
    status: &[bool],
    times: &[f64],
    start: &[usize],
    ranges: usize,
) -> Option<f64> {
    // Order-preserving integer keys; exact equality is a tie, as R's match(risk, unique(risk)).
    let mut keys = vec![0u64; lp.len()];
    keys.par_chunks_mut(CHUNK)
        .zip(lp.par_chunks(CHUNK))
        .for_each(|(k, v)| k.iter_mut().zip(v).for_each(|(k, &v)| *k = sort_key(v)));
    let bounds = key_ranges(&keys, ranges);

    // Comparable pairs: for each death, the rows at risk after it.
    let pairs = || {
        let mut pairs = 0u64;
        for w in start.windows(2) {
            let (lo, hi) = (w[0], w[1]);
            let mut inserted = 0u64;
            let mut i = hi;
            while i > lo {
                let t = times[i - 1];
                let mut j = i;
                let mut deaths = 0u64;
                while j > lo && times[j - 1] == t {
                    j -= 1;
                    deaths += u64::from(status[j]);
                }
                let censored = (i - j) as u64 - deaths;
                pairs += deaths * (inserted + censored);
                inserted += (i - j) as u64;
                i = j;
            }
        }
        pairs
    };
    let counts = || {
        par::map(keys.len(), &bounds, |&(lo, hi)| {
            concordant_in_range(&keys, status, times, start, lo, hi)
        })
    };
    let (pairs, counts) = par::join(keys.len(), pairs, counts);
    let conc_n: u64 = counts.iter().map(|c| c.0).sum();
    let tied_n: u64 = counts.iter().map(|c| c.1).sum();
    let (conc, tied) = (conc_n as f64, tied_n as f64);
    let disc = (pairs - conc_n - tied_n) as f64;
    let total = conc + disc + tied;
    (total > 0.0).then(|| (conc + tied / 2.0) / total)
}

/// Cut the key axis into at most `ranges` inclusive intervals `(lo, hi)` covering every u64, at
/// quantiles of every (n / 4096)-th key: deterministic, and about n / ranges rows each unless
/// the keys are heavily tied (then fewer intervals).
fn key_ranges(keys: &[u64], ranges: usize) -> Vec<(u64, u64)> {
    if ranges <= 1 {
        return vec![(0, u64::MAX)];
    }
    let stride = (keys.len() / 4096).max(1);
    let mut sample: Vec<u64> = keys.iter().step_by(stride).copied().collect();
    sample.sort_unstable();
    let mut cuts: Vec<u64> = (1..ranges)
        .map(|k| sample[k * sample.len() / ranges])
        .filter(|&c| c > 0)
        .collect();
    cuts.dedup();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut lo = 0u64;
    for c in cuts {
        out.push((lo, c - 1));
        lo = c;
    }
    out.push((lo, u64::MAX));
    out
}

/// Rank ranges of the concordance's parallel count above [`CHUNK`] rows (see [`concordance`]).
/// Any number gives the same result; four keeps two cores evenly busy while the extra sweeps
/// over the rows stay cheap.
const RANK_RANGES: usize = 4;

/// For the deaths whose key is in `lo..=hi`: (concordant, tied) comparisons with the rows at risk
/// after them, within their stratum. Rows outside the interval only need counting (those below
/// it are all lower), done without branches; rows inside go to the tree.
fn concordant_in_range(
    keys: &[u64],
    status: &[bool],
    times: &[f64],
    start: &[usize],
    lo: u64,
    hi: u64,
) -> (u64, u64) {
    let inside = |k: u64| k >= lo && k <= hi;
    // This interval's rows in row order, then their dense ranks (1-based) among themselves.
    let mut mine: Vec<(u64, u32)> = keys
        .iter()
        .filter(|&&k| inside(k))
        .enumerate()
        .map(|(j, &k)| (k, j as u32))
        .collect();
    if mine.is_empty() {
        return (0, 0);
    }
    let mut local = vec![0u32; mine.len()];
    radix_sort(&mut mine);
    let mut nr = 0u32;
    for k in 0..mine.len() {
        if k == 0 || mine[k].0 != mine[k - 1].0 {
            nr += 1;
        }
        local[mine[k].1 as usize] = nr;
    }
    drop(mine);

    let mut tree = Fenwick::new(nr);
    // Count per rank alongside the tree: ties in the predictor without a second tree query.
    let mut count = vec![0u32; nr as usize + 1];
    let mut deaths: Vec<u32> = Vec::new(); // the interval's deaths at the current time
    let (mut conc, mut tied) = (0u64, 0u64);
    // Backwards through the rows: strata last to first, times last to first. `next` counts the
    // interval's rows not yet visited, so local[next - 1] is the rank of the next one met.
    let mut next = local.len();
    for w in start.windows(2).rev() {
        let (slo, shi) = (w[0], w[1]);
        let stratum_end = next;
        let mut below = 0u64; // rows at risk with a key under the interval
        let mut i = shi;
        while i > slo {
            let t = times[i - 1];
            deaths.clear();
            let (mut censored_below, mut deaths_below) = (0u64, 0u64);
            while i > slo && times[i - 1] == t {
                i -= 1;
                let (k, dead) = (keys[i], status[i]);
                let under = k < lo;
                censored_below += u64::from(under & !dead);
                deaths_below += u64::from(under & dead);
                if !under && k <= hi {
                    next -= 1;
                    let r = local[next];
                    if dead {
                        deaths.push(r);
                    } else {
                        // Censored at t count as followed longer than the deaths at t.
                        tree.add(r);
                        count[r as usize] += 1;
                    }
                }
            }
            below += censored_below;
            for &r in &deaths {
                conc += below + u64::from(tree.prefix(r - 1));
                tied += u64::from(count[r as usize]);
            }
            for &r in &deaths {
                tree.add(r);
                count[r as usize] += 1;
            }
            below += deaths_below;
        }
        // Undo this stratum's insertions (cheaper than a new tree when strata are many).
        if next > 0 {
            for &r in &local[next..stratum_end] {
                tree.sub(r);
                count[r as usize] -= 1;
            }
        }
    }
    (conc, tied)
}

/// Counts by rank, with prefix sums in O(log n).
struct Fenwick {
    t: Vec<u32>,
}

impl Fenwick {
    fn new(n: u32) -> Self {
        Fenwick {
            t: vec![0; n as usize + 1],
        }
    }
    fn add(&mut self, i: u32) {
        let mut i = i as usize;
        while i < self.t.len() {
            self.t[i] += 1;
            i += i & i.wrapping_neg();
        }
    }
    fn sub(&mut self, i: u32) {
        let mut i = i as usize;
        while i < self.t.len() {
            self.t[i] -= 1;
            i += i & i.wrapping_neg();
        }
    }
    /// Count of ranks 1..=i.
    fn prefix(&self, i: u32) -> u32 {
        let mut i = i as usize;
        let mut s = 0;
        while i > 0 {
            s += self.t[i];
            i -= i & i.wrapping_neg();
        }
        s
    }
}

/// R's `cholesky2` (survival): in-place LDL' of a symmetric n x n row-major matrix, D on the
/// diagonal and L below it; pivots under `toler` times the largest diagonal are set to 0
/// (singular). Returns the rank.
fn cholesky2(m: &mut [f64], n: usize, toler: f64) -> usize {
    let mut eps = 0.0f64;
    for i in 0..n {
        if m[i * n + i] > eps {
            eps = m[i * n + i];
        }
        for j in i + 1..n {
            m[j * n + i] = m[i * n + j];
        }
    }
    eps = if eps == 0.0 { toler } else { eps * toler };
    let mut rank = 0;
    for i in 0..n {
        let pivot = m[i * n + i];
        if !pivot.is_finite() || pivot < eps {
            m[i * n + i] = 0.0;
        } else {
            rank += 1;
            for j in i + 1..n {
                let temp = m[j * n + i] / pivot;
                m[j * n + i] = temp;
                m[j * n + j] -= temp * temp * pivot;
                for k in j + 1..n {
                    m[k * n + j] -= temp * m[k * n + i];
                }
            }
        }
    }
    rank
}

/// R's `chsolve2`: solve with the factor from [`cholesky2`]; singular pivots give 0.
fn chsolve2(m: &[f64], n: usize, y: &mut [f64]) {
    for i in 0..n {
        let mut temp = y[i];
        for j in 0..i {
            temp -= y[j] * m[i * n + j];
        }
        y[i] = temp;
    }
    for i in (0..n).rev() {
        if m[i * n + i] == 0.0 {
            y[i] = 0.0;
        } else {
            let mut temp = y[i] / m[i * n + i];
            for j in i + 1..n {
                temp -= y[j] * m[j * n + i];
            }
            y[i] = temp;
        }
    }
}

/// R's `chinv2`: the (generalised) inverse from the [`cholesky2`] factor, made symmetric; rows
/// and columns of singular pivots are 0.
fn chinv2(m: &mut [f64], n: usize) {
    for i in 0..n {
        if m[i * n + i] > 0.0 {
            m[i * n + i] = 1.0 / m[i * n + i];
            for j in i + 1..n {
                m[j * n + i] = -m[j * n + i];
                for k in 0..i {
                    m[j * n + k] += m[j * n + i] * m[i * n + k];
                }
            }
        }
    }
    for i in 0..n {
        if m[i * n + i] == 0.0 {
            for j in 0..i {
                m[j * n + i] = 0.0;
            }
            for j in i..n {
                m[i * n + j] = 0.0;
            }
        } else {
            for j in i + 1..n {
                let temp = m[j * n + i] * m[j * n + j];
                m[i * n + j] = temp;
                for k in i..j {
                    m[i * n + k] += temp * m[j * n + k];
                }
            }
        }
    }
    for i in 0..n {
        for j in 0..i {
            m[i * n + j] = m[j * n + i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64, uniform on [0, 1).
    fn uniform(state: &mut u64) -> f64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Three strata of rows in fitting order, with many tied times (and runs of ties longer
    /// than the segment sizes tested), about 60% deaths, three covariates.
    fn fitting_order_data(efron: bool, chunk: usize, task_rows: usize) -> Sorted {
        let mut st = 7u64;
        let p = 3;
        let sizes = [97, 1, 140];
        let mut start = vec![0];
        let (mut times, mut status, mut xs) = (Vec::new(), Vec::new(), Vec::new());
        for &m in &sizes {
            let mut t: Vec<f64> = (0..m).map(|_| (uniform(&mut st) * 12.0).floor()).collect();
            t.sort_by(f64::total_cmp);
            for v in t {
                times.push(v);
                status.push(uniform(&mut st) < 0.6);
                xs.push(uniform(&mut st) - 0.5);
                xs.push(f64::from(uniform(&mut st) < 0.4));
                xs.push((uniform(&mut st) * 3.0).floor() - 1.0);
            }
            start.push(times.len());
        }
        let segments = segments(&times, &start, chunk);
        let tasks = tasks(&segments, task_rows);
        Sorted {
            p,
            xs,
            status,
            times,
            start,
            segments,
            tasks,
            efron,
        }
    }

    #[test]
    fn segments_keep_ties_and_strata_whole() {
        for chunk in [1, 3, 8, 50, usize::MAX] {
            let d = fitting_order_data(true, chunk, chunk);
            let mut next = 0;
            for seg in &d.segments {
                assert_eq!(seg.lo, next, "segments cover the rows in order");
                assert!(seg.hi > seg.lo);
                next = seg.hi;
                let stratum = d.start.partition_point(|&s| s <= seg.lo) - 1;
                assert!(
                    seg.hi <= d.start[stratum + 1],
                    "a segment stays in its stratum"
                );
                assert_eq!(seg.first, seg.lo == d.start[stratum]);
                assert_eq!(seg.last, seg.hi == d.start[stratum + 1]);
                if !seg.last {
                    assert_ne!(d.times[seg.hi - 1], d.times[seg.hi], "a tie is never split");
                }
            }
            assert_eq!(next, d.times.len());
            let mut next = 0;
            for task in &d.tasks {
                assert_eq!(task.start, next);
                next = task.end;
            }
            assert_eq!(next, d.segments.len());
        }
    }

    #[test]
    fn segmented_eval_matches_one_pass() {
        // One segment and one task is coxfit6's sequential pass (the R-validated path); any cut
        // into segments and tasks must give the same likelihood, score and information up to
        // rounding.
        let beta = [0.7, -0.4, 0.25];
        for efron in [true, false] {
            let whole = fitting_order_data(efron, usize::MAX, usize::MAX);
            assert_eq!(whole.tasks.len(), 1);
            let mut ws = Workspace::new(3, whole.times.len());
            let ll = whole.eval(&beta, &mut ws);
            let (u, imat) = (ws.u.clone(), ws.imat.clone());
            for (chunk, task_rows) in [(1, 1), (4, 4), (10, 25), (30, 1000), (64, 64)] {
                let d = fitting_order_data(efron, chunk, task_rows);
                assert!(d.segments.len() > 3);
                assert_eq!(d.tasks.len() == 1, task_rows >= d.times.len());
                let mut ws = Workspace::new(3, d.times.len());
                let ll2 = d.eval(&beta, &mut ws);
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(1.0);
                assert!(close(ll, ll2), "{chunk}: {ll} vs {ll2}");
                for (a, b) in u.iter().zip(&ws.u).chain(imat.iter().zip(&ws.imat)) {
                    assert!(close(*a, *b), "{chunk}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn concordance_matches_pair_count_for_any_rank_ranges() {
        let d = fitting_order_data(true, usize::MAX, usize::MAX);
        let n = d.times.len();
        let mut st = 3u64;
        // Few distinct predictor values, so ties in the predictor are common.
        let lp: Vec<f64> = (0..n)
            .map(|_| (uniform(&mut st) * 9.0).floor() * 0.5)
            .collect();
        // Every pair by definition: a death against any row of its stratum still at risk after
        // it (a later time, or censored at the same time).
        let (mut conc, mut disc, mut tied) = (0.0, 0.0, 0.0);
        for w in d.start.windows(2) {
            for i in w[0]..w[1] {
                for j in w[0]..w[1] {
                    let at_risk =
                        d.times[j] > d.times[i] || (d.times[j] == d.times[i] && !d.status[j]);
                    if d.status[i] && at_risk {
                        if lp[i] > lp[j] {
                            conc += 1.0;
                        } else if lp[i] == lp[j] {
                            tied += 1.0;
                        } else {
                            disc += 1.0;
                        }
                    }
                }
            }
        }
        let want = (conc + tied / 2.0) / (conc + disc + tied);
        for ranges in 1..=9 {
            let got = concordance(&lp, &d.status, &d.times, &d.start, ranges);
            assert_eq!(got, Some(want), "{ranges} rank ranges");
        }
    }

    #[test]
    fn concordance_of_many_rows_is_the_same_for_any_rank_ranges() {
        // 100,000 rows in two strata: the sampled interval cuts are real quantiles here, and
        // every task sorts tens of thousands of keys.
        let mut st = 9u64;
        let n = 100_000;
        let start = vec![0, 60_000, n];
        let mut times = Vec::with_capacity(n);
        for w in start.windows(2) {
            let mut t: Vec<f64> = (w[0]..w[1])
                .map(|_| (uniform(&mut st) * 500.0).round() / 10.0)
                .collect();
            t.sort_by(f64::total_cmp);
            times.extend(t);
        }
        let status: Vec<bool> = (0..n).map(|_| uniform(&mut st) < 0.7).collect();
        let lp: Vec<f64> = (0..n)
            .map(|_| (uniform(&mut st) * 2000.0).round() / 1000.0 - 1.0)
            .collect();
        let one = concordance(&lp, &status, &times, &start, 1);
        assert!(one.is_some_and(|c| (0.45..0.55).contains(&c)), "{one:?}");
        for ranges in 2..=6 {
            assert_eq!(concordance(&lp, &status, &times, &start, ranges), one);
        }
    }

    #[test]
    fn cholesky_inverse_matches_direct() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let mut m = a.to_vec();
        assert_eq!(cholesky2(&mut m, 3, 1e-12), 3);
        let mut y = vec![1.0, 2.0, 3.0];
        chsolve2(&m, 3, &mut y);
        // A y = (1, 2, 3)
        for r in 0..3 {
            let v: f64 = (0..3).map(|c| a[r * 3 + c] * y[c]).sum();
            assert!((v - (r as f64 + 1.0)).abs() < 1e-12);
        }
        chinv2(&mut m, 3);
        for r in 0..3 {
            for c in 0..3 {
                let v: f64 = (0..3).map(|k| a[r * 3 + k] * m[k * 3 + c]).sum();
                let want = if r == c { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-12, "{r},{c}: {v}");
            }
        }
    }

    #[test]
    fn fenwick_counts() {
        let mut f = Fenwick::new(5);
        f.add(2);
        f.add(4);
        f.add(4);
        assert_eq!(f.prefix(1), 0);
        assert_eq!(f.prefix(3), 1);
        assert_eq!(f.prefix(5), 3);
        f.sub(4);
        assert_eq!(f.prefix(5), 2);
    }
}
