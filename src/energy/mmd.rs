//! The MMD energy `F(mu) = 1/2 MMD^2(mu, pi)` for a target given by weighted samples.
//!
//! `F(mu) = 1/2 (w'K_xx w - 2 w'K_xy v + v'K_yy v)`, first variation the witness
//! `f(x) = sum_i w_i k(x, x_i) - sum_j v_j k(x, y_j)`, gradient `grad f`.
//! Its Wasserstein flow is the MMD flow of Arbel et al. (2019); by \[IKL\] it is also the
//! kernelised forward KL `KL(pi | mu)` (DESIGN.md sections 2 and 5).
//!
//! The witness splits into the interaction part `sum_i w_i k(x, x_i)` (an `n x |supp w|`
//! sum) and the target potential `u(x) = sum_j v_j k(x, y_j)` (an `n x m` sum, the larger
//! one). `u` depends on the positions only, not on the weights, so the energy keeps the
//! last one it computed ([`MmdEnergy::with_potential_cache`]): a weight step and the
//! transport step after it evaluate `u` at the same positions, and an Interaction-Force
//! Transport iteration (W step, then MMD-prox step) computes it once instead of twice.

use super::{Energy, FirstVariation, WeightQuadratic};
use crate::error::{Error, Result};
use crate::kernel::{gradients_come_free, kernel_sums, kernel_sums_with_grad, GramOp, Kernel};
use crate::linalg::dot;
use crate::measure::Particles;
use std::sync::{Arc, Mutex};

/// The target potential `u = K_{at, y} v` (and its gradient) at the positions `at` it was
/// last computed at, for kernel `kernel`.
#[derive(Default)]
struct Potential {
    kernel: Option<Kernel>,
    at: Vec<f64>,
    values: Vec<f64>,
    grads: Option<Vec<f64>>,
}

/// `1/2 MMD^2(mu, pi)` with `pi = sum_j v_j delta_{y_j}`.
pub struct MmdEnergy {
    /// The kernel.
    pub kernel: Kernel,
    /// Target samples and weights.
    pub target: Particles,
    target_w: Vec<f64>,
    /// `v'K_yy v`, computed once.
    c_yy: f64,
    /// Whether the target potential is cached.
    cache_on: bool,
    cache: Mutex<Potential>,
}

impl Clone for MmdEnergy {
    /// A copy with an empty potential cache.
    fn clone(&self) -> Self {
        MmdEnergy {
            kernel: self.kernel,
            target: self.target.clone(),
            target_w: self.target_w.clone(),
            c_yy: self.c_yy,
            cache_on: self.cache_on,
            cache: Mutex::new(Potential::default()),
        }
    }
}

impl std::fmt::Debug for MmdEnergy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmdEnergy")
            .field("kernel", &self.kernel)
            .field("target", &self.target)
            .field("c_yy", &self.c_yy)
            .field("potential_cache", &self.cache_on)
            .finish()
    }
}

impl MmdEnergy {
    /// The energy for target `target` (its weights are used as given; normalise them
    /// for a probability target). The target potential is cached (see the module docs).
    pub fn new(kernel: Kernel, target: Particles) -> Result<Self> {
        let v = target.weights();
        let d = target.dim();
        let kyy = kernel_sums(&kernel, target.x_slice(), target.x_slice(), &v, d)?;
        let c_yy = dot(&v, &kyy);
        Ok(MmdEnergy {
            kernel,
            target,
            target_w: v,
            c_yy,
            cache_on: true,
            cache: Mutex::new(Potential::default()),
        })
    }

    /// Turn the cache of the target potential `u = K_xy v` on or off (on by default).
    /// Values are the same either way (the cache is keyed by the exact positions and the
    /// kernel); off, every call recomputes `u` (for timing one step in isolation).
    pub fn with_potential_cache(mut self, on: bool) -> Self {
        self.cache_on = on;
        self.clear_potential_cache();
        self
    }

    /// Forget the cached target potential.
    pub fn clear_potential_cache(&self) {
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Potential::default();
    }

    fn check_dim(&self, mu: &Particles) -> Result<()> {
        if mu.dim() != self.target.dim() {
            return Err(Error::Shape(format!(
                "particles have d = {}, target has d = {}",
                mu.dim(),
                self.target.dim()
            )));
        }
        Ok(())
    }

