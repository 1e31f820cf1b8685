//! The MMD-geometry weight step: a proximal (JKO) step in the MMD metric with the atoms
//! fixed (Gladin, Dvurechensky, Mielke, Zhu, NeurIPS 2024 \[IFT]; Zhu, Mielke 2024 \[KFR]).
//!
//! `w <- argmin_{w in simplex} F(w) + 1/(2 eta) (w - w0)' M (w - w0)`, `eta = tau beta`,
//! with `F(w) = 1/2 s w'Hw - b'w + c` (for `1/2 MMD^2`: `H = M = K_xx`, `b = K_xy v`).
//!
//! Solvers ([`ProxSolver`]):
//! - `Exact`: the simplex QP `min_{w in simplex} 1/2 w'Qw - c'w` with `Q = s H + M / eta`,
//!   `c = b + M w0 / eta`, solved to a certified tolerance by [`crate::simplex`] (primal
//!   active set on the sparse minimiser, FISTA fallback; see there). With the MMD energy,
//!   `b = K_xy v` comes from the energy's target-potential cache, which the W step of the
//!   next IFT iteration reuses (`MmdEnergy::target_potential`). The step never raises the
//!   prox objective (so never the energy: fact 7). The solver's [`QpReport`] is the step's
//!   diagnostics ([`StepInfo::qp`]), returned to the driver.
//! - `ProjectedGradient`: one projected-gradient step `w <- Proj(w - eta g)` with `g` the
//!   first variation: the cheap variant the reference IFT code runs (one gradient step on
//!   the JKO objective from `w0` is a gradient step on `F`, the proximal term having zero
//!   gradient there). Needs only the first variation, so it works for every energy.
//! - `Affine`: the prox with only the constraint `sum w = 1` (weights may turn negative),
//!   solved exactly by a dense KKT system; on fixed atoms it contracts the excess energy by
//!   exactly `1 / (1 + eta)^2` (docs/DESIGN.md §3, fact 3). For tests and small `n`.

use super::{FlowStep, StepContext, StepInfo};
use crate::energy::{Energy, WeightQuadratic};
use crate::error::{Error, Result};
use crate::linalg::project_simplex;
use crate::measure::Particles;
use serde::{Deserialize, Serialize};

pub use crate::simplex::{solve_prox_affine, solve_prox_qp, QpMethod, QpOptions, QpReport};

/// Which weight update the MMD step uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ProxSolver {
    /// Exact simplex QP by accelerated projected gradient.
    Exact(QpOptions),
    /// One projected-gradient step (the reference code's variant).
    ProjectedGradient,
    /// Exact prox with only the sum-to-one constraint (dense; small `n`).
    Affine,
}

/// The MMD-proximal weight step.
#[derive(Debug, Clone)]
pub struct MmdProx {
    /// Weight `beta` of the MMD part (`eta = tau beta`).
    pub beta: f64,
    /// The solver.
    pub solver: ProxSolver,
}

impl MmdProx {
    /// Exact prox step with default solver settings.
    pub fn new(beta: f64) -> Result<Self> {
        crate::error::check_positive("beta", beta)?;
        Ok(MmdProx {
            beta,
            solver: ProxSolver::Exact(QpOptions::default()),
        })
    }
    /// With another solver.
    pub fn with_solver(mut self, s: ProxSolver) -> Result<Self> {
        if let ProxSolver::Exact(o) = s {
            crate::error::check_positive("qp-tol", o.tol)?;
            crate::error::check_count("qp-max-iter", o.max_iter)?;
        }
        self.solver = s;
        Ok(self)
    }

    /// Apply the weight step to `mu` (shared with IFT); returns the exact solver's report
    /// in [`StepInfo::qp`].
    pub fn apply(
        &mut self,
        mu: &mut Particles,
        energy: &dyn Energy,
        ctx: &mut StepContext,
    ) -> Result<StepInfo> {
        let eta = ctx.tau * self.beta;
        match self.solver {
            ProxSolver::ProjectedGradient => {
                let g = energy.first_variation(mu, false)?.g;
                let w = mu.weights();
                let v: Vec<f64> = w.iter().zip(&g).map(|(a, b)| a - eta * b).collect();
                mu.set_weights(&project_simplex(&v))?;
                Ok(StepInfo::default())
            }
            ProxSolver::Exact(opts) => {
                let q = quadratic_of(energy, mu)?;
                let w0 = mu.weights();
                let (w, rep) = solve_prox_qp(&q, &w0, eta, &opts);
                mu.set_weights(&w)?;
                Ok(StepInfo { qp: Some(rep) })
            }
            ProxSolver::Affine => {
                let q = quadratic_of(energy, mu)?;
                let w = solve_prox_affine(&q, &mu.weights(), eta)?;
                // Particles carry log-weights, so negative weights cannot be stored.
                if let Some((i, v)) = w.iter().enumerate().find(|(_, v)| **v < 0.0) {
                    return Err(Error::Other(format!(
                        "affine prox produced a negative weight {v} at particle {i}: use the simplex solver"
                    )));
                }
                mu.set_weights(&w)?;
                Ok(StepInfo::default())
            }
        }
    }
}

fn quadratic_of(energy: &dyn Energy, mu: &Particles) -> Result<WeightQuadratic> {
    energy.weight_quadratic(mu).unwrap_or_else(|| {
        Err(Error::Other(format!(
            "energy `{}` is not quadratic in the weights: use the projected-gradient MMD step",
            energy.name()
        )))
    })
}

impl FlowStep for MmdProx {
    fn name(&self) -> String {
        match self.solver {
            ProxSolver::ProjectedGradient => "mmd-pg".into(),
            _ => "mmd-prox".into(),
        }
    }
    fn step(
        &mut self,
        mu: &mut Particles,
        energy: &dyn Energy,
        ctx: &mut StepContext,
    ) -> Result<StepInfo> {
        self.apply(mu, energy, ctx)
    }
}
