//! The template language of the prose: minijinja expressions bound to analysis results by block id.
//!
//! Undefined names are errors (strict mode) that name the manuscript file and line, because a
//! misspelled `{{ km.median }}` that silently prints nothing is a wrong paper. Filters implement the
//! journal's number formatting (`analysis::numfmt`) so that every number in the prose follows one set of rules.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use minijinja::machinery::{self, CodeGenerator, Instruction, Instructions, Vm, WhitespaceConfig};
use minijinja::value::{Kwargs, Object, ObjectRepr, Rest, StringInput, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior};

use crate::analysis::numfmt;
use crate::diagnostics::{Diagnostic, Location};
use crate::study::manifest::FormatSection;

/// Steps of template evaluation allowed per file: ends a runaway loop with a clear message.
pub const TEMPLATE_FUEL: u64 = 5_000_000;

/// Most items a `{{ }}` prints of a list or map. `{{ [0] * 10**16 }}` is a lazy list of 10^16
/// items that minijinja prints without spending fuel (found by fuzzing: a render that never
/// ended); no manuscript prints more than a few items of a list.
pub const MAX_PRINTED_ITEMS: usize = 10_000;

/// Build the environment with galley's filters and functions.
pub fn environment(rules: &FormatSection) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_syntax(syntax());
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_recursion_limit(100);
    env.set_formatter(|out, state, value| {
        if matches!(
            value.kind(),
            ValueKind::Seq | ValueKind::Iterable | ValueKind::Map
        ) && let Some(n) = value.len().filter(|&n| n > MAX_PRINTED_ITEMS)
        {
            return Err(invalid(format!(
                "a list of {n} items is too long to print (at most {MAX_PRINTED_ITEMS})"
            )));
        }
        // A missing result printed bare would read "none"; NaN and infinity would read as numbers.
        missing_or_non_finite(value, "printing")?;
        minijinja::escape_formatter(out, state, value)
    });
    missing_value_guards(&mut env);
    let rules = Arc::new(rules.clone());

    // {{ x | num(1) }}: fixed decimals; a median or interval limit not reached prints as "NR".
    let r = rules.clone();
    env.add_filter(
        "num",
        move |v: Value, digits: Option<usize>| -> Result<String, Error> {
            Ok(match reached(&v, "num", MISSING_HINT)? {
                Some(x) => numfmt::fixed(x, digits.unwrap_or(1)),
                None => r.not_reached.clone(),
            })
        },
    );
    // {{ n | count }}: an integer with thousands separators.
    env.add_filter("count", |v: Value| -> Result<String, Error> {
        Ok(numfmt::count(present(&v, "count", MISSING_HINT)?))
    });
    // {{ 0.6 | pct }} -> 60%: a proportion as a percentage. A missing proportion is never "not
    // reached": its denominator was 0 (no patient in the group), so it is an error.
    let r = rules.clone();
    env.add_filter(
        "pct",
        move |v: Value, digits: Option<usize>| -> Result<String, Error> {
            let x = present(
                &v,
                "pct",
                "the proportion is missing: its denominator may be 0",
            )?;
            Ok(numfmt::percent(x, digits.unwrap_or(r.percent_digits)))
        },
    );
    // {{ p | pvalue }} -> "p = 0.03" / "p < 0.001"; {{ p | pnum }} -> "0.03" / "< 0.001".
    let r = rules.clone();
    env.add_filter("pvalue", move |v: Value| -> Result<String, Error> {
        let p = present(&v, "pvalue", "the p-value is missing (not estimable)")?;
        Ok(numfmt::p_value(p, &r))
    });
    let r = rules.clone();
    env.add_filter("pnum", move |v: Value| -> Result<String, Error> {
        let p = present(&v, "pnum", "the p-value is missing (not estimable)")?;
        Ok(numfmt::p_number(p, &r))
    });
    // {{ n_pct(15, 25) }} -> "15 (60%)"; also {{ x | n_pct(25) }}.
    let r = rules.clone();
    env.add_function(
        "n_pct",
        move |n: Value, total: Value, kwargs: Kwargs| -> Result<String, Error> {
            n_pct(&n, &total, &kwargs, &r)
        },
    );
    let r = rules.clone();
    env.add_filter(
        "n_pct",
        move |n: Value, total: Value, kwargs: Kwargs| -> Result<String, Error> {
            n_pct(&n, &total, &kwargs, &r)
        },
    );
    // {{ ci(lower, upper, 2) }} -> "1.27–1.99"; {{ term | ci(2) }} reads `lower`/`upper` of an object.
    let r = rules.clone();
    env.add_function(
        "ci",
        move |lower: Value, upper: Value, digits: Option<usize>| -> Result<String, Error> {
            Ok(numfmt::interval(
                reached(&lower, "ci", MISSING_HINT)?,
                reached(&upper, "ci", MISSING_HINT)?,
                digits.unwrap_or(2),
                &r,
            ))
        },
    );
    let r = rules.clone();
    env.add_filter(
        "ci",
        move |obj: Value, digits: Option<usize>| -> Result<String, Error> {
            let lower = obj.get_attr("lower")?;
            let upper = obj.get_attr("upper")?;
            if lower.is_undefined() || upper.is_undefined() {
                return Err(invalid("ci: the value has no `lower` and `upper`"));
            }
            // `lower` and `upper` are interval limits: a null one is a limit not reached.
            Ok(numfmt::interval(
                reached(&not_reached_if_none(lower), "ci", MISSING_HINT)?,
                reached(&not_reached_if_none(upper), "ci", MISSING_HINT)?,
                digits.unwrap_or(2),
                &r,
            ))
        },
    );
    // {{ range(lo, hi) }} with the range separator: "1–10".
    let r = rules;
    env.add_function(
        "span",
        move |lower: Value, upper: Value, digits: Option<usize>| -> Result<String, Error> {
            Ok(numfmt::interval(
                reached(&lower, "span", MISSING_HINT)?,
                reached(&upper, "span", MISSING_HINT)?,
                digits.unwrap_or(0),
                &r,
            ))
        },
    );
    env
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

