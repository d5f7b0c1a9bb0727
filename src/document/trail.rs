//! The audit trail: every value a template expression or a table cell puts into the manuscript, with
//! where it appears, the expression, the block results it came from (unrounded), and the text printed.
//! Written to `trail.json`, so a reviewer can trace any number in the PDF back to a block and its data.
//!
//! Also the hand-typed-number lint: digits in the prose that no expression produced (years, citations
//! and the manifest's allow-list excepted) are warnings, because a number typed by hand does not change
//! when the data do.

use minijinja::Environment;
use minijinja::value::Value;
use serde::Serialize;

use crate::analysis::artifacts::Table;
use crate::diagnostics::Diagnostic;
use crate::study::published::lookup;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Source {
    /// Path into the results, e.g. `km_os.groups[1].median`.
    pub path: String,
    /// The block id (first segment of the path) or `study`.
    pub block: String,
    /// The unrounded value at that path.
    pub value: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrailEntry {
    /// Manuscript file (relative to the study) and line, or the block that made a table.
    pub file: String,
    pub line: usize,
    /// `prose`, `caption` or `table`.
    pub context: &'static str,
    /// The template expression (`km_os.groups[1].median | num(1)`) or the table cell (`tbl1[3][2]`).
    pub expression: String,
    pub sources: Vec<Source>,
    /// The expression's value before formatting filters, when it can be evaluated on its own.
    pub value: serde_json::Value,
    /// The text printed in the manuscript (`None` for an expression inside a loop, whose value
    /// depends on the loop variable).
    pub text: Option<String>,
}

/// `{{ ... }}` expressions of a template with their byte offsets (template comments skipped).
pub fn expressions(template: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < template.len() {
        let rest = &template[i..];
        if rest.starts_with("{##") {
            i += rest.find("##}").map_or(rest.len(), |e| e + 3);
            continue;
        }
        if rest.starts_with("{{") {
            let Some(end) = rest.find("}}") else { break };
            let inner = rest[2..end].trim_matches(|c: char| c == '-' || c.is_whitespace());
            out.push((i, inner.to_string()));
            i += end + 2;
            continue;
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    out
}

/// The expression without its filters (`a.b | num(1)` -> `a.b`), split at the first top-level `|`.
fn base_expression(expr: &str) -> &str {
    let (mut depth, mut quote) = (0i32, None::<char>);
    for (i, c) in expr.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            (None, '|') if depth == 0 => return expr[..i].trim(),
            _ => {}
        }
    }
    expr.trim()
}

/// Dotted paths in an expression whose first name is in `roots` (block ids and `study`).
fn paths(expr: &str, roots: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts = (c.is_ascii_alphabetic() || c == '_')
            && (i == 0
                || !(chars[i - 1].is_ascii_alphanumeric()
                    || chars[i - 1] == '_'
                    || chars[i - 1] == '.'));
        if !starts {
            if c == '\'' || c == '"' {
                // skip string literals
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += 1;
                }
            }
            i += 1;
            continue;
        }
        let mut path = String::new();
        while i < chars.len() {
            let c = chars[i];
            if c.is_ascii_alphanumeric() || c == '_' {
                path.push(c);
                i += 1;
            } else if c == '.'
                && chars
                    .get(i + 1)
                    .is_some_and(|n| n.is_ascii_alphabetic() || *n == '_')
            {
                path.push('.');
                i += 1;
            } else if c == '[' {
                let close = chars[i..].iter().position(|&x| x == ']').map(|p| i + p);
                let Some(close) = close else { break };
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                if inner.chars().all(|d| d.is_ascii_digit()) && !inner.is_empty() {
                    path.push_str(&format!("[{inner}]"));
                } else if (inner.starts_with('"') && inner.ends_with('"'))
                    || (inner.starts_with('\'') && inner.ends_with('\''))
                {
                    path.push('.');
                    path.push_str(&inner[1..inner.len() - 1]);
                } else {
                    break;
                }
                i = close + 1;
            } else {
                break;
            }
        }
        let root = path.split(['.', '[']).next().unwrap_or("");
        // A name followed by `(` is a function call, not a result.
        let called = chars.get(i).is_some_and(|&c| c == '(');
        if roots.contains_key(root) && !called && !out.contains(&path) {
            out.push(path);
        }
    }
    out
}

