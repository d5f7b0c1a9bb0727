//! `bootstrap`: a percentile bootstrap confidence interval for a two-group survival contrast, the
//! difference in Kaplan-Meier median survival or in survival at a time, where no closed-form
//! interval is standard.
//!
//! Resampling is stratified by group (each replicate draws, with replacement, as many patients
//! from each group as it has; R's `boot(..., strata = group)`), so every replicate compares two
//! groups of the original sizes. Replicate b draws from its own ChaCha8 stream (the study's seed
//! mixed with the block id, stream b): the result does not depend on the number of threads, and
//! adding a block elsewhere never changes this block's replicates. A median that a resample does
//! not reach is infinitely late, not missing: dropping those replicates would bias the interval
//! towards short survival. So the contrast is then +-infinity and sorts to its end, and a limit
//! that falls among such replicates is itself not reached. A contrast with no value at all (both
//! medians unreached; survival at a time after a resample's follow-up ends) is counted and left out.
//!
//! Hand-written rather than calling the KM kernel per replicate: a replicate is a vector of counts
//! over the original rows, so one pre-sorted pass with weights gives its curve in O(n) without
//! building a table (a million replicates of a 126-patient cohort take about a second).

use serde::Deserialize;
use serde_json::{Value, json};

use super::columns::{CompleteCases, MissingPolicy};
use super::survival::{codes_in, codes_missing, group_column, response, response_missing};
use super::{BlockEnv, Output};
use crate::diagnostics::Diagnostic;
use crate::random::Draws;

type R<T> = std::result::Result<T, Diagnostic>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BootstrapSpec {
    #[allow(dead_code)]
    id: String,
    #[allow(dead_code)]
    kind: String,
    data: String,
    /// What to do with rows whose analysis variables are missing.
    #[serde(default)]
    missing: MissingPolicy,
    time: String,
    event: String,
    /// Exactly two groups; the contrast is the second level minus the first.
    by: String,
    levels: Option<Vec<String>>,
    statistic: Statistic,
    /// The time of `survival_difference`.
    at: Option<f64>,
    #[serde(default = "default_replicates")]
    replicates: u64,
    #[serde(default = "default_conf_level")]
    conf_level: f64,
}

fn default_replicates() -> u64 {
    2000
}

fn default_conf_level() -> f64 {
    0.95
}

#[derive(Deserialize, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    /// Median survival of the second group minus that of the first.
    MedianDifference,
    /// Survival at `at` of the second group minus that of the first.
    SurvivalDifference,
}

/// One group's rows, sorted by time, with each row's index among the group's distinct times.
pub struct SortedGroup {
    times: Vec<f64>,
    /// Per row (in the group's original order): its distinct-time index.
    slot: Vec<usize>,
    event: Vec<bool>,
}

impl SortedGroup {
    pub fn new(time: &[f64], event: &[bool]) -> SortedGroup {
        let mut times: Vec<f64> = time.to_vec();
        times.sort_by(f64::total_cmp);
        times.dedup();
        let slot = time
            .iter()
            .map(|t| times.partition_point(|x| x < t))
            .collect();
        SortedGroup {
            times,
            slot,
            event: event.to_vec(),
        }
    }

    fn len(&self) -> usize {
        self.slot.len()
    }

