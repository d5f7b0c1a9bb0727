//! Auditing built reports: `galley verify` (rebuild from the recorded inputs and compare) and
//! `galley diff` (what changed between two versions of a report).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::diagnostics::{Diagnostic, Result, io_error};
use crate::pipeline::{self, BuildOptions};
use crate::records::diff::hashes;
pub use crate::records::diff::{DiffReport, ReportFiles, ValueChange, diff, diff_reports};
use crate::records::format::Record as RecordKind;

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

/// A provenance record as `galley verify` reads it. The record is a file anyone could have edited,
/// so every name in it is checked here, before anything is read: output and input names are plain
/// relative paths, and the study's location is relative to the output folder, never absolute.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// The record's format version (`records::format`): 1 for a record written before records
    /// carried one.
    pub format: u32,
    pub galley_version: String,
    /// The study's folder name.
    pub study: Option<String>,
    /// Where the study folder is, from the output folder (`../../study/x`).
    pub study_from_output: Option<String>,
    /// What a record of an earlier galley says instead: the folder as typed where the build ran.
    pub legacy_study_dir: Option<String>,
    /// Input and output names with their SHA-256.
    pub inputs: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
    pub as_of: Option<jiff::civil::Date>,
    pub source_date_epoch: Option<String>,
    pub formats: pipeline::Formats,
    pub audit: bool,
}

