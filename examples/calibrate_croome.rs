//! Calibration of `study/croome2016/simulation.toml` against the published figures, with the real
//! estimators (`galley-stats`), as the study's analysis blocks compute them.
//!
//! ```text
//! cargo run --example calibrate_croome -- summary 0..200 [key=value ...]   # distribution over seeds
//! cargo run --example calibrate_croome -- search 0..5000 [key=value ...]   # seeds meeting every target
//! cargo run --example calibrate_croome -- show 1234 [key=value ...]        # one seed in detail
//! ```
//!
//! `key=value` overrides a value of the spec: a variable's key (`death.shape=1.3`) or a stratum's
//! parameter (`liver_only.sex=0.5`, `bone_mets.age.mean=56.0`), the value in TOML.
//! The analysis: propensity score by logistic regression on age (years), sex, primary group (GNET /
//! PNET / other), grade (missing = "unknown"), functional status, synchronous disease and year of
//! resection; nearest-neighbour matching 1:4 on the logit without replacement, caliper 0.2 SD; then in
//! the matched cohort Kaplan-Meier medians and the log-rank test by group, major resection by group
//! (chi-square and Fisher), and within the bone-metastasis group Kaplan-Meier medians GNET vs PNET.

use std::path::Path;

use galley::simulate::{SPEC_FILE, Simulation};
use galley_stats::design::Covariate;
use galley_stats::hypothesis::{CrossTab, chisq_test, fisher_test};
use galley_stats::km::{KmOptions, kaplan_meier};
use galley_stats::logrank::logrank;
use galley_stats::matching::{Link, NearestOptions, propensity_match};

/// The published targets and the accepted ranges (issue 4).
const MEDIAN_LB: f64 = 54.0;
const MEDIAN_L: f64 = 97.7;
const MEDIAN_GNET: f64 = 73.3;
const MEDIAN_PNET: f64 = 42.7;

#[derive(Debug, Clone, Default)]
struct Metrics {
    n_treated_matched: usize,
    n_control_matched: usize,
    median_lb: Option<f64>,
    median_l: Option<f64>,
    logrank_p: f64,
    median_gnet: Option<f64>,
    median_pnet: Option<f64>,
    n_gnet: usize,
    n_pnet: usize,
    major_pct_l: f64,
    major_chisq_p: f64,
    major_fisher_p: f64,
    model_warnings: usize,
    deaths_lb: usize,
    deaths_l: usize,
    max_abs_smd_after: f64,
}

fn within(x: Option<f64>, target: f64, rel: f64) -> bool {
    x.is_some_and(|x| ((x - target) / target).abs() <= rel)
}

impl Metrics {
    fn accepted(&self) -> bool {
        self.n_treated_matched == 25
            && self.n_control_matched == 100
            && within(self.median_lb, MEDIAN_LB, 0.10)
            && within(self.median_l, MEDIAN_L, 0.10)
            && (0.01..=0.05).contains(&self.logrank_p)
            && within(self.median_gnet, MEDIAN_GNET, 0.10)
            && within(self.median_pnet, MEDIAN_PNET, 0.10)
            && (self.major_pct_l - 55.0).abs() <= 5.0
            && self.major_chisq_p > 0.05
            && self.major_fisher_p > 0.05
            && self.model_warnings == 0
    }

    /// Sum of squared relative misses, for ranking accepted seeds (closest to the paper first).
    fn loss(&self) -> f64 {
        let rel = |x: Option<f64>, t: f64| x.map_or(1.0, |x| (x - t) / t);
        rel(self.median_lb, MEDIAN_LB).powi(2)
            + rel(self.median_l, MEDIAN_L).powi(2)
            + rel(self.median_gnet, MEDIAN_GNET).powi(2)
            + rel(self.median_pnet, MEDIAN_PNET).powi(2)
            + ((self.logrank_p - 0.03) / 0.03).powi(2) * 0.1
            + ((self.major_pct_l - 55.0) / 55.0).powi(2)
    }
}

