//! The template language of the prose: minijinja expressions bound to analysis results by block id.
//!
//! Undefined names are errors (strict mode) that name the manuscript file and line, because a
//! misspelled `{{ km.median }}` that silently prints nothing is a wrong paper. Filters implement the
//! journal's number formatting (`format.rs`) so that every number in the prose follows one set of rules.

use std::path::Path;
use std::sync::Arc;

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

use crate::diagnostics::{Diagnostic, Location};
use crate::format;
use crate::manifest::FormatSection;

/// Steps of template evaluation allowed per file: ends a runaway loop with a clear message.
pub const TEMPLATE_FUEL: u64 = 5_000_000;

/// Most items a `{{ }}` prints of a list or map. `{{ [0] * 10**16 }}` is a lazy list of 10^16
/// items that minijinja prints without spending fuel (found by fuzzing: a render that never
/// ended); no manuscript prints more than a few items of a list.
pub const MAX_PRINTED_ITEMS: usize = 10_000;

/// Build the environment with galley's filters and functions.
pub fn environment(rules: &FormatSection) -> Environment<'static> {
    let mut env = Environment::new();
    // `{#id}` after a Markdown heading is a label, not the start of a Jinja comment: comments are
    // written `{## ... ##}` in galley manuscripts.
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .comment_delimiters("{##", "##}")
        .build()
        .expect("valid delimiters");
    env.set_syntax(syntax);
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
        minijinja::escape_formatter(out, state, value)
    });
    let rules = Arc::new(rules.clone());

    // {{ x | num(1) }}: fixed decimals; a missing (not reached) value prints as "NR".
    let r = rules.clone();
    env.add_filter(
        "num",
        move |v: Value, digits: Option<usize>| -> Result<String, Error> {
            Ok(match number(&v, "num")? {
                Some(x) => format::fixed(x, digits.unwrap_or(1)),
                None => r.not_reached.clone(),
            })
        },
    );
    // {{ n | count }}: an integer with thousands separators.
    env.add_filter("count", |v: Value| -> Result<String, Error> {
        Ok(number(&v, "count")?.map_or_else(|| "\u{2013}".to_string(), format::count))
    });
    // {{ 0.6 | pct }} -> 60%: a proportion as a percentage.
    let r = rules.clone();
    env.add_filter(
        "pct",
        move |v: Value, digits: Option<usize>| -> Result<String, Error> {
            Ok(match number(&v, "pct")? {
                Some(x) => format::percent(x, digits.unwrap_or(r.percent_digits)),
                None => r.not_reached.clone(),
            })
        },
    );
    // {{ p | pvalue }} -> "p = 0.03" / "p < 0.001"; {{ p | pnum }} -> "0.03" / "< 0.001".
    let r = rules.clone();
    env.add_filter("pvalue", move |v: Value| -> Result<String, Error> {
        let p = number(&v, "pvalue")?.ok_or_else(|| invalid("pvalue: the p-value is missing"))?;
        Ok(format::p_value(p, &r))
    });
    let r = rules.clone();
    env.add_filter("pnum", move |v: Value| -> Result<String, Error> {
        let p = number(&v, "pnum")?.ok_or_else(|| invalid("pnum: the p-value is missing"))?;
        Ok(format::p_number(p, &r))
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
            Ok(format::interval(
                number(&lower, "ci")?,
                number(&upper, "ci")?,
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
            Ok(format::interval(
                number(&lower, "ci")?,
                number(&upper, "ci")?,
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
            Ok(format::interval(
                number(&lower, "span")?,
                number(&upper, "span")?,
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

/// A template value as a number: `None` for none/null (not estimable), an error for text.
fn number(v: &Value, filter: &str) -> Result<Option<f64>, Error> {
    match v.kind() {
        ValueKind::None => Ok(None),
        ValueKind::Number | ValueKind::Bool => f64::try_from(v.clone())
            .map(Some)
            .map_err(|_| invalid(format!("{filter}: `{v}` is not a number"))),
        ValueKind::Undefined => Err(Error::new(
            ErrorKind::UndefinedError,
            format!("{filter}: undefined value"),
        )),
        _ => Err(invalid(format!("{filter}: expected a number, found `{v}`"))),
    }
}

fn n_pct(
    n: &Value,
    total: &Value,
    kwargs: &Kwargs,
    rules: &FormatSection,
) -> Result<String, Error> {
    let digits: Option<usize> = kwargs.get("digits")?;
    kwargs.assert_all_used()?;
    let n = number(n, "n_pct")?.ok_or_else(|| invalid("n_pct: the count is missing"))?;
    let total = number(total, "n_pct")?.ok_or_else(|| invalid("n_pct: the total is missing"))?;
    Ok(format::n_percent(
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
    let template = env
        .template_from_named_str(name, source)
        .map_err(|e| diagnostic(&e, source, display))?;
    template
        .render(context)
        .map_err(|e| diagnostic(&e, source, display))
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
    env.render_str(text, context).map_err(|e| {
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
            "km": {"median": 54.04, "nr": null, "p": 0.0312, "lower": 1.234, "upper": 2.5},
            "n": 15, "total": 25
        }));
        let out = render_with(
            "{{ km.median | num(1) }} {{ km.nr | num }} {{ km.p | pvalue }} {{ n_pct(n, total) }} {{ km | ci(2) }} {{ 0.6 | pct }}",
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
