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
    /// Most memory one manuscript file's templates (or one block's captions and notes) may take
    /// while they are evaluated, in MiB.
    pub template_memory_mb: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            input_file_mb: 512,
            table_rows: 2_000,
            markdown_depth: 32,
            template_seconds: 30.0,
            bootstrap_replicates: 100_000,
            template_memory_mb: 256,
        }
    }
}

/// The names `--limit` and `[limits]` accept, for messages.
pub const NAMES: &str = "input_file_mb, table_rows, markdown_depth, template_seconds, bootstrap_replicates, template_memory_mb";

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
            ("template_memory_mb", self.template_memory_mb),
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
            memory: None,
        }
    }

    /// The limits of evaluating templates: the time limit, and `template_memory_mb` on what the
    /// evaluating thread allocates meanwhile (see `CountingAllocator`).
    pub fn template_limit(&self, what: impl Into<String>, location: Option<Location>) -> TimeLimit {
        TimeLimit {
            memory: Some(self.template_memory_mb.saturating_mul(1024 * 1024)),
            ..self.time_limit(what, location)
        }
    }
}

/// What is being evaluated and for how long it may run: the watchdog's message if it runs over.
#[derive(Debug, Clone)]
pub struct TimeLimit {
    pub limit: Duration,
    pub what: String,
    pub location: Option<Location>,
    /// Bytes the watched thread may allocate (net) while the guard lives; `None`: not counted.
    pub memory: Option<u64>,
}

impl TimeLimit {
    fn over_memory(&self, limit: u64) -> Diagnostic {
        let d = Diagnostic::error(format!(
            "{} needed more than {} MiB of memory (the limit `template_memory_mb`)",
            self.what,
            limit / (1024 * 1024)
        ))
        .hint(
            "is a list or a text repeated or doubled without end (`[1] * 10**9`, `{% set s = s ~ s %}` in a loop)? \
             If the templates really need it, raise `template_memory_mb` under [limits] in study.toml or with --limit template_memory_mb=N",
        );
        match &self.location {
            Some(l) => d.at(l.clone()),
            None => d,
        }
    }

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

/// Watch an evaluation until the guard is dropped (and count its memory, if it has a budget).
pub fn watch(limit: TimeLimit) -> Guard {
    let memory = MemoryGuard::arm(&limit);
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
    Guard {
        id,
        beats,
        _memory: memory,
    }
}

/// An evaluation under watch; dropping it ends the watch.
pub struct Guard {
    id: u64,
    beats: Arc<AtomicU64>,
    _memory: Option<MemoryGuard>,
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

// Template memory. minijinja has no allocator hook, and checking its operations one by one
// cannot bound the class: `[1] * 10**9 | length` materialises a lazy list of 72 GB in one step,
// `{% set s = s ~ s %}` doubles a text thirty times in thirty steps of fuel, and list `+`, dict
// building, `join`, `replace`, `map` or `range` each grow memory their own way (minijinja caps only
// string repetition, at 100 MB). So the process's allocator counts: while a template evaluation
// runs under a guard with a budget, every allocation of the evaluating thread is charged to it
// (net of what it frees), whatever operation made it. Past the budget the allocation is not
// made: the guard's message is printed and the process ends, as for the time limit (an allocator
// cannot fail softly: a null pointer aborts), and `galley watch` restarts itself. Outputs are
// written only after evaluation, so nothing is half-written. Threads without a guard (and every
// thread outside template evaluation) pay one thread-local read per allocation.

/// The global allocator: the system's, with the per-thread template budget (see above).
pub struct CountingAllocator;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[derive(Clone, Copy)]
struct Budget {
    /// Bytes allocated minus freed since the guard was armed (may go below zero).
    used: i64,
    limit: i64,
    /// The limit being enforced (valid while its guard lives); null when not armed.
    owner: *const TimeLimit,
}

const DISARMED: Budget = Budget {
    used: 0,
    limit: 0,
    owner: std::ptr::null(),
};

thread_local! {
    // `const` and without a destructor: usable from the allocator at any time, even while the
    // thread is being torn down.
    static BUDGET: std::cell::Cell<Budget> = const { std::cell::Cell::new(DISARMED) };
}

/// Charge `bytes` (negative: freed) to this thread's budget; `false` if that goes over it.
#[inline]
fn charge(bytes: i64) -> bool {
    BUDGET
        .try_with(|cell| {
            let mut b = cell.get();
            if b.owner.is_null() {
                return true;
            }
            b.used = b.used.saturating_add(bytes);
            if bytes > 0 && b.used > b.limit {
                return false;
            }
            cell.set(b);
            true
        })
        .unwrap_or(true)
}

/// Over budget: disarm (the message allocates), report and end the process.
#[cold]
fn over_budget() -> ! {
    let budget = BUDGET.with(|cell| cell.replace(DISARMED));
    // SAFETY: `owner` points at the `TimeLimit` owned by the live `MemoryGuard` that armed it
    // (it is disarmed when the guard drops), and the guard is on this thread's stack.
    let diagnostic = unsafe { &*budget.owner }.over_memory(budget.limit as u64);
    (HANDLER.get().copied().unwrap_or(exit_with))(&diagnostic)
}

unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if !charge(layout.size() as i64) {
            over_budget();
        }
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if !charge(layout.size() as i64) {
            over_budget();
        }
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        charge(-(layout.size() as i64));
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if !charge(new_size as i64 - layout.size() as i64) {
            over_budget();
        }
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

/// This thread's template budget, armed until dropped (the previous one, if nested, restored).
struct MemoryGuard {
    limit: Box<TimeLimit>,
    previous: Budget,
}

impl MemoryGuard {
    fn arm(limit: &TimeLimit) -> Option<MemoryGuard> {
        let bytes = limit.memory?;
        // Boxed: the budget points at it, so it must not move with the guard.
        let limit = Box::new(limit.clone());
        let budget = Budget {
            used: 0,
            limit: i64::try_from(bytes).unwrap_or(i64::MAX),
            owner: &*limit,
        };
        let previous = BUDGET.with(|cell| cell.replace(budget));
        Some(MemoryGuard { limit, previous })
    }
}

impl Drop for MemoryGuard {
    fn drop(&mut self) {
        let previous = self.previous;
        BUDGET.with(|cell| {
            debug_assert!(
                std::ptr::eq(cell.get().owner, &*self.limit) || cell.get().owner.is_null()
            );
            cell.set(previous)
        });
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
