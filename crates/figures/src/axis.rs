//! Axis breaks, tick labels and drawing of plain L-shaped axes.

use crate::Result;
use crate::Rgb;
use crate::canvas::{Canvas, HAlign, Stroke, TextSpec, VAlign};

/// Axis and tick line width, pt.
pub(crate) const AXIS_WIDTH: f64 = 0.5;
/// Tick length (outwards), pt.
pub(crate) const TICK: f64 = 3.0;
/// Gap between a tick's end and its label, pt.
pub(crate) const TICK_GAP: f64 = 2.0;

pub(crate) fn axis_stroke() -> Stroke {
    Stroke::solid(Rgb::BLACK, AXIS_WIDTH)
}

/// The smallest step of the form {1, 2, 5} × 10^k that cuts `span` into at most
/// `max_intervals` intervals.
pub(crate) fn nice_step(span: f64, max_intervals: usize) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / max_intervals.max(1) as f64;
    let mut k = raw.log10().floor() as i32 - 1;
    loop {
        let mag = 10f64.powi(k);
        for m in [1.0, 2.0, 5.0] {
            let step = m * mag;
            if span / step <= max_intervals as f64 + 1e-9 {
                return step;
            }
        }
        k += 1;
    }
}

/// A break interval for a time axis: calendar-friendly steps for months (…, 3, 6, 12, 24),
/// weeks and days, 1-2-5 × 10^k otherwise; the smallest that makes at most `max_intervals`.
pub(crate) fn time_step(span: f64, unit: Option<&str>, max_intervals: usize) -> f64 {
    let unit = unit.unwrap_or("").trim().to_lowercase();
    let steps: &[f64] = if unit.starts_with("month") {
        &[1.0, 2.0, 3.0, 6.0, 12.0, 24.0, 36.0, 60.0, 120.0]
    } else if unit.starts_with("week") {
        &[1.0, 2.0, 4.0, 8.0, 13.0, 26.0, 52.0, 104.0]
    } else if unit.starts_with("day") {
        &[1.0, 2.0, 7.0, 14.0, 30.0, 60.0, 90.0, 180.0, 365.0, 730.0]
    } else {
        &[]
    };
    steps
        .iter()
        .copied()
        .find(|s| span / s <= max_intervals as f64 + 1e-9)
        .unwrap_or_else(|| nice_step(span, max_intervals))
}

/// Multiples of `step` from `lo` to `hi` inclusive (with a little tolerance at both ends).
pub(crate) fn breaks(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let eps = step * 1e-9;
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last)
        .map(|i| {
            let v = i as f64 * step;
            // Snap values such as 0.30000000000000004 back onto the decimal grid.
            let d = decimals(step) as i32;
            let p = 10f64.powi(d);
            let snapped = (v * p).round() / p;
            if (snapped - v).abs() <= eps {
                snapped
            } else {
                v
            }
        })
        .collect()
}

/// Decimals needed to write multiples of `step` exactly (at most 6).
pub(crate) fn decimals(step: f64) -> usize {
    for d in 0..=6 {
        let scaled = step * 10f64.powi(d as i32);
        if (scaled - scaled.round()).abs() < 1e-6 * scaled.abs().max(1.0) {
            return d;
        }
    }
    6
}

/// A number with `decimals` decimals, a true minus sign, and no "-0".
pub(crate) fn format_number(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let negative_zero = s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.');
    if negative_zero {
        s[1..].to_string()
    } else if let Some(rest) = s.strip_prefix('-') {
        format!("\u{2212}{rest}")
    } else {
        s
    }
}

/// Tick values for a log axis covering [lo, hi] (both > 0): the 1-2-5 sequence when the
/// range spans at most two decades, powers of ten beyond, and at least two ticks.
pub(crate) fn log_breaks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = (hi / lo).log10();
    let mantissas: &[f64] = if decades <= 1.2 {
        &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0]
    } else if decades <= 2.5 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let k0 = lo.log10().floor() as i32 - 1;
    let k1 = hi.log10().ceil() as i32 + 1;
    let mut out = Vec::new();
    for k in k0..=k1 {
        for m in mantissas {
            let v = m * 10f64.powi(k);
            let v = round_sig(v);
            if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                out.push(v);
            }
        }
    }
    out
}

fn round_sig(v: f64) -> f64 {
    let k = v.log10().floor() as i32;
    let p = 10f64.powi(6 - k);
    (v * p).round() / p
}