/// The hint of an error about a missing value.
const MISSING_HINT: &str = "the value is missing (null in results.json): test `{% if x is none %}` and say in words what it means";

/// A median or interval limit that is not reached: the value a null becomes when the prose reads it
/// under a key where the docs promise "NR" (see [`NR_KEYS`]). Every other null stays `none`, which
/// the number filters refuse. A separate object (not `none`) so that the filters know, without
/// guessing from the value, that "NR" is the right word; `is none` is still true for it.
#[derive(Debug)]
struct NotReached;

impl Object for NotReached {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }
    fn is_true(self: &Arc<Self>) -> bool {
        false
    }
    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("none")
    }
}

fn is_not_reached(v: &Value) -> bool {
    v.downcast_object_ref::<NotReached>().is_some()
}

fn not_reached_if_none(v: Value) -> Value {
    if v.is_none() {
        Value::from_object(NotReached)
    } else {
        v
    }
}

/// Keys whose null means "not reached" (docs/analysis-blocks.md): an interval's `lower`/`upper`
/// (Kaplan-Meier median CI, bootstrap limits), and a survival median with its limits. `median`
/// alone is also a `describe` result, where null means no observation: it counts only beside a
/// `median_lower` (the survival kinds report both).
const NR_KEYS: [&str; 5] = ["lower", "upper", "median", "median_lower", "median_upper"];

/// `parent.key`, as the VM's attribute lookup does (strict about an undefined parent), with a null
/// under an [`NR_KEYS`] key turned into [`NotReached`].
fn lookup_reached(parent: &Value, key: &str) -> Result<Value, Error> {
    if parent.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    let v = parent.get_attr(key)?;
    let limit = key == "lower" || key == "upper";
    let survival_median = key.starts_with("median")
        && parent
            .get_attr("median_lower")
            .is_ok_and(|v| !v.is_undefined());
    Ok(if limit || survival_median {
        not_reached_if_none(v)
    } else {
        v
    })
}

