//! The document stage: the prose templates filled with the block results (each printed value
//! marked with its trail entry), the trail of every value the manuscript shows, the hand-typed
//! number lint, and the Markdown read once into the typed manuscript with each block's figures and
//! tables where the block stood, the front matter, the cited bibliography, and the numbering.

use std::collections::{HashMap, HashSet};

use jiff::civil::Date;
use minijinja::value::Value;

use super::ir::{
    Author, Bibliography, Block, CslStyle, Float, FloatBody, FloatKind, FrontMatter, Inline,
    Manuscript, Placement,
};
use super::markdown::{self, Targets};
use super::{numbering, template, trail};
use crate::analysis::Analysis;
use crate::analysis::artifacts::Table;
use crate::diagnostics::{Diagnostic, Failure, Location, Result, Warned};
use crate::study::Study;
use crate::study::limits;
use crate::study::manuscript::{AnalysisBlock, Document, SourceFile};

/// The typed manuscript and the trail of every value it shows.
pub struct Built {
    pub manuscript: Manuscript,
    pub trail: Vec<trail::TrailEntry>,
}

/// The template context: every block's result by id, and `study`.
pub fn template_context(study: &Study, analysis: &Analysis, cutoff: Option<Date>) -> Value {
    let mut map = serde_json::Map::new();
    for (id, result) in &analysis.results {
        map.insert(id.clone(), result.value.clone());
    }
    map.insert(
        "study".into(),
        serde_json::json!({
            "title": study.manifest.study.title,
            "cutoff": cutoff.map(|c| c.to_string()),
            "seed": study.manifest.study.seed,
            "name": study.name,
        }),
    );
    Value::from_serialize(serde_json::Value::Object(map))
}

/// Build the typed manuscript of `study` from its parsed `document` and the `analysis` results.
pub fn build(
    study: &Study,
    document: &Document,
    analysis: &Analysis,
    cutoff: Option<Date>,
) -> Result<Warned<Built>> {
    let env = template::environment(&study.manifest.format);
    let context = template_context(study, analysis, cutoff);
    let results = serde_json::to_value(&context).map_err(|e| {
        Diagnostic::error(format!("the block results could not be read as JSON: {e}"))
    })?;
    let mut stage = Stage {
        study,
        env: &env,
        context: &context,
        results: &results,
        trail: Vec::new(),
        warnings: Vec::new(),
    };
    let prose = stage.fill_prose(document)?;

    // What references may point to: headings of the filled-in prose, labels of floats.
    let sections: HashSet<String> = prose
        .iter()
        .flat_map(|(_, text)| markdown::heading_labels(text))
        .collect();
    let mut float_labels = HashMap::new();
    for result in analysis.results.values() {
        for f in &result.artifacts.figures {
            if let Some(label) = &f.label {
                float_labels.insert(label.clone(), FloatKind::Figure);
            }
        }
        for t in &result.artifacts.tables {
            if let Some(label) = &t.label {
                float_labels.insert(label.clone(), FloatKind::Table);
            }
        }
    }
    let citations: HashSet<String> = study
        .bibliography_index
        .as_ref()
        .map(|index| index.keys())
        .unwrap_or_default();
    let targets = Targets {
        floats: &float_labels,
        sections: &sections,
        citations: &citations,
        max_depth: study.limits.markdown_depth,
    };

    let mut floats = stage.floats(document, analysis, &targets)?;
    let (abstract_blocks, body) = stage.read_prose(document, &prose, &targets, &mut floats)?;
    let mut manuscript = Manuscript {
        front: front_matter(study, cutoff),
        abstract_blocks,
        body,
        appendices: Vec::new(),
        bibliography: None,
    };
    manuscript.bibliography = bibliography(study, &manuscript, &mut stage.warnings)?;
    numbering::number(&mut manuscript);
    Ok(Warned {
        output: Built {
            manuscript,
            trail: stage.trail,
        },
        warnings: stage.warnings,
    })
}

/// What the stage's steps share.
struct Stage<'a> {
    study: &'a Study,
    env: &'a minijinja::Environment<'static>,
    context: &'a Value,
    results: &'a serde_json::Value,
    trail: Vec<trail::TrailEntry>,
    warnings: Vec<Diagnostic>,
}

impl<'a> Stage<'a> {
    /// The limits (time, memory) for evaluating the templates of `source`.
    fn file_limit(&self, source: &SourceFile) -> limits::Guard {
        limits::watch(self.study.limits.template_limit(
            format!("evaluating the templates of `{}`", source.relative),
            Some(Location::file(&source.file)),
        ))
    }

