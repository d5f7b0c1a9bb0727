//! Two-group and contingency-table tests as R's `stats` package computes them:
//! `chisq.test` (Pearson, with and without Yates' correction), `fisher.test` (exact p and the
//! conditional maximum-likelihood odds ratio), `wilcox.test` (rank-sum; exact or normal
//! approximation) and `t.test(var.equal = FALSE)` (Welch).
//!
//! Exposed as `galley_stats::hypothesis` (this file is `tests.rs`; the module name avoids a clash
//! with Rust's test modules). Sign conventions follow R's formula interface: the first group
//! (code 0) minus the second (code 1); Wilcoxon's W is the rank sum statistic of the first group.

use crate::{Result, StatsError, finite};
use serde::Serialize;
use statrs::distribution::{ChiSquared, Continuous, ContinuousCDF, Normal, StudentsT};
use statrs::function::factorial::ln_factorial;

// ---------------------------------------------------------------------------------------------
// Contingency tables

/// A table of counts, rows by columns (R's `table(row_variable, column_variable)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossTab {
    counts: Vec<Vec<u64>>,
}

impl CrossTab {
    /// Cross-tabulate two coded variables: `rows[i]` in `0..n_rows`, `cols[i]` in `0..n_cols`.
    pub fn from_codes(
        rows: &[usize],
        n_rows: usize,
        cols: &[usize],
        n_cols: usize,
    ) -> Result<Self> {
        if rows.len() != cols.len() {
            return Err(StatsError::new(format!(
                "{} row codes but {} column codes; the two variables need the same observations",
                rows.len(),
                cols.len()
            )));
        }
        let mut counts = vec![vec![0u64; n_cols]; n_rows];
        for (i, (&r, &c)) in rows.iter().zip(cols).enumerate() {
            if r >= n_rows || c >= n_cols {
                return Err(StatsError::new(format!(
                    "observation {} has a code outside the {n_rows} x {n_cols} table",
                    i + 1
                )));
            }
            counts[r][c] += 1;
        }
        Self::from_counts(counts)
    }

    /// A table from counts given row by row.
    pub fn from_counts(counts: Vec<Vec<u64>>) -> Result<Self> {
        if counts.is_empty() || counts[0].is_empty() {
            return Err(StatsError::new("the table has no cells"));
        }
        let c = counts[0].len();
        if counts.iter().any(|r| r.len() != c) {
            return Err(StatsError::new(
                "every row of the table needs the same number of columns",
            ));
        }
        Ok(CrossTab { counts })
    }

    pub fn counts(&self) -> &[Vec<u64>] {
        &self.counts
    }

    pub fn n_rows(&self) -> usize {
        self.counts.len()
    }

    pub fn n_cols(&self) -> usize {
        self.counts[0].len()
    }

    pub fn total(&self) -> u64 {
        self.row_sums().iter().sum()
    }

    pub fn row_sums(&self) -> Vec<u64> {
        self.counts.iter().map(|r| r.iter().sum()).collect()
    }

    pub fn col_sums(&self) -> Vec<u64> {
        (0..self.n_cols())
            .map(|j| self.counts.iter().map(|r| r[j]).sum())
            .collect()
    }

    /// Expected counts under independence, row total x column total / N (R's
    /// `chisq.test(x)$expected`). Use it for rules such as "Fisher when any expected count < 5".
    pub fn expected(&self) -> Vec<Vec<f64>> {
        let n = self.total() as f64;
        let cs = self.col_sums();
        self.row_sums()
            .iter()
            .map(|&r| cs.iter().map(|&c| r as f64 * c as f64 / n).collect())
            .collect()
    }

    /// The smallest expected count.
    pub fn min_expected(&self) -> f64 {
        self.expected()
            .iter()
            .flatten()
            .copied()
            .fold(f64::INFINITY, f64::min)
    }

    fn check_margins(&self) -> Result<()> {
        if self.total() == 0 {
            return Err(StatsError::new("the table is empty"));
        }
        if self.n_rows() < 2 || self.n_cols() < 2 {
            return Err(StatsError::new(
                "a contingency test needs at least two rows and two columns",
            ));
        }
        if self.row_sums().contains(&0) || self.col_sums().contains(&0) {
            return Err(StatsError::new(
                "a row or column of the table has no observations; drop the empty level",
            ));
        }
        Ok(())
    }
}

