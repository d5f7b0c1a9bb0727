//! Standardized mean differences (SMD), two definitions:
//!
//! - [`smd_matchit`] / [`smd_matchit_column`]: as `summary(matchit)` (MatchIt 4.5.1, ATT)
//!   reports them: (weighted) mean of the treated minus (weighted) mean of the controls, divided
//!   by the standard deviation of the treated group in the full, unmatched sample, so "before"
//!   and "after" share a denominator. Binary (0/1) columns use sqrt(p (1 - p)); other columns
//!   the sample SD. Signed. Use it for balance before/after matching.
//! - [`smd_pooled_continuous`] / [`smd_pooled_categorical`]: as `tableone::CreateTableOne(smd =
//!   TRUE)`: the absolute difference over the pooled SD sqrt((s1^2 + s2^2) / 2), and for a
//!   categorical variable the multi-level SMD of Yang & Dalton (2012). Unsigned. Use it for a
//!   Table 1.

use crate::design::ModelMatrix;
use crate::{Result, StatsError, finite};
use nalgebra::{DMatrix, DVector};

const SQRT_EPS: f64 = 1.490_116_119_384_765_6e-8; // sqrt(.Machine$double.eps)

/// SMD of every column of `x` (build it with [`crate::design::indicator_matrix`] so each factor
/// level is a `variable=level` column), treated (`treat[i] = true`) minus control, as
/// `summary(matchit)`: `weights = None` for "before matching", the matching weights for "after".
/// Returns `(column name, SMD)` in column order; `None` where MatchIt reports NA.
pub fn smd_matchit(
    x: &ModelMatrix,
    treat: &[bool],
    weights: Option<&[f64]>,
) -> Result<Vec<(String, Option<f64>)>> {
    if x.nrows() != treat.len() {
        return Err(StatsError::new(format!(
            "{} treatment indicators for {} rows of covariates",
            treat.len(),
            x.nrows()
        )));
    }
    (0..x.ncols())
        .map(|j| {
            let col: Vec<f64> = x.x.column(j).iter().copied().collect();
            Ok((
                x.names[j].clone(),
                smd_matchit_column(&col, treat, weights)?,
            ))
        })
        .collect()
}

/// SMD of one covariate as `summary(matchit)` computes it (MatchIt's `bal1var` with
/// `s.d.denom = "treated"` and unit sampling weights), including its edge rules: a difference
/// below sqrt(machine epsilon) is reported unstandardized; fewer than two units with non-zero
/// weight in both groups gives `None`; a treated SD of (almost) zero falls back to the pooled SD.
pub fn smd_matchit_column(
    x: &[f64],
    treat: &[bool],
    weights: Option<&[f64]>,
) -> Result<Option<f64>> {
    let n = x.len();
    if treat.len() != n {
        return Err(StatsError::new(format!(
            "{} treatment indicators for {n} covariate values",
            treat.len()
        )));
    }
    if let Some(w) = weights {
        if w.len() != n {
            return Err(StatsError::new(format!(
                "{} weights for {n} covariate values",
                w.len()
            )));
        }
        if w.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(StatsError::new("weights must be finite and non-negative"));
        }
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::new(
            "covariate values must be finite (complete cases)",
        ));
    }
    let w = |i: usize| weights.map_or(1.0, |w| w[i]);
    let x1: Vec<f64> = (0..n).filter(|&i| treat[i]).map(|i| x[i]).collect();
    let x0: Vec<f64> = (0..n).filter(|&i| !treat[i]).map(|i| x[i]).collect();
    if x1.is_empty() || x0.is_empty() {
        return Err(StatsError::new(
            "balance needs both treated and control units",
        ));
    }
    let nonzero1 = (0..n).filter(|&i| treat[i] && w(i) != 0.0).count();
    let nonzero0 = (0..n).filter(|&i| !treat[i] && w(i) != 0.0).count();
    let too_small = nonzero1 < 2 && nonzero0 < 2;
    let wmean = |t: bool| -> f64 {
        let (mut s, mut sw) = (0.0, 0.0);
        for i in (0..n).filter(|&i| treat[i] == t) {
            s += x[i] * w(i);
            sw += w(i);
        }
        s / sw
    };
    let mdiff = wmean(true) - wmean(false);
    if !mdiff.is_finite() {
        return Ok(None);
    }
    if mdiff.abs() <= SQRT_EPS {
        return Ok(Some(mdiff));
    }
    if too_small {
        return Ok(None);
    }
    let binary = x.iter().all(|&v| v == 0.0 || v == 1.0);
    let mut sd = wvar(&x1, binary).sqrt();
    if !sd.is_finite() || sd < SQRT_EPS {
        sd = pooled_sd_proportional(&x1, &x0, binary);
    }
    Ok(finite(mdiff / sd))
}

