//! `galley simulate`: write a study's simulated data snapshots from its generative spec.
//!
//! The spec (`simulation.toml` in the study folder) describes how a surgical cohort of patients with
//! metastatic neuroendocrine tumours (NET) resected at two centres arises: a pool of patients whose
//! metastases are confined to the liver and a group with known bone metastases, their baseline
//! characteristics, the bone lesions of the second group, a latent time to death and a latent time to
//! loss to follow-up. Each `[[snapshot]]` is that same cohort seen at a data cutoff, written as a
//! clinical database export would give it (`patients.csv`, `bone_lesions.csv`): baseline data are the
//! same in every snapshot; the last contact is `min(death, loss, cutoff)` and a patient is dead when
//! death comes first (`death <= min(loss, cutoff)`). So censoring a later snapshot at an earlier
//! cutoff gives exactly the earlier snapshot's survival data.
//!
//! Reproducibility: the random numbers come from ChaCha8 (a specified stream cipher, the same on
//! every machine) keyed from the spec's seed by SplitMix64 written out here. Every draw is made from
//! uniforms built from the raw 64-bit output (`u64 -> (0, 1)` with 53 bits), by inverse CDFs and
//! sums written here rather than a distribution crate, so a dependency update cannot change the data.
//! Each patient has a ChaCha stream of its own and a fixed number of draws per characteristic, so a
//! change to one parameter (a survival time ratio) leaves everything else about the cohort as it was.
//! Dates are whole days and numbers are written as integers, so the output is byte-identical for a
//! given seed (the only transcendental functions, `ln` and `powf` in the survival and loss times, are
//! rounded to whole days).

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use jiff::ToSpan;
use jiff::civil::Date;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use toml::Spanned;

use crate::diagnostics::{Diagnostic, Failure, Result, io_error};
use crate::manifest::{DateText, toml_diagnostic};
use crate::output::{OutputFiles, write_atomically};

/// The generative spec's file name in the study folder.
pub const SPEC_FILE: &str = "simulation.toml";

/// Levels of the export's categorical columns, in the order they are listed (issue 4's data layout).
pub const CENTERS: [&str; 2] = ["Rochester", "Florida"];
pub const PRIMARY_SITES: [&str; 7] = [
    "small_bowel",
    "appendix",
    "colorectal",
    "stomach",
    "pancreas",
    "lung",
    "unknown",
];
/// Primary sites of gastrointestinal NET (GNET); `pancreas` is PNET; the rest are "other".
pub const GNET_SITES: [&str; 4] = ["small_bowel", "appendix", "colorectal", "stomach"];
pub const GRADES: [&str; 3] = ["G1", "G2", "G3"];
pub const MARGINS: [&str; 4] = ["R0", "R1", "R2", "missing"];
pub const BONE_SITES: [&str; 8] = [
    "spine", "pelvis", "ribs", "skull", "femur", "humerus", "sternum", "scapula",
];
pub const TREATMENTS: [&str; 3] = ["radiotherapy", "rfa", "resection"];

/// Header of `patients.csv`.
pub const PATIENT_COLUMNS: [&str; 14] = [
    "patient_id",
    "center",
    "sex",
    "birth_date",
    "resection_date",
    "primary_site",
    "grade",
    "functional",
    "synchronous",
    "bone_mets",
    "segments_resected",
    "margin",
    "last_contact_date",
    "vital_status",
];
/// Header of `bone_lesions.csv`.
pub const LESION_COLUMNS: [&str; 4] = ["patient_id", "lesion_no", "site", "treatment"];

const DAYS_PER_YEAR: f64 = 365.25;
const DAYS_PER_MONTH: f64 = 365.25 / 12.0;

// ---------------------------------------------------------------------------------------------
// The spec, as written

