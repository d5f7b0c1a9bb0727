//! `simulation.toml` as written (serde, every key known, spans kept) and its checked form, the
//! [`Model`]: names resolved to variable indices, parameters typed, every problem reported at once
//! with its `file:line:col` and what was expected. Nothing here knows what the variables mean.

use std::path::Path;

use indexmap::IndexMap;
use jiff::civil::Date;
use serde::Deserialize;
use toml::Spanned;

use crate::diagnostics::{Diagnostic, Failure, Result};
use crate::study::manifest::{DateText, toml_diagnostic};

/// The generative spec's file name in the study folder.
pub const SPEC_FILE: &str = "simulation.toml";

/// The name under which every row knows its stratum (a categorical variable defined by galley).
pub const STRATUM: &str = "stratum";

pub(crate) const DAYS_PER_YEAR: f64 = 365.25;
pub(crate) const DAYS_PER_MONTH: f64 = 365.25 / 12.0;

// ---------------------------------------------------------------------------------------------
// As written

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    seed: u64,
    #[serde(rename = "snapshot", default)]
    snapshots: Vec<SnapshotSpec>,
    #[serde(rename = "stratum", default)]
    strata: Vec<StratumSpec>,
    #[serde(rename = "variable", default)]
    variables: Vec<VariableSpec>,
    table: TableSpec,
    #[serde(rename = "child_table", default)]
    child_tables: Vec<ChildSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotSpec {
    cutoff: Spanned<DateText>,
    path: Spanned<String>,
    #[serde(default)]
    copies: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StratumSpec {
    name: Spanned<String>,
    rows: Spanned<usize>,
    #[serde(default)]
    parameters: IndexMap<Spanned<String>, Spanned<toml::Value>>,
}

/// One `[[variable]]`: which keys apply depends on how it is made (see `Kind`); the checker says
/// which are missing or out of place.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct VariableSpec {
    name: Spanned<String>,
    draw: Option<Spanned<String>>,
    parameter: Option<Spanned<toml::Value>>,
    levels: Option<Vec<String>>,
    values: Option<[String; 2]>,
    missing: Option<Spanned<toml::Value>>,
    missing_as: Option<String>,
    decimals: Option<usize>,
    // latent event times
    from: Option<Spanned<String>>,
    shape: Option<f64>,
    median: Option<f64>,
    rate: Option<f64>,
    unit: Option<Spanned<String>>,
    effects: Option<Vec<Spanned<EffectSpec>>>,
    // derived
    date_between: Option<[Spanned<DateText>; 2]>,
    at: Option<Spanned<String>>,
    minus_years: Option<Spanned<String>>,
    is: Option<Spanned<ConditionSpec>>,
    #[serde(rename = "if")]
    if_: Option<Spanned<ConditionSpec>>,
    then: Option<Spanned<String>>,
    #[serde(rename = "else")]
    else_: Option<Spanned<String>>,
    // as of a snapshot
    end_of_follow_up: Option<Spanned<String>>,
    event_seen: Option<Spanned<String>>,
    censored_by: Option<Vec<Spanned<String>>>,
}

