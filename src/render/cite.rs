//! Citations and the reference list of the HTML page, formatted by hayagriva with the study's CSL
//! style: the library and styles Typst itself uses, so the numbers and the list match the PDF.

use std::fmt::Write;

use hayagriva::citationberg::{self, LocaleCode, Style};
use hayagriva::{
    BibliographyDriver, BibliographyRequest, CitationItem, CitationRequest, ElemChild,
    ElemChildren, ElemMeta, Formatting, SpecificLocator, TransparentLocator,
};

use super::html::escape;
use crate::diagnostics::{Diagnostic, Result};
use crate::document::ir::{Bibliography, CiteItem, CslStyle};

/// Render every citation group and the reference list with hayagriva, as Typst does, from the
/// cited entries the manuscript carries (the same the PDF's `references.*` holds).
pub fn render(
    bib: &Bibliography,
    groups: &[Vec<CiteItem>],
) -> Result<(Vec<String>, Option<String>)> {
    let unreadable = |why: String| {
        Diagnostic::error(format!(
            "the cited references (`{}`) could not be read: {why}",
            bib.file
        ))
    };
    let library = if bib.file.ends_with(".bib") {
        hayagriva::io::from_biblatex_str(&bib.text).map_err(|errors| {
            unreadable(
                errors
                    .iter()
                    .map(|e| format!("{e:?}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?
    } else {
        hayagriva::io::from_yaml_str(&bib.text).map_err(|e| unreadable(e.to_string()))?
    };
    let style = csl_style(&bib.style)?;
    let locales = locales();
    let locale = LocaleCode("en".into());
    let mut driver = BibliographyDriver::new();
    for group in groups {
        let items: Vec<CitationItem<hayagriva::Entry>> = group
            .iter()
            .filter_map(|c| {
                let entry = library.get(&c.key)?;
                let locator = c.supplement.as_ref().map(|_| {
                    SpecificLocator(
                        citationberg::taxonomy::Locator::Custom,
                        hayagriva::LocatorPayload::Transparent(TransparentLocator::new(())),
                    )
                });
                let purpose = c.prose.then_some(hayagriva::CitePurpose::Prose);
                Some(CitationItem::new(entry, locator, None, false, purpose))
            })
            .collect();
        driver.citation(CitationRequest::new(
            items,
            &style,
            Some(locale.clone()),
            locales,
            None,
        ));
    }
    let rendered = driver.finish(BibliographyRequest {
        style: &style,
        locale: Some(locale),
        locale_files: locales,
    });
    let citations = rendered
        .citations
        .iter()
        .zip(groups)
        .map(|(r, group)| {
            let keys: Vec<&str> = group.iter().map(|c| c.key.as_str()).collect();
            let supplements: Vec<Option<&str>> =
                group.iter().map(|c| c.supplement.as_deref()).collect();
            let mut s = String::new();
            if starts_superscript(&r.citation) {
                // Typst puts a weak space before a superscript citation, which eats the space
                // before it ("method [@x]" -> "method¹"); the marker tells `fill_citations`.
                s.push_str(SUPERSCRIPT);
            }
            s.push_str("<span class=\"citation\">");
            write_children(&mut s, &r.citation, &keys, &supplements, true);
            s.push_str("</span>");
            s
        })
        .collect();
    let references = rendered.bibliography.map(|bib| {
        let mut s = String::new();
        for item in &bib.items {
            let _ = write!(
                s,
                "<div class=\"reference\" id=\"ref-{}\">",
                escape(&item.key)
            );
            if let Some(first) = &item.first_field {
                s.push_str("<span class=\"reference-number\">");
                write_child(&mut s, first, &[], &[], false);
                s.push_str("</span>");
            }
            s.push_str("<span class=\"reference-body\">");
            write_children(&mut s, &item.content, &[], &[], false);
            s.push_str("</span></div>\n");
        }
        s
    });
    Ok((citations, references))
}

/// hayagriva's CSL locales, decoded once per process (about 40 ms each time; `watch --serve`
/// renders the HTML on every rebuild).
fn locales() -> &'static [citationberg::Locale] {
    static LOCALES: std::sync::OnceLock<Vec<citationberg::Locale>> = std::sync::OnceLock::new();
    LOCALES.get_or_init(hayagriva::archive::locales)
}

fn csl_style(style: &CslStyle) -> Result<citationberg::IndependentStyle> {
    let name = match style {
        CslStyle::File { file, text } => {
            return citationberg::IndependentStyle::from_xml(text).map_err(|e| {
                Diagnostic::error(format!("the CSL style `{file}` could not be read: {e}")).into()
            });
        }
        CslStyle::Named(name) => name,
    };
    match hayagriva::archive::ArchivedStyle::by_name(name).map(|s| s.get()) {
        Some(Style::Independent(style)) => Ok(style),
        _ => Err(Diagnostic::error(format!("unknown CSL style `{name}`"))
            .hint("use a style name Typst knows (`american-medical-association`, `vancouver`, ...) or a `.csl` file")
            .into()),
    }
}

fn write_children(
    s: &mut String,
    children: &ElemChildren,
    keys: &[&str],
    supplements: &[Option<&str>],
    trim_start: bool,
) {
    for (i, child) in children.0.iter().enumerate() {
        write_child(s, child, keys, supplements, trim_start && i == 0);
    }
}

fn write_child(
    s: &mut String,
    child: &ElemChild,
    keys: &[&str],
    supplements: &[Option<&str>],
    trim_start: bool,
) {
    match child {
        ElemChild::Text(f) => {
            let text = if trim_start {
                f.text.trim_start()
            } else {
                f.text.as_str()
            };
            formatted(s, &escape(text), &f.formatting);
        }
        ElemChild::Elem(elem) => {
            let block = matches!(
                elem.display,
                Some(citationberg::Display::Block | citationberg::Display::Indent)
            );
            let link = match elem.meta {
                Some(ElemMeta::Entry(i)) => keys.get(i).copied(),
                _ => None,
            };
            if block {
                s.push_str("<div>");
            }
            if let Some(key) = link {
                let _ = write!(s, "<a href=\"#ref-{}\">", escape(key));
            }
            write_children(s, &elem.children, keys, supplements, false);
            if link.is_some() {
                s.push_str("</a>");
            }
            if block {
                s.push_str("</div>");
            }
        }
        ElemChild::Markup(m) => s.push_str(&escape(m)),
        ElemChild::Link { text, url } => {
            let mut inner = String::new();
            formatted(&mut inner, &escape(&text.text), &text.formatting);
            // The bibliography's links were checked when it was read (`study::bibliography`); the
            // policy again here, as the PDF's show rule does, for whatever hayagriva links.
            match crate::study::links::external(url) {
                Ok(url) => {
                    let _ = write!(s, "<a href=\"{}\">{inner}</a>", escape(&url));
                }
                Err(_) => s.push_str(&inner),
            }
        }
        ElemChild::Transparent { cite_idx, format } => {
            let text = supplements.get(*cite_idx).copied().flatten().unwrap_or("");
            formatted(s, &escape(text), format);
        }
    }
}

fn formatted(s: &mut String, html: &str, f: &Formatting) {
    use citationberg::{FontStyle, FontVariant, FontWeight, TextDecoration, VerticalAlign};
    let mut open = String::new();
    let mut close = Vec::new();
    if f.font_style == FontStyle::Italic {
        open.push_str("<em>");
        close.push("</em>");
    }
    if f.font_variant == FontVariant::SmallCaps {
        open.push_str("<span class=\"smallcaps\">");
        close.push("</span>");
    }
    if f.font_weight == FontWeight::Bold {
        open.push_str("<strong>");
        close.push("</strong>");
    }
    if f.text_decoration == TextDecoration::Underline {
        open.push_str("<u>");
        close.push("</u>");
    }
    match f.vertical_align {
        VerticalAlign::Sup => {
            open.push_str("<sup>");
            close.push("</sup>");
        }
        VerticalAlign::Sub => {
            open.push_str("<sub>");
            close.push("</sub>");
        }
        _ => {}
    }
    s.push_str(&open);
    s.push_str(html);
    for c in close.iter().rev() {
        s.push_str(c);
    }
}

pub const SUPERSCRIPT: &str = "\u{0}sup\u{0}";

/// Whether a rendered citation begins with superscript text.
fn starts_superscript(children: &ElemChildren) -> bool {
    match children.0.first() {
        Some(ElemChild::Text(f)) => f.formatting.vertical_align == citationberg::VerticalAlign::Sup,
        Some(ElemChild::Elem(e)) => starts_superscript(&e.children),
        Some(ElemChild::Link { text, .. }) => {
            text.formatting.vertical_align == citationberg::VerticalAlign::Sup
        }
        Some(ElemChild::Transparent { format, .. }) => {
            format.vertical_align == citationberg::VerticalAlign::Sup
        }
        _ => false,
    }
}

pub fn fill_citations(html: &str, cited: &[String]) -> String {
    const OPEN: &str = "<!--galley-cite:";
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find("-->") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let index: Option<usize> = after[..end].parse().ok();
        if let Some(c) = index.and_then(|i| cited.get(i)) {
            match c.strip_prefix(SUPERSCRIPT) {
                Some(c) => {
                    let kept = out.trim_end_matches([' ', '\n', '\t']).len();
                    out.truncate(kept);
                    out.push_str(c);
                }
                None => out.push_str(c),
            }
        }
        rest = &after[end + 3..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_in_order() {
        let html = "a<!--galley-cite:1-->b<!--galley-cite:0-->c";
        assert_eq!(fill_citations(html, &["X".into(), "Y".into()]), "aYbXc");
    }

    #[test]
    fn superscript_citations_take_the_space_before_them() {
        let html = "method <!--galley-cite:0--> and";
        assert_eq!(
            fill_citations(html, &[format!("{SUPERSCRIPT}<sup>1</sup>")]),
            "method<sup>1</sup> and"
        );
    }
}
