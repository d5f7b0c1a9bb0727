//! Filled-in Markdown -> the typed manuscript's blocks (`ir`). pulldown-cmark parses; this module
//! maps its events to blocks and inlines, once, for every renderer.
//!
//! What Markdown does not know is recognised here: citations (`[@key]`, `[@a; @b, p. 4]`, narrative
//! `@key`) and cross-references (`@fig:km`, `@sec-methods`) in text, checked against the
//! bibliography and the manuscript's labels; the marks around each value a template printed
//! (`document::trail::instrument`) become reported values; the marker fence of an analysis block
//! becomes the floats that block made; links go through the link policy (`study::links`).

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Parser, Tag, TagEnd};

use super::ir::{Block, CiteItem, Column, FloatKind, Grid, Inline, LinkTarget, RefTarget, Width};
use super::trail::{MARK_END, MARK_SEP, MARK_START};
use crate::analysis::artifacts::Align;
use crate::diagnostics::Diagnostic;
use crate::study::manuscript::{BLOCK_MARKER, markdown_options};

/// What references in the text may point to.
pub struct Targets<'a> {
    /// Labels of figures and tables (`fig:km`), with their kind.
    pub floats: &'a HashMap<String, FloatKind>,
    /// Labels of headings (`{#sec-x}`).
    pub sections: &'a HashSet<String>,
    /// Keys of the bibliography.
    pub citations: &'a HashSet<String>,
    /// Deepest nesting of Markdown containers allowed (`[limits] markdown_depth`).
    pub max_depth: usize,
}

impl Targets<'_> {
    /// What `@key` refers to when it is a label of the manuscript (a heading's before a float's);
    /// numbers and titles are filled in by `document::numbering`.
    fn reference(&self, key: &str) -> Option<RefTarget> {
        if self.sections.contains(key) {
            Some(RefTarget::Section {
                title: String::new(),
            })
        } else {
            let kind = *self.floats.get(key)?;
            Some(RefTarget::Float { kind, number: 0 })
        }
    }
}

/// The blocks of one Markdown text, with the floats of analysis block `N` put where its marker
/// fence stands (`floats(N)`), and the problems found (errors and warnings, located in `display`).
pub fn blocks(
    source: &str,
    display: &Path,
    targets: &Targets,
    floats: &mut dyn FnMut(usize) -> Option<Block>,
) -> (Vec<Block>, Vec<Diagnostic>) {
    let events: Vec<(Event, Range<usize>)> = Parser::new_ext(source, markdown_options())
        .into_offset_iter()
        .collect();
    if let Some(problem) = too_deep(&events, source, display, targets.max_depth) {
        return (Vec::new(), vec![problem]);
    }
    let (main, definitions) = split_footnotes(events);
    let mut builder = Builder::new(targets, display, source);
    for (label, inner) in definitions {
        let mut sub = Builder::new(targets, display, source);
        sub.run(inner, floats);
        builder.diagnostics.append(&mut sub.diagnostics);
        builder.footnotes.insert(label, sub.finish());
    }
    builder.run(main, floats);
    let diagnostics = std::mem::take(&mut builder.diagnostics);
    (builder.finish(), diagnostics)
}

/// Markdown that is inline content (a caption, a table note): its paragraphs' inlines, joined by
/// line breaks.
pub fn inlines(source: &str, display: &Path, targets: &Targets) -> (Vec<Inline>, Vec<Diagnostic>) {
    let (blocks, diagnostics) = blocks(source, display, targets, &mut |_| None);
    let mut out = Vec::new();
    for block in blocks {
        let content = match block {
            Block::Para(c) | Block::Plain(c) | Block::Heading { content: c, .. } => c,
            _ => continue,
        };
        if !out.is_empty() {
            out.push(Inline::HardBreak);
        }
        out.extend(content);
    }
    (out, diagnostics)
}

/// Heading ids (`# Methods {#sec-methods}`) of a Markdown text.
pub fn heading_labels(source: &str) -> Vec<String> {
    Parser::new_ext(source, markdown_options())
        .filter_map(|e| match e {
            Event::Start(Tag::Heading { id: Some(id), .. }) => Some(strip_marks(&id)),
            _ => None,
        })
        .collect()
}

