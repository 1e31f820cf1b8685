//! The unbalanced Wasserstein-Fisher-Rao ambiguity set: particles move and pay the
//! transport cost from their own data point, weights change and pay a KL penalty.
//!
//! Energy [`WfrEnergy`]: `F(mu) = sum_i w_i (-l(x_i) + gamma ||x_i - x0_i||^2) + lambda KL(w | 1/n)`,
//! first variation `g_i = -l(x_i) + gamma c_i + lambda (ln(n w_i) + 1)`, gradient
//! `-grad l(x_i) + 2 gamma (x_i - x0_i)`; solved by the core's [`crate::flow::Wfr`] step
//! (W part `alpha = 1 / (2 gamma)`, FR part `beta = 1 / lambda`, as in the WRM and KL
//! sets). The penalty is `gamma D` with `D = sum_i w_i c_i + (lambda / gamma) KL(w | 1/n)`.
//!
//! Exact solution: the position part is the WRM problem of each point, `x*_i` with
//! `phi_i = l(x*_i) - gamma c(x*_i, x0_i)`, and the weights are `softmax(phi / lambda)`;
//! `sup -F = lambda ln mean exp(phi / lambda)`. With the weights frozen the flow is WRM,
//! with the positions frozen it is the KL flow of [`super::weights`].

use super::ambiguity::{InnerOptions, Strength};
use super::inner::{FlowInner, PenalizedSet, Problem};
use super::wasserstein::WassersteinEnergy;
use super::weights::{kl_divergence, kl_penalty_value};
use super::{finite_losses, particles, Batch, InnerMax, PointLoss, WorstCase};
use crate::energy::{Energy, FirstVariation};
use crate::error::Result;
use crate::flow::Wfr;
use crate::linalg::dot;
use crate::measure::Particles;

/// `F(mu) = sum_i w_i (-l(x_i) + gamma ||x_i - x0_i||^2) + lambda KL(w | 1/n)`.
pub struct WfrEnergy<'a> {
    /// The transport part (loss, anchors, labels, `gamma`).
    pub transport: WassersteinEnergy<'a>,
    /// The multiplier of the KL term.
    pub lambda: f64,
}

impl Energy for WfrEnergy<'_> {
    fn name(&self) -> String {
        "wfr-dro".into()
    }
    fn value(&self, mu: &Particles) -> Result<f64> {
        Ok(self.transport.value(mu)? + self.lambda * kl_divergence(&mu.weights()))
    }
    fn first_variation_at(
        &self,
        mu: &Particles,
        at: &[f64],
        with_grad: bool,
    ) -> Result<FirstVariation> {
        let mut fv = self.transport.first_variation_at(mu, at, with_grad)?;
        let ln_n = (mu.len() as f64).ln();
        for (g, lw) in fv.g.iter_mut().zip(mu.log_weights()) {
            *g += self.lambda * (ln_n + lw + 1.0);
        }
        Ok(fv)
    }
}

/// The `wfr` set as a [`PenalizedSet`] (penalty form only: the multiplier given to the
/// solve is `gamma`; the KL multiplier is `kl_penalty`, default `gamma`).
struct WfrSet {
    kl_penalty: Option<f64>,
    opts: InnerOptions,
}

/// The final particles of the WFR flow and the divergence they reached.
struct WfrSolution {
    x: Vec<f64>,
    w: Vec<f64>,
    l: Vec<f64>,
    radius: f64,
    upper_bound: f64,
}

impl PenalizedSet for WfrSet {
    type Sol = WfrSolution;
    fn name(&self) -> String {
        "wfr".into()
    }
    fn penalized(&mut self, p: &Problem, gamma: f64) -> Result<WfrSolution> {
        let (batch, n, d) = (p.batch, p.n(), p.batch.d);
        let lambda = self.kl_penalty.unwrap_or(gamma);
        let mut x = Vec::with_capacity(n * d);
        for i in 0..n {
            match p.warm(i).filter(|v| v.len() == d) {
                Some(v) => x.extend_from_slice(v),
                None => x.extend_from_slice(&batch.x[i * d..(i + 1) * d]),
            }
        }
        let energy = WfrEnergy {
            transport: WassersteinEnergy {
                loss: p.loss,
                x0: batch.x,
                y: batch.y,
                offset: &[],
                gamma,
            },
            lambda,
        };
        let mut mu = particles(x, d, &vec![1.0 / n as f64; n])?;
        let mut step = Wfr::new(1.0 / (2.0 * gamma), 1.0 / lambda)?;
        self.opts.run_flow(&mut mu, &energy, &mut step)?;
        let xf = mu.x_slice().to_vec();
        let mut w = mu.weights();
        let s: f64 = w.iter().sum();
        w.iter_mut().for_each(|v| *v /= s);
        let l = finite_losses(p.loss, &xf, batch.y)?;
        let c = energy.transport.costs(&xf);
        let phi: Vec<f64> = l.iter().zip(&c).map(|(l, c)| l - gamma * c).collect();
        let radius = dot(&w, &c) + lambda / gamma * kl_divergence(&w);
        let upper_bound = gamma * radius + kl_penalty_value(&phi, lambda);
        Ok(WfrSolution {
            x: xf,
            w,
            l,
            radius,
            upper_bound,
        })
    }
    fn divergence(&self, sol: &WfrSolution) -> f64 {
        sol.radius
    }
    fn first_multiplier(&self, _p: &Problem, _radius: f64) -> f64 {
        unreachable!("wfr has only the penalty form (checked)")
    }
    fn warm_rows<'s>(&self, sol: &'s WfrSolution) -> Option<(&'s [f64], usize)> {
        Some((&sol.x, sol.x.len() / sol.w.len()))
    }
    fn worst_case(
        &mut self,
        p: &Problem,
        sol: WfrSolution,
        gamma: f64,
        _radius: Option<f64>,
    ) -> Result<WorstCase> {
        Ok(WorstCase {
            value: dot(&sol.w, &sol.l),
            x: sol.x,
            y: p.batch.y.to_vec(),
            w: sol.w,
            radius: sol.radius,
            multiplier: gamma,
            upper_bound: Some(sol.upper_bound),
            closed_form: None,
        })
    }
}

/// The inner solver of the `wfr` set (penalty form: `penalty = gamma`,
/// `kl_penalty = lambda`, default `gamma`).
pub struct WfrDro(FlowInner<WfrSet>);

impl WfrDro {
    /// The solver of the checked set (see [`super::Ambiguity::build`]).
    pub(crate) fn from_parts(penalty: f64, kl_penalty: Option<f64>, opts: InnerOptions) -> Self {
        let set = WfrSet {
            kl_penalty,
            opts: opts.clone(),
        };
        WfrDro(FlowInner::new(set, Strength::Penalty(penalty), opts))
    }
}

impl InnerMax for WfrDro {
    fn name(&self) -> String {
        self.0.name()
    }
    fn solve(&mut self, loss: &dyn PointLoss, batch: &Batch) -> Result<WorstCase> {
        self.0.solve(loss, batch)
    }
}
