//! Positive-definite kernels, bandwidth rules and fused kernel sums.
//!
//! All kernels here are radial: `k(x, y) = phi(r2)` with `r2 = ||x - y||^2`, so
//! `grad_x k(x, y) = 2 phi'(r2) (x - y) = -grad_y k(x, y)`.
//!
//! | kernel | `phi(r2)` | parameter |
//! |---|---|---|
//! | Gaussian | `exp(-r2 / (2 h^2))` | bandwidth `h` |
//! | inverse multiquadric (IMQ) | `(h^2 + r2)^(-1/2)` | `c = h` |
//! | Laplace | `exp(-sqrt(r2) / h)` | bandwidth `h` |
//!
//! **Median heuristic (the convention used everywhere in robustflow):**
//! `h^2 = median_{i<j} ||x_i - x_j||^2 / 2` (for an even number of pairs, the mean of the two
//! middle values), computed on at most 1000 points (a fixed,
//! evenly strided subsample when there are more), as in the KDRO reference code.
//! For the Gaussian kernel this gives `k = exp(-r2 / median r2)`.
//!
//! References: Gretton et al. 2012 (MMD, median heuristic); Arbel et al. 2019 (MMD flow).

pub mod approx;
pub mod engine;
pub mod rff;
pub mod sums;
pub mod two_sample;

pub use approx::Approx;
pub use engine::{gradients_come_free, kernel_column, EngineOptions, PathChoice, Real, SimdLevel};
pub use sums::{
    gram, kernel_sums, kernel_sums_f32, kernel_sums_multi, kernel_sums_with_grad,
    kernel_sums_with_grad_f32, mmd2, mmd2_unbiased, mmd_terms, GramOp, KernelSums,
};

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The radial profile of a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelKind {
    /// `exp(-r2 / (2 h^2))`.
    Gaussian,
    /// `(h^2 + r2)^(-1/2)`.
    Imq,
    /// `exp(-sqrt(r2) / h)`.
    Laplace,
}

impl std::str::FromStr for KernelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "gaussian" | "rbf" | "gauss" => Ok(KernelKind::Gaussian),
            "imq" | "inverse-multiquadric" => Ok(KernelKind::Imq),
            "laplace" | "laplacian" => Ok(KernelKind::Laplace),
            _ => Err(Error::param(
                "kernel",
                s,
                "expected gaussian, imq or laplace",
            )),
        }
    }
}

impl std::fmt::Display for KernelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KernelKind::Gaussian => "gaussian",
            KernelKind::Imq => "imq",
            KernelKind::Laplace => "laplace",
        })
    }
}

/// A radial kernel with a fixed bandwidth. Cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Kernel {
    /// The profile.
    pub kind: KernelKind,
    /// The bandwidth `h` (for IMQ, the constant `c`).
    pub h: f64,
}

/// How to choose a bandwidth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Bandwidth {
    /// A fixed value of `h`.
    Fixed(f64),
    /// The median heuristic `h^2 = median ||x_i - x_j||^2 / 2`.
    Median,
}

impl std::str::FromStr for Bandwidth {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.eq_ignore_ascii_case("median") {
            return Ok(Bandwidth::Median);
        }
        let v: f64 = s
            .parse()
            .map_err(|_| Error::param("bandwidth", s, "expected a positive number or `median`"))?;
        crate::error::check_positive("bandwidth", v)?;
        Ok(Bandwidth::Fixed(v))
    }
}

impl Kernel {
    /// A kernel of the given kind and bandwidth; errors unless `h` is finite and > 0.
    pub fn new(kind: KernelKind, h: f64) -> Result<Self> {
        crate::error::check_positive("bandwidth", h)?;
        Ok(Kernel { kind, h })
    }
    /// Gaussian kernel `exp(-||x-y||^2 / (2 h^2))`.
    pub fn gaussian(h: f64) -> Result<Self> {
        Self::new(KernelKind::Gaussian, h)
    }
    /// Inverse multiquadric `(c^2 + ||x-y||^2)^(-1/2)`.
    pub fn imq(c: f64) -> Result<Self> {
        Self::new(KernelKind::Imq, c)
    }
    /// Laplace kernel `exp(-||x-y|| / h)`.
    pub fn laplace(h: f64) -> Result<Self> {
        Self::new(KernelKind::Laplace, h)
    }
    /// Build a kernel with a bandwidth rule applied to the row-major points `x` (`n x d`).
    pub fn with_bandwidth(kind: KernelKind, bw: Bandwidth, x: &[f64], d: usize) -> Result<Self> {
        let h = match bw {
            Bandwidth::Fixed(h) => h,
            Bandwidth::Median => median_heuristic(x, d)?,
        };
        Self::new(kind, h)
    }

