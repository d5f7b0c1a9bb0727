//! Forest plot: ratio estimates with confidence intervals on a log axis, with text columns.

use serde::{Deserialize, Serialize};

use crate::axis::{self, TICK, TICK_GAP, bottom_axis};
use crate::canvas::{Canvas, HAlign, Panel, Stroke, TextSpec, VAlign};
use crate::{FigureError, Result, Rgb, Style, describe};

const FIGURE: &str = "Forest plot";
const MARGIN: f64 = 4.0;
const INDENT: f64 = 9.0;
const WHISKER: f64 = 0.8;
const ARROW_LEN: f64 = 4.5;
const ARROW_HALF: f64 = 2.4;
const FIXED_SQUARE: f64 = 5.5;
const MIN_SQUARE: f64 = 3.0;
const MAX_SQUARE: f64 = 8.5;

/// One line of the plot: an estimate with its interval, or a heading, or a reference level
/// (text only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForestRow {
    pub label: String,
    /// Point estimate (> 0, finite). `None` for a heading or a reference level.
    pub estimate: Option<f64>,
    /// Lower limit: 0 or more (0 draws an arrow to the left edge).
    pub lower: Option<f64>,
    /// Upper limit: may be infinite (draws an arrow to the right edge).
    pub upper: Option<f64>,
    /// Text column, e.g. "1.58 (1.27–1.99)". `None` writes the estimate and interval with
    /// [`ForestPlot::decimals`].
    pub text: Option<String>,
    /// p column, already formatted ("0.03", "<0.001").
    pub p: Option<String>,
    /// Weight for square sizes ([`SquareSize::ByWeight`]), e.g. inverse variance or events.
    pub weight: Option<f64>,
    /// Indentation level of the label (levels under a heading).
    pub indent: u8,
    /// Bold label (a heading).
    pub bold: bool,
}

impl ForestRow {
    pub fn estimate(label: &str, estimate: f64, lower: f64, upper: f64) -> Self {
        ForestRow {
            label: label.to_string(),
            estimate: Some(estimate),
            lower: Some(lower),
            upper: Some(upper),
            ..ForestRow::default()
        }
    }

    pub fn heading(label: &str) -> Self {
        ForestRow {
            label: label.to_string(),
            bold: true,
            ..ForestRow::default()
        }
    }

    /// A reference level: its text column reads "Reference".
    pub fn reference(label: &str) -> Self {
        ForestRow {
            label: label.to_string(),
            text: Some("Reference".to_string()),
            ..ForestRow::default()
        }
    }

    pub fn with_p(mut self, p: &str) -> Self {
        self.p = Some(p.to_string());
        self
    }

