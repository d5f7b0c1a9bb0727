//! The typed manuscript as one self-contained HTML page: the same manuscript the PDF is typeset
//! from (prose, floats numbered as Typst numbers them, cross-references as links, footnotes, audit
//! links and appendices), citations and the reference list by hayagriva (`render::cite`).
//!
//! The page embeds its CSS, loads nothing from the network, reads well on a phone and prints.
//!
//! Why not Typst's own HTML export: in Typst 0.15 it is behind a feature flag and warns on every build
//! that it is incomplete and not for production; the article template's page layout, title block and
//! three-rule tables are layout constructs it drops, and images become base64 `<img>` rather than
//! inline SVG. Writing the page from the typed manuscript lets this module control it.

use std::fmt::Write;

use super::cite;
use crate::analysis::artifacts::{Align, Figure, Table};
use crate::diagnostics::Result;
use crate::document::ir::{
    Appendix, Block, CiteItem, Float, FloatBody, FrontMatter, Grid, Inline, LinkTarget, Manuscript,
    RefTarget,
};

/// The embedded style sheet of the page.
const STYLE: &str = include_str!("../../templates/manuscript.css");

/// The manuscript as one HTML page.
pub fn render(manuscript: &Manuscript) -> Result<Vec<u8>> {
    let mut w = Writer::default();
    let abstract_html = manuscript
        .abstract_blocks
        .as_ref()
        .map(|blocks| w.fragment(|w| w.blocks(blocks)));
    let mut body = w.fragment(|w| w.blocks(&manuscript.body));
    for appendix in &manuscript.appendices {
        body.push_str(&w.fragment(|w| w.appendix(appendix)));
    }
    let (cited, references) = match &manuscript.bibliography {
        Some(bib) if !w.groups.is_empty() => cite::render(bib, &w.groups)?,
        _ => (Vec::new(), None),
    };
    let fill = |html: &str| cite::fill_citations(html, &cited);
    let parts = Parts {
        abstract_html: abstract_html.map(|a| fill(&a)),
        body: fill(&body),
        notes: w.notes.iter().map(|n| fill(n)).collect(),
        references,
    };
    Ok(page(&manuscript.front, &parts).into_bytes())
}

/// The rendered parts of the page.
struct Parts {
    abstract_html: Option<String>,
    body: String,
    notes: Vec<String>,
    references: Option<String>,
}

#[derive(Default)]
struct Writer {
    out: String,
    /// Citation groups in reading order; the page holds `<!--galley-cite:N-->` for group N.
    groups: Vec<Vec<CiteItem>>,
    /// Footnotes in the order of their references (numbered from 1 across the manuscript, as Typst
    /// does).
    notes: Vec<String>,
}

impl Writer {
    /// What `f` writes, apart from the output so far.
    fn fragment(&mut self, f: impl FnOnce(&mut Writer)) -> String {
        let before = std::mem::take(&mut self.out);
        f(self);
        std::mem::replace(&mut self.out, before)
    }

    fn blocks(&mut self, blocks: &[Block]) {
        for block in blocks {
            self.block(block);
        }
    }

    fn block(&mut self, block: &Block) {
        match block {
            Block::Source(_) => {}
            Block::Heading { level, id, content } => self.heading(*level, id.as_deref(), content),
            Block::Para(content) => self.wrapped("<p>", content, "</p>\n"),
            Block::Plain(content) => self.inlines(content),
            Block::Quote(blocks) => {
                self.out.push_str("<blockquote>\n");
                self.blocks(blocks);
                self.out.push_str("</blockquote>\n");
            }
            Block::List { start, items } => {
                let (open, close) = match start {
                    None => ("<ul>\n".to_string(), "</ul>\n"),
                    Some(1) => ("<ol>\n".to_string(), "</ol>\n"),
                    Some(n) => (format!("<ol start=\"{n}\">\n"), "</ol>\n"),
                };
                self.out.push_str(&open);
                for item in items {
                    self.out.push_str("<li>");
                    self.blocks(item);
                    self.out.push_str("</li>\n");
                }
                self.out.push_str(close);
            }
            Block::Code { lang, text } => {
                let class = match lang.is_empty() {
                    true => String::new(),
                    false => format!(" class=\"language-{}\"", escape(lang)),
                };
                let _ = writeln!(self.out, "<pre><code{class}>{}</code></pre>", escape(text));
            }
            Block::Grid(grid) => self.grid(grid),
            Block::Rule => self.out.push_str("<hr />\n"),
            Block::Floats { floats, .. } => {
                for float in floats {
                    self.float(float);
                }
            }
        }
    }

    /// The manuscript's `#` is a section of the article: the title is the page's h1.
    fn heading(&mut self, level: u8, id: Option<&str>, content: &[Inline]) {
        let h = (level + 1).min(6);
        let id = id.map_or(String::new(), |id| format!(" id=\"{}\"", escape(id)));
        self.wrapped(&format!("<h{h}{id}>"), content, &format!("</h{h}>\n"));
    }

