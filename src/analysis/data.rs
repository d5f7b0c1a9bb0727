//! Data blocks: counting, deriving columns, filtering a cohort, and survival times from dates.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::json;

use super::columns::MissingPolicy;
use super::expr::{self, RowExpr};
use super::{BlockEnv, Output, grouping};
use crate::diagnostics::Diagnostic;
use crate::study::dataset::{Column, ColumnData, Dataset, parse_date};

type BlockResult = std::result::Result<Output, Diagnostic>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountSpec {
    #[allow(dead_code)]
    id: String,
    #[allow(dead_code)]
    kind: String,
    data: String,
    /// Count only rows where this expression is true.
    #[serde(rename = "where")]
    filter: Option<String>,
    /// Count by the levels of this column.
    by: Option<String>,
    /// What to do when `where` is missing on a row (the row is not counted).
    #[serde(default)]
    missing: MissingPolicy,
}

/// `count`: rows, optionally where a condition holds, optionally by group, with percentages.
/// Result: `n`, `total` (rows before `where`), `pct` (n / total), and `levels` keyed by level
/// (`{n, pct}` with pct of `n`), plus `missing` when grouped.
pub fn count(env: &BlockEnv) -> BlockResult {
    let spec: CountSpec = env.block.parse_spec()?;
    let data = env.dataset(&spec.data)?;
    let selection = match &spec.filter {
        Some(f) => selected_rows(env, data, f, spec.missing)?,
        None => Selection::all(data.n_rows),
    };
    let rows = &selection.rows;
    let n = rows.len();
    let total = data.n_rows;
    let mut value = json!({
        "n": n,
        "total": total,
        "pct": if total > 0 { Some(n as f64 / total as f64) } else { None },
        "where_missing": selection.missing,
    });
    if let Some(by) = &spec.by {
        let column = env.column(data, by, "by")?;
        let (levels, codes) = grouping(column);
        let mut counts = vec![0usize; levels.len()];
        let mut missing = 0;
        for &r in rows {
            match codes[r] {
                Some(c) => counts[c] += 1,
                None => missing += 1,
            }
        }
        let mut by_level = serde_json::Map::new();
        for (level, c) in levels.iter().zip(&counts) {
            by_level.insert(
                level.clone(),
                json!({"n": c, "pct": if n > 0 { Some(*c as f64 / n as f64) } else { None }}),
            );
        }
        value["levels"] = serde_json::Value::Object(by_level);
        value["missing"] = json!(missing);
    }
    Ok(Output {
        value,
        warnings: selection.warning.into_iter().collect(),
        ..Default::default()
    })
}

/// The rows a `where` condition selects.
struct Selection {
    rows: Vec<usize>,
    /// Rows where the condition was missing (neither selected nor counted as false).
    missing: usize,
    warning: Option<String>,
}

impl Selection {
    fn all(n: usize) -> Selection {
        Selection {
            rows: (0..n).collect(),
            missing: 0,
            warning: None,
        }
    }
}

