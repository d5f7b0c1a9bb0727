//! `table1`: baseline characteristics by group (a "Table 1"), as tableone / gtsummary make it:
//! continuous variables as median (IQR) or mean (SD), categorical ones as n (%) per level, a
//! missing-values row where there are missing values, a p-value per variable with its test named,
//! and tableone's standardized mean difference for two groups. Several panels (e.g. before and
//! after matching) sit side by side under column groups.

// Blocks return the crate's `Diagnostic` (located, with hints) as errors.
#![allow(clippy::result_large_err)]

use galley_stats::balance::{smd_pooled_categorical, smd_pooled_continuous};
use galley_stats::describe::{Summary, summarize};
use galley_stats::hypothesis::{CrossTab, welch_t_test, wilcoxon_rank_sum};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{Value, json};
use statrs::distribution::{ChiSquared, ContinuousCDF, FisherSnedecor};

use super::compare::{TestChoice, VarType, categorical_test, detect_type};
use super::{BlockEnv, Output, TableSpec, columns, grouping};
use crate::analysis::artifacts::{Align, Cell, ColumnGroup, Row};
use crate::analysis::numfmt;
use crate::diagnostics::Diagnostic;
use crate::study::dataset::{ColumnData, Dataset};
use crate::study::manifest::FormatSection;

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum SummaryKind {
    Median,
    Mean,
}

fn default_summary() -> SummaryKind {
    SummaryKind::Median
}

fn default_true() -> bool {
    true
}

