//! Seeded synthetic tasks of the DRO literature, written to CSV on request.
//!
//! - [`circles`]: the 2-D task of Sinha, Namkoong, Duchi (ICLR 2018, WRM): `x ~ N(0, I_2)`,
//!   label 1 outside the circle of radius `sqrt 2` (the ring), 0 inside (the inner disk);
//!   for training, points with `||x||` in `(sqrt2 / 1.3, 1.3 sqrt2)` are removed (a gap).
//! - [`gaussian_shift`]: two Gaussian classes `N(-m, I)` and `N(m, I)` in `d` dimensions;
//!   the test set's features are shifted by `delta` (covariate shift) and scaled.
//! - [`subpopulation`]: each class is a mixture of a majority and a minority subgroup with
//!   a different decision boundary; the minority is rare in training and common in the
//!   shifted test sets (subpopulation shift).
//! - [`RobustLeastSquares`]: the kernel-DRO robust least-squares task (Zhu et al. 2021,
//!   after Boyd and Vandenberghe, section 6.4): loss `||(A + xi B) theta - b||^2`, training
//!   `xi ~ U[-0.5, 0.5]`, test `xi ~ (1 + Delta) U[-0.5, 0.5]`. `A`, `B`, `b` are drawn from
//!   a seeded Gaussian here (the paper used the textbook's data, which is not shipped).

use crate::error::Result;
use ndarray::{Array1, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use std::path::Path;

/// A labelled table: features `x` (`n x d`), labels `y`, and column names.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledData {
    /// Feature column names.
    pub columns: Vec<String>,
    /// Features.
    pub x: Array2<f64>,
    /// Labels (class indices as `f64`, or regression targets).
    pub y: Vec<f64>,
}

impl LabelledData {
    /// Write as CSV with a header (`columns..., target`), atomically.
    pub fn write_csv(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut header = self.columns.clone();
        header.push("target".into());
        let rows = self.x.outer_iter().zip(&self.y).map(|(r, y)| {
            let mut v: Vec<String> = r.iter().map(|a| format!("{a}")).collect();
            // class labels are written as integers
            v.push(if y.fract() == 0.0 {
                format!("{}", *y as i64)
            } else {
                format!("{y}")
            });
            v
        });
        crate::io::write_csv_atomic(path, &header, rows)
    }
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.y.len()
    }
    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

fn names(d: usize) -> Vec<String> {
    (1..=d).map(|j| format!("x{j}")).collect()
}

/// The WRM circles task: `n` points, with the gap removed when `train` is true (points
/// are drawn until `n` survive). Label 1 = ring (`||x|| > sqrt 2`), 0 = inner disk.
pub fn circles(n: usize, train: bool, seed: u64) -> LabelledData {
    let mut rng = StdRng::seed_from_u64(seed);
    let r0 = std::f64::consts::SQRT_2;
    let mut x = Array2::zeros((n, 2));
    let mut y = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let a: f64 = rng.sample(StandardNormal);
        let b: f64 = rng.sample(StandardNormal);
        let r = (a * a + b * b).sqrt();
        if train && r > r0 / 1.3 && r < 1.3 * r0 {
            continue;
        }
        x[[i, 0]] = a;
        x[[i, 1]] = b;
        y.push(if r > r0 { 1.0 } else { 0.0 });
        i += 1;
    }
    LabelledData {
        columns: names(2),
        x,
        y,
    }
}

/// Two Gaussian classes `N(-m, I)` / `N(m, I)` with `m = (sep/2) e / sqrt(d)` along the
/// all-ones direction `e`, equal class sizes; the features are then transformed by
/// `x -> scale * x + shift` (covariate shift; `shift = 0, scale = 1` for training data).
pub fn gaussian_shift(
    n: usize,
    d: usize,
    sep: f64,
    shift: f64,
    scale: f64,
    seed: u64,
) -> LabelledData {
    let mut rng = StdRng::seed_from_u64(seed);
    let m = 0.5 * sep / (d as f64).sqrt();
    let mut x = Array2::zeros((n, d));
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = (i % 2) as f64;
        let s = if c == 1.0 { 1.0 } else { -1.0 };
        for k in 0..d {
            let z: f64 = rng.sample(StandardNormal);
            x[[i, k]] = scale * (s * m + z) + shift;
        }
        y.push(c);
    }
    LabelledData {
        columns: names(d),
        x,
        y,
    }
}

