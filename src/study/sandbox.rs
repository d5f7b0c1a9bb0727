//! The sandbox of a study folder: a study folder travels between collaborators, reviewers and journals,
//! so nothing it says may make galley read or write outside it (see `docs/security.md`).
//!
//! Every path a study names (in `study.toml`, `simulation.toml`, its template folder) is resolved here:
//! relative, no `..`, and no symbolic link (or chain of links) that leads out of the folder. Typst never
//! touches the disk (its world is the in-memory file set of `render::typeset`); the prose templates have no
//! loader; outputs go to `<out>/<study>/` only, and the output root must lie outside the study folder.

use std::path::{Component, Path, PathBuf};

/// Why a path a study names is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Empty,
    Nul,
    Absolute,
    Parent,
    /// A link (possibly through a chain of links) whose target is outside the folder.
    LinkOutside(PathBuf),
    /// A link whose target does not exist (or a loop of links): where it points cannot be checked.
    BrokenLink(PathBuf),
    /// The study folder itself cannot be resolved.
    Root(String),
}

impl Refusal {
    /// The rest of a sentence "`x` is ...", for a path written in `file` (`study.toml`).
    pub fn describe(&self, file: &str) -> String {
        match self {
            Refusal::Empty => "an empty path; name a file inside the study folder".into(),
            Refusal::Nul => "a path with a NUL character".into(),
            Refusal::Absolute => {
                format!("an absolute path; paths in {file} are relative to the study folder")
            }
            Refusal::Parent => {
                "a path that leaves the study folder (`..`); keep study files inside it".into()
            }
            Refusal::LinkOutside(to) => format!(
                "a link that leads outside the study folder (to `{}`); a study reads only its own files",
                to.display()
            ),
            Refusal::BrokenLink(to) => format!(
                "a link to `{}`, which does not exist (or is a loop of links)",
                to.display()
            ),
            Refusal::Root(e) => format!("not checkable: the study folder cannot be resolved ({e})"),
        }
    }
}

/// Resolve `relative` (as the study wrote it) inside `root`: the joined path (for reading and for
/// messages), or why it is refused. The path need not exist; whatever part of it exists must stay inside
/// the folder once every link is followed.
pub fn resolve(root: &Path, relative: &str) -> Result<PathBuf, Refusal> {
    check_relative(relative)?;
    let real_root = root
        .canonicalize()
        .map_err(|e| Refusal::Root(e.to_string()))?;
    let joined = root.join(relative);
    // The longest part that exists (a dangling link exists: it is there, leading nowhere). What does
    // not exist yet holds no link, so checking this part once every link is followed is enough.
    let mut existing = joined.clone();
    while existing.symlink_metadata().is_err() && existing.pop() {}
    match existing.canonicalize() {
        Ok(real) if real.starts_with(&real_root) => Ok(joined),
        Ok(real) => Err(Refusal::LinkOutside(real)),
        Err(_) => Err(Refusal::BrokenLink(
            std::fs::read_link(&existing).unwrap_or(existing),
        )),
    }
}

