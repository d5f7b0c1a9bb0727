//! Values of row expressions and R's rules for missing values (NA).
//!
//! - A comparison, arithmetic or function of a missing operand is missing (`NA == 1` is NA).
//! - `and` / `or` follow Kleene's three-valued logic, as R's `&` and `|`: `NA and false` is false,
//!   `NA or true` is true, otherwise a missing operand makes the result missing; `not NA` is NA.
//! - `a if c else b` with a missing `c` is missing (R's `ifelse`, dplyr's `if_else`).
//! - `x in [..]` is `x == a or x == b ...`: missing when `x` is missing, or when nothing matched and
//!   the list holds a missing value. (R's `%in%` is a `match()` and answers FALSE for NA: galley
//!   follows the comparison rule instead, so that a missing value is never silently "not in".)
//! - `is none`, `is not none`, `is_missing(x)` and `coalesce(...)` look at missingness itself and are
//!   never missing.
//!
//! Operand types are checked: comparing text with a number is an error rather than R's silent
//! coercion (`stage == 2` on a text column holding "2" is false in minijinja and true in R; both are
//! surprises, so galley asks for `stage == '2'`).

use std::sync::Arc;

use jiff::civil::Date;

use super::parse::BinOp;
use crate::study::dataset::parse_date;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Missing,
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(Arc<str>),
    Date(Date),
    List(Arc<Vec<Value>>),
}

impl Value {
    pub fn is_missing(&self) -> bool {
        matches!(self, Value::Missing)
    }

