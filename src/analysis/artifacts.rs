//! What analysis blocks hand to the manuscript besides their numbers: figures and tables, as typed
//! values. The document stage places them as floats of the typed manuscript; the renderers show them; the
//! pipeline writes them as SVG and CSV files.

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
    /// The table as CSV (`tables/<name>.csv`) with unrounded numbers where a cell has one (the
    /// printed text otherwise). An error, naming the file, when a row's cells do not match the
    /// header: the CSV writer would leave that row out.
    pub fn csv(&self) -> Result<String, String> {
        let file = format!("tables/{}.csv", self.name);
        if let Some((i, row)) = self
            .rows
            .iter()
            .enumerate()
            .find(|(_, r)| r.cells.len() != self.header.len())
        {
            return Err(format!(
                "{file}: row {} has {} cells but the header has {} columns",
                i + 1,
                row.cells.len(),
                self.header.len()
            ));
        }
        let fail = |e: &dyn std::fmt::Display| format!("{file}: cannot write the CSV: {e}");
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(self.header.iter().map(|h| spreadsheet_safe(h).into_owned()))
            .map_err(|e| fail(&e))?;
        for row in &self.rows {
            let record: Vec<String> = row
                .cells
                .iter()
                .map(|c| match c.value {
                    Some(v) => spreadsheet_safe(&format!("{v}")).into_owned(),
                    None => spreadsheet_safe(&c.text).into_owned(),
                })
                .collect();
            w.write_record(&record).map_err(|e| fail(&e))?;
        }
        let bytes = w.into_inner().map_err(|e| fail(&e))?;
        String::from_utf8(bytes).map_err(|e| fail(&e))
    }
}

pub use crate::records::spreadsheet_safe;

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

    /// A table with a row shorter than its header.
    fn ragged() -> Table {
        Table {
            name: "t".into(),
            caption: String::new(),
            label: None,
            header: vec!["a".into(), "b".into()],
            align: vec![Align::Left, Align::Left],
            groups: Vec::new(),
            rows: vec![
                Row::new(vec![Cell::text("1"), Cell::number("2.0", 2.0)]),
                Row::new(vec![Cell::text("3")]),
            ],
            notes: Vec::new(),
        }
    }

    #[test]
    fn a_ragged_table_is_an_error_naming_the_file_and_row() {
        assert_eq!(
            ragged().csv(),
            Err("tables/t.csv: row 2 has 1 cells but the header has 2 columns".to_string())
        );
        let mut fixed = ragged();
        fixed.rows[1].cells.push(Cell::empty());
        assert_eq!(fixed.csv(), Ok("a,b\n1,2\n3,\n".to_string()));
    }

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
