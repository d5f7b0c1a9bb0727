//! cargo fuzz target `csv`: see `galley_fuzz::csv` (fuzz/src/lib.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| galley_fuzz::csv(data));
