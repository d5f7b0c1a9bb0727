//! The build, as a readable list of timed stages:
//! load study -> load data -> parse manuscript -> run analysis -> render prose -> assemble Typst
//! -> typeset PDF -> write outputs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use jiff::civil::Date;
use minijinja::value::Value;

use crate::analysis::cache::{self, BlockCache};
mod records;

use crate::analysis::{self, Analysis, AnalysisSettings};
use crate::diagnostics::{Diagnostic, Failure, Location, Result};
use crate::document::template;
use crate::document::trail;
use crate::output::{self, OutputFiles, Staged};
use crate::render::typeset::{self, FileSet};
use crate::render::typst::{self, ConvertContext, escape_markup, string_literal};
use crate::study::Study;
use crate::study::dataset::{self, Dataset, TableSchema};
use crate::study::limits;
use crate::study::manuscript::Document;
use crate::study::published::{self, Published};
pub use records::BlockInputs;
use records::{
    block_inputs, complete_block_inputs, provenance_json, reproduction_json, results_json,
    results_record, sha256_hex, trail_json, trail_record,
};

/// The embedded article template (a study may provide its own `article.typ`).
pub const ARTICLE_TEMPLATE: &str = include_str!("../../templates/article.typ");
pub const TEMPLATE_FILE: &str = "article.typ";
pub const MAIN_FILE: &str = "manuscript.typ";

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Output root; the study's outputs go to `<out>/<study name>/`.
    pub out: PathBuf,
    /// Overrides the manifest's cutoff (administrative censoring and the document date).
    pub as_of: Option<Date>,
    /// Which manuscripts to write (`manuscript.pdf`, `manuscript.html`).
    pub formats: Formats,
    /// Told the name of each stage as it starts (the CLI shows it as progress on a terminal).
    pub progress: Option<Progress>,
    /// Add an audit-trail appendix to the PDF and make every templated number a link to its entry.
    pub audit: bool,
    /// `--limit NAME=VALUE` overrides of the manifest's `[limits]`.
    pub limits: Vec<String>,
    /// Reuse nothing of the previous build in the output folder (block cache, PDF): every block
    /// runs and the PDF is typeset (`--no-cache`). A fresh cache is still written.
    pub no_cache: bool,
    /// `SOURCE_DATE_EPOCH` as the caller found it (the reproducible-builds convention: it dates the
    /// PDF). Passed as a value: the library never reads the environment (`cmd` does).
    pub source_date_epoch: Option<String>,
    /// Warnings are errors: the build stops after preparing (nothing typeset, nothing written).
    pub deny_warnings: bool,
}

/// The manuscript formats a build writes. Default: the PDF only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    pub pdf: bool,
    pub html: bool,
}

impl Default for Formats {
    fn default() -> Self {
        Formats {
            pdf: true,
            html: false,
        }
    }
}

impl Formats {
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.pdf {
            names.push("pdf");
        }
        if self.html {
            names.push("html");
        }
        names
    }
}

/// A stage-start callback.
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// What a build did: where it wrote, warnings, and how long each stage took.
#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    pub output_dir: PathBuf,
    pub files: Vec<String>,
    pub warnings: Vec<Diagnostic>,
    pub timings: Vec<(String, Duration)>,
    /// The build's wall time (stages overlap: the other outputs are written while the PDF is typeset).
    pub total: Duration,
    /// Published versus reproduced, when the study names its published values.
    pub reproduction: Option<Vec<published::Comparison>>,
    /// Blocks read back from the cache, and blocks that ran.
    pub blocks_cached: Vec<String>,
    pub blocks_run: Vec<String>,
}

struct Stopwatch {
    timings: Vec<(String, Duration)>,
    progress: Option<Progress>,
}

impl Stopwatch {
    fn time<T>(&mut self, stage: &str, f: impl FnOnce() -> T) -> T {
        if let Some(progress) = &self.progress {
            (progress.0)(stage);
        }
        let start = Instant::now();
        let out = f();
        self.timings.push((stage.to_string(), start.elapsed()));
        out
    }
}

