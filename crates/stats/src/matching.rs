//! Greedy nearest-neighbour propensity score matching as MatchIt 4.5.1's
//! `matchit(method = "nearest", distance = "glm")` does it (ATT: controls are matched to
//! treated units), with `summary(matchit)`'s balance table.
//!
//! The rules, read from MatchIt's `matchit2nearest.R`, `nn_matchC_vec.cpp`, `process.caliper`
//! and `weights_matrixC.cpp`:
//! - the distance is the logistic propensity score (`link = "logit"`) or its linear predictor
//!   (`"linear.logit"`);
//! - all units are sorted by distance, ties kept in data order (R's stable `sort.list`); the
//!   treated are visited in decreasing distance (`m.order = "largest"`, ties in data order);
//! - each treated unit takes the nearest available control below and the nearest above it in
//!   that sorted order and keeps the closer one; an exact tie goes to the one below (smaller
//!   distance). MatchIt 4.5.1-4.5.3 measured "closer" (and the caliper) on the difference
//!   truncated to an integer, a bug fixed in 4.5.4; [`DistanceRule::MatchIt451`] reproduces it
//!   (the reference results need it), [`DistanceRule::Exact`] is the documented rule;
//! - with `ratio = k`, matching runs in k rounds: every treated unit gets its first control
//!   before any gets its second;
//! - the caliper is `caliper x sd(distance)`, the sample SD over all units (treated and control),
//!   on the distance's own scale; a control farther than that is not taken;
//! - matching weights: 1 for a matched treated unit; a control gets 1/(number of controls in the
//!   set) per set it belongs to, and control weights are rescaled to sum to the number of
//!   matched controls.
//!
//! The search uses two "next available position" union-find structures over the sorted units,
//! so each match costs near-constant time after an O(n log n) sort; no treated x control scan.

use crate::balance::smd_matchit;
use crate::design::{Covariate, indicator_matrix, model_matrix};
use crate::logistic::{LogisticFit, LogisticOptions, logistic_regression};
use crate::{Result, StatsError};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// Scale of the matching distance (MatchIt's `link`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// The propensity score itself.
    Logit,
    /// The linear predictor (logit of the propensity score).
    LinearLogit,
}

impl Link {
    /// MatchIt's name for the link.
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Logit => "logit",
            Link::LinearLogit => "linear.logit",
        }
    }
}

impl Serialize for Link {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Order in which treated units choose controls (MatchIt's `m.order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchOrder {
    /// Decreasing distance (MatchIt's default for propensity scores).
    #[default]
    Largest,
    /// Increasing distance.
    Smallest,
    /// Data order.
    Data,
}

/// How the distance between a treated unit and a candidate control is measured when choosing
/// between the two neighbours and applying the caliper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DistanceRule {
    /// |d_treated - d_control|, as documented and as MatchIt computes it from 4.5.4 on.
    #[default]
    Exact,
    /// Bug-compatible with MatchIt 4.5.1-4.5.3 (kosukeimai/MatchIt#163): its C++ code passed the
    /// difference to C's integer `abs`, truncating it toward zero. So the lower neighbour wins
    /// unless the upper one is closer by a whole unit of distance, and the caliper only excludes
    /// controls with trunc(|difference|) > caliper width; on the propensity score scale (0-1)
    /// the caliper never excludes anyone. Use it only to reproduce results from those versions.
    MatchIt451,
}

impl DistanceRule {
    fn measure(self, a: f64, b: f64) -> f64 {
        match self {
            DistanceRule::Exact => (a - b).abs(),
            // C: abs((int)(a - b)); the conversion truncates toward zero.
            DistanceRule::MatchIt451 => (a - b).trunc().abs(),
        }
    }
}

/// Options of nearest-neighbour matching.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearestOptions {
    /// Controls per treated unit (k in 1:k matching), at least 1.
    pub ratio: usize,
    /// Caliper in standard deviations of the distance; `None` for no caliper.
    pub caliper: Option<f64>,
    /// Match with replacement (a control may serve several treated units).
    pub replace: bool,
    /// Order of the treated units. MatchIt ignores it with replacement (results do not depend on
    /// it then).
    pub order: MatchOrder,
    /// Distance measure for neighbour choice and caliper; see [`DistanceRule`].
    pub rule: DistanceRule,
}

