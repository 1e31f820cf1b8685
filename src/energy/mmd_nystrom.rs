//! The MMD energy `F(mu) = 1/2 MMD^2(mu, pi)` with the Nystrom approximation
//! (Williams, Seeger 2001; see `crate::kernel::rff`): with `M` landmarks `z` and
//! `K_zz = L L'`, `k(x, y) ~ k_z(x)' K_zz^{-1} k_z(y)`, so with the mean embeddings
//! `e_mu = L^{-1} K_zx w`, `e_pi = L^{-1} K_zy v` (length `M`)
//! `F(mu) ~ 1/2 |e_mu - e_pi|^2`, first variation the approximate witness
//! `f(x) = k_z(x)' alpha` with `alpha = L^{-T} (e_mu - e_pi)` and its gradient
//! `grad f(x) = sum_m alpha_m grad_x k(x, z_m)`: `O((n + m) M d)` per evaluation instead of
//! `O((n + m)^2 d)`. Any kernel. The target embedding is computed once; the landmarks are
//! drawn (seeded, without replacement) from the target sample. Not quadratic-structured
//! for the exact MMD-prox step.

use super::{Energy, FirstVariation};
use crate::error::{Error, Result};
use crate::kernel::rff::Nystrom;
use crate::kernel::Kernel;
use crate::measure::Particles;

/// `1/2 MMD^2(mu, pi)` by a Nystrom approximation on `M` landmarks.
#[derive(Debug, Clone)]
pub struct MmdNystromEnergy {
    /// The approximation.
    pub nystrom: Nystrom,
    e_pi: Vec<f64>,
}

impl MmdNystromEnergy {
    /// The energy for `kernel`, target `target` (weights used as given) and `landmarks`
    /// landmarks drawn from the target's points with `seed` (all of them when the target
    /// has fewer points).
    pub fn new(kernel: Kernel, target: &Particles, landmarks: usize, seed: u64) -> Result<Self> {
        let m = landmarks.min(target.len());
        let nystrom = Nystrom::from_sample(&kernel, target.x_slice(), target.dim(), m, seed)?;
        let e_pi = nystrom.embedding(target.x_slice(), &target.weights())?;
        Ok(MmdNystromEnergy { nystrom, e_pi })
    }

    fn delta(&self, mu: &Particles) -> Result<Vec<f64>> {
        if mu.dim() != self.nystrom.d {
            return Err(Error::Shape(format!(
                "particles have d = {}, target has d = {}",
                mu.dim(),
                self.nystrom.d
            )));
        }
        let e = self.nystrom.embedding(mu.x_slice(), &mu.weights())?;
        Ok(e.iter().zip(&self.e_pi).map(|(a, b)| a - b).collect())
    }
}

impl Energy for MmdNystromEnergy {
    fn name(&self) -> String {
        "mmd-nystrom".into()
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
        let (g, grad) = self.nystrom.witness(at, &delta, with_grad)?;
        Ok(FirstVariation {
            g,
            grad: with_grad.then_some(grad),
        })
    }
    fn mmd2_to_target(&self, mu: &Particles) -> Option<Result<f64>> {
        Some(self.value(mu).map(|f| 2.0 * f))
    }
}
