//! Shared survival helpers for [`crate::km`], [`crate::logrank`] and [`crate::cox`]: input checks,
//! R's `aeqSurv` time fix (survival 3.5-3, applied by `survfit`, `survdiff` and `coxph` through
//! `timefix = TRUE`), the single sort by time every estimator starts from, and the reference
//! distributions' tail probabilities.

use crate::{Result, StatsError};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// Times sorted once, ascending, after R's time fix.
pub(crate) struct SortedTimes {
    /// Row indices in ascending (fixed) time order; ties keep no particular order.
    pub order: Vec<u32>,
    /// `time[order[i]]` after the time fix, so equal-in-R times compare equal here.
    pub time: Vec<f64>,
}

/// Check the response shared by all estimators: same lengths, at least one row, finite
/// non-negative times. `what` names the estimator in messages.
pub(crate) fn check_response(what: &str, time: &[f64], event: &[bool]) -> Result<()> {
    if time.len() != event.len() {
        return Err(StatsError::new(format!(
            "{what}: the survival times ({}) and event indicators ({}) have different lengths",
            time.len(),
            event.len()
        )));
    }
    if time.is_empty() {
        return Err(StatsError::new(format!(
            "{what}: there are no observations"
        )));
    }
    if time.len() > u32::MAX as usize {
        return Err(StatsError::new(format!("{what}: too many observations")));
    }
    // A branch-free pass (it vectorises); the row is looked up only on failure.
    let bad = |t: &f64| !t.is_finite() || *t < 0.0;
    if time.iter().fold(false, |any, t| any | bad(t))
        && let Some(i) = time.iter().position(bad)
    {
        return Err(StatsError::new(format!(
            "{what}: survival time {} (row {}) is not a finite non-negative number",
            time[i],
            i + 1
        )));
    }
    Ok(())
}

/// Check a vector of codes `0..k` (groups or strata) against the number of rows.
pub(crate) fn check_codes(what: &str, name: &str, codes: &[usize], n: usize) -> Result<usize> {
    if codes.len() != n {
        return Err(StatsError::new(format!(
            "{what}: the {name} codes ({}) and survival times ({n}) have different lengths",
            codes.len()
        )));
    }
    Ok(codes.iter().copied().max().map_or(0, |m| m + 1))
}

/// Sort the (non-negative, finite) times ascending and apply R's `aeqSurv`: distinct times closer
/// than `sqrt(.Machine$double.eps)` (absolutely, or relative to the mean absolute unique time)
/// are merged into the smallest of them, so that e.g. `0.1 + 0.2` and `0.3` are one time, as in R.
pub(crate) fn sort_times(time: &[f64]) -> SortedTimes {
    // Non-negative finite doubles order like their bit patterns: sort plain integers, which is
    // several times faster than comparing floats through an index.
    let mut keyed: Vec<(u64, u32)> = time
        .iter()
        .enumerate()
        .map(|(i, t)| ((*t + 0.0).to_bits(), i as u32))
        .collect();
    radix_sort(&mut keyed);
    let order: Vec<u32> = keyed.iter().map(|k| k.1).collect();
    let mut sorted: Vec<f64> = keyed.iter().map(|k| f64::from_bits(k.0)).collect();
    drop(keyed);

    let tol = f64::EPSILON.sqrt();
    // mean(abs(unique times)), as aeqSurv divides by it.
    let (mut sum, mut count) = (0.0, 0usize);
    let mut any_close = false;
    for i in 0..sorted.len() {
        if i == 0 || sorted[i] != sorted[i - 1] {
            sum += sorted[i];
            count += 1;
            if i > 0 && sorted[i] - sorted[i - 1] <= tol {
                any_close = true;
            }
        }
    }
    let mut mean = sum / count as f64;
    if !mean.is_finite() {
        // The sum overflowed (times near f64::MAX; R sums in long double and does not): take the
        // mean of the unique times scaled down by their count instead. Found by the edge-case
        // tests (crates/stats/tests/edge_cases.rs): an infinite mean made every gap "relatively
        // close", merging all times into one.
        let c = count as f64;
        mean = 0.0;
        for i in 0..sorted.len() {
            if i == 0 || sorted[i] != sorted[i - 1] {
                mean += sorted[i] / c;
            }
        }
    }
    if !any_close && count > 1 {
        // Relative closeness can only matter when some gap is below tol * mean.
        let mut prev = sorted[0];
        for &t in &sorted[1..] {
            if t != prev && (t - prev) / mean <= tol {
                any_close = true;
                break;
            }
            prev = t;
        }
    }
    if any_close {
        // Walk the unique values: a value tied to its predecessor maps to the current cut.
        let mut cut = sorted[0];
        let mut prev_unique = sorted[0];
        for v in sorted.iter_mut() {
            let t = *v;
            if t != prev_unique {
                let dy = t - prev_unique;
                if !(dy <= tol || dy / mean <= tol) {
                    cut = t;
                }
                prev_unique = t;
            }
            *v = cut;
        }
    }
    SortedTimes {
        order,
        time: sorted,
    }
}