type Events<'s> = Vec<(Event<'s>, Range<usize>)>;

/// Footnote definitions apart from the rest, so a reference can hold its note wherever it stands.
fn split_footnotes(events: Events) -> (Events, Vec<(String, Events)>) {
    let mut main = Vec::new();
    let mut definitions = Vec::new();
    let mut iter = events.into_iter();
    while let Some((event, range)) = iter.next() {
        let Event::Start(Tag::FootnoteDefinition(label)) = event else {
            main.push((event, range));
            continue;
        };
        let mut depth = 0;
        let mut inner = Vec::new();
        for (event, range) in iter.by_ref() {
            match &event {
                Event::Start(Tag::FootnoteDefinition(_)) => depth += 1,
                Event::End(TagEnd::FootnoteDefinition) if depth == 0 => break,
                Event::End(TagEnd::FootnoteDefinition) => depth -= 1,
                _ => {}
            }
            inner.push((event, range));
        }
        definitions.push((label.to_string(), inner));
    }
    (main, definitions)
}

/// Markdown nested deeper than `max_depth` containers (lists in lists, quotes in quotes, emphasis
/// in links in emphasis, ...): an error at the first element past the limit. Checked before
/// building, because recursion over such a tree is how converters overflow their stack, and Typst
/// refuses deeply nested markup with a message about generated source the author never wrote.
fn too_deep(
    events: &[(Event, Range<usize>)],
    source: &str,
    display: &Path,
    max_depth: usize,
) -> Option<Diagnostic> {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut first_over = None;
    for (event, range) in events {
        match event {
            Event::Start(_) => {
                depth += 1;
                deepest = deepest.max(depth);
                if depth > max_depth && first_over.is_none() {
                    first_over = Some(range.start);
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let offset = first_over?;
    Some(
        Diagnostic::error(format!(
            "the Markdown here is nested {deepest} levels deep (lists, block quotes, emphasis and links inside each other), more than the limit of {max_depth} (`markdown_depth`)"
        ))
        .at_offset(display, source, offset)
        .hint("flatten the structure; if the depth is intended, raise markdown_depth under [limits] in study.toml (at most 100)"),
    )
}

/// An open container while events are read.
enum Frame {
    /// Holds blocks (the document, a block quote, a list item); inline content that arrives
    /// directly (a tight list item's text) collects in `loose` and becomes a `Plain` block.
    Blocks {
        kind: BlocksKind,
        blocks: Vec<Block>,
        loose: Vec<Inline>,
    },
    /// Holds inlines (a paragraph, a heading, emphasis, a link, a table cell).
    Inlines {
        kind: InlinesKind,
        inlines: Vec<Inline>,
    },
    List {
        start: Option<u64>,
        items: Vec<Vec<Block>>,
    },
    Table {
        aligns: Vec<Align>,
        cells: Vec<Vec<Inline>>,
        header_len: Option<usize>,
    },
    Code {
        lang: String,
        text: String,
    },
    /// A structural tag whose content goes to the frame around it (a table row; the table head,
    /// whose end marks where the header cells stop).
    Transparent {
        head: bool,
    },
    /// Content not shown (an image's alt text, a block marker's empty body).
    Skip,
}

enum BlocksKind {
    Root,
    Quote,
    Item,
}

enum InlinesKind {
    Para,
    Heading { level: u8, id: Option<String> },
    Emph,
    Strong,
    Strike,
    Super,
    Sub,
    Link(Option<LinkTarget>),
    Cell,
}

struct Builder<'a, 't> {
    targets: &'a Targets<'t>,
    display: &'a Path,
    source: &'a str,
    diagnostics: Vec<Diagnostic>,
    footnotes: HashMap<String, Vec<Block>>,
    stack: Vec<Frame>,
    /// Consecutive text events are merged before citations are recognised (pulldown-cmark splits
    /// text at brackets): the text and the offset of its first byte.
    pending: Option<(String, usize)>,
    /// Byte offsets in `pending` of characters the author escaped with a backslash (`\@`, `\[`):
    /// literal text, never the start of a citation or a reference.
    escaped: Vec<usize>,
}

impl<'a, 't> Builder<'a, 't> {
    fn new(targets: &'a Targets<'t>, display: &'a Path, source: &'a str) -> Self {
        Builder {
            targets,
            display,
            source,
            diagnostics: Vec::new(),
            footnotes: HashMap::new(),
            stack: vec![Frame::Blocks {
                kind: BlocksKind::Root,
                blocks: Vec::new(),
                loose: Vec::new(),
            }],
            pending: None,
            escaped: Vec::new(),
        }
    }

    fn run(&mut self, events: Events, floats: &mut dyn FnMut(usize) -> Option<Block>) {
        for (event, range) in events {
            if !matches!(event, Event::Text(_)) {
                self.flush_text();
            }
            self.event(event, range, floats);
        }
        self.flush_text();
    }

    /// The document's blocks (containers left open by a malformed stream are closed).
    fn finish(mut self) -> Vec<Block> {
        while self.stack.len() > 1 {
            self.close();
        }
        match self.stack.pop() {
            Some(Frame::Blocks {
                mut blocks, loose, ..
            }) => {
                if !loose.is_empty() {
                    blocks.push(Block::Plain(loose));
                }
                blocks
            }
            _ => Vec::new(),
        }
    }

    fn skipping(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Skip))
    }

    fn event(
        &mut self,
        event: Event,
        range: Range<usize>,
        floats: &mut dyn FnMut(usize) -> Option<Block>,
    ) {
        if self.skipping() {
            // Inside an image or a marker fence: only its end matters (images do not nest in
            // Markdown, and a fence holds no tags).
            if matches!(event, Event::End(TagEnd::Image | TagEnd::CodeBlock)) {
                self.stack.pop();
            }
            return;
        }
        match event {
            Event::Start(tag) => self.start(tag, range, floats),
            Event::End(_) => self.close(),
            Event::Text(text) => {
                if let Some(Frame::Code { text: code, .. }) = self.stack.last_mut() {
                    code.push_str(&strip_marks(&text));
                    return;
                }
                let at = self.pending.as_ref().map_or(0, |(buf, _)| buf.len());
                if is_escaped(self.source, range.start) {
                    self.escaped.push(at);
                }
                match &mut self.pending {
                    Some((buf, _)) => buf.push_str(&text),
                    None => self.pending = Some((text.to_string(), range.start)),
                }
            }
            Event::Code(code) => self.inline(Inline::Code(strip_marks(&code))),
            Event::SoftBreak => self.inline(Inline::SoftBreak),
            Event::HardBreak => self.inline(Inline::HardBreak),
            Event::Rule => self.block(Block::Rule),
            Event::FootnoteReference(label) => match self.footnotes.get(label.as_ref()) {
                Some(note) => self.inline(Inline::Note(note.clone())),
                None => self.problem(
                    format!("footnote `[^{label}]` has no definition"),
                    range.start,
                ),
            },
            // Raw HTML is shown as text (comments are dropped): galley writes its own markup.
            Event::Html(html) | Event::InlineHtml(html) => {
                let trimmed = html.trim();
                if !(trimmed.starts_with("<!--") || trimmed.is_empty()) {
                    let text = strip_marks(&html).replace(['\r', '\n'], " ");
                    self.inline(Inline::Text(text));
                }
            }
            Event::InlineMath(m) | Event::DisplayMath(m) => {
                self.inline(Inline::Text(strip_marks(&m)))
            }
            Event::TaskListMarker(done) => {
                self.inline(Inline::Text(if done { "☑ " } else { "☐ " }.into()))
            }
        }
    }

    fn start(
        &mut self,
        tag: Tag,
        range: Range<usize>,
        floats: &mut dyn FnMut(usize) -> Option<Block>,
    ) {
        let frame = match tag {
            Tag::Paragraph => inline_frame(InlinesKind::Para),
            Tag::Heading { level, id, .. } => inline_frame(InlinesKind::Heading {
                level: heading_level(level),
                id: id.map(|id| strip_marks(&id)),
            }),
            Tag::BlockQuote(_) => block_frame(BlocksKind::Quote),
            Tag::CodeBlock(kind) => {
                let info = match &kind {
                    CodeBlockKind::Fenced(info) => info.to_string(),
                    CodeBlockKind::Indented => String::new(),
                };
                let mut words = info.split_whitespace();
                if words.next() == Some(BLOCK_MARKER) {
                    let index = words.next().and_then(|n| n.parse().ok());
                    if let Some(block) = index.and_then(&mut *floats) {
                        self.block(block);
                    }
                    Frame::Skip
                } else {
                    Frame::Code {
                        lang: strip_marks(info.split_whitespace().next().unwrap_or("")),
                        text: String::new(),
                    }
                }
            }
            Tag::List(start) => Frame::List {
                start,
                items: Vec::new(),
            },
            Tag::Item => block_frame(BlocksKind::Item),
            Tag::Table(aligns) => Frame::Table {
                aligns: aligns.iter().map(align).collect(),
                cells: Vec::new(),
                header_len: None,
            },
            Tag::TableCell => inline_frame(InlinesKind::Cell),
            Tag::Emphasis => inline_frame(InlinesKind::Emph),
            Tag::Strong => inline_frame(InlinesKind::Strong),
            Tag::Strikethrough => inline_frame(InlinesKind::Strike),
            Tag::Superscript => inline_frame(InlinesKind::Super),
            Tag::Subscript => inline_frame(InlinesKind::Sub),
            Tag::Link {
                link_type,
                dest_url,
                ..
            } => inline_frame(InlinesKind::Link(self.link_target(
                link_type,
                &dest_url,
                range.start,
            ))),
            Tag::Image { .. } => {
                self.problem(
                    "images in the prose are not supported: draw figures with an analysis block (`[figure]`)".into(),
                    range.start,
                );
                Frame::Skip
            }
            // Raw HTML lines are one paragraph of text.
            Tag::HtmlBlock => inline_frame(InlinesKind::Para),
            Tag::TableHead => Frame::Transparent { head: true },
            Tag::TableRow
            | Tag::FootnoteDefinition(_)
            | Tag::MetadataBlock(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition => Frame::Transparent { head: false },
        };
        self.stack.push(frame);
    }
}

fn inline_frame(kind: InlinesKind) -> Frame {
    Frame::Inlines {
        kind,
        inlines: Vec::new(),
    }
}

fn block_frame(kind: BlocksKind) -> Frame {
    Frame::Blocks {
        kind,
        blocks: Vec::new(),
        loose: Vec::new(),
    }
}

fn heading_level(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

fn align(a: &pulldown_cmark::Alignment) -> Align {
    match a {
        pulldown_cmark::Alignment::Right => Align::Right,
        pulldown_cmark::Alignment::Center => Align::Center,
        _ => Align::Left,
    }
}

impl Builder<'_, '_> {
    /// The innermost frame that holds content (not a transparent one).
    fn holder(&mut self) -> Option<&mut Frame> {
        self.stack
            .iter_mut()
            .rev()
            .find(|f| !matches!(f, Frame::Transparent { .. }))
    }

    fn inline(&mut self, inline: Inline) {
        match self.holder() {
            Some(Frame::Inlines { inlines, .. }) => inlines.push(inline),
            Some(Frame::Blocks { loose, .. }) => loose.push(inline),
            // Text directly in a list or a table (not produced by pulldown-cmark): dropped.
            _ => {}
        }
    }

    fn block(&mut self, block: Block) {
        match self.holder() {
            Some(Frame::Blocks { blocks, loose, .. }) => {
                if !loose.is_empty() {
                    blocks.push(Block::Plain(std::mem::take(loose)));
                }
                blocks.push(block);
            }
            // A block inside inline content (a marker fence in a table cell cannot happen in
            // CommonMark; kept for robustness): its text joins the inlines.
            Some(Frame::Inlines { inlines, .. }) => {
                if let Block::Para(content) | Block::Plain(content) = block {
                    inlines.extend(content);
                }
            }
            _ => {}
        }
    }

    /// Close the innermost frame and hand what it built to the frame around it.
    fn close(&mut self) {
        let Some(frame) = self.stack.pop() else {
            return;
        };
        match frame {
            Frame::Inlines { kind, inlines } => self.close_inlines(kind, inlines),
            Frame::Blocks {
                kind,
                mut blocks,
                loose,
            } => {
                if !loose.is_empty() {
                    blocks.push(Block::Plain(loose));
                }
                match kind {
                    BlocksKind::Quote => self.block(Block::Quote(blocks)),
                    BlocksKind::Item => {
                        if let Some(Frame::List { items, .. }) = self.holder() {
                            items.push(blocks);
                        }
                    }
                    // The root is never closed by an event; put it back.
                    BlocksKind::Root => self.stack.push(Frame::Blocks {
                        kind,
                        blocks,
                        loose: Vec::new(),
                    }),
                }
            }
            Frame::List { start, items } => self.block(Block::List { start, items }),
            Frame::Code { lang, text } => self.block(Block::Code { lang, text }),
            Frame::Table {
                aligns,
                cells,
                header_len,
            } => self.block(Block::Grid(grid(aligns, cells, header_len))),
            Frame::Transparent { head: true } => {
                if let Some(Frame::Table {
                    cells, header_len, ..
                }) = self.holder()
                {
                    *header_len = Some(cells.len());
                }
            }
            Frame::Transparent { head: false } | Frame::Skip => {}
        }
    }

    fn close_inlines(&mut self, kind: InlinesKind, inlines: Vec<Inline>) {
        let inline = match kind {
            InlinesKind::Para => return self.block(Block::Para(inlines)),
            InlinesKind::Heading { level, id } => {
                return self.block(Block::Heading {
                    level,
                    id,
                    content: inlines,
                });
            }
            InlinesKind::Cell => {
                if let Some(Frame::Table { cells, .. }) = self.holder() {
                    cells.push(inlines);
                }
                return;
            }
            InlinesKind::Emph => Inline::Emph(inlines),
            InlinesKind::Strong => Inline::Strong(inlines),
            InlinesKind::Strike => Inline::Strike(inlines),
            InlinesKind::Super => Inline::Super(inlines),
            InlinesKind::Sub => Inline::Sub(inlines),
            InlinesKind::Link(Some(target)) => Inline::Link {
                target,
                content: inlines,
            },
            InlinesKind::Link(None) => Inline::Unlinked(inlines),
        };
        self.inline(inline);
    }

    /// The link policy for a prose link (a `#label` must be one of the manuscript's); a refused
    /// link is a warning and keeps its text, unlinked.
    fn link_target(
        &mut self,
        link_type: pulldown_cmark::LinkType,
        dest: &str,
        offset: usize,
    ) -> Option<LinkTarget> {
        let dest = strip_marks(dest);
        let checked = crate::study::links::prose(link_type, &dest).and_then(|t| match t {
            crate::study::links::Target::External(url) => Ok(LinkTarget::External(url)),
            crate::study::links::Target::Fragment(label)
                if self.targets.sections.contains(&label)
                    || self.targets.floats.contains_key(&label) =>
            {
                Ok(LinkTarget::Internal(label))
            }
            crate::study::links::Target::Fragment(label) => Err(format!(
                "`#{label}` is not the label of a heading, figure or table"
            )),
        });
        match checked {
            Ok(target) => Some(target),
            Err(why) => {
                self.diagnostics.push(
                    Diagnostic::warning(format!(
                        "the link `{}` is refused: {why}; its text is kept, unlinked",
                        crate::study::links::shown(&dest)
                    ))
                    .at_offset(self.display, self.source, offset)
                    .hint("links may be http, https, mailto, doi:10.… or #label of a heading, figure or table"),
                );
                None
            }
        }
    }

    fn problem(&mut self, message: String, offset: usize) {
        self.diagnostics.push(Diagnostic::error(message).at_offset(
            self.display,
            self.source,
            offset,
        ));
    }

    /// Merged text: reported values (between marks) apart, the rest searched for citations and
    /// references.
    fn flush_text(&mut self) {
        let escaped = std::mem::take(&mut self.escaped);
        let Some((text, offset)) = self.pending.take() else {
            return;
        };
        let mut rest = text.as_str();
        let mut at = 0usize;
        while let Some(start) = rest.find(MARK_START) {
            self.text(&rest[..start], offset, at, &escaped);
            let after = &rest[start + MARK_START.len_utf8()..];
            let value = after.find(MARK_SEP).zip(after.find(MARK_END));
            match value {
                Some((sep, end)) if sep < end && after[..sep].parse::<usize>().is_ok() => {
                    let trail = after[..sep].parse().unwrap_or(0);
                    let text = &after[sep + MARK_SEP.len_utf8()..end];
                    self.inline(Inline::Value {
                        text: strip_marks(text),
                        trail,
                        link: false,
                    });
                    let consumed = start + MARK_START.len_utf8() + end + MARK_END.len_utf8();
                    at += consumed;
                    rest = &rest[consumed..];
                }
                // A value whose text Markdown split (it printed markup): its marks are dropped
                // and its text is read as the rest of the prose is.
                _ => {
                    let consumed = start + MARK_START.len_utf8();
                    at += consumed;
                    rest = &rest[consumed..];
                }
            }
        }
        self.text(rest, offset, at, &escaped);
    }

    /// Text (no value marks but stray ones) with `[@key]`, `[@a; @b]`, `@key` and `@fig:x` turned
    /// into citations and references. `at` is the text's offset in the merged run (for `escaped`).
    fn text(&mut self, text: &str, offset: usize, at: usize, escaped: &[usize]) {
        if text.is_empty() {
            return;
        }
        let text = &strip_stray(text);
        let is_escaped = |pos: usize| escaped.contains(&(at + pos));
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut plain = String::new();
        let mut i = 0;
        while i < chars.len() {
            let (pos, c) = chars[i];
            if c == '['
                && !is_escaped(pos)
                && chars
                    .get(i + 1)
                    .is_some_and(|&(p, n)| n == '@' && !is_escaped(p))
                && let Some(close) = text[pos..].find(']')
                && let Some(keys) = citation_group(&text[pos + 1..pos + close])
            {
                self.plain(&mut plain);
                // One bracket is one citation group; a cross-reference inside it ends the group
                // before it (as Typst shows them).
                let mut group = Vec::new();
                for (key, supplement) in keys {
                    if !self.is_citation(&key) {
                        self.cite(&mut group);
                    }
                    if let Some(item) = self.reference(key, supplement, false, offset + at + pos) {
                        group.push(item);
                    }
                }
                self.cite(&mut group);
                let end = pos + close + 1;
                while i < chars.len() && chars[i].0 < end {
                    i += 1;
                }
                continue;
            }
            // pulldown-cmark leaves a footnote reference without a definition as text.
            if c == '['
                && !is_escaped(pos)
                && chars
                    .get(i + 1)
                    .is_some_and(|&(p, n)| n == '^' && !is_escaped(p))
                && let Some(close) = text[pos..].find(']')
                && close > 2
                && !text[pos + 2..pos + close].contains(char::is_whitespace)
            {
                let label = &text[pos + 2..pos + close];
                self.diagnostics.push(
                    Diagnostic::error(format!("footnote `[^{label}]` has no definition"))
                        .at_offset(self.display, self.source, offset + at + pos)
                        .hint(format!(
                            "define it in the same file, on a line of its own: `[^{label}]: the note`"
                        )),
                );
            }
            if c == '@' && !is_escaped(pos) && (i == 0 || !chars[i - 1].1.is_alphanumeric()) {
                let key = citation_key(&text[pos + 1..]);
                if !key.is_empty() {
                    self.plain(&mut plain);
                    if let Some(item) =
                        self.reference(key.to_string(), None, true, offset + at + pos)
                    {
                        self.cite(&mut vec![item]);
                    }
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
        self.plain(&mut plain);
    }

    fn plain(&mut self, plain: &mut String) {
        if !plain.is_empty() {
            self.inline(Inline::Text(std::mem::take(plain)));
        }
    }

    /// A cross-reference goes into the text now; a citation is returned, for its group.
    fn reference(
        &mut self,
        key: String,
        supplement: Option<String>,
        prose: bool,
        offset: usize,
    ) -> Option<CiteItem> {
        if let Some(target) = self.targets.reference(&key) {
            self.inline(Inline::Ref { label: key, target });
        } else if self.targets.citations.contains(&key) {
            return Some(CiteItem {
                key,
                supplement,
                prose,
            });
        } else {
            // `@fig:x` is a reference; `@x` may be either (`@sec-methods` is a heading's label).
            let labels = "labels come from `label = \"...\"` in figure and table specs, and `{#id}` after headings";
            let problem = if key.contains(':') {
                Diagnostic::error(format!("unknown cross-reference `@{key}`")).hint(labels)
            } else {
                Diagnostic::error(format!(
                    "unknown citation or cross-reference `@{key}`: no entry of the bibliography, and no heading, figure or table, has this key"
                ))
                .hint("citation keys come from the study's bibliography file")
                .hint(labels)
            };
            self.diagnostics
                .push(problem.at_offset(self.display, self.source, offset));
            self.inline(Inline::Text(format!("@{key}")));
        }
        None
    }

    /// Whether `key` is a citation (references to labels come first, as `reference` decides).
    fn is_citation(&self, key: &str) -> bool {
        self.targets.reference(key).is_none() && self.targets.citations.contains(key)
    }

    /// A citation group into the text (nothing for an empty one).
    fn cite(&mut self, group: &mut Vec<CiteItem>) {
        if !group.is_empty() {
            self.inline(Inline::Cite(std::mem::take(group)));
        }
    }
}

/// A pipe table: the header cells, then the body cells in rows of the table's width.
fn grid(aligns: Vec<Align>, cells: Vec<Vec<Inline>>, header_len: Option<usize>) -> Grid {
    let n = aligns.len().max(1);
    let header_len = header_len.unwrap_or(0).min(cells.len());
    let mut cells = cells.into_iter();
    let header: Vec<Vec<Inline>> = cells.by_ref().take(header_len).collect();
    let body: Vec<Vec<Inline>> = cells.collect();
    Grid {
        columns: aligns
            .into_iter()
            .map(|align| Column {
                align,
                width: Width::Auto,
            })
            .collect(),
        header,
        rows: body.chunks(n).map(<[_]>::to_vec).collect(),
    }
}

/// Text with every value mark removed (marks in a code span, a URL, a heading id).
pub fn strip_marks(text: &str) -> String {
    if !text.contains([MARK_START, MARK_SEP, MARK_END]) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // The trail index after a start mark is part of the mark.
            MARK_START => {
                while chars.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                }
                if chars.peek() == Some(&MARK_SEP) {
                    chars.next();
                }
            }
            MARK_SEP | MARK_END => {}
            c => out.push(c),
        }
    }
    out
}

/// Text between values: a stray separator or end mark (of a value Markdown split) is dropped.
fn strip_stray(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([MARK_SEP, MARK_END]) {
        std::borrow::Cow::Owned(strip_marks(text))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Whether the text event starting at byte `start` of `source` begins with a backslash-escaped
/// character: pulldown-cmark starts such an event at the backslash or just after it (an odd run
/// of backslashes before it; `\\@` is an escaped backslash, then a live `@`).
fn is_escaped(source: &str, start: usize) -> bool {
    let Some(rest) = source.get(start..) else {
        return false;
    };
    if rest.starts_with('\\') && rest[1..].starts_with(|c: char| c.is_ascii_punctuation()) {
        return true;
    }
    let before = &source.as_bytes()[..start];
    before.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

/// `@smith2020, p. 4; @jones` -> [(smith2020, Some("p. 4")), (jones, None)]; None if not a citation group.
pub fn citation_group(inner: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut keys = Vec::new();
    for part in inner.split(';') {
        let part = part.trim();
        let rest = part.strip_prefix('@')?;
        let key = citation_key(rest);
        if key.is_empty() {
            return None;
        }
        let supplement = rest[key.len()..].trim_start_matches(',').trim();
        keys.push((
            key.to_string(),
            (!supplement.is_empty()).then(|| supplement.to_string()),
        ));
    }
    (!keys.is_empty()).then_some(keys)
}

/// The key at the start of `rest`: letters, digits and `_ - : .`, without trailing punctuation.
pub fn citation_key(rest: &str) -> &str {
    let end = rest
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.')))
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].trim_end_matches(['.', ':', '-'])
}