type ConditionSpec = IndexMap<Spanned<String>, Spanned<CondValueSpec>>;

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum CondValueSpec {
    Bool(bool),
    One(String),
    Any(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EffectSpec {
    when: Option<Spanned<ConditionSpec>>,
    per: Option<Spanned<String>>,
    centre: Option<f64>,
    step: Option<f64>,
    time_ratio: Option<f64>,
    hazard_ratio: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableSpec {
    file: Spanned<String>,
    id: IdSpec,
    columns: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdSpec {
    column: String,
    #[serde(default)]
    prefix: String,
    digits: usize,
    order_by: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChildSpec {
    file: Spanned<String>,
    stratum: Spanned<String>,
    number_column: String,
    rows_per_parent: Spanned<Vec<usize>>,
    #[serde(rename = "column", default)]
    columns: Vec<ChildColumnSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChildColumnSpec {
    name: Spanned<String>,
    levels_in_parents: Option<IndexMap<Spanned<String>, usize>>,
    repeat: Option<f64>,
    other_levels: Option<IndexMap<Spanned<String>, f64>>,
    marked_parents: Option<IndexMap<Spanned<String>, usize>>,
    also_other_rows: Option<IndexMap<Spanned<String>, f64>>,
    unmarked: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct NormalSpec {
    mean: f64,
    sd: f64,
    min: f64,
    max: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlongSpec {
    along: String,
    from: f64,
    to: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExactlySpec {
    exactly: usize,
}

// ---------------------------------------------------------------------------------------------
// Checked

/// A checked spec: what the model draws and writes.
#[derive(Debug, Clone)]
pub struct Model {
    pub seed: u64,
    pub snapshots: Vec<Snapshot>,
    pub strata: Vec<Stratum>,
    /// Index 0 is the stratum; the others in file order (the order of drawing).
    pub variables: Vec<Variable>,
    pub table: Table,
    pub children: Vec<Child>,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub cutoff: Date,
    /// Folder (relative to the study folder) the snapshot's CSV files are written to; it is replaced.
    pub path: Spanned<String>,
    /// Further folders receiving identical copies (e.g. the data folder of a companion study).
    pub copies: Vec<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct Stratum {
    pub name: String,
    pub rows: usize,
    /// The parameter of each variable drawn with a per-stratum parameter (by variable index).
    pub parameters: Vec<Option<Parameter>>,
}

#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    pub kind: Kind,
    /// How `true` and `false` are written.
    pub values: [String; 2],
    /// Probability that a drawn value is not recorded (one more uniform, after the value's).
    pub missing: Option<Parameter>,
    pub missing_as: String,
    /// Decimals of a written number.
    pub decimals: usize,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Stratum,
    /// Drawn with `parameter` (the same in every stratum), or with the stratum's parameter.
    Draw {
        law: Law,
        parameter: Option<Parameter>,
    },
    /// A latent time after the date `from`, in days of `unit_days`, scaled by the time ratios.
    Event {
        from: usize,
        time: EventTime,
        unit_days: f64,
        effects: Vec<Effect>,
    },
    DateBetween {
        start: Date,
        end: Date,
        at: usize,
    },
    DateMinusYears {
        from: usize,
        years: usize,
    },
    Is(Condition),
    If {
        when: Condition,
        then: usize,
        otherwise: usize,
    },
    /// As of a snapshot: the date follow-up ends (the event, a censoring date or the cutoff).
    EndOfFollowUp {
        event: usize,
        censored_by: Vec<usize>,
    },
    /// As of a snapshot: whether the event was seen (before every censoring date and the cutoff).
    EventSeen {
        event: usize,
        censored_by: Vec<usize>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Law {
    Bernoulli,
    Categorical(Vec<String>),
    Normal,
    Linear,
}

#[derive(Debug, Clone)]
pub enum EventTime {
    Weibull { shape: f64, median: f64 },
    Exponential { rate: f64 },
}

#[derive(Debug, Clone)]
pub enum Parameter {
    Probability(f64),
    /// Exactly this many rows of the stratum (a random subset).
    Exactly(usize),
    /// A probability linear in a variable: `from + (to - from) * x`.
    Along {
        var: usize,
        from: f64,
        to: f64,
    },
    /// Weights of levels (level index, weight) in the order written (the order of `choose`).
    Weights(Vec<(usize, f64)>),
    Normal {
        mean: f64,
        sd: f64,
        min: f64,
        max: f64,
    },
    Ratio(f64),
}

#[derive(Debug, Clone)]
pub struct Effect {
    pub applies: Applies,
    pub time_ratio: f64,
}

#[derive(Debug, Clone)]
pub enum Applies {
    When(Condition),
    Per { var: usize, centre: f64, step: f64 },
}

/// All of (variable, accepted values).
#[derive(Debug, Clone, Default)]
pub struct Condition(pub Vec<(usize, CondValue)>);

#[derive(Debug, Clone)]
pub enum CondValue {
    Bool(bool),
    Levels(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Table {
    pub file: String,
    pub id_column: String,
    pub prefix: String,
    pub digits: usize,
    pub order_by: Option<usize>,
    pub columns: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct Child {
    pub file: String,
    pub stratum: usize,
    pub number_column: String,
    pub rows_per_parent: Vec<usize>,
    pub columns: Vec<ChildColumn>,
}

#[derive(Debug, Clone)]
pub struct ChildColumn {
    pub name: String,
    pub construction: Construction,
}

#[derive(Debug, Clone)]
pub enum Construction {
    /// Each listed level in exactly that many parents (one row each, in parents with room); a further
    /// row repeats one of its parent's listed levels with probability `repeat`, else is an other level.
    Spread {
        levels: Vec<(String, usize)>,
        repeat: f64,
        other: Vec<(String, f64)>,
    },
    /// Disjoint sets of that many parents, each with one random row marked; `also` gives, for a
    /// level, the probability that each other row of the parent is marked too.
    Mark {
        marks: Vec<(String, usize, Option<f64>)>,
        unmarked: String,
    },
}

/// What kind of value a variable holds, for checking references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Number,
    Date,
    Bool,
    Level,
    /// A variable whose definition had an error (already reported): uses of it report nothing more.
    Failed,
}

impl Type {
    fn describe(self) -> &'static str {
        match self {
            Type::Number => "a number",
            Type::Date => "a date",
            Type::Bool => "true or false",
            Type::Level => "a level",
            Type::Failed => "in error",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checking

struct Checker<'a> {
    file: &'a Path,
    source: &'a str,
    problems: Vec<Diagnostic>,
    /// Variables defined so far: name, type, levels (for a level), whether it depends on the cutoff.
    defined: Vec<(String, Type, Option<Vec<String>>, bool)>,
    /// Every variable name of the file (to tell "defined below" from "unknown").
    all_names: Vec<String>,
}

impl Checker<'_> {
    fn error_at(&mut self, message: impl Into<String>, offset: usize) {
        self.problems
            .push(Diagnostic::error(message).at_offset(self.file, self.source, offset));
    }

    fn date(&mut self, what: &str, value: &Spanned<DateText>) -> Option<Date> {
        let text = value.get_ref().as_text();
        let date = crate::study::parse_iso_date(&text);
        if date.is_none() {
            self.error_at(
                format!("`{what}` is `{text}`, expected a date as YYYY-MM-DD"),
                value.span().start,
            );
        }
        date
    }

    fn probability(&mut self, what: &str, p: f64, offset: usize) -> f64 {
        if !(0.0..=1.0).contains(&p) {
            self.error_at(
                format!("`{what}` is {p}, expected a probability in [0, 1]"),
                offset,
            );
        }
        p
    }

    fn positive(&mut self, what: &str, x: Option<f64>, offset: usize) -> f64 {
        match x {
            Some(x) if x.is_finite() && x > 0.0 => x,
            Some(x) => {
                self.error_at(
                    format!("`{what}` is {x}, expected a positive number"),
                    offset,
                );
                1.0
            }
            None => {
                self.error_at(
                    format!("`{what}` is missing: expected a positive number"),
                    offset,
                );
                1.0
            }
        }
    }

    /// A variable defined above `name`; the error says whether it is unknown or defined too late.
    fn reference(&mut self, user: &str, name: &Spanned<String>, want: &[Type]) -> Option<usize> {
        let n = name.get_ref();
        let Some(i) = self.defined.iter().position(|d| &d.0 == n) else {
            let why = if self.all_names.contains(n) {
                "is defined below it (a variable may only use variables defined above it)"
            } else {
                "is not a variable of this file"
            };
            let known: Vec<&str> = self.defined.iter().map(|d| d.0.as_str()).collect();
            self.problems.push(
                Diagnostic::error(format!("`{user}` uses `{n}`, which {why}"))
                    .at_offset(self.file, self.source, name.span().start)
                    .hint(format!("variables defined above: {}", known.join(", "))),
            );
            return None;
        };
        let (_, ty, _, as_of) = &self.defined[i];
        if *ty == Type::Failed {
            return None;
        }
        if *as_of {
            self.error_at(
                format!("`{user}` uses `{n}`, which depends on a snapshot's cutoff; only columns may use it"),
                name.span().start,
            );
            return None;
        }
        if !want.contains(ty) {
            let wanted: Vec<&str> = want.iter().map(|t| t.describe()).collect();
            self.error_at(
                format!(
                    "`{user}` uses `{n}`, which is {}; expected {}",
                    ty.describe(),
                    wanted.join(" or ")
                ),
                name.span().start,
            );
            return None;
        }
        Some(i)
    }

    fn condition(&mut self, user: &str, spec: &Spanned<ConditionSpec>) -> Condition {
        let mut out = Condition::default();
        if spec.get_ref().is_empty() {
            self.error_at(
                format!("`{user}`: an empty condition; expected `{{ variable = value }}`"),
                spec.span().start,
            );
        }
        for (name, value) in spec.get_ref() {
            let Some(i) = self.reference(user, name, &[Type::Bool, Type::Level]) else {
                continue;
            };
            let (_, ty, levels, _) = self.defined[i].clone();
            let cv = match (value.get_ref(), ty) {
                (CondValueSpec::Bool(b), Type::Bool) => CondValue::Bool(*b),
                (CondValueSpec::One(s), Type::Level) => CondValue::Levels(vec![s.clone()]),
                (CondValueSpec::Any(v), Type::Level) => CondValue::Levels(v.clone()),
                _ => {
                    self.error_at(
                        format!(
                            "`{user}`: `{}` is {}, so its condition must be {}",
                            name.get_ref(),
                            ty.describe(),
                            if ty == Type::Bool {
                                "true or false"
                            } else {
                                "a level or a list of levels"
                            }
                        ),
                        value.span().start,
                    );
                    continue;
                }
            };
            if let (CondValue::Levels(v), Some(levels)) = (&cv, &levels) {
                for l in v.iter().filter(|l| !levels.contains(l)) {
                    self.problems.push(
                        Diagnostic::error(format!(
                            "`{l}` is not a level of `{}` (in `{user}`)",
                            name.get_ref()
                        ))
                        .at_offset(self.file, self.source, value.span().start)
                        .hint(format!("levels: {}", levels.join(", "))),
                    );
                }
            }
            out.0.push((i, cv));
        }
        out
    }

    /// A probability, `{ exactly = n }` (at most the stratum's `rows`), or `{ along = ... }`.
    fn bernoulli_parameter(
        &mut self,
        what: &str,
        value: &Spanned<toml::Value>,
        rows: Option<usize>,
    ) -> Option<Parameter> {
        let at = value.span().start;
        let v = value.get_ref();
        let typed = |expected: &str| format!("`{what}` is `{v}`; expected {expected}");
        match v {
            toml::Value::Float(_) | toml::Value::Integer(_) => {
                let p = number(v);
                Some(Parameter::Probability(self.probability(what, p, at)))
            }
            toml::Value::Table(t) if t.contains_key("exactly") => {
                match v.clone().try_into::<ExactlySpec>() {
                    Ok(e) => {
                        if let Some(rows) = rows.filter(|&r| e.exactly > r) {
                            self.error_at(
                                format!(
                                    "`{what}` is exactly {}, more than the stratum's {rows} rows",
                                    e.exactly
                                ),
                                at,
                            );
                        }
                        Some(Parameter::Exactly(e.exactly))
                    }
                    Err(e) => {
                        self.error_at(format!("`{what}`: {}", e.message().trim()), at);
                        None
                    }
                }
            }
            toml::Value::Table(_) => self.along(what, value),
            _ => {
                self.error_at(typed("a probability, `{ exactly = n }` or `{ along = \"variable\", from = p, to = q }`"), at);
                None
            }
        }
    }

    /// A probability per level (a table by level or a list in level order), adding up to 1.
    fn categorical_parameter(
        &mut self,
        what: &str,
        levels: &[String],
        value: &Spanned<toml::Value>,
    ) -> Option<Parameter> {
        let at = value.span().start;
        let v = value.get_ref();
        let typed = |expected: &str| format!("`{what}` is `{v}`; expected {expected}");
        let weights: Vec<(usize, f64)> = match v {
            toml::Value::Table(t) => {
                let mut w = Vec::new();
                for (k, x) in t {
                    match levels.iter().position(|l| l == k) {
                        Some(i) => w.push((i, number(x))),
                        None => self.problems.push(
                            Diagnostic::error(format!("`{k}` is not a level of `{what}`"))
                                .at_offset(self.file, self.source, at)
                                .hint(format!("levels: {}", levels.join(", "))),
                        ),
                    }
                }
                w
            }
            toml::Value::Array(a) if a.len() == levels.len() => {
                a.iter().map(number).enumerate().collect()
            }
            _ => {
                self.error_at(
                    typed(&format!(
                        "a probability per level, as `{{ {} = p, ... }}` or a list of {} probabilities in the order of `levels`",
                        levels[0],
                        levels.len()
                    )),
                    at,
                );
                return None;
            }
        };
        if weights.iter().any(|(_, p)| !(p.is_finite() && *p >= 0.0)) {
            self.error_at(
                format!("`{what}` has a weight that is not a probability (a number from 0 to 1)"),
                at,
            );
        }
        let sum: f64 = weights.iter().map(|w| w.1).sum();
        if (sum - 1.0).abs() > 1e-9 {
            self.error_at(
                format!("the probabilities of `{what}` add up to {sum}, expected 1"),
                at,
            );
        }
        Some(Parameter::Weights(weights))
    }

    /// `{ mean, sd, min, max }` with sd > 0 and min < max.
    fn normal_parameter(&mut self, what: &str, value: &Spanned<toml::Value>) -> Option<Parameter> {
        let at = value.span().start;
        let v = value.get_ref();
        match v.clone().try_into::<NormalSpec>() {
            Ok(n) => {
                if !(n.sd.is_finite() && n.sd > 0.0) {
                    self.error_at(
                        format!("`{what}.sd` is {}, expected a positive number", n.sd),
                        at,
                    );
                }
                if !matches!(n.min.partial_cmp(&n.max), Some(std::cmp::Ordering::Less)) {
                    self.error_at(
                        format!(
                            "`{what}`: expected min < max, found min {} and max {}",
                            n.min, n.max
                        ),
                        at,
                    );
                }
                Some(Parameter::Normal {
                    mean: n.mean,
                    sd: n.sd,
                    min: n.min,
                    max: n.max,
                })
            }
            Err(e) => {
                self.error_at(
                    format!(
                        "`{what}`: {}; expected `{{ mean = .., sd = .., min = .., max = .. }}`",
                        e.message().trim()
                    ),
                    at,
                );
                None
            }
        }
    }

    /// The parameter of a drawn variable; `stratum` is the stratum (for `exactly`).
    fn parameter(
        &mut self,
        what: &str,
        law: &Law,
        value: &Spanned<toml::Value>,
        rows: Option<usize>,
    ) -> Option<Parameter> {
        let at = value.span().start;
        let v = value.get_ref();
        let typed = |expected: &str| format!("`{what}` is `{v}`; expected {expected}");
        match law {
            Law::Bernoulli => self.bernoulli_parameter(what, value, rows),
            Law::Categorical(levels) => self.categorical_parameter(what, levels, value),
            Law::Normal => self.normal_parameter(what, value),
            Law::Linear => match v {
                toml::Value::Float(_) | toml::Value::Integer(_) => {
                    let r = self.positive(what, Some(number(v)), at);
                    Some(Parameter::Ratio(r))
                }
                _ => {
                    self.error_at(
                        typed("a positive number (the density at the end relative to the start)"),
                        at,
                    );
                    None
                }
            },
        }
    }

    fn along(&mut self, what: &str, value: &Spanned<toml::Value>) -> Option<Parameter> {
        let at = value.span().start;
        match value.get_ref().clone().try_into::<AlongSpec>() {
            Ok(a) => {
                self.probability(&format!("{what}.from"), a.from, at);
                self.probability(&format!("{what}.to"), a.to, at);
                let name = Spanned::new(value.span(), a.along.clone());
                let var = self.reference(what, &name, &[Type::Number])?;
                Some(Parameter::Along {
                    var,
                    from: a.from,
                    to: a.to,
                })
            }
            Err(e) => {
                self.error_at(
                    format!(
                        "`{what}`: {}; expected a probability or `{{ along = \"variable\", from = p, to = q }}`",
                        e.message().trim()
                    ),
                    at,
                );
                None
            }
        }
    }
}

fn number(v: &toml::Value) -> f64 {
    match v {
        toml::Value::Float(x) => *x,
        toml::Value::Integer(i) => *i as f64,
        _ => f64::NAN,
    }
}

/// Days in a unit of time.
fn unit_days(unit: &str) -> Option<f64> {
    match unit {
        "days" => Some(1.0),
        "months" => Some(DAYS_PER_MONTH),
        "years" => Some(DAYS_PER_YEAR),
        _ => None,
    }
}

const LAWS: &str = "bernoulli, categorical, normal, linear, weibull, exponential";

impl Model {
    /// Parse and check spec text; `file` locates diagnostics.
    pub fn parse(source: &str, file: &Path) -> Result<Model> {
        let spec: SpecFile =
            toml::from_str(source).map_err(|e| Failure::from(toml_diagnostic(&e, source, file)))?;
        let mut c = Checker {
            file,
            source,
            problems: Vec::new(),
            defined: Vec::new(),
            all_names: spec
                .variables
                .iter()
                .map(|v| v.name.get_ref().clone())
                .collect(),
        };

        let snapshots = check_snapshots(&mut c, &spec.snapshots);
        let (stratum_names, mut strata) = check_strata(&mut c, &spec.strata);
        let mut variables = vec![Variable {
            name: STRATUM.into(),
            kind: Kind::Stratum,
            values: ["yes".into(), "no".into()],
            missing: None,
            missing_as: String::new(),
            decimals: 0,
        }];
        for v in &spec.variables {
            variables.push(check_one_variable(&mut c, v, &spec.strata, &mut strata));
            for s in &mut strata {
                s.parameters.resize(variables.len(), None);
            }
        }
        check_stratum_parameters(&mut c, &spec.strata, &variables);
        check_cutoffs(&mut c, &snapshots, &spec.snapshots, &variables);

        let table = check_table(&mut c, &spec.table);
        let children = spec
            .child_tables
            .iter()
            .filter_map(|ch| check_child(&mut c, ch, &strata, &stratum_names))
            .collect();

        if !c.problems.is_empty() {
            return Err(Failure::new(c.problems));
        }
        Ok(Model {
            seed: spec.seed,
            snapshots,
            strata,
            variables,
            table,
            children,
        })
    }
}

/// The `[[snapshot]]`s: a cutoff each, folders relative to the study folder.
fn check_snapshots(c: &mut Checker, specs: &[SnapshotSpec]) -> Vec<Snapshot> {
    // Snapshots.
    if specs.is_empty() {
        c.problems.push(
            Diagnostic::error("no `[[snapshot]]`: nothing to write")
                .in_file(c.file)
                .hint("add `[[snapshot]]` with `cutoff = 2015-08-31` and `path = \"data\"`"),
        );
    }
    let mut snapshots = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let cutoff = c.date(&format!("snapshot[{i}].cutoff"), &s.cutoff);
        for p in std::iter::once(&s.path).chain(&s.copies) {
            if Path::new(p.get_ref()).is_absolute() || p.get_ref().is_empty() {
                c.error_at(
                    format!(
                        "`{}` is not a relative path; snapshot folders are relative to the study folder",
                        p.get_ref()
                    ),
                    p.span().start,
                );
            }
        }
        snapshots.push(Snapshot {
            cutoff: cutoff.unwrap_or(Date::MIN),
            path: s.path.clone(),
            copies: s.copies.clone(),
        });
    }
    snapshots
}

/// The `[[stratum]]`s (names unique, rows > 0), defined as the first variable; returns their names
/// and the strata with the stratum variable's (empty) parameter.
fn check_strata(c: &mut Checker, strata_spec: &[StratumSpec]) -> (Vec<String>, Vec<Stratum>) {
    // Strata: the first variable.
    if strata_spec.is_empty() {
        c.problems.push(
            Diagnostic::error("no `[[stratum]]`: no rows to draw")
                .in_file(c.file)
                .hint("add `[[stratum]]` with `name = \"all\"` and `rows = 100`"),
        );
    }
    let stratum_names: Vec<String> = strata_spec
        .iter()
        .map(|s| s.name.get_ref().clone())
        .collect();
    for (i, s) in strata_spec.iter().enumerate() {
        if stratum_names[..i].contains(s.name.get_ref()) {
            c.error_at(
                format!("stratum `{}` is defined twice", s.name.get_ref()),
                s.name.span().start,
            );
        }
        if *s.rows.get_ref() == 0 {
            c.error_at(
                format!("stratum `{}` has 0 rows", s.name.get_ref()),
                s.rows.span().start,
            );
        }
    }
    c.defined.push((
        STRATUM.into(),
        Type::Level,
        Some(stratum_names.clone()),
        false,
    ));
    let strata: Vec<Stratum> = strata_spec
        .iter()
        .map(|s| Stratum {
            name: s.name.get_ref().clone(),
            rows: *s.rows.get_ref(),
            parameters: vec![None],
        })
        .collect();
    (stratum_names, strata)
}

/// One `[[variable]]`: its name not yet taken, how it is made, and its missing-value rate.
fn check_one_variable(
    c: &mut Checker,
    v: &VariableSpec,
    strata_spec: &[StratumSpec],
    strata: &mut [Stratum],
) -> Variable {
    let name = v.name.get_ref().clone();
    let at = v.name.span().start;
    if c.defined.iter().any(|d| d.0 == name) {
        let why = if name == STRATUM {
            "is the name galley gives every row's stratum"
        } else {
            "is defined twice"
        };
        c.error_at(format!("variable `{name}` {why}"), at);
    }
    let (kind, ty, levels, as_of) = check_variable(c, v, strata_spec, strata);
    let missing = v.missing.as_ref().and_then(|m| {
        if !matches!(kind, Kind::Draw { .. }) {
            c.error_at(
                format!("`{name}.missing`: only a drawn variable can be missing"),
                m.span().start,
            );
            return None;
        }
        c.parameter(&format!("{name}.missing"), &Law::Bernoulli, m, None)
    });
    if let Some(Parameter::Exactly(_)) = missing {
        c.error_at(format!("`{name}.missing` must be a probability"), at);
    }
    c.defined.push((name.clone(), ty, levels, as_of));
    Variable {
        name,
        kind,
        values: v.values.clone().unwrap_or(["yes".into(), "no".into()]),
        missing,
        missing_as: v.missing_as.clone().unwrap_or_default(),
        decimals: v.decimals.unwrap_or(0),
    }
}

/// Stratum parameters must name drawn variables (checked in `check_variable`); any other key is
/// an unknown or a non-drawn variable.
fn check_stratum_parameters(c: &mut Checker, strata_spec: &[StratumSpec], variables: &[Variable]) {
    for s in strata_spec {
        for (k, _) in &s.parameters {
            match variables.iter().find(|v| &v.name == k.get_ref()) {
                None => {
                    let known: Vec<&str> = variables.iter().map(|v| v.name.as_str()).collect();
                    c.problems.push(
                        Diagnostic::error(format!(
                            "stratum `{}` gives a parameter for `{}`, which is not a variable of this file",
                            s.name.get_ref(),
                            k.get_ref()
                        ))
                        .at_offset(c.file, c.source, k.span().start)
                        .hint(format!("variables: {}", known.join(", "))),
                    );
                }
                Some(Variable { kind: Kind::Draw { parameter: None, .. }, .. }) => {}
                Some(_) => c.error_at(
                    format!(
                        "stratum `{}` gives a parameter for `{}`, which is not drawn with a per-stratum parameter (it has `parameter`, or no `draw`)",
                        s.name.get_ref(),
                        k.get_ref()
                    ),
                    k.span().start,
                ),
            }
        }
    }
}

/// Cutoffs after every accrual period.
fn check_cutoffs(
    c: &mut Checker,
    snapshots: &[Snapshot],
    snapshot_specs: &[SnapshotSpec],
    variables: &[Variable],
) {
    // Cutoffs after every accrual period.
    for (s, spec_s) in snapshots.iter().zip(snapshot_specs) {
        for v in variables {
            if let Kind::DateBetween { end, .. } = v.kind
                && s.cutoff != Date::MIN
                && s.cutoff < end
            {
                c.error_at(
                    format!(
                        "the cutoff {} is before the end of `{}` ({end})",
                        s.cutoff, v.name
                    ),
                    spec_s.cutoff.span().start,
                );
            }
        }
    }
}

/// Kind, type, levels and whether it depends on the cutoff, of one `[[variable]]`.
fn check_variable(
    c: &mut Checker,
    v: &VariableSpec,
    strata_spec: &[StratumSpec],
    strata: &mut [Stratum],
) -> Checked {
    let name = v.name.get_ref().as_str();
    let at = v.name.span().start;
    let ways = [
        ("draw", v.draw.is_some()),
        ("date_between", v.date_between.is_some()),
        ("minus_years", v.minus_years.is_some()),
        ("is", v.is.is_some()),
        ("if", v.if_.is_some()),
        ("end_of_follow_up", v.end_of_follow_up.is_some()),
        ("event_seen", v.event_seen.is_some()),
    ];
    let given: Vec<&str> = ways.iter().filter(|w| w.1).map(|w| w.0).collect();
    if given.len() != 1 {
        c.error_at(
            format!(
                "variable `{name}` needs exactly one of `draw`, `date_between`, `minus_years`, `is`, `if`, `end_of_follow_up`, `event_seen`; found {}",
                if given.is_empty() { "none".to_string() } else { given.join(", ") }
            ),
            at,
        );
        return placeholder();
    }
    // Keys that belong to another way of making a variable are errors, not silently ignored.
    let mut stray = |key: &str, present: bool, allowed: bool| {
        if present && !allowed {
            c.error_at(
                format!(
                    "variable `{name}`: `{key}` does not apply to a variable made with `{}`",
                    given[0]
                ),
                at,
            );
        }
    };
    let draw = v.draw.as_ref().map(|d| d.get_ref().as_str());
    let event = matches!(draw, Some("weibull" | "exponential"));
    let drawn = draw.is_some() && !event;
    stray("parameter", v.parameter.is_some(), drawn);
    stray("levels", v.levels.is_some(), draw == Some("categorical"));
    stray("missing", v.missing.is_some(), drawn);
    stray("from", v.from.is_some(), event || v.minus_years.is_some());
    stray("shape", v.shape.is_some(), draw == Some("weibull"));
    stray("median", v.median.is_some(), draw == Some("weibull"));
    stray("rate", v.rate.is_some(), draw == Some("exponential"));
    stray("unit", v.unit.is_some(), event);
    stray("effects", v.effects.is_some(), event);
    stray("at", v.at.is_some(), v.date_between.is_some());
    stray("then", v.then.is_some(), v.if_.is_some());
    stray("else", v.else_.is_some(), v.if_.is_some());
    stray(
        "censored_by",
        v.censored_by.is_some(),
        v.end_of_follow_up.is_some() || v.event_seen.is_some(),
    );
    if let Some(d) = &v.draw {
        return check_draw(c, v, d, strata_spec, strata);
    }
    if let Some([start, end]) = &v.date_between {
        return check_date_between(c, v, start, end);
    }
    if let Some(years) = &v.minus_years {
        return check_minus_years(c, v, years);
    }
    if let Some(cond) = &v.is {
        return (Kind::Is(c.condition(name, cond)), Type::Bool, None, false);
    }
    if let Some(cond) = &v.if_ {
        return check_if(c, v, cond);
    }
    check_follow_up(c, v)
}

/// What [`check_variable`] finds: kind, type, levels, and whether it depends on the cutoff.
type Checked = (Kind, Type, Option<Vec<String>>, bool);

/// Stands in for a variable with an error, so that checking goes on.
fn placeholder() -> Checked {
    (Kind::Is(Condition::default()), Type::Failed, None, false)
}

/// The error for a missing key of variable `name` (at byte `at`), and a placeholder.
fn need(c: &mut Checker, name: &str, at: usize, key: &str) -> Checked {
    c.error_at(format!("variable `{name}` needs `{key}`"), at);
    placeholder()
}

/// `draw = "..."`: the law, its parameter (or every stratum's), levels of a categorical draw.
fn check_draw(
    c: &mut Checker,
    v: &VariableSpec,
    d: &Spanned<String>,
    strata_spec: &[StratumSpec],
    strata: &mut [Stratum],
) -> Checked {
    let name = v.name.get_ref().as_str();
    let at = v.name.span().start;
    let law = match d.get_ref().as_str() {
        "bernoulli" => Law::Bernoulli,
        "categorical" => match &v.levels {
            Some(l) if !l.is_empty() => Law::Categorical(l.clone()),
            _ => return need(c, name, at, "levels (a list of the values it takes)"),
        },
        "normal" => Law::Normal,
        "linear" => Law::Linear,
        "weibull" | "exponential" => return check_event(c, v),
        other => {
            c.error_at(
                format!("`draw = \"{other}\"` is not a distribution; expected one of {LAWS}"),
                d.span().start,
            );
            return placeholder();
        }
    };
    let ty = match law {
        Law::Bernoulli => Type::Bool,
        Law::Categorical(_) => Type::Level,
        Law::Normal | Law::Linear => Type::Number,
    };
    let levels = match &law {
        Law::Categorical(l) => Some(l.clone()),
        _ => None,
    };
    let parameter = v
        .parameter
        .as_ref()
        .and_then(|p| c.parameter(name, &law, p, None));
    if v.parameter.is_none() {
        // Every stratum gives it.
        for (s, ss) in strata.iter_mut().zip(strata_spec) {
            let what = format!("{}.{name}", s.name);
            match ss.parameters.get(name) {
                Some(p) => {
                    let p = c.parameter(&what, &law, p, Some(s.rows));
                    s.parameters.push(p);
                }
                None => {
                    c.error_at(
                        format!("variable `{name}` has no `parameter`, and stratum `{}` gives none for it", s.name),
                        ss.name.span().start,
                    );
                    s.parameters.push(None);
                }
            }
        }
    } else if matches!(parameter, Some(Parameter::Exactly(_))) {
        for s in strata.iter() {
            if let Some(Parameter::Exactly(k)) = parameter
                && k > s.rows
            {
                c.error_at(
                    format!(
                        "`{name}` is exactly {k}, more than stratum `{}`'s {} rows",
                        s.name, s.rows
                    ),
                    at,
                );
            }
        }
    }
    (Kind::Draw { law, parameter }, ty, levels, false)
}

/// `date_between = [start, end]` with `at`, a position from 0 to 1 in the period.
fn check_date_between(
    c: &mut Checker,
    v: &VariableSpec,
    start: &Spanned<DateText>,
    end: &Spanned<DateText>,
) -> Checked {
    let name = v.name.get_ref().as_str();
    let at = v.name.span().start;
    let s = c.date(&format!("{name}.date_between"), start);
    let e = c.date(&format!("{name}.date_between"), end);
    if let (Some(s), Some(e)) = (s, e)
        && s >= e
    {
        c.error_at(
            format!("`{name}`: the period is empty: it starts on {s} and ends on {e}"),
            end.span().start,
        );
    }
    let Some(at_name) = &v.at else {
        return need(
            c,
            name,
            at,
            "at (a variable from 0 to 1: the position in the period)",
        );
    };
    let Some(at) = c.reference(name, at_name, &[Type::Number]) else {
        return placeholder();
    };
    let kind = Kind::DateBetween {
        start: s.unwrap_or(Date::MIN),
        end: e.unwrap_or(Date::MAX),
        at,
    };
    (kind, Type::Date, None, false)
}

/// `minus_years` years before the date variable `from`.
fn check_minus_years(c: &mut Checker, v: &VariableSpec, years: &Spanned<String>) -> Checked {
    let name = v.name.get_ref().as_str();
    let at = v.name.span().start;
    let Some(from) = &v.from else {
        return need(c, name, at, "from (a date variable)");
    };
    let from = c.reference(name, from, &[Type::Date]);
    let years = c.reference(name, years, &[Type::Number]);
    let (Some(from), Some(years)) = (from, years) else {
        return placeholder();
    };
    (
        Kind::DateMinusYears { from, years },
        Type::Date,
        None,
        false,
    )
}

/// `if` a condition, `then` one variable, `else` another of the same kind.
fn check_if(c: &mut Checker, v: &VariableSpec, cond: &Spanned<ConditionSpec>) -> Checked {
    let name = v.name.get_ref().as_str();
    let at = v.name.span().start;
    let when = c.condition(name, cond);
    let (Some(t), Some(e)) = (&v.then, &v.else_) else {
        return need(c, name, at, "then and else (variables)");
    };
    let all = [Type::Number, Type::Date, Type::Bool, Type::Level];
    let (Some(then), Some(otherwise)) = (c.reference(name, t, &all), c.reference(name, e, &all))
    else {
        return placeholder();
    };
    let (ty_t, ty_e) = (c.defined[then].1, c.defined[otherwise].1);
    if ty_t != ty_e {
        c.error_at(
            format!(
                "`{name}`: `then` is {} but `else` is {}; expected the same kind",
                ty_t.describe(),
                ty_e.describe()
            ),
            e.span().start,
        );
    }
    let levels = match (&c.defined[then].2, &c.defined[otherwise].2) {
        (Some(a), Some(b)) => Some(a.iter().chain(b).cloned().collect()),
        _ => None,
    };
    (
        Kind::If {
            when,
            then,
            otherwise,
        },
        ty_t,
        levels,
        false,
    )
}

/// `end_of_follow_up` / `event_seen`: the event date, censored by other dates.
fn check_follow_up(c: &mut Checker, v: &VariableSpec) -> Checked {
    let name = v.name.get_ref().as_str();
    let (event_name, seen) = match (&v.end_of_follow_up, &v.event_seen) {
        (Some(e), _) => (e, false),
        (_, Some(e)) => (e, true),
        _ => unreachable!("one way was given"),
    };
    let event = c.reference(name, event_name, &[Type::Date]);
    let censored_by: Vec<usize> = v
        .censored_by
        .iter()
        .flatten()
        .filter_map(|cb| c.reference(name, cb, &[Type::Date]))
        .collect();
    let Some(event) = event else {
        return placeholder();
    };
    if seen {
        (
            Kind::EventSeen { event, censored_by },
            Type::Bool,
            None,
            true,
        )
    } else {
        (
            Kind::EndOfFollowUp { event, censored_by },
            Type::Date,
            None,
            true,
        )
    }
}

fn check_event(c: &mut Checker, v: &VariableSpec) -> (Kind, Type, Option<Vec<String>>, bool) {
    let name = v.name.get_ref().as_str();
    let at = v.name.span().start;
    let placeholder = (Kind::Is(Condition::default()), Type::Failed, None, false);
    let Some(from) = &v.from else {
        c.error_at(
            format!("variable `{name}` needs `from` (the date its time runs from)"),
            at,
        );
        return placeholder;
    };
    let from = c.reference(name, from, &[Type::Date]);
    let unit = match &v.unit {
        Some(u) => unit_days(u.get_ref()).unwrap_or_else(|| {
            c.error_at(
                format!(
                    "`{name}.unit` is `{}`; expected days, months or years",
                    u.get_ref()
                ),
                u.span().start,
            );
            1.0
        }),
        None => {
            c.error_at(
                format!("variable `{name}` needs `unit` (days, months or years)"),
                at,
            );
            1.0
        }
    };
    let (time, shape) = if v.draw.as_ref().is_some_and(|d| d.get_ref() == "weibull") {
        let shape = c.positive(&format!("{name}.shape"), v.shape, at);
        let median = c.positive(&format!("{name}.median"), v.median, at);
        (EventTime::Weibull { shape, median }, shape)
    } else {
        let rate = c.positive(&format!("{name}.rate"), v.rate, at);
        (EventTime::Exponential { rate }, 1.0)
    };
    let mut effects = Vec::new();
    for e in v.effects.iter().flatten() {
        let eat = e.span().start;
        let e = e.get_ref();
        // A hazard ratio h is the time ratio h^(-1/shape) under a Weibull law.
        let time_ratio = match (e.time_ratio, e.hazard_ratio) {
            (Some(t), None) => c.positive(&format!("{name}.effects.time_ratio"), Some(t), eat),
            (None, Some(h)) => c
                .positive(&format!("{name}.effects.hazard_ratio"), Some(h), eat)
                .powf(-1.0 / shape),
            _ => {
                c.error_at(
                    format!(
                        "an effect of `{name}` needs exactly one of `time_ratio` and `hazard_ratio`"
                    ),
                    eat,
                );
                continue;
            }
        };
        let applies = match (&e.when, &e.per) {
            (Some(when), None) if e.centre.is_none() && e.step.is_none() => {
                Applies::When(c.condition(name, when))
            }
            (None, Some(per)) => {
                let Some(var) = c.reference(name, per, &[Type::Number]) else {
                    continue;
                };
                let step = c.positive(
                    &format!("{name}.effects.step"),
                    Some(e.step.unwrap_or(1.0)),
                    eat,
                );
                Applies::Per {
                    var,
                    centre: e.centre.unwrap_or(0.0),
                    step,
                }
            }
            _ => {
                c.error_at(
                    format!("an effect of `{name}` needs either `when = {{ variable = value }}` or `per = \"variable\"` (with `centre` and `step`)"),
                    eat,
                );
                continue;
            }
        };
        effects.push(Effect {
            applies,
            time_ratio,
        });
    }
    let Some(from) = from else { return placeholder };
    (
        Kind::Event {
            from,
            time,
            unit_days: unit,
            effects,
        },
        Type::Date,
        None,
        false,
    )
}

fn check_table(c: &mut Checker, t: &TableSpec) -> Table {
    let mut columns = Vec::new();
    for col in &t.columns {
        if let Some(i) = column(c, "table.columns", col) {
            columns.push(i);
        }
    }
    let order_by = t.id.order_by.as_ref().and_then(|o| {
        let i = column(c, "table.id.order_by", o)?;
        if c.defined[i].1 == Type::Bool {
            c.error_at(
                format!(
                    "`table.id.order_by` is `{}`, true or false; expected a date, number or level",
                    o.get_ref()
                ),
                o.span().start,
            );
        }
        Some(i)
    });
    plain_file(c, &t.file);
    Table {
        file: t.file.get_ref().clone(),
        id_column: t.id.column.clone(),
        prefix: t.id.prefix.clone(),
        digits: t.id.digits,
        order_by,
        columns,
    }
}

/// Any variable (a column may show one that depends on the cutoff).
fn column(c: &mut Checker, user: &str, name: &Spanned<String>) -> Option<usize> {
    let i = c.defined.iter().position(|d| &d.0 == name.get_ref());
    if i.is_none() {
        let known: Vec<&str> = c.defined.iter().map(|d| d.0.as_str()).collect();
        c.problems.push(
            Diagnostic::error(format!(
                "`{user}` names `{}`, which is not a variable of this file",
                name.get_ref()
            ))
            .at_offset(c.file, c.source, name.span().start)
            .hint(format!("variables: {}", known.join(", "))),
        );
    }
    i
}

/// A file name inside the snapshot folder.
fn plain_file(c: &mut Checker, f: &Spanned<String>) {
    let ok = {
        let p = Path::new(f.get_ref());
        p.components().count() == 1
            && matches!(p.components().next(), Some(std::path::Component::Normal(_)))
    };
    if !ok {
        c.error_at(
            format!(
                "`{}` is not a plain file name; tables are written inside each snapshot folder",
                f.get_ref()
            ),
            f.span().start,
        );
    }
}

/// A child column spread over parents: `levels_in_parents` (how many parents have each level),
/// the chance of a repeat, and weights of the other levels.
fn check_spread(
    c: &mut Checker,
    col: &ChildColumnSpec,
    levels: &IndexMap<Spanned<String>, usize>,
    n: usize,
    what: &str,
) -> Construction {
    let cname = col.name.get_ref();
    let at = col.name.span().start;
    for (k, &m) in levels {
        if m > n {
            c.error_at(
                format!(
                    "{m} parents with `{}` in `{what}`, more than {n}",
                    k.get_ref()
                ),
                k.span().start,
            );
        }
    }
    let repeat = c.probability(
        &format!("{cname}.repeat"),
        col.repeat.unwrap_or(f64::NAN),
        at,
    );
    let other: Vec<(String, f64)> = col
        .other_levels
        .iter()
        .flatten()
        .map(|(k, &w)| {
            if levels.contains_key(k.get_ref().as_str()) {
                c.error_at(
                    format!(
                        "`{}` is in both `levels_in_parents` and `other_levels`",
                        k.get_ref()
                    ),
                    k.span().start,
                );
            }
            (k.get_ref().clone(), w)
        })
        .collect();
    if other.iter().any(|x| !(x.1.is_finite() && x.1 >= 0.0))
        || other.iter().map(|x| x.1).sum::<f64>() <= 0.0
    {
        c.error_at(
            format!("`{cname}.other_levels` must be non-negative weights, not all zero"),
            at,
        );
    }
    Construction::Spread {
        levels: levels
            .iter()
            .map(|(k, &m)| (k.get_ref().clone(), m))
            .collect(),
        repeat,
        other,
    }
}

/// A child column marking parents: `marked_parents` per mark, the chance that other rows of a
/// marked parent have it too, and the value of the unmarked rows.
fn check_marks(
    c: &mut Checker,
    col: &ChildColumnSpec,
    marks: &IndexMap<Spanned<String>, usize>,
    n: usize,
) -> Construction {
    let cname = col.name.get_ref();
    let at = col.name.span().start;
    let total: usize = marks.values().sum();
    if total > n {
        c.error_at(
            format!("`{cname}.marked_parents` adds up to {total} parents, more than {n}"),
            at,
        );
    }
    let also = col.also_other_rows.clone().unwrap_or_default();
    for (k, &p) in &also {
        if !marks.contains_key(k.get_ref().as_str()) {
            c.error_at(
                format!(
                    "`{}` is in `also_other_rows` but not in `marked_parents`",
                    k.get_ref()
                ),
                k.span().start,
            );
        }
        c.probability(
            &format!("{cname}.also_other_rows.{}", k.get_ref()),
            p,
            k.span().start,
        );
    }
    Construction::Mark {
        marks: marks
            .iter()
            .map(|(k, &m)| {
                (
                    k.get_ref().clone(),
                    m,
                    also.get(k.get_ref().as_str()).copied(),
                )
            })
            .collect(),
        unmarked: col.unmarked.clone().unwrap_or_default(),
    }
}

fn check_child(
    c: &mut Checker,
    ch: &ChildSpec,
    strata: &[Stratum],
    names: &[String],
) -> Option<Child> {
    plain_file(c, &ch.file);
    let Some(stratum) = names.iter().position(|n| n == ch.stratum.get_ref()) else {
        c.problems.push(
            Diagnostic::error(format!(
                "child table `{}` is for stratum `{}`, which is not a stratum of this file",
                ch.file.get_ref(),
                ch.stratum.get_ref()
            ))
            .at_offset(c.file, c.source, ch.stratum.span().start)
            .hint(format!("strata: {}", names.join(", "))),
        );
        return None;
    };
    let n = strata[stratum].rows;
    let counts = ch.rows_per_parent.get_ref();
    if counts.len() != n || counts.contains(&0) {
        c.error_at(
            format!(
                "`rows_per_parent` must give one positive count per row of stratum `{}` ({n}), found {} values",
                ch.stratum.get_ref(),
                counts.len()
            ),
            ch.rows_per_parent.span().start,
        );
    }
    let what = ch.file.get_ref();
    let mut columns = Vec::new();
    for col in &ch.columns {
        let cname = col.name.get_ref();
        let at = col.name.span().start;
        let construction = match (&col.levels_in_parents, &col.marked_parents) {
            (Some(levels), None) if col.also_other_rows.is_none() && col.unmarked.is_none() => {
                check_spread(c, col, levels, n, what)
            }
            (None, Some(marks)) if col.repeat.is_none() && col.other_levels.is_none() => {
                check_marks(c, col, marks, n)
            }
            _ => {
                c.error_at(
                    format!("child column `{cname}` needs either `levels_in_parents` (with `repeat` and `other_levels`) or `marked_parents` (with `also_other_rows` and `unmarked`)"),
                    at,
                );
                continue;
            }
        };
        columns.push(ChildColumn {
            name: cname.clone(),
            construction,
        });
    }
    Some(Child {
        file: ch.file.get_ref().clone(),
        stratum,
        number_column: ch.number_column.clone(),
        rows_per_parent: counts.clone(),
        columns,
    })
}
