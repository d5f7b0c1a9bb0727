//! The sandbox of a study folder (issue 9, docs/security.md): hostile study folders, made at test time,
//! built by the real `galley` binary. Each refusal fails with a clear diagnostic naming the file (and
//! line where there is one), without a panic or a debug dump, writes nothing (the output root stays
//! empty, nothing beside the study changes) and never shows the secret it tried to reach.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{galley, root, stderr};

/// What the hostile studies try to read: it must never appear in a message or an output.
const SECRET: &str = "GALLEY-SECRET-7f3a9c";

const DATA: &str = "id,group,age\n1,A,50\n2,B,61\n3,A,47\n4,B,70\n";

const MAIN: &str = "# Results

```analysis
id = \"groups\"
kind = \"count\"
data = \"patients\"
by = \"group\"
```

There were {{ groups.n }} patients.
";

/// A temporary folder holding a study (`study/`, valid until a test makes it hostile), an empty output
/// root (`out/`) and, beside them, files the study must never reach (`secret.txt`, `secret.csv`,
/// `victim/`).
struct Hostile {
    outer: tempfile::TempDir,
}

impl Hostile {
    fn new() -> Hostile {
        let h = Hostile {
            outer: tempfile::tempdir().unwrap(),
        };
        h.write("study/data/patients.csv", DATA);
        h.write("study/manuscript/main.md", MAIN);
        h.manifest("data/patients.csv", "");
        std::fs::create_dir_all(h.path("out")).unwrap();
        h.write("secret.txt", &format!("{SECRET}\n"));
        h.write("secret.csv", &format!("id,group,age\n{SECRET},A,1\n"));
        h.write("victim/keep.txt", "the victim's file\n");
        h
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.outer.path().join(rel)
    }

    fn study(&self) -> PathBuf {
        self.path("study")
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// A symbolic link at `rel` (relative to the temporary folder) pointing to `target`, as written.
    fn link(&self, rel: &str, target: impl AsRef<Path>) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&p);
        symlink(target, p).unwrap();
    }

    /// `study.toml` with the data table at `data_path` and `extra` lines under `[manuscript]`.
    fn manifest(&self, data_path: &str, extra: &str) -> String {
        let text = format!(
            "[study]\ntitle = \"Hostile\"\ncutoff = 2020-12-31\n\n[data.patients]\npath = \"{data_path}\"\n[data.patients.columns]\nid = {{ type = \"string\" }}\ngroup = {{ type = \"category\", levels = [\"A\", \"B\"] }}\nage = {{ type = \"number\" }}\n\n[manuscript]\nfiles = [\"manuscript/main.md\"]\n{extra}"
        );
        self.write("study/study.toml", &text);
        text
    }

    /// A study template folder: galley's own `article.typ` with `line` appended. Returns the line
    /// number of `line`.
    fn template_with(&self, line: &str) -> usize {
        let mut article = std::fs::read_to_string(root().join("templates/article.typ")).unwrap();
        if !article.ends_with('\n') {
            article.push('\n');
        }
        let number = article.lines().count() + 1;
        article.push_str(line);
        article.push('\n');
        self.write("study/template/article.typ", &article);
        self.manifest("data/patients.csv", "template = \"template\"\n");
        number
    }

    fn build(&self) -> Output {
        galley(
            &["build", "study", "--out", "out", "--format", "pdf,html"],
            self.outer.path(),
        )
    }

    /// Every path under the temporary folder with what it is (links are not followed).
    fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut all = BTreeMap::new();
        let mut stack = vec![self.outer.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let path = entry.path();
                let kind = entry.file_type().unwrap();
                let what = if kind.is_symlink() {
                    format!("link to {}", std::fs::read_link(&path).unwrap().display())
                } else if kind.is_dir() {
                    stack.push(path.clone());
                    "folder".to_string()
                } else if kind.is_file() {
                    format!("file {:?}", std::fs::read(&path).unwrap())
                } else {
                    "special".to_string()
                };
                all.insert(path, what);
            }
        }
        all
    }

    /// Run `act`; assert it was refused with every fragment in the diagnostics and changed nothing.
    fn refused(&self, act: impl FnOnce() -> Output, expected: &[&str]) -> String {
        let before = self.snapshot();
        let result = act();
        let err = stderr(&result);
        assert_eq!(
            result.status.code(),
            Some(1),
            "should be refused with exit code 1:\n{err}"
        );
        for fragment in expected {
            assert!(
                err.contains(fragment),
                "expected `{fragment}` in the diagnostics:\n{err}"
            );
        }
        clean(&err);
        let after = self.snapshot();
        assert!(
            before == after,
            "a refused run changed files: {:#?}",
            after
                .iter()
                .filter(|(p, w)| before.get(*p) != Some(*w))
                .collect::<Vec<_>>()
        );
        assert!(
            std::fs::read_dir(self.path("out"))
                .unwrap()
                .next()
                .is_none(),
            "the output root is not empty"
        );
        err
    }

    fn build_refused(&self, expected: &[&str]) -> String {
        self.refused(|| self.build(), expected)
    }
}

