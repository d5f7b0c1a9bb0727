//! galley's integration suite: one test binary (fast to link) running the real `galley` executable on
//! fixture studies, reference cases and invalid inputs.

mod common;

mod architecture;
mod audit;
mod bootstrap;
mod build;
mod cache;
mod compat;
mod croome;
mod diagnostics;
mod front;
mod fuzz_regressions;
mod inputs;
mod invalid;
mod limits;
mod links;
mod missing;
mod outputs_trust;
mod parity;
mod prose_missing;
mod reference_regression;
mod reference_survival;
mod sandbox;
mod simulate;
mod watch;
