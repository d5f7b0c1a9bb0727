//! Edge cases (clear errors, never panics) and properties every figure must have.

use galley_figures::samples::{self, km_group, survival_data};
use galley_figures::{
    Bins, Censor, ForestPlot, ForestRow, Histogram, KaplanMeier, KmGroup, KmStep, LovePlot,
    LoveRow, Style, forest_plot, histogram, kaplan_meier, love_plot,
};

fn all_figures() -> Vec<(&'static str, String)> {
    vec![
        (
            "km",
            kaplan_meier(&samples::kaplan_meier_two_arms()).unwrap(),
        ),
        (
            "km4",
            kaplan_meier(&samples::kaplan_meier_four_groups()).unwrap(),
        ),
        ("love", love_plot(&samples::love()).unwrap()),
        ("forest", forest_plot(&samples::forest()).unwrap()),
        ("histogram", histogram(&samples::histogram()).unwrap()),
    ]
}

/// Value of attribute `name` in an SVG element string.
fn attr<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = element.find(&key)? + key.len();
    let len = element[start..].find('"')?;
    Some(&element[start..start + len])
}

fn texts(svg: &str) -> Vec<(&str, f64, f64, &str)> {
    svg.lines()
        .filter(|l| l.starts_with("<text "))
        .map(|l| {
            let content = &l[l.find('>').unwrap() + 1..l.rfind("</text>").unwrap()];
            (
                l,
                attr(l, "x").unwrap().parse().unwrap(),
                attr(l, "y").unwrap().parse().unwrap(),
                content,
            )
        })
        .collect()
}

#[test]
fn every_text_names_the_document_font_and_size_is_in_points() {
    for (name, svg) in all_figures() {
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"468pt\""),
            "{name}"
        );
        let first = svg.lines().next().unwrap();
        let w = attr(first, "width")
            .unwrap()
            .trim_end_matches("pt")
            .to_string();
        let h = attr(first, "height")
            .unwrap()
            .trim_end_matches("pt")
            .to_string();
        assert_eq!(
            attr(first, "viewBox").unwrap(),
            format!("0 0 {w} {h}"),
            "{name}: 1 unit = 1 pt"
        );
        let t = texts(&svg);
        assert!(!t.is_empty());
        for (line, ..) in t {
            assert_eq!(
                attr(line, "font-family"),
                Some("Libertinus Serif"),
                "{name}: {line}"
            );
            let size: f64 = attr(line, "font-size").unwrap().parse().unwrap();
            assert!((8.0..=9.0).contains(&size), "{name}: {line}");
        }
    }
}

#[test]
fn output_is_deterministic_and_numbers_are_short() {
    let a = all_figures();
    let b = all_figures();
    assert_eq!(a, b);
    for (name, svg) in a {
        for token in svg.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
            if let Some((_, frac)) = token.split_once('.') {
                assert!(frac.len() <= 3, "{name}: long number {token}");
            }
        }
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{name}");
    }
}

#[test]
fn risk_table_counts_sit_under_the_ticks() {
    let svg = kaplan_meier(&samples::kaplan_meier_two_arms()).unwrap();
    let t = texts(&svg);
    let ticks: Vec<f64> = t
        .iter()
        .filter(|(_, _, _, s)| ["0", "12", "24", "36", "48", "60"].contains(s))
        .map(|(_, x, ..)| *x)
        .collect();
    assert_eq!(ticks.len(), 6, "{ticks:?}");
    // The counts of the first row, left to right.
    let first_count_y = t.iter().find(|(_, _, _, s)| *s == "142").unwrap().2;
    let row: Vec<f64> = t
        .iter()
        .filter(|(l, _, y, _)| *y == first_count_y && attr(l, "text-anchor") == Some("middle"))
        .map(|(_, x, ..)| *x)
        .collect();
    assert_eq!(row, ticks);
    let counts: Vec<&str> = t
        .iter()
        .filter(|(l, _, y, _)| *y == first_count_y && attr(l, "text-anchor") == Some("middle"))
        .map(|(.., s)| *s)
        .collect();
    assert_eq!(counts[0], "142");
    // Counts never increase along a row.
    let n: Vec<u32> = counts.iter().map(|s| s.parse().unwrap()).collect();
    assert!(n.windows(2).all(|w| w[1] <= w[0]), "{n:?}");
}