    fn grid(&mut self, grid: &Grid) {
        let align = |i: usize| align_class(grid.columns.get(i).map_or(Align::Left, |c| c.align));
        self.out
            .push_str("<div class=\"table-scroll\">\n<table class=\"grid\">\n<thead>\n<tr>");
        for (i, cell) in grid.header.iter().enumerate() {
            self.wrapped(&format!("<th class=\"{}\">", align(i)), cell, "</th>");
        }
        self.out.push_str("</tr>\n</thead>\n<tbody>\n");
        for row in &grid.rows {
            self.out.push_str("<tr>");
            for (i, cell) in row.iter().enumerate() {
                self.wrapped(&format!("<td class=\"{}\">", align(i)), cell, "</td>");
            }
            self.out.push_str("</tr>\n");
        }
        self.out.push_str("</tbody>\n</table>\n</div>\n");
    }

    fn float(&mut self, float: &Float) {
        let caption = self.fragment(|w| w.inlines(&float.caption));
        let html = match &float.body {
            FloatBody::Figure(figure) => figure_html(figure, float.number, &caption),
            FloatBody::Table(table) => {
                let notes: Vec<String> = float
                    .notes
                    .iter()
                    .map(|n| self.fragment(|w| w.inlines(n)))
                    .collect();
                table_html(table, float.number, &caption, &notes)
            }
        };
        self.out.push_str(&html);
    }

    fn appendix(&mut self, appendix: &Appendix) {
        let _ = writeln!(
            self.out,
            "<section class=\"appendix\" id=\"{}\">\n<h2>{}</h2>",
            escape(&appendix.id),
            escape(&appendix.title)
        );
        self.blocks(&appendix.blocks);
        self.out.push_str("</section>\n");
    }

    fn inlines(&mut self, inlines: &[Inline]) {
        for inline in inlines {
            self.inline(inline);
        }
    }

    fn wrapped(&mut self, open: &str, content: &[Inline], close: &str) {
        self.out.push_str(open);
        self.inlines(content);
        self.out.push_str(close);
    }

    fn inline(&mut self, inline: &Inline) {
        match inline {
            Inline::Text(text) => self.out.push_str(&escape(text)),
            Inline::Emph(c) => self.wrapped("<em>", c, "</em>"),
            Inline::Strong(c) => self.wrapped("<strong>", c, "</strong>"),
            Inline::Strike(c) => self.wrapped("<del>", c, "</del>"),
            Inline::Super(c) => self.wrapped("<sup>", c, "</sup>"),
            Inline::Sub(c) => self.wrapped("<sub>", c, "</sub>"),
            Inline::Mono(c) => self.wrapped("<code>", c, "</code>"),
            Inline::Unlinked(c) => self.inlines(c),
            Inline::Code(code) => {
                let _ = write!(self.out, "<code>{}</code>", escape(code));
            }
            Inline::SoftBreak => self.out.push('\n'),
            Inline::HardBreak => self.out.push_str("<br />\n"),
            Inline::Link { target, content } => {
                let href = match target {
                    LinkTarget::External(url) => url.clone(),
                    LinkTarget::Internal(label) => format!("#{label}"),
                };
                self.wrapped(&format!("<a href=\"{}\">", escape(&href)), content, "</a>");
            }
            Inline::Cite(items) => {
                self.groups.push(items.clone());
                let _ = write!(self.out, "<!--galley-cite:{}-->", self.groups.len() - 1);
            }
            Inline::Ref { label, target } => {
                let text = match target {
                    RefTarget::Float { kind, number } => format!("{}\u{a0}{number}", kind.name()),
                    RefTarget::Section { title } => title.clone(),
                };
                let _ = write!(
                    self.out,
                    "<a class=\"xref\" href=\"#{}\">{}</a>",
                    escape(label),
                    escape(&text)
                );
            }
            Inline::Note(blocks) => {
                let note = self.fragment(|w| w.blocks(blocks));
                self.notes.push(strip_paragraph(&note));
                let n = self.notes.len();
                let _ = write!(
                    self.out,
                    "<sup class=\"footnote-ref\"><a href=\"#fn-{n}\" id=\"fnref-{n}\">{n}</a></sup>"
                );
            }
            Inline::Value { text, trail, link } => match link {
                true => {
                    let _ = write!(
                        self.out,
                        "<a class=\"value\" href=\"#{}\">{}</a>",
                        crate::document::appendix::anchor(*trail),
                        escape(text)
                    );
                }
                false => self.out.push_str(&escape(text)),
            },
            Inline::Anchor(id) => {
                let _ = write!(self.out, "<span id=\"{}\"></span>", escape(id));
            }
        }
    }
}

