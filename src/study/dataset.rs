//! Tables as typed columns: CSV in, validated against the manifest's schema.
//!
//! Every problem in a file is collected (up to [`MAX_PROBLEMS_PER_FILE`]) and reported with the file, the
//! line, the column, the value found and what was expected, because a data manager fixing an export wants
//! the whole list at once, not one error per build.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use jiff::civil::Date;

use crate::diagnostics::{Diagnostic, Failure, Location, MAX_PROBLEMS_PER_FILE, Result, excerpt};
use crate::study::manifest::{ColumnSpec, ColumnType};

/// One column's values; `None` is a missing value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ColumnData {
    String(Vec<Option<String>>),
    /// Codes index `levels`; levels keep the schema's order (tables and reference levels follow it).
    Category {
        levels: Vec<String>,
        codes: Vec<Option<u32>>,
    },
    Integer(Vec<Option<i64>>),
    Number(Vec<Option<f64>>),
    Date(Vec<Option<Date>>),
    Boolean(Vec<Option<bool>>),
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::String(v) => v.len(),
            ColumnData::Category { codes, .. } => codes.len(),
            ColumnData::Integer(v) => v.len(),
            ColumnData::Number(v) => v.len(),
            ColumnData::Date(v) => v.len(),
            ColumnData::Boolean(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn kind(&self) -> ColumnType {
        match self {
            ColumnData::String(_) => ColumnType::String,
            ColumnData::Category { .. } => ColumnType::Category,
            ColumnData::Integer(_) => ColumnType::Integer,
            ColumnData::Number(_) => ColumnType::Number,
            ColumnData::Date(_) => ColumnType::Date,
            ColumnData::Boolean(_) => ColumnType::Boolean,
        }
    }

    pub fn is_missing(&self, row: usize) -> bool {
        match self {
            ColumnData::String(v) => v[row].is_none(),
            ColumnData::Category { codes, .. } => codes[row].is_none(),
            ColumnData::Integer(v) => v[row].is_none(),
            ColumnData::Number(v) => v[row].is_none(),
            ColumnData::Date(v) => v[row].is_none(),
            ColumnData::Boolean(v) => v[row].is_none(),
        }
    }

    /// Keep the rows whose index is listed, in that order.
    pub fn take(&self, rows: &[usize]) -> ColumnData {
        fn pick<T: Clone>(v: &[T], rows: &[usize]) -> Vec<T> {
            rows.iter().map(|&r| v[r].clone()).collect()
        }
        match self {
            ColumnData::String(v) => ColumnData::String(pick(v, rows)),
            ColumnData::Category { levels, codes } => ColumnData::Category {
                levels: levels.clone(),
                codes: pick(codes, rows),
            },
            ColumnData::Integer(v) => ColumnData::Integer(pick(v, rows)),
            ColumnData::Number(v) => ColumnData::Number(pick(v, rows)),
            ColumnData::Date(v) => ColumnData::Date(pick(v, rows)),
            ColumnData::Boolean(v) => ColumnData::Boolean(pick(v, rows)),
        }
    }

    /// A value as text, as the CSV would spell it (`None` when missing).
    pub fn text(&self, row: usize) -> Option<String> {
        match self {
            ColumnData::String(v) => v[row].clone(),
            ColumnData::Category { levels, codes } => {
                codes[row].map(|c| levels[c as usize].clone())
            }
            ColumnData::Integer(v) => v[row].map(|x| x.to_string()),
            ColumnData::Number(v) => v[row].map(|x| x.to_string()),
            ColumnData::Date(v) => v[row].map(|d| d.to_string()),
            ColumnData::Boolean(v) => v[row].map(|b| b.to_string()),
        }
    }

    /// A value as a number: integers and numbers as they are, booleans as 0/1, dates as days since
    /// 1970-01-01. Text and categories have no numeric value.
    pub fn number(&self, row: usize) -> Option<f64> {
        match self {
            ColumnData::Integer(v) => v[row].map(|x| x as f64),
            ColumnData::Number(v) => v[row],
            ColumnData::Boolean(v) => v[row].map(|b| if b { 1.0 } else { 0.0 }),
            ColumnData::Date(v) => v[row].map(days_since_epoch),
            ColumnData::String(_) | ColumnData::Category { .. } => None,
        }
    }

    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            ColumnData::Integer(_) | ColumnData::Number(_) | ColumnData::Boolean(_)
        )
    }
}