/// `simulation.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Key of every random number of the simulation.
    pub seed: u64,
    pub cohort: CohortSpec,
    /// Data snapshots to write, each at its own cutoff.
    #[serde(rename = "snapshot")]
    pub snapshots: Vec<SnapshotSpec>,
    /// Patients whose metastatic disease was confined to the liver.
    pub liver_only: GroupSpec,
    /// Patients with known bone metastases at hepatic resection.
    pub bone_mets: GroupSpec,
    pub bone_lesions: LesionSpec,
    pub death: DeathSpec,
    pub loss_to_follow_up: LossSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortSpec {
    /// First day of the accrual period (hepatic resections from this date on).
    pub accrual_start: Spanned<DateText>,
    /// Last day of the accrual period (resections before this date).
    pub accrual_end: Spanned<DateText>,
    /// Patient ids are this prefix and a 4-digit number in order of resection date.
    pub id_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSpec {
    /// Data cutoff: follow-up ends on this date.
    pub cutoff: Spanned<DateText>,
    /// Folder (relative to the study folder) the snapshot's CSV files are written to; it is replaced.
    pub path: Spanned<String>,
    /// Further folders receiving identical copies (e.g. the data folder of a companion study).
    #[serde(default)]
    pub copies: Vec<Spanned<String>>,
}

/// Baseline characteristics of one group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub patients: usize,
    /// Resection volume at the end of accrual relative to its start (the density of resection
    /// dates is linear in calendar time; 1 is uniform).
    pub accrual_trend: f64,
    /// Probability of each centre.
    pub center: IndexMap<Spanned<String>, f64>,
    pub female: f64,
    pub age: AgeSpec,
    /// Probability of each primary site.
    pub primary_site: IndexMap<Spanned<String>, f64>,
    /// Probability of each grade among patients whose grade was recorded.
    pub grade: IndexMap<Spanned<String>, f64>,
    /// Probability that the grade was not recorded, at the start and at the end of accrual
    /// (linear in between: grading became routine over the period).
    pub grade_missing: [f64; 2],
    /// Hormonal syndrome.
    pub functional: f64,
    /// Liver metastases found with the primary tumour.
    pub synchronous: f64,
    /// Probability of a major resection (3 or more segments), drawn per patient; or
    pub major_resection_probability: Option<f64>,
    /// the exact number of major resections in the group, on a random subset of its patients.
    pub major_resections: Option<Spanned<usize>>,
    /// Relative frequency of 1 and 2 segments in a minor resection.
    pub segments_minor: [f64; 2],
    /// Relative frequency of 3, 4, ..., 8 segments in a major resection.
    pub segments_major: [f64; 6],
    /// Probability of each margin status (`missing`: not recorded).
    pub margin: IndexMap<Spanned<String>, f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeSpec {
    /// Mean and SD of age at resection (years), before truncation to `[min, max]`.
    pub mean: f64,
    pub sd: f64,
    pub min: f64,
    pub max: f64,
}

/// Bone lesions of the bone-metastasis group, built to exact counts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LesionSpec {
    /// Number of bone lesions of each patient (as a multiset: one value per patient of the group,
    /// assigned to patients at random).
    pub lesions_per_patient: Spanned<Vec<usize>>,
    /// Number of patients with at least one lesion at these sites (each patient gets one lesion at
    /// each of its sites first).
    pub patients_with_site: IndexMap<Spanned<String>, usize>,
    /// A patient's further lesions are at one of its sites above with this probability, else
    /// elsewhere.
    pub further_at_same_site: f64,
    /// Relative frequency of the sites of lesions elsewhere (not among `patients_with_site`).
    pub other_sites: IndexMap<Spanned<String>, f64>,
    /// Number of patients treated with each treatment (disjoint sets of patients).
    pub patients_treated: IndexMap<Spanned<String>, usize>,
    /// Each further lesion of a patient given radiotherapy is irradiated too with this probability.
    pub radiotherapy_further_lesion: f64,
}

/// Latent time to death: Weibull, proportional hazards written as time ratios (accelerated failure
/// time): the median of a patient is `median_months` times the product of the ratios that apply.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeathSpec {
    /// Weibull shape (1: exponential; above 1: hazard rising with time).
    pub shape: f64,
    /// Median survival (months) of the reference patient: liver-only, GNET, grade G1, G2 or not
    /// recorded, aged `reference_age`.
    pub median_months: f64,
    pub reference_age: f64,
    pub time_ratio: TimeRatios,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRatios {
    pub bone_mets: f64,
    /// Pancreatic primary (PNET).
    pub pnet: f64,
    /// Lung or unknown primary.
    pub other_primary: f64,
    pub grade_g3: f64,
    /// Per 10 years of age above `reference_age` (below it, the inverse).
    pub per_decade_of_age: f64,
}

/// Latent time to loss to follow-up after resection: exponential.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossSpec {
    pub rate_per_year: f64,
}

// ---------------------------------------------------------------------------------------------
// Reading and checking the spec

/// `simulation.toml`'s text: a regular file only (a FIFO would hang `simulate`), at most 16 MiB.
fn read_spec(file: &Path) -> Result<String> {
    let bytes = crate::study::read_regular(file, 16 * 1024 * 1024)
        .map_err(|e| io_error("read", file, &e))?
        .map_err(|why| {
            let why = match why {
                crate::study::NotRegular::Kind(kind) => kind.to_string(),
                crate::study::NotRegular::TooBig(_) => "larger than 16 MiB".to_string(),
            };
            Diagnostic::error(format!("cannot read `{}`: it is {why}", file.display()))
                .in_file(file)
        })?;
    String::from_utf8(bytes)
        .map_err(|e| crate::diagnostics::not_utf8(file, e.as_bytes(), e.utf8_error()).into())
}

/// A spec read from a study folder and checked, with its dates parsed.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub root: PathBuf,
    pub spec: Spec,
    pub accrual_start: Date,
    pub accrual_end: Date,
    /// Cutoff of each snapshot, in the spec's order.
    pub cutoffs: Vec<Date>,
}

impl Simulation {
    /// Read and check `<study>/simulation.toml`.
    pub fn load(study_dir: &Path) -> Result<Simulation> {
        let file = study_dir.join(SPEC_FILE);
        let source = read_spec(&file)?;
        Simulation::parse(study_dir, &source, &file)
    }

