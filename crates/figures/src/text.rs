//! Fonts and text metrics.
//!
//! The PDF is typeset by typst, which embeds the SVG figures and lays their text out with
//! usvg, shaping it with rustybuzz against the fonts typst embeds (`typst-assets`). We measure
//! text the same way: the very same font bytes, shaped by the same shaper, so a label measured
//! here is the label drawn there (kerning and ligatures included). System fonts are never read.

use std::sync::OnceLock;

use rustybuzz::ttf_parser::name_id;
use rustybuzz::{Face, UnicodeBuffer};

use crate::FigureError;

/// Face of a run of text: the three the figures use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Weight {
    Regular,
    Bold,
    Italic,
}

struct FontFace {
    family: String,
    weight: u16,
    italic: bool,
    face: Face<'static>,
    units_per_em: f64,
    /// Height of capitals above the baseline, in em.
    cap_height: f64,
}

struct FontBook {
    faces: Vec<FontFace>,
}

fn find_name(face: &Face<'static>, id: u16) -> Option<String> {
    face.names()
        .into_iter()
        .filter(|n| n.name_id == id && n.is_unicode())
        .find_map(|n| n.to_string())
}

/// The family name typst gives a face (so the SVG's `font-family` is one typst resolves):
/// typst's own exceptions for New Computer Modern, else the family name without style words.
fn family_name(face: &Face<'static>) -> Option<String> {
    // No PostScript name: none of the exceptions applies; the family name below decides.
    let ps = find_name(face, name_id::POST_SCRIPT_NAME).unwrap_or_default();
    for (prefix, family) in [
        ("NewCMMath-", "New Computer Modern Math"),
        ("NewCM10-", "New Computer Modern"),
    ] {
        if ps.starts_with(prefix) {
            return Some(family.to_string());
        }
    }
    let mut family = find_name(face, name_id::FAMILY)?;
    const STYLE_WORDS: [&str; 6] = [
        " Regular",
        " Italic",
        " Bold",
        " Semibold",
        " SemiBold",
        " Book",
    ];
    while let Some(w) = STYLE_WORDS.iter().find(|w| family.ends_with(*w)) {
        family.truncate(family.len() - w.len());
    }
    Some(family)
}

fn book() -> &'static FontBook {
    static BOOK: OnceLock<FontBook> = OnceLock::new();
    BOOK.get_or_init(|| {
        let mut faces = Vec::new();
        for data in typst_assets::fonts() {
            let Some(face) = Face::from_slice(data, 0) else {
                continue;
            };
            let Some(family) = family_name(&face) else {
                continue;
            };
            let units_per_em = f64::from(face.units_per_em());
            let cap_height = face
                .capital_height()
                .map(f64::from)
                .unwrap_or(0.7 * units_per_em)
                / units_per_em;
            // No full name: the face's style flag alone tells italic.
            let full = find_name(&face, name_id::FULL_NAME)
                .unwrap_or_default()
                .to_lowercase();
            let italic =
                face.style() == rustybuzz::ttf_parser::Style::Italic || full.contains("italic");
            faces.push(FontFace {
                family,
                weight: face.weight().to_number(),
                italic,
                face,
                units_per_em,
                cap_height,
            });
        }
        FontBook { faces }
    })
}

/// The font families available to figures (those typst embeds), sorted, without duplicates.
pub fn available_families() -> Vec<String> {
    let mut names: Vec<String> = book().faces.iter().map(|f| f.family.clone()).collect();
    names.sort();
    names.dedup();
    names
}

/// Check that `family` is one of the embedded families, so the SVG never asks for a fallback.
pub(crate) fn check_family(family: &str) -> Result<(), FigureError> {
    if book().faces.iter().any(|f| f.family == family) {
        Ok(())
    } else {
        Err(FigureError::new(format!(
            "font family \"{family}\" is not one of the fonts embedded in the PDF ({})",
            available_families().join(", ")
        )))
    }
}

/// How far a face is from the wanted weight and slant (0 is exact).
fn distance(f: &FontFace, weight: Weight) -> u32 {
    let (target, italic) = match weight {
        Weight::Regular => (400, false),
        Weight::Bold => (700, false),
        Weight::Italic => (400, true),
    };
    u32::from(f.weight.abs_diff(target)) + if f.italic == italic { 0 } else { 10_000 }
}

fn face_for(family: &str, weight: Weight) -> Option<&'static FontFace> {
    book()
        .faces
        .iter()
        .filter(|f| f.family == family)
        .min_by_key(|f| distance(f, weight))
}

fn covers(face: &FontFace, c: char) -> bool {
    face.face.glyph_index(c).is_some()
}

fn shaped_width(face: &FontFace, text: &str) -> f64 {
    if text.is_empty() {
        return 0.0;
    }
    let mut buffer = UnicodeBuffer::new();
    buffer.push_str(text);
    let glyphs = rustybuzz::shape(&face.face, &[], buffer);
    let advance: i64 = glyphs
        .glyph_positions()
        .iter()
        .map(|p| i64::from(p.x_advance))
        .sum();
    advance as f64 / face.units_per_em
}

/// Text metrics of one family at one weight.
#[derive(Clone, Copy)]
pub(crate) struct Font {
    face: &'static FontFace,
    weight: Weight,
}

impl Font {
    /// The font for a family already checked with [`check_family`].
    pub(crate) fn new(family: &str, weight: Weight) -> Result<Font, FigureError> {
        check_family(family)?;
        let face = face_for(family, weight).ok_or_else(|| {
            FigureError::new(format!("font family \"{family}\" has no usable face"))
        })?;
        Ok(Font { face, weight })
    }