/// No panic, no debug dump, no secret.
fn clean(err: &str) {
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "{ code:",
        "Diagnostic {",
        "Os {",
    ] {
        assert!(!err.contains(bad), "`{bad}` in the diagnostics:\n{err}");
    }
    assert!(!err.contains(SECRET), "the secret leaked:\n{err}");
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in:\n{text}"))
        + 1
}

/// Run galley, killing it (and failing) if it has not finished within `limit`.
fn galley_within(args: &[&str], cwd: &Path, limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_galley"))
        .args(args)
        .current_dir(cwd)
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("galley runs");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "`galley {}` did not finish within {limit:?}:\n{}",
                args.join(" "),
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

// ---- Paths in the manifest ----

#[test]
fn an_absolute_data_path_is_refused() {
    let h = Hostile::new();
    let secret = h.path("secret.csv");
    let manifest = h.manifest(secret.to_str().unwrap(), "");
    h.build_refused(&[
        &format!(
            "data file of table `patients` `{}` is an absolute path",
            secret.display()
        ),
        &format!("study.toml:{}", line_of(&manifest, "secret.csv")),
    ]);
}

#[test]
fn a_data_path_with_dotdot_is_refused() {
    let h = Hostile::new();
    let manifest = h.manifest("data/../../secret.csv", "");
    h.build_refused(&[
        "data file of table `patients` `data/../../secret.csv` is a path that leaves the study folder (`..`)",
        &format!("study.toml:{}", line_of(&manifest, "secret.csv")),
    ]);
}

#[test]
fn a_data_file_linked_outside_the_study_is_refused() {
    let h = Hostile::new();
    h.link("study/data/patients.csv", "../../secret.csv");
    let err = h.build_refused(&[
        "data file of table `patients` `data/patients.csv` is a link that leads outside the study folder",
        "secret.csv",
        "study.toml:6",
    ]);
    assert!(err.contains("a study reads only its own files"), "{err}");
}

#[test]
fn a_chain_of_links_that_ends_outside_is_refused() {
    let h = Hostile::new();
    // Each link on its own stays inside; the last one leaves.
    h.link("study/data/patients.csv", "step1.csv");
    h.link("study/data/step1.csv", "../manuscript/step2.csv");
    h.link("study/manuscript/step2.csv", h.path("secret.csv"));
    h.build_refused(&[
        "`data/patients.csv` is a link that leads outside the study folder",
        "secret.csv",
        "study.toml:6",
    ]);
}

#[test]
fn a_data_folder_linked_outside_is_refused() {
    let h = Hostile::new();
    h.write(
        "elsewhere/patients.csv",
        &format!("id,group,age\n{SECRET},A,1\n"),
    );
    std::fs::remove_dir_all(h.path("study/data")).unwrap();
    h.link("study/data", "../elsewhere");
    h.build_refused(&[
        "`data/patients.csv` is a link that leads outside the study folder",
        "elsewhere",
    ]);
}

#[test]
fn a_link_that_leads_nowhere_is_refused() {
    let h = Hostile::new();
    h.link(
        "study/data/patients.csv",
        "/nonexistent/galley/patients.csv",
    );
    h.build_refused(&[
        "`data/patients.csv` is a link to `/nonexistent/galley/patients.csv`, which does not exist",
        "study.toml:6",
    ]);
}

#[test]
fn a_manifest_linked_outside_the_study_is_refused() {
    let h = Hostile::new();
    // A manifest outside that would build the study perfectly well.
    let text = std::fs::read_to_string(h.path("study/study.toml")).unwrap();
    h.write("elsewhere/study.toml", &text);
    h.link("study/study.toml", "../elsewhere/study.toml");
    h.build_refused(&[
        "`study.toml` is a link that leads outside the study folder",
        "study/study.toml",
    ]);
}

#[test]
fn every_path_field_of_the_manifest_refuses_leaving_the_study() {
    let h = Hostile::new();
    h.write("outside.md", "# Outside\n");
    h.write("outside.bib", "@article{x, title = {T}, year = {2000}}\n");
    h.write("outside.csl", "<style/>\n");
    h.write("outside/article.typ", "#let article(..a) = a\n");
    h.write("published.toml", "");
    let cases = [
        ("abstract = \"../outside.md\"", "abstract `../outside.md`"),
        (
            "files = [\"manuscript/main.md\", \"../outside.md\"]",
            "manuscript file `../outside.md`",
        ),
        (
            "bibliography = \"../outside.bib\"",
            "bibliography `../outside.bib`",
        ),
        ("csl = \"../outside.csl\"", "CSL style `../outside.csl`"),
        ("template = \"../outside\"", "template folder `../outside`"),
        (
            "published = \"../published.toml\"",
            "published values `../published.toml`",
        ),
        (
            "previous = \"../out\"",
            "previous report record `../out/provenance.json`",
        ),
    ];
    for (line, what) in cases {
        let extra = if line.starts_with("files") {
            line.to_string()
        } else {
            format!("{line}\n")
        };
        let manifest = h.manifest("data/patients.csv", &extra);
        // `files` replaces the default line: drop the duplicate key.
        let manifest = if line.starts_with("files") {
            let fixed = manifest.replacen("files = [\"manuscript/main.md\"]\n", "", 1);
            h.write("study/study.toml", &fixed);
            fixed
        } else {
            manifest
        };
        let at = format!(
            "study.toml:{}",
            line_of(&manifest, line.split('=').next().unwrap())
        );
        h.build_refused(&[
            &format!("{what} is a path that leaves the study folder (`..`)"),
            &at,
        ]);
    }
}

#[test]
fn a_nul_character_in_a_path_is_refused() {
    let h = Hostile::new();
    let manifest = h.manifest("data/patients.csv\\u0000../../secret.csv", "");
    h.build_refused(&[
        "is a path with a NUL character",
        &format!("study.toml:{}", line_of(&manifest, "u0000")),
    ]);
}

#[test]
fn percent_encoding_and_backslashes_are_names_not_escapes() {
    // Paths are never decoded: `%2e%2e` and `..\` are ordinary (missing) names, not a way out.
    let h = Hostile::new();
    for path in ["%2e%2e/%2e%2e/secret.csv", "..\\\\..\\\\secret.csv"] {
        h.manifest(path, "");
        h.build_refused(&["data file of table `patients`", "not found", "study.toml:6"]);
    }
}

#[test]
fn a_fifo_is_refused_instead_of_read_forever() {
    let h = Hostile::new();
    let fifo = h.path("study/data/patients.csv");
    std::fs::remove_file(&fifo).unwrap();
    let made = Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mkfifo is not available");
        return;
    }
    h.refused(
        || {
            galley_within(
                &["build", "study", "--out", "out"],
                h.outer.path(),
                Duration::from_secs(60),
            )
        },
        &[
            "`data/patients.csv` is not a regular file (a device, FIFO or socket)",
            "study.toml:6",
        ],
    );
}

