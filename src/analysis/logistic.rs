//! `logistic`: logistic regression as R's `glm(family = binomial)` with Wald tests and
//! `confint.default` intervals as odds ratios; an odds-ratio table and a forest plot.

// Blocks return the crate's `Diagnostic` (located, with hints) as errors.
#![allow(clippy::result_large_err)]

use galley_figures::{ForestPlot, ForestRow, forest_plot};
use galley_stats::design::{Covariate, model_matrix};
use galley_stats::logistic::{LogisticFit, LogisticOptions, logistic_regression};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::json;

use super::columns::{
    self, CompleteCases, CovariateColumn, Missing, MissingPolicy, display_label, term_label,
};
use super::{BlockEnv, Output, TableSpec};
use crate::analysis::artifacts::{Align, Cell, Figure, Row, Table};
use crate::analysis::numfmt;
use crate::diagnostics::Diagnostic;
use crate::study::dataset::Dataset;
use crate::study::manifest::FormatSection;

type R<T> = std::result::Result<T, Diagnostic>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogisticSpec {
    #[allow(dead_code)]
    id: String,
    #[allow(dead_code)]
    kind: String,
    data: String,
    /// What to do with rows whose analysis variables are missing.
    #[serde(default)]
    missing: MissingPolicy,
    /// A true/false or 0/1 column, or an expression (`prior == 10`).
    outcome: String,
    covariates: Vec<String>,
    /// Numeric covariates to treat as factors.
    #[serde(default)]
    factors: Vec<String>,
    /// Reference level per factor (default: the first level).
    #[serde(default)]
    reference: IndexMap<String, String>,
    /// Level order per factor (R's `factor(levels = ...)`; the first is the default reference).
    #[serde(default)]
    levels: IndexMap<String, Vec<String>>,
    #[serde(default = "default_conf_level")]
    conf_level: f64,
    /// Display labels by term (`race=white`) or variable, for the table and figure.
    #[serde(default)]
    labels: IndexMap<String, String>,
    table: Option<TableSpec>,
    figure: Option<ForestFigure>,
}

fn default_conf_level() -> f64 {
    0.95
}

/// `[figure]` of `logistic`: a forest plot of the odds ratios.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForestFigure {
    caption: String,
    label: Option<String>,
    width: Option<f64>,
    /// Axis title (default "Odds ratio (log scale)").
    xlabel: Option<String>,
    /// Axis limits `[low, high]` (both > 0); intervals beyond end in arrows.
    xlim: Option<[f64; 2]>,
}

/// One line of the table and the forest plot.
enum Line {
    Heading(String),
    Reference(String),
    Term {
        label: String,
        index: usize,
        indent: u8,
    },
}

