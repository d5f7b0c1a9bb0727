//! The typed manuscript: what every renderer reads. Built once from the filled-in Markdown and the
//! block results (`document::build`), numbered once (`document::numbering`), extended by transforms
//! (`document::appendix`: audit links, the audit trail, the changes since the previous report), then
//! handed to the renderers (`render::typst`, `render::html`), which never see Markdown.
//!
//! The shape follows pandoc's AST (blocks of inlines; `Plain` for the text of a tight list item) and
//! mdBook's `Book` (one value passed through preprocessors to renderers). What pandoc has not and a
//! manuscript needs is typed here: floats with their number, label, caption and notes; citations and
//! cross-references as such (not as text); footnotes at their reference; and *reported values*, the
//! text a template printed together with its entry in the audit trail.

use jiff::civil::Date;

use crate::analysis::artifacts::{Align, Figure, Table};

/// A whole manuscript.
#[derive(Debug, Clone, PartialEq)]
pub struct Manuscript {
    pub front: FrontMatter,
    /// The abstract's blocks, when the study has an abstract file.
    pub abstract_blocks: Option<Vec<Block>>,
    /// The main text: every manuscript file in order, each opened by a [`Block::Source`].
    pub body: Vec<Block>,
    /// After the main text, each starting on a new page (audit trail, changes since the previous
    /// report).
    pub appendices: Vec<Appendix>,
    pub bibliography: Option<Bibliography>,
}

/// The title page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FrontMatter {
    pub title: String,
    pub short_title: Option<String>,
    pub authors: Vec<Author>,
    /// Affiliations, numbered from 1 in this order.
    pub affiliations: Vec<String>,
    pub keywords: Vec<String>,
    pub data_statement: Option<String>,
    pub venue: Option<String>,
    /// The data cutoff, which dates the manuscript.
    pub date: Option<Date>,
    /// The study folder's name (the HTML colophon names it).
    pub study: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Author {
    pub name: String,
    pub degrees: Option<String>,
    /// 1-based numbers into [`FrontMatter::affiliations`].
    pub affiliations: Vec<usize>,
    pub email: Option<String>,
    pub corresponding: bool,
}

