//! `reproduction`: the published-versus-reproduced table, placed where the block stands (usually an
//! appendix). It compares the study's `published.toml` with the results of the blocks before it.

use serde::Deserialize;
use serde_json::json;

use super::{BlockEnv, Output, TableSpec};
use crate::analysis::artifacts::{Align, Cell, Row, Table};
use crate::analysis::numfmt;
use crate::diagnostics::Diagnostic;
use crate::study::published;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    #[allow(dead_code)]
    id: String,
    #[allow(dead_code)]
    kind: String,
    table: Option<TableSpec>,
}

pub fn reproduction(env: &BlockEnv) -> Result<Output, Diagnostic> {
    let spec: Spec = env.block.parse_spec()?;
    let published = env.settings.published.as_ref().ok_or_else(|| {
        env.error("kind", "the study has no published values")
            .hint("name the file in study.toml: [manuscript] published = \"published.toml\"")
    })?;
    let results: serde_json::Map<String, serde_json::Value> = env
        .results
        .iter()
        .map(|(id, r)| (id.clone(), r.value.clone()))
        .collect();
    let rows = published::compare(published, &serde_json::Value::Object(results)).map_err(|m| {
        env.error(
            "kind",
            format!("{m} (blocks run in reading order: put this block after the ones it compares)"),
        )
    })?;
    let n_within = rows.iter().filter(|r| r.within).count();
    let value = json!({
        "rows": rows,
        "n": rows.len(),
        "n_within": n_within,
        "all_within": n_within == rows.len(),
    });
    let mut output = Output::value(value);
    if let Some(t) = spec.table {
        let rules = &env.settings.format;
        let table_rows = rows
            .iter()
            .map(|r| {
                let show = |x: f64| numfmt::fixed(x, r.digits);
                let tolerance = match &r.tolerance {
                    // Both bounds are numbers (checked when published.toml is read).
                    serde_json::Value::Array(a) if a.len() == 2 => format!(
                        "{}{}{}",
                        a[0].as_f64().map(|x| x.to_string()).unwrap_or_default(),
                        rules.range_separator,
                        a[1].as_f64().map(|x| x.to_string()).unwrap_or_default()
                    ),
                    serde_json::Value::String(s) => format!("\u{b1}{s}"),
                    serde_json::Value::Number(n) if n.as_f64() == Some(0.0) => "exact".to_string(),
                    serde_json::Value::Number(n) => format!("\u{b1}{n}"),
                    _ => String::new(),
                };
                Row::new(vec![
                    Cell::text(r.label.clone()),
                    Cell::number(show(r.published), r.published),
                    match r.reproduced {
                        Some(x) => Cell::number(numfmt::fixed(x, r.digits.max(1)), x),
                        None => Cell::text(rules.not_reached.clone()),
                    },
                    match r.difference {
                        Some(d) => Cell::number(numfmt::fixed(d, r.digits.max(1)), d),
                        None => Cell::empty(),
                    },
                    Cell::text(tolerance),
                    Cell::text(if r.within { "yes" } else { "no" }),
                ])
            })
            .collect();
        output.artifacts.tables.push(Table {
            name: env.block.id.clone(),
            caption: t.caption,
            label: t.label,
            header: [
                "Quantity",
                "Published",
                "Reproduced",
                "Difference",
                "Tolerance",
                "Within",
            ]
            .map(String::from)
            .to_vec(),
            align: vec![
                Align::Left,
                Align::Right,
                Align::Right,
                Align::Right,
                Align::Right,
                Align::Center,
            ],
            groups: Vec::new(),
            rows: table_rows,
            notes: t.notes,
        });
    }
    Ok(output)
}
