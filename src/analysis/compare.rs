//! `compare`: one test of one variable between two groups, as R's `chisq.test`, `fisher.test`,
//! `wilcox.test` and `t.test` compute it, with the per-group numbers the prose quotes beside it.
//! The variable-type and test-choice rules here are shared with `table1`.

// Blocks return the crate's `Diagnostic` (located, with hints) as errors.
#![allow(clippy::result_large_err)]

use galley_stats::describe::summarize;
use galley_stats::hypothesis::{
    CrossTab, chisq_test, chisq_test_yates, fisher_test, welch_t_test, wilcoxon_rank_sum,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::columns::{CompleteCases, Missing, MissingPolicy};
use super::{BlockEnv, Output, columns, grouping};
use crate::diagnostics::Diagnostic;
use crate::study::dataset::{Column, ColumnData};

/// How a variable is summarised and tested.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum VarType {
    /// Numbers: median (IQR) or mean (SD); rank-sum or t tests.
    Continuous,
    /// Levels: n (%) per level; chi-square or Fisher.
    Categorical,
    /// Yes/no (a boolean, or an integer column holding only 0 and 1): the "yes" count.
    Binary,
}

impl VarType {
    pub fn name(self) -> &'static str {
        match self {
            VarType::Continuous => "continuous",
            VarType::Categorical => "categorical",
            VarType::Binary => "binary",
        }
    }
}

/// The type a column is summarised as unless the spec says otherwise: categories and text are
/// categorical; booleans and 0/1 integer columns binary; other numbers continuous.
pub fn detect_type(column: &Column) -> Option<VarType> {
    match &*column.data {
        ColumnData::Category { .. } | ColumnData::String(_) => Some(VarType::Categorical),
        ColumnData::Boolean(_) => Some(VarType::Binary),
        ColumnData::Integer(v) => {
            let present: Vec<i64> = v.iter().flatten().copied().collect();
            if !present.is_empty() && present.iter().all(|&x| x == 0 || x == 1) {
                Some(VarType::Binary)
            } else {
                Some(VarType::Continuous)
            }
        }
        ColumnData::Number(_) => Some(VarType::Continuous),
        ColumnData::Date(_) => None,
    }
}

/// Which test a comparison uses.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "snake_case")]
pub enum TestChoice {
    /// Categorical: Fisher when an expected count is below 5, else chi-square (Yates for 2x2);
    /// continuous: Wilcoxon rank-sum.
    #[default]
    Auto,
    Chisq,
    ChisqYates,
    Fisher,
    Wilcoxon,
    WelchT,
}

impl TestChoice {
    pub fn name(self) -> &'static str {
        match self {
            TestChoice::Auto => "auto",
            TestChoice::Chisq => "chisq",
            TestChoice::ChisqYates => "chisq_yates",
            TestChoice::Fisher => "fisher",
            TestChoice::Wilcoxon => "wilcoxon",
            TestChoice::WelchT => "welch_t",
        }
    }

    fn is_categorical(self) -> bool {
        matches!(
            self,
            TestChoice::Chisq | TestChoice::ChisqYates | TestChoice::Fisher
        )
    }
}

/// A categorical test's result: the test run, its method text and the htest values.
#[derive(Debug, Clone)]
pub struct CategoricalTest {
    /// `chisq`, `chisq_yates` or `fisher`.
    pub test: &'static str,
    pub method: String,
    pub statistic: Option<f64>,
    pub df: Option<f64>,
    pub p: f64,
    pub odds_ratio: Option<f64>,
}