/// The cited entries of the study's bibliography and the style that formats them.
#[derive(Debug, Clone, PartialEq)]
pub struct Bibliography {
    /// The file name the entries are written to (`references.bib` or `references.yaml`).
    pub file: String,
    /// The cited entries only, in the bibliography's own format, links checked.
    pub text: String,
    pub style: CslStyle,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CslStyle {
    /// A style Typst and hayagriva carry (`american-medical-association`).
    Named(String),
    /// The study's own `.csl` file, written as `file` beside the manuscript.
    File { file: String, text: String },
}

/// An appendix: a titled run of blocks after the main text.
#[derive(Debug, Clone, PartialEq)]
pub struct Appendix {
    /// The id its heading carries (`appendix-audit-trail`).
    pub id: String,
    pub title: String,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// Where the following blocks were written (`manuscript/02-methods.md`); not shown.
    Source(String),
    Heading {
        /// 1 for `#`: a section of the article (the title is not a heading).
        level: u8,
        id: Option<String>,
        content: Vec<Inline>,
    },
    Para(Vec<Inline>),
    /// Text that is not a paragraph: the content of a tight list item.
    Plain(Vec<Inline>),
    Quote(Vec<Block>),
    List {
        /// The first number of a numbered list; `None` for bullets.
        start: Option<u64>,
        items: Vec<Vec<Block>>,
    },
    Code {
        lang: String,
        text: String,
    },
    /// A table written in the prose (pipe syntax), or one an appendix lays out.
    Grid(Grid),
    Rule,
    /// The figures and tables an analysis block placed where it stood.
    Floats {
        block: String,
        floats: Vec<Float>,
    },
}

/// A table of inline cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub columns: Vec<Column>,
    pub header: Vec<Vec<Inline>>,
    pub rows: Vec<Vec<Vec<Inline>>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Column {
    pub align: Align,
    pub width: Width,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Width {
    /// As wide as its content.
    Auto,
    /// A share of the width left (`1fr`, `1.2fr`).
    Fraction(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FloatKind {
    Figure,
    Table,
}

impl FloatKind {
    /// The word a reference and a caption use: "Figure 2", "Table 1".
    pub fn name(self) -> &'static str {
        match self {
            FloatKind::Figure => "Figure",
            FloatKind::Table => "Table",
        }
    }
}

/// Where a float goes. Only the main text today; the journal-manuscript work adds the supplement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    MainText,
}

/// A numbered figure or table.
#[derive(Debug, Clone, PartialEq)]
pub struct Float {
    pub kind: FloatKind,
    /// Counted per kind in reading order from 1 (`document::numbering`).
    pub number: usize,
    pub label: Option<String>,
    pub caption: Vec<Inline>,
    /// Notes under a table (tests used, abbreviations).
    pub notes: Vec<Vec<Inline>>,
    pub body: FloatBody,
    pub placement: Placement,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FloatBody {
    Figure(Figure),
    Table(Table),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Inline {
    Text(String),
    Emph(Vec<Inline>),
    Strong(Vec<Inline>),
    Strike(Vec<Inline>),
    Super(Vec<Inline>),
    Sub(Vec<Inline>),
    Code(String),
    /// Monospaced text that is not code (an expression in an appendix).
    Mono(Vec<Inline>),
    SoftBreak,
    HardBreak,
    Link {
        target: LinkTarget,
        content: Vec<Inline>,
    },
    /// The text of a link the link policy refused (`study::links`): shown, not linked.
    Unlinked(Vec<Inline>),
    /// A citation group: `[@a; @b, p. 4]`, or one narrative `@a`.
    Cite(Vec<CiteItem>),
    /// A cross-reference to a section, figure or table.
    Ref {
        label: String,
        target: RefTarget,
    },
    /// A footnote, at its reference.
    Note(Vec<Block>),
    /// A value a template printed: its text and its entry in the audit trail. `link` is set by the
    /// audit transform: the value then links to its entry.
    Value {
        text: String,
        trail: usize,
        link: bool,
    },
    /// A place links can point to (`trail-3`), showing nothing.
    Anchor(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum LinkTarget {
    /// A URL the link policy accepted.
    External(String),
    /// The label of a heading, figure or table of this manuscript.
    Internal(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CiteItem {
    pub key: String,
    /// A locator as written (`p. 4`).
    pub supplement: Option<String>,
    /// Narrative (`@smith2020 showed`) rather than parenthetical.
    pub prose: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RefTarget {
    /// A heading: journals do not number sections, so a reference shows the heading's text
    /// (filled in by `document::numbering`).
    Section { title: String },
    /// A figure or table and its number (filled in by `document::numbering`).
    Float { kind: FloatKind, number: usize },
}

impl Manuscript {
    /// Every block in reading order: abstract, body, appendices (not inside floats or notes).
    pub fn top_blocks(&self) -> impl Iterator<Item = &Block> {
        self.abstract_blocks
            .iter()
            .flatten()
            .chain(self.body.iter())
            .chain(self.appendices.iter().flat_map(|a| a.blocks.iter()))
    }

    /// Visit every inline of the manuscript (in captions, notes, cells and footnotes too), in
    /// reading order.
    pub fn walk_inlines(&self, f: &mut impl FnMut(&Inline)) {
        for block in self.top_blocks() {
            walk_block(block, f);
        }
    }

    /// The same, mutably (for transforms).
    pub fn walk_inlines_mut(&mut self, f: &mut impl FnMut(&mut Inline)) {
        let blocks = self
            .abstract_blocks
            .iter_mut()
            .flatten()
            .chain(self.body.iter_mut())
            .chain(self.appendices.iter_mut().flat_map(|a| a.blocks.iter_mut()));
        for block in blocks {
            walk_block_mut(block, f);
        }
    }

    /// What the manuscript holds, for the renderers' parity check.
    pub fn inventory(&self) -> Inventory {
        let mut inv = Inventory::default();
        let mut blocks: Vec<&Block> = self.top_blocks().collect();
        while let Some(block) = blocks.pop() {
            match block {
                Block::Heading { id: Some(id), .. } => inv.sections.push(id.clone()),
                Block::Floats { floats, .. } => {
                    for f in floats {
                        inv.floats.push((f.kind, f.number, f.label.clone()));
                    }
                }
                Block::Quote(inner) => blocks.extend(inner.iter()),
                Block::List { items, .. } => blocks.extend(items.iter().flatten()),
                _ => {}
            }
        }
        inv.sections.sort();
        inv.floats
            .sort_by_key(|(k, n, _)| (*k == FloatKind::Table, *n));
        self.walk_inlines(&mut |inline| match inline {
            Inline::Note(_) => inv.footnotes += 1,
            Inline::Cite(items) => {
                inv.cite_groups += 1;
                inv.citations.extend(items.iter().map(|i| i.key.clone()));
            }
            Inline::Value { trail, link, .. } => inv.values.push((*trail, *link)),
            _ => {}
        });
        inv.appendices = self.appendices.iter().map(|a| a.id.clone()).collect();
        inv
    }
}

/// Sections (heading ids), floats (kind, number, label), footnotes, cited keys (each citation),
/// reported values (trail index, linked) and appendices of a manuscript.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub sections: Vec<String>,
    pub floats: Vec<(FloatKind, usize, Option<String>)>,
    pub footnotes: usize,
    /// Citation groups (one bracket, or one narrative citation).
    pub cite_groups: usize,
    pub citations: Vec<String>,
    pub values: Vec<(usize, bool)>,
    pub appendices: Vec<String>,
}

fn walk_block(block: &Block, f: &mut impl FnMut(&Inline)) {
    match block {
        Block::Heading { content, .. } | Block::Para(content) | Block::Plain(content) => {
            walk(content, f)
        }
        Block::Quote(blocks) => blocks.iter().for_each(|b| walk_block(b, f)),
        Block::List { items, .. } => items.iter().flatten().for_each(|b| walk_block(b, f)),
        Block::Grid(grid) => {
            grid.header.iter().for_each(|c| walk(c, f));
            grid.rows.iter().flatten().for_each(|c| walk(c, f));
        }
        Block::Floats { floats, .. } => {
            for float in floats {
                walk(&float.caption, f);
                float.notes.iter().for_each(|n| walk(n, f));
            }
        }
        Block::Source(_) | Block::Code { .. } | Block::Rule => {}
    }
}

fn walk(inlines: &[Inline], f: &mut impl FnMut(&Inline)) {
    for inline in inlines {
        f(inline);
        match inline {
            Inline::Emph(c)
            | Inline::Strong(c)
            | Inline::Strike(c)
            | Inline::Super(c)
            | Inline::Sub(c)
            | Inline::Mono(c)
            | Inline::Unlinked(c)
            | Inline::Link { content: c, .. } => walk(c, f),
            Inline::Note(blocks) => blocks.iter().for_each(|b| walk_block(b, f)),
            _ => {}
        }
    }
}

fn walk_block_mut(block: &mut Block, f: &mut impl FnMut(&mut Inline)) {
    match block {
        Block::Heading { content, .. } | Block::Para(content) | Block::Plain(content) => {
            walk_mut(content, f)
        }
        Block::Quote(blocks) => blocks.iter_mut().for_each(|b| walk_block_mut(b, f)),
        Block::List { items, .. } => items
            .iter_mut()
            .flatten()
            .for_each(|b| walk_block_mut(b, f)),
        Block::Grid(grid) => {
            grid.header.iter_mut().for_each(|c| walk_mut(c, f));
            grid.rows.iter_mut().flatten().for_each(|c| walk_mut(c, f));
        }
        Block::Floats { floats, .. } => {
            for float in floats {
                walk_mut(&mut float.caption, f);
                float.notes.iter_mut().for_each(|n| walk_mut(n, f));
            }
        }
        Block::Source(_) | Block::Code { .. } | Block::Rule => {}
    }
}

fn walk_mut(inlines: &mut [Inline], f: &mut impl FnMut(&mut Inline)) {
    for inline in inlines {
        f(inline);
        match inline {
            Inline::Emph(c)
            | Inline::Strong(c)
            | Inline::Strike(c)
            | Inline::Super(c)
            | Inline::Sub(c)
            | Inline::Mono(c)
            | Inline::Unlinked(c)
            | Inline::Link { content: c, .. } => walk_mut(c, f),
            Inline::Note(blocks) => blocks.iter_mut().for_each(|b| walk_block_mut(b, f)),
            _ => {}
        }
    }
}

/// The text of inlines without markup (a heading's text, for a reference to it).
pub fn plain_text(inlines: &[Inline]) -> String {
    let mut out = String::new();
    for inline in inlines {
        match inline {
            Inline::Text(t) | Inline::Code(t) => out.push_str(t),
            Inline::Value { text, .. } => out.push_str(text),
            Inline::SoftBreak | Inline::HardBreak => out.push(' '),
            Inline::Emph(c)
            | Inline::Strong(c)
            | Inline::Strike(c)
            | Inline::Super(c)
            | Inline::Sub(c)
            | Inline::Mono(c)
            | Inline::Unlinked(c)
            | Inline::Link { content: c, .. } => out.push_str(&plain_text(c)),
            Inline::Cite(_) | Inline::Ref { .. } | Inline::Note(_) | Inline::Anchor(_) => {}
        }
    }
    out
}
