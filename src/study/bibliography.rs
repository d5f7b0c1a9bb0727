//! The study's bibliography (BibTeX or Hayagriva YAML): indexed when the study is loaded, then only
//! the entries the manuscript cites are parsed, checked against the link policy and handed to Typst
//! and to the HTML page.
//!
//! Why not parse the whole file: a bibliography may be an export of someone's whole library (an
//! 85 MB BibTeX file of 600,000 entries took 37 s and 10 GB through hayagriva, twice: once in
//! Typst, once for the HTML). The index is one linear pass that records where each entry starts
//! and ends and its key (about 100 bytes an entry); what is parsed, held and typeset is the cited
//! entries, with what they need: the `@string` macros they use and the entries they name in
//! `crossref`, `xref` or `xdata`. The output folder's `references.*` holds exactly that subset.
//!
//! Links: every `url` and `doi` of a cited entry goes through the link policy (`study::links`); a
//! refused one (`javascript:`, `data:`, `file:`, a DOI that is not `10.…`) is cut from the entry
//! with a warning at its line, and the subset is parsed again to make sure no refused link is left
//! (a link the cut cannot reach is an error, never a link in the output).

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use hayagriva::Library;

use crate::diagnostics::{Diagnostic, Failure, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Bibtex,
    Yaml,
}

impl Format {
    pub fn of(relative: &str) -> Format {
        match Path::new(relative).extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml") => {
                Format::Yaml
            }
            _ => Format::Bibtex,
        }
    }

    /// The extension of the subset written into the output folder.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Bibtex => "bib",
            Format::Yaml => "yml",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A citable entry (`@article{key, ...}`, a YAML top-level key).
    Entry,
    /// `@string{name = value}`: macros other entries use.
    Strings,
}

#[derive(Debug, Clone)]
struct Item {
    kind: Kind,
    span: Range<usize>,
}

/// Where the entries of a bibliography are (no entry is parsed yet).
#[derive(Debug, Clone)]
pub struct Index {
    pub format: Format,
    display: PathBuf,
    items: Vec<Item>,
    /// Citable key -> its item (the first, if a key is repeated).
    keys: HashMap<String, usize>,
    /// `@string` macro name (lower case, as BibTeX compares them) -> the items defining it.
    macros: HashMap<String, Vec<usize>>,
}

/// The cited part of a bibliography, checked: the text for `references.<ext>`, and the warnings.
#[derive(Debug, Clone)]
pub struct Selected {
    pub text: String,
    pub warnings: Vec<Diagnostic>,
}

/// `bytes` as UTF-8, or an error at the line and column of the first byte that is not.
pub fn utf8<'a>(
    bytes: &'a [u8],
    display: &Path,
    what: &str,
) -> std::result::Result<&'a str, Diagnostic> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = e.valid_up_to();
        let before = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
        Diagnostic::error(format!(
            "the {what} is not valid UTF-8 text: byte 0x{:02x} here is not part of a UTF-8 character",
            bytes[valid]
        ))
        .at_offset(display, before, valid)
        .hint("save the file as UTF-8 (most editors offer it under \"Save with encoding\")")
    })
}

impl Index {
    /// Index a bibliography file: its text must be UTF-8 and its entries closed.
    pub fn scan(
        bytes: &[u8],
        relative: &str,
        display: &Path,
    ) -> std::result::Result<Index, Diagnostic> {
        let text = utf8(bytes, display, "bibliography")?;
        let format = Format::of(relative);
        let mut index = Index {
            format,
            display: display.to_path_buf(),
            items: Vec::new(),
            keys: HashMap::new(),
            macros: HashMap::new(),
        };
        match format {
            Format::Bibtex => index.scan_bibtex(text)?,
            Format::Yaml => index.scan_yaml(text)?,
        }
        Ok(index)
    }