pub fn days_since_epoch(d: Date) -> f64 {
    let epoch = Date::constant(1970, 1, 1);
    (d - epoch).get_days() as f64
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    pub name: String,
    /// Human label for tables and figures; defaults to the name.
    pub label: Option<String>,
    /// Shared: a derived table (`derive`, `survival_time`) adds columns to a copy of its input,
    /// and the copy shares the input's columns instead of duplicating a registry's worth of cells.
    #[serde(with = "shared_column")]
    pub data: Arc<ColumnData>,
}

/// Serde for the shared column data (serde's `rc` feature would rebuild half the dependency tree).
mod shared_column {
    use super::{Arc, ColumnData};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(data: &Arc<ColumnData>, s: S) -> Result<S::Ok, S::Error> {
        data.as_ref().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<ColumnData>, D::Error> {
        ColumnData::deserialize(d).map(Arc::new)
    }
}

impl Column {
    pub fn new(name: impl Into<String>, data: ColumnData) -> Self {
        Column {
            name: name.into(),
            label: None,
            data: Arc::new(data),
        }
    }

    pub fn display_label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }
}

/// A table: named, equally long columns.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Dataset {
    pub name: String,
    pub columns: Vec<Column>,
    pub n_rows: usize,
}

impl Dataset {
    pub fn new(name: impl Into<String>, columns: Vec<Column>) -> Dataset {
        let n_rows = columns.first().map_or(0, |c| c.data.len());
        debug_assert!(columns.iter().all(|c| c.data.len() == n_rows));
        Dataset {
            name: name.into(),
            columns,
            n_rows,
        }
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// Add a column, replacing one of the same name.
    pub fn set_column(&mut self, column: Column) {
        assert_eq!(
            column.data.len(),
            self.n_rows,
            "column length must match the table"
        );
        match self.columns.iter_mut().find(|c| c.name == column.name) {
            Some(existing) => *existing = column,
            None => self.columns.push(column),
        }
    }

    /// The rows listed, in that order, as a new table.
    pub fn take(&self, name: impl Into<String>, rows: &[usize]) -> Dataset {
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                label: c.label.clone(),
                data: Arc::new(c.data.take(rows)),
            })
            .collect();
        Dataset {
            name: name.into(),
            columns,
            n_rows: rows.len(),
        }
    }

    /// The table as CSV text (missing values empty), for outputs such as a matched cohort.
    pub fn to_csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        // Cells a spreadsheet would evaluate are neutralised (`artifacts::spreadsheet_safe`).
        let safe = |t: &str| crate::records::spreadsheet_safe(t).into_owned();
        let _ = writer.write_record(self.columns.iter().map(|c| safe(&c.name)));
        for row in 0..self.n_rows {
            let record: Vec<String> = self
                .columns
                .iter()
                .map(|c| safe(&c.data.text(row).unwrap_or_default()))
                .collect();
            let _ = writer.write_record(&record);
        }
        String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
    }
}

/// The schema of one table as the manifest gives it.
pub struct TableSchema<'a> {
    pub name: &'a str,
    pub missing: &'a [String],
    pub columns: &'a IndexMap<String, toml::Spanned<ColumnSpec>>,
}

