//! Golden tests: for fixed inputs the SVG must equal the committed file in `tests/snapshots/`.
//! `GALLEY_BLESS=1 cargo test -p galley-figures --test golden` rewrites them (review the diff,
//! and look at the figures: `cargo run -p galley-figures --example gallery -- /tmp/gallery`).

use std::path::PathBuf;

use galley_figures::samples::{self, km_group, survival_data};
use galley_figures::{
    Bins, Censor, ForestPlot, ForestRow, Histogram, KaplanMeier, KmGroup, KmStep, LegendPosition,
    LoveOrder, LovePlot, LoveRow, SquareSize, Style, forest_plot, histogram, kaplan_meier,
    love_plot,
};

fn check(name: &str, svg: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let path = dir.join(format!("{name}.svg"));
    if std::env::var("GALLEY_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, svg).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}; create it with GALLEY_BLESS=1",
            path.display()
        )
    });
    if expected != svg {
        let line = expected
            .lines()
            .zip(svg.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(svg.lines().count()));
        let actual = std::env::temp_dir().join(format!("galley-figures-{name}.svg"));
        std::fs::write(&actual, svg).unwrap();
        panic!(
            "{name}: the SVG differs from {} from line {} on:\n  expected: {}\n  actual:   {}\n\
             (actual written to {}; GALLEY_BLESS=1 accepts it)",
            path.display(),
            line + 1,
            expected.lines().nth(line).unwrap_or("<end>"),
            svg.lines().nth(line).unwrap_or("<end>"),
            actual.display()
        );
    }
}

#[test]
fn km_two_arms() {
    check(
        "km_two_arms",
        &kaplan_meier(&samples::kaplan_meier_two_arms()).unwrap(),
    );
}

#[test]
fn km_four_groups_percent() {
    check(
        "km_four_groups",
        &kaplan_meier(&samples::kaplan_meier_four_groups()).unwrap(),
    );
}

#[test]
fn km_single_group_without_table() {
    let km = KaplanMeier {
        groups: vec![km_group("All patients", &survival_data(3, 60, 40.0, 36.0))],
        x_label: "Time since surgery".into(),
        x_unit: Some("months".into()),
        y_label: "Recurrence-free survival".into(),
        risk_table: false,
        ..KaplanMeier::default()
    };
    check("km_single_group", &kaplan_meier(&km).unwrap());
}

#[test]
fn km_all_censored_group_and_cut_axis() {
    // One group has no event at all: its curve stays at 1 until its last censoring.
    let censored_only = KmGroup {
        label: "Watch and wait".into(),
        n: 4,
        steps: vec![],
        censored: [3.0, 8.5, 14.0, 30.0]
            .iter()
            .map(|&t| Censor {
                time: t,
                survival: 1.0,
                n: 1,
            })
            .collect(),
    };
    let km = KaplanMeier {
        groups: vec![
            km_group("Resection", &survival_data(9, 40, 20.0, 36.0)),
            censored_only,
        ],
        x_label: "Time".into(),
        x_unit: Some("months".into()),
        max_time: Some(24.0),
        break_interval: Some(6.0),
        legend: LegendPosition::BottomLeft,
        monochrome: true,
        ..KaplanMeier::default()
    };
    check("km_all_censored_monochrome", &kaplan_meier(&km).unwrap());
}

#[test]
fn km_crowded_legend_goes_above() {
    // Curves that fill the panel leave no room inside: the legend moves above the panel.
    let steep = |label: &str, seed: u64| km_group(label, &survival_data(seed, 300, 6.0, 24.0));
    let km = KaplanMeier {
        groups: vec![steep("A", 1), steep("B", 2), steep("C", 3)],
        legend: LegendPosition::Above,
        annotation: Some("Log-rank *p* = 0.41".into()),
        ..KaplanMeier::default()
    };
    check("km_legend_above", &kaplan_meier(&km).unwrap());
}

#[test]
fn km_many_long_groups_legend_rows() {
    let labels = [
        "Right hemicolectomy",
        "Extended right hemicolectomy",
        "Left hemicolectomy with a very long and descriptive name that goes on and on",
        "Sigmoid colectomy",
        "Anterior resection",
        "Abdominoperineal resection",
    ];
    let groups = labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            km_group(
                l,
                &survival_data(40 + i as u64, 50, 20.0 + 8.0 * i as f64, 48.0),
            )
        })
        .collect();
    let km = KaplanMeier {
        groups,
        x_label: "Time since surgery".into(),
        x_unit: Some("months".into()),
        legend: LegendPosition::Above,
        confidence_bands: false,
        ..KaplanMeier::default()
    };
    check("km_six_groups", &kaplan_meier(&km).unwrap());
}