fn months(a: jiff::civil::Date, b: jiff::civil::Date) -> f64 {
    (b - a).get_days() as f64 / (365.25 / 12.0)
}

/// What the analysis reads of a simulated patient, as the study's CSV shows it at a cutoff.
struct Patient {
    id: String,
    bone_mets: bool,
    female: bool,
    birth_date: jiff::civil::Date,
    resection_date: jiff::civil::Date,
    primary_group: &'static str,
    grade: String,
    functional: bool,
    synchronous: bool,
    segments_resected: u32,
    last_contact_date: jiff::civil::Date,
    dead: bool,
}

/// The simulated patients at `cutoff`, read through the spec's variable names.
fn patients(sim: &Simulation, cutoff: jiff::civil::Date) -> Result<Vec<Patient>, String> {
    let model = &sim.model;
    let drawn = sim.draw().map_err(|e| e.to_string())?;
    let text = |row: &galley::simulate::Row, name: &str| {
        let v = model
            .variable(name)
            .expect("a variable of the croome2016 spec");
        model.text(v, &model.as_of(row, v, cutoff))
    };
    let date = |s: String| s.parse::<jiff::civil::Date>().expect("a date");
    Ok(drawn
        .rows
        .iter()
        .map(|r| Patient {
            id: r.id.clone(),
            bone_mets: text(r, "bone_mets") == "yes",
            female: text(r, "sex") == "female",
            birth_date: date(text(r, "birth_date")),
            resection_date: date(text(r, "resection_date")),
            primary_group: match text(r, "primary_site").as_str() {
                "small_bowel" | "appendix" | "colorectal" | "stomach" => "GNET",
                "pancreas" => "PNET",
                _ => "other",
            },
            grade: text(r, "grade").replace("missing", "unknown"),
            functional: text(r, "functional") == "yes",
            synchronous: text(r, "synchronous") == "yes",
            segments_resected: text(r, "segments_resected").parse().expect("a number"),
            last_contact_date: date(text(r, "last_contact_date")),
            dead: text(r, "vital_status") == "dead",
        })
        .collect())
}

