//! Wasserstein ambiguity sets: WRM with the squared cost (Sinha, Namkoong, Duchi, ICLR 2018
//! \[WRM]) and the 1-Wasserstein ball with a norm cost for linear models (Mohajerin
//! Esfahani, Kuhn 2018; Shafieezadeh-Abadeh, Mohajerin Esfahani, Kuhn 2015 \[WDRO]).
//!
//! **Squared cost.** `c((x, y), (x0, y0)) = ||x - x0||^2 + kappa 1{y != y0}` (labels fixed
//! when `kappa` is not given). Penalty form: every particle ascends its own
//! `phi_gamma(x0) = sup_x l(theta, x) - gamma c(x, x0)` from its data point: this is the
//! Wasserstein flow ([`crate::flow::Wasserstein`]) of the particle-indexed energy
//! [`WassersteinEnergy`] `F(mu) = sum_i w_i (-l(x_i) + gamma c(x_i, x0_i))`, first variation
//! `g_i = -l(x_i) + gamma c_i`, `grad g_i = -grad l(x_i) + 2 gamma (x_i - x0_i)`. The step
//! uses `alpha = 1 / (2 gamma)`, so `tau = 1` is the fixed-point iteration
//! `x = x0 + grad l(x) / (2 gamma)`, a contraction when `gamma > L_zz / 2` (the inner
//! problem is then strongly concave). With a label cost every data point gets one
//! particle per class (the class-`c` copy pays `kappa` when `c != y0`) and keeps the copy
//! with the largest `phi`: the per-point sup is the max over labels.
//!
//! Constraint form `W_c(P, P_N) <= rho`: `gamma` is tuned by bisection until the mean cost
//! `rho_n = mean_i c(x*_i, x0_i) <= rho`; the worst-case risk reported is
//! `mean l(x*)` (a feasible point: lower bound) and the certificate
//! `min_gamma gamma rho + mean phi_gamma` over the multipliers tried (Sinha's upper bound
//! by weak duality; it holds when the inner sups are solved exactly, e.g. for
//! `gamma > L_zz / 2`). At `rho = rho_n` the identity `mean l(x*) = mean phi + gamma rho_n` holds.
//!
//! **1-Wasserstein, norm cost** ([`W1Dro`], labels fixed): for `l(x) = h(w.x + b)` with `h`
//! convex and `L`-Lipschitz, `sup_{W_1(P, P_N) <= eps} E_P l = mean l + eps L ||w||_*`
//! (exact). The feasible distribution reported moves a fraction `q` of one point's mass a
//! distance `eps n / q` along its steepest direction (the best of `q = 2^-s`,
//! `s = 0..20`, over the 16 points with the steepest losses); it tends to the sup as
//! `q -> 0`.

use super::ambiguity::{InnerOptions, Strength};
use super::inner::{erm_case, mean, FlowInner, PenalizedSet, Problem};
use super::tune::{diverged_as_none, Probe};
use super::{check_batch, finite_losses, particles, Batch, InnerMax, Norm, PointLoss, WorstCase};
use crate::energy::{Energy, FirstVariation};
use crate::error::{Error, Result};
use crate::flow::Wasserstein;
use crate::measure::Particles;

/// The WRM energy `F(mu) = sum_i w_i (-l(x_i, y_i) + gamma ||x_i - x0_i||^2 + o_i)`,
/// particle `i` anchored at its data point `x0_i` with label `y_i` and a fixed extra cost
/// `o_i` (the label cost).
pub struct WassersteinEnergy<'a> {
    /// The model's per-sample loss.
    pub loss: &'a dyn PointLoss,
    /// Anchors, one row per particle (row-major).
    pub x0: &'a [f64],
    /// Labels, one per particle.
    pub y: &'a [f64],
    /// Extra fixed cost per particle (empty: none).
    pub offset: &'a [f64],
    /// The multiplier `gamma` of the transport cost.
    pub gamma: f64,
}

