//! The manuscript as one self-contained HTML page: the same rendered Markdown (templates applied) as the
//! PDF, through pulldown-cmark's HTML renderer, with each block's figures (inline SVG) and tables
//! inserted where the block stood, figures and tables numbered as Typst numbers them, cross-references
//! as links, and citations and the reference list rendered by hayagriva with the study's CSL style (the
//! library and styles Typst itself uses, so the numbers and the reference list match the PDF).
//!
//! The page embeds its CSS, loads nothing from the network, reads well on a phone and prints.
//!
//! Why not Typst's own HTML export: in Typst 0.15 it is behind a feature flag and warns on every build
//! that it is incomplete and not for production; the article template's page layout, title block and
//! three-rule tables are layout constructs it drops, and images become base64 `<img>` rather than
//! inline SVG. Rendering the Markdown directly keeps both outputs fed by the same source and lets this
//! module control the page.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use hayagriva::citationberg::{self, LocaleCode, Style};
use hayagriva::{
    BibliographyDriver, BibliographyRequest, CitationItem, CitationRequest, ElemChild,
    ElemChildren, ElemMeta, Formatting, SpecificLocator, TransparentLocator,
};
use minijinja::value::Value;
use pulldown_cmark::{CodeBlockKind, CowStr, Event, HeadingLevel, Parser, Tag, TagEnd};

use crate::analysis::artifacts::{Align, Figure, Table};
use crate::diagnostics::{Diagnostic, Failure, Location, Result};
use crate::document::template;
use crate::pipeline::{Prepared, template_context};
use crate::render::typst::{citation_group, citation_key};
use crate::study::Study;
use crate::study::manuscript::{BLOCK_MARKER, Document, markdown_options};

/// The embedded style sheet of the page.
const STYLE: &str = include_str!("../../templates/manuscript.css");

/// Render the study's manuscript as one HTML page.
pub fn render(prepared: &Prepared) -> Result<Vec<u8>> {
    let study = &prepared.study;
    let document = Document::parse(study.abstract_file.as_ref(), &study.manuscript_files)?;
    let env = template::environment(&study.manifest.format);
    let context = template_context(study, &prepared.analysis, prepared.cutoff);

    // 1. Prose templates, exactly as for the PDF.
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    for source in document.abstract_file.iter().chain(document.files.iter()) {
        // The same limits as the PDF's rendering of these templates (time, memory).
        let _watch = crate::study::limits::watch(study.limits.template_limit(
            format!("evaluating the templates of `{}`", source.relative),
            Some(Location::file(&source.file)),
        ));
        match template::render(
            &env,
            &source.relative,
            &source.template,
            &source.file,
            &context,
        ) {
            Ok(text) => sources.push((source, text)),
            Err(d) => problems.push(d),
        }
    }
    if !problems.is_empty() {
        return Err(Failure::new(problems));
    }

    // 2. Numbers of figures and tables (Typst counts each kind in document order), headings' text.
    let mut targets: HashMap<String, Target> = HashMap::new();
    let mut numbers: HashMap<(usize, char, usize), usize> = HashMap::new();
    let (mut figures, mut tables) = (0, 0);
    for (_, text) in &sources {
        let mut heading: Option<(String, String)> = None;
        for event in Parser::new_ext(text, markdown_options()) {
            match event {
                Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                    let Some(index) = marker_index(&info) else {
                        continue;
                    };
                    let Some(result) = document
                        .blocks
                        .get(index)
                        .and_then(|b| prepared.analysis.results.get(&b.id))
                    else {
                        continue;
                    };
                    for (i, figure) in result.artifacts.figures.iter().enumerate() {
                        figures += 1;
                        numbers.insert((index, 'f', i), figures);
                        if let Some(label) = &figure.label {
                            targets.insert(label.clone(), Target::Numbered("Figure", figures));
                        }
                    }
                    for (i, table) in result.artifacts.tables.iter().enumerate() {
                        tables += 1;
                        numbers.insert((index, 't', i), tables);
                        if let Some(label) = &table.label {
                            targets.insert(label.clone(), Target::Numbered("Table", tables));
                        }
                    }
                }
                Event::Start(Tag::Heading { id: Some(id), .. }) => {
                    heading = Some((id.to_string(), String::new()));
                }
                Event::Text(t) | Event::Code(t) => {
                    if let Some((_, text)) = &mut heading {
                        text.push_str(&t);
                    }
                }
                Event::End(TagEnd::Heading(_)) => {
                    if let Some((id, text)) = heading.take() {
                        targets.insert(id, Target::Section(text));
                    }
                }
                _ => {}
            }
        }
    }
    let citations: HashSet<String> = study
        .bibliography_index
        .as_ref()
        .map(|index| index.keys())
        .unwrap_or_default();

    // 3. The prose and the blocks, with citations as placeholders (numbered in reading order).
    let mut writer = Writer {
        document: &document,
        prepared,
        env: &env,
        context: &context,
        targets: &targets,
        citations: &citations,
        numbers: &numbers,
        groups: Vec::new(),
        notes: Vec::new(),
        problems: Vec::new(),
    };
    let mut abstract_html = None;
    let mut body = String::new();
    for (source, text) in &sources {
        let html = writer.markdown(text);
        if document
            .abstract_file
            .as_ref()
            .is_some_and(|a| std::ptr::eq(a, *source))
        {
            abstract_html = Some(html);
        } else {
            body.push_str(&html);
        }
    }
    if !writer.problems.is_empty() {
        return Err(Failure::new(writer.problems));
    }

    // 4. Citations and the reference list.
    let (cited, references) = match &study.bibliography {
        Some(bib) if !writer.groups.is_empty() => cite(prepared, bib, &writer.groups)?,
        _ => (Vec::new(), None),
    };
    let fill = |html: &str| fill_citations(html, &cited);
    let abstract_html = abstract_html.map(|a| fill(&a));
    let body = fill(&body);
    let notes: Vec<String> = writer.notes.iter().map(|n| fill(n)).collect();

    Ok(page(
        study,
        prepared,
        abstract_html.as_deref(),
        &body,
        &notes,
        references.as_deref(),
    )
    .into_bytes())
}

