//! Where a build may write: the output folder is checked before anything is built.

use std::path::Path;

use crate::diagnostics::Diagnostic;
use crate::study::sandbox::is_within;

/// Check where a build of the study in `study` will write: `dest` (`<out>/<name>`) under the output
/// root `out`. The output root lies outside the study folder: a study could otherwise ship a link that
/// sends the outputs anywhere, or a forged "previous build" (cache, PDF) that the build would reuse.
/// `dest` is replaced as a whole, so it must be a real folder that galley wrote (or not exist yet).
pub fn check_output(study: &Path, out: &Path, dest: &Path) -> Result<(), Diagnostic> {
    if is_within(out, study) {
        return Err(Diagnostic::error(format!(
            "the output root `{}` is inside the study folder `{}`; outputs are written outside the study",
            out.display(),
            study.display()
        ))
        .hint("pass `--out` with a folder outside the study, or run galley from the folder above it (the default output root is `output` in the current folder)")
        .hint("a study folder must not decide where its outputs go, nor ship a previous build that the next one would reuse"));
    }
    if is_within(study, dest) {
        let what = if is_within(dest, study) {
            "is the study folder".to_string()
        } else {
            format!("would hold the study folder `{}`", study.display())
        };
        return Err(Diagnostic::error(format!(
            "the output folder `{}` {what}; a build replaces its output folder as a whole",
            dest.display(),
        ))
        .hint("pass `--out` with a folder outside the study"));
    }
    // A build killed while swapping its output in may have left the previous output aside.
    super::recover(dest);
    let Ok(meta) = dest.symlink_metadata() else {
        return Ok(()); // not there yet
    };
    if meta.file_type().is_symlink() {
        return Err(Diagnostic::error(format!(
            "the output folder `{}` is a symbolic link; galley replaces output folders as a whole and never writes through a link",
            dest.display()
        ))
        .hint("remove the link, or pass `--out` with another output root"));
    }
    if !meta.is_dir() {
        return Err(Diagnostic::error(format!(
            "`{}` is a file, not an output folder",
            dest.display()
        ))
        .hint("remove it, or pass `--out` with another output root"));
    }
    let empty = std::fs::read_dir(dest).is_ok_and(|mut d| d.next().is_none());
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !empty && let Err(why) = super::galley_wrote(dest, &name) {
        return Err(Diagnostic::error(format!(
            "`{}` exists and {why}; a build replaces its output folder as a whole, so galley will not replace a folder it did not write",
            dest.display()
        ))
        .hint("move the folder (or the files galley did not write) away, or pass `--out` with another output root"));
    }
    Ok(())
}