/// A variable given as an inline table.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct VariableSpec {
    name: String,
    label: Option<String>,
    summary: Option<SummaryKind>,
    /// Add a range (min–max) row under a continuous variable.
    range: Option<bool>,
    #[serde(rename = "type")]
    var_type: Option<VarType>,
    /// Decimals of a continuous variable's statistics.
    digits: Option<usize>,
    /// For a binary variable from a two-level column: the level counted (default the second).
    level: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PanelSpec {
    data: String,
    label: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table1Spec {
    #[allow(dead_code)]
    id: String,
    #[allow(dead_code)]
    kind: String,
    /// The dataset (or give `[[panels]]`).
    data: Option<String>,
    /// Grouping column (without it: one "Overall" column).
    by: Option<String>,
    /// Column names, or inline tables `{ name, label, summary, range, type, digits, level }`.
    variables: Vec<toml::Value>,
    /// Default summary of continuous variables.
    #[serde(default = "default_summary")]
    continuous: SummaryKind,
    /// Default for the range row of continuous variables.
    #[serde(default)]
    range: bool,
    /// Default decimals of continuous statistics (else chosen from the values).
    digits: Option<usize>,
    /// A p-value per variable.
    #[serde(default = "default_true")]
    test: bool,
    /// tableone's SMD (two groups only; default true then).
    smd: Option<bool>,
    /// An "Overall" column beside the groups.
    #[serde(default)]
    overall: bool,
    /// Rows counting missing values, for variables that have any.
    #[serde(default = "default_true")]
    missing: bool,
    /// Display labels of the groups, by level.
    #[serde(default)]
    labels: IndexMap<String, String>,
    /// Side-by-side panels, each its own dataset under a column-group label.
    #[serde(default)]
    panels: Vec<PanelSpec>,
    table: Option<TableSpec>,
}

/// One variable as the table will show it (after defaults).
struct Variable {
    name: String,
    label: String,
    var_type: VarType,
    summary: SummaryKind,
    range: bool,
    digits: Option<usize>,
    level: Option<String>,
}

/// Per-row codes of one variable in one panel.
enum Values {
    Continuous(Vec<Option<f64>>),
    /// Codes into the variable's (table-wide) level list.
    Categorical(Vec<Option<usize>>),
}

/// A group's (or the overall column's) statistics of one variable.
#[derive(Clone)]
enum Stats {
    Continuous(Summary),
    Categorical {
        n: usize,
        missing: usize,
        counts: Vec<usize>,
    },
}

struct VariableResult {
    /// One per group, then overall.
    stats: Vec<Stats>,
    /// Every value is a whole number (decides the default decimals).
    whole: bool,
    p: Option<f64>,
    test: Option<&'static str>,
    smd: Option<f64>,
}

struct Panel {
    label: Option<String>,
    data_name: String,
    /// Row count per shown group (table-wide group order), then overall.
    n: Vec<usize>,
    missing_group: usize,
    results: Vec<VariableResult>,
}

/// Everything shared by the panels: the variables, their levels, the groups.
struct Layout {
    variables: Vec<Variable>,
    /// Levels of each categorical/binary variable (binary: `[other, counted]`).
    levels: Vec<Vec<String>>,
    /// Group levels shown (table-wide), each with its display label.
    groups: Vec<(String, String)>,
}

type R<T> = std::result::Result<T, Diagnostic>;

pub fn table1(env: &BlockEnv) -> R<Output> {
    let spec: Table1Spec = env.block.parse_spec()?;
    let panels_spec: Vec<(Option<String>, String)> = match (&spec.data, spec.panels.is_empty()) {
        (Some(d), true) => vec![(None, d.clone())],
        (None, false) => spec
            .panels
            .iter()
            .map(|p| (Some(p.label.clone()), p.data.clone()))
            .collect(),
        (Some(_), false) => {
            return Err(env.error(
                "data",
                "give either `data` or `[[panels]]` (each with its own `data`), not both",
            ));
        }
        (None, true) => {
            return Err(env.error("data", "missing field `data` (or `[[panels]]`)"));
        }
    };
    let datasets: Vec<&Dataset> = panels_spec
        .iter()
        .map(|(_, d)| env.dataset(d))
        .collect::<R<_>>()?;
    if spec.variables.is_empty() {
        return Err(env.error("variables", "list at least one variable"));
    }
    let layout = layout(env, &spec, &datasets)?;
    let n_groups = layout.groups.len();
    let panels: Vec<Panel> = panels_spec
        .iter()
        .zip(&datasets)
        .map(|((label, name), data)| compute_panel(env, &spec, &layout, label.clone(), name, data))
        .collect::<R<_>>()?;
    let smd_on = spec.smd.unwrap_or(true) && n_groups == 2;
    if spec.smd == Some(true) && n_groups != 2 {
        return Err(env.error(
            "smd",
            format!("the SMD compares two groups; this table has {n_groups}"),
        ));
    }

    let value = if spec.panels.is_empty() {
        panel_json(&spec, &layout, &panels[0])
    } else {
        json!({
            "panels": panels.iter().map(|p| panel_json(&spec, &layout, p)).collect::<Vec<_>>(),
        })
    };
    let mut output = Output::value(value);
    if let Some(table) = &spec.table {
        output
            .artifacts
            .tables
            .push(render(env, &spec, table, &layout, &panels, smd_on));
    }
    Ok(output)
}

/// Resolve variables (names, labels, types), their levels and the groups across all panels.
fn layout(env: &BlockEnv, spec: &Table1Spec, datasets: &[&Dataset]) -> R<Layout> {
    let mut variables = Vec::new();
    for item in &spec.variables {
        let v = variable_spec(env, item)?;
        if variables.iter().any(|x: &Variable| x.name == v.name) {
            return Err(env.error("variables", format!("`{}` is listed twice", v.name)));
        }
        if spec.by.as_deref() == Some(v.name.as_str()) {
            return Err(env.error(
                "variables",
                format!(
                    "`{}` is the grouping column; it cannot also be a row",
                    v.name
                ),
            ));
        }
        variables.push(resolve_variable(env, spec, v, datasets)?);
    }

    // Levels: the union over panels, in the first panel's order.
    let mut levels = Vec::new();
    for v in &variables {
        let mut all: Vec<String> = Vec::new();
        if v.var_type != VarType::Continuous {
            for data in datasets {
                let column = env.column(data, &v.name, "variables")?;
                for l in grouping(column).0 {
                    if !all.contains(&l) {
                        all.push(l);
                    }
                }
            }
        }
        if v.var_type == VarType::Binary {
            all = binary_levels(env, v, &all, datasets)?;
        }
        levels.push(all);
    }
    Ok(Layout {
        variables,
        levels,
        groups: table_groups(env, spec, datasets)?,
    })
}

/// One entry of `variables`: a column name or an inline table.
fn variable_spec(env: &BlockEnv, item: &toml::Value) -> R<VariableSpec> {
    match item {
        toml::Value::String(name) => Ok(VariableSpec {
            name: name.clone(),
            ..VariableSpec::default()
        }),
        toml::Value::Table(t) => {
            toml::Value::Table(t.clone())
                .try_into()
                .map_err(|e: toml::de::Error| {
                    env.error(
                        "variables",
                        format!("in `variables`: {}", e.message().trim()),
                    )
                })
        }
        other => Err(env.error(
            "variables",
            format!(
                "each variable is a column name or an inline table {{ name = \"...\", label = \"...\" }}; found `{other}`"
            ),
        )),
    }
}

/// A variable with the spec's defaults applied and its type decided (as given, else detected in
/// the first panel); an error when the type does not fit a panel's column or an option.
fn resolve_variable(
    env: &BlockEnv,
    spec: &Table1Spec,
    v: VariableSpec,
    datasets: &[&Dataset],
) -> R<Variable> {
    let mut var_type = None;
    for data in datasets {
        let column = env.column(data, &v.name, "variables")?;
        let detected = detect_type(column).ok_or_else(|| {
            env.error(
                "variables",
                format!(
                    "`{}` is a date; derive a number from it (e.g. a year or an age) first",
                    v.name
                ),
            )
        })?;
        let t = v.var_type.unwrap_or(detected);
        if t == VarType::Continuous && !column.data.is_numeric() {
            return Err(env.error(
                "variables",
                format!(
                    "`{}` is {}; it cannot be summarised as a continuous variable",
                    v.name,
                    column.data.kind().name()
                ),
            ));
        }
        var_type.get_or_insert(t);
    }
    let var_type = var_type.unwrap_or(VarType::Continuous);
    if v.summary.is_some() && var_type != VarType::Continuous {
        return Err(env.error(
            "variables",
            format!(
                "`summary` applies to continuous variables; `{}` is {}",
                v.name,
                var_type.name()
            ),
        ));
    }
    if v.level.is_some() && var_type != VarType::Binary {
        return Err(env.error(
            "variables",
            format!(
                "`level` applies to binary variables; `{}` is {}",
                v.name,
                var_type.name()
            ),
        ));
    }
    Ok(Variable {
        label: v
            .label
            .clone()
            .unwrap_or_else(|| columns::display_label(datasets[0], &v.name)),
        name: v.name,
        var_type,
        summary: v.summary.unwrap_or(spec.continuous),
        range: v.range.unwrap_or(spec.range),
        digits: v.digits.or(spec.digits),
        level: v.level,
    })
}

/// Groups: levels of `by` with rows in some panel, in the first panel's level order, each with
/// its display label. None without `by`.
fn table_groups(
    env: &BlockEnv,
    spec: &Table1Spec,
    datasets: &[&Dataset],
) -> R<Vec<(String, String)>> {
    let Some(by) = &spec.by else {
        if !spec.labels.is_empty() {
            return Err(env.error("labels", "`labels` names groups; give `by` too"));
        }
        return Ok(Vec::new());
    };
    let mut all: Vec<String> = Vec::new();
    for data in datasets {
        let (lv, codes) = columns::groups(env, data, by, "by")?;
        for (i, l) in lv.iter().enumerate() {
            if codes.contains(&Some(i)) && !all.contains(l) {
                all.push(l.clone());
            }
        }
    }
    // Keep the first panel's level order.
    let (order, _) = columns::groups(env, datasets[0], by, "by")?;
    all.sort_by_key(|l| order.iter().position(|o| o == l).unwrap_or(usize::MAX));
    if all.is_empty() {
        return Err(env.error("by", format!("`{by}` has no values")));
    }
    for level in spec.labels.keys() {
        if !all.contains(level) {
            return Err(env.error(
                "labels",
                format!(
                    "`labels` names `{level}`, which is not a group of `{by}` (groups: {})",
                    all.join(", ")
                ),
            ));
        }
    }
    Ok(all
        .into_iter()
        .map(|l| {
            let label = spec.labels.get(&l).cloned().unwrap_or_else(|| l.clone());
            (l, label)
        })
        .collect())
}

/// `[not counted, counted]` of a binary variable.
fn binary_levels(
    env: &BlockEnv,
    v: &Variable,
    levels: &[String],
    datasets: &[&Dataset],
) -> R<Vec<String>> {
    let column = env.column(datasets[0], &v.name, "variables")?;
    match &*column.data {
        ColumnData::Boolean(_) => Ok(vec!["no".into(), "yes".into()]),
        ColumnData::Integer(_) | ColumnData::Number(_)
            if levels.iter().all(|l| l == "0" || l == "1") =>
        {
            Ok(vec!["0".into(), "1".into()])
        }
        _ => {
            if levels.len() > 2 {
                return Err(env.error(
                    "variables",
                    format!(
                        "`{}` has {} levels ({}); a binary variable has two",
                        v.name,
                        levels.len(),
                        levels.join(", ")
                    ),
                ));
            }
            let counted = match &v.level {
                Some(l) if levels.contains(l) => l.clone(),
                Some(l) => {
                    return Err(env.error(
                        "variables",
                        format!(
                            "`{l}` is not a level of `{}` (levels: {})",
                            v.name,
                            levels.join(", ")
                        ),
                    ));
                }
                // No level observed: nothing is counted (the row shows 0 of 0).
                None => levels.last().cloned().unwrap_or_default(),
            };
            let other = levels
                .iter()
                .find(|l| **l != counted)
                .cloned()
                .unwrap_or_else(|| format!("not {counted}"));
            Ok(vec![other, counted])
        }
    }
}

fn compute_panel(
    env: &BlockEnv,
    spec: &Table1Spec,
    layout: &Layout,
    label: Option<String>,
    data_name: &str,
    data: &Dataset,
) -> R<Panel> {
    let n_groups = layout.groups.len();
    // Group index per row (table-wide order); rows with a missing group are left out.
    let group_of: Vec<Option<usize>> = match &spec.by {
        None => vec![Some(0); data.n_rows],
        Some(by) => {
            let (lv, codes) = columns::groups(env, data, by, "by")?;
            codes
                .iter()
                .map(|c| c.and_then(|c| layout.groups.iter().position(|(l, _)| *l == lv[c])))
                .collect()
        }
    };
    let columns_n = n_groups.max(1);
    let mut n = vec![0usize; columns_n + 1];
    for g in group_of.iter().flatten() {
        n[*g] += 1;
        n[columns_n] += 1;
    }
    let missing_group = group_of.iter().filter(|g| g.is_none()).count();
    let mut results = Vec::new();
    for (v, levels) in layout.variables.iter().zip(&layout.levels) {
        let column = env.column(data, &v.name, "variables")?;
        let values = if v.var_type == VarType::Continuous {
            Values::Continuous((0..data.n_rows).map(|r| column.data.number(r)).collect())
        } else {
            let (lv, codes) = grouping(column);
            // Codes into the table-wide levels (binary: 1 = the counted level).
            let map: Vec<Option<usize>> = lv
                .iter()
                .map(|l| levels.iter().position(|x| x == l))
                .collect();
            Values::Categorical(codes.iter().map(|c| c.and_then(|c| map[c])).collect())
        };
        results.push(compute_variable(
            v,
            levels.len(),
            &values,
            &group_of,
            columns_n,
        )?);
    }
    Ok(Panel {
        label,
        data_name: data_name.to_string(),
        n,
        missing_group,
        results,
    })
}

fn compute_variable(
    v: &Variable,
    n_levels: usize,
    values: &Values,
    group_of: &[Option<usize>],
    n_groups: usize,
) -> R<VariableResult> {
    let stats = column_stats(v, n_levels, values, group_of, n_groups)?;
    // Complete cases with a group, for the test and the SMD.
    let (p, test, smd) = if n_groups < 2 {
        (None, None, None)
    } else {
        match values {
            Values::Continuous(x) => continuous_test(v, x, group_of, n_groups),
            Values::Categorical(c) => categorical_test_smd(c, n_levels, group_of, n_groups),
        }
    };
    let whole = match values {
        Values::Continuous(x) => x.iter().flatten().all(|v| v.fract() == 0.0),
        Values::Categorical(_) => true,
    };
    Ok(VariableResult {
        stats,
        whole,
        p,
        test,
        smd,
    })
}

/// A variable's statistics per group column, then overall.
fn column_stats(
    v: &Variable,
    n_levels: usize,
    values: &Values,
    group_of: &[Option<usize>],
    n_groups: usize,
) -> R<Vec<Stats>> {
    let mut stats = Vec::with_capacity(n_groups + 1);
    let in_column = |g: usize, r: usize| -> bool {
        match group_of[r] {
            Some(x) => g == n_groups || x == g,
            None => false,
        }
    };
    let rows = group_of.len();
    for g in 0..=n_groups {
        match values {
            Values::Continuous(x) => {
                let vals: Vec<Option<f64>> = (0..rows)
                    .filter(|&r| in_column(g, r))
                    .map(|r| x[r])
                    .collect();
                stats.push(Stats::Continuous(if vals.is_empty() {
                    galley_stats::describe::empty_summary()
                } else {
                    summarize(&vals).map_err(|e| {
                        Diagnostic::error(format!("variable `{}`: {}", v.name, e.message))
                    })?
                }));
            }
            Values::Categorical(codes) => {
                let mut counts = vec![0usize; n_levels];
                let (mut n, mut missing) = (0, 0);
                for r in (0..rows).filter(|&r| in_column(g, r)) {
                    match codes[r] {
                        Some(c) => {
                            counts[c] += 1;
                            n += 1;
                        }
                        None => missing += 1,
                    }
                }
                stats.push(Stats::Categorical { n, missing, counts });
            }
        }
    }
    Ok(stats)
}

/// p-value, test and SMD of a continuous variable: Wilcoxon or Welch's t for two groups,
/// Kruskal-Wallis or ANOVA for more (by the variable's summary); tableone's SMD for two.
fn continuous_test(
    v: &Variable,
    x: &[Option<f64>],
    group_of: &[Option<usize>],
    n_groups: usize,
) -> (Option<f64>, Option<&'static str>, Option<f64>) {
    let (mut p, mut test, mut smd) = (None, None, None);
    let mut by_group: Vec<Vec<f64>> = vec![Vec::new(); n_groups];
    let mut pooled = Vec::new();
    let mut codes = Vec::new();
    for r in 0..group_of.len() {
        if let (Some(g), Some(val)) = (group_of[r], x[r]) {
            by_group[g].push(val);
            pooled.push(val);
            codes.push(g);
        }
    }
    let present: Vec<&Vec<f64>> = by_group.iter().filter(|g| !g.is_empty()).collect();
    if present.len() == 2 {
        let (a, b) = (present[0], present[1]);
        match v.summary {
            SummaryKind::Median => {
                if let Ok(w) = wilcoxon_rank_sum(a, b, None, true) {
                    p = Some(w.p);
                    test = Some("wilcoxon");
                }
            }
            SummaryKind::Mean => {
                if let Ok(t) = welch_t_test(a, b, 0.95) {
                    p = Some(t.p);
                    test = Some("welch_t");
                }
            }
        }
    } else if present.len() > 2 {
        let groups: Vec<&[f64]> = present.iter().map(|g| g.as_slice()).collect();
        match v.summary {
            SummaryKind::Median => {
                p = kruskal_wallis(&groups);
                test = p.map(|_| "kruskal");
            }
            SummaryKind::Mean => {
                p = one_way_anova(&groups);
                test = p.map(|_| "anova");
            }
        }
    }
    if n_groups == 2 && by_group.iter().all(|g| !g.is_empty()) {
        smd = smd_pooled_continuous(&pooled, &codes).ok().flatten();
    }
    (p, test, smd)
}

/// p-value, test and SMD of a categorical variable: the chi-square or Fisher test of the levels
/// and groups that occur; tableone's SMD for two groups (0 when one level is left).
fn categorical_test_smd(
    c: &[Option<usize>],
    n_levels: usize,
    group_of: &[Option<usize>],
    n_groups: usize,
) -> (Option<f64>, Option<&'static str>, Option<f64>) {
    let (mut p, mut test, mut smd) = (None, None, None);
    let mut counts = vec![vec![0u64; n_groups]; n_levels];
    let mut pairs_codes = Vec::new();
    let mut pairs_groups = Vec::new();
    for r in 0..group_of.len() {
        if let (Some(g), Some(code)) = (group_of[r], c[r]) {
            counts[code][g] += 1;
            pairs_codes.push(code);
            pairs_groups.push(g);
        }
    }
    let col_keep: Vec<usize> = (0..n_groups)
        .filter(|&g| counts.iter().any(|row| row[g] > 0))
        .collect();
    let table: Vec<Vec<u64>> = counts
        .iter()
        .filter(|row| row.iter().sum::<u64>() > 0)
        .map(|row| col_keep.iter().map(|&g| row[g]).collect())
        .collect();
    if table.len() >= 2
        && col_keep.len() >= 2
        && let Ok(t) = CrossTab::from_counts(table)
        && let Ok(result) = categorical_test(&t, TestChoice::Auto)
    {
        p = Some(result.p);
        test = Some(result.test);
    }
    if n_groups == 2 && col_keep.len() == 2 {
        let present_levels = counts
            .iter()
            .filter(|row| row.iter().sum::<u64>() > 0)
            .count();
        smd = if present_levels < 2 {
            Some(0.0)
        } else {
            smd_pooled_categorical(&pairs_codes, n_levels, &pairs_groups)
                .ok()
                .flatten()
        };
    }
    (p, test, smd)
}

/// Average ranks of all values and the sizes of tied groups.
fn ranks(values: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut r = vec![0.0; values.len()];
    let mut ties = Vec::new();
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && values[idx[j + 1]] == values[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            r[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        if j > i {
            ties.push((j - i + 1) as f64);
        }
        i = j + 1;
    }
    (r, ties)
}

/// Kruskal-Wallis rank-sum test p-value, as R's `kruskal.test` (tie-corrected, chi-square with
/// k - 1 degrees of freedom).
pub fn kruskal_wallis(groups: &[&[f64]]) -> Option<f64> {
    let all: Vec<f64> = groups.iter().flat_map(|g| g.iter().copied()).collect();
    let n = all.len() as f64;
    if groups.len() < 2 || n < 2.0 {
        return None;
    }
    let (r, ties) = ranks(&all);
    let mut stat = 0.0;
    let mut start = 0;
    for g in groups {
        let sum: f64 = r[start..start + g.len()].iter().sum();
        stat += sum * sum / g.len() as f64;
        start += g.len();
    }
    let tie = 1.0 - ties.iter().map(|t| t * t * t - t).sum::<f64>() / (n * n * n - n);
    if tie <= 0.0 {
        return None;
    }
    let h = (12.0 * stat / (n * (n + 1.0)) - 3.0 * (n + 1.0)) / tie;
    let dist = ChiSquared::new((groups.len() - 1) as f64).ok()?;
    galley_stats::finite(dist.sf(h))
}

/// One-way analysis of variance p-value (equal variances; R's `anova(lm(y ~ group))`).
pub fn one_way_anova(groups: &[&[f64]]) -> Option<f64> {
    let k = groups.len() as f64;
    let n: f64 = groups.iter().map(|g| g.len() as f64).sum();
    if k < 2.0 || n - k < 1.0 {
        return None;
    }
    let grand = groups.iter().flat_map(|g| g.iter()).sum::<f64>() / n;
    let mut between = 0.0;
    let mut within = 0.0;
    for g in groups {
        let m = g.iter().sum::<f64>() / g.len() as f64;
        between += g.len() as f64 * (m - grand) * (m - grand);
        within += g.iter().map(|x| (x - m) * (x - m)).sum::<f64>();
    }
    if within <= 0.0 {
        return None;
    }
    let f = (between / (k - 1.0)) / (within / (n - k));
    let dist = FisherSnedecor::new(k - 1.0, n - k).ok()?;
    galley_stats::finite(dist.sf(f))
}

fn test_name(test: &str) -> &'static str {
    match test {
        "wilcoxon" => "Wilcoxon rank-sum test",
        "welch_t" => "Welch's t-test",
        "kruskal" => "Kruskal\u{2013}Wallis test",
        "anova" => "one-way analysis of variance",
        "chisq" => "Pearson's chi-square test",
        "chisq_yates" => "Pearson's chi-square test with Yates' continuity correction",
        "fisher" => "Fisher's exact test",
        _ => "test",
    }
}

/// One column's statistics of a variable for the prose: the summary, or counts and shares per
/// level (and of the counted level for a binary variable).
fn stats_json(v: &Variable, levels: &[String], s: &Stats) -> Value {
    match s {
        Stats::Continuous(summary) => json!(summary),
        Stats::Categorical { n, missing, counts } => {
            let pct = |c: usize| {
                if *n > 0 {
                    Some(c as f64 / *n as f64)
                } else {
                    None
                }
            };
            let mut lv = serde_json::Map::new();
            for (l, c) in levels.iter().zip(counts) {
                lv.insert(l.clone(), json!({"n": c, "pct": pct(*c)}));
            }
            let mut out = json!({"n": n, "missing": missing, "levels": lv});
            if v.var_type == VarType::Binary {
                out["count"] = json!(counts[1]);
                out["pct"] = json!(pct(counts[1]));
            }
            out
        }
    }
}

/// The result for one panel: groups and variables keyed for the prose.
fn panel_json(spec: &Table1Spec, layout: &Layout, panel: &Panel) -> Value {
    let n_groups = layout.groups.len().max(1);
    let groups: Vec<Value> = if layout.groups.is_empty() {
        Vec::new()
    } else {
        layout
            .groups
            .iter()
            .enumerate()
            .map(|(i, (level, label))| json!({"level": level, "label": label, "n": panel.n[i]}))
            .collect()
    };
    let mut variables = serde_json::Map::new();
    for ((v, levels), res) in layout
        .variables
        .iter()
        .zip(&layout.levels)
        .zip(&panel.results)
    {
        let stats_json = |s: &Stats| stats_json(v, levels, s);
        let mut by_group = serde_json::Map::new();
        if !layout.groups.is_empty() {
            for (i, (level, _)) in layout.groups.iter().enumerate() {
                by_group.insert(level.clone(), stats_json(&res.stats[i]));
            }
        }
        let overall = &res.stats[n_groups];
        let missing = match overall {
            Stats::Continuous(s) => s.missing,
            Stats::Categorical { missing, .. } => *missing,
        };
        let mut entry = json!({
            "label": v.label,
            "type": v.var_type.name(),
            "missing": missing,
            "p": res.p,
            "test": res.test,
            "smd": res.smd,
            "overall": stats_json(overall),
            "groups": by_group,
        });
        if v.var_type == VarType::Continuous {
            entry["summary"] = json!(match v.summary {
                SummaryKind::Median => "median",
                SummaryKind::Mean => "mean",
            });
        } else {
            entry["levels"] = json!(levels);
        }
        variables.insert(v.name.clone(), entry);
    }
    let mut out = json!({
        "data": panel.data_name,
        "n": panel.n[n_groups],
        "groups": groups,
        "variables": variables,
    });
    if let Some(by) = &spec.by {
        out["by"] = json!(by);
        out["missing_group"] = json!(panel.missing_group);
    }
    if let Some(l) = &panel.label {
        out["label"] = json!(l);
    }
    out
}

/// Decimals of a continuous variable: as given; else 0 when every printed median, quartile and
/// range limit is a whole number; else 1 for whole-number data (and for a mean and SD of whole
/// numbers); otherwise from the magnitude: 2 below 1, 1 below 100, else 0.
fn decimals(v: &Variable, panels: &[Panel], index: usize) -> usize {
    if let Some(d) = v.digits {
        return d;
    }
    let whole_data = panels.iter().all(|p| p.results[index].whole);
    let mut printed_whole = true;
    let mut max_abs: f64 = 0.0;
    for p in panels {
        for s in &p.results[index].stats {
            if let Stats::Continuous(s) = s {
                for x in [s.median, s.q1, s.q3, s.min, s.max].into_iter().flatten() {
                    printed_whole &= x.fract() == 0.0;
                    max_abs = max_abs.max(x.abs());
                }
            }
        }
    }
    match v.summary {
        SummaryKind::Median if whole_data && printed_whole => 0,
        _ if whole_data => 1,
        _ if max_abs < 1.0 => 2,
        _ if max_abs < 100.0 => 1,
        _ => 0,
    }
}

/// Superscript letter marking the test of a p-value.
const MARKS: [&str; 8] = [
    "\u{1d43}", "\u{1d47}", "\u{1d9c}", "\u{1d48}", "\u{1d49}", "\u{1da0}", "\u{1d4d}", "\u{02b0}",
];

/// The table's columns: per panel the group columns (`None` = overall), then p and SMD; and the
/// tests used, each with its letter.
struct TableColumns<'a> {
    rules: &'a FormatSection,
    n_groups: usize,
    group_cols: Vec<Option<usize>>,
    test_on: bool,
    smd_on: bool,
    /// In order of first use.
    tests_used: Vec<&'static str>,
}

