//! Content-addressed cache of block results, kept in the output folder (`.cache/blocks/`).
//!
//! A block's key hashes galley's version, its kind and spec, the analysis settings, and the content of
//! everything it reads (the datasets and earlier results its spec names). An edited block, or one whose
//! input changed, gets a new key and re-runs; an untouched one is read back. Each entry carries its key
//! and the SHA-256 of its payload: a corrupted, truncated or foreign entry is detected and ignored,
//! never trusted. Only entries used by the latest build are kept.
//!
//! An output folder can come from someone else (a project sent with its `output/`), and anyone can
//! edit an entry together with its `payload_sha256`. So each entry is also sealed with an HMAC under
//! a key of the user's own, kept outside every study and output folder (`key_path`), created on first
//! use: an entry this user's galley did not write is rejected and its block re-runs. The same seal
//! covers the typesetting record that lets a build reuse the previous PDF (`pipeline`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::analysis::artifacts::Artifacts;
use crate::study::dataset::Dataset;

pub use crate::records::CACHE_DIR;

/// What a block produced, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedOutput {
    pub value: serde_json::Value,
    pub dataset: Option<Dataset>,
    pub artifacts: Artifacts,
    pub warnings: Vec<String>,
}

/// The same, borrowed from the block's output: storing never copies a dataset.
#[derive(Serialize)]
pub struct CachedOutputRef<'a> {
    pub value: &'a serde_json::Value,
    pub dataset: Option<&'a Dataset>,
    pub artifacts: &'a Artifacts,
    pub warnings: &'a [String],
}

/// Largest dataset (rows x columns) a cache entry stores. A derived table of a registry-sized CSV
/// would be gigabytes of JSON, costlier to write and read back than to derive again; such a block
/// re-runs on every build (its key still covers what it reads, so later blocks stay cached).
pub const MAX_CACHED_CELLS: usize = 1_000_000;

#[derive(Serialize, Deserialize)]
struct Entry {
    galley: String,
    key: String,
    payload_sha256: String,
    /// HMAC-SHA256 of the key and payload hash under the user's cache key (`seal`).
    seal: String,
    payload: String,
}

/// Where the user's cache key is kept: `$XDG_CACHE_HOME/galley/cache-key`, else
/// `~/.cache/galley/cache-key` (only absolute locations: a relative one would depend on where galley
/// runs, possibly inside a study).
pub fn key_path() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    let base = std::env::var_os("XDG_CACHE_HOME")
        .and_then(absolute)
        .or_else(|| Some(absolute(std::env::var_os("HOME")?)?.join(".cache")))?;
    Some(base.join("galley").join("cache-key"))
}

/// The user's cache key, read or created once per process; `None` (no home folder, a read-only
/// one): nothing is read from a cache nor written to one, every block runs.
fn user_key() -> Option<&'static [u8; 32]> {
    static KEY: OnceLock<Option<[u8; 32]>> = OnceLock::new();
    KEY.get_or_init(|| load_or_create_key(&key_path()?))
        .as_ref()
}

fn load_or_create_key(path: &Path) -> Option<[u8; 32]> {
    let parse = |bytes: Vec<u8>| -> Option<[u8; 32]> {
        hex::decode(std::str::from_utf8(&bytes).ok()?.trim())
            .ok()?
            .try_into()
            .ok()
    };
    if let Some(key) = crate::study::sandbox::read_regular_file_limited(path, 1024).and_then(parse)
    {
        return Some(key);
    }
    let dir = path.parent()?;
    let mut create = std::fs::DirBuilder::new();
    create.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut create, 0o700);
    create.create(dir).ok()?;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).ok()?;
    // Written whole under a temporary name, then linked in place: a concurrent galley sees either
    // no key or a complete one, and the first one linked wins.
    let temporary = dir.join(format!(".cache-key.{}", std::process::id()));
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let written = open.open(&temporary).and_then(|mut f| {
        use std::io::Write;
        f.write_all(hex::encode(key).as_bytes())?;
        f.sync_all()
    });
    let linked = written.and_then(|()| match std::fs::hard_link(&temporary, path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another galley made one meanwhile (use it), or the file there is not a key (replace it).
            match crate::study::sandbox::read_regular_file_limited(path, 1024).and_then(parse) {
                Some(theirs) => {
                    key = theirs;
                    Ok(())
                }
                None => std::fs::rename(&temporary, path),
            }
        }
        other => other,
    });
    let _ = std::fs::remove_file(&temporary);
    linked.ok().map(|()| key)
}

