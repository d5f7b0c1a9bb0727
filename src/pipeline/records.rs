//! The machine-readable records of a build: `results.json` (every block's result),
//! `provenance.json` (what went in, how, and what came out, with the per-block input hashes),
//! `trail.json` and `reproduction.json`. Each carries its format version (`records::format`,
//! docs/formats.md); one that cannot be written is an error naming it, never an empty file.

use std::path::Path;

use indexmap::IndexMap;

use super::{BuildOptions, Prepared};
use crate::analysis::Analysis;
use crate::analysis::cache;
use crate::diagnostics::{Diagnostic, Result};
use crate::output::OutputFiles;
use crate::records::format::Record;
use crate::study::dataset::Dataset;
use crate::study::manuscript::Document;

/// Hashes identifying one block's computation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BlockInputs {
    pub id: String,
    pub kind: String,
    pub file: String,
    pub line: usize,
    pub spec_sha256: String,
    pub data: Option<String>,
    pub data_sha256: Option<String>,
}

/// The results record: every block's kind and result, by id.
pub(super) fn results_record(analysis: &Analysis) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (id, r) in &analysis.results {
        let mut entry = serde_json::Map::new();
        entry.insert("kind".into(), serde_json::Value::String(r.kind.clone()));
        entry.insert("result".into(), r.value.clone());
        map.insert(id.clone(), serde_json::Value::Object(entry));
    }
    Record::Results.wrap(serde_json::Value::Object(map))
}

/// `results.json`.
pub(super) fn results_json(analysis: &Analysis) -> Result<Vec<u8>> {
    Record::Results.to_bytes(&results_record(analysis))
}

/// Spec hashes and the dataset each block names, before it runs (manifest tables are hashed now;
/// datasets made by earlier blocks are hashed after the analysis).
pub(super) fn block_inputs(
    document: &Document,
    tables: &IndexMap<String, Dataset>,
) -> Vec<BlockInputs> {
    document
        .blocks
        .iter()
        .map(|b| {
            let data = b
                .table
                .get("data")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            let data_sha256 = data
                .as_ref()
                .and_then(|d| tables.get(d))
                .map(Dataset::content_hash);
            BlockInputs {
                id: b.id.clone(),
                kind: b.kind.clone(),
                file: b.relative.clone(),
                line: b.line,
                spec_sha256: sha256_hex(b.body.as_bytes()),
                data,
                data_sha256,
            }
        })
        .collect()
}

pub(super) fn complete_block_inputs(
    mut inputs: Vec<BlockInputs>,
    analysis: &Analysis,
) -> Vec<BlockInputs> {
    for input in &mut inputs {
        if input.data_sha256.is_none()
            && let Some(hash) = input
                .data
                .as_ref()
                .and_then(|d| analysis.results.get(d))
                .and_then(|r| r.dataset_sha256.as_ref())
        {
            input.data_sha256 = Some(hash.clone());
        }
    }
    inputs
}

/// The provenance record: what went in (hashes), how (version, seed, cutoff, options), and what came out.
pub(super) fn provenance_json(
    prepared: &Prepared,
    options: &BuildOptions,
    outputs: &OutputFiles,
) -> Result<Vec<u8>> {
    let study = &prepared.study;
    let inputs: serde_json::Map<String, serde_json::Value> = study
        .inputs()
        .into_iter()
        .map(|f| {
            (
                f.relative.clone(),
                serde_json::json!({"sha256": sha256_hex(&f.bytes), "bytes": f.bytes.len()}),
            )
        })
        .collect();
    // The block cache is not an output: it is a build accelerator, kept beside them.
    let cache_prefix = format!("{}/", cache::CACHE_DIR);
    let outputs_map: serde_json::Map<String, serde_json::Value> = outputs
        .files
        .iter()
        .filter(|(path, _)| !path.starts_with(&cache_prefix))
        .map(|(path, bytes)| {
            (
                path.clone(),
                serde_json::json!({"sha256": sha256_hex(bytes), "bytes": bytes.len()}),
            )
        })
        .collect();
    let record = serde_json::json!({
        "galley_version": env!("CARGO_PKG_VERSION"),
        "study": study.name,
        // Where the study is, seen from the output folder (`../../study/x`), so that `galley verify`
        // finds it from wherever it runs; null when it is not beside the output root (verify then
        // asks for `--study`). Not the folder as typed: that depended on where the build ran.
        "study_dir_from_output": study_from_output(&study.root, &options.out.join(&study.name)),
        "seed": study.manifest.study.seed,
        "cutoff": prepared.cutoff.map(|d| d.to_string()),
        "options": {
            "as_of": options.as_of.map(|d| d.to_string()),
            "source_date_epoch": options.source_date_epoch,
            "formats": options.formats.names(),
            "audit": options.audit,
        },
        "inputs": inputs,
        "blocks": prepared.block_inputs,
        "outputs": outputs_map,
    });
    Record::Provenance.to_bytes(&Record::Provenance.wrap(record))
}

/// The study folder relative to the output folder `dest`, `/`-separated: at most two `..` (out of
/// `<out>/<study>`, then out of `<out>`) and then down; `None` when the study is elsewhere. Both are
/// made absolute lexically, as `galley verify` does when it follows the path back.
pub(super) fn study_from_output(study: &Path, dest: &Path) -> Option<String> {
    use std::path::Component;
    let (study, dest) = (
        crate::study::sandbox::absolute(study)?,
        crate::study::sandbox::absolute(dest)?,
    );
    let (s, d): (Vec<Component>, Vec<Component>) =
        (study.components().collect(), dest.components().collect());
    let common = s.iter().zip(&d).take_while(|(a, b)| a == b).count();
    let ups = d.len() - common;
    if ups > 2 || common == 0 {
        return None;
    }
    let mut parts: Vec<String> = vec!["..".to_string(); ups];
    for c in &s[common..] {
        match c {
            Component::Normal(n) => parts.push(n.to_str()?.to_string()),
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// `reproduction.json`: published versus reproduced, one row per quantity.
pub(super) fn reproduction_json(rows: &[crate::study::published::Comparison]) -> Result<Vec<u8>> {
    let rows = to_value(Record::Reproduction, rows)?;
    Record::Reproduction.to_bytes(&Record::Reproduction.wrap(rows))
}

/// The trail record: every value the manuscript shows, with where it came from.
pub(super) fn trail_record(
    trail: &[crate::document::trail::TrailEntry],
) -> Result<serde_json::Value> {
    Ok(Record::Trail.wrap(to_value(Record::Trail, trail)?))
}

/// `trail.json`.
pub(super) fn trail_json(trail: &[crate::document::trail::TrailEntry]) -> Result<Vec<u8>> {
    Record::Trail.to_bytes(&trail_record(trail)?)
}

/// A record's content as JSON; a value that cannot be is an error naming the record.
fn to_value(
    record: Record,
    content: &(impl serde::Serialize + ?Sized),
) -> Result<serde_json::Value> {
    serde_json::to_value(content).map_err(|e| {
        Diagnostic::error(format!("`{}` could not be written: {e}", record.file())).into()
    })
}
