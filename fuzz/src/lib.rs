//! Fuzz harness for galley, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and by the
//! regression test that replays every kept input under plain `cargo test`
//! (`tests/suite/fuzz_regressions.rs` includes this file with `#[path]`). One entry point per target,
//! so a crash found by the fuzzer and its regression case run exactly the same code.
//!
//! Each entry point takes the fuzzer's bytes and panics only when galley misbehaves: a panic inside
//! galley, or a broken oracle (a manifest error without a diagnostic, Markdown whose Typst does not
//! compile, plain text that does not show literally, a dataset whose columns disagree in length...).
//! Every input the pipeline would refuse (not UTF-8, say) is simply ignored.
//!
//! Only crates that galley itself depends on are used here (galley, minijinja, serde_json, indexmap,
//! toml, typst, tempfile, hayagriva), so the integration suite can compile this file unchanged.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use galley::analysis::{self, AnalysisSettings, BlockEnv, BlockResult};
use galley::diagnostics::Failure;
use galley::document::ir::{Block, Float, FloatBody, FloatKind, Placement};
use galley::document::markdown::{self, Targets};
use galley::document::template;
use galley::study::dataset::{self, ColumnData, Dataset, TableSchema};
use galley::study::manifest::{ColumnSpec, FormatSection, Manifest};
use galley::study::manuscript::Document;
use galley::study::{InputFile, Study};
use indexmap::IndexMap;

/// The names of the targets, as the folders of `tests/fuzz-corpus/` and of `fuzz/fuzz_targets/`.
pub const TARGETS: &[&str] = &[
    "manifest",
    "csv",
    "markdown",
    "template",
    "analysis",
    "provenance",
    "bibliography",
];

/// Run target `name` on `data` (for the regression replay).
pub fn run(name: &str, data: &[u8]) {
    match name {
        "manifest" => manifest(data),
        "csv" => csv(data),
        "markdown" => markdown(data),
        "template" => template(data),
        "analysis" => analysis(data),
        "provenance" => provenance(data),
        "bibliography" => bibliography(data),
        other => panic!("unknown fuzz target `{other}`"),
    }
}

/// A failure must carry at least one diagnostic, and every diagnostic must render.
fn check_failure(f: &Failure) {
    assert!(!f.diagnostics.is_empty(), "a failure without a diagnostic");
    assert!(
        f.diagnostics.iter().any(|d| d.is_error()),
        "a failure without an error: {f}"
    );
    let text = f.to_string();
    assert!(!text.is_empty());
}

/// Every column as long as the table says.
fn check_dataset(d: &Dataset) {
    for c in &d.columns {
        assert_eq!(
            c.data.len(),
            d.n_rows,
            "column `{}` of `{}` has {} values for {} rows",
            c.name,
            d.name,
            c.data.len(),
            d.n_rows
        );
        for r in 0..d.n_rows {
            if let Some(x) = c.data.number(r) {
                assert!(x.is_finite(), "column `{}` row {r} holds {x}", c.name);
            }
            if let ColumnData::Category { levels, codes } = &*c.data {
                assert!(codes[r].is_none_or(|k| (k as usize) < levels.len()));
            }
        }
    }
    let _ = d.content_hash();
    let _ = d.to_csv();
}

// ---------------------------------------------------------------------------------------------
// 1. study.toml: parsing, then the study's semantic checks (which read the files it names).

/// Files present in the scratch study folder, so manifests that name them get past "not found".
const STUDY_FILES: &[(&str, &str)] = &[
    ("m.md", "# Title\n\nText {{ study.title }}.\n"),
    ("abstract.md", "## Background\n\nA.\n"),
    (
        "p.csv",
        "id,age,sex,alive,date\na,50,female,yes,2020-01-02\nb,,male,no,1899-12-31\n",
    ),
    ("refs.bib", "@article{k, title = {T}, year = {2000}}\n"),
    ("style.csl", "<style/>\n"),
    (
        "published.toml",
        "[[quantity]]\nkey = \"n\"\npublished = 1\nvalue = \"a.n\"\ntolerance = 0\n",
    ),
    ("tpl/article.typ", "#let article(body) = body\n"),
];

