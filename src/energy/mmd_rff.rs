//! The MMD energy `F(mu) = 1/2 MMD^2(mu, pi)` with random Fourier features
//! (Rahimi, Recht 2007; see `crate::kernel::rff`): `F(mu) ~ 1/2 |z_mu - z_pi|^2` with the
//! mean embeddings `z = sum_i w_i phi(x_i)` of length `2 D`, first variation the
//! approximate witness `f(x) = phi(x) . (z_mu - z_pi)` and its gradient, all in
//! `O((n + m) D d)` instead of `O((n + m)^2 d)`. The target embedding `z_pi` is computed
//! once. Gaussian kernel only; not quadratic-structured for the exact MMD-prox step (use
//! the projected-gradient variant).

use super::{Energy, FirstVariation};
use crate::error::{Error, Result};
use crate::kernel::rff::{FeatureMap, RandomFourierFeatures};
use crate::kernel::Kernel;
use crate::measure::Particles;

/// `1/2 MMD^2(mu, pi)` by `D` seeded random Fourier features.
#[derive(Debug, Clone)]
pub struct MmdRffEnergy {
    /// The features.
    pub rff: RandomFourierFeatures,
    z_pi: Vec<f64>,
}

impl MmdRffEnergy {
    /// The energy for the Gaussian `kernel`, target `target` (weights used as given),
    /// `features` random frequencies drawn from `seed`.
    pub fn new(kernel: Kernel, target: &Particles, features: usize, seed: u64) -> Result<Self> {
        let rff = RandomFourierFeatures::new(&kernel, target.dim(), features, seed)?;
        let z_pi = rff.embedding(target.x_slice(), &target.weights())?;
        Ok(MmdRffEnergy { rff, z_pi })
    }
}

/// `e_mu - e_pi` for a feature map (shared by the feature-map MMD energies).
pub(crate) fn feature_delta(
    map: &dyn FeatureMap,
    e_pi: &[f64],
    mu: &Particles,
) -> Result<Vec<f64>> {
    if mu.dim() != map.input_dim() {
        return Err(Error::Shape(format!(
            "particles have d = {}, target has d = {}",
            mu.dim(),
            map.input_dim()
        )));
    }
    let e = map.mean_embedding(mu.x_slice(), &mu.weights())?;
    Ok(e.iter().zip(e_pi).map(|(a, b)| a - b).collect())
}

/// `F(mu) = 1/2 |e_mu - e_pi|^2`.
pub(crate) fn feature_value(map: &dyn FeatureMap, e_pi: &[f64], mu: &Particles) -> Result<f64> {
    let delta = feature_delta(map, e_pi, mu)?;
    Ok(0.5 * delta.iter().map(|a| a * a).sum::<f64>())
}

/// The first variation: the approximate witness `phi(x) . (e_mu - e_pi)` and its gradient.
pub(crate) fn feature_first_variation(
    map: &dyn FeatureMap,
    e_pi: &[f64],
    mu: &Particles,
    at: &[f64],
    with_grad: bool,
) -> Result<FirstVariation> {
    let delta = feature_delta(map, e_pi, mu)?;
    let (g, grad) = map.witness_of(at, &delta, with_grad)?;
    Ok(FirstVariation {
        g,
        grad: with_grad.then_some(grad),
    })
}

impl Energy for MmdRffEnergy {
    fn name(&self) -> String {
        "mmd-rff".into()
    }
    fn value(&self, mu: &Particles) -> Result<f64> {
        feature_value(&self.rff, &self.z_pi, mu)
    }
    fn first_variation_at(
        &self,
        mu: &Particles,
        at: &[f64],
        with_grad: bool,
    ) -> Result<FirstVariation> {
        feature_first_variation(&self.rff, &self.z_pi, mu, at, with_grad)
    }
    fn mmd2_to_target(&self, mu: &Particles) -> Option<Result<f64>> {
        Some(self.value(mu).map(|f| 2.0 * f))
    }
}
