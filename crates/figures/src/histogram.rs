//! Histogram of one numeric variable.

use serde::{Deserialize, Serialize};

use crate::axis::{self, TICK, TICK_GAP, bottom_axis, left_axis};
use crate::canvas::{Canvas, HAlign, Stroke, TextSpec, VAlign};
use crate::{FigureError, Result, Rgb, Style, check_finite};

const FIGURE: &str = "Histogram";
const MARGIN: f64 = 4.0;
const BAR: Rgb = Rgb(0xBD, 0xBD, 0xBD);
const MAX_BINS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Bins {
    /// Sturges' number of bins, rounded to a 1-2-5 width on a round grid.
    Auto,
    /// This many bins of equal width from the smallest to the largest value.
    Count(usize),
    /// Bins of this width on a grid of its multiples.
    Width(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Histogram {
    pub values: Vec<f64>,
    pub bins: Bins,
    pub x_label: String,
    pub y_label: String,
    pub style: Style,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            values: Vec::new(),
            bins: Bins::Auto,
            x_label: String::new(),
            y_label: "Number of patients".to_string(),
            style: Style::default(),
        }
    }
}

impl Histogram {
    pub fn new(values: Vec<f64>, x_label: &str) -> Self {
        Histogram {
            values,
            x_label: x_label.to_string(),
            ..Histogram::default()
        }
    }
}

/// Bin edges (ascending) for the values' range [lo, hi].
fn edges(bins: Bins, lo: f64, hi: f64, n: usize) -> Result<Vec<f64>> {
    let width_edges = |w: f64| -> Result<Vec<f64>> {
        let start = (lo / w).floor();
        let mut count = ((hi / w).floor() - start) as usize + 1;
        if (hi / w).fract() == 0.0 && hi > lo {
            // The largest value sits on an edge: it closes the last bin instead of opening one.
            count -= 1;
        }
        if count > MAX_BINS {
            return Err(FigureError::new(format!(
                "{FIGURE}: a bin width of {w} makes {count} bins (at most {MAX_BINS}); choose a wider bin"
            )));
        }
        Ok((0..=count).map(|i| (start + i as f64) * w).collect())
    };
    match bins {
        Bins::Width(w) => {
            check_finite(FIGURE, "the bin width", w)?;
            if w <= 0.0 {
                return Err(FigureError::new(format!(
                    "{FIGURE}: the bin width must be positive (got {w})"
                )));
            }
            width_edges(w)
        }
        Bins::Count(k) => {
            if k == 0 || k > MAX_BINS {
                return Err(FigureError::new(format!(
                    "{FIGURE}: the number of bins must be between 1 and {MAX_BINS} (got {k})"
                )));
            }
            if hi == lo {
                return Ok(vec![lo - 0.5, lo + 0.5]);
            }
            let w = (hi - lo) / k as f64;
            Ok((0..=k)
                .map(|i| if i == k { hi } else { lo + i as f64 * w })
                .collect())
        }
        Bins::Auto => {
            if hi == lo {
                return Ok(vec![lo - 0.5, lo + 0.5]);
            }
            let k = ((n as f64).log2().ceil() + 1.0).max(1.0) as usize;
            width_edges(axis::nice_step(hi - lo, k))
        }
    }
}

/// Counts per bin: [e_i, e_{i+1}), the last bin closed.
fn counts(values: &[f64], edges: &[f64]) -> Vec<usize> {
    let k = edges.len() - 1;
    let mut c = vec![0; k];
    for &v in values {
        let i = edges[1..].iter().position(|&e| v < e).unwrap_or(k - 1);
        c[i] += 1;
    }
    c
}

