//! galley's estimators. Pure functions over slices: no I/O, no randomness, no clock.
//! Every estimator is validated against R (survival, MatchIt, stats) in `tests/`.
//!
//! Conventions shared by every module:
//! - inputs are complete cases (the caller drops missing rows and reports how many);
//! - groups are codes `0..k` with labels supplied by the caller in the order results list them;
//! - results derive `Serialize` with the field names of the R reference schema
//!   (`tests/reference/README.md`); a value that is not estimable is `None` (JSON `null`), never NaN;
//! - problems that leave no result are `Err(StatsError)`; problems that leave a result are warnings in it.

use std::fmt;

/// An estimator could not produce a result. The message is written for the study's author:
/// it names the quantity and what was expected, without Rust types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsError {
    pub message: String,
}

impl StatsError {
    pub fn new(message: impl Into<String>) -> Self {
        StatsError {
            message: message.into(),
        }
    }
}

impl fmt::Display for StatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StatsError {}

pub type Result<T> = std::result::Result<T, StatsError>;

/// Turn a computed value into an estimable value or `None` (NaN and infinities are never reported).
pub fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

// Survival estimators (survfit, survdiff, coxph).
pub mod cox;
pub mod km;
pub mod logrank;
mod par;
mod qr;
mod surv;

// Descriptive statistics, tests, regression and matching (stats, MatchIt).
pub mod balance;
pub mod describe;
pub mod design;
pub mod hypothesis;
pub mod logistic;
pub mod matching;
