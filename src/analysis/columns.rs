//! Reading the columns a statistical block names: numbers, event indicators (a column or an
//! expression such as `status == 2`), groups, and covariates for model matrices, with complete-case
//! selection. Shared by every statistical kind so they all treat missing values and types alike.

use galley_stats::design::Covariate;
use indexmap::IndexMap;

use super::expr::RowExpr;
use super::{BlockEnv, grouping};
use crate::diagnostics::Diagnostic;
use crate::study::dataset::{ColumnData, Dataset};

type R<T> = std::result::Result<T, Diagnostic>;

/// Numbers of a numeric column (integers, numbers; booleans as 0/1).
pub fn numbers(env: &BlockEnv, data: &Dataset, name: &str, key: &str) -> R<Vec<Option<f64>>> {
    let column = env.column(data, name, key)?;
    if !column.data.is_numeric() {
        return Err(env.error(
            key,
            format!(
                "column `{name}` is {}, expected a number",
                column.data.kind().name()
            ),
        ));
    }
    Ok((0..data.n_rows).map(|r| column.data.number(r)).collect())
}

/// True/false per row from a boolean column, a 0/1 column, or an expression (`status == 2`).
pub fn indicator(env: &BlockEnv, data: &Dataset, source: &str, key: &str) -> R<Vec<Option<bool>>> {
    if let Some(column) = data.column(source) {
        return match &*column.data {
            ColumnData::Boolean(v) => Ok(v.clone()),
            ColumnData::Integer(_) | ColumnData::Number(_) => {
                let values: Vec<Option<f64>> =
                    (0..data.n_rows).map(|r| column.data.number(r)).collect();
                if let Some(bad) = values.iter().flatten().find(|&&x| x != 0.0 && x != 1.0) {
                    return Err(env
                        .error(
                            key,
                            format!("column `{source}` holds {bad}, expected 0 or 1"),
                        )
                        .hint(format!(
                            "write the condition as an expression, e.g. `{key} = \"{source} == 2\"`"
                        )));
                }
                Ok(values.iter().map(|v| v.map(|x| x == 1.0)).collect())
            }
            other => Err(env
                .error(
                    key,
                    format!(
                        "column `{source}` is {}, expected true/false or 0/1",
                        other.kind().name()
                    ),
                )
                .hint(format!(
                    "write the condition as an expression, e.g. `{key} = \"{source} == 'dead'\"`"
                ))),
        };
    }
    let compiled = RowExpr::compile(source, data).map_err(|m| env.error(key, m))?;
    let values = compiled
        .eval_all(data, env.expression_limit(key))
        .map_err(|m| env.error(key, m))?;
    values
        .iter()
        .enumerate()
        .map(|(row, v)| {
            v.as_bool().map_err(|m| {
                env.error(
                    key,
                    format!(
                        "`{source}` on data row {} (line {} of the CSV): {m}",
                        row + 1,
                        row + 2
                    ),
                )
            })
        })
        .collect()
}

/// Group labels and codes of a grouping column (levels in schema order, else sorted).
pub fn groups(
    env: &BlockEnv,
    data: &Dataset,
    name: &str,
    key: &str,
) -> R<(Vec<String>, Vec<Option<usize>>)> {
    let column = env.column(data, name, key)?;
    if matches!(*column.data, ColumnData::Number(_) | ColumnData::Date(_)) {
        return Err(env.error(
            key,
            format!(
                "column `{name}` is {}; group by a category, text, boolean or integer column",
                column.data.kind().name()
            ),
        ));
    }
    Ok(grouping(column))
}

/// A covariate as read from the data, before complete-case selection.
#[derive(Debug, Clone)]
pub enum CovariateColumn {
    Numeric {
        name: String,
        values: Vec<Option<f64>>,
    },
    Categorical {
        name: String,
        levels: Vec<String>,
        codes: Vec<Option<usize>>,
        reference: Option<String>,
    },
}

impl CovariateColumn {
    pub fn name(&self) -> &str {
        match self {
            CovariateColumn::Numeric { name, .. } | CovariateColumn::Categorical { name, .. } => {
                name
            }
        }
    }

    pub fn is_missing(&self, row: usize) -> bool {
        match self {
            CovariateColumn::Numeric { values, .. } => values[row].is_none(),
            CovariateColumn::Categorical { codes, .. } => codes[row].is_none(),
        }
    }
}

