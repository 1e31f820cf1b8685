//! Kernel-approximated Fisher-Rao step (Zhu, Mielke 2024 \[KFR]).
//!
//! The FR force `g` is replaced by its kernel ridge regression in `L2(mu)`:
//! `g_lambda = K W (K W + lambda I)^{-1} g` with `W = diag(w)`, then the FR mirror step is
//! taken with `g_lambda`. As `lambda -> 0` this tends to FR. For the spherical (probability)
//! flow the centred force `g - int g dmu` is regressed, so the step descends the energy:
//! `dF/dt = -beta <g - gbar, g_lambda>_{L2(mu)} <= 0`. Computed matrix-free and
//! symmetrically: with `A = W^{1/2} K W^{1/2}`, `(A + lambda I) z = W^{1/2} g` by conjugate
//! gradients and `g_lambda = K W^{1/2} z`.

use super::{FisherRao, FlowStep, StepContext, StepInfo};
use crate::energy::Energy;
use crate::error::Result;
use crate::kernel::{GramOp, Kernel};
use crate::linalg::{cg_solve, LinOp};
use crate::measure::Particles;

/// The kernel-regression FR step.
#[derive(Debug, Clone)]
pub struct KernelFr {
    /// The regression kernel.
    pub kernel: Kernel,
    /// Ridge `lambda` (> 0).
    pub lambda: f64,
    /// The FR part (its `beta` and mass convention).
    pub fr: FisherRao,
}

struct Scaled<'a> {
    k: &'a GramOp,
    s: &'a [f64],
}
impl LinOp for Scaled<'_> {
    fn dim(&self) -> usize {
        self.s.len()
    }
    fn apply(&self, v: &[f64], out: &mut [f64]) {
        let sv: Vec<f64> = v.iter().zip(self.s).map(|(a, b)| a * b).collect();
        self.k.apply(&sv, out);
        out.iter_mut().zip(self.s).for_each(|(o, b)| *o *= b);
    }
    fn column(&self, j: usize, out: &mut [f64]) {
        self.k.column(j, out);
        let sj = self.s[j];
        out.iter_mut().zip(self.s).for_each(|(o, b)| *o *= b * sj);
    }
    fn diagonal(&self, out: &mut [f64]) {
        self.k.diagonal(out);
        out.iter_mut().zip(self.s).for_each(|(o, b)| *o *= b * b);
    }
}

impl KernelFr {
    /// Kernel FR with ridge `lambda` and weight `beta`.
    pub fn new(kernel: Kernel, lambda: f64, beta: f64) -> Result<Self> {
        crate::error::check_positive("lambda", lambda)?;
        Ok(KernelFr {
            kernel,
            lambda,
            fr: FisherRao::new(beta)?,
        })
    }

    /// `g_lambda = K W (K W + lambda I)^{-1} g` at the particles of `mu`.
    pub fn smoothed_force(&self, mu: &Particles, g: &[f64]) -> Result<Vec<f64>> {
        let k = GramOp::new(&self.kernel, mu.x_slice(), mu.dim())?;
        let s: Vec<f64> = mu.weights().iter().map(|w| w.sqrt()).collect();
        let rhs: Vec<f64> = g.iter().zip(&s).map(|(a, b)| a * b).collect();
        let z = cg_solve(
            &Scaled { k: &k, s: &s },
            self.lambda,
            &rhs,
            1e-12,
            10 * g.len() + 100,
        );
        let sz: Vec<f64> = z.iter().zip(&s).map(|(a, b)| a * b).collect();
        let mut out = vec![0.0; g.len()];
        k.apply(&sz, &mut out);
        Ok(out)
    }
}

impl FlowStep for KernelFr {
    fn name(&self) -> String {
        "kfr".into()
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
        let mut g = energy.first_variation(mu, false)?.g;
        if self.fr.spherical {
            // On probability measures the force is `g - int g dmu`; the regression does not
            // map constants to constants, so centre before smoothing. Then
            // dF/dt = -beta <g - gbar, S (g - gbar)>_{L2(mu)} <= 0 (S = K W (K W + lambda)^{-1}
            // is positive in L2(mu)); smoothing the raw g can raise the energy.
            let w = mu.weights();
            let mass: f64 = w.iter().sum();
            let gbar = w.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>() / mass;
            g.iter_mut().for_each(|a| *a -= gbar);
        }
        let gl = self.smoothed_force(mu, &g)?;
        self.fr.apply_with(mu, &gl, ctx.tau)?;
        Ok(StepInfo::default())
    }
}
