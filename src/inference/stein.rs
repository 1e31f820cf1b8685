//! The Stein kernel, the kernel Stein discrepancy (KSD) and the energy `1/2 KSD^2(mu | pi)`.
//!
//! For a radial base kernel `k(x, y) = phi(r2)`, `r2 = |u|^2`, `u = x - y`, and the target
//! score `s = grad log pi`, the Langevin Stein kernel (Liu, Lee, Jordan 2016; Chwialkowski
//! et al. 2016) is
//!
//! `k_pi(x, y) = s(x)'s(y) k + s(x)'grad_y k + grad_x k's(y) + tr(grad_x grad_y k)`
//! `           = phi s_x's_y - 2 phi' u'(s_x - s_y) - 4 phi'' r2 - 2 d phi'`.
//!
//! `int k_pi(x, z) dpi(z) = 0`, so `KSD^2(mu | pi) = sum_ij w_i w_j k_pi(x_i, x_j)` is the
//! squared MMD between `mu` and `pi` in the Stein RKHS and needs no samples of `pi`.
//! Its gradient in `x`, with the Hessian `H_x = grad^2 log pi(x)`, is
//!
//! `grad_x k_pi(x, y) = H_x (phi s_y - 2 phi' u) + 2 phi' (s_x's_y) u - 4 phi'' (u'(s_x - s_y)) u
//!                      - 2 phi' (s_x - s_y) - 8 phi''' r2 u - (8 + 4 d) phi'' u`,
//!
//! so the first variation's gradient `sum_j w_j grad_x k_pi(x, x_j)` costs one
//! Hessian-vector product per evaluation point ([`SteinTarget::hvp`]).
//!
//! The energy [`KsdEnergy`] `F(mu) = 1/2 KSD^2(mu | pi)` has first variation
//! `g(x) = sum_i w_i k_pi(x, x_i)`; its Wasserstein flow is KSD descent (Korba, Aubin-Frankowski,
//! Majewski, Ablin 2021), the kernelised inclusive-KL flow with the Stein kernel \[IKL]; it
//! is quadratic in the weights with `H = M = K_pi` (the Stein Gram matrix) and `b = 0`, so the
//! exact MMD-prox step of the core is a proximal step towards the KSD-optimal simplex
//! weights of black-box importance sampling (Liu, Lee 2017).
//!
//! Base kernels: Gaussian and inverse multiquadric (IMQ, `(c^2 + r2)^(-1/2)`, the choice
//! of Gorham and Mackey 2017 for which KSD controls weak convergence). The Laplace kernel
//! is not twice differentiable at 0 and is rejected.

use super::targets::SteinTarget;
use crate::energy::{Energy, FirstVariation, WeightQuadratic};
use crate::error::{Error, Result};
use crate::kernel::{GramOp, Kernel, KernelKind};
use crate::linalg::{dot, LinOp};
use crate::measure::target::scores;
use crate::measure::Particles;
use ndarray::Array2;
use rayon::prelude::*;
use std::sync::Arc;

const ROW_BLOCK: usize = 8;

/// The Stein kernel built on a radial base kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SteinKernel {
    /// The base kernel (Gaussian or IMQ).
    pub base: Kernel,
}

impl SteinKernel {
    /// The Stein kernel of `base`; errors for the Laplace kernel (not twice differentiable).
    pub fn new(base: Kernel) -> Result<Self> {
        if base.kind == KernelKind::Laplace {
            return Err(Error::param(
                "stein-kernel",
                "laplace",
                "the Stein kernel needs a twice differentiable base kernel: use gaussian or imq",
            ));
        }
        Ok(SteinKernel { base })
    }