/// Which kinds of values the table shows (for the notes).
#[derive(Default)]
struct Uses {
    median: bool,
    mean: bool,
    categorical: bool,
}

impl TableColumns<'_> {
    /// Columns of one panel.
    fn per_panel(&self) -> usize {
        self.group_cols.len() + self.test_on as usize + self.smd_on as usize
    }

    /// Index into a result's `stats` of a group column.
    fn col_index(&self, g: &Option<usize>) -> usize {
        g.unwrap_or(self.n_groups.max(1))
    }

    /// The superscript letter of a test.
    fn mark(&self, t: &str) -> &'static str {
        self.tests_used
            .iter()
            .position(|u| *u == t)
            .map_or("", |i| MARKS[i.min(MARKS.len() - 1)])
    }

    fn header(&self, layout: &Layout, panels: &[Panel]) -> Vec<String> {
        let mut header = vec!["Characteristic".to_string()];
        for p in panels {
            for g in &self.group_cols {
                let (label, n) = match g {
                    Some(i) => (layout.groups[*i].1.clone(), p.n[*i]),
                    None => ("Overall".to_string(), p.n[self.n_groups.max(1)]),
                };
                // Non-breaking spaces keep "(n = 25)" together when the header wraps.
                header.push(format!(
                    "{label} (n\u{a0}=\u{a0}{})",
                    numfmt::count(n as f64)
                ));
            }
            if self.test_on {
                header.push("p".into());
            }
            if self.smd_on {
                header.push("SMD".into());
            }
        }
        header
    }

    /// The p and SMD cells of variable `vi` in panel `p`.
    fn trailing(&self, p: &Panel, vi: usize, cells: &mut Vec<Cell>) {
        let r = &p.results[vi];
        if self.test_on {
            cells.push(match (r.p, r.test) {
                (Some(pv), Some(t)) => Cell::number(
                    format!("{}{}", numfmt::p_number(pv, self.rules), self.mark(t)),
                    pv,
                ),
                _ => Cell::text("\u{2013}"),
            });
        }
        if self.smd_on {
            cells.push(match r.smd {
                Some(s) => Cell::number(numfmt::fixed(s, 2), s),
                None => Cell::text("\u{2013}"),
            });
        }
    }

    /// Empty p and SMD cells (rows under a variable's first row).
    fn blank_trailing(&self, cells: &mut Vec<Cell>) {
        for _ in 0..(self.test_on as usize + self.smd_on as usize) {
            cells.push(Cell::empty());
        }
    }

    /// A row of the variable's label, one cell per group column from `cell` (skipping columns
    /// whose statistics are not of the kind `cell` reads), then p and SMD.
    fn first_row(
        &self,
        label: &str,
        panels: &[Panel],
        vi: usize,
        cell: impl Fn(&Stats) -> Option<Cell>,
    ) -> Row {
        Row::new(self.cells(label, panels, vi, cell, true))
    }

    /// An indented row under a variable: one cell per group column from `cell`, blank p and SMD.
    fn sub_row(
        &self,
        label: &str,
        panels: &[Panel],
        vi: usize,
        cell: impl Fn(&Stats) -> Option<Cell>,
    ) -> Row {
        Row::new(self.cells(label, panels, vi, cell, false)).indented(1)
    }

    /// The label, then per panel the group columns' cells and its p and SMD (blank unless `tests`).
    fn cells(
        &self,
        label: &str,
        panels: &[Panel],
        vi: usize,
        cell: impl Fn(&Stats) -> Option<Cell>,
        tests: bool,
    ) -> Vec<Cell> {
        let mut cells = vec![Cell::text(label)];
        for p in panels {
            for g in &self.group_cols {
                cells.extend(cell(&p.results[vi].stats[self.col_index(g)]));
            }
            match tests {
                true => self.trailing(p, vi, &mut cells),
                false => self.blank_trailing(&mut cells),
            }
        }
        cells
    }

    /// The rows of variable `vi`: its summary (or heading and one row per level), a range row if
    /// asked for, and a missing-values row when there are missing values.
    fn variable_rows(
        &self,
        spec: &Table1Spec,
        layout: &Layout,
        panels: &[Panel],
        vi: usize,
        uses: &mut Uses,
    ) -> Vec<Row> {
        let (v, levels) = (&layout.variables[vi], &layout.levels[vi]);
        let (sep, digits) = (&self.rules.range_separator, self.rules.percent_digits);
        let n_percent = |li: usize| {
            move |s: &Stats| match s {
                Stats::Categorical { n, counts, .. } => Some(Cell::number(
                    numfmt::n_percent(counts[li] as f64, *n as f64, digits),
                    counts[li] as f64,
                )),
                Stats::Continuous(_) => None,
            }
        };
        let mut rows = Vec::new();
        match v.var_type {
            VarType::Continuous => {
                let d = decimals(v, panels, vi);
                match v.summary {
                    SummaryKind::Median => uses.median = true,
                    SummaryKind::Mean => uses.mean = true,
                }
                rows.push(self.first_row(&v.label, panels, vi, |s| match s {
                    Stats::Continuous(s) => Some(continuous_cell(s, v.summary, d, sep)),
                    Stats::Categorical { .. } => None,
                }));
                if v.range {
                    rows.push(self.sub_row("Range", panels, vi, |s| match s {
                        Stats::Continuous(s) => Some(match (s.min, s.max) {
                            (Some(a), Some(b)) => Cell::text(format!(
                                "{}{sep}{}",
                                numfmt::fixed(a, d),
                                numfmt::fixed(b, d)
                            )),
                            _ => Cell::text("\u{2013}"),
                        }),
                        Stats::Categorical { .. } => None,
                    }));
                }
            }
            VarType::Binary => {
                uses.categorical = true;
                rows.push(self.first_row(&v.label, panels, vi, n_percent(1)));
            }
            VarType::Categorical => {
                uses.categorical = true;
                rows.push(self.first_row(&v.label, panels, vi, |_| Some(Cell::empty())));
                for (li, level) in levels.iter().enumerate() {
                    rows.push(self.sub_row(level, panels, vi, n_percent(li)));
                }
            }
        }
        let any_missing = panels
            .iter()
            .any(|p| p.results[vi].stats.iter().any(|s| missing_of(s) > 0));
        if spec.missing && any_missing {
            rows.push(self.sub_row("Missing", panels, vi, |s| {
                let m = missing_of(s);
                Some(Cell::number(numfmt::count(m as f64), m as f64))
            }));
        }
        rows
    }
}

