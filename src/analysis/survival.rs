//! Survival blocks: Kaplan-Meier curves (`kaplan_meier`), the log-rank family of tests (`logrank`)
//! and Cox proportional hazards models (`cox`), with their figures (survival curves with a
//! number-at-risk table; a forest plot of hazard ratios) and tables.
//!
//! Each kind reads its columns with [`super::columns`], keeps complete cases over every column it
//! uses (reporting how many rows it left out), hands codes and numbers to `galley_stats` and
//! returns the statistics crate's result, which already has the field names of the R reference
//! values (`tests/reference/README.md`), plus keys by level or term for the prose.

// `Diagnostic` (the located error every block returns) is large; every kind returns it as is.
#![allow(clippy::result_large_err)]

use galley_figures as figures;
use galley_stats::cox::{Cox, CoxOptions, Ties};
use galley_stats::km::{ConfType, KaplanMeier, KmOptions};
use galley_stats::logrank::LogRank;
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::columns::{self, CompleteCases, CovariateColumn, Missing, MissingPolicy};
use super::{BlockEnv, Output, grouping};
use crate::analysis::artifacts::{Align, Cell, ColumnGroup, Figure, Row, Table};
use crate::analysis::numfmt;
use crate::diagnostics::Diagnostic;
use crate::study::dataset::Dataset;
use crate::study::manifest::FormatSection;

type R<T> = std::result::Result<T, Diagnostic>;

/// A column's values by row (`None` = missing).
type Values<T> = Vec<Option<T>>;

/// Width of the text block of the article template (US letter, 1 in margins), in pt: figures are
/// drawn at their printed size so that their text matches the captions'.
const TEXT_WIDTH_PT: f64 = 468.0;

// ---------------------------------------------------------------------------------------------
// Shared reading of the response, groups and complete cases
// ---------------------------------------------------------------------------------------------

/// Follow-up times (numbers, checked non-negative) and event indicators of every row.
pub(super) fn response(
    env: &BlockEnv,
    data: &Dataset,
    time: &str,
    event: &str,
) -> R<(Values<f64>, Values<bool>)> {
    let times = columns::numbers(env, data, time, "time")?;
    let negative: Vec<usize> = times
        .iter()
        .enumerate()
        .filter(|(_, t)| t.is_some_and(|t| t < 0.0))
        .map(|(r, _)| r + 1)
        .collect();
    if !negative.is_empty() {
        let rows: Vec<String> = negative.iter().take(10).map(|r| r.to_string()).collect();
        return Err(env.error(
            "time",
            format!(
                "column `{time}` is negative on {} data row(s) ({}{}): follow-up time cannot be negative",
                negative.len(),
                rows.join(", "),
                if negative.len() > 10 { ", ..." } else { "" }
            ),
        ));
    }
    let events = columns::indicator(env, data, event, "event")?;
    Ok((times, events))
}

/// The missing-value tests of a survival response (time and event), to which a block adds those
/// of its other columns.
pub(super) fn response_missing<'a>(
    time: &'a str,
    event: &'a str,
    times: &'a Values<f64>,
    events: &'a Values<bool>,
) -> Vec<Missing<'a>> {
    vec![Missing::of(time, times), Missing::of(event, events)]
}

/// The missing-value test of a grouping column's codes.
pub(super) fn codes_missing<'a>(name: &'a str, codes: &'a [Option<usize>]) -> Missing<'a> {
    Missing::of(name, codes)
}

/// Levels and codes of a grouping column (`by`, `strata`), optionally in the order of `levels`.
pub(super) fn group_column(
    env: &BlockEnv,
    data: &Dataset,
    name: &str,
    key: &str,
    levels: Option<&[String]>,
) -> R<(Vec<String>, Vec<Option<usize>>)> {
    let g = columns::groups(env, data, name, key)?;
    match levels {
        Some(order) => columns::reorder_levels(env, name, g, order, "levels"),
        None => Ok(g),
    }
}

/// Codes restricted to complete rows, with an error naming a level that has no rows left.
pub(super) fn codes_in(
    env: &BlockEnv,
    name: &str,
    key: &str,
    levels: &[String],
    codes: &[Option<usize>],
    rows: &[usize],
) -> R<Vec<usize>> {
    let out: Vec<usize> = rows.iter().map(|&r| codes[r].unwrap_or(0)).collect();
    let mut counts = vec![0usize; levels.len()];
    for &c in &out {
        counts[c] += 1;
    }
    if let Some(empty) = counts.iter().position(|&c| c == 0) {
        return Err(env
            .error(
                key,
                format!(
                    "group `{}` of `{name}` has no rows with complete data",
                    levels[empty]
                ),
            )
            .hint(
                "filter the data first (a `filter` block), or give `levels` with the groups to compare",
            ));
    }
    Ok(out)
}

pub(super) fn stats_error(env: &BlockEnv, key: &str, e: galley_stats::StatsError) -> Diagnostic {
    env.error(key, e.message)
}

fn figure_error(env: &BlockEnv, e: figures::FigureError) -> Diagnostic {
    env.error("figure", e.message)
}

/// A figure's width as a fraction of the text width (0 to 1, default 1).
fn figure_width(env: &BlockEnv, width: Option<f64>) -> R<f64> {
    let w = width.unwrap_or(1.0);
    if !(w > 0.0 && w <= 1.0) {
        return Err(env.error(
            "width",
            format!("`width` is a fraction of the text width, between 0 and 1 (got {w})"),
        ));
    }
    Ok(w)
}

fn figure_style(width: f64) -> figures::Style {
    figures::Style {
        width: (TEXT_WIDTH_PT * width).max(72.0),
        ..figures::Style::default()
    }
}

