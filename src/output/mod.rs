//! Writing outputs atomically: everything is staged in a temporary folder beside the destination and
//! swapped in with renames, so a failed or interrupted build never leaves a half-written report, and
//! files that are not galley's in the output root are never touched.

mod guard;
pub use guard::check_output;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::diagnostics::{Diagnostic, Result, io_error};

/// The files of one study's output folder, by relative path (`figures/km.svg`).
#[derive(Debug, Clone, Default)]
pub struct OutputFiles {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl OutputFiles {
    pub fn insert(&mut self, path: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.files.insert(path.into(), bytes.into());
    }
}

/// True when `dest` already holds exactly `files` (same names, same bytes): nothing to write.
pub fn unchanged(dest: &Path, files: &OutputFiles) -> bool {
    let mut on_disk = 0usize;
    let mut stack = vec![dest.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return false;
        };
        for entry in entries.flatten() {
            // Links are not followed (one to `/` would walk the disk, one to a FIFO never ends):
            // anything but folders and regular files means the folder must be rewritten.
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => on_disk += 1,
                _ => return false,
            }
        }
    }
    if on_disk != files.files.len() {
        return false;
    }
    // Smallest first: the records that change with any edit (the typesetting record, the
    // provenance) are small, so a changed build is told apart before the large files are read.
    let mut by_size: Vec<(&String, &Vec<u8>)> = files.files.iter().collect();
    by_size.sort_by_key(|(_, bytes)| bytes.len());
    by_size.into_iter().all(|(rel, bytes)| {
        crate::study::sandbox::read_regular_file(&dest.join(rel)).is_some_and(|b| &b == bytes)
    })
}

/// Replace `dest` (a study's output folder) by exactly `files`.
pub fn write_atomically(dest: &Path, files: &OutputFiles) -> Result<()> {
    let mut staged = Staged::new(dest)?;
    for (rel, bytes) in &files.files {
        staged.write(rel, bytes)?;
    }
    staged.commit()
}

pub use crate::records::MARKER;

/// Largest marker or provenance record read to decide whether a folder is galley's.
const MAX_RECORD_BYTES: u64 = 64 * 1024 * 1024;

/// Most entries an output folder may hold for galley to decide it wrote them (a report has tens).
const MAX_OUTPUT_ENTRIES: usize = 100_000;

