//! The study's source format (docs/formats.md): the version `study.toml` declares with
//! `format_version`, which covers study.toml and the specs of the analysis blocks in its
//! manuscript, and what an unknown key in either means: a key renamed or removed by a later format
//! (an error saying what to write instead), or a near miss of a known key ("did you mean").
//!
//! To rename or remove a key in a later format: raise [`STUDY_FORMAT`], make the change in the
//! serde types, and add a [`KeyChange`] to [`MANIFEST_CHANGES`] or [`BLOCK_CHANGES`] (and the
//! format's entry to docs/formats.md). An existing study then stops at the old key, at its line,
//! told the new spelling, instead of with a bare "unknown field".

use std::ops::Range;

use crate::diagnostics::Diagnostic;

/// The newest study format this galley reads (and the one a study without `format_version` is in).
pub const STUDY_FORMAT: u32 = 1;

/// A key of study.toml or of a block spec that a format renamed or removed.
#[derive(Debug, Clone, Copy)]
pub struct KeyChange {
    /// The table the key is in: `study`, `data.*.columns.*` in study.toml (`*` is any name the
    /// author chose; arrays of tables such as `[[authors]]` are named without an index); a block
    /// kind, `kaplan_meier`, or a table inside its spec, `kaplan_meier.figure`, for a block.
    pub table: &'static str,
    pub key: &'static str,
    /// The study format that made the change.
    pub format: u32,
    pub change: Change,
}

