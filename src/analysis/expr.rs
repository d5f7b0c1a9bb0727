//! Row expressions for `derive` and `filter` blocks, evaluated by minijinja's expression engine
//! (the same language as the prose templates, so authors learn one syntax).
//!
//! Columns are variables; dates are ISO strings with helper functions (`days`, `months`, `years`,
//! `year`). A missing value is `none`. If an expression fails on a row where one of the columns it
//! uses is missing, the result for that row is missing (like R's NA); any other failure is an error
//! naming the row.

use std::collections::BTreeSet;
use std::sync::Arc;

use minijinja::value::{Object, Value};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

use crate::dataset::{ColumnData, Dataset, parse_date};

/// Days in a month and a year as the study's derivations define them (365.25 / 12 and 365.25).
pub const DAYS_PER_MONTH: f64 = 30.4375;
pub const DAYS_PER_YEAR: f64 = 365.25;

pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(100_000));
    fn span(from: Value, to: Value, per: f64) -> Result<Value, Error> {
        match (date_arg(&from)?, date_arg(&to)?) {
            (Some(a), Some(b)) => Ok(Value::from((b - a).get_days() as f64 / per)),
            _ => Ok(Value::from(())),
        }
    }
    env.add_function("days", |from: Value, to: Value| span(from, to, 1.0));
    env.add_function("months", |from: Value, to: Value| {
        span(from, to, DAYS_PER_MONTH)
    });
    env.add_function("years", |from: Value, to: Value| {
        span(from, to, DAYS_PER_YEAR)
    });
    env.add_function("year", |d: Value| -> Result<Value, Error> {
        Ok(date_arg(&d)?.map_or(Value::from(()), |d| Value::from(d.year() as i64)))
    });
    env.add_function("is_missing", |v: Value| v.is_none() || v.is_undefined());
    env.add_function(
        "coalesce",
        |a: Value, b: Value| if a.is_none() { b } else { a },
    );
    env
}

fn date_arg(v: &Value) -> Result<Option<jiff::civil::Date>, Error> {
    if v.is_none() {
        return Ok(None);
    }
    let s = v
        .as_str()
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, format!("`{v}` is not a date")))?;
    parse_date(s, None).map(Some).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("`{s}` is not a date (YYYY-MM-DD)"),
        )
    })
}

/// One row of a dataset seen as template variables (no per-row map is built).
#[derive(Debug)]
struct RowView {
    data: Arc<Dataset>,
    row: usize,
}

impl Object for RowView {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let column = self.data.column(key.as_str()?)?;
        Some(cell_value(&column.data, self.row))
    }
}

pub fn cell_value(data: &ColumnData, row: usize) -> Value {
    match data {
        ColumnData::Integer(v) => v[row].map_or(Value::from(()), Value::from),
        ColumnData::Number(v) => v[row].map_or(Value::from(()), Value::from),
        ColumnData::Boolean(v) => v[row].map_or(Value::from(()), Value::from),
        _ => data.text(row).map_or(Value::from(()), Value::from),
    }
}

/// A compiled expression over a dataset's rows.
pub struct RowExpr<'e> {
    expr: minijinja::Expression<'e, 'e>,
    used: BTreeSet<String>,
    source: String,
}