    /// The target potential `u(a) = sum_j v_j k(a, y_j)` at the rows of `at` and, when
    /// `with_grad`, its gradient (row-major). Served from the cache when `at` (bitwise) and
    /// the kernel are those of the last evaluation; a miss computes the gradient as well
    /// when it comes at no extra cost ([`gradients_come_free`]) and stores the result.
    pub fn target_potential(
        &self,
        at: &[f64],
        with_grad: bool,
    ) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
        let d = self.target.dim();
        if let Some(hit) = self.cached(at, with_grad) {
            return Ok(hit);
        }
        let (y, v) = (self.target.x_slice(), &self.target_w);
        let want_grad = with_grad || (self.cache_on && gradients_come_free(&self.kernel, d));
        let (values, grads) = if want_grad {
            let (a, b) = kernel_sums_with_grad(&self.kernel, at, y, v, d)?;
            (a, Some(b))
        } else {
            (kernel_sums(&self.kernel, at, y, v, d)?, None)
        };
        if self.cache_on {
            *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Potential {
                kernel: Some(self.kernel),
                at: at.to_vec(),
                values: values.clone(),
                grads: grads.clone(),
            };
        }
        let grads = if with_grad { grads } else { None };
        Ok((values, grads))
    }

    /// The cached potential at exactly `at` for the current kernel, if any (with its
    /// gradient when `with_grad`, which then must be cached too).
    fn cached(&self, at: &[f64], with_grad: bool) -> Option<(Vec<f64>, Option<Vec<f64>>)> {
        if !self.cache_on {
            return None;
        }
        let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let hit = c.kernel == Some(self.kernel) && c.at == at && (!with_grad || c.grads.is_some());
        hit.then(|| {
            (
                c.values.clone(),
                if with_grad { c.grads.clone() } else { None },
            )
        })
    }

    /// The atoms of non-zero weight and their weights. Particles of weight exactly zero
    /// contribute nothing and are left out (after a few IFT steps most particles have zero
    /// mass, so this shrinks the interaction sums to `n x |supp w|`).
    fn support(&self, mu: &Particles) -> (Vec<f64>, Vec<f64>) {
        let d = mu.dim();
        let w = mu.weights();
        let nnz = w.iter().filter(|a| **a != 0.0).count();
        let mut src = Vec::with_capacity(nnz * d);
        let mut sw = Vec::with_capacity(nnz);
        for (xi, &wi) in mu.x_slice().chunks_exact(d).zip(&w) {
            if wi != 0.0 {
                src.extend_from_slice(xi);
                sw.push(wi);
            }
        }
        (src, sw)
    }
}

impl Energy for MmdEnergy {
    fn name(&self) -> String {
        "mmd".into()
    }
    fn value(&self, mu: &Particles) -> Result<f64> {
        self.check_dim(mu)?;
        let d = mu.dim();
        // F = 1/2 (w'K_xx w - 2 w'u + v'K_yy v), every term over the support of w: an
        // s x s sum and u at the s support atoms (or all of u from the cache).
        let (src, sw) = self.support(mu);
        let kww = kernel_sums(&self.kernel, &src, &src, &sw, d)?;
        // (u at the support, gathered from the cache or computed there: the same row sums,
        // so the value does not depend on whether the cache was hit.)
        let u_supp = match self.cached(mu.x_slice(), false) {
            Some((u, _)) => mu
                .weights()
                .iter()
                .zip(&u)
                .filter(|(w, _)| **w != 0.0)
                .map(|(_, u)| *u)
                .collect(),
            None => kernel_sums(&self.kernel, &src, self.target.x_slice(), &self.target_w, d)?,
        };
        let wu = dot(&sw, &u_supp);
        let v = 0.5 * (dot(&sw, &kww) - 2.0 * wu + self.c_yy);
        // Clamp round-off below zero, but let a NaN through (`f64::max` would turn it into 0
        // and hide a divergence from the driver's guard).
        Ok(if v < 0.0 { 0.0 } else { v })
    }
    fn first_variation_at(
        &self,
        mu: &Particles,
        at: &[f64],
        with_grad: bool,
    ) -> Result<FirstVariation> {
        self.check_dim(mu)?;
        let d = mu.dim();
        let (src, sw) = self.support(mu);
        let (u, ugrad) = self.target_potential(at, with_grad)?;
        if with_grad {
            let (mut g, mut grad) = kernel_sums_with_grad(&self.kernel, at, &src, &sw, d)?;
            g.iter_mut().zip(&u).for_each(|(a, b)| *a -= b);
            let ug = ugrad.expect("asked for");
            grad.iter_mut().zip(&ug).for_each(|(a, b)| *a -= b);
            Ok(FirstVariation {
                g,
                grad: Some(grad),
            })
        } else {
            let mut g = kernel_sums(&self.kernel, at, &src, &sw, d)?;
            g.iter_mut().zip(&u).for_each(|(a, b)| *a -= b);
            Ok(FirstVariation { g, grad: None })
        }
    }
    fn mmd2_to_target(&self, mu: &Particles) -> Option<Result<f64>> {
        Some(self.value(mu).map(|f| 2.0 * f))
    }
    fn weight_quadratic(&self, mu: &Particles) -> Option<Result<WeightQuadratic>> {
        Some((|| {
            self.check_dim(mu)?;
            let gram: Arc<dyn crate::linalg::LinOp + Send> =
                Arc::new(GramOp::new(&self.kernel, mu.x_slice(), mu.dim())?);
            let (b, _) = self.target_potential(mu.x_slice(), false)?;
            Ok(WeightQuadratic {
                h: gram.clone(),
                h_scale: 1.0,
                b,
                c: 0.5 * self.c_yy,
                metric: gram,
            })
        })())
    }
}
