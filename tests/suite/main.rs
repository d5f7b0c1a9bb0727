//! galley's integration suite: one test binary (fast to link) running the real `galley` executable on
//! fixture studies, reference cases and invalid inputs.

mod common;

mod build;
mod fuzz_regressions;
mod invalid;
mod reference_regression;
mod reference_survival;