/// Parse and check a provenance record (`file` names it in messages).
pub fn parse_record(bytes: &[u8], file: &Path) -> Result<Record> {
    let at = |message: String| -> crate::diagnostics::Failure {
        Diagnostic::error(message).in_file(file).into()
    };
    let record: Value = serde_json::from_slice(bytes)
        .map_err(|e| at(format!("`provenance.json` is not valid JSON: {e}")))?;
    if !record.is_object() {
        return Err(at(
            "`provenance.json` is not a provenance record (expected a JSON object)".into(),
        ));
    }
    let text = |pointer: &str| -> Result<Option<String>> {
        match record.pointer(pointer) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(at(format!(
                "`{}` in the provenance record is {other}, expected a string",
                pointer.trim_start_matches('/').replace('/', ".")
            ))),
        }
    };
    let format = RecordKind::Provenance.version(&record, file)?;
    let galley_version = text("/galley_version")?.unwrap_or_else(|| "unknown".into());
    let named = |key: &str| -> Result<BTreeMap<String, String>> {
        let map = hashes(&record, key);
        for name in map.keys() {
            if let Err(why) = crate::study::sandbox::check_relative(name) {
                return Err(at(format!(
                    "the provenance record names `{name}`, which is {}",
                    why.describe("provenance.json")
                )));
            }
        }
        Ok(map)
    };
    let study_from_output = text("/study_dir_from_output")?;
    if let Some(rel) = &study_from_output {
        check_study_from_output(rel).map_err(|why| {
            at(format!(
                "the provenance record places the study at `{rel}` from the output folder, which is {why}"
            ))
        })?;
    }
    let as_of = match text("/options/as_of")? {
        Some(d) => Some(crate::study::parse_iso_date(&d).ok_or_else(|| {
            at(format!(
                "`options.as_of` in the provenance record is `{d}`, expected a date as YYYY-MM-DD"
            ))
        })?),
        None => None,
    };
    // The formats the recorded build wrote (records before formats existed wrote the PDF only).
    let formats = match record.pointer("/options/formats").and_then(Value::as_array) {
        Some(names) => pipeline::Formats {
            pdf: names.iter().any(|n| n == "pdf"),
            html: names.iter().any(|n| n == "html"),
        },
        None => pipeline::Formats::default(),
    };
    Ok(Record {
        format,
        galley_version,
        study: text("/study")?,
        study_from_output,
        legacy_study_dir: text("/study_dir")?,
        inputs: named("inputs")?,
        outputs: named("outputs")?,
        as_of,
        source_date_epoch: text("/options/source_date_epoch")?,
        formats,
        audit: record
            .pointer("/options/audit")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// The study's location from the output folder may go up at most twice (out of `<out>/<study>`, out
/// of `<out>`) and then only down: it stays inside the folder that holds the output root. The error
/// completes "which is ...".
pub fn check_study_from_output(rel: &str) -> std::result::Result<(), String> {
    if rel.is_empty() || rel.contains('\0') || rel.contains('\\') {
        return Err("empty, or holds a NUL or a backslash".into());
    }
    if rel.starts_with('/') {
        return Err("an absolute path".into());
    }
    let parts: Vec<&str> = rel.split('/').collect();
    let ups = parts.iter().take_while(|p| **p == "..").count();
    let rest = &parts[ups..];
    if ups > 2 {
        return Err("outside the folder that holds the output root".into());
    }
    if rest.is_empty() || rest.iter().any(|p| matches!(*p, "" | "." | "..")) {
        return Err("not a folder beside the output root (expected `../../<folders>`)".into());
    }
    Ok(())
}

/// The study folder to rebuild from: `--study` if given, else the record's location followed from
/// the output folder, which must stay inside the folder that holds the output root (once links are
/// followed) and be a study folder (hold a `study.toml`). Never the current folder.
fn locate_study(output_dir: &Path, record: &Record, given: Option<&Path>) -> Result<PathBuf> {
    let record_file = output_dir.join("provenance.json");
    let has_manifest = |dir: &Path| {
        crate::study::sandbox::resolve(dir, crate::study::manifest::MANIFEST_FILE)
            .is_ok_and(|m| m.metadata().is_ok_and(|m| m.is_file()))
    };
    if let Some(dir) = given {
        if !has_manifest(dir) {
            return Err(Diagnostic::error(format!(
                "`{}` (given with --study) is not a study folder: it has no study.toml",
                dir.display()
            ))
            .into());
        }
        return Ok(dir.to_path_buf());
    }
    let hint = "pass the study folder with `--study DIR`";
    let Some(rel) = &record.study_from_output else {
        let why = match &record.legacy_study_dir {
            Some(old) => format!(
                "this record was written by an earlier galley, which noted the study folder as `{old}` relative to wherever that build ran; galley no longer guesses from the current folder"
            ),
            None => "the record does not say where the study folder is (the build's study was not beside its output root)".into(),
        };
        return Err(Diagnostic::error(why)
            .in_file(&record_file)
            .hint(hint)
            .into());
    };
    let refuse = |why: String| -> crate::diagnostics::Failure {
        Diagnostic::error(format!(
            "the provenance record places the study at `{rel}` from the output folder, {why}"
        ))
        .in_file(&record_file)
        .hint(hint)
        .into()
    };
    let absolute = crate::study::sandbox::absolute(output_dir)
        .ok_or_else(|| refuse("but the output folder's path cannot be made absolute".into()))?;
    // `<out>/<study>` -> the folder that holds `<out>`: what the user pointed at, and its siblings.
    let base = absolute
        .parent()
        .and_then(Path::parent)
        .unwrap_or(&absolute);
    let target = crate::study::sandbox::absolute(&absolute.join(rel))
        .ok_or_else(|| refuse("which cannot be made absolute".into()))?;
    let inner = target
        .strip_prefix(base)
        .ok()
        .and_then(Path::to_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| refuse("which is outside the folder that holds the output root".into()))?;
    let study = crate::study::sandbox::resolve(base, inner).map_err(|why| {
        refuse(format!(
            "and `{}` is {}",
            target.display(),
            why.describe("provenance.json")
        ))
    })?;
    if !has_manifest(&study) {
        return Err(refuse(format!(
            "but there is no study folder there: `{}` has no study.toml",
            study.display()
        )));
    }
    Ok(study)
}

/// How a recorded input compares with the file now in the study folder.
enum InputNow {
    Same,
    /// Missing, or different bytes.
    Changed,
    /// Not a readable regular file inside the folder, or over the size limit: not comparable.
    Unreadable,
}

/// Compare one recorded input with the study folder, as a build would read it: inside the folder
/// (links followed only within it), a regular file (never a FIFO or a device), at most `max` bytes.
fn input_now(study: &Path, name: &str, hash: &str, max: u64) -> InputNow {
    use std::io::Read;
    let Ok(path) = crate::study::sandbox::resolve(study, name) else {
        return InputNow::Unreadable;
    };
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return InputNow::Changed,
        Ok(m) if m.is_file() && m.len() <= max => {}
        _ => return InputNow::Unreadable,
    }
    let mut bytes = Vec::new();
    let read = std::fs::File::open(&path).and_then(|f| f.take(max + 1).read_to_end(&mut bytes));
    match read {
        Ok(n) if n as u64 <= max => match sha256(&bytes) == hash {
            true => InputNow::Same,
            false => InputNow::Changed,
        },
        _ => InputNow::Unreadable,
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

/// Rebuild the report in `output_dir` from the study its provenance record locates (or `study`,
/// given with `--study`), in a temporary folder, and compare. Never writes into `output_dir`.
/// `limits` are the command line's `--limit NAME=VALUE`s for the rebuild (limits never change what
/// a build writes, only whether it may run, so they are not part of the record).
pub fn verify(output_dir: &Path, study: Option<&Path>, limits: &[String]) -> Result<VerifyReport> {
    let record_file = output_dir.join("provenance.json");
    // The record is read like any file of the output folder: a regular file, of bounded size.
    let max = crate::study::limits::Limits::default()
        .with_overrides(limits)
        .map_err(Diagnostic::error)?
        .input_file_bytes();
    let bytes = match record_file.symlink_metadata() {
        Err(e) => {
            let d = io_error("read", &record_file, &e);
            return Err(if e.kind() == std::io::ErrorKind::NotFound {
                d.hint(format!(
                    "`{}` does not look like a galley output folder (it has no provenance.json)",
                    output_dir.display()
                ))
            } else {
                d
            }
            .into());
        }
        Ok(_) => crate::study::sandbox::read_regular_file_limited(&record_file, max).ok_or_else(
            || {
                Diagnostic::error(format!(
                    "`provenance.json` is not a regular file of at most {} MiB",
                    max / (1024 * 1024)
                ))
                .in_file(&record_file)
            },
        )?,
    };
    let record = parse_record(&bytes, &record_file)?;
    if record.galley_version != env!("CARGO_PKG_VERSION") {
        return Err(Diagnostic::error(format!(
            "this report was built by galley {}; this is galley {}: outputs are only comparable between builds of the same version",
            record.galley_version,
            env!("CARGO_PKG_VERSION")
        ))
        .in_file(&record_file)
        .hint(format!("verify with galley {}, or rebuild with this version and verify that", record.galley_version))
        .into());
    }
    let study_dir = locate_study(output_dir, &record, study)?;
    // Outputs name the study by its folder's name: another name cannot rebuild the same bytes.
    let name = study_dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    if let (Some(recorded), Some(name)) = (&record.study, &name)
        && recorded != name
    {
        return Err(Diagnostic::error(format!(
            "the study folder `{}` is named `{name}`, but the record is of the study `{recorded}`; a study's outputs carry its folder's name, so a rebuild under another name differs",
            study_dir.display()
        ))
        .hint(format!("give the study folder under its recorded name, `{recorded}`"))
        .into());
    }

    // Outputs are read as regular files only: a link or a FIFO in an output folder is not followed.
    let tampered: Vec<String> = record
        .outputs
        .iter()
        .filter(|(name, hash)| {
            crate::study::sandbox::read_regular_file_limited(&output_dir.join(name), max)
                .map(|b| sha256(&b))
                .as_deref()
                != Some(hash.as_str())
        })
        .map(|(name, _)| name.clone())
        .collect();

    let scratch = tempfile::tempdir()
        .map_err(|e| io_error("create a temporary folder in", &std::env::temp_dir(), &e))?;
    // The rebuild sees the same SOURCE_DATE_EPOCH as the recorded build did (as a value: nothing
    // here touches the process environment, which other threads read).
    let report = pipeline::build(
        &study_dir,
        &BuildOptions {
            out: scratch.path().to_path_buf(),
            as_of: record.as_of,
            formats: record.formats,
            audit: record.audit,
            limits: limits.to_vec(),
            no_cache: true,
            source_date_epoch: record.source_date_epoch.clone(),
            ..BuildOptions::default()
        },
    );
    let (changed_inputs, rebuilt_differently) = match report {
        Ok(report) => {
            // A record of an earlier format is compared with the rebuild's record written in that
            // format (`records::format`); every other output as it is.
            let rebuilt = |name: &str| -> Result<Option<String>> {
                let path = report.output_dir.join(name);
                let Some(bytes) = crate::study::sandbox::read_regular_file(&path) else {
                    return Ok(None);
                };
                let bytes = match RecordKind::of_file(name) {
                    Some(kind) if record.format != kind.current() => {
                        kind.write_as(&kind.read(&bytes, &path)?, record.format)?
                    }
                    _ => bytes,
                };
                Ok(Some(sha256(&bytes)))
            };
            // The inputs the rebuild read (its own record, made through the study's sandbox and
            // limits) against those recorded: changed, added (a new template file) or removed.
            let rebuilt_record = report.output_dir.join("provenance.json");
            let bytes =
                crate::study::sandbox::read_regular_file(&rebuilt_record).ok_or_else(|| {
                    Diagnostic::error("the rebuild wrote no readable provenance record")
                        .in_file(&rebuilt_record)
                })?;
            let now = parse_record(&bytes, &rebuilt_record)?.inputs;
            let mut changed: Vec<String> = record
                .inputs
                .iter()
                .filter(|(name, hash)| now.get(*name) != Some(*hash))
                .map(|(name, _)| name.clone())
                .collect();
            changed.extend(
                now.keys()
                    .filter(|n| !record.inputs.contains_key(*n))
                    .cloned(),
            );
            changed.sort();
            let mut differently = Vec::new();
            for (name, hash) in &record.outputs {
                if rebuilt(name)?.as_deref() != Some(hash.as_str()) {
                    differently.push(name.clone());
                }
            }
            (changed, differently)
        }
        Err(failure) => {
            // The study no longer builds. If recorded inputs are missing or differ, that is why
            // (every output counts as different); anything else is the rebuild's error to report.
            let mut changed = Vec::new();
            for (name, hash) in &record.inputs {
                match input_now(&study_dir, name, hash, max) {
                    InputNow::Same => {}
                    InputNow::Changed => changed.push(name.clone()),
                    InputNow::Unreadable => return Err(failure),
                }
            }
            if changed.is_empty() {
                return Err(failure);
            }
            (changed, record.outputs.keys().cloned().collect())
        }
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
