//! (filled in by the build tests)