/// Missing values counted in one column's statistics.
fn missing_of(s: &Stats) -> usize {
    match s {
        Stats::Continuous(s) => s.missing,
        Stats::Categorical { missing, .. } => *missing,
    }
}

fn render(
    env: &BlockEnv,
    spec: &Table1Spec,
    table: &TableSpec,
    layout: &Layout,
    panels: &[Panel],
    smd_on: bool,
) -> crate::analysis::artifacts::Table {
    let n_groups = layout.groups.len();
    let show_overall = spec.by.is_none() || spec.overall;
    let test_on = spec.test && n_groups >= 2;
    // Columns of one panel: group columns, overall, p, SMD.
    let mut group_cols: Vec<Option<usize>> = (0..n_groups).map(Some).collect();
    if show_overall {
        group_cols.push(None); // overall
    }
    // Tests used, in order of first use, each with a letter.
    let mut tests_used: Vec<&'static str> = Vec::new();
    if test_on {
        for r in panels.iter().flat_map(|p| &p.results) {
            if let Some(t) = r.test
                && !tests_used.contains(&t)
            {
                tests_used.push(t);
            }
        }
    }
    let cols = TableColumns {
        rules: &env.settings.format,
        n_groups,
        group_cols,
        test_on,
        smd_on,
        tests_used,
    };
    let per_panel = cols.per_panel();
    let header = cols.header(layout, panels);
    let mut align = vec![Align::Left];
    align.extend(std::iter::repeat_n(Align::Center, per_panel * panels.len()));
    let groups = if panels.len() > 1 || panels[0].label.is_some() {
        let mut g = vec![ColumnGroup {
            label: None,
            span: 1,
        }];
        g.extend(panels.iter().map(|p| ColumnGroup {
            label: p.label.clone(),
            span: per_panel,
        }));
        g
    } else {
        Vec::new()
    };
    let mut rows = Vec::new();
    let mut uses = Uses::default();
    for vi in 0..layout.variables.len() {
        rows.extend(cols.variable_rows(spec, layout, panels, vi, &mut uses));
    }
    let notes = notes(env, spec, panels, &cols, &uses);
    columns::table_artifact(env, table, header, align, groups, rows, notes)
}