impl Default for NearestOptions {
    fn default() -> Self {
        NearestOptions {
            ratio: 1,
            caliper: None,
            replace: false,
            order: MatchOrder::Largest,
            rule: DistanceRule::Exact,
        }
    }
}

/// One treated unit and its controls, as row indices, controls in the order they were assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedSet {
    pub treated: usize,
    pub controls: Vec<usize>,
}

/// The result of nearest-neighbour matching, by row index.
#[derive(Debug, Clone, PartialEq)]
pub struct Matching {
    pub ratio: usize,
    /// Caliper in SDs of the distance, as requested.
    pub caliper: Option<f64>,
    /// The caliper on the distance scale (caliper x SD of the distance).
    pub caliper_width: Option<f64>,
    pub replace: bool,
    pub n_treated: usize,
    pub n_control: usize,
    /// Treated units with at least one control.
    pub n_treated_matched: usize,
    /// Distinct controls matched.
    pub n_control_matched: usize,
    /// One set per treated unit, in data order (MatchIt's `match.matrix` rows); unmatched
    /// treated units have no controls.
    pub sets: Vec<MatchedSet>,
    /// MatchIt's `subclass` per row: the matched set (1-based) a unit belongs to, `None` when
    /// unmatched or when matching with replacement (a control may be in several sets). Numbered
    /// as MatchIt does: by the treated unit's row number sorted as text ("1" < "10" < "2").
    pub subclass: Vec<Option<usize>>,
    /// MatchIt's matching weights per row (0 for unmatched units).
    pub weights: Vec<f64>,
    /// Problems MatchIt would warn about (e.g. fewer controls than needed).
    pub warnings: Vec<String>,
}

/// Next available position at or after `i` (union-find with path halving); `n` when none.
struct NextFree {
    parent: Vec<u32>,
}

impl NextFree {
    fn new(n: usize) -> Self {
        NextFree {
            parent: (0..=n as u32).collect(),
        }
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] as usize != i {
            let g = self.parent[self.parent[i] as usize];
            self.parent[i] = g;
            i = g as usize;
        }
        i
    }

    fn remove(&mut self, i: usize) {
        self.parent[i] = (i + 1) as u32;
    }
}

/// Sample SD (divisor n - 1), as R's `sd`.
fn sample_sd(x: &[f64]) -> f64 {
    // Squares of distances beyond ~1e150 overflow and below ~1e-150 underflow (found by the
    // edge-case tests: the SD came out infinite, refused as "no spread", or 0, so a caliper
    // matched nothing). Out there, take the SD of x / s times s, with s the largest |x|.
    let s = x.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    if s.is_finite() && s > 0.0 && !(1e-150..=1e150).contains(&s) {
        let scaled: Vec<f64> = x.iter().map(|v| v / s).collect();
        let m = crate::describe::mean(&scaled);
        return crate::describe::variance(&scaled, m).map_or(f64::NAN, |v| v.sqrt() * s);
    }
    let m = crate::describe::mean(x);
    crate::describe::variance(x, m).map_or(f64::NAN, f64::sqrt)
}