/// The checks of `resolve` that need no disk: not empty, no NUL, relative, no `..`.
pub fn check_relative(relative: &str) -> Result<(), Refusal> {
    if relative.is_empty() {
        return Err(Refusal::Empty);
    }
    if relative.contains('\0') {
        return Err(Refusal::Nul);
    }
    let rel = Path::new(relative);
    if rel.is_absolute() || rel.has_root() {
        return Err(Refusal::Absolute);
    }
    for component in rel.components() {
        match component {
            Component::ParentDir => return Err(Refusal::Parent),
            Component::Prefix(_) | Component::RootDir => return Err(Refusal::Absolute),
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    Ok(())
}

/// Whether `path` is inside (or is) `folder`, comparing both lexically (as written, made absolute) and
/// as resolved through links (for the part that exists).
pub fn is_within(path: &Path, folder: &Path) -> bool {
    let (Some(p), Some(f)) = (absolute(path), absolute(folder)) else {
        return false;
    };
    p.starts_with(&f) || real(&p).starts_with(real(&f))
}

/// `path` made absolute against the current folder, with `.` and `..` removed lexically.
pub fn absolute(path: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(path).ok()?;
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

/// `path` with `.` and `..` removed lexically, kept relative (for messages and hints).
pub fn tidy(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// An absolute path with its longest existing part resolved through links (the rest appended as is).
pub fn real(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            out.extend(rest.iter().rev());
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.pop(),
        ) {
            (Some(name), true) => rest.push(name),
            _ => return path.to_path_buf(),
        }
    }
}

/// Read a file of an output folder only if it is a regular file: a link or a FIFO planted in an output
/// folder is not followed (a link to `/dev/zero` would never end).
pub fn read_regular_file(path: &Path) -> Option<Vec<u8>> {
    let meta = path.symlink_metadata().ok()?;
    meta.is_file().then(|| std::fs::read(path).ok()).flatten()
}

/// `read_regular_file`, for files of at most `max` bytes (`None` when larger, even if it grows
/// while being read).
pub fn read_regular_file_limited(path: &Path, max: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let meta = path.symlink_metadata().ok()?;
    if !meta.is_file() || meta.len() > max {
        return None;
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(max + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() as u64 <= max).then_some(bytes)
}

/// Names a study's template folder may not use: galley writes files of these names into the output
/// folder (a template file of the same name would replace them, or pose as one of them).
pub fn reserved_output_name(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "manuscript.typ",
        "manuscript.pdf",
        "manuscript.html",
        "results.json",
        "provenance.json",
        crate::records::MARKER,
        "trail.json",
        "reproduction.json",
        "style.csl",
        "figures",
        "tables",
        crate::records::CACHE_DIR,
    ];
    RESERVED.contains(&name) || name.starts_with("references.")
}

/// What Typst may read in a galley build, for messages about a file it could not reach.
pub const TYPST_FILES_HINT: &str = "Typst reads only this build's files, never the disk: `manuscript.typ`, `article.typ`, the files of the study's template folder (by name, e.g. \"logo.png\"), `figures/<id>.svg`, `references.*` and `style.csl`; `/` is the output folder";

/// A Typst error about a file, in galley's terms: Typst's own wording speaks of a `--root` argument
/// and a project sandbox that galley users do not have.
pub fn typst_file_message(message: &str, hints: &mut Vec<String>) -> Option<String> {
    if let Some(rest) = message.strip_prefix("path ")
        && let Some(path) = rest.strip_suffix(" would escape the project root")
    {
        hints.retain(|h| !h.contains("--root") && !h.contains("project sandbox"));
        hints.push(TYPST_FILES_HINT.into());
        let path = path.trim_matches('`').trim_matches('"');
        return Some(format!(
            "`{path}` leaves the build's files (`..` above the output folder); a template cannot read outside them"
        ));
    }
    // Our own world's refusal of a package (`render::typeset`), without Typst's "failed to load file".
    if let Some(rest) = message.strip_prefix("failed to load file (package ")
        && let Some(why) = rest.strip_suffix(')')
    {
        return Some(format!("package {why}"));
    }
    if let Some(rest) = message.strip_prefix("file not found (searched at ")
        && let Some(path) = rest.strip_suffix(')')
    {
        hints.push(TYPST_FILES_HINT.into());
        return Some(format!("`/{path}` is not one of the build's files"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_refusals() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve(dir.path(), ""), Err(Refusal::Empty));
        assert_eq!(resolve(dir.path(), "a\0b"), Err(Refusal::Nul));
        assert_eq!(resolve(dir.path(), "/etc/passwd"), Err(Refusal::Absolute));
        assert_eq!(resolve(dir.path(), "a/../../x"), Err(Refusal::Parent));
        assert_eq!(
            resolve(dir.path(), "a/./b.csv"),
            Ok(dir.path().join("a/./b.csv"))
        );
    }

    #[cfg(unix)]
    #[test]
    fn links_are_followed_to_the_end() {
        use std::os::unix::fs::symlink;
        let outer = tempfile::tempdir().unwrap();
        let study = outer.path().join("study");
        std::fs::create_dir_all(study.join("data")).unwrap();
        std::fs::write(outer.path().join("secret.csv"), "x").unwrap();
        std::fs::write(study.join("data/real.csv"), "x").unwrap();
        symlink("../../secret.csv", study.join("data/out.csv")).unwrap();
        symlink("out.csv", study.join("data/chain.csv")).unwrap();
        symlink("real.csv", study.join("data/in.csv")).unwrap();
        symlink(outer.path(), study.join("up")).unwrap();
        symlink("/nonexistent/x", study.join("dangling")).unwrap();
        let secret = outer.path().join("secret.csv").canonicalize().unwrap();
        assert_eq!(
            resolve(&study, "data/chain.csv"),
            Err(Refusal::LinkOutside(secret.clone()))
        );
        assert_eq!(
            resolve(&study, "data/out.csv"),
            Err(Refusal::LinkOutside(secret))
        );
        assert!(resolve(&study, "data/in.csv").is_ok());
        assert!(matches!(
            resolve(&study, "up/new/file"),
            Err(Refusal::LinkOutside(_))
        ));
        assert!(matches!(
            resolve(&study, "dangling"),
            Err(Refusal::BrokenLink(_))
        ));
        assert!(resolve(&study, "data/not-yet/there.csv").is_ok());
    }

    #[test]
    fn within_is_lexical_and_real() {
        let dir = tempfile::tempdir().unwrap();
        let study = dir.path().join("s");
        assert!(is_within(&study.join("output"), &study));
        assert!(is_within(&study.join("a/../output"), &study));
        assert!(!is_within(&study.join("../output"), &study));
        assert!(!is_within(&dir.path().join("s2"), &study));
    }
}
