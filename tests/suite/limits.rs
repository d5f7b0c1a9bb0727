//! Resource limits (issue 9): each hostile input stops with a clear message naming the file and the
//! limit, exits 1 and writes nothing; each limit can be raised or lowered from `[limits]` and from
//! `--limit`, and a bad limit is itself a located error.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{galley, root, stderr};

/// A fresh `galley new` study in a temporary folder; the manuscript's prose is replaced by `prose`
/// (a heading and a paragraph unless given) and its abstract by one plain sentence.
fn study(prose: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let made = galley(&["new", path.to_str().unwrap()], &root());
    assert!(made.status.success(), "{}", stderr(&made));
    std::fs::write(path.join("manuscript/abstract.md"), "A short abstract.\n").unwrap();
    if let Some(prose) = prose {
        std::fs::write(path.join("manuscript/main.md"), prose).unwrap();
    }
    (dir, path)
}

fn append_manifest(study: &Path, text: &str) {
    let manifest = study.join("study.toml");
    let mut toml = std::fs::read_to_string(&manifest).unwrap();
    toml.push_str(text);
    std::fs::write(manifest, toml).unwrap();
}

/// `galley build <study> --out <tmp> [extra]` must fail with exit code 1 and every fragment in its
/// diagnostics, without a panic and without writing anything.
fn build_fails(study: &Path, extra: &[&str], expected: &[&str]) -> String {
    let out = tempfile::tempdir().unwrap();
    let mut args = vec![
        "build",
        study.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let result = galley(&args, &root());
    let err = stderr(&result);
    assert_eq!(result.status.code(), Some(1), "exit code\n{err}");
    for fragment in expected {
        assert!(err.contains(fragment), "expected `{fragment}` in:\n{err}");
    }
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    let written: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert!(written.is_empty(), "a failed build wrote {written:?}");
    err
}

fn check_ok(study: &Path, extra: &[&str]) {
    let mut args = vec!["check", study.to_str().unwrap()];
    args.extend_from_slice(extra);
    let result = galley(&args, &root());
    assert!(result.status.success(), "{}", stderr(&result));
}

/// Grow the study's CSV past `mib` MiB with valid rows (unique ids), so the only problem is size.
fn grow_csv(study: &Path, mib: usize) {
    let path = study.join("data/patients.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let mut out = format!("{header}\n");
    let mut i = 0;
    while out.len() <= mib * 1024 * 1024 {
        let row = rows[i % rows.len()];
        let (_, rest) = row.split_once(',').unwrap();
        out.push_str(&format!("X{i:07},{rest}\n"));
        i += 1;
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn a_csv_larger_than_input_file_mb_is_refused_before_it_is_read() {
    let (_dir, s) = study(None);
    grow_csv(&s, 1);
    append_manifest(&s, "\n[limits]\ninput_file_mb = 1\n");
    build_fails(
        &s,
        &[],
        &[
            "data file of table `patients` `data/patients.csv` is 2 MiB, more than the limit of 1 MiB (`input_file_mb`)",
            "study.toml:",
            "--limit input_file_mb=N",
        ],
    );
    // The command line decides over the manifest (a reviewer may raise or lower it).
    check_ok(&s, &["--limit", "input_file_mb=2"]);
}

#[test]
fn the_command_line_can_lower_a_limit_the_manifest_does_not_set() {
    let (_dir, s) = study(None);
    grow_csv(&s, 1);
    check_ok(&s, &[]);
    build_fails(
        &s,
        &["--limit", "input_file_mb=1"],
        &["more than the limit of 1 MiB"],
    );
}

#[test]
fn a_data_file_that_is_a_pipe_is_refused_not_read_forever() {
    let (_dir, s) = study(None);
    let csv = s.join("data/patients.csv");
    std::fs::remove_file(&csv).unwrap();
    let made = Command::new("mkfifo").arg(&csv).status().unwrap();
    assert!(made.success());
    build_fails(
        &s,
        &[],
        &["`data/patients.csv` is not a regular file (a device, FIFO or socket); expected a file"],
    );
}

#[test]
fn a_table_longer_than_table_rows_is_refused_at_its_block() {
    // The example's survival table has one row per treatment (2 rows); its Cox table has 11.
    let (_dir, s) = study(None);
    check_ok(&s, &["--limit", "table_rows=11"]);
    let err = build_fails(
        &s,
        &["--limit", "table_rows=2"],
        &[
            "the table of block `cox` has 11 rows, more than the limit of 2 rows in the manuscript (`table_rows`)",
            "manuscript/main.md:",
        ],
    );
    assert!(!err.contains("block `km`"), "{err}");
    build_fails(
        &s,
        &["--limit", "table_rows=1"],
        &[
            "the table of block `km` has 2 rows",
            "the table of block `cox` has 11 rows",
        ],
    );
}

#[test]
fn markdown_nested_ten_thousand_levels_is_refused_at_its_line() {
    for (what, deep) in [
        ("quotes", ">".repeat(10_000) + " deep"),
        ("lists", "- ".repeat(10_000) + "deep"),
        (
            "emphasis",
            format!("{}deep{}", "*".repeat(10_000), "*".repeat(10_000)),
        ),
    ] {
        let (_dir, s) = study(Some(&format!("# Results\n\nFine so far.\n\n{deep}\n")));
        let err = build_fails(
            &s,
            &[],
            &[
                "more than the limit of 32 (`markdown_depth`)",
                "manuscript/main.md:5:",
            ],
        );
        assert!(err.contains("levels deep"), "{what}: {err}");
    }
    // Within the limit, nesting is fine; and the limit is settable.
    let nested = format!("# Results\n\n{}deep\n", "- ".repeat(12));
    let (_dir, s) = study(Some(&nested));
    check_ok(&s, &[]);
    build_fails(
        &s,
        &["--limit", "markdown_depth=8"],
        &["more than the limit of 8"],
    );
}

#[test]
fn a_template_that_never_ends_is_stopped_at_template_seconds() {
    for (what, prose) in [
        // A lazy list repeated 3.6e16 times: minijinja spends no fuel iterating it.
        ("empty list repeated", "{{ 24**12 * [] }}"),
        (
            "quadratic join",
            "{% set x = range(100000) | list %}{% for a in x %}{% set y = x | join(',') %}{% endfor %}",
        ),
    ] {
        let (_dir, s) = study(Some(&format!("# Results\n\n{prose}\n")));
        let started = Instant::now();
        let err = build_fails(
            &s,
            &["--limit", "template_seconds=1"],
            &[
                "evaluating the templates of `manuscript/main.md` ran for more than 1 s without finishing (the limit `template_seconds`)",
                "a loop that never ends",
            ],
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: the watchdog did not stop it in time: {err}"
        );
    }
}

#[test]
fn a_loop_that_runs_out_of_fuel_is_stopped_by_steps() {
    let prose = "# Results\n\n{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}\n";
    let (_dir, s) = study(Some(prose));
    build_fails(
        &s,
        &[],
        &["is there a loop that never ends?", "manuscript/main.md:3"],
    );
}

/// Row expressions have no loops and no lazy sequences, so a row costs time in proportion to the
/// expression's length: what ran without end under the template engine (repeating a lazy list,
/// filters) or would overflow (deep nesting, huge powers) is a located error before any long run.
#[test]
fn hostile_row_expressions_are_refused_at_once() {
    let deep = format!("{}age{}", "(".repeat(500), ")".repeat(500));
    let cases: [(&str, &str); 5] = [
        (
            "(24**12 * []) | list | length",
            "filters (`|`) belong to the prose templates",
        ),
        (
            "24**12 * []",
            "needs two numbers, found a number and a list",
        ),
        (&deep, "nests more than 64 levels deep"),
        ("2 ** 10 ** 18", "a whole-number power needs an exponent"),
        ("2.0 ** 1e308", "is not a finite number"),
    ];
    for (expression, message) in cases {
        let (_dir, s) = study(None);
        let main = s.join("manuscript/main.md");
        let text = std::fs::read_to_string(&main).unwrap();
        let text = text.replace(
            "age10 = { expr = \"age / 10\"",
            &format!("age10 = {{ expr = \"{expression}\""),
        );
        assert!(
            text.contains(expression),
            "the example's derive block moved"
        );
        std::fs::write(&main, text).unwrap();
        build_fails(
            &s,
            &["--limit", "template_seconds=1"],
            &[message, "`age10`"],
        );
    }
}

#[test]
fn bad_limits_are_located_errors() {
    let (_dir, s) = study(None);
    append_manifest(&s, "\n[limits]\ntable_rowz = 3\n");
    build_fails(&s, &[], &["unknown field `table_rowz`", "study.toml:"]);

    let (_dir, s) = study(None);
    append_manifest(&s, "\n[limits]\nmarkdown_depth = 1000\n");
    build_fails(
        &s,
        &[],
        &["[limits]: `markdown_depth` is 1000, expected 1 to 100"],
    );

    let (_dir, s) = study(None);
    build_fails(
        &s,
        &["--limit", "rows=3"],
        &["there is no limit `rows`", "table_rows"],
    );
    build_fails(&s, &["--limit", "template_seconds=0"], &["above 0"]);
}

#[test]
fn watch_restarts_itself_when_a_template_never_ends() {
    let (dir, s) = study(Some("# Results\n\n{{ 24**12 * [] }}\n"));
    let out = dir.path().join("out");
    let mut watch = Command::new(env!("CARGO_BIN_EXE_galley"))
        .args(["watch", s.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .args(["--limit", "template_seconds=1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = watch.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let restarted = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let done = line.contains("restarted after an evaluation ran past its time limit");
                seen.push(line);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = watch.kill();
    let _ = watch.wait();
    let seen = seen.join("\n");
    assert!(restarted, "no restart:\n{seen}");
    assert!(seen.contains("ran for more than 1 s"), "{seen}");
    assert!(!seen.contains("panicked"), "{seen}");
}
