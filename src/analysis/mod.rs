//! Analysis blocks: run every block of the document in reading order and keep each result by id.
//!
//! A block reads a dataset (a manifest table or a dataset an earlier block produced), computes, and
//! returns a JSON result (what the prose's templates see), optionally a new dataset (derived columns,
//! a filtered cohort, a matched cohort) and artifacts (figures and tables placed where the block stands).
//! Each kind lives in its own module and parses its own typed spec, so an unknown field is an error
//! located in the manuscript.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use jiff::civil::Date;
use serde::Deserialize;
use sha2::Digest;

use crate::analysis::artifacts::Artifacts;
use crate::analysis::cache::{BlockCache, CachedOutputRef};
use crate::diagnostics::{Diagnostic, Failure, Result};
use crate::study::dataset::{Column, ColumnData, Dataset};
use crate::study::manifest::FormatSection;
use crate::study::manuscript::{AnalysisBlock, Document};

pub mod aggregate;
pub mod artifacts;
pub mod bootstrap;
pub mod cache;
pub mod columns;
pub mod compare;
pub mod data;
pub mod describe;
pub mod expr;
pub mod logistic;
pub mod matching;
pub mod numfmt;
pub mod reproduction;
pub mod survival;
pub mod table1;

/// Settings every block may need.
#[derive(Debug, Clone)]
pub struct AnalysisSettings {
    pub seed: u64,
    /// Administrative censoring date for survival derived from dates.
    pub cutoff: Option<Date>,
    pub format: FormatSection,
    /// The paper's published figures, for `reproduction` blocks.
    pub published: Option<crate::study::published::Published>,
    /// Resource limits (time per row expression, bootstrap replicates). Not part of a block's
    /// cache key: they decide whether a block may run, never what it computes.
    pub limits: crate::study::limits::Limits,
}

impl AnalysisSettings {
    /// Settings for a block run outside a study (`galley analyze`, tests): seed 1, no cutoff,
    /// default number formatting, no published values.
    pub fn standalone() -> AnalysisSettings {
        AnalysisSettings {
            seed: 1,
            cutoff: None,
            format: FormatSection::default(),
            published: None,
            limits: crate::study::limits::Limits::default(),
        }
    }
}

/// What one block produced.
#[derive(Debug, Clone)]
pub struct BlockResult {
    pub id: String,
    pub kind: String,
    pub value: serde_json::Value,
    /// Content hash of the dataset the block made (the dataset itself is in the analysis' dataset
    /// map, held once: a derived table of a large registry is big).
    pub dataset_sha256: Option<String>,
    pub artifacts: Artifacts,
    pub warnings: Vec<Diagnostic>,
}

/// Everything the analysis produced, by block id in reading order.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    pub results: IndexMap<String, BlockResult>,
    /// Per block: how long it took and whether it came from the cache.
    pub timings: Vec<(String, Duration, bool)>,
}

/// What a kind's `run` returns; the executor adds id, kind and location.
#[derive(Debug, Default)]
pub struct Output {
    pub value: serde_json::Value,
    pub dataset: Option<Dataset>,
    pub artifacts: Artifacts,
    pub warnings: Vec<String>,
}

impl Output {
    pub fn value(value: serde_json::Value) -> Output {
        Output {
            value,
            ..Default::default()
        }
    }
}

/// What a block can see while it runs.
pub struct BlockEnv<'a> {
    pub block: &'a AnalysisBlock,
    pub datasets: &'a IndexMap<String, Dataset>,
    pub results: &'a IndexMap<String, BlockResult>,
    pub settings: &'a AnalysisSettings,
}

impl BlockEnv<'_> {
    /// The dataset named by the spec's `data` key.
    pub fn dataset(&self, name: &str) -> std::result::Result<&Dataset, Diagnostic> {
        self.datasets.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.datasets.keys().map(String::as_str).collect();
            self.block
                .error_at_key(
                    format!(
                        "analysis block `{}`: no dataset named `{name}`",
                        self.block.id
                    ),
                    "data",
                )
                .hint(format!(
                    "datasets defined before this block: {} (blocks run in reading order)",
                    known.join(", ")
                ))
        })
    }

    /// A column of a dataset, or an error located at the spec key that named it.
    pub fn column<'d>(
        &self,
        data: &'d Dataset,
        name: &str,
        key: &str,
    ) -> std::result::Result<&'d Column, Diagnostic> {
        data.column(name).ok_or_else(|| {
            self.block
                .error_at_key(
                    format!(
                        "analysis block `{}`: dataset `{}` has no column `{name}`",
                        self.block.id, data.name
                    ),
                    key,
                )
                .hint(format!(
                    "its columns are: {}",
                    data.column_names().join(", ")
                ))
        })
    }

    /// The time limit of evaluating a row expression of this block (the field `key`).
    pub fn expression_limit(&self, key: &str) -> crate::study::limits::TimeLimit {
        self.settings.limits.time_limit(
            format!(
                "a row of the expression `{key}` of analysis block `{}`",
                self.block.id
            ),
            Some(crate::diagnostics::Location::line(
                &self.block.file,
                self.block.line,
            )),
        )
    }

    /// `value` as JSON for the block's result; an error naming the block when it cannot be
    /// serialised (never a `null` result in its place).
    pub fn json<T: serde::Serialize + ?Sized>(
        &self,
        what: &str,
        value: &T,
    ) -> std::result::Result<serde_json::Value, Diagnostic> {
        serde_json::to_value(value).map_err(|e| serialise_error(self.block, what, &e))
    }

    pub fn error(&self, key: &str, message: impl std::fmt::Display) -> Diagnostic {
        self.block.error_at_key(
            format!("analysis block `{}`: {message}", self.block.id),
            key,
        )
    }
}