/// MatchIt's `wvar` with unit weights: p (1 - p) for binary columns, else the sample variance.
fn wvar(x: &[f64], binary: bool) -> f64 {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    if binary {
        return m * (1.0 - m);
    }
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0)
}

/// MatchIt's `pooled_sd(contribution = "proportional")`, its fallback denominator.
fn pooled_sd_proportional(x1: &[f64], x0: &[f64], binary: bool) -> f64 {
    let n = (x1.len() + x0.len()) as f64;
    let v = if binary {
        [x1, x0]
            .iter()
            .map(|g| {
                let s: f64 = g.iter().sum();
                s * (1.0 - s / g.len() as f64) / n
            })
            .sum::<f64>()
    } else {
        let ss: f64 = [x1, x0]
            .iter()
            .map(|g| {
                let m = g.iter().sum::<f64>() / g.len() as f64;
                g.iter().map(|v| (v - m) * (v - m)).sum::<f64>()
            })
            .sum();
        ss / (n - 2.0)
    };
    v.sqrt()
}

fn split_groups(len: usize, group: &[usize]) -> Result<()> {
    if group.len() != len {
        return Err(StatsError::new(format!(
            "{len} values but {} group codes",
            group.len()
        )));
    }
    if group.iter().any(|&g| g > 1) {
        return Err(StatsError::new(
            "a standardized difference compares two groups (codes 0 and 1)",
        ));
    }
    if !group.contains(&0) || !group.contains(&1) {
        return Err(StatsError::new(
            "only one group has observations; a standardized difference needs both",
        ));
    }
    Ok(())
}

/// tableone's SMD of a continuous variable between groups 0 and 1:
/// |mean_0 - mean_1| / sqrt((var_0 + var_1) / 2) with sample variances. `None` when both
/// variances are zero (or a group has a single value).
pub fn smd_pooled_continuous(x: &[f64], group: &[usize]) -> Result<Option<f64>> {
    split_groups(x.len(), group)?;
    if x.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::new("values must be finite (complete cases)"));
    }
    let g = |k: usize| -> Vec<f64> {
        x.iter()
            .zip(group)
            .filter(|(_, g)| **g == k)
            .map(|(v, _)| *v)
            .collect()
    };
    let (a, b) = (g(0), g(1));
    let (ma, mb) = (crate::describe::mean(&a), crate::describe::mean(&b));
    let (Some(va), Some(vb)) = (
        crate::describe::variance(&a, ma),
        crate::describe::variance(&b, mb),
    ) else {
        return Ok(None);
    };
    Ok(finite((ma - mb).abs() / ((va + vb) / 2.0).sqrt()))
}

