//! cargo fuzz target `bibliography`: see `galley_fuzz::bibliography` (fuzz/src/lib.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| galley_fuzz::bibliography(data));