impl WassersteinEnergy<'_> {
    fn check(&self, mu: &Particles, at: &[f64]) -> Result<()> {
        if at.len() != self.x0.len() || mu.len() != self.y.len() {
            return Err(Error::Shape(format!(
                "wasserstein energy: {} particles / {} values for {} anchors",
                mu.len(),
                at.len(),
                self.y.len()
            )));
        }
        Ok(())
    }
    /// The transport cost of every row of `at` (row-major, one row per particle).
    pub fn costs(&self, at: &[f64]) -> Vec<f64> {
        let d = self.x0.len() / self.y.len().max(1);
        at.chunks_exact(d)
            .zip(self.x0.chunks_exact(d))
            .enumerate()
            .map(|(i, (a, b))| {
                crate::kernel::sq_dist(a, b) + self.offset.get(i).copied().unwrap_or(0.0)
            })
            .collect()
    }
}

impl Energy for WassersteinEnergy<'_> {
    fn name(&self) -> String {
        "wrm".into()
    }
    fn value(&self, mu: &Particles) -> Result<f64> {
        self.check(mu, mu.x_slice())?;
        let l = self.loss.losses(mu.x_slice(), self.y)?;
        let c = self.costs(mu.x_slice());
        let w = mu.weights();
        Ok((0..l.len())
            .map(|i| w[i] * (-l[i] + self.gamma * c[i]))
            .sum())
    }
    fn first_variation_at(
        &self,
        mu: &Particles,
        at: &[f64],
        with_grad: bool,
    ) -> Result<FirstVariation> {
        self.check(mu, at)?;
        let c = self.costs(at);
        if !with_grad {
            let l = self.loss.losses(at, self.y)?;
            let g = l.iter().zip(&c).map(|(l, c)| -l + self.gamma * c).collect();
            return Ok(FirstVariation { g, grad: None });
        }
        let (l, gl) = self.loss.losses_and_grads(at, self.y)?;
        let g = l.iter().zip(&c).map(|(l, c)| -l + self.gamma * c).collect();
        let grad = gl
            .iter()
            .zip(at.iter().zip(self.x0))
            .map(|(gl, (a, b))| -gl + 2.0 * self.gamma * (a - b))
            .collect();
        Ok(FirstVariation {
            g,
            grad: Some(grad),
        })
    }
}

/// The per-point solution of the penalised WRM problem at one `gamma`.
#[derive(Debug, Clone)]
pub(crate) struct WrmSolution {
    /// Chosen positions, `n x d`.
    pub x: Vec<f64>,
    /// Chosen labels.
    pub y: Vec<f64>,
    /// Losses at the chosen points.
    pub l: Vec<f64>,
    /// Transport costs of the chosen points.
    pub cost: Vec<f64>,
    /// `phi_i = l_i - gamma c_i`.
    pub phi: Vec<f64>,
    /// All final particle positions (`n x k x d`), for the warm start.
    pub all_x: Vec<f64>,
}