    /// What kind of value this is, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Missing => "missing",
            Value::Bool(_) => "true/false",
            Value::Int(_) | Value::Num(_) => "a number",
            Value::Str(_) => "text",
            Value::Date(_) => "a date",
            Value::List(_) => "a list",
        }
    }

    /// The value as a number (true/false as 1/0, as R does).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Int(v) => Some(*v as f64),
            Value::Num(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as true/false: a boolean, or a number that is 0 or 1 (`Ok(None)`: missing).
    pub fn as_bool(&self) -> Result<Option<bool>, String> {
        match self {
            Value::Missing => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            Value::Int(0) => Ok(Some(false)),
            Value::Int(1) => Ok(Some(true)),
            Value::Num(x) if *x == 0.0 || *x == 1.0 => Ok(Some(*x == 1.0)),
            other => Err(format!(
                "expected true or false, found {} ({})",
                other,
                other.type_name()
            )),
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Missing => f.write_str("none"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(v) => write!(f, "{v}"),
            // `{:?}` keeps the decimal point of a whole float (`0.0`), so messages show what was computed.
            Value::Num(v) => write!(f, "{v:?}"),
            Value::Str(s) => write!(f, "'{s}'"),
            Value::Date(d) => write!(f, "{d}"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Kleene's `and`: false wins over missing.
pub fn and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// Kleene's `or`: true wins over missing.
pub fn or(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

pub fn from_bool(b: Option<bool>) -> Value {
    b.map_or(Value::Missing, Value::Bool)
}

/// A binary operator on two values; missing in, missing out.
pub fn binary(op: BinOp, a: &Value, b: &Value) -> Result<Value, String> {
    if a.is_missing() || b.is_missing() {
        return Ok(Value::Missing);
    }
    if op.is_comparison() {
        return compare(op, a, b).map(Value::Bool);
    }
    match op {
        BinOp::Concat => Ok(Value::Str(format!("{}{}", text(a), text(b)).into())),
        BinOp::Add if matches!((a, b), (Value::Str(_), Value::Str(_))) => {
            Ok(Value::Str(format!("{}{}", text(a), text(b)).into()))
        }
        _ => arithmetic(op, a, b),
    }
}

/// Text of a value for `~` (strings without quotes).
fn text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        other => other.to_string(),
    }
}

/// A value as an operand in a message: a negative number in parentheses, so that `(-7) ** 70` does
/// not read as `-(7 ** 70)`.
fn operand(v: &Value) -> String {
    match v {
        Value::Int(i) if *i < 0 => format!("({i})"),
        Value::Num(x) if *x < 0.0 => format!("({v})"),
        other => other.to_string(),
    }
}

fn arithmetic(op: BinOp, a: &Value, b: &Value) -> Result<Value, String> {
    let (a_text, b_text) = (operand(a), operand(b));
    let mismatch = || {
        format!(
            "cannot compute {a_text} {} {b_text}: {} needs two numbers, found {} and {}",
            op.symbol(),
            op.symbol(),
            a.type_name(),
            b.type_name()
        )
    };
    let int = |v: &Value| match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    };
    if let (Some(x), Some(y)) = (int(a), int(b))
        && op != BinOp::Div
    {
        return integer_op(op, x, y).map(Value::Int);
    }
    let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
        return Err(mismatch());
    };
    let result = match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div | BinOp::FloorDiv | BinOp::Mod if y == 0.0 => {
            return Err(format!(
                "division by zero in {a_text} {} {b_text}",
                op.symbol()
            ));
        }
        BinOp::Div => x / y,
        BinOp::FloorDiv => (x / y).floor(),
        BinOp::Mod => x - y * (x / y).floor(),
        BinOp::Pow => x.powf(y),
        _ => return Err(mismatch()),
    };
    if !result.is_finite() {
        return Err(format!("{a} {} {b} is not a finite number", op.symbol()));
    }
    Ok(Value::Num(result))
}

/// Whole-number arithmetic, as Python's (floor division and modulo), with overflow an error.
fn integer_op(op: BinOp, x: i64, y: i64) -> Result<i64, String> {
    let (xs, ys) = (operand(&Value::Int(x)), operand(&Value::Int(y)));
    let overflow = || format!("{xs} {} {ys} is too large for a whole number", op.symbol());
    if matches!(op, BinOp::FloorDiv | BinOp::Mod) && y == 0 {
        return Err(format!("division by zero in {xs} {} {ys}", op.symbol()));
    }
    match op {
        BinOp::Add => x.checked_add(y).ok_or_else(overflow),
        BinOp::Sub => x.checked_sub(y).ok_or_else(overflow),
        BinOp::Mul => x.checked_mul(y).ok_or_else(overflow),
        BinOp::FloorDiv | BinOp::Mod if x == i64::MIN && y == -1 => Err(overflow()),
        BinOp::FloorDiv => Ok(floor_div(x, y)),
        BinOp::Mod => Ok(x - y * floor_div(x, y)),
        BinOp::Pow => {
            let e = u32::try_from(y).map_err(|_| {
                format!("{xs} ** {ys}: a whole-number power needs an exponent from 0 to 4294967295 (write {x}.0 ** {y} for a fraction)")
            })?;
            x.checked_pow(e).ok_or_else(overflow)
        }
        _ => Err(format!("`{}` is not arithmetic", op.symbol())),
    }
}

/// Floor division of whole numbers (Python's `//`).
fn floor_div(x: i64, y: i64) -> i64 {
    let q = x / y;
    if (x % y != 0) && ((x < 0) != (y < 0)) {
        q - 1
    } else {
        q
    }
}

/// Compare two present values. Numbers (and true/false as 0/1) with numbers, text with text,
/// dates with dates (text in a comparison with a date is read as YYYY-MM-DD).
fn compare(op: BinOp, a: &Value, b: &Value) -> Result<bool, String> {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match (a, b) {
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Str(s)) => Some(x.cmp(&date_literal(s)?)),
        (Value::Str(s), Value::Date(y)) => Some(date_literal(s)?.cmp(y)),
        (Value::List(_), _) | (_, Value::List(_)) => {
            return Err(format!(
                "cannot compare {a} with {b}; to test membership write `x in [..]`"
            ));
        }
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => {
                let hint = match (a, b) {
                    (Value::Str(_), n @ (Value::Int(_) | Value::Num(_)))
                    | (n @ (Value::Int(_) | Value::Num(_)), Value::Str(_)) => {
                        format!(" (quote the number to compare text: '{n}')")
                    }
                    _ => String::new(),
                };
                return Err(format!(
                    "cannot compare {a} ({}) with {b} ({}){hint}",
                    a.type_name(),
                    b.type_name()
                ));
            }
        },
    };
    let Some(ordering) = ordering else {
        return Ok(false);
    };
    Ok(match op {
        BinOp::Eq => ordering == Ordering::Equal,
        BinOp::Ne => ordering != Ordering::Equal,
        BinOp::Lt => ordering == Ordering::Less,
        BinOp::Le => ordering != Ordering::Greater,
        BinOp::Gt => ordering == Ordering::Greater,
        BinOp::Ge => ordering != Ordering::Less,
        _ => unreachable!("compare is called for comparisons only"),
    })
}

