//! Log-rank test and the Harrington-Fleming G-rho family, reproducing R's
//! `survdiff(Surv(time, status) ~ group + strata(s), rho = )` (survival 3.5-3, `survdiff2.c`).
//!
//! At each event time the weight is S(t-)^rho, with S the Kaplan-Meier of the pooled stratum taken
//! just before t (rho = 0: log-rank; rho = 1: Peto-Peto modification of Gehan-Wilcoxon).
//! Observed and expected (weighted) events and the hypergeometric variance are summed over event
//! times and strata; the statistic is (O - E)' V^- (O - E) where, as R does, groups with no expected
//! events are dropped and the generalised inverse drops the first remaining group
//! (Harrington & Fleming 1982; Therneau & Grambsch 2000, section 3.3).

use crate::surv::{check_codes, check_response, chisq_sf, partition_by, sort_times};
use crate::{Result, StatsError};
use nalgebra::{DMatrix, DVector};
use serde::Serialize;

/// Result of [`logrank`].
#[derive(Clone, Debug, Serialize)]
pub struct LogRank {
    pub rho: f64,
    pub chisq: f64,
    /// Number of groups with expected events, minus one.
    pub df: usize,
    /// `None` when no two groups have expected events (df = 0).
    pub p: Option<f64>,
    pub groups: Vec<LogRankGroup>,
}

/// Per-group counts, summed over strata.
#[derive(Clone, Debug, Serialize)]
pub struct LogRankGroup {
    pub level: String,
    pub n: usize,
    /// Observed events (weighted by S(t-)^rho when rho != 0).
    pub observed: f64,
    /// Expected events under the null (same weighting).
    pub expected: f64,
}

/// Compare the survival of groups `group[i]` in `0..labels.len()` (every group must have rows, and
/// there must be at least two), optionally within strata `strata[i]` (codes `0..s`), with weights
/// S(t-)^`rho` (`rho` >= 0: 0 is the log-rank test, 1 Peto-Peto).
pub fn logrank<S: AsRef<str>>(
    time: &[f64],
    event: &[bool],
    group: &[usize],
    labels: &[S],
    strata: Option<&[usize]>,
    rho: f64,
) -> Result<LogRank> {
    const WHAT: &str = "log-rank test";
    check_response(WHAT, time, event)?;
    let n = time.len();
    let k = check_codes(WHAT, "group", group, n)?;
    if k > labels.len() {
        return Err(StatsError::new(format!(
            "{WHAT}: group code {} has no label ({} labels given)",
            k - 1,
            labels.len()
        )));
    }
    let k = labels.len();
    if !(rho.is_finite() && rho >= 0.0) {
        return Err(StatsError::new(format!(
            "{WHAT}: rho must be a finite number >= 0, not {rho}"
        )));
    }
    let mut group_n = vec![0usize; k];
    for &g in group {
        group_n[g] += 1;
    }
    if let Some(g) = group_n.iter().position(|&c| c == 0) {
        return Err(StatsError::new(format!(
            "{WHAT}: group \"{}\" has no observations",
            labels[g].as_ref()
        )));
    }
    if k < 2 {
        return Err(StatsError::new(format!(
            "{WHAT}: needs at least two groups with observations"
        )));
    }
    let zeros;
    let strata = match strata {
        Some(s) => s,
        None => {
            zeros = vec![0usize; n];
            &zeros
        }
    };
    let ns = check_codes(WHAT, "strata", strata, n)?;

    let sorted = sort_times(time);
    let (rows, times, start) = partition_by(sorted, strata, ns);

    let mut obs = vec![0.0; k];
    let mut exp = vec![0.0; k];
    let mut var = vec![0.0; k * k];
    let mut risk = vec![0.0f64; k];
    let mut d_g = vec![0.0f64; k];
    let mut c_g = vec![0.0f64; k];
    let mut touched: Vec<usize> = Vec::with_capacity(k);
    for s in 0..ns {
        let (a, b) = (start[s], start[s + 1]);
        risk.iter_mut().for_each(|r| *r = 0.0);
        for &r in &rows[a..b] {
            risk[group[r as usize]] += 1.0;
        }
        let mut nrisk = (b - a) as f64;
        let mut km = 1.0f64;
        let mut i = a;
        while i < b {
            let t = times[i];
            let mut deaths = 0.0;
            let mut j = i;
            while j < b && times[j] == t {
                let r = rows[j] as usize;
                let g = group[r];
                if c_g[g] == 0.0 {
                    touched.push(g);
                }
                c_g[g] += 1.0;
                if event[r] {
                    d_g[g] += 1.0;
                    deaths += 1.0;
                }
                j += 1;
            }
            // Left-continuous pooled Kaplan-Meier of this stratum, S(t-).
            let wt = if rho == 0.0 { 1.0 } else { km.powf(rho) };
            if deaths > 0.0 {
                for &g in &touched {
                    obs[g] += wt * d_g[g];
                }
                for g in 0..k {
                    exp[g] += wt * deaths * risk[g] / nrisk;
                }
                if nrisk > 1.0 {
                    let kt = wt * wt * deaths * (nrisk - deaths) / (nrisk * (nrisk - 1.0));
                    for jg in 0..k {
                        if risk[jg] == 0.0 {
                            continue;
                        }
                        let tmp = kt * risk[jg];
                        var[jg * k + jg] += tmp;
                        for kg in 0..k {
                            var[jg * k + kg] -= tmp * risk[kg] / nrisk;
                        }
                    }
                }
                km *= (nrisk - deaths) / nrisk;
            }
            for &g in &touched {
                risk[g] -= c_g[g];
                c_g[g] = 0.0;
                d_g[g] = 0.0;
            }
            touched.clear();
            nrisk -= (j - i) as f64;
            i = j;
        }
    }

    // Groups with no expected events carry no information (R drops them); the generalised
    // inverse then drops the first remaining group.
    let keep: Vec<usize> = (0..k).filter(|&g| exp[g] > 0.0).collect();
    let df = keep.len().saturating_sub(1);
    let chisq = if keep.len() < 2 {
        0.0
    } else {
        let idx = &keep[1..];
        let m = idx.len();
        let diff = DVector::from_iterator(m, idx.iter().map(|&g| obs[g] - exp[g]));
        let v = DMatrix::from_fn(m, m, |r, c| var[idx[r] * k + idx[c]]);
        let x = v.clone().lu().solve(&diff).ok_or_else(|| {
            StatsError::new(format!(
                "{WHAT}: the variance of the observed minus expected events is singular"
            ))
        })?;
        x.dot(&diff)
    };
    let p = chisq_sf(chisq, df);
    let groups = (0..k)
        .map(|g| LogRankGroup {
            level: labels[g].as_ref().to_string(),
            n: group_n[g],
            observed: obs[g],
            expected: exp[g],
        })
        .collect();
    Ok(LogRank {
        rho,
        chisq,
        df,
        p,
        groups,
    })
}