fn analyse(ps: &[Patient]) -> Result<Metrics, String> {
    let n = ps.len();
    let ids: Vec<String> = ps.iter().map(|p| p.id.clone()).collect();
    let treat: Vec<bool> = ps.iter().map(|p| p.bone_mets).collect();
    let cat = |name: &str, levels: &[&str], f: &dyn Fn(usize) -> &'static str| {
        let codes = (0..n)
            .map(|i| levels.iter().position(|l| *l == f(i)).expect("level"))
            .collect();
        Covariate::categorical(name, codes, levels.iter().map(|s| s.to_string()).collect())
    };
    let yn = |b: bool| if b { "yes" } else { "no" };
    let covariates = vec![
        Covariate::numeric(
            "age",
            ps.iter()
                .map(|p| (p.resection_date - p.birth_date).get_days() as f64 / 365.25)
                .collect(),
        ),
        cat("sex", &["female", "male"], &|i| {
            if ps[i].female { "female" } else { "male" }
        }),
        cat("primary_group", &["GNET", "PNET", "other"], &|i| {
            ps[i].primary_group
        }),
        cat("grade", &["G1", "G2", "G3", "unknown"], &|i| {
            ["G1", "G2", "G3", "unknown"]
                .into_iter()
                .find(|g| *g == ps[i].grade)
                .expect("a grade")
        }),
        cat("functional", &["no", "yes"], &|i| yn(ps[i].functional)),
        cat("synchronous", &["no", "yes"], &|i| yn(ps[i].synchronous)),
        Covariate::numeric(
            "year",
            ps.iter().map(|p| p.resection_date.year() as f64).collect(),
        ),
    ];
    let options = NearestOptions {
        ratio: 4,
        caliper: Some(0.2),
        ..Default::default()
    };
    let m = propensity_match(&ids, &treat, &covariates, Link::LinearLogit, &options)
        .map_err(|e| e.message)?;
    let mut rows = Vec::new();
    for s in &m.matching.sets {
        if !s.controls.is_empty() {
            rows.push(s.treated);
            rows.extend(&s.controls);
        }
    }
    rows.sort();
    let time: Vec<f64> = rows
        .iter()
        .map(|&i| months(ps[i].resection_date, ps[i].last_contact_date))
        .collect();
    let event: Vec<bool> = rows.iter().map(|&i| ps[i].dead).collect();
    let group: Vec<usize> = rows.iter().map(|&i| usize::from(!treat[i])).collect();
    let labels = ["LB", "L"];
    let km = kaplan_meier(&time, &event, &group, &labels, &KmOptions::default())
        .map_err(|e| e.message)?;
    let lr = logrank(&time, &event, &group, &labels, None, 0.0).map_err(|e| e.message)?;
    // Major resection by group.
    let major = |i: usize| ps[i].segments_resected >= 3;
    let counts = |g: usize, maj: bool| {
        rows.iter()
            .zip(&group)
            .filter(|(i, gg)| **gg == g && major(**i) == maj)
            .count() as u64
    };
    let tab = CrossTab::from_counts(vec![
        vec![counts(0, true), counts(0, false)],
        vec![counts(1, true), counts(1, false)],
    ])
    .map_err(|e| e.message)?;
    let n_l = (counts(1, true) + counts(1, false)) as f64;
    // GNET vs PNET within the bone-metastasis group.
    let lb: Vec<usize> = rows
        .iter()
        .copied()
        .filter(|&i| treat[i] && ps[i].primary_group != "other")
        .collect();
    let t_lb: Vec<f64> = lb
        .iter()
        .map(|&i| months(ps[i].resection_date, ps[i].last_contact_date))
        .collect();
    let e_lb: Vec<bool> = lb.iter().map(|&i| ps[i].dead).collect();
    let g_lb: Vec<usize> = lb
        .iter()
        .map(|&i| usize::from(ps[i].primary_group == "PNET"))
        .collect();
    let (median_gnet, median_pnet) = if g_lb.contains(&0) && g_lb.contains(&1) {
        let k = kaplan_meier(
            &t_lb,
            &e_lb,
            &g_lb,
            &["GNET", "PNET"],
            &KmOptions::default(),
        )
        .map_err(|e| e.message)?;
        (k.groups[0].median, k.groups[1].median)
    } else {
        (None, None)
    };
    let max_abs_smd_after = m
        .smd_after
        .0
        .iter()
        .filter_map(|(_, v)| *v)
        .fold(0.0f64, |a, b| a.max(b.abs()));
    Ok(Metrics {
        n_treated_matched: m.n_treated_matched,
        n_control_matched: m.n_control_matched,
        median_lb: km.groups[0].median,
        median_l: km.groups[1].median,
        logrank_p: lr.p.unwrap_or(f64::NAN),
        median_gnet,
        median_pnet,
        n_gnet: g_lb.iter().filter(|&&g| g == 0).count(),
        n_pnet: g_lb.iter().filter(|&&g| g == 1).count(),
        major_pct_l: 100.0 * counts(1, true) as f64 / n_l,
        major_chisq_p: chisq_test(&tab).map_err(|e| e.message)?.p,
        major_fisher_p: fisher_test(&tab).map_err(|e| e.message)?.p,
        model_warnings: m.model.warnings.len(),
        deaths_lb: km.groups[0].events,
        deaths_l: km.groups[1].events,
        max_abs_smd_after,
    })
}

/// The element of the array of tables `array` whose `name` is `name`.
fn element<'a>(doc: &'a mut toml::Table, array: &str, name: &str) -> Option<&'a mut toml::Table> {
    doc.get_mut(array)?
        .as_array_mut()?
        .iter_mut()
        .filter_map(|t| t.as_table_mut())
        .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
}