/// The marker's bytes for a report of study `name` made of `files` (the marker itself included).
pub fn marker(name: &str, files: &OutputFiles) -> Vec<u8> {
    let mut listed: Vec<&str> = files.files.keys().map(String::as_str).collect();
    listed.push(MARKER);
    listed.sort_unstable();
    listed.dedup();
    let mut bytes = serde_json::to_vec_pretty(&serde_json::json!({
        "galley_output": 1,
        "study": name,
        "files": listed,
    }))
    .unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Whether galley wrote the folder `dir`, as the report of study `name`: `Err` says why not.
///
/// A folder is galley's when its marker names the study and lists every file in it. A report written
/// before the marker existed (galley 0.1 without it) is recognised by its `provenance.json`: it must be
/// galley's record of this study, and the folder may hold only the outputs that record lists, the
/// record itself, and the block cache. So a `provenance.json` alone (`{}`, or a real one copied next
/// to a thesis) never makes a folder replaceable.
pub fn galley_wrote(dir: &Path, name: &str) -> std::result::Result<(), String> {
    let read = |file: &str| {
        crate::study::sandbox::read_regular_file_limited(&dir.join(file), MAX_RECORD_BYTES)
    };
    let listed: HashSet<String> = match read(MARKER) {
        Some(bytes) => {
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| format!("has a `{MARKER}` that is not valid JSON ({e})"))?;
            let study = value.get("study").and_then(|s| s.as_str());
            if study != Some(name) {
                return Err(format!(
                    "is, by its `{MARKER}`, the report of study `{}`, not `{name}`",
                    study.unwrap_or("(none)")
                ));
            }
            let files = value
                .get("files")
                .and_then(|f| f.as_array())
                .ok_or_else(|| {
                    format!("has a `{MARKER}` that lists no files (expected a `files` array)")
                })?;
            files
                .iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        }
        None => {
            let Some(bytes) = read("provenance.json") else {
                return Err("is not a galley report (it has no provenance.json)".into());
            };
            let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                format!("is not a galley report (its provenance.json is not valid JSON: {e})")
            })?;
            let field = |k: &str| value.get(k).and_then(|v| v.as_str());
            if field("galley_version").is_none()
                || !value.get("outputs").is_some_and(|o| o.is_object())
            {
                return Err("is not a galley report (its provenance.json is not a galley record: no `galley_version` or `outputs`)".into());
            }
            if field("study") != Some(name) {
                return Err(format!(
                    "holds the report of another study (its provenance.json is the record of study `{}`, not `{name}`)",
                    field("study").unwrap_or("(none)")
                ));
            }
            let mut listed: HashSet<String> = value["outputs"]
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            listed.insert("provenance.json".into());
            listed
        }
    };
    // Folders on the way to a listed file are galley's too.
    let mut folders: HashSet<String> = HashSet::new();
    for file in &listed {
        let mut at = file.as_str();
        while let Some((parent, _)) = at.rsplit_once('/') {
            folders.insert(parent.to_string());
            at = parent;
        }
    }
    let cache_prefix = format!("{}/", crate::analysis::cache::CACHE_DIR);
    let mut seen = 0usize;
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = stack.pop() {
        let entries =
            std::fs::read_dir(&path).map_err(|e| format!("cannot be read (`{rel}`: {e})"))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot be read (`{rel}`: {e})"))?;
            seen += 1;
            if seen > MAX_OUTPUT_ENTRIES {
                return Err(format!("holds more than {MAX_OUTPUT_ENTRIES} files"));
            }
            let child = match rel.as_str() {
                "" => entry.file_name().to_string_lossy().into_owned(),
                _ => format!("{rel}/{}", entry.file_name().to_string_lossy()),
            };
            // Links are not followed: a link is removed, never its target. A link or a FIFO holds
            // nothing of its own, so one galley did not write does not keep a report from being
            // replaced (planted ones are how a previous build was attacked); files and folders do.
            let kind = entry.file_type().ok();
            let is_dir = kind.is_some_and(|t| t.is_dir());
            let ours = listed.contains(&child)
                || kind.is_some_and(|t| !t.is_dir() && !t.is_file())
                || (is_dir && folders.contains(&child))
                // The cache folder is galley's whichever version wrote its entries (a newer galley
                // meets an older one's entries under keys its marker does not list).
                || child == crate::analysis::cache::CACHE_DIR
                || child.starts_with(&cache_prefix);
            if !ours {
                return Err(format!("holds `{child}`, which galley did not write"));
            }
            if is_dir {
                stack.push((entry.path(), child));
            }
        }
    }
    Ok(())
}

/// A new output folder being written beside `dest`, swapped in by `commit`. Dropped uncommitted (a
/// failed build), it is removed, with the output root if it created it, and `dest` is untouched.
/// Lets a build write the outputs it already has while the PDF is being typeset.
///
/// Every temporary folder is named `.<name>.galley-<pid>-...` beside `dest`, so that a later build
/// can tell the leftovers of a killed process (`recover`) from a build running right now.
pub struct Staged {
    dir: Option<tempfile::TempDir>,
    dest: PathBuf,
    /// The output root, when this build created it.
    created_parent: Option<PathBuf>,
    /// Folders made inside the staging folder so far (each is created once).
    made: HashSet<PathBuf>,
}

/// `dest`'s parent (`.` when it has none) and file name.
fn parent_and_name(dest: &Path) -> (&Path, String) {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "study".into());
    (parent, name)
}

impl Staged {
    pub fn new(dest: &Path) -> Result<Staged> {
        let (parent, name) = parent_and_name(dest);
        let created_parent = (!parent.exists()).then(|| parent.to_path_buf());
        std::fs::create_dir_all(parent)
            .map_err(|e| io_error("create the output folder", parent, &e))?;
        recover(dest);
        let mut staged = Staged {
            dir: None,
            dest: dest.to_path_buf(),
            created_parent,
            made: HashSet::new(),
        };
        staged.dir = Some(
            tempfile::Builder::new()
                .prefix(&format!(".{name}.galley-{}-", std::process::id()))
                .tempdir_in(parent)
                .map_err(|e| io_error("create a temporary folder in", parent, &e))?,
        );
        Ok(staged)
    }