/// The kinds galley knows, for "unknown kind" messages and the docs.
pub const KINDS: &[&str] = &[
    "count",
    "derive",
    "filter",
    "survival_time",
    "kaplan_meier",
    "logrank",
    "cox",
    "reproduction",
    "describe",
    "compare",
    "table1",
    "logistic",
    "propensity_match",
    "aggregate",
    "bootstrap",
];

/// Run every block in reading order. Stops at the first block that fails (later blocks may depend on it).
/// With a cache, a block whose key (spec, settings, and the content of what it reads) is stored is read
/// back instead of run.
pub fn run_all(
    document: &Document,
    tables: IndexMap<String, Dataset>,
    settings: &AnalysisSettings,
    mut cache: Option<&mut BlockCache>,
) -> Result<Analysis> {
    let mut datasets = tables;
    let mut analysis = Analysis::default();
    // Content hash of every dataset and result a later block may read.
    let mut hashes: HashMap<String, String> = datasets
        .iter()
        .map(|(name, d)| (name.clone(), d.content_hash()))
        .collect();
    let settings_text = settings_fingerprint(settings)?;
    for block in &document.blocks {
        if datasets.contains_key(&block.id) {
            return Err(block
                .error_at_key(
                    format!("block id `{}` is also the name of a data table", block.id),
                    "id",
                )
                .into());
        }
        let started = Instant::now();
        let mut dependencies: Vec<(String, String)> = if block.kind == "reproduction" {
            hashes.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        } else {
            cache::mentioned_names(&block.table)
                .into_iter()
                .filter_map(|n| hashes.get(&n).map(|h| (n, h.clone())))
                .collect()
        };
        dependencies.sort();
        dependencies.dedup();
        let key = cache::block_key(&block.kind, &block.body, &settings_text, &dependencies);
        let cached = cache.as_deref_mut().and_then(|c| c.get(&key, &block.id));
        let from_cache = cached.is_some();
        let output = match cached {
            Some(c) => Output {
                value: c.value,
                dataset: c.dataset,
                artifacts: c.artifacts,
                warnings: c.warnings,
            },
            None => {
                let env = BlockEnv {
                    block,
                    datasets: &datasets,
                    results: &analysis.results,
                    settings,
                };
                let output = run_block(&env).map_err(Failure::from)?;
                if let Some(c) = cache.as_deref_mut() {
                    c.put(
                        &key,
                        &block.id,
                        &CachedOutputRef {
                            value: &output.value,
                            dataset: output.dataset.as_ref(),
                            artifacts: &output.artifacts,
                            warnings: &output.warnings,
                        },
                    );
                }
                output
            }
        };
        let warnings = output
            .warnings
            .iter()
            .map(|w| {
                Diagnostic::warning(format!("analysis block `{}`: {w}", block.id))
                    .at(crate::diagnostics::Location::line(&block.file, block.line))
            })
            .collect();
        // What later blocks' cache keys see of this one; an empty text would make every result
        // look alike, so a value that cannot be serialised stops the build.
        let mut result_hash = serde_json::to_string(&output.value)
            .map_err(|e| serialise_error(block, "its result", &e))?;
        let dataset_sha256 = output.dataset.map(|ds| {
            let hash = ds.content_hash();
            result_hash.push_str(&hash);
            datasets.insert(block.id.clone(), ds);
            hash
        });
        hashes.insert(
            block.id.clone(),
            hex::encode(sha2::Sha256::digest(result_hash.as_bytes())),
        );
        analysis
            .timings
            .push((block.id.clone(), started.elapsed(), from_cache));
        analysis.results.insert(
            block.id.clone(),
            BlockResult {
                id: block.id.clone(),
                kind: block.kind.clone(),
                value: output.value,
                dataset_sha256,
                artifacts: output.artifacts,
                warnings,
            },
        );
    }
    Ok(analysis)
}