/// A chi-square test result (`statistic`, `df`, `p` as R's `htest`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChiSquare {
    pub statistic: f64,
    pub df: usize,
    pub p: f64,
}

/// Pearson's chi-square test of independence without continuity correction
/// (`chisq.test(x, correct = FALSE)`).
pub fn chisq_test(table: &CrossTab) -> Result<ChiSquare> {
    chisq(table, false)
}

/// Pearson's chi-square with Yates' continuity correction (`chisq.test(x)` on a 2x2 table);
/// `None` for tables other than 2x2, where R applies no correction.
pub fn chisq_test_yates(table: &CrossTab) -> Result<Option<ChiSquare>> {
    if table.n_rows() != 2 || table.n_cols() != 2 {
        return Ok(None);
    }
    chisq(table, true).map(Some)
}

fn chisq(table: &CrossTab, yates: bool) -> Result<ChiSquare> {
    table.check_margins()?;
    let e = table.expected();
    let mut stat = 0.0;
    for (orow, erow) in table.counts.iter().zip(&e) {
        for (&o, &ex) in orow.iter().zip(erow) {
            let mut d = (o as f64 - ex).abs();
            if yates {
                // R: YATES <- min(0.5, abs(x - E)), element by element.
                d -= d.min(0.5);
            }
            stat += d * d / ex;
        }
    }
    let df = (table.n_rows() - 1) * (table.n_cols() - 1);
    let p = chisq_upper(stat, df as f64);
    Ok(ChiSquare {
        statistic: stat,
        df,
        p,
    })
}

/// Upper tail of chi-square. One and two degrees of freedom have closed forms that are more
/// precise than the general incomplete gamma (which is good to about 1e-10 relative).
fn chisq_upper(stat: f64, df: f64) -> f64 {
    if df == 1.0 {
        statrs::function::erf::erfc((stat / 2.0).sqrt())
    } else if df == 2.0 {
        (-stat / 2.0).exp()
    } else {
        ChiSquared::new(df).map(|d| d.sf(stat)).unwrap_or(f64::NAN)
    }
}

/// Fisher's exact test (two-sided) as `fisher.test`: `p`, and for a 2x2 table the conditional
/// maximum-likelihood estimate of the odds ratio (`None` for larger tables; `None` too when the
/// estimate is infinite).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fisher {
    pub p: f64,
    pub odds_ratio: Option<f64>,
}

/// Largest number of tables [`fisher_test`] enumerates for an r x c table (more than 2x2). A
/// larger table returns an error the caller can turn into a fallback (e.g. chi-square, or a
/// Monte Carlo p-value computed elsewhere).
pub const FISHER_MAX_TABLES: u64 = 20_000_000;

/// R's relative tolerance when deciding which tables are "as or more extreme" than the observed.
const FISHER_REL_ERR: f64 = 1.0 + 1e-7;

/// Fisher's exact test. A 2x2 table is exact via the hypergeometric distribution (as R); a larger
/// table is exact by enumerating every table with the observed margins, up to
/// [`FISHER_MAX_TABLES`] tables (error beyond).
pub fn fisher_test(table: &CrossTab) -> Result<Fisher> {
    fisher_test_limited(table, FISHER_MAX_TABLES)
}

/// [`fisher_test`] with a caller-chosen enumeration limit for tables larger than 2x2.
pub fn fisher_test_limited(table: &CrossTab, max_tables: u64) -> Result<Fisher> {
    if table.total() == 0 {
        return Err(StatsError::new("the table is empty"));
    }
    if table.n_rows() < 2 || table.n_cols() < 2 {
        return Err(StatsError::new(
            "Fisher's test needs at least two rows and two columns",
        ));
    }
    if table.n_rows() == 2 && table.n_cols() == 2 {
        return Ok(fisher_2x2(table));
    }
    let p = fisher_rxc(table, max_tables)?;
    Ok(Fisher {
        p,
        odds_ratio: None,
    })
}