/// Notes under the table: what the values are, the tests, abbreviations, rows without a group.
fn notes(
    env: &BlockEnv,
    spec: &Table1Spec,
    panels: &[Panel],
    cols: &TableColumns,
    uses: &Uses,
) -> Vec<String> {
    let mut notes = Vec::new();
    let mut shown = Vec::new();
    if uses.categorical {
        shown.push("n (%)");
    }
    if uses.median {
        shown.push("median (IQR)");
    }
    if uses.mean {
        shown.push("mean (SD)");
    }
    let mut first = format!("Values are {}", join_or(&shown));
    if uses.categorical {
        first.push_str("; percentages are of non-missing values");
    }
    first.push('.');
    notes.push(first);
    if cols.test_on && !cols.tests_used.is_empty() {
        let legend: Vec<String> = cols
            .tests_used
            .iter()
            .map(|t| format!("{}{}", cols.mark(t), test_name(t)))
            .collect();
        let mut text = format!("p: {}.", legend.join("; "));
        if cols
            .tests_used
            .iter()
            .any(|t| matches!(*t, "chisq" | "chisq_yates" | "fisher"))
        {
            text.push_str(" Categorical variables: chi-square test (Yates' continuity correction for 2\u{a0}\u{d7}\u{a0}2 tables), or Fisher's exact test when an expected count is below 5.");
        }
        notes.push(text);
    }
    let mut abbreviations = Vec::new();
    if uses.median {
        abbreviations.push("IQR, interquartile range");
    }
    if uses.mean {
        abbreviations.push("SD, standard deviation");
    }
    if cols.smd_on {
        abbreviations.push("SMD, standardized mean difference");
    }
    if !abbreviations.is_empty() {
        notes.push(format!("{}.", abbreviations.join("; ")));
    }
    if let Some(by) = &spec.by {
        let missing: usize = panels.iter().map(|p| p.missing_group).sum();
        if missing > 0 {
            let label = env
                .dataset(&panels[0].data_name)
                .map(|d| columns::display_label(d, by))
                .unwrap_or_else(|_| by.clone());
            notes.push(format!(
                "{missing} row(s) with unknown {label} are not shown."
            ));
        }
    }
    notes
}