/// Everything up to (not including) typesetting: what `check` runs and `build` continues from.
pub struct Prepared {
    pub study: Study,
    pub cutoff: Option<Date>,
    pub analysis: Analysis,
    /// The Typst sources and assets of the output folder.
    pub files: FileSet,
    pub warnings: Vec<Diagnostic>,
    pub reproduction: Option<Vec<published::Comparison>>,
    /// Every value the templates and tables put into the manuscript.
    pub trail: Vec<trail::TrailEntry>,
    /// The block cache of the output folder (a build has one; `check` does not).
    pub cache: Option<BlockCache>,
    /// Per block: what it read and what its spec was (for the provenance record).
    pub block_inputs: Vec<BlockInputs>,
}

pub fn build(study_dir: &Path, options: &BuildOptions) -> Result<BuildReport> {
    let started = Instant::now();
    let mut clock = Stopwatch {
        timings: Vec::new(),
        progress: options.progress.clone(),
    };
    let mut prepared = prepare(
        study_dir,
        options.as_of,
        &options.limits,
        Some(&options.out),
        options.audit,
        options.no_cache,
        &mut clock,
    )?;
    if options.deny_warnings && !prepared.warnings.is_empty() {
        return Err(Failure::new(
            std::mem::take(&mut prepared.warnings)
                .into_iter()
                .map(Diagnostic::into_error)
                .collect(),
        ));
    }
    let dest = options.out.join(&prepared.study.name);
    let pdf_date = source_date_epoch(options.source_date_epoch.as_deref())?.or(prepared.cutoff);
    let typeset_key = typeset_key(&prepared.files, pdf_date);
    // The Typst sources, assets and date are unchanged: the previous PDF is this build's PDF.
    let previous = match options.formats.pdf && !options.no_cache {
        true => previous_pdf(&dest, &typeset_key),
        false => None,
    };
    let must_typeset = options.formats.pdf && previous.is_none();
    let prepared_ref = &prepared;
    let dest_ref = &dest;
    let (mut outputs, staged) =
        std::thread::scope(|scope| -> Result<(OutputFiles, Option<Staged>)> {
            // Typesetting is most of a build: the other outputs are made, and written to the staging
            // folder, meanwhile (a failed build drops the staging folder; `dest` is untouched).
            let typeset_at = clock.timings.len();
            let typesetting = must_typeset.then(|| {
                if let Some(progress) = &clock.progress {
                    (progress.0)("typeset");
                }
                scope.spawn(move || {
                    let start = Instant::now();
                    let pdf =
                        typeset::compile_pdf(&prepared_ref.files, MAIN_FILE, pdf_date, dest_ref);
                    (pdf, start.elapsed())
                })
            });
            let others = other_outputs(prepared_ref, options, &mut clock);
            let staged = match (&others, &typesetting) {
                (Ok(others), Some(_)) => Some(clock.time("write (during typeset)", || {
                    let mut staged = Staged::new(dest_ref)?;
                    for (path, bytes) in &others.files {
                        staged.write(path, bytes)?;
                    }
                    Ok::<_, Failure>(staged)
                })),
                _ => None,
            };
            let pdf = match typesetting {
                Some(handle) => {
                    // What is left to wait for, on the progress line.
                    if let Some(progress) = &clock.progress {
                        (progress.0)("typeset");
                    }
                    let (pdf, took) = handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    clock
                        .timings
                        .insert(typeset_at, ("typeset".to_string(), took));
                    Some(pdf.map_err(|f| keep_failed_sources(f, &prepared_ref.files, dest_ref))?)
                }
                None => {
                    if previous.is_some() {
                        clock.timings.insert(
                            typeset_at,
                            ("typeset (unchanged, reused)".into(), Duration::ZERO),
                        );
                    }
                    previous
                }
            };
            let mut outputs = others?;
            let staged = staged.transpose()?;
            if let Some(pdf) = pdf {
                outputs.insert("manuscript.pdf", pdf);
            }
            Ok((outputs, staged))
        })?;
    let provenance = provenance_json(&prepared, options, &outputs)?;
    // The PDF, and the records that name it, are the files written after typesetting.
    let mut late = vec!["manuscript.pdf".to_string(), "provenance.json".to_string()];
    outputs.insert("provenance.json", provenance);
    // The typesetting record goes with the block cache (neither is in the provenance record: they
    // are build accelerators).
    if prepared.cache.is_some() {
        let pdf_hash = sha256_hex(
            outputs
                .files
                .get("manuscript.pdf")
                .map(Vec::as_slice)
                .unwrap_or_default(),
        );
        let record = format!("{}/typeset.json", cache::CACHE_DIR);
        // Sealed like the block cache: a PDF is reused only if this user's galley typeset it.
        if let Some(seal) = typeset_seal(&typeset_key, &pdf_hash) {
            outputs.insert(
                record.clone(),
                serde_json::to_vec(
                    &serde_json::json!({"key": typeset_key, "pdf_sha256": pdf_hash, "seal": seal}),
                )
                .unwrap_or_default(),
            );
            late.push(record);
        }
    }
    // Last: the marker lists every file of the folder (and marks it as galley's to replace).
    outputs.insert(
        output::MARKER,
        output::marker(&prepared.study.name, &outputs),
    );
    late.push(output::MARKER.to_string());
    if output::unchanged(&dest, &outputs) {
        // A staging folder made during typesetting is dropped, and removed, unused.
        clock
            .timings
            .push(("write (unchanged, skipped)".to_string(), Duration::ZERO));
    } else {
        match staged {
            Some(mut staged) => clock.time("write", || {
                for path in &late {
                    if let Some(bytes) = outputs.files.get(path) {
                        staged.write(path, bytes)?;
                    }
                }
                staged.commit()
            })?,
            None => clock.time("write", || output::write_atomically(&dest, &outputs))?,
        }
    }
    let mut timings = clock.timings;
    let position = timings
        .iter()
        .position(|(s, _)| s == "analysis")
        .map_or(timings.len(), |i| i + 1);
    for (i, (id, d, cached)) in prepared.analysis.timings.iter().enumerate() {
        let label = if *cached {
            format!("  block {id} (cached)")
        } else {
            format!("  block {id}")
        };
        timings.insert(position + i, (label, *d));
    }
    let cache = prepared.cache.take().unwrap_or_default();
    Ok(BuildReport {
        output_dir: dest,
        files: outputs
            .files
            .keys()
            .filter(|f| !f.starts_with(cache::CACHE_DIR) && f.as_str() != output::MARKER)
            .cloned()
            .collect(),
        warnings: prepared.warnings,
        timings,
        total: started.elapsed(),
        reproduction: prepared.reproduction,
        blocks_cached: cache.hits,
        blocks_run: cache.misses,
    })
}

