//! Kaplan-Meier curves with censor marks, confidence bands, legend, annotation and a
//! number-at-risk table aligned with the time axis.

use serde::{Deserialize, Serialize};

use crate::axis::{self, TICK, TICK_GAP, bottom_axis, left_axis};
use crate::canvas::{Canvas, HAlign, Panel, Stroke, TextSpec, VAlign};
use crate::place::{Corner, Rect, place};
use crate::{FigureError, LINE_STYLES, LineStyle, PALETTE, Result, Rgb, Style, check_finite};

const FIGURE: &str = "Kaplan-Meier plot";
const CURVE_WIDTH: f64 = 1.0;
const CENSOR_HALF: f64 = 2.2;
const CENSOR_WIDTH: f64 = 0.6;
const BAND_OPACITY: f64 = 0.16;
const MARGIN: f64 = 4.0;
/// Length of the line sample in legends and in the risk table's row labels.
const SAMPLE: f64 = 20.0;
/// Shorter line sample in the risk table's row labels.
const TABLE_SAMPLE: f64 = 14.0;
/// Expansion of the time axis beyond 0 and the last time, as a fraction of the last time.
const X_PAD: f64 = 0.015;
/// Expansion of the survival axis below 0 and above 1.
const Y_PAD: f64 = 0.025;

/// The survival estimate just after an event time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KmStep {
    pub time: f64,
    /// Survival just after `time`, 0–1.
    pub survival: f64,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// Events at `time` (at least 1).
    pub n_event: u32,
}

/// Subjects censored at `time`, drawn as a "+" at the curve's height there.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Censor {
    pub time: f64,
    /// Survival at `time`, 0–1.
    pub survival: f64,
    /// Subjects censored at `time` (at least 1).
    pub n: u32,
}