/// What a cross-reference points at.
enum Target {
    /// A figure or a table: "Figure 2".
    Numbered(&'static str, usize),
    /// A heading: journals do not number sections, so the link shows the heading's text.
    Section(String),
}

fn marker_index(info: &str) -> Option<usize> {
    let mut words = info.split_whitespace();
    (words.next() == Some(BLOCK_MARKER))
        .then(|| words.next().and_then(|n| n.parse().ok()))
        .flatten()
}

/// One citation as written: `[@key, p. 4]` or narrative `@key`.
struct Cite {
    key: String,
    supplement: Option<String>,
    prose: bool,
}

struct Writer<'a> {
    document: &'a Document,
    prepared: &'a Prepared,
    env: &'a minijinja::Environment<'static>,
    context: &'a Value,
    targets: &'a HashMap<String, Target>,
    citations: &'a HashSet<String>,
    numbers: &'a HashMap<(usize, char, usize), usize>,
    /// Citation groups in reading order; the page holds `<!--galley-cite:N-->` for group N.
    groups: Vec<Vec<Cite>>,
    /// Footnotes in the order of their references (numbered from 1 across the manuscript, as Typst does).
    notes: Vec<String>,
    problems: Vec<Diagnostic>,
}

type Events = Vec<Event<'static>>;

