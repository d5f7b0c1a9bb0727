//! A plotters drawing backend that writes SVG in points.
//!
//! Why not plotters' own `SVGBackend`: its coordinates and stroke widths are whole user units
//! (0.5 pt axes and 0.1 pt positions are impossible at 1 unit = 1 pt), it writes
//! `font-size = size / 1.24` and positions text with `dy="0.76em"` guesses, and it has no dash
//! patterns. This backend works in hundredths of a point (plotters still maps, clips nothing,
//! and draws every element) and writes each coordinate back in points with at most two decimals
//! from integers, so the output is byte-for-byte stable. Text is placed on its real baseline from
//! the embedded font's cap height, and every `<text>` names its font family.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;

use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
    FontStyle, FontTransform,
};

use crate::text::{Font, Weight};

/// Device units per point.
pub(crate) const UNITS: f64 = 100.0;

/// Points to device units.
pub(crate) fn dev(pt: f64) -> i32 {
    (pt * UNITS).round() as i32
}

/// Device units to a point value for the SVG: at most two decimals, no trailing zeros.
pub(crate) fn fmt_units(v: i32) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let (int, frac) = (a / 100, a % 100);
    if frac == 0 {
        format!("{sign}{int}")
    } else if frac % 10 == 0 {
        format!("{sign}{int}.{}", frac / 10)
    } else {
        format!("{sign}{int}.{frac:02}")
    }
}

/// Dash pattern and caps for the strokes drawn next. plotters' style has only colour and
/// width, so the canvas sets these around a draw call (see `Canvas::with_pen`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Pen {
    /// `stroke-dasharray` value in points, already formatted.
    pub dash: Option<String>,
    /// Round caps and joins (dotted and dash-dot patterns, whose dots are zero-length dashes).
    pub round: bool,
}

pub(crate) struct SvgBackend {
    size: (u32, u32),
    out: Rc<RefCell<String>>,
    pen: Rc<RefCell<Pen>>,
}

impl SvgBackend {
    pub(crate) fn new(size: (u32, u32), out: Rc<RefCell<String>>, pen: Rc<RefCell<Pen>>) -> Self {
        SvgBackend { size, out, pen }
    }
}

fn color_attr(c: BackendColor) -> String {
    let (r, g, b) = c.rgb;
    format!("#{r:02X}{g:02X}{b:02X}")
}

fn opacity(c: BackendColor) -> Option<String> {
    if c.alpha >= 1.0 {
        None
    } else {
        let milli = (c.alpha.clamp(0.0, 1.0) * 1000.0).round() as u32;
        let mut s = format!("0.{milli:03}");
        while s.ends_with('0') {
            s.pop();
        }
        Some(s)
    }
}

pub(crate) fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '&' => s.push_str("&amp;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&apos;"),
            c => s.push(c),
        }
    }
    s
}

fn points(path: impl IntoIterator<Item = BackendCoord>) -> String {
    let mut s = String::new();
    let mut last = None;
    for p in path {
        if last == Some(p) {
            continue;
        }
        if last.is_some() {
            s.push(' ');
        }
        let _ = write!(s, "{},{}", fmt_units(p.0), fmt_units(p.1));
        last = Some(p);
    }
    s
}

impl SvgBackend {
    fn stroke_attrs(&self, s: &mut String, color: BackendColor, width: u32) {
        let _ = write!(
            s,
            " fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"",
            color_attr(color),
            fmt_units(width as i32)
        );
        if let Some(o) = opacity(color) {
            let _ = write!(s, " stroke-opacity=\"{o}\"");
        }
        let pen = self.pen.borrow();
        if let Some(d) = &pen.dash {
            let _ = write!(s, " stroke-dasharray=\"{d}\"");
        }
        if pen.round {
            s.push_str(" stroke-linecap=\"round\" stroke-linejoin=\"round\"");
        }
    }

    fn fill_attrs(s: &mut String, color: BackendColor) {
        let _ = write!(s, " fill=\"{}\"", color_attr(color));
        if let Some(o) = opacity(color) {
            let _ = write!(s, " fill-opacity=\"{o}\"");
        }
    }

    fn push(&self, element: String) {
        let mut out = self.out.borrow_mut();
        out.push_str(&element);
        out.push('\n');
    }
}

impl DrawingBackend for SvgBackend {
    type ErrorType = std::fmt::Error;