    /// Parse and check spec text; `file` locates diagnostics.
    pub fn parse(study_dir: &Path, source: &str, file: &Path) -> Result<Simulation> {
        let spec: Spec =
            toml::from_str(source).map_err(|e| Failure::from(toml_diagnostic(&e, source, file)))?;
        let mut checker = Checker {
            file,
            source,
            problems: Vec::new(),
        };
        let accrual_start = checker.date("cohort.accrual_start", &spec.cohort.accrual_start);
        let accrual_end = checker.date("cohort.accrual_end", &spec.cohort.accrual_end);
        if let (Some(a), Some(b)) = (accrual_start, accrual_end)
            && a >= b
        {
            checker.error_at(
                format!("the accrual period is empty: it starts on {a} and ends on {b}"),
                spec.cohort.accrual_end.span().start,
            );
        }
        let mut cutoffs = Vec::new();
        if spec.snapshots.is_empty() {
            checker.problems.push(
                Diagnostic::error("no `[[snapshot]]`: nothing to write")
                    .in_file(file)
                    .hint("add `[[snapshot]]` with `cutoff = 2015-08-31` and `path = \"data\"`"),
            );
        }
        for (i, s) in spec.snapshots.iter().enumerate() {
            let cutoff = checker.date(&format!("snapshot[{i}].cutoff"), &s.cutoff);
            if let (Some(c), Some(b)) = (cutoff, accrual_end)
                && c < b
            {
                checker.error_at(
                    format!("the cutoff {c} is before the end of accrual ({b})"),
                    s.cutoff.span().start,
                );
            }
            cutoffs.push(cutoff.unwrap_or(Date::MIN));
            for p in std::iter::once(&s.path).chain(&s.copies) {
                if Path::new(p.get_ref()).is_absolute() || p.get_ref().is_empty() {
                    checker.error_at(
                        format!(
                            "`{}` is not a relative path; snapshot folders are relative to the study folder",
                            p.get_ref()
                        ),
                        p.span().start,
                    );
                }
            }
        }
        checker.group("liver_only", &spec.liver_only);
        checker.group("bone_mets", &spec.bone_mets);
        checker.lesions(&spec.bone_lesions, spec.bone_mets.patients);
        let d = &spec.death;
        checker.positive("death.shape", d.shape);
        checker.positive("death.median_months", d.median_months);
        checker.positive("death.reference_age", d.reference_age);
        let r = &d.time_ratio;
        for (name, v) in [
            ("bone_mets", r.bone_mets),
            ("pnet", r.pnet),
            ("other_primary", r.other_primary),
            ("grade_g3", r.grade_g3),
            ("per_decade_of_age", r.per_decade_of_age),
        ] {
            checker.positive(&format!("death.time_ratio.{name}"), v);
        }
        checker.positive(
            "loss_to_follow_up.rate_per_year",
            spec.loss_to_follow_up.rate_per_year,
        );
        if !checker.problems.is_empty() {
            return Err(Failure::new(checker.problems));
        }
        Ok(Simulation {
            root: study_dir.to_path_buf(),
            accrual_start: accrual_start.expect("checked"),
            accrual_end: accrual_end.expect("checked"),
            cutoffs,
            spec,
        })
    }
}