/// Run the WRM flow for one `gamma` on a batch (label cost `label_cost`, inner options
/// `opts`). `start` maps a data point to the start positions of its particles (`k d`
/// values), for warm starts.
pub(crate) fn wrm_penalized(
    loss: &dyn PointLoss,
    b: &Batch,
    label_cost: Option<f64>,
    opts: &InnerOptions,
    gamma: f64,
    start: &dyn Fn(usize) -> Option<Vec<f64>>,
) -> Result<WrmSolution> {
    let n = b.len();
    let d = b.d;
    let (k, kappa) = match label_cost {
        None => (1, 0.0),
        Some(kappa) => {
            let k = loss.n_classes().ok_or_else(|| {
                Error::param(
                    "label-cost",
                    kappa,
                    "a label cost needs a classifier (the model is a regression)",
                )
            })?;
            for (i, y) in b.y.iter().enumerate() {
                if !(y.fract() == 0.0 && *y >= 0.0 && (*y as usize) < k) {
                    return Err(Error::param(
                        "labels",
                        y,
                        &format!("label of point {i} is not a class index in 0..{k}"),
                    ));
                }
            }
            (k, kappa)
        }
    };
    let m = n * k;
    let mut x0 = Vec::with_capacity(m * d);
    let mut ye = Vec::with_capacity(m);
    let mut off = Vec::with_capacity(m);
    let mut x = Vec::with_capacity(m * d);
    for i in 0..n {
        let row = &b.x[i * d..(i + 1) * d];
        let warm = start(i).filter(|v| v.len() == k * d);
        for c in 0..k {
            x0.extend_from_slice(row);
            if k == 1 {
                ye.push(b.y[i]);
                off.push(0.0);
            } else {
                ye.push(c as f64);
                off.push(if c == b.y[i] as usize { 0.0 } else { kappa });
            }
            match &warm {
                Some(v) => x.extend_from_slice(&v[c * d..(c + 1) * d]),
                None => x.extend_from_slice(row),
            }
        }
    }
    let energy = WassersteinEnergy {
        loss,
        x0: &x0,
        y: &ye,
        offset: &off,
        gamma,
    };
    let mut mu = particles(x, d, &vec![1.0 / m as f64; m])?;
    let mut step = Wasserstein::new(1.0 / (2.0 * gamma))?;
    opts.run_flow(&mut mu, &energy, &mut step)?;
    let xf = mu.x_slice().to_vec();
    let l = finite_losses(loss, &xf, &ye)?;
    let c = energy.costs(&xf);
    let mut sol = WrmSolution {
        x: Vec::with_capacity(n * d),
        y: Vec::with_capacity(n),
        l: Vec::with_capacity(n),
        cost: Vec::with_capacity(n),
        phi: Vec::with_capacity(n),
        all_x: Vec::new(),
    };
    for i in 0..n {
        let best = (0..k)
            .map(|c| i * k + c)
            .max_by(|a, b| (l[*a] - gamma * c[*a]).total_cmp(&(l[*b] - gamma * c[*b])))
            .expect("k >= 1");
        sol.x.extend_from_slice(&xf[best * d..(best + 1) * d]);
        sol.y.push(ye[best]);
        sol.l.push(l[best]);
        sol.cost.push(c[best]);
        sol.phi.push(l[best] - gamma * c[best]);
    }
    sol.all_x = xf;
    Ok(sol)
}

/// The WRM set as a [`PenalizedSet`]: the penalised solve is [`wrm_penalized`]; the
/// constraint form keeps Sinha's bound `min gamma rho + mean phi_gamma` over the
/// multipliers tried, and counts a probe whose particles lost risk as diverged.
struct Wrm {
    label_cost: Option<f64>,
    /// The radius of the constraint form (0 in the penalty form).
    rho: f64,
    opts: InnerOptions,
    best_ub: f64,
    sane: usize,
    max_diverged: f64,
}

