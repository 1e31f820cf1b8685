//! Ambiguity sets that reweight the data (positions fixed): KL, chi-square and CVaR
//! (phi-divergence DRO: Ben-Tal et al. 2013; Namkoong, Duchi 2016; Rockafellar, Uryasev 2000).
//!
//! With `l_i = l(theta, xi_i)` and weights `w` on the simplex:
//!
//! | set | penalised problem `sup_w w.l - lambda D(w)` | constraint form `D(w) <= rho` |
//! |---|---|---|
//! | `kl`, `D = sum w_i ln(n w_i)` | `w = softmax(l / lambda)`, value `lambda ln mean exp(l / lambda)` | dual `inf_lambda lambda ln mean exp(l/lambda) + lambda rho` |
//! | `chi2`, `D = n ||w||^2 - 1` | `w = Proj_simplex(l / (2 lambda n))` | `mean l + sqrt(rho var(l))` when no weight is clipped; else the 1-D dual |
//! | `cvar`, `w_i <= e^rho / n` | — | mean of the top `alpha = e^-rho` fraction (`t + mean (l - t)_+ / alpha` at `t = VaR`) |
//!
//! As flows of the core: the KL energy [`KlEnergy`] `F(w) = -w.l + lambda KL(w | 1/n)` has
//! first variation `g_i = -l_i + lambda (ln(n w_i) + 1)`; its Fisher-Rao flow
//! ([`crate::flow::FisherRao`], `beta = 1 / lambda`) contracts the log-weights to
//! `l / lambda + const` by the factor `1 - tau` per step. The chi-square energy
//! [`Chi2Energy`] is quadratic in the weights (`H = 2 lambda n I`, `b = l`); its projected
//! step ([`crate::flow::MmdProx`] with the projected-gradient solver, `beta = 1 / (2 lambda n)`)
//! is `w <- Proj((1 - tau) w + tau l / (2 lambda n))`. With `weight_flow` these flows are
//! the solver; by default the closed forms are (they are exact and cost `O(n log n)`).
//!
//! The constraint form tunes `lambda` by bisection (keeping `D(w) <= rho`); the upper bound
//! is the dual value `min_lambda lambda rho + sup_w (w.l - lambda D(w))` over the
//! multipliers tried (weak duality, the inner sup in closed form).

use super::ambiguity::{InnerOptions, Strength};
use super::inner::{mean, FlowInner, PenalizedSet, Problem};
use super::tune::golden;
use super::{
    check_batch, finite_losses, particles, Batch, InnerMax, PointLoss, SetKind, WorstCase,
};
use crate::energy::{Energy, FirstVariation, WeightQuadratic};
use crate::error::Result;
use crate::flow::{FisherRao, MmdProx, ProxSolver};
use crate::linalg::{dot, logsumexp, project_simplex, LinOp};
use crate::measure::Particles;
use std::sync::Arc;

/// `KL(w | 1/n) = sum_i w_i ln(n w_i)`.
pub fn kl_divergence(w: &[f64]) -> f64 {
    let n = w.len() as f64;
    w.iter()
        .filter(|v| **v > 0.0)
        .map(|v| v * (n * v).ln())
        .sum::<f64>()
        .max(0.0)
}

/// `chi^2(w | 1/n) = n ||w||^2 - 1`.
pub fn chi2_divergence(w: &[f64]) -> f64 {
    (w.len() as f64 * dot(w, w) - 1.0).max(0.0)
}

/// The KL-penalised worst case `w = softmax(l / lambda)`.
pub fn kl_penalty_weights(l: &[f64], lambda: f64) -> Vec<f64> {
    let a: Vec<f64> = l.iter().map(|v| v / lambda).collect();
    let z = logsumexp(&a);
    a.iter().map(|v| (v - z).exp()).collect()
}

/// `sup_w w.l - lambda KL(w | 1/n) = lambda ln mean exp(l / lambda)`.
pub fn kl_penalty_value(l: &[f64], lambda: f64) -> f64 {
    let a: Vec<f64> = l.iter().map(|v| v / lambda).collect();
    lambda * (logsumexp(&a) - (l.len() as f64).ln())
}

/// The chi-square-penalised worst case `w = Proj_simplex(l / (2 lambda n))`.
pub fn chi2_penalty_weights(l: &[f64], lambda: f64) -> Vec<f64> {
    let s = 2.0 * lambda * l.len() as f64;
    project_simplex(&l.iter().map(|v| v / s).collect::<Vec<_>>())
}

/// `sup_w w.l - lambda chi^2(w | 1/n)`, at the exact maximiser.
pub fn chi2_penalty_value(l: &[f64], lambda: f64) -> f64 {
    let w = chi2_penalty_weights(l, lambda);
    dot(&w, l) - lambda * (l.len() as f64 * dot(&w, &w) - 1.0)
}

