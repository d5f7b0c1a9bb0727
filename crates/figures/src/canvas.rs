//! A drawing surface in points over plotters: the root `DrawingArea` for page-like layout
//! (text, rules, table cells) and `Panel`s, plotters `Cartesian2d` areas in data coordinates
//! for what is plotted.

use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::svg::{Pen, SvgBackend, dev, fmt_units};
use crate::text::{Font, Weight};
use crate::{FigureError, LineStyle, Result, Rgb, Style};

fn color(c: Rgb, opacity: f64) -> RGBAColor {
    RGBAColor(c.0, c.1, c.2, opacity)
}

fn drawing<E: std::error::Error + Send + Sync>(e: E) -> FigureError {
    FigureError::new(format!("drawing failed: {e}"))
}

/// A stroke: colour, width in pt, pattern.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stroke {
    pub color: Rgb,
    pub width: f64,
    pub line: LineStyle,
    pub opacity: f64,
}

impl Stroke {
    pub fn solid(color: Rgb, width: f64) -> Stroke {
        Stroke {
            color,
            width,
            line: LineStyle::Solid,
            opacity: 1.0,
        }
    }

    pub fn styled(color: Rgb, width: f64, line: LineStyle) -> Stroke {
        Stroke {
            color,
            width,
            line,
            opacity: 1.0,
        }
    }

    fn shape(&self) -> ShapeStyle {
        ShapeStyle {
            color: color(self.color, self.opacity),
            filled: false,
            stroke_width: dev(self.width).max(1) as u32,
        }
    }