fn date_literal(s: &str) -> Result<Date, String> {
    parse_date(s, None).ok_or_else(|| format!("'{s}' is not a date (YYYY-MM-DD)"))
}

/// `item in list`: `==` against each element, combined with Kleene's `or`.
pub fn contains(item: &Value, list: &Value) -> Result<Value, String> {
    if item.is_missing() || list.is_missing() {
        return Ok(Value::Missing);
    }
    match list {
        Value::List(items) => {
            let mut found = Some(false);
            for element in items.iter() {
                let equal = binary(BinOp::Eq, item, element)?;
                found = or(found, equal.as_bool()?);
                if found == Some(true) {
                    break;
                }
            }
            Ok(from_bool(found))
        }
        Value::Str(haystack) => match item {
            Value::Str(needle) => Ok(Value::Bool(haystack.contains(&**needle))),
            other => Err(format!(
                "`in` text needs text on its left, found {other} ({})",
                other.type_name()
            )),
        },
        other => Err(format!(
            "`in` needs a list such as ['a', 'b'] on its right, found {other} ({})",
            other.type_name()
        )),
    }
}

/// A date argument: a date, or text holding one. `Ok(None)` when missing.
pub fn date_arg(v: &Value) -> Result<Option<Date>, String> {
    match v {
        Value::Missing => Ok(None),
        Value::Date(d) => Ok(Some(*d)),
        Value::Str(s) => date_literal(s).map(Some),
        other => Err(format!("{other} is not a date")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kleene_truth_tables_match_r() {
        // R: NA & FALSE is FALSE, NA & TRUE is NA, NA | TRUE is TRUE, NA | FALSE is NA.
        let (t, f, na) = (Some(true), Some(false), None);
        assert_eq!(and(na, f), f);
        assert_eq!(and(f, na), f);
        assert_eq!(and(na, t), na);
        assert_eq!(and(na, na), na);
        assert_eq!(or(na, t), t);
        assert_eq!(or(t, na), t);
        assert_eq!(or(na, f), na);
        assert_eq!(or(na, na), na);
        assert_eq!(and(t, t), t);
        assert_eq!(or(f, f), f);
    }

    #[test]
    fn missing_operands_make_missing_results() {
        for op in [
            BinOp::Eq,
            BinOp::Ne,
            BinOp::Lt,
            BinOp::Add,
            BinOp::Div,
            BinOp::Concat,
        ] {
            assert_eq!(
                binary(op, &Value::Missing, &Value::Int(1)),
                Ok(Value::Missing)
            );
            assert_eq!(
                binary(op, &Value::Int(1), &Value::Missing),
                Ok(Value::Missing)
            );
        }
    }

    #[test]
    fn python_floor_division_and_modulo() {
        // Python: 7 // 2 = 3, -7 // 2 = -4, 7 // -2 = -4, -7 // -2 = 3; -7 % 2 = 1, 7 % -2 = -1.
        let cases = [
            (7, 2, 3, 1),
            (-7, 2, -4, 1),
            (7, -2, -4, -1),
            (-7, -2, 3, -1),
        ];
        for (x, y, q, r) in cases {
            assert_eq!(
                binary(BinOp::FloorDiv, &Value::Int(x), &Value::Int(y)),
                Ok(Value::Int(q))
            );
            assert_eq!(
                binary(BinOp::Mod, &Value::Int(x), &Value::Int(y)),
                Ok(Value::Int(r))
            );
        }
        assert_eq!(
            binary(BinOp::FloorDiv, &Value::Num(-7.0), &Value::Num(2.0)),
            Ok(Value::Num(-4.0))
        );
    }

    #[test]
    fn membership_with_missing_values() {
        let list = Value::List(Arc::new(vec![Value::Int(1), Value::Missing]));
        assert_eq!(contains(&Value::Int(1), &list), Ok(Value::Bool(true)));
        assert_eq!(contains(&Value::Int(2), &list), Ok(Value::Missing));
        let plain = Value::List(Arc::new(vec![Value::Int(1), Value::Int(3)]));
        assert_eq!(contains(&Value::Int(2), &plain), Ok(Value::Bool(false)));
        assert_eq!(contains(&Value::Missing, &plain), Ok(Value::Missing));
    }

    #[test]
    fn text_and_numbers_do_not_compare() {
        let err = binary(BinOp::Eq, &Value::Str("2".into()), &Value::Int(2)).unwrap_err();
        assert!(err.contains("quote the number"), "{err}");
    }
}