struct Checker<'a> {
    file: &'a Path,
    source: &'a str,
    problems: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error_at(&mut self, message: String, offset: usize) {
        self.problems
            .push(Diagnostic::error(message).at_offset(self.file, self.source, offset));
    }

    fn error(&mut self, message: String) {
        self.problems
            .push(Diagnostic::error(message).in_file(self.file));
    }

    fn date(&mut self, what: &str, value: &Spanned<DateText>) -> Option<Date> {
        let text = value.get_ref().as_text();
        let date = crate::study::parse_iso_date(&text);
        if date.is_none() {
            self.error_at(
                format!("`{what}` is `{text}`, expected a date as YYYY-MM-DD"),
                value.span().start,
            );
        }
        date
    }

    fn probability(&mut self, what: &str, p: f64) {
        if !(0.0..=1.0).contains(&p) {
            self.error(format!("`{what}` is {p}, expected a probability in [0, 1]"));
        }
    }

    fn positive(&mut self, what: &str, x: f64) {
        if !(x.is_finite() && x > 0.0) {
            self.error(format!("`{what}` is {x}, expected a positive number"));
        }
    }

    /// A distribution over `levels`: known keys, probabilities that sum to 1.
    fn distribution(&mut self, what: &str, map: &IndexMap<Spanned<String>, f64>, levels: &[&str]) {
        self.known_keys(what, map.keys(), levels);
        let mut sum = 0.0;
        for (k, &p) in map {
            if !(p.is_finite() && p >= 0.0) {
                self.error_at(
                    format!("`{what}.{}` is {p}, expected a probability", k.get_ref()),
                    k.span().start,
                );
            }
            sum += p;
        }
        if (sum - 1.0).abs() > 1e-9 {
            self.error(format!(
                "the probabilities of `{what}` add up to {sum}, expected 1"
            ));
        }
    }

    fn weights(&mut self, what: &str, w: &[f64]) {
        if w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) || w.iter().sum::<f64>() <= 0.0 {
            self.error(format!(
                "`{what}` must be non-negative weights, not all zero"
            ));
        }
    }

    fn known_keys<'k>(
        &mut self,
        what: &str,
        keys: impl Iterator<Item = &'k Spanned<String>>,
        levels: &[&str],
    ) {
        for k in keys {
            if !levels.contains(&k.get_ref().as_str()) {
                self.problems.push(
                    Diagnostic::error(format!("`{}` is not a level of `{what}`", k.get_ref()))
                        .at_offset(self.file, self.source, k.span().start)
                        .hint(format!("levels: {}", levels.join(", "))),
                );
            }
        }
    }

    fn group(&mut self, name: &str, g: &GroupSpec) {
        if g.patients == 0 {
            self.error(format!("`{name}.patients` is 0"));
        }
        self.positive(&format!("{name}.accrual_trend"), g.accrual_trend);
        self.distribution(&format!("{name}.center"), &g.center, &CENTERS);
        self.probability(&format!("{name}.female"), g.female);
        let a = &g.age;
        self.positive(&format!("{name}.age.sd"), a.sd);
        if !(a.min < a.max && a.min >= 0.0) {
            self.error(format!(
                "`{name}.age`: expected 0 <= min < max, found min {} and max {}",
                a.min, a.max
            ));
        }
        self.distribution(
            &format!("{name}.primary_site"),
            &g.primary_site,
            &PRIMARY_SITES,
        );
        self.distribution(&format!("{name}.grade"), &g.grade, &GRADES);
        for p in g.grade_missing {
            self.probability(&format!("{name}.grade_missing"), p);
        }
        self.probability(&format!("{name}.functional"), g.functional);
        self.probability(&format!("{name}.synchronous"), g.synchronous);
        match (g.major_resection_probability, &g.major_resections) {
            (Some(p), None) => self.probability(&format!("{name}.major_resection_probability"), p),
            (None, Some(n)) => {
                if *n.get_ref() > g.patients {
                    self.error_at(
                        format!(
                            "`{name}.major_resections` is {}, more than the group's {} patients",
                            n.get_ref(),
                            g.patients
                        ),
                        n.span().start,
                    );
                }
            }
            _ => self.error(format!(
                "`{name}` needs exactly one of `major_resection_probability` and `major_resections`"
            )),
        }
        self.weights(&format!("{name}.segments_minor"), &g.segments_minor);
        self.weights(&format!("{name}.segments_major"), &g.segments_major);
        self.distribution(&format!("{name}.margin"), &g.margin, &MARGINS);
    }

    fn lesions(&mut self, l: &LesionSpec, patients: usize) {
        let counts = l.lesions_per_patient.get_ref();
        if counts.len() != patients || counts.contains(&0) {
            self.error_at(
                format!(
                    "`bone_lesions.lesions_per_patient` must give one positive count per bone-metastasis patient ({patients}), found {} values",
                    counts.len()
                ),
                l.lesions_per_patient.span().start,
            );
        }
        self.known_keys(
            "bone_lesions.patients_with_site",
            l.patients_with_site.keys(),
            &BONE_SITES,
        );
        for (k, &n) in &l.patients_with_site {
            if n > patients {
                self.error_at(
                    format!(
                        "{n} patients with `{}` lesions, more than {patients}",
                        k.get_ref()
                    ),
                    k.span().start,
                );
            }
        }
        self.known_keys(
            "bone_lesions.other_sites",
            l.other_sites.keys(),
            &BONE_SITES,
        );
        for k in l.other_sites.keys() {
            if l.patients_with_site.contains_key(k.get_ref().as_str()) {
                self.error_at(
                    format!(
                        "`{}` is in both `patients_with_site` and `other_sites`",
                        k.get_ref()
                    ),
                    k.span().start,
                );
            }
        }
        let w: Vec<f64> = l.other_sites.values().copied().collect();
        self.weights("bone_lesions.other_sites", &w);
        self.probability("bone_lesions.further_at_same_site", l.further_at_same_site);
        self.known_keys(
            "bone_lesions.patients_treated",
            l.patients_treated.keys(),
            &TREATMENTS,
        );
        let treated: usize = l.patients_treated.values().sum();
        if treated > patients {
            self.error(format!(
                "`bone_lesions.patients_treated` adds up to {treated} patients, more than {patients}"
            ));
        }
        self.probability(
            "bone_lesions.radiotherapy_further_lesion",
            l.radiotherapy_further_lesion,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Random numbers

/// SplitMix64 (Steele, Lea & Flood 2014), to expand the spec's 64-bit seed into a ChaCha key.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stream of uniforms: ChaCha8 keyed by the seed, on its own stream number.
pub struct Draws {
    rng: ChaCha8Rng,
}

impl Draws {
    pub fn new(seed: u64, stream: u64) -> Draws {
        let mut state = seed;
        let mut key = [0u8; 32];
        for chunk in key.chunks_exact_mut(8) {
            chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(stream);
        Draws { rng }
    }

    /// Uniform on (0, 1), never 0 or 1: the top 53 bits, centred in their cell.
    pub fn uniform(&mut self) -> f64 {
        ((self.rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.uniform() * n as f64) as usize).min(n - 1)
    }

    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Index drawn with probability proportional to `weights`.
    pub fn choose(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let u = self.uniform() * total;
        let mut acc = 0.0;
        for (i, w) in weights.iter().enumerate() {
            acc += w;
            if u < acc {
                return i;
            }
        }
        weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
    }

    /// Approximately standard normal: the sum of 12 uniforms minus 6 (Irwin-Hall). Plain
    /// arithmetic, so identical on every machine; bounded at +-6 SD, which ages need anyway.
    pub fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }

    /// Standard exponential, by inversion.
    pub fn exponential(&mut self) -> f64 {
        -self.uniform().ln()
    }

    /// A random subset of `k` of `0..n` (partial Fisher-Yates), as membership flags.
    pub fn subset(&mut self, n: usize, k: usize) -> Vec<bool> {
        let mut idx: Vec<usize> = (0..n).collect();
        for i in 0..k.min(n) {
            let j = i + self.below(n - i);
            idx.swap(i, j);
        }
        let mut member = vec![false; n];
        for &i in &idx[..k.min(n)] {
            member[i] = true;
        }
        member
    }

    /// A random subset of `k` of the indices where `eligible` holds; `None` when too few are.
    pub fn subset_of(&mut self, eligible: &[bool], k: usize) -> Option<Vec<bool>> {
        let pool: Vec<usize> = (0..eligible.len()).filter(|&i| eligible[i]).collect();
        if pool.len() < k {
            return None;
        }
        let chosen = self.subset(pool.len(), k);
        let mut member = vec![false; eligible.len()];
        for (j, &i) in pool.iter().enumerate() {
            member[i] = chosen[j];
        }
        Some(member)
    }
}

// Stream numbers: patient `k` of group `g` draws from stream `g << 32 | k`; the exact-count
// constructions of a group draw from `CONSTRUCTION | g`.
const CONSTRUCTION: u64 = 1 << 40;

// ---------------------------------------------------------------------------------------------
// The cohort

/// Group of a patient, in the order the spec lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    LiverOnly = 0,
    BoneMets = 1,
}

/// One simulated patient: baseline data and latent event dates.
#[derive(Debug, Clone, PartialEq)]
pub struct Patient {
    pub id: String,
    pub group: Group,
    pub center: &'static str,
    pub female: bool,
    pub birth_date: Date,
    pub resection_date: Date,
    pub primary_site: &'static str,
    /// `None`: not recorded.
    pub grade: Option<&'static str>,
    pub functional: bool,
    pub synchronous: bool,
    pub segments_resected: u8,
    pub margin: &'static str,
    /// Latent date of death (may be after every cutoff).
    pub death_date: Date,
    /// Latent date of loss to follow-up.
    pub loss_date: Date,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lesion {
    pub patient_id: String,
    pub lesion_no: usize,
    pub site: &'static str,
    pub treatment: &'static str,
}

/// The simulated cohort: patients in order of resection date (ids in that order), lesions by patient.
#[derive(Debug, Clone, PartialEq)]
pub struct Cohort {
    pub patients: Vec<Patient>,
    pub lesions: Vec<Lesion>,
}

/// Survival data of a patient at a cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowUp {
    pub last_contact_date: Date,
    pub dead: bool,
}

impl Patient {
    /// Follow-up as the database shows it at `cutoff`: last contact `min(death, loss, cutoff)`,
    /// dead when death is not after the loss to follow-up nor the cutoff.
    pub fn follow_up(&self, cutoff: Date) -> FollowUp {
        let censor = self.loss_date.min(cutoff);
        FollowUp {
            last_contact_date: self.death_date.min(censor),
            dead: self.death_date <= censor,
        }
    }

    /// `GNET`, `PNET` or `other`.
    pub fn primary_group(&self) -> &'static str {
        if GNET_SITES.contains(&self.primary_site) {
            "GNET"
        } else if self.primary_site == "pancreas" {
            "PNET"
        } else {
            "other"
        }
    }
}

