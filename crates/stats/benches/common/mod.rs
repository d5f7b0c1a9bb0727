//! The simulated cohort of `../shared/anchors/r-scale/bench.R`, reproduced with a seeded ChaCha RNG
//! (the values differ from R's `set.seed(1)` stream; the distributions are the same):
//!
//! ```text
//! age ~ N(60, 10), sex ~ Bernoulli(0.5), grade ~ uniform on {1, 2, 3} (numeric, as in bench.R),
//! x4 ~ N(0, 1), x5 ~ Bernoulli(0.3),
//! time = round(Exp(0.01 exp(0.02 (age - 60) + 0.3 sex)), 1) + 0.1,
//! status ~ Bernoulli(0.7), group ~ Bernoulli(0.5), treat: `n_treated` rows drawn without replacement.
//! ```
//!
//! Shared by the criterion-free benches (`benches/kernels.rs`), the CSV writer
//! (`examples/bench_data.rs`) and the whole-analysis run (`examples/bench_run.rs`) through
//! `#[path]`. Numbers are rounded as the CSV writes them (age and x4 to 6 decimals, time to 0.1),
//! so the in-process data equal what R and `bench_run` read back from the CSV.

#![allow(dead_code)]

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// One simulated cohort, column by column.
pub struct Cohort {
    pub age: Vec<f64>,
    pub sex: Vec<f64>,
    pub grade: Vec<f64>,
    pub x4: Vec<f64>,
    pub x5: Vec<f64>,
    pub time: Vec<f64>,
    pub status: Vec<bool>,
    pub group: Vec<usize>,
    pub treat: Vec<bool>,
}

/// Column names, in CSV order.
pub const HEADER: &str = "age,sex,grade,x4,x5,time,status,group,treat";

/// Treated units at a given n: 10,000 at a million (bench.R's `1000000 10000`), 1% in general.
pub fn default_treated(n: usize) -> usize {
    (n / 100).max(1)
}

struct Rng(ChaCha8Rng);

impl Rng {
    fn unif(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Open interval (0, 1): safe under a logarithm.
    fn unif_open(&mut self) -> f64 {
        loop {
            let u = self.unif();
            if u > 0.0 {
                return u;
            }
        }
    }
    fn bernoulli(&mut self, p: f64) -> f64 {
        f64::from(self.unif() < p)
    }
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        // Box-Muller (one of the pair).
        let (u1, u2) = (self.unif_open(), self.unif());
        mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
    fn below(&mut self, k: usize) -> usize {
        // Lemire's multiply-shift; the bias at k <= 1e6 is below 1e-13.
        ((self.0.next_u64() as u128 * k as u128) >> 64) as usize
    }
}

fn round_to(x: f64, digits: i32) -> f64 {
    let s = 10f64.powi(digits);
    (x * s).round() / s
}

/// Simulate `n` patients, `n_treated` of them treated, from `seed`.
pub fn simulate(n: usize, n_treated: usize, seed: u64) -> Cohort {
    assert!(n_treated <= n, "more treated units than patients");
    let mut rng = Rng(ChaCha8Rng::seed_from_u64(seed));
    let mut c = Cohort {
        age: Vec::with_capacity(n),
        sex: Vec::with_capacity(n),
        grade: Vec::with_capacity(n),
        x4: Vec::with_capacity(n),
        x5: Vec::with_capacity(n),
        time: Vec::with_capacity(n),
        status: Vec::with_capacity(n),
        group: Vec::with_capacity(n),
        treat: vec![false; n],
    };
    for _ in 0..n {
        let age = round_to(rng.normal(60.0, 10.0), 6);
        let sex = rng.bernoulli(0.5);
        let grade = (1 + rng.below(3)) as f64;
        let x4 = round_to(rng.normal(0.0, 1.0), 6);
        let x5 = rng.bernoulli(0.3);
        let rate = 0.01 * (0.02 * (age - 60.0) + 0.3 * sex).exp();
        let t = -rng.unif_open().ln() / rate;
        // round(t, 1) + 0.1, written and read back with one decimal.
        let time = round_to(round_to(t, 1) + 0.1, 1);
        c.age.push(age);
        c.sex.push(sex);
        c.grade.push(grade);
        c.x4.push(x4);
        c.x5.push(x5);
        c.time.push(time);
        c.status.push(rng.bernoulli(0.7) == 1.0);
        c.group.push(rng.bernoulli(0.5) as usize);
    }
    // n_treated distinct rows: partial Fisher-Yates over 0..n.
    let mut idx: Vec<u32> = (0..n as u32).collect();
    for i in 0..n_treated {
        let j = i + rng.below(n - i);
        idx.swap(i, j);
        c.treat[idx[i] as usize] = true;
    }
    c
}

impl Cohort {
    pub fn len(&self) -> usize {
        self.time.len()
    }

    /// Write the cohort as CSV (header [`HEADER`]); 0/1 for the indicators.
    pub fn write_csv(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(out, "{HEADER}")?;
        for i in 0..self.len() {
            writeln!(
                out,
                "{:.6},{},{},{:.6},{},{:.1},{},{},{}",
                self.age[i],
                self.sex[i],
                self.grade[i],
                self.x4[i],
                self.x5[i],
                self.time[i],
                u8::from(self.status[i]),
                self.group[i],
                u8::from(self.treat[i]),
            )?;
        }
        Ok(())
    }