/// Rows where the `where` condition is true, as R's `subset` and dplyr's `filter` keep them: a row
/// where it is missing is dropped, and counted, and (unless the block says `missing = "exclude"`)
/// warned about, since such a row is neither selected nor known to fail the condition.
fn selected_rows(
    env: &BlockEnv,
    data: &Dataset,
    source: &str,
    policy: MissingPolicy,
) -> Result<Selection, Diagnostic> {
    let key = "where";
    let truth = super::columns::indicator(env, data, source, key)?;
    let rows: Vec<usize> = (0..data.n_rows)
        .filter(|&r| truth[r] == Some(true))
        .collect();
    let missing = truth.iter().filter(|t| t.is_none()).count();
    let summary = || {
        // Only for the message: `indicator` above compiled the expression already.
        let columns = RowExpr::compile(source, data)
            .map(|e| e.columns().join("`, `"))
            .unwrap_or_default();
        format!(
            "`where = \"{source}\"` is missing on {missing} of {} rows (it reads `{columns}`)",
            data.n_rows
        )
    };
    let warning = match policy {
        _ if missing == 0 => None,
        MissingPolicy::Exclude => None,
        MissingPolicy::Warn => Some(format!(
            "{}, so they are left out; write `missing = \"exclude\"` in the block to accept this without a warning",
            summary()
        )),
        MissingPolicy::Fail => {
            return Err(env.error("missing", summary()).hint(
                "`missing = \"fail\"` stops the build when the condition is missing on a row; test for it with `is none` or remove the setting",
            ));
        }
    };
    Ok(Selection {
        rows,
        missing,
        warning,
    })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DeriveColumn {
    Expr(String),
    Full {
        expr: String,
        label: Option<String>,
        levels: Option<Vec<String>>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeriveSpec {
    #[allow(dead_code)]
    id: String,
    #[allow(dead_code)]
    kind: String,
    data: String,
    /// New columns, in order: `name = "expression"` or `name = { expr, label, levels }`.
    /// Later columns may use earlier ones.
    columns: IndexMap<String, DeriveColumn>,
}

/// `derive`: a copy of the dataset with new (or replaced) columns computed row by row.
pub fn derive(env: &BlockEnv) -> BlockResult {
    let spec: DeriveSpec = env.block.parse_spec()?;
    let mut data = env.dataset(&spec.data)?.clone();
    data.name = env.block.id.clone();
    let mut missing = serde_json::Map::new();
    for (name, column) in &spec.columns {
        let (source, label, levels) = match column {
            DeriveColumn::Expr(e) => (e.as_str(), None, None),
            DeriveColumn::Full {
                expr,
                label,
                levels,
            } => (expr.as_str(), label.clone(), levels.as_deref()),
        };
        let located = |m: String| env.error(name, format!("column `{name}`: {m}"));
        let compiled = RowExpr::compile(source, &data).map_err(located)?;
        let values = compiled
            .eval_all(&data, env.expression_limit(name))
            .map_err(located)?;
        let column_data =
            expr::values_to_column(values, levels, compiled.result_kind(&data)).map_err(located)?;
        let n_missing = (0..column_data.len())
            .filter(|&r| column_data.is_missing(r))
            .count();
        missing.insert(name.clone(), json!(n_missing));
        data.set_column(Column {
            name: name.clone(),
            label,
            data: column_data.into(),
        });
    }
    let value = json!({ "n": data.n_rows, "columns": spec.columns.keys().collect::<Vec<_>>(), "missing": missing });
    Ok(Output {
        value,
        dataset: Some(data),
        ..Default::default()
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterSpec {
    #[allow(dead_code)]
    id: String,
    #[allow(dead_code)]
    kind: String,
    data: String,
    /// Keep rows where this expression is true (rows where it is missing are dropped).
    #[serde(rename = "where")]
    filter: String,
    /// What to do when `where` is missing on a row (the row is dropped).
    #[serde(default)]
    missing: MissingPolicy,
}

/// `filter`: the rows of a dataset where a condition holds. Result: `n`, `excluded`, `total`.
pub fn filter(env: &BlockEnv) -> BlockResult {
    let spec: FilterSpec = env.block.parse_spec()?;
    let data = env.dataset(&spec.data)?;
    let selection = selected_rows(env, data, &spec.filter, spec.missing)?;
    let rows = &selection.rows;
    let subset = data.take(env.block.id.clone(), rows);
    let value = json!({
        "n": rows.len(),
        "excluded": data.n_rows - rows.len(),
        "where_missing": selection.missing,
        "total": data.n_rows,
    });
    Ok(Output {
        value,
        dataset: Some(subset),
        warnings: selection.warning.into_iter().collect(),
        ..Default::default()
    })
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum TimeUnit {
    Days,
    Weeks,
    Months,
    Years,
}

impl TimeUnit {
    fn days(self) -> f64 {
        match self {
            TimeUnit::Days => 1.0,
            TimeUnit::Weeks => 7.0,
            TimeUnit::Months => expr::DAYS_PER_MONTH,
            TimeUnit::Years => expr::DAYS_PER_YEAR,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SurvivalTimeSpec {
    #[allow(dead_code)]
    id: String,
    #[allow(dead_code)]
    kind: String,
    data: String,
    /// Date column where follow-up starts (e.g. the operation).
    start: String,
    /// Date column of the event or last contact.
    end: String,
    /// Expression true when `end` is the event (e.g. `vital_status == 'dead'`).
    event: String,
    #[serde(default = "default_unit")]
    unit: TimeUnit,
    /// Names of the new columns.
    #[serde(default = "default_time")]
    time: String,
    #[serde(default = "default_status")]
    status: String,
}

fn default_unit() -> TimeUnit {
    TimeUnit::Months
}
fn default_time() -> String {
    "time".into()
}
fn default_status() -> String {
    "status".into()
}

/// `survival_time`: time from `start` to `end` in the chosen unit and an event indicator, with
/// administrative censoring at the study's cutoff (as-of) date: patients whose follow-up starts
/// after the cutoff are excluded; events or contacts after it are censored at the cutoff.
pub fn survival_time(env: &BlockEnv) -> BlockResult {
    let spec: SurvivalTimeSpec = env.block.parse_spec()?;
    let data = env.dataset(&spec.data)?;
    let date_column =
        |name: &str, key: &str| -> Result<Vec<Option<jiff::civil::Date>>, Diagnostic> {
            let column = env.column(data, name, key)?;
            match &*column.data {
                ColumnData::Date(v) => Ok(v.clone()),
                ColumnData::String(_) | ColumnData::Category { .. } => (0..data.n_rows)
                    .map(|r| match column.data.text(r) {
                        None => Ok(None),
                        Some(t) => parse_date(&t, None).map(Some).ok_or_else(|| {
                            env.error(
                                key,
                                format!("column `{name}` row {}: `{t}` is not a date", r + 1),
                            )
                        }),
                    })
                    .collect(),
                other => Err(env.error(
                    key,
                    format!(
                        "column `{name}` is {}, expected a date",
                        other.kind().name()
                    ),
                )),
            }
        };
    let starts = date_column(&spec.start, "start")?;
    let ends = date_column(&spec.end, "end")?;
    let events = super::columns::indicator(env, data, &spec.event, "event")?;

    let cutoff = env.settings.cutoff;
    let mut keep = Vec::with_capacity(data.n_rows);
    let mut times = Vec::with_capacity(data.n_rows);
    let mut status = Vec::with_capacity(data.n_rows);
    let (mut after_cutoff, mut censored_at_cutoff, mut negative) = (0usize, 0usize, Vec::new());
    for row in 0..data.n_rows {
        // A patient whose follow-up starts after the cutoff was not yet in the study at the as-of
        // date, whether or not the end is known.
        if let (Some(start), Some(c)) = (starts[row], cutoff)
            && start > c
        {
            after_cutoff += 1;
            continue;
        }
        let (Some(start), Some(end)) = (starts[row], ends[row]) else {
            keep.push(row);
            times.push(None);
            status.push(None);
            continue;
        };
        let mut end = end;
        let mut event = events[row];
        if let Some(c) = cutoff
            && end > c
        {
            end = c;
            event = Some(false);
            censored_at_cutoff += 1;
        }
        let days = (end - start).get_days();
        if days < 0 {
            negative.push(row + 2);
        }
        keep.push(row);
        times.push(Some(days as f64 / spec.unit.days()));
        status.push(event);
    }
    if !negative.is_empty() {
        let lines: Vec<String> = negative.iter().take(10).map(|l| l.to_string()).collect();
        return Err(env.error(
            "end",
            format!(
                "`{}` is before `{}` on {} row(s) (CSV lines {}{}): follow-up time cannot be negative",
                spec.end,
                spec.start,
                negative.len(),
                lines.join(", "),
                if negative.len() > 10 { ", ..." } else { "" }
            ),
        ));
    }
    if keep.is_empty() {
        return Err(env.error(
            "start",
            format!(
                "no patient starts follow-up on or before the cutoff {} ({} start after it)",
                // No cutoff: reached only for a table without rows (no date to show).
                cutoff.map(|c| c.to_string()).unwrap_or_default(),
                after_cutoff
            ),
        ));
    }
    let mut out = data.take(env.block.id.clone(), &keep);
    out.set_column(Column {
        name: spec.time.clone(),
        label: None,
        data: ColumnData::Number(times).into(),
    });
    out.set_column(Column {
        name: spec.status.clone(),
        label: None,
        data: ColumnData::Boolean(status).into(),
    });
    let value = json!({
        "n": out.n_rows,
        "excluded_after_cutoff": after_cutoff,
        "censored_at_cutoff": censored_at_cutoff,
        "cutoff": cutoff.map(|c| c.to_string()),
        "unit": format!("{:?}", spec.unit).to_lowercase(),
    });
    Ok(Output {
        value,
        dataset: Some(out),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use crate::analysis::AnalysisSettings;
    use crate::analysis::table1::tests::{dataset, run_with};
    use crate::study::dataset::ColumnData;

    /// At an as-of date, a patient whose follow-up starts after it is not in the study, even when
    /// the end of follow-up is unknown (it was kept, with a missing time, before).
    #[test]
    fn a_start_after_the_cutoff_excludes_the_row_whatever_the_end() {
        let date = |s: &str| Some(s.parse::<jiff::civil::Date>().unwrap());
        let data = dataset(
            "p",
            vec![
                (
                    "start",
                    ColumnData::Date(vec![
                        date("2019-01-01"),
                        date("2021-02-01"),
                        date("2021-03-01"),
                    ]),
                ),
                (
                    "end",
                    ColumnData::Date(vec![date("2020-01-01"), None, date("2021-06-01")]),
                ),
                (
                    "dead",
                    ColumnData::Boolean(vec![Some(true), None, Some(false)]),
                ),
            ],
        );
        let settings = AnalysisSettings {
            cutoff: date("2020-12-31"),
            ..AnalysisSettings::standalone()
        };
        let out = run_with(
            "id = \"s\"\nkind = \"survival_time\"\ndata = \"p\"\nstart = \"start\"\nend = \"end\"\nevent = \"dead\"\n",
            &[data],
            &settings,
        )
        .unwrap();
        assert_eq!(out.value["excluded_after_cutoff"], 2, "{}", out.value);
        assert_eq!(out.dataset.unwrap().n_rows, 1);
    }
}
