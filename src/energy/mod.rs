//! Energies `F(mu)` over weighted particle measures, with their first variation
//! `g = dF/dmu` at the particles and its spatial gradient `grad g`.
//!
//! | energy | first variation | module |
//! |---|---|---|
//! | `1/2 MMD^2(mu, pi)` (= kernelised forward KL `KL(pi | mu)` \[IKL\]) | witness `f = K(mu - pi)` | [`mmd`] |
//! | the same by random Fourier features / Nystrom (`--approx`) | approximate witness | [`mmd_rff`], [`mmd_nystrom`], [`approx`] |
//! | DRO Lagrangian `-E_mu l + lambda D(mu, P_N)` | `-l + lambda dD/dmu` | `crate::dro` |
//! | `1/2 KSD^2(mu | pi)` | `sum_i w_i k_pi(., x_i)` | `crate::inference` |
//!
//! The trait is particle-indexed: `g_i` may depend on the particle's index as well as on
//! its position (the Wasserstein-DRO energy charges each particle the transport cost
//! from its own data point). Energies that are quadratic in the weights with the atoms
//! fixed expose that structure ([`WeightQuadratic`]) for the MMD-proximal weight step.

pub mod approx;
pub mod mmd;
pub mod mmd_nystrom;
pub mod mmd_rff;

pub use approx::ApproxMmd;
pub use mmd::MmdEnergy;
pub use mmd_nystrom::MmdNystromEnergy;
pub use mmd_rff::MmdRffEnergy;

use crate::error::Result;
use crate::linalg::LinOp;
use crate::measure::Particles;
use std::sync::Arc;

/// The first variation `g_i = dF/dmu (x_i)` at `n` points and optionally its gradient
/// `grad g (x_i)` (row-major `n x d`).
#[derive(Debug, Clone, Default)]
pub struct FirstVariation {
    /// Values `g_i`.
    pub g: Vec<f64>,
    /// Gradients `grad_x g(x_i)`, row-major, when asked for.
    pub grad: Option<Vec<f64>>,
}

/// `F(w) = 1/2 s w'Hw - b'w + c` on fixed atoms, and the metric `M` of the MMD geometry
/// on those atoms (the proximal term is `1/(2 eta) (w - w0)' M (w - w0)`).
pub struct WeightQuadratic {
    /// The operator `H` (usually a Gram matrix).
    pub h: Arc<dyn LinOp + Send>,
    /// The scale `s` in front of `H`.
    pub h_scale: f64,
    /// The linear term `b`.
    pub b: Vec<f64>,
    /// The constant `c`.
    pub c: f64,
    /// The metric operator `M` of the MMD geometry (often the same Gram matrix as `H`).
    pub metric: Arc<dyn LinOp + Send>,
}

impl WeightQuadratic {
    /// `F(w)` (one product with `H`).
    pub fn value(&self, w: &[f64]) -> f64 {
        let mut hw = vec![0.0; w.len()];
        self.h.apply(w, &mut hw);
        0.5 * self.h_scale * crate::linalg::dot(w, &hw) - crate::linalg::dot(&self.b, w) + self.c
    }
}

/// An energy over weighted particle measures.
pub trait Energy {
    /// A short name for traces and reports.
    fn name(&self) -> String;
    /// `F(mu)`.
    fn value(&self, mu: &Particles) -> Result<f64>;
    /// The first variation of `F` at `mu`, evaluated at the rows of `at` (row-major,
    /// `d` columns). For particle-indexed energies `at` must have one row per particle
    /// (row `i` is a perturbed position of particle `i`, as in noise injection).
    fn first_variation_at(
        &self,
        mu: &Particles,
        at: &[f64],
        with_grad: bool,
    ) -> Result<FirstVariation>;
    /// The first variation at the particles themselves.
    fn first_variation(&self, mu: &Particles, with_grad: bool) -> Result<FirstVariation> {
        self.first_variation_at(mu, mu.x_slice(), with_grad)
    }
    /// `MMD^2(mu, pi)` to the target when the energy knows one (for traces).
    fn mmd2_to_target(&self, _mu: &Particles) -> Option<Result<f64>> {
        None
    }
    /// The weight-quadratic structure with the atoms of `mu` fixed, if the energy has one.
    fn weight_quadratic(&self, _mu: &Particles) -> Option<Result<WeightQuadratic>> {
        None
    }
}