    /// Advance width of `text` at `size` pt, in pt. Characters the family lacks are measured in
    /// the first embedded font that has them, as typst's fallback would draw them.
    pub(crate) fn width(&self, text: &str, size: f64) -> f64 {
        let mut total = 0.0;
        let mut run = String::new();
        let mut run_face = self.face;
        for c in text.chars() {
            let face = if covers(self.face, c) {
                self.face
            } else {
                fallback_face(c, self.weight).unwrap_or(self.face)
            };
            if !std::ptr::eq(face, run_face) && !run.is_empty() {
                total += shaped_width(run_face, &run);
                run.clear();
            }
            run_face = face;
            run.push(c);
        }
        total += shaped_width(run_face, &run);
        total * size
    }

    /// Height of capitals (and lining figures) at `size` pt, in pt.
    pub(crate) fn cap_height(&self, size: f64) -> f64 {
        self.face.cap_height * size
    }

    /// Shorten `text` with a trailing ellipsis so that it fits `max_width`.
    pub(crate) fn truncate(&self, text: &str, size: f64, max_width: f64) -> String {
        if self.width(text, size) <= max_width {
            return text.to_string();
        }
        let chars: Vec<char> = text.chars().collect();
        let mut keep = chars.len();
        while keep > 0 {
            keep -= 1;
            let candidate: String = chars[..keep]
                .iter()
                .collect::<String>()
                .trim_end()
                .to_string();
            let candidate = format!("{candidate}\u{2026}");
            if self.width(&candidate, size) <= max_width {
                return candidate;
            }
        }
        "\u{2026}".to_string()
    }

    /// Break `text` at spaces into at most `max_lines` lines no wider than `max_width`; what
    /// does not fit ends the last line with an ellipsis. A word wider than a line is truncated.
    pub(crate) fn wrap(
        &self,
        text: &str,
        size: f64,
        max_width: f64,
        max_lines: usize,
    ) -> Vec<String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let mut lines: Vec<String> = Vec::new();
        let mut current = String::new();
        let mut i = 0;
        while i < words.len() {
            let word = words[i];
            let candidate = if current.is_empty() {
                word.to_string()
            } else {
                format!("{current} {word}")
            };
            if self.width(&candidate, size) <= max_width {
                current = candidate;
                i += 1;
                continue;
            }
            if current.is_empty() {
                // A single word wider than the line.
                current = self.truncate(word, size, max_width);
                i += 1;
            }
            lines.push(std::mem::take(&mut current));
            if lines.len() == max_lines {
                break;
            }
        }
        if !current.is_empty() && lines.len() < max_lines {
            lines.push(current);
        }
        if i < words.len() {
            // Words are left over: the last line ends with an ellipsis.
            let rest = words[i..].join(" ");
            // No line yet (the first word alone is too wide): the ellipsis starts an empty one.
            let last = lines.pop().unwrap_or_default();
            if last.ends_with('\u{2026}') {
                lines.push(last);
                return lines;
            }
            let joined = if last.is_empty() {
                rest
            } else {
                format!("{last} {rest}")
            };
            lines.push(self.truncate(&format!("{joined}\u{2026}"), size, max_width));
        }
        if lines.is_empty() {
            lines.push(String::new());
        }
        lines
    }
}

fn fallback_face(c: char, weight: Weight) -> Option<&'static FontFace> {
    book()
        .faces
        .iter()
        .filter(|f| covers(f, c))
        .min_by_key(|f| distance(f, weight))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_families_are_found() {
        let families = available_families();
        for f in [
            "Libertinus Serif",
            "New Computer Modern",
            "DejaVu Sans Mono",
        ] {
            assert!(
                families.iter().any(|x| x == f),
                "{f} missing from {families:?}"
            );
        }
        assert!(check_family("Arial").is_err());
    }

    #[test]
    fn metrics_are_real() {
        let mono = Font::new("DejaVu Sans Mono", Weight::Regular).unwrap();
        // DejaVu Sans Mono advances are 1233/2048 em.
        let w = mono.width("0123456789", 10.0);
        assert!((w - 10.0 * 10.0 * 1233.0 / 2048.0).abs() < 1e-9, "{w}");
        let serif = Font::new("Libertinus Serif", Weight::Regular).unwrap();
        assert!(serif.width("iiii", 8.0) < serif.width("MMMM", 8.0));
        let bold = Font::new("Libertinus Serif", Weight::Bold).unwrap();
        assert!(bold.width("Number at risk", 8.0) > serif.width("Number at risk", 8.0));
        let cap = serif.cap_height(10.0);
        assert!(cap > 5.5 && cap < 7.5, "{cap}");
    }

    #[test]
    fn wrap_and_truncate() {
        let f = Font::new("Libertinus Serif", Weight::Regular).unwrap();
        let lines = f.wrap(
            "Charlson comorbidity index at the time of surgery",
            8.0,
            90.0,
            2,
        );
        assert_eq!(lines.len(), 2);
        assert!(lines[1].ends_with('\u{2026}'));
        for l in &lines {
            assert!(f.width(l, 8.0) <= 90.0);
        }
        assert_eq!(f.wrap("Age", 8.0, 90.0, 2), vec!["Age".to_string()]);
        let t = f.truncate("Supercalifragilisticexpialidocious", 8.0, 40.0);
        assert!(t.ends_with('\u{2026}') && f.width(&t, 8.0) <= 40.0);
    }
}
