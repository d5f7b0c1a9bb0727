//! Descriptive statistics as R reports them: `length`, `mean`, `sd` (divisor n - 1),
//! `quantile(type = 7)` for the median and quartiles, `min`, `max`; overall and by group.
//!
//! Values come as `Option<f64>` (`None` = missing) so the missing count is part of the result.

use crate::{Result, StatsError, finite};
use serde::Serialize;

/// Summary of one variable (overall or in one group). Statistics are `None` when not estimable
/// (no non-missing value; `sd` needs two).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Number of non-missing values.
    pub n: usize,
    /// Number of missing values.
    pub missing: usize,
    pub mean: Option<f64>,
    pub sd: Option<f64>,
    pub median: Option<f64>,
    /// First quartile, R's `quantile(x, 0.25, type = 7)`.
    pub q1: Option<f64>,
    /// Third quartile, R's `quantile(x, 0.75, type = 7)`.
    pub q3: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// Summary of one group, labelled by the caller.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSummary {
    pub level: String,
    #[serde(flatten)]
    pub summary: Summary,
}

/// Summary overall and per group, groups in the order of their labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Description {
    pub overall: Summary,
    pub groups: Vec<GroupSummary>,
}

/// Summarise one variable. Errors on an empty input or a non-finite value (a missing value is
/// `None`, not NaN).
pub fn summarize(values: &[Option<f64>]) -> Result<Summary> {
    if values.is_empty() {
        return Err(StatsError::new("no observations to describe"));
    }
    let mut x = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            if !v.is_finite() {
                return Err(StatsError::new(format!(
                    "value at row {} is not a finite number; mark missing values as missing",
                    i + 1
                )));
            }
            x.push(*v);
        }
    }
    Ok(summarize_present(&mut x, values.len()))
}

/// Summarise one variable by group: `group[i]` in `0..labels.len()` is the group of `values[i]`.
pub fn describe_by(
    values: &[Option<f64>],
    group: &[usize],
    labels: &[String],
) -> Result<Description> {
    if values.len() != group.len() {
        return Err(StatsError::new(format!(
            "{} values but {} group codes; give one group per value",
            values.len(),
            group.len()
        )));
    }
    if labels.is_empty() {
        return Err(StatsError::new("no group labels given"));
    }
    let overall = summarize(values)?;
    let mut per: Vec<Vec<Option<f64>>> = vec![Vec::new(); labels.len()];
    for (i, (&g, v)) in group.iter().zip(values).enumerate() {
        if g >= labels.len() {
            return Err(StatsError::new(format!(
                "group code {g} at row {} has no label ({} labels given)",
                i + 1,
                labels.len()
            )));
        }
        per[g].push(*v);
    }
    let groups = per
        .into_iter()
        .zip(labels)
        .map(|(v, level)| {
            let summary = if v.is_empty() {
                empty_summary()
            } else {
                summarize(&v)?
            };
            Ok(GroupSummary {
                level: level.clone(),
                summary,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Description { overall, groups })
}

/// The summary of no values (n = 0, every statistic not estimable).
pub fn empty_summary() -> Summary {
    Summary {
        n: 0,
        missing: 0,
        mean: None,
        sd: None,
        median: None,
        q1: None,
        q3: None,
        min: None,
        max: None,
    }
}

fn summarize_present(x: &mut [f64], total: usize) -> Summary {
    let n = x.len();
    let mut s = empty_summary();
    s.n = n;
    s.missing = total - n;
    if n == 0 {
        return s;
    }
    let m = mean(x);
    s.mean = finite(m);
    s.sd = variance(x, m).and_then(|v| finite(v.sqrt()));
    x.sort_by(f64::total_cmp);
    s.median = quantile_sorted(x, 0.5);
    s.q1 = quantile_sorted(x, 0.25);
    s.q3 = quantile_sorted(x, 0.75);
    s.min = x.first().copied();
    s.max = x.last().copied();
    s
}

/// Mean with R's refinement pass (`mean.default` adds the mean residual back), which keeps full
/// precision for values with a large common offset.
pub(crate) fn mean(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    m + x.iter().map(|v| v - m).sum::<f64>() / n
}

/// Sample variance (divisor n - 1) around a given mean; `None` for fewer than two values.
pub(crate) fn variance(x: &[f64], mean: f64) -> Option<f64> {
    if x.len() < 2 {
        return None;
    }
    Some(x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (x.len() - 1) as f64)
}

/// R's `quantile(x, p, type = 7)` of sorted, finite values: linear interpolation between order
/// statistics at position `1 + (n - 1) p`. `None` for empty input or `p` outside [0, 1].
pub fn quantile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 || !(0.0..=1.0).contains(&p) {
        return None;
    }
    let index = (n - 1) as f64 * p; // zero-based
    let lo = index.floor() as usize;
    let hi = index.ceil() as usize;
    let qs = sorted[lo];
    let h = index - lo as f64;
    // R interpolates only when the two order statistics differ, in this form.
    if h > 0.0 && sorted[hi] != qs {
        Some((1.0 - h) * qs + h * sorted[hi])
    } else {
        Some(qs)
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn quantiles_match_r_type_7() {
        // R: quantile(c(1, 2, 3, 4, 10), c(.25, .5, .75)) = 2, 3, 4
        let x = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert_eq!(quantile_sorted(&x, 0.25), Some(2.0));
        assert_eq!(quantile_sorted(&x, 0.5), Some(3.0));
        // R: quantile(c(1, 2, 3, 4), .25) = 1.75, median 2.5
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&x, 0.25), Some(1.75));
        assert_eq!(quantile_sorted(&x, 0.5), Some(2.5));
        assert_eq!(quantile_sorted(&[], 0.5), None);
    }

    #[test]
    fn summary_with_missing_and_single_value() {
        let s = summarize(&[Some(2.0), None, Some(4.0), None]).unwrap();
        assert_eq!((s.n, s.missing), (2, 2));
        assert_eq!(s.mean, Some(3.0));
        assert!((s.sd.unwrap() - 2f64.sqrt()).abs() < 1e-15);
        let s = summarize(&[Some(5.0)]).unwrap();
        assert_eq!(s.sd, None);
        assert_eq!(s.median, Some(5.0));
        let s = summarize(&[None]).unwrap();
        assert_eq!((s.n, s.mean), (0, None));
        assert!(summarize(&[]).is_err());
        assert!(summarize(&[Some(f64::NAN)]).is_err());
    }

    #[test]
    fn by_group_checks_codes() {
        let labels = vec!["a".to_string(), "b".to_string()];
        let d = describe_by(&[Some(1.0), Some(2.0), Some(3.0)], &[0, 1, 1], &labels).unwrap();
        assert_eq!(d.groups[1].summary.mean, Some(2.5));
        assert!(describe_by(&[Some(1.0)], &[2], &labels).is_err());
        assert!(describe_by(&[Some(1.0)], &[0, 1], &labels).is_err());
    }
}