/// Label for a log-axis tick: as few decimals as the value needs; powers of ten with
/// superscript exponents below 0.001 and from 100 000 on.
pub(crate) fn format_log_tick(v: f64) -> String {
    if (1e-3..1e5).contains(&v) {
        return format_number(v, decimals(v));
    }
    let k = v.log10().floor() as i32;
    let m = v / 10f64.powi(k);
    let sup: String = k
        .to_string()
        .chars()
        .map(|c| match c {
            '-' => '\u{207B}',
            d => [
                '\u{2070}', '\u{00B9}', '\u{00B2}', '\u{00B3}', '\u{2074}', '\u{2075}', '\u{2076}',
                '\u{2077}', '\u{2078}', '\u{2079}',
            ][d.to_digit(10).unwrap_or(0) as usize],
        })
        .collect();
    if (m - 1.0).abs() < 1e-9 {
        format!("10{sup}")
    } else {
        format!("{}\u{00D7}10{sup}", format_number(m, decimals(m).min(2)))
    }
}

/// Bottom axis: a line from `x0` to `x1` at `y`, ticks downwards at `ticks` (pt x, label).
/// Returns the y (pt) of the bottom of the tick labels' capitals.
pub(crate) fn bottom_axis(
    canvas: &Canvas,
    (x0, x1): (f64, f64),
    y: f64,
    ticks: &[(f64, String)],
    size: f64,
) -> Result<f64> {
    canvas.line((x0, y), (x1, y), &axis_stroke())?;
    let label_top = y + TICK + TICK_GAP;
    for (x, label) in ticks {
        canvas.line((*x, y), (*x, y + TICK), &axis_stroke())?;
        canvas.text(
            label,
            (*x, label_top),
            TextSpec::new(size, HAlign::Center, VAlign::CapTop),
        )?;
    }
    Ok(label_top + canvas.font(false).cap_height(size))
}

/// Left axis: a line from `y0` (bottom) to `y1` (top) at `x`, ticks leftwards at `ticks`
/// (pt y, label). Returns the x (pt) of the left end of the widest tick label.
pub(crate) fn left_axis(
    canvas: &Canvas,
    x: f64,
    (y0, y1): (f64, f64),
    ticks: &[(f64, String)],
    size: f64,
) -> Result<f64> {
    canvas.line((x, y0), (x, y1), &axis_stroke())?;
    let label_right = x - TICK - TICK_GAP;
    let mut widest: f64 = 0.0;
    for (y, label) in ticks {
        canvas.line((x - TICK, *y), (x, *y), &axis_stroke())?;
        canvas.text(
            label,
            (label_right, *y),
            TextSpec::new(size, HAlign::Right, VAlign::CapMiddle),
        )?;
        widest = widest.max(canvas.measure(label, size, false));
    }
    Ok(label_right - widest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_five() {
        assert_eq!(nice_step(60.0, 7), 10.0);
        assert_eq!(nice_step(36.0, 7), 10.0);
        assert_eq!(nice_step(5.0, 7), 1.0);
        assert_eq!(nice_step(1800.0, 7), 500.0);
        assert_eq!(nice_step(1.0, 5), 0.2);
        assert_eq!(nice_step(0.37, 5), 0.1);
    }

    #[test]
    fn time_steps_follow_the_unit() {
        assert_eq!(time_step(36.0, Some("months"), 7), 6.0);
        assert_eq!(time_step(60.0, Some("Months"), 7), 12.0);
        assert_eq!(time_step(1800.0, Some("days"), 7), 365.0);
        assert_eq!(time_step(10.0, Some("years"), 7), 2.0);
        assert_eq!(time_step(600.0, Some("months"), 7), 120.0);
        assert_eq!(time_step(6000.0, Some("months"), 7), 1000.0);
    }

    #[test]
    fn breaks_are_clean() {
        assert_eq!(breaks(0.0, 1.0, 0.2), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(
            breaks(0.0, 65.0, 12.0),
            vec![0.0, 12.0, 24.0, 36.0, 48.0, 60.0]
        );
        assert_eq!(breaks(0.0, 0.3, 0.1), vec![0.0, 0.1, 0.2, 0.3]);
    }

    #[test]
    fn numbers_format() {
        assert_eq!(format_number(-0.0001, 2), "0.00");
        assert_eq!(format_number(-1.5, 1), "\u{2212}1.5");
        assert_eq!(format_number(0.30000000000000004, 1), "0.3");
        assert_eq!(decimals(0.25), 2);
        assert_eq!(decimals(12.0), 0);
        assert_eq!(format_log_tick(0.5), "0.5");
        assert_eq!(format_log_tick(2.0), "2");
        assert_eq!(format_log_tick(1e-12), "10\u{207B}\u{00B9}\u{00B2}");
        assert_eq!(format_log_tick(1e6), "10\u{2076}");
        assert_eq!(format_log_tick(0.001), "0.001");
    }

    #[test]
    fn log_ticks() {
        assert_eq!(log_breaks(0.5, 2.0), vec![0.5, 0.7, 1.0, 1.5, 2.0]);
        assert_eq!(log_breaks(0.2, 5.0), vec![0.2, 0.5, 1.0, 2.0, 5.0]);
        assert_eq!(log_breaks(0.01, 100.0), vec![0.01, 0.1, 1.0, 10.0, 100.0]);
    }
}
