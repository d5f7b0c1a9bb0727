//! Manuscript Markdown -> a `Document`: the prose (still a template) and the analysis blocks it holds.
//!
//! Analysis blocks are fenced code blocks whose info string is `analysis`; their body is a TOML spec
//! with an `id` and a `kind`. Each block is cut out of the prose and replaced by a marker fence of the
//! same number of lines, so that template errors in the prose still report the file's real line numbers,
//! and the renderer later puts the block's table or figure exactly where the block stood.

use std::collections::HashMap;
use std::path::PathBuf;

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

use crate::diagnostics::{Diagnostic, Failure, Result};
use crate::study::InputFile;

/// Info string of the fence that marks where block `N` stood (`galley-block N`).
pub const BLOCK_MARKER: &str = "galley-block";

#[derive(Debug, Clone)]
pub struct AnalysisBlock {
    pub id: String,
    pub kind: String,
    /// The TOML body as written.
    pub body: String,
    /// Parsed body (ids, kinds and shared keys are read from it; each kind re-parses `body` typed).
    pub table: toml::Table,
    pub file: PathBuf,
    /// Relative name of the manuscript file (`manuscript/02-methods.md`).
    pub relative: String,
    /// Byte offset of the body in the file, and the file's text (to locate errors inside the spec).
    pub body_offset: usize,
    pub file_text: std::sync::Arc<str>,
    /// 1-based line of the opening fence.
    pub line: usize,
}

impl AnalysisBlock {
    /// A diagnostic located at byte `offset` of the block's body (or the fence when unknown).
    pub fn error_at(&self, message: impl Into<String>, offset: Option<usize>) -> Diagnostic {
        let at = self.body_offset + offset.unwrap_or(0).min(self.body.len());
        Diagnostic::error(message).at_offset(&self.file, &self.file_text, at)
    }

    /// A diagnostic about the block as a whole, pointing at the key `key` if present, else the fence.
    pub fn error_at_key(&self, message: impl Into<String>, key: &str) -> Diagnostic {
        let offset = self
            .body
            .lines()
            .scan(0usize, |pos, line| {
                let start = *pos;
                *pos += line.len() + 1;
                Some((start, line))
            })
            .find(|(_, line)| {
                let t = line.trim_start();
                t.starts_with(key) && t[key.len()..].trim_start().starts_with('=')
            })
            .map(|(start, line)| start + (line.len() - line.trim_start().len()));
        self.error_at(message, offset)
    }

    /// Parse the body into a kind's typed spec; serde errors are located in the manuscript file, a
    /// key a later format renamed or removed says what to write instead, a near miss of a known key
    /// gets a "did you mean" (`study::compat`).
    pub fn parse_spec<T: serde::de::DeserializeOwned>(&self) -> std::result::Result<T, Diagnostic> {
        self.parse_spec_with(crate::study::compat::BLOCK_CHANGES)
    }

    pub(crate) fn parse_spec_with<T: serde::de::DeserializeOwned>(
        &self,
        changes: &[crate::study::compat::KeyChange],
    ) -> std::result::Result<T, Diagnostic> {
        toml::from_str(&self.body).map_err(|e| {
            let prefix = format!("in analysis block `{}` ({}): ", self.id, self.kind);
            let located = self.error_at(
                format!("{prefix}{}", e.message().trim()),
                e.span().map(|s| s.start),
            );
            crate::study::compat::explain(e.message(), e.span(), &self.body, &[&self.kind], changes)
                .apply(located, &prefix)
        })
    }
}

/// One manuscript file: its prose as a template (blocks replaced by markers) and its blocks.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub file: PathBuf,
    pub relative: String,
    pub template: String,
}

#[derive(Debug, Clone, Default)]
pub struct Document {
    pub abstract_file: Option<SourceFile>,
    pub files: Vec<SourceFile>,
    /// Every block of every file, in reading order (abstract first); markers index this list.
    pub blocks: Vec<AnalysisBlock>,
}

