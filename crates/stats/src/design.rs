//! Model matrices, as R's `model.matrix()` builds them for `glm()` and `coxph()`.
//!
//! Each covariate is numeric (one column, named by the variable) or categorical (levels in the
//! caller's order). Categorical covariates are coded with treatment contrasts against a
//! reference level (R's `contr.treatment`; columns named `variable=level`, in level order, the
//! reference omitted), or, for balance tables, with one indicator per level (MatchIt's
//! `contrasts = FALSE`). The result is a plain `n x p` [`DMatrix`] plus column names, so the
//! logistic and Cox fitters share it.

use crate::{Result, StatsError};
use nalgebra::DMatrix;
use rayon::prelude::*;

/// One covariate column of the data, complete cases only.
#[derive(Debug, Clone, PartialEq)]
pub enum Covariate {
    /// A numeric variable: one column.
    Numeric { name: String, values: Vec<f64> },
    /// A categorical variable: `codes[i]` indexes `levels`; `reference` indexes the level
    /// that treatment contrasts leave out (R's first level by default).
    Categorical {
        name: String,
        codes: Vec<usize>,
        levels: Vec<String>,
        reference: usize,
    },
}

impl Covariate {
    /// A numeric covariate.
    pub fn numeric(name: impl Into<String>, values: Vec<f64>) -> Self {
        Covariate::Numeric {
            name: name.into(),
            values,
        }
    }

    /// A categorical covariate whose reference level is the first level (R's default).
    pub fn categorical(name: impl Into<String>, codes: Vec<usize>, levels: Vec<String>) -> Self {
        Covariate::Categorical {
            name: name.into(),
            codes,
            levels,
            reference: 0,
        }
    }

    /// Set the reference level of a categorical covariate by its label
    /// (R's `relevel(x, ref = level)`). Errors for a numeric covariate or an unknown level.
    pub fn with_reference(self, level: &str) -> Result<Self> {
        match self {
            Covariate::Categorical {
                name,
                codes,
                levels,
                ..
            } => {
                let reference = levels.iter().position(|l| l == level).ok_or_else(|| {
                    StatsError::new(format!(
                        "reference level '{level}' is not a level of '{name}' (levels: {})",
                        levels.join(", ")
                    ))
                })?;
                Ok(Covariate::Categorical {
                    name,
                    codes,
                    levels,
                    reference,
                })
            }
            Covariate::Numeric { name, .. } => Err(StatsError::new(format!(
                "'{name}' is numeric; only a categorical variable has a reference level"
            ))),
        }
    }

    /// The variable's name.
    pub fn name(&self) -> &str {
        match self {
            Covariate::Numeric { name, .. } | Covariate::Categorical { name, .. } => name,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Covariate::Numeric { values, .. } => values.len(),
            Covariate::Categorical { codes, .. } => codes.len(),
        }
    }

    /// True when the covariate has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How categorical covariates become columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// Treatment contrasts: one column per non-reference level (for regression).
    Treatment,
    /// One indicator column per level, reference included (for balance tables).
    Indicator,
}

/// Where a model-matrix column comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The covariate's name (`"(Intercept)"` for the intercept).
    pub variable: String,
    /// The level this indicator column stands for; `None` for numeric columns and the intercept.
    pub level: Option<String>,
}

/// A numeric model matrix with named columns.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMatrix {
    /// `n x p` values, one row per observation.
    pub x: DMatrix<f64>,
    /// Column names: `(Intercept)`, numeric variables by name, factor levels as `variable=level`.
    pub names: Vec<String>,
    /// The source of each column.
    pub columns: Vec<Column>,
    /// Whether column 0 is the intercept.
    pub intercept: bool,
}

impl ModelMatrix {
    /// Number of rows (observations).
    pub fn nrows(&self) -> usize {
        self.x.nrows()
    }

    /// Number of columns (coefficients).
    pub fn ncols(&self) -> usize {
        self.x.ncols()
    }
}

/// Relative residual norm below which a column counts as a linear combination of the columns
/// before it. R's `glm.fit` uses 1e-11 inside its pivoting QR; a design this close to singular
/// gives meaningless estimates either way, so we refuse it a little earlier.
const RANK_TOL: f64 = 1e-10;

/// Build a regression model matrix: treatment contrasts for categorical covariates, an optional
/// intercept first. Errors (naming the variable) on mismatched lengths, non-finite values,
/// codes outside the levels, fewer than two observed levels, an empty level, a constant
/// numeric covariate alongside an intercept, or any other rank deficiency.
pub fn model_matrix(covariates: &[Covariate], intercept: bool) -> Result<ModelMatrix> {
    let m = build(covariates, intercept, Coding::Treatment)?;
    check_rank(&m)?;
    Ok(m)
}

