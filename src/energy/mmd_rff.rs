//! The MMD energy `F(mu) = 1/2 MMD^2(mu, pi)` with random Fourier features
//! (Rahimi, Recht 2007; see `crate::kernel::rff`): `F(mu) ~ 1/2 |z_mu - z_pi|^2` with the
//! mean embeddings `z = sum_i w_i phi(x_i)` of length `2 D`, first variation the
//! approximate witness `f(x) = phi(x) . (z_mu - z_pi)` and its gradient, all in
//! `O((n + m) D d)` instead of `O((n + m)^2 d)`. The target embedding `z_pi` is computed
//! once. Gaussian kernel only; not quadratic-structured for the exact MMD-prox step (use
//! the projected-gradient variant).

use super::{Energy, FirstVariation};
use crate::error::{Error, Result};
use crate::kernel::rff::RandomFourierFeatures;
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

    fn delta(&self, mu: &Particles) -> Result<Vec<f64>> {
        if mu.dim() != self.rff.d {
            return Err(Error::Shape(format!(
                "particles have d = {}, target has d = {}",
                mu.dim(),
                self.rff.d
            )));
        }
        let z = self.rff.embedding(mu.x_slice(), &mu.weights())?;
        Ok(z.iter().zip(&self.z_pi).map(|(a, b)| a - b).collect())
    }
}

impl Energy for MmdRffEnergy {
    fn name(&self) -> String {
        "mmd-rff".into()
    }
    fn value(&self, mu: &Particles) -> Result<f64> {
        let delta = self.delta(mu)?;
        Ok(0.5 * delta.iter().map(|a| a * a).sum::<f64>())
    }
    fn first_variation_at(
        &self,
        mu: &Particles,
        at: &[f64],
        with_grad: bool,
    ) -> Result<FirstVariation> {
        let delta = self.delta(mu)?;
        let (g, grad) = self.rff.witness(at, &delta, with_grad)?;
        Ok(FirstVariation {
            g,
            grad: with_grad.then_some(grad),
        })
    }
    fn mmd2_to_target(&self, mu: &Particles) -> Option<Result<f64>> {
        Some(self.value(mu).map(|f| 2.0 * f))
    }
}
