//! Kaplan-Meier estimator, reproducing R's `survfit(Surv(time, status) ~ group)` (survival 3.5-3,
//! `survfitKM` with `stype = 1`, `ctype = 1`): the product-limit survival, Greenwood's variance of
//! the cumulative hazard (`std.err`, on the log scale), confidence limits as `survfit_confint`,
//! medians as `print.survfit` (`survmean`'s `minmin`), and survival at chosen times as
//! `summary(fit, times = )`.
//!
//! Formulas: S(t) = prod (1 - d_i / n_i); Var(-log S) = sum d_i / (n_i (n_i - d_i)) (Greenwood);
//! see Therneau & Grambsch (2000), section 2.1, and the survival package's `survfitkm.c`.

use crate::surv::{check_codes, check_response, partition_by, sort_times, z_for_level};
use crate::{Result, StatsError, finite};
use serde::Serialize;

/// Transformation on which the pointwise confidence interval is symmetric (R's `conf.type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum ConfType {
    /// `exp(log S ± z se)`, R's default.
    #[default]
    #[serde(rename = "log")]
    Log,
    /// `exp(-exp(log(-log S) ± z se / log S))`.
    #[serde(rename = "log-log")]
    LogLog,
    /// `S ± z S se`, clipped to [0, 1].
    #[serde(rename = "plain")]
    Plain,
}

/// Options of [`kaplan_meier`].
#[derive(Clone, Debug)]
pub struct KmOptions {
    pub conf_type: ConfType,
    /// Two-sided confidence level of the pointwise intervals, in (0, 1); R's `conf.int`.
    pub conf_level: f64,
    /// Times for [`KmGroup::at`], as `summary(fit, times = )`: sorted ascending, non-finite dropped.
    pub times: Vec<f64>,
    /// R's `extend`: when false (R's default) times after a group's last follow-up are dropped;
    /// when true they are kept with that group's last survival and 0 at risk.
    pub extend: bool,
}

impl Default for KmOptions {
    fn default() -> Self {
        KmOptions {
            conf_type: ConfType::Log,
            conf_level: 0.95,
            times: Vec::new(),
            extend: false,
        }
    }
}

/// Kaplan-Meier curves, one per group.
#[derive(Clone, Debug, Serialize)]
pub struct KaplanMeier {
    pub conf_type: ConfType,
    pub conf_level: f64,
    pub groups: Vec<KmGroup>,
}

/// One group's curve.
#[derive(Clone, Debug, Serialize)]
pub struct KmGroup {
    pub level: String,
    pub n: usize,
    pub events: usize,
    /// First time the curve is at or below 0.5 (midpoint rule when it is flat at exactly 0.5);
    /// `None` when not reached.
    pub median: Option<f64>,
    /// The same for the lower confidence limit curve.
    pub median_lower: Option<f64>,
    /// The same for the upper confidence limit curve.
    pub median_upper: Option<f64>,
    /// One row per distinct time (event or censoring).
    pub table: Vec<KmRow>,
    /// Survival at [`KmOptions::times`].
    pub at: Vec<KmAt>,
}

/// A row of `survfit`'s table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KmRow {
    pub time: f64,
    pub n_risk: usize,
    pub n_event: usize,
    pub n_censor: usize,
    pub surv: f64,
    /// Greenwood standard error of the cumulative hazard -log S (R's `std.err`); `None` once the
    /// curve reaches 0.
    pub std_err_log: Option<f64>,
    /// Standard error of S, `surv * std_err_log`.
    pub std_err: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

/// Survival at a requested time, as `summary(fit, times = )`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KmAt {
    pub time: f64,
    /// Number at risk at `time` (followed up to at least `time`).
    pub n_risk: usize,
    pub surv: f64,
    /// Standard error of S.
    pub std_err: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