/// The 1-D dual `inf_{lambda > 0} lambda rho + sup_w (w.l - lambda D(w))` by golden
/// section on `ln lambda` (the function is convex in `lambda`, so unimodal in `ln lambda`).
fn dual_value(l: &[f64], rho: f64, pen: impl Fn(&[f64], f64) -> f64) -> f64 {
    let m = mean(l);
    let spread = l.iter().fold(0.0f64, |a, v| a.max((v - m).abs()));
    if spread == 0.0 {
        return m;
    }
    let f = |t: f64| {
        let lam = t.exp();
        lam * rho + pen(l, lam)
    };
    let c = spread.ln();
    golden(f, c - 30.0, c + 30.0, 200).1
}

/// The worst-case risk over the KL ball `KL(P | P_N) <= rho` on the data's support, by
/// its 1-D dual (`max l` when `rho >= ln n`).
pub fn kl_constrained_value(l: &[f64], rho: f64) -> f64 {
    if rho >= (l.len() as f64).ln() {
        return l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    }
    dual_value(l, rho, kl_penalty_value)
}

/// The worst-case risk over the chi-square ball `chi^2(P | P_N) <= rho` on the data's
/// support: `mean l + sqrt(rho var(l))` (population variance) when the maximiser
/// `w_i = (1 + sqrt(rho / var) (l_i - mean)) / n` has no negative weight, else the 1-D dual.
pub fn chi2_constrained_value(l: &[f64], rho: f64) -> f64 {
    let n = l.len() as f64;
    if rho >= n - 1.0 {
        return l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    }
    let m = mean(l);
    let var = l.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n;
    if var == 0.0 {
        return m;
    }
    let s = (rho / var).sqrt();
    let lmin = l.iter().cloned().fold(f64::INFINITY, f64::min);
    if 1.0 + s * (lmin - m) >= 0.0 {
        return m + (rho * var).sqrt();
    }
    dual_value(l, rho, chi2_penalty_value)
}

/// The CVaR worst case: weights `min(1 / (alpha n), remaining)` on the losses sorted in
/// decreasing order, and `CVaR_alpha = sum w_i l_i` (the mean of the top `alpha`
/// fraction when `alpha n` is an integer).
pub fn cvar_weights(l: &[f64], alpha: f64) -> Vec<f64> {
    let n = l.len();
    let cap = 1.0 / (alpha * n as f64);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| l[*b].total_cmp(&l[*a]));
    let mut w = vec![0.0; n];
    let mut left = 1.0f64;
    for &i in &order {
        let v = cap.min(left);
        w[i] = v;
        left -= v;
        if left <= 0.0 {
            break;
        }
    }
    w
}

/// Rockafellar-Uryasev: `CVaR_alpha = min_t t + mean (l - t)_+ / alpha`, evaluated at the
/// minimiser `t = VaR_alpha` (the `ceil(alpha n)`-th largest loss): exact.
pub fn cvar_dual(l: &[f64], alpha: f64) -> (f64, f64) {
    let n = l.len();
    let mut s = l.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    let k = ((alpha * n as f64).ceil() as usize).clamp(1, n);
    let t = s[k - 1];
    let v = t + l.iter().map(|v| (v - t).max(0.0)).sum::<f64>() / (alpha * n as f64);
    (v, t)
}

/// The KL energy `F(w) = -w.l + lambda KL(w | 1/n)` on fixed atoms (the atoms' positions
/// are ignored: `l` holds their losses).
pub struct KlEnergy<'a> {
    /// Losses at the atoms.
    pub l: &'a [f64],
    /// The multiplier.
    pub lambda: f64,
}

impl Energy for KlEnergy<'_> {
    fn name(&self) -> String {
        "kl-dro".into()
    }
    fn value(&self, mu: &Particles) -> Result<f64> {
        let w = mu.weights();
        Ok(-dot(&w, self.l) + self.lambda * kl_divergence(&w))
    }
    fn first_variation_at(
        &self,
        mu: &Particles,
        _at: &[f64],
        with_grad: bool,
    ) -> Result<FirstVariation> {
        let n = mu.len() as f64;
        let g = mu
            .log_weights()
            .iter()
            .zip(self.l)
            .map(|(lw, l)| -l + self.lambda * (n.ln() + lw + 1.0))
            .collect();
        Ok(FirstVariation {
            g,
            grad: with_grad.then(|| vec![0.0; mu.x_slice().len()]),
        })
    }
}