/// `<p>x</p>\n` -> `x` (a one-paragraph note is inline).
fn strip_paragraph(html: &str) -> String {
    let t = html.trim();
    match t.strip_prefix("<p>").and_then(|r| r.strip_suffix("</p>")) {
        Some(inner) if !inner.contains("<p>") => inner.to_string(),
        _ => t.to_string(),
    }
}

/// Escape text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn figure_html(figure: &Figure, number: usize, caption: &str) -> String {
    let caption_id = format!("caption-{}", figure.name);
    let mut svg = figure.svg.trim();
    if let Some(start) = svg.find("<svg") {
        svg = &svg[start..];
    }
    let svg = svg.replacen(
        "<svg",
        &format!("<svg role=\"img\" aria-labelledby=\"{caption_id}\""),
        1,
    );
    let id = figure
        .label
        .as_ref()
        .map(|l| format!(" id=\"{}\"", escape(l)))
        .unwrap_or_default();
    let width = (figure.width * 100.0).clamp(1.0, 100.0);
    format!(
        "<figure class=\"figure\"{id}>\n<div class=\"figure-body\" style=\"max-width: {}%\">\n{svg}\n</div>\n<figcaption id=\"{caption_id}\"><span class=\"caption-label\">Figure {number}.</span> {caption}</figcaption>\n</figure>\n",
        (width * 10.0).round() / 10.0
    )
}

fn align_class(a: Align) -> &'static str {
    match a {
        Align::Left => "left",
        Align::Center => "center",
        Align::Right => "right",
    }
}

