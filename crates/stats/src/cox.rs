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

use crate::surv::{
    check_codes, check_response, chisq_sf, normal_two_sided, partition_by, radix_sort, sort_key,
    sort_times, z_for_level,
};
use crate::{Result, StatsError, finite};
use nalgebra::DMatrix;
use serde::Serialize;

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
    const WHAT: &str = "Cox model";
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
    let name = |j: usize| terms[j].as_ref();
    for j in 0..p {
        // A branch-free pass (it vectorises); the row is looked up only on failure.
        let col = &x.as_slice()[j * n..(j + 1) * n];
        if !col.iter().fold(true, |ok, v| ok & v.is_finite())
            && let Some(i) = col.iter().position(|v| !v.is_finite())
        {
            return Err(StatsError::new(format!(
                "{WHAT}: covariate \"{}\" is not a finite number in row {}",
                name(j),
                i + 1
            )));
        }
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
    let zeros;
    let strata = match options.strata {
        Some(s) => s,
        None => {
            zeros = vec![0usize; n];
            &zeros
        }
    };
    let ns = check_codes(WHAT, "strata", strata, n)?;
    if let Some(c) = options.cluster
        && c.len() != n
    {
        return Err(StatsError::new(format!(
            "{WHAT}: the cluster identifiers ({}) and survival times ({n}) have different lengths",
            c.len()
        )));
    }

    // One sort by time, then by stratum (stable): ascending time within each stratum block.
    let sorted = sort_times(time);
    let (rows, times, start) = partition_by(&sorted.order, &sorted.time, strata, ns);
    drop(sorted);

    // Centre and scale as coxfit6 (scale = 1 / mean |x - mean|): Newton-Raphson is invariant to
    // it, but it keeps the information matrix well conditioned and the tolerances meaningful.
    let mut means = vec![0.0; p];
    let mut scale = vec![1.0; p];
    for j in 0..p {
        let col = &x.as_slice()[j * n..(j + 1) * n];
        let m = sum8(col.iter().copied()) / n as f64;
        let mad = sum8(col.iter().map(|v| (v - m).abs())) / n as f64;
        if mad.is_nan() || mad <= 0.0 || (mad / m.abs().max(f64::MIN_POSITIVE)) < 1e-13 {
            return Err(StatsError::new(format!(
                "{WHAT}: covariate \"{}\" is constant, so its coefficient cannot be estimated",
                name(j)
            )));
        }
        means[j] = m;
        scale[j] = 1.0 / mad;
    }
    // Scatter each input row to its sorted position: one random write of a whole row instead of
    // p random reads (the input is column-major).
    let mut pos = vec![0u32; n];
    for (i, &r) in rows.iter().enumerate() {
        pos[r as usize] = i as u32;
    }
    let cols: Vec<&[f64]> = (0..p).map(|j| &x.as_slice()[j * n..(j + 1) * n]).collect();
    let mut xs = vec![0.0; n * p];
    for (r, &i) in pos.iter().enumerate() {
        let dst = &mut xs[i as usize * p..(i as usize + 1) * p];
        for (j, d) in dst.iter_mut().enumerate() {
            *d = (cols[j][r] - means[j]) * scale[j];
        }
    }
    drop(pos);
    let status: Vec<bool> = rows.iter().map(|&r| event[r as usize]).collect();
    let data = Sorted {
        p,
        xs,
        status,
        times,
        start,
        efron: options.ties == Ties::Efron,
    };

    let toler = f64::EPSILON.powf(0.75);
    let mut ws = Workspace::new(p);

    // Iteration 0: beta = 0 gives the null log-likelihood and the score test.
    let mut beta = vec![0.0; p];
    let mut loglik = data.eval(&beta, &mut ws);
    let loglik_null = loglik;
    let mut imat = ws.imat_full();
    let rank0 = cholesky2(&mut imat, p, toler);
    if rank0 < p {
        let j = (0..p).find(|&j| imat[j * p + j] == 0.0).unwrap_or(p - 1);
        return Err(StatsError::new(format!(
            "{WHAT}: covariate \"{}\" is a linear combination of the covariates before it \
             (or does not vary within risk sets), so its coefficient cannot be estimated",
            name(j)
        )));
    }
    let mut step = ws.u.clone();
    chsolve2(&imat, p, &mut step);
    let score_chisq: f64 = ws.u.iter().zip(&step).map(|(u, s)| u * s).sum();
    let mut newbeta: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b + s).collect();

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
    loglik = newlk;
    let beta_s = newbeta;
    let u_final = ws.u.clone();
    chinv2(&mut imat, p);
    let var_s = imat; // inverse information, scaled coordinates

    let mut warnings = Vec::new();
    if !converged {
        warnings.push(format!(
            "the Cox model did not converge in {} iterations; estimates are unreliable",
            options.iter_max
        ));
    }
    if !loglik.is_finite() {
        return Err(StatsError::new(format!(
            "{WHAT}: the fit failed (the log partial likelihood is not finite)"
        )));
    }

    // Back to the original scale.
    let coef: Vec<f64> = (0..p).map(|j| beta_s[j] * scale[j]).collect();
    let var: Vec<f64> = (0..p * p)
        .map(|ij| var_s[ij] * scale[ij / p] * scale[ij % p])
        .collect();

    // Terms whose coefficient may be infinite (coxph.fit's check: u' V large relative to beta),
    // or whose information became singular.
    let toler_inf = options.eps.sqrt();
    let mut bad = vec![false; p];
    for j in 0..p {
        let infs: f64 = (0..p)
            .map(|i| u_final[i] / scale[i] * var[i * p + j])
            .sum::<f64>()
            .abs();
        let singular = var[j * p + j] == 0.0;
        if singular || (infs > options.eps && infs > toler_inf * coef[j].abs()) {
            bad[j] = true;
            warnings.push(format!(
                "the coefficient of \"{}\" may be infinite (the log partial likelihood converged \
                 before it); it is not reported",
                name(j)
            ));
        }
    }

    // Robust variance from dfbeta residuals summed within clusters.
    let robust: Option<Vec<f64>> = options.cluster.map(|cluster| {
        let resid = data.score_residuals(&beta_s);
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
    });

    let used = robust.as_ref().unwrap_or(&var);
    let mut out_terms = Vec::with_capacity(p);
    for j in 0..p {
        let se = var[j * p + j].sqrt();
        let robust_se = robust.as_ref().map(|r| r[j * p + j].sqrt());
        let se_used = used[j * p + j].sqrt();
        let b = coef[j];
        let z = b / se_used;
        let keep = !bad[j];
        let ok = |v: f64| if keep { finite(v) } else { None };
        out_terms.push(CoxTerm {
            term: name(j).to_string(),
            coef: ok(b),
            se: ok(se),
            robust_se: robust_se.and_then(ok),
            hr: ok(b.exp()),
            lower: ok((b - z_level * se_used).exp()),
            upper: ok((b + z_level * se_used).exp()),
            z: ok(z),
            p: ok(normal_two_sided(z)),
        });
    }

    let lr = 2.0 * (loglik - loglik_null);
    let lr_test = ChisqTest {
        chisq: lr,
        df: p,
        p: chisq_sf(lr, p),
    };
    let score_test = ChisqTest {
        chisq: score_chisq,
        df: p,
        p: chisq_sf(score_chisq, p),
    };
    let wald_test = if bad.iter().any(|&b| b) {
        None
    } else {
        // coxph.wtest: b' V^- b through the same tolerant Cholesky.
        let mut v = used.clone();
        let rank = cholesky2(&mut v, p, toler);
        let mut sol = coef.clone();
        chsolve2(&v, p, &mut sol);
        let w: f64 = sol.iter().zip(&coef).map(|(a, b)| a * b).sum();
        Some(ChisqTest {
            chisq: w,
            df: rank,
            p: chisq_sf(w, rank),
        })
    };

    let lp: Vec<f64> = (0..n)
        .map(|i| (0..p).map(|j| data.xs[i * p + j] * beta_s[j]).sum())
        .collect();
    let concordance = concordance(&lp, &data.status, &data.times, &data.start);

    Ok(Cox {
        ties: options.ties,
        n,
        events,
        terms: out_terms,
        loglik_null,
        loglik,
        lr_test,
        wald_test,
        score_test,
        concordance,
        iterations,
        warnings,
    })
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
    efron: bool,
}

