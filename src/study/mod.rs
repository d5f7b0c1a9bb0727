//! The validated study: the manifest's paths resolved inside the study folder and read, the cutoff
//! parsed, authors' affiliations checked. Everything later stages need from disk is read here, once,
//! so no later stage touches the file system behind the pipeline's back.

pub mod bibliography;
pub mod compat;
pub mod dataset;
pub mod limits;
pub mod links;
pub mod manifest;
pub mod manuscript;
pub mod published;
pub mod sandbox;

use std::path::{Path, PathBuf};

use jiff::civil::Date;
use toml::Spanned;

use crate::diagnostics::{Diagnostic, Failure, Result, excerpt, io_error};
use crate::records::format::Record;
use crate::study::limits::Limits;
use crate::study::manifest::{MANIFEST_FILE, Manifest, TableSpec};

/// A file the study reads, with its bytes (kept for hashing in the provenance record).
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Path relative to the study folder, with `/` separators (stable across machines).
    pub relative: String,
    /// How diagnostics name the file (the study path as the user gave it, joined with `relative`).
    pub display: PathBuf,
    pub bytes: Vec<u8>,
}

impl InputFile {
    pub fn text(&self) -> std::result::Result<&str, Diagnostic> {
        std::str::from_utf8(&self.bytes)
            .map_err(|e| crate::diagnostics::not_utf8(&self.display, &self.bytes, e))
    }
}

#[derive(Debug, Clone)]
pub struct TableInput {
    pub name: String,
    pub spec: TableSpec,
    pub file: InputFile,
}

#[derive(Debug, Clone)]
pub struct Study {
    /// The study folder as given on the command line.
    pub root: PathBuf,
    /// The folder's name: the output goes to `<out>/<name>/`.
    pub name: String,
    pub manifest: Manifest,
    pub manifest_file: InputFile,
    pub cutoff: Option<Date>,
    pub tables: Vec<TableInput>,
    pub abstract_file: Option<InputFile>,
    pub manuscript_files: Vec<InputFile>,
    pub bibliography: Option<InputFile>,
    /// Where the bibliography's entries are (indexed on loading; only the cited ones are parsed).
    pub bibliography_index: Option<crate::study::bibliography::Index>,
    /// A `.csl` file when the manifest names one; otherwise the style is a name Typst knows.
    pub csl_file: Option<InputFile>,
    /// Template files of the study's own template folder (relative name -> file).
    pub template_files: Vec<InputFile>,
    /// `published.toml`: the paper's figures to compare with.
    pub published_file: Option<InputFile>,
    /// A previous build's records (provenance, results, trail), to report what changed.
    pub previous_files: Vec<InputFile>,
    /// The manifest's `[limits]` with the command line's `--limit` overrides applied.
    pub limits: Limits,
}

impl Study {
    /// Read `study.toml` in `root` and everything it names. `limit_overrides` are the command
    /// line's `--limit NAME=VALUE`s, applied over the manifest's `[limits]`.
    pub fn load(root: &Path, limit_overrides: &[String]) -> Result<Study> {
        if !root.is_dir() {
            return Err(Diagnostic::error(format!("study folder `{}` does not exist", root.display()))
                .hint("give the path of a folder that holds a study.toml, e.g. `galley build study/croome2016`")
                .into());
        }
        let manifest_path = root.join(MANIFEST_FILE);
        // study.toml itself may be a link: it too must stay inside the folder.
        if let Err(why) = sandbox::resolve(root, MANIFEST_FILE) {
            return Err(Diagnostic::error(format!(
                "`{MANIFEST_FILE}` is {}",
                why.describe(MANIFEST_FILE)
            ))
            .in_file(&manifest_path)
            .into());
        }
        let manifest_bytes = read_manifest(&manifest_path).map_err(|e| {
            let d = io_error("read the manifest", &manifest_path, &e);
            if e.kind() == std::io::ErrorKind::NotFound {
                d.hint("every study folder needs a study.toml; `galley new` writes one")
            } else {
                d
            }
        })?;
        let manifest_file = InputFile {
            relative: MANIFEST_FILE.into(),
            display: manifest_path.clone(),
            bytes: manifest_bytes,
        };
        // CR-only line ends are not TOML; read as LF (same offsets, so lines in messages are right).
        let source = crate::diagnostics::lone_cr_to_lf(manifest_file.text()?).into_owned();
        let manifest = Manifest::parse(&source, &manifest_path)?;
        let limits = manifest
            .limits
            .validate()
            .map_err(|m| Diagnostic::error(format!("[limits]: {m}")).in_file(&manifest_path))
            .and_then(|()| {
                manifest
                    .limits
                    .with_overrides(limit_overrides)
                    .map_err(Diagnostic::error)
            })?;
        let max_bytes = limits.input_file_bytes();
        let name = root
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "study".to_string());

