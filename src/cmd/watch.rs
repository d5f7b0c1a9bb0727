//! `galley watch`: rebuild a study on every change to its folder (debounced), print what each rebuild
//! wrote or the diagnostics of a failed one, and go on watching. With `--serve`, the live preview
//! (`serve.rs`) shows every successful rebuild, or the error of a failed one, in the browser.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

use crate::cmd::console::{Console, written_lines};
use crate::cmd::serve::LiveServer;
use crate::diagnostics::{Diagnostic, Result};
use crate::pipeline::{self, BuildOptions, BuildReport};

/// Quiet time after the last change before rebuilding (editors write a file in several steps).
const DEBOUNCE: Duration = Duration::from_millis(200);

pub struct WatchOptions {
    pub study: PathBuf,
    pub build: BuildOptions,
    /// Serve the preview on this port of 127.0.0.1.
    pub serve: Option<u16>,
    pub console: Console,
}

/// Watch until the process is stopped (Ctrl-C). Returns only if watching itself fails.
pub fn watch(mut options: WatchOptions) -> Result<()> {
    let study = options.study.canonicalize().map_err(|_| {
        Diagnostic::error(format!(
            "study folder `{}` does not exist",
            options.study.display()
        ))
        .hint("give the path of a folder that holds a study.toml, e.g. `galley watch study/demo`")
    })?;
    if options.serve.is_some() {
        options.build.formats.html = true;
    }
    let console = options.console;
    // Checked before the output root is created: it must lie outside the study (`study::sandbox`).
    let name = study.file_name().map(PathBuf::from).unwrap_or_default();
    crate::output::check_output(&study, &options.build.out, &options.build.out.join(name))?;
    let _ = std::fs::create_dir_all(&options.build.out);
    let out = options
        .build
        .out
        .canonicalize()
        .unwrap_or_else(|_| options.build.out.clone());

    let server = match options.serve {
        Some(port) => {
            let name = study
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let server = LiveServer::start(port, &name).map_err(|e| {
                Diagnostic::error(e.to_string())
                    .hint("another program uses this port: choose another with --port N (0 picks a free one)")
            })?;
            // Always printed (even with --quiet): it is how the user, and a test, find the page.
            println!("serving {} (127.0.0.1 only; Ctrl-C to stop)", server.url());
            Some(server)
        }
        None => None,
    };

    let (tx, rx) = mpsc::channel();
    // Links are not followed: a study holding a link to `/` would otherwise have the whole disk
    // watched (and rebuild on changes outside it).
    let mut watcher = notify::RecommendedWatcher::new(
        move |event| {
            let _ = tx.send(event);
        },
        notify::Config::default().with_follow_symlinks(false),
    )
    .map_err(|e| Diagnostic::error(format!("cannot watch the study folder: {e}")))?;
    watcher
        .watch(&study, RecursiveMode::Recursive)
        .map_err(|e| Diagnostic::error(format!("cannot watch `{}`: {e}", study.display())))?;
    console.info(format!(
        "watching {} for changes (Ctrl-C to stop)",
        options.study.display()
    ));

    crate::study::limits::set_expiry_handler(restart);
    if std::env::var_os(RESTARTED).is_some() {
        eprintln!("restarted after an evaluation ran past its time limit; waiting for a change");
    } else {
        rebuild(&options, server.as_ref(), None);
    }
    loop {
        // Wait for a relevant change, then for quiet.
        let mut changed: Option<PathBuf> = None;
        while changed.is_none() {
            match rx.recv() {
                Ok(Ok(event)) => changed = relevant(&event, &study, &out),
                Ok(Err(e)) => eprintln!("warning: watching: {e}"),
                Err(_) => return Ok(()),
            }
        }
        loop {
            match rx.recv_timeout(DEBOUNCE) {
                Ok(Ok(event)) => {
                    if let Some(p) = relevant(&event, &study, &out) {
                        changed = Some(p);
                    }
                }
                Ok(Err(_)) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
        let shown = changed
            .as_deref()
            .and_then(|p| p.strip_prefix(&study).ok())
            .map(|p| p.to_string_lossy().into_owned());
        rebuild(&options, server.as_ref(), shown.as_deref());
    }
}

/// Set in the environment of a watch restarted by [`restart`]: it waits for a change instead of
/// building the same runaway input again.
const RESTARTED: &str = "GALLEY_WATCH_RESTARTED";

/// A template or expression ran past its time limit. Its thread cannot be stopped, so the watch
/// replaces its own process image with a fresh `galley watch` (same arguments), which ends every
/// thread and keeps watching: the author fixes the file and the next change rebuilds.
fn restart(diagnostic: &Diagnostic) -> ! {
    eprintln!("{diagnostic}\n");
    eprintln!("galley watch: restarting to stop it; fix the file and save to rebuild");
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        if let Ok(exe) = std::env::current_exe() {
            let err = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env(RESTARTED, "1")
                .exec();
            eprintln!("error: cannot restart galley watch: {err}");
        }
    }
    std::process::exit(1)
}

/// The changed path, if the event is a change to a file of the study (not the output, not an editor's
/// swap or backup file, not a hidden file inside the study; the study itself may well live under a
/// hidden folder, such as a temporary one).
fn relevant(event: &notify::Event, study: &Path, out: &Path) -> Option<PathBuf> {
    if matches!(event.kind, EventKind::Access(_) | EventKind::Other) {
        return None;
    }
    event
        .paths
        .iter()
        .find(|p| {
            !p.starts_with(out)
                && !p.strip_prefix(study).unwrap_or(p).components().any(|c| {
                    let c = c.as_os_str().to_string_lossy();
                    c.starts_with('.') && c != "." && c != ".."
                })
                && p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    !(n.ends_with('~')
                        || n.ends_with(".swp")
                        || n.ends_with(".swx")
                        || n.ends_with(".tmp")
                        || n == "4913"
                        || n.starts_with("#"))
                })
        })
        .cloned()
}

