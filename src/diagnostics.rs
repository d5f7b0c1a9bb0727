//! One diagnostic type for every stage: manifest, CSV, Markdown, templates, analysis blocks and Typst.
//!
//! A diagnostic names the file, and where known the line and column, says what was found and what was
//! expected, and may carry hints. Rendering follows cargo/rustc (`error: ...` then `--> file:line:col`
//! and the offending source line), which researchers' editors and CI logs already understand.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// Where a problem is: a file and, when known, a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl Location {
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Location {
            file: file.into(),
            line: None,
            column: None,
        }
    }

    pub fn line(file: impl Into<PathBuf>, line: usize) -> Self {
        Location {
            file: file.into(),
            line: Some(line),
            column: None,
        }
    }

    pub fn at(file: impl Into<PathBuf>, line: usize, column: usize) -> Self {
        Location {
            file: file.into(),
            line: Some(line),
            column: Some(column),
        }
    }

    /// The location of byte `offset` in `source` (lines and columns count from 1, columns in characters).
    pub fn from_offset(file: impl Into<PathBuf>, source: &str, offset: usize) -> Self {
        let (line, column) = line_column(source, offset);
        Location::at(file, line, column)
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..floor_char_boundary(source, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Text with CR-only line ends (classic Mac OS, some exporters) turned into LF: every reader galley
/// uses (CSV, TOML, Markdown) and every line number it reports count LF. A lone CR becomes one LF,
/// so byte offsets, and so the spans of diagnostics, stay the same; CRLF is left as it is.
pub fn lone_cr_to_lf(text: &str) -> std::borrow::Cow<'_, str> {
    let b = text.as_bytes();
    let lone = |i: usize| b[i] == b'\r' && b.get(i + 1) != Some(&b'\n');
    if !(0..b.len()).any(lone) {
        return std::borrow::Cow::Borrowed(text);
    }
    let out: Vec<u8> = (0..b.len())
        .map(|i| if lone(i) { b'\n' } else { b[i] })
        .collect();
    // Replacing one ASCII byte by another keeps the text UTF-8.
    std::borrow::Cow::Owned(String::from_utf8(out).unwrap_or_else(|_| text.to_string()))
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub location: Option<Location>,
    /// The source line the location points into, shown under the message.
    #[serde(skip)]
    pub snippet: Option<String>,
    /// Characters of the source line left out before `snippet` (kept short around the column).
    #[serde(skip)]
    snippet_skip: usize,
    pub hints: Vec<String>,
    /// A summary standing for this many problems that are not shown (the cap per file, see
    /// [`MAX_PROBLEMS_PER_FILE`]); 0 for an ordinary diagnostic.
    #[serde(skip)]
    pub omitted: usize,
}

/// Most problems shown for one file. A hostile or broken file (a CSV with a million bad columns) must
/// not turn into megabytes of diagnostics; the rest is summed up in one "… and N more" line.
pub const MAX_PROBLEMS_PER_FILE: usize = 50;

/// Most characters of a value echoed in a message, and of a source line shown under it.
pub const MAX_ECHO_CHARS: usize = 80;
const MAX_SNIPPET_CHARS: usize = 160;
const MAX_MESSAGE_CHARS: usize = 4000;

/// A value from an input as a message may quote it: at most [`MAX_ECHO_CHARS`] characters (then how
/// many more there were), control characters escaped so that a cell cannot move the cursor or
/// recolour the terminal of the person reading the error.
pub fn excerpt(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    for c in chars.by_ref().take(MAX_ECHO_CHARS) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    let rest = chars.count();
    if rest > 0 {
        out.push_str(&format!("… ({rest} more characters)"));
    }
    out
}

/// Up to `max` characters of `text` around character `col` (1-based), with `…` where it was cut, and
/// the column within the window.
fn window(text: &str, col: usize, max: usize) -> (String, usize) {
    let n = text.chars().count();
    if n <= max {
        return (text.to_string(), col);
    }
    let start = col.saturating_sub(max / 2).min(n - max);
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(text.chars().skip(start).take(max));
    if start + max < n {
        out.push('…');
    }
    (out, col - start + usize::from(start > 0))
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            location: None,
            snippet: None,
            snippet_skip: 0,
            hints: Vec::new(),
            omitted: 0,
        }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
        }
    }

    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    pub fn in_file(self, file: impl Into<PathBuf>) -> Self {
        self.at(Location::file(file))
    }

    /// Locate at a byte offset of `source` and keep that source line as the snippet.
    pub fn at_offset(mut self, file: impl Into<PathBuf>, source: &str, offset: usize) -> Self {
        let location = Location::from_offset(file, source, offset);
        // Only the part of the line around the column is kept: a one-line 16 MB manifest with many
        // problems must not be copied once per problem.
        let offset = floor_char_boundary(source, offset.min(source.len()));
        let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[offset..]
            .find('\n')
            .map_or(source.len(), |i| offset + i);
        let line = source[line_start..line_end].trim_end_matches('\r');
        let col = location.column.unwrap_or(1) - 1;
        let skip = col.saturating_sub(MAX_SNIPPET_CHARS);
        self.snippet = Some(
            line.chars()
                .skip(skip)
                .take(2 * MAX_SNIPPET_CHARS)
                .collect(),
        );
        self.snippet_skip = skip;
        self.location = Some(location);
        self
    }

    pub fn with_snippet(mut self, snippet: impl Into<String>) -> Self {
        self.snippet = Some(snippet.into());
        self.snippet_skip = 0;
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// The same diagnostic as an error (`--deny-warnings`).
    pub fn into_error(mut self) -> Diagnostic {
        self.severity = Severity::Error;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        // Messages quote inputs through `excerpt`; this is the backstop for any that does not.
        let (message, _) = window(&self.message, 1, MAX_MESSAGE_CHARS);
        write!(f, "{label}: {message}")?;
        if let Some(location) = &self.location {
            write!(f, "\n  --> {location}")?;
            if let (Some(snippet), Some(line)) = (&self.snippet, location.line) {
                // A long line (a minified manifest, a 50 MB Markdown line) is shown around the column.
                let col = location
                    .column
                    .unwrap_or(1)
                    .saturating_sub(self.snippet_skip);
                let (mut snippet, col) = window(snippet, col.max(1), MAX_SNIPPET_CHARS);
                let col = if self.snippet_skip > 0 && !snippet.starts_with('…') {
                    snippet.insert(0, '…');
                    col + 1
                } else {
                    col
                };
                // Control characters of the line are not sent to the terminal (one character each,
                // so the caret still lines up).
                let snippet: String = snippet
                    .chars()
                    .map(|c| {
                        if c.is_control() && c != '\t' {
                            '\u{fffd}'
                        } else {
                            c
                        }
                    })
                    .collect();
                let gutter = line.to_string().len();
                write!(f, "\n{:gutter$} |\n{line} | {snippet}", "")?;
                if location.column.is_some() {
                    let pad: String = snippet
                        .chars()
                        .take(col.saturating_sub(1))
                        .map(|c| if c == '\t' { '\t' } else { ' ' })
                        .collect();
                    write!(f, "\n{:gutter$} | {pad}^", "")?;
                }
            }
        }
        for hint in &self.hints {
            write!(f, "\n  = help: {hint}")?;
        }
        Ok(())
    }
}