fn level<'a>(map: &IndexMap<Spanned<String>, f64>, levels: &[&'a str], d: &mut Draws) -> &'a str {
    let weights: Vec<f64> = map.values().copied().collect();
    let key = map.keys().nth(d.choose(&weights)).expect("non-empty");
    levels
        .iter()
        .find(|l| **l == key.get_ref().as_str())
        .expect("checked level")
}

fn add_days(date: Date, days: i64) -> Date {
    date.checked_add(days.days()).unwrap_or(Date::MAX)
}

/// Whole days (at least 1) of a latent time in days; far-future times are capped at 200 years.
fn whole_days(days: f64) -> i64 {
    days.ceil().clamp(1.0, 73_050.0) as i64
}

impl Simulation {
    /// Draw the cohort.
    pub fn cohort(&self) -> Result<Cohort> {
        let spec = &self.spec;
        let span_days = (self.accrual_end - self.accrual_start).get_days().max(1) as f64;
        let mut patients = Vec::new();
        let mut lesions_by_draw = Vec::new();
        for (g, group, gs) in [
            (0u64, Group::LiverOnly, &spec.liver_only),
            (1u64, Group::BoneMets, &spec.bone_mets),
        ] {
            let mut build = Draws::new(spec.seed, CONSTRUCTION | g);
            let major_exact = gs
                .major_resections
                .as_ref()
                .map(|n| build.subset(gs.patients, *n.get_ref()));
            for k in 0..gs.patients {
                let mut d = Draws::new(spec.seed, (g << 32) | k as u64);
                // Resection date: linear density from 1 to `accrual_trend` over the period, inverted.
                let u = d.uniform();
                let r = gs.accrual_trend;
                let x = if (r - 1.0).abs() < 1e-12 {
                    u
                } else {
                    let c = 1.0 + (r - 1.0) / 2.0;
                    ((1.0 + 2.0 * (r - 1.0) * u * c).sqrt() - 1.0) / (r - 1.0)
                };
                let resection_date = add_days(self.accrual_start, (x * span_days).floor() as i64);
                let center = level(&gs.center, &CENTERS, &mut d);
                let female = d.bernoulli(gs.female);
                let age = (gs.age.mean + gs.age.sd * d.normal()).clamp(gs.age.min, gs.age.max);
                let birth_date = add_days(resection_date, -(age * DAYS_PER_YEAR).round() as i64);
                let primary_site = level(&gs.primary_site, &PRIMARY_SITES, &mut d);
                let graded_grade = level(&gs.grade, &GRADES, &mut d);
                let [m0, m1] = gs.grade_missing;
                let p_missing = m0 + (m1 - m0) * x;
                let grade = (!d.bernoulli(p_missing)).then_some(graded_grade);
                let functional = d.bernoulli(gs.functional);
                let synchronous = d.bernoulli(gs.synchronous);
                let u_major = d.uniform();
                let major = match (&major_exact, gs.major_resection_probability) {
                    (Some(set), _) => set[k],
                    (None, Some(p)) => u_major < p,
                    (None, None) => unreachable!("checked"),
                };
                let minor_n = 1 + d.choose(&gs.segments_minor);
                let major_n = 3 + d.choose(&gs.segments_major);
                let segments_resected = if major { major_n } else { minor_n } as u8;
                let margin = level(&gs.margin, &MARGINS, &mut d);

                // Latent death time (Weibull by inversion) and loss to follow-up (exponential).
                let patient_stub = Patient {
                    id: String::new(),
                    group,
                    center,
                    female,
                    birth_date,
                    resection_date,
                    primary_site,
                    grade,
                    functional,
                    synchronous,
                    segments_resected,
                    margin,
                    death_date: resection_date,
                    loss_date: resection_date,
                };
                let median = self.median_months(&patient_stub, age) * DAYS_PER_MONTH;
                let shape = spec.death.shape;
                let t_death = median * (d.exponential() / std::f64::consts::LN_2).powf(1.0 / shape);
                let t_loss = d.exponential() / spec.loss_to_follow_up.rate_per_year * DAYS_PER_YEAR;
                patients.push(Patient {
                    death_date: add_days(resection_date, whole_days(t_death)),
                    loss_date: add_days(resection_date, whole_days(t_loss)),
                    ..patient_stub
                });
            }
            if group == Group::BoneMets {
                lesions_by_draw = self.lesions(&mut build)?;
            }
        }

        // Ids in order of resection date (then of drawing); lesions follow their patient.
        let n_liver = spec.liver_only.patients;
        let mut order: Vec<usize> = (0..patients.len()).collect();
        order.sort_by_key(|&i| patients[i].resection_date);
        let mut sorted = Vec::with_capacity(patients.len());
        let mut lesions = Vec::new();
        for (rank, &i) in order.iter().enumerate() {
            let mut p = patients[i].clone();
            p.id = format!("{}{:04}", spec.cohort.id_prefix, rank + 1);
            if i >= n_liver {
                for (no, (site, treatment)) in lesions_by_draw[i - n_liver].iter().enumerate() {
                    lesions.push(Lesion {
                        patient_id: p.id.clone(),
                        lesion_no: no + 1,
                        site,
                        treatment,
                    });
                }
            }
            sorted.push(p);
        }
        Ok(Cohort {
            patients: sorted,
            lesions,
        })
    }