/// `logistic`: result `n` (complete cases used), `excluded`, `events`, `terms` (`term`, `coef`, `se`,
/// `z`, `p`, `or`, `lower`, `upper`; the first is `(Intercept)`), `by_term` (the same keyed by
/// term), `null_deviance`, `deviance`, `aic`, `iterations`, `converged`, `conf_level`, `warnings`.
pub fn logistic(env: &BlockEnv) -> Result<Output, Diagnostic> {
    let spec: LogisticSpec = env.block.parse_spec()?;
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
    if !(spec.conf_level > 0.0 && spec.conf_level < 1.0) {
        return Err(env.error("conf_level", "`conf_level` must be between 0 and 1"));
    }
    let outcome = columns::indicator(env, data, &spec.outcome, "outcome")?;
    let mut covs = columns::covariates(
        env,
        data,
        &spec.covariates,
        &spec.factors,
        &spec.reference,
        "covariates",
    )?;
    columns::reorder_covariate_levels(env, &mut covs, &spec.levels)?;
    let mut used = vec![Missing::of(&spec.outcome, &outcome)];
    used.extend(covs.iter().map(Missing::covariate));
    let cases = CompleteCases::select(env, data.n_rows, &used, spec.missing)?;
    drop(used);
    let rows = &cases.rows;
    let y: Vec<bool> = rows.iter().map(|&r| outcome[r] == Some(true)).collect();
    let stats_covs = columns::to_stats(env, &covs, rows, "covariates")?;
    let fit = fit(env, &y, &stats_covs, spec.conf_level)?;

    let mut by_term = serde_json::Map::new();
    for t in &fit.terms {
        by_term.insert(t.term.clone(), json!(t));
    }
    let mut value = json!({
        "outcome": spec.outcome,
        "n": fit.n,
        "excluded": cases.excluded(),
        "events": y.iter().filter(|&&v| v).count(),
        "terms": fit.terms,
        "by_term": by_term,
        "null_deviance": fit.null_deviance,
        "deviance": fit.deviance,
        "aic": fit.aic,
        "iterations": fit.iterations,
        "converged": fit.converged,
        "conf_level": spec.conf_level,
        "warnings": fit.warnings,
    });
    cases.record(&mut value);
    let mut output = Output::value(value);
    output.warnings.extend(cases.warning(spec.missing));
    output.warnings.extend(fit.warnings.iter().cloned());

    let lines = lines(data, &covs, &stats_covs, &fit, &spec.labels);
    let texts = OrTexts {
        fit: &fit,
        rules: &env.settings.format,
        ci: format!("{}% CI", numfmt::fixed(spec.conf_level * 100.0, 0)),
    };
    if let Some(table) = &spec.table {
        let table = or_table(env, table, &lines, &texts, cases.excluded());
        output.artifacts.tables.push(table);
    }
    if let Some(fig) = &spec.figure {
        let figure = or_figure(env, fig, &lines, &texts)?;
        output.artifacts.figures.push(figure);
    }
    Ok(output)
}

/// How the table and the figure print a term's odds ratio and p.
struct OrTexts<'a> {
    fit: &'a LogisticFit,
    rules: &'a FormatSection,
    /// "95% CI".
    ci: String,
}

impl OrTexts<'_> {
    /// "1.23 (0.98–1.54)", or "not estimable".
    fn or(&self, i: usize) -> String {
        let t = &self.fit.terms[i];
        match t.or {
            Some(or) => format!(
                "{} ({})",
                numfmt::fixed(or, 2),
                numfmt::interval(t.lower, t.upper, 2, self.rules)
            ),
            None => "not estimable".to_string(),
        }
    }

    fn p(&self, i: usize) -> String {
        self.fit.terms[i]
            .p
            .map_or(String::new(), |p| numfmt::p_number(p, self.rules))
    }
}

/// Characteristic | OR (CI) | p, factors as a heading with "1 (reference)" and one row per level.
fn or_table(
    env: &BlockEnv,
    table: &TableSpec,
    lines: &[Line],
    texts: &OrTexts,
    excluded: usize,
) -> Table {
    let fit = texts.fit;
    let mut rows_out = Vec::new();
    for line in lines {
        rows_out.push(match line {
            Line::Heading(label) => Row::new(vec![Cell::text(label), Cell::empty(), Cell::empty()]),
            Line::Reference(level) => Row::new(vec![
                Cell::text(level),
                Cell::text("1 (reference)"),
                Cell::empty(),
            ])
            .indented(1),
            Line::Term {
                label,
                index,
                indent,
            } => {
                let t = &fit.terms[*index];
                let or_cell = match t.or {
                    Some(or) => Cell::number(texts.or(*index), or),
                    None => Cell::text(texts.or(*index)),
                };
                let p_cell = match t.p {
                    Some(p) => Cell::number(texts.p(*index), p),
                    None => Cell::empty(),
                };
                Row::new(vec![Cell::text(label), or_cell, p_cell]).indented(*indent)
            }
        });
    }
    let mut notes = vec![format!(
        "OR, odds ratio; CI, confidence interval (Wald). Logistic regression, n = {}{}.",
        numfmt::count(fit.n as f64),
        if excluded > 0 {
            format!(
                " ({} excluded for missing values)",
                numfmt::count(excluded as f64)
            )
        } else {
            String::new()
        }
    )];
    if !fit.warnings.is_empty() {
        notes.push(format!("Warning: {}.", fit.warnings.join("; ")));
    }
    columns::table_artifact(
        env,
        table,
        vec![
            "Characteristic".into(),
            format!("OR ({})", texts.ci),
            "p".into(),
        ],
        vec![Align::Left, Align::Center, Align::Center],
        Vec::new(),
        rows_out,
        notes,
    )
}