/// Nearest-neighbour matching of treated units (`treat[i] = true`) to controls on `distance`.
/// Errors on mismatched lengths, non-finite distances, no treated or no control units, a ratio
/// of 0, a non-positive caliper, or when no unit could be matched (MatchIt's "No matches were
/// found").
pub fn nearest_neighbor(
    treat: &[bool],
    distance: &[f64],
    options: &NearestOptions,
) -> Result<Matching> {
    check_nearest(treat, distance, options)?;
    let n = treat.len();
    let treated: Vec<usize> = (0..n).filter(|&i| treat[i]).collect();
    let n1 = treated.len();
    let n0 = n - n1;
    if n1 == 0 {
        return Err(StatsError::new("there are no treated units to match"));
    }
    if n0 == 0 {
        return Err(StatsError::new("there are no control units to match with"));
    }
    let mut warnings = Vec::new();
    if !options.replace {
        if n0 < n1 {
            warnings.push(
                "fewer control units than treated units; not all treated units will get a match"
                    .to_string(),
            );
        } else if n0 < n1 * options.ratio {
            warnings.push(format!(
                "not enough control units for {} matches per treated unit; not all treated units will get {} matches",
                options.ratio, options.ratio
            ));
        }
    }
    let caliper_width = match options.caliper {
        Some(c) => {
            let sd = sample_sd(distance);
            if !sd.is_finite() {
                return Err(StatsError::new(
                    "the distance has no spread; a caliper in SD units is not defined",
                ));
            }
            Some(c * sd)
        }
        None => None,
    };
    let sets = greedy_match(treat, distance, &treated, caliper_width, options);
    if sets.iter().all(|s| s.controls.is_empty()) {
        return Err(StatsError::new(
            "no matches were found: no control unit is within the caliper of any treated unit",
        ));
    }
    let (weights, n_control_matched) = matching_weights(treat, &sets);
    let n_treated_matched = sets.iter().filter(|s| !s.controls.is_empty()).count();
    let subclass = if options.replace {
        vec![None; n]
    } else {
        subclasses(&sets, n)
    };
    Ok(Matching {
        ratio: options.ratio,
        caliper: options.caliper,
        caliper_width,
        replace: options.replace,
        n_treated: n1,
        n_control: n0,
        n_treated_matched,
        n_control_matched,
        sets,
        subclass,
        weights,
        warnings,
    })
}

/// Lengths, distances and options of [`nearest_neighbor`].
fn check_nearest(treat: &[bool], distance: &[f64], options: &NearestOptions) -> Result<()> {
    let n = treat.len();
    if distance.len() != n {
        return Err(StatsError::new(format!(
            "{n} treatment indicators but {} distances",
            distance.len()
        )));
    }
    if n >= u32::MAX as usize {
        return Err(StatsError::new("too many units to match"));
    }
    if distance.iter().any(|d| !d.is_finite()) {
        return Err(StatsError::new("every distance must be a finite number"));
    }
    if options.ratio == 0 {
        return Err(StatsError::new("the matching ratio must be at least 1"));
    }
    if let Some(c) = options.caliper
        && !(c.is_finite() && c > 0.0)
    {
        return Err(StatsError::new(
            "the caliper must be a positive number of SDs",
        ));
    }
    Ok(())
}

/// MatchIt's greedy matching: in each of `ratio` rounds every treated unit (in the chosen
/// order) takes the nearest available control within the caliper. One set per treated unit,
/// in data order; a set may have no controls.
fn greedy_match(
    treat: &[bool],
    distance: &[f64],
    treated: &[usize],
    caliper_width: Option<f64>,
    options: &NearestOptions,
) -> Vec<MatchedSet> {
    let n = treat.len();
    let n1 = treated.len();
    // Sorted positions, ties in data order (stable sort, as R's radix sort.list).
    let mut by_pos: Vec<usize> = (0..n).collect();
    by_pos.sort_by(|&a, &b| distance[a].total_cmp(&distance[b]));
    let mut pos_of = vec![0usize; n];
    for (p, &u) in by_pos.iter().enumerate() {
        pos_of[u] = p;
    }
    let d_sorted: Vec<f64> = by_pos.iter().map(|&u| distance[u]).collect();
    // Right: next available control at position >= p. Left: on mirrored positions n-1-p.
    let mut free = Neighbours {
        right: NextFree::new(n),
        left: NextFree::new(n),
    };
    for (p, &u) in by_pos.iter().enumerate() {
        if treat[u] {
            free.take(p, n);
        }
    }
    let order = treated_order(distance, treated, options);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); n1]; // sorted positions of controls
    let mut remaining = n - n1;
    'rounds: for _round in 0..options.ratio {
        for &t in &order {
            if remaining == 0 {
                break 'rounds;
            }
            let ii = pos_of[treated[t]];
            let di = d_sorted[ii];
            let (mut k_left, mut k_right) = free.nearest(ii, &rows[t], n);
            let dist = |k: usize| options.rule.measure(di, d_sorted[k]);
            if let Some(w) = caliper_width {
                k_left = k_left.filter(|&k| dist(k) <= w);
                k_right = k_right.filter(|&k| dist(k) <= w);
            }
            let k = match (k_left, k_right) {
                (Some(l), Some(r)) => {
                    if dist(l) <= dist(r) {
                        l
                    } else {
                        r
                    }
                }
                (Some(l), None) => l,
                (None, Some(r)) => r,
                (None, None) => continue,
            };
            rows[t].push(k);
            if !options.replace {
                free.take(k, n);
                remaining -= 1;
            }
        }
    }
    rows.iter()
        .enumerate()
        .map(|(t, r)| MatchedSet {
            treated: treated[t],
            controls: r.iter().map(|&p| by_pos[p]).collect(),
        })
        .collect()
}