impl PenalizedSet for Wrm {
    type Sol = WrmSolution;
    fn name(&self) -> String {
        "wasserstein".into()
    }
    fn prepare(&mut self, _p: &Problem) -> Result<()> {
        self.best_ub = f64::INFINITY;
        self.sane = 0;
        self.max_diverged = 0.0;
        Ok(())
    }
    fn penalized(&mut self, p: &Problem, gamma: f64) -> Result<WrmSolution> {
        let start = |i: usize| p.warm(i).cloned();
        wrm_penalized(p.loss, p.batch, self.label_cost, &self.opts, gamma, &start)
    }
    fn divergence(&self, sol: &WrmSolution) -> f64 {
        mean(&sol.cost)
    }
    fn probe(&mut self, p: &Problem, g: f64) -> Result<Option<(f64, WrmSolution)>> {
        let empirical = p.empirical;
        // A probe whose particles lost risk (or blew up) diverged: infeasible.
        let s = diverged_as_none(self.penalized(p, g))?.filter(|s| {
            let (l, c) = (mean(&s.l), mean(&s.cost));
            l.is_finite() && c.is_finite() && l >= empirical - 1e-6 * (1.0 + empirical.abs())
        });
        self.sane += usize::from(s.is_some());
        if s.is_none() {
            self.max_diverged = self.max_diverged.max(g);
        }
        Ok(s.map(|s| {
            self.best_ub = self.best_ub.min(g * self.rho + mean(&s.phi));
            (mean(&s.cost), s)
        }))
    }
    fn first_multiplier(&self, _p: &Problem, _radius: f64) -> f64 {
        1.0
    }
    fn tuned(
        &mut self,
        _p: &Problem,
        rho: f64,
        r: Result<Probe<WrmSolution>>,
    ) -> Result<Probe<WrmSolution>> {
        let sane = self.sane;
        let p = r.map_err(|e| match e {
            Error::InvalidParameter { .. } if sane == 0 => Error::Diverged {
                step: 0,
                detail: format!(
                    "the inner maximisation diverged at every multiplier tried \
                     (radius {rho}); lower --inner-step-size (or raise --inner-steps)"
                ),
            },
            e => e,
        })?;
        // The radius is out of reach only because every smaller multiplier
        // diverged: the inner step is too large for the loss's curvature.
        if p.radius < 0.5 * rho && self.max_diverged >= p.lambda / 4.0 {
            return Err(Error::Diverged {
                step: 0,
                detail: format!(
                    "the inner maximisation diverged at every multiplier below {:.4e}, \
                     where it reaches only {:.4e} of the radius {rho}; lower \
                     --inner-step-size (or raise --inner-steps)",
                    p.lambda, p.radius
                ),
            });
        }
        Ok(p)
    }
    fn warm_rows<'s>(&self, sol: &'s WrmSolution) -> Option<(&'s [f64], usize)> {
        Some((&sol.all_x, sol.all_x.len() / sol.l.len()))
    }
    fn worst_case(
        &mut self,
        p: &Problem,
        sol: WrmSolution,
        gamma: f64,
        radius: Option<f64>,
    ) -> Result<WorstCase> {
        let n = p.n();
        let (r, ub) = match radius {
            None => {
                let r = mean(&sol.cost);
                (r, gamma * r + mean(&sol.phi))
            }
            Some(_) => (mean(&sol.cost), self.best_ub),
        };
        Ok(WorstCase {
            value: mean(&sol.l),
            x: sol.x,
            y: sol.y,
            w: vec![1.0 / n as f64; n],
            radius: r,
            multiplier: gamma,
            upper_bound: Some(ub),
            closed_form: None,
        })
    }
}

/// The inner solver of the `wasserstein` set with the squared cost (WRM).
pub struct WassersteinDro(FlowInner<Wrm>);

impl WassersteinDro {
    /// The solver of a checked set (see [`super::Ambiguity::build`]).
    pub(crate) fn from_parts(
        strength: Strength,
        label_cost: Option<f64>,
        opts: InnerOptions,
    ) -> Self {
        let set = Wrm {
            label_cost,
            rho: strength.radius().unwrap_or(0.0),
            opts: opts.clone(),
            best_ub: f64::INFINITY,
            sane: 0,
            max_diverged: 0.0,
        };
        WassersteinDro(FlowInner::new(set, strength, opts))
    }
}

impl InnerMax for WassersteinDro {
    fn name(&self) -> String {
        self.0.name()
    }
    fn solve(&mut self, loss: &dyn PointLoss, batch: &Batch) -> Result<WorstCase> {
        self.0.solve(loss, batch)
    }
}