impl Writer<'_> {
    /// A Markdown text (one file, or a caption) as HTML.
    fn markdown(&mut self, text: &str) -> String {
        let mut definitions: HashMap<String, Events> = HashMap::new();
        let mut main: Events = Vec::new();
        let mut open: Option<(String, Events, usize)> = None;
        for event in Parser::new_ext(text, markdown_options()) {
            let event = event.into_static();
            match (&mut open, event) {
                (None, Event::Start(Tag::FootnoteDefinition(label))) => {
                    open = Some((label.to_string(), Vec::new(), 0));
                }
                (Some((_, inner, depth)), Event::Start(Tag::FootnoteDefinition(l))) => {
                    *depth += 1;
                    inner.push(Event::Start(Tag::FootnoteDefinition(l)));
                }
                (Some((_, inner, depth)), Event::End(TagEnd::FootnoteDefinition)) if *depth > 0 => {
                    *depth -= 1;
                    inner.push(Event::End(TagEnd::FootnoteDefinition));
                }
                (Some(_), Event::End(TagEnd::FootnoteDefinition)) => {
                    if let Some((label, inner, _)) = open.take() {
                        definitions.insert(label, inner);
                    }
                }
                (Some((_, inner, _)), event) => inner.push(event),
                (None, event) => main.push(event),
            }
        }
        self.events(main, &definitions)
    }

    /// Inline Markdown (a caption, a note) as inline HTML.
    fn inline(&mut self, text: &str) -> String {
        strip_paragraph(&self.markdown(text))
    }

    fn events(&mut self, events: Events, definitions: &HashMap<String, Events>) -> String {
        let mut out: Events = Vec::with_capacity(events.len());
        let mut pending = String::new();
        let mut in_code = false;
        let mut skip = 0usize;
        let mut unlinked = false;
        for event in events {
            if skip > 0 {
                // Inside a block marker's (empty) fence.
                if matches!(event, Event::End(TagEnd::CodeBlock)) {
                    skip -= 1;
                }
                continue;
            }
            if !matches!(event, Event::Text(_)) && !pending.is_empty() {
                let text = std::mem::take(&mut pending);
                self.text(&text, &mut out);
            }
            match event {
                Event::Text(text) if in_code => out.push(Event::Text(text)),
                Event::Text(text) => pending.push_str(&text),
                Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info)))
                    if marker_index(&info).is_some() =>
                {
                    let index = marker_index(&info).unwrap_or(usize::MAX);
                    let html = self.block(index);
                    if !html.is_empty() {
                        out.push(Event::Html(html.into()));
                    }
                    skip = 1;
                }
                Event::Start(Tag::CodeBlock(kind)) => {
                    in_code = true;
                    out.push(Event::Start(Tag::CodeBlock(kind)));
                }
                Event::End(TagEnd::CodeBlock) => {
                    in_code = false;
                    out.push(Event::End(TagEnd::CodeBlock));
                }
                // The manuscript's `#` is a section of the article: the title is the page's h1.
                Event::Start(Tag::Heading {
                    level,
                    id,
                    classes,
                    attrs,
                }) => out.push(Event::Start(Tag::Heading {
                    level: deeper(level),
                    id,
                    classes,
                    attrs,
                })),
                Event::End(TagEnd::Heading(level)) => {
                    out.push(Event::End(TagEnd::Heading(deeper(level))))
                }
                // Raw HTML prints literally, as in the PDF (comments are dropped).
                Event::Start(Tag::HtmlBlock) | Event::End(TagEnd::HtmlBlock) => {}
                Event::Html(html) => {
                    let t = html.trim();
                    if !t.is_empty() && !t.starts_with("<!--") {
                        out.push(Event::Html(format!("<p>{}</p>\n", escape(&html)).into()));
                    }
                }
                Event::InlineHtml(html) => {
                    if !html.trim().starts_with("<!--") {
                        out.push(Event::Text(html));
                    }
                }
                Event::InlineMath(m) | Event::DisplayMath(m) => out.push(Event::Text(m)),
                // A link in the prose goes through the link policy (`links.rs`, the same as the
                // PDF's, where the refusal is reported): a `javascript:`, `data:` or `file:` link,
                // a relative one or a `#label` the page lacks keeps its text, unlinked. Links are
                // not nested in Markdown, so one flag is enough.
                Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    title,
                    id,
                }) => match crate::study::links::prose(link_type, &dest_url) {
                    Ok(crate::study::links::Target::External(url)) => {
                        out.push(Event::Start(Tag::Link {
                            link_type: pulldown_cmark::LinkType::Inline,
                            dest_url: url.into(),
                            title,
                            id,
                        }))
                    }
                    Ok(crate::study::links::Target::Fragment(label))
                        if self.targets.contains_key(&label) =>
                    {
                        out.push(Event::Start(Tag::Link {
                            link_type: pulldown_cmark::LinkType::Inline,
                            dest_url: format!("#{label}").into(),
                            title,
                            id,
                        }))
                    }
                    _ => unlinked = true,
                },
                Event::End(TagEnd::Link) if unlinked => unlinked = false,
                // Images in the prose are an error of the build (figures come from blocks).
                Event::Start(Tag::Image { .. }) => skip_image(&mut out),
                Event::FootnoteReference(label) => {
                    let note = match definitions.get(label.as_ref()) {
                        Some(inner) => strip_paragraph(&self.events(inner.clone(), definitions)),
                        None => escape(&format!("[^{label}]")),
                    };
                    self.notes.push(note);
                    let n = self.notes.len();
                    out.push(Event::InlineHtml(
                        format!(
                            "<sup class=\"footnote-ref\"><a href=\"#fn-{n}\" id=\"fnref-{n}\">{n}</a></sup>"
                        )
                        .into(),
                    ));
                }
                other => out.push(other),
            }
        }
        if !pending.is_empty() {
            self.text(&pending, &mut out);
        }
        // Drop what an image left open (its alt text and end tag).
        let out = drop_images(out);
        let mut html = String::new();
        pulldown_cmark::html::push_html(&mut html, out.into_iter());
        html
    }

    /// Text with `[@key]`, `[@a; @b, p. 4]`, `@key` and `@fig:x` recognised (as the Typst converter does).
    fn text(&mut self, text: &str, out: &mut Events) {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut plain = String::new();
        let mut i = 0;
        let flush = |plain: &mut String, out: &mut Events| {
            if !plain.is_empty() {
                out.push(Event::Text(CowStr::from(std::mem::take(plain))));
            }
        };
        while i < chars.len() {
            let (pos, c) = chars[i];
            if c == '['
                && chars.get(i + 1).is_some_and(|&(_, n)| n == '@')
                && let Some(close) = text[pos..].find(']')
                && let Some(keys) = citation_group(&text[pos + 1..pos + close])
            {
                flush(&mut plain, out);
                let mut group = Vec::new();
                for (key, supplement) in keys {
                    self.reference(key, supplement, false, &mut group, out);
                }
                self.close_group(group, out);
                let end = pos + close + 1;
                while i < chars.len() && chars[i].0 < end {
                    i += 1;
                }
                continue;
            }
            if c == '@' && (i == 0 || !chars[i - 1].1.is_alphanumeric()) {
                let key = citation_key(&text[pos + 1..]);
                if !key.is_empty() {
                    flush(&mut plain, out);
                    let mut group = Vec::new();
                    self.reference(key.to_string(), None, true, &mut group, out);
                    self.close_group(group, out);
                    let end = pos + 1 + key.len();
                    while i < chars.len() && chars[i].0 < end {
                        i += 1;
                    }
                    continue;
                }
            }
            plain.push(c);
            i += 1;
        }
        flush(&mut plain, out);
    }

    /// A cross-reference becomes a link now; a citation joins the current group.
    fn reference(
        &mut self,
        key: String,
        supplement: Option<String>,
        prose: bool,
        group: &mut Vec<Cite>,
        out: &mut Events,
    ) {
        if let Some(target) = self.targets.get(&key) {
            // Citations before a cross-reference in the same brackets stay together, as in Typst.
            self.close_group(std::mem::take(group), out);
            let text = match target {
                Target::Numbered(kind, n) => format!("{kind}\u{a0}{n}"),
                Target::Section(text) => text.clone(),
            };
            out.push(Event::InlineHtml(
                format!(
                    "<a class=\"xref\" href=\"#{}\">{}</a>",
                    escape(&key),
                    escape(&text)
                )
                .into(),
            ));
        } else if self.citations.contains(&key) {
            group.push(Cite {
                key,
                supplement,
                prose,
            });
        } else {
            // Reported by the Typst converter; shown literally.
            out.push(Event::Text(format!("@{key}").into()));
        }
    }

    fn close_group(&mut self, group: Vec<Cite>, out: &mut Events) {
        if group.is_empty() {
            return;
        }
        self.groups.push(group);
        out.push(Event::InlineHtml(
            format!("<!--galley-cite:{}-->", self.groups.len() - 1).into(),
        ));
    }

    /// The figures and tables of block `index`, as the Typst manuscript places them.
    fn block(&mut self, index: usize) -> String {
        let Some(block) = self.document.blocks.get(index) else {
            return String::new();
        };
        let Some(result) = self.prepared.analysis.results.get(&block.id) else {
            return String::new();
        };
        let location = Location::line(&block.file, block.line);
        let mut html = String::new();
        for (i, figure) in result.artifacts.figures.iter().enumerate() {
            let n = self.numbers.get(&(index, 'f', i)).copied().unwrap_or(0);
            if let Some(caption) = self.caption(&figure.caption, &location) {
                html.push_str(&figure_html(figure, n, &caption));
            }
        }
        for (i, table) in result.artifacts.tables.iter().enumerate() {
            let n = self.numbers.get(&(index, 't', i)).copied().unwrap_or(0);
            let caption = self.caption(&table.caption, &location);
            let notes: Vec<String> = table
                .notes
                .iter()
                .filter_map(|note| self.caption(note, &location))
                .collect();
            if let Some(caption) = caption {
                html.push_str(&table_html(table, n, &caption, &notes));
            }
        }
        html
    }

    fn caption(&mut self, text: &str, location: &Location) -> Option<String> {
        let _watch = crate::study::limits::watch(
            self.prepared
                .study
                .limits
                .template_limit("evaluating a caption or a note", Some(location.clone())),
        );
        match template::render_inline(self.env, text, self.context, location) {
            Ok(rendered) => Some(self.inline(&rendered)),
            Err(d) => {
                self.problems.push(d);
                None
            }
        }
    }
}