/// Kaplan-Meier curves of `time` (follow-up, finite, >= 0) and `event` (true = event, false =
/// censored) in groups `group[i]` in `0..labels.len()`. For one curve pass all zeros and one label
/// (R calls it "all"). Every group must have at least one row.
pub fn kaplan_meier<S: AsRef<str>>(
    time: &[f64],
    event: &[bool],
    group: &[usize],
    labels: &[S],
    options: &KmOptions,
) -> Result<KaplanMeier> {
    const WHAT: &str = "Kaplan-Meier";
    check_response(WHAT, time, event)?;
    let k = check_codes(WHAT, "group", group, time.len())?;
    if labels.is_empty() {
        return Err(StatsError::new(format!(
            "{WHAT}: no group labels were given"
        )));
    }
    if k > labels.len() {
        return Err(StatsError::new(format!(
            "{WHAT}: group code {} has no label ({} labels given)",
            k - 1,
            labels.len()
        )));
    }
    let z = z_for_level(WHAT, options.conf_level)?;
    let k = labels.len();

    let sorted = sort_times(time);
    let (rows, times, start) = partition_by(sorted, group, k);

    let mut requested: Vec<f64> = options
        .times
        .iter()
        .copied()
        .filter(|t| t.is_finite())
        .collect();
    requested.sort_by(f64::total_cmp);

    let mut groups = Vec::with_capacity(k);
    for g in 0..k {
        let (a, b) = (start[g], start[g + 1]);
        if a == b {
            return Err(StatsError::new(format!(
                "{WHAT}: group \"{}\" has no observations",
                labels[g].as_ref()
            )));
        }
        let table = km_table(&rows[a..b], &times[a..b], event, z, options.conf_type);
        let events = table.iter().map(|r| r.n_event).sum();
        let median = minmin(table.iter().map(|r| (r.time, Some(r.surv))));
        let median_lower = minmin(table.iter().map(|r| (r.time, r.lower)));
        let median_upper = minmin(table.iter().map(|r| (r.time, r.upper)));
        let mut km = KmGroup {
            level: labels[g].as_ref().to_string(),
            n: b - a,
            events,
            median,
            median_lower,
            median_upper,
            table,
            at: Vec::new(),
        };
        km.at = km.summary_at(&requested, options.extend);
        groups.push(km);
    }
    Ok(KaplanMeier {
        conf_type: options.conf_type,
        conf_level: options.conf_level,
        groups,
    })
}

/// The product-limit table of one group; `rows`/`times` are its rows in ascending time.
fn km_table(rows: &[u32], times: &[f64], event: &[bool], z: f64, conf: ConfType) -> Vec<KmRow> {
    let n = rows.len();
    let mut table = Vec::new();
    let (mut surv, mut varhaz) = (1.0f64, 0.0f64);
    let mut i = 0;
    while i < n {
        let t = times[i];
        let mut d = 0usize;
        let mut j = i;
        while j < n && times[j] == t {
            d += usize::from(event[rows[j] as usize]);
            j += 1;
        }
        let at_risk = n - i;
        if d > 0 {
            let (nr, df) = (at_risk as f64, d as f64);
            surv *= (nr - df) / nr;
            // Greenwood; infinite once everyone at risk fails (then S = 0 and nothing is defined).
            varhaz += df / (nr * (nr - df));
        }
        let se = varhaz.sqrt();
        let (lower, upper) = conf_limits(surv, se, z, conf);
        table.push(KmRow {
            time: t,
            n_risk: at_risk,
            n_event: d,
            n_censor: (j - i) - d,
            surv,
            std_err_log: finite(se),
            std_err: finite(surv * se),
            lower,
            upper,
        });
        i = j;
    }
    table
}

/// R's `survfit_confint` with `logse = TRUE`: `p` the survival, `se` the SE of -log p.
fn conf_limits(p: f64, se: f64, z: f64, conf: ConfType) -> (Option<f64>, Option<f64>) {
    match conf {
        ConfType::Plain => {
            let se2 = se * p * z;
            // R's pmax/pmin propagate NaN (0 * Inf once S = 0), Rust's max/min would not.
            if !se2.is_finite() {
                return (None, None);
            }
            (Some((p - se2).max(0.0)), Some((p + se2).min(1.0)))
        }
        ConfType::Log => {
            if p == 0.0 {
                return (None, None);
            }
            let se2 = z * se;
            let lower = (p.ln() - se2).exp();
            let upper = (p.ln() + se2).exp().min(1.0);
            (finite(lower), finite(upper))
        }
        ConfType::LogLog => {
            if p == 0.0 || p == 1.0 {
                return (None, None);
            }
            let se2 = z * se / p.ln();
            let ll = (-p.ln()).ln();
            let lower = (-(ll - se2).exp()).exp();
            let upper = (-(ll + se2).exp()).exp();
            (finite(lower), finite(upper))
        }
    }
}