    /// Read a cohort written by [`Cohort::write_csv`] (columns found by name, any order).
    pub fn read_csv(path: &str) -> Result<Cohort, String> {
        let mut rdr = csv::Reader::from_path(path).map_err(|e| format!("{path}: {e}"))?;
        let headers = rdr.headers().map_err(|e| format!("{path}: {e}"))?.clone();
        let col = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| format!("{path}: no column \"{name}\""))
        };
        let ix = [
            col("age")?,
            col("sex")?,
            col("grade")?,
            col("x4")?,
            col("x5")?,
            col("time")?,
            col("status")?,
            col("group")?,
            col("treat")?,
        ];
        let mut c = Cohort {
            age: Vec::new(),
            sex: Vec::new(),
            grade: Vec::new(),
            x4: Vec::new(),
            x5: Vec::new(),
            time: Vec::new(),
            status: Vec::new(),
            group: Vec::new(),
            treat: Vec::new(),
        };
        let mut rec = csv::ByteRecord::new();
        let mut line = 1;
        while rdr
            .read_byte_record(&mut rec)
            .map_err(|e| format!("{path}: {e}"))?
        {
            line += 1;
            let mut v = [0.0f64; 9];
            for (k, &j) in ix.iter().enumerate() {
                let s = std::str::from_utf8(&rec[j]).unwrap_or("");
                v[k] = s
                    .parse()
                    .map_err(|_| format!("{path}:{line}: not a number: {s:?}"))?;
            }
            c.age.push(v[0]);
            c.sex.push(v[1]);
            c.grade.push(v[2]);
            c.x4.push(v[3]);
            c.x5.push(v[4]);
            c.time.push(v[5]);
            c.status.push(v[6] == 1.0);
            c.group.push(v[7] as usize);
            c.treat.push(v[8] == 1.0);
        }
        Ok(c)
    }
}

// ---------------------------------------------------------------------------------------------
// The five analyses, as bench.R calls them, through galley_stats' public API. Each includes the
// model-matrix construction its R call does (model.frame / model.matrix are inside R's timing).

pub mod kernels {
    use super::Cohort;
    use galley_stats::cox::{Cox, CoxOptions, cox};
    use galley_stats::design::{Covariate, model_matrix};
    use galley_stats::km::{KaplanMeier, KmOptions, kaplan_meier};
    use galley_stats::logistic::{LogisticFit, LogisticOptions, logistic_regression};
    use galley_stats::logrank::{LogRank, logrank};
    use galley_stats::matching::{DistanceRule, Link, NearestOptions, PropensityMatch};

    pub const GROUPS: [&str; 2] = ["0", "1"];

    /// `survfit(Surv(time, status) ~ group)`.
    pub fn km(c: &Cohort) -> KaplanMeier {
        kaplan_meier(&c.time, &c.status, &c.group, &GROUPS, &KmOptions::default()).unwrap()
    }

    /// `survdiff(Surv(time, status) ~ group)`.
    pub fn logrank_test(c: &Cohort) -> LogRank {
        logrank(&c.time, &c.status, &c.group, &GROUPS, None, 0.0).unwrap()
    }

    /// `age + sex + grade + x4 + x5`, all numeric as in bench.R (grade is an integer there).
    pub fn covariates(c: &Cohort) -> Vec<Covariate> {
        vec![
            Covariate::numeric("age", c.age.clone()),
            Covariate::numeric("sex", c.sex.clone()),
            Covariate::numeric("grade", c.grade.clone()),
            Covariate::numeric("x4", c.x4.clone()),
            Covariate::numeric("x5", c.x5.clone()),
        ]
    }

    /// `coxph(Surv(time, status) ~ age + sex + grade + x4 + x5)` (Efron ties).
    pub fn cox_efron(c: &Cohort) -> Cox {
        let m = model_matrix(&covariates(c), false).unwrap();
        cox(&c.time, &c.status, &m.x, &m.names, &CoxOptions::default()).unwrap()
    }

    /// `glm(treat ~ age + sex + grade + x4 + x5, family = binomial)`.
    pub fn logistic(c: &Cohort) -> LogisticFit {
        let m = model_matrix(&covariates(c), true).unwrap();
        logistic_regression(&c.treat, &m, LogisticOptions::default()).unwrap()
    }

    /// Options of `matchit(..., method = "nearest", ratio = 4)`, with the documented (exact)
    /// distance rule.
    pub fn match_options() -> NearestOptions {
        NearestOptions {
            ratio: 4,
            rule: DistanceRule::Exact,
            ..NearestOptions::default()
        }
    }

    /// `matchit(treat ~ age + sex + grade + x4 + x5, method = "nearest", ratio = 4)`: the
    /// propensity model, 1:4 greedy matching, and (beyond matchit) the balance table.
    pub fn matching(c: &Cohort, ids: &[String]) -> PropensityMatch {
        galley_stats::matching::propensity_match(
            ids,
            &c.treat,
            &covariates(c),
            Link::Logit,
            &match_options(),
        )
        .unwrap()
    }

    /// Unit ids "1".."n", as R's row names.
    pub fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| i.to_string()).collect()
    }
}
