//! Drawing a [`Model`]: the rows of every stratum, variable by variable in file order, then the child
//! tables built to their exact counts; ids in the order the table asks for.
//!
//! The stream scheme: row `k` of stratum `s` draws from ChaCha stream `s << 32 | k`, so a row's values
//! do not depend on how many rows precede it; the exact-count constructions of a stratum (a bernoulli
//! `{ exactly = n }`, then its child tables) draw from stream `CONSTRUCTION | s`. A drawn variable
//! always takes the same number of uniforms from its row's stream whatever its parameter (a bernoulli
//! with an exact count still takes its uniform), so changing one parameter leaves every other variable
//! as it was. Dates are whole days, so the output is byte-identical for a seed.

use jiff::ToSpan;
use jiff::civil::Date;

use super::spec::{
    Applies, CondValue, Condition, Construction, DAYS_PER_YEAR, Effect, EventTime, Kind, Law,
    Model, Parameter,
};
use crate::diagnostics::{Diagnostic, Failure, Result};
use crate::random::Draws;

/// Stream of the exact-count constructions of stratum `s`: `CONSTRUCTION | s`.
const CONSTRUCTION: u64 = 1 << 40;

/// A value of a variable in one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Missing,
    Bool(bool),
    Number(f64),
    Level(String),
    Date(Date),
}

/// One drawn row: its values by variable index (those depending on a cutoff are `Missing` here).
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub values: Vec<Value>,
}

/// The drawn data: rows in id order, child rows (parent row index, values by column) in that order.
#[derive(Debug, Clone)]
pub struct Drawn {
    pub rows: Vec<Row>,
    pub children: Vec<Vec<(usize, Vec<String>)>>,
}

fn add_days(date: Date, days: i64) -> Date {
    date.checked_add(days.days()).unwrap_or(Date::MAX)
}

/// Whole days (at least 1) of a latent time in days; far-future times are capped at 200 years.
fn whole_days(days: f64) -> i64 {
    days.ceil().clamp(1.0, 73_050.0) as i64
}

impl Condition {
    pub fn holds(&self, values: &[Value]) -> bool {
        self.0.iter().all(|(i, want)| match (&values[*i], want) {
            (Value::Bool(b), CondValue::Bool(w)) => b == w,
            (Value::Level(l), CondValue::Levels(ls)) => ls.contains(l),
            _ => false,
        })
    }
}

impl Model {
    /// Draw every row and child table.
    pub fn draw(&self, file: &std::path::Path) -> Result<Drawn> {
        let mut rows: Vec<Row> = Vec::new();
        // (stratum, index in the stratum) of each row, in drawing order.
        let mut origin = Vec::new();
        let mut children: Vec<Vec<Vec<Vec<String>>>> = vec![Vec::new(); self.children.len()];
        let mut child_first_row = vec![0usize; self.children.len()];
        for (s, stratum) in self.strata.iter().enumerate() {
            let mut build = Draws::new(self.seed, CONSTRUCTION | s as u64);
            // Exact counts first, in variable order.
            let exact: Vec<Option<Vec<bool>>> = (0..self.variables.len())
                .map(|v| match self.parameter(s, v) {
                    Some(Parameter::Exactly(k)) => Some(build.subset(stratum.rows, *k)),
                    _ => None,
                })
                .collect();
            let first = rows.len();
            for k in 0..stratum.rows {
                let mut d = Draws::new(self.seed, ((s as u64) << 32) | k as u64);
                let mut values = Vec::with_capacity(self.variables.len());
                for v in 0..self.variables.len() {
                    let value = self.value(s, k, v, &values, &exact, &mut d);
                    values.push(value);
                }
                rows.push(Row {
                    id: String::new(),
                    values,
                });
                origin.push(s);
            }
            for (c, child) in self.children.iter().enumerate() {
                if child.stratum == s {
                    child_first_row[c] = first;
                    children[c] = self.child_rows(c, &mut build, file)?;
                }
            }
        }

        // Ids in the table's order (then drawing order); child rows follow their parent.
        let mut order: Vec<usize> = (0..rows.len()).collect();
        if let Some(key) = self.table.order_by {
            order.sort_by(|&a, &b| compare(&rows[a].values[key], &rows[b].values[key]));
        }
        let mut sorted = Vec::with_capacity(rows.len());
        let mut out_children: Vec<Vec<(usize, Vec<String>)>> =
            vec![Vec::new(); self.children.len()];
        for (rank, &i) in order.iter().enumerate() {
            let mut row = rows[i].clone();
            row.id = format!(
                "{}{:0width$}",
                self.table.prefix,
                rank + 1,
                width = self.table.digits
            );
            for (c, child) in self.children.iter().enumerate() {
                if origin[i] == child.stratum {
                    let j = i - child_first_row[c];
                    for values in &children[c][j] {
                        out_children[c].push((rank, values.clone()));
                    }
                }
            }
            sorted.push(row);
        }
        Ok(Drawn {
            rows: sorted,
            children: out_children,
        })
    }