/// `survmean`'s `minmin` (used by `print.survfit`): the first time the curve is below 0.5 + tol;
/// when it sits at 0.5 (within tol) there and drops later, the midpoint of that time and the time
/// of the next drop. Missing values (undefined limits) are skipped.
fn minmin(curve: impl Iterator<Item = (f64, Option<f64>)>) -> Option<f64> {
    let tol = f64::EPSILON.sqrt();
    let mut first: Option<(f64, f64)> = None;
    for (t, y) in curve {
        let Some(y) = y else { continue };
        match first {
            None => {
                if y < 0.5 + tol {
                    if (y - 0.5).abs() >= tol {
                        return Some(t);
                    }
                    first = Some((t, y));
                }
            }
            Some((t0, y0)) => {
                if y < y0 {
                    return Some((t0 + t) / 2.0);
                }
            }
        }
    }
    first.map(|(t0, _)| t0)
}

impl KmGroup {
    /// Survival at `times` exactly as `summary(fit, times = times, extend = extend)` for this
    /// group: times are sorted, non-finite ones dropped, and (unless `extend`) times after the
    /// last follow-up dropped. Before the first time the curve is 1 with SE 0 and limits 1 (R's
    /// `survfit0` row at time 0). R stops with an error when no time is left for a curve; this
    /// returns an empty vector instead.
    pub fn summary_at(&self, times: &[f64], extend: bool) -> Vec<KmAt> {
        let mut ts: Vec<f64> = times.iter().copied().filter(|t| t.is_finite()).collect();
        ts.sort_by(f64::total_cmp);
        let Some(last) = self.table.last() else {
            return Vec::new();
        };
        let max_time = last.time;
        let starts_at_zero = self.table[0].time == 0.0;
        ts.into_iter()
            .filter(|&t| extend || t <= max_time)
            .map(|t| {
                // Last row at or before t (R's findInterval on survfit0's times).
                let idx = self.table.partition_point(|r| r.time <= t);
                let n_risk = self.n_risk_at(t);
                if idx == 0 {
                    // Before the first time: survfit0's added row, or the time-0 row itself
                    // when the data start at 0 (findInterval gives 0, R uses row 1).
                    if starts_at_zero {
                        let r = &self.table[0];
                        return KmAt {
                            time: t,
                            n_risk,
                            surv: r.surv,
                            std_err: r.std_err,
                            lower: r.lower,
                            upper: r.upper,
                        };
                    }
                    return KmAt {
                        time: t,
                        n_risk,
                        surv: 1.0,
                        std_err: Some(0.0),
                        lower: Some(1.0),
                        upper: Some(1.0),
                    };
                }
                let r = &self.table[idx - 1];
                KmAt {
                    time: t,
                    n_risk,
                    surv: r.surv,
                    std_err: r.std_err,
                    lower: r.lower,
                    upper: r.upper,
                }
            })
            .collect()
    }

    /// Number at risk at time `t` (followed up to at least `t`), as in `summary(fit, times = t)`
    /// and the risk table under a survival figure: the group size at or before the first time,
    /// 0 after the last.
    pub fn n_risk_at(&self, t: f64) -> usize {
        let idx = self.table.partition_point(|r| r.time < t);
        self.table.get(idx).map_or(0, |r| r.n_risk)
    }

    /// Times with at least one censoring, for the censor marks of a figure.
    pub fn censor_times(&self) -> Vec<f64> {
        self.table
            .iter()
            .filter(|r| r.n_censor > 0)
            .map(|r| r.time)
            .collect()
    }

    /// Survival S(t) of the step function (right-continuous), 1 before the first event.
    pub fn surv_at(&self, t: f64) -> f64 {
        let idx = self.table.partition_point(|r| r.time <= t);
        if idx == 0 {
            1.0
        } else {
            self.table[idx - 1].surv
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minmin_rules() {
        let c = |v: &[(f64, f64)]| minmin(v.iter().map(|&(t, y)| (t, Some(y))));
        assert_eq!(c(&[(1.0, 0.8), (2.0, 0.4)]), Some(2.0));
        assert_eq!(
            c(&[(1.0, 0.8), (2.0, 0.5), (3.0, 0.5), (4.0, 0.25)]),
            Some(3.0)
        );
        // flat at 0.5 to the end: print.survfit keeps the first time
        assert_eq!(c(&[(1.0, 0.8), (2.0, 0.5), (3.0, 0.5)]), Some(2.0));
        assert_eq!(c(&[(1.0, 0.8), (2.0, 0.6)]), None);
    }
}