/// Order in which the treated units (indices into `treated`) choose; stable, so ties stay in
/// data order (R's order()). With replacement the order does not matter and is the data's.
fn treated_order(distance: &[f64], treated: &[usize], options: &NearestOptions) -> Vec<usize> {
    let mut order: Vec<usize> = (0..treated.len()).collect();
    match if options.replace {
        MatchOrder::Data
    } else {
        options.order
    } {
        MatchOrder::Largest => {
            order.sort_by(|&a, &b| distance[treated[b]].total_cmp(&distance[treated[a]]))
        }
        MatchOrder::Smallest => {
            order.sort_by(|&a, &b| distance[treated[a]].total_cmp(&distance[treated[b]]))
        }
        MatchOrder::Data => {}
    }
    order
}

/// The available controls by sorted position, searchable in both directions.
struct Neighbours {
    right: NextFree,
    /// On mirrored positions n-1-p.
    left: NextFree,
}

impl Neighbours {
    /// Position `p` (of `n`) is no longer available.
    fn take(&mut self, p: usize, n: usize) {
        self.right.remove(p);
        self.left.remove(n - 1 - p);
    }

    /// The nearest available control below and above sorted position `ii`, skipping this unit's
    /// own earlier matches `row` (possible only with replacement).
    fn nearest(&mut self, ii: usize, row: &[usize], n: usize) -> (Option<usize>, Option<usize>) {
        let mut k_left = None;
        let mut q = n - ii; // mirrored position of ii - 1
        loop {
            let m = self.left.find(q);
            if m >= n {
                break;
            }
            let k = n - 1 - m;
            if row.contains(&k) {
                q = m + 1;
                continue;
            }
            k_left = Some(k);
            break;
        }
        let mut k_right = None;
        let mut q = ii + 1;
        loop {
            let k = self.right.find(q);
            if k >= n {
                break;
            }
            if row.contains(&k) {
                q = k + 1;
                continue;
            }
            k_right = Some(k);
            break;
        }
        (k_left, k_right)
    }
}

/// Matching weights (weights_matrixC), then control weights rescaled to sum to the number of
/// matched controls; returns them with that number.
fn matching_weights(treat: &[bool], sets: &[MatchedSet]) -> (Vec<f64>, usize) {
    let n = treat.len();
    let mut weights = vec![0.0; n];
    for s in sets.iter().filter(|s| !s.controls.is_empty()) {
        weights[s.treated] += 1.0;
        let share = 1.0 / s.controls.len() as f64;
        for &c in &s.controls {
            weights[c] += share;
        }
    }
    let sum_w: f64 = (0..n).filter(|&i| !treat[i]).map(|i| weights[i]).sum();
    let n_control_matched = (0..n).filter(|&i| !treat[i] && weights[i] > 0.0).count();
    if sum_w > 0.0 && sum_w != n_control_matched as f64 {
        let scale = n_control_matched as f64 / sum_w;
        for i in (0..n).filter(|&i| !treat[i]) {
            weights[i] *= scale;
        }
    }
    (weights, n_control_matched)
}