fn join_or(items: &[&str]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].to_string(),
        _ => format!(
            "{} or {}",
            items[..items.len() - 1].join(", "),
            items[items.len() - 1]
        ),
    }
}

fn continuous_cell(s: &Summary, summary: SummaryKind, d: usize, sep: &str) -> Cell {
    match summary {
        SummaryKind::Median => match (s.median, s.q1, s.q3) {
            (Some(m), Some(a), Some(b)) => Cell::number(
                format!(
                    "{} ({}{sep}{})",
                    numfmt::fixed(m, d),
                    numfmt::fixed(a, d),
                    numfmt::fixed(b, d)
                ),
                m,
            ),
            _ => Cell::text("\u{2013}"),
        },
        SummaryKind::Mean => match (s.mean, s.sd) {
            (Some(m), Some(sd)) => Cell::number(
                format!("{} ({})", numfmt::fixed(m, d), numfmt::fixed(sd, d)),
                m,
            ),
            (Some(m), None) => Cell::number(numfmt::fixed(m, d), m),
            _ => Cell::text("\u{2013}"),
        },
    }
}

/// Unit tests, and helpers running a block on hand-made datasets (used by the other kinds' tests).
#[cfg(test)]
pub(crate) mod tests {
    use indexmap::IndexMap;

    use crate::analysis::{AnalysisSettings, BlockEnv, Output, run_block};
    use crate::diagnostics::Diagnostic;
    use crate::study::dataset::{Column, ColumnData, Dataset};
    use crate::study::manuscript::AnalysisBlock;