/// Draw a histogram.
pub fn histogram(h: &Histogram) -> Result<String> {
    h.style.validate(FIGURE)?;
    if h.values.is_empty() {
        return Err(FigureError::new(format!(
            "{FIGURE}: there are no values to draw"
        )));
    }
    for (i, &v) in h.values.iter().enumerate() {
        check_finite(FIGURE, &format!("value {}", i + 1), v)?;
    }
    let lo = h.values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = h.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e = edges(h.bins, lo, hi, h.values.len())?;
    let c = counts(&h.values, &e);
    let (e_lo, e_hi) = (e[0], e[e.len() - 1]);

    let st = &h.style;
    let (fs, ts) = (st.font_size, st.title_size);
    let probe = Canvas::new(st.width, 100.0, st)?;
    let font = probe.font(false);
    let cap = font.cap_height(fs);
    let cap_t = font.cap_height(ts);

    let max_count = c.iter().copied().max().unwrap_or(0).max(1) as f64;
    let y_step = axis::nice_step(max_count, 5).max(1.0);
    let y_max = (max_count / y_step).ceil() * y_step;
    let y_ticks: Vec<(f64, String)> = axis::breaks(0.0, y_max, y_step)
        .into_iter()
        .map(|b| (b, axis::format_number(b, 0)))
        .collect();
    let x_step = axis::nice_step(e_hi - e_lo, 8);
    let x_dec = axis::decimals(x_step);
    let x_ticks: Vec<(f64, String)> = axis::breaks(e_lo, e_hi, x_step)
        .into_iter()
        .map(|b| (b, axis::format_number(b, x_dec)))
        .collect();
    let pad = (e_hi - e_lo) * 0.02;

    let y_tick_w = y_ticks
        .iter()
        .map(|(_, s)| font.width(s, fs))
        .fold(0.0, f64::max);
    let left = MARGIN + cap_t + ts * 0.25 + 5.0 + y_tick_w + TICK_GAP + TICK;
    let right = st.width - MARGIN - x_ticks.last().map_or(0.0, |(_, s)| font.width(s, fs)) / 2.0;
    let top = 8.0;
    let below = TICK + TICK_GAP + cap + 7.0 + cap_t + ts * 0.25 + MARGIN;
    let height = st
        .height
        .unwrap_or((st.width * 0.4).clamp(140.0, 260.0) + top + below);
    let bottom = height - below;
    if bottom - top < 60.0 {
        return Err(FigureError::new(format!(
            "{FIGURE}: the height of {height} pt is too small"
        )));
    }
    let canvas = Canvas::new(st.width, height, st)?;
    let panel = canvas.panel(
        (left, right),
        (top, bottom),
        (e_lo - pad)..(e_hi + pad),
        0.0..y_max,
    );

    let outline = Stroke::solid(Rgb::BLACK, 0.4);
    for (i, &n) in c.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let a = panel.to_pt(e[i], 0.0);
        let b = panel.to_pt(e[i + 1], n as f64);
        canvas.fill_rect(a, b, BAR, 1.0)?;
        canvas.stroke_rect(a, b, &outline)?;
    }
    let xt: Vec<(f64, String)> = x_ticks
        .iter()
        .map(|(b, s)| (panel.to_pt(*b, 0.0).0, s.clone()))
        .collect();
    let yt: Vec<(f64, String)> = y_ticks
        .iter()
        .map(|(b, s)| (panel.to_pt(e_lo, *b).1, s.clone()))
        .collect();
    let labels_bottom = bottom_axis(&canvas, (left, right), bottom, &xt, fs)?;
    left_axis(&canvas, left, (bottom, top), &yt, fs)?;
    canvas.text(
        &h.x_label,
        ((left + right) / 2.0, labels_bottom + 7.0),
        TextSpec::new(ts, HAlign::Center, VAlign::CapTop),
    )?;
    canvas.text(
        &h.y_label,
        (MARGIN, (top + bottom) / 2.0),
        TextSpec::new(ts, HAlign::Center, VAlign::CapTop).vertical(),
    )?;
    Ok(canvas.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins() {
        assert_eq!(
            edges(Bins::Width(5.0), 41.0, 59.0, 10).unwrap(),
            vec![40.0, 45.0, 50.0, 55.0, 60.0]
        );
        assert_eq!(
            edges(Bins::Width(5.0), 40.0, 60.0, 10).unwrap(),
            vec![40.0, 45.0, 50.0, 55.0, 60.0]
        );
        assert_eq!(
            edges(Bins::Count(2), 0.0, 1.0, 10).unwrap(),
            vec![0.0, 0.5, 1.0]
        );
        assert_eq!(
            counts(&[40.0, 44.9, 45.0, 60.0], &[40.0, 45.0, 50.0, 55.0, 60.0]),
            vec![2, 1, 0, 1]
        );
        assert!(edges(Bins::Width(0.001), 0.0, 100.0, 10).is_err());
    }
}