/// Read and validate a CSV file against its schema. `display_path` is how diagnostics name the file.
pub fn load_csv(text: &str, display_path: &Path, schema: &TableSchema) -> Result<Dataset> {
    let text = &*crate::diagnostics::lone_cr_to_lf(text);
    let names = || {
        list_excerpt(
            &schema
                .columns
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
    };
    // An empty file would otherwise give one "missing column" per column of the schema.
    if text.trim_start_matches('\u{feff}').trim().is_empty() {
        return Err(Diagnostic::error(format!(
            "the file is empty; expected a header line naming the columns of table `{}` ({}), then one line per row",
            schema.name,
            names()
        ))
        .at(Location::line(display_path, 1))
        .into());
    }
    // An unclosed quote makes the rest of the file one cell: the reader would only say that some
    // row has too few fields.
    if let Some(offset) = unclosed_quote(text) {
        let (line, column) = crate::diagnostics::line_column(text, offset);
        return Err(Diagnostic::error(format!(
            "the quote opened at line {line}, column {column} is never closed: the rest of the file would be one cell"
        ))
        .at_offset(display_path, text, offset)
        .hint("close the quote; a quote inside a quoted cell is written twice (`\"\"`)")
        .into());
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let raw_headers = reader
        .headers()
        .map_err(|e| csv_error(e, display_path))?
        .clone();
    // Names as a spreadsheet shows them: without a byte order mark or surrounding spaces.
    let headers: Vec<String> = raw_headers
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
        .collect();

    let mut problems = Problems::new(display_path);
    // Two columns of one name: the second would be silently ignored.
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        match first_of.get(h.as_str()) {
            Some(&first) => problems.push(
                Diagnostic::error(format!(
                    "column `{}` appears twice in the header: as column {} and as column {}{}",
                    excerpt(h),
                    first + 1,
                    i + 1,
                    if raw_headers.get(first) != raw_headers.get(i) {
                        " (the same name once spaces and byte order marks are trimmed)"
                    } else {
                        ""
                    }
                ))
                .at(Location::at(display_path, 1, i + 1))
                .hint("rename or remove one of them: galley would read only the first"),
            ),
            None => {
                first_of.insert(h, i);
            }
        }
    }
    // Header checks: every schema column present, no unexpected column.
    let mut index_of = Vec::new();
    for (name, _) in schema.columns {
        match first_of.get(name.as_str()) {
            Some(&i) => index_of.push(i),
            None => problems.push(
                Diagnostic::error(format!(
                    "column `{name}` of table `{}` is missing from the file (the header has: {})",
                    schema.name,
                    list_excerpt(&headers.iter().map(String::as_str).collect::<Vec<_>>())
                ))
                .at(Location::line(display_path, 1)),
            ),
        }
    }
    for (i, h) in headers.iter().enumerate() {
        if !schema.columns.contains_key(h) {
            problems.push(
                Diagnostic::error(format!(
                    "column `{}` in the file is not in the schema of table `{}`",
                    excerpt(h),
                    schema.name
                ))
                .at(Location::at(display_path, 1, i + 1))
                .hint("declare it under [data.<table>.columns] in study.toml"),
            );
        }
        if problems.full() {
            break;
        }
    }
    problems.finish()?;

    let mut builders: Vec<ColumnBuilder> = schema
        .columns
        .iter()
        .map(|(name, spec)| ColumnBuilder::new(name, spec.get_ref(), schema.missing))
        .collect();

    let mut record = csv::StringRecord::new();
    let mut rows = 0usize;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                problems.push(csv_error(e, display_path));
                break;
            }
        }
        rows += 1;
        let line = record.position().map_or(0, |p| p.line() as usize);
        for (builder, &i) in builders.iter_mut().zip(&index_of) {
            let raw = record.get(i).unwrap_or("");
            if let Err(expected) = builder.push(raw) {
                problems.push(cell_problem(
                    display_path,
                    line,
                    i + 1,
                    &builder.name,
                    raw,
                    &expected,
                ));
            }
        }
        if problems.full() {
            break;
        }
    }
    problems.finish()?;
    if rows == 0 {
        return Err(Diagnostic::error(format!(
            "the file has a header but no rows: table `{}` is empty",
            schema.name
        ))
        .at(Location::line(display_path, 2))
        .hint("was the export filtered to nothing, or cut short?")
        .into());
    }

    let columns: Vec<Column> = builders.into_iter().map(ColumnBuilder::finish).collect();
    let dataset = Dataset::new(schema.name, columns);
    check_constraints(&dataset, display_path, schema)?;
    Ok(dataset)
}

fn cell_problem(
    file: &Path,
    line: usize,
    col: usize,
    name: &str,
    raw: &str,
    expected: &str,
) -> Diagnostic {
    Diagnostic::error(format!(
        "column `{name}`: found `{}`, expected {expected}",
        excerpt(raw)
    ))
    .at(Location::at(file, line, col))
}

fn csv_error(err: csv::Error, file: &Path) -> Diagnostic {
    let line = err.position().map(|p| p.line() as usize);
    let message = match err.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("this row has {len} fields, the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "the file is not valid UTF-8 text".to_string(),
        _ => format!("cannot read CSV: {err}"),
    };
    let d = Diagnostic::error(message);
    match line {
        Some(line) => d.at(Location::line(file, line)),
        None => d.in_file(file),
    }
}

/// Collects the problems of one file up to [`MAX_PROBLEMS_PER_FILE`], then only counts them (a
/// reader may stop at `full`: memory and time stay bounded whatever the file holds).
struct Problems<'a> {
    file: &'a Path,
    list: Vec<Diagnostic>,
    dropped: usize,
}

impl<'a> Problems<'a> {
    fn new(file: &'a Path) -> Self {
        Problems {
            file,
            list: Vec::new(),
            dropped: 0,
        }
    }

    fn push(&mut self, d: Diagnostic) {
        if self.list.len() < MAX_PROBLEMS_PER_FILE {
            self.list.push(d);
        } else {
            self.dropped += 1;
        }
    }

