//! `propensity_match`: greedy nearest-neighbour propensity score matching as MatchIt's
//! `matchit(method = "nearest", distance = "glm")` (ATT), with balance before and after, a Love plot,
//! and the matched cohort as a dataset for later blocks.

// Blocks return the crate's `Diagnostic` (located, with hints) as errors.
#![allow(clippy::result_large_err)]

use galley_figures::{LoveOrder, LovePlot, LoveRow, love_plot};
use galley_stats::design::Covariate;
use galley_stats::matching::{
    DistanceRule, Link, MatchOrder, NearestOptions, PropensityMatch, propensity_match as fit,
};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::json;

use super::columns::{self, CompleteCases, Missing, MissingPolicy, display_label, term_label};
use super::{BlockEnv, Output, TableSpec};
use crate::analysis::artifacts::{Align, Cell, Figure, Row, Table};
use crate::analysis::numfmt;
use crate::diagnostics::Diagnostic;
use crate::study::dataset::{Column, ColumnData, Dataset};

type R<T> = std::result::Result<T, Diagnostic>;

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Default)]
enum LinkName {
    #[default]
    #[serde(rename = "logit")]
    Logit,
    #[serde(rename = "linear.logit")]
    LinearLogit,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
enum OrderName {
    #[default]
    Largest,
    Smallest,
    Data,
}

/// Bug-compatibility switches with older MatchIt releases.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum Compat {
    /// MatchIt 4.5.1-4.5.3 compared neighbour distances and the caliper on the difference truncated
    /// to an integer (fixed in 4.5.4).
    #[serde(rename = "matchit-4.5.1")]
    MatchIt451,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchSpec {
    #[allow(dead_code)]
    id: String,
    #[allow(dead_code)]
    kind: String,
    data: String,
    /// What to do with rows whose analysis variables are missing.
    #[serde(default)]
    missing: MissingPolicy,
    /// A true/false or 0/1 column, or an expression; treated = true.
    treatment: String,
    covariates: Vec<String>,
    #[serde(default)]
    factors: Vec<String>,
    #[serde(default)]
    reference: IndexMap<String, String>,
    /// Level order per factor (R's `factor(levels = ...)`; the first is the default reference).
    #[serde(default)]
    levels: IndexMap<String, Vec<String>>,
    /// Controls per treated unit.
    #[serde(default = "default_ratio")]
    ratio: usize,
    /// Caliper in standard deviations of the distance.
    caliper: Option<f64>,
    #[serde(default)]
    link: LinkName,
    #[serde(default)]
    replace: bool,
    /// Order in which treated units pick controls (MatchIt's `m.order`).
    #[serde(default)]
    order: OrderName,
    /// Column identifying units (keys of `distance` and `matched_sets`); default the row number.
    id_column: Option<String>,
    compat: Option<Compat>,
    /// Display labels by term (`race=white`) or variable, for the table and the Love plot.
    #[serde(default)]
    labels: IndexMap<String, String>,
    table: Option<TableSpec>,
    figure: Option<LoveFigure>,
}

fn default_ratio() -> usize {
    1
}

/// `[figure]` of `propensity_match`: a Love plot of absolute SMDs before and after matching.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoveFigure {
    caption: String,
    label: Option<String>,
    width: Option<f64>,
    /// Labels by term, over the block's `labels`.
    #[serde(default)]
    labels: IndexMap<String, String>,
    /// Dashed reference line (default 0.1; 0 for none).
    threshold: Option<f64>,
    /// `"given"` (covariate order, default) or `"before"` (largest imbalance first).
    order: Option<String>,
    xlabel: Option<String>,
}