/// One rebuild as `galley watch` runs it: the build (fonts, CSL locales, parsed sources and Typst's
/// memoised work are kept by the process from one rebuild to the next), then the eviction of what
/// recent rebuilds have not used.
pub fn build_once(study: &Path, options: &BuildOptions) -> Result<BuildReport> {
    crate::analysis::cache::keep_parsed_entries();
    let result = pipeline::build(study, options);
    crate::render::typeset::evict_cache();
    result
}

fn rebuild(options: &WatchOptions, server: Option<&LiveServer>, changed: Option<&str>) {
    let console = options.console;
    if let Some(s) = server {
        s.building();
    }
    if let Some(file) = changed {
        console.info(format!("\n{file} changed: rebuilding"));
    }
    let (spinner, progress) = console.spinner("building");
    let mut build = options.build.clone();
    build.progress = progress;
    let start = Instant::now();
    let result = build_once(&options.study, &build);
    drop(spinner);
    let seconds = start.elapsed().as_secs_f64();
    match result {
        Ok(report) => {
            for w in &report.warnings {
                eprintln!("{w}\n");
            }
            if console.verbose {
                eprint!("{}", crate::cmd::console::format_timings(&report));
            }
            // Milliseconds: an incremental rebuild takes a few tens of them ("0.0 s" says nothing).
            console.info(format!("built in {:.0} ms", seconds * 1000.0));
            if !console.quiet {
                for line in written_lines(&report) {
                    println!("{line}");
                }
            }
            if let Some(s) = server {
                match std::fs::read(report.output_dir.join("manuscript.html")) {
                    Ok(html) => s.publish_html(html),
                    Err(e) => {
                        s.publish_error(format!("the HTML manuscript could not be read: {e}"))
                    }
                }
            }
        }
        Err(failure) => {
            eprintln!("{failure}");
            let n = failure.diagnostics.iter().filter(|d| d.is_error()).count();
            eprintln!(
                "\nerror: the build failed after {seconds:.1} s ({n} problem{}); the previous outputs are untouched. Watching for the next change.",
                if n == 1 { "" } else { "s" }
            );
            if let Some(s) = server {
                s.publish_error(failure.to_string());
            }
        }
    }
}
