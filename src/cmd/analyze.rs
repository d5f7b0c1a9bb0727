//! `galley analyze`: one block on one CSV, result as JSON on stdout. This is how a reviewer recomputes
//! one number without a study folder, and how the validation suite compares galley with R.

use std::path::Path;

use indexmap::IndexMap;

use crate::analysis::{self, AnalysisSettings, BlockEnv};
use crate::diagnostics::{Diagnostic, Result, io_error};
use crate::study::InputFile;
use crate::study::dataset;
use crate::study::manuscript::AnalysisBlock;

/// Run the block in `block_path` on the CSV at `data_path`; the dataset is named `data` (and also by
/// the file stem), so a spec may say `data = "data"` or omit nothing else. `limits` are the command
/// line's `--limit NAME=VALUE`s over the default limits.
pub fn analyze(
    data_path: &Path,
    block_path: &Path,
    limits: &[String],
) -> Result<serde_json::Value> {
    let limits = crate::study::limits::Limits::default()
        .with_overrides(limits)
        .map_err(Diagnostic::error)?;
    let csv = std::fs::read_to_string(data_path).map_err(|e| io_error("read", data_path, &e))?;
    let spec = std::fs::read_to_string(block_path).map_err(|e| io_error("read", block_path, &e))?;
    let table = dataset::infer_csv(&csv, data_path, "data")?;
    let block = parse_block_file(&spec, block_path)?;
    let mut datasets = IndexMap::new();
    let stem = data_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !stem.is_empty() && stem != "data" {
        let mut named = table.clone();
        named.name = stem.clone();
        datasets.insert(stem, named);
    }
    datasets.insert("data".to_string(), table);
    let settings = AnalysisSettings {
        limits,
        ..AnalysisSettings::standalone()
    };
    let results = IndexMap::new();
    let env = BlockEnv {
        block: &block,
        datasets: &datasets,
        results: &results,
        settings: &settings,
    };
    let output = analysis::run_block(&env)?;
    let mut value = serde_json::Map::new();
    value.insert("kind".into(), serde_json::Value::String(block.kind.clone()));
    match output.value {
        serde_json::Value::Object(map) => value.extend(map),
        other => {
            value.insert("result".into(), other);
        }
    }
    if !output.warnings.is_empty() {
        value.insert("warnings".into(), serde_json::json!(output.warnings));
    }
    Ok(serde_json::Value::Object(value))
}

/// A spec file is an analysis block body on its own: locations in it are its own lines.
fn parse_block_file(spec: &str, path: &Path) -> std::result::Result<AnalysisBlock, Diagnostic> {
    let input = InputFile {
        relative: path.display().to_string(),
        display: path.to_path_buf(),
        bytes: spec.as_bytes().to_vec(),
    };
    let text: std::sync::Arc<str> = spec.into();
    crate::study::manuscript::parse_block(spec, &input, &text, 0, 1)
}

/// `galley analyze`: the result as pretty JSON on stdout.
pub fn run(data: &Path, block: &Path, limits: &[String]) -> Result<u8> {
    let value = analyze(data, block, limits)?;
    println!("{}", super::diff::json(&value)?);
    Ok(0)
}
