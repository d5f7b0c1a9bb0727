//! Auditing built reports: `galley verify` (rebuild from the recorded inputs and compare) and
//! `galley diff` (what changed between two versions of a report).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::diagnostics::{Diagnostic, Result, io_error};
use crate::pipeline::{self, BuildOptions};

fn read_json(dir: &Path, name: &str) -> Result<Value> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        let d = io_error("read", &path, &e);
        if e.kind() == std::io::ErrorKind::NotFound {
            d.hint(format!(
                "`{}` does not look like a galley output folder (it has no {name})",
                dir.display()
            ))
        } else {
            d
        }
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Diagnostic::error(format!("`{name}` is not valid JSON: {e}"))
            .in_file(&path)
            .into()
    })
}

fn sha256_file(path: &Path) -> Option<String> {
    use sha2::{Digest, Sha256};
    std::fs::read(path)
        .ok()
        .map(|b| hex::encode(Sha256::digest(b)))
}

fn hashes(record: &Value, key: &str) -> BTreeMap<String, String> {
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

/// The verdict of `galley verify`, with the exit code that tells which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every output in the folder matches its provenance record, and a rebuild reproduces them.
    Identical,
    /// Outputs in the folder differ from the record while a rebuild reproduces the record.
    Tampered,
    /// Inputs changed since the build: the rebuild differs, as expected.
    InputsChanged,
    /// The same inputs gave different outputs: a determinism bug.
    NotReproducible,
}

impl Verdict {
    pub fn exit_code(&self) -> u8 {
        match self {
            Verdict::Identical => 0,
            Verdict::InputsChanged => 2,
            Verdict::NotReproducible => 3,
            Verdict::Tampered => 4,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub verdict: Verdict,
    /// Output files in the folder whose bytes differ from the provenance record (or are missing).
    pub tampered: Vec<String>,
    /// Inputs whose current bytes differ from the record (or are missing).
    pub changed_inputs: Vec<String>,
    /// Outputs the rebuild produced differently from the record.
    pub rebuilt_differently: Vec<String>,
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.verdict {
            Verdict::Identical => writeln!(
                f,
                "identical: every output matches its provenance record and a rebuild reproduces it"
            )?,
            Verdict::Tampered => writeln!(
                f,
                "tampered: outputs differ from the provenance record, but the recorded inputs still rebuild the recorded outputs"
            )?,
            Verdict::InputsChanged => {
                writeln!(f, "inputs changed since the build: the rebuild differs")?
            }
            Verdict::NotReproducible => writeln!(
                f,
                "NOT reproducible: the same inputs gave different outputs (a determinism bug; please report it)"
            )?,
        }
        for t in &self.tampered {
            writeln!(f, "  output differs from its record: {t}")?;
        }
        for i in &self.changed_inputs {
            writeln!(f, "  input changed: {i}")?;
        }
        for o in &self.rebuilt_differently {
            writeln!(f, "  rebuilt differently: {o}")?;
        }
        Ok(())
    }
}

/// Rebuild the report in `output_dir` from the inputs its provenance names, in a temporary folder,
/// and compare. Never writes into `output_dir`.
/// `limits` are the command line's `--limit NAME=VALUE`s for the rebuild (limits never change what
/// a build writes, only whether it may run, so they are not part of the record).
pub fn verify(output_dir: &Path, limits: &[String]) -> Result<VerifyReport> {
    let record = read_json(output_dir, "provenance.json")?;
    let recorded_version = record
        .get("galley_version")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    if recorded_version != env!("CARGO_PKG_VERSION") {
        return Err(Diagnostic::error(format!(
            "this report was built by galley {recorded_version}; this is galley {}: outputs are only comparable between builds of the same version",
            env!("CARGO_PKG_VERSION")
        ))
        .in_file(output_dir.join("provenance.json"))
        .hint(format!("verify with galley {recorded_version}, or rebuild with this version and verify that"))
        .into());
    }
    let study_dir = record
        .get("study_dir")
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .ok_or_else(|| {
            Diagnostic::error("the provenance record names no study folder")
                .in_file(output_dir.join("provenance.json"))
        })?;

    let recorded_outputs = hashes(&record, "outputs");
    // The record is a file anyone could have edited: the names in it must be plain paths inside the
    // output and study folders, not a way to have galley read (and hash) files elsewhere.
    for name in recorded_outputs
        .keys()
        .chain(hashes(&record, "inputs").keys())
    {
        if let Err(why) = crate::sandbox::check_relative(name) {
            return Err(Diagnostic::error(format!(
                "the provenance record names `{name}`, which is {}",
                why.describe("provenance.json")
            ))
            .in_file(output_dir.join("provenance.json"))
            .into());
        }
    }
    let tampered: Vec<String> = recorded_outputs
        .iter()
        .filter(|(name, hash)| {
            // Regular files only: a link or a FIFO in an output folder is not followed.
            crate::sandbox::read_regular_file(&output_dir.join(name))
                .map(|b| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b)))
                .as_deref()
                != Some(hash.as_str())
        })
        .map(|(name, _)| name.clone())
        .collect();
    let changed_inputs: Vec<String> = hashes(&record, "inputs")
        .iter()
        .filter(|(name, hash)| sha256_file(&study_dir.join(name)).as_deref() != Some(hash.as_str()))
        .map(|(name, _)| name.clone())
        .collect();

    let as_of = record
        .pointer("/options/as_of")
        .and_then(Value::as_str)
        .and_then(crate::study::parse_iso_date);
    // The formats the recorded build wrote (records before formats existed wrote the PDF only).
    let formats = match record.pointer("/options/formats").and_then(Value::as_array) {
        Some(names) => pipeline::Formats {
            pdf: names.iter().any(|n| n == "pdf"),
            html: names.iter().any(|n| n == "html"),
        },
        None => pipeline::Formats::default(),
    };
    let scratch = tempfile::tempdir()
        .map_err(|e| io_error("create a temporary folder in", &std::env::temp_dir(), &e))?;
    // The rebuild must see the same SOURCE_DATE_EPOCH as the recorded build did.
    let epoch = record
        .pointer("/options/source_date_epoch")
        .and_then(Value::as_str)
        .map(str::to_string);
    let report = with_source_date_epoch(epoch, || {
        pipeline::build(
            &study_dir,
            &BuildOptions {
                out: scratch.path().to_path_buf(),
                as_of,
                formats,
                audit: record
                    .pointer("/options/audit")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                limits: limits.to_vec(),
                ..BuildOptions::default()
            },
        )
    });
    let rebuilt_differently: Vec<String> = match report {
        Ok(report) => recorded_outputs
            .iter()
            .filter(|(name, hash)| {
                sha256_file(&report.output_dir.join(name)).as_deref() != Some(hash.as_str())
            })
            .map(|(name, _)| name.clone())
            .collect(),
        Err(failure) if !changed_inputs.is_empty() => {
            // The changed inputs no longer build: every output counts as different.
            let _ = failure;
            recorded_outputs.keys().cloned().collect()
        }
        Err(failure) => return Err(failure),
    };
    let verdict = if !changed_inputs.is_empty() {
        Verdict::InputsChanged
    } else if !rebuilt_differently.is_empty() {
        Verdict::NotReproducible
    } else if !tampered.is_empty() {
        Verdict::Tampered
    } else {
        Verdict::Identical
    };
    Ok(VerifyReport {
        verdict,
        tampered,
        changed_inputs,
        rebuilt_differently,
    })
}

