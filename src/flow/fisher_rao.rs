//! Fisher-Rao (Hellinger) step: weights change, positions stay.
//!
//! Spherical flow on probability measures `dmu/dt = -beta mu (g - int g dmu)`, discretised
//! as a mirror (exponentiated-gradient) step in the log domain:
//! `log w_i <- log w_i - tau beta g_i - log Z`. On positive measures (`spherical = false`)
//! the normalisation is dropped: `dmu/dt = -beta mu g`.
//! References: Chizat et al. 2018; Liero, Mielke, Savare 2018; Zhu, Mielke 2024 \[KFR].

use super::{FlowStep, StepContext, StepInfo};
use crate::energy::Energy;
use crate::error::Result;
use crate::linalg::logsumexp;
use crate::measure::Particles;
use ndarray::Array1;

/// The Fisher-Rao mirror step.
#[derive(Debug, Clone)]
pub struct FisherRao {
    /// Weight `beta` of the reaction part.
    pub beta: f64,
    /// Keep the total mass at one (probability measures).
    pub spherical: bool,
}

impl FisherRao {
    /// Spherical FR with weight `beta` (> 0).
    pub fn new(beta: f64) -> Result<Self> {
        crate::error::check_positive("beta", beta)?;
        Ok(FisherRao {
            beta,
            spherical: true,
        })
    }
    /// Unbalanced (positive-measure) FR.
    pub fn unbalanced(beta: f64) -> Result<Self> {
        Ok(FisherRao {
            spherical: false,
            ..Self::new(beta)?
        })
    }

    /// Mirror step with given first-variation values `g` (shared with WFR and kernel FR).
    pub fn apply_with(&self, mu: &mut Particles, g: &[f64], tau: f64) -> Result<()> {
        let mut lw: Array1<f64> = mu
            .log_weights()
            .iter()
            .zip(g)
            .map(|(l, gi)| l - tau * self.beta * gi)
            .collect();
        if self.spherical {
            let z = logsumexp(lw.as_slice().expect("contiguous"));
            lw.mapv_inplace(|a| a - z);
        }
        mu.set_log_weights(lw)
    }

    /// One FR step on `energy`.
    pub fn apply(
        &self,
        mu: &mut Particles,
        energy: &dyn Energy,
        ctx: &mut StepContext,
    ) -> Result<()> {
        let fv = energy.first_variation(mu, false)?;
        self.apply_with(mu, &fv.g, ctx.tau)
    }
}

impl FlowStep for FisherRao {
    fn name(&self) -> String {
        "fr".into()
    }
    fn keeps_simplex(&self) -> bool {
        self.spherical
    }
    fn step(
        &mut self,
        mu: &mut Particles,
        energy: &dyn Energy,
        ctx: &mut StepContext,
    ) -> Result<StepInfo> {
        self.apply(mu, energy, ctx)?;
        Ok(StepInfo::default())
    }
}