    /// `(phi, phi', phi'', phi''')` of the base profile at `r2`.
    #[inline(always)]
    pub fn derivs(&self, r2: f64) -> (f64, f64, f64, f64) {
        let h = self.base.h;
        match self.base.kind {
            KernelKind::Gaussian => {
                let a = 1.0 / (2.0 * h * h);
                let p = (-a * r2).exp();
                (p, -a * p, a * a * p, -a * a * a * p)
            }
            _ => {
                // IMQ (Laplace is rejected at construction)
                let q = h * h + r2;
                let p = 1.0 / q.sqrt();
                let p3 = p / q;
                let p5 = p3 / q;
                let p7 = p5 / q;
                (p, -0.5 * p3, 0.75 * p5, -1.875 * p7)
            }
        }
    }

    /// `k_pi(x, y)` given the scores `sx = s(x)`, `sy = s(y)`.
    pub fn eval(&self, x: &[f64], sx: &[f64], y: &[f64], sy: &[f64]) -> f64 {
        let d = x.len();
        let mut r2 = 0.0;
        let mut us = 0.0;
        let mut ss = 0.0;
        for k in 0..d {
            let u = x[k] - y[k];
            r2 += u * u;
            us += u * (sx[k] - sy[k]);
            ss += sx[k] * sy[k];
        }
        let (p, p1, p2, _) = self.derivs(r2);
        p * ss - 2.0 * p1 * us - 4.0 * p2 * r2 - 2.0 * d as f64 * p1
    }

    /// `k_pi(x, x) = phi(0) |s(x)|^2 - 2 d phi'(0)`.
    pub fn diag(&self, sx: &[f64]) -> f64 {
        let (p, p1, _, _) = self.derivs(0.0);
        p * dot(sx, sx) - 2.0 * sx.len() as f64 * p1
    }
}

fn check_rows(a: &[f64], sa: &[f64], d: usize) -> Result<usize> {
    if d == 0 || !a.len().is_multiple_of(d) || sa.len() != a.len() {
        return Err(Error::Shape(format!(
            "{} coordinates with {} score entries are not rows of d = {d}",
            a.len(),
            sa.len()
        )));
    }
    Ok(a.len() / d)
}

/// Stein kernel sums `g_i = sum_j w_j k_pi(x_i, y_j)` for evaluation points `x` with
/// scores `sx` and sources `y` with scores `sy` (all row-major, `d` columns). Streamed
/// and parallel: no `n x m` matrix is formed.
pub fn stein_sums(
    sk: &SteinKernel,
    x: &[f64],
    sx: &[f64],
    y: &[f64],
    sy: &[f64],
    w: &[f64],
    d: usize,
) -> Result<Vec<f64>> {
    let n = check_rows(x, sx, d)?;
    let m = check_rows(y, sy, d)?;
    if w.len() != m {
        return Err(Error::Shape(format!("{} weights for {m} sources", w.len())));
    }
    let mut out = vec![0.0; n];
    out.par_chunks_mut(ROW_BLOCK)
        .enumerate()
        .for_each(|(b, chunk)| {
            for (r, o) in chunk.iter_mut().enumerate() {
                let i = b * ROW_BLOCK + r;
                let xi = &x[i * d..(i + 1) * d];
                let si = &sx[i * d..(i + 1) * d];
                let mut acc = 0.0;
                for j in 0..m {
                    if w[j] == 0.0 {
                        continue;
                    }
                    acc += w[j] * sk.eval(xi, si, &y[j * d..(j + 1) * d], &sy[j * d..(j + 1) * d]);
                }
                *o = acc;
            }
        });
    Ok(out)
}