impl<'e> RowExpr<'e> {
    /// Compile; unknown column names are reported (they are the likeliest typo).
    pub fn compile(
        env: &'e Environment<'static>,
        source: &'e str,
        data: &Dataset,
    ) -> Result<RowExpr<'e>, String> {
        // minijinja 2's lexer ends an expression at `}}` and then panics on what follows ("empty
        // lexer stack"; found by fuzzing the analysis blocks): refuse it first.
        if source.contains("}}") {
            return Err(format!(
                "cannot read expression `{source}`: `}}}}` is not allowed in an expression (write `}} }}` to close nested braces)"
            ));
        }
        let expr = env.compile_expression(source).map_err(|e| {
            format!(
                "cannot read expression `{source}`: {}",
                e.detail().unwrap_or(&e.kind().to_string())
            )
        })?;
        let used: BTreeSet<String> = expr.undeclared_variables(false).into_iter().collect();
        let functions = [
            "days",
            "months",
            "years",
            "year",
            "is_missing",
            "coalesce",
            "range",
            "dict",
            "namespace",
        ];
        for name in &used {
            if data.column(name).is_none() && !functions.contains(&name.as_str()) {
                return Err(format!(
                    "expression `{source}` uses `{name}`, which is not a column of `{}` (columns: {})",
                    data.name,
                    data.column_names().join(", ")
                ));
            }
        }
        Ok(RowExpr {
            expr,
            used,
            source: source.to_string(),
        })
    }

    /// Evaluate on every row. `Ok(None)` for a row means missing.
    /// The watchdog ends the build if one row takes longer than `limit` (a lazy list repeated
    /// without end spends no fuel).
    pub fn eval_all(
        &self,
        data: &Arc<Dataset>,
        limit: crate::limits::TimeLimit,
    ) -> Result<Vec<Option<Value>>, String> {
        let watch = crate::limits::watch(limit);
        let mut out = Vec::with_capacity(data.n_rows);
        for row in 0..data.n_rows {
            watch.beat();
            let ctx = Value::from_object(RowView {
                data: data.clone(),
                row,
            });
            match self.expr.eval(ctx) {
                Ok(v) if v.is_none() || v.is_undefined() => out.push(None),
                Ok(v) => out.push(Some(v)),
                Err(e) => {
                    let any_missing = self
                        .used
                        .iter()
                        .filter_map(|c| data.column(c))
                        .any(|c| c.data.is_missing(row));
                    if any_missing {
                        out.push(None);
                    } else {
                        return Err(format!(
                            "expression `{}` failed on data row {} (line {} of the CSV): {}",
                            self.source,
                            row + 1,
                            row + 2,
                            e.detail()
                                .map_or_else(|| e.kind().to_string(), str::to_string)
                        ));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Turn evaluated values into a typed column: booleans, integers, numbers, or a category (levels in
/// the order given, else sorted).
pub fn values_to_column(
    values: Vec<Option<Value>>,
    levels: Option<&[String]>,
) -> Result<ColumnData, String> {
    let present: Vec<&Value> = values.iter().flatten().collect();
    if levels.is_none() {
        if !present.is_empty()
            && present
                .iter()
                .all(|v| v.kind() == minijinja::value::ValueKind::Bool)
        {
            return Ok(ColumnData::Boolean(
                values
                    .iter()
                    .map(|v| v.as_ref().map(|v| v.is_true()))
                    .collect(),
            ));
        }
        if present
            .iter()
            .all(|v| v.kind() == minijinja::value::ValueKind::Number)
        {
            let all_int = present
                .iter()
                .all(|v| v.as_i64().is_some() && !v.to_string().contains('.'));
            if all_int && !present.is_empty() {
                return Ok(ColumnData::Integer(
                    values
                        .iter()
                        .map(|v| v.as_ref().and_then(Value::as_i64))
                        .collect(),
                ));
            }
            let nums: Vec<Option<f64>> = values
                .iter()
                .map(|v| v.as_ref().and_then(|v| f64::try_from(v.clone()).ok()))
                .collect();
            if nums.iter().any(|x| x.is_some_and(|x| !x.is_finite())) {
                return Err("the expression gives a value that is not a finite number".into());
            }
            return Ok(ColumnData::Number(nums));
        }
    }
    let texts: Vec<Option<String>> = values
        .iter()
        .map(|v| v.as_ref().map(|v| v.to_string()))
        .collect();
    let levels: Vec<String> = match levels {
        Some(l) => l.to_vec(),
        None => {
            let mut l: Vec<String> = texts.iter().flatten().cloned().collect();
            l.sort();
            l.dedup();
            l
        }
    };
    let mut codes = Vec::with_capacity(texts.len());
    for t in &texts {
        match t {
            None => codes.push(None),
            Some(t) => match levels.iter().position(|l| l == t) {
                Some(i) => codes.push(Some(i as u32)),
                None => {
                    return Err(format!(
                        "the expression gives `{t}`, which is not one of the levels {levels:?}"
                    ));
                }
            },
        }
    }
    Ok(ColumnData::Category { levels, codes })
}
