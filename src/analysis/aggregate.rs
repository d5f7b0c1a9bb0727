//! `aggregate`: summarise a child table (several rows per parent, e.g. one row per lesion) into
//! new columns of the parent table (one row per patient).

// Blocks return the crate's `Diagnostic` (located, with hints) as errors.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::json;

use super::columns::MissingPolicy;
use super::expr::{self, RowExpr, Value};
use super::{BlockEnv, Output};
use crate::diagnostics::Diagnostic;
use crate::study::dataset::{Column, ColumnData, Dataset};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OnSpec {
    child: String,
    parent: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregateSpec {
    #[allow(dead_code)]
    id: String,
    #[allow(dead_code)]
    kind: String,
    /// The child table (several rows per parent).
    data: String,
    /// The parent table the new columns are added to.
    into: String,
    /// Key column with the same name in both tables.
    by: Option<String>,
    /// Key columns named differently: `{ child = "patient_id", parent = "id" }`.
    on: Option<OnSpec>,
    /// New columns: `name = "function(expression)"`.
    columns: IndexMap<String, String>,
    /// Whether skipping missing child values warns (`warn`), is silent (`exclude`) or stops the
    /// build (`fail`).
    #[serde(default)]
    missing: MissingPolicy,
}

/// The summary functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Count,
    Any,
    All,
    Sum,
    Min,
    Max,
    Mean,
    First,
}

const FUNCTIONS: &str = "count(), count(<expr>), any(<expr>), all(<expr>), sum(<expr>), min(<expr>), max(<expr>), mean(<expr>), first(<expr>)";

/// Split `any(size > 3)` into the function and its argument (`None` for `count()`).
fn parse_call(source: &str) -> Result<(Function, Option<&str>), String> {
    let s = source.trim();
    let bad = || format!("`{s}` is not a summary; write one of {FUNCTIONS}");
    let open = s.find('(').ok_or_else(bad)?;
    if !s.ends_with(')') {
        return Err(bad());
    }
    let name = s[..open].trim();
    let arg = s[open + 1..s.len() - 1].trim();
    let function = match name {
        "count" => Function::Count,
        "any" => Function::Any,
        "all" => Function::All,
        "sum" => Function::Sum,
        "min" => Function::Min,
        "max" => Function::Max,
        "mean" => Function::Mean,
        "first" => Function::First,
        other => {
            return Err(format!(
                "unknown summary function `{other}` in `{s}`; the functions are {FUNCTIONS}"
            ));
        }
    };
    if arg.is_empty() {
        if function == Function::Count {
            return Ok((function, None));
        }
        return Err(format!(
            "`{name}()` needs an expression, e.g. `{name}(size_mm)`"
        ));
    }
    Ok((function, Some(arg)))
}

