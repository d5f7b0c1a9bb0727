//! The build, as a readable list of timed stages:
//! load study -> load data -> parse manuscript -> run analysis -> render prose -> assemble Typst
//! -> typeset PDF -> write outputs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use jiff::civil::Date;

use crate::analysis::cache::{self, BlockCache};
mod records;

use crate::analysis::{self, Analysis, AnalysisSettings};
use crate::diagnostics::{Diagnostic, Failure, Result};
use crate::document::ir::{Block, CslStyle, FloatBody, Manuscript};
use crate::document::{self, appendix, trail};
use crate::output::{self, OutputFiles, Staged};
use crate::render::typeset::{self, FileSet};
use crate::study::Study;
use crate::study::dataset::{self, Dataset, TableSchema};
use crate::study::manuscript::Document;
use crate::study::published::{self, Published};
pub use records::BlockInputs;
use records::{
    block_inputs, complete_block_inputs, provenance_json, reproduction_json, results_json,
    results_record, sha256_hex, trail_json, trail_record,
};

use crate::render::typst::{ARTICLE_TEMPLATE, MAIN_FILE, TEMPLATE_FILE};

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
    /// Tell the progress line that `stage` is under way.
    fn announce(&self, stage: &str) {
        if let Some(progress) = &self.progress {
            (progress.0)(stage);
        }
    }

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
    /// The typed manuscript every renderer reads.
    pub manuscript: Manuscript,
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
    let (mut outputs, staged) = outputs_and_pdf(
        &prepared,
        options,
        &dest,
        pdf_date,
        &typeset_key,
        &mut clock,
    )?;
    let late = late_records(&prepared, options, &typeset_key, &mut outputs)?;
    write(&dest, &outputs, staged, &late, &mut clock)?;
    Ok(report(prepared, dest, outputs, clock, started))
}