    /// Every manuscript file's template filled in, each value it prints between marks that carry
    /// its trail index (`trail::instrument`); the trail entries and the hand-typed number lint.
    fn fill_prose<'d>(&mut self, document: &'d Document) -> Result<Vec<(&'d SourceFile, String)>> {
        let lint = &self.study.manifest.lint;
        let mut filled = Vec::new();
        let mut problems = Vec::new();
        for source in document.abstract_file.iter().chain(document.files.iter()) {
            let _watch = self.file_limit(source);
            let instrumented = trail::instrument(&source.template, self.trail.len());
            self.trail.extend(trail::template_entries(
                self.env,
                &source.template,
                &source.relative,
                1,
                "prose",
                self.context,
                self.results,
            ));
            if lint.hand_typed_numbers {
                self.warnings.extend(trail::lint_numbers(
                    &source.template,
                    &source.file,
                    &lint.allow_numbers,
                ));
            }
            let render = |text: &str| {
                template::render(self.env, &source.relative, text, &source.file, self.context)
            };
            match render(&instrumented) {
                Ok(text) => filled.push((source, text)),
                // The marks move columns: the error is reported from the template as written.
                Err(marked) => problems.push(render(&source.template).err().unwrap_or(marked)),
            }
        }
        match problems.is_empty() {
            true => Ok(filled),
            false => Err(Failure::new(problems)),
        }
    }

    /// Each block's figures and tables as floats (captions and notes filled in and read), by the
    /// block's index in the document; their trail entries.
    fn floats(
        &mut self,
        document: &Document,
        analysis: &Analysis,
        targets: &Targets,
    ) -> Result<HashMap<usize, Block>> {
        let mut out = HashMap::new();
        let mut problems = Vec::new();
        for (index, block) in document.blocks.iter().enumerate() {
            let Some(result) = analysis.results.get(&block.id) else {
                continue;
            };
            let location = Location::line(&block.file, block.line);
            let _watch = limits::watch(self.study.limits.template_limit(
                format!("evaluating the captions and notes of block `{}`", block.id),
                Some(location.clone()),
            ));
            if let Some(problem) = self.too_many_rows(block, &result.artifacts.tables, &location) {
                problems.push(problem);
                continue;
            }
            for table in &result.artifacts.tables {
                self.caption_trail(block, &table.caption);
                for note in &table.notes {
                    self.caption_trail(block, note);
                }
                self.trail.extend(trail::table_entries(
                    table,
                    &block.id,
                    &block.relative,
                    block.line,
                ));
            }
            for figure in &result.artifacts.figures {
                self.caption_trail(block, &figure.caption);
            }
            let mut floats = Vec::new();
            let mut read = |text: &str| self.inline(text, block, &location, targets);
            for figure in &result.artifacts.figures {
                match read(&figure.caption) {
                    Ok(caption) => floats.push(float(
                        FloatKind::Figure,
                        figure.label.clone(),
                        caption,
                        Vec::new(),
                        FloatBody::Figure(figure.clone()),
                    )),
                    Err(d) => problems.push(d),
                }
            }
            for table in &result.artifacts.tables {
                let caption = read(&table.caption);
                let notes: std::result::Result<Vec<Vec<Inline>>, Diagnostic> =
                    table.notes.iter().map(|n| read(n)).collect();
                match (caption, notes) {
                    (Ok(caption), Ok(notes)) => floats.push(float(
                        FloatKind::Table,
                        table.label.clone(),
                        caption,
                        notes,
                        FloatBody::Table(table.clone()),
                    )),
                    (Err(d), _) | (_, Err(d)) => problems.push(d),
                }
            }
            if !floats.is_empty() {
                let id = block.id.clone();
                out.insert(index, Block::Floats { block: id, floats });
            }
        }
        match problems.is_empty() {
            true => Ok(out),
            false => Err(Failure::new(problems)),
        }
    }

    /// A table of every patient would typeset into hundreds of pages (and minutes); its CSV
    /// under tables/ is the place for it.
    fn too_many_rows(
        &self,
        block: &AnalysisBlock,
        tables: &[Table],
        location: &Location,
    ) -> Option<Diagnostic> {
        let limit = self.study.limits.table_rows;
        let table = tables.iter().find(|t| t.rows.len() > limit)?;
        Some(
            Diagnostic::error(format!(
                "the table of block `{}` has {} rows, more than the limit of {limit} rows in the manuscript (`table_rows`)",
                block.id,
                table.rows.len(),
            ))
            .at(location.clone())
            .hint("tabulate fewer groups, or drop [table] and report the data as a supplement; if the table is intended, raise table_rows under [limits] in study.toml"),
        )
    }

    fn caption_trail(&mut self, block: &AnalysisBlock, text: &str) {
        self.trail.extend(trail::template_entries(
            self.env,
            text,
            &block.relative,
            block.line,
            "caption",
            self.context,
            self.results,
        ));
    }

    /// A caption or a note: filled in, read as inline Markdown. Its problems are located at the
    /// block (warnings, such as a refused link, are kept; the first error is returned).
    fn inline(
        &mut self,
        text: &str,
        block: &AnalysisBlock,
        location: &Location,
        targets: &Targets,
    ) -> std::result::Result<Vec<Inline>, Diagnostic> {
        let filled = template::render_inline(self.env, text, self.context, location)?;
        let (inlines, diagnostics) = markdown::inlines(&filled, &block.file, targets);
        let (errors, notes): (Vec<Diagnostic>, Vec<Diagnostic>) =
            diagnostics.into_iter().partition(Diagnostic::is_error);
        self.warnings
            .extend(notes.into_iter().map(|d| d.at(location.clone())));
        match errors.into_iter().next() {
            Some(d) => Err(d.at(location.clone())),
            None => Ok(inlines),
        }
    }

    /// The filled-in prose read into blocks: the abstract's, and the main text's (each file
    /// opened by a `Source` block).
    fn read_prose(
        &mut self,
        document: &Document,
        prose: &[(&SourceFile, String)],
        targets: &Targets,
        floats: &mut HashMap<usize, Block>,
    ) -> Result<(Option<Vec<Block>>, Vec<Block>)> {
        let mut problems = Vec::new();
        let mut abstract_blocks = None;
        let mut body = Vec::new();
        for (source, text) in prose {
            let (blocks, diagnostics) =
                markdown::blocks(text, &source.file, targets, &mut |i| floats.remove(&i));
            let (errors, notes): (Vec<Diagnostic>, Vec<Diagnostic>) =
                diagnostics.into_iter().partition(Diagnostic::is_error);
            problems.extend(errors);
            self.warnings.extend(notes);
            let is_abstract = document
                .abstract_file
                .as_ref()
                .is_some_and(|a| std::ptr::eq(a, *source));
            if is_abstract {
                abstract_blocks = Some(blocks);
            } else {
                body.push(Block::Source(source.relative.clone()));
                body.extend(blocks);
            }
        }
        match problems.is_empty() {
            true => Ok((abstract_blocks, body)),
            false => Err(Failure::new(problems)),
        }
    }
}