/// The identity operator on `R^n`.
struct Identity(usize);
impl LinOp for Identity {
    fn dim(&self) -> usize {
        self.0
    }
    fn apply(&self, v: &[f64], out: &mut [f64]) {
        out.copy_from_slice(v);
    }
    fn column(&self, j: usize, out: &mut [f64]) {
        out.fill(0.0);
        out[j] = 1.0;
    }
    fn diagonal(&self, out: &mut [f64]) {
        out.fill(1.0);
    }
}

/// The chi-square energy `F(w) = -w.l + lambda (n ||w||^2 - 1)` on fixed atoms.
pub struct Chi2Energy<'a> {
    /// Losses at the atoms.
    pub l: &'a [f64],
    /// The multiplier.
    pub lambda: f64,
}

impl Energy for Chi2Energy<'_> {
    fn name(&self) -> String {
        "chi2-dro".into()
    }
    fn value(&self, mu: &Particles) -> Result<f64> {
        let w = mu.weights();
        Ok(-dot(&w, self.l) + self.lambda * (mu.len() as f64 * dot(&w, &w) - 1.0))
    }
    fn first_variation_at(
        &self,
        mu: &Particles,
        _at: &[f64],
        with_grad: bool,
    ) -> Result<FirstVariation> {
        let n = mu.len() as f64;
        let g = mu
            .weights()
            .iter()
            .zip(self.l)
            .map(|(w, l)| -l + 2.0 * self.lambda * n * w)
            .collect();
        Ok(FirstVariation {
            g,
            grad: with_grad.then(|| vec![0.0; mu.x_slice().len()]),
        })
    }
    fn weight_quadratic(&self, mu: &Particles) -> Option<Result<WeightQuadratic>> {
        let n = mu.len();
        let id: Arc<dyn LinOp + Send> = Arc::new(Identity(n));
        Some(Ok(WeightQuadratic {
            h: id.clone(),
            h_scale: 2.0 * self.lambda * n as f64,
            b: self.l.to_vec(),
            c: -self.lambda,
            metric: id,
        }))
    }
}

/// The `kl` and `chi2` sets as a [`PenalizedSet`]: closed-form (or flow) penalised
/// weights; the constraint form keeps the dual bound over the multipliers tried.
struct Weights {
    set: SetKind,
    weight_flow: bool,
    opts: InnerOptions,
    rho: f64,
    best_ub: f64,
    closed: Option<f64>,
}

impl Weights {
    /// The penalised worst-case weights at `lambda`: the closed form, or the core's flow
    /// (FR for `kl`, projected steps for `chi2`) when `weight_flow` is set.
    fn penalized_weights(&self, l: &[f64], lambda: f64) -> Result<Vec<f64>> {
        let n = l.len();
        if !self.weight_flow {
            return Ok(match self.set {
                SetKind::Kl => kl_penalty_weights(l, lambda),
                _ => chi2_penalty_weights(l, lambda),
            });
        }
        let mut mu = particles(vec![0.0; n], 1, &vec![1.0 / n as f64; n])?;
        match self.set {
            SetKind::Kl => {
                let e = KlEnergy { l, lambda };
                let mut s = FisherRao::new(1.0 / lambda)?;
                self.opts.run_flow(&mut mu, &e, &mut s)?;
            }
            _ => {
                let e = Chi2Energy { l, lambda };
                let mut s = MmdProx::new(1.0 / (2.0 * lambda * n as f64))?
                    .with_solver(ProxSolver::ProjectedGradient)?;
                self.opts.run_flow(&mut mu, &e, &mut s)?;
            }
        }
        let mut w = mu.weights();
        let s: f64 = w.iter().sum();
        w.iter_mut().for_each(|v| *v /= s);
        Ok(w)
    }

    fn divergence_of(&self, w: &[f64]) -> f64 {
        match self.set {
            SetKind::Kl => kl_divergence(w),
            _ => chi2_divergence(w),
        }
    }
    fn penalty_value(&self, l: &[f64], lambda: f64) -> f64 {
        match self.set {
            SetKind::Kl => kl_penalty_value(l, lambda),
            _ => chi2_penalty_value(l, lambda),
        }
    }
    fn max_divergence(&self, n: usize) -> f64 {
        match self.set {
            SetKind::Kl => (n as f64).ln(),
            _ => n as f64 - 1.0,
        }
    }
}

