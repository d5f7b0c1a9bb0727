//! `galley simulate`: the committed snapshots of `study/croome2016` are exactly what the command writes,
//! the snapshots agree with each other, the bone-metastasis group has the published counts, spec
//! errors are located, and a second model (the `galley new` template's) draws through the same code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::{galley, root, stderr};

const SNAPSHOT_2015: &str = "study/croome2016/data/2015";
const SNAPSHOT_2020: &str = "study/croome2016/data/2020";
const COMPANION: &str = "study/croome2016-2020/data";

type Row = BTreeMap<String, String>;

fn read_csv(path: &Path) -> Vec<Row> {
    let mut reader =
        csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    reader
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

fn header(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn committed_snapshots_are_what_simulate_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let study = tmp.path().join("croome2016");
    std::fs::create_dir_all(&study).unwrap();
    std::fs::copy(
        root().join("study/croome2016/simulation.toml"),
        study.join("simulation.toml"),
    )
    .unwrap();
    // The copy for the companion study goes beside it, into the folder named with `--companion`.
    let companion = tmp.path().join("croome2016-2020");
    std::fs::create_dir_all(&companion).unwrap();
    let companion_arg = ["--companion", companion.to_str().unwrap()];
    let out = galley(
        &[&["simulate", study.to_str().unwrap()][..], &companion_arg].concat(),
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for (fresh, committed) in [
        ("croome2016/data/2015", SNAPSHOT_2015),
        ("croome2016/data/2020", SNAPSHOT_2020),
        ("croome2016-2020/data", COMPANION),
    ] {
        for file in ["patients.csv", "bone_lesions.csv"] {
            let a = std::fs::read(tmp.path().join(fresh).join(file)).unwrap();
            let b = std::fs::read(root().join(committed).join(file)).unwrap();
            assert!(
                a == b,
                "{committed}/{file} differs from what `galley simulate` writes"
            );
        }
        let names: BTreeSet<_> = std::fs::read_dir(tmp.path().join(fresh))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            BTreeSet::from(["bone_lesions.csv".to_string(), "patients.csv".to_string()])
        );
    }
    // `--check` agrees, and catches a changed file.
    let out = galley(
        &[
            "simulate",
            "--check",
            "study/croome2016",
            "--companion",
            "study/croome2016-2020",
        ],
        &root(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let patients = tmp.path().join("croome2016/data/2020/patients.csv");
    let mut text = std::fs::read_to_string(&patients).unwrap();
    text.push_str(
        "MC9999,Rochester,male,1950-01-01,2000-01-01,pancreas,G1,no,no,no,1,R0,2001-01-01,alive\n",
    );
    std::fs::write(&patients, text).unwrap();
    let out = galley(
        &[
            &["simulate", "--check", study.to_str().unwrap()][..],
            &companion_arg,
        ]
        .concat(),
        tmp.path(),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("data/2020/patients.csv"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn columns_are_the_export_layout() {
    for dir in [SNAPSHOT_2015, SNAPSHOT_2020, COMPANION] {
        let dir = root().join(dir);
        assert_eq!(
            header(&dir.join("patients.csv")),
            "patient_id,center,sex,birth_date,resection_date,primary_site,grade,functional,synchronous,\
bone_mets,segments_resected,margin,last_contact_date,vital_status"
        );
        assert_eq!(
            header(&dir.join("bone_lesions.csv")),
            "patient_id,lesion_no,site,treatment"
        );
    }
}

#[test]
fn censoring_the_2020_snapshot_at_the_2015_cutoff_gives_the_2015_snapshot() {
    let cutoff = "2015-08-31";
    let early = read_csv(&root().join(SNAPSHOT_2015).join("patients.csv"));
    let late = read_csv(&root().join(SNAPSHOT_2020).join("patients.csv"));
    assert_eq!(early.len(), late.len());
    let (mut more_deaths, mut later_contact) = (0, 0);
    for (e, l) in early.iter().zip(&late) {
        let id = &e["patient_id"];
        // Same patients, same baseline data.
        for (column, value) in e {
            if column != "last_contact_date" && column != "vital_status" {
                assert_eq!(&l[column], value, "{id}: {column}");
            }
        }
        // ISO dates compare as text. Censor the 2020 follow-up at the 2015 cutoff.
        let last = l["last_contact_date"].as_str();
        let dead_2020 = l["vital_status"] == "dead";
        let (censored_last, censored_dead) = if last <= cutoff {
            (last, dead_2020)
        } else {
            (cutoff, false)
        };
        assert_eq!(censored_last, e["last_contact_date"], "{id}: last contact");
        assert_eq!(
            censored_dead,
            e["vital_status"] == "dead",
            "{id}: vital status"
        );
        assert!(
            e["last_contact_date"].as_str() <= cutoff
                && e["last_contact_date"] >= e["resection_date"]
        );
        more_deaths += usize::from(dead_2020 && e["vital_status"] == "alive");
        later_contact += usize::from(last > e["last_contact_date"].as_str());
    }
    assert!(
        more_deaths > 0 && later_contact > 0,
        "{more_deaths} {later_contact}"
    );
    // The lesions are baseline data too.
    assert_eq!(
        std::fs::read(root().join(SNAPSHOT_2015).join("bone_lesions.csv")).unwrap(),
        std::fs::read(root().join(SNAPSHOT_2020).join("bone_lesions.csv")).unwrap()
    );
}

#[test]
fn bone_metastasis_group_has_the_published_counts() {
    let patients = read_csv(&root().join(SNAPSHOT_2015).join("patients.csv"));
    let lesions = read_csv(&root().join(SNAPSHOT_2015).join("bone_lesions.csv"));
    let ids: BTreeSet<&str> = patients.iter().map(|p| p["patient_id"].as_str()).collect();
    assert_eq!(ids.len(), patients.len(), "patient ids are unique");
    let lb: Vec<&Row> = patients
        .iter()
        .filter(|p| p["bone_mets"] == "yes")
        .collect();
    assert_eq!(lb.len(), 25);
    assert!(
        patients.len() - 25 >= 200,
        "a liver-only pool of a few hundred"
    );
    let major = lb
        .iter()
        .filter(|p| p["segments_resected"].parse::<u32>().unwrap() >= 3)
        .count();
    assert_eq!(major, 15, "60% major resections");
    let lb_ids: BTreeSet<&str> = lb.iter().map(|p| p["patient_id"].as_str()).collect();
    assert!(
        lesions
            .iter()
            .all(|l| lb_ids.contains(l["patient_id"].as_str())),
        "lesions only for bone_mets = yes"
    );
    let mut counts: Vec<usize> = lb_ids
        .iter()
        .map(|id| lesions.iter().filter(|l| l["patient_id"] == *id).count())
        .collect();
    counts.sort();
    assert_eq!(
        (counts[12], counts[0], counts[24]),
        (2, 1, 10),
        "median 2, range 1-10"
    );
    let with = |column: &str, value: &str| {
        lesions
            .iter()
            .filter(|l| l[column] == value)
            .map(|l| l["patient_id"].as_str())
            .collect::<BTreeSet<_>>()
            .len()
    };
    assert_eq!(
        (
            with("site", "spine"),
            with("site", "pelvis"),
            with("site", "ribs")
        ),
        (17, 6, 3)
    );
    assert_eq!(
        (
            with("treatment", "radiotherapy"),
            with("treatment", "rfa"),
            with("treatment", "resection")
        ),
        (10, 2, 1)
    );
    // Lesion numbers run 1..n within a patient.
    for id in &lb_ids {
        let nos: Vec<usize> = lesions
            .iter()
            .filter(|l| l["patient_id"] == *id)
            .map(|l| l["lesion_no"].parse().unwrap())
            .collect();
        assert_eq!(nos, (1..=nos.len()).collect::<Vec<_>>(), "{id}");
    }
}

fn simulate_spec(spec: &str) -> (bool, String) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("simulation.toml"), spec).unwrap();
    let out = galley(&["simulate", "."], tmp.path());
    (out.status.success(), stderr(&out))
}

#[test]
fn spec_errors_are_located() {
    let spec = std::fs::read_to_string(root().join("study/croome2016/simulation.toml")).unwrap();
    let line_of = |needle: &str| spec.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let at = |needle: &str| format!("simulation.toml:{}:", line_of(needle));
    let fails = |text: &str, wants: &[&str]| {
        let (ok, err) = simulate_spec(text);
        assert!(!ok, "accepted: {wants:?}");
        for w in wants {
            assert!(err.contains(w), "missing `{w}` in:\n{err}");
        }
    };

    // An unknown key names the key and its line.
    fails(
        &spec.replacen("draw = \"linear\"", "drw = \"linear\"", 1),
        &["unknown field `drw`", &at("draw = \"linear\"")],
    );
    // A stratum's parameter for a variable the file does not have.
    fails(
        &spec.replacen("sex = 0.47", "sx = 0.47", 1),
        &[
            "stratum `liver_only` gives a parameter for `sx`, which is not a variable of this file",
            &at("sex = 0.47"),
        ],
    );
    // ... and then the variable misses its parameter in that stratum.
    fails(
        &spec.replacen("sex = 0.47", "sx = 0.47", 1),
        &["variable `sex` has no `parameter`, and stratum `liver_only` gives none for it"],
    );
    // A level that is not among the variable's levels points at the line.
    fails(
        &spec.replacen("Florida = 0.15", "Jacksonville = 0.15", 1),
        &[
            "`Jacksonville` is not a level of `liver_only.center`",
            &at("Florida = 0.15"),
            "levels: Rochester, Florida",
        ],
    );
    // A variable used before it is defined, and one that does not exist.
    fails(
        &spec.replacen("at = \"accrual\"", "at = \"age\"", 1),
        &[
            "`resection_date` uses `age`, which is defined below it",
            &at("at = \"accrual\""),
        ],
    );
    fails(
        &spec.replacen("when = { grade = \"G3\" }", "when = { grad = \"G3\" }", 1),
        &["`death` uses `grad`, which is not a variable of this file"],
    );
    fails(
        &spec.replacen("when = { grade = \"G3\" }", "when = { grade = \"G4\" }", 1),
        &[
            "`G4` is not a level of `grade` (in `death`)",
            "levels: G1, G2, G3",
        ],
    );
    // The censoring variable removed: the follow-up says which name it cannot find.
    let start = spec.find("# Latent time to loss to follow-up").unwrap();
    let end = spec[start..]
        .find("[[variable]]\nname = \"bone_mets\"")
        .unwrap()
        + start;
    let without_loss = format!("{}{}", &spec[..start], &spec[end..]);
    let (ok, err) = simulate_spec(&without_loss);
    assert!(
        !ok && err
            .contains("`last_contact_date` uses `loss`, which is not a variable of this file"),
        "{err}"
    );
    // Values out of range, with what was expected.
    fails(
        &spec.replacen("sex = 0.47", "sex = 1.47", 1),
        &[
            "`liver_only.sex` is 1.47, expected a probability in [0, 1]",
            &at("sex = 0.47"),
        ],
    );
    fails(
        &spec.replacen("R2 = 0.30", "R2 = 0.40", 1),
        &[
            "the probabilities of `liver_only.margin` add up to 1.1",
            "expected 1",
        ],
    );
    fails(
        &spec.replacen("major = { exactly = 15 }", "major = { exactly = 26 }", 1),
        &["`bone_mets.major` is exactly 26, more than the stratum's 25 rows"],
    );
    fails(
        &spec.replacen("draw = \"weibull\"", "draw = \"weibul\"", 1),
        &["`draw = \"weibul\"` is not a distribution; expected one of bernoulli"],
    );
    fails(
        &spec.replacen("shape = 1.2", "shape = -1.2", 1),
        &["`death.shape` is -1.2, expected a positive number"],
    );
    fails(
        &spec.replacen("unit = \"months\"", "unit = \"weeks\"", 1),
        &[
            "`death.unit` is `weeks`; expected days, months or years",
            &at("unit = \"months\""),
        ],
    );
    fails(
        &spec.replacen("\"functional\",\n", "\"functionl\",\n", 1),
        &["`table.columns` names `functionl`, which is not a variable of this file"],
    );
    // Exact counts that cannot be met.
    fails(
        &spec.replacen("spine = 17", "spine = 26", 1),
        &["26 parents with `spine` in `bone_lesions.csv`, more than 25"],
    );
    fails(
        &spec.replacen("rfa = 2", "rfa = 20", 1),
        &["`treatment.marked_parents` adds up to 31 parents, more than 25"],
    );
}

fn simulate_dir(study: &Path, args: &[&str]) -> std::process::Output {
    galley(
        &[&["simulate", study.to_str().unwrap()][..], args].concat(),
        study.parent().unwrap(),
    )
}

/// A second, different model through the same code: a fresh `galley new` study's committed data are
/// what its `simulation.toml` draws, and drawing again gives the same bytes.
#[test]
fn a_new_study_simulates_its_cohort_deterministically() {
    let tmp = tempfile::tempdir().unwrap();
    let made = galley(&["new", "demo"], tmp.path());
    assert!(made.status.success(), "{}", stderr(&made));
    let study = tmp.path().join("demo");
    let csv = study.join("data/patients.csv");
    let committed = std::fs::read(&csv).unwrap();
    let out = simulate_dir(&study, &["--check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_file(&csv).unwrap();
    let out = simulate_dir(&study, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::read(&csv).unwrap() == committed,
        "simulate is not deterministic"
    );
    let rows = read_csv(&csv);
    assert_eq!(rows.len(), 120);
    assert_eq!(rows.iter().filter(|r| r["arm"] == "new").count(), 60);
    assert_eq!(rows[0]["id"], "P001");
    let cutoff = "2023-06-30";
    for r in &rows {
        assert!(
            r["enrolled"] <= r["last_contact"] && r["last_contact"].as_str() <= cutoff,
            "{r:?}"
        );
        let age: u32 = r["age"].parse().unwrap();
        assert!((18..=90).contains(&age), "{r:?}");
    }
    // A changed parameter changes the data, and only what depends on it: the same enrolment dates.
    let spec_path = study.join("simulation.toml");
    let spec = std::fs::read_to_string(&spec_path).unwrap();
    std::fs::write(
        &spec_path,
        spec.replacen("median = 30.0", "median = 60.0", 1),
    )
    .unwrap();
    let out = simulate_dir(&study, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let longer = read_csv(&csv);
    assert!(std::fs::read(&csv).unwrap() != committed);
    for (a, b) in rows.iter().zip(&longer) {
        for column in ["id", "arm", "age", "sex", "stage", "enrolled"] {
            assert_eq!(a[column], b[column], "{column}");
        }
    }
    // The study builds from the data it drew.
    let built = galley(&["-q", "check", "demo"], tmp.path());
    assert!(built.status.success(), "{}", stderr(&built));
}

/// The guide's example spec is the template's, so the guide shows a spec that runs.
#[test]
fn the_guide_shows_the_template_spec() {
    let guide = std::fs::read(root().join("docs/examples/simulation.toml")).unwrap();
    let template =
        std::fs::read(root().join("templates/new/cohort-survival/simulation.toml")).unwrap();
    assert!(
        guide == template,
        "docs/examples/simulation.toml differs from the template's"
    );
}

/// The flagship study builds from the committed snapshot and every published figure of the abstract is
/// reproduced within its tolerance; the companion study of the 2020 snapshot builds too.
#[test]
fn croome2016_reproduces_the_published_figures() {
    let out = tempfile::tempdir().unwrap();
    let o = galley(
        &[
            "build",
            "study/croome2016",
            "--out",
            out.path().to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> =
        crate::common::record(&out.path().join("croome2016/reproduction.json"));
    let keys: Vec<&str> = rows
        .iter()
        .map(|r| r["quantity"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "n_lb",
            "n_l",
            "major_pct_lb",
            "major_pct_l",
            "major_p",
            "median_os_lb",
            "median_os_l",
            "logrank_p",
            "median_os_gnet",
            "median_os_pnet",
            "bone_mets_median",
            "bone_mets_min",
            "bone_mets_max",
            "spine_pct",
            "pelvis_pct",
            "ribs_pct",
            "rt_n",
            "rfa_n",
            "resection_n"
        ]
    );
    for r in rows {
        assert_eq!(r["within"], true, "{r}");
    }
    let o = galley(
        &[
            "build",
            "study/croome2016-2020",
            "--out",
            out.path().to_str().unwrap(),
        ],
        &root(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.path().join("croome2016-2020/manuscript.pdf").exists());
}