        let mut problems = Vec::new();
        let mut read = |field: &Spanned<String>, what: &str| -> Option<InputFile> {
            match read_study_file(root, &manifest_path, &source, field, what, max_bytes) {
                Ok(f) => Some(f),
                Err(d) => {
                    problems.push(d);
                    None
                }
            }
        };

        let tables: Vec<TableInput> = manifest
            .data
            .iter()
            .filter_map(|(name, spec)| {
                read(&spec.path, &format!("data file of table `{name}`")).map(|file| TableInput {
                    name: name.clone(),
                    spec: spec.clone(),
                    file,
                })
            })
            .collect();
        let abstract_file = manifest
            .manuscript
            .abstract_file
            .as_ref()
            .and_then(|f| read(f, "abstract"));
        let manuscript_files: Vec<InputFile> = manifest
            .manuscript
            .files
            .iter()
            .filter_map(|f| read(f, "manuscript file"))
            .collect();
        let bibliography = manifest
            .manuscript
            .bibliography
            .as_ref()
            .and_then(|f| read(f, "bibliography"));
        let csl = &manifest.manuscript.csl;
        let csl_field = Spanned::new(value_span(&source, "csl", csl), csl.clone());
        let csl_file = if csl.ends_with(".csl") {
            read(&csl_field, "CSL style")
        } else {
            None
        };
        let previous_files: Vec<InputFile> = match &manifest.manuscript.previous {
            Some(dir) => [Record::Provenance, Record::Results, Record::Trail]
                .iter()
                .filter_map(|record| {
                    let name = record.file();
                    let rel = format!("{}/{name}", dir.get_ref().trim_end_matches('/'));
                    read(&Spanned::new(dir.span(), rel), "previous report record")
                })
                .collect(),
            None => Vec::new(),
        };
        let published_file = manifest
            .manuscript
            .published
            .as_ref()
            .and_then(|f| read(f, "published values"));
        let template_files = match &manifest.manuscript.template {
            Some(dir) => {
                read_template_folder(root, &manifest_path, &source, dir, max_bytes, &mut problems)
            }
            None => Vec::new(),
        };

        // The bibliography and the style are checked here, so `check` reports what typesetting
        // would otherwise find late (in a temporary copy): text that is not UTF-8, an entry
        // not closed, a style that is neither a name Typst knows nor a readable `.csl` file.
        let bibliography_index = bibliography.as_ref().and_then(|bib| {
            crate::study::bibliography::Index::scan(&bib.bytes, &bib.relative, &bib.display)
                .map_err(|d| problems.push(d))
                .ok()
        });
        if let Some(d) = check_csl(csl, csl_file.as_ref()) {
            problems.push(match &csl_file {
                Some(file) => d.in_file(&file.display),
                None => d.at_offset(&manifest_path, &source, csl_field.span().start),
            });
        }
        if manifest.manuscript.files.is_empty() {
            problems.push(
                Diagnostic::error("`manuscript.files` is empty: name at least one Markdown file")
                    .in_file(&manifest_path),
            );
        }
        for author in &manifest.authors {
            for key in &author.affiliations {
                if !manifest.affiliations.contains_key(key) {
                    problems.push(
                        Diagnostic::error(format!(
                            "author `{}` names affiliation `{}`, which is not under [affiliations]",
                            excerpt(&author.name),
                            excerpt(key)
                        ))
                        .in_file(&manifest_path),
                    );
                }
            }
        }
        for (table, spec) in &manifest.data {
            for (column, col) in &spec.columns {
                check_column_spec(
                    table,
                    column,
                    col,
                    &manifest,
                    &manifest_path,
                    &source,
                    &mut problems,
                );
            }
        }