    /// The parameter of drawn variable `v` in stratum `s`.
    fn parameter(&self, s: usize, v: usize) -> Option<&Parameter> {
        match &self.variables[v].kind {
            Kind::Draw {
                parameter: Some(p), ..
            } => Some(p),
            Kind::Draw {
                parameter: None, ..
            } => self.strata[s].parameters[v].as_ref(),
            _ => None,
        }
    }

    fn value(
        &self,
        s: usize,
        k: usize,
        v: usize,
        values: &[Value],
        exact: &[Option<Vec<bool>>],
        d: &mut Draws,
    ) -> Value {
        let var = &self.variables[v];
        let num = |i: usize| number_at(values, i);
        let date = |i: usize| match values[i] {
            Value::Date(x) => Some(x),
            _ => None,
        };
        match &var.kind {
            Kind::Stratum => Value::Level(self.strata[s].name.clone()),
            Kind::Draw { law, .. } => {
                let p = self.parameter(s, v).expect("checked");
                let value = draw(law, p, exact[v].as_ref().map(|e| e[k]), values, d);
                match &var.missing {
                    Some(m) if d.bernoulli(probability(m, values)) => Value::Missing,
                    _ => value,
                }
            }
            Kind::Event {
                from,
                time,
                unit_days,
                effects,
            } => {
                let e = d.exponential();
                let Some(from) = date(*from) else {
                    return Value::Missing;
                };
                let t = match time {
                    EventTime::Weibull { shape, median } => {
                        let m = with_effects(*median, effects, values);
                        m * unit_days * (e / std::f64::consts::LN_2).powf(1.0 / shape)
                    }
                    EventTime::Exponential { rate } => {
                        with_effects(e / rate * unit_days, effects, values)
                    }
                };
                Value::Date(add_days(from, whole_days(t)))
            }
            Kind::DateBetween { start, end, at } => match num(*at) {
                Some(x) => {
                    let span_days = (*end - *start).get_days().max(1) as f64;
                    let x = x.clamp(0.0, 1.0);
                    Value::Date(add_days(*start, (x * span_days).floor() as i64))
                }
                None => Value::Missing,
            },
            Kind::DateMinusYears { from, years } => match (date(*from), num(*years)) {
                (Some(from), Some(y)) => {
                    Value::Date(add_days(from, -(y * DAYS_PER_YEAR).round() as i64))
                }
                _ => Value::Missing,
            },
            Kind::Is(c) => Value::Bool(c.holds(values)),
            Kind::If {
                when,
                then,
                otherwise,
            } => values[if when.holds(values) {
                *then
            } else {
                *otherwise
            }]
            .clone(),
            Kind::EndOfFollowUp { .. } | Kind::EventSeen { .. } => Value::Missing,
        }
    }

    /// Index of the variable `name`.
    pub fn variable(&self, name: &str) -> Option<usize> {
        self.variables.iter().position(|v| v.name == name)
    }

    /// A value of variable `v` as the export writes it.
    pub fn text(&self, v: usize, value: &Value) -> String {
        let var = &self.variables[v];
        match value {
            Value::Missing => var.missing_as.clone(),
            Value::Bool(b) => var.values[usize::from(!b)].clone(),
            Value::Number(x) => format!("{x:.*}", var.decimals),
            Value::Level(l) => l.clone(),
            Value::Date(d) => d.to_string(),
        }
    }

    /// A row's value of `v` as of `cutoff` (the follow-up variables; the others as drawn).
    pub fn as_of(&self, row: &Row, v: usize, cutoff: Date) -> Value {
        let (event, censored_by, seen) = match &self.variables[v].kind {
            Kind::EndOfFollowUp { event, censored_by } => (*event, censored_by, false),
            Kind::EventSeen { event, censored_by } => (*event, censored_by, true),
            _ => return row.values[v].clone(),
        };
        let Value::Date(event) = row.values[event] else {
            return Value::Missing;
        };
        let mut censor = cutoff;
        for &c in censored_by {
            if let Value::Date(c) = row.values[c] {
                censor = censor.min(c);
            }
        }
        if seen {
            Value::Bool(event <= censor)
        } else {
            Value::Date(event.min(censor))
        }
    }

