//! Wasserstein-Fisher-Rao step by operator splitting: a Wasserstein step on the positions,
//! then a Fisher-Rao step on the weights at the new positions.
//!
//! `dmu/dt = alpha div(mu grad g) - beta mu (g - int g dmu)` (Chizat, Peyre, Schmitzer,
//! Vialard 2018; Liero, Mielke, Savare 2018; for the inclusive KL: Zhu 2024 \[IKL]).

use super::{FisherRao, FlowStep, StepContext, StepInfo, Wasserstein};
use crate::energy::Energy;
use crate::error::Result;
use crate::measure::Particles;

/// The WFR step: [`Wasserstein`] then [`FisherRao`].
#[derive(Debug, Clone)]
pub struct Wfr {
    /// The transport part.
    pub w: Wasserstein,
    /// The reaction part.
    pub fr: FisherRao,
}

impl Wfr {
    /// Spherical WFR with weights `alpha` (transport) and `beta` (reaction).
    pub fn new(alpha: f64, beta: f64) -> Result<Self> {
        Ok(Wfr {
            w: Wasserstein::new(alpha)?,
            fr: FisherRao::new(beta)?,
        })
    }
}

impl FlowStep for Wfr {
    fn name(&self) -> String {
        "wfr".into()
    }
    fn updates_per_step(&self) -> usize {
        2
    }
    fn keeps_simplex(&self) -> bool {
        self.fr.spherical
    }
    fn step(
        &mut self,
        mu: &mut Particles,
        energy: &dyn Energy,
        ctx: &mut StepContext,
    ) -> Result<StepInfo> {
        self.w.apply(mu, energy, ctx)?;
        self.fr.apply(mu, energy, ctx)?;
        Ok(StepInfo::default())
    }
}
