//! The R factor of a tall QR decomposition, streamed in row blocks: Householder reflections
//! fold each block of rows into the current R. The tall matrix is never stored: each block's
//! columns are written by the caller into a small buffer that stays in cache, so an n x q
//! factorisation reads its input once and allocates O(q * block) per chunk.
//!
//! This is TSQR ("tall skinny QR"): rows are cut into chunks of [`CHUNK`] rows, each chunk's R is
//! computed independently (in parallel), and the chunk factors are then stacked and reduced by
//! one more streamed QR, in chunk order. Chunk boundaries depend on n only (see `crate::par`),
//! so R is the same bit for bit on any number of threads; up to [`CHUNK`] rows it is the plain
//! sequential factorisation. Backward stable like any Householder QR (each step is an orthogonal
//! transformation of the rows); used by the logistic fit (its weighted least-squares steps) and
//! the model matrix's rank check, where a million rows made a full-size copy and
//! column-by-column passes the largest cost.

use crate::par::CHUNK;
use rayon::prelude::*;

/// Rows per block: q x BLOCK doubles (q <= ~20 in practice) stay in L1/L2. Column `j` of a block
/// lives at `blk[j * BLOCK..j * BLOCK + b]`.
pub(crate) const BLOCK: usize = 256;

/// R (q x q, upper triangular, column-major `r[j * q + i]`, non-negative diagonal) with
/// Q R = A for the n x q matrix A whose rows `i0..i0 + b` are written by `fill(i0, b, blk)`,
/// column `j` into `blk[j * BLOCK..j * BLOCK + b]` (b <= [`BLOCK`]). R'R = A'A, so R is the
/// Cholesky factor of A'A, computed without forming A'A. `fill` is called from several threads,
/// each block exactly once.
pub(crate) fn r_factor(
    n: usize,
    q: usize,
    fill: impl Fn(usize, usize, &mut [f64]) + Sync,
) -> Vec<f64> {
    let chunks = n.div_ceil(CHUNK).max(1);
    let factor_chunk = |c: usize| {
        let (lo, hi) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
        let mut r = vec![0.0f64; q * q];
        let mut blk = vec![0.0f64; q * BLOCK];
        let mut i0 = lo;
        while i0 < hi {
            let b = BLOCK.min(hi - i0);
            fill(i0, b, &mut blk);
            reflect(&mut r, q, &mut blk, BLOCK, b);
            i0 += b;
        }
        r
    };
    let mut r = if chunks == 1 {
        factor_chunk(0)
    } else {
        let parts: Vec<Vec<f64>> = (0..chunks).into_par_iter().map(factor_chunk).collect();
        // Reduce in chunk order: each further chunk's R (q rows) is folded into the first's like
        // any other block of rows.
        let mut parts = parts.into_iter();
        let mut r = parts.next().unwrap_or_else(|| vec![0.0; q * q]);
        for mut rc in parts {
            reflect(&mut r, q, &mut rc, q, q);
        }
        r
    };
    // Rows with a negative diagonal change sign (R stays a valid factor: Q absorbs the signs).
    for i in 0..q {
        if r[i * q + i] < 0.0 {
            for k in i..q {
                r[k * q + i] = -r[k * q + i];
            }
        }
    }
    r
}

/// Fold the b rows held in `blk` (column `j` at `blk[j * stride..j * stride + b]`) into the
/// upper-triangular `r` by one Householder reflection per column; `blk` is overwritten.
fn reflect(r: &mut [f64], q: usize, blk: &mut [f64], stride: usize, b: usize) {
    for j in 0..q {
        let (head, tail) = blk.split_at_mut((j + 1) * stride);
        let v = &mut head[j * stride..j * stride + b];
        let s = dot(v, v);
        if s == 0.0 {
            continue; // the block is already zero in this column: nothing to reflect
        }
        // Reflector taking (r_jj, v) to (beta, 0): v becomes the reflector's tail, scaled so
        // that its head is 1 (LAPACK's dlarfg).
        let alpha = r[j * q + j];
        let norm = alpha.hypot(s.sqrt());
        let beta = if alpha >= 0.0 { -norm } else { norm };
        let tau = (beta - alpha) / beta;
        let scale = 1.0 / (alpha - beta);
        v.iter_mut().for_each(|x| *x *= scale);
        r[j * q + j] = beta;
        for k in j + 1..q {
            let col = &mut tail[(k - j - 1) * stride..(k - j - 1) * stride + b];
            let f = tau * (r[k * q + j] + dot(v, col));
            r[k * q + j] -= f;
            for (c, &vi) in col.iter_mut().zip(v.iter()) {
                *c -= f * vi;
            }
        }
    }
}

/// Dot product with eight independent accumulators, so that it vectorises.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DMatrix;

    #[test]
    fn r_factor_matches_cholesky_of_gram_matrix() {
        // 1000 x 4 (several blocks and a partial last block: one chunk), then 3 chunks and a
        // partial one (their R factors combined by the TSQR reduction).
        for n in [1000, 3 * CHUNK + 1000] {
            check_against_cholesky(n);
        }
    }

    fn check_against_cholesky(n: usize) {
        let a = DMatrix::from_fn(n, 4, |i, j| {
            let t = i as f64;
            match j {
                0 => 1.0,
                1 => (t * 0.37).sin() * 50.0 + 100.0,
                2 => ((i * 7919) % 13) as f64,
                _ => (t * 0.011).cos() * 1e4,
            }
        });
        let r = r_factor(n, 4, |i0, b, blk| {
            for j in 0..4 {
                blk[j * BLOCK..j * BLOCK + b].copy_from_slice(&a.column(j).as_slice()[i0..i0 + b]);
            }
        });
        let rm = DMatrix::from_column_slice(4, 4, &r);
        let chol = (a.transpose() * &a).cholesky().unwrap().l().transpose();
        for i in 0..4 {
            for j in 0..4 {
                let (x, y) = (rm[(i, j)], chol[(i, j)]);
                assert!(
                    (x - y).abs() <= 1e-9 * y.abs().max(1.0),
                    "({i},{j}) {x} vs {y}"
                );
            }
        }
        for i in 1..4 {
            for j in 0..i {
                assert_eq!(rm[(i, j)], 0.0);
            }
        }
    }

    #[test]
    fn dependent_column_gives_a_zero_diagonal() {
        let n = 600;
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.3).sin()).collect();
        let r = r_factor(n, 3, |i0, b, blk| {
            for k in 0..b {
                let v = x[i0 + k];
                blk[k] = 1.0;
                blk[BLOCK + k] = v;
                blk[2 * BLOCK + k] = 2.0 * v - 3.0;
            }
        });
        let col_norm = (0..3).map(|i| r[2 * 3 + i].powi(2)).sum::<f64>().sqrt();
        assert!(r[2 * 3 + 2] <= 1e-12 * col_norm, "{}", r[2 * 3 + 2]);
    }
}
