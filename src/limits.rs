//! Resource limits: how much one build may read, evaluate and typeset.
//!
//! Study folders travel between collaborators, reviewers and journals, so a build must end, and end
//! with a message, whatever a folder holds: a registry-sized CSV, a table of every patient, Markdown
//! nested ten thousand levels, a template loop that never ends. Each limit has a default that a
//! real manuscript stays far below, can be raised in `study.toml` (`[limits]`) when a study really
//! needs more, and can be set on the command line (`--limit NAME=VALUE`, which wins over the
//! manifest: a reviewer building an untrusted folder decides, not the folder).
//!
//! Time limits are kept by a watchdog thread. minijinja's fuel counts template instructions, but
//! some built-in operations run unboundedly long inside one instruction (`{{ 24**12 * [] }}` is a
//! lazy list that iterates 10^16 times yielding nothing; a `join` of a long list in a loop), and a
//! Rust thread cannot be stopped from outside. So the watchdog ends the process with a clear
//! message instead (`galley watch` restarts itself). Nothing is half-written: time limits guard the
//! evaluation stages, and outputs are only written, atomically, after them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::diagnostics::{Diagnostic, Location};

/// Typst refuses markup nested deeper than this (its parser's own limit); galley writes about two
/// levels of markup for each level of Markdown, plus the template's own.
pub const MAX_MARKDOWN_DEPTH: usize = 100;

/// The limits of one build (`[limits]` in study.toml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest input file read (a CSV, a manuscript file, ...), in MiB. A build holds about ten
    /// times a CSV's size in memory (typed columns, derived tables, model matrices).
    pub input_file_mb: u64,
    /// Most rows a table in the manuscript may have (its CSV under `tables/` is not typeset).
    pub table_rows: usize,
    /// Deepest nesting of Markdown containers (lists, block quotes, emphasis, links) in the prose.
    pub markdown_depth: usize,
    /// Longest a template file, a caption or a row expression may take to evaluate, in seconds
    /// (for a row expression: the longest any one row may take).
    pub template_seconds: f64,
    /// Most bootstrap replicates a block may ask for.
    pub bootstrap_replicates: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            input_file_mb: 512,
            table_rows: 2_000,
            markdown_depth: 32,
            template_seconds: 30.0,
            bootstrap_replicates: 100_000,
        }
    }
}

/// The names `--limit` and `[limits]` accept, for messages.
pub const NAMES: &str =
    "input_file_mb, table_rows, markdown_depth, template_seconds, bootstrap_replicates";

impl Limits {
    /// Check the values are usable; `Err` says which is not and why.
    pub fn validate(&self) -> Result<(), String> {
        let secs = self.template_seconds;
        if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
            return Err(format!(
                "`template_seconds` is {secs}, expected a number of seconds above 0 and at most 86400"
            ));
        }
        if self.markdown_depth == 0 || self.markdown_depth > MAX_MARKDOWN_DEPTH {
            return Err(format!(
                "`markdown_depth` is {}, expected 1 to {MAX_MARKDOWN_DEPTH} (Typst refuses deeper markup)",
                self.markdown_depth
            ));
        }
        for (name, value) in [
            ("input_file_mb", self.input_file_mb),
            ("table_rows", self.table_rows as u64),
            ("bootstrap_replicates", self.bootstrap_replicates),
        ] {
            if value == 0 {
                return Err(format!("`{name}` is 0, expected at least 1"));
            }
        }
        Ok(())
    }

    /// Apply `NAME=VALUE` overrides from the command line.
    pub fn with_overrides(&self, overrides: &[String]) -> Result<Limits, String> {
        let mut table = toml::Table::try_from(self).map_err(|e| e.to_string())?;
        for item in overrides {
            let Some((name, value)) = item.split_once('=') else {
                return Err(format!(
                    "--limit `{item}`: expected NAME=VALUE, e.g. --limit table_rows=5000 (names: {NAMES})"
                ));
            };
            let name = name.trim();
            let parsed: toml::Table = toml::from_str(&format!("v = {}", value.trim()))
                .map_err(|_| format!("--limit `{item}`: `{}` is not a number", value.trim()))?;
            let Some(current) = table.get(name) else {
                return Err(format!(
                    "--limit `{item}`: there is no limit `{name}` (names: {NAMES})"
                ));
            };
            // `template_seconds=5` is an integer in TOML; the field is a float.
            let value = match (current, &parsed["v"]) {
                (toml::Value::Float(_), toml::Value::Integer(i)) => toml::Value::Float(*i as f64),
                (_, v) => v.clone(),
            };
            table.insert(name.to_string(), value);
        }
        let limits: Limits = table
            .try_into()
            .map_err(|e: toml::de::Error| format!("--limit: {}", e.message()))?;
        limits.validate().map_err(|m| format!("--limit: {m}"))?;
        Ok(limits)
    }

    pub fn input_file_bytes(&self) -> u64 {
        self.input_file_mb.saturating_mul(1024 * 1024)
    }

    /// A time limit on evaluating something, for the watchdog.
    pub fn time_limit(&self, what: impl Into<String>, location: Option<Location>) -> TimeLimit {
        TimeLimit {
            limit: Duration::from_secs_f64(self.template_seconds),
            what: what.into(),
            location,
        }
    }
}