        let cutoff = match &manifest.study.cutoff {
            None => None,
            Some(c) => {
                match crate::study::dataset::check_date(c.get_ref().as_text().trim(), None) {
                    Ok(d) => Some(d),
                    Err(expected) => {
                        problems.push(
                            Diagnostic::error(format!(
                                "`study.cutoff` is `{}`, expected {expected}",
                                excerpt(&c.get_ref().as_text())
                            ))
                            .at_offset(
                                &manifest_path,
                                &source,
                                c.span().start,
                            ),
                        );
                        None
                    }
                }
            }
        };

        if !problems.is_empty() {
            return Err(Failure::new(problems));
        }
        Ok(Study {
            root: root.to_path_buf(),
            name,
            manifest,
            manifest_file,
            cutoff,
            tables,
            abstract_file,
            manuscript_files,
            bibliography,
            bibliography_index,
            csl_file,
            template_files,
            published_file,
            previous_files,
            limits,
        })
    }

    /// Every input file, in a stable order (for hashing and provenance).
    pub fn inputs(&self) -> Vec<&InputFile> {
        let mut all = vec![&self.manifest_file];
        all.extend(self.tables.iter().map(|t| &t.file));
        all.extend(self.abstract_file.iter());
        all.extend(self.manuscript_files.iter());
        all.extend(self.bibliography.iter());
        all.extend(self.csl_file.iter());
        all.extend(self.template_files.iter());
        all.extend(self.published_file.iter());
        all.extend(self.previous_files.iter());
        all
    }
}

/// Why the manifest's `csl` is not usable: a name hayagriva's (and Typst's) archive does not hold,
/// or a `.csl` file that is not a CSL style.
fn check_csl(name: &str, file: Option<&InputFile>) -> Option<Diagnostic> {
    use hayagriva::citationberg::Style;
    match file {
        Some(file) => {
            let text = match crate::study::bibliography::utf8(&file.bytes, &file.display, "CSL style") {
                Ok(t) => t,
                Err(d) => return Some(d),
            };
            Style::from_xml(text).err().map(|e| {
                Diagnostic::error(format!("the CSL style could not be read: {e}"))
                    .hint("a `.csl` file is a CSL 1.0 XML style, e.g. from https://github.com/citation-style-language/styles")
            })
        }
        None if hayagriva::archive::ArchivedStyle::by_name(name).is_some() => None,
        None => Some(
            Diagnostic::error(format!(
                "`csl` is `{name}`, which is neither a style name Typst knows nor a `.csl` file"
            ))
            .hint("use a style name such as `american-medical-association` or `vancouver`, or a `.csl` file inside the study folder (`csl = \"style.csl\"`)"),
        ),
    }
}

/// Most bytes of a `study.toml` read (its limits are not known before it is read; real manifests
/// are a few kilobytes).
const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

fn read_manifest(path: &Path) -> std::io::Result<Vec<u8>> {
    read_regular(path, MAX_MANIFEST_BYTES)?.map_err(|e| {
        std::io::Error::other(match e {
            NotRegular::Kind(kind) => format!("it is {kind}"),
            NotRegular::TooBig(_) => format!(
                "the manifest is larger than {} MiB",
                MAX_MANIFEST_BYTES / (1024 * 1024)
            ),
        })
    })
}

