//! `study.toml` as written by the author: a typed, serde-checked mirror of the file.
//!
//! Unknown keys are errors (`deny_unknown_fields`) that name the key, the file and the line: a misspelled
//! key silently ignored is how a cutoff date or a seed quietly stops applying. A key close to a known
//! one gets a "did you mean"; a key a later study format renamed or removed says what to write
//! instead (`compat.rs`). Paths keep their spans so that "file not found" points at the line that
//! names the file. Semantic checks live in `study/mod.rs`.

use std::path::Path;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use crate::diagnostics::{Diagnostic, Result};
use crate::study::compat::{self, KeyChange};

pub const MANIFEST_FILE: &str = "study.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The study format the file (and the study's block specs) is written in; none is the newest
    /// this galley reads (checked before the rest, see `compat.rs`).
    pub format_version: Option<u32>,
    pub study: StudySection,
    #[serde(default)]
    pub authors: Vec<Author>,
    /// Affiliation key -> full affiliation text; authors refer to the keys.
    #[serde(default)]
    pub affiliations: IndexMap<String, String>,
    /// Data tables by name: the name is how analysis blocks refer to them (`data = "patients"`).
    #[serde(default)]
    pub data: IndexMap<String, TableSpec>,
    pub manuscript: ManuscriptSection,
    #[serde(default)]
    pub format: FormatSection,
    #[serde(default)]
    pub lint: LintSection,
    /// Resource limits of a build (see `limits.rs`); the defaults suit any manuscript.
    #[serde(default)]
    pub limits: crate::study::limits::Limits,
}

/// Checks on the prose.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LintSection {
    /// Warn about numbers typed by hand in the prose (not produced by a template expression).
    pub hand_typed_numbers: bool,
    /// Numbers the prose may state by hand (`"95%"`, `"0.2"`, `"1:4"` is two numbers: `"1"`, `"4"`).
    pub allow_numbers: Vec<String>,
}

