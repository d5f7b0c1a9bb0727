//! Typesetting: galley's own Typst `World` over an in-memory file set, compiled in-process to PDF.
//!
//! The world holds exactly the files of the output folder (the generated `manuscript.typ`, the template,
//! figures, bibliography), so what Typst sees is what an auditor gets, and the stock Typst CLI run in
//! that folder reproduces the same pages. Fonts are the ones embedded in `typst-assets` (the same ones
//! the Typst CLI embeds), loaded once per process; no system font and no network is ever used.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once, OnceLock, PoisonError};

use jiff::civil::Date;
use typst::diag::{FileError, FileResult, Severity as TypstSeverity, SourceDiagnostic};
use typst::foundations::{Bytes, Datetime};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World, WorldExt};
use typst_layout::PagedDocument;

use crate::diagnostics::{Diagnostic, Failure, Location, Result};

/// Fonts, parsed once per process (parsing them is most of a small document's compile time).
struct FontSet {
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
}

fn fonts() -> &'static FontSet {
    static FONTS: OnceLock<FontSet> = OnceLock::new();
    FONTS.get_or_init(|| {
        let mut book = FontBook::new();
        let mut fonts = Vec::new();
        for (font, info) in typst_kit::fonts::embedded() {
            book.push(info);
            fonts.push(font);
        }
        FontSet {
            book: LazyHash::new(book),
            fonts,
        }
    })
}

fn library() -> &'static LazyHash<Library> {
    static LIBRARY: OnceLock<LazyHash<Library>> = OnceLock::new();
    LIBRARY.get_or_init(|| LazyHash::new(Library::default()))
}

/// Typst's one-time set-up that would otherwise sit on the compile's critical path, done on the
/// other core while the compile evaluates and lays out the document: decoding hayagriva's 63 CSL
/// locales, which Typst does at its first bibliography (about 40 ms, a quarter of a prose-edit
/// rebuild, while every other thread waits). Typst keeps them in a process-wide static, so compiling
/// a tiny document with a citation fills it, once per process, for every later compile. The
/// outputs cannot change: the locales are the same whoever decodes them.
fn warm_up(files: &FileSet) {
    static LOCALES: Once = Once::new();
    if LOCALES.is_completed() {
        return;
    }
    let cites = files.iter().any(|(path, bytes)| {
        path.ends_with(".typ") && bytes.windows(13).any(|w| w == b"bibliography(")
    });
    if cites {
        LOCALES.call_once(|| {
            let _ = compile_text(LOCALES_WARMUP);
        });
    }
}

/// A citation and its bibliography, from bytes so the document needs no other file.
const LOCALES_WARMUP: &str = r#"@w
#bibliography(bytes("@misc{w, title = {W}}"))
"#;

/// The files Typst may read, by their path inside the output folder (`/`-separated).
#[derive(Debug, Clone, Default)]
pub struct FileSet {
    files: BTreeMap<String, Vec<u8>>,
    /// Where a file came from, when that is a study file (so a Typst error in a study's own template
    /// points at the study's file rather than the copy in the output folder).
    origins: BTreeMap<String, PathBuf>,
}

impl FileSet {
    pub fn insert(&mut self, path: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.files.insert(path.into(), bytes.into());
    }

    pub fn insert_from(
        &mut self,
        path: impl Into<String>,
        bytes: impl Into<Vec<u8>>,
        origin: PathBuf,
    ) {
        let path = path.into();
        self.origins.insert(path.clone(), origin);
        self.files.insert(path, bytes.into());
    }

    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Vec<u8>)> {
        self.files.iter()
    }
}

struct GalleyWorld<'a> {
    files: &'a FileSet,
    main: FileId,
    today: Option<Datetime>,
    /// The sources of this compile: each file is parsed once per compile and every request gets
    /// that same source (the spans of its syntax nodes must match throughout the compile).
    sources: Mutex<HashMap<FileId, Source>>,
}

fn file_id(path: &str) -> Option<FileId> {
    VirtualPath::new(path)
        .ok()
        .map(|vpath| RootedPath::new(VirtualRoot::Project, vpath).intern())
}

impl<'a> GalleyWorld<'a> {
    fn new(files: &'a FileSet, main: FileId, today: Option<Datetime>) -> Self {
        GalleyWorld {
            files,
            main,
            today,
            sources: Mutex::default(),
        }
    }

    fn parsed(&self, id: FileId, text: &str) -> Source {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        sources
            .entry(id)
            .or_insert_with(|| reparsed(id, text))
            .clone()
    }