    fn root(&self) -> &Path {
        self.dir.as_ref().expect("open until committed").path()
    }

    /// Write one file (`rel` is `/`-separated, inside the output folder).
    pub fn write(&mut self, rel: &str, bytes: &[u8]) -> Result<()> {
        let path = self.root().join(rel);
        if let Some(dir) = path.parent()
            && !self.made.contains(dir)
        {
            std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, &e))?;
            self.made.insert(dir.to_path_buf());
        }
        std::fs::write(&path, bytes).map_err(|e| io_error("write", &path, &e))?;
        Ok(())
    }

    /// Swap the staged folder in place of `dest`.
    pub fn commit(mut self) -> Result<()> {
        // From here on the swap moves the staged folder, and cleans up after itself.
        let staged = self.dir.take().expect("open until committed").keep();
        let result = swap_into_place(&staged, &self.dest);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staged);
            if let Some(parent) = &self.created_parent {
                let _ = std::fs::remove_dir_all(parent);
            }
        }
        result
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            drop(dir);
            if let Some(parent) = &self.created_parent {
                let _ = std::fs::remove_dir_all(parent);
            }
        }
    }
}

/// Put the complete folder `staged` in place of `dest`, so that whenever the process dies `dest` is
/// either the previous output or the new one, never missing or half-written.
///
/// On Linux the two folders are exchanged in one step (`renameat2(RENAME_EXCHANGE)`), and the
/// previous output, now under the staging name, is removed. Where that is not available (other
/// systems, file systems without it) the previous output is first moved aside to
/// `.<name>.galley-<pid>-prev`, the new one moved in, and the aside copy removed: a process killed
/// between the two renames leaves no `dest`, and the next build puts the aside copy back (`recover`).
fn swap_into_place(staged: &Path, dest: &Path) -> Result<()> {
    let moved_in = |e: std::io::Error| io_error("move the new output into place at", dest, &e);
    fault("before-swap");
    if dest.symlink_metadata().is_err() {
        // Nothing to replace: one rename, atomic.
        return std::fs::rename(staged, dest).map_err(|e| moved_in(e).into());
    }
    match exchange(staged, dest) {
        Ok(()) => {
            fault("after-exchange");
            // `staged` now holds the previous output; a leftover is removed by the next build.
            return remove_previous(staged);
        }
        // Not supported here: the recoverable sequence below.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL | libc::ENOSYS | libc::ENOTSUP)
            ) => {}
        Err(e) => return Err(moved_in(e).into()),
    }
    let (parent, name) = parent_and_name(dest);
    let aside = parent.join(format!(".{name}.galley-{}-prev", std::process::id()));
    std::fs::rename(dest, &aside)
        .map_err(|e| io_error("move the previous output aside", dest, &e))?;
    fault("after-aside");
    if let Err(e) = std::fs::rename(staged, dest) {
        let _ = std::fs::rename(&aside, dest);
        return Err(moved_in(e).into());
    }
    fault("after-move-in");
    remove_previous(&aside)
}

fn remove_previous(old: &Path) -> Result<()> {
    std::fs::remove_dir_all(old).map_err(|e| {
        Diagnostic::error(format!(
            "the new output is in place, but the previous one could not be removed: {e}"
        ))
        .in_file(old)
        .into()
    })
}

/// Exchange two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`, through the system call so
/// that it works with any C library); `ENOSYS` elsewhere, and `EINVAL` on file systems without it.
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    if fault_set("no-exchange") {
        return Err(std::io::Error::from_raw_os_error(libc::ENOSYS));
    }
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
        let (a, b) = (c(a)?, c(b)?);
        // SAFETY: two NUL-terminated paths that outlive the call; the call touches nothing else.
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Err(std::io::Error::from_raw_os_error(libc::ENOSYS))
    }
}

/// Test hook (documented in docs/security.md): `GALLEY_TEST_FAULT` holds comma-separated words;
/// `kill@<point>` kills the process with SIGKILL at that point of the output swap, as a crash or
/// `kill -9` would, and `no-exchange` makes the swap take the sequence used where an atomic
/// exchange is not available. Unset (always, outside galley's tests), it does nothing.
fn fault_set(word: &str) -> bool {
    std::env::var("GALLEY_TEST_FAULT").is_ok_and(|v| v.split(',').any(|w| w.trim() == word))
}