/// Values `g_i = sum_j w_j k_pi(x_i, y_j)` and gradients `grad g(x_i)` (row-major `n x d`),
/// using one Hessian-vector product of `target` per evaluation point.
#[allow(clippy::too_many_arguments)]
pub fn stein_sums_with_grad(
    sk: &SteinKernel,
    target: &dyn SteinTarget,
    x: &[f64],
    sx: &[f64],
    y: &[f64],
    sy: &[f64],
    w: &[f64],
    d: usize,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = check_rows(x, sx, d)?;
    let m = check_rows(y, sy, d)?;
    if w.len() != m {
        return Err(Error::Shape(format!("{} weights for {m} sources", w.len())));
    }
    let mut vals = vec![0.0; n];
    let mut grads = vec![0.0; n * d];
    let df = d as f64;
    vals.par_chunks_mut(ROW_BLOCK)
        .zip(grads.par_chunks_mut(ROW_BLOCK * d))
        .enumerate()
        .for_each(|(b, (vc, gc))| {
            let mut a = vec![0.0; d];
            let mut ha = vec![0.0; d];
            let mut u = vec![0.0; d];
            for (r, o) in vc.iter_mut().enumerate() {
                let i = b * ROW_BLOCK + r;
                let xi = &x[i * d..(i + 1) * d];
                let si = &sx[i * d..(i + 1) * d];
                let g = &mut gc[r * d..(r + 1) * d];
                a.iter_mut().for_each(|v| *v = 0.0);
                let mut acc = 0.0;
                for j in 0..m {
                    let wj = w[j];
                    if wj == 0.0 {
                        continue;
                    }
                    let yj = &y[j * d..(j + 1) * d];
                    let sj = &sy[j * d..(j + 1) * d];
                    let mut r2 = 0.0;
                    let mut us = 0.0;
                    let mut ss = 0.0;
                    for k in 0..d {
                        u[k] = xi[k] - yj[k];
                        r2 += u[k] * u[k];
                        us += u[k] * (si[k] - sj[k]);
                        ss += si[k] * sj[k];
                    }
                    let (p, p1, p2, p3) = sk.derivs(r2);
                    acc += wj * (p * ss - 2.0 * p1 * us - 4.0 * p2 * r2 - 2.0 * df * p1);
                    // coefficient of u in B
                    let cu = 2.0 * p1 * ss - 4.0 * p2 * us - 8.0 * p3 * r2 - (8.0 + 4.0 * df) * p2;
                    for k in 0..d {
                        a[k] += wj * (p * sj[k] - 2.0 * p1 * u[k]);
                        g[k] += wj * (cu * u[k] - 2.0 * p1 * (si[k] - sj[k]));
                    }
                }
                target.hvp(xi, &a, &mut ha);
                for k in 0..d {
                    g[k] += ha[k];
                }
                *o = acc;
            }
        });
    Ok((vals, grads))
}

/// The Stein Gram matrix `[k_pi(x_i, x_j)]` (`n x n`, dense).
pub fn stein_gram(sk: &SteinKernel, x: &[f64], s: &[f64], d: usize) -> Result<Array2<f64>> {
    let n = check_rows(x, s, d)?;
    let mut g = Array2::<f64>::zeros((n, n));
    g.as_slice_mut()
        .expect("standard layout")
        .par_chunks_mut(n.max(1))
        .enumerate()
        .for_each(|(i, row)| {
            let xi = &x[i * d..(i + 1) * d];
            let si = &s[i * d..(i + 1) * d];
            for (j, o) in row.iter_mut().enumerate() {
                *o = sk.eval(xi, si, &x[j * d..(j + 1) * d], &s[j * d..(j + 1) * d]);
            }
        });
    Ok(g)
}

/// `KSD^2(mu | pi)`, V-statistic `sum_ij w_i w_j k_pi(x_i, x_j)` (weights used as given).
pub fn ksd2_v(sk: &SteinKernel, x: &[f64], s: &[f64], w: &[f64], d: usize) -> Result<f64> {
    let g = stein_sums(sk, x, s, x, s, w, d)?;
    Ok(dot(w, &g))
}

/// `KSD^2(mu | pi)`, U-statistic: the diagonal `i = j` dropped and the rest renormalised,
/// `(w'K_pi w - sum_i w_i^2 k_pi(x_i, x_i)) / (1 - sum_i w_i^2)` for weights summing to
/// one; with equal weights `1/(n(n-1)) sum_{i != j} k_pi(x_i, x_j)`, an unbiased
/// estimate of `KSD^2` for i.i.d. points (zero in expectation at the target, may be
/// negative).
pub fn ksd2_u(sk: &SteinKernel, x: &[f64], s: &[f64], w: &[f64], d: usize) -> Result<f64> {
    let n = check_rows(x, s, d)?;
    let sw2: f64 = w.iter().map(|a| a * a).sum();
    if n < 2 || sw2 >= 1.0 - 1e-15 {
        return Err(Error::param(
            "particles",
            n,
            "the KSD U-statistic needs at least two points with positive weight",
        ));
    }
    let v = ksd2_v(sk, x, s, w, d)?;
    let dg: f64 = (0..n)
        .map(|i| w[i] * w[i] * sk.diag(&s[i * d..(i + 1) * d]))
        .sum();
    Ok((v - dg) / (1.0 - sw2))
}

