//! Row expressions: `derive` columns, `where` conditions, `event`/`outcome`/`treatment` conditions
//! and `aggregate` arguments, evaluated row by row with R's rules for missing values.
//!
//! Written here rather than borrowed from minijinja (whose expression syntax it keeps): a template
//! engine's `none == 1` is false, so a patient with an unknown status would silently count as
//! censored; in R `NA == 1` is NA and the row is left out. No expression crate offers R's
//! three-valued logic, and the language is small, so galley owns its parser (`parse.rs`) and its
//! semantics (`value.rs`). The watchdog still beats once per row, for the functions to come.
//!
//! Columns are variables; dates are dates (compared with each other or with 'YYYY-MM-DD' text);
//! `days`, `months`, `years`, `year` work on them. A missing value is `none`.

pub mod parse;
pub mod value;

use std::sync::Arc;

use jiff::civil::Date;

use crate::study::dataset::{ColumnData, Dataset};
pub use parse::{BinOp, Expr, Function};
pub use value::Value;

/// Days in a month and a year as the study's derivations define them (365.25 / 12 and 365.25).
pub const DAYS_PER_MONTH: f64 = 30.4375;
pub const DAYS_PER_YEAR: f64 = 365.25;

/// A compiled expression over a dataset's rows.
#[derive(Debug, Clone)]
pub struct RowExpr {
    expr: Expr,
    /// The columns the expression reads, in order of first use (`Expr::Column` indexes this).
    columns: Vec<String>,
    source: String,
}

/// Resolves names against a dataset's columns while parsing.
struct DatasetColumns<'d> {
    data: &'d Dataset,
    used: Vec<String>,
    unknown: Option<String>,
}

impl parse::Columns for DatasetColumns<'_> {
    fn resolve(&mut self, name: &str) -> Option<usize> {
        if let Some(i) = self.used.iter().position(|u| u == name) {
            return Some(i);
        }
        if self.data.column(name).is_none() {
            self.unknown = Some(name.to_string());
            return None;
        }
        self.used.push(name.to_string());
        Some(self.used.len() - 1)
    }
}

impl RowExpr {
    /// Compile; an unknown column or function, or a syntax error, is reported with its column in
    /// the expression.
    pub fn compile(source: &str, data: &Dataset) -> Result<RowExpr, String> {
        let mut columns = DatasetColumns {
            data,
            used: Vec::new(),
            unknown: None,
        };
        let expr = parse::parse(source, &mut columns).map_err(|e| {
            let at = source[..e.offset.min(source.len())].chars().count() + 1;
            match &columns.unknown {
                Some(name) if e.message.starts_with("unknown column") => format!(
                    "expression `{source}` uses `{name}`, which is not a column of `{}` (columns: {})",
                    data.name,
                    data.column_names().join(", ")
                ),
                _ => format!("cannot read expression `{source}` at character {at}: {}", e.message),
            }
        })?;
        let is_category = |i: usize| {
            data.column(&columns.used[i])
                .is_some_and(|c| matches!(*c.data, ColumnData::Category { .. }))
        };
        if let Some(i) = ordered_category(&expr, &is_category) {
            let name = &columns.used[i];
            return Err(format!(
                "expression `{source}` orders the category `{name}` with `<`, `<=`, `>` or `>=`, which would compare its levels as text, not in their listed order; test the levels you mean with `{name} in [...]`"
            ));
        }
        Ok(RowExpr {
            expr,
            columns: columns.used,
            source: source.to_string(),
        })
    }

    /// The column the expression is, when it is just a column name.
    pub fn bare_column(&self) -> Option<&str> {
        match self.expr {
            Expr::Column(i) => Some(&self.columns[i]),
            _ => None,
        }
    }