/// Marks around a templated value in audit mode: `START index SEP value END` (private-use characters,
/// which no manuscript text contains); the Markdown converter turns them into links to the appendix.
pub const MARK_START: char = '\u{E000}';
pub const MARK_SEP: char = '\u{E001}';
pub const MARK_END: char = '\u{E002}';

/// The template with each `{{ ... }}` wrapped in marks carrying its trail index (counting from `first`,
/// in the order `expressions` finds them, which is the order of the trail entries).
pub fn instrument(template: &str, first: usize) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut copied = 0;
    for (i, (offset, _)) in expressions(template).into_iter().enumerate() {
        let end = template[offset..]
            .find("}}")
            .map_or(template.len(), |e| offset + e + 2);
        out.push_str(&template[copied..offset]);
        out.push(MARK_START);
        out.push_str(&(first + i).to_string());
        out.push(MARK_SEP);
        out.push_str(&template[offset..end]);
        out.push(MARK_END);
        copied = end;
    }
    out.push_str(&template[copied..]);
    out
}

/// Trail entries for one template (a manuscript file or a caption).
#[allow(clippy::too_many_arguments)]
pub fn template_entries(
    env: &Environment<'static>,
    template: &str,
    file: &str,
    base_line: usize,
    context_kind: &'static str,
    context: &Value,
    results: &serde_json::Value,
) -> Vec<TrailEntry> {
    let empty = serde_json::Map::new();
    let roots = results.as_object().unwrap_or(&empty);
    expressions(template)
        .into_iter()
        .map(|(offset, expr)| {
            let line = base_line + template[..offset].matches('\n').count();
            let sources = paths(&expr, roots)
                .into_iter()
                .map(|path| Source {
                    block: path.split(['.', '[']).next().unwrap_or("").to_string(),
                    value: lookup(results, &path)
                        .cloned()
                        .unwrap_or(serde_json::Value::Null),
                    path,
                })
                .collect();
            let value = env
                .compile_expression(base_expression(&expr))
                .ok()
                .and_then(|e| e.eval(context).ok())
                .and_then(|v| serde_json::to_value(&v).ok())
                .unwrap_or(serde_json::Value::Null);
            let text =
                crate::document::template::render_str(env, &format!("{{{{ {expr} }}}}"), context)
                    .ok();
            TrailEntry {
                file: file.to_string(),
                line,
                context: context_kind,
                expression: expr,
                sources,
                value,
                text,
            }
        })
        .collect()
}

/// Trail entries for the numeric cells of a block's table.
pub fn table_entries(table: &Table, block: &str, file: &str, line: usize) -> Vec<TrailEntry> {
    let mut out = Vec::new();
    for (r, row) in table.rows.iter().enumerate() {
        for (c, cell) in row.cells.iter().enumerate() {
            let Some(v) = cell.value else { continue };
            let column = table.header.get(c).cloned().unwrap_or_default();
            let row_label = row
                .cells
                .first()
                .map(|c| c.text.clone())
                .unwrap_or_default();
            out.push(TrailEntry {
                file: file.to_string(),
                line,
                context: "table",
                expression: format!("{}: {row_label} / {column}", table.name),
                sources: vec![Source {
                    path: format!(
                        "{block} (table {}, row {}, column {})",
                        table.name,
                        r + 1,
                        c + 1
                    ),
                    block: block.to_string(),
                    value: serde_json::json!(v),
                }],
                value: serde_json::json!(v),
                text: Some(cell.text.clone()),
            });
        }
    }
    out
}