/// Every output, the PDF too. Typesetting is most of a build: it runs on its own thread while the
/// other outputs are made and written to a staging folder (a failed build drops the staging
/// folder; `dest` is untouched). The previous PDF is reused when the Typst sources, assets and
/// date are unchanged.
fn outputs_and_pdf(
    prepared: &Prepared,
    options: &BuildOptions,
    dest: &Path,
    pdf_date: Option<Date>,
    typeset_key: &str,
    clock: &mut Stopwatch,
) -> Result<(OutputFiles, Option<Staged>)> {
    let previous = match options.formats.pdf && !options.no_cache {
        true => previous_pdf(dest, typeset_key),
        false => None,
    };
    let must_typeset = options.formats.pdf && previous.is_none();
    std::thread::scope(|scope| {
        let typeset_at = clock.timings.len();
        let typesetting = must_typeset.then(|| {
            clock.announce("typeset");
            scope.spawn(move || {
                let start = Instant::now();
                let pdf = typeset::compile_pdf(&prepared.files, MAIN_FILE, pdf_date, dest);
                (pdf, start.elapsed())
            })
        });
        let others = other_outputs(prepared, options, clock);
        let staged = match (&others, &typesetting) {
            (Ok(others), Some(_)) => Some(clock.time("write (during typeset)", || {
                let mut staged = Staged::new(dest)?;
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
                clock.announce("typeset");
                let (pdf, took) = handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                clock
                    .timings
                    .insert(typeset_at, ("typeset".to_string(), took));
                Some(pdf.map_err(|f| keep_failed_sources(f, &prepared.files, dest))?)
            }
            None => {
                if previous.is_some() {
                    let reused = ("typeset (unchanged, reused)".into(), Duration::ZERO);
                    clock.timings.insert(typeset_at, reused);
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
    })
}

/// The records that name the PDF, made after typesetting: the provenance record, the typesetting
/// record (kept with the block cache; neither is in the provenance record: they are build
/// accelerators), and last the marker, which lists every file of the folder (and marks it as
/// galley's to replace). Returns the files written after typesetting.
fn late_records(
    prepared: &Prepared,
    options: &BuildOptions,
    typeset_key: &str,
    outputs: &mut OutputFiles,
) -> Result<Vec<String>> {
    let provenance = provenance_json(prepared, options, outputs)?;
    let mut late = vec!["manuscript.pdf".to_string(), "provenance.json".to_string()];
    outputs.insert("provenance.json", provenance);
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
        if let Some(seal) = typeset_seal(typeset_key, &pdf_hash) {
            let json =
                serde_json::json!({"key": typeset_key, "pdf_sha256": pdf_hash, "seal": seal});
            outputs.insert(record.clone(), json.to_string().into_bytes());
            late.push(record);
        }
    }
    outputs.insert(
        output::MARKER,
        output::marker(&prepared.study.name, outputs),
    );
    late.push(output::MARKER.to_string());
    Ok(late)
}

/// Put the outputs in place: the staged folder completed with the `late` files, or everything
/// written atomically; nothing when the folder already holds exactly these bytes.
fn write(
    dest: &Path,
    outputs: &OutputFiles,
    staged: Option<Staged>,
    late: &[String],
    clock: &mut Stopwatch,
) -> Result<()> {
    if output::unchanged(dest, outputs) {
        // A staging folder made during typesetting is dropped, and removed, unused.
        let skipped = ("write (unchanged, skipped)".to_string(), Duration::ZERO);
        clock.timings.push(skipped);
        return Ok(());
    }
    match staged {
        Some(mut staged) => clock.time("write", || {
            for path in late {
                if let Some(bytes) = outputs.files.get(path) {
                    staged.write(path, bytes)?;
                }
            }
            staged.commit()
        }),
        None => clock.time("write", || output::write_atomically(dest, outputs)),
    }
}

/// What the build did, with each block's time listed under the analysis stage.
fn report(
    mut prepared: Prepared,
    dest: PathBuf,
    outputs: OutputFiles,
    clock: Stopwatch,
    started: Instant,
) -> BuildReport {
    let mut timings = clock.timings;
    let position = timings
        .iter()
        .position(|(s, _)| s == "analysis")
        .map_or(timings.len(), |i| i + 1);
    for (i, (id, d, cached)) in prepared.analysis.timings.iter().enumerate() {
        let label = match cached {
            true => format!("  block {id} (cached)"),
            false => format!("  block {id}"),
        };
        timings.insert(position + i, (label, *d));
    }
    let cache = prepared.cache.take().unwrap_or_default();
    BuildReport {
        output_dir: dest,
        files: outputs
            .files
            .into_keys()
            .filter(|f| !f.starts_with(cache::CACHE_DIR) && f.as_str() != output::MARKER)
            .collect(),
        warnings: prepared.warnings,
        timings,
        total: started.elapsed(),
        reproduction: prepared.reproduction,
        blocks_cached: cache.hits,
        blocks_run: cache.misses,
    }
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
        let html = clock.time("render html", || {
            crate::render::html::render(&prepared.manuscript)
        })?;
        outputs.insert("manuscript.html", html);
    }
    outputs.insert("results.json", results_json(&prepared.analysis)?);
    for result in prepared.analysis.results.values() {
        for table in &result.artifacts.tables {
            let csv = table.csv().map_err(Diagnostic::error)?;
            outputs.insert(format!("tables/{}.csv", table.name), csv);
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

/// Everything up to the outputs, without an output folder: the typed manuscript, its Typst files and
/// the records, for a caller that renders or inspects them (the renderers' parity test).
pub fn prepare_only(study_dir: &Path, options: &BuildOptions) -> Result<Prepared> {
    let mut clock = Stopwatch {
        timings: Vec::new(),
        progress: None,
    };
    prepare(
        study_dir,
        options.as_of,
        &options.limits,
        None,
        options.audit,
        true,
        &mut clock,
    )
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
    let built = clock.time("document", || {
        document::build(&study, &document, &analysis, cutoff)
    })?;
    warnings.extend(built.warnings);
    let document::Built {
        mut manuscript,
        trail,
    } = built.output;
    if audit {
        appendix::audit_trail(&mut manuscript, &trail);
    }
    if !study.previous_files.is_empty() {
        let changes = changes_since_previous(&study, &analysis, &trail, cutoff)?;
        let previous = study
            .manifest
            .manuscript
            .previous
            .as_ref()
            .map(|p| p.get_ref().clone())
            .unwrap_or_default();
        appendix::changes(&mut manuscript, &changes, &previous);
    }
    let files = clock.time("render typst", || typst_files(&study, &manuscript));
    Ok(Prepared {
        study,
        cutoff,
        analysis,
        manuscript,
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

/// The output folder's Typst sources and assets: the main file written from the manuscript, the
/// article template (or the study's own), the study's template files, the figures, the cited
/// references and the style.
fn typst_files(study: &Study, manuscript: &Manuscript) -> FileSet {
    let mut files = FileSet::default();
    for block in manuscript.top_blocks() {
        if let Block::Floats { floats, .. } = block {
            for float in floats {
                if let FloatBody::Figure(figure) = &float.body {
                    files.insert(
                        format!("figures/{}.svg", figure.name),
                        figure.svg.as_bytes().to_vec(),
                    );
                }
            }
        }
    }
    if let Some(bib) = &manuscript.bibliography {
        files.insert(bib.file.clone(), bib.text.as_bytes().to_vec());
        if let CslStyle::File { file, text } = &bib.style {
            files.insert(file.clone(), text.as_bytes().to_vec());
        }
    }
    files.insert(TEMPLATE_FILE, ARTICLE_TEMPLATE.as_bytes().to_vec());
    for t in &study.template_files {
        let name = Path::new(&t.relative)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.insert_from(name, t.bytes.clone(), t.display.clone());
    }
    files.insert(
        MAIN_FILE,
        crate::render::typst::render(manuscript).into_bytes(),
    );
    files
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

/// What changed since the previous report the manifest names (`[manuscript] previous`): this
/// build's records against that build's.
fn changes_since_previous(
    study: &Study,
    analysis: &Analysis,
    trail: &[trail::TrailEntry],
    cutoff: Option<Date>,
) -> Result<crate::records::diff::DiffReport> {
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
    Ok(crate::records::diff::diff_reports(&old, &new))
}