    /// The statistic of the curve of the rows weighted by `counts` (how often each row was drawn;
    /// all ones for the original sample). `deaths`/`leaving` are scratch space per distinct time.
    fn statistic(
        &self,
        counts: &[u32],
        statistic: Statistic,
        at: f64,
        deaths: &mut Vec<f64>,
        leaving: &mut Vec<f64>,
    ) -> Option<f64> {
        deaths.clear();
        deaths.resize(self.times.len(), 0.0);
        leaving.clear();
        leaving.resize(self.times.len(), 0.0);
        let mut at_risk = 0.0;
        for ((&slot, &event), &c) in self.slot.iter().zip(&self.event).zip(counts) {
            let c = c as f64;
            leaving[slot] += c;
            at_risk += c;
            if event {
                deaths[slot] += c;
            }
        }
        // The product-limit curve over the distinct times present in the sample, with the median
        // rule of R's print.survfit (`minmin`): the first time S <= 0.5, or, where S is exactly
        // 0.5 over an interval, the midpoint of its start and the next drop.
        let tol = f64::EPSILON.sqrt();
        let mut surv = 1.0;
        let mut flat_half: Option<f64> = None;
        let mut last_time = f64::NEG_INFINITY;
        let mut surv_at = None;
        for (i, &t) in self.times.iter().enumerate() {
            if leaving[i] == 0.0 {
                continue;
            }
            let before = surv;
            if deaths[i] > 0.0 {
                surv *= 1.0 - deaths[i] / at_risk;
            }
            at_risk -= leaving[i];
            match statistic {
                Statistic::MedianDifference => {
                    if let Some(t0) = flat_half {
                        if surv < before {
                            return Some((t0 + t) / 2.0);
                        }
                    } else if surv < 0.5 + tol {
                        if (surv - 0.5).abs() >= tol {
                            return Some(t);
                        }
                        flat_half = Some(t);
                    }
                }
                Statistic::SurvivalDifference => {
                    if t > at {
                        return surv_at.or(Some(1.0));
                    }
                    surv_at = Some(surv);
                }
            }
            last_time = t;
        }
        match statistic {
            Statistic::MedianDifference => flat_half,
            // Follow-up ended at or before `at`: known only if it ended exactly there or the
            // curve reached 0.
            Statistic::SurvivalDifference => surv_at.filter(|&s| last_time >= at || s <= 0.0),
        }
    }
}

/// What [`bootstrap`] computes.
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapResult {
    /// The contrast on the original data.
    pub estimate: Option<f64>,
    /// Replicates where the contrast was defined (finite or, a median not reached, infinite).
    pub defined: usize,
    /// Of those, replicates where one group's median was not reached (an infinite contrast).
    pub not_reached: usize,
    /// Mean of the finite replicates minus the estimate.
    pub bias: Option<f64>,
    /// Standard deviation of the finite replicates (n - 1 denominator).
    pub se: Option<f64>,
    /// Percentile interval: R's `quantile(type = 7)` of the defined replicates at (1 -+ level) / 2;
    /// `None` where the limit falls among infinite replicates (not reached).
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// Each group's statistic on the original data.
    pub by_group: [Option<f64>; 2],
}