/// The outputs besides the PDF and the records that name it (provenance, the typesetting record):
/// the Typst sources and assets, the HTML manuscript, results, tables, the reproduction and the trail,
/// and the block cache.
fn other_outputs(
    prepared: &Prepared,
    options: &BuildOptions,
    clock: &mut Stopwatch,
) -> Result<OutputFiles> {
    let mut outputs = OutputFiles::default();
    for (path, bytes) in prepared.files.iter() {
        outputs.insert(path.clone(), bytes.clone());
    }
    if options.formats.html {
        let html = clock.time("html", || crate::render::html::render(prepared))?;
        outputs.insert("manuscript.html", html);
    }
    outputs.insert("results.json", results_json(&prepared.analysis)?);
    for result in prepared.analysis.results.values() {
        for table in &result.artifacts.tables {
            outputs.insert(format!("tables/{}.csv", table.name), table.to_csv());
        }
    }
    if let Some(rows) = &prepared.reproduction {
        outputs.insert("reproduction.json", reproduction_json(rows)?);
    }
    outputs.insert("trail.json", trail_json(&prepared.trail)?);
    if let Some(cache) = &prepared.cache {
        for (path, bytes) in cache.files() {
            outputs.insert(path, bytes.clone());
        }
    }
    Ok(outputs)
}