    /// More problems than are shown: a reader may stop here.
    fn full(&self) -> bool {
        self.dropped > 0
    }

    fn finish(&mut self) -> Result<()> {
        if self.list.is_empty() {
            return Ok(());
        }
        let mut list = std::mem::take(&mut self.list);
        if self.dropped > 0 {
            let mut more = Diagnostic::error(format!(
                "… and at least {} more problem{} in this file (only the first {MAX_PROBLEMS_PER_FILE} are shown)",
                self.dropped,
                if self.dropped == 1 { "" } else { "s" }
            ))
            .in_file(self.file);
            more.omitted = self.dropped;
            list.push(more);
        }
        Err(Failure::new(list))
    }
}

/// Names for a message: the first 20, then how many more.
fn list_excerpt(names: &[&str]) -> String {
    let mut shown: Vec<String> = names.iter().take(20).map(|n| excerpt(n)).collect();
    if names.len() > 20 {
        shown.push(format!("… and {} more", names.len() - 20));
    }
    shown.join(", ")
}

/// Where a quote that opens a cell is never closed (the byte offset of that quote), reading the
/// text as the CSV reader does: a quote opens a quoted cell only as the cell's first character,
/// and `""` inside a quoted cell is a quote.
fn unclosed_quote(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut open: Option<usize> = None;
    let mut at_cell_start = true;
    let mut i = if text.starts_with('\u{feff}') { 3 } else { 0 };
    while i < bytes.len() {
        let c = bytes[i];
        if open.is_some() {
            if c == b'"' {
                if bytes.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    open = None;
                    at_cell_start = false;
                }
            }
        } else {
            match c {
                b',' | b'\n' | b'\r' => at_cell_start = true,
                b'"' if at_cell_start => open = Some(i),
                _ => at_cell_start = false,
            }
        }
        i += 1;
    }
    open
}

/// Parses one column's cells according to its spec.
struct ColumnBuilder<'a> {
    name: String,
    label: Option<String>,
    spec: &'a ColumnSpec,
    missing: Vec<String>,
    trues: Vec<String>,
    falses: Vec<String>,
    level_index: HashMap<String, u32>,
    data: ColumnData,
}