/// Accumulators reused across iterations.
struct Workspace {
    p: usize,
    u: Vec<f64>,
    /// Lower triangle, packed: (i, j) with j <= i at i (i + 1) / 2 + j.
    imat: Vec<f64>,
    a: Vec<f64>,
    a2: Vec<f64>,
    cmat: Vec<f64>,
    cmat2: Vec<f64>,
    xb: Vec<f64>,
}

impl Workspace {
    fn new(p: usize) -> Self {
        let t = p * (p + 1) / 2;
        Workspace {
            p,
            u: vec![0.0; p],
            imat: vec![0.0; t],
            a: vec![0.0; p],
            a2: vec![0.0; p],
            cmat: vec![0.0; t],
            cmat2: vec![0.0; t],
            xb: vec![0.0; p],
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

impl Sorted {
    /// Log partial likelihood at `beta`; leaves the score in `ws.u` and the information in
    /// `ws.imat`. Mirrors coxfit6's accumulation (reverse time within each stratum).
    fn eval(&self, beta: &[f64], ws: &mut Workspace) -> f64 {
        let p = self.p;
        let mut loglik = 0.0;
        ws.u.iter_mut().for_each(|v| *v = 0.0);
        ws.imat.iter_mut().for_each(|v| *v = 0.0);
        for s in 0..self.start.len() - 1 {
            let (lo, hi) = (self.start[s], self.start[s + 1]);
            let mut denom = 0.0;
            ws.a.iter_mut().for_each(|v| *v = 0.0);
            ws.cmat.iter_mut().for_each(|v| *v = 0.0);
            let mut i = hi;
            while i > lo {
                let t = self.times[i - 1];
                let mut ndead = 0usize;
                let mut denom2 = 0.0;
                ws.a2.iter_mut().for_each(|v| *v = 0.0);
                ws.cmat2.iter_mut().for_each(|v| *v = 0.0);
                while i > lo && self.times[i - 1] == t {
                    i -= 1;
                    let x = &self.xs[i * p..(i + 1) * p];
                    let zbeta: f64 = x.iter().zip(beta).map(|(a, b)| a * b).sum();
                    let risk = zbeta.exp();
                    let (acc_a, acc_c) = if self.status[i] {
                        ndead += 1;
                        denom2 += risk;
                        loglik += zbeta;
                        for (u, xv) in ws.u.iter_mut().zip(x) {
                            *u += xv;
                        }
                        (&mut ws.a2, &mut ws.cmat2)
                    } else {
                        denom += risk;
                        (&mut ws.a, &mut ws.cmat)
                    };
                    let mut off = 0;
                    for (r, (aa, &xr)) in acc_a.iter_mut().zip(x).enumerate() {
                        let rx = risk * xr;
                        *aa += rx;
                        let row = &mut acc_c[off..off + r + 1];
                        for (cc, &xc) in row.iter_mut().zip(&x[..=r]) {
                            *cc += rx * xc;
                        }
                        off += r + 1;
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
                    for r in 0..p {
                        ws.a[r] += ws.a2[r];
                    }
                    for (c, c2) in ws.cmat.iter_mut().zip(&ws.cmat2) {
                        *c += c2;
                    }
                    self.add_info(ws, denom, dw);
                } else {
                    // Efron: the deaths enter the denominator in ndead equal parts.
                    // The increments are the same for every part: divide once, then add.
                    let nd = ndead as f64;
                    let d2 = denom2 / nd;
                    for r in 0..p {
                        ws.a2[r] /= nd;
                    }
                    for c2 in ws.cmat2.iter_mut() {
                        *c2 /= nd;
                    }
                    for _ in 0..ndead {
                        denom += d2;
                        loglik -= denom.ln();
                        for r in 0..p {
                            ws.a[r] += ws.a2[r];
                        }
                        for (c, c2) in ws.cmat.iter_mut().zip(&ws.cmat2) {
                            *c += c2;
                        }
                        self.add_info(ws, denom, 1.0);
                    }
                }
            }
        }
        loglik
    }

    /// Subtract `w * xbar` from the score and add `w * (cmat / denom - xbar xbar')` to the
    /// information, where xbar = a / denom.
    #[inline]
    fn add_info(&self, ws: &mut Workspace, denom: f64, w: f64) {
        let p = self.p;
        for r in 0..p {
            ws.xb[r] = ws.a[r] / denom;
            ws.u[r] -= w * ws.xb[r];
        }
        let mut idx = 0;
        for r in 0..p {
            for c in 0..=r {
                ws.imat[idx] += w * (ws.cmat[idx] / denom - ws.xb[r] * ws.xb[c]);
                idx += 1;
            }
        }
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
        // Per event time (in reverse order of discovery): hazard increments for subjects that
        // stay (haz, hx) and for the tied deaths (e_haz, e_hx), and the mean xbar of the deaths.
        let mut haz = Vec::new();
        let mut e_haz = Vec::new();
        let mut hx: Vec<f64> = Vec::new();
        let mut e_hx: Vec<f64> = Vec::new();
        let mut xmean: Vec<f64> = Vec::new();
        let mut a = vec![0.0; p];
        let mut a2 = vec![0.0; p];
        let mut xbar = vec![0.0; p];
        for s in 0..self.start.len() - 1 {
            let (lo, hi) = (self.start[s], self.start[s + 1]);
            haz.clear();
            e_haz.clear();
            hx.clear();
            e_hx.clear();
            xmean.clear();
            let mut denom = 0.0;
            a.iter_mut().for_each(|v| *v = 0.0);
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
                let base = hx.len();
                hx.resize(base + p, 0.0);
                e_hx.resize(base + p, 0.0);
                xmean.resize(base + p, 0.0);
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
                        hx[base + j] += xbar[j] * hz;
                        e_hx[base + j] += (1.0 - frac) * xbar[j] * hz;
                        xmean[base + j] += xbar[j] / parts as f64;
                    }
                }
                haz.push(h);
                e_haz.push(eh);
            }
            // Forward pass: cumulative hazard H and sum of xbar dH before each time.
            let mut cum_h = 0.0;
            let mut cum_hx = vec![0.0; p];
            let mut k = haz.len();
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
                    if !any_death {
                        for j in 0..p {
                            out[j] = -r * (x[j] * cum_h - cum_hx[j]);
                        }
                    } else if self.status[l] {
                        let b = k * p;
                        for j in 0..p {
                            out[j] = (x[j] - xmean[b + j])
                                - r * (x[j] * (cum_h + e_haz[k]) - (cum_hx[j] + e_hx[b + j]));
                        }
                    } else {
                        let b = k * p;
                        for j in 0..p {
                            out[j] = -r * (x[j] * (cum_h + haz[k]) - (cum_hx[j] + hx[b + j]));
                        }
                    }
                }
                if any_death {
                    cum_h += haz[k];
                    for j in 0..p {
                        cum_hx[j] += hx[k * p + j];
                    }
                }
                i = j_end;
            }
        }
        resid
    }
}