#[derive(Debug, Clone, Copy)]
pub enum Change {
    /// The key's new name.
    Renamed(&'static str),
    /// What to do instead.
    Removed(&'static str),
}

/// Keys of study.toml renamed or removed since format 1 (none yet).
pub const MANIFEST_CHANGES: &[KeyChange] = &[];

/// Keys of block specs renamed or removed since format 1 (none yet).
pub const BLOCK_CHANGES: &[KeyChange] = &[];

/// A better message, or a hint, for a serde error about an unknown key or value in a TOML source.
#[derive(Debug, Default)]
pub struct Explained {
    /// Replaces serde's message.
    pub message: Option<String>,
    pub hint: Option<String>,
}

impl Explained {
    /// `diagnostic` (serde's message, located) with the explanation: its message after `prefix`
    /// (what the diagnostic's message starts with, e.g. the block it is in), its hint.
    pub fn apply(self, mut diagnostic: Diagnostic, prefix: &str) -> Diagnostic {
        if let Some(message) = self.message {
            diagnostic.message = format!("{prefix}{message}");
        }
        match self.hint {
            Some(hint) => diagnostic.hint(hint),
            None => diagnostic,
        }
    }
}

/// Explain a serde error `message` from parsing `source` (located at `span`): `prefix` names the
/// table `source` itself is (`[]` for study.toml, `[kind]` for a block's spec), `changes` the keys
/// that were renamed or removed. Nothing to add when the error is not about an unknown key or value.
pub fn explain(
    message: &str,
    span: Option<Range<usize>>,
    source: &str,
    prefix: &[&str],
    changes: &[KeyChange],
) -> Explained {
    explain_unknown(message, span, source, prefix, changes).unwrap_or_default()
}

fn explain_unknown(
    message: &str,
    span: Option<Range<usize>>,
    source: &str,
    prefix: &[&str],
    changes: &[KeyChange],
) -> Option<Explained> {
    let (unknown, expected) = unknown_name(message.trim())?;
    let is_key = message.starts_with("unknown field");
    if is_key
        && let Some(span) = span
        && let Some(table) = table_of_key(source, span.start)
    {
        let mut path: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        path.extend(table);
        if let Some(change) = changes
            .iter()
            .find(|c| c.key == unknown && table_matches(c.table, &path))
        {
            let (format, key) = (change.format, change.key);
            return Some(match change.change {
                Change::Renamed(new) => Explained {
                    message: Some(format!(
                        "`{key}` was renamed to `{new}` in study format {format}"
                    )),
                    hint: Some(format!("write `{new} = ...` instead of `{key} = ...`")),
                },
                Change::Removed(what) => Explained {
                    message: Some(format!("`{key}` was removed in study format {format}")),
                    hint: Some(what.to_string()),
                },
            });
        }
    }
    let best = closest(&unknown, &expected)?;
    Some(Explained {
        message: None,
        hint: Some(format!("did you mean `{best}`?")),
    })
}

/// `titel` and `["title", "short_title"]` from serde's "unknown field `titel`, expected one of
/// `title`, `short_title`" (also "unknown variant", and "expected `a` or `b`").
fn unknown_name(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (name, rest) = rest.split_once('`')?;
    let expected = rest
        .split_once("expected ")
        .map(|(_, list)| {
            list.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some((name.to_string(), expected))
}

/// The known name `name` is most likely a misspelling of: at most one edit in three characters away
/// (a swap of neighbours is one edit), the nearest first.
fn closest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    let chars = name.chars().count();
    // No key galley knows is this long, and the distance costs the product of the lengths.
    if chars > 64 {
        return None;
    }
    let limit = (chars / 3).max(1);
    known
        .iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Edits (insert, delete, replace, swap of neighbours) from `a` to `b`, ignoring case.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    // d[i][j]: edits from a[..i] to b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The path of the table holding the key that starts at byte `offset` of `source`
/// (`["data", "patients", "columns", "id"]`); `None` when no key starts there.
fn table_of_key(source: &str, offset: usize) -> Option<Vec<String>> {
    use toml::de::{DeTable, DeValue};
    fn search(table: &DeTable, offset: usize, path: &mut Vec<String>) -> bool {
        for (key, value) in table.iter() {
            if key.span().start == offset {
                return true;
            }
            path.push(key.get_ref().to_string());
            let found = match value.get_ref() {
                DeValue::Table(t) => search(t, offset, path),
                DeValue::Array(items) => items.iter().any(|item| match item.get_ref() {
                    DeValue::Table(t) => search(t, offset, path),
                    _ => false,
                }),
                _ => false,
            };
            if found {
                return true;
            }
            path.pop();
        }
        false
    }
    let document = DeTable::parse(source).ok()?;
    let mut path = Vec::new();
    search(document.get_ref(), offset, &mut path).then_some(path)
}

/// Whether `path` is the table `pattern` names (`data.*.columns.*`).
fn table_matches(pattern: &str, path: &[String]) -> bool {
    let parts: Vec<&str> = if pattern.is_empty() {
        Vec::new()
    } else {
        pattern.split('.').collect()
    };
    parts.len() == path.len() && parts.iter().zip(path).all(|(p, k)| *p == "*" || p == k)
}

/// The study format `format_version` declares, checked: `Err` is the diagnostic, located at the
/// value in `source` (study.toml, at `file`).
pub fn check_study_format(
    version: Option<&toml::Spanned<toml::Value>>,
    source: &str,
    file: &std::path::Path,
) -> Result<u32, Diagnostic> {
    let Some(version) = version else {
        return Ok(STUDY_FORMAT);
    };
    let at =
        |message: String| Diagnostic::error(message).at_offset(file, source, version.span().start);
    // "study format 1", "study formats 1 to 2"
    let read = match STUDY_FORMAT {
        1 => "study format 1".to_string(),
        n => format!("study formats 1 to {n}"),
    };
    match version.get_ref() {
        toml::Value::Integer(v) if (1..=i64::from(STUDY_FORMAT)).contains(v) => Ok(*v as u32),
        toml::Value::Integer(v) if *v > i64::from(STUDY_FORMAT) => Err(at(format!(
            "this study is in study format {v}, which this galley ({}) does not read: it reads {read}",
            env!("CARGO_PKG_VERSION")
        ))
        .hint("a newer galley wrote it: build it with that galley (docs/formats.md lists what each format changed)")),
        other => Err(at(format!(
            "`format_version` is {}, expected the number of a study format (this galley reads {read})",
            crate::diagnostics::excerpt(&other.to_string())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renamed_block_key_says_what_to_write_at_its_line() {
        use crate::study::InputFile;
        let text = "Text.\n\n```analysis\nid = \"deaths\"\nkind = \"count\"\ndata = \"p\"\ngroup = \"arm\"\n```\n";
        let input = InputFile {
            relative: "manuscript/m.md".into(),
            display: "s/manuscript/m.md".into(),
            bytes: text.as_bytes().to_vec(),
        };
        let doc = crate::study::manuscript::Document::parse(None, &[input]).unwrap();
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Count {
            id: String,
            kind: String,
            data: String,
            by: Option<String>,
        }
        // Stands for an entry a later format will add.
        let changes = [KeyChange {
            table: "count",
            key: "group",
            format: 2,
            change: Change::Renamed("by"),
        }];
        let d = doc.blocks[0]
            .parse_spec_with::<Count>(&changes)
            .unwrap_err();
        assert_eq!(
            (d.message.as_str(), d.location.unwrap().to_string(), d.hints),
            (
                "in analysis block `deaths` (count): `group` was renamed to `by` in study format 2",
                "s/manuscript/m.md:7:1".to_string(),
                vec!["write `by = ...` instead of `group = ...`".to_string()]
            )
        );
        // Without the entry: serde's message and a near miss, if any.
        let d = doc.blocks[0].parse_spec_with::<Count>(&[]).unwrap_err();
        assert!(
            d.message
                .ends_with("unknown field `group`, expected one of `id`, `kind`, `data`, `by`"),
            "{}",
            d.message
        );
        assert!(d.hints.is_empty());
    }

    #[test]
    fn near_misses_are_suggested_and_far_ones_are_not() {
        let known: Vec<String> = ["title", "short_title", "seed", "cutoff"]
            .map(String::from)
            .to_vec();
        assert_eq!(closest("titel", &known), Some("title"));
        assert_eq!(closest("Seed", &known), Some("seed"));
        assert_eq!(closest("short-title", &known), Some("short_title"));
        assert_eq!(closest("cutof", &known), Some("cutoff"));
        assert_eq!(closest("author", &known), None);
        assert_eq!(closest(&"seed".repeat(100_000), &known), None);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn serde_messages_give_the_name_and_the_known_ones() {
        assert_eq!(
            unknown_name("unknown field `titel`, expected one of `title`, `seed`"),
            Some(("titel".into(), vec!["title".into(), "seed".into()]))
        );
        assert_eq!(
            unknown_name("unknown variant `categroy`, expected `category` or `string`"),
            Some(("categroy".into(), vec!["category".into(), "string".into()]))
        );
        assert_eq!(
            unknown_name("unknown field `x`, there are no fields"),
            Some(("x".into(), vec![]))
        );
        assert_eq!(unknown_name("missing field `title`"), None);
    }

    #[test]
    fn the_table_of_a_key_is_found_through_headers_inline_tables_and_arrays() {
        let src = "top = 1\n[study]\ntitle = \"T\"\n[[authors]]\nname = \"A\"\n[data.p.columns]\nid = { type = \"string\", uniq = true }\n";
        let at = |needle: &str| table_of_key(src, src.find(needle).unwrap());
        assert_eq!(at("top"), Some(vec![]));
        assert_eq!(at("title"), Some(vec!["study".to_string()]));
        assert_eq!(at("name"), Some(vec!["authors".to_string()]));
        assert_eq!(
            at("uniq"),
            Some(["data", "p", "columns", "id"].map(String::from).to_vec())
        );
        assert_eq!(table_of_key(src, 1), None);
        assert!(table_matches(
            "data.*.columns.*",
            &["data", "p", "columns", "id"].map(String::from)
        ));
        assert!(!table_matches("data.*", &["study".to_string()]));
        assert!(table_matches("", &[]));
    }
}
