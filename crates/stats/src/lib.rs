//! galley's estimators. Pure functions over slices: no I/O, no randomness, no clock.
//! Every estimator is validated against R (survival, MatchIt, stats) in `tests/`.