impl<'a> ColumnBuilder<'a> {
    fn new(name: &str, spec: &'a ColumnSpec, table_missing: &[String]) -> Self {
        let levels = spec.levels.clone().unwrap_or_default();
        let data = match spec.kind {
            ColumnType::String => ColumnData::String(Vec::new()),
            ColumnType::Category => ColumnData::Category {
                levels: levels.clone(),
                codes: Vec::new(),
            },
            ColumnType::Integer => ColumnData::Integer(Vec::new()),
            ColumnType::Number => ColumnData::Number(Vec::new()),
            ColumnType::Date => ColumnData::Date(Vec::new()),
            ColumnType::Boolean => ColumnData::Boolean(Vec::new()),
        };
        let words = |v: &Option<Vec<String>>, default: &[&str]| {
            v.clone()
                .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect())
        };
        ColumnBuilder {
            name: name.to_string(),
            label: spec.label.clone(),
            spec,
            missing: spec
                .missing
                .clone()
                .unwrap_or_else(|| table_missing.to_vec()),
            trues: words(&spec.true_values, &["yes", "true", "1"]),
            falses: words(&spec.false_values, &["no", "false", "0"]),
            level_index: levels
                .iter()
                .enumerate()
                .map(|(i, l)| (l.clone(), i as u32))
                .collect(),
            data,
        }
    }

    /// Parse and append one cell; on failure, say what was expected.
    fn push(&mut self, raw: &str) -> std::result::Result<(), String> {
        let is_missing = self.missing.iter().any(|m| m == raw);
        if is_missing && self.spec.required {
            self.push_missing();
            let spelled = self
                .missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(format!(
                "a value (the column is required; missing is spelled {spelled})"
            ));
        }
        if is_missing {
            self.push_missing();
            return Ok(());
        }
        let value = raw.trim();
        match &mut self.data {
            ColumnData::String(v) => v.push(Some(raw.to_string())),
            ColumnData::Category { levels, codes } => match self.level_index.get(value) {
                Some(&code) => codes.push(Some(code)),
                None => {
                    codes.push(None);
                    return Err(format!("one of {}", quoted_list(levels)));
                }
            },
            ColumnData::Integer(v) => match check_integer(value) {
                Ok(x) => v.push(Some(x)),
                Err(expected) => {
                    v.push(None);
                    return Err(expected);
                }
            },
            ColumnData::Number(v) => match check_number(value) {
                Ok(x) => v.push(Some(x)),
                Err(expected) => {
                    v.push(None);
                    return Err(expected);
                }
            },
            ColumnData::Date(v) => match check_date(value, self.spec.format.as_deref()) {
                Ok(d) => v.push(Some(d)),
                Err(expected) => {
                    v.push(None);
                    return Err(expected);
                }
            },
            ColumnData::Boolean(v) => {
                if self.trues.iter().any(|t| t == value) {
                    v.push(Some(true));
                } else if self.falses.iter().any(|f| f == value) {
                    v.push(Some(false));
                } else {
                    v.push(None);
                    let mut all = self.trues.clone();
                    all.extend(self.falses.iter().cloned());
                    return Err(format!("one of {}", quoted_list(&all)));
                }
            }
        }
        Ok(())
    }

    fn push_missing(&mut self) {
        match &mut self.data {
            ColumnData::String(v) => v.push(None),
            ColumnData::Category { codes, .. } => codes.push(None),
            ColumnData::Integer(v) => v.push(None),
            ColumnData::Number(v) => v.push(None),
            ColumnData::Date(v) => v.push(None),
            ColumnData::Boolean(v) => v.push(None),
        }
    }

    fn finish(self) -> Column {
        Column {
            name: self.name,
            label: self.label,
            data: self.data.into(),
        }
    }
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .take(20)
        .map(|s| format!("`{}`", excerpt(s)))
        .chain((items.len() > 20).then(|| format!("… ({} more)", items.len() - 20)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn parse_date(text: &str, format: Option<&str>) -> Option<Date> {
    check_date(text, format).ok()
}

/// Years a date may have: the four-digit years of ISO 8601 without year 0 (`0000-00-00` and
/// `0000-01-01` are "unknown" placeholders of some exports, which would otherwise surface much
/// later as an absurd follow-up time). Plausible ranges of a column are its `min` and `max`.
pub const DATE_YEARS: std::ops::RangeInclusive<i16> = 1..=9999;

/// A date as written (`YYYY-MM-DD`, or in `format`), or what is wrong with it, completing
/// "expected ...": a day that does not exist, a date with a time, a year outside [`DATE_YEARS`].
pub fn check_date(text: &str, format: Option<&str>) -> std::result::Result<Date, String> {
    let date = match format {
        None => iso_date(text)?,
        Some(f) => Date::strptime(f, text).map_err(|e| {
            let why = e.to_string();
            // jiff says e.g. "parsed day 30 is not valid for February"; without it, the format.
            let why = why.rsplit(": ").next().unwrap_or(&why).to_string();
            format!("a date in the format `{f}` ({})", excerpt(&why))
        })?,
    };
    if !DATE_YEARS.contains(&date.year()) {
        return Err(format!(
            "a date in the years {:04} to {} (year {:04} is outside them: a placeholder for an unknown date?)",
            DATE_YEARS.start(),
            DATE_YEARS.end(),
            date.year()
        ));
    }
    Ok(date)
}

/// `YYYY-MM-DD` and nothing else, with a specific reason when the text is close.
fn iso_date(text: &str) -> std::result::Result<Date, String> {
    const EXPECTED: &str = "a date as YYYY-MM-DD";
    let b = text.as_bytes();
    let shaped = |b: &[u8]| {
        b.len() >= 10
            && b[4] == b'-'
            && b[7] == b'-'
            && [0, 1, 2, 3, 5, 6, 8, 9]
                .iter()
                .all(|&i| b[i].is_ascii_digit())
    };
    if !shaped(b) {
        return Err(EXPECTED.to_string());
    }
    if b.len() > 10 {
        return Err(if matches!(b[10], b'T' | b't' | b' ') {
            format!("{EXPECTED}, without a time")
        } else {
            EXPECTED.to_string()
        });
    }
    let (year, month, day): (i16, i8, i8) = (
        text[0..4].parse().unwrap_or(0),
        text[5..7].parse().unwrap_or(0),
        text[8..10].parse().unwrap_or(0),
    );
    if !(1..=12).contains(&month) {
        return Err(format!("{EXPECTED} (there is no month {month})"));
    }
    Date::new(year, month, day).map_err(|_| {
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        format!(
            "{EXPECTED} (there is no day {day} in {} {year})",
            MONTHS[month as usize - 1]
        )
    })
}

/// A number cell: finite, and not a value that reads as one but is not what was written (`1e-400`
/// would be 0, `1e400` infinity).
fn check_number(value: &str) -> std::result::Result<f64, String> {
    match value.parse::<f64>() {
        Ok(x) if x.is_finite() => {
            let mantissa = value.split(['e', 'E']).next().unwrap_or("");
            if x == 0.0 && mantissa.bytes().any(|c| (b'1'..=b'9').contains(&c)) {
                return Err(
                    "a number of magnitude 0 or above about 1e-308 (this one is \
                     too small for a double and would be read as 0)"
                        .to_string(),
                );
            }
            Ok(x)
        }
        Ok(x) if x.is_nan() || !value.bytes().any(|c| c.is_ascii_digit()) => {
            Err("a finite number (not NaN or infinity)".to_string())
        }
        Ok(_) => Err(
            "a number of magnitude at most about 1.8e308 (this one is out of range)".to_string(),
        ),
        Err(_) => Err(with_separator_hint(value, "a finite number")),
    }
}

/// An integer cell, with the range when it is out of it.
fn check_integer(value: &str) -> std::result::Result<i64, String> {
    use std::num::IntErrorKind;
    value.parse::<i64>().map_err(|e| match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => format!(
            "an integer from {} to {} (this one is out of range)",
            i64::MIN,
            i64::MAX
        ),
        _ => with_separator_hint(value, "an integer"),
    })
}

/// "a number", or with why a value that looks like one is not: a thousands separator or a decimal
/// comma (`1,234`, `1 234`, `1'234`, `0,5`).
fn with_separator_hint(value: &str, what: &str) -> String {
    let digits_and = |sep: char| {
        value.contains(sep)
            && value
                .chars()
                .all(|c| c.is_ascii_digit() || c == sep || "+-.".contains(c))
    };
    if [',', ' ', '\'', '_', '\u{a0}', '\u{202f}']
        .into_iter()
        .any(digits_and)
    {
        format!("{what}, written without thousands separators and with `.` as the decimal point")
    } else {
        what.to_string()
    }
}

/// Uniqueness and ranges within a table. Foreign keys are checked across tables by `check_foreign_keys`.
fn check_constraints(dataset: &Dataset, file: &Path, schema: &TableSchema) -> Result<()> {
    let mut problems = Problems::new(file);
    for (column, (name, spec)) in dataset.columns.iter().zip(schema.columns) {
        let spec = spec.get_ref();
        let col_no = column_number(schema, name);
        if spec.unique {
            let mut seen: HashMap<String, usize> = HashMap::new();
            for row in 0..dataset.n_rows {
                if let Some(v) = column.data.text(row) {
                    if let Some(first) = seen.get(&v) {
                        problems.push(
                            Diagnostic::error(format!(
                                "column `{name}` must be unique, but `{}` also appears on line {}",
                                excerpt(&v),
                                first + 2
                            ))
                            .at(Location::at(file, row + 2, col_no)),
                        );
                    } else {
                        seen.insert(v, row);
                    }
                }
            }
        }
        let bound = |v: &Option<toml::Value>| -> Option<(f64, String)> {
            match v.as_ref()? {
                toml::Value::Integer(i) => Some((*i as f64, i.to_string())),
                toml::Value::Float(f) => Some((*f, f.to_string())),
                toml::Value::String(s) => {
                    parse_date(s, None).map(|d| (days_since_epoch(d), s.clone()))
                }
                toml::Value::Datetime(d) => {
                    let s = d.to_string();
                    parse_date(&s, None).map(|date| (days_since_epoch(date), s))
                }
                _ => None,
            }
        };
        let (min, max) = (bound(&spec.min), bound(&spec.max));
        if min.is_none() && max.is_none() {
            continue;
        }
        for row in 0..dataset.n_rows {
            let Some(x) = column.data.number(row) else {
                continue;
            };
            let below = min.as_ref().is_some_and(|(m, _)| x < *m);
            let above = max.as_ref().is_some_and(|(m, _)| x > *m);
            if below || above {
                let range = match (&min, &max) {
                    (Some((_, a)), Some((_, b))) => format!("between {a} and {b}"),
                    (Some((_, a)), None) => format!("at least {a}"),
                    (None, Some((_, b))) => format!("at most {b}"),
                    (None, None) => unreachable!(),
                };
                let raw = column.data.text(row).unwrap_or_default();
                problems.push(cell_problem(
                    file,
                    row + 2,
                    col_no,
                    name,
                    &raw,
                    &format!("a value {range}"),
                ));
            }
        }
    }
    problems.finish()
}

fn column_number(schema: &TableSchema, name: &str) -> usize {
    schema.columns.get_index_of(name).map_or(1, |i| i + 1)
}

/// Foreign keys: each `references = "table.column"` value must exist in the referenced column.
pub fn check_foreign_keys(
    tables: &IndexMap<String, (Dataset, std::path::PathBuf)>,
    schemas: &IndexMap<String, IndexMap<String, toml::Spanned<ColumnSpec>>>,
) -> Result<()> {
    let mut diagnostics = Vec::new();
    for (table, columns) in schemas {
        let Some((dataset, file)) = tables.get(table) else {
            continue;
        };
        for (col_no, (name, spec)) in columns.iter().enumerate() {
            let Some(reference) = &spec.get_ref().references else {
                continue;
            };
            let Some((ref_table, ref_col)) = reference.split_once('.') else {
                continue;
            };
            let Some(target) = tables.get(ref_table).and_then(|(d, _)| d.column(ref_col)) else {
                continue;
            };
            let keys: HashSet<String> = (0..target.data.len())
                .filter_map(|r| target.data.text(r))
                .collect();
            let column = dataset.column(name).expect("validated column");
            let mut count = 0;
            for row in 0..dataset.n_rows {
                if let Some(v) = column.data.text(row)
                    && !keys.contains(&v)
                {
                    count += 1;
                    if count <= MAX_PROBLEMS_PER_FILE {
                        diagnostics.push(
                            Diagnostic::error(format!(
                                "column `{name}`: `{}` is not a `{ref_col}` of table `{ref_table}`",
                                excerpt(&v)
                            ))
                            .at(Location::at(
                                file,
                                row + 2,
                                col_no + 1,
                            )),
                        );
                    }
                }
            }
            if count > MAX_PROBLEMS_PER_FILE {
                // Counted, not kept: `Failure::new` sums this up with the file's other problems.
                let mut more = Diagnostic::error("more values not found in the referenced table")
                    .in_file(file);
                more.omitted = count - MAX_PROBLEMS_PER_FILE;
                diagnostics.push(more);
            }
        }
    }
    if diagnostics.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(diagnostics))
    }
}