pub fn markdown_options() -> pulldown_cmark::Options {
    use pulldown_cmark::Options;
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_SMART_PUNCTUATION
        | Options::ENABLE_HEADING_ATTRIBUTES
}

impl Document {
    pub fn parse(abstract_file: Option<&InputFile>, files: &[InputFile]) -> Result<Document> {
        let mut doc = Document::default();
        let mut problems = Vec::new();
        if let Some(f) = abstract_file {
            match doc.add_file(f) {
                Ok(s) => doc.abstract_file = Some(s),
                Err(d) => problems.extend(d),
            }
        }
        for f in files {
            match doc.add_file(f) {
                Ok(s) => doc.files.push(s),
                Err(d) => problems.extend(d),
            }
        }
        let mut seen: HashMap<&str, &AnalysisBlock> = HashMap::new();
        for block in &doc.blocks {
            if let Some(first) = seen.get(block.id.as_str()) {
                problems.push(
                    block
                        .error_at_key(
                            format!(
                                "duplicate analysis block id `{}` (first defined at {}:{})",
                                block.id,
                                first.file.display(),
                                first.line
                            ),
                            "id",
                        )
                        .hint("every block needs its own id: templates refer to results by it"),
                );
            } else {
                seen.insert(&block.id, block);
            }
        }
        if problems.is_empty() {
            Ok(doc)
        } else {
            Err(Failure::new(problems))
        }
    }

    fn add_file(&mut self, input: &InputFile) -> std::result::Result<SourceFile, Vec<Diagnostic>> {
        // CR-only line ends: pulldown-cmark would see one line, and the templates' `{{` spans
        // across "lines" would not be found (an "undefined value" far from the cause).
        let text = crate::diagnostics::lone_cr_to_lf(input.text().map_err(|d| vec![d])?);
        let text = &*text;
        let shared: std::sync::Arc<str> = text.into();
        let mut template = String::with_capacity(text.len());
        let mut copied = 0;
        let mut problems = Vec::new();

        let mut in_block: Option<(usize, usize)> = None; // (fence start, body start)
        let mut body_range: Option<std::ops::Range<usize>> = None;
        for (event, range) in Parser::new_ext(text, markdown_options()).into_offset_iter() {
            match event {
                Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info)))
                    if info.split_whitespace().next() == Some("analysis") =>
                {
                    // The body starts on the line after the opening fence.
                    let body_start = text[range.start..]
                        .find('\n')
                        .map_or(range.end, |i| range.start + i + 1);
                    in_block = Some((range.start, body_start));
                    body_range = None;
                }
                Event::Text(_) if in_block.is_some() => {
                    let r = body_range.get_or_insert(range.clone());
                    r.end = range.end;
                }
                Event::End(TagEnd::CodeBlock) if in_block.is_some() => {
                    let (fence_start, body_start) = in_block.take().unwrap_or_default();
                    let body = body_range.take().map_or("", |r| &text[r]);
                    let line = text[..fence_start].matches('\n').count() + 1;
                    let index = self.blocks.len();
                    match parse_block(body, input, &shared, body_start, line) {
                        Ok(block) => self.blocks.push(block),
                        Err(d) => problems.push(d),
                    }
                    // Replace the fenced block by a marker fence spanning the same lines.
                    let end = range.end;
                    template.push_str(&text[copied..fence_start]);
                    let lines = text[fence_start..end]
                        .trim_end_matches('\n')
                        .matches('\n')
                        .count();
                    template.push_str(&format!("```{BLOCK_MARKER} {index}"));
                    for _ in 1..lines {
                        template.push('\n');
                    }
                    template.push_str("\n```");
                    // As many line ends as the block had after its last line (more than one when
                    // an unclosed fence runs to the end of the file; found by fuzzing).
                    let block = &text[fence_start..end];
                    for _ in 0..block.len() - block.trim_end_matches('\n').len() {
                        template.push('\n');
                    }
                    copied = end;
                }
                _ => {}
            }
        }
        template.push_str(&text[copied..]);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(SourceFile {
            file: input.display.clone(),
            relative: input.relative.clone(),
            template,
        })
    }
}