/// The Stein Gram operator on fixed atoms: dense when small, streamed otherwise.
pub enum SteinGramOp {
    /// The materialised matrix.
    Dense(Array2<f64>),
    /// Matrix-free sums.
    Streamed {
        /// The Stein kernel.
        sk: SteinKernel,
        /// Atoms, row-major.
        x: Vec<f64>,
        /// Their scores, row-major.
        s: Vec<f64>,
        /// Dimension.
        d: usize,
    },
}

impl SteinGramOp {
    /// The operator `v -> K_pi v` on atoms `x` with scores `s`.
    pub fn new(sk: &SteinKernel, x: &[f64], s: &[f64], d: usize) -> Result<Self> {
        let n = check_rows(x, s, d)?;
        if n * n <= GramOp::DENSE_MAX_ENTRIES {
            Ok(SteinGramOp::Dense(stein_gram(sk, x, s, d)?))
        } else {
            Ok(SteinGramOp::Streamed {
                sk: *sk,
                x: x.to_vec(),
                s: s.to_vec(),
                d,
            })
        }
    }
}

impl LinOp for SteinGramOp {
    fn dim(&self) -> usize {
        match self {
            SteinGramOp::Dense(g) => g.nrows(),
            SteinGramOp::Streamed { x, d, .. } => x.len() / d,
        }
    }
    fn apply(&self, v: &[f64], out: &mut [f64]) {
        match self {
            SteinGramOp::Dense(g) => {
                let m = g.ncols();
                let gs = g.as_slice().expect("standard layout");
                out.par_iter_mut().enumerate().for_each(|(i, o)| {
                    *o = dot(&gs[i * m..(i + 1) * m], v);
                });
            }
            SteinGramOp::Streamed { sk, x, s, d } => {
                let r = stein_sums(sk, x, s, x, s, v, *d).expect("shapes checked at construction");
                out.copy_from_slice(&r);
            }
        }
    }
    fn column(&self, j: usize, out: &mut [f64]) {
        match self {
            SteinGramOp::Dense(g) => {
                out.copy_from_slice(g.row(j).as_slice().expect("standard layout"))
            }
            SteinGramOp::Streamed { sk, x, s, d } => {
                let (xj, sj) = (&x[j * d..(j + 1) * d], &s[j * d..(j + 1) * d]);
                for (i, o) in out.iter_mut().enumerate() {
                    *o = sk.eval(&x[i * d..(i + 1) * d], &s[i * d..(i + 1) * d], xj, sj);
                }
            }
        }
    }
    fn diagonal(&self, out: &mut [f64]) {
        match self {
            SteinGramOp::Dense(g) => out.iter_mut().enumerate().for_each(|(i, o)| *o = g[[i, i]]),
            SteinGramOp::Streamed { sk, x, s, d } => {
                for (i, o) in out.iter_mut().enumerate() {
                    let (xi, si) = (&x[i * d..(i + 1) * d], &s[i * d..(i + 1) * d]);
                    *o = sk.eval(xi, si, xi, si);
                }
            }
        }
    }
}