/// Hand-typed numbers in a manuscript template's prose: warnings at their lines.
pub fn lint_numbers(
    template: &str,
    display: &std::path::Path,
    allow: &[String],
) -> Vec<Diagnostic> {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    // Blank out expressions, statements and comments, keeping offsets.
    let mut masked = template.to_string();
    for (open, close) in [("{{", "}}"), ("{%", "%}"), ("{##", "##}")] {
        let mut from = 0;
        while let Some(s) = masked[from..].find(open).map(|p| p + from) {
            let Some(e) = masked[s..].find(close).map(|p| s + p + close.len()) else {
                break;
            };
            let blank: String = masked[s..e]
                .chars()
                .map(|c| if c == '\n' { '\n' } else { ' ' })
                .collect();
            masked.replace_range(s..e, &blank);
            from = e;
        }
    }
    let mut out = Vec::new();
    let mut in_code = 0;
    for (event, range) in
        Parser::new_ext(&masked, crate::study::manuscript::markdown_options()).into_offset_iter()
    {
        match event {
            Event::Start(Tag::CodeBlock(_)) => in_code += 1,
            Event::End(TagEnd::CodeBlock) => in_code -= 1,
            Event::Text(_) if in_code == 0 => {
                // Work on the source slice so positions are offsets in the file.
                let slice = &masked[range.clone()];
                for (pos, number) in numbers_in(slice) {
                    let offset = range.start + pos;
                    if is_allowed(&number, &masked, offset, allow) {
                        continue;
                    }
                    out.push(
                        Diagnostic::warning(format!("number `{number}` typed by hand in the prose"))
                            .at_offset(display, template, offset)
                            .hint("compute it in a block and write it with {{ ... }}, or add it to [lint] allow_numbers in study.toml"),
                    );
                }
            }
            _ => {}
        }
    }
    out
}

/// Standalone numbers (not part of a word like `G1` or `R0`), with their byte position.
fn numbers_in(text: &str) -> Vec<(usize, String)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit()
            && (i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric()
                    || bytes[i - 1] == b'_'
                    || bytes[i - 1] == b'@'
                    || bytes[i - 1] == b'-'))
        {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_digit()
                    || ((bytes[i] == b'.' || bytes[i] == b',')
                        && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)))
            {
                i += 1;
            }
            let attached_letter = bytes.get(i).is_some_and(|b| b.is_ascii_alphabetic());
            if !attached_letter {
                let mut end = i;
                if bytes.get(i) == Some(&b'%') {
                    end += 1;
                }
                out.push((start, text[start..end].to_string()));
            }
        } else {
            i += 1;
        }
    }
    out
}

fn is_allowed(number: &str, text: &str, pos: usize, allow: &[String]) -> bool {
    if allow.iter().any(|a| a == number) {
        return true;
    }
    // Years.
    if number.len() == 4
        && number
            .parse::<u32>()
            .is_ok_and(|y| (1800..=2100).contains(&y))
    {
        return true;
    }
    // Inside a citation `[@key, p. 4]` on the same line.
    let before = &text[..pos];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let before = &before[line_start..];
    if let Some(open) = before.rfind('[')
        && !before[open..].contains(']')
        && before[open..].contains('@')
    {
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_expressions_skipping_comments() {
        let t = "a {{ x.n }} b {## {{ hidden }} ##} c {{ y | num(1) }}";
        let e = expressions(t);
        assert_eq!(
            e.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
            ["x.n", "y | num(1)"]
        );
    }

    #[test]
    fn paths_follow_results_and_skip_functions() {
        let roots: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"km": {}, "lr": {}}"#).unwrap();
        assert_eq!(
            paths("km.groups[1].median | num(1)", &roots),
            ["km.groups[1].median"]
        );
        assert_eq!(
            paths("n_pct(km.a[\"yes\"].n, lr.n)", &roots),
            ["km.a.yes.n", "lr.n"]
        );
        assert_eq!(base_expression("a.b | num(1)"), "a.b");
        assert_eq!(base_expression("ci(a, b) "), "ci(a, b)");
    }

    #[test]
    fn lint_flags_typed_numbers_but_not_years_words_or_expressions() {
        let t = "In 2015, 25 patients (G1, R0) had {{ x }} events [@a, p. 4]; 12.5% died.\n";
        let d = lint_numbers(t, std::path::Path::new("m.md"), &[]);
        let found: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            found,
            [
                "number `25` typed by hand in the prose",
                "number `12.5%` typed by hand in the prose"
            ]
        );
        let allowed = lint_numbers(
            t,
            std::path::Path::new("m.md"),
            &["25".into(), "12.5%".into()],
        );
        assert!(allowed.is_empty());
    }
}