    /// `phi(r2)`: the kernel value at squared distance `r2`.
    #[inline(always)]
    pub fn phi(&self, r2: f64) -> f64 {
        match self.kind {
            KernelKind::Gaussian => (-r2 / (2.0 * self.h * self.h)).exp(),
            KernelKind::Imq => 1.0 / (self.h * self.h + r2).sqrt(),
            KernelKind::Laplace => (-r2.sqrt() / self.h).exp(),
        }
    }

    /// `(phi(r2), phi'(r2))`, the value and the derivative with respect to `r2`.
    /// For the Laplace kernel `phi'` is taken as 0 at `r2 = 0` (a subgradient).
    #[inline(always)]
    pub fn phi_dphi(&self, r2: f64) -> (f64, f64) {
        match self.kind {
            KernelKind::Gaussian => {
                let a = 1.0 / (2.0 * self.h * self.h);
                let v = (-r2 * a).exp();
                (v, -a * v)
            }
            KernelKind::Imq => {
                let s = self.h * self.h + r2;
                let v = 1.0 / s.sqrt();
                (v, -0.5 * v / s)
            }
            KernelKind::Laplace => {
                let r = r2.sqrt();
                let v = (-r / self.h).exp();
                if r > 0.0 {
                    (v, -v / (2.0 * self.h * r))
                } else {
                    (v, 0.0)
                }
            }
        }
    }

    /// `k(x, y)`.
    pub fn eval(&self, x: &[f64], y: &[f64]) -> f64 {
        self.phi(sq_dist(x, y))
    }

    /// `grad_x k(x, y) = 2 phi'(r2) (x - y)`, written to `out`. (`grad_y k = -grad_x k`.)
    pub fn grad_x(&self, x: &[f64], y: &[f64], out: &mut [f64]) {
        let (_, dphi) = self.phi_dphi(sq_dist(x, y));
        for ((o, a), b) in out.iter_mut().zip(x).zip(y) {
            *o = 2.0 * dphi * (a - b);
        }
    }

    /// `k(x, x)`, the kernel's value on the diagonal (1 for Gaussian and Laplace, `1/h`
    /// for IMQ); the kernel is bounded by it.
    pub fn diag(&self) -> f64 {
        self.phi(0.0)
    }

    /// A Lipschitz constant of `x -> grad_x k(x, y)` (the largest eigenvalue magnitude of
    /// the Hessian over all `x`), which bounds stable Wasserstein step sizes
    /// (`tau < 2 / (3 L)`, Arbel et al. 2019). `None` for the Laplace kernel (not smooth).
    pub fn grad_lipschitz(&self) -> Option<f64> {
        match self.kind {
            KernelKind::Gaussian => Some(1.0 / (self.h * self.h)),
            KernelKind::Imq => Some(1.0 / (self.h * self.h * self.h)),
            KernelKind::Laplace => None,
        }
    }
}

/// Squared Euclidean distance.
#[inline(always)]
pub fn sq_dist(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum()
}

/// The median heuristic `h = sqrt(median_{i<j} ||x_i - x_j||^2 / 2)` over at most 1000
/// evenly strided points of the row-major `n x d` array `x`. Errors when fewer than two
/// points are given or all points coincide.
pub fn median_heuristic(x: &[f64], d: usize) -> Result<f64> {
    if d == 0 || !x.len().is_multiple_of(d) {
        return Err(Error::Shape(format!(
            "median heuristic: {} values do not form rows of {d}",
            x.len()
        )));
    }
    let n = x.len() / d;
    if n < 2 {
        return Err(Error::param(
            "bandwidth",
            "median",
            "the median heuristic needs at least 2 points",
        ));
    }
    let m = n.min(1000);
    let idx: Vec<usize> = (0..m).map(|i| i * n / m).collect();
    let mut r2 = Vec::with_capacity(m * (m - 1) / 2);
    for a in 0..m {
        for b in (a + 1)..m {
            r2.push(sq_dist(
                &x[idx[a] * d..idx[a] * d + d],
                &x[idx[b] * d..idx[b] * d + d],
            ));
        }
    }
    // The median of an even number of values is the mean of the two middle ones.
    let mid = r2.len() / 2;
    let even = r2.len() % 2 == 0;
    let (lower, upper_mid, _) = r2.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    let mut med = *upper_mid;
    if even {
        let below = lower.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        med = 0.5 * (below + med);
    }
    if !(med > 0.0) || !med.is_finite() {
        return Err(Error::param(
            "bandwidth",
            "median",
            "median pairwise distance is zero (points coincide): give a fixed bandwidth",
        ));
    }
    Ok((med / 2.0).sqrt())
}