    /// The dash pattern as SVG `stroke-dasharray` (pt) and whether caps are round.
    ///
    /// Dashes are written as a real `stroke-dasharray` (typst's SVG import turns it into a PDF
    /// dash pattern) rather than with plotters 0.3.7's `DashedLineSeries`/`DashedPathElement`:
    /// those only know one dash length and one gap (no dash-dot), round every dash end to the
    /// device grid, and emit each dash as its own polyline, which breaks the line joins of a
    /// step curve into hundreds of pieces. Dots are near-zero dashes with round caps; lengths
    /// scale with the line width and already account for the caps.
    fn pen(&self) -> Pen {
        let k = self.width.max(0.6);
        let pattern: &[f64] = match self.line {
            LineStyle::Solid => return Pen::default(),
            LineStyle::Dashed => &[3.2, 2.6],
            LineStyle::Dotted => &[0.01, 2.0],
            LineStyle::DashDot => &[4.0, 2.3, 0.01, 2.3],
            LineStyle::LongDash => &[7.0, 2.6],
            LineStyle::LongDashDot => &[7.0, 2.3, 0.01, 2.3],
        };
        let dash = pattern
            .iter()
            .map(|v| fmt_units(dev(v * k).max(1)))
            .collect::<Vec<_>>()
            .join(" ");
        Pen {
            dash: Some(dash),
            round: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HAlign {
    Left,
    Center,
    Right,
}

/// Vertical text anchor: top or middle of the capitals, or the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VAlign {
    CapTop,
    CapMiddle,
    Baseline,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct TextSpec {
    pub size: f64,
    pub bold: bool,
    pub italic: bool,
    pub h: HAlign,
    pub v: VAlign,
    /// Rotated a quarter turn counter-clockwise (reads bottom to top).
    pub vertical: bool,
    pub color: Rgb,
}

impl TextSpec {
    pub fn new(size: f64, h: HAlign, v: VAlign) -> TextSpec {
        TextSpec {
            size,
            bold: false,
            italic: false,
            h,
            v,
            vertical: false,
            color: Rgb::BLACK,
        }
    }

    pub fn bold(mut self) -> TextSpec {
        self.bold = true;
        self
    }

    pub fn italic(mut self) -> TextSpec {
        self.italic = true;
        self
    }

    pub fn vertical(mut self) -> TextSpec {
        self.vertical = true;
        self
    }
}

pub(crate) struct Canvas {
    root: DrawingArea<SvgBackend, Shift>,
    out: Rc<RefCell<String>>,
    pen: Rc<RefCell<Pen>>,
    family: String,
    regular: Font,
    bold: Font,
    italic: Font,
}

impl Canvas {
    pub fn new(width: f64, height: f64, style: &Style) -> Result<Canvas> {
        let (w, h) = (dev(width), dev(height));
        let out = Rc::new(RefCell::new(format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}pt\" height=\"{}pt\" viewBox=\"0 0 {} {}\">\n\
             <rect width=\"{}\" height=\"{}\" fill=\"#FFFFFF\"/>\n",
            fmt_units(w),
            fmt_units(h),
            fmt_units(w),
            fmt_units(h),
            fmt_units(w),
            fmt_units(h),
        )));
        let pen = Rc::new(RefCell::new(Pen::default()));
        let backend = SvgBackend::new((w as u32, h as u32), out.clone(), pen.clone());
        Ok(Canvas {
            root: backend.into_drawing_area(),
            out,
            pen,
            family: style.font_family.clone(),
            regular: Font::new(&style.font_family, Weight::Regular)?,
            bold: Font::new(&style.font_family, Weight::Bold)?,
            italic: Font::new(&style.font_family, Weight::Italic)?,
        })
    }

    pub fn font(&self, bold: bool) -> Font {
        if bold { self.bold } else { self.regular }
    }

    pub fn italic_font(&self) -> Font {
        self.italic
    }

    /// Width of `text` in pt.
    pub fn measure(&self, text: &str, size: f64, bold: bool) -> f64 {
        self.font(bold).width(text, size)
    }

    fn with_pen<T>(&self, stroke: &Stroke, f: impl FnOnce() -> T) -> T {
        *self.pen.borrow_mut() = stroke.pen();
        let r = f();
        *self.pen.borrow_mut() = Pen::default();
        r
    }

    pub fn polyline(&self, pts: &[(f64, f64)], stroke: &Stroke) -> Result<()> {
        let path: Vec<(i32, i32)> = pts.iter().map(|&(x, y)| (dev(x), dev(y))).collect();
        self.with_pen(stroke, || {
            self.root
                .draw(&PathElement::new(path, stroke.shape()))
                .map_err(drawing)
        })
    }

    pub fn line(&self, a: (f64, f64), b: (f64, f64), stroke: &Stroke) -> Result<()> {
        self.polyline(&[a, b], stroke)
    }

    pub fn polygon(&self, pts: &[(f64, f64)], fill: Rgb, opacity: f64) -> Result<()> {
        let path: Vec<(i32, i32)> = pts.iter().map(|&(x, y)| (dev(x), dev(y))).collect();
        self.root
            .draw(&Polygon::new(path, color(fill, opacity).filled()))
            .map_err(drawing)
    }

    pub fn fill_rect(&self, a: (f64, f64), b: (f64, f64), fill: Rgb, opacity: f64) -> Result<()> {
        self.root
            .draw(&Rectangle::new(
                [(dev(a.0), dev(a.1)), (dev(b.0), dev(b.1))],
                color(fill, opacity).filled(),
            ))
            .map_err(drawing)
    }

    pub fn stroke_rect(&self, a: (f64, f64), b: (f64, f64), stroke: &Stroke) -> Result<()> {
        self.with_pen(stroke, || {
            self.root
                .draw(&Rectangle::new(
                    [(dev(a.0), dev(a.1)), (dev(b.0), dev(b.1))],
                    stroke.shape(),
                ))
                .map_err(drawing)
        })
    }

    pub fn circle(
        &self,
        c: (f64, f64),
        r: f64,
        fill: Option<Rgb>,
        stroke: Option<&Stroke>,
    ) -> Result<()> {
        let center = (dev(c.0), dev(c.1));
        let radius = dev(r).max(1);
        if let Some(f) = fill {
            self.root
                .draw(&Circle::new(center, radius, color(f, 1.0).filled()))
                .map_err(drawing)?;
        }
        if let Some(s) = stroke {
            self.with_pen(s, || {
                self.root
                    .draw(&Circle::new(center, radius, s.shape()))
                    .map_err(drawing)
            })?;
        }
        Ok(())
    }

    pub fn text(&self, text: &str, at: (f64, f64), spec: TextSpec) -> Result<()> {
        let h = match spec.h {
            HAlign::Left => HPos::Left,
            HAlign::Center => HPos::Center,
            HAlign::Right => HPos::Right,
        };
        let v = match spec.v {
            VAlign::CapTop => VPos::Top,
            VAlign::CapMiddle => VPos::Center,
            VAlign::Baseline => VPos::Bottom,
        };
        let font_style = if spec.bold {
            FontStyle::Bold
        } else if spec.italic {
            FontStyle::Italic
        } else {
            FontStyle::Normal
        };
        let text_color = color(spec.color, 1.0);
        let mut style = TextStyle::from(FontDesc::new(
            FontFamily::Name(&self.family),
            spec.size * crate::svg::UNITS,
            font_style,
        ))
        .pos(Pos::new(h, v))
        .color(&text_color);
        if spec.vertical {
            style = style.transform(FontTransform::Rotate270);
        }
        self.root
            .draw(&Text::new(text.to_string(), (dev(at.0), dev(at.1)), style))
            .map_err(drawing)
    }

    /// Width of text with `*emphasis*` (see [`emphasis_runs`]).
    pub fn rich_width(&self, text: &str, size: f64) -> f64 {
        emphasis_runs(text)
            .iter()
            .map(|(t, it)| {
                if *it {
                    self.italic.width(t, size)
                } else {
                    self.regular.width(t, size)
                }
            })
            .sum()
    }

    /// Text with `*emphasis*` in italics, as consecutive runs; `spec.h` is Left or Right.
    pub fn rich_text(&self, text: &str, at: (f64, f64), spec: TextSpec) -> Result<()> {
        let mut x = match spec.h {
            HAlign::Left => at.0,
            HAlign::Center => at.0 - self.rich_width(text, spec.size) / 2.0,
            HAlign::Right => at.0 - self.rich_width(text, spec.size),
        };
        // One baseline for all runs, from the regular face.
        let cap = self.regular.cap_height(spec.size);
        let baseline = match spec.v {
            VAlign::CapTop => at.1 + cap,
            VAlign::CapMiddle => at.1 + cap / 2.0,
            VAlign::Baseline => at.1,
        };
        for (t, italic) in emphasis_runs(text) {
            let font = if italic { self.italic } else { self.regular };
            let run = TextSpec {
                h: HAlign::Left,
                v: VAlign::Baseline,
                italic,
                ..spec
            };
            // SVG drops a text's leading and trailing spaces: place the visible part instead.
            let visible = t.trim();
            let lead = &t[..t.len() - t.trim_start().len()];
            if !visible.is_empty() {
                self.text(visible, (x + font.width(lead, spec.size), baseline), run)?;
            }
            x += font.width(&t, spec.size);
        }
        Ok(())
    }

    /// A plotting panel spanning `px` × `py` (pt; `py` from top to bottom) showing data
    /// ranges `xr` × `yr` (y upwards).
    pub fn panel(
        &self,
        px: (f64, f64),
        py: (f64, f64),
        xr: Range<f64>,
        yr: Range<f64>,
    ) -> Panel<'_> {
        let spec = Cartesian2d::<RangedCoordf64, RangedCoordf64>::new(
            xr,
            yr,
            (dev(px.0)..dev(px.1), dev(py.1)..dev(py.0)),
        );
        Panel {
            area: self.root.apply_coord_spec(spec),
            canvas: self,
        }
    }