fn spec_text(overrides: &[String]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("study/croome2016")
        .join(SPEC_FILE);
    let text = std::fs::read_to_string(&path).expect("simulation.toml");
    if overrides.is_empty() {
        return text;
    }
    let mut doc: toml::Table = toml::from_str(&text).expect("valid TOML");
    for o in overrides {
        let (key, value) = o.split_once('=').expect("key=value");
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .expect("TOML value")
            .remove("v")
            .unwrap();
        let parts: Vec<&str> = key.split('.').collect();
        // The first part names a `[[variable]]` or a `[[stratum]]` (whose `parameters` follow).
        let first = parts[0];
        let mut table = if element(&mut doc, "variable", first).is_some() {
            element(&mut doc, "variable", first).unwrap()
        } else {
            element(&mut doc, "stratum", first)
                .and_then(|t| t.get_mut("parameters"))
                .and_then(|t| t.as_table_mut())
                .unwrap_or_else(|| panic!("no variable or stratum `{first}` in {key}"))
        };
        for p in &parts[1..parts.len() - 1] {
            table = table
                .get_mut(*p)
                .and_then(|v| v.as_table_mut())
                .unwrap_or_else(|| panic!("no table `{p}` in {key}"));
        }
        table.insert(parts[parts.len() - 1].to_string(), value);
    }
    toml::to_string(&doc).unwrap()
}

fn run_seed(text: &str, seed: u64) -> Result<Metrics, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("study/croome2016");
    let mut sim = Simulation::parse(&dir, text, &dir.join(SPEC_FILE)).map_err(|e| e.to_string())?;
    sim.model.seed = seed;
    analyse(&patients(&sim, sim.model.snapshots[0].cutoff)?)
}