// ---- The study's template folder ----

#[test]
fn a_template_folder_linked_outside_is_refused() {
    let h = Hostile::new();
    h.write("elsewhere/article.typ", "#let article(..a) = a\n");
    h.link("study/template", "../elsewhere");
    let manifest = h.manifest("data/patients.csv", "template = \"template\"\n");
    h.build_refused(&[
        "template folder `template` is a link that leads outside the study folder",
        &format!("study.toml:{}", line_of(&manifest, "template =")),
    ]);
}

#[test]
fn a_template_file_linked_outside_is_refused() {
    let h = Hostile::new();
    h.template_with("");
    h.link("study/template/notes.txt", "../../secret.txt");
    h.build_refused(&[
        "template file `template/notes.txt` is a link that leads outside the study folder",
        "secret.txt",
        "study.toml:14",
    ]);
}

#[test]
fn a_template_file_cannot_pose_as_an_output() {
    let h = Hostile::new();
    h.template_with("");
    // With `--format pdf` it would have stood in the output folder as the HTML manuscript.
    h.write("study/template/manuscript.html", "<p>forged</p>\n");
    h.refused(
        || galley(&["build", "study", "--out", "out"], h.outer.path()),
        &[
            "template file `template/manuscript.html` has a name galley gives to a file it writes",
            "study.toml:14",
        ],
    );
}