fn with_source_date_epoch<T>(value: Option<String>, f: impl FnOnce() -> T) -> T {
    let previous = std::env::var("SOURCE_DATE_EPOCH").ok();
    // SAFETY: galley's CLI is single-threaded at this point (verify runs nothing concurrently).
    unsafe {
        match &value {
            Some(v) => std::env::set_var("SOURCE_DATE_EPOCH", v),
            None => std::env::remove_var("SOURCE_DATE_EPOCH"),
        }
    }
    let out = f();
    unsafe {
        match previous {
            Some(v) => std::env::set_var("SOURCE_DATE_EPOCH", v),
            None => std::env::remove_var("SOURCE_DATE_EPOCH"),
        }
    }
    out
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

/// The three records of a built report that a comparison reads.
pub struct ReportFiles {
    pub provenance: Value,
    pub results: Value,
    pub trail: Value,
}

impl ReportFiles {
    pub fn read(dir: &Path) -> Result<ReportFiles> {
        Ok(ReportFiles {
            provenance: read_json(dir, "provenance.json")?,
            results: read_json(dir, "results.json")?,
            trail: read_json(dir, "trail.json")?,
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

    let (old_results, new_results) = (&old.results, &new.results);
    if let Some(new_map) = new_results.as_object() {
        for (id, value) in new_map {
            if old_results.get(id) == Some(value) {
                report.unchanged_blocks.push(id.clone());
            } else {
                report.changed_blocks.push(id.clone());
            }
        }
    }

    let (old_trail, new_trail) = (&old.trail, &new.trail);
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

impl DiffReport {
    /// Typst for a "Changes since the previous report" appendix.
    pub fn appendix_markup(&self, previous: &str) -> String {
        use crate::manuscript::escape_markup as esc;
        let mut s = String::from(
            "\n#pagebreak(weak: true)\n#heading(level: 1)[Changes since the previous report]\n\n",
        );
        let cutoffs = match (&self.old_cutoff, &self.new_cutoff) {
            (Some(a), Some(b)) if a != b => format!("The data cutoff moved from {a} to {b}. "),
            _ => String::new(),
        };
        s.push_str(&esc(&format!(
            "Compared with the report recorded in {previous}. {cutoffs}Inputs changed: {}. Blocks with changed results: {}. Blocks unchanged: {}. Reported values that changed: {}.",
            if self.changed_inputs.is_empty() { "none".to_string() } else { self.changed_inputs.join(", ") },
            if self.changed_blocks.is_empty() { "none".to_string() } else { self.changed_blocks.join(", ") },
            if self.unchanged_blocks.is_empty() { "none".to_string() } else { self.unchanged_blocks.join(", ") },
            self.changed_values.len()
        )));
        s.push_str("\n\n");
        if self.changed_values.is_empty() {
            return s;
        }
        let mut rows = String::new();
        for c in &self.changed_values {
            let change = match (c.absolute_change, c.relative_change) {
                (Some(a), Some(r)) => format!("{a:+.3} ({:+.1}%)", r * 100.0),
                (Some(a), None) => format!("{a:+.3}"),
                _ => String::new(),
            };
            rows.push_str(&format!(
                "([{}:{}], [#text(font: \"DejaVu Sans Mono\", size: 0.9em)[{}]], [{}], [{}], [{}]),\n",
                esc(&c.file),
                c.line,
                esc(&c.expression).replace("\\.", "\\.\u{200B}"),
                esc(c.old_text.as_deref().unwrap_or("(new)")),
                esc(c.new_text.as_deref().unwrap_or("\u{2013}")),
                esc(&change),
            ));
        }
        s.push_str(&format!(
            "#block(width: 100%, booktable(columns: (auto, 1fr, auto, auto, auto), align: (left, left, right, right, right), \
             header: (([Where], [Expression], [Previous], [Now], [Change]),), rows: ({rows})))\n"
        ));
        s
    }
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
