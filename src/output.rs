//! Writing outputs atomically: everything is staged in a temporary folder beside the destination and
//! swapped in with renames, so a failed or interrupted build never leaves a half-written report, and
//! files that are not galley's in the output root are never touched.

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
        crate::sandbox::read_regular_file(&dest.join(rel)).is_some_and(|b| &b == bytes)
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

/// A new output folder being written beside `dest`, swapped in by `commit`. Dropped uncommitted (a
/// failed build), it is removed, with the output root if it created it, and `dest` is untouched.
/// Lets a build write the outputs it already has while the PDF is being typeset.
pub struct Staged {
    dir: Option<tempfile::TempDir>,
    dest: PathBuf,
    /// The output root, when this build created it.
    created_parent: Option<PathBuf>,
    /// Folders made inside the staging folder so far (each is created once).
    made: HashSet<PathBuf>,
}

impl Staged {
    pub fn new(dest: &Path) -> Result<Staged> {
        let parent = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "study".into());
        let created_parent = (!parent.exists()).then(|| parent.to_path_buf());
        std::fs::create_dir_all(parent)
            .map_err(|e| io_error("create the output folder", parent, &e))?;
        let mut staged = Staged {
            dir: None,
            dest: dest.to_path_buf(),
            created_parent,
            made: HashSet::new(),
        };
        staged.dir = Some(
            tempfile::Builder::new()
                .prefix(&format!(".{name}.galley-"))
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

fn swap_into_place(staged: &Path, dest: &Path) -> Result<()> {
    let staged_final = staged.with_extension("ready");
    std::fs::rename(staged, &staged_final)
        .map_err(|e| io_error("move the new output into place at", dest, &e))?;
    let old: Option<PathBuf> = if dest.exists() {
        let old = dest.with_extension(format!("old-{}", std::process::id()));
        std::fs::rename(dest, &old).map_err(|e| {
            let _ = std::fs::rename(&staged_final, staged);
            io_error("move the previous output aside", dest, &e)
        })?;
        Some(old)
    } else {
        None
    };
    if let Err(e) = std::fs::rename(&staged_final, dest) {
        if let Some(old) = &old {
            let _ = std::fs::rename(old, dest);
        }
        let _ = std::fs::remove_dir_all(&staged_final);
        return Err(io_error("move the new output into place at", dest, &e).into());
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(&old).map_err(|e| {
            Diagnostic::error(format!(
                "the new output is in place, but the previous one could not be removed: {e}"
            ))
            .in_file(&old)
        })?;
    }
    Ok(())
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
