//! Numbering, once, on the typed manuscript: figures and tables are counted per kind in reading
//! order (abstract, main text, appendices), as Typst counts them; every cross-reference then gets
//! its target's number, or a heading's text (journals do not number sections).
//! Footnotes and citations are numbered by the renderers in reading order (Typst's and hayagriva's
//! rules; the journal-manuscript work decides other orders).

use std::collections::HashMap;

use super::ir::{Block, FloatKind, Inline, Manuscript, RefTarget, plain_text};

/// Number the floats and resolve every cross-reference.
pub fn number(manuscript: &mut Manuscript) {
    let mut counts: HashMap<FloatKind, usize> = HashMap::new();
    let mut floats: HashMap<String, (FloatKind, usize)> = HashMap::new();
    let mut sections: HashMap<String, String> = HashMap::new();
    let blocks = manuscript
        .abstract_blocks
        .iter_mut()
        .flatten()
        .chain(manuscript.body.iter_mut())
        .chain(
            manuscript
                .appendices
                .iter_mut()
                .flat_map(|a| a.blocks.iter_mut()),
        );
    for block in blocks {
        number_block(block, &mut counts, &mut floats, &mut sections);
    }
    manuscript.walk_inlines_mut(&mut |inline| {
        let Inline::Ref { label, target } = inline else {
            return;
        };
        match target {
            RefTarget::Section { title } => {
                // The first heading with that id (a duplicated id links to the first, as in the PDF).
                if let Some(t) = sections.get(label.as_str()) {
                    *title = t.clone();
                }
            }
            RefTarget::Float { kind, number } => {
                if let Some((k, n)) = floats.get(label.as_str()) {
                    (*kind, *number) = (*k, *n);
                }
            }
        }
    });
}

fn number_block(
    block: &mut Block,
    counts: &mut HashMap<FloatKind, usize>,
    floats: &mut HashMap<String, (FloatKind, usize)>,
    sections: &mut HashMap<String, String>,
) {
    match block {
        Block::Heading {
            id: Some(id),
            content,
            ..
        } => {
            sections
                .entry(id.clone())
                .or_insert_with(|| plain_text(content));
        }
        Block::Floats { floats: list, .. } => {
            for float in list {
                let n = counts.entry(float.kind).or_default();
                *n += 1;
                float.number = *n;
                if let Some(label) = &float.label {
                    floats.entry(label.clone()).or_insert((float.kind, *n));
                }
            }
        }
        Block::Quote(inner) => {
            for b in inner {
                number_block(b, counts, floats, sections);
            }
        }
        Block::List { items, .. } => {
            for b in items.iter_mut().flatten() {
                number_block(b, counts, floats, sections);
            }
        }
        _ => {}
    }
}