    pub fn with_text(mut self, text: &str) -> Self {
        self.text = Some(text.to_string());
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SquareSize {
    Fixed,
    /// Area proportional to each row's weight.
    ByWeight,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForestPlot {
    pub rows: Vec<ForestRow>,
    pub x_label: String,
    /// Vertical reference line (no effect), default 1.
    pub reference: f64,
    /// Axis range (both > 0); intervals beyond it end in arrows. Default: from the data.
    pub x_range: Option<(f64, f64)>,
    pub label_header: Option<String>,
    pub text_header: Option<String>,
    pub p_header: Option<String>,
    pub square: SquareSize,
    /// Words under the axis on either side of the reference, e.g. ("Favours laparoscopic",
    /// "Favours open").
    pub favours: Option<(String, String)>,
    /// Decimals of the generated text column.
    pub decimals: usize,
    pub style: Style,
}

impl Default for ForestPlot {
    fn default() -> Self {
        ForestPlot {
            rows: Vec::new(),
            x_label: "Hazard ratio (log scale)".to_string(),
            reference: 1.0,
            x_range: None,
            label_header: None,
            text_header: Some("HR (95% CI)".to_string()),
            p_header: Some("p".to_string()),
            square: SquareSize::Fixed,
            favours: None,
            decimals: 2,
            style: Style::default(),
        }
    }
}

impl ForestPlot {
    pub fn new(rows: Vec<ForestRow>) -> Self {
        ForestPlot {
            rows,
            ..ForestPlot::default()
        }
    }
}

fn row_name(r: &ForestRow, i: usize) -> String {
    if r.label.trim().is_empty() {
        format!("row {}", i + 1)
    } else {
        format!("row \"{}\"", r.label)
    }
}

fn validate(f: &ForestPlot) -> Result<()> {
    f.style.validate(FIGURE)?;
    if f.rows.is_empty() {
        return Err(FigureError::new(format!(
            "{FIGURE}: there are no rows to draw"
        )));
    }
    if !f.reference.is_finite() || f.reference <= 0.0 {
        return Err(FigureError::new(format!(
            "{FIGURE}: the reference line must be a positive number on a log axis (got {})",
            f.reference
        )));
    }
    if let Some((lo, hi)) = f.x_range
        && !(lo.is_finite() && hi.is_finite() && lo > 0.0 && hi > lo)
    {
        return Err(FigureError::new(format!(
            "{FIGURE}: the axis range must be two positive numbers in increasing order (got {lo} to {hi})"
        )));
    }
    if f.decimals > 6 {
        return Err(FigureError::new(format!(
            "{FIGURE}: at most 6 decimals (got {})",
            f.decimals
        )));
    }
    for (i, r) in f.rows.iter().enumerate() {
        let err = |m: String| FigureError::new(format!("{FIGURE}: {}: {m}", row_name(r, i)));
        match (r.estimate, r.lower, r.upper) {
            (None, None, None) => {}
            (None, _, _) => return Err(err("has a confidence limit but no estimate".into())),
            (Some(_), None, _) | (Some(_), _, None) => {
                return Err(err("has an estimate but not both confidence limits".into()));
            }
            (Some(e), Some(lo), Some(hi)) => {
                if !e.is_finite() || e <= 0.0 {
                    let what = if e.is_finite() {
                        "not positive"
                    } else {
                        describe(e)
                    };
                    return Err(err(format!(
                        "the estimate {e} is {what}; a ratio on a log axis must be positive and finite"
                    )));
                }
                if lo.is_nan() || hi.is_nan() {
                    return Err(err("a confidence limit is NaN".into()));
                }
                if lo < 0.0 || lo.is_infinite() {
                    return Err(err(format!(
                        "the lower limit {lo} must be 0 or more and finite"
                    )));
                }
                if hi <= 0.0 {
                    return Err(err(format!("the upper limit {hi} must be positive")));
                }
                if lo > e * (1.0 + 1e-9) || hi < e * (1.0 - 1e-9) {
                    return Err(err(format!(
                        "the interval {lo} to {hi} does not contain the estimate {e}"
                    )));
                }
            }
        }
        if let Some(w) = r.weight
            && (!w.is_finite() || w <= 0.0)
        {
            return Err(err(format!("the weight {w} must be positive and finite")));
        }
        if f.square == SquareSize::ByWeight && r.estimate.is_some() && r.weight.is_none() {
            return Err(err(
                "squares are sized by weight, but this row has no weight".into(),
            ));
        }
    }
    Ok(())
}

fn format_bound(v: f64, decimals: usize) -> String {
    if v.is_infinite() {
        "\u{221E}".to_string()
    } else if v >= 1e5 {
        axis::format_log_tick(v)
    } else {
        axis::format_number(v, decimals)
    }
}

/// The mantissas used for ticks over `decades` decades.
fn mantissas(decades: f64) -> &'static [f64] {
    if decades <= 1.2 {
        &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0]
    } else if decades <= 2.5 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    }
}

