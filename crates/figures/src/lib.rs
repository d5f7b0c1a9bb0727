//! galley's figures: plain input structs in, SVG text out.
//!
//! Four kinds, each a function from an input struct to SVG text:
//! [`kaplan_meier`] (curves with censor marks, confidence bands, legend, annotation and a
//! number-at-risk table), [`love_plot`], [`forest_plot`] and [`histogram`].
//!
//! Conventions shared by every figure:
//! - sizes are in points; the SVG is `width="…pt"` with a viewBox in points, so one SVG user
//!   unit is one point and typst places it at its natural size;
//! - all text uses [`Style::font_family`], one of the fonts typst embeds, and is measured with
//!   that font's real metrics (see `text.rs`); no system font is ever read;
//! - output is byte-for-byte deterministic: coordinates are written from integers in hundredths
//!   of a point, nothing random, no ids;
//! - inputs that cannot make a figure (NaN, infinities, inconsistent counts…) give a
//!   [`FigureError`] whose message names the figure, the row and the problem; nothing panics.
//!
//! How it is drawn: plotters maps data to the page (`Cartesian2d` panels) and draws every
//! element through its `DrawingBackend` trait, implemented here by `svg.rs`, which works in
//! hundredths of a point and writes points (plotters' own `SVGBackend` has whole-unit
//! coordinates and stroke widths, guesses text placement and has no dash patterns). Line
//! patterns are real `stroke-dasharray`s (see `canvas.rs` for why not `DashedLineSeries`).
//! Text is shaped with rustybuzz against the very font files typst embeds (`typst-assets`),
//! which is what usvg does when typst imports the SVG, so measured widths are the drawn ones.
//!
//! Checks: `tests/golden.rs` compares SVGs with `tests/snapshots/` (`GALLEY_BLESS=1` rewrites
//! them); `cargo run -p galley-figures --example gallery -- /tmp/gallery` writes every kind,
//! with the fonts and a fontconfig file for faithful previews with `rsvg-convert`.

use std::fmt;

use serde::{Deserialize, Serialize};

mod axis;
mod canvas;
mod forest;
mod histogram;
mod km;
mod love;
mod place;
pub mod samples;
mod svg;
mod text;

pub use forest::{ForestPlot, ForestRow, SquareSize, forest_plot};
pub use histogram::{Bins, Histogram, histogram};
pub use km::{Censor, KaplanMeier, KmGroup, KmStep, LegendPosition, SurvivalScale, kaplan_meier};
pub use love::{LoveOrder, LovePlot, LoveRow, love_plot};
pub use text::available_families;

/// Advance width in pt of `text` set in the regular face of `family` at `size` pt, as the
/// figures measure it (and as typst's SVG import will set it).
pub fn text_width(text: &str, size: f64, family: &str) -> Result<f64> {
    Ok(text::Font::new(family, text::Weight::Regular)?.width(text, size))
}

/// A figure could not be drawn. The message is written for the study's author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FigureError {
    pub message: String,
}

impl FigureError {
    pub fn new(message: impl Into<String>) -> Self {
        FigureError {
            message: message.into(),
        }
    }
}

impl fmt::Display for FigureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FigureError {}

pub type Result<T> = std::result::Result<T, FigureError>;

/// Typography and size shared by every figure kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Style {
    /// One of the families typst embeds: "Libertinus Serif" (default), "New Computer Modern",
    /// "DejaVu Sans Mono".
    pub font_family: String,
    /// Tick labels, legends, table cells, in pt.
    pub font_size: f64,
    /// Axis titles, in pt.
    pub title_size: f64,
    /// Figure width in pt (default 468 pt, a 6.5 in text block).
    pub width: f64,
    /// Figure height in pt; `None` lets each kind choose from its content.
    pub height: Option<f64>,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            font_family: "Libertinus Serif".to_string(),
            font_size: 8.0,
            title_size: 9.0,
            width: 468.0,
            height: None,
        }
    }
}

impl Style {
    pub(crate) fn validate(&self, figure: &str) -> Result<()> {
        text::check_family(&self.font_family)
            .map_err(|e| FigureError::new(format!("{figure}: {}", e.message)))?;
        let sizes = [
            ("font size", self.font_size, 4.0, 24.0),
            ("title size", self.title_size, 4.0, 24.0),
            ("width", self.width, 72.0, 2000.0),
        ];
        for (name, v, lo, hi) in sizes {
            if !v.is_finite() || v < lo || v > hi {
                return Err(FigureError::new(format!(
                    "{figure}: the {name} must be between {lo} and {hi} pt (got {v})"
                )));
            }
        }
        if let Some(h) = self.height
            && (!h.is_finite() || !(72.0..=2000.0).contains(&h))
        {
            return Err(FigureError::new(format!(
                "{figure}: the height must be between 72 and 2000 pt (got {h})"
            )));
        }
        Ok(())
    }
}

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    pub const BLACK: Rgb = Rgb(0, 0, 0);
    pub const WHITE: Rgb = Rgb(255, 255, 255);
}

/// The Okabe-Ito colour-blind-safe palette, in the order groups receive it (yellow, too pale
/// on white paper, is left out).
pub const PALETTE: [Rgb; 7] = [
    Rgb(0x00, 0x72, 0xB2), // blue
    Rgb(0xD5, 0x5E, 0x00), // vermillion
    Rgb(0x00, 0x9E, 0x73), // bluish green
    Rgb(0xCC, 0x79, 0xA7), // reddish purple
    Rgb(0xE6, 0x9F, 0x00), // orange
    Rgb(0x56, 0xB4, 0xE9), // sky blue
    Rgb(0x00, 0x00, 0x00), // black
];

/// Line patterns, in the order groups receive them, so that groups stay apart in greyscale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineStyle {
    Solid,
    Dashed,
    Dotted,
    DashDot,
    LongDash,
    LongDashDot,
}

pub const LINE_STYLES: [LineStyle; 6] = [
    LineStyle::Solid,
    LineStyle::Dashed,
    LineStyle::Dotted,
    LineStyle::DashDot,
    LineStyle::LongDash,
    LineStyle::LongDashDot,
];

pub(crate) fn check_finite(figure: &str, what: &str, v: f64) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(FigureError::new(format!(
            "{figure}: {what} is {} (only finite numbers can be drawn)",
            describe(v)
        )))
    }
}

pub(crate) fn describe(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "infinite"
    } else {
        "minus infinity"
    }
}
