//! Interaction-Force Transport (Gladin, Dvurechensky, Mielke, Zhu, NeurIPS 2024).
//!
//! Spherical IFT flow `dmu/dt = alpha div(mu grad g) - beta K^{-1} (g + const)`: the
//! infimal convolution of the Wasserstein and MMD metric tensors. Particle scheme (JKO
//! splitting): a [`Wasserstein`] step on the positions, then an [`MmdProx`] weight step
//! at the new positions. For `F = 1/2 MMD^2` the continuous flow satisfies
//! `MMD(mu_t, pi) <= exp(-beta t) MMD(mu_0, pi)` whatever `alpha`.

use super::{FlowStep, MmdProx, ProxSolver, StepContext, StepInfo, Wasserstein};
use crate::energy::Energy;
use crate::error::Result;
use crate::measure::Particles;

/// The IFT step.
#[derive(Debug, Clone)]
pub struct Ift {
    /// Transport part.
    pub w: Wasserstein,
    /// MMD weight part.
    pub prox: MmdProx,
}

impl Ift {
    /// IFT with weights `alpha` and `beta` and the exact prox solver.
    pub fn new(alpha: f64, beta: f64) -> Result<Self> {
        Ok(Ift {
            w: Wasserstein::new(alpha)?,
            prox: MmdProx::new(beta)?,
        })
    }
}

impl FlowStep for Ift {
    fn name(&self) -> String {
        match self.prox.solver {
            ProxSolver::ProjectedGradient => "ift-pg".into(),
            _ => "ift".into(),
        }
    }
    fn updates_per_step(&self) -> usize {
        2
    }
    fn step(
        &mut self,
        mu: &mut Particles,
        energy: &dyn Energy,
        ctx: &mut StepContext,
    ) -> Result<StepInfo> {
        self.w.apply(mu, energy, ctx)?;
        self.prox.apply(mu, energy, ctx)
    }
}
