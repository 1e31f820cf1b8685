//! The MMD energy `F(mu) = 1/2 MMD^2(mu, pi)` for a target given by weighted samples.
//!
//! `F(mu) = 1/2 (w'K_xx w - 2 w'K_xy v + v'K_yy v)`, first variation the witness
//! `f(x) = sum_i w_i k(x, x_i) - sum_j v_j k(x, y_j)`, gradient `grad f`.
//! Its Wasserstein flow is the MMD flow of Arbel et al. (2019); by [IKL] it is also the
//! kernelised forward KL `KL(pi | mu)` (DESIGN.md sections 2 and 5).

use super::{Energy, FirstVariation, WeightQuadratic};
use crate::error::{Error, Result};
use crate::kernel::{kernel_sums, kernel_sums_with_grad, GramOp, Kernel};
use crate::linalg::dot;
use crate::measure::Particles;
use std::sync::Arc;

/// `1/2 MMD^2(mu, pi)` with `pi = sum_j v_j delta_{y_j}`.
#[derive(Debug, Clone)]
pub struct MmdEnergy {
    /// The kernel.
    pub kernel: Kernel,
    /// Target samples and weights.
    pub target: Particles,
    target_w: Vec<f64>,
    /// `v'K_yy v`, computed once.
    c_yy: f64,
}

impl MmdEnergy {
    /// The energy for target `target` (its weights are used as given; normalise them
    /// for a probability target).
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
        })
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

    /// Sources `[x; y]` with signed weights `[w; -v]`: the witness is one kernel sum.
    /// Particles of weight exactly zero contribute nothing and are left out (after a few
    /// IFT steps most particles have zero mass, so this halves the W step's sums).
    fn signed_sources(&self, mu: &Particles) -> (Vec<f64>, Vec<f64>) {
        let d = mu.dim();
        let w = mu.weights();
        let nnz = w.iter().filter(|a| **a != 0.0).count();
        let mut src = Vec::with_capacity((nnz + self.target_w.len()) * d);
        let mut sw = Vec::with_capacity(nnz + self.target_w.len());
        for (xi, &wi) in mu.x_slice().chunks_exact(d).zip(&w) {
            if wi != 0.0 {
                src.extend_from_slice(xi);
                sw.push(wi);
            }
        }
        src.extend_from_slice(self.target.x_slice());
        sw.extend(self.target_w.iter().map(|v| -v));
        (src, sw)
    }
}

impl Energy for MmdEnergy {
    fn name(&self) -> String {
        "mmd".into()
    }
    fn value(&self, mu: &Particles) -> Result<f64> {
        self.check_dim(mu)?;
        let (src, sw) = self.signed_sources(mu);
        // w'f = w'K_xx w - w'K_xy v, and F = 1/2 (w'f - w'K_xy v + v'K_yy v).
        let w = mu.weights();
        let f = kernel_sums(&self.kernel, mu.x_slice(), &src, &sw, mu.dim())?;
        let kxyv = kernel_sums(
            &self.kernel,
            mu.x_slice(),
            self.target.x_slice(),
            &self.target_w,
            mu.dim(),
        )?;
        let v = 0.5 * (dot(&w, &f) - dot(&w, &kxyv) + self.c_yy);
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
        let (src, sw) = self.signed_sources(mu);
        if with_grad {
            let (g, grad) = kernel_sums_with_grad(&self.kernel, at, &src, &sw, mu.dim())?;
            Ok(FirstVariation {
                g,
                grad: Some(grad),
            })
        } else {
            let g = kernel_sums(&self.kernel, at, &src, &sw, mu.dim())?;
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
            let b = kernel_sums(
                &self.kernel,
                mu.x_slice(),
                self.target.x_slice(),
                &self.target_w,
                mu.dim(),
            )?;
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