/// `propensity_match`: result as the reference schema (`ratio`, `caliper`, `link`, `n_treated`,
/// `n_control`, `n_treated_matched`, `n_control_matched`, `distance` by unit id, `matched_sets`,
/// `smd_before`, `smd_after`) plus `n`, `excluded`, `caliper_width`, `replace`, `compat` and
/// `warnings`. The block's dataset is the matched units with `subclass`, `weights`, `distance`.
pub fn propensity_match(env: &BlockEnv) -> Result<Output, Diagnostic> {
    let spec: MatchSpec = env.block.parse_spec()?;
    let data = env.dataset(&spec.data)?;
    if spec.covariates.is_empty() {
        return Err(env.error("covariates", "list at least one covariate"));
    }
    for f in &spec.factors {
        if !spec.covariates.contains(f) {
            return Err(env.error(
                "factors",
                format!("`factors` names `{f}`, which is not among the covariates"),
            ));
        }
    }
    let treat = columns::indicator(env, data, &spec.treatment, "treatment")?;
    let mut covs = columns::covariates(
        env,
        data,
        &spec.covariates,
        &spec.factors,
        &spec.reference,
        "covariates",
    )?;
    columns::reorder_covariate_levels(env, &mut covs, &spec.levels)?;
    let ids = unit_ids(env, data, spec.id_column.as_deref())?;
    let mut used = vec![Missing::of(&spec.treatment, &treat)];
    used.extend(covs.iter().map(Missing::covariate));
    let cases = CompleteCases::select(env, data.n_rows, &used, spec.missing)?;
    drop(used);
    let rows = &cases.rows;
    if rows.is_empty() {
        return Err(env.error(
            "covariates",
            "no row has the treatment and every covariate; nothing to match",
        ));
    }
    let excluded = cases.excluded();
    let mut warnings: Vec<String> = cases.warning(spec.missing).into_iter().collect();
    let stats_covs = columns::to_stats(env, &covs, rows, "covariates")?;
    let used_ids: Vec<String> = rows.iter().map(|&r| ids[r].clone()).collect();
    let used_treat: Vec<bool> = rows.iter().map(|&r| treat[r] == Some(true)).collect();
    let (options, link) = match_options(&spec);
    let m = fit(&used_ids, &used_treat, &stats_covs, link, &options)
        .map_err(|e| env.error("covariates", e.message))?;
    warnings.extend(m.warnings.iter().cloned());

    let mut value = json!(m);
    value["n"] = json!(rows.len());
    value["excluded"] = json!(excluded);
    cases.record(&mut value);
    value["caliper_width"] = json!(m.matching.caliper_width);
    value["replace"] = json!(spec.replace);
    value["compat"] = json!(spec.compat.map(|_| "matchit-4.5.1"));
    value["warnings"] = json!(warnings);
    let mut output = Output {
        value,
        dataset: Some(matched_cohort(env, data, rows, &m)),
        warnings,
        ..Default::default()
    };
    if let Some(table) = &spec.table {
        let lines = balance_lines(data, &spec, &stats_covs);
        output
            .artifacts
            .tables
            .push(balance_table(env, table, &lines, &m));
    }
    if let Some(fig) = &spec.figure {
        let figure = love_figure(env, &spec, fig, data, &stats_covs, &m, &mut output.warnings)?;
        output.artifacts.figures.push(figure);
    }
    Ok(output)
}

/// Unit ids from `id_column` (each present and unique), else the row numbers.
fn unit_ids(env: &BlockEnv, data: &Dataset, id_column: Option<&str>) -> R<Vec<String>> {
    let Some(name) = id_column else {
        return Ok((1..=data.n_rows).map(|r| r.to_string()).collect());
    };
    let column = env.column(data, name, "id_column")?;
    let mut seen = std::collections::HashSet::new();
    (0..data.n_rows)
        .map(|r| {
            let id = column.data.text(r).ok_or_else(|| {
                env.error(
                    "id_column",
                    format!("`{name}` is missing on data row {}", r + 1),
                )
            })?;
            if !seen.insert(id.clone()) {
                return Err(env.error(
                    "id_column",
                    format!("`{name}` is not unique: `{id}` appears more than once"),
                ));
            }
            Ok(id)
        })
        .collect()
}

/// The matching options and the distance's link named by the spec.
fn match_options(spec: &MatchSpec) -> (NearestOptions, Link) {
    let options = NearestOptions {
        ratio: spec.ratio,
        caliper: spec.caliper,
        replace: spec.replace,
        order: match spec.order {
            OrderName::Largest => MatchOrder::Largest,
            OrderName::Smallest => MatchOrder::Smallest,
            OrderName::Data => MatchOrder::Data,
        },
        rule: match spec.compat {
            Some(Compat::MatchIt451) => DistanceRule::MatchIt451,
            None => DistanceRule::Exact,
        },
    };
    let link = match spec.link {
        LinkName::Logit => Link::Logit,
        LinkName::LinearLogit => Link::LinearLogit,
    };
    (options, link)
}