/// tableone's SMD of a categorical variable (codes `0..n_levels`) between groups 0 and 1:
/// sqrt(T' S^-1 T), T the differences in level proportions (first level dropped) and S the
/// average of the two multinomial covariance matrices (Moore-Penrose inverse, as tableone's
/// `MASS::ginv`). For two levels this is |p0 - p1| / sqrt((p0 (1-p0) + p1 (1-p1)) / 2).
pub fn smd_pooled_categorical(
    codes: &[usize],
    n_levels: usize,
    group: &[usize],
) -> Result<Option<f64>> {
    split_groups(codes.len(), group)?;
    if n_levels < 2 {
        return Err(StatsError::new(
            "a categorical variable needs at least two levels",
        ));
    }
    if codes.iter().any(|&c| c >= n_levels) {
        return Err(StatsError::new("a level code is outside the given levels"));
    }
    let props = |k: usize| -> Vec<f64> {
        let mut c = vec![0.0; n_levels];
        let mut n = 0.0;
        for (&v, &g) in codes.iter().zip(group) {
            if g == k {
                c[v] += 1.0;
                n += 1.0;
            }
        }
        c.iter().map(|v| v / n).collect()
    };
    let (p0, p1) = (props(0), props(1));
    let k = n_levels - 1;
    let t = DVector::from_fn(k, |i, _| p0[i + 1] - p1[i + 1]);
    let cov = |p: &[f64]| {
        DMatrix::from_fn(k, k, |i, j| {
            if i == j {
                p[i + 1] * (1.0 - p[i + 1])
            } else {
                -p[i + 1] * p[j + 1]
            }
        })
    };
    let s = (cov(&p0) + cov(&p1)) / 2.0;
    let Ok(sinv) = s.pseudo_inverse(1e-12) else {
        return Ok(None);
    };
    let q = (t.transpose() * sinv * &t)[(0, 0)];
    Ok(finite(q.max(0.0).sqrt()))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn matchit_smd_by_hand() {
        // Treated x = 1, 2, 3 (sd 1); control x = 0, 0, 1, 1 (mean 0.5).
        let x = [1.0, 2.0, 3.0, 0.0, 0.0, 1.0, 1.0];
        let t = [true, true, true, false, false, false, false];
        assert_eq!(smd_matchit_column(&x, &t, None).unwrap(), Some(1.5));
        // Weights: controls 0 and 0 only -> control mean 0.
        let w = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0];
        assert_eq!(smd_matchit_column(&x, &t, Some(&w)).unwrap(), Some(2.0));
        // Binary: treated p = 2/3, control p = 1/4; sd sqrt(2/9).
        let b = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        let s = smd_matchit_column(&b, &t, None).unwrap().unwrap();
        assert!((s - (2.0 / 3.0 - 0.25) / (2.0f64 / 9.0).sqrt()).abs() < 1e-15);
        // Equal means: the raw (zero) difference.
        let e = [1.0, 2.0, 3.0, 2.0, 2.0, 2.0, 2.0];
        assert_eq!(smd_matchit_column(&e, &t, None).unwrap(), Some(0.0));
    }

    #[test]
    fn pooled_smd_by_hand() {
        // Group 0: 1, 2, 3 (var 1); group 1: 3, 5, 7 (var 4): |2 - 5| / sqrt(2.5).
        let x = [1.0, 2.0, 3.0, 3.0, 5.0, 7.0];
        let g = [0, 0, 0, 1, 1, 1];
        let s = smd_pooled_continuous(&x, &g).unwrap().unwrap();
        assert!((s - 3.0 / 2.5f64.sqrt()).abs() < 1e-15);
        // Two levels reduce to the binary formula.
        let c = [0, 1, 1, 0, 0, 1];
        let (p0, p1): (f64, f64) = (2.0 / 3.0, 1.0 / 3.0);
        let want = (p0 - p1).abs() / ((p0 * (1.0 - p0) + p1 * (1.0 - p1)) / 2.0).sqrt();
        let s = smd_pooled_categorical(&c, 2, &g).unwrap().unwrap();
        assert!((s - want).abs() < 1e-12, "{s} vs {want}");
        assert!(smd_pooled_continuous(&x, &[0; 6]).is_err());
    }
}