/// Why [`read_regular`] refused a file it could open.
#[derive(Debug)]
pub enum NotRegular {
    /// "a folder", or "not a regular file (a device, FIFO or socket)".
    Kind(&'static str),
    /// More than the limit: its size (at least limit + 1).
    TooBig(u64),
}

/// Read a file of a study only if it is a regular file of at most `max_bytes`. A FIFO would block
/// the build forever waiting for a writer, a device (`/dev/zero`) would never end, a folder is not a
/// file: each is refused before it is opened, and checked again on the opened file (so a file
/// swapped for a device in between is still refused before it is read). `take`: a file that grows
/// while it is read still stops at the limit. Every input of a study is read through here.
pub fn read_regular(
    path: &Path,
    max_bytes: u64,
) -> std::io::Result<std::result::Result<Vec<u8>, NotRegular>> {
    use std::io::Read;
    let kind = |meta: &std::fs::Metadata| match () {
        _ if meta.is_file() => None,
        _ if meta.is_dir() => Some("a folder"),
        _ => Some("not a regular file (a device, FIFO or socket)"),
    };
    let meta = std::fs::metadata(path)?;
    if let Some(kind) = kind(&meta) {
        return Ok(Err(NotRegular::Kind(kind)));
    }
    if meta.len() > max_bytes {
        return Ok(Err(NotRegular::TooBig(meta.len())));
    }
    let file = std::fs::File::open(path)?;
    if let Some(kind) = kind(&file.metadata()?) {
        return Ok(Err(NotRegular::Kind(kind)));
    }
    let mut bytes = Vec::new();
    let n = file
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if n as u64 > max_bytes {
        return Ok(Err(NotRegular::TooBig(n as u64)));
    }
    Ok(Ok(bytes))
}

pub fn parse_iso_date(text: &str) -> Option<Date> {
    crate::study::dataset::parse_date(text.trim(), None)
}

/// Resolve a manifest path inside the study folder: relative, no `..`, no escape through a link
/// (`study::sandbox`). The error completes "`path` is ...".
pub fn resolve_inside(root: &Path, relative: &str) -> std::result::Result<PathBuf, String> {
    sandbox::resolve(root, relative).map_err(|why| why.describe(MANIFEST_FILE))
}

/// Where the value of `key = "value"` is in the manifest, for a field parsed without its span.
fn value_span(source: &str, key: &str, value: &str) -> std::ops::Range<usize> {
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix(key)
            && rest.trim_start().starts_with('=')
            && let Some(at) = line.find(value)
        {
            return offset + at - 1..offset + at + value.len() + 1;
        }
        offset += line.len();
    }
    0..0
}

fn read_study_file(
    root: &Path,
    manifest_path: &Path,
    source: &str,
    field: &Spanned<String>,
    what: &str,
    max_bytes: u64,
) -> std::result::Result<InputFile, Diagnostic> {
    let relative = field.get_ref();
    // As messages quote it (a manifest may hold a path of megabytes).
    let shown = excerpt(relative);
    let locate = |d: Diagnostic| {
        if field.span().is_empty() {
            d.in_file(manifest_path)
        } else {
            d.at_offset(manifest_path, source, field.span().start)
        }
    };
    let path = resolve_inside(root, relative)
        .map_err(|why| locate(Diagnostic::error(format!("{what} `{shown}` is {why}"))))?;
    // Refused before reading: memory is spent only on files the limits allow, and only regular
    // files are read (`read_regular`).
    let too_big = |len: u64| {
        locate(
            Diagnostic::error(format!(
                "{what} `{shown}` is {} MiB, more than the limit of {} MiB (`input_file_mb`)",
                len.div_ceil(1024 * 1024),
                max_bytes / (1024 * 1024)
            ))
            .hint("a build holds about ten times a CSV's size in memory; if this machine has it, raise the limit under [limits] in study.toml (input_file_mb = ...) or with --limit input_file_mb=N"),
        )
    };
    let not_found = || {
        locate(Diagnostic::error(format!(
            "{what} `{shown}` not found (looked for `{}`)",
            excerpt(&path.display().to_string())
        )))
    };
    match read_regular(&path, max_bytes) {
        Ok(Ok(bytes)) => Ok(InputFile {
            relative: relative.replace('\\', "/"),
            display: path,
            bytes,
        }),
        Ok(Err(NotRegular::Kind(kind))) => Err(locate(Diagnostic::error(format!(
            "{what} `{shown}` is {kind}; expected a file"
        )))),
        Ok(Err(NotRegular::TooBig(len))) => Err(too_big(len)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not_found()),
        Err(e) => Err(locate(io_error(&format!("read the {what}"), &path, &e))),
    }
}