/// MatchIt's subclass (matching without replacement): factor levels of the treated row numbers
/// as text, renumbered 1..
fn subclasses(sets: &[MatchedSet], n: usize) -> Vec<Option<usize>> {
    let mut subclass = vec![None; n];
    let mut keys: Vec<(String, usize)> = sets
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.controls.is_empty())
        .map(|(i, s)| ((s.treated + 1).to_string(), i))
        .collect();
    keys.sort();
    for (id, (_, i)) in keys.iter().enumerate() {
        let s = &sets[*i];
        subclass[s.treated] = Some(id + 1);
        for &c in &s.controls {
            subclass[c] = Some(id + 1);
        }
    }
    subclass
}

/// An ordered list of `(name, value)` pairs that serializes as a JSON object in that order
/// (the reference's `distance` and `smd_*` objects).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedValues<T>(pub Vec<(String, T)>);

impl<T: Serialize> Serialize for NamedValues<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<T> NamedValues<T> {
    /// The value for a name, if present.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

/// A matched set by unit id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MatchedSetIds {
    pub treated: String,
    pub controls: Vec<String>,
}

/// Propensity score matching with its balance table, in the reference's `propensity_match`
/// shape.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PropensityMatch {
    pub ratio: usize,
    pub caliper: Option<f64>,
    pub link: Link,
    pub n_treated: usize,
    pub n_control: usize,
    pub n_treated_matched: usize,
    pub n_control_matched: usize,
    /// Distance per unit id, on the link's scale.
    pub distance: NamedValues<f64>,
    pub matched_sets: Vec<MatchedSetIds>,
    /// SMD per covariate column (`variable=level` for factor levels) before matching.
    pub smd_before: NamedValues<Option<f64>>,
    /// SMD after matching (matching weights), same denominator as before.
    pub smd_after: NamedValues<Option<f64>>,
    /// Warnings from the propensity model and the matching.
    pub warnings: Vec<String>,
    /// The propensity score model.
    #[serde(skip)]
    pub model: LogisticFit,
    /// The matching by row index, with subclass and weights per row (to build a matched dataset).
    #[serde(skip)]
    pub matching: Matching,
}

