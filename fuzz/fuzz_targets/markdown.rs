//! cargo fuzz target `markdown`: see `galley_fuzz::markdown` (fuzz/src/lib.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| galley_fuzz::markdown(data));