/// Build a matrix with one indicator column per level of every categorical covariate and no
/// intercept, as MatchIt tabulates balance (`summary(matchit)`). No rank check: the indicators
/// of one factor always sum to one.
pub fn indicator_matrix(covariates: &[Covariate]) -> Result<ModelMatrix> {
    build(covariates, false, Coding::Indicator)
}

/// Build a model matrix with the chosen coding, without the rank check.
pub fn build(covariates: &[Covariate], intercept: bool, coding: Coding) -> Result<ModelMatrix> {
    if covariates.is_empty() && !intercept {
        return Err(StatsError::new(
            "the model has no terms: give at least one covariate or an intercept",
        ));
    }
    let n = match covariates.first() {
        Some(c) => c.len(),
        None => {
            return Err(StatsError::new(
                "an intercept-only model needs the number of observations; give a covariate",
            ));
        }
    };
    if n == 0 {
        return Err(StatsError::new("no observations to build the model from"));
    }
    let mut names = Vec::new();
    let mut columns = Vec::new();
    // What each column is made of; the values are written once all covariates are checked.
    let mut sources = Vec::new();
    let mut push = |name: String, variable: &str, level: Option<&String>| {
        names.push(name);
        columns.push(Column {
            variable: variable.to_string(),
            level: level.cloned(),
        });
    };
    if intercept {
        push("(Intercept)".into(), "(Intercept)", None);
        sources.push(Source::Intercept);
    }
    for cov in covariates {
        if cov.len() != n {
            return Err(StatsError::new(format!(
                "'{}' has {} values but '{}' has {n}; every covariate needs one value per observation",
                cov.name(),
                cov.len(),
                covariates[0].name()
            )));
        }
        match cov {
            Covariate::Numeric { name, values } => {
                check_numeric(name, values)?;
                push(name.clone(), name, None);
                sources.push(Source::Numeric(values));
            }
            Covariate::Categorical {
                name,
                codes,
                levels,
                reference,
            } => {
                check_categorical(name, codes, levels, *reference)?;
                for (l, level) in levels.iter().enumerate() {
                    if coding == Coding::Treatment && l == *reference {
                        continue;
                    }
                    push(format!("{name}={level}"), name, Some(level));
                    sources.push(Source::Indicator(codes, l));
                }
            }
        }
    }
    let x = fill_columns(n, &sources);
    Ok(ModelMatrix {
        x,
        names,
        columns,
        intercept,
    })
}

/// A numeric covariate must be finite everywhere (complete cases).
fn check_numeric(name: &str, values: &[f64]) -> Result<()> {
    // A branch-free pass (it vectorises); the row is looked up only on failure.
    if !values.iter().fold(true, |ok, v| ok & v.is_finite())
        && let Some(i) = values.iter().position(|v| !v.is_finite())
    {
        return Err(StatsError::new(format!(
            "'{name}' has a missing or infinite value at row {}; pass complete cases",
            i + 1
        )));
    }
    Ok(())
}

/// A categorical covariate: a reference and codes among its levels, every level observed, at
/// least two of them.
fn check_categorical(
    name: &str,
    codes: &[usize],
    levels: &[String],
    reference: usize,
) -> Result<()> {
    if reference >= levels.len() {
        return Err(StatsError::new(format!(
            "the reference level of '{name}' is not one of its {} levels",
            levels.len()
        )));
    }
    let mut counts = vec![0usize; levels.len()];
    for (i, &c) in codes.iter().enumerate() {
        if c >= levels.len() {
            return Err(StatsError::new(format!(
                "'{name}' has code {c} at row {} but only {} levels",
                i + 1,
                levels.len()
            )));
        }
        counts[c] += 1;
    }
    let observed = counts.iter().filter(|&&c| c > 0).count();
    if observed < 2 {
        return Err(StatsError::new(format!(
            "'{name}' has a single level in the data; a categorical covariate needs at least two"
        )));
    }
    if let Some(l) = counts.iter().position(|&c| c == 0) {
        return Err(StatsError::new(format!(
            "level '{}' of '{name}' has no observations; drop the level or merge it",
            levels[l]
        )));
    }
    Ok(())
}

