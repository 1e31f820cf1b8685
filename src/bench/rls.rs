//! The robust least-squares comparison of kernel DRO (Zhu, Jitkrittum, Diehl, Schölkopf,
//! AISTATS 2021, section 5) on [`RobustLeastSquares`]: loss `l(theta, xi) = ||(A + xi B)
//! theta - b||^2`, `N` training draws `xi ~ U[-0.5, 0.5]`, test draws `xi ~ (1 + Delta)
//! U[-0.5, 0.5]`.
//!
//! - ERM: the sample-average solution.
//! - Worst-case robust optimisation (RO) over `Xi = [-0.5, 0.5]`: `min_theta max_{xi in Xi}
//!   l(theta, xi)`. `l` is convex in `xi`, so the max is at an endpoint, and the problem is
//!   `min_theta max_w [w l(theta, -0.5) + (1 - w) l(theta, 0.5)]`, solved by a golden-section
//!   search on the concave dual function of `w`.
//! - Kernel DRO (penalty form) with the worst case supported on the data and a grid of
//!   `Xi`: `min_theta max_{w in simplex} sum_j w_j l(theta, z_j) - lambda ||sum_j (w_j -
//!   w0_j) phi(z_j)||_H^2`, with a Gaussian kernel and `w0` uniform on the data. The inner
//!   problem is a concave quadratic on the simplex (projected gradient ascent); the outer
//!   is a damped best response (a Newton step on the convex Danskin envelope).

use super::generators::RobustLeastSquares;
use crate::error::Result;
use ndarray::Array2;
use serde::Serialize;

/// One point of the loss-against-Delta curve.
#[derive(Debug, Clone, Serialize)]
pub struct RlsPoint {
    /// The shift `Delta`.
    pub delta: f64,
    /// Mean test loss of ERM.
    pub erm: f64,
    /// Mean test loss of worst-case RO.
    pub ro: f64,
    /// Mean test loss of kernel DRO, one per penalty.
    pub kdro: Vec<f64>,
}

/// Minimiser of `sum_k w_k l(theta, xi_k)` (weighted normal equations).
pub fn weighted_ls(p: &RobustLeastSquares, xis: &[f64], w: &[f64]) -> Result<Vec<f64>> {
    let d = p.a.ncols();
    let mut h = Array2::<f64>::zeros((d, d));
    let mut r = vec![0.0; d];
    for (&xi, &wk) in xis.iter().zip(w) {
        if wk == 0.0 {
            continue;
        }
        let m = &p.a + &(&p.b_mat * xi);
        h = h + m.t().dot(&m) * wk;
        let mb = m.t().dot(&p.b);
        for j in 0..d {
            r[j] += wk * mb[j];
        }
    }
    for j in 0..d {
        h[[j, j]] += 1e-10;
    }
    crate::linalg::solve(&h, &r)
}

/// Worst-case RO over `[-half, half]`.
pub fn robust_opt(p: &RobustLeastSquares, half: f64) -> Result<Vec<f64>> {
    let ends = [-half, half];
    let g = |w: f64| -> Result<(f64, Vec<f64>)> {
        let th = weighted_ls(p, &ends, &[w, 1.0 - w])?;
        Ok((w * p.loss(&th, -half) + (1.0 - w) * p.loss(&th, half), th))
    };
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    let phi = 0.5 * (5f64.sqrt() - 1.0);
    for _ in 0..60 {
        let a = hi - phi * (hi - lo);
        let b = lo + phi * (hi - lo);
        if g(a)?.0 > g(b)?.0 {
            hi = b;
        } else {
            lo = a;
        }
    }
    Ok(g(0.5 * (lo + hi))?.1)
}

fn project_simplex(v: &mut [f64]) {
    let mut u: Vec<f64> = v.to_vec();
    u.sort_by(|a, b| b.total_cmp(a));
    let (mut css, mut tau) = (0.0, 0.0);
    for (i, &ui) in u.iter().enumerate() {
        css += ui;
        let t = (css - 1.0) / (i + 1) as f64;
        if ui - t > 0.0 {
            tau = t;
        }
    }
    for x in v.iter_mut() {
        *x = (*x - tau).max(0.0);
    }
}

/// Kernel DRO (penalty `lambda`, Gaussian kernel of bandwidth `sigma`) with support the
/// training draws plus `grid` points on `[-half, half]`; returns `theta`.
pub fn kernel_dro(
    p: &RobustLeastSquares,
    train: &[f64],
    half: f64,
    grid: usize,
    lambda: f64,
    sigma: f64,
) -> Result<Vec<f64>> {
    let mut z: Vec<f64> = train.to_vec();
    for k in 0..grid {
        z.push(-half + 2.0 * half * k as f64 / (grid - 1).max(1) as f64);
    }
    let m = z.len();
    let n = train.len() as f64;
    let w0: Vec<f64> = (0..m)
        .map(|j| if j < train.len() { 1.0 / n } else { 0.0 })
        .collect();
    let k: Vec<f64> = (0..m * m)
        .map(|ij| {
            let (i, j) = (ij / m, ij % m);
            (-(z[i] - z[j]).powi(2) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    // the inner gradient is 2 lambda lambda_max(K)-Lipschitz, lambda_max(K) <= m
    let inner_step = 1.0 / (2.0 * lambda * m as f64);
    let mut theta = p.erm(train)?;
    let mut w = w0.clone();
    let d = theta.len();
    for _ in 0..200 {
        let l: Vec<f64> = z.iter().map(|&xi| p.loss(&theta, xi)).collect();
        for _ in 0..200 {
            let diff: Vec<f64> = w.iter().zip(&w0).map(|(a, b)| a - b).collect();
            let mut g = l.clone();
            for i in 0..m {
                let kd: f64 = (0..m).map(|j| k[i * m + j] * diff[j]).sum();
                g[i] -= 2.0 * lambda * kd;
            }
            for i in 0..m {
                w[i] += inner_step * g[i];
            }
            project_simplex(&mut w);
        }
        // damped best response: theta <- theta + 1/2 (argmin_theta sum_j w_j l_j - theta),
        // a Newton step on the Danskin envelope at the current worst case
        let br = weighted_ls(p, &z, &w)?;
        for q in 0..d {
            theta[q] += 0.5 * (br[q] - theta[q]);
        }
    }
    Ok(theta)
}

/// The full comparison: `n_train` training draws, `n_test` test draws for each Delta in
/// `deltas`; kernel DRO at each penalty of `lambdas`.
pub fn compare(
    seed: u64,
    n_train: usize,
    n_test: usize,
    deltas: &[f64],
    lambdas: &[f64],
) -> Result<Vec<RlsPoint>> {
    let p = RobustLeastSquares::new(seed, 1.0);
    let train = RobustLeastSquares::sample_xi(n_train, 0.0, seed + 1);
    let erm = p.erm(&train)?;
    let ro = robust_opt(&p, 0.5)?;
    let kd: Vec<Vec<f64>> = lambdas
        .iter()
        .map(|&l| kernel_dro(&p, &train, 0.5, 21, l, 0.2))
        .collect::<Result<_>>()?;
    Ok(deltas
        .iter()
        .enumerate()
        .map(|(k, &delta)| {
            let xs = RobustLeastSquares::sample_xi(n_test, delta, seed + 100 + k as u64);
            RlsPoint {
                delta,
                erm: p.mean_loss(&erm, &xs),
                ro: p.mean_loss(&ro, &xs),
                kdro: kd.iter().map(|t| p.mean_loss(t, &xs)).collect(),
            }
        })
        .collect())
}