#[test]
fn love_sorted_with_long_label() {
    check("love", &love_plot(&samples::love()).unwrap());
}

#[test]
fn love_as_given_truncated_labels() {
    let p = LovePlot {
        rows: vec![
            LoveRow { label: "Age".into(), before: -0.31, after: 0.02 },
            LoveRow {
                label: "Preoperative carcinoembryonic antigen above the upper limit of normal in the referring hospital's laboratory".into(),
                before: 0.18,
                after: -0.07,
            },
            LoveRow { label: "Smoking".into(), before: 0.05, after: 0.01 },
        ],
        order: LoveOrder::AsGiven,
        threshold: Some(0.2),
        max_label_width: Some(120.0),
        style: Style { width: 320.0, ..Style::default() },
        ..LovePlot::default()
    };
    check("love_truncated", &love_plot(&p).unwrap());
}

#[test]
fn forest_model() {
    check("forest", &forest_plot(&samples::forest()).unwrap());
}

#[test]
fn forest_unbounded_intervals_and_weights() {
    let f = ForestPlot {
        rows: vec![
            ForestRow {
                weight: Some(120.0),
                ..ForestRow::estimate("Overall", 0.82, 0.70, 0.96).with_p("0.014")
            },
            ForestRow {
                weight: Some(14.0),
                ..ForestRow::estimate("Age < 50 years", 2.1, 0.0, f64::INFINITY).with_p("0.62")
            },
            ForestRow {
                weight: Some(60.0),
                ..ForestRow::estimate("Age 50–70 years", 0.78, 0.61, 1.0)
            },
            ForestRow {
                weight: Some(46.0),
                ..ForestRow::estimate(
                    "Age > 70 years and an exceedingly long subgroup description",
                    0.9,
                    0.66,
                    1.23,
                )
            },
            ForestRow {
                weight: Some(9.0),
                ..ForestRow::estimate("Rare histology", 0.35, 0.04, 3.1)
            },
        ],
        x_label: "Odds ratio".into(),
        x_range: Some((0.2, 5.0)),
        label_header: Some("Subgroup".into()),
        text_header: Some("OR (95% CI)".into()),
        square: SquareSize::ByWeight,
        favours: Some(("Favours laparoscopy".into(), "Favours open".into())),
        ..ForestPlot::default()
    };
    check("forest_arrows_weights", &forest_plot(&f).unwrap());
}

#[test]
fn histogram_ages() {
    check("histogram", &histogram(&samples::histogram()).unwrap());
}

#[test]
fn histogram_counted_bins_other_font() {
    let h = Histogram {
        values: vec![-2.5, -1.0, -0.2, 0.0, 0.3, 0.4, 1.2, 1.9, 2.2, 3.0],
        bins: Bins::Count(4),
        x_label: "Change in score".into(),
        style: Style {
            font_family: "New Computer Modern".into(),
            width: 300.0,
            height: Some(180.0),
            ..Style::default()
        },
        ..Histogram::default()
    };
    check("histogram_count_newcm", &histogram(&h).unwrap());
}

#[test]
fn km_step_inputs_by_hand() {
    // Hand-written steps (ties of an event and a censoring at time 4, a drop at time 0).
    let g = KmGroup {
        label: "Cohort".into(),
        n: 6,
        steps: vec![
            KmStep {
                time: 0.0,
                survival: 5.0 / 6.0,
                lower: Some(0.58),
                upper: Some(1.0),
                n_event: 1,
            },
            KmStep {
                time: 4.0,
                survival: 0.625,
                lower: Some(0.35),
                upper: Some(1.0),
                n_event: 1,
            },
            KmStep {
                time: 7.0,
                survival: 0.3125,
                lower: Some(0.09),
                upper: Some(1.0),
                n_event: 1,
            },
        ],
        censored: vec![
            Censor {
                time: 2.0,
                survival: 5.0 / 6.0,
                n: 1,
            },
            Censor {
                time: 4.0,
                survival: 0.625,
                n: 1,
            },
            Censor {
                time: 9.0,
                survival: 0.3125,
                n: 1,
            },
        ],
    };
    let km = KaplanMeier {
        groups: vec![g],
        x_label: "Years".into(),
        annotation: Some("Median not reached".into()),
        ..KaplanMeier::default()
    };
    check("km_by_hand", &kaplan_meier(&km).unwrap());
}