    /// Median survival (months) of a patient under the death model.
    fn median_months(&self, p: &Patient, age: f64) -> f64 {
        let d = &self.spec.death;
        let r = &d.time_ratio;
        let mut m = d.median_months;
        if p.group == Group::BoneMets {
            m *= r.bone_mets;
        }
        m *= match p.primary_group() {
            "GNET" => 1.0,
            "PNET" => r.pnet,
            _ => r.other_primary,
        };
        if p.grade == Some("G3") {
            m *= r.grade_g3;
        }
        m * r.per_decade_of_age.powf((age - d.reference_age) / 10.0)
    }

    /// Lesions (site, treatment) of each bone-metastasis patient, in drawing order, to exact counts.
    fn lesions(&self, d: &mut Draws) -> Result<Vec<Vec<(&'static str, &'static str)>>> {
        let l = &self.spec.bone_lesions;
        let n = self.spec.bone_mets.patients;
        let infeasible = |what: &str| -> Failure {
            Diagnostic::error(format!(
                "the bone lesion counts cannot be met: {what}; give more patients several lesions"
            ))
            .in_file(self.root.join(SPEC_FILE))
            .into()
        };
        // Lesion counts, shuffled onto patients.
        let mut counts = l.lesions_per_patient.get_ref().clone();
        for i in (1..counts.len()).rev() {
            let j = d.below(i + 1);
            counts.swap(i, j);
        }
        // Patients with each counted site, where their number of lesions leaves room.
        let mut sites: Vec<Vec<&'static str>> = vec![Vec::new(); n];
        for (site, &k) in &l.patients_with_site {
            let site = *BONE_SITES
                .iter()
                .find(|s| **s == site.get_ref())
                .expect("checked");
            let eligible: Vec<bool> = (0..n).map(|i| sites[i].len() < counts[i]).collect();
            let member = d
                .subset_of(&eligible, k)
                .ok_or_else(|| infeasible(&format!("{k} patients with {site} lesions")))?;
            for i in (0..n).filter(|&i| member[i]) {
                sites[i].push(site);
            }
        }
        let other_weights: Vec<f64> = l.other_sites.values().copied().collect();
        let other_levels: Vec<&'static str> = l
            .other_sites
            .keys()
            .map(|k| {
                *BONE_SITES
                    .iter()
                    .find(|s| **s == k.get_ref())
                    .expect("checked")
            })
            .collect();
        let mut lesions: Vec<Vec<(&'static str, &'static str)>> = Vec::with_capacity(n);
        for i in 0..n {
            let mut own: Vec<(&'static str, &'static str)> =
                sites[i].iter().map(|s| (*s, "none")).collect();
            while own.len() < counts[i] {
                let u_same = d.uniform();
                let u_which = d.below(sites[i].len().max(1));
                let u_other = d.choose(&other_weights);
                let site = if !sites[i].is_empty() && u_same < l.further_at_same_site {
                    sites[i][u_which]
                } else {
                    other_levels[u_other]
                };
                own.push((site, "none"));
            }
            lesions.push(own);
        }
        // Treatments: disjoint sets of patients; radiotherapy to one lesion and perhaps others,
        // ablation or resection to one lesion.
        let mut untreated = vec![true; n];
        for (treatment, &k) in &l.patients_treated {
            let treatment = *TREATMENTS
                .iter()
                .find(|t| **t == treatment.get_ref())
                .expect("checked");
            let member = d
                .subset_of(&untreated, k)
                .ok_or_else(|| infeasible(&format!("{k} patients treated by {treatment}")))?;
            for i in (0..n).filter(|&i| member[i]) {
                untreated[i] = false;
                let first = d.below(lesions[i].len());
                lesions[i][first].1 = treatment;
                if treatment == "radiotherapy" {
                    for j in 0..lesions[i].len() {
                        if j != first && d.bernoulli(l.radiotherapy_further_lesion) {
                            lesions[i][j].1 = treatment;
                        }
                    }
                }
            }
        }
        Ok(lesions)
    }
}