/// A failed stage: one or more diagnostics, at least one of them an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub diagnostics: Vec<Diagnostic>,
}

impl Failure {
    /// The diagnostics, at most [`MAX_PROBLEMS_PER_FILE`] per file: the rest become one summary per
    /// file (earlier summaries are merged, so a list may be capped again after it is extended).
    pub fn new(diagnostics: Vec<Diagnostic>) -> Self {
        let mut per_file: indexmap::IndexMap<Option<PathBuf>, (usize, usize)> =
            indexmap::IndexMap::new();
        let mut kept = Vec::new();
        for d in diagnostics {
            let (shown, omitted) = per_file
                .entry(d.location.as_ref().map(|l| l.file.clone()))
                .or_default();
            if d.omitted > 0 {
                *omitted += d.omitted;
            } else if *shown < MAX_PROBLEMS_PER_FILE {
                *shown += 1;
                kept.push(d);
            } else {
                *omitted += 1;
            }
        }
        for (file, (_, omitted)) in per_file {
            if omitted > 0 {
                let mut d = Diagnostic::error(format!(
                    "… and {omitted} more problem{} in this file (only the first {MAX_PROBLEMS_PER_FILE} are shown)",
                    if omitted == 1 { "" } else { "s" }
                ));
                d.omitted = omitted;
                kept.push(match file {
                    Some(file) => d.in_file(file),
                    None => d,
                });
            }
        }
        Failure { diagnostics: kept }
    }