/// Read a CSV whose schema is not declared (`galley analyze`): each column becomes the narrowest type
/// that fits every non-empty cell (integer, number, date, else category with sorted levels).
pub fn infer_csv(text: &str, display_path: &Path, name: &str) -> Result<Dataset> {
    let text = &*crate::diagnostics::lone_cr_to_lf(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(e, display_path))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    // As `load_csv`: a second column of a name would be unreachable.
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        if let Some(&first) = first_of.get(h.as_str()) {
            return Err(Diagnostic::error(format!(
                "column `{}` appears twice in the header: as column {} and as column {}",
                excerpt(h),
                first + 1,
                i + 1
            ))
            .at(Location::at(display_path, 1, i + 1))
            .into());
        }
        first_of.insert(h, i);
    }
    let mut cells: Vec<Vec<Option<String>>> = vec![Vec::new(); headers.len()];
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(e, display_path))?;
        for (i, cell) in record.iter().enumerate() {
            let cell = cell.trim();
            cells[i].push(if cell.is_empty() || cell == "NA" {
                None
            } else {
                Some(cell.to_string())
            });
        }
    }
    let columns = headers
        .into_iter()
        .zip(cells)
        .map(|(name, values)| Column::new(name, infer_column(values)))
        .collect();
    Ok(Dataset::new(name, columns))
}