    fn lookup(&self, id: FileId) -> FileResult<&Vec<u8>> {
        if let VirtualRoot::Package(spec) = id.root() {
            // Typst packages would need the network; the output folder must be self-contained.
            return Err(FileError::Other(Some(
                format!("package `{spec}` is not available: galley builds never download packages; copy what the template needs into its folder").into(),
            )));
        }
        let path = id.vpath().get_without_slash();
        self.files
            .files
            .get(path)
            .ok_or_else(|| FileError::NotFound(PathBuf::from(path)))
    }
}

impl World for GalleyWorld<'_> {
    fn library(&self) -> &LazyHash<Library> {
        library()
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &fonts().book
    }

    fn main(&self) -> FileId {
        self.main
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        let bytes = self.lookup(id)?;
        let text = std::str::from_utf8(bytes).map_err(|_| FileError::InvalidUtf8)?;
        Ok(self.parsed(id, text))
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        self.lookup(id).map(|b| Bytes::new(b.clone()))
    }

    fn font(&self, index: usize) -> Option<Font> {
        fonts().fonts.get(index).cloned()
    }

    fn today(&self, _offset: Option<typst::foundations::Duration>) -> Option<Datetime> {
        // "Today" is the study's cutoff date: a rebuild next year prints the same date.
        self.today
    }
}

/// The source of `id` with `text`, parsed incrementally from the process's previous source of that
/// file (as the Typst CLI does in watch mode): the syntax nodes of unchanged text keep their spans,
/// so `galley watch` reuses Typst's memoised evaluation and layout of them. Each compile asks once
/// per file (`GalleyWorld::parsed`): concurrent compiles of the same path each get their own.
fn reparsed(id: FileId, text: &str) -> Source {
    static PREVIOUS: OnceLock<Mutex<HashMap<FileId, Source>>> = OnceLock::new();
    let mut previous = PREVIOUS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let source = match previous.get(&id) {
        Some(source) if source.text() == text => source.clone(),
        Some(source) => {
            let mut source = source.clone();
            let (replace, with) = changed_range(source.text(), text);
            source.edit(replace, &text[with]);
            // An incremental parse must give the text a fresh parse would; never trust it blindly.
            if source.text() == text {
                source
            } else {
                Source::new(id, text.to_string())
            }
        }
        None => Source::new(id, text.to_string()),
    };
    previous.insert(id, source.clone());
    source
}

/// The smallest single edit from `old` to `new`: the range of `old` to replace and the range of `new`
/// to put there, on character boundaries. (Typst 0.15's `Source::replace` widens a common suffix that
/// ends inside a character to the whole character, so "≤¼" edited to "≤μ", which share their last
/// byte, kept the "¼".)
fn changed_range(old: &str, new: &str) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let mut prefix = old
        .bytes()
        .zip(new.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    while !old.is_char_boundary(prefix) || !new.is_char_boundary(prefix) {
        prefix -= 1;
    }
    let mut suffix = old[prefix..]
        .bytes()
        .rev()
        .zip(new[prefix..].bytes().rev())
        .take_while(|(a, b)| a == b)
        .count();
    while !old.is_char_boundary(old.len() - suffix) || !new.is_char_boundary(new.len() - suffix) {
        suffix -= 1;
    }
    (prefix..old.len() - suffix, prefix..new.len() - suffix)
}

/// Between rebuilds in one process (`galley watch`): drop Typst's memoised results that the last 10
/// compiles did not use, so memory stays bounded while what an edit leaves unchanged stays cached.
pub fn evict_cache() {
    typst::comemo::evict(10);
}

pub fn typst_date(date: Date) -> Option<Datetime> {
    Datetime::from_ymd(date.year() as i32, date.month() as u8, date.day() as u8)
}

/// Compile `main` from the file set to a PDF. `date` fixes both `datetime.today()` and the PDF's
/// creation date. `report_dir` is where diagnostics say the files are (the output folder, or the
/// temporary copy kept when the build failed).
pub fn compile_pdf(
    files: &FileSet,
    main: &str,
    date: Option<Date>,
    report_dir: &Path,
) -> Result<Vec<u8>> {
    std::thread::scope(|scope| {
        let _ = std::thread::Builder::new()
            .name("galley-typst-warm-up".into())
            .spawn_scoped(scope, || warm_up(files));
        compile(files, main, date, report_dir)
    })
}