/// HMAC-SHA256 (RFC 2104) of `parts` (each length-prefixed) under the user's key, in hex; `None`
/// without a key.
pub fn seal(parts: &[&[u8]]) -> Option<String> {
    let key = user_key()?;
    let (mut inner_pad, mut outer_pad) = ([0x36u8; 64], [0x5cu8; 64]);
    for (i, k) in key.iter().enumerate() {
        inner_pad[i] ^= k;
        outer_pad[i] ^= k;
    }
    let mut inner = Sha256::new();
    inner.update(inner_pad);
    for part in parts {
        inner.update((part.len() as u64).to_le_bytes());
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(outer_pad);
    outer.update(inner.finalize());
    Some(hex::encode(outer.finalize()))
}

fn entry_seal(key: &str, payload_sha256: &str) -> Option<String> {
    seal(&[
        b"block",
        env!("CARGO_PKG_VERSION").as_bytes(),
        key.as_bytes(),
        payload_sha256.as_bytes(),
    ])
}

#[derive(Debug, Default)]
pub struct BlockCache {
    previous: HashMap<String, Vec<u8>>,
    kept: BTreeMap<String, Vec<u8>>,
    pub hits: Vec<String>,
    pub misses: Vec<String>,
    pub rejected: Vec<String>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl BlockCache {
    /// Read the cache of a previous build in `output_dir` (missing or unreadable: an empty cache).
    pub fn load(output_dir: &Path) -> BlockCache {
        let mut cache = BlockCache::default();
        let dir = output_dir.join(CACHE_DIR).join("blocks");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return cache;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Regular files only: a link planted in the cache is not followed.
            if let Some(key) = name.strip_suffix(".json")
                && entry.file_type().is_ok_and(|t| t.is_file())
                && let Ok(bytes) = std::fs::read(entry.path())
            {
                cache.previous.insert(key.to_string(), bytes);
            }
        }
        cache
    }

    /// The stored output for `key`, if present and intact.
    pub fn get(&mut self, key: &str, block: &str) -> Option<CachedOutput> {
        let bytes = self.previous.get(key)?;
        let output = match parsed_before(key, bytes) {
            Some(output) => Some(output),
            None => {
                let valid = serde_json::from_slice::<Entry>(bytes).ok().filter(|e| {
                    e.key == key
                        && e.galley == env!("CARGO_PKG_VERSION")
                        && sha256_hex(e.payload.as_bytes()) == e.payload_sha256
                        && entry_seal(key, &e.payload_sha256).as_ref() == Some(&e.seal)
                });
                let output =
                    valid.and_then(|e| serde_json::from_str::<CachedOutput>(&e.payload).ok());
                if let Some(output) = &output {
                    remember(key, bytes, output);
                }
                output
            }
        };
        match output {
            Some(output) => {
                self.kept.insert(key.to_string(), bytes.clone());
                self.hits.push(block.to_string());
                Some(output)
            }
            None => {
                self.rejected.push(block.to_string());
                None
            }
        }
    }

    pub fn put(&mut self, key: &str, block: &str, output: &CachedOutputRef) {
        self.misses.push(block.to_string());
        if output
            .dataset
            .is_some_and(|d| d.n_rows.saturating_mul(d.columns.len()) > MAX_CACHED_CELLS)
        {
            return;
        }
        // An output that cannot be serialised is not cached (the block runs again next time);
        // nothing is written in its place.
        let Ok(payload) = serde_json::to_string(output) else {
            return;
        };
        let payload_sha256 = sha256_hex(payload.as_bytes());
        // Without a key nothing is stored: an unsealed entry would never be read back.
        let Some(seal) = entry_seal(key, &payload_sha256) else {
            return;
        };
        let entry = Entry {
            galley: env!("CARGO_PKG_VERSION").to_string(),
            key: key.to_string(),
            payload_sha256,
            seal,
            payload,
        };
        if let Ok(bytes) = serde_json::to_vec(&entry) {
            self.kept.insert(key.to_string(), bytes);
        }
    }

    /// The cache files to write with the outputs (relative paths).
    pub fn files(&self) -> impl Iterator<Item = (String, &Vec<u8>)> {
        self.kept
            .iter()
            .map(|(k, v)| (format!("{CACHE_DIR}/blocks/{k}.json"), v))
    }
}

/// Entries already checked and parsed by this process, with the exact bytes they were read from:
/// `galley watch` reads the same entries at every rebuild, and parsing them is most of a cached
/// block's time. Only byte-identical entries are answered from here, so a changed or corrupted file
/// is checked again. Off unless the process rebuilds (`keep_parsed_entries`): a single build would
/// only pay for the copies.
type Parsed = HashMap<String, (Vec<u8>, CachedOutput)>;

static KEEP_PARSED: AtomicBool = AtomicBool::new(false);

/// Keep parsed entries for the process's next builds (`galley watch`).
pub fn keep_parsed_entries() {
    KEEP_PARSED.store(true, Ordering::Relaxed);
}

fn parsed() -> std::sync::MutexGuard<'static, Parsed> {
    static PARSED: OnceLock<Mutex<Parsed>> = OnceLock::new();
    PARSED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn parsed_before(key: &str, bytes: &[u8]) -> Option<CachedOutput> {
    if !KEEP_PARSED.load(Ordering::Relaxed) {
        return None;
    }
    parsed()
        .get(key)
        .filter(|(read, _)| read == bytes)
        .map(|(_, output)| output.clone())
}

fn remember(key: &str, bytes: &[u8], output: &CachedOutput) {
    if !KEEP_PARSED.load(Ordering::Relaxed) {
        return;
    }
    let mut parsed = parsed();
    // Bounded: a long watch session's superseded entries are dropped wholesale now and then.
    if parsed.len() >= 256 {
        parsed.clear();
    }
    parsed.insert(key.to_string(), (bytes.to_vec(), output.clone()));
}

/// The key of a block: its version, kind, spec, settings and the content hashes of what it reads.
pub fn block_key(
    kind: &str,
    body: &str,
    settings: &str,
    dependencies: &[(String, String)],
) -> String {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    for part in [kind, body, settings] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    for (name, hash) in dependencies {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(hash.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Names a spec mentions (every string value, recursively): a block depends on those that are
/// datasets or earlier results.
pub fn mentioned_names(table: &toml::Table) -> Vec<String> {
    fn walk(v: &toml::Value, out: &mut Vec<String>) {
        match v {
            toml::Value::String(s) => out.push(s.clone()),
            toml::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            toml::Value::Table(t) => t.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (k, v) in table {
        if k != "id" && k != "kind" {
            walk(v, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_cache(dir: &Path, cache: &BlockCache) {
        for (path, bytes) in cache.files() {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }

    /// The process keeps parsed entries between builds (`galley watch`), but an entry whose file
    /// changed in between is checked again, and a corrupted one is still rejected.
    #[test]
    fn an_entry_corrupted_between_builds_of_one_process_is_rejected() {
        keep_parsed_entries();
        let dir = tempfile::tempdir().unwrap();
        let key = block_key("test", "an entry corrupted between builds", "", &[]);
        let value = serde_json::json!({"n": 25});
        let output = CachedOutputRef {
            value: &value,
            dataset: None,
            artifacts: &Artifacts::default(),
            warnings: &[],
        };
        let mut first = BlockCache::default();
        first.put(&key, "b", &output);
        write_cache(dir.path(), &first);

        for _ in 0..2 {
            let mut cache = BlockCache::load(dir.path());
            let hit = cache.get(&key, "b").expect("an intact entry is a hit");
            assert_eq!(hit.value, value);
        }
        let file = dir.path().join(format!("{CACHE_DIR}/blocks/{key}.json"));
        let text = std::fs::read_to_string(&file).unwrap();
        let tampered = text.replacen("25", "26", 1);
        assert_ne!(tampered, text);
        std::fs::write(&file, tampered).unwrap();
        let mut cache = BlockCache::load(dir.path());
        assert!(cache.get(&key, "b").is_none());
        assert_eq!(cache.rejected, ["b"]);
    }
}