// ---------------------------------------------------------------------------------------------
// Export

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

impl Cohort {
    /// `patients.csv` at `cutoff`.
    pub fn patients_csv(&self, cutoff: Date) -> String {
        let mut out = PATIENT_COLUMNS.join(",");
        out.push('\n');
        for p in &self.patients {
            let f = p.follow_up(cutoff);
            let row = [
                p.id.clone(),
                p.center.to_string(),
                if p.female { "female" } else { "male" }.to_string(),
                p.birth_date.to_string(),
                p.resection_date.to_string(),
                p.primary_site.to_string(),
                p.grade.unwrap_or("missing").to_string(),
                yes_no(p.functional).to_string(),
                yes_no(p.synchronous).to_string(),
                yes_no(p.group == Group::BoneMets).to_string(),
                p.segments_resected.to_string(),
                p.margin.to_string(),
                f.last_contact_date.to_string(),
                if f.dead { "dead" } else { "alive" }.to_string(),
            ];
            out.push_str(&row.join(","));
            out.push('\n');
        }
        out
    }

    /// `bone_lesions.csv` (the same at every cutoff).
    pub fn lesions_csv(&self) -> String {
        let mut out = LESION_COLUMNS.join(",");
        out.push('\n');
        for l in &self.lesions {
            out.push_str(&format!(
                "{},{},{},{}\n",
                l.patient_id, l.lesion_no, l.site, l.treatment
            ));
        }
        out
    }
}

/// What `galley simulate` wrote (or, with `check`, found different).
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Folders written, relative to the study folder as the spec names them, with their cutoffs.
    pub written: Vec<(String, Date)>,
    /// Files that differ from what the spec generates (with `check`).
    pub stale: Vec<PathBuf>,
}

/// The files of every snapshot folder, by folder (relative to the study folder).
pub fn snapshot_files(sim: &Simulation) -> Result<Vec<(String, Date, OutputFiles)>> {
    let cohort = sim.cohort()?;
    let lesions = cohort.lesions_csv();
    let mut out = Vec::new();
    for (s, &cutoff) in sim.spec.snapshots.iter().zip(&sim.cutoffs) {
        let mut files = OutputFiles::default();
        files.insert("patients.csv", cohort.patients_csv(cutoff));
        files.insert("bone_lesions.csv", lesions.clone());
        for folder in std::iter::once(&s.path).chain(&s.copies) {
            out.push((folder.get_ref().clone(), cutoff, files.clone()));
        }
    }
    Ok(out)
}

/// Where each snapshot folder goes (in the order of `snapshot_files`), checked against the sandbox:
/// a folder inside the study folder (never the folder itself: it is replaced as a whole), or, for a
/// `copies` entry only, a folder inside a companion study folder the user named on the command line.
/// A study folder alone can never make galley write (or read) outside it.
fn destinations(
    sim: &Simulation,
    source: &str,
    file: &Path,
    companions: &[PathBuf],
) -> Result<Vec<PathBuf>> {
    let study_dir = &sim.root;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for s in &sim.spec.snapshots {
        let folders = std::iter::once((&s.path, false)).chain(s.copies.iter().map(|c| (c, true)));
        for (folder, is_copy) in folders {
            let rel = folder.get_ref();
            let at = |message: String| {
                Diagnostic::error(message).at_offset(file, source, folder.span().start)
            };
            match crate::sandbox::resolve(study_dir, rel) {
                Ok(path) if crate::sandbox::is_within(study_dir, &path) => problems.push(at(format!(
                    "snapshot folder `{rel}` is the study folder itself; a snapshot folder is replaced as a whole, so it must be a folder inside the study"
                ))),
                Ok(path) => out.push(path),
                Err(crate::sandbox::Refusal::Parent) if is_copy => {
                    match companion_destination(study_dir, rel, companions) {
                        Ok(path) => out.push(path),
                        Err(d) => problems.push(d.at_offset(file, source, folder.span().start)),
                    }
                }
                Err(why) => problems.push(at(format!(
                    "snapshot folder `{rel}` is {}",
                    why.describe(SPEC_FILE)
                ))),
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Failure::new(problems))
    }
}

/// A copy that leaves the study folder (`../companion/data`): allowed only into a companion study
/// folder named with `--companion`, and only as leading `..` then plain names (no `..` further on),
/// with every link followed.
fn companion_destination(
    study_dir: &Path,
    rel: &str,
    companions: &[PathBuf],
) -> std::result::Result<PathBuf, Diagnostic> {
    use std::path::Component;
    let mut components = Path::new(rel).components().peekable();
    let mut up = PathBuf::new();
    while let Some(Component::ParentDir) = components.peek() {
        up.push("..");
        components.next();
    }
    if components
        .clone()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(Diagnostic::error(format!(
            "snapshot copy `{rel}` has `..` after a folder name; write it as `../<companion study>/<folder>`"
        )));
    }
    let target = study_dir.join(rel);
    let real_target = std::path::absolute(&target)
        .map(|t| crate::sandbox::real(&t))
        .map_err(|e| Diagnostic::error(format!("snapshot copy `{rel}` cannot be resolved: {e}")))?;
    for companion in companions {
        let Ok(real_companion) = companion.canonicalize() else {
            continue;
        };
        if real_target.starts_with(&real_companion) && real_target != real_companion {
            return Ok(target);
        }
        if crate::sandbox::is_within(&target, companion) {
            return Err(Diagnostic::error(format!(
                "snapshot copy `{rel}` leads through a link out of the companion study folder `{}` (to `{}`)",
                companion.display(),
                real_target.display()
            )));
        }
    }
    let companion = crate::sandbox::tidy(
        &study_dir.join(&up).join(
            components
                .next()
                .map_or(std::path::Component::CurDir.as_os_str(), |c| c.as_os_str()),
        ),
    );
    Err(Diagnostic::error(format!(
        "snapshot copy `{rel}` is outside the study folder, and no `--companion` holds it"
    ))
    .hint(format!(
        "galley simulate writes outside the study folder only into a companion study named on the command line: `galley simulate {} --companion {}`",
        study_dir.display(),
        companion.display()
    )))
}

