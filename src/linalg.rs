//! Small dense linear algebra used by the flows: linear operators, power iteration,
//! Euclidean projection onto the simplex, LU solves and log-sum-exp.

use crate::error::{Error, Result};
use ndarray::Array2;

/// A symmetric linear operator `v -> A v` on `R^n` (a Gram matrix, dense or matrix-free).
pub trait LinOp: Sync {
    /// The dimension `n`.
    fn dim(&self) -> usize;
    /// `out = A v`.
    fn apply(&self, v: &[f64], out: &mut [f64]);
    /// Column `j` of `A` (= row `j`, `A` being symmetric). The default applies `A` to the
    /// unit vector `e_j` (a full product); operators that can produce one column in `O(n)`
    /// override it (the active-set QP solver asks for columns one at a time).
    fn column(&self, j: usize, out: &mut [f64]) {
        let mut e = vec![0.0; self.dim()];
        e[j] = 1.0;
        self.apply(&e, out);
    }
    /// The diagonal of `A`. The default takes it from the columns (`n` products);
    /// operators with a cheap diagonal override it.
    fn diagonal(&self, out: &mut [f64]) {
        let n = self.dim();
        let mut col = vec![0.0; n];
        for (j, o) in out.iter_mut().enumerate().take(n) {
            self.column(j, &mut col);
            *o = col[j];
        }
    }
}

impl LinOp for Array2<f64> {
    fn dim(&self) -> usize {
        self.nrows()
    }
    fn apply(&self, v: &[f64], out: &mut [f64]) {
        for (o, row) in out.iter_mut().zip(self.outer_iter()) {
            *o = row.iter().zip(v).map(|(a, b)| a * b).sum();
        }
    }
    fn column(&self, j: usize, out: &mut [f64]) {
        for (o, a) in out.iter_mut().zip(self.row(j)) {
            *o = *a;
        }
    }
    fn diagonal(&self, out: &mut [f64]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = self[[i, i]];
        }
    }
}

/// Dot product.
#[inline]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Largest eigenvalue of a symmetric positive semi-definite operator by power iteration
/// (`iters` iterations from the all-ones vector plus a deterministic perturbation),
/// returned with a 1% safety margin so it can serve as a Lipschitz constant.
pub fn power_iteration(op: &dyn LinOp, iters: usize) -> f64 {
    let n = op.dim();
    if n == 0 {
        return 0.0;
    }
    let mut v: Vec<f64> = (0..n)
        .map(|i| 1.0 + 0.01 * ((i * 7919 % 101) as f64 / 101.0))
        .collect();
    let mut av = vec![0.0; n];
    let mut lam = 0.0;
    for _ in 0..iters.max(1) {
        let nv = dot(&v, &v).sqrt();
        if nv == 0.0 {
            return 0.0;
        }
        v.iter_mut().for_each(|a| *a /= nv);
        op.apply(&v, &mut av);
        let new = dot(&v, &av);
        std::mem::swap(&mut v, &mut av);
        if (new - lam).abs() <= 1e-6 * new.abs() {
            lam = new;
            break;
        }
        lam = new;
    }
    lam * 1.01
}

/// Euclidean projection of `v` onto the probability simplex
/// `{w : w_i >= 0, sum w_i = 1}` by sorting (Held et al. 1974; Duchi et al. 2008):
/// `w_i = max(v_i - theta, 0)` with `theta` the threshold that makes the sum one.
pub fn project_simplex(v: &[f64]) -> Vec<f64> {
    let mut u: Vec<f64> = v.to_vec();
    u.sort_unstable_by(|a, b| b.total_cmp(a));
    let mut css = 0.0;
    let mut theta = 0.0;
    for (i, &ui) in u.iter().enumerate() {
        css += ui;
        let t = (css - 1.0) / (i as f64 + 1.0);
        if ui - t > 0.0 {
            theta = t;
        }
    }
    v.iter().map(|&a| (a - theta).max(0.0)).collect()
}