/// The matched cohort: matched units in data order, with MatchIt's match.data columns
/// (`subclass`, `weights`, `distance`). `rows` are the data rows the match used.
fn matched_cohort(env: &BlockEnv, data: &Dataset, rows: &[usize], m: &PropensityMatch) -> Dataset {
    let matched: Vec<usize> = (0..rows.len())
        .filter(|&i| m.matching.weights[i] > 0.0)
        .collect();
    let mut cohort = data.take(
        env.block.id.clone(),
        &matched.iter().map(|&i| rows[i]).collect::<Vec<_>>(),
    );
    let distance: Vec<f64> = m.distance.0.iter().map(|(_, d)| *d).collect();
    cohort.set_column(Column {
        name: "subclass".into(),
        label: Some("Matched set".into()),
        data: ColumnData::Integer(
            matched
                .iter()
                .map(|&i| m.matching.subclass[i].map(|s| s as i64))
                .collect(),
        )
        .into(),
    });
    cohort.set_column(Column {
        name: "weights".into(),
        label: Some("Matching weight".into()),
        data: ColumnData::Number(
            matched
                .iter()
                .map(|&i| Some(m.matching.weights[i]))
                .collect(),
        )
        .into(),
    });
    cohort.set_column(Column {
        name: "distance".into(),
        label: Some("Propensity score distance".into()),
        data: ColumnData::Number(matched.iter().map(|&i| Some(distance[i])).collect()).into(),
    });
    cohort
}

/// Balance terms in covariate order, each factor's levels under a heading: (label, term,
/// indent); a heading has no term.
fn balance_lines(
    data: &Dataset,
    spec: &MatchSpec,
    stats_covs: &[Covariate],
) -> Vec<(String, Option<String>, u8)> {
    let mut lines = Vec::new();
    for s in stats_covs {
        match s {
            Covariate::Numeric { name, .. } => {
                lines.push((term_label(data, name, &spec.labels), Some(name.clone()), 0))
            }
            // A two-level factor: one line for its second level (the other mirrors it).
            Covariate::Categorical { name, levels, .. } if levels.len() == 2 => {
                let term = format!("{name}={}", levels[1]);
                lines.push((term_label(data, &term, &spec.labels), Some(term), 0));
            }
            Covariate::Categorical { name, levels, .. } => {
                lines.push((
                    spec.labels
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| display_label(data, name)),
                    None,
                    0,
                ));
                for level in levels {
                    let term = format!("{name}={level}");
                    let label = spec
                        .labels
                        .get(&term)
                        .cloned()
                        .unwrap_or_else(|| level.clone());
                    lines.push((label, Some(term), 1));
                }
            }
        }
    }
    lines
}

/// The balance table: covariate, SMD before and after matching.
fn balance_table(
    env: &BlockEnv,
    table: &TableSpec,
    lines: &[(String, Option<String>, u8)],
    m: &PropensityMatch,
) -> Table {
    let smd_cell = |v: Option<&Option<f64>>| match v.copied().flatten() {
        Some(x) => Cell::number(numfmt::fixed(x, 3), x),
        None => Cell::text("\u{2013}"),
    };
    let rows_out = lines
        .iter()
        .map(|(label, term, indent)| match term {
            Some(t) => Row::new(vec![
                Cell::text(label),
                smd_cell(m.smd_before.get(t)),
                smd_cell(m.smd_after.get(t)),
            ])
            .indented(*indent),
            None => Row::new(vec![Cell::text(label), Cell::empty(), Cell::empty()]),
        })
        .collect();
    let notes = vec![format!(
        "SMD, standardized mean difference: treated minus control, divided by the standard deviation of the treated group before matching (as MatchIt's summary). Matched: {} of {} treated, {} of {} controls.",
        m.n_treated_matched, m.n_treated, m.n_control_matched, m.n_control
    )];
    columns::table_artifact(
        env,
        table,
        vec![
            "Covariate".into(),
            "SMD before matching".into(),
            "SMD after matching".into(),
        ],
        vec![Align::Left, Align::Center, Align::Center],
        Vec::new(),
        rows_out,
        notes,
    )
}