fn ln_choose(n: u64, k: u64) -> f64 {
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

/// The non-central hypergeometric distribution of the [1,1] cell given the margins, as in R.
struct Hyper {
    lo: u64,
    support: Vec<f64>,
    logdc: Vec<f64>,
}

impl Hyper {
    fn density(&self, ncp: f64) -> Vec<f64> {
        let ln = ncp.ln();
        let d: Vec<f64> = self
            .logdc
            .iter()
            .zip(&self.support)
            .map(|(l, s)| l + ln * s)
            .collect();
        let max = d.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = d.iter().map(|v| (v - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        e.into_iter().map(|v| v / sum).collect()
    }

    fn mean(&self, ncp: f64) -> f64 {
        if ncp == 0.0 {
            return self.lo as f64;
        }
        if ncp.is_infinite() {
            return *self.support.last().unwrap();
        }
        self.support
            .iter()
            .zip(self.density(ncp))
            .map(|(s, d)| s * d)
            .sum()
    }
}

fn fisher_2x2(table: &CrossTab) -> Fisher {
    let c = &table.counts;
    let m = c[0][0] + c[1][0]; // first column total
    let n = c[0][1] + c[1][1]; // second column total
    let k = c[0][0] + c[0][1]; // first row total
    let x = c[0][0];
    let lo = k.saturating_sub(n);
    let hi = k.min(m);
    let support: Vec<f64> = (lo..=hi).map(|s| s as f64).collect();
    let logdc: Vec<f64> = (lo..=hi)
        .map(|s| ln_choose(m, s) + ln_choose(n, k - s) - ln_choose(m + n, k))
        .collect();
    let h = Hyper { lo, support, logdc };
    let d = h.density(1.0);
    let dx = d[(x - lo) as usize] * FISHER_REL_ERR;
    let p: f64 = d.iter().filter(|&&v| v <= dx).sum();

    // Conditional MLE: solve E[X; ncp] = x with R's uniroot (Brent, tol = eps^0.25), so the
    // estimate carries R's stopping error too.
    let xf = x as f64;
    let or = if x == lo {
        Some(0.0)
    } else if x == hi {
        None // infinite
    } else {
        let mu = h.mean(1.0);
        if mu > xf {
            Some(uniroot(|t| h.mean(t) - xf, 0.0, 1.0))
        } else if mu < xf {
            Some(1.0 / uniroot(|t| h.mean(1.0 / t) - xf, f64::EPSILON, 1.0))
        } else {
            Some(1.0)
        }
    };
    Fisher {
        p: p.min(1.0),
        odds_ratio: or.and_then(finite),
    }
}

/// R's `uniroot(f, c(lower, upper))` with its defaults (tol = .Machine$double.eps^0.25,
/// maxiter = 1000): Brent's zeroin exactly as R's `R_zeroin2`.
fn uniroot(f: impl Fn(f64) -> f64, lower: f64, upper: f64) -> f64 {
    let tol = f64::EPSILON.powf(0.25);
    let (mut a, mut b) = (lower, upper);
    let (mut fa, mut fb) = (f(a), f(b));
    let (mut c, mut fc) = (a, fa);
    if fa == 0.0 {
        return a;
    }
    if fb == 0.0 {
        return b;
    }
    for _ in 0..=1000 {
        let prev_step = b - a;
        if fc.abs() < fb.abs() {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        let tol_act = 2.0 * f64::EPSILON * b.abs() + tol / 2.0;
        let mut new_step = (c - b) / 2.0;
        if new_step.abs() <= tol_act || fb == 0.0 {
            return b;
        }
        if prev_step.abs() >= tol_act && fa.abs() > fb.abs() {
            let cb = c - b;
            let (mut p, mut q);
            if a == c {
                let t1 = fb / fa;
                p = cb * t1;
                q = 1.0 - t1;
            } else {
                let qq = fa / fc;
                let t1 = fb / fc;
                let t2 = fb / fa;
                p = t2 * (cb * qq * (qq - t1) - (b - a) * (t1 - 1.0));
                q = (qq - 1.0) * (t1 - 1.0) * (t2 - 1.0);
            }
            if p > 0.0 {
                q = -q;
            } else {
                p = -p;
            }
            if p < 0.75 * cb * q - (tol_act * q).abs() / 2.0 && p < (prev_step * q / 2.0).abs() {
                new_step = p / q;
            }
        }
        if new_step.abs() < tol_act {
            new_step = if new_step > 0.0 { tol_act } else { -tol_act };
        }
        a = b;
        fa = fb;
        b += new_step;
        fb = f(b);
        if (fb > 0.0 && fc > 0.0) || (fb < 0.0 && fc < 0.0) {
            c = a;
            fc = fa;
        }
    }
    b
}

/// Exact p for an r x c table: the probability of all tables with the observed margins that are
/// no more likely than the observed one. Tables are filled column by column; each cell ranges
/// over the values its row and column remainders allow.
fn fisher_rxc(table: &CrossTab, max_tables: u64) -> Result<f64> {
    let rows = table.row_sums();
    let cols = table.col_sums();
    let n = table.total();
    // log P(table) = sum ln r_i! + sum ln c_j! - ln N! - sum ln n_ij!
    let constant = rows.iter().map(|&r| ln_factorial(r)).sum::<f64>()
        + cols.iter().map(|&c| ln_factorial(c)).sum::<f64>()
        - ln_factorial(n);
    let observed = constant
        - table
            .counts
            .iter()
            .flatten()
            .map(|&v| ln_factorial(v))
            .sum::<f64>();
    let threshold = observed + FISHER_REL_ERR.ln();
    let mut state = Enum {
        cols: &cols,
        threshold,
        constant,
        max_tables,
        tables: 0,
        total: 0.0,
        observed,
    };
    let mut remaining = rows.clone();
    state.column(0, &mut remaining, 0.0)?;
    Ok((state.total * observed.exp()).min(1.0))
}

struct Enum<'a> {
    cols: &'a [u64],
    threshold: f64,
    constant: f64,
    max_tables: u64,
    tables: u64,
    /// Sum of qualifying probabilities, scaled by exp(-observed) to stay in range.
    total: f64,
    observed: f64,
}

impl Enum<'_> {
    fn column(&mut self, j: usize, remaining: &mut [u64], acc: f64) -> Result<()> {
        if j + 1 == self.cols.len() {
            // The last column is what the rows have left.
            let lp = self.constant - acc - remaining.iter().map(|&v| ln_factorial(v)).sum::<f64>();
            self.tables += 1;
            if self.tables > self.max_tables {
                return Err(StatsError::new(format!(
                    "the table is too large for an exact Fisher test (more than {} tables with these margins); use the chi-square test or a simulated p-value",
                    self.max_tables
                )));
            }
            if lp <= self.threshold {
                self.total += (lp - self.observed).exp();
            }
            return Ok(());
        }
        self.cell(j, 0, self.cols[j], remaining, acc)
    }

    fn cell(
        &mut self,
        j: usize,
        i: usize,
        col_left: u64,
        remaining: &mut [u64],
        acc: f64,
    ) -> Result<()> {
        let r = remaining.len();
        if i + 1 == r {
            // Last row of the column takes what the column has left.
            if col_left > remaining[i] {
                return Ok(());
            }
            remaining[i] -= col_left;
            let res = self.column(j + 1, remaining, acc + ln_factorial(col_left));
            remaining[i] += col_left;
            return res;
        }
        let capacity_after: u64 = remaining[i + 1..].iter().sum();
        let lo = col_left.saturating_sub(capacity_after);
        let hi = col_left.min(remaining[i]);
        for v in lo..=hi {
            remaining[i] -= v;
            let res = self.cell(j, i + 1, col_left - v, remaining, acc + ln_factorial(v));
            remaining[i] += v;
            res?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Two-sample tests

/// Wilcoxon rank-sum test (Mann-Whitney), two-sided, as `wilcox.test(x, y)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Wilcoxon {
    /// R's W: rank sum of the first group minus n1 (n1 + 1) / 2.
    pub statistic: f64,
    pub p: f64,
    /// Whether the exact null distribution was used.
    pub exact: bool,
    /// Whether a continuity correction was applied (normal approximation only).
    pub correct: bool,
}

/// Wilcoxon rank-sum test of `x` (first group) against `y`. `exact = None` is R's default: exact
/// when both groups have fewer than 50 observations and there are no ties; with ties the normal
/// approximation (tie-corrected variance) is used even if `exact = Some(true)`, as R does.
/// `correct` applies the continuity correction to the normal approximation.
pub fn wilcoxon_rank_sum(
    x: &[f64],
    y: &[f64],
    exact: Option<bool>,
    correct: bool,
) -> Result<Wilcoxon> {
    check_sample(x, "first group", 1)?;
    check_sample(y, "second group", 1)?;
    let (nx, ny) = (x.len(), y.len());
    let all: Vec<f64> = x.iter().chain(y).copied().collect();
    let (ranks, tie_sizes) = average_ranks(&all);
    let rank_sum: f64 = ranks[..nx].iter().sum();
    let w = rank_sum - (nx * (nx + 1)) as f64 / 2.0;
    let ties = !tie_sizes.is_empty();
    let want_exact = exact.unwrap_or(nx < 50 && ny < 50);
    if want_exact && !ties {
        if nx.min(ny) as f64 * (nx * ny) as f64 > WILCOXON_EXACT_MAX_CELLS {
            return Err(StatsError::new(format!(
                "an exact Wilcoxon p-value for groups of {nx} and {ny} is too large to compute; use the normal approximation"
            )));
        }
        let p = wilcoxon_exact_p(w, nx, ny);
        return Ok(Wilcoxon {
            statistic: w,
            p,
            exact: true,
            correct: false,
        });
    }
    let (fx, fy) = (nx as f64, ny as f64);
    let n = fx + fy;
    let tie_term: f64 = tie_sizes.iter().map(|&t| t * t * t - t).sum();
    let sigma = ((fx * fy / 12.0) * ((n + 1.0) - tie_term / (n * (n - 1.0)))).sqrt();
    let mut z = w - fx * fy / 2.0;
    if correct {
        z -= 0.5 * sign(z);
    }
    let z = z / sigma;
    let p = two_sided_normal(z);
    Ok(Wilcoxon {
        statistic: w,
        p,
        exact: false,
        correct,
    })
}

fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// 2 * min(P(Z <= z), P(Z >= z)), with each tail computed directly for precision.
fn two_sided_normal(z: f64) -> f64 {
    if !z.is_finite() {
        return f64::NAN;
    }
    let nd = Normal::standard();
    (2.0 * nd.cdf(z).min(nd.sf(z))).min(1.0)
}

/// Average ranks (R's `rank(ties.method = "average")`) and the sizes of tied groups (> 1).
fn average_ranks(v: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut ties = Vec::new();
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        if j > i {
            ties.push((j - i + 1) as f64);
        }
        i = j + 1;
    }
    (ranks, ties)
}

/// Largest table (smaller group size x n1 n2) the exact Wilcoxon distribution may use.
const WILCOXON_EXACT_MAX_CELLS: f64 = 5e7;

/// Two-sided exact p of W (R's `pwilcox` logic): counts of rank-sum configurations by
/// subset-sum dynamic programming, divided by choose(m + n, m).
fn wilcoxon_exact_p(w: f64, m: usize, n: usize) -> f64 {
    // The null distribution of U is the same with the groups swapped: count with the smaller.
    let counts = wilcoxon_counts(m.min(n), m.max(n));
    let total: f64 = counts.iter().sum();
    let cdf = |q: f64| -> f64 {
        if q < 0.0 {
            return 0.0;
        }
        let q = (q.floor() as usize).min(counts.len() - 1);
        counts[..=q].iter().sum::<f64>() / total
    };
    let p = if w > (m * n) as f64 / 2.0 {
        1.0 - cdf(w - 1.0) // P(W >= w)
    } else {
        cdf(w)
    };
    (2.0 * p).min(1.0)
}

/// Number of ways each value u = 0..=m n of the Mann-Whitney statistic arises.
fn wilcoxon_counts(m: usize, n: usize) -> Vec<f64> {
    // f[j][u]: ways to pick j of the items seen so far with u = (rank sum) - j (j + 1) / 2.
    let max_u = m * n;
    let mut f = vec![vec![0.0f64; max_u + 1]; m + 1];
    f[0][0] = 1.0;
    for item in 0..(m + n) {
        // Picking this item (0-based rank `item`) as the j-th chosen adds item - (j - 1) to u.
        for j in (1..=m.min(item + 1)).rev() {
            let add = item + 1 - j;
            if add > n {
                continue;
            }
            for u in (add..=max_u).rev() {
                let prev = f[j - 1][u - add];
                if prev != 0.0 {
                    f[j][u] += prev;
                }
            }
        }
    }
    f.swap_remove(m)
}

/// Welch two-sample t-test, as `t.test(x, y)` (unequal variances): the first group minus the
/// second.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WelchT {
    pub statistic: f64,
    pub df: f64,
    pub p: f64,
    pub mean_1: f64,
    pub mean_2: f64,
    /// Confidence interval for mean_1 - mean_2.
    pub lower: f64,
    pub upper: f64,
}

/// Welch's t-test with a `conf_level` (e.g. 0.95) confidence interval for the difference.
pub fn welch_t_test(x: &[f64], y: &[f64], conf_level: f64) -> Result<WelchT> {
    check_sample(x, "first group", 2)?;
    check_sample(y, "second group", 2)?;
    if !(conf_level > 0.0 && conf_level < 1.0) {
        return Err(StatsError::new(
            "the confidence level must be between 0 and 1",
        ));
    }
    let (nx, ny) = (x.len() as f64, y.len() as f64);
    let mx = crate::describe::mean(x);
    let my = crate::describe::mean(y);
    let vx = crate::describe::variance(x, mx).unwrap_or(f64::NAN);
    let vy = crate::describe::variance(y, my).unwrap_or(f64::NAN);
    let sx2 = vx / nx;
    let sy2 = vy / ny;
    let stderr = (sx2 + sy2).sqrt();
    if stderr < 10.0 * f64::EPSILON * mx.abs().max(my.abs()) || stderr == 0.0 {
        return Err(StatsError::new(
            "the data are essentially constant in both groups; a t-test is not defined",
        ));
    }
    let df = (sx2 + sy2).powi(2) / (sx2 * sx2 / (nx - 1.0) + sy2 * sy2 / (ny - 1.0));
    let t = (mx - my) / stderr;
    let dist = StudentsT::new(0.0, 1.0, df).map_err(|e| StatsError::new(e.to_string()))?;
    let p = (2.0 * dist.cdf(-t.abs())).min(1.0);
    let q = t_quantile(1.0 - (1.0 - conf_level) / 2.0, df)?;
    // R forms the interval on the t scale and multiplies back.
    Ok(WelchT {
        statistic: t,
        df,
        p,
        mean_1: mx,
        mean_2: my,
        lower: (t - q) * stderr,
        upper: (t + q) * stderr,
    })
}

/// Student's t quantile: statrs' inversion polished by Newton steps on the CDF, so the interval
/// limits carry full double precision.
pub(crate) fn t_quantile(p: f64, df: f64) -> Result<f64> {
    let dist = StudentsT::new(0.0, 1.0, df).map_err(|e| StatsError::new(e.to_string()))?;
    let mut q = dist.inverse_cdf(p);
    for _ in 0..4 {
        let f = dist.cdf(q) - p;
        let d = dist.pdf(q);
        if d <= 0.0 || !f.is_finite() {
            break;
        }
        let step = f / d;
        q -= step;
        if step.abs() <= 1e-15 * q.abs() {
            break;
        }
    }
    Ok(q)
}

fn check_sample(x: &[f64], what: &str, min: usize) -> Result<()> {
    if x.len() < min {
        return Err(StatsError::new(format!(
            "the {what} has {} observations; the test needs at least {min}",
            x.len()
        )));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::new(format!(
            "the {what} has a missing or non-finite value; pass complete cases"
        )));
    }
    Ok(())
}

/// Split values into the two groups coded 0 and 1 (R's first and second factor level). Errors
/// unless both groups are present and every code is 0 or 1.
pub fn split_two_groups(values: &[f64], group: &[usize]) -> Result<(Vec<f64>, Vec<f64>)> {
    if values.len() != group.len() {
        return Err(StatsError::new(format!(
            "{} values but {} group codes",
            values.len(),
            group.len()
        )));
    }
    let mut a = Vec::new();
    let mut b = Vec::new();
    for (&v, &g) in values.iter().zip(group) {
        match g {
            0 => a.push(v),
            1 => b.push(v),
            _ => {
                return Err(StatsError::new(
                    "a two-group test needs exactly two groups (codes 0 and 1)",
                ));
            }
        }
    }
    if a.is_empty() || b.is_empty() {
        return Err(StatsError::new(
            "only one group has observations; a two-group test needs both",
        ));
    }
    Ok((a, b))
}

#[cfg(test)]
mod unit {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn chisq_2x2_by_hand() {
        // [[10, 20], [30, 40]]: N = 100, E = [[12, 18], [28, 42]].
        let t = CrossTab::from_counts(vec![vec![10, 20], vec![30, 40]]).unwrap();
        let by_hand: f64 = 4.0 / 12.0 + 4.0 / 18.0 + 4.0 / 28.0 + 4.0 / 42.0;
        let c = chisq_test(&t).unwrap();
        assert!(close(c.statistic, by_hand, 1e-14));
        assert_eq!(c.df, 1);
        // Yates: |O - E| = 2 -> 1.5.
        let y = chisq_test_yates(&t).unwrap().unwrap();
        let yates = 2.25 * (1.0 / 12.0 + 1.0 / 18.0 + 1.0 / 28.0 + 1.0 / 42.0);
        assert!(close(y.statistic, yates, 1e-14));
        // 1 df: p = erfc(sqrt(x / 2)).
        let p1 = statrs::function::erf::erfc((by_hand / 2.0).sqrt());
        assert!(close(c.p, p1, 1e-12), "{} vs {p1}", c.p);
        assert_eq!(t.min_expected(), 12.0);
    }

    #[test]
    fn chisq_rejects_empty_margin() {
        let t = CrossTab::from_counts(vec![vec![0, 0], vec![3, 4]]).unwrap();
        assert!(chisq_test(&t).is_err());
        let t = CrossTab::from_counts(vec![vec![1, 2, 3], vec![3, 4, 5]]).unwrap();
        assert!(chisq_test_yates(&t).unwrap().is_none());
    }

    #[test]
    fn fisher_small_tables() {
        // Tea tasting: fisher.test(matrix(c(3, 1, 1, 3), 2)) p = 0.4857143, OR = 6.408309.
        let t = CrossTab::from_counts(vec![vec![3, 1], vec![1, 3]]).unwrap();
        let f = fisher_test(&t).unwrap();
        assert!(close(f.p, 34.0 / 70.0, 1e-12), "{}", f.p);
        assert!(
            close(f.odds_ratio.unwrap(), 6.408309, 1e-6),
            "{:?}",
            f.odds_ratio
        );
        // A zero cell gives OR 0 or infinity.
        let t = CrossTab::from_counts(vec![vec![0, 5], vec![5, 0]]).unwrap();
        let f = fisher_test(&t).unwrap();
        assert_eq!(f.odds_ratio, Some(0.0));
        assert!(close(f.p, 2.0 / 252.0, 1e-12));
    }

    #[test]
    fn fisher_rxc_matches_2x2_enumeration() {
        // The enumeration reproduces the hypergeometric p on a 2x2 table.
        let t = CrossTab::from_counts(vec![vec![10, 20], vec![30, 40]]).unwrap();
        let p2 = fisher_test(&t).unwrap().p;
        let pe = fisher_rxc(&t, FISHER_MAX_TABLES).unwrap();
        assert!(close(pe, p2, 1e-10), "{pe} vs {p2}");
        // 2x3 against a brute force over the two free cells.
        let t = CrossTab::from_counts(vec![vec![3, 1, 4], vec![1, 5, 2]]).unwrap();
        let lf = |v: u64| (1..=v).map(|i| (i as f64).ln()).sum::<f64>();
        let (r, c, n) = ([8u64, 8], [4u64, 6, 6], 16u64);
        let logp = |m: [[u64; 3]; 2]| {
            r.iter().map(|&v| lf(v)).sum::<f64>() + c.iter().map(|&v| lf(v)).sum::<f64>()
                - lf(n)
                - m.iter().flatten().map(|&v| lf(v)).sum::<f64>()
        };
        let obs = logp([[3, 1, 4], [1, 5, 2]]);
        let mut want = 0.0;
        for a in 0..=4u64 {
            for b in 0..=6u64 {
                if a + b > 8 || 8 - a - b > 6 {
                    continue;
                }
                let m = [[a, b, 8 - a - b], [4 - a, 6 - b, 6 - (8 - a - b)]];
                let lp = logp(m);
                if lp <= obs + 1e-7 {
                    want += lp.exp();
                }
            }
        }
        let got = fisher_test(&t).unwrap().p;
        assert!(close(got, want, 1e-12), "{got} vs {want}");
        // Job satisfaction (Agresti 2002): too many tables for a small limit.
        let job = CrossTab::from_counts(vec![
            vec![1, 2, 1, 0],
            vec![3, 3, 6, 1],
            vec![10, 10, 14, 9],
            vec![6, 7, 12, 11],
        ])
        .unwrap();
        assert!(fisher_test_limited(&job, 1000).is_err());
    }

    #[test]
    #[allow(clippy::approx_constant)] // 3.14 is a data value, not pi
    fn wilcoxon_exact_and_normal() {
        // wilcox.test(c(1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30),
        //             c(0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29)): W = 58, p = 0.1329
        let x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30];
        let y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29];
        // y has ties (1.06, 1.29) so R uses the normal approximation.
        let w = wilcoxon_rank_sum(&x, &y, None, true).unwrap();
        assert_eq!(w.statistic, 58.0);
        assert!(!w.exact);
        // Without ties: exact. x = 1..3, y = 4..6: W = 0, p = 2 / choose(6, 3) = 0.1.
        let w = wilcoxon_rank_sum(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0], None, true).unwrap();
        assert_eq!(w.statistic, 0.0);
        assert!(w.exact);
        assert!(close(w.p, 0.1, 1e-14));
        // ?wilcox.test depression example: W = 35, one-sided p = 0.1272 (two-sided 0.2544).
        let x = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46];
        let y = [1.15, 0.88, 0.90, 0.74, 1.21];
        let w = wilcoxon_rank_sum(&x, &y, None, true).unwrap();
        assert_eq!(w.statistic, 35.0);
        assert!(w.exact);
        assert!((w.p - 0.2544).abs() < 1e-4, "{}", w.p);
        let counts = wilcoxon_counts(3, 3);
        assert_eq!(counts.iter().sum::<f64>(), 20.0);
        assert_eq!(
            counts,
            vec![1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 2.0, 1.0, 1.0]
        );
    }

    #[test]
    fn welch_by_hand_and_errors() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let y = [2.0, 4.0, 6.0, 8.0, 10.0];
        let r = welch_t_test(&x, &y, 0.95).unwrap();
        // var x = 5/3, var y = 10; se^2 = 5/12 + 2.
        let se = (5.0f64 / 12.0 + 2.0).sqrt();
        assert!(close(r.statistic, (2.5 - 6.0) / se, 1e-14));
        let df = (29.0f64 / 12.0).powi(2) / ((5.0f64 / 12.0).powi(2) / 3.0 + 4.0 / 4.0);
        assert!(close(r.df, df, 1e-14));
        assert!(welch_t_test(&[1.0], &y, 0.95).is_err());
        assert!(welch_t_test(&[1.0, 1.0], &[1.0, 1.0], 0.95).is_err());
        // qt(0.975, 10) = 2.228138851986274
        assert!(close(
            t_quantile(0.975, 10.0).unwrap(),
            2.228138851986274,
            1e-14
        ));
    }

    #[test]
    fn split_requires_two_groups() {
        assert!(split_two_groups(&[1.0, 2.0], &[0, 0]).is_err());
        assert!(split_two_groups(&[1.0, 2.0], &[0, 2]).is_err());
        let (a, b) = split_two_groups(&[1.0, 2.0, 3.0], &[1, 0, 1]).unwrap();
        assert_eq!((a, b), (vec![2.0], vec![1.0, 3.0]));
    }
}