    pub fn block(body: &str) -> AnalysisBlock {
        let table: toml::Table = toml::from_str(body).expect("valid TOML");
        AnalysisBlock {
            id: table["id"].as_str().unwrap().to_string(),
            kind: table["kind"].as_str().unwrap().to_string(),
            body: body.to_string(),
            table,
            file: "test.md".into(),
            relative: "test.md".into(),
            body_offset: 0,
            file_text: std::sync::Arc::from(body),
            line: 1,
        }
    }

    pub fn run(body: &str, datasets: &[Dataset]) -> Result<Output, Diagnostic> {
        run_with(body, datasets, &AnalysisSettings::standalone())
    }

    /// `run` under other settings (a cutoff, a seed).
    pub fn run_with(
        body: &str,
        datasets: &[Dataset],
        settings: &AnalysisSettings,
    ) -> Result<Output, Diagnostic> {
        let block = block(body);
        let datasets: IndexMap<String, Dataset> = datasets
            .iter()
            .map(|d| (d.name.clone(), d.clone()))
            .collect();
        let results = IndexMap::new();
        let env = BlockEnv {
            block: &block,
            datasets: &datasets,
            results: &results,
            settings,
        };
        run_block(&env)
    }

    pub fn text(values: &[Option<&str>]) -> ColumnData {
        ColumnData::String(values.iter().map(|v| v.map(str::to_string)).collect())
    }

    pub fn category(levels: &[&str], values: &[Option<&str>]) -> ColumnData {
        ColumnData::Category {
            levels: levels.iter().map(|l| l.to_string()).collect(),
            codes: values
                .iter()
                .map(|v| v.map(|v| levels.iter().position(|l| *l == v).unwrap() as u32))
                .collect(),
        }
    }

    pub fn dataset(name: &str, columns: Vec<(&str, ColumnData)>) -> Dataset {
        Dataset::new(
            name,
            columns
                .into_iter()
                .map(|(n, d)| Column::new(n, d))
                .collect(),
        )
    }

    fn close(a: &serde_json::Value, b: f64) {
        let a = a.as_f64().unwrap_or_else(|| panic!("not a number: {a}"));
        // statrs' normal tail is good to about 1e-10 relative.
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} vs {b}");
    }

    /// Groups A (x = 1, 2, 3, 4) and B (x = 3, 5, 7, missing); smoker A 3/4, B 1/4; site with
    /// three levels, one missing.
    fn patients() -> crate::study::dataset::Dataset {
        dataset(
            "patients",
            vec![
                (
                    "group",
                    category(
                        &["A", "B"],
                        &[
                            Some("A"),
                            Some("A"),
                            Some("A"),
                            Some("A"),
                            Some("B"),
                            Some("B"),
                            Some("B"),
                            Some("B"),
                            None,
                        ],
                    ),
                ),
                (
                    "x",
                    ColumnData::Number(vec![
                        Some(1.0),
                        Some(2.0),
                        Some(3.0),
                        Some(4.0),
                        Some(3.0),
                        Some(5.0),
                        Some(7.0),
                        None,
                        Some(100.0),
                    ]),
                ),
                (
                    "smoker",
                    ColumnData::Boolean(vec![
                        Some(true),
                        Some(false),
                        Some(true),
                        Some(true),
                        Some(false),
                        Some(false),
                        Some(true),
                        Some(false),
                        Some(true),
                    ]),
                ),
                (
                    "site",
                    category(
                        &["north", "south", "east"],
                        &[
                            Some("north"),
                            Some("south"),
                            Some("north"),
                            None,
                            Some("east"),
                            Some("east"),
                            Some("south"),
                            Some("east"),
                            Some("north"),
                        ],
                    ),
                ),
            ],
        )
    }

    const SPEC: &str = r#"
