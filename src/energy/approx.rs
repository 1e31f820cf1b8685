//! The MMD energy `1/2 MMD^2(mu, pi)` under the `--approx` choice of the command line:
//! exact ([`MmdEnergy`]), random Fourier features ([`MmdRffEnergy`]) or Nystrom
//! ([`MmdNystromEnergy`]); see [`crate::kernel::Approx`].

use super::{Energy, FirstVariation, MmdEnergy, MmdNystromEnergy, MmdRffEnergy, WeightQuadratic};
use crate::error::{Error, Result};
use crate::kernel::{Approx, Kernel, KernelKind};
use crate::measure::Particles;

/// `1/2 MMD^2(mu, pi)`, exact or approximated.
pub enum ApproxMmd {
    /// Exact kernel sums.
    Exact(MmdEnergy),
    /// Random Fourier features (and the kernel they approximate).
    Rff(MmdRffEnergy, Kernel),
    /// Nystrom.
    Nystrom(MmdNystromEnergy),
}

impl ApproxMmd {
    /// The energy for `kernel` and `target` under `approx`; `seed` draws the frequencies
    /// or the landmarks. Random Fourier features need the Gaussian kernel.
    pub fn new(kernel: Kernel, target: Particles, approx: Approx, seed: u64) -> Result<Self> {
        Ok(match approx {
            Approx::Exact => ApproxMmd::Exact(MmdEnergy::new(kernel, target)?),
            Approx::Rff(nf) => {
                if kernel.kind != KernelKind::Gaussian {
                    return Err(Error::param(
                        "approx",
                        approx,
                        "random Fourier features need the Gaussian kernel (use nystrom:M)",
                    ));
                }
                ApproxMmd::Rff(MmdRffEnergy::new(kernel, &target, nf, seed)?, kernel)
            }
            Approx::Nystrom(m) => {
                ApproxMmd::Nystrom(MmdNystromEnergy::new(kernel, &target, m, seed)?)
            }
        })
    }
    /// The (exact) kernel.
    pub fn kernel(&self) -> Kernel {
        match self {
            ApproxMmd::Exact(e) => e.kernel,
            ApproxMmd::Rff(_, k) => *k,
            ApproxMmd::Nystrom(e) => e.nystrom.kernel,
        }
    }
    fn inner(&self) -> &dyn Energy {
        match self {
            ApproxMmd::Exact(e) => e,
            ApproxMmd::Rff(e, _) => e,
            ApproxMmd::Nystrom(e) => e,
        }
    }
}

impl Energy for ApproxMmd {
    fn name(&self) -> String {
        self.inner().name()
    }
    fn value(&self, mu: &Particles) -> Result<f64> {
        self.inner().value(mu)
    }
    fn first_variation_at(
        &self,
        mu: &Particles,
        at: &[f64],
        with_grad: bool,
    ) -> Result<FirstVariation> {
        self.inner().first_variation_at(mu, at, with_grad)
    }
    fn first_variation(&self, mu: &Particles, with_grad: bool) -> Result<FirstVariation> {
        self.inner().first_variation(mu, with_grad)
    }
    fn mmd2_to_target(&self, mu: &Particles) -> Option<Result<f64>> {
        self.inner().mmd2_to_target(mu)
    }
    fn weight_quadratic(&self, mu: &Particles) -> Option<Result<WeightQuadratic>> {
        self.inner().weight_quadratic(mu)
    }
}