/// Column-major n x p values, each column written once from its source.
fn fill_columns(n: usize, sources: &[Source<'_>]) -> DMatrix<f64> {
    let p = sources.len();
    let mut data = vec![0.0; n * p];
    let fill = |(col, source): (&mut [f64], &Source)| match *source {
        Source::Intercept => col.fill(1.0),
        Source::Numeric(values) => col.copy_from_slice(values),
        Source::Indicator(codes, l) => {
            for (v, &c) in col.iter_mut().zip(codes) {
                *v = if c == l { 1.0 } else { 0.0 };
            }
        }
    };
    // Columns in parallel only on large data (see `crate::par::map`).
    if n > crate::par::CHUNK {
        data.par_chunks_mut(n)
            .zip(sources.par_iter())
            .for_each(fill);
    } else {
        data.chunks_mut(n).zip(sources.iter()).for_each(fill);
    }
    DMatrix::from_vec(n, p, data)
}

/// Where a column's values come from.
enum Source<'a> {
    Intercept,
    Numeric(&'a [f64]),
    /// 1 where the code equals the level, else 0.
    Indicator(&'a [usize], usize),
}

/// A column whose residual, after removing the columns before it (in column order, as R's
/// pivoting QR meets them), is negligible relative to its own norm is aliased. The residual norm
/// of column j is |R_jj| of the QR decomposition of X, and its norm that of R's column j; R comes
/// from one streamed pass over X (`crate::qr`), not a column-by-column Gram-Schmidt.
fn check_rank(m: &ModelMatrix) -> Result<()> {
    let (n, p) = m.x.shape();
    if n < p {
        return Err(StatsError::new(format!(
            "the model has {p} coefficients but only {n} observations"
        )));
    }
    let xs = m.x.as_slice();
    let r = crate::qr::r_factor(n, p, |i0, b, blk| {
        for j in 0..p {
            let dst = &mut blk[j * crate::qr::BLOCK..j * crate::qr::BLOCK + b];
            dst.copy_from_slice(&xs[j * n + i0..j * n + i0 + b]);
        }
    });
    for j in 0..p {
        let col = &r[j * p..j * p + j + 1];
        let norm0 = col.iter().map(|v| v * v).sum::<f64>().sqrt();
        let resid = col[j].abs();
        if norm0 == 0.0 || resid <= RANK_TOL * norm0 {
            let col = &m.columns[j];
            let what = if col.variable == "(Intercept)" {
                "the intercept".to_string()
            } else if norm0 == 0.0 {
                format!("'{}' is zero for every observation", m.names[j])
            } else if m.intercept && col.level.is_none() {
                format!(
                    "'{}' is constant or a linear combination of earlier covariates",
                    m.names[j]
                )
            } else {
                format!(
                    "'{}' is a linear combination of earlier covariates",
                    m.names[j]
                )
            };
            return Err(StatsError::new(format!(
                "the model cannot be estimated (rank deficient): {what}; remove '{}' or the covariates it duplicates",
                col.variable
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::*;

    fn lv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn treatment_contrasts_and_names() {
        let covs = vec![
            Covariate::numeric("age", vec![30.0, 40.0, 50.0, 60.0]),
            Covariate::categorical("arm", vec![0, 1, 2, 1], lv(&["a", "b", "c"]))
                .with_reference("b")
                .unwrap(),
        ];
        let m = model_matrix(&covs, true).unwrap();
        assert_eq!(m.names, vec!["(Intercept)", "age", "arm=a", "arm=c"]);
        assert_eq!(m.x.column(2).as_slice(), &[1.0, 0.0, 0.0, 0.0]);
        assert_eq!(m.x.column(3).as_slice(), &[0.0, 0.0, 1.0, 0.0]);
        let ind = indicator_matrix(&covs).unwrap();
        assert_eq!(ind.names, vec!["age", "arm=a", "arm=b", "arm=c"]);
    }

    #[test]
    fn errors_name_the_variable() {
        let one_level = Covariate::categorical("site", vec![0, 0, 0], lv(&["x"]));
        let e = model_matrix(&[one_level], true).unwrap_err();
        assert!(e.message.contains("site"), "{e}");

        let empty_level = Covariate::categorical("site", vec![0, 1, 0], lv(&["x", "y", "z"]));
        let e = model_matrix(&[empty_level], true).unwrap_err();
        assert!(e.message.contains("'z'"), "{e}");

        let constant = Covariate::numeric("dose", vec![2.0, 2.0, 2.0]);
        let e = model_matrix(&[constant], true).unwrap_err();
        assert!(e.message.contains("dose"), "{e}");

        let a = Covariate::numeric("a", vec![1.0, 2.0, 3.0, 5.0]);
        let b = Covariate::numeric("b", vec![2.0, 4.0, 6.0, 10.0]);
        let e = model_matrix(&[a.clone(), b], true).unwrap_err();
        assert!(e.message.contains("'b'"), "{e}");

        let short = Covariate::numeric("c", vec![1.0]);
        assert!(model_matrix(&[a, short], true).is_err());

        let nan = Covariate::numeric("w", vec![1.0, f64::NAN]);
        assert!(model_matrix(&[nan], true).is_err());
        assert!(model_matrix(&[], false).is_err());
        assert!(
            Covariate::numeric("x", vec![1.0])
                .with_reference("a")
                .is_err()
        );
    }
}
