//! `describe`: summary statistics of one numeric variable, overall and by group, as R's `mean`,
//! `sd`, `quantile(type = 7)`, `min` and `max`; optionally a histogram.

// Blocks return the crate's `Diagnostic` (located, with hints) as errors.
#![allow(clippy::result_large_err)]

use galley_figures::{Bins, Histogram, histogram};
use galley_stats::describe::summarize;
use serde::Deserialize;
use serde_json::json;

use super::columns::{self, display_label};
use super::{BlockEnv, Output};
use crate::diagnostics::Diagnostic;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DescribeSpec {
    #[allow(dead_code)]
    id: String,
    #[allow(dead_code)]
    kind: String,
    data: String,
    /// The numeric column to summarise.
    variable: String,
    /// Summarise by the levels of this column too.
    by: Option<String>,
    figure: Option<HistogramFigure>,
}

/// `[figure]` of `describe`: a histogram of the variable (all rows).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistogramFigure {
    caption: String,
    label: Option<String>,
    width: Option<f64>,
    /// Number of equal-width bins from the smallest to the largest value.
    bins: Option<usize>,
    /// Width of the bins, on a grid of its multiples (instead of `bins`).
    bin_width: Option<f64>,
    /// Axis titles (default: the column's label, "Number of patients").
    xlabel: Option<String>,
    ylabel: Option<String>,
}

/// Summary of one variable. Result: `variable`, `label`, `overall` and `groups` (one per level of
/// `by`, in the column's level order, each with `level`): `n`, `missing`, `mean`, `sd`, `median`,
/// `q1`, `q3`, `min`, `max`; with `by` also `missing_group` (rows whose group is missing: counted
/// in `overall` only).
pub fn describe(env: &BlockEnv) -> Result<Output, Diagnostic> {
    let spec: DescribeSpec = env.block.parse_spec()?;
    let data = env.dataset(&spec.data)?;
    let values = columns::numbers(env, data, &spec.variable, "variable")?;
    let stats_error = |e: galley_stats::StatsError| env.error("variable", e.message);
    if data.n_rows == 0 {
        return Err(env.error("data", format!("dataset `{}` has no rows", data.name)));
    }
    let overall = summarize(&values).map_err(stats_error)?;
    let mut groups = Vec::new();
    let mut value = json!({
        "variable": spec.variable,
        "label": display_label(data, &spec.variable),
        "overall": overall,
    });
    if let Some(by) = &spec.by {
        let (levels, codes) = columns::groups(env, data, by, "by")?;
        for (g, level) in levels.iter().enumerate() {
            let v: Vec<Option<f64>> = (0..data.n_rows)
                .filter(|&r| codes[r] == Some(g))
                .map(|r| values[r])
                .collect();
            let summary = if v.is_empty() {
                galley_stats::describe::empty_summary()
            } else {
                summarize(&v).map_err(stats_error)?
            };
            let mut entry = serde_json::Map::new();
            entry.insert("level".into(), json!(level));
            if let serde_json::Value::Object(m) = json!(summary) {
                entry.extend(m);
            }
            groups.push(serde_json::Value::Object(entry));
        }
        value["by"] = json!(by);
        value["missing_group"] = json!(codes.iter().filter(|c| c.is_none()).count());
    }
    value["groups"] = json!(groups);

    let mut output = Output::value(value);
    if let Some(fig) = &spec.figure {
        let present: Vec<f64> = values.iter().flatten().copied().collect();
        if present.is_empty() {
            return Err(env.error(
                "figure",
                format!("`{}` has no values to draw", spec.variable),
            ));
        }
        let bins = match (fig.bins, fig.bin_width) {
            (Some(_), Some(_)) => {
                return Err(env.error("bins", "give either `bins` or `bin_width`, not both"));
            }
            (Some(k), None) => Bins::Count(k),
            (None, Some(w)) => Bins::Width(w),
            (None, None) => Bins::Auto,
        };
        let mut h = Histogram::new(
            present,
            fig.xlabel
                .as_deref()
                .unwrap_or(&display_label(data, &spec.variable)),
        );
        h.bins = bins;
        if let Some(y) = &fig.ylabel {
            h.y_label = y.clone();
        }
        let svg = histogram(&h).map_err(|e| env.error("figure", e.message))?;
        output.artifacts.figures.push(columns::figure_artifact(
            env,
            svg,
            &fig.caption,
            fig.label.as_deref(),
            fig.width,
            0,
        )?);
    }
    Ok(output)
}