id = "t1"
kind = "table1"
data = "patients"
by = "group"
variables = ["x", "smoker", "site", { name = "x", label = "x again" }]
"#;

    #[test]
    fn values_by_hand() {
        let spec = SPEC.replace(", { name = \"x\", label = \"x again\" }", "")
            + "labels = { A = \"Arm A\" }\n[table]\ncaption = \"Baseline\"\n";
        let out = run(&spec, &[patients()]).unwrap();
        let v = &out.value;
        // The row with a missing group is left out of every column.
        assert_eq!(v["n"], 8);
        assert_eq!(v["missing_group"], 1);
        assert_eq!(v["groups"][0]["n"], 4);
        assert_eq!(v["groups"][0]["label"], "Arm A");
        let x = &v["variables"]["x"];
        // A: quantile type 7 of 1..4 -> 1.75, 2.5, 3.25. B: 3, 5, 7 -> 4, 5, 6; one missing.
        close(&x["groups"]["A"]["median"], 2.5);
        close(&x["groups"]["A"]["q1"], 1.75);
        close(&x["groups"]["B"]["q3"], 6.0);
        assert_eq!(x["groups"]["B"]["missing"], 1);
        assert_eq!(x["missing"], 1);
        // Wilcoxon: W = 11.5 - 10 = 1.5; z = (1.5 - 6 + 0.5) / sqrt(1 * (8 - 6 / 42)); R 0.153576396549984.
        assert_eq!(x["test"], "wilcoxon");
        close(&x["p"], 0.153576396549984);
        // SMD: |2.5 - 5| / sqrt((5/3 + 4) / 2).
        close(&x["smd"], 2.5 / ((5.0 / 3.0 + 4.0) / 2.0f64).sqrt());
        // Smoker: A 3/4, B 1/4; expected counts 2 < 5 -> Fisher, p = 34/70.
        let s = &v["variables"]["smoker"];
        assert_eq!(s["type"], "binary");
        assert_eq!(s["groups"]["A"]["count"], 3);
        close(&s["groups"]["B"]["pct"], 0.25);
        assert_eq!(s["test"], "fisher");
        close(&s["p"], 34.0 / 70.0);
        // Two-level SMD: |0.75 - 0.25| / sqrt((0.1875 + 0.1875) / 2).
        close(&s["smd"], 0.5 / 0.1875f64.sqrt());
        // Site: A north 2, south 1 (one missing); B south 1, east 3.
        let site = &v["variables"]["site"];
        assert_eq!(site["groups"]["A"]["n"], 3);
        assert_eq!(site["groups"]["A"]["missing"], 1);
        assert_eq!(site["groups"]["A"]["levels"]["north"]["n"], 2);
        close(&site["groups"]["A"]["levels"]["north"]["pct"], 2.0 / 3.0);
        assert_eq!(site["groups"]["B"]["levels"]["east"]["n"], 3);
        assert_eq!(site["test"], "fisher");
        // Overall column: all rows with a group.
        assert_eq!(site["overall"]["levels"]["east"]["n"], 3);

        // The table: header, rows, formatting.
        let t = &out.artifacts.tables[0];
        assert_eq!(
            t.header,
            vec![
                "Characteristic",
                "Arm A (n\u{a0}=\u{a0}4)",
                "B (n\u{a0}=\u{a0}4)",
                "p",
                "SMD"
            ]
        );
        let texts: Vec<Vec<&str>> = t
            .rows
            .iter()
            .map(|r| r.cells.iter().map(|c| c.text.as_str()).collect())
            .collect();
        // Non-integer data below 100: one decimal.
        assert_eq!(
            texts[0],
            vec![
                "x",
                "2.5 (1.8\u{2013}3.2)",
                "5.0 (4.0\u{2013}6.0)",
                "0.15\u{1d43}",
                "1.49"
            ]
        );
        assert_eq!(texts[1], vec!["Missing", "0", "1", "", ""]);
        assert_eq!(t.rows[1].indent, 1);
        assert_eq!(
            texts[2],
            vec!["smoker", "3 (75%)", "1 (25%)", "0.49\u{1d47}", "1.15"]
        );
        assert_eq!(texts[3][0], "site");
        assert_eq!(texts[4], vec!["north", "2 (67%)", "0 (0%)", "", ""]);
        assert_eq!(texts[7], vec!["Missing", "1", "0", "", ""]);
        assert_eq!(texts.len(), 8);
        assert!(
            t.notes
                .iter()
                .any(|n| n.contains("\u{1d43}Wilcoxon rank-sum test"))
        );
        assert!(
            t.notes
                .iter()
                .any(|n| n.contains("1 row(s) with unknown group"))
        );
    }

    #[test]
    fn overall_only_and_panels() {
        let spec = "id = \"t\"\nkind = \"table1\"\ndata = \"patients\"\nvariables = [\"smoker\"]\n[table]\ncaption = \"c\"\n";
        let out = run(spec, &[patients()]).unwrap();
        let t = &out.artifacts.tables[0];
        assert_eq!(
            t.header,
            vec!["Characteristic", "Overall (n\u{a0}=\u{a0}9)"]
        );
        assert_eq!(t.rows[0].cells[1].text, "5 (56%)");
        assert!(out.value["variables"]["smoker"]["p"].is_null());

        let mut after = patients().take("after", &[0, 1, 4, 5]);
        after.name = "after".into();
        let spec = "id = \"t\"\nkind = \"table1\"\nby = \"group\"\nvariables = [\"smoker\"]\n[[panels]]\ndata = \"patients\"\nlabel = \"Before\"\n[[panels]]\ndata = \"after\"\nlabel = \"After\"\n[table]\ncaption = \"c\"\n";
        let out = run(spec, &[patients(), after]).unwrap();
        let t = &out.artifacts.tables[0];
        assert_eq!(t.header.len(), 1 + 2 * 4);
        assert_eq!(t.groups.len(), 3);
        assert_eq!(t.groups[1].label.as_deref(), Some("Before"));
        assert_eq!(t.groups[2].span, 4);
        let after = &out.value["panels"][1];
        assert_eq!(after["n"], 4);
        assert_eq!(after["variables"]["smoker"]["groups"]["A"]["count"], 1);
        // A 1/2 vs B 0/2: SMD |0.5 - 0| / sqrt((0.25 + 0) / 2).
        close(&after["variables"]["smoker"]["smd"], 0.5 / 0.125f64.sqrt());
    }

    #[test]
    fn three_groups_use_kruskal_and_anova() {
        // R: kruskal.test(y ~ h)$p.value = 0.028696017396577; anova(lm(y ~ h)) p = 0.00216296551698589.
        let y = [1.0, 2.0, 3.0, 4.0, 3.0, 5.0, 7.0, 8.0, 9.0, 9.0];
        let h = ["A", "A", "A", "A", "B", "B", "B", "C", "C", "C"];
        let data = dataset(
            "d",
            vec![
                (
                    "h",
                    category(
                        &["A", "B", "C"],
                        &h.iter().map(|x| Some(*x)).collect::<Vec<_>>(),
                    ),
                ),
                (
                    "y",
                    ColumnData::Number(y.iter().map(|v| Some(*v)).collect()),
                ),
            ],
        );
        let spec = "id = \"t\"\nkind = \"table1\"\ndata = \"d\"\nby = \"h\"\nvariables = [\"y\", { name = \"y2\", summary = \"mean\" }]\n";
        let mut data2 = data.clone();
        data2.set_column(crate::study::dataset::Column::new(
            "y2",
            ColumnData::Number(y.iter().map(|v| Some(*v)).collect()),
        ));
        let out = run(spec, &[data2]).unwrap();
        let v = &out.value["variables"];
        assert_eq!(v["y"]["test"], "kruskal");
        assert!((v["y"]["p"].as_f64().unwrap() - 0.028696017396577).abs() < 1e-12);
        assert_eq!(v["y2"]["test"], "anova");
        assert!((v["y2"]["p"].as_f64().unwrap() - 0.00216296551698589).abs() < 1e-12);
        assert!(v["y"]["smd"].is_null());
    }

    #[test]
    fn errors_are_clear() {
        let err = |spec: &str| run(spec, &[patients()]).unwrap_err().message;
        assert!(err(&SPEC.replace("\"site\"", "\"sites\"")).contains("no column `sites`"));
        assert!(err(SPEC).contains("listed twice"));
        assert!(
            err(&SPEC.replace("\"smoker\"", "{ name = \"smoker\", summary = \"mean\" }"))
                .contains("`summary` applies to continuous variables")
        );
        assert!(
            err(
                &(SPEC.replace(", { name = \"x\", label = \"x again\" }", "")
                    + "labels = { C = \"c\" }\n")
            )
            .contains("not a group")
        );
        assert!(err(&SPEC.replace("by = \"group\"", "by = \"x\"")).contains("grouping column"));
        let by_number = "id = \"t\"\nkind = \"table1\"\ndata = \"patients\"\nby = \"x\"\nvariables = [\"site\"]\n";
        assert!(err(by_number).contains("column `x` is number"));
    }
}