#[test]
fn groups_differ_in_colour_and_pattern() {
    let svg = kaplan_meier(&samples::kaplan_meier_four_groups()).unwrap();
    let curves: Vec<&str> = svg
        .lines()
        .filter(|l| {
            l.starts_with("<polyline") && attr(l, "stroke-width") == Some("1") && l.len() > 400
        })
        .collect();
    assert_eq!(curves.len(), 4);
    let colours: std::collections::BTreeSet<_> = curves.iter().map(|l| attr(l, "stroke")).collect();
    let dashes: std::collections::BTreeSet<_> =
        curves.iter().map(|l| attr(l, "stroke-dasharray")).collect();
    assert_eq!(colours.len(), 4);
    assert_eq!(dashes.len(), 4, "solid, dashed, dotted, dash-dot");
}

fn err_km(km: &KaplanMeier) -> String {
    kaplan_meier(km).unwrap_err().message
}

fn one_group(g: KmGroup) -> KaplanMeier {
    KaplanMeier::new(vec![g])
}

fn simple() -> KmGroup {
    KmGroup {
        label: "A".into(),
        n: 2,
        steps: vec![KmStep {
            time: 1.0,
            survival: 0.5,
            lower: Some(0.1),
            upper: Some(1.0),
            n_event: 1,
        }],
        censored: vec![Censor {
            time: 2.0,
            survival: 0.5,
            n: 1,
        }],
    }
}

#[test]
fn km_errors_are_clear() {
    assert!(err_km(&KaplanMeier::default()).contains("no groups"));

    let empty = KmGroup {
        label: "Empty".into(),
        n: 0,
        steps: vec![],
        censored: vec![],
    };
    let m = err_km(&KaplanMeier::new(vec![simple(), empty]));
    assert!(m.contains("\"Empty\"") && m.contains("no subjects"), "{m}");

    let mut g = simple();
    g.steps[0].survival = f64::NAN;
    let m = err_km(&one_group(g));
    assert!(m.contains("NaN") && m.contains("survival"), "{m}");

    let mut g = simple();
    g.steps[0].time = f64::INFINITY;
    assert!(err_km(&one_group(g)).contains("infinite"));

    let mut g = simple();
    g.steps[0].upper = Some(f64::NAN);
    assert!(err_km(&one_group(g)).contains("upper confidence limit"));

    let mut g = simple();
    g.steps[0].lower = Some(0.7);
    assert!(err_km(&one_group(g)).contains("above the survival"));

    let mut g = simple();
    g.n = 3;
    assert!(err_km(&one_group(g)).contains("add up to 2"));

    let mut g = simple();
    g.censored[0].survival = 0.9;
    assert!(err_km(&one_group(g)).contains("curve is at 0.5"));

    let mut g = simple();
    g.steps.push(KmStep {
        time: 0.5,
        survival: 0.4,
        lower: None,
        upper: None,
        n_event: 1,
    });
    g.n = 3;
    assert!(err_km(&one_group(g)).contains("must increase"));

    let mut g = simple();
    g.label = " ".into();
    assert!(err_km(&one_group(g)).contains("group 1"));

    let km = KaplanMeier {
        max_time: Some(f64::NAN),
        ..one_group(simple())
    };
    assert!(err_km(&km).contains("maximum time"));
    let km = KaplanMeier {
        break_interval: Some(0.001),
        ..one_group(simple())
    };
    assert!(err_km(&km).contains("more than 40 breaks"));
    let km = KaplanMeier {
        style: Style {
            font_family: "Arial".into(),
            ..Style::default()
        },
        ..one_group(simple())
    };
    let m = err_km(&km);
    assert!(m.contains("Arial") && m.contains("Libertinus Serif"), "{m}");
    let km = KaplanMeier {
        style: Style {
            height: Some(120.0),
            ..Style::default()
        },
        ..one_group(simple())
    };
    assert!(err_km(&km).contains("height"));
}