/// The settings a block's result may depend on, as text for its cache key. An error if the
/// number formatting cannot be serialised: leaving it out of the key would let a cached result
/// formatted under other rules be reused.
fn settings_fingerprint(settings: &AnalysisSettings) -> std::result::Result<String, Diagnostic> {
    let format = serde_json::to_string(&settings.format).map_err(|e| {
        Diagnostic::error(format!(
            "cannot serialise the study's [format] settings for the block cache key: {e}"
        ))
    })?;
    Ok(format!(
        "seed={} cutoff={:?} format={format} published={}",
        settings.seed,
        settings.cutoff.map(|d| d.to_string()),
        // No published values: nothing for a `reproduction` block to compare with.
        settings
            .published
            .as_ref()
            .map(|p| format!("{p:?}"))
            .unwrap_or_default()
    ))
}

/// A block's `what` could not be serialised to JSON: an error at the block.
fn serialise_error(block: &AnalysisBlock, what: &str, e: &serde_json::Error) -> Diagnostic {
    Diagnostic::error(format!(
        "analysis block `{}`: cannot serialise {what} as JSON: {e}",
        block.id
    ))
    .at(crate::diagnostics::Location::line(&block.file, block.line))
}

/// Run one block of any kind. Its tables are checked to be writable as CSV here, so that one
/// that is not fails the block (located there) instead of becoming a shortened file later.
pub fn run_block(env: &BlockEnv) -> std::result::Result<Output, Diagnostic> {
    let output = run_kind(env)?;
    for table in &output.artifacts.tables {
        table.csv().map_err(|e| {
            Diagnostic::error(format!("analysis block `{}`: {e}", env.block.id)).at(
                crate::diagnostics::Location::line(&env.block.file, env.block.line),
            )
        })?;
    }
    Ok(output)
}

fn run_kind(env: &BlockEnv) -> std::result::Result<Output, Diagnostic> {
    match env.block.kind.as_str() {
        "count" => data::count(env),
        "derive" => data::derive(env),
        "filter" => data::filter(env),
        "survival_time" => data::survival_time(env),
        "kaplan_meier" => survival::kaplan_meier(env),
        "logrank" => survival::logrank(env),
        "cox" => survival::cox(env),
        "reproduction" => reproduction::reproduction(env),
        "describe" => describe::describe(env),
        "compare" => compare::compare(env),
        "table1" => table1::table1(env),
        "logistic" => logistic::logistic(env),
        "propensity_match" => matching::propensity_match(env),
        "aggregate" => aggregate::aggregate(env),
        "bootstrap" => bootstrap::run(env),
        other => Err(env
            .block
            .error_at_key(format!("unknown analysis block kind `{other}`"), "kind")
            .hint(format!("known kinds: {}", KINDS.join(", ")))),
    }
}

/// Presentation options every figure-drawing block accepts under `[figure]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FigureSpec {
    pub caption: String,
    pub label: Option<String>,
    /// Fraction of the text width (default 1).
    pub width: Option<f64>,
}

/// Presentation options every table-producing block accepts under `[table]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub caption: String,
    pub label: Option<String>,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Group labels of a column (`None` = missing), with the levels in the order tables list them:
/// a category's schema order, a boolean's `no`/`yes`, otherwise sorted.
pub fn grouping(column: &Column) -> (Vec<String>, Vec<Option<usize>>) {
    match &*column.data {
        ColumnData::Category { levels, codes } => (
            levels.clone(),
            codes.iter().map(|c| c.map(|c| c as usize)).collect(),
        ),
        ColumnData::Boolean(v) => (
            vec!["no".to_string(), "yes".to_string()],
            v.iter().map(|b| b.map(|b| b as usize)).collect(),
        ),
        ColumnData::Integer(v) => {
            let mut levels: Vec<i64> = v.iter().flatten().copied().collect();
            levels.sort_unstable();
            levels.dedup();
            let codes = v
                .iter()
                .map(|x| x.map(|x| levels.binary_search(&x).unwrap_or(0)))
                .collect();
            (levels.iter().map(|l| l.to_string()).collect(), codes)
        }
        _ => {
            let texts: Vec<Option<String>> = (0..column.data.len())
                .map(|r| column.data.text(r))
                .collect();
            let mut levels: Vec<String> = texts.iter().flatten().cloned().collect();
            levels.sort();
            levels.dedup();
            let codes = texts
                .iter()
                .map(|t| t.as_ref().map(|t| levels.binary_search(t).unwrap_or(0)))
                .collect();
            (levels, codes)
        }
    }
}