// ---- What Typst can reach ----

#[test]
fn typst_reads_no_file_from_the_disk_by_absolute_path() {
    let h = Hostile::new();
    let secret = h.path("secret.txt");
    let line = h.template_with(&format!("#read(\"{}\")", secret.display()));
    let err = h.build_refused(&[
        &format!(
            "Typst: `{}` is not one of the build's files",
            secret.display()
        ),
        &format!("template/article.typ:{line}"),
        "Typst reads only this build's files, never the disk",
    ]);
    assert!(!err.contains("--root"), "{err}");
}

#[test]
fn typst_cannot_climb_out_of_the_build_with_dotdot() {
    let h = Hostile::new();
    let line = h.template_with("#read(\"../../secret.txt\")");
    let err = h.build_refused(&[
        "Typst: `../../secret.txt` leaves the build's files",
        &format!("template/article.typ:{line}"),
    ]);
    assert!(
        !err.contains("--root") && !err.contains("project sandbox"),
        "Typst's CLI hints do not apply to galley:\n{err}"
    );
}

#[test]
fn typst_packages_are_refused_without_network() {
    let h = Hostile::new();
    let line = h.template_with("#import \"@preview/cetz:0.3.0\": canvas");
    h.build_refused(&[
        "Typst: package `@preview/cetz:0.3.0` is not available: galley builds never download packages",
        &format!("template/article.typ:{line}"),
    ]);
}

#[test]
fn every_typst_file_function_reads_only_the_builds_files() {
    let h = Hostile::new();
    let secret = h.path("secret.txt");
    let secret = secret.display();
    // The study's own files are not the build's files either (only the template folder's are).
    let cases = [
        format!("#image(\"{secret}\")"),
        "#json(\"/study.toml\")".to_string(),
        "#csv(\"/data/patients.csv\")".to_string(),
        "#yaml(\"../study.toml\")".to_string(),
        "#plugin(\"/data/patients.csv\")".to_string(),
        format!("#include \"{secret}\""),
        "#import \"../manuscript/main.md\": x".to_string(),
        "#bibliography(\"/secret.bib\")".to_string(),
        "#read(\"/template/article.typ\")".to_string(),
    ];
    for case in cases {
        let line = h.template_with(&case);
        let err = h.build_refused(&["Typst: `", &format!("template/article.typ:{line}")]);
        assert!(
            err.contains("is not one of the build's files")
                || err.contains("leaves the build's files"),
            "{case}:\n{err}"
        );
    }
}

// ---- The prose ----

#[test]
fn an_image_in_the_prose_is_refused() {
    let h = Hostile::new();
    h.write(
        "study/manuscript/main.md",
        &format!("{MAIN}\n![the secret](../../secret.txt)\n"),
    );
    h.build_refused(&[
        "images in the prose are not supported",
        &format!("manuscript/main.md:{}", line_of(MAIN, "There were") + 2),
    ]);
}

#[test]
fn typst_and_html_in_the_prose_print_literally_and_load_nothing() {
    let h = Hostile::new();
    h.write(
        "study/manuscript/main.md",
        &format!(
            "{MAIN}\n#read(\"{0}\") #image(\"{0}\")\n\n<img src=\"file://{0}\"><script src=\"http://example.org/x.js\"></script>\n",
            h.path("secret.txt").display()
        ),
    );
    let out = h.build();
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(h.path("out/study/manuscript.html")).unwrap();
    assert!(html.contains("&lt;img src="), "raw HTML is escaped");
    assert!(!html.contains("<script src="), "no script from the prose");
    assert!(!html.contains(SECRET));
    let typ = std::fs::read_to_string(h.path("out/study/manuscript.typ")).unwrap();
    assert!(
        typ.contains("\\#read\\("),
        "`#` is escaped in the Typst source"
    );
}