    /// The columns the expression reads.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluate on every row (`Value::Missing` where the result is missing). An error names the
    /// row. The watchdog ends the build if one row takes longer than `limit`.
    pub fn eval_all(
        &self,
        data: &Dataset,
        limit: crate::study::limits::TimeLimit,
    ) -> Result<Vec<Value>, String> {
        let watch = crate::study::limits::watch(limit);
        let readers: Vec<Reader> = self
            .columns
            .iter()
            .map(|name| {
                data.column(name)
                    .map(|c| Reader::new(&c.data))
                    .ok_or_else(|| {
                        format!(
                            "expression `{}` uses `{name}`, which is not a column of `{}`",
                            self.source, data.name
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(data.n_rows);
        for row in 0..data.n_rows {
            watch.beat();
            let value = eval(&self.expr, &readers, row).map_err(|e| {
                format!(
                    "expression `{}` failed on data row {} (line {} of the CSV): {e}",
                    self.source,
                    row + 1,
                    row + 2,
                )
            })?;
            out.push(value);
        }
        Ok(out)
    }

    /// The type of value the expression gives, where its form decides it (so that a derived
    /// column keeps its type even when every row is missing).
    pub fn result_kind(&self, data: &Dataset) -> Option<Kind> {
        kind_of(&self.expr, &|i| {
            data.column(&self.columns[i]).map(|c| match &*c.data {
                ColumnData::Boolean(_) => Kind::Bool,
                ColumnData::Integer(_) => Kind::Int,
                ColumnData::Number(_) => Kind::Num,
                ColumnData::Date(_) => Kind::Date,
                ColumnData::String(_) | ColumnData::Category { .. } => Kind::Text,
            })
        })
    }
}

/// The first category column (by index) that an ordering comparison (`<`, `<=`, `>`, `>=`) takes as
/// an operand. R refuses to order an unordered factor (NA with a warning); galley's categories have a
/// listed level order that text comparison would ignore ("high" < "low"), so it refuses too.
fn ordered_category(expr: &Expr, is_category: &dyn Fn(usize) -> bool) -> Option<usize> {
    // The category a value is, when it is one: a column, or a choice between such values.
    fn category_of(expr: &Expr, is_category: &dyn Fn(usize) -> bool) -> Option<usize> {
        match expr {
            Expr::Column(i) if is_category(*i) => Some(*i),
            Expr::IfElse {
                then, otherwise, ..
            } => category_of(then, is_category).or_else(|| category_of(otherwise, is_category)),
            Expr::Call(Function::Coalesce, args) => {
                args.iter().find_map(|a| category_of(a, is_category))
            }
            _ => None,
        }
    }
    let children: Vec<&Expr> = match expr {
        Expr::Binary(op, a, b) => {
            if matches!(op, BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge)
                && let Some(i) = category_of(a, is_category).or_else(|| category_of(b, is_category))
            {
                return Some(i);
            }
            vec![a, b]
        }
        Expr::Literal(_) | Expr::Column(_) => Vec::new(),
        Expr::List(items) | Expr::Call(_, items) => items.iter().collect(),
        Expr::Negate(a) | Expr::Not(a) => vec![a],
        Expr::And(a, b) | Expr::Or(a, b) => vec![a, b],
        Expr::In { item, list, .. } => vec![item, list],
        Expr::IsNone { value, .. } => vec![value],
        Expr::IfElse {
            condition,
            then,
            otherwise,
        } => vec![condition, then, otherwise],
    };
    children
        .into_iter()
        .find_map(|c| ordered_category(c, is_category))
}

/// The type of an expression's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Num,
    Text,
    Date,
}

fn kind_of(expr: &Expr, column: &dyn Fn(usize) -> Option<Kind>) -> Option<Kind> {
    match expr {
        Expr::Literal(v) => match v {
            Value::Bool(_) => Some(Kind::Bool),
            Value::Int(_) => Some(Kind::Int),
            Value::Num(_) => Some(Kind::Num),
            Value::Str(_) => Some(Kind::Text),
            Value::Date(_) => Some(Kind::Date),
            Value::Missing | Value::List(_) => None,
        },
        Expr::Column(i) => column(*i),
        Expr::List(_) => None,
        Expr::Not(_) | Expr::And(..) | Expr::Or(..) | Expr::In { .. } | Expr::IsNone { .. } => {
            Some(Kind::Bool)
        }
        Expr::Binary(op, a, b) => match op {
            _ if op.is_comparison() => Some(Kind::Bool),
            BinOp::Concat => Some(Kind::Text),
            BinOp::Div => Some(Kind::Num),
            _ => match (kind_of(a, column)?, kind_of(b, column)?) {
                (Kind::Text, Kind::Text) => Some(Kind::Text),
                (Kind::Int | Kind::Bool, Kind::Int | Kind::Bool) => Some(Kind::Int),
                _ => Some(Kind::Num),
            },
        },
        Expr::Negate(a) => match kind_of(a, column)? {
            Kind::Bool => Some(Kind::Int),
            k => Some(k),
        },
        Expr::IfElse {
            then, otherwise, ..
        } => match (kind_of(then, column), kind_of(otherwise, column)) {
            (Some(a), Some(b)) if a == b => Some(a),
            (Some(Kind::Int), Some(Kind::Num)) | (Some(Kind::Num), Some(Kind::Int)) => {
                Some(Kind::Num)
            }
            (Some(a), None) | (None, Some(a)) => Some(a),
            _ => None,
        },
        Expr::Call(f, args) => match f {
            Function::Days | Function::Months | Function::Years => Some(Kind::Num),
            Function::Year => Some(Kind::Int),
            Function::IsMissing => Some(Kind::Bool),
            Function::Coalesce => args.iter().find_map(|a| kind_of(a, column)),
        },
    }
}

/// Reads one column's cells as values, with category levels shared rather than copied per row.
enum Reader<'d> {
    Text(&'d [Option<String>]),
    Category {
        levels: Vec<Arc<str>>,
        codes: &'d [Option<u32>],
    },
    Int(&'d [Option<i64>]),
    Num(&'d [Option<f64>]),
    Date(&'d [Option<Date>]),
    Bool(&'d [Option<bool>]),
}

impl<'d> Reader<'d> {
    fn new(data: &'d ColumnData) -> Reader<'d> {
        match data {
            ColumnData::String(v) => Reader::Text(v),
            ColumnData::Category { levels, codes } => Reader::Category {
                levels: levels.iter().map(|l| Arc::from(l.as_str())).collect(),
                codes,
            },
            ColumnData::Integer(v) => Reader::Int(v),
            ColumnData::Number(v) => Reader::Num(v),
            ColumnData::Date(v) => Reader::Date(v),
            ColumnData::Boolean(v) => Reader::Bool(v),
        }
    }

    fn get(&self, row: usize) -> Value {
        let value = match self {
            Reader::Text(v) => v[row].as_deref().map(|s| Value::Str(s.into())),
            Reader::Category { levels, codes } => {
                codes[row].map(|c| Value::Str(levels[c as usize].clone()))
            }
            Reader::Int(v) => v[row].map(Value::Int),
            Reader::Num(v) => v[row].map(Value::Num),
            Reader::Date(v) => v[row].map(Value::Date),
            Reader::Bool(v) => v[row].map(Value::Bool),
        };
        value.unwrap_or(Value::Missing)
    }
}

/// A condition's truth value (`None`: missing). Numbers 0/1 count as false/true, as R's do.
fn truth(expr: &Expr, readers: &[Reader], row: usize) -> Result<Option<bool>, String> {
    eval(expr, readers, row)?.as_bool()
}

fn eval(expr: &Expr, readers: &[Reader], row: usize) -> Result<Value, String> {
    Ok(match expr {
        Expr::Literal(v) => v.clone(),
        Expr::Column(i) => readers[*i].get(row),
        Expr::List(items) => Value::List(Arc::new(
            items
                .iter()
                .map(|e| eval(e, readers, row))
                .collect::<Result<_, _>>()?,
        )),
        Expr::Negate(a) => match eval(a, readers, row)? {
            Value::Missing => Value::Missing,
            v => value::binary(BinOp::Sub, &Value::Int(0), &v)?,
        },
        Expr::Not(a) => value::from_bool(truth(a, readers, row)?.map(|b| !b)),
        // Kleene logic; the right side is not evaluated when the left decides (as R's `&&`).
        Expr::And(a, b) => match truth(a, readers, row)? {
            Some(false) => Value::Bool(false),
            left => value::from_bool(value::and(left, truth(b, readers, row)?)),
        },
        Expr::Or(a, b) => match truth(a, readers, row)? {
            Some(true) => Value::Bool(true),
            left => value::from_bool(value::or(left, truth(b, readers, row)?)),
        },
        Expr::Binary(op, a, b) => {
            value::binary(*op, &eval(a, readers, row)?, &eval(b, readers, row)?)?
        }
        Expr::In {
            item,
            list,
            negated,
        } => {
            let found = value::contains(&eval(item, readers, row)?, &eval(list, readers, row)?)?;
            if *negated {
                value::from_bool(found.as_bool()?.map(|b| !b))
            } else {
                found
            }
        }
        Expr::IsNone { value, negated } => {
            Value::Bool(eval(value, readers, row)?.is_missing() != *negated)
        }
        Expr::IfElse {
            condition,
            then,
            otherwise,
        } => match truth(condition, readers, row)? {
            None => Value::Missing,
            Some(true) => eval(then, readers, row)?,
            Some(false) => eval(otherwise, readers, row)?,
        },
        Expr::Call(f, args) => call(*f, args, readers, row)?,
    })
}

fn call(f: Function, args: &[Expr], readers: &[Reader], row: usize) -> Result<Value, String> {
    let span = |per: f64| -> Result<Value, String> {
        let from = value::date_arg(&eval(&args[0], readers, row)?)
            .map_err(|e| format!("{}(...): {e}", f.name()))?;
        let to = value::date_arg(&eval(&args[1], readers, row)?)
            .map_err(|e| format!("{}(...): {e}", f.name()))?;
        Ok(match (from, to) {
            (Some(a), Some(b)) => Value::Num((b - a).get_days() as f64 / per),
            _ => Value::Missing,
        })
    };
    match f {
        Function::Days => span(1.0),
        Function::Months => span(DAYS_PER_MONTH),
        Function::Years => span(DAYS_PER_YEAR),
        Function::Year => Ok(value::date_arg(&eval(&args[0], readers, row)?)
            .map_err(|e| format!("year(...): {e}"))?
            .map_or(Value::Missing, |d| Value::Int(i64::from(d.year())))),
        Function::IsMissing => Ok(Value::Bool(eval(&args[0], readers, row)?.is_missing())),
        Function::Coalesce => {
            for a in args {
                let v = eval(a, readers, row)?;
                if !v.is_missing() {
                    return Ok(v);
                }
            }
            Ok(Value::Missing)
        }
    }
}

/// Turn evaluated values into a typed column: booleans, integers, numbers, dates, or a category
/// (levels in the order given, else sorted). `kind` is the expression's own type, used when no
/// row has a value to show it.
pub fn values_to_column(
    values: Vec<Value>,
    levels: Option<&[String]>,
    kind: Option<Kind>,
) -> Result<ColumnData, String> {
    if values.iter().any(|v| matches!(v, Value::List(_))) {
        return Err("the expression gives a list; a column holds one value per row".into());
    }
    let present: Vec<&Value> = values.iter().filter(|v| !v.is_missing()).collect();
    let kind = if present.is_empty() {
        kind.or(Some(Kind::Num))
    } else {
        uniform_kind(&present)
    };
    if levels.is_none() {
        match kind {
            Some(Kind::Bool) => {
                return Ok(ColumnData::Boolean(
                    values.iter().map(|v| v.as_bool().ok().flatten()).collect(),
                ));
            }
            Some(Kind::Int) => {
                let int = |v: &Value| match v {
                    Value::Int(i) => Some(*i),
                    _ => None,
                };
                return Ok(ColumnData::Integer(values.iter().map(int).collect()));
            }
            Some(Kind::Num) => {
                return Ok(ColumnData::Number(
                    values.iter().map(Value::as_f64).collect(),
                ));
            }
            Some(Kind::Date) => {
                let date = |v: &Value| match v {
                    Value::Date(d) => Some(*d),
                    _ => None,
                };
                return Ok(ColumnData::Date(values.iter().map(date).collect()));
            }
            Some(Kind::Text) | None => {}
        }
    }
    let texts: Vec<Option<String>> = values
        .iter()
        .map(|v| match v {
            Value::Missing => None,
            Value::Str(s) => Some(s.to_string()),
            other => Some(other.to_string()),
        })
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

/// The one type all present values share (whole numbers mixed with fractions are numbers);
/// `None` for a mix, which becomes a category of their texts.
fn uniform_kind(present: &[&Value]) -> Option<Kind> {
    let kind = |v: &Value| match v {
        Value::Bool(_) => Some(Kind::Bool),
        Value::Int(_) => Some(Kind::Int),
        Value::Num(_) => Some(Kind::Num),
        Value::Str(_) => Some(Kind::Text),
        Value::Date(_) => Some(Kind::Date),
        Value::Missing | Value::List(_) => None,
    };
    present.iter().try_fold(None, |acc: Option<Kind>, v| {
        let k = kind(v)?;
        Some(Some(match (acc, k) {
            (None, k) => k,
            (Some(a), b) if a == b => a,
            (Some(Kind::Int | Kind::Num), Kind::Int | Kind::Num) => Kind::Num,
            _ => return None,
        }))
    })?
}

#[cfg(test)]
mod tests {
    //! The expected values are R's (R 4.2: `NA == 1`, `NA & FALSE`, `ifelse(NA, 1, 2)`, ...), written
    //! out by hand; the rows are (status, age, site) = (1, 70, "spine"), (NA, 50, "ribs"),
    //! (0, NA, NA).
    use super::*;
    use crate::analysis::table1::tests::{category, dataset};

    fn data() -> Dataset {
        dataset(
            "d",
            vec![
                ("status", ColumnData::Integer(vec![Some(1), None, Some(0)])),
                (
                    "age",
                    ColumnData::Number(vec![Some(70.0), Some(50.0), None]),
                ),
                (
                    "site",
                    category(&["ribs", "spine"], &[Some("spine"), Some("ribs"), None]),
                ),
            ],
        )
    }

    fn eval_rows(source: &str) -> Vec<Value> {
        let d = data();
        let e = RowExpr::compile(source, &d).unwrap_or_else(|m| panic!("{m}"));
        let limit = crate::study::limits::Limits::default().time_limit("test", None);
        e.eval_all(&d, limit).unwrap_or_else(|m| panic!("{m}"))
    }

    const T: Value = Value::Bool(true);
    const F: Value = Value::Bool(false);
    const NA: Value = Value::Missing;

    #[test]
    fn comparisons_of_missing_values_are_missing() {
        assert_eq!(eval_rows("status == 1"), [T, NA, F]);
        assert_eq!(eval_rows("status != 1"), [F, NA, T]);
        assert_eq!(eval_rows("age >= 65"), [T, F, NA]);
        assert_eq!(eval_rows("site == 'spine'"), [T, F, NA]);
        assert_eq!(eval_rows("none == none"), [NA, NA, NA]);
    }

    #[test]
    fn and_or_not_follow_kleene_logic() {
        // status == 1 is (T, NA, F); age >= 65 is (T, F, NA).
        assert_eq!(eval_rows("status == 1 and age >= 65"), [T, F, F]);
        assert_eq!(eval_rows("status == 1 or age >= 65"), [T, NA, NA]);
        assert_eq!(eval_rows("status == 1 and false"), [F, F, F]);
        assert_eq!(eval_rows("status == 1 or true"), [T, T, T]);
        assert_eq!(eval_rows("not status == 1"), [F, NA, T]);
    }

    #[test]
    fn conditions_arithmetic_and_membership() {
        assert_eq!(
            eval_rows("'dead' if status == 1 else 'alive'"),
            [Value::Str("dead".into()), NA, Value::Str("alive".into())]
        );
        assert_eq!(
            eval_rows("age / 10"),
            [Value::Num(7.0), Value::Num(5.0), NA]
        );
        assert_eq!(eval_rows("status + 1"), [Value::Int(2), NA, Value::Int(1)]);
        assert_eq!(eval_rows("site in ['spine', 'pelvis']"), [T, F, NA]);
        assert_eq!(eval_rows("site not in ['spine', 'pelvis']"), [F, T, NA]);
        assert_eq!(
            eval_rows("-age"),
            [Value::Num(-70.0), Value::Num(-50.0), NA]
        );
    }

    #[test]
    fn names_with_dots_and_quoted_names_are_columns() {
        let d = dataset(
            "d",
            vec![
                ("ph.ecog", ColumnData::Integer(vec![Some(2), None])),
                ("in", ColumnData::Integer(vec![Some(1), Some(0)])),
                (
                    "age at entry",
                    ColumnData::Integer(vec![Some(50), Some(60)]),
                ),
            ],
        );
        let eval = |s: &str| {
            let e = RowExpr::compile(s, &d).unwrap_or_else(|m| panic!("{m}"));
            e.eval_all(
                &d,
                crate::study::limits::Limits::default().time_limit("test", None),
            )
            .unwrap()
        };
        assert_eq!(eval("ph.ecog >= 2"), [T, NA]);
        assert_eq!(eval("`in` == 1 and `age at entry` < 55"), [T, F]);
        assert!(
            RowExpr::compile("in == 1", &d)
                .unwrap_err()
                .contains("backticks")
        );
    }

    #[test]
    fn missingness_itself_is_never_missing() {
        assert_eq!(eval_rows("is_missing(status)"), [F, T, F]);
        assert_eq!(eval_rows("status is none"), [F, T, F]);
        assert_eq!(eval_rows("status is not none"), [T, F, T]);
        assert_eq!(
            eval_rows("coalesce(status, 9)"),
            [Value::Int(1), Value::Int(9), Value::Int(0)]
        );
        assert_eq!(
            eval_rows("coalesce(site, 'unknown')"),
            [
                Value::Str("spine".into()),
                Value::Str("ribs".into()),
                Value::Str("unknown".into())
            ]
        );
    }

    #[test]
    fn a_derived_column_keeps_its_type_when_every_row_is_missing() {
        let d = data();
        let e = RowExpr::compile("age > 100 and status is none and age is none", &d).unwrap();
        assert_eq!(e.result_kind(&d), Some(Kind::Bool));
        let column = values_to_column(vec![NA, NA, NA], None, e.result_kind(&d)).unwrap();
        assert!(matches!(column, ColumnData::Boolean(_)));
        let e = RowExpr::compile("year(none)", &d).unwrap();
        let column = values_to_column(vec![NA, NA, NA], None, e.result_kind(&d)).unwrap();
        assert!(matches!(column, ColumnData::Integer(_)));
    }

    #[test]
    fn mistakes_are_reported_with_their_place() {
        let d = data();
        let err = |s: &str| RowExpr::compile(s, &d).unwrap_err();
        assert!(err("statu == 1").contains("uses `statu`, which is not a column of `d`"));
        assert!(err("status = 1").contains("at character 8: unexpected `=`: compare with `==`"));
        assert!(err("1 < age < 3").contains("cannot be chained"));
        assert!(err("log(age)").contains("unknown function `log`"));
        assert!(err("'open").contains("never closed"));
        assert!(err("age if status").contains("needs `else b`"));
        assert!(err("1e-400").contains("out of range"));
        assert!(err("days(age)").contains("`days` takes 2 argument(s), found 1"));
        let limit = || crate::study::limits::Limits::default().time_limit("test", None);
        assert!(err("site > 'ribs'").contains("orders the category `site`"));
        assert!(err("coalesce(site, 'x') <= 'b'").contains("orders the category `site`"));
        let e = RowExpr::compile("site == 2", &d).unwrap();
        let m = e.eval_all(&d, limit()).unwrap_err();
        assert!(m.contains("data row 1 (line 2 of the CSV)"), "{m}");
        assert!(m.contains("quote the number to compare text: '2'"), "{m}");
    }
}

#[cfg(test)]
mod robustness {
    //! The parser reads spec text a study folder supplies: whatever it holds, compiling and
    //! evaluating returns a value or a message, never a panic or a stack overflow.
    use super::*;
    use crate::analysis::table1::tests::dataset;
    use proptest::prelude::*;

    fn words() -> impl Strategy<Value = String> {
        let token = prop::sample::select(vec![
            "age",
            "status",
            "(",
            ")",
            "[",
            "]",
            ",",
            "==",
            "!=",
            "<",
            ">=",
            "+",
            "-",
            "*",
            "/",
            "//",
            "%",
            "**",
            "~",
            "and",
            "or",
            "not",
            "in",
            "is",
            "none",
            "if",
            "else",
            "true",
            "1",
            "0",
            "2.5",
            "1e308",
            "'a'",
            "\"b",
            "days",
            "year",
            "coalesce",
            "is_missing",
            "9223372036854775807",
            "=",
            "|",
            "{",
            ".",
            "\\",
        ]);
        prop::collection::vec(token, 0..40).prop_map(|t| t.join(" "))
    }

    proptest! {
        #[test]
        fn compiling_and_evaluating_never_panics(source in words()) {
            let d = dataset(
                "d",
                vec![
                    ("age", ColumnData::Number(vec![Some(70.0), None, Some(-1.0)])),
                    ("status", ColumnData::Integer(vec![Some(i64::MAX), None, Some(0)])),
                ],
            );
            if let Ok(e) = RowExpr::compile(&source, &d) {
                let limit = crate::study::limits::Limits::default().time_limit("test", None);
                let _ = e.eval_all(&d, limit).map(|v| values_to_column(v, None, e.result_kind(&d)));
            }
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let d = dataset("d", vec![("age", ColumnData::Number(vec![Some(1.0)]))]);
        for deep in [
            format!("{}age{}", "(".repeat(900), ")".repeat(900)),
            format!("{}age", "not ".repeat(1500)),
            format!("{}age", "-".repeat(1500)),
            format!("{}1{}", "[".repeat(900), "]".repeat(900)),
            format!("age{}", " ** age".repeat(900)),
            format!("{}age", "1 if age else ".repeat(400)),
        ] {
            let err = RowExpr::compile(&deep, &d).unwrap_err();
            assert!(
                err.contains("nests more than 64 levels deep"),
                "{}",
                &err[..200.min(err.len())]
            );
        }
        // Long flat chains are deep trees too: bounded by the number of tokens.
        for long in [
            format!("{}age{}", "(".repeat(100_000), ")".repeat(100_000)),
            format!("age{}", " + age".repeat(100_000)),
            format!("age > 0{}", " and age > 0".repeat(100_000)),
        ] {
            let err = RowExpr::compile(&long, &d).unwrap_err();
            assert!(
                err.contains("longer than 2000 words and symbols"),
                "{}",
                &err[..200.min(err.len())]
            );
        }
        let fine = format!("age{}", " + age".repeat(900));
        assert!(RowExpr::compile(&fine, &d).is_ok());
    }
}