    /// The citable keys.
    pub fn keys(&self) -> HashSet<String> {
        self.keys.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn error_at(&self, text: &str, offset: usize, message: String) -> Diagnostic {
        Diagnostic::error(message).at_offset(&self.display, text, offset)
    }

    fn push(&mut self, kind: Kind, span: Range<usize>, key: &str) {
        let at = self.items.len();
        if kind == Kind::Entry && !key.is_empty() {
            self.keys.entry(key.to_string()).or_insert(at);
        }
        self.items.push(Item { kind, span });
    }

    /// BibTeX as the `biblatex` crate (hayagriva's and Typst's parser) reads it: `@type{...}`
    /// entries with balanced braces, `"..."` strings inside them, `%` comments to the end of a line.
    fn scan_bibtex(&mut self, text: &str) -> std::result::Result<(), Diagnostic> {
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' => i = line_end(b, i),
                b'@' => {
                    let start = i;
                    let mut j = i + 1;
                    let kind_start = j;
                    while j < b.len() && is_ident(b[j]) {
                        j += 1;
                    }
                    let kind = text[kind_start..j].to_ascii_lowercase();
                    j = skip_space(b, j);
                    if b.get(j) != Some(&b'{') {
                        return Err(self.error_at(
                            text,
                            j.min(b.len()),
                            format!("expected `{{` after `@{kind}` (every `@` outside an entry starts one)"),
                        ));
                    }
                    if kind == "comment" {
                        // As biblatex: everything to the next `}`.
                        i = b[j..]
                            .iter()
                            .position(|&c| c == b'}')
                            .map_or(b.len(), |p| j + p + 1);
                        continue;
                    }
                    let end = entry_end(b, j + 1).ok_or_else(|| {
                        self.error_at(
                            text,
                            start,
                            format!("this `@{kind}` entry is not closed: its braces `{{ }}` (or a `\"` string) do not balance"),
                        )
                    })?;
                    let key_start = skip_space(b, j + 1);
                    let mut key_end = key_start;
                    while key_end < end
                        && !matches!(b[key_end], b',' | b'}')
                        && !b[key_end].is_ascii_whitespace()
                    {
                        key_end += 1;
                    }
                    match kind.as_str() {
                        "string" => {
                            let at = self.items.len();
                            self.push(Kind::Strings, start..end, "");
                            for field in fields(text, j + 1, end, false) {
                                self.macros
                                    .entry(text[field.name.clone()].to_ascii_lowercase())
                                    .or_default()
                                    .push(at);
                            }
                        }
                        // Typst does not print a preamble: nothing to keep.
                        "preamble" => {}
                        _ => {
                            let key = text[key_start..key_end].to_string();
                            self.push(Kind::Entry, start..end, &key);
                        }
                    }
                    i = end;
                }
                _ => i += 1,
            }
        }
        Ok(())
    }

    /// Hayagriva YAML: one entry per top-level key (`key:` at the start of a line), up to the next.
    fn scan_yaml(&mut self, text: &str) -> std::result::Result<(), Diagnostic> {
        let mut offset = 0;
        let mut open: Option<(usize, String)> = None;
        for line in text.split_inclusive('\n') {
            let top_level = !line.starts_with([' ', '\t', '#', '\r', '\n'])
                && !line.starts_with("---")
                && !line.starts_with("...");
            if top_level {
                let Some(colon) = line.find(':') else {
                    return Err(self.error_at(
                        text,
                        offset,
                        "expected an entry's key (`key:`) at the start of this line".into(),
                    ));
                };
                if let Some((start, key)) = open.take() {
                    self.push(Kind::Entry, start..offset, &key);
                }
                let key = line[..colon].trim().trim_matches(['"', '\'']).to_string();
                open = Some((offset, key));
            }
            offset += line.len();
        }
        if let Some((start, key)) = open {
            self.push(Kind::Entry, start..text.len(), &key);
        }
        Ok(())
    }

    /// The items to parse for `cited`: the cited entries, the entries they name (`crossref`,
    /// `xref`, `xdata`) and the macros they use, transitively; in file order.
    fn closure(&self, text: &str, cited: &HashSet<String>) -> Vec<usize> {
        let mut chosen: HashSet<usize> = HashSet::new();
        let mut queue: Vec<usize> = cited
            .iter()
            .filter_map(|k| self.keys.get(k).copied())
            .collect();
        while let Some(at) = queue.pop() {
            if !chosen.insert(at) {
                continue;
            }
            if self.format == Format::Yaml {
                continue;
            }
            let item = &self.items[at];
            let is_entry = item.kind == Kind::Entry;
            for field in fields(text, body_start(text, item), item.span.end, is_entry) {
                let name = text[field.name.clone()].to_ascii_lowercase();
                if is_entry && matches!(name.as_str(), "crossref" | "xref" | "xdata") {
                    let value = text[field.value.clone()].trim_matches(['{', '}', '"']);
                    queue.extend(
                        value
                            .split(',')
                            .filter_map(|k| self.keys.get(k.trim()).copied()),
                    );
                }
                for word in &field.words {
                    if let Some(defs) = self.macros.get(&text[word.clone()].to_ascii_lowercase()) {
                        queue.extend(defs.iter().copied());
                    }
                }
            }
        }
        let mut chosen: Vec<usize> = chosen.into_iter().collect();
        chosen.sort_unstable();
        chosen
    }

    /// Parse and check the cited entries of `text` (the file this index was made from).
    pub fn select(&self, text: &str, cited: &HashSet<String>) -> Result<Selected> {
        let chosen = self.closure(text, cited);
        let mut cuts: HashSet<(usize, String)> = HashSet::new();
        let mut warnings = Vec::new();
        // Twice at most: the first parse finds the refused links, the second checks they are gone.
        for round in 0..2 {
            let (subset, pieces) = self.subset(text, &chosen, &cuts);
            let library = self.parse(text, &subset, &pieces)?;
            let refused = refused_links(&library);
            if refused.is_empty() {
                return Ok(Selected {
                    text: subset,
                    warnings,
                });
            }
            let mut problems = Vec::new();
            for (key, field, value, why) in refused {
                let at = self.keys.get(&key).copied();
                let found = at.map(|at| (at, self.fields_named(text, at, field)));
                match found.filter(|(_, found)| round == 0 && !found.is_empty()) {
                    Some((at, found)) => {
                        cuts.insert((at, field.to_string()));
                        warnings.push(
                            Diagnostic::warning(format!(
                                "the `{field}` of reference `{key}` is refused: `{}`: {why}; the reference is printed without it",
                                crate::study::links::shown(&value)
                            ))
                            .at_offset(&self.display, text, found[0])
                            .hint("links may be http, https or mailto addresses; a DOI is `10.…/…` (galley links it to https://doi.org)"),
                        );
                    }
                    // Inherited (a `crossref` parent's field): cut in the parent, checked below.
                    None if round == 0 => {}
                    None => problems.push({
                        let d = Diagnostic::error(format!(
                            "the `{field}` of reference `{key}` is refused (`{}`: {why}) and galley cannot remove it from the entry",
                            crate::study::links::shown(&value)
                        ))
                        .hint("remove the field (or the `crossref`/`parent` that brings it)");
                        match at {
                            Some(at) => d.at_offset(&self.display, text, self.items[at].span.start),
                            None => d.in_file(&self.display),
                        }
                    }),
                }
            }
            if !problems.is_empty() {
                return Err(Failure::new(problems));
            }
        }
        Err(
            Diagnostic::error("the bibliography's refused links could not be removed")
                .in_file(&self.display)
                .into(),
        )
    }

    /// Offsets (in `text`) of the fields named `name` in item `at` (BibTeX fields; YAML lines
    /// `name:` at any depth of the entry).
    fn fields_named(&self, text: &str, at: usize, name: &str) -> Vec<usize> {
        self.field_spans(text, at, name)
            .into_iter()
            .map(|r| r.start)
            .collect()
    }

    fn field_spans(&self, text: &str, at: usize, name: &str) -> Vec<Range<usize>> {
        let item = &self.items[at];
        match self.format {
            Format::Bibtex => fields(text, body_start(text, item), item.span.end, true)
                .into_iter()
                .filter(|f| text[f.name.clone()].eq_ignore_ascii_case(name))
                .map(|f| f.span)
                .collect(),
            Format::Yaml => yaml_fields(text, item.span.clone(), name),
        }
    }

    /// The chosen items' text, without the cut fields, and where each piece came from
    /// (subset offset, file offset, length).
    fn subset(
        &self,
        text: &str,
        chosen: &[usize],
        cuts: &HashSet<(usize, String)>,
    ) -> (String, Vec<(usize, usize, usize)>) {
        let mut out = String::new();
        let mut pieces = Vec::new();
        for &at in chosen {
            let span = self.items[at].span.clone();
            let mut removed: Vec<Range<usize>> = cuts
                .iter()
                .filter(|(i, _)| *i == at)
                .flat_map(|(_, name)| self.field_spans(text, at, name))
                .collect();
            removed.sort_by_key(|r| r.start);
            let mut from = span.start;
            for r in removed.iter().chain(std::iter::once(&(span.end..span.end))) {
                if r.start >= from {
                    pieces.push((out.len(), from, r.start - from));
                    out.push_str(&text[from..r.start]);
                    from = r.end;
                }
            }
            out.push('\n');
        }
        (out, pieces)
    }

    fn parse(&self, text: &str, subset: &str, pieces: &[(usize, usize, usize)]) -> Result<Library> {
        // A position in the subset, as a position in the file.
        let original = |at: usize| {
            pieces
                .iter()
                .rev()
                .find(|(start, _, _)| *start <= at)
                .map_or(0, |(start, from, len)| from + (at - start).min(*len))
        };
        match self.format {
            Format::Yaml => hayagriva::io::from_yaml_str(subset).map_err(|e| {
                let d = Diagnostic::error(format!("the bibliography could not be read: {e}"));
                match e.location() {
                    Some(l) => d.at_offset(&self.display, text, original(l.index())),
                    None => d.in_file(&self.display),
                }
                .into()
            }),
            Format::Bibtex => hayagriva::io::from_biblatex_str(subset).map_err(|errors| {
                Failure::new(
                    errors
                        .iter()
                        .take(20)
                        .map(|e| {
                            let start = match e {
                                hayagriva::io::BibLaTeXError::Parse(p) => p.span.start,
                                hayagriva::io::BibLaTeXError::Type(t) => t.span.start,
                            };
                            Diagnostic::error(format!("the bibliography could not be read: {e}"))
                                .at_offset(&self.display, text, original(start))
                        })
                        .collect(),
                )
            }),
        }
    }
}

