//! Unadjusted Langevin algorithm: the Wasserstein flow of the reverse KL `KL(mu | pi)`
//! discretised with noise, `x_i <- x_i + tau s(x_i) + sqrt(2 tau) u_i`, `u_i ~ N(0, I)`.
//! A mode-seeking baseline; weights are unchanged.

use super::{FlowStep, StepContext, StepInfo};
use crate::energy::Energy;
use crate::error::Result;
use crate::measure::target::{scores, LogDensity};
use crate::measure::Particles;
use rand::Rng;
use rand_distr::StandardNormal;
use std::sync::Arc;

/// The Langevin step. With `step_size` set it uses that step instead of the driver's `tau`
/// (Langevin lives on its own time scale).
#[derive(Clone)]
pub struct Langevin {
    /// Its own step size (`None`: the driver's `tau`).
    pub step_size: Option<f64>,
    /// The target density.
    pub target: Arc<dyn LogDensity>,
}

impl Langevin {
    /// Langevin dynamics for `target`.
    pub fn new(target: Arc<dyn LogDensity>) -> Self {
        Langevin {
            step_size: None,
            target,
        }
    }
    /// With its own step size (instead of the driver's `tau`).
    pub fn with_step_size(mut self, tau: f64) -> Self {
        self.step_size = Some(tau);
        self
    }
}

impl FlowStep for Langevin {
    fn name(&self) -> String {
        "langevin".into()
    }
    fn step(
        &mut self,
        mu: &mut Particles,
        _energy: &dyn Energy,
        ctx: &mut StepContext,
    ) -> Result<StepInfo> {
        let s = scores(self.target.as_ref(), mu.x_slice(), Some(ctx.step))?;
        let tau = self.step_size.unwrap_or(ctx.tau);
        let sd = (2.0 * tau).sqrt();
        let rng = &mut *ctx.rng;
        for (x, si) in mu.x_slice_mut().iter_mut().zip(&s) {
            let u: f64 = rng.sample(StandardNormal);
            *x += tau * si + sd * u;
        }
        Ok(StepInfo::default())
    }
}