fn float(
    kind: FloatKind,
    label: Option<String>,
    caption: Vec<Inline>,
    notes: Vec<Vec<Inline>>,
    body: FloatBody,
) -> Float {
    Float {
        kind,
        number: 0,
        label,
        caption,
        notes,
        body,
        placement: Placement::MainText,
    }
}

fn front_matter(study: &Study, cutoff: Option<Date>) -> FrontMatter {
    let m = &study.manifest;
    let keys: Vec<&String> = m.affiliations.keys().collect();
    FrontMatter {
        title: m.study.title.clone(),
        short_title: m.study.short_title.clone(),
        authors: m
            .authors
            .iter()
            .map(|a| Author {
                name: a.name.clone(),
                degrees: a.degrees.clone(),
                affiliations: a
                    .affiliations
                    .iter()
                    .filter_map(|k| keys.iter().position(|x| *x == k).map(|i| i + 1))
                    .collect(),
                email: a.email.clone(),
                corresponding: a.corresponding,
            })
            .collect(),
        affiliations: m.affiliations.values().cloned().collect(),
        keywords: m.study.keywords.clone(),
        data_statement: m.study.data_statement.clone(),
        venue: m.study.venue.clone(),
        date: cutoff,
        study: study.name.clone(),
    }
}

/// The cited entries of the bibliography (links checked, `study::bibliography`), and the style.
fn bibliography(
    study: &Study,
    manuscript: &Manuscript,
    warnings: &mut Vec<Diagnostic>,
) -> Result<Option<Bibliography>> {
    let (Some(bib), Some(index)) = (&study.bibliography, &study.bibliography_index) else {
        return Ok(None);
    };
    let text = crate::study::bibliography::utf8(&bib.bytes, &bib.display, "bibliography")?;
    let mut cited = HashSet::new();
    manuscript.walk_inlines(&mut |inline| {
        if let Inline::Cite(items) = inline {
            cited.extend(items.iter().map(|i| i.key.clone()));
        }
    });
    let selected = index.select(text, &cited)?;
    warnings.extend(selected.warnings);
    let style = match &study.csl_file {
        Some(csl) => CslStyle::File {
            file: "style.csl".into(),
            text: csl.text()?.to_string(),
        },
        None => CslStyle::Named(study.manifest.manuscript.csl.clone()),
    };
    Ok(Some(Bibliography {
        file: format!("references.{}", index.format.extension()),
        text: selected.text,
        style,
    }))
}