/// Every link of a parsed library the policy refuses: (entry key, field, value, why).
fn refused_links(library: &Library) -> Vec<(String, &'static str, String, String)> {
    fn visit(
        key: &str,
        entry: &hayagriva::Entry,
        out: &mut Vec<(String, &'static str, String, String)>,
    ) {
        if let Some(url) = entry.url()
            && let Err(why) = crate::study::links::external(url.value.as_str())
        {
            out.push((key.to_string(), "url", url.value.to_string(), why));
        }
        if let Some(doi) = entry.doi()
            && crate::study::links::doi(doi).is_none()
        {
            out.push((
                key.to_string(),
                "doi",
                doi.to_string(),
                "a DOI is `10.` followed by a prefix, `/` and a suffix, not an address".into(),
            ));
        }
        for parent in entry.parents() {
            visit(key, parent, out);
        }
    }
    let mut out = Vec::new();
    for entry in library.iter() {
        visit(entry.key(), entry, &mut out);
    }
    out
}

fn is_ident(c: u8) -> bool {
    !c.is_ascii_whitespace()
        && !matches!(
            c,
            b'@' | b'{'
                | b'}'
                | b'"'
                | b'#'
                | b'\''
                | b'('
                | b')'
                | b','
                | b'='
                | b'%'
                | b'\\'
                | b'~'
        )
}

fn skip_space(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn line_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| i + p + 1)
}

