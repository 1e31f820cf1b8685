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

use super::wasserstein::{erm_case, WassersteinEnergy};
use super::weights::{kl_divergence, kl_penalty_value};
use super::{
    check_batch, finite_losses, particles, run_core_flow, AmbiguityConfig, Batch, InnerMax,
    PointLoss, SetKind, WorstCase,
};
use crate::energy::{Energy, FirstVariation};
use crate::error::{Error, Result};
use crate::flow::Wfr;
use crate::linalg::dot;
use crate::measure::Particles;
use std::collections::HashMap;

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

/// The inner solver of the `wfr` set (penalty form: `penalty = gamma`,
/// `kl_penalty = lambda`, default `gamma`).
pub struct WfrDro {
    cfg: AmbiguityConfig,
    warm: HashMap<usize, Vec<f64>>,
}

impl WfrDro {
    /// A solver for a validated configuration of the `wfr` set.
    pub fn new(cfg: AmbiguityConfig) -> Result<Self> {
        cfg.validate()?;
        if cfg.set != SetKind::Wfr || cfg.penalty.is_none() {
            return Err(Error::param(
                "ambiguity",
                cfg.set,
                "WfrDro solves the wfr set in the penalty form",
            ));
        }
        Ok(WfrDro {
            cfg,
            warm: HashMap::new(),
        })
    }
}

impl InnerMax for WfrDro {
    fn name(&self) -> String {
        "wfr".into()
    }
    fn solve(&mut self, loss: &dyn PointLoss, batch: &Batch) -> Result<WorstCase> {
        let n = check_batch(loss, batch)?;
        let d = batch.d;
        let gamma = self.cfg.penalty.expect("checked");
        let lambda = self.cfg.kl_penalty.unwrap_or(gamma);
        if !gamma.is_finite() {
            return erm_case(loss, batch);
        }
        let mut x = Vec::with_capacity(n * d);
        for i in 0..n {
            let warm = if self.cfg.warm_start && !batch.idx.is_empty() {
                self.warm.get(&batch.idx[i]).filter(|v| v.len() == d)
            } else {
                None
            };
            match warm {
                Some(v) => x.extend_from_slice(v),
                None => x.extend_from_slice(&batch.x[i * d..(i + 1) * d]),
            }
        }
        let energy = WfrEnergy {
            transport: WassersteinEnergy {
                loss,
                x0: batch.x,
                y: batch.y,
                offset: &[],
                gamma,
            },
            lambda,
        };
        let mut mu = particles(x, d, &vec![1.0 / n as f64; n])?;
        let mut step = Wfr::new(1.0 / (2.0 * gamma), 1.0 / lambda)?;
        run_core_flow(
            &mut mu,
            &energy,
            &mut step,
            self.cfg.inner_steps,
            self.cfg.inner_step_size,
            self.cfg.seed,
        )?;
        let xf = mu.x_slice().to_vec();
        let mut w = mu.weights();
        let s: f64 = w.iter().sum();
        w.iter_mut().for_each(|v| *v /= s);
        let l = finite_losses(loss, &xf, batch.y)?;
        let c = energy.transport.costs(&xf);
        let phi: Vec<f64> = l.iter().zip(&c).map(|(l, c)| l - gamma * c).collect();
        let radius = dot(&w, &c) + lambda / gamma * kl_divergence(&w);
        let ub = gamma * radius + kl_penalty_value(&phi, lambda);
        if self.cfg.warm_start && !batch.idx.is_empty() {
            for i in 0..n {
                self.warm
                    .insert(batch.idx[i], xf[i * d..(i + 1) * d].to_vec());
            }
        }
        Ok(WorstCase {
            value: dot(&w, &l),
            x: xf,
            y: batch.y.to_vec(),
            w,
            radius,
            multiplier: gamma,
            upper_bound: Some(ub),
            closed_form: None,
        })
    }
}