/// Bootstrap the contrast `groups[1] - groups[0]` over `replicates` stratified resamples.
pub fn bootstrap(
    groups: &[SortedGroup; 2],
    statistic: Statistic,
    at: f64,
    replicates: usize,
    conf_level: f64,
    seed: u64,
) -> BootstrapResult {
    let (mut deaths, mut leaving) = (Vec::new(), Vec::new());
    let original = |g: &SortedGroup, d: &mut Vec<f64>, l: &mut Vec<f64>| {
        g.statistic(&vec![1; g.len()], statistic, at, d, l)
    };
    let by_group = [
        original(&groups[0], &mut deaths, &mut leaving),
        original(&groups[1], &mut deaths, &mut leaving),
    ];
    let estimate = contrast(statistic, by_group[0], by_group[1]).filter(|d| d.is_finite());

    // Replicates in fixed chunks over the available cores; each replicate's value depends only on
    // its index, so the vector is the same whatever the thread count.
    let mut values: Vec<Option<f64>> = vec![None; replicates];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = replicates.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        for (c, slots) in values.chunks_mut(chunk).enumerate() {
            scope.spawn(move || {
                let (mut deaths, mut leaving) = (Vec::new(), Vec::new());
                let mut counts: [Vec<u32>; 2] =
                    [vec![0; groups[0].len()], vec![0; groups[1].len()]];
                for (k, slot) in slots.iter_mut().enumerate() {
                    let b = (c * chunk + k) as u64;
                    let mut draws = Draws::new(seed, b);
                    let mut stat = [None, None];
                    for (g, group) in groups.iter().enumerate() {
                        let n = group.len();
                        counts[g].iter_mut().for_each(|x| *x = 0);
                        for _ in 0..n {
                            counts[g][draws.below(n)] += 1;
                        }
                        stat[g] =
                            group.statistic(&counts[g], statistic, at, &mut deaths, &mut leaving);
                    }
                    *slot = contrast(statistic, stat[0], stat[1]);
                }
            });
        }
    });
    let mut defined: Vec<f64> = values.into_iter().flatten().collect();
    defined.sort_by(f64::total_cmp);
    let finite: Vec<f64> = defined.iter().copied().filter(|x| x.is_finite()).collect();
    let n = finite.len();
    let mean = (n > 0).then(|| finite.iter().sum::<f64>() / n as f64);
    let se = mean
        .filter(|_| n > 1)
        .map(|m| (finite.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
    let alpha = (1.0 - conf_level) / 2.0;
    BootstrapResult {
        estimate,
        defined: defined.len(),
        not_reached: defined.len() - n,
        bias: mean.zip(estimate).map(|(m, e)| m - e),
        se,
        lower: quantile7(&defined, alpha),
        upper: quantile7(&defined, 1.0 - alpha),
        by_group,
    }
}

/// The contrast of the two groups' statistics, second minus first. A median not reached is
/// infinitely late; with both unreached (or a survival undefined) there is no contrast.
fn contrast(statistic: Statistic, first: Option<f64>, second: Option<f64>) -> Option<f64> {
    match statistic {
        Statistic::MedianDifference => {
            let d = second.unwrap_or(f64::INFINITY) - first.unwrap_or(f64::INFINITY);
            (!d.is_nan()).then_some(d)
        }
        Statistic::SurvivalDifference => first.zip(second).map(|(a, b)| b - a),
    }
}

/// R's default `quantile(x, p, type = 7)` of sorted `x`; `None` when it would involve an
/// infinite value (a limit that is not reached).
pub fn quantile7(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let h = (n - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let frac = h - lo as f64;
    let (a, b) = (sorted[lo], sorted[hi]);
    if !a.is_finite() || (frac > 0.0 && !b.is_finite()) {
        return None;
    }
    Some(if frac > 0.0 { a + frac * (b - a) } else { a })
}

/// The block's random numbers: the study's seed mixed with the block id (FNV-1a), so each block
/// has its own and adding one never shifts another's.
fn block_seed(seed: u64, id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    seed ^ h
}

/// Replicates within the limit, the confidence level, and `at` (only for a survival
/// difference, where it is required); returns `at` (NaN for a median difference).
fn check_options(env: &BlockEnv, spec: &BootstrapSpec) -> R<f64> {
    let limit = env.settings.limits.bootstrap_replicates;
    if spec.replicates == 0 {
        return Err(env.error("replicates", "`replicates` must be at least 1"));
    }
    if spec.replicates > limit {
        return Err(env
            .error(
                "replicates",
                format!(
                    "asks for {} replicates, more than the limit of {limit} (`bootstrap_replicates`)",
                    spec.replicates
                ),
            )
            .hint("2,000 replicates give a 95% percentile interval to about two decimals; if more are needed, raise bootstrap_replicates under [limits] in study.toml (time grows with replicates x patients)"));
    }
    if !(spec.conf_level > 0.0 && spec.conf_level < 1.0) {
        return Err(env.error(
            "conf_level",
            format!(
                "`conf_level` must be between 0 and 1 (got {})",
                spec.conf_level
            ),
        ));
    }
    let at = match (spec.statistic, spec.at) {
        (Statistic::SurvivalDifference, Some(at)) if at.is_finite() && at >= 0.0 => at,
        (Statistic::SurvivalDifference, Some(at)) => {
            return Err(env.error("at", format!("`at` must be a time >= 0 (got {at})")));
        }
        (Statistic::SurvivalDifference, None) => {
            return Err(env.error(
                "statistic",
                "`survival_difference` needs `at`, the time to compare survival at (e.g. at = 60)",
            ));
        }
        (Statistic::MedianDifference, Some(_)) => {
            return Err(env.error("at", "`at` is only for statistic = \"survival_difference\""));
        }
        (Statistic::MedianDifference, None) => f64::NAN,
    };
    Ok(at)
}

/// Warnings about replicates without a contrast and limits that are not reached.
fn replicate_warnings(spec: &BootstrapSpec, result: &BootstrapResult) -> Vec<String> {
    let mut warnings = Vec::new();
    if result.defined < spec.replicates as usize {
        warnings.push(format!(
            "the contrast was undefined in {} of {} replicates ({}); the interval uses the other {}",
            spec.replicates as usize - result.defined,
            spec.replicates,
            match spec.statistic {
                Statistic::MedianDifference => "neither median reached",
                Statistic::SurvivalDifference => "follow-up ending before `at`",
            },
            result.defined
        ));
    }
    if result.estimate.is_some() && (result.lower.is_none() || result.upper.is_none()) {
        warnings.push(format!(
            "a limit of the interval is not reached: in {} of {} replicates a group's median was not reached",
            result.not_reached, spec.replicates
        ));
    }
    warnings
}

/// `bootstrap`: the block.
pub fn run(env: &BlockEnv) -> R<Output> {
    let spec: BootstrapSpec = env.block.parse_spec()?;
    let data = env.dataset(&spec.data)?;
    let at = check_options(env, &spec)?;
    let (times, events) = response(env, data, &spec.time, &spec.event)?;
    let (labels, codes) = group_column(env, data, &spec.by, "by", spec.levels.as_deref())?;
    let mut used = response_missing(&spec.time, &spec.event, &times, &events);
    used.push(codes_missing(&spec.by, &codes));
    let cases = CompleteCases::select(env, data.n_rows, &used, spec.missing)?;
    drop(used);
    let rows = &cases.rows;
    if labels.len() != 2 {
        return Err(env.error(
            "by",
            format!(
                "a bootstrap contrast compares exactly two groups, but `{}` has {} ({}); give `levels` with the two to compare",
                spec.by,
                labels.len(),
                labels.join(", ")
            ),
        ));
    }
    let group = codes_in(env, &spec.by, "by", &labels, &codes, rows)?;
    let sorted: [SortedGroup; 2] = [0, 1].map(|g| {
        let (t, e): (Vec<f64>, Vec<bool>) = rows
            .iter()
            .zip(&group)
            .filter(|&(_, &c)| c == g)
            .map(|(&r, _)| (times[r].unwrap_or(0.0), events[r].unwrap_or(false)))
            .unzip();
        SortedGroup::new(&t, &e)
    });
    let seed = block_seed(env.settings.seed, &env.block.id);
    let result = bootstrap(
        &sorted,
        spec.statistic,
        at,
        spec.replicates as usize,
        spec.conf_level,
        seed,
    );
    let statistic = match spec.statistic {
        Statistic::MedianDifference => "median_difference",
        Statistic::SurvivalDifference => "survival_difference",
    };
    let mut by_level = serde_json::Map::new();
    for (g, label) in labels.iter().enumerate() {
        by_level.insert(
            label.clone(),
            json!({"n": sorted[g].len(), "value": result.by_group[g]}),
        );
    }
    let mut value = json!({
        "statistic": statistic,
        "levels": labels,
        "estimate": result.estimate,
        "ci": [result.lower, result.upper],
        "lower": result.lower,
        "upper": result.upper,
        "se": result.se,
        "bias": result.bias,
        "conf_level": spec.conf_level,
        "replicates": spec.replicates,
        "defined": result.defined,
        "not_reached": result.not_reached,
        "undefined": spec.replicates as usize - result.defined,
        "by_level": Value::Object(by_level),
        "n": rows.len(),
    });
    if spec.statistic == Statistic::SurvivalDifference {
        value["at"] = json!(at);
    }
    cases.record(&mut value);
    let mut output = Output::value(value);
    output.warnings.extend(cases.warning(spec.missing));
    output.warnings.extend(replicate_warnings(&spec, &result));
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(t: &[f64], e: &[bool]) -> SortedGroup {
        SortedGroup::new(t, e)
    }

    fn original(g: &SortedGroup, s: Statistic, at: f64) -> Option<f64> {
        g.statistic(&vec![1; g.len()], s, at, &mut Vec::new(), &mut Vec::new())
    }

    #[test]
    fn median_follows_print_survfit() {
        // 4 events: S = .75, .5 (flat to 3), .25 -> midpoint of 2 and 3.
        let g = group(&[1.0, 2.0, 3.0, 4.0], &[true; 4]);
        assert_eq!(
            original(&g, Statistic::MedianDifference, f64::NAN),
            Some(2.5)
        );
        // Censored at 3 and 4 after S = .5 at 2: flat to the end, the first time is kept.
        let g = group(&[1.0, 2.0, 3.0, 4.0], &[true, true, false, false]);
        assert_eq!(
            original(&g, Statistic::MedianDifference, f64::NAN),
            Some(2.0)
        );
        // Never at or below 0.5: not reached.
        let g = group(&[1.0, 2.0, 3.0], &[true, false, false]);
        assert_eq!(original(&g, Statistic::MedianDifference, f64::NAN), None);
    }

    #[test]
    fn survival_at_a_time_is_the_step_function() {
        let g = group(&[1.0, 2.0, 3.0, 4.0], &[true, false, true, false]);
        let at = |t| original(&g, Statistic::SurvivalDifference, t);
        assert_eq!(at(0.5), Some(1.0));
        assert_eq!(at(1.0), Some(0.75));
        assert_eq!(at(2.5), Some(0.75));
        assert_eq!(at(3.0), Some(0.375));
        assert_eq!(at(4.0), Some(0.375));
        assert_eq!(at(9.0), None); // follow-up ended above 0
        let dead = group(&[1.0, 2.0], &[true, true]);
        assert_eq!(
            original(&dead, Statistic::SurvivalDifference, 9.0),
            Some(0.0)
        );
    }

    #[test]
    fn quantile_type_7() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile7(&x, 0.0), Some(1.0));
        assert_eq!(quantile7(&x, 1.0), Some(4.0));
        assert_eq!(quantile7(&x, 0.5), Some(2.5));
        let inf = [f64::NEG_INFINITY, 1.0, 2.0, f64::INFINITY];
        assert_eq!(quantile7(&inf, 0.0), None);
        assert_eq!(quantile7(&inf, 0.2), None);
        assert_eq!(quantile7(&inf, 1.0 / 3.0), Some(1.0));
        assert_eq!(quantile7(&inf, 0.5), Some(1.5));
        assert_eq!(quantile7(&inf, 0.9), None);
        assert!((quantile7(&x, 0.1).unwrap() - 1.3).abs() < 1e-12);
    }

    /// Group A = {1, 2, 3}, all events: a resample's KM median is its second order statistic,
    /// whose exact bootstrap law is P(1) = P(3) = 7/27, P(2) = 13/27. Group B is constant (median
    /// 10). So the contrast is 9, 8, 7 with probabilities 7/27, 13/27, 7/27: mean 8, SD
    /// sqrt(14/27), quartiles 7 and 9. Monte Carlo error at 200,000 replicates is ~0.002.
    #[test]
    fn matches_the_exact_bootstrap_distribution() {
        let a = group(&[1.0, 2.0, 3.0], &[true; 3]);
        let b = group(&[10.0, 10.0, 10.0], &[true; 3]);
        let r = bootstrap(
            &[a, b],
            Statistic::MedianDifference,
            f64::NAN,
            200_000,
            0.5,
            42,
        );
        assert_eq!(r.estimate, Some(8.0));
        assert_eq!(r.defined, 200_000);
        assert!(r.bias.unwrap().abs() < 0.01, "{r:?}");
        assert!(
            (r.se.unwrap() - (14.0f64 / 27.0).sqrt()).abs() < 0.01,
            "{r:?}"
        );
        assert_eq!((r.lower, r.upper), (Some(7.0), Some(9.0)));
    }

    /// Survival at 1.5 of A = {1, 2, 3} (events) is 1 - K/3 with K ~ Binomial(3, 1/3) draws of
    /// the 1; B = {5, 5} (censored) survives to 1.5 with probability 1. The contrast K/3 has
    /// mean 1/3 (the estimate: no bias) and SD sqrt(2/27).
    #[test]
    fn survival_difference_matches_its_binomial_law() {
        let a = group(&[1.0, 2.0, 3.0], &[true; 3]);
        let b = group(&[5.0, 5.0], &[false; 2]);
        let r = bootstrap(
            &[a, b],
            Statistic::SurvivalDifference,
            1.5,
            200_000,
            0.95,
            7,
        );
        assert!((r.estimate.unwrap() - (1.0 - 2.0 / 3.0)).abs() < 1e-15);
        assert!((r.bias.unwrap()).abs() < 0.005, "{r:?}");
        assert!(
            (r.se.unwrap() - (2.0f64 / 27.0).sqrt()).abs() < 0.005,
            "{r:?}"
        );
        // The contrast is K/3: P(0) = 8/27 and P(1) = 1/27, both above 2.5%: limits 0 and 1.
        assert_eq!((r.lower, r.upper), (Some(0.0), Some(1.0)));
    }

    /// A = {1 (death), 5 (censored)}: a resample's median is 1 unless both draws are the 5 (prob
    /// 1/4), when it is not reached. B's median is always 10. The contrast is 9 with probability
    /// 3/4 and -infinity with 1/4: the lower 2.5% limit is not reached, the upper is 9.
    #[test]
    fn unreached_medians_are_infinitely_late_not_dropped() {
        let a = group(&[1.0, 5.0], &[true, false]);
        let b = group(&[10.0, 10.0], &[true, true]);
        let r = bootstrap(
            &[a, b],
            Statistic::MedianDifference,
            f64::NAN,
            20_000,
            0.95,
            11,
        );
        assert_eq!(r.estimate, Some(9.0));
        assert_eq!(r.defined, 20_000);
        // 5,000 expected; binomial SD 61.
        assert!((r.not_reached as f64 - 5000.0).abs() < 250.0, "{r:?}");
        assert_eq!((r.lower, r.upper), (None, Some(9.0)));
        // Finite replicates are all 9.
        assert_eq!((r.se, r.bias), (Some(0.0), Some(0.0)));
        // Both unreached: no contrast at all.
        let never = || group(&[5.0, 6.0], &[false, false]);
        let r = bootstrap(
            &[never(), never()],
            Statistic::MedianDifference,
            f64::NAN,
            100,
            0.95,
            1,
        );
        assert_eq!((r.estimate, r.defined, r.lower), (None, 0, None));
    }

    #[test]
    fn the_same_seed_gives_the_same_interval_and_another_seed_another() {
        let mk = || {
            [
                group(
                    &[1.0, 3.0, 4.0, 7.0, 9.0, 12.0],
                    &[true, true, false, true, true, false],
                ),
                group(
                    &[2.0, 5.0, 6.0, 8.0, 11.0, 15.0],
                    &[true, false, true, true, true, true],
                ),
            ]
        };
        let r1 = bootstrap(&mk(), Statistic::MedianDifference, f64::NAN, 999, 0.95, 3);
        let r2 = bootstrap(&mk(), Statistic::MedianDifference, f64::NAN, 999, 0.95, 3);
        let r3 = bootstrap(&mk(), Statistic::MedianDifference, f64::NAN, 999, 0.95, 4);
        assert_eq!(r1, r2);
        assert_ne!(r1.se, r3.se);
    }
}