fn compile(files: &FileSet, main: &str, date: Option<Date>, report_dir: &Path) -> Result<Vec<u8>> {
    let main_id =
        file_id(main).ok_or_else(|| Diagnostic::error(format!("bad Typst path `{main}`")))?;
    let today = date.and_then(typst_date);
    let world = GalleyWorld::new(files, main_id, today);
    let warned = typst::compile::<PagedDocument>(&world);
    let document = warned.output.map_err(|errors| {
        Failure::new(
            errors
                .iter()
                .map(|e| convert_diagnostic(&world, e, report_dir))
                .collect(),
        )
    })?;
    let options = typst_pdf::PdfOptions {
        ident: typst::foundations::Smart::Custom(main.to_string()),
        timestamp: today.map(typst_pdf::Timestamp::new_utc),
        ..Default::default()
    };
    typst_pdf::pdf(&document, &options).map_err(|errors| {
        Failure::new(
            errors
                .iter()
                .map(|e| convert_diagnostic(&world, e, report_dir))
                .collect(),
        )
    })
}

/// A Typst diagnostic as a galley diagnostic located in a real file.
fn convert_diagnostic(
    world: &GalleyWorld,
    diag: &SourceDiagnostic,
    report_dir: &Path,
) -> Diagnostic {
    let mut hints: Vec<String> = diag.hints.iter().map(|h| h.v.to_string()).collect();
    // A file outside the build's files: say so in galley's terms (Typst's speak of a `--root`).
    let message = crate::study::sandbox::typst_file_message(&diag.message, &mut hints)
        .unwrap_or_else(|| diag.message.to_string());
    let mut d = match diag.severity {
        TypstSeverity::Error => Diagnostic::error(format!("Typst: {message}")),
        TypstSeverity::Warning => Diagnostic::warning(format!("Typst: {message}")),
    };
    // Use the first span that points into a file: the error's own, else the innermost call site.
    let spans = std::iter::once(diag.span).chain(diag.trace.iter().map(|t| t.span.into()));
    for span in spans {
        let (Some(id), Some(range)) = (span.id(), world.range(span)) else {
            continue;
        };
        let path = id.vpath().get_without_slash().to_string();
        let Ok(source) = world.source(id) else {
            continue;
        };
        let file = world
            .files
            .origins
            .get(&path)
            .cloned()
            .unwrap_or_else(|| report_dir.join(&path));
        d = d.at_offset(file, source.text(), range.start);
        break;
    }
    for hint in hints {
        d = d.hint(hint);
    }
    if d.location.is_none() {
        d = d.at(Location::file(report_dir.join("manuscript.typ")));
    }
    d
}

/// Typeset a standalone snippet (used by tests and by the escaping property test): returns the text
/// of the first page's glyph runs in reading order.
pub fn compile_text(source: &str) -> Result<String> {
    let mut files = FileSet::default();
    files.insert("main.typ", source.as_bytes().to_vec());
    let main_id = file_id("main.typ").expect("valid path");
    let world = GalleyWorld::new(&files, main_id, None);
    let document = typst::compile::<PagedDocument>(&world)
        .output
        .map_err(|errors| {
            Failure::new(
                errors
                    .iter()
                    .map(|e| convert_diagnostic(&world, e, Path::new(".")))
                    .collect(),
            )
        })?;
    let mut text = String::new();
    for page in document.pages() {
        collect_text(&page.frame, &mut text);
    }
    Ok(text)
}

fn collect_text(frame: &typst::layout::Frame, out: &mut String) {
    use typst::layout::FrameItem;
    for (_, item) in frame.items() {
        match item {
            FrameItem::Group(group) => collect_text(&group.frame, out),
            FrameItem::Text(text) => out.push_str(&text.text),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_parses_give_the_new_text() {
        let id = file_id("incremental.typ").unwrap();
        for text in ["a ≤¼", "a ≤μ", "a ≤μ b", "ä ≤μ b", "b", "", "μ¼", "¼μ"] {
            assert_eq!(reparsed(id, text).text(), text);
        }
        assert_eq!(changed_range("x≤¼", "x≤μ"), (4..6, 4..6));
        assert_eq!(changed_range("abc", "abc"), (3..3, 3..3));
        assert_eq!(
            changed_range("In this cohort,", "In this series,"),
            (8..14, 8..14)
        );
    }

    /// The warm-up only helps if it reaches the bibliography: it must compile, and cite.
    #[test]
    fn warmup_document_cites_its_bibliography() {
        let text = compile_text(LOCALES_WARMUP).expect("the warm-up document compiles");
        assert!(text.contains("[1]"), "{text}");
        assert!(text.contains('W'), "{text}");
    }
}