/// MatchIt's `matchit(treat ~ covariates, method = "nearest", distance = "glm", link = ...)`:
/// fit the propensity score by logistic regression (treatment contrasts, intercept), match on
/// it, and tabulate balance before and after (every factor level, `summary(matchit)` SMDs).
/// `ids` label the units in the output.
pub fn propensity_match(
    ids: &[String],
    treat: &[bool],
    covariates: &[Covariate],
    link: Link,
    options: &NearestOptions,
) -> Result<PropensityMatch> {
    if ids.len() != treat.len() {
        return Err(StatsError::new(format!(
            "{} unit ids but {} treatment indicators",
            ids.len(),
            treat.len()
        )));
    }
    let design = model_matrix(covariates, true)?;
    let model = logistic_regression(treat, &design, LogisticOptions::default())?;
    let distance: Vec<f64> = match link {
        Link::Logit => model.fitted.clone(),
        Link::LinearLogit => model.linear_predictor.clone(),
    };
    let matching = nearest_neighbor(treat, &distance, options)?;
    let balance_x = indicator_matrix(covariates)?;
    let smd_before = smd_matchit(&balance_x, treat, None)?;
    let smd_after = smd_matchit(&balance_x, treat, Some(&matching.weights))?;
    let mut warnings = model.warnings.clone();
    warnings.extend(matching.warnings.iter().cloned());
    Ok(PropensityMatch {
        ratio: matching.ratio,
        caliper: matching.caliper,
        link,
        n_treated: matching.n_treated,
        n_control: matching.n_control,
        n_treated_matched: matching.n_treated_matched,
        n_control_matched: matching.n_control_matched,
        distance: NamedValues(ids.iter().cloned().zip(distance).collect()),
        matched_sets: matching
            .sets
            .iter()
            .map(|s| MatchedSetIds {
                treated: ids[s.treated].clone(),
                controls: s.controls.iter().map(|&c| ids[c].clone()).collect(),
            })
            .collect(),
        smd_before: NamedValues(smd_before),
        smd_after: NamedValues(smd_after),
        warnings,
        model,
        matching,
    })
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn greedy_order_rounds_and_ties() {
        // Treated at 0.9 and 0.5; controls at 0.8, 0.55, 0.45, 0.1.
        let treat = [true, true, false, false, false, false];
        let d = [0.9, 0.5, 0.8, 0.55, 0.45, 0.1];
        let m = nearest_neighbor(&treat, &d, &NearestOptions::default()).unwrap();
        // 0.9 goes first (largest) and takes 0.8; 0.5 takes 0.45 vs 0.55: equal distance -> below.
        assert_eq!(m.sets[0].controls, vec![2]);
        assert_eq!(m.sets[1].controls, vec![4]);
        let o = NearestOptions {
            ratio: 2,
            ..Default::default()
        };
        let m = nearest_neighbor(&treat, &d, &o).unwrap();
        // Round 2: 0.9 takes 0.55 (nearest left), then 0.5 takes 0.1.
        assert_eq!(m.sets[0].controls, vec![2, 3]);
        assert_eq!(m.sets[1].controls, vec![4, 5]);
        assert_eq!(m.weights, vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(
            m.subclass,
            vec![Some(1), Some(2), Some(1), Some(1), Some(2), Some(2)]
        );
    }

    #[test]
    fn caliper_and_replacement() {
        let treat = [true, true, false, false];
        let d = [0.0, 1.0, 0.05, 5.0];
        // sd of (0, 1, 0.05, 5) is about 2.36; caliper 0.1 -> width 0.236.
        let o = NearestOptions {
            caliper: Some(0.1),
            ..Default::default()
        };
        let m = nearest_neighbor(&treat, &d, &o).unwrap();
        assert_eq!(m.sets[1].controls, Vec::<usize>::new());
        assert_eq!(m.sets[0].controls, vec![2]);
        assert_eq!(m.n_treated_matched, 1);
        assert_eq!(m.weights, vec![1.0, 0.0, 1.0, 0.0]);
        // With replacement both take control 2; its weight is rescaled to 1.
        let o = NearestOptions {
            replace: true,
            ..Default::default()
        };
        let m = nearest_neighbor(&treat, &d, &o).unwrap();
        assert_eq!(m.sets[0].controls, vec![2]);
        assert_eq!(m.sets[1].controls, vec![2]);
        assert_eq!(m.weights[2], 1.0);
        assert_eq!(m.subclass, vec![None; 4]);
    }

    #[test]
    fn errors_and_warnings() {
        let o = NearestOptions::default();
        assert!(nearest_neighbor(&[true, true], &[0.1, 0.2], &o).is_err());
        assert!(nearest_neighbor(&[false, false], &[0.1, 0.2], &o).is_err());
        assert!(nearest_neighbor(&[true, false], &[0.1], &o).is_err());
        assert!(nearest_neighbor(&[true, false], &[0.1, f64::NAN], &o).is_err());
        let m = nearest_neighbor(&[true, true, false], &[0.1, 0.2, 0.3], &o).unwrap();
        assert_eq!(m.warnings.len(), 1);
        assert_eq!(m.n_treated_matched, 1);
        let tight = NearestOptions {
            caliper: Some(1e-6),
            ..Default::default()
        };
        assert!(nearest_neighbor(&[true, false], &[0.1, 0.9], &tight).is_err());
    }

    #[test]
    fn subclass_numbers_sort_row_numbers_as_text() {
        // 11 treated units at rows 0..=10 (row numbers "1".."11"), controls after them.
        let mut treat = vec![true; 11];
        treat.extend(vec![false; 11]);
        let d: Vec<f64> = (0..22)
            .map(|i| (i % 11) as f64 + if i < 11 { 0.0 } else { 0.1 })
            .collect();
        let m = nearest_neighbor(&treat, &d, &NearestOptions::default()).unwrap();
        // Text order: "1", "10", "11", "2", ... so row 9 ("10") is subclass 2.
        assert_eq!(m.subclass[0], Some(1));
        assert_eq!(m.subclass[9], Some(2));
        assert_eq!(m.subclass[10], Some(3));
        assert_eq!(m.subclass[1], Some(4));
    }
}