/// A missing value, or a number that is not finite, where a value is about to be printed or used:
/// an error naming what was being done. `None`/not reached are "missing".
fn missing_or_non_finite(v: &Value, doing: &str) -> Result<(), Error> {
    if v.is_none() || is_not_reached(v) {
        let what = if is_not_reached(v) {
            "a value not reached (NR)"
        } else {
            "a missing value (none)"
        };
        return Err(invalid(format!(
            "{doing} {what}: print numbers with `num`, `pct`, `ci`…, and test `x is none` to say in words what a missing one means"
        )));
    }
    if let Ok(x) = f64::try_from(v.clone())
        && v.kind() == ValueKind::Number
        && !x.is_finite()
    {
        return Err(invalid(format!(
            "{doing} a number that is not finite ({}): a division by zero in the template?",
            v
        )));
    }
    Ok(())
}

/// A template value as a number: `None` for a value not reached (only [`NotReached`]); an error for
/// any other missing value, for NaN and infinity (arithmetic in the template: `0 / 0.0`) and for text.
fn reached(v: &Value, filter: &str, missing: &str) -> Result<Option<f64>, Error> {
    if is_not_reached(v) {
        return Ok(None);
    }
    present(v, filter, missing).map(Some)
}

/// A template value as a finite number; booleans count as 1 and 0.
fn present(v: &Value, filter: &str, missing: &str) -> Result<f64, Error> {
    let x = match v.kind() {
        ValueKind::None => {
            return Err(invalid(format!("`{filter}` of a missing value: {missing}")));
        }
        ValueKind::Bool => f64::from(u8::from(v.is_true())),
        ValueKind::Number => f64::try_from(v.clone())
            .map_err(|_| invalid(format!("{filter}: `{v}` is not a number")))?,
        ValueKind::Undefined => {
            return Err(Error::new(
                ErrorKind::UndefinedError,
                format!("{filter}: undefined value"),
            ));
        }
        _ if is_not_reached(v) => {
            return Err(invalid(format!(
                "`{filter}` of a value not reached (NR): only `num`, `ci` and `span` print NR"
            )));
        }
        _ => return Err(invalid(format!("{filter}: expected a number, found `{v}`"))),
    };
    if !x.is_finite() {
        return Err(invalid(format!(
            "`{filter}` of a number that is not finite ({v}): a division by zero in the template?"
        )));
    }
    Ok(x)
}

/// `{#id}` after a Markdown heading is a label, not the start of a Jinja comment: comments are
/// written `{## ... ##}` in galley manuscripts.
fn syntax() -> minijinja::syntax::SyntaxConfig {
    minijinja::syntax::SyntaxConfig::builder()
        .comment_delimiters("{##", "##}")
        .build()
        .expect("valid delimiters")
}

/// Functions the compiled prose calls instead of minijinja's operators (see [`guard`]).
const LT: &str = "__galley_lt";
const LE: &str = "__galley_le";
const GT: &str = "__galley_gt";
const GE: &str = "__galley_ge";
const EQ: &str = "__galley_eq";
const NE: &str = "__galley_ne";
const CONCAT: &str = "__galley_concat";
const CHAINED: &str = "__galley_chained";
/// Filters that read an [`NR_KEYS`] attribute (`__galley_get_median` reads `.median`).
const GET_PREFIX: &str = "__galley_get_";
const GET_ITEM: &str = "__galley_get_item";

