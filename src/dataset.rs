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

use crate::diagnostics::{Diagnostic, Failure, Location, Result};
use crate::manifest::{ColumnSpec, ColumnType};

pub const MAX_PROBLEMS_PER_FILE: usize = 50;

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
        let _ = writer.write_record(self.columns.iter().map(|c| c.name.as_str()));
        for row in 0..self.n_rows {
            let record: Vec<String> = self
                .columns
                .iter()
                .map(|c| c.data.text(row).unwrap_or_default())
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
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| csv_error(e, display_path))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect::<Vec<_>>();

    let mut problems = Problems::new(display_path);
    // Header checks: every schema column present, no unexpected column.
    let mut index_of = Vec::new();
    for (name, _) in schema.columns {
        match headers.iter().position(|h| h == name) {
            Some(i) => index_of.push(i),
            None => problems.push(
                Diagnostic::error(format!(
                    "column `{name}` of table `{}` is missing from the file (the header has: {})",
                    schema.name,
                    headers.join(", ")
                ))
                .at(Location::line(display_path, 1)),
            ),
        }
    }
    for h in &headers {
        if !schema.columns.contains_key(h) {
            problems.push(
                Diagnostic::error(format!(
                    "column `{h}` in the file is not in the schema of table `{}`",
                    schema.name
                ))
                .at(Location::line(display_path, 1))
                .hint("declare it under [data.<table>.columns] in study.toml"),
            );
        }
    }
    problems.finish()?;

    let mut builders: Vec<ColumnBuilder> = schema
        .columns
        .iter()
        .map(|(name, spec)| ColumnBuilder::new(name, spec.get_ref(), schema.missing))
        .collect();

    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                problems.push(csv_error(e, display_path));
                break;
            }
        }
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
        "column `{name}`: found `{raw}`, expected {expected}"
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

/// Collects the problems of one file, up to a cap, then says how many more there were.
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

    fn full(&self) -> bool {
        self.list.len() >= MAX_PROBLEMS_PER_FILE
    }

    fn finish(&mut self) -> Result<()> {
        if self.list.is_empty() {
            return Ok(());
        }
        let mut list = std::mem::take(&mut self.list);
        if self.full() {
            list.push(
                Diagnostic::error(format!(
                    "stopped after {MAX_PROBLEMS_PER_FILE} problems in this file{}",
                    if self.dropped > 0 {
                        format!(" ({} more not shown)", self.dropped)
                    } else {
                        String::new()
                    }
                ))
                .in_file(self.file),
            );
        }
        Err(Failure::new(list))
    }
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
            ColumnData::Integer(v) => match value.parse::<i64>() {
                Ok(x) => v.push(Some(x)),
                Err(_) => {
                    v.push(None);
                    return Err("an integer".to_string());
                }
            },
            ColumnData::Number(v) => match value.parse::<f64>() {
                Ok(x) if x.is_finite() => v.push(Some(x)),
                _ => {
                    v.push(None);
                    return Err("a finite number".to_string());
                }
            },
            ColumnData::Date(v) => match parse_date(value, self.spec.format.as_deref()) {
                Some(d) => v.push(Some(d)),
                None => {
                    v.push(None);
                    return Err(match &self.spec.format {
                        Some(f) => format!("a date in the format `{f}`"),
                        None => "a date as YYYY-MM-DD".to_string(),
                    });
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
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn parse_date(text: &str, format: Option<&str>) -> Option<Date> {
    match format {
        None => text.parse::<Date>().ok().filter(|_| text.len() == 10),
        Some(f) => Date::strptime(f, text).ok(),
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
                                "column `{name}` must be unique, but `{v}` also appears on line {}",
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
                                "column `{name}`: `{v}` is not a `{ref_col}` of table `{ref_table}`"
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
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(e, display_path))?
        .iter()
        .map(str::to_string)
        .collect();
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
