//! Content-addressed cache of block results, kept in the output folder (`.cache/blocks/`).
//!
//! A block's key hashes galley's version, its kind and spec, the analysis settings, and the content of
//! everything it reads (the datasets and earlier results its spec names). An edited block, or one whose
//! input changed, gets a new key and re-runs; an untouched one is read back. Each entry carries its key
//! and the SHA-256 of its payload: a corrupted, truncated or foreign entry is detected and ignored,
//! never trusted. Only entries used by the latest build are kept.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::artifacts::Artifacts;
use crate::dataset::Dataset;

pub const CACHE_DIR: &str = ".cache";

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
    payload: String,
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
        let Ok(payload) = serde_json::to_string(output) else {
            return;
        };
        let entry = Entry {
            galley: env!("CARGO_PKG_VERSION").to_string(),
            key: key.to_string(),
            payload_sha256: sha256_hex(payload.as_bytes()),
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