/// `a <op> b` with missing values refused. minijinja orders `none` before every number, so
/// `{% if p < 0.05 %}significant` would print "significant" for a p-value that is null; R's
/// `NA < 0.05` is `NA`, and `if` on it is an error: so it is here, with the place.
fn compare(op: &str, a: &Value, b: &Value) -> Result<bool, Error> {
    for v in [a, b] {
        if v.is_undefined() {
            return Err(Error::from(ErrorKind::UndefinedError));
        }
        if v.is_none() || is_not_reached(v) {
            return Err(invalid(format!(
                "comparison `{op}` with a missing value (none{}): it is neither smaller nor larger \
                 than a number; test it first: `{{% if x is not none and x {op} … %}}`",
                if is_not_reached(v) {
                    ", not reached"
                } else {
                    ""
                }
            )));
        }
        missing_or_non_finite(v, &format!("comparison `{op}` with"))?;
    }
    // minijinja orders values of different kinds by kind (every number before every string): a
    // number compared with text would be silently true or false.
    let numeric = |v: &Value| matches!(v.kind(), ValueKind::Number | ValueKind::Bool);
    if a.kind() != b.kind() && !(numeric(a) && numeric(b)) {
        return Err(invalid(format!(
            "comparison `{op}` of a {} with a {}",
            a.kind(),
            b.kind()
        )));
    }
    Ok(match op {
        "<" => a < b,
        "<=" => a <= b,
        ">" => a > b,
        _ => a >= b,
    })
}

/// `none` for a value not reached too, so that `==`, `!=` and `is none` see the null it was.
fn as_null(v: &Value) -> Value {
    if is_not_reached(v) {
        Value::from(())
    } else {
        v.clone()
    }
}