/// Run a categorical test on a table without empty rows or columns. `Auto` is the rule tables
/// state: Fisher's exact test when any expected count is below 5 (chi-square if the table is too
/// large to enumerate), else Pearson's chi-square with Yates' correction for a 2x2 table, as
/// `chisq.test`'s default.
pub fn categorical_test(table: &CrossTab, choice: TestChoice) -> Result<CategoricalTest, String> {
    let two_by_two = table.n_rows() == 2 && table.n_cols() == 2;
    let chisq = |yates: bool, method: String| -> Result<CategoricalTest, String> {
        let result = if yates && two_by_two {
            chisq_test_yates(table)
                .map_err(|e| e.message)?
                .ok_or("Yates' correction needs a 2x2 table")?
        } else {
            chisq_test(table).map_err(|e| e.message)?
        };
        Ok(CategoricalTest {
            test: if yates && two_by_two {
                "chisq_yates"
            } else {
                "chisq"
            },
            method,
            statistic: Some(result.statistic),
            df: Some(result.df as f64),
            p: result.p,
            odds_ratio: None,
        })
    };
    let fisher = |method: String| -> Result<CategoricalTest, String> {
        let f = fisher_test(table).map_err(|e| e.message)?;
        Ok(CategoricalTest {
            test: "fisher",
            method,
            statistic: None,
            df: None,
            p: f.p,
            odds_ratio: f.odds_ratio,
        })
    };
    match choice {
        TestChoice::Chisq => chisq(false, "Pearson's chi-square test".into()),
        TestChoice::ChisqYates => chisq(
            true,
            if two_by_two {
                "Pearson's chi-square test with Yates' continuity correction".into()
            } else {
                "Pearson's chi-square test (Yates' correction applies to 2x2 tables only)".into()
            },
        ),
        TestChoice::Fisher => fisher("Fisher's exact test".into()),
        _ => {
            let min = table.min_expected();
            if min < 5.0 {
                let why = format!("smallest expected count {:.1} < 5", min);
                fisher(format!("Fisher's exact test ({why})")).or_else(|_| {
                    chisq(
                        two_by_two,
                        format!(
                            "Pearson's chi-square test ({why}, but the table is too large for Fisher's exact test)"
                        ),
                    )
                })
            } else if two_by_two {
                chisq(
                    true,
                    "Pearson's chi-square test with Yates' continuity correction (all expected counts \u{2265} 5)"
                        .into(),
                )
            } else {
                chisq(
                    false,
                    "Pearson's chi-square test (all expected counts \u{2265} 5)".into(),
                )
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareSpec {
    #[allow(dead_code)]
    id: String,
    #[allow(dead_code)]
    kind: String,
    data: String,
    /// What to do with rows whose variable or group is missing.
    #[serde(default)]
    missing: MissingPolicy,
    variable: String,
    /// The grouping column: exactly two groups after dropping missing values.
    by: String,
    #[serde(default)]
    test: TestChoice,
    /// Treat the variable as this type (default: from the column).
    #[serde(rename = "type")]
    var_type: Option<VarType>,
    /// Welch's interval level.
    #[serde(default = "default_conf_level")]
    conf_level: f64,
    /// Wilcoxon: exact p (R's default: when both groups have < 50 values and there are no ties).
    exact: Option<bool>,
    /// Wilcoxon: continuity correction of the normal approximation (R's default true).
    #[serde(default = "default_true")]
    correct: bool,
}

fn default_conf_level() -> f64 {
    0.95
}

fn default_true() -> bool {
    true
}

/// The two groups compared: the `by` column's levels, the two present ones (indices into
/// `levels`, in level order), and each row's group (0 or 1).
struct Groups<'a> {
    levels: &'a [String],
    two: [usize; 2],
    of: &'a dyn Fn(usize) -> usize,
}

/// A numeric variable: summaries per group, then Welch's t-test or the Wilcoxon rank-sum test.
fn compare_continuous(
    env: &BlockEnv,
    spec: &CompareSpec,
    column: &Column,
    rows: &[usize],
    groups: &Groups,
    value: &mut Value,
) -> Result<(), Diagnostic> {
    if !column.data.is_numeric() {
        return Err(env.error(
            "variable",
            format!(
                "column `{}` is {}, expected a number",
                spec.variable,
                column.data.kind().name()
            ),
        ));
    }
    let mut x = [Vec::new(), Vec::new()];
    for &r in rows {
        x[(groups.of)(r)].push(column.data.number(r).unwrap_or(f64::NAN));
    }
    let stats_error = |e: galley_stats::StatsError| env.error("variable", e.message);
    let per_group: Vec<Value> = (0..2)
        .map(|g| {
            let s = summarize(&x[g].iter().map(|&v| Some(v)).collect::<Vec<_>>())
                .map_err(stats_error)?;
            let mut entry = serde_json::Map::new();
            entry.insert("level".into(), json!(groups.levels[groups.two[g]]));
            if let Value::Object(m) = json!(s) {
                entry.extend(m.into_iter().filter(|(k, _)| k != "missing"));
            }
            Ok(Value::Object(entry))
        })
        .collect::<Result<_, Diagnostic>>()?;
    value["groups"] = json!(per_group);
    if spec.test == TestChoice::WelchT {
        let t = welch_t_test(&x[0], &x[1], spec.conf_level).map_err(stats_error)?;
        value["test"] = json!("welch_t");
        value["method"] = json!("Welch's two-sample t-test");
        extend(value, json!(t));
        value["conf_level"] = json!(spec.conf_level);
    } else {
        let w = wilcoxon_rank_sum(&x[0], &x[1], spec.exact, spec.correct).map_err(stats_error)?;
        value["test"] = json!("wilcoxon");
        let how = if w.exact {
            "exact p-value"
        } else if w.correct {
            "normal approximation with continuity correction"
        } else {
            "normal approximation"
        };
        value["method"] = json!(format!(
            "Wilcoxon rank-sum test ({how}){}",
            if spec.test == TestChoice::Auto {
                "; chosen automatically for a numeric variable"
            } else {
                ""
            }
        ));
        extend(value, json!(w));
    }
    Ok(())
}

/// A categorical variable: counts of its levels by group and the chosen (or automatic) test.
fn compare_categorical(
    env: &BlockEnv,
    spec: &CompareSpec,
    column: &Column,
    rows: &[usize],
    groups: &Groups,
    value: &mut Value,
) -> Result<(), Diagnostic> {
    // Categorical: the variable's levels (present ones) by the two groups.
    let (var_levels, var_codes) = grouping(column);
    let mut counts = vec![[0u64; 2]; var_levels.len()];
    for &r in rows {
        if let Some(c) = var_codes[r] {
            counts[c][(groups.of)(r)] += 1;
        }
    }
    let group_n = [
        counts.iter().map(|c| c[0]).sum::<u64>(),
        counts.iter().map(|c| c[1]).sum::<u64>(),
    ];
    let per_group: Vec<Value> = (0..2)
        .map(|g| {
            let mut levels = serde_json::Map::new();
            for (l, level) in var_levels.iter().enumerate() {
                levels.insert(
                    level.clone(),
                    json!({"n": counts[l][g], "pct": counts[l][g] as f64 / group_n[g] as f64}),
                );
            }
            json!({"level": groups.levels[groups.two[g]], "n": group_n[g], "levels": levels})
        })
        .collect();
    let present: Vec<Vec<u64>> = counts
        .iter()
        .filter(|c| c[0] + c[1] > 0)
        .map(|c| c.to_vec())
        .collect();
    if present.len() < 2 {
        return Err(env.error(
            "variable",
            format!(
                "`{}` takes a single value in these rows; a test needs at least two levels",
                spec.variable
            ),
        ));
    }
    let table = CrossTab::from_counts(present).map_err(|e| env.error("variable", e.message))?;
    let result = categorical_test(&table, spec.test).map_err(|m| env.error("test", m))?;
    value["test"] = json!(result.test);
    value["method"] = json!(result.method);
    value["statistic"] = json!(result.statistic);
    value["df"] = json!(result.df.map(|d| d as u64));
    value["p"] = json!(result.p);
    value["odds_ratio"] = json!(result.odds_ratio);
    value["levels"] = json!(var_levels);
    value["groups"] = json!(per_group);
    Ok(())
}

/// `compare`: see the module docs. Result keys follow the reference `tests` objects (`statistic`,
/// `df`, `p`, `odds_ratio`, `mean_1`, `mean_2`, `lower`, `upper`, `exact`, `correct`) plus
/// `variable`, `by`, `test`, `method`, `n`, `missing` and `groups` (per group: `level`, `n`, and
/// `levels.<level>.{n, pct}` for a categorical variable or the summary statistics for a numeric one).
pub fn compare(env: &BlockEnv) -> Result<Output, Diagnostic> {
    let spec: CompareSpec = env.block.parse_spec()?;
    let data = env.dataset(&spec.data)?;
    let column = env.column(data, &spec.variable, "variable")?;
    let (group_levels, group_codes) = columns::groups(env, data, &spec.by, "by")?;
    let var_type = match (spec.var_type, spec.test) {
        (Some(t), _) => t,
        (None, t) if t.is_categorical() => VarType::Categorical,
        (None, TestChoice::Wilcoxon | TestChoice::WelchT) => VarType::Continuous,
        (None, _) => detect_type(column).ok_or_else(|| {
            env.error(
                "variable",
                format!(
                    "`{}` is a date; compare a number derived from it",
                    spec.variable
                ),
            )
        })?,
    };
    if var_type == VarType::Continuous && spec.test.is_categorical()
        || var_type != VarType::Continuous
            && matches!(spec.test, TestChoice::Wilcoxon | TestChoice::WelchT)
    {
        return Err(env.error(
            "test",
            format!(
                "test `{}` does not fit a {} variable",
                spec.test.name(),
                var_type.name()
            ),
        ));
    }
    let mut value = json!({ "variable": spec.variable, "by": spec.by });
    let used = [
        Missing::new(&spec.variable, |r| column.data.is_missing(r)),
        Missing::of(&spec.by, &group_codes),
    ];
    let cases = CompleteCases::select(env, data.n_rows, &used, spec.missing)?;
    let two = two_groups(env, &group_levels, &group_codes, &cases.rows)?;
    let rows = &cases.rows;
    let group_of = |r: usize| -> usize { if group_codes[r] == Some(two[0]) { 0 } else { 1 } };
    value["n"] = json!(rows.len());
    value["missing"] = json!(cases.excluded());
    cases.record(&mut value);

    let groups = Groups {
        levels: &group_levels,
        two,
        of: &group_of,
    };
    if var_type == VarType::Continuous {
        compare_continuous(env, &spec, column, rows, &groups, &mut value)?;
    } else {
        compare_categorical(env, &spec, column, rows, &groups, &mut value)?;
    }
    Ok(with_warning(value, cases.warning(spec.missing)))
}

fn with_warning(value: Value, warning: Option<String>) -> Output {
    Output {
        value,
        warnings: warning.into_iter().collect(),
        ..Default::default()
    }
}

fn extend(value: &mut Value, more: Value) {
    if let (Value::Object(v), Value::Object(m)) = (value, more) {
        v.extend(m);
    }
}

/// The two groups present among the complete cases `rows`. Errors unless exactly two groups have
/// rows.
fn two_groups(
    env: &BlockEnv,
    levels: &[String],
    codes: &[Option<usize>],
    rows: &[usize],
) -> Result<[usize; 2], Diagnostic> {
    let mut present: Vec<usize> = rows.iter().filter_map(|&r| codes[r]).collect();
    present.sort_unstable();
    present.dedup();
    if present.len() != 2 {
        let names: Vec<&str> = present.iter().map(|&g| levels[g].as_str()).collect();
        return Err(env.error(
            "by",
            format!(
                "a two-group comparison needs exactly two groups with data; found {}{}",
                present.len(),
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", names.join(", "))
                }
            ),
        ));
    }
    Ok([present[0], present[1]])
}