/// One curve. Times are on the x-axis scale and start at 0; every subject ends either in an
/// event (`steps`) or in a censoring (`censored`), which is how the number at risk is counted:
/// at time t, `n` minus the events and censorings before t.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KmGroup {
    pub label: String,
    /// Subjects at risk at time 0.
    pub n: u32,
    /// Event times in increasing order.
    pub steps: Vec<KmStep>,
    pub censored: Vec<Censor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SurvivalScale {
    /// 0 to 1.
    Probability,
    /// 0 to 100, "(%)" appended to the y-axis title.
    Percent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegendPosition {
    /// Inside the panel where it covers nothing (top right first), else above the panel.
    Auto,
    TopRight,
    TopLeft,
    BottomRight,
    BottomLeft,
    /// In a row above the panel.
    Above,
    /// No legend (the risk table still names each line).
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KaplanMeier {
    pub groups: Vec<KmGroup>,
    /// x-axis title, e.g. "Time since surgery".
    pub x_label: String,
    /// Unit appended in parentheses, e.g. "months".
    pub x_unit: Option<String>,
    pub y_label: String,
    pub scale: SurvivalScale,
    /// End of the time axis; curves are cut there. Default: the first break at or after the
    /// last follow-up time.
    pub max_time: Option<f64>,
    /// Distance between time breaks (and risk-table columns). Default: at most 7 intervals of
    /// 3, 6, 12, 24… when the unit is months (weeks and days likewise), else 1, 2 or 5 × 10^k.
    pub break_interval: Option<f64>,
    pub confidence_bands: bool,
    pub censor_marks: bool,
    pub legend: LegendPosition,
    pub legend_title: Option<String>,
    /// Text such as "Log-rank *p* = 0.03" (`*…*` in italics), placed where it covers nothing.
    pub annotation: Option<String>,
    pub risk_table: bool,
    pub risk_table_title: String,
    /// All lines black (patterns still tell them apart).
    pub monochrome: bool,
    pub style: Style,
}

impl Default for KaplanMeier {
    fn default() -> Self {
        KaplanMeier {
            groups: Vec::new(),
            x_label: "Time".to_string(),
            x_unit: None,
            y_label: "Survival probability".to_string(),
            scale: SurvivalScale::Probability,
            max_time: None,
            break_interval: None,
            confidence_bands: true,
            censor_marks: true,
            legend: LegendPosition::Auto,
            legend_title: None,
            annotation: None,
            risk_table: true,
            risk_table_title: "Number at risk".to_string(),
            monochrome: false,
            style: Style::default(),
        }
    }
}

impl KaplanMeier {
    pub fn new(groups: Vec<KmGroup>) -> Self {
        KaplanMeier {
            groups,
            ..KaplanMeier::default()
        }
    }
}

fn group_err(label: &str, i: usize, msg: impl std::fmt::Display) -> FigureError {
    if label.trim().is_empty() {
        FigureError::new(format!("{FIGURE}: group {}: {msg}", i + 1))
    } else {
        FigureError::new(format!("{FIGURE}: group \"{label}\": {msg}"))
    }
}

fn validate(km: &KaplanMeier) -> Result<()> {
    km.style.validate(FIGURE)?;
    if km.groups.is_empty() {
        return Err(FigureError::new(format!(
            "{FIGURE}: there are no groups to draw"
        )));
    }
    for (i, g) in km.groups.iter().enumerate() {
        let err = |m: String| group_err(&g.label, i, m);
        if g.label.trim().is_empty() {
            return Err(err("the group has no label".into()));
        }
        if g.n == 0 {
            return Err(err(
                "the group has no subjects (n = 0); leave it out of the figure".into(),
            ));
        }
        validate_steps(g, &err)?;
        validate_censored(g, &err)?;
        let ended: u64 = g.steps.iter().map(|s| u64::from(s.n_event)).sum::<u64>()
            + g.censored.iter().map(|c| u64::from(c.n)).sum::<u64>();
        if ended != u64::from(g.n) {
            return Err(err(format!(
                "{} subjects at time 0, but the events and censorings add up to {ended}; \
                 every subject must end in exactly one of them",
                g.n
            )));
        }
    }
    if let Some(t) = km.max_time {
        check_finite(FIGURE, "the maximum time", t)?;
        if t <= 0.0 {
            return Err(FigureError::new(format!(
                "{FIGURE}: the maximum time must be positive (got {t})"
            )));
        }
    }
    if let Some(b) = km.break_interval {
        check_finite(FIGURE, "the break interval", b)?;
        if b <= 0.0 {
            return Err(FigureError::new(format!(
                "{FIGURE}: the break interval must be positive (got {b})"
            )));
        }
    }
    Ok(())
}

/// A group's steps: finite, in 0–1, limits around the estimate, times increasing, survival
/// never rising. `err` names the group.
fn validate_steps(g: &KmGroup, err: &dyn Fn(String) -> FigureError) -> Result<()> {
    let mut previous: Option<&KmStep> = None;
    for s in &g.steps {
        let at = |what: &str| format!("the {what} of the step at time {}", s.time);
        check_finite(
            FIGURE,
            &format!("group \"{}\": a step time", g.label),
            s.time,
        )?;
        check_finite(
            FIGURE,
            &format!("group \"{}\": {}", g.label, at("survival")),
            s.survival,
        )?;
        if s.time < 0.0 {
            return Err(err(format!("step time {} is negative", s.time)));
        }
        if !(0.0..=1.0).contains(&s.survival) {
            return Err(err(format!(
                "{} is {}, outside 0–1",
                at("survival"),
                s.survival
            )));
        }
        validate_limits(g, s, err)?;
        if s.n_event == 0 {
            return Err(err(format!("the step at time {} has no events", s.time)));
        }
        if let Some(p) = previous {
            if s.time <= p.time {
                return Err(err(format!(
                    "step times must increase, but {} follows {}",
                    s.time, p.time
                )));
            }
            if s.survival > p.survival + 1e-9 {
                return Err(err(format!(
                    "survival rises from {} to {} at time {}",
                    p.survival, s.survival, s.time
                )));
            }
        }
        previous = Some(s);
    }
    Ok(())
}

/// A step's confidence limits: finite, in 0–1, on either side of the survival.
fn validate_limits(g: &KmGroup, s: &KmStep, err: &dyn Fn(String) -> FigureError) -> Result<()> {
    let at = |what: &str| format!("the {what} of the step at time {}", s.time);
    for (name, bound) in [
        ("lower confidence limit", s.lower),
        ("upper confidence limit", s.upper),
    ] {
        if let Some(b) = bound {
            check_finite(FIGURE, &format!("group \"{}\": {}", g.label, at(name)), b)?;
            if !(0.0..=1.0).contains(&b) {
                return Err(err(format!("{} is {b}, outside 0–1", at(name))));
            }
        }
    }
    if let Some(lo) = s.lower
        && lo > s.survival + 1e-9
    {
        return Err(err(format!(
            "{} ({lo}) is above the survival ({})",
            at("lower confidence limit"),
            s.survival
        )));
    }
    if let Some(hi) = s.upper
        && hi < s.survival - 1e-9
    {
        return Err(err(format!(
            "{} ({hi}) is below the survival ({})",
            at("upper confidence limit"),
            s.survival
        )));
    }
    Ok(())
}

/// A group's censorings: finite, in 0–1, counting someone, and on the curve.
fn validate_censored(g: &KmGroup, err: &dyn Fn(String) -> FigureError) -> Result<()> {
    for c in &g.censored {
        check_finite(
            FIGURE,
            &format!("group \"{}\": a censoring time", g.label),
            c.time,
        )?;
        check_finite(
            FIGURE,
            &format!(
                "group \"{}\": the survival at censoring time {}",
                g.label, c.time
            ),
            c.survival,
        )?;
        if c.time < 0.0 {
            return Err(err(format!("censoring time {} is negative", c.time)));
        }
        if !(0.0..=1.0).contains(&c.survival) {
            return Err(err(format!(
                "the survival at censoring time {} is {}, outside 0–1",
                c.time, c.survival
            )));
        }
        if c.n == 0 {
            return Err(err(format!(
                "the censoring at time {} counts no subjects",
                c.time
            )));
        }
        let on_curve = survival_at(g, c.time);
        if (on_curve - c.survival).abs() > 1e-6 {
            return Err(err(format!(
                "the censoring at time {} is given survival {}, but the curve is at {} there",
                c.time, c.survival, on_curve
            )));
        }
    }
    Ok(())
}

/// Last follow-up time of a group.
fn last_time(g: &KmGroup) -> f64 {
    let s = g.steps.last().map_or(0.0, |s| s.time);
    let c = g.censored.iter().map(|c| c.time).fold(0.0, f64::max);
    s.max(c)
}

/// Survival just after time `t` (right-continuous step function).
fn survival_at(g: &KmGroup, t: f64) -> f64 {
    g.steps
        .iter()
        .take_while(|s| s.time <= t)
        .last()
        .map_or(1.0, |s| s.survival)
}

/// Subjects at risk at time `t`: still under observation just before `t`.
fn at_risk(g: &KmGroup, t: f64) -> u64 {
    let gone: u64 = g
        .steps
        .iter()
        .filter(|s| s.time < t)
        .map(|s| u64::from(s.n_event))
        .sum::<u64>()
        + g.censored
            .iter()
            .filter(|c| c.time < t)
            .map(|c| u64::from(c.n))
            .sum::<u64>();
    u64::from(g.n).saturating_sub(gone)
}

/// Step path in data coordinates (y as probability), cut at `x_max`.
fn curve_path(g: &KmGroup, x_max: f64) -> Vec<(f64, f64)> {
    let end = last_time(g).min(x_max);
    let mut pts = vec![(0.0, 1.0)];
    let mut level = 1.0;
    for s in &g.steps {
        if s.time > x_max {
            break;
        }
        pts.push((s.time, level));
        pts.push((s.time, s.survival));
        level = s.survival;
    }
    let last_x = pts.last().map_or(0.0, |p| p.0);
    if end > last_x || pts.len() == 1 {
        pts.push((end.max(last_x), level));
    }
    pts
}

/// Confidence band pieces: (from, to, lower, upper) intervals where both limits are known.
fn band_intervals(g: &KmGroup, x_max: f64) -> Vec<(f64, f64, f64, f64)> {
    let end = last_time(g).min(x_max);
    let mut out = Vec::new();
    for (j, s) in g.steps.iter().enumerate() {
        if s.time >= end {
            break;
        }
        let to = g.steps.get(j + 1).map_or(end, |n| n.time.min(end));
        if let (Some(lo), Some(hi)) = (s.lower, s.upper)
            && to > s.time
        {
            out.push((s.time, to, lo, hi));
        }
    }
    out
}

/// Contiguous runs of band intervals as polygons (step-shaped upper edge, then lower edge back).
fn band_polygons(intervals: &[(f64, f64, f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut polys = Vec::new();
    let mut run: Vec<(f64, f64, f64, f64)> = Vec::new();
    let flush = |run: &mut Vec<(f64, f64, f64, f64)>, polys: &mut Vec<Vec<(f64, f64)>>| {
        if run.is_empty() {
            return;
        }
        let mut upper = Vec::new();
        let mut lower = Vec::new();
        for &(a, b, lo, hi) in run.iter() {
            upper.push((a, hi));
            upper.push((b, hi));
            lower.push((a, lo));
            lower.push((b, lo));
        }
        lower.reverse();
        upper.extend(lower);
        polys.push(upper);
        run.clear();
    };
    for &iv in intervals {
        if let Some(last) = run.last()
            && (last.1 - iv.0).abs() > 1e-12
        {
            flush(&mut run, &mut polys);
        }
        run.push(iv);
    }
    flush(&mut run, &mut polys);
    polys
}

struct Look {
    color: Rgb,
    line: LineStyle,
}

fn look(km: &KaplanMeier, i: usize) -> Look {
    Look {
        color: if km.monochrome {
            Rgb::BLACK
        } else {
            PALETTE[i % PALETTE.len()]
        },
        line: LINE_STYLES[i % LINE_STYLES.len()],
    }
}

fn corner_of(p: LegendPosition) -> Option<Corner> {
    match p {
        LegendPosition::TopRight => Some(Corner::TopRight),
        LegendPosition::TopLeft => Some(Corner::TopLeft),
        LegendPosition::BottomRight => Some(Corner::BottomRight),
        LegendPosition::BottomLeft => Some(Corner::BottomLeft),
        _ => None,
    }
}

/// The axes' ticks: where the time axis ends, its break interval, and both axes' labels.
struct Axes {
    x_max: f64,
    step: f64,
    x_ticks: Vec<(f64, String)>,
    y_ticks: Vec<(f64, String)>,
}

/// The legend's contents and size, inside the panel (one entry a row) or above it (entries
/// packed into rows from the panel's left edge).
struct LegendLayout {
    show: bool,
    pitch: f64,
    labels: Vec<String>,
    w: f64,
    h: f64,
    /// Width of each item above the panel (the title first, if any) and the row it goes in.
    above_items: Vec<f64>,
    above_rows_of_items: Vec<usize>,
    above_rows: usize,
}

/// Offsets below the panel's bottom edge: axis title, risk table rows, and the total.
struct Below {
    x_title_top: f64,
    table_title_top: f64,
    row_pitch: f64,
    first_row_mid: f64,
    total: f64,
}

/// Everything measured before the panel's height is known.
struct Layout {
    axes: Axes,
    cap: f64,
    cap_t: f64,
    y_tick_w: f64,
    /// Panel edges in pt.
    left: f64,
    right: f64,
    /// Number at risk, per group and time break.
    counts: Vec<Vec<String>>,
    table_labels: Vec<String>,
    legend: LegendLayout,
    annotation_w: f64,
    annotation_h: f64,
    below: Below,
}

/// Where legend and annotation go: inside the panel (a box) or above it.
#[derive(Clone, Copy)]
struct Above {
    legend: bool,
    annotation: bool,
}

/// Draw a Kaplan-Meier figure.
pub fn kaplan_meier(km: &KaplanMeier) -> Result<String> {
    validate(km)?;
    let lay = layout(km)?;
    let x_max = lay.axes.x_max;
    // Try to place legend and annotation inside the panel; what does not fit goes above it,
    // which makes the panel shorter, so the placement is tried again.
    let mut above = Above {
        legend: lay.legend.show && km.legend == LegendPosition::Above,
        annotation: false,
    };
    for _attempt in 0..3 {
        let (canvas, top, bottom) = frame(km, &lay, above)?;
        // A little room around the data (as ggplot's expansion) so that curves at 0 or 1, or
        // starting at time 0, do not run along an axis line.
        let x_pad = X_PAD * x_max;
        let panel = canvas.panel(
            (lay.left, lay.right),
            (top, bottom),
            -x_pad..(x_max + x_pad),
            -Y_PAD..(1.0 + Y_PAD),
        );
        let Some((legend_box, annotation_box)) =
            place_boxes(km, &lay, &panel, (top, bottom), &mut above)
        else {
            continue;
        };
        // Confidence bands under everything.
        if km.confidence_bands {
            for (i, g) in km.groups.iter().enumerate() {
                for poly in band_polygons(&band_intervals(g, x_max)) {
                    panel.polygon(&poly, look(km, i).color, BAND_OPACITY)?;
                }
            }
        }
        let xt = draw_axes(km, &lay, &canvas, &panel, (top, bottom))?;
        draw_curves(km, &canvas, &panel, x_max)?;
        let above_y = draw_legend(km, &lay, &canvas, legend_box)?;
        if let Some(text) = &km.annotation {
            let fs = km.style.font_size;
            match annotation_box {
                Some(b) => canvas.rich_text(
                    text,
                    (b.x0, (b.y0 + b.y1) / 2.0),
                    TextSpec::new(fs, HAlign::Left, VAlign::CapMiddle),
                )?,
                None => canvas.rich_text(
                    text,
                    (lay.right, above_y + lay.cap / 2.0),
                    TextSpec::new(fs, HAlign::Right, VAlign::CapMiddle),
                )?,
            }
        }
        if km.risk_table {
            draw_risk_table(km, &lay, &canvas, bottom, &xt)?;
        }
        return Ok(canvas.finish());
    }
    Err(FigureError::new(format!(
        "{FIGURE}: no room for the legend and the annotation"
    )))
}

/// The time axis (end and break interval from the data unless given) and the survival axis.
fn axes(km: &KaplanMeier) -> Result<Axes> {
    let percent = km.scale == SurvivalScale::Percent;
    let yk = if percent { 100.0 } else { 1.0 };
    let t_end = km.groups.iter().map(last_time).fold(0.0, f64::max);
    let unit = km.x_unit.as_deref();
    let (x_max, step) = match (km.max_time, km.break_interval) {
        (Some(m), Some(b)) => (m, b),
        (Some(m), None) => (m, axis::time_step(m, unit, 7)),
        (None, b) => {
            let span = if t_end > 0.0 { t_end } else { 1.0 };
            let step = b.unwrap_or_else(|| axis::time_step(span, unit, 7));
            ((span / step - 1e-9).ceil().max(1.0) * step, step)
        }
    };
    if x_max / step > 40.0 {
        return Err(FigureError::new(format!(
            "{FIGURE}: a break every {step} up to {x_max} makes more than 40 breaks; \
             choose a larger break interval"
        )));
    }
    let x_dec = axis::decimals(step);
    let x_ticks = axis::breaks(0.0, x_max, step)
        .iter()
        .map(|&b| (b, axis::format_number(b, x_dec)))
        .collect();
    let y_ticks = axis::breaks(0.0, 1.0, 0.2)
        .iter()
        .map(|&b| (b, axis::format_number(b * yk, if percent { 0 } else { 1 })))
        .collect();
    Ok(Axes {
        x_max,
        step,
        x_ticks,
        y_ticks,
    })
}

/// Measure ticks, labels, legend and risk table with the figure's font and fix the panel's
/// left and right edges; an error if the width cannot hold them.
fn layout(km: &KaplanMeier) -> Result<Layout> {
    let axes = axes(km)?;
    let st = &km.style;
    let (fs, ts) = (st.font_size, st.title_size);
    let measure_canvas = Canvas::new(st.width, 100.0, st)?;
    let font = measure_canvas.font(false);
    let cap = font.cap_height(fs);
    let cap_t = font.cap_height(ts);
    let counts: Vec<Vec<String>> = km
        .groups
        .iter()
        .map(|g| {
            axes.x_ticks
                .iter()
                .map(|&(b, _)| at_risk(g, b).to_string())
                .collect()
        })
        .collect();
    // Group labels: shortened with an ellipsis beyond 30% of the width in the risk table and
    // 45% in the legend.
    let table_labels: Vec<String> = km
        .groups
        .iter()
        .map(|g| font.truncate(&g.label, fs, st.width * 0.3))
        .collect();
    let legend_labels: Vec<String> = km
        .groups
        .iter()
        .map(|g| font.truncate(&g.label, fs, st.width * 0.45))
        .collect();
    let (left, right, y_tick_w) =
        horizontal(km, &axes, &measure_canvas, &counts, &table_labels, cap_t)?;
    let legend = legend_layout(km, &measure_canvas, legend_labels, left);
    Ok(Layout {
        annotation_w: km
            .annotation
            .as_ref()
            .map_or(0.0, |a| measure_canvas.rich_width(a, fs)),
        annotation_h: fs * 1.3,
        below: below_panel(km, cap, cap_t),
        axes,
        cap,
        cap_t,
        y_tick_w,
        left,
        right,
        counts,
        table_labels,
        legend,
    })
}

/// The panel's left and right edges (room for the y-axis, the risk table's labels, and the
/// last tick label or count) and the widest y tick label. An error if the curves would get
/// less than 100 pt or neighbouring tick labels or counts would touch.
fn horizontal(
    km: &KaplanMeier,
    axes: &Axes,
    canvas: &Canvas,
    counts: &[Vec<String>],
    table_labels: &[String],
    cap_t: f64,
) -> Result<(f64, f64, f64)> {
    let st = &km.style;
    let (fs, ts) = (st.font_size, st.title_size);
    let m = |s: &str| canvas.measure(s, fs, false);
    let widest = |col: usize| {
        counts
            .iter()
            .map(|row| row.get(col).map_or(0.0, |s| m(s)))
            .fold(0.0, f64::max)
    };
    let (x_max, step, x_ticks) = (axes.x_max, axes.step, &axes.x_ticks);
    let y_tick_w = axes.y_ticks.iter().map(|(_, s)| m(s)).fold(0.0, f64::max);
    let left_axis_need = MARGIN + cap_t + ts * 0.25 + 5.0 + y_tick_w + TICK_GAP + TICK;
    let label_w = table_labels.iter().map(|l| m(l)).fold(0.0, f64::max);
    let left_table_need = if km.risk_table {
        MARGIN + TABLE_SAMPLE + 4.0 + label_w + 8.0 + widest(0) / 2.0
    } else {
        0.0
    };
    let left = left_axis_need.max(left_table_need);
    let last_col = x_ticks.len().saturating_sub(1);
    let last_tick_is_end = x_ticks
        .last()
        .is_some_and(|&(b, _)| (b - x_max).abs() < 1e-9 * x_max.max(1.0));
    let right_need = if last_tick_is_end {
        let tick_half = x_ticks.last().map_or(0.0, |(_, s)| m(s)) / 2.0;
        let count_half = if km.risk_table {
            widest(last_col) / 2.0
        } else {
            0.0
        };
        tick_half.max(count_half)
    } else {
        0.0
    };
    let right = st.width - MARGIN - right_need.max(4.0);
    if right - left < 100.0 {
        return Err(FigureError::new(format!(
            "{FIGURE}: a {} pt wide figure leaves too little room for the curves; widen it",
            st.width
        )));
    }
    // Tick labels and risk counts must not run into their neighbours.
    let column = (right - left) * step / (x_max * (1.0 + 2.0 * X_PAD));
    let widest_cell = (0..x_ticks.len())
        .map(|c| if km.risk_table { widest(c) } else { 0.0 })
        .chain(x_ticks.iter().map(|(_, s)| m(s)))
        .fold(0.0, f64::max);
    if x_ticks.len() > 1 && widest_cell + 3.0 > column {
        return Err(FigureError::new(format!(
            "{FIGURE}: breaks every {step} are {column:.0} pt apart, too close for their labels \
             and counts; choose a larger break interval"
        )));
    }
    Ok((left, right, y_tick_w))
}

/// The legend's size inside the panel, and how its items wrap into rows above the panel
/// (from the panel's `left` edge to the figure's right margin).
fn legend_layout(
    km: &KaplanMeier,
    canvas: &Canvas,
    labels: Vec<String>,
    left: f64,
) -> LegendLayout {
    let st = &km.style;
    let fs = st.font_size;
    let m = |s: &str, bold: bool| canvas.measure(s, fs, bold);
    let pitch = fs * 1.4;
    let title_w = km.legend_title.as_ref().map_or(0.0, |t| m(t, true));
    let label_w = labels.iter().map(|l| m(l, false)).fold(0.0, f64::max);
    let above_items: Vec<f64> = km
        .legend_title
        .iter()
        .map(|_| title_w + 8.0)
        .chain(labels.iter().map(|l| SAMPLE + 4.0 + m(l, false) + 12.0))
        .collect();
    let mut above_rows_of_items: Vec<usize> = Vec::new();
    let (mut row, mut x) = (0, left);
    for w in &above_items {
        if x > left && x + w - 12.0 > st.width - MARGIN {
            row += 1;
            x = left;
        }
        above_rows_of_items.push(row);
        x += w;
    }
    let rows = km.groups.len() + usize::from(km.legend_title.is_some());
    LegendLayout {
        show: km.legend != LegendPosition::None && km.groups.len() > 1,
        pitch,
        labels,
        w: (SAMPLE + 4.0 + label_w).max(title_w),
        h: rows as f64 * pitch,
        above_items,
        above_rows: above_rows_of_items.last().map_or(1, |r| r + 1),
        above_rows_of_items,
    }
}

/// Vertical offsets below the panel: tick labels, axis title, then the risk table.
fn below_panel(km: &KaplanMeier, cap: f64, cap_t: f64) -> Below {
    let (fs, ts) = (km.style.font_size, km.style.title_size);
    let tick_labels_bottom = TICK + TICK_GAP + cap;
    let x_title_top = tick_labels_bottom + 7.0;
    let x_title_bottom = x_title_top + cap_t + ts * 0.25;
    let table_title_top = x_title_bottom + 12.0;
    let row_pitch = fs * 1.45;
    let first_row_mid = table_title_top + cap + 4.0 + row_pitch / 2.0;
    let total = if km.risk_table {
        first_row_mid + (km.groups.len() as f64 - 1.0) * row_pitch + cap / 2.0 + fs * 0.25
    } else {
        x_title_bottom
    } + MARGIN;
    Below {
        x_title_top,
        table_title_top,
        row_pitch,
        first_row_mid,
        total,
    }
}

/// The canvas for one attempt, and the panel's top and bottom: the rows above the panel
/// (legend, annotation) push it down; a given figure height shrinks it.
fn frame(km: &KaplanMeier, lay: &Layout, above: Above) -> Result<(Canvas, f64, f64)> {
    let st = &km.style;
    let fs = st.font_size;
    let below = lay.below.total;
    let above_rows = if above.legend {
        lay.legend.above_rows
    } else {
        0
    } + usize::from(above.annotation);
    let top = 8.0 + above_rows as f64 * (fs * 1.5);
    let panel_h = match st.height {
        Some(h) => h - top - below,
        None => (st.width * 0.47).clamp(140.0, 320.0),
    };
    if panel_h < 80.0 {
        return Err(FigureError::new(format!(
            "{FIGURE}: a height of {} pt leaves {panel_h:.0} pt for the curves; \
             allow at least {:.0} pt",
            st.height.unwrap_or(0.0),
            top + below + 80.0
        )));
    }
    let height = top + panel_h + below;
    let canvas = Canvas::new(st.width, height, st)?;
    Ok((canvas, top, top + panel_h))
}

/// What is drawn in the panel (curve segments, bands, censor marks), as rectangles in pt.
fn obstacles(km: &KaplanMeier, panel: &Panel, x_max: f64) -> Vec<Rect> {
    let mut obstacles = Vec::new();
    for g in &km.groups {
        let path: Vec<(f64, f64)> = curve_path(g, x_max)
            .iter()
            .map(|&(x, y)| panel.to_pt(x, y))
            .collect();
        for w in path.windows(2) {
            obstacles.push(Rect::new(w[0], w[1]).inflate(CURVE_WIDTH));
        }
        if km.confidence_bands {
            for (a, b, lo, hi) in band_intervals(g, x_max) {
                obstacles.push(Rect::new(panel.to_pt(a, lo), panel.to_pt(b, hi)));
            }
        }
        if km.censor_marks {
            for c in g.censored.iter().filter(|c| c.time <= x_max) {
                let p = panel.to_pt(c.time, c.survival);
                obstacles.push(Rect::new(p, p).inflate(CENSOR_HALF + 0.5));
            }
        }
    }
    obstacles
}

/// Boxes inside the panel for the legend and the annotation (`None`: not shown, or above the
/// panel). Returns `None`, having moved the first one that does not fit above the panel, when
/// the layout must be tried again.
fn place_boxes(
    km: &KaplanMeier,
    lay: &Layout,
    panel: &Panel,
    (top, bottom): (f64, f64),
    above: &mut Above,
) -> Option<(Option<Rect>, Option<Rect>)> {
    let obstacles = obstacles(km, panel, lay.axes.x_max);
    let region = Rect {
        x0: lay.left + 8.0,
        y0: top + 2.0,
        x1: lay.right - 2.0,
        y1: bottom - 6.0,
    };
    let mut legend_box = None;
    if lay.legend.show && !above.legend {
        let prefs = match corner_of(km.legend) {
            Some(c) => vec![c],
            None => vec![
                Corner::TopRight,
                Corner::BottomLeft,
                Corner::BottomRight,
                Corner::TopLeft,
            ],
        };
        legend_box = place(&region, lay.legend.w, lay.legend.h, &obstacles, &prefs, 3.0);
        if legend_box.is_none() {
            above.legend = true;
            return None;
        }
    }
    let mut annotation_box = None;
    if km.annotation.is_some() && !above.annotation {
        let mut obs = obstacles;
        if let Some(b) = legend_box {
            obs.push(b.inflate(4.0));
        }
        let prefs = [
            Corner::BottomLeft,
            Corner::BottomRight,
            Corner::TopRight,
            Corner::TopLeft,
        ];
        annotation_box = place(
            &region,
            lay.annotation_w,
            lay.annotation_h,
            &obs,
            &prefs,
            3.0,
        );
        if annotation_box.is_none() {
            above.annotation = true;
            return None;
        }
    }
    Some((legend_box, annotation_box))
}

/// Both axes with their titles; returns the time ticks' x positions (the risk table's columns).
fn draw_axes(
    km: &KaplanMeier,
    lay: &Layout,
    canvas: &Canvas,
    panel: &Panel,
    (top, bottom): (f64, f64),
) -> Result<Vec<(f64, String)>> {
    let (fs, ts) = (km.style.font_size, km.style.title_size);
    let (left, right) = (lay.left, lay.right);
    let xt: Vec<(f64, String)> = lay
        .axes
        .x_ticks
        .iter()
        .map(|(b, s)| (panel.to_pt(*b, 0.0).0, s.clone()))
        .collect();
    let yt: Vec<(f64, String)> = lay
        .axes
        .y_ticks
        .iter()
        .map(|(b, s)| (panel.to_pt(0.0, *b).1, s.clone()))
        .collect();
    bottom_axis(canvas, (left, right), bottom, &xt, fs)?;
    left_axis(canvas, left, (bottom, top), &yt, fs)?;
    let x_title = match &km.x_unit {
        Some(u) if !u.trim().is_empty() => format!("{} ({u})", km.x_label),
        _ => km.x_label.clone(),
    };
    canvas.text(
        &x_title,
        ((left + right) / 2.0, bottom + lay.below.x_title_top),
        TextSpec::new(ts, HAlign::Center, VAlign::CapTop),
    )?;
    let y_title = if km.scale == SurvivalScale::Percent {
        format!("{} (%)", km.y_label)
    } else {
        km.y_label.clone()
    };
    let y_title_x = left - TICK - TICK_GAP - lay.y_tick_w - 5.0 - (lay.cap_t + ts * 0.25);
    canvas.text(
        &y_title,
        (y_title_x, (top + bottom) / 2.0),
        TextSpec::new(ts, HAlign::Center, VAlign::CapTop).vertical(),
    )?;
    Ok(xt)
}

/// The curves, then the censor marks on top.
fn draw_curves(km: &KaplanMeier, canvas: &Canvas, panel: &Panel, x_max: f64) -> Result<()> {
    for (i, g) in km.groups.iter().enumerate() {
        let lk = look(km, i);
        panel.polyline(
            &curve_path(g, x_max),
            &Stroke::styled(lk.color, CURVE_WIDTH, lk.line),
        )?;
    }
    if km.censor_marks {
        for (i, g) in km.groups.iter().enumerate() {
            let stroke = Stroke::solid(look(km, i).color, CENSOR_WIDTH);
            for c in g.censored.iter().filter(|c| c.time <= x_max) {
                let (x, y) = panel.to_pt(c.time, c.survival);
                canvas.line((x - CENSOR_HALF, y), (x + CENSOR_HALF, y), &stroke)?;
                canvas.line((x, y - CENSOR_HALF), (x, y + CENSOR_HALF), &stroke)?;
            }
        }
    }
    Ok(())
}

/// A line sample of `sample` pt in group `i`'s look, then its label.
fn keyed_label(
    km: &KaplanMeier,
    canvas: &Canvas,
    (x, y): (f64, f64),
    sample: f64,
    i: usize,
    label: &str,
) -> Result<()> {
    let lk = look(km, i);
    canvas.line(
        (x, y),
        (x + sample, y),
        &Stroke::styled(lk.color, CURVE_WIDTH, lk.line),
    )?;
    canvas.text(
        label,
        (x + sample + 4.0, y),
        TextSpec::new(km.style.font_size, HAlign::Left, VAlign::CapMiddle),
    )
}

/// The legend, in its box inside the panel or in rows above it. Returns where the next row
/// above the panel starts (the annotation's, when it did not fit inside either).
fn draw_legend(
    km: &KaplanMeier,
    lay: &Layout,
    canvas: &Canvas,
    legend_box: Option<Rect>,
) -> Result<f64> {
    let fs = km.style.font_size;
    let legend = &lay.legend;
    let title_spec = TextSpec::new(fs, HAlign::Left, VAlign::CapMiddle).bold();
    let mut above_y = 6.0;
    if !legend.show {
        return Ok(above_y);
    }
    if let Some(b) = legend_box {
        let mut y = b.y0 + legend.pitch / 2.0;
        if let Some(t) = &km.legend_title {
            canvas.text(t, (b.x0, y), title_spec)?;
            y += legend.pitch;
        }
        for (i, label) in legend.labels.iter().enumerate() {
            keyed_label(km, canvas, (b.x0, y), SAMPLE, i, label)?;
            y += legend.pitch;
        }
        return Ok(above_y);
    }
    // Rows above the panel, starting at the panel's left edge.
    let mut item = 0;
    let mut x = lay.left;
    let mut row = 0;
    let mut next = |x: &mut f64| {
        let r = legend.above_rows_of_items[item];
        if r != row {
            row = r;
            *x = lay.left;
        }
        let w = legend.above_items[item];
        item += 1;
        (above_y + r as f64 * fs * 1.5 + lay.cap / 2.0, w)
    };
    if let Some(t) = &km.legend_title {
        let (y, w) = next(&mut x);
        canvas.text(t, (x, y), title_spec)?;
        x += w;
    }
    for (i, label) in legend.labels.iter().enumerate() {
        let (y, w) = next(&mut x);
        keyed_label(km, canvas, (x, y), SAMPLE, i, label)?;
        x += w;
    }
    above_y += legend.above_rows as f64 * fs * 1.5;
    Ok(above_y)
}

/// The number-at-risk table: counts centred under the time ticks `xt`.
fn draw_risk_table(
    km: &KaplanMeier,
    lay: &Layout,
    canvas: &Canvas,
    bottom: f64,
    xt: &[(f64, String)],
) -> Result<()> {
    let fs = km.style.font_size;
    canvas.text(
        &km.risk_table_title,
        (MARGIN, bottom + lay.below.table_title_top),
        TextSpec::new(fs, HAlign::Left, VAlign::CapTop).bold(),
    )?;
    for (i, label) in lay.table_labels.iter().enumerate() {
        let y = bottom + lay.below.first_row_mid + i as f64 * lay.below.row_pitch;
        keyed_label(km, canvas, (MARGIN, y), TABLE_SAMPLE, i, label)?;
        for ((x, _), n) in xt.iter().zip(&lay.counts[i]) {
            canvas.text(
                n,
                (*x, y),
                TextSpec::new(fs, HAlign::Center, VAlign::CapMiddle),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> KmGroup {
        KmGroup {
            label: "A".into(),
            n: 5,
            steps: vec![
                KmStep {
                    time: 2.0,
                    survival: 0.8,
                    lower: Some(0.5),
                    upper: Some(1.0),
                    n_event: 1,
                },
                KmStep {
                    time: 5.0,
                    survival: 0.4,
                    lower: None,
                    upper: None,
                    n_event: 2,
                },
            ],
            censored: vec![
                Censor {
                    time: 3.0,
                    survival: 0.8,
                    n: 1,
                },
                Censor {
                    time: 7.0,
                    survival: 0.4,
                    n: 1,
                },
            ],
        }
    }

    #[test]
    fn risk_counts_follow_r() {
        let g = group();
        // n.risk at t counts subjects with time >= t.
        assert_eq!(at_risk(&g, 0.0), 5);
        assert_eq!(at_risk(&g, 2.0), 5);
        assert_eq!(at_risk(&g, 2.5), 4);
        assert_eq!(at_risk(&g, 5.0), 3);
        assert_eq!(at_risk(&g, 6.0), 1);
        assert_eq!(at_risk(&g, 8.0), 0);
    }

    #[test]
    fn paths_and_bands() {
        let g = group();
        assert_eq!(
            curve_path(&g, 10.0),
            vec![
                (0.0, 1.0),
                (2.0, 1.0),
                (2.0, 0.8),
                (5.0, 0.8),
                (5.0, 0.4),
                (7.0, 0.4)
            ]
        );
        assert_eq!(
            curve_path(&g, 4.0),
            vec![(0.0, 1.0), (2.0, 1.0), (2.0, 0.8), (4.0, 0.8)]
        );
        assert_eq!(band_intervals(&g, 10.0), vec![(2.0, 5.0, 0.5, 1.0)]);
        assert_eq!(survival_at(&g, 5.0), 0.4);
        assert_eq!(survival_at(&g, 1.0), 1.0);
    }
}
