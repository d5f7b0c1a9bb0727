//! (filled in by the reference_regression tests)