fn fault(point: &str) {
    if fault_set(&format!("kill@{point}")) {
        #[cfg(unix)]
        // SAFETY: sends a signal to this very process; nothing is borrowed.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}

/// Whether process `pid` is running (on Unix; elsewhere only this process counts as running).
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    false
}

/// Clean up after a build of `dest` that was killed while writing: put the previous output back if
/// the kill came between the two renames of the swap, and remove the temporary folders of processes
/// that are no longer running (those of a running build are left alone). Also handles what earlier
/// galley versions left: a stale `.<name>.ready` (the complete new output) and `<name>.old-<pid>`
/// (the previous one, removed only when it is recognisably a galley report of this study).
/// Best effort: what cannot be cleaned now is tried again by the next build.
pub fn recover(dest: &Path) {
    let (parent, name) = parent_and_name(dest);
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let staging = format!(".{name}.galley-");
    let legacy_ready = format!(".{name}.ready");
    let legacy_old = format!("{name}.old-");
    // Aside copies that may be put back, in order of preference; and what is only removed.
    let mut restorable: Vec<PathBuf> = Vec::new();
    let mut leftovers: Vec<PathBuf> = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if let Some(rest) = file.strip_prefix(&staging) {
            // `<pid>-<random>` or `<pid>-prev`; an earlier galley wrote `<random>` with no pid.
            let (pid, tail) = rest.split_once('-').unwrap_or(("", rest));
            match pid.parse::<u32>() {
                Ok(pid) if alive(pid) => continue,
                Ok(_) if tail == "prev" => restorable.push(path),
                _ => leftovers.push(path),
            }
        } else if file == legacy_ready {
            // An earlier galley's complete new output, moved in last: newer than any `.old-`.
            restorable.insert(0, path);
        } else if let Some(pid) = file.strip_prefix(&legacy_old)
            && pid.parse::<u32>().is_ok_and(|p| !alive(p))
            && galley_wrote(&path, &name).is_ok()
        {
            restorable.push(path);
        }
    }
    for candidate in restorable {
        let restored = dest.symlink_metadata().is_err()
            && candidate.is_dir()
            && std::fs::rename(&candidate, dest).is_ok();
        if !restored {
            leftovers.push(candidate);
        }
    }
    for path in leftovers {
        // A link under a staging name is removed itself, never followed.
        let _ = match path.symlink_metadata() {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_folder_and_leaves_siblings_alone() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("study");
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(dest.join("stale.txt"), "old").unwrap();
        std::fs::write(root.path().join("notes.txt"), "mine").unwrap();
        let mut files = OutputFiles::default();
        files.insert("a/b.txt", "new");
        write_atomically(&dest, &files).unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.join("a/b.txt")).unwrap(),
            "new"
        );
        assert!(!dest.join("stale.txt").exists());
        assert_eq!(
            std::fs::read_to_string(root.path().join("notes.txt")).unwrap(),
            "mine"
        );
        let names: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_staged_folder_dropped_uncommitted_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        // The output root does not exist yet: the staging creates it, and removes it again.
        let dest = root.path().join("out/study");
        let mut staged = Staged::new(&dest).unwrap();
        staged.write("figures/a.svg", b"<svg/>").unwrap();
        staged.write("figures/b.svg", b"<svg/>").unwrap();
        drop(staged);
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);

        // An existing folder is untouched by a dropped staging and replaced by a committed one.
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(dest.join("old.txt"), "old").unwrap();
        let mut staged = Staged::new(&dest).unwrap();
        staged.write("new.txt", b"new").unwrap();
        drop(staged);
        assert_eq!(
            std::fs::read_to_string(dest.join("old.txt")).unwrap(),
            "old"
        );
        let mut staged = Staged::new(&dest).unwrap();
        staged.write("tables/t.csv", b"a,b\n").unwrap();
        staged.commit().unwrap();
        assert!(!dest.join("old.txt").exists());
        assert_eq!(std::fs::read(dest.join("tables/t.csv")).unwrap(), b"a,b\n");
        let names: Vec<_> = std::fs::read_dir(root.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["study"]);
    }
}