fn deeper(level: HeadingLevel) -> HeadingLevel {
    match level {
        HeadingLevel::H1 => HeadingLevel::H2,
        HeadingLevel::H2 => HeadingLevel::H3,
        HeadingLevel::H3 => HeadingLevel::H4,
        HeadingLevel::H4 => HeadingLevel::H5,
        _ => HeadingLevel::H6,
    }
}

/// Mark the start of an image; `drop_images` removes it with its alt text.
fn skip_image(out: &mut Events) {
    out.push(Event::Start(Tag::Image {
        link_type: pulldown_cmark::LinkType::Inline,
        dest_url: "".into(),
        title: "".into(),
        id: "".into(),
    }));
}

fn drop_images(events: Events) -> Events {
    let mut out = Vec::with_capacity(events.len());
    let mut depth = 0usize;
    for event in events {
        match event {
            Event::Start(Tag::Image { .. }) => depth += 1,
            Event::End(TagEnd::Image) => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            other => out.push(other),
        }
    }
    out
}

/// `<p>x</p>\n` -> `x` (a caption or a one-paragraph note is inline).
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

/// Render every citation group and the reference list with hayagriva, as Typst does.
/// The entries are those the Typst manuscript got: the cited subset, its links checked
/// (`bibliography.rs`), as the build wrote it to `references.*`.
fn cite(
    prepared: &Prepared,
    bib: &crate::study::InputFile,
    groups: &[Vec<Cite>],
) -> Result<(Vec<String>, Option<String>)> {
    let study = &prepared.study;
    let format = crate::study::bibliography::Format::of(&bib.relative);
    let name = format!("references.{}", format.extension());
    let text =
        std::str::from_utf8(prepared.files.get(&name).unwrap_or_default()).unwrap_or_default();
    let yaml = format == crate::study::bibliography::Format::Yaml;
    let library = if yaml {
        hayagriva::io::from_yaml_str(text).map_err(|e| {
            Diagnostic::error(format!("the bibliography could not be read: {e}"))
                .in_file(&bib.display)
        })?
    } else {
        hayagriva::io::from_biblatex_str(text).map_err(|errors| {
            Diagnostic::error(format!(
                "the bibliography could not be read: {}",
                errors
                    .iter()
                    .map(|e| format!("{e:?}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
            .in_file(&bib.display)
        })?
    };
    let style = csl_style(study)?;
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

fn csl_style(study: &Study) -> Result<citationberg::IndependentStyle> {
    if let Some(file) = &study.csl_file {
        let text = file.text()?;
        return citationberg::IndependentStyle::from_xml(text).map_err(|e| {
            Diagnostic::error(format!("the CSL style could not be read: {e}"))
                .in_file(&file.display)
                .into()
        });
    }
    let name = &study.manifest.manuscript.csl;
    match hayagriva::archive::ArchivedStyle::by_name(name).map(|s| s.get()) {
        Some(Style::Independent(style)) => Ok(style),
        _ => Err(Diagnostic::error(format!("unknown CSL style `{name}`"))
            .in_file(&study.manifest_file.display)
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
            // The bibliography's links were checked when it was read (`bibliography.rs`); the
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

const SUPERSCRIPT: &str = "\u{0}sup\u{0}";

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

fn fill_citations(html: &str, cited: &[String]) -> String {
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

/// The whole page: title block, abstract, body, notes, references.
fn page(
    study: &Study,
    prepared: &Prepared,
    abstract_html: Option<&str>,
    body: &str,
    notes: &[String],
    references: Option<&str>,
) -> String {
    let m = &study.manifest;
    let title = escape(&m.study.title);
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
    if !m.study.keywords.is_empty() {
        let _ = writeln!(
            s,
            "<meta name=\"keywords\" content=\"{}\">",
            escape(&m.study.keywords.join(", "))
        );
    }
    let _ = writeln!(s, "<style>\n{STYLE}</style>\n</head>\n<body>");
    s.push_str("<article class=\"manuscript\">\n<header class=\"title-block\">\n");
    if let Some(venue) = &m.study.venue {
        let _ = writeln!(s, "<p class=\"venue\">{}</p>", escape(venue));
    }
    let _ = writeln!(s, "<h1 class=\"title\">{title}</h1>");
    let keys: Vec<&String> = m.affiliations.keys().collect();
    if !m.authors.is_empty() {
        let authors: Vec<String> = m
            .authors
            .iter()
            .map(|a| {
                let marks: Vec<String> = a
                    .affiliations
                    .iter()
                    .filter_map(|k| {
                        keys.iter()
                            .position(|x| *x == k)
                            .map(|i| (i + 1).to_string())
                    })
                    .collect();
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
        for a in m.affiliations.values() {
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
    if let Some(statement) = &m.study.data_statement {
        let _ = writeln!(s, "<p class=\"data-statement\">{}</p>", escape(statement));
    }
    if let Some(a) = abstract_html {
        let _ = writeln!(
            s,
            "<section class=\"abstract\">\n<h2>Abstract</h2>\n{a}</section>"
        );
    }
    if !m.study.keywords.is_empty() {
        let _ = writeln!(
            s,
            "<p class=\"keywords\"><strong>Keywords:</strong> {}</p>",
            escape(&m.study.keywords.join("; "))
        );
    }
    s.push_str("</header>\n<main>\n");
    s.push_str(body);
    s.push_str("</main>\n");
    if !notes.is_empty() {
        s.push_str("<section class=\"footnotes\">\n<h2>Notes</h2>\n<ol>\n");
        for (i, note) in notes.iter().enumerate() {
            let n = i + 1;
            let _ = writeln!(
                s,
                "<li id=\"fn-{n}\">{note} <a class=\"backref\" href=\"#fnref-{n}\" aria-label=\"back to the text\">\u{21a9}\u{fe0e}</a></li>"
            );
        }
        s.push_str("</ol>\n</section>\n");
    }
    if let Some(r) = references {
        let _ = writeln!(
            s,
            "<section class=\"references\" id=\"references\">\n<h2>References</h2>\n{r}</section>"
        );
    }
    let cutoff = prepared
        .cutoff
        .map(|c| format!(", data cutoff {c}"))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "<footer class=\"colophon\">Built by galley {} from the study <code>{}</code>{cutoff}. Every number in this report is computed from the data.</footer>",
        env!("CARGO_PKG_VERSION"),
        escape(&study.name)
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

    #[test]
    fn paragraph_wrapper_is_stripped_for_captions() {
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