/// An order-preserving map of a (non-NaN) double to an integer key; -0 and 0 map alike.
pub(crate) fn sort_key(x: f64) -> u64 {
    let b = (x + 0.0).to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

/// Sort `(key, row)` pairs by key (LSD radix sort, 16-bit digits; digits on which every key
/// agrees are skipped). Linear time: the one sort by time is the largest cost of the Kaplan-Meier
/// and log-rank at a million rows.
pub(crate) fn radix_sort(v: &mut Vec<(u64, u32)>) {
    const BITS: usize = 16;
    const BUCKETS: usize = 1 << BITS;
    let n = v.len();
    if n < 256 {
        v.sort_unstable();
        return;
    }
    let mut counts = vec![0usize; 4 * BUCKETS];
    for &(k, _) in v.iter() {
        for d in 0..4 {
            counts[d * BUCKETS + ((k >> (d * BITS)) as usize & (BUCKETS - 1))] += 1;
        }
    }
    let mut buf: Vec<(u64, u32)> = vec![(0, 0); n];
    for d in 0..4 {
        let c = &mut counts[d * BUCKETS..(d + 1) * BUCKETS];
        if c.contains(&n) {
            continue; // every key has the same digit here
        }
        let mut sum = 0;
        for x in c.iter_mut() {
            let t = *x;
            *x = sum;
            sum += t;
        }
        for &e in v.iter() {
            let b = (e.0 >> (d * BITS)) as usize & (BUCKETS - 1);
            buf[c[b]] = e;
            c[b] += 1;
        }
        std::mem::swap(v, &mut buf);
    }
}

/// Stable partition of the sorted rows by `code` (counting sort): ascending code, time order kept
/// within each code. Returns the permuted rows and times and the start offset of each code
/// (length `k + 1`). With a single code the order is already right and is returned as is.
pub(crate) fn partition_by(
    sorted: SortedTimes,
    code: &[usize],
    k: usize,
) -> (Vec<u32>, Vec<f64>, Vec<usize>) {
    let (order, time) = (&sorted.order, &sorted.time);
    if k <= 1 {
        let start = if k == 0 {
            vec![0]
        } else {
            vec![0, order.len()]
        };
        return (sorted.order, sorted.time, start);
    }
    let mut start = vec![0usize; k + 1];
    for &r in order {
        start[code[r as usize] + 1] += 1;
    }
    for g in 0..k {
        start[g + 1] += start[g];
    }
    let mut next = start.clone();
    let mut rows = vec![0u32; order.len()];
    let mut times = vec![0.0; order.len()];
    for (i, &r) in order.iter().enumerate() {
        let g = code[r as usize];
        rows[next[g]] = r;
        times[next[g]] = time[i];
        next[g] += 1;
    }
    (rows, times, start)
}

/// Upper tail of the chi-square distribution, `pchisq(x, df, lower.tail = FALSE)`.
pub(crate) fn chisq_sf(x: f64, df: usize) -> Option<f64> {
    if df == 0 || !x.is_finite() {
        return None;
    }
    if x <= 0.0 {
        return Some(1.0);
    }
    ChiSquared::new(df as f64).ok().map(|d| d.sf(x))
}

/// Two-sided normal p-value, `2 * pnorm(-abs(z))`.
pub(crate) fn normal_two_sided(z: f64) -> f64 {
    2.0 * Normal::standard().sf(z.abs())
}

/// `qnorm(1 - (1 - level) / 2)`, the multiplier of a two-sided interval.
pub(crate) fn z_for_level(what: &str, level: f64) -> Result<f64> {
    if !(level > 0.0 && level < 1.0) {
        return Err(StatsError::new(format!(
            "{what}: the confidence level {level} is not between 0 and 1"
        )));
    }
    Ok(Normal::standard().inverse_cdf(1.0 - (1.0 - level) / 2.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_fix_merges_near_ties_like_aeqsurv() {
        let t = [0.3, 0.1 + 0.2, 1.0, 2.0, 2.0];
        let s = sort_times(&t);
        assert_eq!(s.time, vec![0.3, 0.3, 1.0, 2.0, 2.0]);
        // 0.1 + 0.2 = 0.30000000000000004 is the larger; both map to the smaller, 0.3.
        assert!(s.time[0] == 0.3 && s.time[1] == 0.3);
    }

    #[test]
    fn time_fix_leaves_distinct_times() {
        let t = [5.0, 1.0, 3.0, 1.0];
        let s = sort_times(&t);
        assert_eq!(s.time, vec![1.0, 1.0, 3.0, 5.0]);
        assert_eq!(s.order[2], 2);
        assert_eq!(s.order[3], 0);
    }

    #[test]
    fn radix_sort_orders_keys() {
        let xs: Vec<f64> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f64 * if i % 3 == 0 { -0.37 } else { 1.13 })
            .chain([0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, 1e300, -1e-300])
            .collect();
        let mut v: Vec<(u64, u32)> = xs
            .iter()
            .enumerate()
            .map(|(i, x)| (sort_key(*x), i as u32))
            .collect();
        radix_sort(&mut v);
        let sorted: Vec<f64> = v.iter().map(|e| xs[e.1 as usize]).collect();
        assert!(sorted.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(sort_key(0.0), sort_key(-0.0));
    }

    #[test]
    fn partition_is_stable() {
        let order = [3u32, 0, 2, 1];
        let time = [1.0, 2.0, 3.0, 4.0];
        let code = [1usize, 0, 1, 0];
        let sorted = SortedTimes {
            order: order.to_vec(),
            time: time.to_vec(),
        };
        let (rows, times, start) = partition_by(sorted, &code, 2);
        assert_eq!(rows, vec![3, 1, 0, 2]);
        assert_eq!(times, vec![1.0, 4.0, 2.0, 3.0]);
        assert_eq!(start, vec![0, 2, 4]);
    }
}