    fn get_size(&self) -> (u32, u32) {
        self.size
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        Ok(())
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        Ok(())
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        if color.alpha == 0.0 {
            return Ok(());
        }
        let mut s = format!(
            "<rect x=\"{}\" y=\"{}\" width=\"0.01\" height=\"0.01\"",
            fmt_units(point.0),
            fmt_units(point.1)
        );
        Self::fill_attrs(&mut s, color);
        s.push_str("/>");
        self.push(s);
        Ok(())
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        if style.color().alpha == 0.0 {
            return Ok(());
        }
        let mut s = format!(
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"",
            fmt_units(from.0),
            fmt_units(from.1),
            fmt_units(to.0),
            fmt_units(to.1)
        );
        self.stroke_attrs(&mut s, style.color(), style.stroke_width());
        s.push_str("/>");
        self.push(s);
        Ok(())
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        if style.color().alpha == 0.0 {
            return Ok(());
        }
        let (x0, x1) = (
            upper_left.0.min(bottom_right.0),
            upper_left.0.max(bottom_right.0),
        );
        let (y0, y1) = (
            upper_left.1.min(bottom_right.1),
            upper_left.1.max(bottom_right.1),
        );
        let mut s = format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"",
            fmt_units(x0),
            fmt_units(y0),
            fmt_units(x1 - x0),
            fmt_units(y1 - y0)
        );
        if fill {
            Self::fill_attrs(&mut s, style.color());
        } else {
            self.stroke_attrs(&mut s, style.color(), style.stroke_width());
        }
        s.push_str("/>");
        self.push(s);
        Ok(())
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        if style.color().alpha == 0.0 {
            return Ok(());
        }
        let pts = points(path);
        if !pts.contains(' ') {
            return Ok(());
        }
        let mut s = format!("<polyline points=\"{pts}\"");
        self.stroke_attrs(&mut s, style.color(), style.stroke_width());
        s.push_str("/>");
        self.push(s);
        Ok(())
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        if style.color().alpha == 0.0 {
            return Ok(());
        }
        let mut s = format!(
            "<circle cx=\"{}\" cy=\"{}\" r=\"{}\"",
            fmt_units(center.0),
            fmt_units(center.1),
            fmt_units(radius as i32)
        );
        if fill {
            Self::fill_attrs(&mut s, style.color());
        } else {
            self.stroke_attrs(&mut s, style.color(), style.stroke_width());
        }
        s.push_str("/>");
        self.push(s);
        Ok(())
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        if style.color().alpha == 0.0 {
            return Ok(());
        }
        let mut s = format!("<polygon points=\"{}\"", points(path));
        Self::fill_attrs(&mut s, style.color());
        s.push_str("/>");
        self.push(s);
        Ok(())
    }

    /// Anchors: horizontal as usual; vertical `Top` puts the top of the capitals at the anchor,
    /// `Center` the middle of the capitals, `Bottom` the baseline.
    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let family = style.family();
        let family = family.as_str();
        let weight = match style.style() {
            FontStyle::Bold => Weight::Bold,
            FontStyle::Italic | FontStyle::Oblique => Weight::Italic,
            FontStyle::Normal => Weight::Regular,
        };
        let font = Font::new(family, weight)
            .map_err(|_| DrawingErrorKind::DrawingError(std::fmt::Error))?;
        let size_pt = style.size() / UNITS;
        let cap = dev(font.cap_height(size_pt));
        let shift = match style.anchor().v_pos {
            VPos::Top => cap,
            VPos::Center => (cap + 1) / 2,
            VPos::Bottom => 0,
        };
        let anchor = match style.anchor().h_pos {
            HPos::Left => "start",
            HPos::Center => "middle",
            HPos::Right => "end",
        };
        let (x, y) = pos;
        let mut s = format!(
            "<text x=\"{}\" y=\"{}\" font-family=\"{}\" font-size=\"{}\"",
            fmt_units(x),
            fmt_units(y + shift),
            escape(family),
            fmt_units(style.size().round() as i32)
        );
        match weight {
            Weight::Bold => s.push_str(" font-weight=\"bold\""),
            Weight::Italic => s.push_str(" font-style=\"italic\""),
            Weight::Regular => {}
        }
        if anchor != "start" {
            let _ = write!(s, " text-anchor=\"{anchor}\"");
        }
        Self::fill_attrs(&mut s, color);
        let angle = match style.transform() {
            FontTransform::Rotate90 => Some(90),
            FontTransform::Rotate180 => Some(180),
            FontTransform::Rotate270 => Some(-90),
            _ => None,
        };
        if let Some(a) = angle {
            let _ = write!(
                s,
                " transform=\"rotate({a} {} {})\"",
                fmt_units(x),
                fmt_units(y)
            );
        }
        let _ = write!(s, ">{}</text>", escape(text));
        self.push(s);
        Ok(())
    }

    fn estimate_text_size<TStyle: BackendTextStyle>(
        &self,
        text: &str,
        style: &TStyle,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let weight = match style.style() {
            FontStyle::Bold => Weight::Bold,
            FontStyle::Italic | FontStyle::Oblique => Weight::Italic,
            FontStyle::Normal => Weight::Regular,
        };
        let font = Font::new(style.family().as_str(), weight)
            .map_err(|_| DrawingErrorKind::DrawingError(std::fmt::Error))?;
        let size_pt = style.size() / UNITS;
        Ok((
            dev(font.width(text, size_pt)).max(0) as u32,
            dev(font.cap_height(size_pt)).max(0) as u32,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_format_stably() {
        assert_eq!(fmt_units(0), "0");
        assert_eq!(fmt_units(46800), "468");
        assert_eq!(fmt_units(50), "0.5");
        assert_eq!(fmt_units(1234), "12.34");
        assert_eq!(fmt_units(1205), "12.05");
        assert_eq!(fmt_units(-1205), "-12.05");
        assert_eq!(fmt_units(-5), "-0.05");
        assert_eq!(dev(0.125), 13);
    }
}