/// A hash of everything typesetting reads: the Typst sources and assets, and the date.
fn typeset_key(files: &FileSet, date: Option<Date>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(format!("{date:?}").as_bytes());
    for (path, bytes) in files.iter() {
        h.update((path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    hex::encode(h.finalize())
}

/// The previous build's PDF, if it was typeset from exactly these sources and is intact.
fn previous_pdf(dest: &Path, key: &str) -> Option<Vec<u8>> {
    // Regular files only: a link planted in the output folder is not followed.
    let record: serde_json::Value =
        serde_json::from_slice(&crate::study::sandbox::read_regular_file(
            &dest.join(cache::CACHE_DIR).join("typeset.json"),
        )?)
        .ok()?;
    if record.get("key")?.as_str()? != key {
        return None;
    }
    let pdf_hash = record.get("pdf_sha256")?.as_str()?;
    if Some(record.get("seal")?.as_str()?) != typeset_seal(key, pdf_hash).as_deref() {
        return None;
    }
    let pdf = crate::study::sandbox::read_regular_file(&dest.join("manuscript.pdf"))?;
    (pdf_hash == sha256_hex(&pdf)).then_some(pdf)
}

/// The seal of a typesetting record (`cache::seal`): binds the sources' key to the PDF's hash.
fn typeset_seal(key: &str, pdf_sha256: &str) -> Option<String> {
    cache::seal(&[b"typeset", key.as_bytes(), pdf_sha256.as_bytes()])
}

/// Validate everything and run the analysis without typesetting or writing (`galley check`).
pub fn check(study_dir: &Path, as_of: Option<Date>, limits: &[String]) -> Result<Vec<Diagnostic>> {
    let mut clock = Stopwatch {
        timings: Vec::new(),
        progress: None,
    };
    prepare(study_dir, as_of, limits, None, false, false, &mut clock).map(|p| p.warnings)
}

fn prepare(
    study_dir: &Path,
    as_of: Option<Date>,
    limits: &[String],
    out_root: Option<&Path>,
    audit: bool,
    no_cache: bool,
    clock: &mut Stopwatch,
) -> Result<Prepared> {
    let study = clock.time("load study", || Study::load(study_dir, limits))?;
    if let Some(out) = out_root {
        crate::output::check_output(&study.root, out, &out.join(&study.name))?;
    }
    let mut cache = out_root.map(|root| match no_cache {
        true => BlockCache::default(),
        false => BlockCache::load(&root.join(&study.name)),
    });
    let cutoff = as_of.or(study.cutoff);
    let tables = clock.time("load data", || load_tables(&study))?;
    let document = clock.time("parse manuscript", || {
        Document::parse(study.abstract_file.as_ref(), &study.manuscript_files)
    })?;
    let published = match &study.published_file {
        Some(f) => Some(Published::parse(f.text()?, &f.display)?),
        None => None,
    };
    let block_inputs = block_inputs(&document, &tables);
    let settings = AnalysisSettings {
        seed: study.manifest.study.seed,
        cutoff,
        format: study.manifest.format.clone(),
        published: published.clone(),
        limits: study.limits.clone(),
    };
    let analysis = clock.time("analysis", || {
        analysis::run_all(&document, tables, &settings, cache.as_mut())
    })?;
    let block_inputs = complete_block_inputs(block_inputs, &analysis);
    let mut warnings: Vec<Diagnostic> = analysis
        .results
        .values()
        .flat_map(|r| r.warnings.iter().cloned())
        .collect();
    let reproduction = match &published {
        Some(p) => {
            let results: serde_json::Map<String, serde_json::Value> = analysis
                .results
                .iter()
                .map(|(id, r)| (id.clone(), r.value.clone()))
                .collect();
            match published::compare(p, &serde_json::Value::Object(results)) {
                Ok(rows) => Some(rows),
                Err(message) => {
                    let file = study
                        .published_file
                        .as_ref()
                        .map(|f| f.display.clone())
                        .unwrap_or_default();
                    return Err(Diagnostic::error(message).in_file(file).into());
                }
            }
        }
        None => None,
    };
    let (mut files, trail) = clock.time("render", || {
        assemble(&study, &document, &analysis, cutoff, audit, &mut warnings)
    })?;
    if !study.previous_files.is_empty() {
        changes_appendix(&study, &analysis, &trail, cutoff, &mut files)?;
    }
    Ok(Prepared {
        study,
        cutoff,
        analysis,
        files,
        warnings,
        reproduction,
        trail,
        block_inputs,
        cache,
    })
}

fn load_tables(study: &Study) -> Result<IndexMap<String, Dataset>> {
    let mut loaded: IndexMap<String, (Dataset, PathBuf)> = IndexMap::new();
    let mut problems = Vec::new();
    for table in &study.tables {
        let text = match table.file.text() {
            Ok(t) => t,
            Err(d) => {
                problems.push(d);
                continue;
            }
        };
        let schema = TableSchema {
            name: &table.name,
            missing: &table.spec.missing,
            columns: &table.spec.columns,
        };
        match dataset::load_csv(text, &table.file.display, &schema) {
            Ok(ds) => {
                loaded.insert(table.name.clone(), (ds, table.file.display.clone()));
            }
            Err(f) => problems.extend(f.diagnostics),
        }
    }
    if !problems.is_empty() {
        return Err(Failure::new(problems));
    }
    let schemas = study
        .tables
        .iter()
        .map(|t| (t.name.clone(), t.spec.columns.clone()))
        .collect();
    dataset::check_foreign_keys(&loaded, &schemas)?;
    Ok(loaded
        .into_iter()
        .map(|(name, (ds, _))| (name, ds))
        .collect())
}

/// The template context: every block's result by id, and `study`.
pub(crate) fn template_context(study: &Study, analysis: &Analysis, cutoff: Option<Date>) -> Value {
    let mut map = serde_json::Map::new();
    for (id, result) in &analysis.results {
        map.insert(id.clone(), result.value.clone());
    }
    map.insert(
        "study".into(),
        serde_json::json!({
            "title": study.manifest.study.title,
            "cutoff": cutoff.map(|c| c.to_string()),
            "seed": study.manifest.study.seed,
            "name": study.name,
        }),
    );
    Value::from_serialize(serde_json::Value::Object(map))
}

/// Render templates, convert Markdown to Typst, and gather the output folder's Typst sources and assets.
fn assemble(
    study: &Study,
    document: &Document,
    analysis: &Analysis,
    cutoff: Option<Date>,
    audit: bool,
    warnings: &mut Vec<Diagnostic>,
) -> Result<(FileSet, Vec<trail::TrailEntry>)> {
    let env = template::environment(&study.manifest.format);
    let context = template_context(study, analysis, cutoff);
    let results_json = serde_json::to_value(&context).unwrap_or_default();
    let mut problems = Vec::new();
    let mut trail_entries = Vec::new();
    let lint = &study.manifest.lint;
    // In audit mode each file is rendered with its expressions marked by their trail index.
    let mut instrumented: Vec<String> = Vec::new();
    let file_limit = |source: &crate::study::manuscript::SourceFile| {
        study.limits.template_limit(
            format!("evaluating the templates of `{}`", source.relative),
            Some(Location::file(&source.file)),
        )
    };
    for source in document.abstract_file.iter().chain(document.files.iter()) {
        let _watch = limits::watch(file_limit(source));
        instrumented.push(if audit {
            trail::instrument(&source.template, trail_entries.len())
        } else {
            source.template.clone()
        });
        trail_entries.extend(trail::template_entries(
            &env,
            &source.template,
            &source.relative,
            1,
            "prose",
            &context,
            &results_json,
        ));
        if lint.hand_typed_numbers {
            warnings.extend(trail::lint_numbers(
                &source.template,
                &source.file,
                &lint.allow_numbers,
            ));
        }
    }

    // 1. Prose templates.
    let mut rendered = Vec::new();
    for (source, template_text) in document
        .abstract_file
        .iter()
        .chain(document.files.iter())
        .zip(&instrumented)
    {
        let _watch = limits::watch(file_limit(source));
        match template::render(
            &env,
            &source.relative,
            template_text,
            &source.file,
            &context,
        ) {
            Ok(text) => rendered.push((source, text)),
            Err(d) => problems.push(d),
        }
    }
    if !problems.is_empty() {
        return Err(Failure::new(problems));
    }

    // 2. Labels and citation keys that references may point to.
    let mut labels: HashSet<String> = HashSet::new();
    let mut sections: HashSet<String> = HashSet::new();
    for (_, text) in &rendered {
        sections.extend(typst::heading_labels(text));
    }
    for result in analysis.results.values() {
        labels.extend(
            result
                .artifacts
                .figures
                .iter()
                .filter_map(|f| f.label.clone()),
        );
        labels.extend(
            result
                .artifacts
                .tables
                .iter()
                .filter_map(|t| t.label.clone()),
        );
    }
    let citations: HashSet<String> = study
        .bibliography_index
        .as_ref()
        .map(|index| index.keys())
        .unwrap_or_default();

    // 3. Each block's figures and tables, with captions rendered and converted.
    let mut files = FileSet::default();
    let mut block_markup: HashMap<usize, String> = HashMap::new();
    let empty: HashMap<usize, String> = HashMap::new();
    let inline_ctx = ConvertContext {
        blocks: &empty,
        labels: &labels,
        citations: &citations,
        sections: &sections,
        max_depth: study.limits.markdown_depth,
    };
    let caption_warnings = std::cell::RefCell::new(Vec::new());
    for (index, block) in document.blocks.iter().enumerate() {
        let Some(result) = analysis.results.get(&block.id) else {
            continue;
        };
        let location = Location::line(&block.file, block.line);
        let _watch = limits::watch(study.limits.template_limit(
            format!("evaluating the captions and notes of block `{}`", block.id),
            Some(location.clone()),
        ));
        let mut markup = String::new();
        let inline = |text: &str| -> std::result::Result<String, Diagnostic> {
            let rendered = template::render_inline(&env, text, &context, &location)?;
            let (typst, diags) = typst::inline_to_typst(&rendered, &block.file, &inline_ctx);
            let (errors, notes): (Vec<Diagnostic>, Vec<Diagnostic>) =
                diags.into_iter().partition(|d| d.is_error());
            // Warnings (a refused link) are reported at the block, as errors are.
            caption_warnings
                .borrow_mut()
                .extend(notes.into_iter().map(|d| d.at(location.clone())));
            match errors.into_iter().next() {
                Some(d) => Err(d.at(location.clone())),
                None => Ok(typst),
            }
        };
        let caption_trail = |text: &str| {
            trail::template_entries(
                &env,
                text,
                &block.relative,
                block.line,
                "caption",
                &context,
                &results_json,
            )
        };
        // A table of every patient would typeset into hundreds of pages (and minutes); its CSV
        // under tables/ is the place for it.
        if let Some(table) = result
            .artifacts
            .tables
            .iter()
            .find(|t| t.rows.len() > study.limits.table_rows)
        {
            problems.push(
                Diagnostic::error(format!(
                    "the table of block `{}` has {} rows, more than the limit of {} rows in the manuscript (`table_rows`)",
                    block.id,
                    table.rows.len(),
                    study.limits.table_rows
                ))
                .at(location.clone())
                .hint("tabulate fewer groups, or drop [table] and report the data as a supplement; if the table is intended, raise table_rows under [limits] in study.toml"),
            );
            continue;
        }
        for table in &result.artifacts.tables {
            trail_entries.extend(caption_trail(&table.caption));
            for note in &table.notes {
                trail_entries.extend(caption_trail(note));
            }
            trail_entries.extend(trail::table_entries(
                table,
                &block.id,
                &block.relative,
                block.line,
            ));
        }
        for figure in &result.artifacts.figures {
            trail_entries.extend(caption_trail(&figure.caption));
            match inline(&figure.caption) {
                Ok(caption) => markup.push_str(&typst::figure_markup(figure, &caption)),
                Err(d) => problems.push(d),
            }
            files.insert(
                format!("figures/{}.svg", figure.name),
                figure.svg.as_bytes().to_vec(),
            );
        }
        for table in &result.artifacts.tables {
            let caption = inline(&table.caption);
            let notes: std::result::Result<Vec<String>, Diagnostic> =
                table.notes.iter().map(|n| inline(n)).collect();
            match (caption, notes) {
                (Ok(caption), Ok(notes)) => {
                    markup.push_str(&typst::table_markup(table, &caption, &notes))
                }
                (Err(d), _) | (_, Err(d)) => problems.push(d),
            }
        }
        if !markup.is_empty() {
            block_markup.insert(index, markup);
        }
    }

    warnings.extend(caption_warnings.into_inner());

    // 4. Prose to Typst.
    let ctx = ConvertContext {
        blocks: &block_markup,
        labels: &labels,
        citations: &citations,
        sections: &sections,
        max_depth: study.limits.markdown_depth,
    };
    let mut abstract_typst = None;
    let mut body = String::new();
    for (source, text) in &rendered {
        let (typst, diags) = typst::markdown_to_typst(text, &source.file, &ctx);
        problems.extend(diags.iter().filter(|d| d.is_error()).cloned());
        warnings.extend(diags.into_iter().filter(|d| !d.is_error()));
        if document
            .abstract_file
            .as_ref()
            .is_some_and(|a| std::ptr::eq(a, *source))
        {
            abstract_typst = Some(typst);
        } else {
            body.push_str(&format!("// ---- {} ----\n", source.relative));
            body.push_str(&typst);
        }
    }
    if !problems.is_empty() {
        return Err(Failure::new(problems));
    }
    if audit {
        body.push_str(&trail::appendix_markup(&trail_entries));
    }

    // 5. The main file, the template, the bibliography.
    // Only the cited entries, their links checked (`bibliography.rs`).
    let bibliography = match (&study.bibliography, &study.bibliography_index) {
        (Some(bib), Some(index)) => {
            let text = crate::study::bibliography::utf8(&bib.bytes, &bib.display, "bibliography")?;
            let mut cited = crate::study::bibliography::cited_keys(&body);
            cited.extend(crate::study::bibliography::cited_keys(
                abstract_typst.as_deref().unwrap_or_default(),
            ));
            let selected = index.select(text, &cited)?;
            warnings.extend(selected.warnings);
            let name = format!("references.{}", index.format.extension());
            files.insert(name.clone(), selected.text.into_bytes());
            Some(name)
        }
        _ => None,
    };
    let style = match &study.csl_file {
        Some(csl) => {
            files.insert("style.csl", csl.bytes.clone());
            "style.csl".to_string()
        }
        None => study.manifest.manuscript.csl.clone(),
    };
    files.insert(TEMPLATE_FILE, ARTICLE_TEMPLATE.as_bytes().to_vec());
    for t in &study.template_files {
        let name = Path::new(&t.relative)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.insert_from(name, t.bytes.clone(), t.display.clone());
    }
    let main = main_source(
        study,
        cutoff,
        abstract_typst.as_deref(),
        &body,
        bibliography.as_deref(),
        &style,
    );
    files.insert(MAIN_FILE, main.into_bytes());
    Ok((files, trail_entries))
}

fn main_source(
    study: &Study,
    cutoff: Option<Date>,
    abstract_typst: Option<&str>,
    body: &str,
    bibliography: Option<&str>,
    style: &str,
) -> String {
    let m = &study.manifest;
    let affiliation_keys: Vec<&String> = m.affiliations.keys().collect();
    let authors: Vec<String> = m
        .authors
        .iter()
        .map(|a| {
            let numbers: Vec<String> = a
                .affiliations
                .iter()
                .filter_map(|k| {
                    affiliation_keys
                        .iter()
                        .position(|x| *x == k)
                        .map(|i| (i + 1).to_string())
                })
                .collect();
            format!(
                "(name: {}, degrees: {}, affiliations: ({}), email: {}, corresponding: {})",
                string_literal(&a.name),
                a.degrees.as_deref().map_or("none".into(), string_literal),
                numbers.iter().map(|n| format!("{n},")).collect::<String>(),
                a.email.as_deref().map_or("none".into(), string_literal),
                a.corresponding
            )
        })
        .collect();
    let affiliations: Vec<String> = m
        .affiliations
        .values()
        .map(|a| format!("[{}]", escape_markup(a)))
        .collect();
    let keywords: Vec<String> = m.study.keywords.iter().map(|k| string_literal(k)).collect();
    let optional = |v: &Option<String>| {
        v.as_deref()
            .map_or("none".to_string(), |t| format!("[{}]", escape_markup(t)))
    };
    let date = cutoff.map_or("none".to_string(), |d| {
        format!(
            "datetime(year: {}, month: {}, day: {})",
            d.year(),
            d.month(),
            d.day()
        )
    });
    let mut s = String::new();
    s.push_str("// Generated by galley from the study folder; edit the study, not this file.\n");
    s.push_str(&format!(
        "#import \"{TEMPLATE_FILE}\": article, booktable\n"
    ));
    // The link policy for every link of the PDF, whatever makes it (`links.rs`).
    s.push_str(crate::study::links::TYPST_SHOW_RULE);
    s.push_str("#show: article.with(\n");
    s.push_str(&format!("  title: [{}],\n", escape_markup(&m.study.title)));
    s.push_str(&format!(
        "  short-title: {},\n",
        optional(&m.study.short_title)
    ));
    s.push_str(&format!(
        "  authors: ({}),\n",
        authors.iter().map(|a| format!("{a},")).collect::<String>()
    ));
    s.push_str(&format!(
        "  affiliations: ({}),\n",
        affiliations
            .iter()
            .map(|a| format!("{a},"))
            .collect::<String>()
    ));
    s.push_str(&format!(
        "  keywords: ({}),\n",
        keywords.iter().map(|k| format!("{k},")).collect::<String>()
    ));
    s.push_str(&format!(
        "  data-statement: {},\n",
        optional(&m.study.data_statement)
    ));
    s.push_str(&format!("  venue: {},\n", optional(&m.study.venue)));
    s.push_str(&format!("  date: {date},\n"));
    match abstract_typst {
        Some(a) => s.push_str(&format!("  abstract: [\n{a}\n  ],\n")),
        None => s.push_str("  abstract: none,\n"),
    }
    s.push_str(")\n\n");
    s.push_str(body);
    if let Some(bib) = bibliography {
        s.push_str(&format!(
            "\n#bibliography({}, title: [References], style: {})\n",
            string_literal(bib),
            string_literal(style)
        ));
    }
    s
}

/// A Typst error points into generated sources: keep them in a temporary folder (never under the
/// output root, which a failed build must leave untouched) so the reported file and line are real.
fn keep_failed_sources(failure: Failure, files: &FileSet, dest: &Path) -> Failure {
    let Ok(dir) = tempfile::Builder::new().prefix("galley-failed-").tempdir() else {
        return failure;
    };
    let dir = dir.keep();
    for (path, bytes) in files.iter() {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(&p, bytes);
    }
    let diagnostics = failure
        .diagnostics
        .into_iter()
        .map(|mut d| {
            if let Some(loc) = &mut d.location
                && let Ok(rel) = loc.file.strip_prefix(dest)
                && files
                    .get(&rel.to_string_lossy().replace('\\', "/"))
                    .is_some()
            {
                loc.file = dir.join(rel);
                d.hints.push(format!(
                    "the generated Typst sources of this failed build are in `{}`",
                    dir.display()
                ));
            }
            d
        })
        .collect();
    Failure::new(diagnostics)
}

/// `SOURCE_DATE_EPOCH` (the reproducible-builds convention), when set, dates the PDF.
fn source_date_epoch(value: Option<&str>) -> Result<Option<Date>> {
    match value {
        None => Ok(None),
        Some(text) => {
            let seconds: i64 = text.trim().parse().map_err(|_| {
                Diagnostic::error(format!(
                    "SOURCE_DATE_EPOCH is `{text}`, expected seconds since 1970-01-01"
                ))
            })?;
            let ts = jiff::Timestamp::from_second(seconds).map_err(|e| {
                Diagnostic::error(format!("SOURCE_DATE_EPOCH `{text}` is out of range: {e}"))
            })?;
            Ok(Some(ts.to_zoned(jiff::tz::TimeZone::UTC).date()))
        }
    }
}

/// The "Changes since the previous report" appendix: this build's records against the previous
/// build's records the manifest names (`[manuscript] previous`), appended to the manuscript.
fn changes_appendix(
    study: &Study,
    analysis: &Analysis,
    trail: &[trail::TrailEntry],
    cutoff: Option<Date>,
    files: &mut FileSet,
) -> Result<()> {
    use crate::records::format::Record;
    let record = |kind: Record| -> Result<serde_json::Value> {
        let name = kind.file();
        let file = study
            .previous_files
            .iter()
            .find(|f| f.relative.ends_with(name))
            .ok_or_else(|| Diagnostic::error(format!("the previous report has no {name}")))?;
        kind.read(&file.bytes, &file.display)
    };
    let old = crate::records::diff::ReportFiles {
        provenance: record(Record::Provenance)?,
        results: record(Record::Results)?,
        trail: record(Record::Trail)?,
    };
    let inputs: serde_json::Map<String, serde_json::Value> = study
        .inputs()
        .into_iter()
        .filter(|f| {
            !study
                .previous_files
                .iter()
                .any(|p| p.relative == f.relative)
        })
        .map(|f| {
            (
                f.relative.clone(),
                serde_json::json!({"sha256": sha256_hex(&f.bytes)}),
            )
        })
        .collect();
    let new = crate::records::diff::ReportFiles {
        provenance: serde_json::json!({"inputs": inputs, "cutoff": cutoff.map(|d| d.to_string())}),
        results: results_record(analysis),
        trail: trail_record(trail)?,
    };
    let report = crate::records::diff::diff_reports(&old, &new);
    let previous = study
        .manifest
        .manuscript
        .previous
        .as_ref()
        .map(|p| p.get_ref().clone())
        .unwrap_or_default();
    let mut main = String::from_utf8_lossy(files.get(MAIN_FILE).unwrap_or_default()).into_owned();
    let appendix = report.appendix_markup(&previous);
    // Before the bibliography, which closes the document.
    match main.rfind("\n#bibliography(") {
        Some(at) => main.insert_str(at, &appendix),
        None => main.push_str(&appendix),
    }
    files.insert(MAIN_FILE, main.into_bytes());
    Ok(())
}