fn read_template_folder(
    root: &Path,
    manifest_path: &Path,
    source: &str,
    dir: &Spanned<String>,
    max_bytes: u64,
    problems: &mut Vec<Diagnostic>,
) -> Vec<InputFile> {
    let folder = match resolve_inside(root, dir.get_ref()) {
        Ok(p) => p,
        Err(why) => {
            problems.push(
                Diagnostic::error(format!(
                    "template folder `{}` is {why}",
                    excerpt(dir.get_ref())
                ))
                .at_offset(manifest_path, source, dir.span().start),
            );
            return Vec::new();
        }
    };
    // The folder's files, and its links (checked like any path below: a link that stays inside is
    // read, one that leaves is refused). Subfolders are not part of the template.
    let mut names: Vec<String> = match std::fs::read_dir(&folder) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                let rel = format!("{}/{n}", dir.get_ref().trim_end_matches('/'));
                !std::fs::metadata(root.join(&rel)).is_ok_and(|m| m.is_dir())
                    || resolve_inside(root, &rel).is_err()
            })
            .collect(),
        Err(e) => {
            problems.push(io_error("read the template folder", &folder, &e).at_offset(
                manifest_path,
                source,
                dir.span().start,
            ));
            return Vec::new();
        }
    };
    names.sort();
    names
        .into_iter()
        .filter_map(|n| {
            let rel = format!("{}/{n}", dir.get_ref().trim_end_matches('/'));
            if sandbox::reserved_output_name(&n) {
                problems.push(
                    Diagnostic::error(format!(
                        "template file `{rel}` has a name galley gives to a file it writes into the output folder"
                    ))
                    .at_offset(manifest_path, source, dir.span().start)
                    .hint("rename the file: a template may not replace (or pose as) manuscript.*, results.json, provenance.json, trail.json, reproduction.json, references.*, style.csl, figures, tables or .cache"),
                );
                return None;
            }
            let field = Spanned::new(dir.span(), rel);
            read_study_file(
                root,
                manifest_path,
                source,
                &field,
                "template file",
                max_bytes,
            )
            .map_err(|d| problems.push(d))
            .ok()
        })
        .collect()
}

fn check_column_spec(
    table: &str,
    column: &str,
    col: &Spanned<crate::study::manifest::ColumnSpec>,
    manifest: &Manifest,
    manifest_path: &Path,
    source: &str,
    problems: &mut Vec<Diagnostic>,
) {
    use crate::study::manifest::ColumnType;
    let spec = col.get_ref();
    let at =
        |msg: String| Diagnostic::error(msg).at_offset(manifest_path, source, col.span().start);
    let (table, column) = (excerpt(table), excerpt(column));
    match spec.kind {
        ColumnType::Category if spec.levels.as_ref().is_none_or(|l| l.is_empty()) => {
            problems.push(at(format!(
                "column `{table}.{column}` is a category but lists no `levels`"
            )));
        }
        ColumnType::Category => {}
        _ if spec.levels.is_some() => problems.push(at(format!(
            "column `{table}.{column}` has `levels`, which only a category column takes"
        ))),
        _ => {}
    }
    if let Some(reference) = &spec.references {
        let ok = reference
            .split_once('.')
            .and_then(|(t, c)| manifest.data.get(t).map(|s| s.columns.contains_key(c)))
            .unwrap_or(false);
        if !ok {
            problems.push(at(format!(
                "column `{table}.{column}` references `{}`, which is not a `table.column` of this study",
                excerpt(reference)
            )));
        }
    }
}
