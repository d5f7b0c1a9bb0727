//! `galley new`: write a small working study from a template embedded in the binary.
//!
//! A template is a study folder under `templates/new/<kind>/` (manifest with comments, a simulated data
//! set, a manuscript with analysis blocks, a bibliography) that builds as it is. The new folder must
//! not exist: galley never writes into a folder a user already has.

use std::path::{Path, PathBuf};

use crate::diagnostics::{Diagnostic, Result, io_error};

/// A template: its name, what it is, and its files (path inside the study, contents).
pub struct Template {
    pub name: &'static str,
    pub description: &'static str,
    pub files: &'static [(&'static str, &'static str)],
}

macro_rules! template_files {
    ($dir:literal: $($file:literal),+ $(,)?) => {
        &[$(($file, include_str!(concat!("../../templates/new/", $dir, "/", $file)))),+]
    };
}

/// The templates `galley new --template` knows.
pub const TEMPLATES: &[Template] = &[Template {
    name: "cohort-survival",
    description: "a cohort with overall survival: Kaplan-Meier figure and table, log-rank test, Cox model",
    files: template_files!("cohort-survival":
        "study.toml",
        "data/patients.csv",
        "manuscript/abstract.md",
        "manuscript/main.md",
        "references.bib",
        "README.md",
        "simulation.toml",
    ),
}];

/// Create the study folder `path` from template `template`; returns the files written (full paths).
pub fn new_study(path: &Path, template: &str) -> Result<Vec<PathBuf>> {
    let Some(t) = TEMPLATES.iter().find(|t| t.name == template) else {
        let known: Vec<String> = TEMPLATES
            .iter()
            .map(|t| format!("`{}` ({})", t.name, t.description))
            .collect();
        return Err(
            Diagnostic::error(format!("unknown study template `{template}`"))
                .hint(format!("templates: {}", known.join(", ")))
                .into(),
        );
    };
    if path.exists() {
        return Err(Diagnostic::error(format!(
            "`{}` already exists: galley new only creates new folders and never writes into an existing one",
            path.display()
        ))
        .hint("choose another name, or remove the folder first if you mean to start over")
        .into());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .ok_or_else(|| {
            Diagnostic::error(format!(
                "`{}` does not end in a folder name for the study",
                path.display()
            ))
            .hint("for example `galley new study/demo`")
        })?;
    let shown = path.to_string_lossy().replace('\\', "/");

    // Write into a temporary sibling and rename it into place: a failure leaves nothing behind.
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io_error("create the folder", parent, &e))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.galley-new-"))
        .tempdir_in(parent)
        .map_err(|e| io_error("create a temporary folder in", parent, &e))?;
    let mut written = Vec::new();
    for (relative, text) in t.files {
        let target = staging.path().join(relative);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, &e))?;
        }
        let text = text.replace("@PATH@", &shown).replace("@NAME@", &name);
        std::fs::write(&target, text).map_err(|e| io_error("write", &target, &e))?;
        written.push(path.join(relative));
    }
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, path) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(io_error("create", path, &e).into());
    }
    Ok(written)
}

/// `galley new`: make the study and say what to do next.
pub fn run(
    console: super::console::Console,
    path: &Path,
    template: &str,
) -> std::result::Result<u8, crate::diagnostics::Failure> {
    let files = new_study(path, template)?;
    if !console.quiet {
        println!("created the study {}:", path.display());
        for f in &files {
            println!("  {}", f.display());
        }
        println!(
            "\nnext: galley build {0}        (writes output/{1}/manuscript.pdf)\n      galley watch {0} --serve  (live preview in the browser)",
            path.display(),
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_an_existing_folder_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mine.txt"), "keep").unwrap();
        let err = new_study(dir.path(), "cohort-survival").unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn unknown_template_lists_the_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let err = new_study(&dir.path().join("x"), "nope").unwrap_err();
        assert!(err.to_string().contains("cohort-survival"), "{err}");
        assert!(!dir.path().join("x").exists());
    }

    #[test]
    fn writes_every_file_of_the_template() {
        let dir = tempfile::tempdir().unwrap();
        let study = dir.path().join("study/demo");
        let files = new_study(&study, "cohort-survival").unwrap();
        assert_eq!(files.len(), TEMPLATES[0].files.len());
        assert!(study.join("study.toml").is_file());
        assert!(study.join("data/patients.csv").is_file());
        let readme = std::fs::read_to_string(study.join("README.md")).unwrap();
        assert!(readme.contains("output/demo/"), "{readme}");
        // Nothing but the study folder in its parent (no staging leftovers).
        assert_eq!(
            std::fs::read_dir(dir.path().join("study")).unwrap().count(),
            1
        );
    }
}
