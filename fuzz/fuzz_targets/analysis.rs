//! cargo fuzz target `analysis`: see `galley_fuzz::analysis` (fuzz/src/lib.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| galley_fuzz::analysis(data));