/// Snap `v` down (or up) to the tick grid m × 10^k.
fn snap(v: f64, ms: &[f64], up: bool) -> f64 {
    let k = v.log10().floor() as i32;
    let mut grid: Vec<f64> = Vec::new();
    for kk in (k - 1)..=(k + 1) {
        for m in ms {
            grid.push(m * 10f64.powi(kk));
        }
    }
    let tol = 1e-9;
    if up {
        grid.into_iter()
            .filter(|g| *g >= v * (1.0 - tol))
            .fold(f64::INFINITY, f64::min)
    } else {
        grid.into_iter()
            .filter(|g| *g <= v * (1.0 + tol))
            .fold(0.0, f64::max)
    }
}

/// Automatic axis range: every estimate and the reference, and the confidence limits unless
/// one would stretch the axis more than 50-fold beyond the estimates (it then ends in an arrow).
fn auto_range(f: &ForestPlot) -> (f64, f64) {
    let ests: Vec<f64> = f.rows.iter().filter_map(|r| r.estimate).collect();
    let e_lo = ests.iter().copied().fold(f.reference, f64::min);
    let e_hi = ests.iter().copied().fold(f.reference, f64::max);
    let mut lo = e_lo;
    let mut hi = e_hi;
    for r in &f.rows {
        if let (Some(l), Some(u)) = (r.lower, r.upper) {
            if l > 0.0 {
                lo = lo.min(l.max(e_lo / 50.0));
            }
            if u.is_finite() {
                hi = hi.max(u.min(e_hi * 50.0));
            }
        }
    }
    let ms = mantissas((hi / lo).log10());
    (snap(lo, ms, false), snap(hi, ms, true))
}

fn arrow(canvas: &Canvas, tip: (f64, f64), leftwards: bool) -> Result<()> {
    let d = if leftwards { ARROW_LEN } else { -ARROW_LEN };
    canvas.polygon(
        &[
            tip,
            (tip.0 + d, tip.1 - ARROW_HALF),
            (tip.0 + d, tip.1 + ARROW_HALF),
        ],
        Rgb::BLACK,
        1.0,
    )
}

/// The columns, left to right: labels, the intervals' panel (`left`..`right`), the text
/// column (from `text_x`) and the p column (ending at `p_right`).
struct Columns {
    labels: Vec<String>,
    texts: Vec<Option<String>>,
    has_p: bool,
    left: f64,
    right: f64,
    text_x: f64,
    p_right: f64,
}

/// Vertical positions in pt: the header line, the rows (from `top`, `pitch` apart), the axis.
struct Vertical {
    header_y: f64,
    top: f64,
    pitch: f64,
    axis_y: f64,
    favours_h: f64,
    height: f64,
}

/// Draw a forest plot.
pub fn forest_plot(f: &ForestPlot) -> Result<String> {
    validate(f)?;
    let st = &f.style;
    let probe = Canvas::new(st.width, 100.0, st)?;
    let cap = probe.font(false).cap_height(st.font_size);
    let cap_t = probe.font(false).cap_height(st.title_size);
    let (x_lo, x_hi) = f.x_range.unwrap_or_else(|| auto_range(f));
    let ticks = ticks(x_lo, x_hi);
    let cols = columns(f, &probe)?;
    let v = vertical(f, cols.has_p, cap, cap_t)?;
    let canvas = Canvas::new(st.width, v.height, st)?;
    let panel = canvas.panel(
        (cols.left, cols.right),
        (v.top, v.axis_y),
        x_lo.log10()..x_hi.log10(),
        0.0..1.0,
    );
    draw_headers(f, &canvas, &cols, v.header_y)?;
    draw_axis(f, &canvas, &panel, &cols, &v, (x_lo, x_hi), &ticks)?;
    let max_weight = f.rows.iter().filter_map(|r| r.weight).fold(0.0, f64::max);
    for (i, r) in f.rows.iter().enumerate() {
        let y = v.top + (i as f64 + 0.5) * v.pitch;
        draw_row_text(f, &canvas, &cols, i, y)?;
        if let (Some(e), Some(lo), Some(hi)) = (r.estimate, r.lower, r.upper) {
            let x = |v: f64| panel.to_pt(v.log10(), 0.0).0;
            draw_interval(&canvas, &cols, (x_lo, x_hi), &x, (lo, hi), y)?;
            if e >= x_lo && e <= x_hi {
                let side = match f.square {
                    SquareSize::Fixed => FIXED_SQUARE,
                    SquareSize::ByWeight => {
                        let w = r.weight.unwrap_or(max_weight);
                        (MAX_SQUARE * (w / max_weight).sqrt()).max(MIN_SQUARE)
                    }
                };
                let cx = x(e);
                canvas.fill_rect(
                    (cx - side / 2.0, y - side / 2.0),
                    (cx + side / 2.0, y + side / 2.0),
                    Rgb::BLACK,
                    1.0,
                )?;
            }
        }
    }
    Ok(canvas.finish())
}