/// `mean l + eps L ||w||_*`: the exact sup over the 1-Wasserstein ball of radius `eps`
/// with cost `||x - x'||` (labels fixed) for a model with `l(x) = h(w.x + b)`, `h` convex
/// and `L`-Lipschitz. `None` when the model does not expose `(w, b)` or `L`.
pub fn w1_closed_form(
    loss: &dyn PointLoss,
    batch: &Batch,
    eps: f64,
    norm: Norm,
) -> Result<Option<f64>> {
    check_batch(loss, batch)?;
    crate::error::check_nonneg("radius", eps)?;
    let (Some((w, _)), Some(lip)) = (loss.linear_weights(), loss.score_lipschitz()) else {
        return Ok(None);
    };
    if w.len() != batch.d {
        return Err(Error::Shape(format!(
            "linear weights have {} entries for d = {}",
            w.len(),
            batch.d
        )));
    }
    let l = finite_losses(loss, batch.x, batch.y)?;
    Ok(Some(mean(&l) + eps * lip * norm.dual_of(&w)))
}

/// The inner solver of the 1-Wasserstein set with a norm cost (constraint form).
pub struct W1Dro {
    radius: f64,
    norm: Norm,
}

impl W1Dro {
    /// The solver of the checked set (see [`super::Ambiguity::build`]).
    pub(crate) fn from_parts(radius: f64, norm: Norm) -> Self {
        W1Dro { radius, norm }
    }
}

impl InnerMax for W1Dro {
    fn name(&self) -> String {
        "wasserstein-1".into()
    }
    fn solve(&mut self, loss: &dyn PointLoss, batch: &Batch) -> Result<WorstCase> {
        let n = check_batch(loss, batch)?;
        let d = batch.d;
        let (norm, eps) = (self.norm, self.radius);
        let closed = w1_closed_form(loss, batch, eps, norm)?;
        if eps == 0.0 {
            return erm_case(loss, batch);
        }
        let (l, g) = loss.losses_and_grads(batch.x, batch.y)?;
        super::check_finite_losses(&l)?;
        let base = mean(&l);
        // Candidate points: the steepest 16.
        let mut order: Vec<usize> = (0..n).collect();
        let slope: Vec<f64> = (0..n)
            .map(|i| norm.dual_of(&g[i * d..(i + 1) * d]))
            .collect();
        order.sort_by(|a, b| slope[*b].total_cmp(&slope[*a]));
        order.truncate(16);
        const S: usize = 21;
        let mut xs = Vec::with_capacity(order.len() * S * d);
        let mut ys = Vec::with_capacity(order.len() * S);
        for &j in &order {
            let u = norm.steepest(&g[j * d..(j + 1) * d]);
            for s in 0..S {
                let q = 0.5f64.powi(s as i32);
                let t = eps * n as f64 / q;
                xs.extend((0..d).map(|k| batch.x[j * d + k] + t * u[k]));
                ys.push(batch.y[j]);
            }
        }
        let lm = finite_losses(loss, &xs, &ys)?;
        let mut best = (base, usize::MAX, 0usize);
        for (a, &j) in order.iter().enumerate() {
            for s in 0..S {
                let q = 0.5f64.powi(s as i32);
                let v = base + q / n as f64 * (lm[a * S + s] - l[j]);
                if v > best.0 {
                    best = (v, a, s);
                }
            }
        }
        let mut x = batch.x.to_vec();
        let mut y = batch.y.to_vec();
        let mut w = vec![1.0 / n as f64; n];
        let mut multiplier = closed.map(|c| (c - base) / eps).unwrap_or(f64::NAN);
        let mut radius = 0.0;
        if best.1 != usize::MAX {
            radius = eps;
            let (a, s) = (best.1, best.2);
            let j = order[a];
            let q = 0.5f64.powi(s as i32);
            let t = eps * n as f64 / q;
            w[j] = (1.0 - q) / n as f64;
            x.extend_from_slice(&xs[(a * S + s) * d..(a * S + s + 1) * d]);
            y.push(batch.y[j]);
            w.push(q / n as f64);
            if multiplier.is_nan() {
                multiplier = (lm[a * S + s] - l[j]) / t;
            }
        }
        Ok(WorstCase {
            x,
            y,
            w,
            value: best.0,
            radius,
            multiplier,
            upper_bound: closed,
            closed_form: closed,
        })
    }
}