/// The energy `F(mu) = 1/2 KSD^2(mu | pi)` (V-statistic) for a density target.
///
/// First variation `g(x) = sum_i w_i k_pi(x, x_i)` and its gradient; weight-quadratic
/// structure `H = M = K_pi`, `b = 0`, `c = 0`. [`Energy::mmd2_to_target`] reports
/// `KSD^2 = MMD^2` in the Stein RKHS (the trace's `mmd2` column).
///
/// Scores are checked at every evaluation: a NaN or infinite score stops the run with
/// [`Error::Diverged`] naming the particle; the energy does not know the iteration, so it
/// reports step 0 and the driver ([`crate::flow::Executor`]) stamps the iteration it was
/// running on the error.
pub struct KsdEnergy {
    /// The Stein kernel.
    pub stein: SteinKernel,
    /// The target.
    pub target: Arc<dyn SteinTarget>,
}

impl KsdEnergy {
    /// The energy for `target` with the Stein kernel of `base`.
    pub fn new(base: Kernel, target: Arc<dyn SteinTarget>) -> Result<Self> {
        Ok(KsdEnergy {
            stein: SteinKernel::new(base)?,
            target,
        })
    }
    fn check_dim(&self, mu: &Particles) -> Result<()> {
        if mu.dim() != self.target.dim() {
            return Err(Error::Shape(format!(
                "particles have d = {}, target {} has d = {}",
                mu.dim(),
                self.target.name(),
                self.target.dim()
            )));
        }
        Ok(())
    }
    /// Scores of the target at the rows of `x`, with the divergence check.
    pub fn scores(&self, x: &[f64]) -> Result<Vec<f64>> {
        let ld = super::targets::AsLogDensity(self.target.clone());
        scores(&ld, x, Some(0))
    }
    /// `KSD^2(mu | pi)` (V-statistic).
    pub fn ksd2(&self, mu: &Particles) -> Result<f64> {
        self.check_dim(mu)?;
        let s = self.scores(mu.x_slice())?;
        Ok(ksd2_v(&self.stein, mu.x_slice(), &s, &mu.weights(), mu.dim())?.max(0.0))
    }
}

impl Energy for KsdEnergy {
    fn name(&self) -> String {
        "ksd".into()
    }
    fn value(&self, mu: &Particles) -> Result<f64> {
        Ok(0.5 * self.ksd2(mu)?)
    }
    fn first_variation_at(
        &self,
        mu: &Particles,
        at: &[f64],
        with_grad: bool,
    ) -> Result<FirstVariation> {
        self.check_dim(mu)?;
        let d = mu.dim();
        let sx = self.scores(mu.x_slice())?;
        let same = std::ptr::eq(at.as_ptr(), mu.x_slice().as_ptr()) && at.len() == sx.len();
        let sa = if same { sx.clone() } else { self.scores(at)? };
        let w = mu.weights();
        if with_grad {
            let (g, grad) = stein_sums_with_grad(
                &self.stein,
                self.target.as_ref(),
                at,
                &sa,
                mu.x_slice(),
                &sx,
                &w,
                d,
            )?;
            if let Some(k) = grad.iter().position(|v| !v.is_finite()) {
                return Err(Error::Diverged {
                    step: 0,
                    detail: format!(
                        "KSD force on particle {} is {} (target {})",
                        k / d,
                        grad[k],
                        self.target.name()
                    ),
                });
            }
            Ok(FirstVariation {
                g,
                grad: Some(grad),
            })
        } else {
            let g = stein_sums(&self.stein, at, &sa, mu.x_slice(), &sx, &w, d)?;
            Ok(FirstVariation { g, grad: None })
        }
    }
    fn mmd2_to_target(&self, mu: &Particles) -> Option<Result<f64>> {
        Some(self.ksd2(mu))
    }
    fn weight_quadratic(&self, mu: &Particles) -> Option<Result<WeightQuadratic>> {
        Some((|| {
            self.check_dim(mu)?;
            let s = self.scores(mu.x_slice())?;
            let op: Arc<dyn LinOp + Send> =
                Arc::new(SteinGramOp::new(&self.stein, mu.x_slice(), &s, mu.dim())?);
            Ok(WeightQuadratic {
                h: op.clone(),
                h_scale: 1.0,
                b: vec![0.0; mu.len()],
                c: 0.0,
                metric: op,
            })
        })())
    }
}