impl Default for LintSection {
    fn default() -> Self {
        LintSection {
            hand_typed_numbers: true,
            allow_numbers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudySection {
    pub title: String,
    pub short_title: Option<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Seed for every random number the study uses (simulation, bootstrap). Fixed so rebuilds are identical.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Data cutoff (as-of) date, ISO 8601 (`2015-08-31`): also the PDF's creation date.
    pub cutoff: Option<Spanned<DateText>>,
    /// Shown on the title page under the authors, e.g. that the data are simulated.
    pub data_statement: Option<String>,
    /// The journal or venue line on the title page.
    pub venue: Option<String>,
}

fn default_seed() -> u64 {
    1
}

/// A date written either as a TOML date (`2015-08-31`) or a string (`"2015-08-31"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DateText {
    Toml(toml::value::Datetime),
    Text(String),
}

impl DateText {
    pub fn as_text(&self) -> String {
        match self {
            DateText::Toml(d) => d.to_string(),
            DateText::Text(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Author {
    pub name: String,
    pub degrees: Option<String>,
    #[serde(default)]
    pub affiliations: Vec<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub corresponding: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManuscriptSection {
    /// The structured abstract (Markdown with `## Background`-style headings), typeset on the title page.
    #[serde(rename = "abstract")]
    pub abstract_file: Option<Spanned<String>>,
    /// Manuscript files in reading order.
    pub files: Vec<Spanned<String>>,
    /// BibTeX (`.bib`) or Hayagriva (`.yml`) bibliography.
    pub bibliography: Option<Spanned<String>>,
    /// A CSL style: a name Typst knows (`american-medical-association`, `vancouver`, ...) or a `.csl` file.
    #[serde(default = "default_csl")]
    pub csl: String,
    /// A folder in the study with its own `article.typ`, replacing galley's embedded template.
    pub template: Option<Spanned<String>>,
    /// The figures a published paper reports, compared with the reproduced values on every build
    /// (see `reproduction.rs`).
    pub published: Option<Spanned<String>>,
    /// A folder in the study holding a previous build's `provenance.json`, `results.json` and
    /// `trail.json`: the new PDF gets a "Changes since the previous report" appendix.
    pub previous: Option<Spanned<String>>,
}

fn default_csl() -> String {
    "american-medical-association".to_string()
}

/// How numbers print. One set of rules for the prose and every table.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FormatSection {
    /// Decimals of percentages (`15 (60%)`).
    pub percent_digits: usize,
    /// Significant digits of p-values at or above the threshold.
    pub p_digits: usize,
    /// p-values below this print as `< threshold`.
    pub p_threshold: f64,
    /// Printed for an estimate that is not reached or not estimable (a median survival not reached).
    pub not_reached: String,
    /// Between the limits of a range or an interval.
    pub range_separator: String,
}

impl Default for FormatSection {
    fn default() -> Self {
        FormatSection {
            percent_digits: 0,
            p_digits: 2,
            p_threshold: 0.001,
            not_reached: "NR".to_string(),
            range_separator: "\u{2013}".to_string(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub path: Spanned<String>,
    /// How a missing value is spelled in this file, for every column unless a column says otherwise.
    #[serde(default = "default_missing")]
    pub missing: Vec<String>,
    /// Columns in the order the file should have them (extra columns in the file are an error).
    pub columns: IndexMap<String, Spanned<ColumnSpec>>,
}

fn default_missing() -> Vec<String> {
    vec![String::new()]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Category,
    Integer,
    Number,
    Date,
    Boolean,
}

impl ColumnType {
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Category => "category",
            ColumnType::Integer => "integer",
            ColumnType::Number => "number",
            ColumnType::Date => "date",
            ColumnType::Boolean => "boolean",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// A human label for tables and figures ("Age at resection, years").
    pub label: Option<String>,
    /// Allowed levels of a category, in the order tables list them.
    pub levels: Option<Vec<String>>,
    /// How a boolean's true value is spelled (default `yes`, `true`, `1`).
    #[serde(rename = "true")]
    pub true_values: Option<Vec<String>>,
    /// How a boolean's false value is spelled (default `no`, `false`, `0`).
    #[serde(rename = "false")]
    pub false_values: Option<Vec<String>>,
    /// Missing values are an error in this column.
    #[serde(default)]
    pub required: bool,
    /// How a missing value is spelled in this column (overrides the table's `missing`).
    pub missing: Option<Vec<String>>,
    /// Every non-missing value is different.
    #[serde(default)]
    pub unique: bool,
    /// Inclusive bounds: numbers for integer/number columns, ISO dates for date columns.
    pub min: Option<toml::Value>,
    pub max: Option<toml::Value>,
    /// Foreign key: `table.column` whose values this column's values must be among.
    pub references: Option<String>,
    /// strftime-style date format when dates are not ISO 8601 (`%d/%m/%Y`).
    pub format: Option<String>,
}

impl Manifest {
    /// Parse manifest text. `file` is only used to locate diagnostics.
    pub fn parse(source: &str, file: &Path) -> Result<Manifest> {
        Manifest::parse_with(source, file, compat::MANIFEST_CHANGES)
    }

    /// [`Manifest::parse`] with the keys renamed or removed by later formats given.
    fn parse_with(source: &str, file: &Path, changes: &[KeyChange]) -> Result<Manifest> {
        // The declared format first: a study of a newer format may hold keys this galley does not
        // know, and the reason to give is the format, not the key.
        #[derive(Deserialize)]
        struct Declared {
            format_version: Option<Spanned<toml::Value>>,
        }
        if let Ok(declared) = toml::from_str::<Declared>(source) {
            compat::check_study_format(declared.format_version.as_ref(), source, file)?;
        }
        toml::from_str(source).map_err(|err| {
            let explained = compat::explain(err.message(), err.span(), source, &[], changes);
            explained
                .apply(toml_diagnostic_plain(&err, source, file), "")
                .into()
        })
    }
}

/// A TOML/serde error as a located diagnostic, with a "did you mean" for a near miss of a known key
/// or value.
pub fn toml_diagnostic(err: &toml::de::Error, source: &str, file: &Path) -> Diagnostic {
    let explained = compat::explain(err.message(), err.span(), source, &[], &[]);
    explained.apply(toml_diagnostic_plain(err, source, file), "")
}

fn toml_diagnostic_plain(err: &toml::de::Error, source: &str, file: &Path) -> Diagnostic {
    let message = err.message().trim().to_string();
    let mut diagnostic = Diagnostic::error(message);
    if source.contains('\r') && err.message().contains("carriage return") {
        diagnostic = diagnostic.hint(
            "the file has CR-only line ends (classic Mac OS); save it with LF or CRLF line ends",
        );
    }
    match err.span() {
        Some(span) => diagnostic.at_offset(file, source, span.start),
        None => diagnostic.in_file(file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[study]\ntitle = \"T\"\n[manuscript]\nfiles = [\"a.md\"]\n";

    #[test]
    fn parses_minimal_manifest_with_defaults() {
        let m = Manifest::parse(MINIMAL, Path::new("study.toml")).unwrap();
        assert_eq!(m.study.title, "T");
        assert_eq!(m.study.seed, 1);
        assert_eq!(m.manuscript.csl, "american-medical-association");
        assert_eq!(m.format.p_threshold, 0.001);
    }

    /// `error: message`, its location and hints, as the console prints a diagnostic's gist.
    fn gist(err: &crate::diagnostics::Failure) -> String {
        let d = &err.diagnostics[0];
        let at = d
            .location
            .as_ref()
            .map(|l| l.to_string())
            .unwrap_or_default();
        format!("{} @ {at} | {}", d.message, d.hints.join(" | "))
    }

    #[test]
    fn a_renamed_or_removed_key_says_what_to_write_at_its_line() {
        // No key has been renamed yet: these entries stand for the ones a later format will add.
        let changes = [
            KeyChange {
                table: "study",
                key: "headline",
                format: 2,
                change: compat::Change::Renamed("title"),
            },
            KeyChange {
                table: "data.*.columns.*",
                key: "nullable",
                format: 3,
                change: compat::Change::Removed(
                    "say `required = true` for a column that may not be missing",
                ),
            },
        ];
        let file = Path::new("s/study.toml");
        let src = "[study]\nheadline = \"T\"\n[manuscript]\nfiles = [\"a.md\"]\n";
        let err = Manifest::parse_with(src, file, &changes).unwrap_err();
        assert_eq!(
            gist(&err),
            "`headline` was renamed to `title` in study format 2 @ s/study.toml:2:1 | write `title = ...` instead of `headline = ...`"
        );
        let src = "[study]\ntitle = \"T\"\n[manuscript]\nfiles = [\"a.md\"]\n[data.p]\npath = \"p.csv\"\n[data.p.columns]\nid = { type = \"string\", nullable = false }\n";
        let err = Manifest::parse_with(src, file, &changes).unwrap_err();
        assert_eq!(
            gist(&err),
            "`nullable` was removed in study format 3 @ s/study.toml:8:25 | say `required = true` for a column that may not be missing"
        );
        // The same key in another table is just unknown.
        let src = "[study]\ntitle = \"T\"\nnullable = 1\n[manuscript]\nfiles = [\"a.md\"]\n";
        let err = Manifest::parse_with(src, file, &changes).unwrap_err();
        assert!(
            gist(&err).starts_with("unknown field `nullable`"),
            "{}",
            gist(&err)
        );
    }

    #[test]
    fn a_newer_or_malformed_format_version_is_refused_at_its_value() {
        let file = Path::new("study.toml");
        // A newer study may hold keys this galley does not know: the format is the reason given.
        let src = "format_version = 2\n[study]\ntitle = \"T\"\nnew_key = 1\n[manuscript]\nfiles = [\"a.md\"]\n";
        let err = Manifest::parse(src, file).unwrap_err();
        assert_eq!(
            gist(&err),
            format!(
                "this study is in study format 2, which this galley ({}) does not read: it reads study format 1 @ study.toml:1:18 | a newer galley wrote it: build it with that galley (docs/formats.md lists what each format changed)",
                env!("CARGO_PKG_VERSION")
            )
        );
        let err = Manifest::parse(&src.replace("2\n", "\"1\"\n"), file).unwrap_err();
        assert_eq!(
            gist(&err),
            "`format_version` is \"1\", expected the number of a study format (this galley reads study format 1) @ study.toml:1:18 | "
        );
        let m = Manifest::parse(&format!("format_version = 1\n{MINIMAL}"), file).unwrap();
        assert_eq!(m.format_version, Some(1));
        assert_eq!(Manifest::parse(MINIMAL, file).unwrap().format_version, None);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let src = "[study]\ntitle = \"T\"\ntitel = \"x\"\n[manuscript]\nfiles = []\n";
        let err = Manifest::parse(src, Path::new("study.toml")).unwrap_err();
        let d = &err.diagnostics[0];
        assert!(d.message.contains("titel"), "{}", d.message);
        assert_eq!(d.location.as_ref().unwrap().line, Some(3));
        assert_eq!(d.hints, ["did you mean `title`?"]);
    }
}