fn table_html(table: &Table, number: usize, caption: &str, notes: &[String]) -> String {
    let n = table.header.len().max(1);
    let align = |i: usize| align_class(table.align.get(i).copied().unwrap_or(Align::Left));
    let id = table
        .label
        .as_ref()
        .map(|l| format!(" id=\"{}\"", escape(l)))
        .unwrap_or_default();
    let mut s = format!(
        "<figure class=\"table\"{id}>\n<figcaption><span class=\"caption-label\">Table {number}.</span> {caption}</figcaption>\n<div class=\"table-scroll\">\n<table class=\"booktable\">\n<thead>\n"
    );
    if !table.groups.is_empty() {
        s.push_str("<tr class=\"groups\">");
        for g in &table.groups {
            match &g.label {
                Some(label) => {
                    let _ = write!(
                        s,
                        "<th colspan=\"{}\" class=\"group\">{}</th>",
                        g.span,
                        escape(label)
                    );
                }
                None => {
                    let _ = write!(s, "<th colspan=\"{}\"></th>", g.span);
                }
            }
        }
        s.push_str("</tr>\n");
    }
    s.push_str("<tr>");
    for (i, h) in table.header.iter().enumerate() {
        let _ = write!(s, "<th class=\"{}\">{}</th>", align(i), escape(h));
    }
    s.push_str("</tr>\n</thead>\n<tbody>\n");
    for row in &table.rows {
        if row.section {
            let text = row.cells.first().map_or("", |c| c.text.as_str());
            let _ = writeln!(
                s,
                "<tr class=\"section\"><td colspan=\"{n}\"><em>{}</em></td></tr>",
                escape(text)
            );
            continue;
        }
        s.push_str("<tr>");
        for i in 0..n {
            let text = row.cells.get(i).map_or("", |c| c.text.as_str());
            let indent = if i == 0 && row.indent > 0 {
                format!(" indent-{}", row.indent.min(3))
            } else {
                String::new()
            };
            let _ = write!(
                s,
                "<td class=\"{}{indent}\">{}</td>",
                align(i),
                escape(text)
            );
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table>\n</div>\n");
    if !notes.is_empty() {
        let _ = writeln!(
            s,
            "<div class=\"table-notes\">{}</div>",
            notes.join("<br>\n")
        );
    }
    s.push_str("</figure>\n");
    s
}

/// The whole page: title block, abstract, body, notes, references.
fn page(m: &FrontMatter, parts: &Parts) -> String {
    let mut s = head(m);
    s.push_str(&title_block(m, parts.abstract_html.as_deref()));
    s.push_str("</header>\n<main>\n");
    s.push_str(&parts.body);
    s.push_str("</main>\n");
    s.push_str(&back_matter(m, parts));
    s
}

/// `<head>`: title, metadata, the style sheet.
fn head(m: &FrontMatter) -> String {
    let title = escape(&m.title);
    let mut s = String::new();
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    s.push_str("<meta name=\"generator\" content=\"galley\">\n");
    let _ = writeln!(s, "<title>{title}</title>");
    if !m.authors.is_empty() {
        let names: Vec<&str> = m.authors.iter().map(|a| a.name.as_str()).collect();
        let _ = writeln!(
            s,
            "<meta name=\"author\" content=\"{}\">",
            escape(&names.join(", "))
        );
    }
    if !m.keywords.is_empty() {
        let _ = writeln!(
            s,
            "<meta name=\"keywords\" content=\"{}\">",
            escape(&m.keywords.join(", "))
        );
    }
    let _ = writeln!(s, "<style>\n{STYLE}</style>\n</head>\n<body>");
    s
}

/// The title block: venue, title, authors and affiliations, the data statement, the abstract and
/// the keywords.
fn title_block(m: &FrontMatter, abstract_html: Option<&str>) -> String {
    let title = escape(&m.title);
    let mut s = String::new();
    s.push_str("<article class=\"manuscript\">\n<header class=\"title-block\">\n");
    if let Some(venue) = &m.venue {
        let _ = writeln!(s, "<p class=\"venue\">{}</p>", escape(venue));
    }
    let _ = writeln!(s, "<h1 class=\"title\">{title}</h1>");
    if !m.authors.is_empty() {
        let authors: Vec<String> = m
            .authors
            .iter()
            .map(|a| {
                let marks: Vec<String> = a.affiliations.iter().map(usize::to_string).collect();
                let mut t = format!("<span class=\"author\">{}", escape(&a.name));
                if let Some(d) = &a.degrees {
                    let _ = write!(t, ", {}", escape(d));
                }
                if !marks.is_empty() {
                    let _ = write!(t, "<sup>{}</sup>", marks.join(","));
                }
                if a.corresponding {
                    t.push_str("<sup>*</sup>");
                }
                t.push_str("</span>");
                t
            })
            .collect();
        let _ = writeln!(s, "<p class=\"authors\">{}</p>", join_and(&authors));
    }
    if !m.affiliations.is_empty() {
        s.push_str("<ol class=\"affiliations\">\n");
        for a in &m.affiliations {
            let _ = writeln!(s, "<li>{}</li>", escape(a));
        }
        s.push_str("</ol>\n");
    }
    if let Some(a) = m.authors.iter().find(|a| a.corresponding) {
        let email = a
            .email
            .as_ref()
            .map(|e| format!(" (<a href=\"mailto:{}\">{}</a>)", escape(e), escape(e)))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "<p class=\"corresponding\"><sup>*</sup>Corresponding author: {}{email}</p>",
            escape(&a.name)
        );
    }
    if let Some(statement) = &m.data_statement {
        let _ = writeln!(s, "<p class=\"data-statement\">{}</p>", escape(statement));
    }
    if let Some(a) = abstract_html {
        let _ = writeln!(
            s,
            "<section class=\"abstract\">\n<h2>Abstract</h2>\n{a}</section>"
        );
    }
    if !m.keywords.is_empty() {
        let _ = writeln!(
            s,
            "<p class=\"keywords\"><strong>Keywords:</strong> {}</p>",
            escape(&m.keywords.join("; "))
        );
    }
    s
}

/// After the main text: notes, references, the colophon.
fn back_matter(m: &FrontMatter, parts: &Parts) -> String {
    let mut s = String::new();
    if !parts.notes.is_empty() {
        s.push_str("<section class=\"footnotes\">\n<h2>Notes</h2>\n<ol>\n");
        for (i, note) in parts.notes.iter().enumerate() {
            let n = i + 1;
            let _ = writeln!(
                s,
                "<li id=\"fn-{n}\">{note} <a class=\"backref\" href=\"#fnref-{n}\" aria-label=\"back to the text\">\u{21a9}\u{fe0e}</a></li>"
            );
        }
        s.push_str("</ol>\n</section>\n");
    }
    if let Some(r) = &parts.references {
        let _ = writeln!(
            s,
            "<section class=\"references\" id=\"references\">\n<h2>References</h2>\n{r}</section>"
        );
    }
    let cutoff = m
        .date
        .map(|c| format!(", data cutoff {c}"))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "<footer class=\"colophon\">Built by galley {} from the study <code>{}</code>{cutoff}. Every number in this report is computed from the data.</footer>",
        env!("CARGO_PKG_VERSION"),
        escape(&m.study)
    );
    s.push_str("</article>\n</body>\n</html>\n");
    s
}

/// "a", "a and b", "a, b, and c" (as the PDF's title page).
fn join_and(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        2 => format!("{}, and {}", items[0], items[1]),
        _ => format!(
            "{}, and {}",
            items[..items.len() - 1].join(", "),
            items[items.len() - 1]
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraph_wrapper_is_stripped_for_notes() {
        assert_eq!(strip_paragraph("<p>A <em>b</em>.</p>\n"), "A <em>b</em>.");
        assert_eq!(
            strip_paragraph("<p>a</p>\n<p>b</p>\n"),
            "<p>a</p>\n<p>b</p>"
        );
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