    /// How many errors there are, counting those a summary stands for.
    pub fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.omitted.max(1))
            .sum()
    }
}

impl From<Diagnostic> for Failure {
    fn from(d: Diagnostic) -> Self {
        Failure {
            diagnostics: vec![d],
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

pub type Result<T> = std::result::Result<T, Failure>;

/// A stage's value together with the warnings it found (typst's `Warned<T>`): warnings travel with
/// the results up to `cmd`, which prints them once; `--deny-warnings` turns them into errors there
/// without running anything again.
#[derive(Debug, Clone)]
pub struct Warned<T> {
    pub output: T,
    pub warnings: Vec<Diagnostic>,
}

/// Bytes of `file` that are not UTF-8: located by line and column (of the valid text before the bad
/// byte), which an editor can jump to; a byte offset it cannot.
pub fn not_utf8(file: &Path, bytes: &[u8], err: std::str::Utf8Error) -> Diagnostic {
    let valid = err.valid_up_to();
    // Valid by definition of `valid_up_to`.
    let before = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
    let (line, column) = line_column(before, valid);
    let bad: Vec<String> = bytes[valid..]
        .iter()
        .take(err.error_len().unwrap_or(bytes.len() - valid).min(4))
        .map(|b| format!("{b:#04x}"))
        .collect();
    let snippet = before[before.rfind('\n').map_or(0, |i| i + 1)..].to_string();
    Diagnostic::error(format!(
        "the file is not valid UTF-8 text: byte {} at line {line}, column {column} is not part of a UTF-8 character",
        bad.join(" ")
    ))
    .at(Location::at(file, line, column))
    .with_snippet(snippet)
    .hint("save the file as UTF-8 (in a spreadsheet: \"CSV UTF-8\"); Latin-1 or Windows-1252 exports give this error")
}

/// An I/O error reading or writing `path`, phrased for a person.
pub fn io_error(action: &str, path: &Path, err: &std::io::Error) -> Diagnostic {
    let what = match err.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => err.to_string(),
    };
    Diagnostic::error(format!("cannot {action} `{}`: {what}", path.display())).in_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_from_one_in_characters() {
        let src = "ab\ncdé f\n";
        assert_eq!(line_column(src, 0), (1, 1));
        assert_eq!(line_column(src, 3), (2, 1));
        // 'f' is after "cdé " (é is two bytes): byte 3 + 5 = 8, column 5
        assert_eq!(line_column(src, 8), (2, 5));
    }

    #[test]
    fn renders_location_snippet_and_caret() {
        let src = "title = \"x\"\ntitel = \"y\"\n";
        let d = Diagnostic::error("unknown field `titel`").at_offset("study.toml", src, 12);
        let text = d.to_string();
        assert!(text.contains("--> study.toml:2:1"), "{text}");
        assert!(text.contains("2 | titel = \"y\""), "{text}");
    }
}