/// The items (or their `attribute`s) a sorting filter is about to order: refused if one is missing.
fn check_orderable(items: &Value, attribute: Option<&str>, filter: &str) -> Result<(), Error> {
    let Ok(iter) = items.try_iter() else {
        return Ok(()); // the builtin filter reports what it cannot iterate
    };
    for item in iter {
        let mut v = item;
        for attr in attribute.iter().flat_map(|a| a.split(',')) {
            v = attr
                .trim()
                .split('.')
                .try_fold(v.clone(), |v, key| v.get_item(&Value::from(key)))?;
        }
        if v.is_none()
            || is_not_reached(&v)
            || !v.is_undefined() && missing_or_non_finite(&v, "").is_err()
        {
            return Err(invalid(format!(
                "`{filter}` of a list with a missing or non-finite value{}: minijinja would order it \
                 before every number. Leave it out first (`| rejectattr(\"…\", \"none\")`). {MISSING_HINT}",
                attribute.map(|a| format!(" in `{a}`")).unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// Filters, tests and functions that would otherwise turn a missing value into a number or a word.
fn missing_value_guards(env: &mut Environment<'static>) {
    for (name, op) in [(LT, "<"), (LE, "<="), (GT, ">"), (GE, ">=")] {
        env.add_function(name, move |a: Value, b: Value| compare(op, &a, &b));
    }
    env.add_function(CHAINED, |_: Rest<Value>| -> Result<Value, Error> {
        Err(invalid(
            "a chained comparison (`a < b < c`) cannot check for missing values: write `a < b and b < c`",
        ))
    });
    env.add_function(EQ, |a: Value, b: Value| as_null(&a) == as_null(&b));
    env.add_function(NE, |a: Value, b: Value| as_null(&a) != as_null(&b));
    // `x ~ " days"` would print "None days" or "NaN days".
    env.add_function(CONCAT, |a: Value, b: Value| -> Result<Value, Error> {
        for v in [&a, &b] {
            if v.is_undefined() {
                return Err(Error::from(ErrorKind::UndefinedError));
            }
            missing_or_non_finite(v, "joining text with")?;
        }
        Ok(Value::from(format!("{a}{b}")))
    });
    for key in NR_KEYS {
        env.add_filter(format!("{GET_PREFIX}{key}"), move |parent: Value| {
            lookup_reached(&parent, key)
        });
    }
    env.add_filter(GET_ITEM, |parent: Value, key: Value| match key.as_str() {
        Some(k) => lookup_reached(&parent, k),
        None => Ok(parent.get_item(&key)?),
    });
    // `selectattr("median", "lt", 100)`, `select("gt", 1)`, `x is lt(0.05)`: the same rule as `<`.
    for (names, op) in [
        (&["lt", "lessthan", "<"][..], "<"),
        (&["le", "<="][..], "<="),
        (&["gt", "greaterthan", ">"][..], ">"),
        (&["ge", ">="][..], ">="),
    ] {
        for name in names {
            env.add_test(*name, move |a: Value, b: Value| compare(op, &a, &b));
        }
    }
    env.add_test("none", |v: Value| v.is_none() || is_not_reached(&v));
    // `none | int` is 0 and `none | float` 0.0 in minijinja: a missing count would print as 0.
    env.add_filter("int", |state: &State, v: Value| -> Result<Value, Error> {
        missing_or_non_finite(&v, "`int` of")?;
        minijinja::filters::int(state, &v)
    });
    env.add_filter("float", |state: &State, v: Value| -> Result<Value, Error> {
        missing_or_non_finite(&v, "`float` of")?;
        minijinja::filters::float(state, &v)
    });
    env.add_filter(
        "string",
        |state: &State, v: Value| -> Result<Value, Error> {
            missing_or_non_finite(&v, "`string` of")?;
            minijinja::filters::string(state, &v)
        },
    );
    // `default(0, true)` would print a missing result as 0; a text replacement ("not estimable")
    // cannot be mistaken for a computed number and stays allowed.
    env.add_filter("default", |state: &State, v: Value, args: Rest<Value>| -> Result<Value, Error> {
        let replaces_missing = (v.is_none() || is_not_reached(&v))
            && args.get(1).is_some_and(|lax| lax.is_true());
        if replaces_missing && args.first().is_some_and(|d| d.kind() != ValueKind::String) {
            return Err(invalid(format!(
                "`default` would print a missing value as `{}`: a number that was never computed. \
                 Write the number's absence in words, or test `x is none`",
                args[0]
            )));
        }
        minijinja::filters::default(state, &as_null(&v), args)
    });
    env.add_filter(
        "join",
        |state: &State, v: Value, joiner: Option<StringInput<'_>>| -> Result<Value, Error> {
            if let Ok(iter) = v.try_iter() {
                for item in iter {
                    missing_or_non_finite(&item, "`join` of a list with")?;
                }
            }
            minijinja::filters::join(state, &v, joiner)
        },
    );
    // `[none, 3] | min` is none and `| max` ignores it; `sort` puts none first.
    env.add_filter("min", |state: &State, v: Value| -> Result<Value, Error> {
        check_orderable(&v, None, "min")?;
        minijinja::filters::min(state, v)
    });
    env.add_filter("max", |state: &State, v: Value| -> Result<Value, Error> {
        check_orderable(&v, None, "max")?;
        minijinja::filters::max(state, v)
    });
    env.add_filter(
        "sort",
        |state: &State, v: Value, kwargs: Kwargs| -> Result<Value, Error> {
            let attribute: Option<String> = kwargs.peek("attribute")?;
            check_orderable(&v, attribute.as_deref(), "sort")?;
            minijinja::filters::sort(state, v, kwargs)
        },
    );
    env.add_filter(
        "dictsort",
        |v: Value, kwargs: Kwargs| -> Result<Value, Error> {
            let by: Option<String> = kwargs.peek("by")?;
            if by.as_deref() == Some("value") && v.kind() == ValueKind::Map {
                let values: Vec<Value> = v
                    .try_iter()?
                    .map(|k| v.get_item(&k).unwrap_or_default())
                    .collect();
                check_orderable(&Value::from(values), None, "dictsort")?;
            }
            minijinja::filters::dictsort(&v, kwargs)
        },
    );
}

/// Compile a template, then reroute the operations minijinja performs without calling galley:
/// `<`, `<=`, `>`, `>=`, `==`, `!=` and `~` become calls of the functions above, and reading an
/// [`NR_KEYS`] attribute goes through a filter that marks a null there as not reached.
///
/// Why the compiled instructions, not something at run time: minijinja has no operator hook, and a
/// comparison of any object with a number is decided by the kinds alone (`Value::cmp`), so neither a
/// special null object nor a lint (which cannot follow `{% set %}` or a loop variable) stops
/// `{% if p < 0.05 %}significant` for a null p. Each replacement keeps the stack effect and the
/// instruction's index, so jumps and error locations are unchanged. `machinery` is minijinja's
/// unstable API: the version is pinned in Cargo.toml, and tests/suite/prose_missing.rs fails if a
/// new version compiles comparisons differently.
fn guard(instructions: &mut Instructions<'_>) {
    for idx in 0..instructions.len() as u32 {
        let previous = idx
            .checked_sub(1)
            .and_then(|i| instructions.get(i))
            .cloned();
        let Some(instr) = instructions.get_mut(idx) else {
            break;
        };
        let call = |name: &'static str| Instruction::CallFunction(name, Some(2));
        *instr = match instr {
            Instruction::Lt => call(LT),
            Instruction::Lte => call(LE),
            Instruction::Gt => call(GT),
            Instruction::Gte => call(GE),
            Instruction::Eq => call(EQ),
            Instruction::Ne => call(NE),
            Instruction::StringConcat => call(CONCAT),
            // `a < b < c` keeps `b` on the stack between the two comparisons: no call can do that,
            // so the comparison becomes a call that fails (located by the VM) when it runs.
            Instruction::CompareAndPreserve(_) => call(CHAINED),
            Instruction::GetAttr(key) if NR_KEYS.contains(key) => {
                let name = NR_KEYS
                    .iter()
                    .position(|k| k == key)
                    .map(|i| GET_NAMES[i])
                    .unwrap();
                Instruction::ApplyFilter(name, Some(1), !0)
            }
            Instruction::GetItem if matches!(&previous, Some(Instruction::LoadConst(k)) if k.as_str().is_some_and(|k| NR_KEYS.contains(&k))) => {
                Instruction::ApplyFilter(GET_ITEM, Some(2), !0)
            }
            _ => continue,
        };
    }
}

/// The names of the `__galley_get_<key>` filters, in the order of [`NR_KEYS`] (instructions hold
/// `&'static str` names).
const GET_NAMES: [&str; 5] = [
    "__galley_get_lower",
    "__galley_get_upper",
    "__galley_get_median",
    "__galley_get_median_lower",
    "__galley_get_median_upper",
];

/// Parse, compile, guard and run a template, as `Template::render` does but with [`guard`] between
/// compiling and running.
fn run(
    env: &Environment<'static>,
    name: &str,
    source: &str,
    context: &Value,
) -> Result<String, Error> {
    let ast = machinery::parse(source, name, syntax(), WhitespaceConfig::default())?;
    let mut generator = CodeGenerator::new(name, source);
    generator.compile_stmt(&ast);
    let (mut instructions, mut blocks): (Instructions<'_>, BTreeMap<&str, Instructions<'_>>) =
        generator.finish();
    guard(&mut instructions);
    blocks.values_mut().for_each(guard);
    let mut out = String::new();
    Vm::new(env).eval(
        &instructions,
        context.clone(),
        &blocks,
        &mut machinery::make_string_output(&mut out),
        AutoEscape::None,
    )?;
    Ok(out)
}

fn n_pct(
    n: &Value,
    total: &Value,
    kwargs: &Kwargs,
    rules: &FormatSection,
) -> Result<String, Error> {
    let digits: Option<usize> = kwargs.get("digits")?;
    kwargs.assert_all_used()?;
    let n = present(n, "n_pct", "the count is missing")?;
    let total = present(total, "n_pct", "the total is missing")?;
    Ok(numfmt::n_percent(
        n,
        total,
        digits.unwrap_or(rules.percent_digits),
    ))
}

/// Render one manuscript file's template. Errors become diagnostics at the file's real line.
pub fn render(
    env: &Environment<'static>,
    name: &str,
    source: &str,
    display: &Path,
    context: &Value,
) -> Result<String, Diagnostic> {
    run(env, name, source, context).map_err(|e| diagnostic(&e, source, display))
}

/// Render a template text as the prose is rendered (with the missing-value checks of [`guard`]),
/// for the audit trail's printed text of an expression.
pub fn render_str(
    env: &Environment<'static>,
    text: &str,
    context: &Value,
) -> Result<String, Error> {
    run(env, "<string>", text, context)
}

/// Render a short string (a caption or a table note) that belongs to a block at `location`.
pub fn render_inline(
    env: &Environment<'static>,
    text: &str,
    context: &Value,
    location: &Location,
) -> Result<String, Diagnostic> {
    if !text.contains("{{") && !text.contains("{%") {
        return Ok(text.to_string());
    }
    run(env, "<string>", text, context).map_err(|e| {
        Diagnostic::error(format!("template error in `{text}`: {}", describe(&e)))
            .at(location.clone())
    })
}

fn describe(e: &Error) -> String {
    let what = match e.kind() {
        ErrorKind::UndefinedError => "undefined value".to_string(),
        ErrorKind::OutOfFuel => format!(
            "the template ran too long (more than {TEMPLATE_FUEL} steps): is there a loop that never ends?"
        ),
        _ => e.kind().to_string(),
    };
    match e.detail() {
        Some(detail) if !detail.is_empty() => format!("{what}: {detail}"),
        _ => what,
    }
}

fn diagnostic(e: &Error, source: &str, display: &Path) -> Diagnostic {
    let mut message = format!("template error: {}", describe(e));
    // Name the expression that failed (`deaths.nn`), not just its position.
    if let Some(range) = e.range()
        && let Some(text) = source.get(range)
        && !text.is_empty()
        && text.len() < 200
    {
        message.push_str(&format!(" in `{}`", text.trim()));
    }
    let mut d = Diagnostic::error(message);
    match (e.range(), e.line()) {
        (Some(range), _) => d = d.at_offset(display, source, range.start),
        (None, Some(line)) => {
            d = d.at(Location::line(display, line));
            if let Some(text) = source.lines().nth(line.saturating_sub(1)) {
                d = d.with_snippet(text);
            }
        }
        _ => d = d.in_file(display),
    }
    if e.kind() == ErrorKind::UndefinedError {
        d = d.hint("names in `{{ }}` are analysis block ids (with their result keys) or `study`");
    }
    // The environment has no loader, on purpose: the prose cannot read files (see docs/security.md).
    if e.kind() == ErrorKind::TemplateNotFound {
        d = d.hint("`include`, `import` and `extends` load nothing in galley: a manuscript cannot read other files; define a macro in the same file instead");
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_with(src: &str, ctx: Value) -> Result<String, Diagnostic> {
        let env = environment(&FormatSection::default());
        render(&env, "m.md", src, Path::new("m.md"), &ctx)
    }

    #[test]
    fn filters_format_numbers() {
        let ctx = Value::from_serialize(serde_json::json!({
            "km": {"median": 54.04, "p": 0.0312, "lower": 1.234, "upper": 2.5},
            "g": {"median": null, "median_lower": 20.0},
            "n": 15, "total": 25
        }));
        let out = render_with(
            "{{ km.median | num(1) }} {{ g.median | num }} {{ km.p | pvalue }} {{ n_pct(n, total) }} {{ km | ci(2) }} {{ 0.6 | pct }}",
            ctx,
        )
        .unwrap();
        assert_eq!(out, "54.0 NR p = 0.031 15 (60%) 1.23\u{2013}2.50 60%");
    }

    #[test]
    fn undefined_name_is_an_error_at_its_line() {
        let ctx = Value::from_serialize(serde_json::json!({"km": {"median": 1.0}}));
        let err = render_with("line one\n\nthe {{ km.medain | num }}\n", ctx).unwrap_err();
        assert_eq!(err.location.as_ref().unwrap().line, Some(3), "{err}");
        assert!(err.message.contains("undefined"), "{err}");
    }

    #[test]
    fn runaway_loop_stops_with_a_message() {
        let err = render_with(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            Value::from(()),
        )
        .unwrap_err();
        assert!(err.message.contains("ran too long"), "{err}");
    }
}