/// Every key of a `labels` map must name something the block has (a level, a term).
fn check_label_keys(
    env: &BlockEnv,
    labels: &IndexMap<String, String>,
    known: &[String],
    what: &str,
) -> R<()> {
    for key in labels.keys() {
        if !known.contains(key) {
            return Err(env.error(
                "labels",
                format!(
                    "`labels` names `{key}`, which is not {what} (known: {})",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// `95%` for 0.95, `90%` for 0.9, `97.5%` for 0.975.
fn level_percent(level: f64) -> String {
    let p = level * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{}%", p.round())
    } else {
        format!("{}%", (p * 100.0).round() / 100.0)
    }
}

/// A time as a JSON key and a header: `365`, `0.5`.
fn time_key(t: f64) -> String {
    format!("{t}")
}

/// Column display name: its schema label, else its name.
fn column_label(data: &Dataset, name: &str) -> String {
    data.column(name)
        .and_then(|c| c.label.clone())
        .unwrap_or_else(|| name.to_string())
}

// ---------------------------------------------------------------------------------------------
// kaplan_meier
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Clone, Copy, Default)]
enum ConfTypeSpec {
    #[default]
    #[serde(rename = "log")]
    Log,
    #[serde(rename = "log-log")]
    LogLog,
    #[serde(rename = "plain")]
    Plain,
}

impl From<ConfTypeSpec> for ConfType {
    fn from(c: ConfTypeSpec) -> ConfType {
        match c {
            ConfTypeSpec::Log => ConfType::Log,
            ConfTypeSpec::LogLog => ConfType::LogLog,
            ConfTypeSpec::Plain => ConfType::Plain,
        }
    }
}

fn default_conf_level() -> f64 {
    0.95
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KmSpec {
    #[allow(dead_code)]
    id: String,
    #[allow(dead_code)]
    kind: String,
    data: String,
    /// What to do with rows whose analysis variables are missing.
    #[serde(default)]
    missing: MissingPolicy,
    /// Follow-up time (numeric column).
    time: String,
    /// Event indicator: a boolean or 0/1 column, or an expression (`status == 2`).
    event: String,
    /// Grouping column: one curve per level.
    by: Option<String>,
    /// Order of the groups (R's `factor(by, levels = )`); default: schema order, else sorted.
    levels: Option<Vec<String>>,
    #[serde(default)]
    conf_type: ConfTypeSpec,
    #[serde(default = "default_conf_level")]
    conf_level: f64,
    /// Survival at these times (`summary(fit, times = )`).
    #[serde(default)]
    times: Vec<f64>,
    figure: Option<KmFigureSpec>,
    table: Option<KmTableSpec>,
}

#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "kebab-case")]
enum LegendSpec {
    #[default]
    Auto,
    TopRight,
    TopLeft,
    BottomRight,
    BottomLeft,
    Above,
    None,
}

impl From<LegendSpec> for figures::LegendPosition {
    fn from(l: LegendSpec) -> Self {
        use figures::LegendPosition as P;
        match l {
            LegendSpec::Auto => P::Auto,
            LegendSpec::TopRight => P::TopRight,
            LegendSpec::TopLeft => P::TopLeft,
            LegendSpec::BottomRight => P::BottomRight,
            LegendSpec::BottomLeft => P::BottomLeft,
            LegendSpec::Above => P::Above,
            LegendSpec::None => P::None,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KmFigureSpec {
    caption: String,
    label: Option<String>,
    width: Option<f64>,
    /// x-axis title (default "Time").
    xlabel: Option<String>,
    /// y-axis title (default "Survival probability").
    ylabel: Option<String>,
    /// Time unit, shown after the x-axis title ("months").
    unit: Option<String>,
    break_interval: Option<f64>,
    max_time: Option<f64>,
    /// y-axis in percent.
    #[serde(default)]
    percent: bool,
    /// Confidence bands; default as R's `plot.survfit`: for a single curve only.
    ci: Option<bool>,
    #[serde(default = "yes")]
    censor_marks: bool,
    #[serde(default = "yes")]
    risk_table: bool,
    /// Display label per level.
    #[serde(default)]
    labels: IndexMap<String, String>,
    /// Id of an earlier `logrank` block whose p-value is written in the plot.
    test: Option<String>,
    #[serde(default)]
    legend: LegendSpec,
    legend_title: Option<String>,
    #[serde(default)]
    monochrome: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KmTableSpec {
    caption: String,
    label: Option<String>,
    #[serde(default)]
    notes: Vec<String>,
    /// Decimals of median times (default: 0 when every time is whole, else 1).
    digits: Option<usize>,
    /// Time unit for the headers ("months").
    unit: Option<String>,
    /// Display label per level (default: the figure's `labels`).
    #[serde(default)]
    labels: IndexMap<String, String>,
}

/// `kaplan_meier`: product-limit survival curves, as R's `survfit(Surv(time, event) ~ by)`.
pub fn kaplan_meier(env: &BlockEnv) -> R<Output> {
    let spec: KmSpec = env.block.parse_spec()?;
    let data = env.dataset(&spec.data)?;
    if spec.levels.is_some() && spec.by.is_none() {
        return Err(env.error(
            "levels",
            "`levels` orders the groups of `by`, but there is no `by`",
        ));
    }
    let (times, events) = response(env, data, &spec.time, &spec.event)?;
    let (labels, codes) = match &spec.by {
        Some(by) => group_column(env, data, by, "by", spec.levels.as_deref())?,
        None => (vec!["all".to_string()], vec![Some(0); data.n_rows]),
    };
    let by_name = spec.by.clone().unwrap_or_default();
    let mut used = response_missing(&spec.time, &spec.event, &times, &events);
    if spec.by.is_some() {
        used.push(codes_missing(&by_name, &codes));
    }
    let cases = CompleteCases::select(env, data.n_rows, &used, spec.missing)?;
    drop(used);
    let rows = &cases.rows;
    if rows.is_empty() {
        return Err(env.error("time", "no row has a time, an event status and a group"));
    }
    let group = codes_in(env, &by_name, "by", &labels, &codes, rows)?;
    let time: Vec<f64> = rows.iter().map(|&r| times[r].unwrap_or(0.0)).collect();
    let event: Vec<bool> = rows.iter().map(|&r| events[r].unwrap_or(false)).collect();
    let options = KmOptions {
        conf_type: spec.conf_type.into(),
        conf_level: spec.conf_level,
        times: spec.times.clone(),
        extend: false,
    };
    if !(spec.conf_level > 0.0 && spec.conf_level < 1.0) {
        return Err(env.error(
            "conf_level",
            format!(
                "`conf_level` must be between 0 and 1 (got {})",
                spec.conf_level
            ),
        ));
    }
    let km = galley_stats::km::kaplan_meier(&time, &event, &group, &labels, &options)
        .map_err(|e| stats_error(env, "time", e))?;

    let mut value = env.json("its Kaplan-Meier result", &km)?;
    let mut by_level = serde_json::Map::new();
    for g in &km.groups {
        let mut at = serde_json::Map::new();
        for a in &g.at {
            at.insert(time_key(a.time), env.json("a survival estimate", a)?);
        }
        by_level.insert(
            g.level.clone(),
            json!({
                "n": g.n,
                "events": g.events,
                "median": g.median,
                "median_lower": g.median_lower,
                "median_upper": g.median_upper,
                "median_ci": {"lower": g.median_lower, "upper": g.median_upper},
                "at": at,
            }),
        );
    }
    value["by"] = json!(spec.by);
    value["n"] = json!(rows.len());
    value["events"] = json!(event.iter().filter(|&&e| e).count());
    cases.record(&mut value);
    value["by_level"] = Value::Object(by_level);

    let mut output = Output::value(value);
    output.warnings.extend(cases.warning(spec.missing));
    if let Some(fig) = &spec.figure {
        let figure = km_figure(env, &km, spec.by.as_deref(), fig, &mut output.warnings)?;
        output.artifacts.figures.push(figure);
    }
    if let Some(table) = &spec.table {
        let by_label = spec.by.as_deref().map(|b| column_label(data, b));
        let fallback = spec.figure.as_ref().map(|f| &f.labels);
        output
            .artifacts
            .tables
            .push(km_table(env, &km, &spec, table, by_label, fallback)?);
    }
    Ok(output)
}

fn km_figure(
    env: &BlockEnv,
    km: &KaplanMeier,
    by: Option<&str>,
    spec: &KmFigureSpec,
    warnings: &mut Vec<String>,
) -> R<Figure> {
    let levels: Vec<String> = km.groups.iter().map(|g| g.level.clone()).collect();
    check_label_keys(env, &spec.labels, &levels, "a group")?;
    let width = figure_width(env, spec.width)?;
    let groups = km
        .groups
        .iter()
        .map(|g| {
            let label = spec.labels.get(&g.level).cloned().unwrap_or_else(|| {
                if g.level == "all" && km.groups.len() == 1 {
                    "All".to_string()
                } else {
                    g.level.clone()
                }
            });
            figures::KmGroup {
                label,
                n: g.n as u32,
                steps: g
                    .table
                    .iter()
                    .filter(|r| r.n_event > 0)
                    .map(|r| figures::KmStep {
                        time: r.time,
                        survival: r.surv,
                        lower: r.lower,
                        upper: r.upper,
                        n_event: r.n_event as u32,
                    })
                    .collect(),
                censored: g
                    .table
                    .iter()
                    .filter(|r| r.n_censor > 0)
                    .map(|r| figures::Censor {
                        time: r.time,
                        survival: r.surv,
                        n: r.n_censor as u32,
                    })
                    .collect(),
            }
        })
        .collect();
    let annotation = match &spec.test {
        Some(id) => Some(test_annotation(env, id, by, warnings)?),
        None => None,
    };
    let input = figures::KaplanMeier {
        groups,
        x_label: spec.xlabel.clone().unwrap_or_else(|| "Time".to_string()),
        x_unit: spec.unit.clone(),
        y_label: spec
            .ylabel
            .clone()
            .unwrap_or_else(|| "Survival probability".to_string()),
        scale: if spec.percent {
            figures::SurvivalScale::Percent
        } else {
            figures::SurvivalScale::Probability
        },
        max_time: spec.max_time,
        break_interval: spec.break_interval,
        confidence_bands: spec.ci.unwrap_or(km.groups.len() == 1),
        censor_marks: spec.censor_marks,
        legend: if km.groups.len() == 1 && matches!(spec.legend, LegendSpec::Auto) {
            figures::LegendPosition::None
        } else {
            spec.legend.into()
        },
        legend_title: spec.legend_title.clone(),
        annotation,
        risk_table: spec.risk_table,
        monochrome: spec.monochrome,
        style: figure_style(width),
        ..figures::KaplanMeier::default()
    };
    let svg = figures::kaplan_meier(&input).map_err(|e| figure_error(env, e))?;
    Ok(Figure {
        name: env.block.id.clone(),
        svg,
        caption: spec.caption.clone(),
        label: spec.label.clone(),
        width,
    })
}

/// "Log-rank *p* = 0.030" from an earlier `logrank` block.
fn test_annotation(
    env: &BlockEnv,
    id: &str,
    by: Option<&str>,
    warnings: &mut Vec<String>,
) -> R<String> {
    let Some(result) = env.results.get(id) else {
        let earlier: Vec<&str> = env
            .results
            .values()
            .filter(|r| r.kind == "logrank")
            .map(|r| r.id.as_str())
            .collect();
        return Err(env
            .error("test", format!("no block `{id}` runs before this one"))
            .hint(if earlier.is_empty() {
                "put a `logrank` block before this block (blocks run in reading order)".to_string()
            } else {
                format!("earlier logrank blocks: {}", earlier.join(", "))
            }));
    };
    if result.kind != "logrank" {
        return Err(env.error(
            "test",
            format!(
                "block `{id}` is a `{}` block; `test` names a `logrank` block",
                result.kind
            ),
        ));
    }
    let Some(p) = result.value.get("p").and_then(Value::as_f64) else {
        return Err(env.error(
            "test",
            format!("block `{id}` has no p-value (fewer than two groups had expected events)"),
        ));
    };
    let test_by = result.value.get("by").and_then(Value::as_str);
    if test_by != by {
        warnings.push(format!(
            "the figure shows curves by `{}` but block `{id}` compares groups of `{}`",
            by.unwrap_or("(none)"),
            test_by.unwrap_or("(none)")
        ));
    }
    let name = result
        .value
        .get("test")
        .and_then(Value::as_str)
        .unwrap_or("Log-rank");
    let p_text = numfmt::p_value(p, &env.settings.format);
    // "p = 0.030" -> "*p* = 0.030"
    let rest = p_text.strip_prefix('p').unwrap_or(&p_text);
    Ok(format!("{name} *p*{rest}"))
}

/// The Kaplan-Meier table's header, alignment and column groups: group, n, events, median, then
/// survival at each `requested` time under one group.
fn km_table_columns(
    by_label: Option<String>,
    requested: &[f64],
    level: &str,
    unit: Option<&str>,
) -> (Vec<String>, Vec<Align>, Vec<ColumnGroup>) {
    let mut header = vec![
        by_label.unwrap_or_else(|| "Group".to_string()),
        "n".to_string(),
        "Events".to_string(),
        format!("Median ({level} CI)"),
    ];
    for t in requested {
        let t = numfmt::fixed(*t, if t.fract() == 0.0 { 0 } else { 1 });
        header.push(match unit {
            Some(u) => format!("{t} {u}"),
            None => format!("t = {t}"),
        });
    }
    let mut align = vec![Align::Left, Align::Right, Align::Right, Align::Right];
    align.extend(requested.iter().map(|_| Align::Right));
    let groups = if requested.is_empty() {
        Vec::new()
    } else {
        vec![
            ColumnGroup {
                label: None,
                span: 4,
            },
            ColumnGroup {
                label: Some(format!("Survival ({level} CI)")),
                span: requested.len(),
            },
        ]
    };
    (header, align, groups)
}

/// One group's row of the Kaplan-Meier table; `dashes` is set when a requested time is beyond its
/// follow-up.
fn km_row(
    g: &galley_stats::km::KmGroup,
    label: String,
    requested: &[f64],
    digits: usize,
    rules: &FormatSection,
    dashes: &mut bool,
) -> Row {
    let pct = |x: f64| numfmt::fixed(x * 100.0, rules.percent_digits);
    // Cells that print an estimate with its interval keep the printed text in the CSV
    // (one number would drop the interval); the unrounded values are in results.json.
    let median = Cell::text(format!(
        "{} ({})",
        g.median
            .map_or_else(|| rules.not_reached.clone(), |m| numfmt::fixed(m, digits)),
        numfmt::interval(g.median_lower, g.median_upper, digits, rules)
    ));
    let mut cells = vec![
        Cell::text(label),
        Cell::number(numfmt::count(g.n as f64), g.n as f64),
        Cell::number(numfmt::count(g.events as f64), g.events as f64),
        median,
    ];
    for t in requested {
        cells.push(match g.at.iter().find(|a| a.time == *t) {
            Some(a) => {
                let ci = match (a.lower, a.upper) {
                    (Some(lo), Some(hi)) => {
                        format!(" ({}{}{})", pct(lo), rules.range_separator, pct(hi))
                    }
                    _ => String::new(),
                };
                Cell::text(format!("{}%{ci}", pct(a.surv)))
            }
            None => {
                *dashes = true;
                Cell::text("\u{2013}")
            }
        });
    }
    Row::new(cells)
}

fn km_table(
    env: &BlockEnv,
    km: &KaplanMeier,
    spec: &KmSpec,
    table: &KmTableSpec,
    by_label: Option<String>,
    fallback_labels: Option<&IndexMap<String, String>>,
) -> R<Table> {
    let levels: Vec<String> = km.groups.iter().map(|g| g.level.clone()).collect();
    check_label_keys(env, &table.labels, &levels, "a group")?;
    let rules = &env.settings.format;
    let whole = km
        .groups
        .iter()
        .flat_map(|g| g.table.iter())
        .all(|r| r.time.fract() == 0.0);
    let digits = table.digits.unwrap_or(if whole { 0 } else { 1 });
    let level = level_percent(km.conf_level);
    let unit = table.unit.as_deref();
    let mut requested: Vec<f64> = spec
        .times
        .iter()
        .copied()
        .filter(|t| t.is_finite())
        .collect();
    requested.sort_by(f64::total_cmp);
    requested.dedup();
    let (header, align, groups) = km_table_columns(by_label, &requested, &level, unit);
    let mut dashes = false;
    let rows = km
        .groups
        .iter()
        .map(|g| {
            let label = table
                .labels
                .get(&g.level)
                .or_else(|| fallback_labels.and_then(|l| l.get(&g.level)))
                .cloned()
                .unwrap_or_else(|| {
                    if g.level == "all" && km.groups.len() == 1 {
                        "All".to_string()
                    } else {
                        g.level.clone()
                    }
                });
            km_row(g, label, &requested, digits, rules, &mut dashes)
        })
        .collect();
    let conf = match spec.conf_type {
        ConfTypeSpec::Log => "log",
        ConfTypeSpec::LogLog => "log-log",
        ConfTypeSpec::Plain => "linear",
    };
    let mut notes = vec![format!(
        "Kaplan-Meier estimates; {level} confidence intervals on the {conf} scale (Greenwood variance){}. \
         {}, not reached.",
        match unit {
            Some(u) => format!("; medians in {u}"),
            None => String::new(),
        },
        rules.not_reached
    )];
    if dashes {
        notes.push("\u{2013}: no patient of the group was followed that long.".to_string());
    }
    notes.extend(table.notes.iter().cloned());
    Ok(Table {
        name: env.block.id.clone(),
        caption: table.caption.clone(),
        label: table.label.clone(),
        header,
        align,
        groups,
        rows,
        notes,
    })
}

// ---------------------------------------------------------------------------------------------
// logrank
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogRankSpec {
    #[allow(dead_code)]
    id: String,
    #[allow(dead_code)]
    kind: String,
    data: String,
    /// What to do with rows whose analysis variables are missing.
    #[serde(default)]
    missing: MissingPolicy,
    time: String,
    event: String,
    by: String,
    levels: Option<Vec<String>>,
    /// Stratify by this column (R's `strata()`).
    strata: Option<String>,
    /// Weights S(t-)^rho: 0 log-rank, 1 Peto-Peto.
    #[serde(default)]
    rho: f64,
}

/// `logrank`: compare survival between groups, as R's `survdiff(Surv(time, event) ~ by +
/// strata(s), rho = )`.
pub fn logrank(env: &BlockEnv) -> R<Output> {
    let spec: LogRankSpec = env.block.parse_spec()?;
    let data = env.dataset(&spec.data)?;
    if !(spec.rho.is_finite() && spec.rho >= 0.0) {
        return Err(env.error(
            "rho",
            format!(
                "`rho` must be 0 (log-rank), 1 (Peto-Peto) or another number >= 0 (got {})",
                spec.rho
            ),
        ));
    }
    let (times, events) = response(env, data, &spec.time, &spec.event)?;
    let (labels, codes) = group_column(env, data, &spec.by, "by", spec.levels.as_deref())?;
    let strata = match &spec.strata {
        Some(s) => Some(grouping(env.column(data, s, "strata")?)),
        None => None,
    };
    let strata_name = spec.strata.clone().unwrap_or_default();
    let mut used = response_missing(&spec.time, &spec.event, &times, &events);
    used.push(codes_missing(&spec.by, &codes));
    if let Some((_, s)) = &strata {
        used.push(Missing::of(&strata_name, s));
    }
    let cases = CompleteCases::select(env, data.n_rows, &used, spec.missing)?;
    drop(used);
    let rows = &cases.rows;
    if rows.is_empty() {
        return Err(env.error("time", "no row has a time, an event status and a group"));
    }
    if labels.len() < 2 {
        return Err(env.error(
            "by",
            format!(
                "a log-rank test compares at least two groups, but `{}` has only {}",
                spec.by,
                match labels.first() {
                    Some(l) => format!("one level (`{l}`)"),
                    None => "no values".to_string(),
                }
            ),
        ));
    }
    let group = codes_in(env, &spec.by, "by", &labels, &codes, rows)?;
    let strata_codes: Option<Vec<usize>> = strata.as_ref().map(|(levels, s)| {
        // Strata levels without complete rows are simply absent; renumber densely.
        let mut map = vec![None; levels.len()];
        let mut next = 0;
        rows.iter()
            .map(|&r| {
                let c = s[r].unwrap_or(0);
                *map[c].get_or_insert_with(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect()
    });
    let time: Vec<f64> = rows.iter().map(|&r| times[r].unwrap_or(0.0)).collect();
    let event: Vec<bool> = rows.iter().map(|&r| events[r].unwrap_or(false)).collect();
    let lr: LogRank = galley_stats::logrank::logrank(
        &time,
        &event,
        &group,
        &labels,
        strata_codes.as_deref(),
        spec.rho,
    )
    .map_err(|e| stats_error(env, "by", e))?;

    let base = if spec.rho == 0.0 {
        "log-rank".to_string()
    } else if spec.rho == 1.0 {
        "Peto-Peto".to_string()
    } else {
        format!("Harrington-Fleming (\u{3c1} = {})", spec.rho)
    };
    let test = if spec.strata.is_some() {
        format!("Stratified {base}")
    } else {
        let mut c = base.chars();
        c.next().map_or_else(String::new, |f| {
            f.to_uppercase().collect::<String>() + c.as_str()
        })
    };
    let mut value = env.json("its log-rank result", &lr)?;
    value["test"] = json!(test);
    value["by"] = json!(spec.by);
    value["strata"] = json!(spec.strata);
    value["n"] = json!(rows.len());
    value["events"] = json!(event.iter().filter(|&&e| e).count());
    cases.record(&mut value);
    value["by_level"] = Value::Object(
        lr.groups
            .iter()
            .map(|g| {
                (
                    g.level.clone(),
                    json!({"n": g.n, "observed": g.observed, "expected": g.expected}),
                )
            })
            .collect(),
    );
    let mut output = Output::value(value);
    output.warnings.extend(cases.warning(spec.missing));
    if lr.p.is_none() {
        output.warnings.push(
            "fewer than two groups had expected events, so there is no test (p is missing)".into(),
        );
    }
    Ok(output)
}

// ---------------------------------------------------------------------------------------------
// cox
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "lowercase")]
enum TiesSpec {
    #[default]
    Efron,
    Breslow,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CoxSpec {
    #[allow(dead_code)]
    id: String,
    #[allow(dead_code)]
    kind: String,
    data: String,
    /// What to do with rows whose analysis variables are missing.
    #[serde(default)]
    missing: MissingPolicy,
    time: String,
    event: String,
    covariates: Vec<String>,
    /// Numeric columns to treat as factors.
    #[serde(default)]
    factors: Vec<String>,
    /// Reference level per factor (R's `relevel`).
    #[serde(default)]
    reference: IndexMap<String, String>,
    /// Level order per factor (R's `factor(x, levels = )`); the first is the reference unless
    /// `reference` says otherwise.
    #[serde(default)]
    levels: IndexMap<String, Vec<String>>,
    #[serde(default)]
    ties: TiesSpec,
    /// Stratify by this column (separate baseline hazards).
    strata: Option<String>,
    /// Cluster column: robust (sandwich) variance, as R's `cluster = `.
    cluster: Option<String>,
    #[serde(default = "default_conf_level")]
    conf_level: f64,
    figure: Option<CoxFigureSpec>,
    table: Option<CoxTableSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CoxFigureSpec {
    caption: String,
    label: Option<String>,
    width: Option<f64>,
    /// Display labels: by term (`age`, `celltype=adeno`) or by variable (`celltype`).
    #[serde(default)]
    labels: IndexMap<String, String>,
    xlabel: Option<String>,
    /// Axis range, e.g. `[0.25, 4]`.
    x_range: Option<[f64; 2]>,
    /// Words under the axis left and right of 1: `["Favours A", "Favours B"]`.
    favours: Option<[String; 2]>,
    /// Decimals of the HR column (default 2).
    digits: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CoxTableSpec {
    caption: String,
    label: Option<String>,
    #[serde(default)]
    notes: Vec<String>,
    /// Display labels by term or variable (default: the figure's).
    #[serde(default)]
    labels: IndexMap<String, String>,
    /// Decimals of hazard ratios (default 2).
    digits: Option<usize>,
}

/// `cox`: a Cox proportional hazards model, as R's `coxph(Surv(time, event) ~ covariates +
/// strata(s), ties = , cluster = )`.
pub fn cox(env: &BlockEnv) -> R<Output> {
    let spec: CoxSpec = env.block.parse_spec()?;
    let data = env.dataset(&spec.data)?;
    if spec.covariates.is_empty() {
        return Err(env.error(
            "covariates",
            "`covariates` is empty; name at least one column",
        ));
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
        return Err(env.error(
            "conf_level",
            format!(
                "`conf_level` must be between 0 and 1 (got {})",
                spec.conf_level
            ),
        ));
    }
    let (times, events) = response(env, data, &spec.time, &spec.event)?;
    let mut covs = columns::covariates(
        env,
        data,
        &spec.covariates,
        &spec.factors,
        &spec.reference,
        "covariates",
    )?;
    reorder_cox_levels(env, &mut covs, &spec.levels)?;
    let strata = match &spec.strata {
        Some(s) => Some(grouping(env.column(data, s, "strata")?)),
        None => None,
    };
    let cluster = match &spec.cluster {
        Some(c) => Some(grouping(env.column(data, c, "cluster")?)),
        None => None,
    };
    let (strata_name, cluster_name) = (
        spec.strata.clone().unwrap_or_default(),
        spec.cluster.clone().unwrap_or_default(),
    );
    let mut used = response_missing(&spec.time, &spec.event, &times, &events);
    used.extend(covs.iter().map(Missing::covariate));
    if let Some((_, s)) = &strata {
        used.push(Missing::of(&strata_name, s));
    }
    if let Some((_, c)) = &cluster {
        used.push(Missing::of(&cluster_name, c));
    }
    let cases = CompleteCases::select(env, data.n_rows, &used, spec.missing)?;
    drop(used);
    let rows = &cases.rows;
    if rows.is_empty() {
        return Err(env.error(
            "covariates",
            "no row has a time, an event status and every covariate",
        ));
    }
    let time: Vec<f64> = rows.iter().map(|&r| times[r].unwrap_or(0.0)).collect();
    let event: Vec<bool> = rows.iter().map(|&r| events[r].unwrap_or(false)).collect();
    let stats_covs = columns::to_stats(env, &covs, rows, "covariates")?;
    let design =
        galley_stats::design::build(&stats_covs, false, galley_stats::design::Coding::Treatment)
            .map_err(|e| stats_error(env, "covariates", e))?;
    let strata_codes = strata.as_ref().map(|(_, s)| dense_codes(s, rows));
    let cluster_codes = cluster.as_ref().map(|(_, c)| dense_codes(c, rows));
    let options = CoxOptions {
        ties: match spec.ties {
            TiesSpec::Efron => Ties::Efron,
            TiesSpec::Breslow => Ties::Breslow,
        },
        strata: strata_codes.as_deref(),
        cluster: cluster_codes.as_deref(),
        conf_level: spec.conf_level,
        ..CoxOptions::default()
    };
    let mut fit = galley_stats::cox::cox(&time, &event, &design.x, &design.names, &options)
        .map_err(|e| stats_error(env, "covariates", e))?;
    let stats_warnings = std::mem::take(&mut fit.warnings);

    let mut value = env.json("its Cox model", &fit)?;
    cases.record(&mut value);
    value["strata"] = json!(spec.strata);
    value["cluster"] = json!(spec.cluster);
    value["conf_level"] = json!(spec.conf_level);
    let mut by_term = serde_json::Map::new();
    for t in &fit.terms {
        by_term.insert(t.term.clone(), env.json("a Cox model term", t)?);
    }
    value["by_term"] = Value::Object(by_term);
    let mut output = Output::value(value);
    output.warnings.extend(cases.warning(spec.missing));
    output.warnings.extend(stats_warnings);

    let layout = CoxLayout::new(data, &covs, &stats_covs, &fit);
    if let Some(fig) = &spec.figure {
        output
            .artifacts
            .figures
            .push(cox_figure(env, &fit, spec.conf_level, &layout, fig)?);
    }
    if let Some(table) = &spec.table {
        let fallback = spec.figure.as_ref().map(|f| &f.labels);
        output
            .artifacts
            .tables
            .push(cox_table(env, &fit, &spec, &layout, table, fallback)?);
    }
    Ok(output)
}

/// `levels`: reorder each named factor's levels (the first is the reference unless `reference`
/// says otherwise); an error for a name that is not a covariate or is numeric.
fn reorder_cox_levels(
    env: &BlockEnv,
    covs: &mut [CovariateColumn],
    levels: &IndexMap<String, Vec<String>>,
) -> R<()> {
    for (variable, order) in levels {
        let Some(cov) = covs.iter_mut().find(|c| c.name() == variable) else {
            return Err(env.error(
                "levels",
                format!("`levels` names `{variable}`, which is not among the covariates"),
            ));
        };
        match cov {
            CovariateColumn::Categorical { levels, codes, .. } => {
                let (l, c) = columns::reorder_levels(
                    env,
                    variable,
                    (std::mem::take(levels), std::mem::take(codes)),
                    order,
                    "levels",
                )?;
                *levels = l;
                *codes = c;
            }
            CovariateColumn::Numeric { .. } => {
                return Err(env
                    .error(
                        "levels",
                        format!("`{variable}` is numeric, so it has no levels"),
                    )
                    .hint(format!(
                        "add it to `factors` to treat it as a factor: factors = [\"{variable}\"]"
                    )));
            }
        }
    }
    Ok(())
}

/// Codes `0..k` in order of first appearance among `rows` (strata and cluster ids for the fit);
/// `rows` are complete cases, so every code is present.
fn dense_codes(codes: &[Option<usize>], rows: &[usize]) -> Vec<usize> {
    let mut map: Vec<Option<usize>> = vec![None; codes.iter().flatten().max().map_or(0, |m| m + 1)];
    let mut next = 0;
    rows.iter()
        .map(|&r| {
            let c = codes[r].unwrap_or(0);
            *map[c].get_or_insert_with(|| {
                next += 1;
                next - 1
            })
        })
        .collect()
}

/// How a Cox model's terms are presented: variables in the order given, a factor as a heading
/// with its reference level first.
struct CoxLayout {
    variables: Vec<CoxVariable>,
}

enum CoxVariable {
    Numeric {
        name: String,
        label: String,
        term: usize,
    },
    Factor {
        name: String,
        label: String,
        reference: String,
        /// (level, index of its term)
        levels: Vec<(String, usize)>,
    },
}

impl CoxLayout {
    fn new(
        data: &Dataset,
        columns: &[CovariateColumn],
        stats: &[galley_stats::design::Covariate],
        fit: &Cox,
    ) -> CoxLayout {
        let term_index = |t: &str| fit.terms.iter().position(|x| x.term == t);
        let variables = columns
            .iter()
            .zip(stats)
            .filter_map(|(c, s)| {
                let label = column_label(data, c.name());
                match s {
                    galley_stats::design::Covariate::Numeric { name, .. } => {
                        Some(CoxVariable::Numeric {
                            name: name.clone(),
                            label,
                            term: term_index(name)?,
                        })
                    }
                    galley_stats::design::Covariate::Categorical {
                        name,
                        levels,
                        reference,
                        ..
                    } => Some(CoxVariable::Factor {
                        name: name.clone(),
                        label,
                        reference: levels[*reference].clone(),
                        levels: levels
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| i != reference)
                            .filter_map(|(_, l)| {
                                Some((l.clone(), term_index(&format!("{name}={l}"))?))
                            })
                            .collect(),
                    }),
                }
            })
            .collect();
        CoxLayout { variables }
    }

    /// Names a `labels` map may use: every term, every factor and every factor level as
    /// `variable=level` (the reference included).
    fn label_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for v in &self.variables {
            match v {
                CoxVariable::Numeric { name, .. } => keys.push(name.clone()),
                CoxVariable::Factor {
                    name,
                    reference,
                    levels,
                    ..
                } => {
                    keys.push(name.clone());
                    keys.push(format!("{name}={reference}"));
                    keys.extend(levels.iter().map(|(l, _)| format!("{name}={l}")));
                }
            }
        }
        keys
    }
}

fn pick<'a>(
    key: &str,
    own: &'a IndexMap<String, String>,
    fallback: Option<&'a IndexMap<String, String>>,
) -> Option<&'a String> {
    own.get(key).or_else(|| fallback.and_then(|f| f.get(key)))
}

fn hr_text(
    t: &galley_stats::cox::CoxTerm,
    digits: usize,
    rules: &crate::study::manifest::FormatSection,
) -> String {
    match t.hr {
        Some(hr) => format!(
            "{} ({})",
            numfmt::fixed(hr, digits),
            numfmt::interval(t.lower, t.upper, digits, rules)
        ),
        None => "not estimable".to_string(),
    }
}

fn cox_figure(
    env: &BlockEnv,
    fit: &Cox,
    conf_level: f64,
    layout: &CoxLayout,
    spec: &CoxFigureSpec,
) -> R<Figure> {
    check_label_keys(
        env,
        &spec.labels,
        &layout.label_keys(),
        "a term or covariate of the model",
    )?;
    let width = figure_width(env, spec.width)?;
    let rules = &env.settings.format;
    let digits = spec.digits.unwrap_or(2);
    let label = |key: &str, default: &str| {
        spec.labels
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let term_row = |label: String, t: &galley_stats::cox::CoxTerm, indent: u8| {
        let p = t.p.map(|p| numfmt::p_number(p, rules));
        match (t.hr, t.lower, t.upper) {
            (Some(hr), Some(lo), Some(hi)) => figures::ForestRow {
                label,
                estimate: Some(hr),
                lower: Some(lo),
                upper: Some(hi),
                text: Some(hr_text(t, digits, rules)),
                p,
                indent,
                ..figures::ForestRow::default()
            },
            _ => figures::ForestRow {
                label,
                text: Some("not estimable".to_string()),
                indent,
                ..figures::ForestRow::default()
            },
        }
    };
    let mut rows = Vec::new();
    for v in &layout.variables {
        match v {
            CoxVariable::Numeric {
                name,
                label: l,
                term,
            } => {
                rows.push(term_row(label(name, l), &fit.terms[*term], 0));
            }
            CoxVariable::Factor {
                name,
                label: l,
                reference,
                levels,
            } => {
                rows.push(figures::ForestRow::heading(&label(name, l)));
                rows.push(figures::ForestRow {
                    indent: 1,
                    ..figures::ForestRow::reference(&label(
                        &format!("{name}={reference}"),
                        reference,
                    ))
                });
                for (level, term) in levels {
                    rows.push(term_row(
                        label(&format!("{name}={level}"), level),
                        &fit.terms[*term],
                        1,
                    ));
                }
            }
        }
    }
    let level = level_percent(conf_level);
    let input = figures::ForestPlot {
        rows,
        x_label: spec
            .xlabel
            .clone()
            .unwrap_or_else(|| "Hazard ratio (log scale)".to_string()),
        x_range: spec.x_range.map(|[a, b]| (a, b)),
        text_header: Some(format!("HR ({level} CI)")),
        favours: spec.favours.clone().map(|[a, b]| (a, b)),
        decimals: digits,
        style: figure_style(width),
        ..figures::ForestPlot::default()
    };
    let svg = figures::forest_plot(&input).map_err(|e| figure_error(env, e))?;
    Ok(Figure {
        name: env.block.id.clone(),
        svg,
        caption: spec.caption.clone(),
        label: spec.label.clone(),
        width,
    })
}

fn cox_table(
    env: &BlockEnv,
    fit: &Cox,
    spec: &CoxSpec,
    layout: &CoxLayout,
    table: &CoxTableSpec,
    fallback: Option<&IndexMap<String, String>>,
) -> R<Table> {
    check_label_keys(
        env,
        &table.labels,
        &layout.label_keys(),
        "a term or covariate of the model",
    )?;
    let rules = &env.settings.format;
    let digits = table.digits.unwrap_or(2);
    let label = |key: &str, default: &str| {
        pick(key, &table.labels, fallback)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let p_cell = |p: Option<f64>| match p {
        Some(p) => Cell::number(numfmt::p_number(p, rules), p),
        None => Cell::empty(),
    };
    let term_cells = |label: String, t: &galley_stats::cox::CoxTerm| {
        vec![
            Cell::text(label),
            match t.hr {
                Some(_) => Cell::text(hr_text(t, digits, rules)),
                None => Cell::text("not estimable"),
            },
            p_cell(t.p),
        ]
    };
    let mut rows = Vec::new();
    for v in &layout.variables {
        match v {
            CoxVariable::Numeric {
                name,
                label: l,
                term,
            } => {
                rows.push(Row::new(term_cells(label(name, l), &fit.terms[*term])));
            }
            CoxVariable::Factor {
                name,
                label: l,
                reference,
                levels,
            } => {
                rows.push(Row::new(vec![
                    Cell::text(label(name, l)),
                    Cell::empty(),
                    Cell::empty(),
                ]));
                rows.push(
                    Row::new(vec![
                        Cell::text(label(&format!("{name}={reference}"), reference)),
                        Cell::text("1 (reference)"),
                        Cell::empty(),
                    ])
                    .indented(1),
                );
                for (level, term) in levels {
                    rows.push(
                        Row::new(term_cells(
                            label(&format!("{name}={level}"), level),
                            &fit.terms[*term],
                        ))
                        .indented(1),
                    );
                }
            }
        }
    }
    let level = level_percent(spec.conf_level);
    let ties = match spec.ties {
        TiesSpec::Efron => "Efron",
        TiesSpec::Breslow => "Breslow",
    };
    let mut method = format!(
        "Cox proportional hazards model ({ties} method for tied event times); {} patients, {} events.",
        numfmt::count(fit.n as f64),
        numfmt::count(fit.events as f64)
    );
    if let Some(s) = &spec.strata {
        method.push_str(&format!(
            " Stratified by {} (separate baseline hazards).",
            column_label_of(env, spec, s)
        ));
    }
    if let Some(c) = &spec.cluster {
        method.push_str(&format!(
            " Robust (sandwich) standard errors clustered by {}.",
            column_label_of(env, spec, c)
        ));
    }
    let mut notes = vec![format!(
        "HR, hazard ratio; CI, confidence interval. {method}"
    )];
    notes.extend(table.notes.iter().cloned());
    Ok(Table {
        name: env.block.id.clone(),
        caption: table.caption.clone(),
        label: table.label.clone(),
        header: vec![
            "Variable".to_string(),
            format!("HR ({level} CI)"),
            "p".to_string(),
        ],
        align: vec![Align::Left, Align::Right, Align::Right],
        groups: Vec::new(),
        rows,
        notes,
    })
}

fn column_label_of(env: &BlockEnv, spec: &CoxSpec, name: &str) -> String {
    env.datasets
        .get(&spec.data)
        .map_or_else(|| name.to_string(), |d| column_label(d, name))
}