/// Read covariates as R's model formula would: numbers and booleans (0/1) are numeric; categories
/// (schema level order) and text (sorted levels) are factors with treatment contrasts; `factors`
/// forces numeric columns to factors; `reference` sets a factor's reference level.
pub fn covariates(
    env: &BlockEnv,
    data: &Dataset,
    names: &[String],
    factors: &[String],
    reference: &IndexMap<String, String>,
    key: &str,
) -> R<Vec<CovariateColumn>> {
    for (variable, _) in reference {
        if !names.contains(variable) {
            return Err(env.error(
                "reference",
                format!("`reference` names `{variable}`, which is not among the covariates"),
            ));
        }
    }
    names
        .iter()
        .map(|name| {
            let column = env.column(data, name, key)?;
            let as_factor = factors.contains(name)
                || matches!(*column.data, ColumnData::Category { .. } | ColumnData::String(_));
            if matches!(*column.data, ColumnData::Date(_)) {
                return Err(env.error(key, format!("covariate `{name}` is a date; derive a number from it first (e.g. `year(...)`)")));
            }
            if as_factor {
                let (levels, codes) = grouping(column);
                let reference = reference.get(name).cloned();
                if let Some(r) = &reference
                    && !levels.contains(r)
                {
                    return Err(env.error(
                        "reference",
                        format!("`{r}` is not a level of `{name}` (levels: {})", levels.join(", ")),
                    ));
                }
                Ok(CovariateColumn::Categorical { name: name.clone(), levels, codes, reference })
            } else {
                let values = (0..data.n_rows).map(|r| column.data.number(r)).collect();
                Ok(CovariateColumn::Numeric { name: name.clone(), values })
            }
        })
        .collect()
}

/// Rows where none of the given "is missing" tests is true.
pub fn complete_rows(n: usize, missing: &[&dyn Fn(usize) -> bool]) -> Vec<usize> {
    (0..n).filter(|&r| !missing.iter().any(|m| m(r))).collect()
}

/// What a block does when rows are left out because an analysis variable is missing (after its
/// expression is evaluated): `missing = "warn"` (the default) leaves them out and warns,
/// `"exclude"` leaves them out silently (the author has seen them), `"fail"` stops the build (R's
/// `na.fail`). The counts are in the result either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingPolicy {
    #[default]
    Warn,
    Exclude,
    Fail,
}

/// One analysis variable of a block (a column, or an expression such as `status == 1`) and its
/// "is missing" test by row.
pub struct Missing<'a> {
    pub name: &'a str,
    pub test: Box<dyn Fn(usize) -> bool + 'a>,
}

impl<'a> Missing<'a> {
    pub fn new(name: &'a str, test: impl Fn(usize) -> bool + 'a) -> Missing<'a> {
        Missing {
            name,
            test: Box::new(test),
        }
    }

    /// The test of a model covariate.
    pub fn covariate(c: &'a CovariateColumn) -> Missing<'a> {
        Missing::new(c.name(), move |r| c.is_missing(r))
    }

    /// The test of values read by row (`None` = missing).
    pub fn of<T>(name: &'a str, values: &'a [Option<T>]) -> Missing<'a> {
        Missing::new(name, move |r| values[r].is_none())
    }
}

/// The complete cases of a block: the rows it analyses and, by variable, how many rows were left
/// out because that variable was missing (a row missing two variables counts under both).
#[derive(Debug, Clone)]
pub struct CompleteCases {
    pub rows: Vec<usize>,
    pub total: usize,
    pub by_variable: Vec<(String, usize)>,
}

impl CompleteCases {
    /// The rows where no variable in `used` is missing, under the block's policy: `Err` when the
    /// policy is `fail` and a row was left out.
    pub fn select(
        env: &super::BlockEnv,
        total: usize,
        used: &[Missing],
        policy: MissingPolicy,
    ) -> R<CompleteCases> {
        let tests: Vec<&dyn Fn(usize) -> bool> = used.iter().map(|m| m.test.as_ref()).collect();
        let rows = complete_rows(total, &tests);
        let by_variable = if rows.len() == total {
            Vec::new()
        } else {
            used.iter()
                .map(|m| {
                    (
                        m.name.to_string(),
                        (0..total).filter(|&r| (m.test)(r)).count(),
                    )
                })
                .filter(|(_, k)| *k > 0)
                .collect()
        };
        let cases = CompleteCases {
            rows,
            total,
            by_variable,
        };
        if policy == MissingPolicy::Fail && cases.excluded() > 0 {
            return Err(env
                .error(
                    "missing",
                    format!(
                        "{} of {} rows have a missing analysis variable ({})",
                        cases.excluded(),
                        total,
                        cases.counts()
                    ),
                )
                .hint("`missing = \"fail\"` stops the build when a row has a missing analysis variable; remove it to analyse complete cases"));
        }
        Ok(cases)
    }

    pub fn excluded(&self) -> usize {
        self.total - self.rows.len()
    }

