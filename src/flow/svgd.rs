//! Stein variational gradient descent (Liu, Wang, NeurIPS 2016): the Stein-kernelised
//! Wasserstein flow of the reverse KL `KL(mu | pi)`, a mode-seeking baseline.
//!
//! `x_i <- x_i + tau sum_j w_j [k(x_j, x_i) s(x_j) + grad_{x_j} k(x_j, x_i)]`, `s` the
//! score of the target. With the median bandwidth rule the kernel is re-fitted to the
//! particles at every step (as in the reference code).

use super::{FlowStep, StepContext, StepInfo};
use crate::energy::Energy;
use crate::error::Result;
use crate::kernel::{kernel_sums_multi, kernel_sums_with_grad, Bandwidth, Kernel, KernelKind};
use crate::measure::target::{scores, LogDensity};
use crate::measure::Particles;
use std::sync::Arc;

/// The SVGD step. Ignores the energy passed by the driver (used only for traces): the
/// direction comes from the target's score. SVGD lives on its own time scale: with
/// `step_size` set it uses that step instead of the driver's `tau`.
#[derive(Clone)]
pub struct Svgd {
    /// Its own step size (`None`: the driver's `tau`).
    pub step_size: Option<f64>,
    /// Kernel profile.
    pub kind: KernelKind,
    /// Bandwidth rule.
    pub bandwidth: Bandwidth,
    /// The target density.
    pub target: Arc<dyn LogDensity>,
}

impl Svgd {
    /// SVGD for `target` with the given kernel settings.
    pub fn new(target: Arc<dyn LogDensity>, kind: KernelKind, bandwidth: Bandwidth) -> Self {
        Svgd {
            step_size: None,
            kind,
            bandwidth,
            target,
        }
    }

    /// With its own step size (instead of the driver's `tau`).
    pub fn with_step_size(mut self, tau: f64) -> Self {
        self.step_size = Some(tau);
        self
    }

    /// The SVGD velocity `phi(x_i)` at every particle (row-major `n x d`).
    pub fn velocity(&self, mu: &Particles, step: usize) -> Result<Vec<f64>> {
        let d = mu.dim();
        let x = mu.x_slice();
        let kernel = match self.bandwidth {
            Bandwidth::Median if mu.len() < 2 => Kernel::new(self.kind, 1.0)?,
            bw => Kernel::with_bandwidth(self.kind, bw, x, d)
                .or_else(|_| Kernel::new(self.kind, 1.0))?,
        };
        let w = mu.weights();
        let s = scores(self.target.as_ref(), x, Some(step))?;
        let ws: Vec<f64> = s
            .chunks_exact(d)
            .zip(&w)
            .flat_map(|(si, wi)| si.iter().map(move |a| a * wi))
            .collect();
        let drive = kernel_sums_multi(&kernel, x, x, &ws, d, d)?;
        // sum_j w_j grad_{x_j} k(x_j, x_i) = -sum_j w_j grad_{x_i} k(x_i, x_j)
        let (_, g) = kernel_sums_with_grad(&kernel, x, x, &w, d)?;
        Ok(drive.iter().zip(&g).map(|(a, b)| a - b).collect())
    }
}

impl FlowStep for Svgd {
    fn name(&self) -> String {
        "svgd".into()
    }
    fn step(
        &mut self,
        mu: &mut Particles,
        _energy: &dyn Energy,
        ctx: &mut StepContext,
    ) -> Result<StepInfo> {
        let v = self.velocity(mu, ctx.step)?;
        let tau = self.step_size.unwrap_or(ctx.tau);
        mu.x_slice_mut()
            .iter_mut()
            .zip(&v)
            .for_each(|(x, vi)| *x += tau * vi);
        Ok(StepInfo::default())
    }
}
