//! Writing a drawn model: one CSV file per table in each snapshot folder (and its copies), each
//! folder replaced atomically, or with `--check` compared with what is on disk.

use std::path::{Path, PathBuf};

use jiff::civil::Date;

use super::Simulation;
use super::model::Drawn;
use super::spec::{Model, SPEC_FILE};
use crate::diagnostics::{Diagnostic, Failure, Result};
use crate::output::{OutputFiles, write_atomically};

/// A field as CSV writes it: quoted only when it must be.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn line(fields: impl IntoIterator<Item = String>) -> String {
    let mut out = fields
        .into_iter()
        .map(|f| field(&f))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    out
}

/// The main table at `cutoff`.
fn table_csv(model: &Model, drawn: &Drawn, cutoff: Date) -> String {
    let t = &model.table;
    let mut out = line(
        std::iter::once(t.id_column.clone())
            .chain(t.columns.iter().map(|&v| model.variables[v].name.clone())),
    );
    for row in &drawn.rows {
        out.push_str(&line(
            std::iter::once(row.id.clone()).chain(
                t.columns
                    .iter()
                    .map(|&v| model.text(v, &model.as_of(row, v, cutoff))),
            ),
        ));
    }
    out
}

/// Child table `c` (the same at every cutoff), rows numbered from 1 within their parent.
fn child_csv(model: &Model, drawn: &Drawn, c: usize) -> String {
    let child = &model.children[c];
    let mut out = line(
        [model.table.id_column.clone(), child.number_column.clone()]
            .into_iter()
            .chain(child.columns.iter().map(|col| col.name.clone())),
    );
    let mut previous = None;
    let mut no = 0;
    for (parent, values) in &drawn.children[c] {
        no = if previous == Some(*parent) { no + 1 } else { 1 };
        previous = Some(*parent);
        out.push_str(&line(
            [drawn.rows[*parent].id.clone(), no.to_string()]
                .into_iter()
                .chain(values.iter().cloned()),
        ));
    }
    out
}

/// What `galley simulate` wrote (or, with `check`, found different).
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Folders written, relative to the study folder as the spec names them, with their cutoffs.
    pub written: Vec<(String, Date)>,
    /// Files that differ from what the spec generates (with `check`).
    pub stale: Vec<PathBuf>,
}

/// The files of every snapshot folder, by folder (relative to the study folder).
pub fn snapshot_files(sim: &Simulation) -> Result<Vec<(String, Date, OutputFiles)>> {
    let model = &sim.model;
    let drawn = model.draw(&sim.root.join(SPEC_FILE))?;
    let children: Vec<String> = (0..model.children.len())
        .map(|c| child_csv(model, &drawn, c))
        .collect();
    let mut out = Vec::new();
    for s in &model.snapshots {
        let mut files = OutputFiles::default();
        files.insert(&model.table.file, table_csv(model, &drawn, s.cutoff));
        for (child, text) in model.children.iter().zip(&children) {
            files.insert(&child.file, text.clone());
        }
        for folder in std::iter::once(&s.path).chain(&s.copies) {
            out.push((folder.get_ref().clone(), s.cutoff, files.clone()));
        }
    }
    Ok(out)
}

