//! The inclusive KL on a common support, `KL(pi | mu)` with `pi = sum_i p_i delta_{x_i}` and
//! `mu = sum_i w_i delta_{x_i}` on the same atoms \[IKL]:
//!
//! `F(w) = sum_i [p_i log(p_i / w_i) - p_i + w_i]` (the positive-measure form, equal to
//! `sum_i p_i log(p_i / w_i)` on probability vectors), first variation
//! `g_i = 1 - p_i / w_i = 1 - dpi/dmu (x_i)`.
//!
//! Two facts of docs/DESIGN.md §3 are stated with it:
//! - fact 4: the spherical Fisher-Rao flow `dw/dt = -beta w (g - sum_j w_j g_j)` is the
//!   linear ODE `dw/dt = beta (p - w)`, so `w_t = e^{-beta t} w_0 + (1 - e^{-beta t}) p`,
//!   and `KL(p | w_t) <= e^{-beta t} KL(p | w_0)` by convexity in the second argument;
//! - fact 5: kernel smoothing of the first variation gives the MMD witness,
//!   `(K_mu (1 - p/w))(z) = sum_i w_i k(z, x_i) (1 - p_i / w_i) = sum_i (w_i - p_i) k(z, x_i)`,
//!   which is why the kernelised forward-KL flows are the MMD flows of [`crate::energy::MmdEnergy`]
//!   ([`CommonSupportKl::kernelised_first_variation`]).
//!
//! The unsmoothed ratio `dpi/dmu` exists only on the common atoms, so this energy has no
//! transport force: its position gradient is reported as zero (a W step leaves the atoms,
//! and the common support, in place).

use crate::energy::{Energy, FirstVariation};
use crate::error::{Error, Result};
use crate::kernel::{kernel_sums, Kernel};
use crate::measure::Particles;

/// `KL(pi | mu)` for a target `pi` with weights `p` on the atoms of `mu`.
#[derive(Debug, Clone)]
pub struct CommonSupportKl {
    /// Target weights `p_i >= 0` on the atoms of `mu` (one per particle).
    pub p: Vec<f64>,
}

impl CommonSupportKl {
    /// The energy for target weights `p` (finite, non-negative, not all zero).
    pub fn new(p: Vec<f64>) -> Result<Self> {
        if p.is_empty() {
            return Err(Error::param("p", 0, "no target weights"));
        }
        if let Some((i, v)) = p
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(Error::param(
                "p",
                v,
                &format!("target weight {i} must be finite and >= 0"),
            ));
        }
        let total: f64 = p.iter().sum();
        if total.is_nan() || total <= 0.0 {
            return Err(Error::param("p", 0, "target weights sum to zero"));
        }
        Ok(CommonSupportKl { p })
    }

    fn check(&self, mu: &Particles) -> Result<Vec<f64>> {
        if mu.len() != self.p.len() {
            return Err(Error::Shape(format!(
                "{} particles for {} target weights (the supports must be common)",
                mu.len(),
                self.p.len()
            )));
        }
        let w = mu.weights();
        if let Some(i) = (0..w.len()).find(|&i| self.p[i] > 0.0 && (w[i].is_nan() || w[i] <= 0.0)) {
            return Err(Error::param(
                "particles",
                w[i],
                &format!("particle {i} has zero weight where the target has mass: KL is infinite"),
            ));
        }
        Ok(w)
    }

    /// The kernel-smoothed first variation `(K_mu (1 - p/w))(z)` at the rows of `z`
    /// (row-major, `d` columns): by fact 5 the MMD witness `sum_i (w_i - p_i) k(z, x_i)`.
    pub fn kernelised_first_variation(
        &self,
        k: &Kernel,
        mu: &Particles,
        z: &[f64],
    ) -> Result<Vec<f64>> {
        let w = self.check(mu)?;
        let wh: Vec<f64> = w
            .iter()
            .zip(&self.p)
            .map(|(wi, pi)| wi * (1.0 - pi / wi))
            .collect();
        kernel_sums(k, z, mu.x_slice(), &wh, mu.dim())
    }

    /// The closed-form spherical FR flow (fact 4) from a probability vector `w0`: with
    /// `s = sum_i p_i`, `dw/dt = -beta (s w - p)`, so
    /// `w_t = e^{-beta s t} w_0 + (1 - e^{-beta s t}) p / s` (for `s = 1` the formula of
    /// docs/DESIGN.md §3).
    pub fn fr_solution(&self, w0: &[f64], beta: f64, t: f64) -> Vec<f64> {
        let s: f64 = self.p.iter().sum();
        let a = (-beta * s * t).exp();
        w0.iter()
            .zip(&self.p)
            .map(|(w, p)| a * w + (1.0 - a) * p / s)
            .collect()
    }
}

impl Energy for CommonSupportKl {
    fn name(&self) -> String {
        "inclusive-kl".into()
    }
    fn value(&self, mu: &Particles) -> Result<f64> {
        let w = self.check(mu)?;
        Ok(w.iter()
            .zip(&self.p)
            .map(|(wi, pi)| {
                if *pi > 0.0 {
                    pi * (pi / wi).ln() - pi + wi
                } else {
                    *wi
                }
            })
            .sum())
    }
    fn first_variation_at(
        &self,
        mu: &Particles,
        at: &[f64],
        with_grad: bool,
    ) -> Result<FirstVariation> {
        let w = self.check(mu)?;
        if at.len() != mu.x_slice().len() {
            return Err(Error::Shape(
                "the inclusive KL on a common support is evaluated at the atoms only".into(),
            ));
        }
        Ok(FirstVariation {
            g: w.iter()
                .zip(&self.p)
                .map(|(wi, pi)| 1.0 - pi / wi)
                .collect(),
            grad: with_grad.then(|| vec![0.0; at.len()]),
        })
    }
}
