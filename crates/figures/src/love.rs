//! Love plot: absolute standardized mean differences before and after matching.

use serde::{Deserialize, Serialize};

use crate::axis::{self, bottom_axis};
use crate::canvas::{Canvas, HAlign, Stroke, TextSpec, VAlign};
use crate::{FigureError, LineStyle, PALETTE, Result, Rgb, Style, check_finite};

const FIGURE: &str = "Love plot";
const MARGIN: f64 = 4.0;
const MARKER_R: f64 = 2.6;
const BEFORE: Rgb = PALETTE[1];
const AFTER: Rgb = PALETTE[0];
const GUIDE: Rgb = Rgb(0xD0, 0xD0, 0xD0);
const REFERENCE: Rgb = Rgb(0x40, 0x40, 0x40);

/// One covariate. Differences may be signed; the plot shows their absolute values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoveRow {
    pub label: String,
    pub before: f64,
    pub after: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoveOrder {
    /// Top to bottom as given.
    AsGiven,
    /// Largest difference before matching at the top.
    ByBefore,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LovePlot {
    pub rows: Vec<LoveRow>,
    pub order: LoveOrder,
    /// Dashed reference line (default 0.1); `None` for none.
    pub threshold: Option<f64>,
    pub x_label: String,
    pub before_label: String,
    pub after_label: String,
    /// Widest a covariate label may be, in pt (default: 38% of the width). Longer labels wrap
    /// onto a second line; what still does not fit ends with an ellipsis.
    pub max_label_width: Option<f64>,
    pub style: Style,
}

impl Default for LovePlot {
    fn default() -> Self {
        LovePlot {
            rows: Vec::new(),
            order: LoveOrder::AsGiven,
            threshold: Some(0.1),
            x_label: "Absolute standardized mean difference".to_string(),
            before_label: "Before matching".to_string(),
            after_label: "After matching".to_string(),
            max_label_width: None,
            style: Style::default(),
        }
    }
}

impl LovePlot {
    pub fn new(rows: Vec<LoveRow>) -> Self {
        LovePlot {
            rows,
            ..LovePlot::default()
        }
    }
}

fn validate(p: &LovePlot) -> Result<()> {
    p.style.validate(FIGURE)?;
    if p.rows.is_empty() {
        return Err(FigureError::new(format!(
            "{FIGURE}: there are no covariates to draw"
        )));
    }
    for (i, r) in p.rows.iter().enumerate() {
        let name = if r.label.trim().is_empty() {
            format!("covariate {}", i + 1)
        } else {
            format!("\"{}\"", r.label)
        };
        check_finite(
            FIGURE,
            &format!("the difference before matching for {name}"),
            r.before,
        )?;
        check_finite(
            FIGURE,
            &format!("the difference after matching for {name}"),
            r.after,
        )?;
    }
    if let Some(t) = p.threshold {
        check_finite(FIGURE, "the threshold", t)?;
        if t <= 0.0 {
            return Err(FigureError::new(format!(
                "{FIGURE}: the threshold must be positive (got {t})"
            )));
        }
    }
    if let Some(w) = p.max_label_width
        && (!w.is_finite() || w < 20.0)
    {
        return Err(FigureError::new(format!(
            "{FIGURE}: the maximum label width must be at least 20 pt (got {w})"
        )));
    }
    Ok(())
}

fn before_marker(canvas: &Canvas, c: (f64, f64)) -> Result<()> {
    canvas.circle(
        c,
        MARKER_R,
        Some(Rgb::WHITE),
        Some(&Stroke::solid(BEFORE, 0.9)),
    )
}

fn after_marker(canvas: &Canvas, c: (f64, f64)) -> Result<()> {
    canvas.circle(c, MARKER_R, Some(AFTER), None)
}

/// Rows in drawing order with their wrapped labels, the x axis, and the positions in pt.
struct Layout {
    /// Label, |difference| before and after matching.
    rows: Vec<(String, f64, f64)>,
    labels: Vec<Vec<String>>,
    line_h: f64,
    x_max: f64,
    ticks: Vec<(f64, String)>,
    left: f64,
    right: f64,
    legend_y: f64,
    top: f64,
    pitch: f64,
    bottom: f64,
    height: f64,
}

/// Draw a Love plot.
pub fn love_plot(p: &LovePlot) -> Result<String> {
    validate(p)?;
    let st = &p.style;
    let (fs, ts) = (st.font_size, st.title_size);
    let probe = Canvas::new(st.width, 100.0, st)?;
    let font = probe.font(false);
    let lay = layout(p, &probe)?;
    let (left, right, top, bottom) = (lay.left, lay.right, lay.top, lay.bottom);
    let canvas = Canvas::new(st.width, lay.height, st)?;
    // A little room left of 0 so that markers at 0 do not sit on the axis line.
    let panel = canvas.panel(
        (left, right),
        (top, bottom),
        (-0.025 * lay.x_max)..lay.x_max,
        0.0..1.0,
    );
    let x = |v: f64| panel.to_pt(v, 0.0).0;
    let row_y = |i: usize| top + (i as f64 + 0.5) * lay.pitch;

    // Legend above the panel.
    let mut lx = left;
    before_marker(&canvas, (lx + MARKER_R, lay.legend_y))?;
    lx += 2.0 * MARKER_R + 4.0;
    let spec = TextSpec::new(fs, HAlign::Left, VAlign::CapMiddle);
    canvas.text(&p.before_label, (lx, lay.legend_y), spec)?;
    lx += font.width(&p.before_label, fs) + 14.0;
    after_marker(&canvas, (lx + MARKER_R, lay.legend_y))?;
    lx += 2.0 * MARKER_R + 4.0;
    canvas.text(&p.after_label, (lx, lay.legend_y), spec)?;

    // Row guides, zero line, threshold, then the markers.
    for i in 0..lay.rows.len() {
        let y = row_y(i);
        canvas.line((left, y), (right, y), &Stroke::solid(GUIDE, 0.4))?;
    }
    if let Some(t) = p.threshold
        && t <= lay.x_max
    {
        canvas.line(
            (x(t), top),
            (x(t), bottom),
            &Stroke::styled(REFERENCE, 0.6, LineStyle::Dashed),
        )?;
    }
    canvas.line((left, top), (left, bottom), &axis::axis_stroke())?;
    let tick_pts: Vec<(f64, String)> = lay.ticks.iter().map(|(b, s)| (x(*b), s.clone())).collect();
    let labels_bottom = bottom_axis(&canvas, (left, right), bottom, &tick_pts, fs)?;
    canvas.text(
        &p.x_label,
        ((left + right) / 2.0, labels_bottom + 7.0),
        TextSpec::new(ts, HAlign::Center, VAlign::CapTop),
    )?;

    for (i, ((_, before, after), lines)) in lay.rows.iter().zip(&lay.labels).enumerate() {
        let y = row_y(i);
        let first = y - (lines.len() as f64 - 1.0) * lay.line_h / 2.0;
        for (k, line) in lines.iter().enumerate() {
            canvas.text(
                line,
                (left - 8.0, first + k as f64 * lay.line_h),
                TextSpec::new(fs, HAlign::Right, VAlign::CapMiddle),
            )?;
        }
        before_marker(&canvas, (x(*before), y))?;
        after_marker(&canvas, (x(*after), y))?;
    }
    Ok(canvas.finish())
}

/// Order the rows, wrap their labels, choose the x axis and fit everything into the width
/// and (if given) the height; an error names what does not fit.
fn layout(p: &LovePlot, probe: &Canvas) -> Result<Layout> {
    let st = &p.style;
    let (fs, ts) = (st.font_size, st.title_size);
    let font = probe.font(false);
    let cap = font.cap_height(fs);
    let cap_t = font.cap_height(ts);
    let mut rows: Vec<(String, f64, f64)> = p
        .rows
        .iter()
        .map(|r| (r.label.clone(), r.before.abs(), r.after.abs()))
        .collect();
    if p.order == LoveOrder::ByBefore {
        // Stable: ties keep their given order.
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    }
    // Labels: wrap to two lines, then ellipsis.
    let max_w = p.max_label_width.unwrap_or(st.width * 0.38);
    let labels: Vec<Vec<String>> = rows.iter().map(|r| font.wrap(&r.0, fs, max_w, 2)).collect();
    let label_w = labels
        .iter()
        .flatten()
        .map(|l| font.width(l, fs))
        .fold(0.0, f64::max);
    let max_lines = labels.iter().map(Vec::len).max().unwrap_or(1);
    let line_h = fs * 1.15;
    let (x_max, ticks) = x_axis(&rows, p.threshold);
    let left = MARGIN + label_w + 10.0;
    let last_half = ticks.last().map_or(0.0, |(_, s)| font.width(s, fs)) / 2.0;
    let right = st.width - MARGIN - last_half.max(4.0);
    if right - left < 80.0 {
        return Err(FigureError::new(format!(
            "{FIGURE}: the labels leave too little room; lower the maximum label width"
        )));
    }
    // Vertical layout.
    let legend_y = MARGIN + cap / 2.0 + 1.0;
    let top = legend_y + cap / 2.0 + 10.0;
    let below = 3.0 + axis::TICK + axis::TICK_GAP + cap + 7.0 + cap_t + ts * 0.25 + MARGIN;
    let min_pitch = (max_lines as f64 * line_h + 4.0).max(2.0 * MARKER_R + 8.0);
    let n = rows.len() as f64;
    let pitch = match st.height {
        Some(h) => {
            let pitch = (h - top - below) / n;
            if pitch < min_pitch {
                return Err(FigureError::new(format!(
                    "{FIGURE}: a height of {h} pt is too small for {} covariates; allow at least {:.0} pt",
                    rows.len(),
                    top + below + n * min_pitch
                )));
            }
            pitch
        }
        None => min_pitch.max(fs * 1.8),
    };
    let bottom = top + n * pitch;
    Ok(Layout {
        rows,
        labels,
        line_h,
        x_max,
        ticks,
        left,
        right,
        legend_y,
        top,
        pitch,
        bottom,
        height: bottom + below,
    })
}

/// The x axis from 0 to a break past every value and the threshold, and its ticks.
fn x_axis(rows: &[(String, f64, f64)], threshold: Option<f64>) -> (f64, Vec<(f64, String)>) {
    let hi = rows
        .iter()
        .map(|r| r.1.max(r.2))
        .fold(threshold.unwrap_or(0.0), f64::max)
        .max(0.05);
    let step = axis::nice_step(hi, 6);
    let x_max = (hi / step - 1e-9).ceil().max(1.0) * step;
    let dec = axis::decimals(step);
    let ticks = axis::breaks(0.0, x_max, step)
        .into_iter()
        .map(|b| (b, axis::format_number(b, dec)))
        .collect();
    (x_max, ticks)
}