impl PenalizedSet for Weights {
    type Sol = Vec<f64>;
    fn name(&self) -> String {
        self.set.to_string()
    }
    fn prepare(&mut self, _p: &Problem) -> Result<()> {
        self.best_ub = f64::INFINITY;
        self.closed = None;
        Ok(())
    }
    fn penalized(&mut self, p: &Problem, lambda: f64) -> Result<Vec<f64>> {
        self.penalized_weights(&p.l, lambda)
    }
    fn divergence(&self, w: &Vec<f64>) -> f64 {
        self.divergence_of(w)
    }
    fn probe(&mut self, p: &Problem, lam: f64) -> Result<Option<(f64, Vec<f64>)>> {
        let w = self.penalized_weights(&p.l, lam)?;
        self.best_ub = self
            .best_ub
            .min(self.penalty_value(&p.l, lam) + lam * self.rho);
        Ok(Some((self.divergence_of(&w), w)))
    }
    fn first_multiplier(&self, p: &Problem, _radius: f64) -> f64 {
        p.spread().max(1e-12)
    }
    /// The closed form of the constrained value; at a radius beyond the largest
    /// divergence (or for equal losses) the worst case without a bisection.
    fn shortcut(&mut self, p: &Problem, rho: f64) -> Result<Option<WorstCase>> {
        let (l, n) = (&p.l, p.n());
        let closed = match self.set {
            SetKind::Kl => kl_constrained_value(l, rho),
            _ => chi2_constrained_value(l, rho),
        };
        self.closed = Some(closed);
        let spread = p.spread();
        if !(rho >= self.max_divergence(n) || spread == 0.0) {
            return Ok(None);
        }
        let j = (0..n)
            .max_by(|a, b| l[*a].total_cmp(&l[*b]))
            .expect("n >= 1");
        let mut w = vec![0.0; n];
        w[j] = 1.0;
        if spread == 0.0 {
            w = vec![1.0 / n as f64; n];
        }
        self.best_ub = closed;
        Ok(Some(self.worst_case(p, w, 0.0, Some(rho))?))
    }
    fn worst_case(
        &mut self,
        p: &Problem,
        w: Vec<f64>,
        lambda: f64,
        radius: Option<f64>,
    ) -> Result<WorstCase> {
        let l = &p.l;
        let ub = match radius {
            None => self.penalty_value(l, lambda) + lambda * self.divergence_of(&w),
            Some(_) => self.best_ub,
        };
        Ok(WorstCase {
            x: p.batch.x.to_vec(),
            y: p.batch.y.to_vec(),
            value: dot(&w, l),
            radius: self.divergence_of(&w),
            w,
            multiplier: lambda,
            upper_bound: Some(ub),
            closed_form: self.closed,
        })
    }
}

/// The inner solver of the `kl` and `chi2` sets.
pub struct WeightDro(FlowInner<Weights>);

impl WeightDro {
    /// The solver of a checked `kl` or `chi2` set (see [`super::Ambiguity::build`]).
    pub(crate) fn from_parts(
        set: SetKind,
        strength: Strength,
        weight_flow: bool,
        opts: InnerOptions,
    ) -> Self {
        let w = Weights {
            set,
            weight_flow,
            opts: opts.clone(),
            rho: strength.radius().unwrap_or(0.0),
            best_ub: f64::INFINITY,
            closed: None,
        };
        WeightDro(FlowInner::new(w, strength, opts))
    }
}

impl InnerMax for WeightDro {
    fn name(&self) -> String {
        self.0.name()
    }
    fn solve(&mut self, loss: &dyn PointLoss, batch: &Batch) -> Result<WorstCase> {
        self.0.solve(loss, batch)
    }
}

/// The inner solver of the `cvar` set: radius `rho = ln(1 / alpha)`. The reported
/// multiplier is the dual variable of Rockafellar-Uryasev, the threshold `t = VaR_alpha`.
pub struct CvarDro {
    radius: f64,
}

impl CvarDro {
    /// The solver of the checked set at radius `ln(1 / alpha)` (see
    /// [`super::Ambiguity::build`]).
    pub(crate) fn from_radius(radius: f64) -> Self {
        CvarDro { radius }
    }
}

impl InnerMax for CvarDro {
    fn name(&self) -> String {
        "cvar".into()
    }
    fn solve(&mut self, loss: &dyn PointLoss, batch: &Batch) -> Result<WorstCase> {
        let n = check_batch(loss, batch)?;
        let rho = self.radius;
        let l = finite_losses(loss, batch.x, batch.y)?;
        let alpha = (-rho).exp().max(1.0 / n as f64);
        let w = cvar_weights(&l, alpha);
        let (ub, var) = cvar_dual(&l, alpha);
        let value = dot(&w, &l);
        let wmax = w.iter().cloned().fold(0.0, f64::max);
        Ok(WorstCase {
            x: batch.x.to_vec(),
            y: batch.y.to_vec(),
            w,
            value,
            radius: (n as f64 * wmax).ln().max(0.0),
            multiplier: var,
            upper_bound: Some(ub),
            closed_form: Some(value),
        })
    }
}
