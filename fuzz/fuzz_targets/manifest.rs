//! cargo fuzz target `manifest`: see `galley_fuzz::manifest` (fuzz/src/lib.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| galley_fuzz::manifest(data));