/// `aggregate`: the parent dataset with one new column per entry of `columns`, computed over each
/// parent's child rows. Missing child values are skipped. A parent without child rows (or without
/// non-missing values) gets `count` 0, `any` false, and a missing value for the other functions.
/// Result: `n` (parent rows), `child_rows`, `without_children`, `columns`, `missing` per new column.
pub fn aggregate(env: &BlockEnv) -> Result<Output, Diagnostic> {
    let spec: AggregateSpec = env.block.parse_spec()?;
    let child = env.dataset(&spec.data)?;
    let parent = env.datasets.get(&spec.into).ok_or_else(|| {
        env.error(
            "into",
            format!(
                "no dataset named `{}` (datasets defined before this block: {})",
                spec.into,
                env.datasets.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let (child_key, parent_key, key_field) = match (&spec.by, &spec.on) {
        (Some(by), None) => (by.clone(), by.clone(), "by"),
        (None, Some(on)) => (on.child.clone(), on.parent.clone(), "on"),
        _ => {
            return Err(env.error(
                "by",
                "give the key as `by = \"column\"` (same name in both tables) or `on = { child = \"...\", parent = \"...\" }`",
            ));
        }
    };
    let child_column = env.column(child, &child_key, key_field)?;
    let parent_column = env.column(parent, &parent_key, key_field)?;
    if spec.columns.is_empty() {
        return Err(env.error("columns", "list at least one new column under [columns]"));
    }

    let children = children_by_parent(
        env,
        child,
        parent,
        (child_column, parent_column),
        (&parent_key, key_field),
    )?;

    let mut out = parent.clone();
    out.name = env.block.id.clone();
    let (mut missing, mut skipped) = (serde_json::Map::new(), serde_json::Map::new());
    let mut warnings = Vec::new();
    for (name, source) in &spec.columns {
        let (data, n_skipped) =
            summary_column(env, &spec, child, &children, (name, source), &mut warnings)?;
        let n_missing = (0..data.len()).filter(|&r| data.is_missing(r)).count();
        missing.insert(name.clone(), json!(n_missing));
        skipped.insert(name.clone(), json!(n_skipped));
        out.set_column(Column {
            name: name.clone(),
            label: None,
            data: data.into(),
        });
    }
    let value = json!({
        "n": out.n_rows,
        "child_rows": child.n_rows,
        "without_children": children.iter().filter(|c| c.is_empty()).count(),
        "columns": spec.columns.keys().collect::<Vec<_>>(),
        "missing": missing,
        "skipped": skipped,
    });
    Ok(Output {
        value,
        dataset: Some(out),
        warnings,
        ..Default::default()
    })
}

/// Child rows per parent row, in child order: parent keys must be present and unique, and every
/// child key a parent's (else an error listing the strays).
fn children_by_parent(
    env: &BlockEnv,
    child: &Dataset,
    parent: &Dataset,
    (child_column, parent_column): (&Column, &Column),
    (parent_key, key_field): (&str, &str),
) -> Result<Vec<Vec<usize>>, Diagnostic> {
    // Parent key -> parent row (unique, present).
    let mut parent_row: HashMap<String, usize> = HashMap::new();
    for r in 0..parent.n_rows {
        let key = parent_column.data.text(r).ok_or_else(|| {
            env.error(
                key_field,
                format!(
                    "key `{parent_key}` of `{}` is missing on row {}",
                    parent.name,
                    r + 1
                ),
            )
        })?;
        if parent_row.insert(key.clone(), r).is_some() {
            return Err(env.error(
                key_field,
                format!(
                    "key `{parent_key}` is not unique in `{}`: `{key}` appears more than once",
                    parent.name
                ),
            ));
        }
    }
    // Child rows per parent row, in child order.
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); parent.n_rows];
    let mut orphans: Vec<String> = Vec::new();
    for r in 0..child.n_rows {
        match child_column.data.text(r) {
            None => orphans.push(format!("(missing, row {})", r + 1)),
            Some(key) => match parent_row.get(&key) {
                Some(&p) => children[p].push(r),
                None => orphans.push(key),
            },
        }
    }
    if !orphans.is_empty() {
        orphans.dedup();
        let shown: Vec<&str> = orphans.iter().take(10).map(String::as_str).collect();
        return Err(env
        .error(
            key_field,
            format!(
                "{} key value(s) of `{}` are not in `{}`: {}{}",
                orphans.len(),
                child.name,
                parent.name,
                shown.join(", "),
                if orphans.len() > 10 { ", ..." } else { "" }
            ),
        )
        .hint("every child row must belong to a parent row; fix the keys or filter the child table first"));
    }
    Ok(children)
}

/// One new column: `source` (`function(expression)`) over each parent's child rows, and how many
/// missing child values were skipped (a warning, or an error, as `missing` says).
fn summary_column(
    env: &BlockEnv,
    spec: &AggregateSpec,
    child: &Dataset,
    children: &[Vec<usize>],
    (name, source): (&String, &String),
    warnings: &mut Vec<String>,
) -> Result<(ColumnData, usize), Diagnostic> {
    let (function, arg) = parse_call(source).map_err(|m| env.error(name, m))?;
    let located = |m: String| env.error(name, format!("column `{name}` = `{source}`: {m}"));
    let (values, levels) = match arg {
        None => (vec![Value::Bool(true); child.n_rows], None),
        Some(arg) => argument_values(env, child, name, arg, function)?,
    };
    let mut n_skipped = 0;
    let per_parent: Vec<Value> = children
        .iter()
        .map(|rows| {
            let present: Vec<&Value> = rows
                .iter()
                .map(|&r| &values[r])
                .filter(|v| !v.is_missing())
                .collect();
            n_skipped += rows.len() - present.len();
            // Children whose every value is unknown tell nothing: the summary is unknown too
            // (R's `na.rm = TRUE` would answer `any` false and `count` 0).
            if present.is_empty() && !rows.is_empty() {
                return Ok(Value::Missing);
            }
            summarise(function, &present)
        })
        .collect::<Result<_, String>>()
        .map_err(located)?;
    let per_parent = match &levels {
        Some(levels) => per_parent
            .into_iter()
            .map(|v| match v {
                Value::Int(code) => Value::Str(levels[code as usize].as_str().into()),
                other => other,
            })
            .collect(),
        None => per_parent,
    };
    let data = expr::values_to_column(per_parent, levels.as_deref(), None).map_err(located)?;
    if n_skipped > 0 {
        let message = format!(
            "column `{name}` = `{source}`: {n_skipped} of {} child values are missing and were skipped (a parent whose every value is missing gets a missing value)",
            child.n_rows
        );
        match spec.missing {
        MissingPolicy::Warn => warnings.push(format!(
            "{message}; write `missing = \"exclude\"` in the block to accept this without a warning"
        )),
        MissingPolicy::Exclude => {}
        MissingPolicy::Fail => return Err(env.error("missing", message)),
    }
    }
    Ok((data, n_skipped))
}

/// The argument of a summary on every child row. `min`, `max` and `first` of a category column
/// work on its level positions (so that `max(grade)` follows the listed order, not the alphabet)
/// and return those levels, which the new column keeps.
fn argument_values(
    env: &BlockEnv,
    child: &crate::study::dataset::Dataset,
    name: &str,
    arg: &str,
    function: Function,
) -> Result<(Vec<Value>, Option<Vec<String>>), Diagnostic> {
    let compiled = RowExpr::compile(arg, child).map_err(|m| env.error(name, m))?;
    if matches!(function, Function::Min | Function::Max | Function::First)
        && let Some(column) = compiled.bare_column().and_then(|c| child.column(c))
        && let crate::study::dataset::ColumnData::Category { levels, codes } = &*column.data
    {
        let values = codes
            .iter()
            .map(|c| c.map_or(Value::Missing, |c| Value::Int(i64::from(c))))
            .collect();
        return Ok((values, Some(levels.clone())));
    }
    let values = compiled
        .eval_all(child, env.expression_limit(name))
        .map_err(|m| env.error(name, m))?;
    Ok((values, None))
}

fn as_bool(v: &Value, what: &str) -> Result<bool, String> {
    v.as_bool()
        .map(|b| b.unwrap_or(false))
        .map_err(|m| format!("{what} needs a true/false (or 0/1) expression: {m}"))
}

fn as_number(v: &Value, what: &str) -> Result<f64, String> {
    v.as_f64()
        .ok_or_else(|| format!("{what} needs a number, got {v}"))
}

/// One parent's summary of its children's non-missing values (R's `na.rm = TRUE`).
fn summarise(function: Function, values: &[&Value]) -> Result<Value, String> {
    Ok(match function {
        Function::Count => {
            let mut n = 0i64;
            for v in values {
                n += i64::from(as_bool(v, "count(...)")?);
            }
            Value::Int(n)
        }
        Function::Any => {
            let mut any = false;
            for v in values {
                any |= as_bool(v, "any(...)")?;
            }
            Value::Bool(any)
        }
        Function::All => {
            if values.is_empty() {
                return Ok(Value::Missing);
            }
            let mut all = true;
            for v in values {
                all &= as_bool(v, "all(...)")?;
            }
            Value::Bool(all)
        }
        Function::Sum | Function::Mean => {
            if values.is_empty() {
                return Ok(Value::Missing);
            }
            let mut total = 0.0;
            for v in values {
                total += as_number(v, "sum(...) and mean(...)")?;
            }
            let integers = values
                .iter()
                .all(|v| matches!(v, Value::Int(_) | Value::Bool(_)));
            if function == Function::Mean {
                Value::Num(total / values.len() as f64)
            } else if integers {
                Value::Int(total as i64)
            } else {
                Value::Num(total)
            }
        }
        Function::Min | Function::Max => extreme(function, values)?,
        Function::First => values.first().map_or(Value::Missing, |v| (*v).clone()),
    })
}

/// The smallest or largest value: numbers by value, text and dates in their order.
fn extreme(function: Function, values: &[&Value]) -> Result<Value, String> {
    let Some(first) = values.first() else {
        return Ok(Value::Missing);
    };
    let mut best: &Value = first;
    for v in &values[1..] {
        let ordering = match (v, best) {
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            (Value::Date(a), Value::Date(b)) => a.cmp(b),
            _ => {
                let (a, b) = (
                    as_number(v, "min(...) and max(...)")?,
                    as_number(best, "min(...) and max(...)")?,
                );
                a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal)
            }
        };
        let better = match function {
            Function::Min => ordering.is_lt(),
            _ => ordering.is_gt(),
        };
        if better {
            best = v;
        }
    }
    Ok(best.clone())
}

#[cfg(test)]
mod tests {
    use crate::analysis::table1::tests::{dataset, run, text};
    use crate::study::dataset::{ColumnData, Dataset};

    /// Patients p1, p2, p3; lesions: p1 has sizes 10 and 30 (one fractured), p3 has one lesion of
    /// unknown size, p2 has none.
    fn tables() -> Vec<Dataset> {
        vec![
            dataset(
                "patients",
                vec![("id", text(&[Some("p1"), Some("p2"), Some("p3")]))],
            ),
            dataset(
                "lesions",
                vec![
                    ("patient", text(&[Some("p1"), Some("p3"), Some("p1")])),
                    ("size", ColumnData::Integer(vec![Some(10), None, Some(30)])),
                    (
                        "fracture",
                        ColumnData::Boolean(vec![Some(false), Some(false), Some(true)]),
                    ),
                ],
            ),
        ]
    }

    const SPEC: &str = r#"
id = "per_patient"
kind = "aggregate"
data = "lesions"
into = "patients"
on = { child = "patient", parent = "id" }
[columns]
n = "count()"
big = "count(size > 20)"
fractured = "any(fracture)"
all_fractured = "all(fracture)"
total = "sum(size)"
smallest = "min(size)"
largest = "max(size)"
mean_size = "mean(size)"
first_size = "first(size)"
"#;

    /// `max` of a category follows its listed levels (R's ordered factor), not the alphabet.
    #[test]
    fn extremes_of_a_category_follow_its_level_order() {
        let mut t = tables();
        t[1].set_column(crate::study::dataset::Column::new(
            "grade",
            crate::analysis::table1::tests::category(
                &["low", "medium", "high"],
                &[Some("high"), Some("medium"), Some("low")],
            ),
        ));
        let spec = r#"
id = "per_patient"
kind = "aggregate"
data = "lesions"
into = "patients"
on = { child = "patient", parent = "id" }
[columns]
worst = "max(grade)"
best = "min(grade)"
"#;
        let d = run(spec, &t).unwrap().dataset.unwrap();
        let levels = |v: &[Option<&str>]| {
            crate::analysis::table1::tests::category(&["low", "medium", "high"], v)
        };
        // p1 has high and low; p3 has medium; p2 has no lesion.
        assert_eq!(
            d.column("worst").unwrap().data.as_ref(),
            &levels(&[Some("high"), None, Some("medium")])
        );
        assert_eq!(
            d.column("best").unwrap().data.as_ref(),
            &levels(&[Some("low"), None, Some("medium")])
        );
    }

    #[test]
    fn summaries_by_hand() {
        let out = run(SPEC, &tables()).unwrap();
        let d = out.dataset.unwrap();
        assert_eq!(d.name, "per_patient");
        assert_eq!(d.n_rows, 3);
        let col = |name: &str| d.column(name).unwrap().data.as_ref().clone();
        assert_eq!(
            col("n"),
            ColumnData::Integer(vec![Some(2), Some(0), Some(1)])
        );
        // p3's only lesion has no size: size > 20 is unknown there, so p3's count is unknown
        // (not 0), and the block says it skipped a missing value.
        assert_eq!(
            col("big"),
            ColumnData::Integer(vec![Some(1), Some(0), None])
        );
        assert_eq!(out.value["skipped"]["big"], 1);
        assert!(
            out.warnings.iter().any(|w| w
                .contains("column `big` = `count(size > 20)`: 1 of 3 child values are missing")),
            "{:?}",
            out.warnings
        );
        assert_eq!(
            col("fractured"),
            ColumnData::Boolean(vec![Some(true), Some(false), Some(false)])
        );
        assert_eq!(
            col("all_fractured"),
            ColumnData::Boolean(vec![Some(false), None, Some(false)])
        );
        assert_eq!(
            col("total"),
            ColumnData::Integer(vec![Some(40), None, None])
        );
        // A sum of true/false counts the true values.
        let spec = SPEC.replace("sum(size)", "sum(fracture)");
        let d2 = run(&spec, &tables()).unwrap().dataset.unwrap();
        assert_eq!(
            d2.column("total").unwrap().data.as_ref(),
            &ColumnData::Integer(vec![Some(1), None, Some(0)])
        );
        assert_eq!(
            col("smallest"),
            ColumnData::Integer(vec![Some(10), None, None])
        );
        assert_eq!(
            col("largest"),
            ColumnData::Integer(vec![Some(30), None, None])
        );
        assert_eq!(
            col("mean_size"),
            ColumnData::Number(vec![Some(20.0), None, None])
        );
        assert_eq!(
            col("first_size"),
            ColumnData::Integer(vec![Some(10), None, None])
        );
        assert_eq!(out.value["without_children"], 1);
        assert_eq!(out.value["missing"]["total"], 2);
        // The parent's own columns stay.
        assert!(d.column("id").is_some());
    }

    #[test]
    fn errors() {
        let err = |spec: String, data: &[Dataset]| run(&spec, data).unwrap_err().message;
        assert!(
            err(SPEC.replace("count(size > 20)", "median(size)"), &tables())
                .contains("unknown summary function `median`")
        );
        assert!(
            err(SPEC.replace("\"any(fracture)\"", "\"any()\""), &tables())
                .contains("needs an expression")
        );
        assert!(
            err(SPEC.replace("sum(size)", "sum(patient)"), &tables()).contains("needs a number")
        );
        assert!(
            err(SPEC.replace("count(size > 20)", "count(size)"), &tables()).contains("true/false")
        );
        assert!(
            err(
                SPEC.replace("child = \"patient\"", "child = \"patent\""),
                &tables()
            )
            .contains("no column `patent`")
        );
        // A child key that is not a parent.
        let mut t = tables();
        t[1] = dataset(
            "lesions",
            vec![
                ("patient", text(&[Some("p1"), Some("p9"), Some("p1")])),
                ("size", ColumnData::Integer(vec![Some(10), None, Some(30)])),
                (
                    "fracture",
                    ColumnData::Boolean(vec![Some(false), Some(false), Some(true)]),
                ),
            ],
        );
        assert!(err(SPEC.to_string(), &t).contains("are not in `patients`: p9"));
        // Duplicate parent keys.
        let mut t = tables();
        t[0] = dataset(
            "patients",
            vec![("id", text(&[Some("p1"), Some("p1"), Some("p3")]))],
        );
        assert!(err(SPEC.to_string(), &t).contains("not unique"));
    }
}
