//! (filled in by the invalid tests)