#[test]
fn km_edge_cases_draw() {
    // All censored, single group, events at time 0, an interval-less survival of 0.
    let censored = KmGroup {
        label: "No events".into(),
        n: 3,
        steps: vec![],
        censored: vec![Censor {
            time: 5.0,
            survival: 1.0,
            n: 3,
        }],
    };
    kaplan_meier(&one_group(censored)).unwrap();
    let all_die = km_group("All die", &[(0.0, true), (1.0, true), (2.0, true)]);
    assert_eq!(all_die.steps.last().unwrap().survival, 0.0);
    kaplan_meier(&one_group(all_die)).unwrap();
    // Every observation at time 0.
    let zero = KmGroup {
        label: "Z".into(),
        n: 1,
        steps: vec![],
        censored: vec![Censor {
            time: 0.0,
            survival: 1.0,
            n: 1,
        }],
    };
    kaplan_meier(&one_group(zero)).unwrap();
    // Very long group labels still leave a panel, or say why not.
    let long = km_group(
        &"Very long label ".repeat(4),
        &survival_data(1, 20, 10.0, 20.0),
    );
    kaplan_meier(&KaplanMeier::new(vec![long.clone(), simple()])).unwrap();
    let longer = km_group(
        &"Very long label ".repeat(20),
        &survival_data(1, 20, 10.0, 20.0),
    );
    let svg = kaplan_meier(&KaplanMeier::new(vec![longer, simple()])).unwrap();
    assert!(
        svg.contains('\u{2026}'),
        "labels too long are cut with an ellipsis"
    );
    // Breaks so close that counts would collide are refused.
    let dense = km_group("A", &survival_data(1, 2000, 10.0, 20.0));
    let km = KaplanMeier {
        break_interval: Some(0.5),
        ..KaplanMeier::new(vec![dense])
    };
    assert!(err_km(&km).contains("too close"));
    // Many groups cycle colours and patterns.
    let many: Vec<KmGroup> = (0..9)
        .map(|i| km_group(&format!("G{i}"), &survival_data(i, 30, 20.0, 30.0)))
        .collect();
    kaplan_meier(&KaplanMeier::new(many)).unwrap();
}

#[test]
fn love_errors_and_edges() {
    assert!(
        love_plot(&LovePlot::default())
            .unwrap_err()
            .message
            .contains("no covariates")
    );
    let bad = LovePlot::new(vec![LoveRow {
        label: "BMI".into(),
        before: f64::NAN,
        after: 0.1,
    }]);
    let m = love_plot(&bad).unwrap_err().message;
    assert!(
        m.contains("\"BMI\"") && m.contains("NaN") && m.contains("before"),
        "{m}"
    );
    let bad = LovePlot::new(vec![LoveRow {
        label: "BMI".into(),
        before: 0.2,
        after: f64::NEG_INFINITY,
    }]);
    assert!(love_plot(&bad).unwrap_err().message.contains("after"));
    let zeros = LovePlot::new(vec![LoveRow {
        label: "x".into(),
        before: 0.0,
        after: 0.0,
    }]);
    love_plot(&zeros).unwrap();
    let long = LovePlot::new(vec![LoveRow {
        label: "word ".repeat(200),
        before: 0.3,
        after: 0.0,
    }]);
    let svg = love_plot(&long).unwrap();
    assert!(
        svg.contains('\u{2026}'),
        "a label too long for two lines ends with an ellipsis"
    );
    let tight = LovePlot {
        style: Style {
            height: Some(80.0),
            ..Style::default()
        },
        ..samples::love()
    };
    assert!(love_plot(&tight).unwrap_err().message.contains("too small"));
}