    /// "missing: `a` 1, `b` 2".
    fn counts(&self) -> String {
        let counts: Vec<String> = self
            .by_variable
            .iter()
            .map(|(name, k)| format!("`{name}` {k}"))
            .collect();
        format!("missing: {}", counts.join(", "))
    }

    /// The warning a block gives, unless the policy silences it.
    pub fn warning(&self, policy: MissingPolicy) -> Option<String> {
        (self.excluded() > 0 && policy == MissingPolicy::Warn).then(|| {
            format!(
                "{} of {} rows left out for missing values (complete cases; {}); write `missing = \"exclude\"` in the block to accept this without a warning",
                self.excluded(),
                self.total,
                self.counts()
            )
        })
    }

    /// `n_excluded` and `excluded_by` (rows left out by variable) in a block's result.
    pub fn record(&self, value: &mut serde_json::Value) {
        value["n_excluded"] = serde_json::json!(self.excluded());
        let by: serde_json::Map<String, serde_json::Value> = self
            .by_variable
            .iter()
            .map(|(name, k)| (name.clone(), serde_json::json!(k)))
            .collect();
        value["excluded_by"] = serde_json::Value::Object(by);
    }
}

/// Covariates restricted to `rows`, as the statistics crate takes them. Factor levels that do not
/// occur in those rows are dropped (R would give an NA coefficient for them).
pub fn to_stats(
    env: &BlockEnv,
    columns: &[CovariateColumn],
    rows: &[usize],
    key: &str,
) -> R<Vec<Covariate>> {
    columns
        .iter()
        .map(|c| match c {
            CovariateColumn::Numeric { name, values } => Ok(Covariate::numeric(
                name.clone(),
                rows.iter()
                    .map(|&r| values[r].unwrap_or(f64::NAN))
                    .collect(),
            )),
            CovariateColumn::Categorical {
                name,
                levels,
                codes,
                reference,
            } => {
                let mut used = vec![false; levels.len()];
                for &r in rows {
                    if let Some(c) = codes[r] {
                        used[c] = true;
                    }
                }
                let kept: Vec<usize> = (0..levels.len()).filter(|&i| used[i]).collect();
                let new_levels: Vec<String> = kept.iter().map(|&i| levels[i].clone()).collect();
                let new_codes: Vec<usize> = rows
                    .iter()
                    .map(|&r| kept.iter().position(|&k| Some(k) == codes[r]).unwrap_or(0))
                    .collect();
                let cov = Covariate::categorical(name.clone(), new_codes, new_levels);
                match reference {
                    Some(level) => cov
                        .with_reference(level)
                        .map_err(|e| env.error(key, e.message)),
                    None => Ok(cov),
                }
            }
        })
        .collect()
}

/// Put the levels of a grouping (from [`groups`] or [`grouping`]) in the order `order` gives, as
/// R's `factor(x, levels = order)` does, but strictly: every listed level must be a level of the
/// column (listed once), and every value in the data must be listed (nothing turns missing
/// silently). `name` is the column, `key` the spec field that holds the order.
pub fn reorder_levels(
    env: &BlockEnv,
    name: &str,
    grouping: (Vec<String>, Vec<Option<usize>>),
    order: &[String],
    key: &str,
) -> R<(Vec<String>, Vec<Option<usize>>)> {
    let (levels, codes) = grouping;
    let mut position = vec![None; levels.len()];
    for (i, level) in order.iter().enumerate() {
        let Some(old) = levels.iter().position(|l| l == level) else {
            return Err(env.error(
                key,
                format!(
                    "`{level}` is not a level of `{name}` (levels: {})",
                    levels.join(", ")
                ),
            ));
        };
        if position[old].is_some() {
            return Err(env.error(key, format!("level `{level}` of `{name}` is listed twice")));
        }
        position[old] = Some(i);
    }
    let mut counts = vec![0usize; levels.len()];
    for c in codes.iter().flatten() {
        counts[*c] += 1;
    }
    let unlisted: Vec<&str> = (0..levels.len())
        .filter(|&i| position[i].is_none() && counts[i] > 0)
        .map(|i| levels[i].as_str())
        .collect();
    if !unlisted.is_empty() {
        return Err(env
            .error(
                key,
                format!(
                    "`{name}` has values not listed in `{key}`: {}",
                    unlisted.join(", ")
                ),
            )
            .hint("list every level that occurs, or filter the rows first with a `filter` block"));
    }
    let new_codes = codes.iter().map(|c| c.and_then(|c| position[c])).collect();
    Ok((order.to_vec(), new_codes))
}

// ---------------------------------------------------------------------------------------------
// Presentation helpers shared by the kinds that draw figures and tables.

// These return the crate's `Diagnostic` like every block does (clippy's result_large_err).

