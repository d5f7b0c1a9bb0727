//! Fixed example inputs, shared by the gallery example and the golden tests. The data are
//! synthetic (a small deterministic generator), shaped like a surgical-oncology cohort.

use crate::{
    Bins, Censor, ForestPlot, ForestRow, Histogram, KaplanMeier, KmGroup, KmStep, LoveOrder,
    LovePlot, LoveRow,
};

/// A small deterministic generator (64-bit LCG, top bits), uniform on (0, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

/// Kaplan-Meier estimate with Greenwood's variance and R's default "log" 95% interval.
/// `data` is (time, event).
pub fn km_group(label: &str, data: &[(f64, bool)]) -> KmGroup {
    let mut data = data.to_vec();
    data.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut steps = Vec::new();
    let mut censored = Vec::new();
    let mut n_risk = data.len() as f64;
    let (mut s, mut var) = (1.0f64, 0.0f64);
    let mut i = 0;
    while i < data.len() {
        let t = data[i].0;
        let (mut d, mut c) = (0u32, 0u32);
        while i < data.len() && data[i].0 == t {
            if data[i].1 {
                d += 1;
            } else {
                c += 1;
            }
            i += 1;
        }
        if d > 0 {
            let df = f64::from(d);
            s *= 1.0 - df / n_risk;
            if n_risk > df {
                var += df / (n_risk * (n_risk - df));
            }
            let (lower, upper) = if s > 0.0 {
                let se = var.sqrt();
                (
                    Some((s * (-1.959964 * se).exp()).clamp(0.0, 1.0)),
                    Some((s * (1.959964 * se).exp()).clamp(0.0, 1.0)),
                )
            } else {
                (None, None)
            };
            steps.push(KmStep {
                time: t,
                survival: s,
                lower,
                upper,
                n_event: d,
            });
        }
        if c > 0 {
            censored.push(Censor {
                time: t,
                survival: s,
                n: c,
            });
        }
        n_risk -= f64::from(d + c);
    }
    KmGroup {
        label: label.to_string(),
        n: data.len() as u32,
        steps,
        censored,
    }
}

/// Exponential event times with the given median, censored by uniform drop-out and by the end
/// of follow-up; times rounded to 0.1.
pub fn survival_data(seed: u64, n: usize, median: f64, follow_up: f64) -> Vec<(f64, bool)> {
    let mut rng = Lcg(seed);
    let rate = std::f64::consts::LN_2 / median;
    (0..n)
        .map(|_| {
            let event = -rng.next().ln() / rate;
            let dropout = follow_up * (0.35 + 1.3 * rng.next());
            let end = dropout.min(follow_up);
            let (t, e) = if event <= end {
                (event, true)
            } else {
                (end, false)
            };
            (((t * 10.0).round() / 10.0).max(0.1), e)
        })
        .collect()
}

/// Two arms, 60 months of follow-up, log-rank annotation.
pub fn kaplan_meier_two_arms() -> KaplanMeier {
    KaplanMeier {
        groups: vec![
            km_group("Open resection", &survival_data(7, 142, 34.0, 60.0)),
            km_group(
                "Laparoscopic resection",
                &survival_data(11, 138, 52.0, 60.0),
            ),
        ],
        x_label: "Time since surgery".into(),
        x_unit: Some("months".into()),
        y_label: "Overall survival".into(),
        break_interval: Some(12.0),
        annotation: Some("Log-rank *p* = 0.03".into()),
        ..KaplanMeier::default()
    }
}

/// Four stages, percent scale, no bands.
pub fn kaplan_meier_four_groups() -> KaplanMeier {
    KaplanMeier {
        groups: vec![
            km_group("Stage I", &survival_data(21, 90, 110.0, 60.0)),
            km_group("Stage II", &survival_data(22, 120, 60.0, 60.0)),
            km_group("Stage III", &survival_data(23, 100, 30.0, 60.0)),
            km_group("Stage IV", &survival_data(24, 60, 11.0, 60.0)),
        ],
        x_label: "Time since diagnosis".into(),
        x_unit: Some("months".into()),
        y_label: "Disease-specific survival".into(),
        scale: crate::SurvivalScale::Percent,
        confidence_bands: false,
        legend_title: Some("AJCC stage".into()),
        annotation: Some("Log-rank *p* < 0.001".into()),
        ..KaplanMeier::default()
    }
}

/// Covariate balance before and after propensity-score matching.
pub fn love() -> LovePlot {
    let rows = [
        ("Age, years", 0.412, 0.031),
        ("Male sex", 0.153, 0.042),
        ("Body mass index, kg/m²", 0.087, 0.019),
        ("ASA physical status III–IV", 0.336, 0.058),
        (
            "Charlson comorbidity index at the time of surgery (age-adjusted)",
            0.274,
            0.066,
        ),
        ("Neoadjuvant chemotherapy", 0.521, 0.088),
        ("Tumour size, cm", 0.198, 0.012),
        ("Pathological T4 stage", 0.245, 0.104),
        ("Distance to anal verge", 0.064, 0.051),
    ];
    LovePlot {
        rows: rows
            .iter()
            .map(|&(label, before, after)| LoveRow {
                label: label.into(),
                before,
                after,
            })
            .collect(),
        order: LoveOrder::ByBefore,
        ..LovePlot::default()
    }
}

/// A Cox model's hazard ratios with category headings.
pub fn forest() -> ForestPlot {
    let r = |label: &str, hr: f64, lo: f64, hi: f64, p: &str| ForestRow {
        indent: 1,
        ..ForestRow::estimate(label, hr, lo, hi).with_p(p)
    };
    ForestPlot {
        rows: vec![
            ForestRow::estimate("Age (per 10 years)", 1.21, 1.08, 1.36).with_p("0.001"),
            ForestRow::heading("Sex"),
            ForestRow {
                indent: 1,
                ..ForestRow::reference("Female")
            },
            r("Male", 1.08, 0.86, 1.35, "0.51"),
            ForestRow::heading("ASA physical status"),
            ForestRow {
                indent: 1,
                ..ForestRow::reference("I–II")
            },
            r("III–IV", 1.58, 1.27, 1.99, "<0.001"),
            ForestRow::heading("Pathological stage"),
            ForestRow {
                indent: 1,
                ..ForestRow::reference("I")
            },
            r("II", 1.92, 1.12, 3.29, "0.018"),
            r("III", 3.41, 2.05, 5.67, "<0.001"),
            r("IV", 9.85, 5.40, 17.9, "<0.001"),
            ForestRow::estimate("Laparoscopic approach", 0.74, 0.59, 0.93).with_p("0.009"),
        ],
        ..ForestPlot::default()
    }
}

/// Ages of a small example cohort.
pub fn histogram() -> Histogram {
    let mut rng = Lcg(5);
    let values = (0..180)
        .map(|_| {
            // Sum of uniforms: roughly normal, mean 64, sd about 10.
            let z: f64 = (0..6).map(|_| rng.next()).sum::<f64>() - 3.0;
            (64.0 + 14.0 * z).round()
        })
        .collect();
    Histogram {
        values,
        bins: Bins::Width(5.0),
        x_label: "Age at surgery (years)".into(),
        ..Histogram::default()
    }
}