/// Tick values on the log axis from `x_lo` to `x_hi`.
fn ticks(x_lo: f64, x_hi: f64) -> Vec<f64> {
    let ms = mantissas((x_hi / x_lo).log10());
    let mut t: Vec<f64> = axis::log_breaks(x_lo, x_hi)
        .into_iter()
        .filter(|v| {
            let k = v.log10().floor();
            let m = v / 10f64.powf(k);
            ms.iter().any(|mm| (mm - m).abs() < 1e-6)
        })
        .collect();
    // Over many decades keep every second, third… power of ten (always including 1 when
    // it is on the axis) so that at most about 9 labels remain.
    if t.len() > 9 {
        let every = t.len().div_ceil(9);
        let anchor = t.iter().position(|v| (v - 1.0).abs() < 1e-9).unwrap_or(0);
        t = t
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i.abs_diff(anchor) % every == 0)
            .map(|(_, v)| v)
            .collect();
    }
    if t.len() < 2 {
        t = vec![x_lo, x_hi];
    }
    t
}

/// The text and label columns measured with the figure's fonts, and the panel between them;
/// an error if less than 100 pt remain for the intervals.
fn columns(f: &ForestPlot, probe: &Canvas) -> Result<Columns> {
    let st = &f.style;
    let fs = st.font_size;
    let (font, bold, italic) = (probe.font(false), probe.font(true), probe.italic_font());
    let texts: Vec<Option<String>> = f
        .rows
        .iter()
        .map(|r| {
            r.text
                .clone()
                .or_else(|| match (r.estimate, r.lower, r.upper) {
                    (Some(e), Some(l), Some(u)) => Some(format!(
                        "{} ({}\u{2013}{})",
                        axis::format_number(e, f.decimals),
                        format_bound(l, f.decimals),
                        format_bound(u, f.decimals)
                    )),
                    _ => None,
                })
        })
        .collect();
    let text_w = texts
        .iter()
        .flatten()
        .map(|t| font.width(t, fs))
        .chain(f.text_header.iter().map(|h| bold.width(h, fs)))
        .fold(0.0, f64::max);
    let p_w = f
        .rows
        .iter()
        .filter_map(|r| r.p.as_ref())
        .map(|p| font.width(p, fs))
        .chain(f.p_header.iter().map(|h| italic.width(h, fs)))
        .fold(0.0, f64::max);
    let has_p = f.rows.iter().any(|r| r.p.is_some());
    // Labels: truncated with an ellipsis beyond 32% of the width.
    let max_label = st.width * 0.32;
    let labels: Vec<String> = f
        .rows
        .iter()
        .map(|r| {
            let fnt = if r.bold { bold } else { font };
            fnt.truncate(&r.label, fs, max_label - f64::from(r.indent) * INDENT)
        })
        .collect();
    let label_w = f
        .rows
        .iter()
        .zip(&labels)
        .map(|(r, l)| f64::from(r.indent) * INDENT + if r.bold { bold } else { font }.width(l, fs))
        .chain(f.label_header.iter().map(|h| bold.width(h, fs)))
        .fold(0.0, f64::max);
    let p_right = st.width - MARGIN;
    let text_x = if has_p {
        p_right - p_w - 12.0 - text_w
    } else {
        p_right - text_w
    };
    let left = MARGIN + label_w + 12.0;
    let right = text_x - 14.0;
    if right - left < 100.0 {
        return Err(FigureError::new(format!(
            "{FIGURE}: the labels and text columns leave {:.0} pt for the intervals; \
             shorten the labels or widen the figure",
            (right - left).max(0.0)
        )));
    }
    Ok(Columns {
        labels,
        texts,
        has_p,
        left,
        right,
        text_x,
        p_right,
    })
}