/// Where each snapshot folder goes (in the order of `snapshot_files`), checked against the sandbox:
/// a folder inside the study folder (never the folder itself: it is replaced as a whole), or, for a
/// `copies` entry only, a folder inside a companion study folder the user named on the command line.
/// A study folder alone can never make galley write (or read) outside it.
fn destinations(
    sim: &Simulation,
    source: &str,
    file: &Path,
    companions: &[PathBuf],
) -> Result<Vec<PathBuf>> {
    let study_dir = &sim.root;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for s in &sim.model.snapshots {
        let folders = std::iter::once((&s.path, false)).chain(s.copies.iter().map(|c| (c, true)));
        for (folder, is_copy) in folders {
            let rel = folder.get_ref();
            let at = |message: String| {
                Diagnostic::error(message).at_offset(file, source, folder.span().start)
            };
            match crate::study::sandbox::resolve(study_dir, rel) {
                Ok(path) if crate::study::sandbox::is_within(study_dir, &path) => problems.push(at(format!(
                    "snapshot folder `{rel}` is the study folder itself; a snapshot folder is replaced as a whole, so it must be a folder inside the study"
                ))),
                Ok(path) => out.push(path),
                Err(crate::study::sandbox::Refusal::Parent) if is_copy => {
                    match companion_destination(study_dir, rel, companions) {
                        Ok(path) => out.push(path),
                        Err(d) => problems.push(d.at_offset(file, source, folder.span().start)),
                    }
                }
                Err(why) => problems.push(at(format!(
                    "snapshot folder `{rel}` is {}",
                    why.describe(SPEC_FILE)
                ))),
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Failure::new(problems))
    }
}

/// A copy that leaves the study folder (`../companion/data`): allowed only into a companion study
/// folder named with `--companion`, and only as leading `..` then plain names (no `..` further on),
/// with every link followed.
fn companion_destination(
    study_dir: &Path,
    rel: &str,
    companions: &[PathBuf],
) -> std::result::Result<PathBuf, Diagnostic> {
    use std::path::Component;
    let mut components = Path::new(rel).components().peekable();
    let mut up = PathBuf::new();
    while let Some(Component::ParentDir) = components.peek() {
        up.push("..");
        components.next();
    }
    if components
        .clone()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(Diagnostic::error(format!(
            "snapshot copy `{rel}` has `..` after a folder name; write it as `../<companion study>/<folder>`"
        )));
    }
    let target = study_dir.join(rel);
    let real_target = std::path::absolute(&target)
        .map(|t| crate::study::sandbox::real(&t))
        .map_err(|e| Diagnostic::error(format!("snapshot copy `{rel}` cannot be resolved: {e}")))?;
    for companion in companions {
        let Ok(real_companion) = companion.canonicalize() else {
            continue;
        };
        if real_target.starts_with(&real_companion) && real_target != real_companion {
            return Ok(target);
        }
        if crate::study::sandbox::is_within(&target, companion) {
            return Err(Diagnostic::error(format!(
                "snapshot copy `{rel}` leads through a link out of the companion study folder `{}` (to `{}`)",
                companion.display(),
                real_target.display()
            )));
        }
    }
    let companion = crate::study::sandbox::tidy(
        &study_dir.join(&up).join(
            components
                .next()
                .map_or(std::path::Component::CurDir.as_os_str(), |c| c.as_os_str()),
        ),
    );
    Err(Diagnostic::error(format!(
        "snapshot copy `{rel}` is outside the study folder, and no `--companion` holds it"
    ))
    .hint(format!(
        "galley simulate writes outside the study folder only into a companion study named on the command line: `galley simulate {} --companion {}`",
        study_dir.display(),
        companion.display()
    )))
}

/// `galley simulate <study>`: write every snapshot (each folder replaced atomically), or with
/// `check` only compare the files on disk with what would be written. `companions` are study folders
/// that `copies` may write into (named by the user, never by the spec alone).
pub fn run(study_dir: &Path, check: bool, companions: &[PathBuf]) -> Result<Report> {
    let file = study_dir.join(SPEC_FILE);
    if let Err(why) = crate::study::sandbox::resolve(study_dir, SPEC_FILE) {
        return Err(
            Diagnostic::error(format!("`{SPEC_FILE}` is {}", why.describe(SPEC_FILE)))
                .in_file(&file)
                .into(),
        );
    }
    let source = super::read_spec(&file)?;
    let sim = Simulation::parse(study_dir, &source, &file)?;
    for companion in companions {
        if !companion.is_dir() {
            return Err(Diagnostic::error(format!(
                "companion study folder `{}` does not exist",
                companion.display()
            ))
            .into());
        }
    }
    let dests = destinations(&sim, &source, &file, companions)?;
    let snapshots = snapshot_files(&sim)?;
    let mut report = Report::default();
    for ((folder, cutoff, files), dest) in snapshots.iter().zip(&dests) {
        if check {
            for (name, bytes) in &files.files {
                let path = dest.join(name);
                if crate::study::sandbox::read_regular_file(&path).as_deref()
                    != Some(bytes.as_slice())
                {
                    report.stale.push(path);
                }
            }
        } else {
            write_atomically(dest, files)?;
        }
        report.written.push((folder.clone(), *cutoff));
    }
    if check && !report.stale.is_empty() {
        return Err(Failure::new(
            report
                .stale
                .iter()
                .map(|p| {
                    Diagnostic::error(format!(
                        "`{}` is not what `galley simulate` writes from {SPEC_FILE}",
                        p.display()
                    ))
                    .in_file(p)
                    .hint(format!(
                        "run `galley simulate {}` and commit the result",
                        study_dir.display()
                    ))
                })
                .collect(),
        ));
    }
    Ok(report)
}