/// A forest plot of the odds ratios, in the table's lines.
fn or_figure(env: &BlockEnv, fig: &ForestFigure, lines: &[Line], texts: &OrTexts) -> R<Figure> {
    let rows_out: Vec<ForestRow> = lines
        .iter()
        .map(|line| match line {
            Line::Heading(label) => ForestRow::heading(label),
            Line::Reference(level) => ForestRow {
                indent: 1,
                ..ForestRow::reference(level)
            },
            Line::Term {
                label,
                index,
                indent,
            } => {
                let t = &texts.fit.terms[*index];
                match (t.or, t.lower, t.upper) {
                    (Some(or), Some(lo), hi) if or > 0.0 => ForestRow {
                        indent: *indent,
                        ..ForestRow::estimate(label, or, lo, hi.unwrap_or(f64::INFINITY))
                    }
                    .with_text(&texts.or(*index))
                    .with_p(&texts.p(*index)),
                    _ => ForestRow {
                        label: label.clone(),
                        indent: *indent,
                        text: Some("not estimable".into()),
                        ..ForestRow::default()
                    },
                }
            }
        })
        .collect();
    let mut plot = ForestPlot::new(rows_out);
    plot.x_label = fig
        .xlabel
        .clone()
        .unwrap_or_else(|| "Odds ratio (log scale)".into());
    plot.text_header = Some(format!("OR ({})", texts.ci));
    if let Some([lo, hi]) = fig.xlim {
        plot.x_range = Some((lo, hi));
    }
    let svg = forest_plot(&plot).map_err(|e| env.error("figure", e.message))?;
    columns::figure_artifact(env, svg, &fig.caption, fig.label.as_deref(), fig.width, 0)
}

fn fit(
    env: &BlockEnv,
    y: &[bool],
    covariates: &[Covariate],
    conf_level: f64,
) -> Result<LogisticFit, Diagnostic> {
    if y.is_empty() {
        return Err(env.error(
            "covariates",
            "no row has the outcome and every covariate; nothing to fit",
        ));
    }
    let design = model_matrix(covariates, true).map_err(|e| env.error("covariates", e.message))?;
    logistic_regression(
        y,
        &design,
        LogisticOptions {
            conf_level,
            ..LogisticOptions::default()
        },
    )
    .map_err(|e| env.error("outcome", e.message))
}

/// Table and forest lines in covariate order: a numeric covariate is one line; a factor is a
/// heading, its reference level and one indented line per other level.
fn lines(
    data: &Dataset,
    covs: &[CovariateColumn],
    stats_covs: &[Covariate],
    fit: &LogisticFit,
    labels: &IndexMap<String, String>,
) -> Vec<Line> {
    let index_of = |term: &str| fit.terms.iter().position(|t| t.term == term);
    let mut out = Vec::new();
    for (c, s) in covs.iter().zip(stats_covs) {
        match s {
            Covariate::Numeric { name, .. } => {
                if let Some(index) = index_of(name) {
                    out.push(Line::Term {
                        label: term_label(data, name, labels),
                        index,
                        indent: 0,
                    });
                }
            }
            Covariate::Categorical {
                name,
                levels,
                reference,
                ..
            } => {
                let heading = labels
                    .get(c.name())
                    .cloned()
                    .unwrap_or_else(|| display_label(data, name));
                out.push(Line::Heading(heading));
                out.push(Line::Reference(levels[*reference].clone()));
                for (i, level) in levels.iter().enumerate() {
                    if i == *reference {
                        continue;
                    }
                    let term = format!("{name}={level}");
                    if let Some(index) = index_of(&term) {
                        out.push(Line::Term {
                            label: labels.get(&term).cloned().unwrap_or_else(|| level.clone()),
                            index,
                            indent: 1,
                        });
                    }
                }
            }
        }
    }
    out
}