/// Rows and axis from top to bottom; with a given figure height the rows share what the
/// headers and the axis leave (an error if that is less than 1.45 lines a row).
fn vertical(f: &ForestPlot, has_p: bool, cap: f64, cap_t: f64) -> Result<Vertical> {
    let st = &f.style;
    let (fs, ts) = (st.font_size, st.title_size);
    let has_header =
        f.label_header.is_some() || f.text_header.is_some() || (has_p && f.p_header.is_some());
    let header_y = MARGIN + 1.0;
    let top = if has_header {
        header_y + cap + 8.0
    } else {
        MARGIN + 2.0
    };
    let favours_h = if f.favours.is_some() { cap + 6.0 } else { 0.0 };
    let below = TICK + TICK_GAP + cap + 7.0 + favours_h + cap_t + ts * 0.25 + MARGIN + 2.0;
    let n = f.rows.len() as f64;
    let min_pitch = fs * 1.45;
    let pitch = match st.height {
        Some(h) => {
            let p = (h - top - below - 4.0) / n;
            if p < min_pitch {
                return Err(FigureError::new(format!(
                    "{FIGURE}: a height of {h} pt is too small for {} rows; allow at least {:.0} pt",
                    f.rows.len(),
                    top + below + 4.0 + n * min_pitch
                )));
            }
            p
        }
        None => fs * 1.8,
    };
    let rows_bottom = top + n * pitch;
    let axis_y = rows_bottom + 4.0;
    Ok(Vertical {
        header_y,
        top,
        pitch,
        axis_y,
        favours_h,
        height: axis_y + below,
    })
}

/// Column headers: label (bold), text (bold), p (italic, only with a p column).
fn draw_headers(f: &ForestPlot, canvas: &Canvas, cols: &Columns, header_y: f64) -> Result<()> {
    let fs = f.style.font_size;
    if let Some(h) = &f.label_header {
        canvas.text(
            h,
            (MARGIN, header_y),
            TextSpec::new(fs, HAlign::Left, VAlign::CapTop).bold(),
        )?;
    }
    if let Some(h) = &f.text_header {
        canvas.text(
            h,
            (cols.text_x, header_y),
            TextSpec::new(fs, HAlign::Left, VAlign::CapTop).bold(),
        )?;
    }
    if cols.has_p
        && let Some(h) = &f.p_header
    {
        canvas.text(
            h,
            (cols.p_right, header_y),
            TextSpec::new(fs, HAlign::Right, VAlign::CapTop).italic(),
        )?;
    }
    Ok(())
}