/// Subpopulation shift in 2-D, with a minority subgroup that is genuinely harder.
///
/// Class `c` in {0, 1} (sign `s = 2c - 1`, classes alternate so they are balanced) is a
/// mixture of two subgroups:
/// - the majority, centred at `s (2, 0)` with unit variance: its label is read off `x1`
///   (decision boundary `x1 = 0`);
/// - the minority (proportion `minority`), centred at `s (-1, 2.5)` with standard deviations
///   `(1, 0.5)`: its label is read off `x2`, and `x1` points the wrong way, so the majority's
///   boundary classifies most minority points wrongly.
///
/// One linear classifier serves both subgroups reasonably (a boundary tilted towards `x2`),
/// but with few minority points in training (e.g. `minority = 0.1`) the loss is dominated by
/// the majority, whose best boundary ignores `x2`. Test sets with a large `minority` (e.g.
/// 0.5, 0.9) then reward methods that weight the hard, rare points up.
///
/// `minority` is a probability: values outside `[0, 1]` act as 0 or 1 (a NaN as 0); the
/// benchmark configuration rejects them (`SuiteConfig::validate`, `subpop-minority`).
pub fn subpopulation(n: usize, minority: f64, seed: u64) -> LabelledData {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut x = Array2::zeros((n, 2));
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = (i % 2) as f64;
        let s = 2.0 * c - 1.0;
        let minor = rng.random::<f64>() < minority;
        let (cx, cy, sy) = if minor {
            (-s, 2.5 * s, 0.5)
        } else {
            (2.0 * s, 0.0, 1.0)
        };
        x[[i, 0]] = cx + rng.sample::<f64, _>(StandardNormal);
        x[[i, 1]] = cy + sy * rng.sample::<f64, _>(StandardNormal);
        y.push(c);
    }
    LabelledData {
        columns: names(2),
        x,
        y,
    }
}

/// The robust least-squares task `min_theta E ||(A + xi B) theta - b||^2`.
#[derive(Debug, Clone, PartialEq)]
pub struct RobustLeastSquares {
    /// `A` (`m x p`).
    pub a: Array2<f64>,
    /// `B` (`m x p`).
    pub b_mat: Array2<f64>,
    /// `b` (`m`).
    pub b: Array1<f64>,
}

impl RobustLeastSquares {
    /// A seeded instance with `m = 20` rows and `p = 10` unknowns: `A` and `b` standard
    /// Gaussian, `B` Gaussian with standard deviation `b_scale`.
    pub fn new(seed: u64, b_scale: f64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let (m, p) = (20, 10);
        let mut g = |s: f64| -> f64 { s * rng.sample::<f64, _>(StandardNormal) };
        let a = Array2::from_shape_fn((m, p), |_| g(1.0));
        let b_mat = Array2::from_shape_fn((m, p), |_| g(b_scale));
        let b = Array1::from_shape_fn(m, |_| g(1.0));
        RobustLeastSquares { a, b_mat, b }
    }
    /// The loss `||(A + xi B) theta - b||^2`.
    pub fn loss(&self, theta: &[f64], xi: f64) -> f64 {
        let mut s = 0.0;
        for i in 0..self.b.len() {
            let mut r = -self.b[i];
            for (j, t) in theta.iter().enumerate() {
                r += (self.a[[i, j]] + xi * self.b_mat[[i, j]]) * t;
            }
            s += r * r;
        }
        s
    }
    /// `n` draws of `xi ~ (1 + delta) U[-0.5, 0.5]`.
    pub fn sample_xi(n: usize, delta: f64, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| (1.0 + delta) * (rng.random::<f64>() - 0.5))
            .collect()
    }
    /// The sample-average (ERM) solution for the given `xi` samples: the normal equations
    /// of `sum_k ||(A + xi_k B) theta - b||^2`.
    pub fn erm(&self, xis: &[f64]) -> Result<Vec<f64>> {
        let p = self.a.ncols();
        let mut h = Array2::<f64>::zeros((p, p));
        let mut r = vec![0.0; p];
        for &xi in xis {
            let m = &self.a + &(&self.b_mat * xi);
            h = h + m.t().dot(&m);
            let mb = m.t().dot(&self.b);
            for j in 0..p {
                r[j] += mb[j];
            }
        }
        crate::linalg::solve(&h, &r)
    }
    /// Mean test loss of `theta` over `xis`.
    pub fn mean_loss(&self, theta: &[f64], xis: &[f64]) -> f64 {
        xis.iter().map(|&x| self.loss(theta, x)).sum::<f64>() / xis.len().max(1) as f64
    }
}