fn quantiles(mut v: Vec<f64>) -> String {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return "-".into();
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!("{:8.2} [{:7.2}, {:7.2}]", q(0.5), q(0.1), q(0.9))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("summary");
    let range = args.get(1).map(String::as_str).unwrap_or("0..100");
    let (a, b) = match range.split_once("..") {
        Some((a, b)) => (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()),
        None => {
            let s = range.parse::<u64>().unwrap();
            (s, s + 1)
        }
    };
    let text = spec_text(&args[2.min(args.len())..]);
    let results: Vec<(u64, Result<Metrics, String>)> =
        (a..b).map(|s| (s, run_seed(&text, s))).collect();
    match mode {
        "show" => {
            for (s, r) in &results {
                println!("seed {s}: {r:#?}");
                if let Ok(m) = r {
                    println!("accepted: {}, loss {:.4}", m.accepted(), m.loss());
                }
                // The later snapshots of the same cohort (same matched sets, longer follow-up).
                let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("study/croome2016");
                let mut sim = Simulation::parse(&dir, &text, &dir.join(SPEC_FILE)).unwrap();
                sim.model.seed = *s;
                for snapshot in &sim.model.snapshots[1..] {
                    let cutoff = snapshot.cutoff;
                    let m = patients(&sim, cutoff).and_then(|ps| analyse(&ps));
                    println!("at cutoff {cutoff}: {m:?}");
                }
            }
        }
        "search" => {
            let mut ok: Vec<(f64, u64)> = results
                .iter()
                .filter_map(|(s, r)| {
                    r.as_ref()
                        .ok()
                        .filter(|m| m.accepted())
                        .map(|m| (m.loss(), *s))
                })
                .collect();
            ok.sort_by(|x, y| x.0.total_cmp(&y.0));
            println!("{} of {} seeds accepted", ok.len(), results.len());
            for (loss, s) in ok.iter().take(10) {
                let m = results
                    .iter()
                    .find(|(t, _)| t == s)
                    .unwrap()
                    .1
                    .as_ref()
                    .unwrap();
                println!(
                    "seed {s}: loss {loss:.4}  LB {:?} L {:?} p {:.3} GNET {:?} PNET {:?} major_L {:.0}% p {:.2}/{:.2}",
                    m.median_lb,
                    m.median_l,
                    m.logrank_p,
                    m.median_gnet,
                    m.median_pnet,
                    m.major_pct_l,
                    m.major_chisq_p,
                    m.major_fisher_p
                );
            }
        }
        _ => {
            let ms: Vec<&Metrics> = results
                .iter()
                .filter_map(|(_, r)| r.as_ref().ok())
                .collect();
            let errs = results.len() - ms.len();
            let col = |f: &dyn Fn(&Metrics) -> f64| quantiles(ms.iter().map(|m| f(m)).collect());
            let opt = |x: Option<f64>| x.unwrap_or(f64::NAN);
            println!("{} seeds, {errs} errors; median [10%, 90%]", results.len());
            println!("treated matched   {}", col(&|m| m.n_treated_matched as f64));
            println!("controls matched  {}", col(&|m| m.n_control_matched as f64));
            println!(
                "median LB         {}   target {MEDIAN_LB}",
                col(&|m| opt(m.median_lb))
            );
            println!(
                "median L          {}   target {MEDIAN_L}",
                col(&|m| opt(m.median_l))
            );
            println!("logrank p         {}", col(&|m| m.logrank_p));
            println!(
                "median GNET (LB)  {}   target {MEDIAN_GNET}",
                col(&|m| opt(m.median_gnet))
            );
            println!(
                "median PNET (LB)  {}   target {MEDIAN_PNET}",
                col(&|m| opt(m.median_pnet))
            );
            println!(
                "n GNET / PNET     {} / {}",
                col(&|m| m.n_gnet as f64),
                col(&|m| m.n_pnet as f64)
            );
            println!("major % L         {}", col(&|m| m.major_pct_l));
            println!("major p (chisq)   {}", col(&|m| m.major_chisq_p));
            println!(
                "deaths LB / L     {} / {}",
                col(&|m| m.deaths_lb as f64),
                col(&|m| m.deaths_l as f64)
            );
            println!("max |SMD| after   {}", col(&|m| m.max_abs_smd_after));
            println!("model warnings    {}", col(&|m| m.model_warnings as f64));
            let nr =
                |f: &dyn Fn(&Metrics) -> Option<f64>| ms.iter().filter(|m| f(m).is_none()).count();
            println!(
                "not reached: LB {} L {} GNET {} PNET {}",
                nr(&|m| m.median_lb),
                nr(&|m| m.median_l),
                nr(&|m| m.median_gnet),
                nr(&|m| m.median_pnet)
            );
            let rate = |f: &dyn Fn(&Metrics) -> bool| {
                100.0 * ms.iter().filter(|m| f(m)).count() as f64 / ms.len().max(1) as f64
            };
            println!(
                "meeting: 100 controls {:.0}%, LB {:.0}%, L {:.0}%, p {:.0}%, GNET {:.0}%, PNET {:.0}%, major {:.0}%",
                rate(&|m| m.n_treated_matched == 25 && m.n_control_matched == 100),
                rate(&|m| within(m.median_lb, MEDIAN_LB, 0.1)),
                rate(&|m| within(m.median_l, MEDIAN_L, 0.1)),
                rate(&|m| (0.01..=0.05).contains(&m.logrank_p)),
                rate(&|m| within(m.median_gnet, MEDIAN_GNET, 0.1)),
                rate(&|m| within(m.median_pnet, MEDIAN_PNET, 0.1)),
                rate(&|m| (m.major_pct_l - 55.0).abs() <= 5.0
                    && m.major_chisq_p > 0.05
                    && m.major_fisher_p > 0.05),
            );
            println!(
                "accepted          {}",
                ms.iter().filter(|m| m.accepted()).count()
            );
        }
    }
}