/// The reference line, the log axis, the "favours" words either side of the reference, and
/// the axis title.
fn draw_axis(
    f: &ForestPlot,
    canvas: &Canvas,
    panel: &Panel,
    cols: &Columns,
    v: &Vertical,
    (x_lo, x_hi): (f64, f64),
    ticks: &[f64],
) -> Result<()> {
    let (fs, ts) = (f.style.font_size, f.style.title_size);
    let x = |v: f64| panel.to_pt(v.log10(), 0.0).0;
    if f.reference > x_lo && f.reference < x_hi {
        canvas.line(
            (x(f.reference), v.top),
            (x(f.reference), v.axis_y),
            &axis::axis_stroke(),
        )?;
    }
    let tick_pts: Vec<(f64, String)> = ticks
        .iter()
        .map(|&t| (x(t), axis::format_log_tick(t)))
        .collect();
    let labels_bottom = bottom_axis(canvas, (cols.left, cols.right), v.axis_y, &tick_pts, fs)?;
    let mut title_top = labels_bottom + 7.0;
    if let Some((l, r)) = &f.favours {
        let xr = x(f.reference.clamp(x_lo, x_hi));
        let y = labels_bottom + 6.0;
        canvas.text(
            &format!("\u{2190} {l}"),
            (xr - 4.0, y),
            TextSpec::new(fs, HAlign::Right, VAlign::CapTop),
        )?;
        canvas.text(
            &format!("{r} \u{2192}"),
            (xr + 4.0, y),
            TextSpec::new(fs, HAlign::Left, VAlign::CapTop),
        )?;
        title_top += v.favours_h;
    }
    canvas.text(
        &f.x_label,
        ((cols.left + cols.right) / 2.0, title_top),
        TextSpec::new(ts, HAlign::Center, VAlign::CapTop),
    )
}

/// Row `i`'s label (indented, bold for a heading), text and p value at height `y`.
fn draw_row_text(f: &ForestPlot, canvas: &Canvas, cols: &Columns, i: usize, y: f64) -> Result<()> {
    let fs = f.style.font_size;
    let r = &f.rows[i];
    let mut spec = TextSpec::new(fs, HAlign::Left, VAlign::CapMiddle);
    if r.bold {
        spec = spec.bold();
    }
    canvas.text(
        &cols.labels[i],
        (MARGIN + f64::from(r.indent) * INDENT, y),
        spec,
    )?;
    if let Some(t) = &cols.texts[i] {
        canvas.text(
            t,
            (cols.text_x, y),
            TextSpec::new(fs, HAlign::Left, VAlign::CapMiddle),
        )?;
    }
    if cols.has_p
        && let Some(p) = &r.p
    {
        canvas.text(
            p,
            (cols.p_right, y),
            TextSpec::new(fs, HAlign::Right, VAlign::CapMiddle),
        )?;
    }
    Ok(())
}

/// The whisker from `lo` to `hi` at height `y`; a limit beyond the axis ends in an arrow at
/// the panel's edge.
fn draw_interval(
    canvas: &Canvas,
    cols: &Columns,
    (x_lo, x_hi): (f64, f64),
    x: &dyn Fn(f64) -> f64,
    (lo, hi): (f64, f64),
    y: f64,
) -> Result<()> {
    let clip_lo = lo < x_lo;
    let clip_hi = hi > x_hi;
    let a = if clip_lo { cols.left } else { x(lo) };
    let b = if clip_hi { cols.right } else { x(hi) };
    let whisker = Stroke::solid(Rgb::BLACK, WHISKER);
    let a_line = if clip_lo { a + ARROW_LEN } else { a };
    let b_line = if clip_hi { b - ARROW_LEN } else { b };
    if b_line > a_line {
        canvas.line((a_line, y), (b_line, y), &whisker)?;
    }
    if clip_lo {
        arrow(canvas, (a, y), true)?;
    }
    if clip_hi {
        arrow(canvas, (b, y), false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_snap_to_ticks() {
        let f = ForestPlot::new(vec![ForestRow::estimate("a", 1.58, 1.27, 1.99)]);
        assert_eq!(auto_range(&f), (1.0, 2.0));
        let f = ForestPlot::new(vec![
            ForestRow::estimate("a", 9.85, 5.4, 17.9),
            ForestRow::estimate("b", 0.74, 0.59, 0.93),
        ]);
        assert_eq!(auto_range(&f), (0.5, 20.0));
        // A limit at 0 or infinity does not stretch the axis.
        let f = ForestPlot::new(vec![ForestRow::estimate("a", 2.0, 0.0, f64::INFINITY)]);
        assert_eq!(auto_range(&f), (1.0, 2.0));
    }
}
