//! (filled in by the reference_survival tests)
