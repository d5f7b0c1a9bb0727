//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run the real `galley` binary with `args` in `cwd`.
pub fn galley(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_galley"))
        .args(args)
        .current_dir(cwd)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("galley runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The content of a record galley wrote (the blocks of results.json, the entries of trail.json, the
/// rows of reproduction.json), checked to carry its format stamp (docs/formats.md).
pub fn record<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let record: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let stamp = record["format"]
        .as_str()
        .unwrap_or_else(|| panic!("{path:?} has no format"));
    let key = match stamp {
        "galley-results/2" => "blocks",
        "galley-trail/2" => "entries",
        "galley-reproduction/2" => "rows",
        other => panic!("{path:?}: unexpected format {other}"),
    };
    serde_json::from_value(record[key].clone()).unwrap()
}

/// `galley analyze --data <reference>/<dataset>/data.csv --block tests/reference/specs/<case>.toml`,
/// parsed as JSON.
pub fn analyze_reference(dataset: &str, case: &str) -> Value {
    let root = root();
    let data = root.join("tests/reference").join(dataset).join("data.csv");
    let spec = root
        .join("tests/reference/specs")
        .join(format!("{case}.toml"));
    let out = galley(
        &[
            "analyze",
            "--data",
            data.to_str().unwrap(),
            "--block",
            spec.to_str().unwrap(),
        ],
        &root,
    );
    assert!(
        out.status.success(),
        "galley analyze {case} failed:\n{}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{case}: output is not JSON ({e}):\n{}", stdout(&out)))
}

/// The R reference values of a case.
pub fn reference(dataset: &str, case: &str) -> Value {
    let path = root()
        .join("tests/reference")
        .join(dataset)
        .join(format!("{case}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Check that every number, string, boolean and null in `expected` (except `_r_call`) is at the same
/// path in `actual`. `tolerance(path)` gives the relative tolerance for the number at `path`
/// (absolute 1e-12 near zero). Returns the number of values compared.
pub fn assert_matches(actual: &Value, expected: &Value, tolerance: &dyn Fn(&str) -> f64) -> usize {
    let mut count = 0;
    compare(actual, expected, "", tolerance, &mut count);
    count
}

fn compare(
    actual: &Value,
    expected: &Value,
    path: &str,
    tolerance: &dyn Fn(&str) -> f64,
    count: &mut usize,
) {
    match expected {
        Value::Object(map) => {
            for (key, e) in map {
                if key == "_r_call" {
                    continue;
                }
                let p = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let a = actual
                    .get(key)
                    .unwrap_or_else(|| panic!("missing key `{p}` in galley's output"));
                compare(a, e, &p, tolerance, count);
            }
        }
        Value::Array(items) => {
            let a = actual
                .as_array()
                .unwrap_or_else(|| panic!("`{path}` is not an array: {actual}"));
            assert_eq!(
                a.len(),
                items.len(),
                "`{path}`: {} items, R has {}",
                a.len(),
                items.len()
            );
            for (i, (a, e)) in a.iter().zip(items).enumerate() {
                compare(a, e, &format!("{path}[{i}]"), tolerance, count);
            }
        }
        Value::Number(e) => {
            let e = e.as_f64().unwrap();
            let a = actual
                .as_f64()
                .unwrap_or_else(|| panic!("`{path}`: expected {e}, found {actual}"));
            let tol = tolerance(path);
            let ok = if e.abs() < 1e-12 {
                (a - e).abs() <= 1e-12
            } else {
                ((a - e) / e).abs() <= tol
            };
            assert!(
                ok,
                "`{path}`: galley {a}, R {e} (relative error {:e}, tolerance {tol:e})",
                ((a - e) / e).abs()
            );
            *count += 1;
        }
        other => {
            assert_eq!(actual, other, "`{path}` differs");
            *count += 1;
        }
    }
}

/// Tolerance for closed-form quantities.
pub const EXACT: f64 = 1e-6;
/// Tolerance for quantities R itself finds iteratively (Cox and logistic coefficients at convergence,
/// their SEs, and the tests and intervals built on them).
pub const ITERATIVE: f64 = 1e-4;
