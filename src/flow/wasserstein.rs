//! Wasserstein step: particles move along `-grad g`, weights unchanged.
//!
//! `dmu/dt = alpha div(mu grad g)`; explicit Euler: `x_i <- x_i - tau alpha grad g(x_i)`.
//! For `F = 1/2 MMD^2` this is the MMD flow of Arbel, Korba, Salim, Gretton (NeurIPS 2019),
//! which descends for `tau alpha < 2 / (3 L)`, `L` the Lipschitz constant of `grad k`.
//!
//! **Noise injection** (Arbel et al. 2019, section 3.3): evaluate `grad g` at
//! `x_i + beta_n u_i`, `u_i ~ N(0, I)`, and apply it at `x_i`; `beta_n` follows a
//! [`NoiseSchedule`].

use super::{FlowStep, StepContext, StepInfo};
use crate::energy::Energy;
use crate::error::{Error, Result};
use crate::measure::Particles;
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// How a particle's velocity depends on its weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Velocity {
    /// The Wasserstein velocity `-alpha grad g(x_i)`, the same for every particle (the
    /// paper form of the flow).
    #[default]
    Unweighted,
    /// `-alpha n w_i grad g(x_i)`: the Euclidean gradient of `F` in the positions scaled by
    /// `n` (the form the IFT reference code runs; empty particles do not move).
    MassWeighted,
}

impl std::str::FromStr for Velocity {
    type Err = Error;
    /// `unweighted` (alias `paper`) or `mass-weighted` (aliases `weighted`, `code`),
    /// case-insensitive; errors name `velocity`.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "unweighted" | "paper" => Ok(Velocity::Unweighted),
            "mass-weighted" | "weighted" | "code" => Ok(Velocity::MassWeighted),
            _ => Err(Error::param(
                "velocity",
                s,
                "expected unweighted or mass-weighted",
            )),
        }
    }
}

/// Noise level `beta_n = beta_0 * 0.5^(n / half_life)`, switched off from step `off_after`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NoiseSchedule {
    /// Initial level `beta_0`.
    pub beta0: f64,
    /// Halve the level every this many steps (`None`: constant).
    pub half_life: Option<usize>,
    /// No noise from this step on (`None`: never switched off).
    pub off_after: Option<usize>,
}

impl NoiseSchedule {
    /// The level at step `n`.
    pub fn level(&self, n: usize) -> f64 {
        if self.off_after.is_some_and(|o| n >= o) {
            return 0.0;
        }
        match self.half_life {
            Some(h) if h > 0 => self.beta0 * 0.5f64.powf(n as f64 / h as f64),
            _ => self.beta0,
        }
    }
}

/// The Wasserstein (transport) step.
#[derive(Debug, Clone)]
pub struct Wasserstein {
    /// Weight `alpha` of the transport part.
    pub alpha: f64,
    /// Velocity convention.
    pub velocity: Velocity,
    /// Optional noise injection.
    pub noise: Option<NoiseSchedule>,
}

impl Wasserstein {
    /// Plain Wasserstein step with weight `alpha` (> 0).
    pub fn new(alpha: f64) -> Result<Self> {
        crate::error::check_positive("alpha", alpha)?;
        Ok(Wasserstein {
            alpha,
            velocity: Velocity::Unweighted,
            noise: None,
        })
    }
    /// With noise injection.
    pub fn with_noise(mut self, noise: NoiseSchedule) -> Result<Self> {
        crate::error::check_nonneg("noise", noise.beta0)?;
        self.noise = Some(noise);
        Ok(self)
    }
    /// With a velocity convention.
    pub fn with_velocity(mut self, v: Velocity) -> Self {
        self.velocity = v;
        self
    }

    /// Move the particles of `mu` by one step (shared by W, WFR and IFT).
    pub fn apply(
        &self,
        mu: &mut Particles,
        energy: &dyn Energy,
        ctx: &mut StepContext,
    ) -> Result<()> {
        let d = mu.dim();
        let n = mu.len();
        let level = self.noise.map(|s| s.level(ctx.step)).unwrap_or(0.0);
        let fv = if level > 0.0 {
            let mut at = mu.x_slice().to_vec();
            for a in at.iter_mut() {
                let u: f64 = ctx.rng.sample(StandardNormal);
                *a += level * u;
            }
            energy.first_variation_at(mu, &at, true)?
        } else {
            energy.first_variation(mu, true)?
        };
        let grad = fv.grad.ok_or_else(|| {
            Error::Other(format!("energy {} returned no gradient", energy.name()))
        })?;
        let scale: Vec<f64> = match self.velocity {
            Velocity::Unweighted => vec![ctx.tau * self.alpha; n],
            Velocity::MassWeighted => mu
                .weights()
                .iter()
                .map(|w| ctx.tau * self.alpha * w * n as f64)
                .collect(),
        };
        let x = mu.x_slice_mut();
        for i in 0..n {
            for k in 0..d {
                x[i * d + k] -= scale[i] * grad[i * d + k];
            }
        }
        Ok(())
    }
}

impl FlowStep for Wasserstein {
    fn name(&self) -> String {
        if self.noise.is_some() {
            "w-noise".into()
        } else {
            "w".into()
        }
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
