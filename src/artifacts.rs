//! What analysis blocks hand to the manuscript besides their numbers: figures and tables, as typed
//! values. `manuscript.rs` typesets them; `output.rs` writes them as SVG and CSV files.

use serde::{Deserialize, Serialize};

/// A figure drawn by a block: SVG text plus how the manuscript shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// File stem under `figures/` (the block id, or `<id>-<n>` when a block draws several).
    pub name: String,
    pub svg: String,
    /// Markdown (inline) with template expressions already rendered.
    pub caption: String,
    /// Cross-reference label (`fig:km`), used as `@fig:km` in the prose.
    pub label: Option<String>,
    /// Width as a fraction of the text width.
    pub width: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Align {
    Left,
    Center,
    Right,
}

/// One cell: the text as printed and, for numbers, the unrounded value (for the CSV and the trail).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub text: String,
    pub value: Option<f64>,
}

impl Cell {
    pub fn text(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            value: None,
        }
    }

    pub fn number(text: impl Into<String>, value: f64) -> Cell {
        Cell {
            text: text.into(),
            value: Some(value),
        }
    }

    pub fn empty() -> Cell {
        Cell::text("")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub cells: Vec<Cell>,
    /// Indentation level of the first cell (levels of a categorical variable are indented once).
    pub indent: u8,
    /// A section row spanning the table ("Bone metastases").
    pub section: bool,
}

impl Row {
    pub fn new(cells: Vec<Cell>) -> Row {
        Row {
            cells,
            indent: 0,
            section: false,
        }
    }

    pub fn indented(mut self, level: u8) -> Row {
        self.indent = level;
        self
    }
}

/// A column group spanning `span` columns over the header ("Before matching").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnGroup {
    pub label: Option<String>,
    pub span: usize,
}

/// A three-rule table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// File stem under `tables/`.
    pub name: String,
    pub caption: String,
    pub label: Option<String>,
    pub header: Vec<String>,
    pub align: Vec<Align>,
    pub groups: Vec<ColumnGroup>,
    pub rows: Vec<Row>,
    /// Footnotes under the table (tests used, abbreviations), Markdown inline.
    pub notes: Vec<String>,
}

impl Table {
    /// The table as CSV with unrounded numbers where a cell has one (the printed text otherwise).
    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record(self.header.iter().map(|h| spreadsheet_safe(h).into_owned()));
        for row in &self.rows {
            let record: Vec<String> = row
                .cells
                .iter()
                .map(|c| match c.value {
                    Some(v) => spreadsheet_safe(&format!("{v}")).into_owned(),
                    None => spreadsheet_safe(&c.text).into_owned(),
                })
                .collect();
            let _ = w.write_record(&record);
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }
}

/// A CSV cell that a spreadsheet opening the file will show as text, never evaluate. Category
/// levels, labels and captions come from the study folder, and `=HYPERLINK(...)`, `@SUM(...)`,
/// `+cmd|...` in a cell run as a formula in Excel, LibreOffice or Sheets ("CSV injection"). As
/// OWASP advises, a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return (or their
/// full-width forms, which some spreadsheets also read as formulas) gets a leading `'`. Numbers
/// stay numbers: `-1.5` and `+2e-3` are written as they are. Every CSV galley writes goes through
/// here (docs/security.md, "CSV files galley writes").
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠']);
    if risky && !is_plain_number(cell) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// `-12`, `+0.5`, `-1.5e-3`, `-.5`: a decimal number and nothing else (`-1+2` is not one).
fn is_plain_number(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// What a block contributes to the manuscript at the place where it stands.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Artifacts {
    pub figures: Vec<Figure>,
    pub tables: Vec<Table>,
}

impl Artifacts {
    pub fn is_empty(&self) -> bool {
        self.figures.is_empty() && self.tables.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_numbers_kept() {
        for (cell, written) in [
            ("=2+5", "'=2+5"),
            ("@SUM(1+1)", "'@SUM(1+1)"),
            ("+Stage", "'+Stage"),
            ("-1+2", "'-1+2"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("＝1+1", "'＝1+1"),
            ("-", "'-"),
            ("-inf", "'-inf"),
            ("-1.5", "-1.5"),
            ("+2e-3", "+2e-3"),
            ("-.5", "-.5"),
            ("12", "12"),
            ("Stage III", "Stage III"),
            ("a=b", "a=b"),
        ] {
            assert_eq!(spreadsheet_safe(cell), written, "{cell:?}");
        }
    }
}
