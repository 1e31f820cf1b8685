//! Fused, streamed, multi-threaded kernel sums.
//!
//! For evaluation points `x_i` (`n x d`, row-major) and sources `y_j` with weights `v_j`:
//!
//! - values: `s_i = sum_j v_j k(x_i, y_j)` (the product `K_xy v`),
//! - gradients: `G_i = sum_j v_j grad_x k(x_i, y_j) = sum_j v_j 2 phi'(r2_ij) (x_i - y_j)`,
//! - vector-valued sums `S_i = sum_j k(x_i, y_j) V_j` for `V` of shape `m x p`.
//!
//! No `n x m` matrix is ever formed: rows of `x` are processed in blocks, in parallel with
//! rayon, and every row accumulates over `j` in a fixed order, so the result does not
//! depend on the number of threads. Memory is `O((n + m) d)`. [`gram`] builds the full
//! matrix only when a caller asks for it.
//!
//! The witness of `mu - pi` is one call: sources `[x; y]` with signed weights `[w; -v]`.

use super::engine::{kernel_column, sums_multi_with, sums_with, EngineOptions};
use super::Kernel;
use crate::error::{Error, Result};
use crate::linalg::LinOp;
use ndarray::Array2;
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::engine::check_shapes as check;

/// Streamed kernel sums together with the reusable settings (a handle for callers that
/// want to pass one object around).
#[derive(Debug, Clone, Copy)]
pub struct KernelSums {
    /// The kernel.
    pub kernel: Kernel,
    /// Dimension of the points.
    pub d: usize,
}

impl KernelSums {
    /// `K_xy v`.
    pub fn values(&self, x: &[f64], y: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        kernel_sums(&self.kernel, x, y, v, self.d)
    }
    /// `K_xy v` and its gradient in `x`.
    pub fn values_grad(&self, x: &[f64], y: &[f64], v: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        kernel_sums_with_grad(&self.kernel, x, y, v, self.d)
    }
}

/// `s_i = sum_j v_j k(x_i, y_j)` for row-major `x` (`n x d`) and `y` (`m x d`).
pub fn kernel_sums(k: &Kernel, x: &[f64], y: &[f64], v: &[f64], d: usize) -> Result<Vec<f64>> {
    Ok(sums_with(k, x, y, v, d, false, &EngineOptions::default())?.0)
}

/// Values `s_i = sum_j v_j k(x_i, y_j)` and gradients
/// `G_i = sum_j v_j grad_x k(x_i, y_j)` (row-major `n x d`).
pub fn kernel_sums_with_grad(
    k: &Kernel,
    x: &[f64],
    y: &[f64],
    v: &[f64],
    d: usize,
) -> Result<(Vec<f64>, Vec<f64>)> {
    sums_with(k, x, y, v, d, true, &EngineOptions::default())
}

/// `f32` version of [`kernel_sums`] (the engine's single-precision path; the kernel's
/// constants are rounded to `f32`).
pub fn kernel_sums_f32(k: &Kernel, x: &[f32], y: &[f32], v: &[f32], d: usize) -> Result<Vec<f32>> {
    Ok(sums_with(k, x, y, v, d, false, &EngineOptions::default())?.0)
}

/// `f32` version of [`kernel_sums_with_grad`].
pub fn kernel_sums_with_grad_f32(
    k: &Kernel,
    x: &[f32],
    y: &[f32],
    v: &[f32],
    d: usize,
) -> Result<(Vec<f32>, Vec<f32>)> {
    sums_with(k, x, y, v, d, true, &EngineOptions::default())
}

/// Vector-valued sums `S_i = sum_j k(x_i, y_j) V_j` where `V` is `m x p` row-major;
/// returns `n x p` row-major.
pub fn kernel_sums_multi(
    k: &Kernel,
    x: &[f64],
    y: &[f64],
    vmat: &[f64],
    d: usize,
    p: usize,
) -> Result<Vec<f64>> {
    check(x, y, vmat, d, p)?;
    sums_multi_with(k, x, y, vmat, d, p, &EngineOptions::default())
}

/// Weighted squared MMD, V-statistic:
/// `MMD^2 = w'K_xx w - 2 w'K_xy v + v'K_yy v`, clamped at 0 against round-off (a NaN from
/// non-finite input is returned as NaN).
pub fn mmd2(k: &Kernel, x: &[f64], w: &[f64], y: &[f64], v: &[f64], d: usize) -> Result<f64> {
    let (t_xx, t_xy, t_yy) = mmd_terms(k, x, w, y, v, d)?;
    let m = t_xx - 2.0 * t_xy + t_yy;
    // Clamp round-off below zero; a NaN stays a NaN (`f64::max` would return 0).
    Ok(if m < 0.0 { 0.0 } else { m })
}

