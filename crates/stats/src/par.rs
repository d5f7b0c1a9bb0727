//! How the kernels use more than one core without giving up reproducibility.
//!
//! Reports are rebuilt byte for byte, so an estimate must not depend on the machine or on how
//! many threads rayon happens to have. Floating-point sums do depend on their order. The rule
//! every parallel kernel follows: rows are split into chunks whose boundaries depend only on the
//! data (a fixed number of rows, [`CHUNK`], sometimes moved forward to the end of a run of tied
//! times), each chunk is computed sequentially, and the per-chunk results are combined in chunk
//! order on one thread. The thread pool only decides which core computes which chunk, never
//! what is computed. `tests/parallel.rs` checks this by fitting in a 1-thread and a 4-thread
//! pool and comparing the bits.
//!
//! A problem of at most [`CHUNK`] rows is one chunk, computed exactly as the sequential code did,
//! so results on small data (every R reference test) are unchanged by the parallelism; it is
//! also computed on the calling thread, without rayon (see [`map`]).

use rayon::prelude::*;

/// Rows per chunk: 32,768 rows of a few doubles stay in a core's L2, and at a million rows there
/// are 31 chunks, enough to keep two (or a few more) cores evenly busy.
pub(crate) const CHUNK: usize = 1 << 15;

/// Sum per-chunk partial sums in chunk order. One chunk gives its value unchanged (not
/// `0.0 + x`), so single-chunk results are bit-identical to a sequential sum.
pub(crate) fn ordered_sum(parts: &[f64]) -> f64 {
    match parts.split_first() {
        Some((&first, rest)) => rest.iter().fold(first, |acc, &v| acc + v),
        None => 0.0,
    }
}

/// `items.iter().map(f).collect()`, in parallel when the problem has more than [`CHUNK`] rows.
/// For a few items (columns, say) rayon hands the work to its threads, which costs tens of
/// microseconds: more than it saves on small data.
pub(crate) fn map<T: Sync, R: Send>(
    rows: usize,
    items: &[T],
    f: impl Fn(&T) -> R + Sync + Send,
) -> Vec<R> {
    if rows > CHUNK {
        items.par_iter().map(f).collect()
    } else {
        items.iter().map(f).collect()
    }
}

/// `(a(), b())`, side by side when the problem has more than [`CHUNK`] rows (see [`map`]).
pub(crate) fn join<RA: Send, RB: Send>(
    rows: usize,
    a: impl FnOnce() -> RA + Send,
    b: impl FnOnce() -> RB + Send,
) -> (RA, RB) {
    if rows > CHUNK {
        rayon::join(a, b)
    } else {
        (a(), b())
    }
}
