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
    let group_n = check_logrank(time, event, group, labels, rho)?;
    let (n, k) = (time.len(), labels.len());
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
    let mut tally = Tally::new(k);
    for s in 0..ns {
        let (a, b) = (start[s], start[s + 1]);
        tally.add_stratum(&rows[a..b], &times[a..b], group, event, rho);
    }
    let Tally { obs, exp, var, .. } = tally;
    let (chisq, df) = chisq_test(&obs, &exp, &var)?;
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

const WHAT: &str = "log-rank test";

/// Response, group codes and labels, and `rho`; returns the size of each group.
fn check_logrank<S: AsRef<str>>(
    time: &[f64],
    event: &[bool],
    group: &[usize],
    labels: &[S],
    rho: f64,
) -> Result<Vec<usize>> {
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
    Ok(group_n)
}

/// Weighted observed and expected events per group and their covariance (k x k), summed over
/// strata; the other vectors are per-time scratch space.
struct Tally {
    k: usize,
    obs: Vec<f64>,
    exp: Vec<f64>,
    var: Vec<f64>,
    risk: Vec<f64>,
    d_g: Vec<f64>,
    c_g: Vec<f64>,
    touched: Vec<usize>,
}

impl Tally {
    fn new(k: usize) -> Tally {
        Tally {
            k,
            obs: vec![0.0; k],
            exp: vec![0.0; k],
            var: vec![0.0; k * k],
            risk: vec![0.0f64; k],
            d_g: vec![0.0f64; k],
            c_g: vec![0.0f64; k],
            touched: Vec::with_capacity(k),
        }
    }

    /// Add one stratum: its input rows in ascending time order and their times.
    fn add_stratum(
        &mut self,
        rows: &[u32],
        times: &[f64],
        group: &[usize],
        event: &[bool],
        rho: f64,
    ) {
        let b = rows.len();
        self.risk.iter_mut().for_each(|r| *r = 0.0);
        for &r in rows {
            self.risk[group[r as usize]] += 1.0;
        }
        let mut nrisk = b as f64;
        let mut km = 1.0f64;
        let mut i = 0;
        while i < b {
            let t = times[i];
            let mut deaths = 0.0;
            let mut j = i;
            while j < b && times[j] == t {
                let r = rows[j] as usize;
                let g = group[r];
                if self.c_g[g] == 0.0 {
                    self.touched.push(g);
                }
                self.c_g[g] += 1.0;
                if event[r] {
                    self.d_g[g] += 1.0;
                    deaths += 1.0;
                }
                j += 1;
            }
            // Left-continuous pooled Kaplan-Meier of this stratum, S(t-).
            let wt = if rho == 0.0 { 1.0 } else { km.powf(rho) };
            if deaths > 0.0 {
                self.add_deaths(wt, deaths, nrisk);
                km *= (nrisk - deaths) / nrisk;
            }
            for &g in &self.touched {
                self.risk[g] -= self.c_g[g];
                self.c_g[g] = 0.0;
                self.d_g[g] = 0.0;
            }
            self.touched.clear();
            nrisk -= (j - i) as f64;
            i = j;
        }
    }

    /// One event time with `deaths` of `nrisk` at risk, weighted by `wt`.
    fn add_deaths(&mut self, wt: f64, deaths: f64, nrisk: f64) {
        let k = self.k;
        for &g in &self.touched {
            self.obs[g] += wt * self.d_g[g];
        }
        for g in 0..k {
            self.exp[g] += wt * deaths * self.risk[g] / nrisk;
        }
        if nrisk > 1.0 {
            let kt = wt * wt * deaths * (nrisk - deaths) / (nrisk * (nrisk - 1.0));
            for jg in 0..k {
                if self.risk[jg] == 0.0 {
                    continue;
                }
                let tmp = kt * self.risk[jg];
                self.var[jg * k + jg] += tmp;
                for kg in 0..k {
                    self.var[jg * k + kg] -= tmp * self.risk[kg] / nrisk;
                }
            }
        }
    }
}

/// The chi-square statistic and its degrees of freedom. Groups with no expected events carry no
/// information (R drops them); the generalised inverse then drops the first remaining group.
fn chisq_test(obs: &[f64], exp: &[f64], var: &[f64]) -> Result<(f64, usize)> {
    let k = obs.len();
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
    Ok((chisq, df))
}