#[test]
fn forest_errors_and_edges() {
    let f = |rows: Vec<ForestRow>| forest_plot(&ForestPlot::new(rows));
    assert!(f(vec![]).unwrap_err().message.contains("no rows"));
    let m = f(vec![ForestRow::estimate("Age", f64::NAN, 1.0, 2.0)])
        .unwrap_err()
        .message;
    assert!(m.contains("\"Age\"") && m.contains("NaN"), "{m}");
    let m = f(vec![ForestRow::estimate(
        "Age",
        f64::INFINITY,
        1.0,
        f64::INFINITY,
    )])
    .unwrap_err()
    .message;
    assert!(m.contains("infinite"), "{m}");
    let m = f(vec![ForestRow::estimate("Age", 0.0, 0.0, 2.0)])
        .unwrap_err()
        .message;
    assert!(m.contains("positive"), "{m}");
    let m = f(vec![ForestRow::estimate("Age", 1.5, 1.6, 2.0)])
        .unwrap_err()
        .message;
    assert!(m.contains("does not contain"), "{m}");
    let m = f(vec![ForestRow::estimate("Age", 1.5, f64::NAN, 2.0)])
        .unwrap_err()
        .message;
    assert!(m.contains("NaN"), "{m}");
    let m = f(vec![ForestRow {
        lower: Some(1.0),
        ..ForestRow::heading("H")
    }])
    .unwrap_err()
    .message;
    assert!(m.contains("no estimate"), "{m}");
    let m = forest_plot(&ForestPlot {
        x_range: Some((0.0, 2.0)),
        ..samples::forest()
    })
    .unwrap_err()
    .message;
    assert!(m.contains("axis range"), "{m}");
    let m = forest_plot(&ForestPlot {
        square: galley_figures::SquareSize::ByWeight,
        ..samples::forest()
    })
    .unwrap_err()
    .message;
    assert!(m.contains("no weight"), "{m}");

    // Limits at 0 and infinity draw arrows, and the text column says so.
    let svg = f(vec![ForestRow::estimate("Rare", 3.0, 0.0, f64::INFINITY)]).unwrap();
    assert_eq!(svg.matches("<polygon").count(), 2, "two arrowheads");
    assert!(svg.contains("3.00 (0.00\u{2013}\u{221E})"));
    // A very wide axis keeps a readable number of ticks.
    let wide = ForestPlot {
        x_range: Some((1e-12, 1e12)),
        ..ForestPlot::new(vec![ForestRow::estimate("Wide", 2.0, 1e-10, 1e10)])
    };
    let svg = forest_plot(&wide).unwrap();
    let ticks = svg
        .lines()
        .filter(|l| {
            l.starts_with("<text")
                && l.contains("text-anchor=\"middle\"")
                && l.contains("font-size=\"8\"")
        })
        .count();
    assert!((3..=9).contains(&ticks), "{ticks} ticks");
    // Only headings: an axis around the reference line.
    f(vec![ForestRow::heading("Nothing estimable")]).unwrap();
    // A label far too long is cut with an ellipsis.
    let svg = f(vec![ForestRow::estimate(
        &"long ".repeat(60),
        1.2,
        1.0,
        1.4,
    )])
    .unwrap();
    assert!(svg.contains('\u{2026}'));
}

#[test]
fn histogram_errors_and_edges() {
    let h = |values: Vec<f64>, bins: Bins| {
        histogram(&Histogram {
            values,
            bins,
            ..Histogram::new(vec![], "x")
        })
    };
    assert!(
        h(vec![], Bins::Auto)
            .unwrap_err()
            .message
            .contains("no values")
    );
    let m = h(vec![1.0, f64::NAN], Bins::Auto).unwrap_err().message;
    assert!(m.contains("value 2") && m.contains("NaN"), "{m}");
    assert!(
        h(vec![1.0], Bins::Count(0))
            .unwrap_err()
            .message
            .contains("number of bins")
    );
    assert!(
        h(vec![1.0], Bins::Width(-1.0))
            .unwrap_err()
            .message
            .contains("positive")
    );
    assert!(
        h(vec![1.0], Bins::Width(f64::INFINITY))
            .unwrap_err()
            .message
            .contains("infinite")
    );
    h(vec![7.0; 10], Bins::Auto).unwrap();
    h(vec![7.0], Bins::Count(3)).unwrap();
    h(vec![1e-9, 2e-9], Bins::Auto).unwrap();
}