/// The three terms `(w'K_xx w, w'K_xy v, v'K_yy v)`.
pub fn mmd_terms(
    k: &Kernel,
    x: &[f64],
    w: &[f64],
    y: &[f64],
    v: &[f64],
    d: usize,
) -> Result<(f64, f64, f64)> {
    let kw = kernel_sums(k, x, x, w, d)?;
    let kv = kernel_sums(k, x, y, v, d)?;
    let kyy = kernel_sums(k, y, y, v, d)?;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    Ok((dot(w, &kw), dot(w, &kv), dot(v, &kyy)))
}

/// Unbiased squared MMD (U-statistic): the diagonal terms `i = j` of `K_xx` and `K_yy`
/// are dropped and each within-sample sum renormalised by `1 - sum w_i^2`:
/// `(w'K_xx w - sum w_i^2 k_ii) / (1 - sum w_i^2) + (same for y) - 2 w'K_xy v`.
/// With equal weights `1/n` this is the classical
/// `1/(n(n-1)) sum_{i!=j} k(x_i,x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i,y_j) - 2/(nm) sum k(x_i,y_j)`
/// (Gretton et al. 2012, eq. 3). Weights must sum to 1 and each sample needs 2 points.
pub fn mmd2_unbiased(
    k: &Kernel,
    x: &[f64],
    w: &[f64],
    y: &[f64],
    v: &[f64],
    d: usize,
) -> Result<f64> {
    let (t_xx, t_xy, t_yy) = mmd_terms(k, x, w, y, v, d)?;
    let sw2: f64 = w.iter().map(|a| a * a).sum();
    let sv2: f64 = v.iter().map(|a| a * a).sum();
    if sw2 >= 1.0 - 1e-15 || sv2 >= 1.0 - 1e-15 {
        return Err(Error::param(
            "samples",
            "1",
            "the unbiased MMD needs at least two points with positive weight in each sample",
        ));
    }
    let kd = k.diag();
    Ok((t_xx - sw2 * kd) / (1.0 - sw2) + (t_yy - sv2 * kd) / (1.0 - sv2) - 2.0 * t_xy)
}

/// Up to this many pairs `n m` the Gram matrix is filled on the calling thread (a
/// 128 x 128 minibatch; larger matrices keep the parallel fill).
const SERIAL_GRAM_PAIRS: usize = 1 << 15;

/// The full kernel matrix `K_xy` (`n x m`). Only for callers that need it explicitly.
pub fn gram(k: &Kernel, x: &[f64], y: &[f64], d: usize) -> Result<Array2<f64>> {
    let (n, m) = check(x, y, &vec![0.0; y.len() / d.max(1)], d, 1)?;
    let mut g = Array2::<f64>::zeros((n, m));
    // Row i of K_xy is the column `k(y_j, x_i)` over the sources: one vectorised pass each.
    let rows = g.as_slice_mut().expect("standard layout");
    let row = |(i, r): (usize, &mut [f64])| kernel_column(k, y, &x[i * d..(i + 1) * d], d, r);
    if n * m <= SERIAL_GRAM_PAIRS {
        // A minibatch-sized matrix (128 x 128 at d = 20) takes tens of microseconds: rayon's
        // fork-join would cost as much as the work. Same rows, same values.
        rows.chunks_mut(m.max(1)).enumerate().try_for_each(row)?;
    } else {
        rows.par_chunks_mut(m.max(1))
            .enumerate()
            .try_for_each(row)?;
    }
    Ok(g)
}

/// The Gram operator `v -> K_xx v` on a fixed set of atoms.
///
/// [`GramOp::new`] returns the lazy form: products are streamed through the engine until
/// the operator has been applied twice, then (when it is small, at most
/// [`GramOp::DENSE_MAX_ENTRIES`] entries) the matrix is materialised once and reused. So a
/// caller that needs one product (or a few columns, [`LinOp::column`]) never pays for the
/// `n x n` matrix, and an iterative solver that needs hundreds gets the dense product.
pub enum GramOp {
    /// The materialised matrix.
    Dense(Array2<f64>),
    /// Matrix-free: kernel, atoms (row-major), dimension.
    Streamed {
        /// The kernel.
        kernel: Kernel,
        /// Atoms, row-major `n x d`.
        x: Vec<f64>,
        /// Dimension.
        d: usize,
    },
    /// Streamed first, materialised on the third product when small.
    Lazy {
        /// The kernel.
        kernel: Kernel,
        /// Atoms, row-major `n x d`.
        x: Vec<f64>,
        /// Dimension.
        d: usize,
        /// The matrix, once built.
        dense: OnceLock<Array2<f64>>,
        /// Products applied so far.
        products: AtomicUsize,
    },
}

impl GramOp {
    /// Largest `n^2` for which the matrix is materialised (8M entries, 64 MB in f64).
    pub const DENSE_MAX_ENTRIES: usize = 1 << 23;