/// Harrell's concordance of the linear predictor `lp` (higher = shorter survival) within strata,
/// as `concordancefit(reverse = TRUE)` with R's tie rules. Rows are in ascending time within each
/// stratum block. `None` when no pair is comparable.
fn concordance(lp: &[f64], status: &[bool], times: &[f64], start: &[usize]) -> Option<f64> {
    let n = lp.len();
    // Dense ranks of the predictor; exact equality is a tie, as R's match(risk, unique(risk)).
    let mut keyed: Vec<(u64, u32)> = lp
        .iter()
        .enumerate()
        .map(|(i, &v)| (sort_key(v), i as u32))
        .collect();
    radix_sort(&mut keyed);
    let mut rank = vec![0u32; n];
    let mut nr = 0u32;
    for k in 0..n {
        if k == 0 || keyed[k].0 != keyed[k - 1].0 {
            nr += 1;
        }
        rank[keyed[k].1 as usize] = nr; // 1-based for the Fenwick tree
    }
    drop(keyed);
    let mut tree = Fenwick::new(nr);
    // Count per rank alongside the tree: ties in the predictor without a second tree query.
    let mut count = vec![0u32; nr as usize + 1];
    let (mut conc, mut disc, mut tied) = (0.0f64, 0.0f64, 0.0f64);
    for s in 0..start.len() - 1 {
        let (lo, hi) = (start[s], start[s + 1]);
        let mut inserted = 0usize;
        let mut i = hi;
        while i > lo {
            let t = times[i - 1];
            let mut j = i;
            while j > lo && times[j - 1] == t {
                j -= 1;
            }
            // Censored at t count as followed longer than the deaths at t: insert them first.
            for l in j..i {
                if !status[l] {
                    tree.add(rank[l]);
                    count[rank[l] as usize] += 1;
                    inserted += 1;
                }
            }
            for l in j..i {
                if status[l] {
                    let below = tree.prefix(rank[l] - 1) as usize;
                    let equal = count[rank[l] as usize] as usize;
                    conc += below as f64;
                    tied += equal as f64;
                    disc += (inserted - below - equal) as f64;
                }
            }
            for l in j..i {
                if status[l] {
                    tree.add(rank[l]);
                    count[rank[l] as usize] += 1;
                    inserted += 1;
                }
            }
            i = j;
        }
        // Undo this stratum's insertions (cheaper than a new tree when strata are many).
        if hi < n {
            for &r in &rank[lo..hi] {
                tree.sub(r);
                count[r as usize] -= 1;
            }
        }
    }
    let total = conc + disc + tied;
    (total > 0.0).then(|| (conc + tied / 2.0) / total)
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