/// The end (after its `}`) of an entry whose body starts at `i` (after its `{`).
fn entry_end(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 1usize;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b'"' if depth == 1 => {
                i = string_end(b, i + 1)?;
                continue;
            }
            b'%' if depth == 1 => {
                i = line_end(b, i);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// After the `"` that closes a string starting at `i`.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'"' => return Some(i + 1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// After the `}` matching the `{` at `i`.
fn braced_end(b: &[u8], mut i: usize, end: usize) -> usize {
    let mut depth = 0usize;
    while i < end {
        match b[i] {
            b'\\' => i += 1,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    end
}

fn body_start(text: &str, item: &Item) -> usize {
    text[item.span.clone()]
        .find('{')
        .map_or(item.span.end, |p| item.span.start + p + 1)
}

/// A BibTeX field: `name = value # value ...,`.
#[derive(Debug)]
struct Field {
    name: Range<usize>,
    value: Range<usize>,
    /// From the name to the end of its trailing comma: what is cut to remove the field.
    span: Range<usize>,
    /// Bare words in the value: macro names.
    words: Vec<Range<usize>>,
}

/// The fields of an entry body `[start, end)` (after the `{`, up to and with the closing `}`);
/// `keyed`: the body starts with the entry's key and a comma. Stops at the first thing that is
/// not a field (the full parser reports it).
fn fields(text: &str, start: usize, end: usize, keyed: bool) -> Vec<Field> {
    let b = text.as_bytes();
    let end = end.min(b.len());
    let mut i = start;
    if keyed {
        match b[start..end].iter().position(|&c| c == b',') {
            Some(p) => i = start + p + 1,
            None => return Vec::new(),
        }
    }
    let mut out = Vec::new();
    loop {
        loop {
            i = skip_space(b, i);
            if i < end && b[i] == b'%' {
                i = line_end(b, i);
            } else {
                break;
            }
        }
        let name_start = i;
        while i < end && is_ident(b[i]) {
            i += 1;
        }
        if i == name_start {
            return out;
        }
        let name = name_start..i;
        i = skip_space(b, i);
        if i >= end || b[i] != b'=' {
            return out;
        }
        i = skip_space(b, i + 1);
        let value_start = i;
        let mut words = Vec::new();
        loop {
            match b.get(i) {
                Some(b'{') => i = braced_end(b, i, end),
                Some(b'"') => i = string_end(b, i + 1).unwrap_or(end).min(end),
                Some(&c) if is_ident(c) => {
                    let w = i;
                    while i < end && is_ident(b[i]) {
                        i += 1;
                    }
                    words.push(w..i);
                }
                _ => return out,
            }
            let value_end = i;
            i = skip_space(b, i);
            if i < end && b[i] == b'#' {
                i = skip_space(b, i + 1);
                continue;
            }
            let mut span_end = i;
            if i < end && b[i] == b',' {
                i += 1;
                span_end = i;
            }
            out.push(Field {
                name: name.clone(),
                value: value_start..value_end,
                span: name_start..span_end,
                words,
            });
            break;
        }
    }
}

/// YAML lines `name:` inside an entry (not its key line), each with the lines indented under it.
fn yaml_fields(text: &str, span: Range<usize>, name: &str) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut offset = span.start;
    let mut open: Option<(usize, usize)> = None; // (start, indent)
    for line in text[span.clone()].split_inclusive('\n') {
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        let blank = line.trim().is_empty();
        if let Some((start, at)) = open
            && !blank
            && indent <= at
        {
            out.push(start..offset);
            open = None;
        }
        let t = line[indent..].trim_start_matches("- ");
        if open.is_none()
            && indent > 0
            && let Some(rest) = t.strip_prefix(name)
            && rest.trim_start().starts_with(':')
        {
            open = Some((offset, indent));
        }
        offset += line.len();
    }
    if let Some((start, _)) = open {
        out.push(start..span.end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(text: &str, name: &str) -> Index {
        Index::scan(text.as_bytes(), name, Path::new(name)).unwrap()
    }

    fn keys(list: &[&str]) -> HashSet<String> {
        list.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn only_cited_entries_and_what_they_need_are_kept() {
        let bib = "@string{j = {Journal}}\n@string{unused = {U}}\n% @article{ghost, title={x}}\n\
            @article{a, title = {A {nested} \"q\"}, journal = j, crossref = {b}}\n\
            @book{b, title = \"B\" # j}\n@misc{c, title={C}}\n";
        let ix = index(bib, "r.bib");
        assert_eq!(ix.keys(), keys(&["a", "b", "c"]));
        let sel = ix.select(bib, &keys(&["a"])).unwrap();
        assert!(sel.text.contains("@article{a"), "{}", sel.text);
        assert!(sel.text.contains("@book{b"), "{}", sel.text);
        assert!(sel.text.contains("@string{j"), "{}", sel.text);
        assert!(
            !sel.text.contains("unused") && !sel.text.contains("@misc"),
            "{}",
            sel.text
        );
    }

    #[test]
    fn refused_links_are_cut_with_a_warning() {
        let bib = "@string{js = \"javascript:alert(1)\"}\n@misc{a, title={A}, url = js}\n\
            @misc{b, title={B}, url = {JaVaScRiPt:alert(document.domain)}, doi = {javascript:x}}\n\
            @misc{c, title={C}, url={https://example.org}, doi={10.1000/x}}\n";
        let ix = index(bib, "r.bib");
        let sel = ix.select(bib, &keys(&["a", "b", "c"])).unwrap();
        // The macro stays (it prints nothing); no entry uses it or any other refused link.
        let entries = sel
            .text
            .replace("@string{js = \"javascript:alert(1)\"}", "");
        assert!(!entries.to_lowercase().contains("javascript"), "{entries}");
        assert!(!entries.contains("= js"), "{entries}");
        assert!(sel.text.contains("https://example.org") && sel.text.contains("10.1000/x"));
        assert_eq!(sel.warnings.len(), 3, "{:?}", sel.warnings);
        assert!(
            sel.warnings
                .iter()
                .all(|w| w.location.as_ref().is_some_and(|l| l.line.is_some()))
        );
    }

    #[test]
    fn yaml_entries_are_split_by_top_level_keys() {
        let yml = "# refs\na:\n  type: misc\n  title: A\n  url: javascript:alert(1)\nb:\n  type: misc\n  title: B\n";
        let ix = index(yml, "r.yml");
        assert_eq!(ix.keys(), keys(&["a", "b"]));
        let sel = ix.select(yml, &keys(&["a"])).unwrap();
        assert!(
            !sel.text.contains("javascript") && !sel.text.contains("b:"),
            "{}",
            sel.text
        );
        assert_eq!(sel.warnings.len(), 1);
    }

    #[test]
    fn broken_files_are_located() {
        let e = Index::scan(b"@misc{a, title={x}\n", "r.bib", Path::new("r.bib")).unwrap_err();
        assert!(e.message.contains("not closed"), "{e}");
        let e = Index::scan(b"@misc{a,\n title={\xff}}", "r.bib", Path::new("r.bib")).unwrap_err();
        assert!(e.to_string().contains("r.bib:2:"), "{e}");
    }
}
