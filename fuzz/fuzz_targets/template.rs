//! cargo fuzz target `template`: see `galley_fuzz::template` (fuzz/src/lib.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| galley_fuzz::template(data));