    pub fn finish(self) -> String {
        drop(self.root);
        let mut s = self.out.borrow().clone();
        s.push_str("</svg>\n");
        s
    }
}

/// Split "Log-rank *p* = 0.03" into runs of (text, italic). A `*` without its partner is
/// kept as a literal asterisk.
pub(crate) fn emphasis_runs(text: &str) -> Vec<(String, bool)> {
    let parts: Vec<&str> = text.split('*').collect();
    let mut runs: Vec<(String, bool)> = Vec::new();
    let paired = parts.len() % 2 == 1;
    for (i, part) in parts.iter().enumerate() {
        let last_unpaired = !paired && i == parts.len() - 1;
        let italic = i % 2 == 1 && !last_unpaired;
        let mut piece = part.to_string();
        if last_unpaired {
            piece.insert(0, '*');
        }
        if piece.is_empty() {
            continue;
        }
        match runs.last_mut() {
            Some((t, it)) if *it == italic => t.push_str(&piece),
            _ => runs.push((piece, italic)),
        }
    }
    runs
}

type DataArea = DrawingArea<SvgBackend, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A plotters Cartesian area: data coordinates in, device coordinates out.
pub(crate) struct Panel<'a> {
    area: DataArea,
    canvas: &'a Canvas,
}

impl Panel<'_> {
    /// The point (pt) where data point `(x, y)` lands.
    pub fn to_pt(&self, x: f64, y: f64) -> (f64, f64) {
        let (dx, dy) = self.area.map_coordinate(&(x, y));
        (
            f64::from(dx) / crate::svg::UNITS,
            f64::from(dy) / crate::svg::UNITS,
        )
    }

    /// A path through data points.
    pub fn polyline(&self, pts: &[(f64, f64)], stroke: &Stroke) -> Result<()> {
        if pts.len() < 2 {
            return Ok(());
        }
        self.canvas.with_pen(stroke, || {
            self.area
                .draw(&PathElement::new(pts.to_vec(), stroke.shape()))
                .map_err(drawing)
        })
    }

    /// A filled polygon through data points.
    pub fn polygon(&self, pts: &[(f64, f64)], fill: Rgb, opacity: f64) -> Result<()> {
        if pts.len() < 3 {
            return Ok(());
        }
        self.area
            .draw(&Polygon::new(pts.to_vec(), color(fill, opacity).filled()))
            .map_err(drawing)
    }
}

#[cfg(test)]
mod tests {
    use super::emphasis_runs;

    #[test]
    fn emphasis() {
        let r = |v: &[(&str, bool)]| {
            v.iter()
                .map(|(t, i)| (t.to_string(), *i))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            emphasis_runs("Log-rank *p* = 0.03"),
            r(&[("Log-rank ", false), ("p", true), (" = 0.03", false)])
        );
        assert_eq!(emphasis_runs("plain"), r(&[("plain", false)]));
        assert_eq!(emphasis_runs("a * b"), r(&[("a * b", false)]));
        assert_eq!(
            emphasis_runs("*P* < 0.001"),
            r(&[("P", true), (" < 0.001", false)])
        );
    }
}
