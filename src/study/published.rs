//! Published versus reproduced: each figure a paper reports, compared with the value the study's
//! blocks compute now. The comparison never fails a build: a miss is reported, printed and rendered.
//!
//! `published.toml`:
//! ```toml
//! [[quantity]]
//! key = "median_os_lb"                 # a stable name (reproduction.json's `quantity`)
//! label = "Median survival, HRmNET/LB (months)"
//! published = 54.0
//! value = "km_os.groups[1].median"     # a path into the block results
//! tolerance = "10%"                    # absolute (a number), relative ("10%"), or use `range`
//! # range = [0.01, 0.05]               # within when range[0] <= reproduced <= range[1]
//! # scale = 100                        # multiply the block value first (a proportion as percent)
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diagnostics::{Diagnostic, Result};
use crate::study::manifest::toml_diagnostic;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    #[serde(default)]
    pub source: Option<String>,
    #[serde(rename = "quantity", default)]
    pub quantities: Vec<Quantity>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quantity {
    pub key: String,
    pub label: Option<String>,
    pub published: f64,
    pub value: String,
    pub tolerance: Option<Tolerance>,
    pub range: Option<[f64; 2]>,
    #[serde(default = "one")]
    pub scale: f64,
    /// Decimals when printed (default: as many as the published value shows, at most 3).
    pub digits: Option<usize>,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Tolerance {
    Absolute(f64),
    /// "10%": relative to the published value.
    Relative(String),
}

/// One row of `reproduction.json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    pub quantity: String,
    pub label: String,
    pub published: f64,
    /// Unrounded; `None` when the block value is missing (a median not reached).
    pub reproduced: Option<f64>,
    pub difference: Option<f64>,
    pub tolerance: Value,
    pub within: bool,
    #[serde(skip)]
    pub digits: usize,
}

impl Published {
    pub fn parse(text: &str, file: &std::path::Path) -> Result<Published> {
        let published: Published =
            toml::from_str(text).map_err(|e| toml_diagnostic(&e, text, file))?;
        for q in &published.quantities {
            if let Some(Tolerance::Relative(s)) = &q.tolerance
                && parse_percent(s).is_none()
            {
                return Err(Diagnostic::error(format!(
                    "quantity `{}`: tolerance `{s}` is neither a number nor a percentage like \"10%\"",
                    q.key
                ))
                .in_file(file)
                .into());
            }
            if q.tolerance.is_none() && q.range.is_none() {
                return Err(Diagnostic::error(format!(
                    "quantity `{}` has neither `tolerance` nor `range`",
                    q.key
                ))
                .in_file(file)
                .into());
            }
        }
        Ok(published)
    }
}

fn parse_percent(s: &str) -> Option<f64> {
    s.trim()
        .strip_suffix('%')?
        .trim()
        .parse::<f64>()
        .ok()
        .map(|p| p / 100.0)
}

/// Follow `a.b[1].c` through a JSON value.
pub fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    let mut current = root;
    for part in path.split('.') {
        let (name, indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            current = current.get(name)?;
        }
        for index in indices.split('[').skip(1) {
            let i: usize = index.trim_end_matches(']').parse().ok()?;
            current = current.get(i)?;
        }
    }
    Some(current)
}

/// Compare every published quantity with the results (`results` maps block id -> result).
pub fn compare(
    published: &Published,
    results: &Value,
) -> std::result::Result<Vec<Comparison>, String> {
    published
        .quantities
        .iter()
        .map(|q| {
            let value = lookup(results, &q.value)
                .ok_or_else(|| format!("quantity `{}`: no result at `{}`", q.key, q.value))?;
            let reproduced = match value {
                Value::Null => None,
                Value::Number(n) => n.as_f64().map(|x| x * q.scale),
                Value::Bool(b) => Some(if *b { q.scale } else { 0.0 }),
                other => {
                    return Err(format!(
                        "quantity `{}`: `{}` is `{other}`, not a number",
                        q.key, q.value
                    ));
                }
            };
            let (within, tolerance) = match (&q.range, &q.tolerance) {
                (Some([lo, hi]), _) => (
                    reproduced.is_some_and(|x| *lo <= x && x <= *hi),
                    serde_json::json!([lo, hi]),
                ),
                (None, Some(Tolerance::Absolute(t))) => (
                    reproduced.is_some_and(|x| (x - q.published).abs() <= *t + 1e-9),
                    serde_json::json!(t),
                ),
                (None, Some(Tolerance::Relative(s))) => {
                    let r = parse_percent(s).unwrap_or(0.0);
                    (
                        reproduced.is_some_and(|x| {
                            (x - q.published).abs() <= r * q.published.abs() + 1e-9
                        }),
                        serde_json::json!(s),
                    )
                }
                (None, None) => (false, Value::Null),
            };
            let digits = q.digits.unwrap_or_else(|| decimals_of(q.published));
            Ok(Comparison {
                quantity: q.key.clone(),
                label: q.label.clone().unwrap_or_else(|| q.key.clone()),
                published: q.published,
                reproduced,
                difference: reproduced.map(|x| x - q.published),
                tolerance,
                within,
                digits,
            })
        })
        .collect()
}

fn decimals_of(x: f64) -> usize {
    let s = format!("{x}");
    s.split_once('.').map_or(0, |(_, d)| d.len().min(3))
}

/// The comparison as printed after a build.
pub fn summary(rows: &[Comparison]) -> String {
    let mut s = String::from("published versus reproduced:\n");
    for r in rows {
        let reproduced = r
            .reproduced
            .map_or("NR".to_string(), |x| format!("{:.*}", r.digits.max(1), x));
        s.push_str(&format!(
            "  {:<18} published {:>8}  reproduced {:>9}  {}\n",
            r.quantity,
            format!("{:.*}", r.digits, r.published),
            reproduced,
            if r.within {
                "within tolerance"
            } else {
                "OUTSIDE tolerance"
            }
        ));
    }
    let missed = rows.iter().filter(|r| !r.within).count();
    s.push_str(&format!(
        "  {} of {} within tolerance\n",
        rows.len() - missed,
        rows.len()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_with_absolute_relative_and_range_tolerances() {
        let text = r#"
[[quantity]]
key = "n"
published = 25
value = "m.n"
tolerance = 0
[[quantity]]
key = "median"
published = 54.0
value = "km.groups[1].median"
tolerance = "10%"
[[quantity]]
key = "p"
published = 0.03
value = "lr.p"
range = [0.01, 0.05]
[[quantity]]
key = "pct"
published = 60
value = "c.pct"
scale = 100
tolerance = 0.5
"#;
        let p = Published::parse(text, std::path::Path::new("published.toml")).unwrap();
        let results = serde_json::json!({
            "m": {"n": 25}, "km": {"groups": [{"median": 90.0}, {"median": 60.0}]},
            "lr": {"p": 0.06}, "c": {"pct": 0.6}
        });
        let rows = compare(&p, &results).unwrap();
        assert!(rows[0].within);
        assert!(!rows[1].within, "60 is 11% above 54");
        assert!(!rows[2].within, "0.06 is outside [0.01, 0.05]");
        assert!(rows[3].within);
        assert_eq!(rows[3].reproduced, Some(60.0));
        assert!(compare(&p, &serde_json::json!({})).is_err());
    }
}
