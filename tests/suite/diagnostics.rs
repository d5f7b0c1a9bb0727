//! Every class of bad input, as the user sees it: the whole stderr and the exit code of the real
//! `galley` binary, compared with a reviewed snapshot in `tests/suite/snapshots/` (issue #16). A test
//! fails when a message changes in any way, so a change to a diagnostic is a reviewed change to its
//! snapshot. Each case is the tiny fixture study (`tests/fixtures/tiny`) copied into a temporary folder
//! and broken in one place; galley runs in that folder, so paths read `study/...` as a user's would,
//! and whatever absolute temporary path is left is replaced by `[TMP]`.
//!
//! Reviewing and updating snapshots, after changing a message on purpose:
//! - Without any extra tool (works everywhere):
//!   `INSTA_UPDATE=always cargo test --release --test suite -- diagnostics:: invalid::` rewrites the
//!   `.snap` files in place (the tests then pass); read each change in `git diff tests/suite/snapshots`
//!   as the user will read the message (file, line and column, what was expected, a hint) and commit
//!   what is right. A renamed or removed test leaves its old `.snap` behind: delete it by hand.
//! - With cargo-insta (`cargo install cargo-insta`, not needed otherwise):
//!   `cargo insta test --release --test suite` then `cargo insta review` accepts or rejects each
//!   change interactively (`--unreferenced=delete` removes stale snapshots).
//!
//! A plain `cargo test` outside CI writes `<name>.snap.new` beside a snapshot that differs and fails;
//! with `CI=true` (as `.ci/run` runs) insta writes nothing and fails, so a changed message can never
//! pass CI by updating its own snapshot. A missing snapshot fails the same way.

use std::path::{Path, PathBuf};

use insta::assert_snapshot;

use crate::build::copy_dir;
use crate::common::{galley, root, stderr};