/// Validate a `[figure]` width (a fraction of the text width, default 1).
#[allow(clippy::result_large_err)]
pub fn figure_width(env: &BlockEnv, width: Option<f64>) -> R<f64> {
    match width {
        None => Ok(1.0),
        Some(w) if w.is_finite() && w > 0.0 && w <= 1.0 => Ok(w),
        Some(w) => Err(env.error(
            "width",
            format!("`width` is a fraction of the text width between 0 and 1 (got {w})"),
        )),
    }
}

/// A figure artifact named after the block (`<id>` for the first figure, `<id>-<n>` after).
#[allow(clippy::result_large_err)]
pub fn figure_artifact(
    env: &BlockEnv,
    svg: String,
    caption: &str,
    label: Option<&str>,
    width: Option<f64>,
    index: usize,
) -> R<crate::analysis::artifacts::Figure> {
    Ok(crate::analysis::artifacts::Figure {
        name: artifact_name(env, index),
        svg,
        caption: caption.to_string(),
        label: label.map(str::to_string),
        width: figure_width(env, width)?,
    })
}

/// A table artifact named after the block (rename it for a second table), with the spec's caption, label and notes after `notes`.
pub fn table_artifact(
    env: &BlockEnv,
    spec: &super::TableSpec,
    header: Vec<String>,
    align: Vec<crate::analysis::artifacts::Align>,
    groups: Vec<crate::analysis::artifacts::ColumnGroup>,
    rows: Vec<crate::analysis::artifacts::Row>,
    notes: Vec<String>,
) -> crate::analysis::artifacts::Table {
    let mut all_notes = notes;
    all_notes.extend(spec.notes.iter().cloned());
    crate::analysis::artifacts::Table {
        name: artifact_name(env, 0),
        caption: spec.caption.clone(),
        label: spec.label.clone(),
        header,
        align,
        groups,
        rows,
        notes: all_notes,
    }
}

pub fn artifact_name(env: &BlockEnv, index: usize) -> String {
    if index == 0 {
        env.block.id.clone()
    } else {
        format!("{}-{}", env.block.id, index + 1)
    }
}

/// How tables and figures name a column: its label from the schema, else its name.
pub fn display_label(data: &Dataset, name: &str) -> String {
    data.column(name)
        .map_or_else(|| name.to_string(), |c| c.display_label().to_string())
}

/// Display label of a model term (`age`, `race=white`): the `labels` map by term, then by variable
/// for numeric terms, else "<variable label>: <level>" for a factor level.
pub fn term_label(data: &Dataset, term: &str, labels: &IndexMap<String, String>) -> String {
    if let Some(l) = labels.get(term) {
        return l.clone();
    }
    match term.split_once('=') {
        Some((variable, level)) if data.column(variable).is_some() => {
            let v = labels
                .get(variable)
                .cloned()
                .unwrap_or_else(|| display_label(data, variable));
            format!("{v}: {level}")
        }
        _ => display_label(data, term),
    }
}

/// Reorder factor levels as R's `factor(x, levels = ...)`: `levels` maps a categorical covariate
/// to its levels in the wanted order (the first is the default reference level). Every level
/// present in the data must be listed.
#[allow(clippy::result_large_err)]
pub fn reorder_covariate_levels(
    env: &BlockEnv,
    covariates: &mut [CovariateColumn],
    levels: &IndexMap<String, Vec<String>>,
) -> R<()> {
    for (variable, order) in levels {
        let Some(c) = covariates.iter_mut().find(|c| c.name() == variable) else {
            return Err(env.error(
                "levels",
                format!("`levels` names `{variable}`, which is not among the covariates"),
            ));
        };
        let CovariateColumn::Categorical {
            levels: old,
            codes,
            reference,
            ..
        } = c
        else {
            return Err(env.error(
                "levels",
                format!("`{variable}` is numeric; list it under `factors` to give it levels"),
            ));
        };
        let mut map = Vec::with_capacity(old.len());
        for (i, level) in old.iter().enumerate() {
            match order.iter().position(|l| l == level) {
                Some(p) => map.push(p),
                None if !codes.contains(&Some(i)) => map.push(usize::MAX),
                None => {
                    return Err(env.error(
                        "levels",
                        format!("`levels` of `{variable}` leaves out `{level}`, which occurs in the data"),
                    ));
                }
            }
        }
        for code in codes.iter_mut().flatten() {
            *code = map[*code];
        }
        if let Some(r) = reference
            && !order.contains(r)
        {
            return Err(env.error(
                "reference",
                format!("`{r}` is not among the `levels` of `{variable}`"),
            ));
        }
        *old = order.clone();
    }
    Ok(())
}
