//! cargo fuzz target `provenance`: see `galley_fuzz::provenance` (fuzz/src/lib.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| galley_fuzz::provenance(data));
