//! Outputs a build or `galley verify` must not trust: the record's study folder, a folder that only
//! looks like a report, a forged block cache; and a build killed while it swaps its output in
//! (issue 15, rows 1, 2, 4, 5 and 12).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::build::copy_dir;
use crate::common::{root, stderr, stdout};

/// A private copy of the tiny fixture (`<tmp>/tiny`), an output root (`<tmp>/out`), and a cache
/// home of its own (the block cache's key lives there).
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(
            &root().join("tests/fixtures/tiny"),
            &dir.path().join("tiny"),
        );
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        Work { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `galley <args>` in the temporary folder, with `env` set.
    fn run_in(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_galley"));
        cmd.args(args)
            .current_dir(cwd)
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("GALLEY_TEST_FAULT")
            .env("XDG_CACHE_HOME", self.path("cache-home"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("galley runs")
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.run_in(self.dir.path(), args, env)
    }

    /// `galley <args>` in `cwd`, killed (and the test failed) if it has not ended after two
    /// minutes: a guard against a hang, not a timing assertion.
    fn run_bounded(&self, cwd: &Path, args: &[&str]) -> Output {
        use std::process::Stdio;
        let mut child = Command::new(env!("CARGO_BIN_EXE_galley"))
            .args(args)
            .current_dir(cwd)
            .env_remove("SOURCE_DATE_EPOCH")
            .env("XDG_CACHE_HOME", self.path("cache-home"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("galley runs");
        let start = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > std::time::Duration::from_secs(120) {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!("`galley {}` hangs:\n{}", args.join(" "), stderr(&out));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }

    /// `galley verify out/tiny <extra>` from `cwd` (relative to the temporary folder).
    fn verify_from(&self, cwd: &str, output: &str, extra: &[&str]) -> Output {
        let mut args = vec!["verify", output];
        args.extend_from_slice(extra);
        self.run_bounded(&self.path(cwd), &args)
    }

    /// Edit the output folder's provenance record.
    fn edit_record(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = self.path("out/tiny/provenance.json");
        let mut record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        edit(&mut record);
        std::fs::write(&path, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
    }

    /// `galley build tiny --out out --format html` (no typesetting: fast).
    fn build(&self, env: &[(&str, &str)]) -> Output {
        self.run(&["build", "tiny", "--out", "out", "--format", "html"], env)
    }

    fn build_ok(&self) {
        let r = self.build(&[]);
        assert!(r.status.success(), "{}", stderr(&r));
    }

    /// The names in the output root.
    fn out_root(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    fn edit_prose(&self, marker: &str) {
        let main = self.path("tiny/manuscript/main.md");
        let mut text = std::fs::read_to_string(&main).unwrap();
        text.push_str(&format!("\n{marker}\n"));
        std::fs::write(&main, text).unwrap();
    }
}

/// Every output the folder's provenance record lists is there with the recorded bytes: a complete
/// report, not a half-written one.
fn assert_complete_report(dir: &Path) {
    use sha2::{Digest, Sha256};
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("provenance.json")).unwrap()).unwrap();
    for (name, entry) in record["outputs"].as_object().unwrap() {
        let bytes = std::fs::read(dir.join(name)).unwrap_or_default();
        assert_eq!(
            entry["sha256"].as_str().unwrap(),
            hex::encode(Sha256::digest(&bytes)),
            "{name} in {}",
            dir.display()
        );
    }
}

/// A process id that is not running (a child that has exited and been waited for).
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

// ---- row 4: a build killed while it swaps its output in ----

#[test]
fn a_build_killed_at_any_point_of_the_swap_leaves_a_report_and_the_next_build_cleans_up() {
    // Each kill point of the swap, on Linux's atomic exchange and on the sequence used elsewhere.
    for fault in [
        "kill@before-swap",
        "kill@after-exchange",
        "no-exchange,kill@before-swap",
        "no-exchange,kill@after-aside",
        "no-exchange,kill@after-move-in",
    ] {
        let w = Work::new();
        w.build_ok();
        w.edit_prose("Second version.");
        let killed = w.build(&[("GALLEY_TEST_FAULT", fault)]);
        assert_eq!(
            killed.status.signal(),
            Some(9),
            "{fault}: {}",
            stderr(&killed)
        );
        // Killed: some leftovers may remain, but the report is whole (the old one or the new one),
        // or, killed between the two renames of the sequence, set aside for the next build.
        if fault != "no-exchange,kill@after-aside" {
            assert_complete_report(&w.path("out/tiny"));
        }
        // The next build recovers, cleans every leftover, and writes the new version.
        w.build_ok();
        assert_eq!(w.out_root(), ["tiny"], "{fault}");
        assert_complete_report(&w.path("out/tiny"));
        assert!(
            w.read("out/tiny/manuscript.html")
                .contains("Second version.")
        );
    }
}

#[test]
fn killed_between_the_renames_the_previous_report_is_put_back_by_any_later_build() {
    let w = Work::new();
    w.build_ok();
    let before = w.read("out/tiny/manuscript.html");
    w.edit_prose("Second version.");
    let killed = w.build(&[("GALLEY_TEST_FAULT", "no-exchange,kill@after-aside")]);
    assert_eq!(killed.status.signal(), Some(9), "{}", stderr(&killed));
    assert!(!w.path("out/tiny").exists(), "killed between the renames");
    // A build that fails (the study is broken now) still puts the previous report back.
    w.write("tiny/manuscript/main.md", "{{ nonexistent.value }}\n");
    let failed = w.build(&[]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert_eq!(w.out_root(), ["tiny"]);
    assert_eq!(w.read("out/tiny/manuscript.html"), before);
    assert_complete_report(&w.path("out/tiny"));
}

#[test]
fn leftovers_of_earlier_swaps_are_recovered_or_removed_and_a_running_build_is_left_alone() {
    let dead = dead_pid();
    // What an earlier galley left when killed: its complete new output as `.tiny.ready` (which made
    // every later build fail with "Directory not empty"), the previous one as `tiny.old-<pid>`, and
    // staging folders without a process id.
    let w = Work::new();
    w.build_ok();
    copy_dir(&w.path("out/tiny"), &w.path("out/.tiny.ready"));
    copy_dir(
        &w.path("out/tiny"),
        &w.path(&format!("out/tiny.old-{dead}")),
    );
    w.write("out/.tiny.galley-Ab12Cd/results.json", "{}");
    w.write(
        &format!("out/.tiny.galley-{dead}-xYz123/results.json"),
        "{}",
    );
    w.write(&format!("out/.tiny.galley-{dead}-prev/results.json"), "{}");
    // A staging folder of a build running now (this test's process) is not touched.
    let live = format!(".tiny.galley-{}-live00", std::process::id());
    w.write(&format!("out/{live}/results.json"), "{}");
    // A user's folder that merely looks like an old copy is not touched either.
    w.write(&format!("out/tiny.old-{dead}0/thesis.docx"), "mine");
    w.edit_prose("Second version.");
    w.build_ok();
    assert_eq!(
        w.out_root(),
        [
            live.clone(),
            "tiny".to_string(),
            format!("tiny.old-{dead}0")
        ]
    );
    assert!(
        w.read("out/tiny/manuscript.html")
            .contains("Second version.")
    );

    // With no report in place, the earlier galley's complete `.tiny.ready` is put back.
    let w = Work::new();
    w.build_ok();
    std::fs::rename(w.path("out/tiny"), w.path("out/.tiny.ready")).unwrap();
    w.write("tiny/manuscript/main.md", "{{ nonexistent.value }}\n");
    let failed = w.build(&[]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert_eq!(w.out_root(), ["tiny"]);
    assert_complete_report(&w.path("out/tiny"));
}

#[test]
fn several_killed_builds_in_a_row_leave_nothing_behind_after_the_next_one() {
    let w = Work::new();
    w.build_ok();
    for (i, fault) in [
        "kill@before-swap",
        "kill@after-exchange",
        "no-exchange,kill@after-move-in",
        "kill@before-swap",
    ]
    .into_iter()
    .enumerate()
    {
        w.edit_prose(&format!("Version {i}."));
        let killed = w.build(&[("GALLEY_TEST_FAULT", fault)]);
        assert_eq!(
            killed.status.signal(),
            Some(9),
            "{fault}: {}",
            stderr(&killed)
        );
    }
    // A failed build cleans up too, and so does the next good one.
    w.edit_prose("{{ nonexistent.value }}");
    assert_eq!(w.build(&[]).status.code(), Some(1));
    assert_eq!(w.out_root(), ["tiny"]);
    w.write("tiny/manuscript/main.md", "Fine again.\n");
    let _ = w.build(&[]);
    assert_eq!(w.out_root(), ["tiny"]);
}

// ---- row 5: only a folder galley wrote is replaced ----

#[test]
fn a_folder_with_someone_elses_files_is_never_replaced() {
    // Variants: an empty record; a real record of another study; a real record of this study
    // copied next to a thesis; galley's marker with a file it does not list; a marker of another
    // study.
    let w = Work::new();
    w.build_ok();
    let real = w.read("out/tiny/provenance.json");
    let marker = w.read("out/tiny/.galley-output.json");
    let other = real.replace("\"study\": \"tiny\"", "\"study\": \"other\"");
    assert_ne!(other, real);
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![("provenance.json", "{}".into())],
            "is not a galley record",
        ),
        (
            vec![("provenance.json", "not json".into())],
            "is not valid JSON",
        ),
        (
            vec![("provenance.json", other.clone())],
            "record of study `other`, not `tiny`",
        ),
        (
            vec![("provenance.json", real.clone())],
            "holds `thesis.docx`, which galley did not write",
        ),
        (
            vec![
                ("provenance.json", real.clone()),
                (".galley-output.json", marker.clone()),
            ],
            "holds `thesis.docx`, which galley did not write",
        ),
        (
            vec![(
                ".galley-output.json",
                marker.replace("\"study\": \"tiny\"", "\"study\": \"other\""),
            )],
            "report of study `other`, not `tiny`",
        ),
    ];
    for (files, reason) in cases {
        let w = Work::new();
        for (name, text) in &files {
            w.write(&format!("out/tiny/{name}"), text);
        }
        w.write("out/tiny/thesis.docx", "four years of work");
        let r = w.build(&[]);
        let err = stderr(&r);
        assert_eq!(r.status.code(), Some(1), "{files:?}: {err}");
        assert!(err.contains("`out/tiny` exists and"), "{err}");
        assert!(err.contains(reason), "{reason}: {err}");
        assert!(
            err.contains("will not replace a folder it did not write"),
            "{err}"
        );
        assert_eq!(w.read("out/tiny/thesis.docx"), "four years of work");
        assert_eq!(w.out_root(), ["tiny"]);
    }
    // An extra folder (even empty) counts as well.
    let w = Work::new();
    w.build_ok();
    std::fs::create_dir_all(w.path("out/tiny/drafts")).unwrap();
    let r = w.build(&[]);
    assert!(stderr(&r).contains("holds `drafts`"), "{}", stderr(&r));
    assert!(w.path("out/tiny/drafts").is_dir());
}

#[test]
fn galley_reports_are_replaced_including_those_of_the_previous_version() {
    let w = Work::new();
    w.build_ok();
    // An output galley wrote, edited by hand: still galley's, replaced.
    w.write("out/tiny/results.json", "{}");
    w.edit_prose("Second version.");
    w.build_ok();
    assert!(
        w.read("out/tiny/manuscript.html")
            .contains("Second version.")
    );
    // A report written before the marker existed: its provenance record is galley's, of this
    // study, and the folder holds nothing it does not list (besides the block cache).
    std::fs::remove_file(w.path("out/tiny/.galley-output.json")).unwrap();
    w.edit_prose("Third version.");
    w.build_ok();
    assert!(
        w.read("out/tiny/manuscript.html")
            .contains("Third version.")
    );
    assert!(w.path("out/tiny/.galley-output.json").is_file());
    // The same, with a file it does not list: refused.
    std::fs::remove_file(w.path("out/tiny/.galley-output.json")).unwrap();
    w.write("out/tiny/notes.txt", "mine");
    let r = w.build(&[]);
    assert!(
        stderr(&r).contains("holds `notes.txt`, which galley did not write"),
        "{}",
        stderr(&r)
    );
    assert_eq!(w.read("out/tiny/notes.txt"), "mine");
}

// ---- rows 1 and 2: `galley verify` finds the study from the record, safely, from anywhere ----

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn verify_finds_the_study_from_the_output_folder_not_the_current_folder() {
    let w = Work::new();
    w.build_ok();
    let record = w.read("out/tiny/provenance.json");
    assert!(
        record.contains("\"study_dir_from_output\": \"../../tiny\""),
        "{record}"
    );
    assert!(
        !record.contains("\"study_dir\""),
        "no path relative to where the build ran"
    );
    // From the project folder, from the output folder, and from a folder holding a decoy `tiny`
    // with other data (which an old record, relative to the current folder, would verify).
    copy_dir(&w.path("tiny"), &w.path("elsewhere/tiny"));
    w.write("elsewhere/tiny/data/patients.csv", "id,group\n");
    for (cwd, output) in [
        (".", "out/tiny"),
        ("out/tiny", "."),
        ("elsewhere", "../out/tiny"),
    ] {
        let r = w.verify_from(cwd, output, &[]);
        assert_eq!(
            r.status.code(),
            Some(0),
            "from {cwd}: {}{}",
            stdout(&r),
            stderr(&r)
        );
        assert!(stdout(&r).starts_with("identical"), "{}", stdout(&r));
    }
    // The project moved as a whole: still found.
    let moved = tempfile::tempdir().unwrap();
    let project = moved.path().join("project");
    std::fs::rename(w.path("tiny"), moved.path().join("tiny-tmp")).unwrap();
    std::fs::create_dir_all(&project).unwrap();
    std::fs::rename(moved.path().join("tiny-tmp"), project.join("tiny")).unwrap();
    std::fs::rename(w.path("out"), project.join("out")).unwrap();
    let r = w.run_bounded(&project, &["verify", "out/tiny"]);
    assert_eq!(r.status.code(), Some(0), "{}{}", stdout(&r), stderr(&r));
}

#[test]
fn a_study_not_found_is_said_so_and_can_be_given_with_study() {
    let w = Work::new();
    w.build_ok();
    std::fs::create_dir_all(w.path("moved")).unwrap();
    std::fs::rename(w.path("tiny"), w.path("moved/tiny")).unwrap();
    let r = w.verify_from(".", "out/tiny", &[]);
    let (out, err) = (stdout(&r), stderr(&r));
    assert_eq!(r.status.code(), Some(1), "{out}{err}");
    assert!(
        !out.contains("inputs changed") && !err.contains("inputs changed"),
        "{out}{err}"
    );
    assert!(err.contains("places the study at `../../tiny`"), "{err}");
    assert!(err.contains("has no study.toml"), "{err}");
    assert!(err.contains("--study DIR"), "{err}");
    let r = w.verify_from(".", "out/tiny", &["--study", "moved/tiny"]);
    assert_eq!(r.status.code(), Some(0), "{}{}", stdout(&r), stderr(&r));
    // A study folder of another name makes other outputs (the name is the study's): said so.
    std::fs::rename(w.path("moved/tiny"), w.path("moved/renamed")).unwrap();
    let r = w.verify_from(".", "out/tiny", &["--study", "moved/renamed"]);
    assert_eq!(r.status.code(), Some(1), "{}{}", stdout(&r), stderr(&r));
    assert!(
        stderr(&r).contains("is named `renamed`, but the record is of the study `tiny`"),
        "{}",
        stderr(&r)
    );
    // `--study` must be a study folder.
    let r = w.verify_from(".", "out/tiny", &["--study", "/etc"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        stderr(&r).contains("`/etc` (given with --study) is not a study folder"),
        "{}",
        stderr(&r)
    );
}

#[test]
fn records_of_the_previous_version_and_studies_built_far_from_their_output_ask_for_study() {
    let w = Work::new();
    w.build_ok();
    // A record as galley wrote it before: the study folder as typed where the build ran.
    w.edit_record(|r| {
        let o = r.as_object_mut().unwrap();
        o.remove("study_dir_from_output");
        o.insert("study_dir".into(), "tiny".into());
    });
    let r = w.verify_from(".", "out/tiny", &[]);
    let err = stderr(&r);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(err.contains("written by an earlier galley"), "{err}");
    assert!(
        err.contains("`tiny`") && err.contains("--study DIR"),
        "{err}"
    );
    // With --study the old record verifies (its outputs and inputs are unchanged).
    let r = w.verify_from(".", "out/tiny", &["--study", "tiny"]);
    assert_eq!(r.status.code(), Some(0), "{}{}", stdout(&r), stderr(&r));

    // Output root far from the study: the record says null, verify asks for --study.
    let far = tempfile::tempdir().unwrap();
    let out = far.path().join("a/b/c");
    let r = w.run(
        &[
            "build",
            "tiny",
            "--out",
            out.to_str().unwrap(),
            "--format",
            "html",
        ],
        &[],
    );
    assert!(r.status.success(), "{}", stderr(&r));
    let record = std::fs::read_to_string(out.join("tiny/provenance.json")).unwrap();
    assert!(
        record.contains("\"study_dir_from_output\": null"),
        "{record}"
    );
    let folder = out.join("tiny");
    let r = w.verify_from(".", folder.to_str().unwrap(), &[]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        stderr(&r).contains("does not say where the study folder is"),
        "{}",
        stderr(&r)
    );
    let r = w.verify_from(".", folder.to_str().unwrap(), &["--study", "tiny"]);
    assert_eq!(r.status.code(), Some(0), "{}{}", stdout(&r), stderr(&r));
}

#[test]
fn verify_reads_nothing_outside_the_study_the_record_names() {
    let w = Work::new();
    w.build_ok();
    w.write("secret.txt", "the secret\n");
    let secret_hash = sha256_hex(b"the secret\n");
    // The study location: absolute, up too far, not a study folder, a link out of the project.
    std::os::unix::fs::symlink("/etc", w.path("etc-link")).unwrap();
    std::fs::create_dir_all(w.path("notastudy")).unwrap();
    for (location, reason) in [
        ("/etc", "which is an absolute path"),
        (
            "../../../../../../../../etc",
            "outside the folder that holds the output root",
        ),
        (
            "../../tiny/../../etc",
            "not a folder beside the output root",
        ),
        ("../../notastudy", "has no study.toml"),
        ("../../etc-link", "a link that leads outside"),
        ("../..", "not a folder beside the output root"),
    ] {
        w.edit_record(|r| r["study_dir_from_output"] = location.into());
        let r = w.verify_from(".", "out/tiny", &[]);
        let err = stderr(&r);
        assert_eq!(r.status.code(), Some(1), "{location}: {}{err}", stdout(&r));
        assert!(err.contains(reason), "{location}: {err}");
        assert!(err.contains("out/tiny/provenance.json"), "{err}");
    }
    w.edit_record(|r| r["study_dir_from_output"] = "../../tiny".into());

    // No hash oracle: inputs the record adds (a link out of the study, a FIFO, a device) are never
    // read; the report is the same whether the recorded hash is the secret's or not.
    std::os::unix::fs::symlink("../secret.txt", w.path("tiny/leak.txt")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", w.path("tiny/zero")).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(w.path("tiny/fifo"))
            .status()
            .unwrap()
            .success()
    );
    let mut reports = Vec::new();
    for hash in [secret_hash.clone(), "0".repeat(64)] {
        w.edit_record(|r| {
            for name in ["leak.txt", "zero", "fifo"] {
                r["inputs"][name] = serde_json::json!({"sha256": hash, "bytes": 11});
            }
        });
        let r = w.verify_from(".", "out/tiny", &["--json"]);
        assert_eq!(r.status.code(), Some(2), "{}{}", stdout(&r), stderr(&r));
        let report: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        assert_eq!(
            report["changed_inputs"],
            serde_json::json!(["fifo", "leak.txt", "zero"]),
            "not inputs of the study"
        );
        reports.push(stdout(&r));
    }
    assert_eq!(
        reports[0], reports[1],
        "the verdict tells nothing about the secret"
    );

    // Even when the study no longer builds (then verify compares the recorded inputs one by one):
    // the FIFO, the device and the link are refused, never read.
    w.edit_prose("{{ nonexistent.value }}");
    let r = w.verify_from(".", "out/tiny", &[]);
    assert_eq!(r.status.code(), Some(1), "{}{}", stdout(&r), stderr(&r));
    assert!(
        stderr(&r).contains("nonexistent"),
        "the rebuild's own error: {}",
        stderr(&r)
    );
}

// ---- row 12: a forged block cache or PDF record is not trusted ----

/// Forge every cached block result of `out/<study>`: a reported number changed, with its
/// `payload_sha256` recomputed, as anyone holding the folder could. Returns how many were forged.
fn forge_cache(dir: &Path) -> usize {
    let mut forged = 0;
    for entry in std::fs::read_dir(dir.join(".cache/blocks")).unwrap() {
        let path = entry.unwrap().path();
        let mut e: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let mut payload: serde_json::Value =
            serde_json::from_str(e["payload"].as_str().unwrap()).unwrap();
        payload["value"] = serde_json::json!({"n": 999_999, "forged": true});
        let text = serde_json::to_string(&payload).unwrap();
        e["payload_sha256"] = sha256_hex(text.as_bytes()).into();
        e["payload"] = text.into();
        std::fs::write(&path, serde_json::to_vec(&e).unwrap()).unwrap();
        forged += 1;
    }
    forged
}

#[test]
fn a_forged_block_cache_is_rejected_and_every_block_reruns() {
    let w = Work::new();
    // `build tiny --out out --format html --timings [extra]` under `env`: it succeeds; its stderr.
    let build = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec![
            "build",
            "tiny",
            "--out",
            "out",
            "--format",
            "html",
            "--timings",
        ];
        args.extend_from_slice(extra);
        let r = w.run(&args, env);
        assert!(r.status.success(), "{}", stderr(&r));
        stderr(&r)
    };
    let ran = |err: &str, run: usize, cached: usize| {
        assert!(
            err.contains(&format!("blocks: {run} run, {cached} from the cache")),
            "{err}"
        );
    };
    build(&[], &[]);
    let honest = w.read("out/tiny/results.json");
    let key = w.path("cache-home/galley/cache-key");
    assert!(
        key.is_file(),
        "the key is made on first use, outside study and output"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is the user's only: {mode:o}");
    }
    let n = forge_cache(&w.path("out/tiny"));
    assert!(n > 0);
    ran(&build(&[], &[]), n, 0);
    assert_eq!(w.read("out/tiny/results.json"), honest);
    assert!(!w.read("out/tiny/trail.json").contains("999999"));

    // Entries written by another user's galley (another key) are not trusted either.
    let other_home = w.path("another-user");
    ran(
        &build(&[], &[("XDG_CACHE_HOME", other_home.to_str().unwrap())]),
        n,
        0,
    );
    // Our own entries are used; `--no-cache` ignores them.
    ran(&build(&[], &[]), n, 0);
    ran(&build(&[], &[]), 0, n);
    ran(&build(&["--no-cache"], &[]), n, 0);
    assert_eq!(w.read("out/tiny/results.json"), honest);
}

#[test]
fn a_forged_pdf_with_its_typesetting_record_is_not_reused() {
    let w = Work::new();
    let build = |extra: &[&str]| {
        let mut args = vec!["build", "tiny", "--out", "out", "--timings"];
        args.extend_from_slice(extra);
        let r = w.run(&args, &[]);
        assert!(r.status.success(), "{}", stderr(&r));
        stderr(&r)
    };
    build(&[]);
    let honest = std::fs::read(w.path("out/tiny/manuscript.pdf")).unwrap();
    // Another PDF, with the typesetting record's hash made to match it.
    let forged = b"%PDF-1.7 forged".to_vec();
    std::fs::write(w.path("out/tiny/manuscript.pdf"), &forged).unwrap();
    let record_path = w.path("out/tiny/.cache/typeset.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    record["pdf_sha256"] = sha256_hex(&forged).into();
    std::fs::write(&record_path, serde_json::to_vec(&record).unwrap()).unwrap();
    let log = build(&[]);
    assert!(!log.contains("typeset (unchanged, reused)"), "{log}");
    assert_eq!(
        std::fs::read(w.path("out/tiny/manuscript.pdf")).unwrap(),
        honest
    );
    // Its own record is reused, unless --no-cache.
    assert!(build(&[]).contains("typeset (unchanged, reused)"));
    assert!(!build(&["--no-cache"]).contains("typeset (unchanged, reused)"));
}