/// What is being evaluated and for how long it may run: the watchdog's message if it runs over.
#[derive(Debug, Clone)]
pub struct TimeLimit {
    pub limit: Duration,
    pub what: String,
    pub location: Option<Location>,
}

impl TimeLimit {
    fn expired(&self) -> Diagnostic {
        let d = Diagnostic::error(format!(
            "{} ran for more than {} s without finishing (the limit `template_seconds`)",
            self.what,
            self.limit.as_secs_f64()
        ))
        .hint(
            "is there a loop that never ends, or a list repeated without end (`[] * 10**12`)? \
             If it is just slow, raise `template_seconds` under [limits] in study.toml or with --limit template_seconds=N",
        );
        match &self.location {
            Some(l) => d.at(l.clone()),
            None => d,
        }
    }
}

/// What the watchdog does when a time limit passes: print the message and end the process.
/// `galley watch` replaces it to restart itself instead.
pub type ExpiryHandler = fn(&Diagnostic) -> !;

fn exit_with(diagnostic: &Diagnostic) -> ! {
    eprintln!("{diagnostic}");
    eprintln!("\nerror: 1 problem found; nothing was written");
    std::process::exit(1)
}

static HANDLER: OnceLock<ExpiryHandler> = OnceLock::new();

/// Set what happens when a time limit passes (once per process; later calls are ignored).
pub fn set_expiry_handler(handler: ExpiryHandler) {
    let _ = HANDLER.set(handler);
}

struct Watched {
    id: u64,
    limit: TimeLimit,
    /// Progress beats: a long row-by-row evaluation is alive as long as rows keep finishing.
    beats: Arc<AtomicU64>,
    seen_beats: u64,
    since: Instant,
}

#[derive(Default)]
struct Watchdog {
    watched: Mutex<Vec<Watched>>,
    next_id: AtomicU64,
}

fn watchdog() -> &'static Watchdog {
    static DOG: OnceLock<Watchdog> = OnceLock::new();
    DOG.get_or_init(|| {
        std::thread::Builder::new()
            .name("galley-watchdog".into())
            .spawn(patrol)
            .expect("spawn the watchdog thread");
        Watchdog::default()
    })
}

/// Check the watched evaluations every 50 ms; end the process when one has run past its limit
/// without progress.
fn patrol() {
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        let expired = {
            let mut watched = match watchdog().watched.lock() {
                Ok(w) => w,
                Err(poisoned) => poisoned.into_inner(),
            };
            let mut expired = None;
            for w in watched.iter_mut() {
                let beats = w.beats.load(Ordering::Relaxed);
                if beats != w.seen_beats {
                    w.seen_beats = beats;
                    w.since = now;
                } else if now.duration_since(w.since) > w.limit.limit {
                    expired = Some(w.limit.expired());
                    break;
                }
            }
            expired
        };
        if let Some(diagnostic) = expired {
            (HANDLER.get().copied().unwrap_or(exit_with))(&diagnostic);
        }
    }
}

/// Watch an evaluation until the guard is dropped.
pub fn watch(limit: TimeLimit) -> Guard {
    let dog = watchdog();
    let id = dog.next_id.fetch_add(1, Ordering::Relaxed);
    let beats = Arc::new(AtomicU64::new(0));
    let mut watched = match dog.watched.lock() {
        Ok(w) => w,
        Err(poisoned) => poisoned.into_inner(),
    };
    watched.push(Watched {
        id,
        limit,
        beats: beats.clone(),
        seen_beats: 0,
        since: Instant::now(),
    });
    Guard { id, beats }
}

/// An evaluation under watch; dropping it ends the watch.
pub struct Guard {
    id: u64,
    beats: Arc<AtomicU64>,
}

impl Guard {
    /// Progress (one row done): the time limit restarts.
    pub fn beat(&self) {
        self.beats.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut watched = match watchdog().watched.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        watched.retain(|w| w.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Limits::default().validate().unwrap();
    }

    #[test]
    fn overrides_apply_and_are_checked() {
        let l = Limits::default()
            .with_overrides(&["table_rows=5000".into(), "template_seconds=2".into()])
            .unwrap();
        assert_eq!(l.table_rows, 5000);
        assert_eq!(l.template_seconds, 2.0);
        let err = |o: &str| Limits::default().with_overrides(&[o.into()]).unwrap_err();
        assert!(
            err("rows=5").contains("there is no limit `rows`"),
            "{}",
            err("rows=5")
        );
        assert!(err("table_rows").contains("expected NAME=VALUE"));
        assert!(err("table_rows=many").contains("is not a number"));
        assert!(err("markdown_depth=1000").contains("expected 1 to 100"));
        assert!(err("template_seconds=0").contains("above 0"));
        assert!(
            err("table_rows=-3").contains("--limit"),
            "{}",
            err("table_rows=-3")
        );
    }
}