    /// The Gram operator of `kernel` on the atoms `x` (`n x d` row-major): lazy when
    /// `n^2 <= DENSE_MAX_ENTRIES`, streamed otherwise.
    pub fn new(kernel: &Kernel, x: &[f64], d: usize) -> Result<Self> {
        check(x, x, &vec![0.0; x.len() / d.max(1)], d, 1)?;
        let n = x.len() / d;
        if n * n <= Self::DENSE_MAX_ENTRIES {
            Ok(GramOp::Lazy {
                kernel: *kernel,
                x: x.to_vec(),
                d,
                dense: OnceLock::new(),
                products: AtomicUsize::new(0),
            })
        } else {
            Ok(GramOp::Streamed {
                kernel: *kernel,
                x: x.to_vec(),
                d,
            })
        }
    }
    /// The materialised matrix, built now.
    pub fn dense(kernel: &Kernel, x: &[f64], d: usize) -> Result<Self> {
        Ok(GramOp::Dense(gram(kernel, x, x, d)?))
    }
    /// Force the matrix-free form.
    pub fn streamed(kernel: &Kernel, x: &[f64], d: usize) -> Self {
        GramOp::Streamed {
            kernel: *kernel,
            x: x.to_vec(),
            d,
        }
    }
}

fn dense_apply(g: &Array2<f64>, v: &[f64], out: &mut [f64]) {
    let m = g.ncols();
    let gs = g.as_slice().expect("standard layout");
    // A sparse vector (a few IFT steps make the weights sparse): the sum of its columns
    // (rows: the matrix is symmetric), `n x nnz` instead of `n x n`.
    let nnz = v.iter().filter(|a| **a != 0.0).count();
    if nnz * 4 < m && g.nrows() == m {
        let terms: Vec<(f64, &[f64])> = v
            .iter()
            .enumerate()
            .filter(|(_, a)| **a != 0.0)
            .map(|(j, a)| (*a, &gs[j * m..(j + 1) * m]))
            .collect();
        out.fill(0.0);
        crate::linalg::axpy_columns(out, &terms, 0);
        return;
    }
    out.par_iter_mut().enumerate().for_each(|(i, o)| {
        let row = &gs[i * m..(i + 1) * m];
        *o = row.iter().zip(v).map(|(a, b)| a * b).sum();
    });
}

fn streamed_apply(kernel: &Kernel, x: &[f64], d: usize, v: &[f64], out: &mut [f64]) {
    // Zero-weight sources contribute nothing: skip them when they are many (sparse
    // weights after a few IFT steps make `K w` an `n x |supp w|` sum).
    let nnz = v.iter().filter(|a| **a != 0.0).count();
    let s = if nnz * 4 < v.len() {
        let mut ys = Vec::with_capacity(nnz * d);
        let mut vs = Vec::with_capacity(nnz);
        for (j, &a) in v.iter().enumerate() {
            if a != 0.0 {
                ys.extend_from_slice(&x[j * d..(j + 1) * d]);
                vs.push(a);
            }
        }
        kernel_sums(kernel, x, &ys, &vs, d)
    } else {
        kernel_sums(kernel, x, x, v, d)
    };
    out.copy_from_slice(&s.expect("shapes checked at construction"));
}

impl LinOp for GramOp {
    fn dim(&self) -> usize {
        match self {
            GramOp::Dense(g) => g.nrows(),
            GramOp::Streamed { x, d, .. } | GramOp::Lazy { x, d, .. } => x.len() / d,
        }
    }
    fn apply(&self, v: &[f64], out: &mut [f64]) {
        match self {
            GramOp::Dense(g) => dense_apply(g, v, out),
            GramOp::Streamed { kernel, x, d } => streamed_apply(kernel, x, *d, v, out),
            GramOp::Lazy {
                kernel,
                x,
                d,
                dense,
                products,
            } => {
                if let Some(g) = dense.get() {
                    return dense_apply(g, v, out);
                }
                if products.fetch_add(1, Ordering::Relaxed) >= 2 {
                    let g = dense.get_or_init(|| {
                        gram(kernel, x, x, *d).expect("shapes checked at construction")
                    });
                    dense_apply(g, v, out)
                } else {
                    streamed_apply(kernel, x, *d, v, out)
                }
            }
        }
    }
    fn column(&self, j: usize, out: &mut [f64]) {
        match self {
            GramOp::Dense(g) => out.copy_from_slice(g.row(j).as_slice().expect("standard layout")),
            GramOp::Streamed { kernel, x, d } | GramOp::Lazy { kernel, x, d, .. } => {
                if let GramOp::Lazy { dense, .. } = self {
                    if let Some(g) = dense.get() {
                        out.copy_from_slice(g.row(j).as_slice().expect("standard layout"));
                        return;
                    }
                }
                kernel_column(kernel, x, &x[j * d..(j + 1) * d], *d, out)
                    .expect("shapes checked at construction")
            }
        }
    }
    fn diagonal(&self, out: &mut [f64]) {
        match self {
            GramOp::Dense(g) => out.iter_mut().enumerate().for_each(|(i, o)| *o = g[[i, i]]),
            GramOp::Streamed { kernel, .. } | GramOp::Lazy { kernel, .. } => {
                out.fill(kernel.diag())
            }
        }
    }
}