/// `log sum_i exp(a_i)`, stable; `-inf` for an empty slice or all `-inf`.
pub fn logsumexp(a: &[f64]) -> f64 {
    let m = a.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + a.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Solve `A x = b` for a square dense `A` by LU with partial pivoting. Errors when `A`
/// is numerically singular.
pub fn solve(a: &Array2<f64>, b: &[f64]) -> Result<Vec<f64>> {
    let n = a.nrows();
    if a.ncols() != n || b.len() != n {
        return Err(Error::Shape(format!(
            "solve: A is {}x{}, b has {}",
            a.nrows(),
            a.ncols(),
            b.len()
        )));
    }
    let mut m = a.clone();
    let mut x = b.to_vec();
    let scale = m
        .iter()
        .fold(0.0f64, |s, v| s.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    for c in 0..n {
        let (p, pv) = (c..n)
            .map(|r| (r, m[[r, c]].abs()))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("non-empty");
        if pv <= 1e-14 * scale {
            return Err(Error::Other(format!(
                "solve: matrix is singular at column {c}"
            )));
        }
        if p != c {
            for j in 0..n {
                m.swap([p, j], [c, j]);
            }
            x.swap(p, c);
        }
        let piv = m[[c, c]];
        for r in (c + 1)..n {
            let f = m[[r, c]] / piv;
            if f != 0.0 {
                for j in c..n {
                    m[[r, j]] -= f * m[[c, j]];
                }
                x[r] -= f * x[c];
            }
        }
    }
    for c in (0..n).rev() {
        let mut s = x[c];
        for j in (c + 1)..n {
            s -= m[[c, j]] * x[j];
        }
        x[c] = s / m[[c, c]];
    }
    Ok(x)
}

/// Cholesky factor `L` (lower triangular, `A = L L'`) of a symmetric positive-definite
/// matrix. Errors when `A` is not positive definite.
pub fn cholesky(a: &Array2<f64>) -> Result<Array2<f64>> {
    let n = a.nrows();
    if a.ncols() != n {
        return Err(Error::Shape(format!(
            "cholesky of a {}x{} matrix",
            n,
            a.ncols()
        )));
    }
    let mut l = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[[i, j]];
            for k in 0..j {
                s -= l[[i, k]] * l[[j, k]];
            }
            if i == j {
                if !(s > 0.0) {
                    return Err(Error::Other(format!(
                        "matrix is not positive definite (pivot {i} = {s})"
                    )));
                }
                l[[i, i]] = s.sqrt();
            } else {
                l[[i, j]] = s / l[[j, j]];
            }
        }
    }
    Ok(l)
}

/// Solve `L z = b` for lower-triangular `L`.
pub fn solve_lower(l: &Array2<f64>, b: &[f64]) -> Vec<f64> {
    let n = b.len();
    let mut z = vec![0.0; n];
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[[i, k]] * z[k];
        }
        z[i] = s / l[[i, i]];
    }
    z
}

/// Solve `L' z = b` for lower-triangular `L`.
pub fn solve_upper_t(l: &Array2<f64>, b: &[f64]) -> Vec<f64> {
    let n = b.len();
    let mut z = vec![0.0; n];
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in (i + 1)..n {
            s -= l[[k, i]] * z[k];
        }
        z[i] = s / l[[i, i]];
    }
    z
}

/// Solve `(A + lambda I) z = b` for a symmetric positive semi-definite operator `A` and
/// `lambda > 0` by conjugate gradients (matrix-free), to relative residual `tol`.
pub fn cg_solve(op: &dyn LinOp, lambda: f64, b: &[f64], tol: f64, max_iter: usize) -> Vec<f64> {
    let n = b.len();
    let mut z = vec![0.0; n];
    let mut r = b.to_vec();
    let mut p = r.clone();
    let mut ap = vec![0.0; n];
    let bnorm = dot(b, b).sqrt();
    if bnorm == 0.0 {
        return z;
    }
    let mut rr = dot(&r, &r);
    for _ in 0..max_iter {
        op.apply(&p, &mut ap);
        ap.iter_mut().zip(&p).for_each(|(a, pi)| *a += lambda * pi);
        let pap = dot(&p, &ap);
        if pap <= 0.0 {
            break;
        }
        let alpha = rr / pap;
        z.iter_mut().zip(&p).for_each(|(zi, pi)| *zi += alpha * pi);
        r.iter_mut().zip(&ap).for_each(|(ri, a)| *ri -= alpha * a);
        let rr_new = dot(&r, &r);
        if rr_new.sqrt() <= tol * bnorm {
            break;
        }
        let beta = rr_new / rr;
        p.iter_mut()
            .zip(&r)
            .for_each(|(pi, ri)| *pi = ri + beta * *pi);
        rr = rr_new;
    }
    z
}

/// `y_i += sum_k a_k x_k[off + i]` for every `i < y.len()` (a block of a sum of scaled
/// columns), compiled for AVX-512 / AVX2+FMA / baseline and chosen at run time. Each `y_i`
/// accumulates the terms in the given order, so the result does not depend on how the
/// caller splits `y` into blocks.
pub fn axpy_columns(y: &mut [f64], terms: &[(f64, &[f64])], off: usize) {
    #[inline(always)]
    fn body(y: &mut [f64], terms: &[(f64, &[f64])], off: usize) {
        let len = y.len();
        for (a, x) in terms {
            for (yi, xi) in y.iter_mut().zip(&x[off..off + len]) {
                *yi += a * xi;
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn b512(y: &mut [f64], terms: &[(f64, &[f64])], off: usize) {
            body(y, terms, off)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn b256(y: &mut [f64], terms: &[(f64, &[f64])], off: usize) {
            body(y, terms, off)
        }
        match crate::simd::SimdLevel::detect() {
            // SAFETY: the level was detected on this CPU.
            crate::simd::SimdLevel::Avx512 => return unsafe { b512(y, terms, off) },
            // SAFETY: as above.
            crate::simd::SimdLevel::Avx2Fma => return unsafe { b256(y, terms, off) },
            crate::simd::SimdLevel::Baseline => {}
        }
    }
    body(y, terms, off)
}