pub(crate) fn parse_block(
    body: &str,
    input: &InputFile,
    file_text: &std::sync::Arc<str>,
    body_offset: usize,
    line: usize,
) -> std::result::Result<AnalysisBlock, Diagnostic> {
    let locate = |msg: String, offset: usize| {
        Diagnostic::error(msg).at_offset(&input.display, file_text, body_offset + offset)
    };
    let table: toml::Table = toml::from_str(body).map_err(|e| {
        locate(
            format!("analysis block is not valid TOML: {}", e.message().trim()),
            e.span().map_or(0, |s| s.start),
        )
    })?;
    let fence_error = |msg: &str| {
        Diagnostic::error(msg.to_string())
            .at(crate::diagnostics::Location::line(&input.display, line))
            .hint("an analysis block starts with `id = \"...\"` and `kind = \"...\"`")
    };
    let id = match table.get("id") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(_) => return Err(fence_error("the block's `id` must be a string")),
        None => return Err(fence_error("analysis block has no `id`")),
    };
    if !is_identifier(&id) {
        return Err(fence_error(&format!(
            "block id `{id}` must start with a letter and hold only letters, digits and `_` (templates use it as a name)"
        )));
    }
    let kind = match table.get("kind") {
        Some(toml::Value::String(s)) => s.clone(),
        _ => {
            return Err(fence_error(&format!(
                "analysis block `{id}` has no string `kind`"
            )));
        }
    };
    Ok(AnalysisBlock {
        id,
        kind,
        body: body.to_string(),
        table,
        file: input.display.clone(),
        relative: input.relative.clone(),
        body_offset,
        file_text: file_text.clone(),
        line,
    })
}

pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(text: &str) -> InputFile {
        InputFile {
            relative: "m.md".into(),
            display: "m.md".into(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn blocks_are_cut_out_and_lines_are_kept() {
        let text = "# Title\n\nSome {{ a.n }} text.\n\n```analysis\nid = \"a\"\nkind = \"count\"\ndata = \"p\"\n```\n\nAfter {{ a.n }}.\n";
        let doc = Document::parse(None, &[input(text)]).unwrap();
        assert_eq!(doc.blocks.len(), 1);
        assert_eq!(doc.blocks[0].id, "a");
        assert_eq!(doc.blocks[0].line, 5);
        let t = &doc.files[0].template;
        assert_eq!(t.lines().count(), text.lines().count());
        assert!(t.contains("```galley-block 0"), "{t}");
        assert_eq!(t.lines().nth(10), Some("After {{ a.n }}."));
    }

    #[test]
    fn duplicate_ids_and_missing_kind_are_located() {
        let text = "```analysis\nid = \"a\"\nkind = \"count\"\n```\n\n```analysis\nid = \"a\"\nkind = \"count\"\n```\n";
        let err = Document::parse(None, &[input(text)]).unwrap_err();
        assert!(
            err.to_string().contains("duplicate analysis block id `a`"),
            "{err}"
        );
        assert_eq!(err.diagnostics[0].location.as_ref().unwrap().line, Some(7));

        let err =
            Document::parse(None, &[input("text\n\n```analysis\nid = \"b\"\n```\n")]).unwrap_err();
        assert!(err.to_string().contains("has no string `kind`"), "{err}");
        assert_eq!(err.diagnostics[0].location.as_ref().unwrap().line, Some(3));
    }

    #[test]
    fn bad_toml_points_into_the_block() {
        let err = Document::parse(
            None,
            &[input("x\n\n```analysis\nid = \"b\"\nkind = = 1\n```\n")],
        )
        .unwrap_err();
        assert_eq!(
            err.diagnostics[0].location.as_ref().unwrap().line,
            Some(5),
            "{err}"
        );
    }
}