/// `galley simulate <study>`: write every snapshot (each folder replaced atomically), or with
/// `check` only compare the files on disk with what would be written. `companions` are study folders
/// that `copies` may write into (named by the user, never by the spec alone).
pub fn run(study_dir: &Path, check: bool, companions: &[PathBuf]) -> Result<Report> {
    let file = study_dir.join(SPEC_FILE);
    if let Err(why) = crate::sandbox::resolve(study_dir, SPEC_FILE) {
        return Err(
            Diagnostic::error(format!("`{SPEC_FILE}` is {}", why.describe(SPEC_FILE)))
                .in_file(&file)
                .into(),
        );
    }
    let source = read_spec(&file)?;
    let sim = Simulation::parse(study_dir, &source, &file)?;
    for companion in companions {
        if !companion.is_dir() {
            return Err(Diagnostic::error(format!(
                "companion study folder `{}` does not exist",
                companion.display()
            ))
            .into());
        }
    }
    let dests = destinations(&sim, &source, &file, companions)?;
    let snapshots = snapshot_files(&sim)?;
    let mut report = Report::default();
    for ((folder, cutoff, files), dest) in snapshots.iter().zip(&dests) {
        if check {
            for (name, bytes) in &files.files {
                let path = dest.join(name);
                if crate::sandbox::read_regular_file(&path).as_deref() != Some(bytes.as_slice()) {
                    report.stale.push(path);
                }
            }
        } else {
            write_atomically(dest, files)?;
        }
        report.written.push((folder.clone(), *cutoff));
    }
    if check && !report.stale.is_empty() {
        return Err(Failure::new(
            report
                .stale
                .iter()
                .map(|p| {
                    Diagnostic::error(format!(
                        "`{}` is not what `galley simulate` writes from {SPEC_FILE}",
                        p.display()
                    ))
                    .in_file(p)
                    .hint(format!(
                        "run `galley simulate {}` and commit the result",
                        study_dir.display()
                    ))
                })
                .collect(),
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniforms_are_open_and_streams_differ() {
        let mut a = Draws::new(1, 0);
        let mut b = Draws::new(1, 1);
        let xa: Vec<f64> = (0..1000).map(|_| a.uniform()).collect();
        let xb: Vec<f64> = (0..1000).map(|_| b.uniform()).collect();
        assert!(xa.iter().all(|&u| u > 0.0 && u < 1.0));
        assert_ne!(xa, xb);
        let mean = xa.iter().sum::<f64>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
        // Pinned: the first uniform of seed 1, stream 0 (ChaCha8 output is specified).
        let first = Draws::new(1, 0).uniform();
        assert_eq!(first, xa[0]);
    }

    #[test]
    fn subsets_have_exact_size() {
        let mut d = Draws::new(7, 3);
        for k in 0..=10 {
            assert_eq!(d.subset(10, k).iter().filter(|&&m| m).count(), k);
        }
        let eligible = [true, false, true, true, false];
        let s = d.subset_of(&eligible, 3).unwrap();
        assert_eq!(s, vec![true, false, true, true, false]);
        assert!(d.subset_of(&eligible, 4).is_none());
    }

    #[test]
    fn follow_up_is_consistent_across_cutoffs() {
        let date = |s: &str| s.parse::<Date>().unwrap();
        let p = Patient {
            id: "X".into(),
            group: Group::LiverOnly,
            center: "Rochester",
            female: true,
            birth_date: date("1950-01-01"),
            resection_date: date("2010-01-01"),
            primary_site: "pancreas",
            grade: None,
            functional: false,
            synchronous: true,
            segments_resected: 2,
            margin: "R0",
            death_date: date("2017-03-01"),
            loss_date: date("2030-01-01"),
        };
        let early = p.follow_up(date("2015-08-31"));
        assert_eq!(early.last_contact_date, date("2015-08-31"));
        assert!(!early.dead);
        let late = p.follow_up(date("2020-08-31"));
        assert_eq!(late.last_contact_date, date("2017-03-01"));
        assert!(late.dead);
        let lost = Patient {
            loss_date: date("2016-01-01"),
            ..p
        };
        let f = lost.follow_up(date("2020-08-31"));
        assert_eq!((f.last_contact_date, f.dead), (date("2016-01-01"), false));
    }
}
