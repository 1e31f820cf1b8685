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

use super::mmd_rff::{feature_first_variation, feature_value};
use super::{Energy, FirstVariation};
use crate::error::Result;
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
}

impl Energy for MmdNystromEnergy {
    fn name(&self) -> String {
        "mmd-nystrom".into()
    }
    fn value(&self, mu: &Particles) -> Result<f64> {
        feature_value(&self.nystrom, &self.e_pi, mu)
    }
    fn first_variation_at(
        &self,
        mu: &Particles,
        at: &[f64],
        with_grad: bool,
    ) -> Result<FirstVariation> {
        feature_first_variation(&self.nystrom, &self.e_pi, mu, at, with_grad)
    }
    fn mmd2_to_target(&self, mu: &Particles) -> Option<Result<f64>> {
        Some(self.value(mu).map(|f| 2.0 * f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::{MmdEnergy, MmdRffEnergy};
    use ndarray::Array2;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    fn pts(n: usize, d: usize, shift: f64, seed: u64) -> Particles {
        let mut rng = StdRng::seed_from_u64(seed);
        let v: Vec<f64> = (0..n * d)
            .map(|_| rng.sample::<f64, _>(StandardNormal) + shift)
            .collect();
        Particles::uniform(Array2::from_shape_vec((n, d), v).unwrap()).unwrap()
    }

    /// Relative errors of the value and of the witness gradient against the exact energy.
    fn errors(e: &dyn Energy, exact: &MmdEnergy, mu: &Particles) -> (f64, f64) {
        let v = exact.value(mu).unwrap();
        let fe = exact.first_variation(mu, true).unwrap();
        let fa = e.first_variation(mu, true).unwrap();
        let ge = fe.grad.unwrap();
        let ga = fa.grad.unwrap();
        let num: f64 = ge.iter().zip(&ga).map(|(a, b)| (a - b) * (a - b)).sum();
        let den: f64 = ge.iter().map(|a| a * a).sum();
        ((e.value(mu).unwrap() - v).abs() / v, (num / den).sqrt())
    }

    #[test]
    fn approximate_energies_converge_to_the_exact_one() {
        let target = pts(300, 2, 0.0, 1);
        let mu = pts(200, 2, 0.7, 2);
        let k = Kernel::gaussian(1.0).unwrap();
        let exact = MmdEnergy::new(k, target.clone()).unwrap();
        // Nystrom: more landmarks, smaller errors; all target points as landmarks is
        // the exact energy up to the jitter (mu's points lie near the target's span)
        let ny: Vec<(f64, f64)> = [10usize, 40, 300]
            .iter()
            .map(|&m| {
                errors(
                    &MmdNystromEnergy::new(k, &target, m, 3).unwrap(),
                    &exact,
                    &mu,
                )
            })
            .collect();
        assert!(ny[1].0 < ny[0].0 && ny[2].0 < ny[1].0, "{ny:?}");
        assert!(ny[1].1 < ny[0].1 && ny[2].1 < ny[1].1, "{ny:?}");
        assert!(ny[2].0 < 1e-2 && ny[2].1 < 5e-2, "{ny:?}");
        // random Fourier features: mean over feature seeds, error ~ 1/sqrt(D)
        let rff: Vec<(f64, f64)> = [16usize, 256, 4096]
            .iter()
            .map(|&nf| {
                let mut s = (0.0, 0.0);
                for seed in 0..3 {
                    let e = errors(
                        &MmdRffEnergy::new(k, &target, nf, seed).unwrap(),
                        &exact,
                        &mu,
                    );
                    s = (s.0 + e.0 / 3.0, s.1 + e.1 / 3.0);
                }
                s
            })
            .collect();
        assert!(rff[1].0 < rff[0].0 && rff[2].0 < rff[1].0, "{rff:?}");
        assert!(rff[1].1 < rff[0].1 && rff[2].1 < rff[1].1, "{rff:?}");
        assert!(rff[2].0 < 0.05 && rff[2].1 < 0.1, "{rff:?}");
    }
}