/// A temporary folder holding `study/` (a copy of the tiny fixture, broken by the test) and an empty
/// output root `out/`.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn tiny() -> Scratch {
        let s = Scratch {
            dir: tempfile::tempdir().unwrap(),
        };
        copy_dir(&root().join("tests/fixtures/tiny"), &s.path("study"));
        std::fs::create_dir(s.path("out")).unwrap();
        s
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Replace `from` by `to` in `rel`; `from` must be there (a fixture that changed under the test
    /// must not leave it snapshotting some other problem, or none).
    fn edit(&self, rel: &str, from: &str, to: &str) -> &Scratch {
        let text = std::fs::read_to_string(self.path(rel)).unwrap();
        assert!(text.contains(from), "`{from}` is not in {rel}");
        self.write(rel, &text.replacen(from, to, 1))
    }

    fn write(&self, rel: &str, text: &str) -> &Scratch {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    fn append(&self, rel: &str, text: &str) -> &Scratch {
        let old = std::fs::read_to_string(self.path(rel)).unwrap();
        self.write(rel, &format!("{old}{text}"))
    }

    /// Run galley in the temporary folder: the exit code and the whole stderr, normalised.
    fn run(&self, args: &[&str]) -> String {
        let out = galley(args, self.dir.path());
        transcript(&out, &[self.dir.path()])
    }

    /// `galley build study --out out [extra]`, which must fail and leave `out/` empty.
    fn build_fails(&self, extra: &[&str]) -> String {
        let mut args = vec!["build", "study", "--out", "out"];
        args.extend_from_slice(extra);
        let text = self.run(&args);
        assert!(
            !text.starts_with("exit code: 0"),
            "the build passed:\n{text}"
        );
        let written: Vec<_> = std::fs::read_dir(self.path("out")).unwrap().collect();
        assert!(written.is_empty(), "a failed build wrote {written:?}");
        text
    }
}

/// What a snapshot holds: the exit code, then stderr with every temporary folder in `dirs` (as given
/// and canonical) shown as `[TMP]` and the repository as `[ROOT]`.
pub fn transcript(out: &std::process::Output, dirs: &[&Path]) -> String {
    let mut text = stderr(out);
    for dir in dirs {
        for form in [dir.canonicalize().unwrap(), dir.to_path_buf()] {
            text = text.replace(form.to_str().unwrap(), "[TMP]");
        }
    }
    text = text.replace(root().to_str().unwrap(), "[ROOT]");
    let code = out.status.code().map_or("none".into(), |c| c.to_string());
    format!("exit code: {code}\n---\n{text}")
}

// ---------------------------------------------------------------------------------------------
// The manifest (study.toml)

#[test]
fn manifest_toml_syntax_error() {
    let s = Scratch::tiny();
    s.edit("study/study.toml", "\"Tiny cohort\"", "\"Tiny cohort");
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn manifest_unknown_key_in_a_column() {
    let s = Scratch::tiny();
    s.edit(
        "study/study.toml",
        "levels = [\"A\", \"B\"]",
        "levles = [\"A\", \"B\"]",
    );
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn manifest_wrong_type() {
    let s = Scratch::tiny();
    s.edit("study/study.toml", "seed = 42", "seed = \"42\"");
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn manifest_missing_required_key() {
    let s = Scratch::tiny();
    s.edit(
        "study/study.toml",
        "title = \"A Tiny Cohort: Survival after Surgery\"\n",
        "",
    );
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn manifest_bad_date() {
    let s = Scratch::tiny();
    s.edit(
        "study/study.toml",
        "cutoff = 2020-12-31",
        "cutoff = 2020-02-30",
    );
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn manifest_bad_date_as_a_string() {
    let s = Scratch::tiny();
    s.edit(
        "study/study.toml",
        "cutoff = 2020-12-31",
        "cutoff = \"31/12/2020\"",
    );
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn manifest_unknown_csl_style() {
    let s = Scratch::tiny();
    s.edit(
        "study/study.toml",
        "bibliography = \"references.bib\"",
        "bibliography = \"references.bib\"\ncsl = \"vancuover\"",
    );
    assert_snapshot!(s.build_fails(&[]));
}

// ---------------------------------------------------------------------------------------------
// CSV data

#[test]
fn csv_bad_number() {
    let s = Scratch::tiny();
    s.edit("study/data/patients.csv", "p01,A,54,", "p01,A,5 4,");
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn csv_bad_date() {
    let s = Scratch::tiny();
    s.edit("study/data/patients.csv", "2015-02-11", "2015-02-30");
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn csv_undeclared_column() {
    let s = Scratch::tiny();
    let csv = std::fs::read_to_string(s.path("study/data/patients.csv")).unwrap();
    let wider: String = csv
        .lines()
        .enumerate()
        .map(|(i, l)| format!("{l},{}\n", if i == 0 { "site" } else { "x" }))
        .collect();
    s.write("study/data/patients.csv", &wider);
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn csv_duplicate_column() {
    let s = Scratch::tiny();
    s.edit("study/data/patients.csv", ",dead\n", ",age\n");
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn csv_undeclared_missing_value_code() {
    let s = Scratch::tiny();
    s.edit("study/data/patients.csv", "p01,A,54,", "p01,A,NA,");
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn csv_missing_value_in_a_required_column() {
    let s = Scratch::tiny();
    s.edit("study/data/patients.csv", "p02,", ",");
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn csv_foreign_key() {
    let s = Scratch::tiny();
    s.write(
        "study/data/visits.csv",
        "patient,visit\np01,2016-01-01\np99,2016-02-01\n",
    );
    s.edit(
        "study/study.toml",
        "[manuscript]",
        "[data.visits]\npath = \"data/visits.csv\"\n[data.visits.columns]\npatient = { type = \"string\", references = \"patients.id\" }\nvisit = { type = \"date\" }\n\n[manuscript]",
    );
    assert_snapshot!(s.build_fails(&[]));
}

// ---------------------------------------------------------------------------------------------
// Analysis block specs (an unknown kind and a duplicate id: the fixtures of invalid.rs)

#[test]
fn block_unknown_key() {
    let s = Scratch::tiny();
    s.edit(
        "study/manuscript/main.md",
        "unit = \"months\"",
        "units = \"months\"",
    );
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn block_bad_expression_points_at_the_character() {
    let s = Scratch::tiny();
    s.edit(
        "study/manuscript/main.md",
        "where = \"status\"",
        "where = \"status == \"",
    );
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn block_type_error_in_an_expression() {
    let s = Scratch::tiny();
    s.edit(
        "study/manuscript/main.md",
        "where = \"status\"",
        "where = \"group + 1\"",
    );
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn block_missing_column() {
    let s = Scratch::tiny();
    s.edit(
        "study/manuscript/main.md",
        "by = \"group\"",
        "by = \"grup\"",
    );
    assert_snapshot!(s.build_fails(&[]));
}

// ---------------------------------------------------------------------------------------------
// Templates in the prose (an unknown variable: the fixture of invalid.rs)

#[test]
fn template_syntax_error() {
    let s = Scratch::tiny();
    s.edit(
        "study/manuscript/main.md",
        "{{ deaths.n }} deaths",
        "{{ deaths.n } deaths",
    );
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn template_missing_value_in_a_comparison() {
    let s = Scratch::tiny();
    s.edit(
        "study/manuscript/main.md",
        "Follow-up was censored",
        "```analysis\nid = \"none_old\"\nkind = \"count\"\ndata = \"patients\"\nwhere = \"age > 200\"\nby = \"group\"\n```\n\n\
         {% if none_old.levels.A.pct < 0.5 %}Few{% endif %} were old.\n\nFollow-up was censored",
    );
    assert_snapshot!(s.build_fails(&[]));
}

// ---------------------------------------------------------------------------------------------
// Markdown

#[test]
fn markdown_unknown_citation() {
    let s = Scratch::tiny();
    s.edit("study/manuscript/main.md", "[@kaplan1958]", "[@kaplan1985]");
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn markdown_unknown_cross_reference() {
    let s = Scratch::tiny();
    s.edit(
        "study/manuscript/main.md",
        "See @sec-intro.",
        "See @sec-introduction.",
    );
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn markdown_image_in_the_prose() {
    let s = Scratch::tiny();
    s.edit(
        "study/manuscript/main.md",
        "# Methods",
        "![A plot](plot.png)\n\n# Methods",
    );
    assert_snapshot!(s.build_fails(&[]));
}

/// A footnote reference without a definition: pulldown-cmark leaves it as text; galley reports it.
#[test]
fn markdown_footnote_without_definition() {
    let s = Scratch::tiny();
    s.edit(
        "study/manuscript/main.md",
        "See @sec-intro.[^note]",
        "See @sec-intro.[^nope]",
    );
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn markdown_nested_too_deep() {
    let s = Scratch::tiny();
    s.edit(
        "study/manuscript/main.md",
        "# Methods",
        &format!("{}deep\n\n# Methods", "> ".repeat(40)),
    );
    assert_snapshot!(s.build_fails(&[]));
}

// ---------------------------------------------------------------------------------------------
// The sandbox: paths stay inside the study, outputs outside it

#[test]
fn sandbox_dot_dot_path() {
    let s = Scratch::tiny();
    s.write(
        "secret.csv",
        "id,group,age,surgery_date,last_contact,dead\n",
    );
    s.edit(
        "study/study.toml",
        "\"data/patients.csv\"",
        "\"../secret.csv\"",
    );
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn sandbox_symlink_out_of_the_study() {
    let s = Scratch::tiny();
    std::fs::rename(s.path("study/data/patients.csv"), s.path("patients.csv")).unwrap();
    std::os::unix::fs::symlink("../../patients.csv", s.path("study/data/patients.csv")).unwrap();
    assert_snapshot!(s.build_fails(&[]));
}

#[test]
fn sandbox_output_root_inside_the_study() {
    let s = Scratch::tiny();
    let text = s.run(&["build", "study", "--out", "study/output"]);
    assert!(!s.path("study/output").exists(), "wrote into the study");
    assert_snapshot!(text);
}

// ---------------------------------------------------------------------------------------------
// Resource limits

#[test]
fn limit_exceeded() {
    let s = Scratch::tiny();
    assert_snapshot!(s.build_fails(&["--limit", "table_rows=1"]));
}

#[test]
fn limit_bad_value_in_the_manifest() {
    let s = Scratch::tiny();
    s.append("study/study.toml", "\n[limits]\ntable_rows = -3\n");
    assert_snapshot!(s.build_fails(&[]));
}

// ---------------------------------------------------------------------------------------------
// The command line

#[test]
fn cli_bad_as_of_date() {
    let s = Scratch::tiny();
    assert_snapshot!(s.build_fails(&["--as-of", "2020-02-30"]));
}

#[test]
fn cli_unknown_limit_name() {
    let s = Scratch::tiny();
    assert_snapshot!(s.build_fails(&["--limit", "table_row=10"]));
}

#[test]
fn cli_bad_limit_value() {
    let s = Scratch::tiny();
    assert_snapshot!(s.build_fails(&["--limit", "table_rows=many"]));
}

// ---------------------------------------------------------------------------------------------
// verify and diff on a folder that is not a galley output

#[test]
fn verify_a_folder_that_is_not_an_output() {
    let s = Scratch::tiny();
    assert_snapshot!(s.run(&["verify", "study"]));
}

#[test]
fn diff_a_folder_that_is_not_an_output() {
    let s = Scratch::tiny();
    assert_snapshot!(s.run(&["diff", "study", "out"]));
}

// ---------------------------------------------------------------------------------------------
// Warnings, and --deny-warnings turning them into errors

/// The tiny study with a refused link and a number typed by hand.
fn with_warnings() -> Scratch {
    let s = Scratch::tiny();
    s.edit(
        "study/manuscript/main.md",
        "# Methods",
        "See [the code](javascript:alert(1)); 37 patients were screened.\n\n# Methods",
    );
    s
}

/// Each warning once, though two renderers (PDF and HTML) read the prose; `--quiet` leaves out the
/// published-versus-reproduced table, which is a report, not a problem.
#[test]
fn warnings_are_printed_once_and_the_build_passes() {
    let s = with_warnings();
    assert_snapshot!(s.run(&[
        "--quiet", "build", "study", "--out", "out", "--format", "pdf,html"
    ]));
}

#[test]
fn warnings_are_printed_and_the_check_passes() {
    let s = with_warnings();
    assert_snapshot!(s.run(&["check", "study"]));
}

/// Every file under `dir` with its bytes, in order.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn deny_warnings_makes_them_errors_and_writes_nothing() {
    let s = with_warnings();
    // A previous report in the output root must come through untouched.
    let first = s.run(&["--quiet", "build", "study", "--out", "out"]);
    assert!(first.starts_with("exit code: 0"), "{first}");
    let before = tree(&s.path("out"));
    assert!(!before.is_empty());
    s.edit("study/manuscript/main.md", "37 patients", "38 patients");
    let text = s.run(&["build", "study", "--out", "out", "--deny-warnings"]);
    assert!(
        tree(&s.path("out")) == before,
        "--deny-warnings changed out/"
    );
    assert_snapshot!(text);
}