#[test]
fn a_link_in_the_prose_runs_nothing_in_the_html() {
    let h = Hostile::new();
    h.write(
        "study/manuscript/main.md",
        &format!(
            "{MAIN}\n[one](javascript:alert(document.cookie)) [two](JaVaScRiPt:alert(1)) [three](data:text/html,x) [four](vbscript:x) [five](https://example.org/a) [six](#sec) [seven](../other.html)\n"
        ),
    );
    let out = h.build();
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(h.path("out/study/manuscript.html")).unwrap();
    assert!(
        html.contains("<p>one two three four <a href="),
        "the links' text stays, unlinked"
    );
    let lower = html.to_ascii_lowercase();
    for scheme in ["javascript:", "data:text", "vbscript:"] {
        assert!(
            !lower.contains(&format!("href=\"{scheme}")),
            "a `{scheme}` link is in the HTML"
        );
    }
    assert!(html.contains("href=\"https://example.org/a\""));
    // The link policy (issue 15, `tests/suite/links.rs`): a `#label` no heading, figure or table
    // has and a relative address are unlinked too.
    assert!(!html.contains("href=\"#sec\"") && !html.contains("href=\"../other.html\""));
}

#[test]
fn template_include_import_and_extends_load_nothing() {
    let h = Hostile::new();
    let secret = h.path("secret.txt");
    for statement in [
        format!("{{% include \"{}\" %}}", secret.display()),
        "{% import \"../../secret.txt\" as s %}".to_string(),
        "{% extends \"manuscript/main.md\" %}".to_string(),
    ] {
        h.write(
            "study/manuscript/main.md",
            &format!("{MAIN}\n{statement}\n"),
        );
        h.build_refused(&[
            "template not found",
            &format!("manuscript/main.md:{}", line_of(MAIN, "There were") + 2),
            "`include`, `import` and `extends` load nothing in galley",
        ]);
    }
}

#[test]
fn block_ids_cannot_name_files_outside_the_output_folder() {
    let h = Hostile::new();
    for id in ["../../evil", "/tmp/evil", "a\\\\b"] {
        h.write(
            "study/manuscript/main.md",
            &format!(
                "```analysis\nid = \"{id}\"\nkind = \"describe\"\ndata = \"patients\"\nvariable = \"age\"\n[figure]\ncaption = \"Age\"\n```\n"
            ),
        );
        h.build_refused(&[
            "must start with a letter and hold only letters, digits and `_`",
            "manuscript/main.md:1",
        ]);
    }
}

// ---- Where outputs go ----

#[test]
fn an_output_root_inside_the_study_is_refused() {
    let h = Hostile::new();
    // `galley build .` from inside the study: the default output root `output` is in the study.
    let err = h.refused(
        || galley(&["build", "."], &h.study()),
        &["the output root `output` is inside the study folder"],
    );
    assert!(err.contains("--out"), "{err}");
    assert!(!h.path("study/output").exists());
}

#[test]
fn a_link_in_the_study_cannot_send_the_outputs_elsewhere() {
    let h = Hostile::new();
    // The study ships `output` -> `../victim`, and `victim/study/` is someone's folder that a build
    // of a study named `study` would have replaced as a whole.
    h.write("victim/study/precious.txt", "irreplaceable\n");
    h.link("study/output", "../victim");
    h.refused(
        || galley(&["build", "."], &h.study()),
        &["the output root `output` is inside the study folder"],
    );
    assert!(h.path("victim/study/precious.txt").is_file());
}

#[test]
fn an_output_folder_that_is_a_link_is_refused() {
    let h = Hostile::new();
    h.link("out/study", "../victim");
    let before = h.snapshot();
    let out = h.build();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("the output folder `out/study` is a symbolic link"),
        "{err}"
    );
    clean(&err);
    assert_eq!(before, h.snapshot(), "nothing changed");
}

