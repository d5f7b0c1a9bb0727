//! Comparing two reports' records: what `galley diff` prints and the "Changes since the previous
//! report" appendix shows.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::format::Record;
use crate::diagnostics::{Result, io_error};

/// The record `record` of the report in `dir`, checked and upgraded to the current version.
pub(crate) fn read_record(dir: &Path, record: Record) -> Result<Value> {
    let path = dir.join(record.file());
    let bytes = std::fs::read(&path).map_err(|e| {
        let d = io_error("read", &path, &e);
        if e.kind() == std::io::ErrorKind::NotFound {
            d.hint(format!(
                "`{}` does not look like a galley output folder (it has no {})",
                dir.display(),
                record.file()
            ))
        } else {
            d
        }
    })?;
    record.read(&bytes, &path)
}

pub(crate) fn hashes(record: &Value, key: &str) -> BTreeMap<String, String> {
    record
        .get(key)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    v.get("sha256")
                        .and_then(Value::as_str)
                        .map(|h| (k.clone(), h.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One reported value that changed between two reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ValueChange {
    pub file: String,
    pub line: usize,
    pub expression: String,
    pub old_text: Option<String>,
    pub new_text: Option<String>,
    pub old_value: Value,
    pub new_value: Value,
    pub absolute_change: Option<f64>,
    pub relative_change: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct DiffReport {
    pub changed_inputs: Vec<String>,
    pub added_inputs: Vec<String>,
    pub removed_inputs: Vec<String>,
    pub changed_blocks: Vec<String>,
    pub unchanged_blocks: Vec<String>,
    pub changed_values: Vec<ValueChange>,
    pub old_cutoff: Option<String>,
    pub new_cutoff: Option<String>,
}

/// What changed from the report in `old` to the report in `new`.
pub fn diff(old: &Path, new: &Path) -> Result<DiffReport> {
    let old = ReportFiles::read(old)?;
    let new = ReportFiles::read(new)?;
    Ok(diff_reports(&old, &new))
}

/// The three records of a built report that a comparison reads, in any version this galley reads
/// (as [`Record::read`] gives them: checked and upgraded to the current version).
pub struct ReportFiles {
    pub provenance: Value,
    pub results: Value,
    pub trail: Value,
}

impl ReportFiles {
    pub fn read(dir: &Path) -> Result<ReportFiles> {
        Ok(ReportFiles {
            provenance: read_record(dir, Record::Provenance)?,
            results: read_record(dir, Record::Results)?,
            trail: read_record(dir, Record::Trail)?,
        })
    }
}

/// What changed from one report's records to another's.
pub fn diff_reports(old: &ReportFiles, new: &ReportFiles) -> DiffReport {
    let (old_prov, new_prov) = (&old.provenance, &new.provenance);
    let (old_in, new_in) = (hashes(old_prov, "inputs"), hashes(new_prov, "inputs"));
    let mut report = DiffReport {
        old_cutoff: old_prov
            .get("cutoff")
            .and_then(Value::as_str)
            .map(str::to_string),
        new_cutoff: new_prov
            .get("cutoff")
            .and_then(Value::as_str)
            .map(str::to_string),
        ..Default::default()
    };
    for (name, hash) in &new_in {
        match old_in.get(name) {
            None => report.added_inputs.push(name.clone()),
            Some(h) if h != hash => report.changed_inputs.push(name.clone()),
            Some(_) => {}
        }
    }
    report.removed_inputs = old_in
        .keys()
        .filter(|k| !new_in.contains_key(*k))
        .cloned()
        .collect();

    let (old_results, new_results) = (
        Record::Results.content(&old.results),
        Record::Results.content(&new.results),
    );
    if let Some(new_map) = new_results.as_object() {
        for (id, value) in new_map {
            if old_results.get(id) == Some(value) {
                report.unchanged_blocks.push(id.clone());
            } else {
                report.changed_blocks.push(id.clone());
            }
        }
    }

    let (old_trail, new_trail) = (
        Record::Trail.content(&old.trail),
        Record::Trail.content(&new.trail),
    );
    let key = |e: &Value| {
        (
            e.get("file")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            e.get("expression")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )
    };
    // Entries are matched by file and expression, in order of appearance (the same expression can
    // appear several times; lines may move when the prose is edited).
    let mut old_by_key: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
    for e in old_trail.as_array().into_iter().flatten() {
        old_by_key.entry(key(e)).or_default().push(e);
    }
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in new_trail.as_array().into_iter().flatten() {
        let k = key(e);
        let n = seen.entry(k.clone()).or_default();
        let old_entry = old_by_key.get(&k).and_then(|v| v.get(*n)).copied();
        *n += 1;
        let new_text = e.get("text").and_then(Value::as_str).map(str::to_string);
        let new_value = e.get("value").cloned().unwrap_or(Value::Null);
        let (old_text, old_value) = match old_entry {
            Some(o) => (
                o.get("text").and_then(Value::as_str).map(str::to_string),
                o.get("value").cloned().unwrap_or(Value::Null),
            ),
            None => (None, Value::Null),
        };
        if old_entry.is_some() && old_text == new_text && old_value == new_value {
            continue;
        }
        let (absolute_change, relative_change) = match (old_value.as_f64(), new_value.as_f64()) {
            (Some(a), Some(b)) => (Some(b - a), (a != 0.0).then(|| (b - a) / a.abs())),
            _ => (None, None),
        };
        report.changed_values.push(ValueChange {
            file: k.0,
            line: e.get("line").and_then(Value::as_u64).unwrap_or(0) as usize,
            expression: k.1,
            old_text,
            new_text,
            old_value,
            new_value,
            absolute_change,
            relative_change,
        });
    }
    report
}

impl std::fmt::Display for DiffReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.old_cutoff != self.new_cutoff {
            writeln!(
                f,
                "cutoff: {} -> {}",
                self.old_cutoff.as_deref().unwrap_or("none"),
                self.new_cutoff.as_deref().unwrap_or("none")
            )?;
        }
        writeln!(
            f,
            "inputs changed: {}",
            if self.changed_inputs.is_empty() {
                "none".into()
            } else {
                self.changed_inputs.join(", ")
            }
        )?;
        if !self.added_inputs.is_empty() {
            writeln!(f, "inputs added: {}", self.added_inputs.join(", "))?;
        }
        if !self.removed_inputs.is_empty() {
            writeln!(f, "inputs removed: {}", self.removed_inputs.join(", "))?;
        }
        writeln!(
            f,
            "blocks with changed results: {}",
            if self.changed_blocks.is_empty() {
                "none".into()
            } else {
                self.changed_blocks.join(", ")
            }
        )?;
        writeln!(
            f,
            "blocks unchanged: {}",
            if self.unchanged_blocks.is_empty() {
                "none".into()
            } else {
                self.unchanged_blocks.join(", ")
            }
        )?;
        writeln!(f, "reported values changed: {}", self.changed_values.len())?;
        for c in &self.changed_values {
            let change = match (c.absolute_change, c.relative_change) {
                (Some(a), Some(r)) => format!("  ({a:+.4}, {:+.1}%)", r * 100.0),
                (Some(a), None) => format!("  ({a:+.4})"),
                _ => String::new(),
            };
            writeln!(
                f,
                "  {}:{}  {{{{ {} }}}}  {} -> {}{change}",
                c.file,
                c.line,
                c.expression,
                c.old_text.as_deref().unwrap_or("(new)"),
                c.new_text.as_deref().unwrap_or("-"),
            )?;
        }
        Ok(())
    }
}