    /// Rows (values by column) of child table `c` for each parent of its stratum, in drawing order.
    fn child_rows(
        &self,
        c: usize,
        d: &mut Draws,
        file: &std::path::Path,
    ) -> Result<Vec<Vec<Vec<String>>>> {
        let child = &self.children[c];
        let infeasible = |what: String| -> Failure {
            Diagnostic::error(format!(
                "the counts of `{}` cannot be met: {what}; give more parents several rows",
                child.file
            ))
            .in_file(file)
            .into()
        };
        // Row counts, shuffled onto parents.
        let mut counts = child.rows_per_parent.clone();
        for i in (1..counts.len()).rev() {
            let j = d.below(i + 1);
            counts.swap(i, j);
        }
        let n = counts.len();
        let mut rows: Vec<Vec<Vec<String>>> = counts.iter().map(|&m| vec![Vec::new(); m]).collect();
        for col in &child.columns {
            match &col.construction {
                Construction::Spread {
                    levels,
                    repeat,
                    other,
                } => {
                    // Parents with each listed level, where their number of rows leaves room.
                    let mut own: Vec<Vec<&str>> = vec![Vec::new(); n];
                    for (level, k) in levels {
                        let eligible: Vec<bool> =
                            (0..n).map(|i| own[i].len() < counts[i]).collect();
                        let member = d.subset_of(&eligible, *k).ok_or_else(|| {
                            infeasible(format!("{k} parents with `{}` = `{level}`", col.name))
                        })?;
                        for i in (0..n).filter(|&i| member[i]) {
                            own[i].push(level);
                        }
                    }
                    let weights: Vec<f64> = other.iter().map(|o| o.1).collect();
                    for i in 0..n {
                        let mut column: Vec<&str> = own[i].clone();
                        while column.len() < counts[i] {
                            let u_same = d.uniform();
                            let u_which = d.below(own[i].len().max(1));
                            let u_other = d.choose(&weights);
                            column.push(if !own[i].is_empty() && u_same < *repeat {
                                own[i][u_which]
                            } else {
                                &other[u_other].0
                            });
                        }
                        for (r, value) in rows[i].iter_mut().zip(column) {
                            r.push(value.to_string());
                        }
                    }
                }
                Construction::Mark { marks, unmarked } => {
                    for r in rows.iter_mut().flatten() {
                        r.push(unmarked.clone());
                    }
                    let at = rows[0].first().map_or(0, |r| r.len() - 1);
                    let mut free = vec![true; n];
                    for (level, k, also) in marks {
                        let member = d.subset_of(&free, *k).ok_or_else(|| {
                            infeasible(format!("{k} parents with `{}` = `{level}`", col.name))
                        })?;
                        for i in (0..n).filter(|&i| member[i]) {
                            free[i] = false;
                            let first = d.below(rows[i].len());
                            rows[i][first][at] = level.clone();
                            if let Some(p) = also {
                                for j in 0..rows[i].len() {
                                    if j != first && d.bernoulli(*p) {
                                        rows[i][j][at] = level.clone();
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(rows)
    }
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Date(a), Value::Date(b)) => a.cmp(b),
        (Value::Number(a), Value::Number(b)) => a.total_cmp(b),
        (Value::Level(a), Value::Level(b)) => a.cmp(b),
        (Value::Missing, Value::Missing) => Ordering::Equal,
        (Value::Missing, _) => Ordering::Less,
        (_, Value::Missing) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

/// The number in `values[i]`, if it is one.
fn number_at(values: &[Value], i: usize) -> Option<f64> {
    match values[i] {
        Value::Number(x) => Some(x),
        _ => None,
    }
}

/// A probability parameter's value for this row (`along` a variable: linear in it).
fn probability(p: &Parameter, values: &[Value]) -> f64 {
    match p {
        Parameter::Probability(p) => *p,
        Parameter::Along { var, from, to } => {
            number_at(values, *var).map_or(f64::NAN, |x| from + (to - from) * x)
        }
        _ => f64::NAN,
    }
}

/// One draw of `law` with parameter `p`; `exact` is this row's value of an `exactly` parameter
/// (drawn for the whole stratum beforehand).
fn draw(law: &Law, p: &Parameter, exact: Option<bool>, values: &[Value], d: &mut Draws) -> Value {
    match (law, p) {
        (Law::Bernoulli, Parameter::Exactly(_)) => {
            d.uniform();
            Value::Bool(exact.expect("drawn"))
        }
        (Law::Bernoulli, p) => Value::Bool(d.uniform() < probability(p, values)),
        (Law::Categorical(levels), Parameter::Weights(w)) => {
            let weights: Vec<f64> = w.iter().map(|x| x.1).collect();
            Value::Level(levels[w[d.choose(&weights)].0].clone())
        }
        (Law::Normal, Parameter::Normal { mean, sd, min, max }) => {
            Value::Number((mean + sd * d.normal()).clamp(*min, *max))
        }
        (Law::Linear, Parameter::Ratio(r)) => {
            // Density linear from 1 to `r` over (0, 1), inverted.
            let u = d.uniform();
            let x = if (r - 1.0).abs() < 1e-12 {
                u
            } else {
                let c = 1.0 + (r - 1.0) / 2.0;
                ((1.0 + 2.0 * (r - 1.0) * u * c).sqrt() - 1.0) / (r - 1.0)
            };
            Value::Number(x)
        }
        _ => unreachable!("parameters are checked against their law"),
    }
}

/// An event time `t` multiplied, effect by effect in order, by each effect's time ratio that
/// applies to this row (a condition that holds, or per step of a variable from its centre).
fn with_effects(mut t: f64, effects: &[Effect], values: &[Value]) -> f64 {
    for effect in effects {
        match &effect.applies {
            Applies::When(c) => {
                if c.holds(values) {
                    t *= effect.time_ratio;
                }
            }
            Applies::Per { var, centre, step } => {
                if let Some(x) = number_at(values, *var) {
                    t *= effect.time_ratio.powf((x - centre) / step);
                }
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
seed = 3
[[snapshot]]
cutoff = 2015-08-31
path = "a"
[[stratum]]
name = "s"
rows = 1
[[variable]]
name = "start"
draw = "linear"
parameter = 1.0
[[variable]]
name = "entry"
date_between = [2010-01-01, 2010-01-02]
at = "start"
[[variable]]
name = "event"
draw = "exponential"
from = "entry"
rate = 1.0
unit = "days"
[[variable]]
name = "end"
end_of_follow_up = "event"
censored_by = ["censor"]
[[variable]]
name = "censor"
draw = "exponential"
from = "entry"
rate = 1.0
unit = "days"
[table]
file = "t.csv"
id = { column = "id", digits = 1 }
columns = []
"#;

    #[test]
    fn follow_up_is_the_earliest_of_event_censoring_and_cutoff() {
        // `end` names `censor`, defined below it: an error, not a silent reorder.
        let err = Model::parse(SPEC, std::path::Path::new("simulation.toml")).unwrap_err();
        assert!(err.to_string().contains("defined below it"), "{err}");
        let spec = SPEC.replace("censored_by = [\"censor\"]", "censored_by = []");
        let model = Model::parse(&spec, std::path::Path::new("simulation.toml")).unwrap();
        let date = |s: &str| s.parse::<Date>().unwrap();
        let mut row = Row {
            id: "1".into(),
            values: vec![
                Value::Level("s".into()),
                Value::Number(0.5),
                Value::Date(date("2010-01-01")),
                Value::Date(date("2017-03-01")),
                Value::Missing,
                Value::Date(date("2030-01-01")),
            ],
        };
        let end = model.variable("end").unwrap();
        assert_eq!(
            model.as_of(&row, end, date("2015-08-31")),
            Value::Date(date("2015-08-31"))
        );
        assert_eq!(
            model.as_of(&row, end, date("2020-08-31")),
            Value::Date(date("2017-03-01"))
        );
        // A censoring date before the event ends follow-up there.
        let mut censored = model.clone();
        if let Kind::EndOfFollowUp { censored_by, .. } = &mut censored.variables[end].kind {
            censored_by.push(5);
        }
        row.values[5] = Value::Date(date("2016-01-01"));
        assert_eq!(
            censored.as_of(&row, end, date("2020-08-31")),
            Value::Date(date("2016-01-01"))
        );
    }
}
