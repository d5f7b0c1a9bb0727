//! Transforms of the typed manuscript that add what a build was asked for, so every renderer shows
//! it: audit links (each reported value links to its trail entry), the audit-trail appendix, and the
//! "Changes since the previous report" appendix.

use super::ir::{Appendix, Block, Column, Grid, Inline, Manuscript, Width};
use super::trail::TrailEntry;
use crate::analysis::artifacts::Align::{self, Left, Right};
use crate::records::diff::DiffReport;

/// `--audit`: every reported value links to its entry in the audit-trail appendix, added last.
pub fn audit_trail(manuscript: &mut Manuscript, entries: &[TrailEntry]) {
    manuscript.walk_inlines_mut(&mut |inline| {
        if let Inline::Value { link, trail, .. } = inline {
            *link = *trail < entries.len();
        }
    });
    let rows = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let sources: Vec<String> = e
                .sources
                .iter()
                .map(|s| format!("{} = {}", s.path, s.value))
                .collect();
            vec![
                vec![Inline::Anchor(anchor(i)), text((i + 1).to_string())],
                vec![text(format!("{}:{}", e.file, e.line))],
                vec![Inline::Mono(vec![text(breakable(&e.expression))])],
                vec![text(breakable(&sources.join("; ")))],
                vec![text(e.text.as_deref().unwrap_or("(in a loop)"))],
            ]
        })
        .collect();
    manuscript.appendices.push(Appendix {
        id: "appendix-audit-trail".into(),
        title: "Appendix: audit trail".into(),
        blocks: vec![
            Block::Para(vec![text(
                "Every value the text and tables show, with where it appears, the expression that printed it, and the unrounded block results it came from. Numbers in the text link here.",
            )]),
            Block::Grid(Grid {
                columns: columns(&[
                    (Right, Width::Auto),
                    (Left, Width::Auto),
                    (Left, Width::Fraction(1.0)),
                    (Left, Width::Fraction(1.2)),
                    (Right, Width::Auto),
                ]),
                header: header(&["#", "Where", "Expression", "Source values", "Printed"]),
                rows,
            }),
        ],
    });
}

/// The id of trail entry `i` (0-based), which a linked value points to.
pub fn anchor(i: usize) -> String {
    format!("trail-{i}")
}

/// The changes from the report recorded in `previous` (its folder, as the manifest names it).
pub fn changes(manuscript: &mut Manuscript, report: &DiffReport, previous: &str) {
    let list = |items: &[String]| match items.is_empty() {
        true => "none".to_string(),
        false => items.join(", "),
    };
    let cutoffs = match (&report.old_cutoff, &report.new_cutoff) {
        (Some(a), Some(b)) if a != b => format!("The data cutoff moved from {a} to {b}. "),
        _ => String::new(),
    };
    let mut blocks = vec![Block::Para(vec![text(format!(
        "Compared with the report recorded in {previous}. {cutoffs}Inputs changed: {}. Blocks with changed results: {}. Blocks unchanged: {}. Reported values that changed: {}.",
        list(&report.changed_inputs),
        list(&report.changed_blocks),
        list(&report.unchanged_blocks),
        report.changed_values.len()
    ))])];
    if !report.changed_values.is_empty() {
        let rows = report
            .changed_values
            .iter()
            .map(|c| {
                let change = match (c.absolute_change, c.relative_change) {
                    (Some(a), Some(r)) => format!("{a:+.3} ({:+.1}%)", r * 100.0),
                    (Some(a), None) => format!("{a:+.3}"),
                    _ => String::new(),
                };
                vec![
                    vec![text(format!("{}:{}", c.file, c.line))],
                    vec![Inline::Mono(vec![text(
                        c.expression.replace('.', ".\u{200B}"),
                    )])],
                    vec![text(c.old_text.as_deref().unwrap_or("(new)"))],
                    vec![text(c.new_text.as_deref().unwrap_or("\u{2013}"))],
                    vec![text(change)],
                ]
            })
            .collect();
        blocks.push(Block::Grid(Grid {
            columns: columns(&[
                (Left, Width::Auto),
                (Left, Width::Fraction(1.0)),
                (Right, Width::Auto),
                (Right, Width::Auto),
                (Right, Width::Auto),
            ]),
            header: header(&["Where", "Expression", "Previous", "Now", "Change"]),
            rows,
        }));
    }
    manuscript.appendices.push(Appendix {
        id: "appendix-changes".into(),
        title: "Changes since the previous report".into(),
        blocks,
    });
}

fn text(t: impl Into<String>) -> Inline {
    Inline::Text(t.into())
}

fn columns(spec: &[(Align, Width)]) -> Vec<Column> {
    spec.iter()
        .map(|&(align, width)| Column { align, width })
        .collect()
}

fn header(names: &[&str]) -> Vec<Vec<Inline>> {
    names.iter().map(|n| vec![text(*n)]).collect()
}

/// Long paths and JSON have no spaces: a zero-width space after `.` and `,` and before `[` lets a
/// narrow column break them.
fn breakable(t: &str) -> String {
    t.replace('.', ".\u{200B}")
        .replace(',', ",\u{200B}")
        .replace('[', "\u{200B}[")
}