/// The Love plot of |SMD| before and after matching; a term whose SMD is not estimable is left
/// out with a warning (added to `warnings`).
fn love_figure(
    env: &BlockEnv,
    spec: &MatchSpec,
    fig: &LoveFigure,
    data: &Dataset,
    stats_covs: &[Covariate],
    m: &PropensityMatch,
    warnings: &mut Vec<String>,
) -> R<Figure> {
    let mut labels = spec.labels.clone();
    labels.extend(fig.labels.clone());
    let mut rows_out = Vec::new();
    for s in stats_covs {
        let terms: Vec<String> = match s {
            Covariate::Numeric { name, .. } => vec![name.clone()],
            Covariate::Categorical { name, levels, .. } if levels.len() == 2 => {
                vec![format!("{name}={}", levels[1])]
            }
            Covariate::Categorical { name, levels, .. } => {
                levels.iter().map(|l| format!("{name}={l}")).collect()
            }
        };
        for term in terms {
            let before = m.smd_before.get(&term).copied().flatten();
            let after = m.smd_after.get(&term).copied().flatten();
            if let (Some(before), Some(after)) = (before, after) {
                rows_out.push(LoveRow {
                    label: term_label(data, &term, &labels),
                    before,
                    after,
                });
            } else {
                warnings.push(format!(
                    "the Love plot leaves out `{term}`: its SMD is not estimable"
                ));
            }
        }
    }
    let mut plot = LovePlot::new(rows_out);
    plot.threshold = match fig.threshold {
        Some(0.0) => None,
        Some(t) => Some(t),
        None => Some(0.1),
    };
    plot.order = match fig.order.as_deref() {
        None | Some("given") => LoveOrder::AsGiven,
        Some("before") => LoveOrder::ByBefore,
        Some(other) => {
            return Err(env.error(
                "order",
                format!("`order` is \"given\" or \"before\" (got \"{other}\")"),
            ));
        }
    };
    if let Some(x) = &fig.xlabel {
        plot.x_label = x.clone();
    }
    let svg = love_plot(&plot).map_err(|e| env.error("figure", e.message))?;
    columns::figure_artifact(env, svg, &fig.caption, fig.label.as_deref(), fig.width, 0)
}

#[cfg(test)]
mod tests {
    use crate::analysis::table1::tests::{dataset, run, text};
    use crate::study::dataset::ColumnData;

    #[test]
    fn matched_cohort_dataset() {
        // Two treated units and four controls; x separates them imperfectly.
        let data = dataset(
            "d",
            vec![
                (
                    "id",
                    text(&[
                        Some("a"),
                        Some("b"),
                        Some("c"),
                        Some("d"),
                        Some("e"),
                        Some("f"),
                        Some("g"),
                    ]),
                ),
                (
                    "t",
                    ColumnData::Boolean(vec![
                        Some(true),
                        Some(true),
                        Some(false),
                        Some(false),
                        Some(false),
                        Some(false),
                        None,
                    ]),
                ),
                (
                    "x",
                    ColumnData::Number(vec![
                        Some(3.0),
                        Some(1.0),
                        Some(2.0),
                        Some(0.5),
                        Some(-1.0),
                        Some(2.5),
                        Some(1.0),
                    ]),
                ),
            ],
        );
        let spec = "id = \"m\"\nkind = \"propensity_match\"\ndata = \"d\"\ntreatment = \"t\"\ncovariates = [\"x\"]\nid_column = \"id\"\n";
        let out = run(spec, &[data]).unwrap();
        // The row with a missing treatment is left out, with a warning.
        assert_eq!(out.value["excluded"], 1);
        assert!(out.warnings[0].contains("left out"));
        let m = out.dataset.unwrap();
        assert_eq!(m.name, "m");
        assert_eq!(m.n_rows, 4);
        let ids: Vec<String> = (0..4)
            .map(|r| m.column("id").unwrap().data.text(r).unwrap())
            .collect();
        let sets = out.value["matched_sets"].as_array().unwrap();
        let mut expected: Vec<String> = sets
            .iter()
            .flat_map(|s| {
                std::iter::once(s["treated"].as_str().unwrap().to_string()).chain(
                    s["controls"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c.as_str().unwrap().to_string()),
                )
            })
            .collect();
        expected.sort();
        let mut got = ids.clone();
        got.sort();
        assert_eq!(got, expected);
        // Each set shares a subclass; 1:1 weights are all 1; distance is the propensity score.
        let subclass = &m.column("subclass").unwrap().data;
        for s in sets {
            let row = |id: &str| ids.iter().position(|x| x == id).unwrap();
            let t = row(s["treated"].as_str().unwrap());
            let c = row(s["controls"][0].as_str().unwrap());
            assert_eq!(subclass.number(t), subclass.number(c));
            let d = m.column("distance").unwrap().data.number(t).unwrap();
            let want = out.value["distance"][s["treated"].as_str().unwrap()]
                .as_f64()
                .unwrap();
            assert_eq!(d, want);
        }
        assert_eq!(
            m.column("weights").unwrap().data.as_ref(),
            &ColumnData::Number(vec![Some(1.0); 4])
        );
    }
}