fn scratch_study() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Kept for the life of the fuzzing process (a fuzzer calls this millions of times).
        let dir = tempfile::Builder::new()
            .prefix("galley-fuzz-study")
            .tempdir()
            .expect("temporary folder")
            .keep();
        prepare_study(&dir);
        dir
    })
}

/// Write the fixed study files into `dir`.
pub fn prepare_study(dir: &Path) {
    for (name, text) in STUDY_FILES {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// Target `manifest`: `Manifest::parse`, then `Study::load` in a scratch folder, then every table
/// the manifest declares loaded against its schema from the folder's `p.csv`.
pub fn manifest(data: &[u8]) {
    manifest_in(scratch_study(), data)
}

/// [`manifest`] with the study folder given (the regression test uses a fresh one per run).
pub fn manifest_in(dir: &Path, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("study.toml");
    let manifest = match Manifest::parse(text, file) {
        Ok(m) => m,
        Err(f) => return check_failure(&f),
    };
    let _ = format!("{manifest:?}");
    std::fs::write(dir.join("study.toml"), data).expect("write study.toml");
    let study = match Study::load(dir, &[]) {
        Ok(s) => s,
        Err(f) => return check_failure(&f),
    };
    assert!(!study.inputs().is_empty());
    let csv_text = STUDY_FILES[2].1;
    for table in &study.tables {
        let schema = TableSchema {
            name: &table.name,
            missing: &table.spec.missing,
            columns: &table.spec.columns,
        };
        match dataset::load_csv(csv_text, Path::new("p.csv"), &schema) {
            Ok(d) => check_dataset(&d),
            Err(f) => check_failure(&f),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. CSV against a fixed schema, and schema inference.

const CSV_SCHEMA: &str = r#"
id = { type = "string", unique = true, required = true }
age = { type = "integer", min = 0, max = 120 }
weight = { type = "number", min = 0.5, missing = ["NA", ""] }
sex = { type = "category", levels = ["female", "male", " other "] }
alive = { type = "boolean", true = ["Y"], false = ["N", "no"] }
born = { type = "date", min = "1850-01-01", max = 2100-12-31 }
visit = { type = "date", format = "%d/%m/%Y" }
note = { type = "string" }
"#;

fn csv_schema() -> &'static IndexMap<String, toml::Spanned<ColumnSpec>> {
    static SCHEMA: OnceLock<IndexMap<String, toml::Spanned<ColumnSpec>>> = OnceLock::new();
    SCHEMA.get_or_init(|| toml::from_str(CSV_SCHEMA).expect("the fixed schema parses"))
}

/// Target `csv`: `load_csv` with a fixed schema (every column type, bounds, a custom date format,
/// custom missing and boolean spellings) and `infer_csv`. A table that loads must have consistent
/// columns; written back with `to_csv` (and the custom-format column dropped) it loads again to the
/// same values.
pub fn csv(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let missing = vec![String::new()];
    let columns = csv_schema();
    let schema = TableSchema {
        name: "p",
        missing: &missing,
        columns,
    };
    match dataset::load_csv(text, Path::new("p.csv"), &schema) {
        Ok(d) => {
            check_dataset(&d);
            assert_eq!(d.columns.len(), columns.len());
        }
        Err(f) => check_failure(&f),
    }
    match dataset::infer_csv(text, Path::new("x.csv"), "x") {
        Ok(d) => {
            check_dataset(&d);
            // Inference is stable: the table written out infers to the same values.
            let again = dataset::infer_csv(&d.to_csv(), Path::new("x.csv"), "x");
            if let Ok(again) = again {
                check_dataset(&again);
            }
        }
        Err(f) => check_failure(&f),
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Markdown -> Typst: always compiles; plain text shows literally.

/// Stand-ins for what the article template defines, and targets for the references the
/// converter is told about.
const PAGE: &str = "#set page(width: auto, height: auto)\n#set text(hyphenate: false)\n";
const TYPST_PRELUDE: &str = "#let booktable(columns: (), align: (), groups: none, header: (), rows: (), notes: none) = table(columns: columns.len(), ..header.flatten(), ..rows.flatten())\n\
#figure(rect(width: 1cm), caption: [K]) <fig:km>\n";

fn typeset(prelude: &str, markup: &str) -> Result<String, String> {
    let source = format!("{PAGE}{prelude}{markup}");
    let result = galley::render::typeset::compile_text(&source)
        .map_err(|f| format!("{f}\n--- source ---\n{source}"));
    // Typst memoises compilations; a fuzzer compiles millions of different documents.
    ::typst::comemo::evict(2);
    result
}

/// Whitespace as Typst lays it out: runs collapse to one space, none at the ends.
fn normalise(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Target `markdown`. First byte even: the rest is arbitrary Markdown; the Typst it converts to
/// must compile (with the context the pipeline would build: heading labels as sections, one
/// figure label, one block marker). First byte odd: the rest is plain text, backslash-escaped for
/// Markdown; it must compile and show exactly that text.
pub fn markdown(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if text.len() > 4000 {
        return; // Typst's compile time, not galley, would dominate.
    }
    let floats: HashMap<String, FloatKind> = [("fig:km".to_string(), FloatKind::Figure)].into();
    let citations = HashSet::new();
    let limits = galley::study::limits::Limits::default();
    if mode % 2 == 0 {
        let sections: HashSet<String> = markdown::heading_labels(text).into_iter().collect();
        let targets = Targets {
            floats: &floats,
            sections: &sections,
            citations: &citations,
            max_depth: limits.markdown_depth,
        };
        let (blocks, diagnostics) =
            markdown::blocks(text, Path::new("m.md"), &targets, &mut block_zero);
        for d in &diagnostics {
            let _ = d.to_string();
        }
        let markup = galley::render::typst::render_blocks(&blocks);
        if let Err(e) = typeset(TYPST_PRELUDE, &markup) {
            panic!(
                "Markdown converted to Typst that does not compile:\n{e}\n--- markdown ---\n{text:?}"
            );
        }
        // A caption cannot hold a section: its headings are read as text, their ids dropped.
        let no_sections = HashSet::new();
        let caption_targets = Targets {
            sections: &no_sections,
            ..targets
        };
        let (inline, _) = markdown::inlines(text, Path::new("m.md"), &caption_targets);
        let inline = galley::render::typst::render_blocks(&[Block::Plain(inline)]);
        if let Err(e) = typeset(
            TYPST_PRELUDE,
            &format!("#figure(rect(), caption: [{}])", inline.trim()),
        ) {
            panic!(
                "inline Markdown does not compile as a caption:\n{e}\n--- markdown ---\n{text:?}"
            );
        }
    } else {
        // Plain text: one paragraph, printable characters, every ASCII punctuation escaped
        // (CommonMark's backslash escapes), so Markdown must not interpret any of it.
        let plain: String = text
            .chars()
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .filter(|c| !c.is_control() && is_simple_glyph(*c))
            .collect();
        let plain = plain.trim().to_string();
        let mut md = String::new();
        for c in plain.chars() {
            if c.is_ascii_punctuation() {
                md.push('\\');
            }
            md.push(c);
        }
        let sections = HashSet::new();
        let targets = Targets {
            floats: &floats,
            sections: &sections,
            citations: &citations,
            max_depth: limits.markdown_depth,
        };
        let (blocks, diagnostics) =
            markdown::blocks(&md, Path::new("m.md"), &targets, &mut block_zero);
        let markup = galley::render::typst::render_blocks(&blocks);
        assert!(
            diagnostics.is_empty(),
            "escaped plain text gave diagnostics: {diagnostics:?}\n{md:?}"
        );
        let shown = match typeset("", &markup) {
            Ok(s) => s,
            Err(e) => panic!("plain text does not compile:\n{e}\n--- text ---\n{plain:?}"),
        };
        assert_eq!(
            normalise(&shown),
            normalise(&plain),
            "plain text does not show literally\n--- markdown ---\n{md:?}\n--- typst ---\n{markup}"
        );
    }
}

/// The floats of analysis block 0 (a one-cell table), as the pipeline would place them.
fn block_zero(index: usize) -> Option<Block> {
    use galley::analysis::artifacts::{Cell, Row, Table};
    (index == 0).then(|| Block::Floats {
        block: "b0".into(),
        floats: vec![Float {
            kind: FloatKind::Table,
            number: 1,
            label: None,
            caption: Vec::new(),
            notes: Vec::new(),
            body: FloatBody::Table(Table {
                name: "b0".into(),
                caption: String::new(),
                label: None,
                header: vec!["h".into()],
                align: Vec::new(),
                groups: Vec::new(),
                rows: vec![Row::new(vec![Cell::text("block 0")])],
                notes: Vec::new(),
            }),
            placement: Placement::MainText,
        }],
    })
}

/// Characters whose text Typst keeps as written in the laid-out glyph runs: no bidirectional or
/// combining marks (reordered or merged by shaping), no invisible format characters.
fn is_simple_glyph(c: char) -> bool {
    matches!(c,
        ' '..='~'
        | '\u{a0}'..='\u{ac}'
        | '\u{ae}'..='\u{2ff}'
        | '\u{370}'..='\u{3ff}'
        | '\u{400}'..='\u{4ff}'
        | '\u{2010}'..='\u{2027}'
        | '\u{2030}'..='\u{205e}'
        | '\u{2190}'..='\u{22ff}')
}

// ---------------------------------------------------------------------------------------------
// 4. Templates with arbitrary expressions.

fn template_context() -> minijinja::Value {
    minijinja::Value::from_serialize(serde_json::json!({
        "km": {"median": 54.04, "nr": null, "p": 0.0312, "lower": 1.234, "upper": 2.5,
               "groups": [{"level": "A", "n": 10}, {"level": "B", "n": 0}]},
        "deaths": {"n": 15, "pct": 0.6, "levels": {"A": {"n": 9, "pct": 0.6}}},
        "n": 15, "total": 25, "zero": 0, "big": 1e300, "tiny": 1e-300, "neg": -3, "p0": 0.0,
        "text": "a <b> & {{ c }}",
        "study": {"title": "T", "cutoff": "2020-12-31"},
    }))
}

/// Target `template`: the input is a manuscript template rendered with galley's environment
/// (every filter and function) against a fixed context, then as an inline caption. Never a
/// panic; errors are located diagnostics; fuel bounds the time (libFuzzer's -timeout checks it).
pub fn template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (rules_byte, source) = match text.as_bytes().first() {
        Some(&b) if b.is_ascii_digit() => (b, &text[1..]),
        _ => (b'0', text),
    };
    // A leading digit picks the [format] rules: 0 and others the defaults, 1 odd small
    // settings, 2 the extremes study.toml allows.
    let mut rules = FormatSection::default();
    match rules_byte {
        b'1' => {
            rules.percent_digits = 3;
            rules.p_digits = 0;
            rules.p_threshold = 1e-300;
            rules.not_reached = "{{ x }}".into();
            rules.range_separator = String::new();
        }
        b'2' => {
            rules.percent_digits = usize::MAX;
            rules.p_digits = usize::MAX;
            rules.p_threshold = 0.0;
        }
        _ => {}
    }
    let env = template::environment(&rules);
    let ctx = template_context();
    match template::render(&env, "m.md", source, Path::new("m.md"), &ctx) {
        Ok(out) => {
            let _ = out.len();
        }
        Err(d) => {
            assert!(d.is_error());
            assert!(
                d.location.is_some(),
                "template error without a location: {d}"
            );
            let _ = d.to_string();
        }
    }
    let location = galley::diagnostics::Location::line("m.md", 3);
    if let Err(d) = template::render_inline(&env, source, &ctx, &location) {
        let _ = d.to_string();
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Analysis blocks: Document::parse on arbitrary Markdown, then every block run.

const PATIENTS: &str = "id,age,sex,alive,start,end,weight,group\n\
p1,54,female,yes,2015-01-10,2018-03-01,70.5,1\n\
p2,61,male,no,2015-02-11,2020-06-30,,2\n\
p3,47,female,yes,1899-05-02,1901-01-15,55,1\n\
p4,,male,,2099-03-20,2101-09-09,80.25,\n\
p5,70,female,no,2016-03-20,2016-03-20,-1,2\n";

const PATIENTS_SCHEMA: &str = r#"
id = { type = "string" }
age = { type = "integer" }
sex = { type = "category", levels = ["female", "male"] }
alive = { type = "boolean" }
start = { type = "date" }
end = { type = "date" }
weight = { type = "number" }
group = { type = "integer" }
"#;

fn patients() -> &'static Dataset {
    static DATA: OnceLock<Dataset> = OnceLock::new();
    DATA.get_or_init(|| {
        let columns: IndexMap<String, toml::Spanned<ColumnSpec>> =
            toml::from_str(PATIENTS_SCHEMA).expect("schema");
        let missing = vec![String::new()];
        let schema = TableSchema {
            name: "patients",
            missing: &missing,
            columns: &columns,
        };
        dataset::load_csv(PATIENTS, Path::new("patients.csv"), &schema).expect("fixed data")
    })
}

fn published() -> &'static galley::study::published::Published {
    static P: OnceLock<galley::study::published::Published> = OnceLock::new();
    P.get_or_init(|| {
        galley::study::published::Published::parse(
            "[[quantity]]\nkey = \"n\"\npublished = 5\nvalue = \"a.n\"\ntolerance = 0\n\
             [[quantity]]\nkey = \"m\"\npublished = 0.5\nvalue = \"b.levels.female.pct\"\nrange = [0.1, 0.9]\n",
            Path::new("published.toml"),
        )
        .expect("fixed published values")
    })
}

/// Target `analysis`: the input is a manuscript; `Document::parse` cuts out its analysis blocks
/// (the template keeps every line), and each block runs with `run_block` on a small table with
/// missing values and dates before 1900 and after 2100, blocks seeing the datasets and results
/// of the blocks before them. Never a panic: a failing block is a located diagnostic.
pub fn analysis(data: &[u8]) {
    let _ = analysis_results(data);
}

/// [`analysis`], returning each block's result (or its error message) by block id, in order.
pub fn analysis_results(data: &[u8]) -> IndexMap<String, Result<serde_json::Value, String>> {
    let mut outcome = IndexMap::new();
    let input = InputFile {
        relative: "m.md".into(),
        display: "m.md".into(),
        bytes: data.to_vec(),
    };
    let document = match Document::parse(None, std::slice::from_ref(&input)) {
        Ok(d) => d,
        Err(f) => {
            check_failure(&f);
            return outcome;
        }
    };
    if let Ok(text) = std::str::from_utf8(data) {
        let template = &document.files[0].template;
        assert_eq!(
            template.matches('\n').count(),
            text.matches('\n').count(),
            "the template must keep the manuscript's lines"
        );
    }
    let settings = AnalysisSettings {
        seed: 1,
        cutoff: Some(jiff::civil::Date::constant(2020, 12, 31))
            .filter(|_| data.len().is_multiple_of(2)),
        format: FormatSection::default(),
        published: Some(published().clone()),
        limits: galley::study::limits::Limits::default(),
    };
    let mut datasets: IndexMap<String, Dataset> = IndexMap::new();
    datasets.insert("patients".into(), patients().clone());
    let mut results: IndexMap<String, BlockResult> = IndexMap::new();
    for block in &document.blocks {
        if datasets.contains_key(&block.id) {
            continue; // run_all refuses this with a diagnostic
        }
        let env = BlockEnv {
            block,
            datasets: &datasets,
            results: &results,
            settings: &settings,
        };
        match analysis::run_block(&env) {
            Ok(output) => {
                if let Some(d) = &output.dataset {
                    check_dataset(d);
                    datasets.insert(block.id.clone(), d.clone());
                }
                let _ = serde_json::to_string(&output.value).expect("serialisable result");
                outcome.insert(block.id.clone(), Ok(output.value.clone()));
                results.insert(
                    block.id.clone(),
                    BlockResult {
                        id: block.id.clone(),
                        kind: block.kind.clone(),
                        value: output.value,
                        dataset_sha256: output.dataset.as_ref().map(|d| d.content_hash()),
                        artifacts: output.artifacts,
                        warnings: Vec::new(),
                    },
                );
            }
            Err(d) => {
                assert!(d.is_error());
                assert!(d.location.is_some(), "block error without a location: {d}");
                outcome.insert(block.id.clone(), Err(d.to_string()));
            }
        }
    }
    outcome
}

/// `galley verify`'s reading of a provenance record (`audit::parse_record`), a file that may come
/// from anyone: never a panic, a refusal is a located error, and a record it accepts names only
/// plain relative files and a study location that stays inside the folder holding the output root.
pub fn provenance(data: &[u8]) {
    let file = Path::new("out/study/provenance.json");
    match galley::audit::parse_record(data, file) {
        Err(f) => check_failure(&f),
        Ok(record) => {
            for name in record.inputs.keys().chain(record.outputs.keys()) {
                assert!(
                    galley::study::sandbox::check_relative(name).is_ok(),
                    "accepted the name `{name}`"
                );
            }
            if let Some(rel) = &record.study_from_output {
                let base = Path::new("/project");
                let output = base.join("out/study");
                let at = galley::study::sandbox::absolute(&output.join(rel)).expect("absolute");
                assert!(
                    at.starts_with(base) && at != base,
                    "accepted the study location `{rel}`, which leads to `{}`",
                    at.display()
                );
            }
        }
    }
}

/// The bibliography as galley reads it (`galley::study::bibliography`): the index of a BibTeX (first
/// byte even) or Hayagriva YAML (odd) file, then the selection of cited entries (every other key,
/// so that the closure over macros and crossrefs has work to do) with the link policy applied.
/// Oracles: never a panic; a refusal is a located diagnostic; a selection is text hayagriva reads
/// again, and every `url` and `doi` in it passes the link policy.
pub fn bibliography(data: &[u8]) {
    use galley::study::bibliography::{Format, Index};
    let Some((&first, bytes)) = data.split_first() else {
        return;
    };
    let name = if first % 2 == 0 { "r.bib" } else { "r.yml" };
    let index = match Index::scan(bytes, name, Path::new(name)) {
        Ok(index) => index,
        Err(d) => {
            assert!(d.is_error() && d.location.is_some(), "{d}");
            return;
        }
    };
    let text = std::str::from_utf8(bytes).expect("an index is only made of UTF-8 text");
    let mut keys: Vec<String> = index.keys().into_iter().collect();
    keys.sort();
    let cited = keys.into_iter().step_by(2).collect();
    match index.select(text, &cited) {
        Ok(selected) => {
            let library = match index.format {
                Format::Bibtex => hayagriva::io::from_biblatex_str(&selected.text).ok(),
                Format::Yaml => hayagriva::io::from_yaml_str(&selected.text).ok(),
            }
            .expect("a selection hayagriva read once reads again");
            fn links_ok(entry: &hayagriva::Entry) {
                if let Some(url) = entry.url() {
                    galley::study::links::external(url.value.as_str())
                        .unwrap_or_else(|why| panic!("{} kept: {why}", url.value));
                }
                if let Some(doi) = entry.doi() {
                    assert!(galley::study::links::doi(doi).is_some(), "doi {doi} kept");
                }
                entry.parents().iter().for_each(links_ok);
            }
            library.iter().for_each(links_ok);
            for w in &selected.warnings {
                assert!(w.location.is_some(), "{w}");
            }
        }
        Err(f) => check_failure(&f),
    }
}
