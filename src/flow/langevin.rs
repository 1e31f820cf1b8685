//! Unadjusted Langevin algorithm: the Wasserstein flow of the reverse KL `KL(mu | pi)`
//! discretised with noise, `x_i <- x_i + tau s(x_i) + sqrt(2 tau) u_i`, `u_i ~ N(0, I)`.
//! A mode-seeking baseline; weights are unchanged.

use super::{FlowStep, StepContext};
use crate::energy::Energy;
use crate::error::Result;
use crate::measure::target::{scores, LogDensity};
use crate::measure::Particles;
use rand::Rng;
use rand_distr::StandardNormal;
use std::sync::Arc;

/// The Langevin step.
#[derive(Clone)]
pub struct Langevin {
    /// The target density.
    pub target: Arc<dyn LogDensity>,
}

impl Langevin {
    /// Langevin dynamics for `target`.
    pub fn new(target: Arc<dyn LogDensity>) -> Self {
        Langevin { target }
    }
}

impl FlowStep for Langevin {
    fn name(&self) -> String {
        "langevin".into()
    }
    fn step(&mut self, mu: &mut Particles, _energy: &dyn Energy, ctx: &mut StepContext) -> Result<()> {
        let s = scores(self.target.as_ref(), mu.x_slice(), Some(ctx.step))?;
        let tau = ctx.tau;
        let sd = (2.0 * tau).sqrt();
        let rng = &mut *ctx.rng;
        for (x, si) in mu.x_slice_mut().iter_mut().zip(&s) {
            let u: f64 = rng.sample(StandardNormal);
            *x += tau * si + sd * u;
        }
        Ok(())
    }
}