#[test]
fn an_output_folder_galley_did_not_write_is_not_replaced() {
    let h = Hostile::new();
    h.write("out/study/notes.txt", "mine\n");
    let before = h.snapshot();
    let out = h.build();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("`out/study` exists and is not a galley report (it has no provenance.json)"),
        "{err}"
    );
    clean(&err);
    assert_eq!(before, h.snapshot(), "nothing changed");
}

#[test]
fn an_output_root_that_would_replace_the_study_is_refused() {
    let h = Hostile::new();
    // `<out>/<name>` is the study folder itself.
    std::fs::remove_dir(h.path("out")).unwrap();
    let before = h.snapshot();
    let out = galley(&["build", "study", "--out", "."], h.outer.path());
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("would hold the study folder") || err.contains("is the study folder"),
        "{err}"
    );
    clean(&err);
    assert_eq!(before, h.snapshot(), "the study is untouched");
}

#[test]
fn fifos_and_links_planted_in_an_output_folder_are_not_followed() {
    let h = Hostile::new();
    let first = h.build();
    assert!(first.status.success(), "{}", stderr(&first));
    // FIFOs (reading one never ends) where a rebuild looks for the previous PDF, a cached block result
    // and an unchanged output, and a link to outside: a rebuild must replace them, not read them.
    let dir = h.path("out/study");
    let cached = std::fs::read_dir(dir.join(".cache/blocks"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for planted in [dir.join("manuscript.pdf"), dir.join("results.json"), cached] {
        std::fs::remove_file(&planted).unwrap();
        let made = Command::new("mkfifo").arg(&planted).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("skipped: mkfifo is not available");
            return;
        }
    }
    h.link("out/study/elsewhere", "../../victim");
    let again = galley_within(
        &["build", "study", "--out", "out", "--format", "pdf,html"],
        h.outer.path(),
        Duration::from_secs(60),
    );
    assert!(again.status.success(), "{}", stderr(&again));
    for file in ["manuscript.pdf", "results.json"] {
        let meta = dir.join(file).symlink_metadata().unwrap();
        assert!(meta.is_file(), "{file} is a real file again");
    }
    assert!(!dir.join("elsewhere").exists());
    assert!(h.path("victim/keep.txt").is_file());
}

#[test]
fn watch_refuses_an_output_root_inside_the_study() {
    let h = Hostile::new();
    // It would otherwise watch (forever) and write into the study.
    let out = galley_within(&["watch", "."], &h.study(), Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("is inside the study folder"), "{err}");
    clean(&err);
    assert!(!h.path("study/output").exists());
}

#[test]
fn verify_refuses_a_provenance_record_naming_files_outside() {
    let h = Hostile::new();
    let first = h.build();
    assert!(first.status.success(), "{}", stderr(&first));
    let record = h.path("out/study/provenance.json");
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    value["outputs"]["../../secret.txt"] = serde_json::json!({"sha256": "0", "bytes": 1});
    std::fs::write(&record, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    let out = galley(&["verify", "out/study"], h.outer.path());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the provenance record names `../../secret.txt`, which is a path that leaves"),
        "{err}"
    );
    assert!(err.contains("out/study/provenance.json"), "{err}");
    clean(&err);
}

// ---- galley simulate ----

/// `simulation.toml` of the flagship study with `snapshots` in place of its own.
fn simulation_spec(snapshots: &str) -> String {
    let spec = std::fs::read_to_string(root().join("study/croome2016/simulation.toml")).unwrap();
    let start = spec.find("[[snapshot]]").unwrap();
    let end = spec.find("[[stratum]]").unwrap();
    format!("{}{snapshots}\n{}", &spec[..start], &spec[end..])
}

fn simulate(h: &Hostile, snapshots: &str, extra: &[&str]) -> (Output, String) {
    let spec = simulation_spec(snapshots);
    h.write("study/simulation.toml", &spec);
    let mut args = vec!["simulate", "study"];
    args.extend_from_slice(extra);
    (galley(&args, h.outer.path()), spec)
}

#[test]
fn simulate_refuses_a_snapshot_folder_outside_the_study() {
    let h = Hostile::new();
    let spec = simulation_spec("[[snapshot]]\ncutoff = 2015-08-31\npath = \"../victim\"\n");
    h.write("study/simulation.toml", &spec);
    h.refused(
        || galley(&["simulate", "study"], h.outer.path()),
        &[
            "snapshot folder `../victim` is a path that leaves the study folder (`..`)",
            &format!("simulation.toml:{}", line_of(&spec, "../victim")),
        ],
    );
    assert!(h.path("victim/keep.txt").is_file());
}

#[test]
fn simulate_refuses_a_snapshot_folder_through_a_link() {
    let h = Hostile::new();
    h.link("study/snapshots", "../victim");
    let spec = simulation_spec("[[snapshot]]\ncutoff = 2015-08-31\npath = \"snapshots/2015\"\n");
    h.write("study/simulation.toml", &spec);
    h.refused(
        || galley(&["simulate", "study"], h.outer.path()),
        &[
            "snapshot folder `snapshots/2015` is a link that leads outside the study folder",
            &format!("simulation.toml:{}", line_of(&spec, "snapshots/2015")),
        ],
    );
}

#[test]
fn simulate_refuses_to_replace_the_study_folder_itself() {
    let h = Hostile::new();
    let spec = simulation_spec("[[snapshot]]\ncutoff = 2015-08-31\npath = \".\"\n");
    h.write("study/simulation.toml", &spec);
    h.refused(
        || galley(&["simulate", "study"], h.outer.path()),
        &["snapshot folder `.` is the study folder itself"],
    );
}

#[test]
fn simulate_writes_a_copy_outside_only_into_a_named_companion() {
    let h = Hostile::new();
    let snapshots =
        "[[snapshot]]\ncutoff = 2015-08-31\npath = \"data/2015\"\ncopies = [\"../victim/data\"]\n";
    let spec = simulation_spec(snapshots);
    h.write("study/simulation.toml", &spec);
    let err = h.refused(
        || galley(&["simulate", "study"], h.outer.path()),
        &[
            "snapshot copy `../victim/data` is outside the study folder, and no `--companion` holds it",
            &format!("simulation.toml:{}", line_of(&spec, "../victim/data")),
            "galley simulate study --companion victim",
        ],
    );
    assert!(!err.contains("wrote"), "{err}");
    // Named by the user, the companion gets its copy (and nothing else of it changes).
    let (out, _) = simulate(&h, snapshots, &["--companion", "victim"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(h.path("victim/data/patients.csv").is_file());
    assert!(h.path("study/data/2015/patients.csv").is_file());
    assert!(h.path("victim/keep.txt").is_file());
}

#[test]
fn simulate_refuses_a_companion_copy_that_a_link_leads_elsewhere() {
    let h = Hostile::new();
    std::fs::create_dir_all(h.path("companion")).unwrap();
    h.link("companion/data", "../victim");
    let spec = simulation_spec(
        "[[snapshot]]\ncutoff = 2015-08-31\npath = \"data/2015\"\ncopies = [\"../companion/data/x\"]\n",
    );
    h.write("study/simulation.toml", &spec);
    h.refused(
        || {
            galley(
                &["simulate", "study", "--companion", "companion"],
                h.outer.path(),
            )
        },
        &["snapshot copy `../companion/data/x` leads through a link out of the companion study folder `companion`"],
    );
}

#[test]
fn simulate_refuses_a_spec_linked_outside_the_study() {
    let h = Hostile::new();
    h.write(
        "elsewhere/simulation.toml",
        &simulation_spec("[[snapshot]]\ncutoff = 2015-08-31\npath = \"data/2015\"\n"),
    );
    h.link("study/simulation.toml", "../elsewhere/simulation.toml");
    h.refused(
        || galley(&["simulate", "study"], h.outer.path()),
        &["`simulation.toml` is a link that leads outside the study folder"],
    );
}

// ---- The preview server ----

#[test]
fn the_preview_server_serves_no_files() {
    let h = Hostile::new();
    h.write("study/secret.txt", &format!("{SECRET}\n"));
    let mut watch = Command::new(env!("CARGO_BIN_EXE_galley"))
        .args(["watch", "study", "--out", "out", "--serve", "--port", "0"])
        .current_dir(h.outer.path())
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("galley watch starts");
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let port: u16 = loop {
        let line = match lines.next() {
            Some(Ok(line)) => line,
            _ => {
                let _ = watch.kill();
                panic!("galley watch ended without serving");
            }
        };
        if let Some(rest) = line.strip_prefix("serving http://127.0.0.1:") {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    let get = |target: &str| -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let secret = h.path("secret.txt");
    let targets = [
        "/../../../../etc/passwd".to_string(),
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd".to_string(),
        "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd".to_string(),
        "/..%5c..%5cetc%5cpasswd".to_string(),
        "//etc/passwd".to_string(),
        "/manuscript.html/../../../../etc/passwd".to_string(),
        "/secret.txt".to_string(),
        "/study/secret.txt".to_string(),
        "/out/study/results.json".to_string(),
        "/results.json".to_string(),
        format!("{}", secret.display()),
        format!("http://127.0.0.1:{port}/../secret.txt"),
    ];
    let mut answers = Vec::new();
    for target in &targets {
        let answer = get(target);
        answers.push((
            target.clone(),
            answer.lines().next().unwrap_or("").to_string(),
        ));
        assert!(!answer.contains(SECRET), "GET {target} served the secret");
        assert!(
            !answer.contains("root:x:0:0"),
            "GET {target} served /etc/passwd"
        );
    }
    let _ = watch.kill();
    let _ = watch.wait();
    for (target, status) in answers {
        assert!(
            status.starts_with("HTTP/1.1 404") || status.starts_with("HTTP/1.1 400"),
            "GET {target}: {status}"
        );
    }
}

// ---- What stays allowed ----

#[test]
fn a_study_with_links_inside_its_folder_a_template_images_and_a_bibliography_builds() {
    let h = Hostile::new();
    // Data through a link that stays inside, a template folder that is a link to a folder inside,
    // with a logo that is a link to a shared asset, and a bibliography through a chain of links.
    h.write("study/raw/patients-v2.csv", DATA);
    std::fs::remove_file(h.path("study/data/patients.csv")).unwrap();
    h.link("study/data/patients.csv", "../raw/patients-v2.csv");
    h.write(
        "study/assets/logo.svg",
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"><rect width=\"10\" height=\"10\" fill=\"teal\"/></svg>\n",
    );
    let mut article = std::fs::read_to_string(root().join("templates/article.typ")).unwrap();
    article.push_str(
        "\n#let logo = image(\"logo.svg\", width: 1cm)\n#let notes = read(\"notes.txt\")\n",
    );
    h.write("study/assets/template/article.typ", &article);
    h.write("study/assets/template/notes.txt", "template notes\n");
    h.link("study/assets/template/logo.svg", "../logo.svg");
    h.link("study/template", "assets/template");
    h.write(
        "study/bib/main.bib",
        "@article{kaplan1958, author = {Kaplan, E. L. and Meier, P.}, title = {Nonparametric Estimation from Incomplete Observations}, journal = {J Am Stat Assoc}, year = {1958}}\n",
    );
    h.link("study/bib/current.bib", "main.bib");
    h.link("study/references.bib", "bib/current.bib");
    h.write(
        "study/manuscript/main.md",
        &format!(
            "{MAIN}\nSee [the methods](../methods.html) and the product-limit method [@kaplan1958].\n\n```analysis\nid = \"age\"\nkind = \"describe\"\ndata = \"patients\"\nvariable = \"age\"\n[figure]\ncaption = \"Age\"\n```\n"
        ),
    );
    h.manifest(
        "data/patients.csv",
        "template = \"template\"\nbibliography = \"references.bib\"\n",
    );
    let out = h.build();
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = h.path("out/study");
    for file in [
        "manuscript.pdf",
        "manuscript.html",
        "logo.svg",
        "notes.txt",
        "references.bib",
        "figures/age.svg",
    ] {
        assert!(dir.join(file).is_file(), "{file} was not written");
    }
    let provenance = std::fs::read_to_string(dir.join("provenance.json")).unwrap();
    for input in ["data/patients.csv", "references.bib", "template/logo.svg"] {
        assert!(provenance.contains(input), "{input} not among the inputs");
    }
    // Nothing beside the study and the output root changed.
    assert_eq!(
        std::fs::read_to_string(h.path("victim/keep.txt")).unwrap(),
        "the victim's file\n"
    );
}