fn infer_column(values: Vec<Option<String>>) -> ColumnData {
    let present = || values.iter().flatten();
    if present().all(|v| v.parse::<i64>().is_ok()) {
        return ColumnData::Integer(
            values
                .iter()
                .map(|v| v.as_ref().map(|s| s.parse().unwrap()))
                .collect(),
        );
    }
    if present().all(|v| v.parse::<f64>().is_ok_and(f64::is_finite)) {
        return ColumnData::Number(
            values
                .iter()
                .map(|v| v.as_ref().map(|s| s.parse().unwrap()))
                .collect(),
        );
    }
    if present().all(|v| parse_date(v, None).is_some()) {
        return ColumnData::Date(
            values
                .iter()
                .map(|v| v.as_ref().and_then(|s| parse_date(s, None)))
                .collect(),
        );
    }
    let mut levels: Vec<String> = present()
        .cloned()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    levels.sort();
    let index: HashMap<&str, u32> = levels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i as u32))
        .collect();
    let codes = values
        .iter()
        .map(|v| v.as_ref().map(|s| index[s.as_str()]))
        .collect();
    ColumnData::Category { levels, codes }
}

impl Dataset {
    /// SHA-256 of the table's content (names, types, labels, values) in a canonical binary encoding:
    /// identifies a block's input for provenance and caching without serialising to text.
    pub fn content_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update((self.n_rows as u64).to_le_bytes());
        for c in &self.columns {
            h.update((c.name.len() as u64).to_le_bytes());
            h.update(c.name.as_bytes());
            h.update(c.data.kind().name().as_bytes());
            h.update(c.label.as_deref().unwrap_or("").as_bytes());
            h.update([0xff]);
            match &*c.data {
                ColumnData::String(v) => {
                    for x in v {
                        match x {
                            Some(s) => {
                                h.update((s.len() as u64).to_le_bytes());
                                h.update(s.as_bytes());
                            }
                            None => h.update(u64::MAX.to_le_bytes()),
                        }
                    }
                }
                ColumnData::Category { levels, codes } => {
                    for l in levels {
                        h.update((l.len() as u64).to_le_bytes());
                        h.update(l.as_bytes());
                    }
                    for x in codes {
                        h.update(x.map_or(u64::MAX, |c| c as u64).to_le_bytes());
                    }
                }
                ColumnData::Integer(v) => v.iter().for_each(|x| {
                    h.update([x.is_some() as u8]);
                    h.update(x.unwrap_or(0).to_le_bytes());
                }),
                ColumnData::Number(v) => v.iter().for_each(|x| {
                    h.update([x.is_some() as u8]);
                    h.update(x.unwrap_or(0.0).to_bits().to_le_bytes());
                }),
                ColumnData::Date(v) => v.iter().for_each(|x| {
                    h.update([x.is_some() as u8]);
                    h.update(x.map_or(0i64, |d| days_since_epoch(d) as i64).to_le_bytes());
                }),
                ColumnData::Boolean(v) => v
                    .iter()
                    .for_each(|x| h.update([x.map_or(2u8, |b| b as u8)])),
            }
        }
        hex::encode(h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_from(toml_text: &str) -> IndexMap<String, toml::Spanned<ColumnSpec>> {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn loads_typed_columns_and_reports_every_bad_cell_with_its_location() {
        let columns = schema_from(
            "id = { type = \"string\", unique = true }\nage = { type = \"integer\", min = 0, max = 120 }\n\
             sex = { type = \"category\", levels = [\"female\", \"male\"] }\nalive = { type = \"boolean\" }\n",
        );
        let missing = vec![String::new()];
        let schema = TableSchema {
            name: "p",
            missing: &missing,
            columns: &columns,
        };
        let ok = "id,age,sex,alive\na,50,female,yes\nb,,male,no\n";
        let d = load_csv(ok, Path::new("p.csv"), &schema).unwrap();
        assert_eq!(d.n_rows, 2);
        assert_eq!(
            d.column("age").unwrap().data.as_ref(),
            &ColumnData::Integer(vec![Some(50), None])
        );

        let bad = "id,age,sex,alive\na,5x,female,yes\nb,130,man,maybe\n";
        let err = load_csv(bad, Path::new("p.csv"), &schema).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("p.csv:2:2"), "{text}");
        assert!(
            text.contains("found `man`, expected one of `female`, `male`"),
            "{text}"
        );
        assert!(text.contains("p.csv:3:4"), "{text}");
        assert!(
            text.contains("found `130`, expected a value between 0 and 120")
                || err.diagnostics.len() == 3,
            "{text}"
        );
    }

    #[test]
    fn missing_header_column_is_reported_on_line_one() {
        let columns = schema_from("id = { type = \"string\" }\nage = { type = \"integer\" }\n");
        let missing = vec![String::new()];
        let schema = TableSchema {
            name: "p",
            missing: &missing,
            columns: &columns,
        };
        let err = load_csv("id\na\n", Path::new("p.csv"), &schema).unwrap_err();
        assert!(
            err.to_string()
                .contains("column `age` of table `p` is missing"),
            "{err}"
        );
        assert_eq!(err.diagnostics[0].location.as_ref().unwrap().line, Some(1));
    }

    #[test]
    fn infers_types() {
        let d = infer_csv(
            "a,b,c,d\n1,1.5,x,2020-01-02\n2,,y,\n",
            Path::new("x.csv"),
            "x",
        )
        .unwrap();
        assert_eq!(d.column("a").unwrap().data.kind(), ColumnType::Integer);
        assert_eq!(d.column("b").unwrap().data.kind(), ColumnType::Number);
        assert_eq!(d.column("c").unwrap().data.kind(), ColumnType::Category);
        assert_eq!(d.column("d").unwrap().data.kind(), ColumnType::Date);
    }
}
