//! Kernel DRO over an MMD ball (Zhu, Jitkrittum, Diehl, Schoelkopf, AISTATS 2021 \[KDRO]),
//! its inner sup solved by a flow of the core.
//!
//! Energy [`MmdDroEnergy`]: `F(mu) = -E_mu l + lambda/2 MMD^2(mu, P_N)`, the kernel on the
//! inputs (labels ride with their particles and do not change), first variation
//! `g = -l + lambda f` with `f = K(mu - P_N)` the witness (the core's [`crate::energy::MmdEnergy`]),
//! `grad g = -grad_x l + lambda grad f`. With the atoms fixed `F` is quadratic in the
//! weights: `1/2 lambda w'K w - (l + lambda K_{x,data} 1/n)'w + const`, so the core's
//! MMD-prox step solves the weight part exactly (a simplex QP).
//!
//! Inner flows ([`super::InnerFlow`]): `ift` (W step + exact MMD-prox weight step, the
//! default), `wfr` (W step + FR step), `w` (positions only), `prox` (weights only, on the
//! data and the extra support points: the KDRO QP). Step scalings: the W part uses
//! `alpha = 1 / (1 + lambda L_k)` (`L_k` the Lipschitz constant of `grad k`, so that
//! `tau alpha lambda L_k < 1`: the step rule of the MMD flow, Arbel et al. 2019), the prox part `beta = 1 / (tau lambda)` (prox weight
//! equal to the energy's quadratic), the FR part `beta = 1 / (lambda k(0) / n + range l)`.
//! Extra support points: `extra_support` copies of data points (cycled) plus Gaussian noise
//! of standard deviation `h / 2` (`h` the bandwidth), with zero initial weight (a small
//! weight `1e-3` in total for `wfr`, whose multiplicative step cannot revive an empty atom).
//!
//! Constraint form: the radius is the MMD itself (not its square), `MMD(mu, P_N) <= eps`;
//! `lambda` is tuned by bisection. Upper bound (with `certificate`): the KDRO dual on the
//! support points `Z` = the data and the final particles,
//! `min f0 + mean_i f(x_i) + eps ||f||_H` s.t. `l(z) <= f0 + f(z)` for `z in Z`,
//! `f = sum_z a_z k(z, .)`. It is solved through its Lagrangian: for a multiplier `lambda'`
//! the weights-only QP on `Z` gives `w`, and `a = lambda' (w - v)` (`v` = `P_N` on `Z`),
//! `f0 = max_z (l(z) - f(z))` is dual-feasible by construction (so the bound is valid
//! however inexact the QP); `lambda'` is chosen by golden section on `ln lambda'`. The
//! bound covers the distributions supported on `Z` (the flow's particles included), as
//! the support-point relaxation of the KDRO reference code does.

use super::ambiguity::{AmbiguitySet, InnerOptions};
use super::inner::{FlowInner, PenalizedSet, Problem};
use super::tune::golden;
use super::{finite_losses, particles, Batch, InnerFlow, InnerMax, PointLoss, WorstCase};
use crate::energy::{ApproxMmd, Energy, FirstVariation, WeightQuadratic};
use crate::error::{Error, Result};
use crate::flow::{mmd_prox::solve_prox_qp, GeometryParams, QpOptions};
use crate::kernel::{gram, Approx, Bandwidth, GramOp, Kernel, KernelKind};
use crate::linalg::{dot, LinOp};
use crate::measure::Particles;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use std::sync::Arc;

/// `F(mu) = -sum_i w_i l(x_i, y_i) + lambda/2 MMD^2(mu, P_N)`.
pub struct MmdDroEnergy<'a> {
    /// The model's per-sample loss.
    pub loss: &'a dyn PointLoss,
    /// Labels, one per particle.
    pub y: &'a [f64],
    /// `1/2 MMD^2(., P_N)` with the data as target (exact or approximated, `--approx`).
    pub mmd: ApproxMmd,
    /// The multiplier.
    pub lambda: f64,
}

impl<'a> MmdDroEnergy<'a> {
    /// The energy for data `data` (`n x d` row-major, equal weights) and kernel `kernel`.
    pub fn new(
        loss: &'a dyn PointLoss,
        y: &'a [f64],
        kernel: Kernel,
        data: &[f64],
        d: usize,
        lambda: f64,
    ) -> Result<Self> {
        Self::with_approx(loss, y, kernel, data, d, lambda, Approx::Exact, 0)
    }
    /// The same with the MMD term approximated (`approx`, features or landmarks seeded by
    /// `seed`).
    #[allow(clippy::too_many_arguments)]
    pub fn with_approx(
        loss: &'a dyn PointLoss,
        y: &'a [f64],
        kernel: Kernel,
        data: &[f64],
        d: usize,
        lambda: f64,
        approx: Approx,
        seed: u64,
    ) -> Result<Self> {
        let n = data.len() / d;
        let target = particles(data.to_vec(), d, &vec![1.0 / n as f64; n])?;
        Ok(MmdDroEnergy {
            loss,
            y,
            mmd: ApproxMmd::new(kernel, target, approx, seed)?,
            lambda,
        })
    }
    /// `MMD(mu, P_N)`.
    pub fn mmd(&self, mu: &Particles) -> Result<f64> {
        Ok((2.0 * self.mmd.value(mu)?).max(0.0).sqrt())
    }
    fn check(&self, mu: &Particles) -> Result<()> {
        if mu.len() != self.y.len() {
            return Err(Error::Shape(format!(
                "mmd-dro energy: {} particles for {} labels",
                mu.len(),
                self.y.len()
            )));
        }
        Ok(())
    }
}

impl Energy for MmdDroEnergy<'_> {
    fn name(&self) -> String {
        "mmd-dro".into()
    }
    fn value(&self, mu: &Particles) -> Result<f64> {
        self.check(mu)?;
        let l = self.loss.losses(mu.x_slice(), self.y)?;
        Ok(-dot(&mu.weights(), &l) + self.lambda * self.mmd.value(mu)?)
    }
    fn first_variation_at(
        &self,
        mu: &Particles,
        at: &[f64],
        with_grad: bool,
    ) -> Result<FirstVariation> {
        self.check(mu)?;
        let fv = self.mmd.first_variation_at(mu, at, with_grad)?;
        if with_grad {
            let (l, gl) = self.loss.losses_and_grads(at, self.y)?;
            let g = l
                .iter()
                .zip(&fv.g)
                .map(|(l, f)| -l + self.lambda * f)
                .collect();
            let gf = fv.grad.expect("asked for");
            let grad = gl
                .iter()
                .zip(&gf)
                .map(|(a, b)| -a + self.lambda * b)
                .collect();
            Ok(FirstVariation {
                g,
                grad: Some(grad),
            })
        } else {
            let l = self.loss.losses(at, self.y)?;
            let g = l
                .iter()
                .zip(&fv.g)
                .map(|(l, f)| -l + self.lambda * f)
                .collect();
            Ok(FirstVariation { g, grad: None })
        }
    }
    fn weight_quadratic(&self, mu: &Particles) -> Option<Result<WeightQuadratic>> {
        // `None` for an approximated MMD term (not quadratic in the weights)
        let q = self.mmd.weight_quadratic(mu)?;
        Some((|| {
            self.check(mu)?;
            let q = q?;
            let l = self.loss.losses(mu.x_slice(), self.y)?;
            let b =
                q.b.iter()
                    .zip(&l)
                    .map(|(b, l)| self.lambda * b + l)
                    .collect();
            // Small problems: a serial dense Gram matrix (the core's operator is parallel,
            // whose per-product overhead dominates the many products of one QP solve).
            let (h, metric) = if mu.len() <= SERIAL_GRAM_MAX {
                let g: Arc<dyn LinOp + Send> = Arc::new(gram(
                    &self.mmd.kernel(),
                    mu.x_slice(),
                    mu.x_slice(),
                    mu.dim(),
                )?);
                (g.clone(), g)
            } else {
                (q.h, q.metric)
            };
            Ok(WeightQuadratic {
                h,
                h_scale: self.lambda,
                b,
                c: self.lambda * q.c,
                metric,
            })
        })())
    }
}

/// Up to this many atoms the weight QPs use a serial dense Gram matrix.
const SERIAL_GRAM_MAX: usize = 1024;

/// The solution of the penalised MMD problem at one multiplier.
pub(crate) struct MmdSolution {
    x: Vec<f64>,
    y: Vec<f64>,
    w: Vec<f64>,
    value: f64,
    mmd: f64,
}

/// The `mmd` set as a [`PenalizedSet`] (its fields, and the kernel of the current batch).
struct MmdSet {
    flow: InnerFlow,
    kind: KernelKind,
    bandwidth: Bandwidth,
    approx: Approx,
    extra_support: usize,
    opts: InnerOptions,
    kernel: Option<Kernel>,
}

impl MmdSet {
    /// The support particles at the start: data (or warm positions) and extra points.
    fn start(&self, p: &Problem, kernel: &Kernel) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let b = p.batch;
        let (n, d, m) = (b.len(), b.d, self.extra_support);
        let mut x = Vec::with_capacity((n + m) * d);
        for i in 0..n {
            match p.warm(i).filter(|v| v.len() == d) {
                Some(v) => x.extend_from_slice(v),
                None => x.extend_from_slice(&b.x[i * d..(i + 1) * d]),
            }
        }
        let mut y = b.y.to_vec();
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.opts.seed());
        for j in 0..m {
            let i = j % n;
            for k in 0..d {
                let u: f64 = rng.sample(StandardNormal);
                x.push(b.x[i * d + k] + 0.5 * kernel.h * u);
            }
            y.push(b.y[i]);
        }
        let mut w = vec![1.0 / n as f64; n];
        w.extend(std::iter::repeat_n(0.0, m));
        if m > 0 && self.flow == InnerFlow::Wfr {
            let delta = 1e-3;
            w.iter_mut().for_each(|v| *v *= 1.0 - delta);
            w[n..].iter_mut().for_each(|v| *v = delta / m as f64);
        }
        (x, y, w)
    }

    fn kernel(&self) -> Kernel {
        self.kernel.expect("prepared")
    }
}

impl PenalizedSet for MmdSet {
    type Sol = MmdSolution;
    fn name(&self) -> String {
        "mmd".into()
    }
    fn prepare(&mut self, p: &Problem) -> Result<()> {
        self.kernel = Some(Kernel::with_bandwidth(
            self.kind,
            self.bandwidth,
            p.batch.x,
            p.batch.d,
        )?);
        Ok(())
    }
    fn penalized(&mut self, p: &Problem, lambda: f64) -> Result<MmdSolution> {
        let (loss, b, kernel) = (p.loss, p.batch, self.kernel());
        let (n, d) = (b.len(), b.d);
        let (x0, y, w0) = self.start(p, &kernel);
        let energy = MmdDroEnergy::with_approx(
            loss,
            &y,
            kernel,
            b.x,
            d,
            lambda,
            self.approx,
            self.opts.seed(),
        )?;
        let mut mu = particles(x0, d, &w0)?;
        let tau = self.opts.step_size();
        let lk = kernel
            .grad_lipschitz()
            .unwrap_or(1.0 / (kernel.h * kernel.h));
        let alpha = 1.0 / (1.0 + lambda * lk);
        // The inner flow by the geometry registry: transport weight `alpha` (one over the
        // Lipschitz constant of the penalised witness gradient), MMD-prox weight
        // `eta = tau beta = 1 / lambda`, and for `wfr` a Fisher-Rao rate below one over
        // the range of the first variation (`lambda k(0) / n` plus the loss range).
        let beta_fr = if self.flow == InnerFlow::Wfr {
            let (lo, hi) =
                p.l.iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, c), v| {
                        (a.min(*v), c.max(*v))
                    });
            1.0 / (lambda * kernel.diag() / n as f64 + (hi - lo) + 1e-12)
        } else {
            1.0
        };
        let params = GeometryParams {
            alpha,
            beta: 1.0 / (tau * lambda),
            beta_fr,
            qp: QpOptions {
                tol: 1e-8,
                max_iter: 100,
                power_iters: 20,
                ..QpOptions::default()
            },
            ..GeometryParams::default()
        };
        let mut step = self.flow.geometry().build(&params)?;
        self.opts.run_flow(&mut mu, &energy, step.as_mut())?;
        let x = mu.x_slice().to_vec();
        let l = finite_losses(loss, &x, &y)?;
        let mut w = mu.weights();
        let s: f64 = w.iter().sum();
        w.iter_mut().for_each(|v| *v /= s);
        mu.set_weights(&w)?;
        let mmd = energy.mmd(&mu)?;
        Ok(MmdSolution {
            value: dot(&w, &l),
            x,
            y,
            w,
            mmd,
        })
    }
    fn divergence(&self, sol: &MmdSolution) -> f64 {
        sol.mmd
    }
    fn first_multiplier(&self, p: &Problem, eps: f64) -> f64 {
        p.spread().max(1e-6) / eps
    }
    fn warm_rows<'s>(&self, sol: &'s MmdSolution) -> Option<(&'s [f64], usize)> {
        Some((&sol.x, sol.x.len() / sol.y.len()))
    }
    fn worst_case(
        &mut self,
        p: &Problem,
        sol: MmdSolution,
        lambda: f64,
        radius: Option<f64>,
    ) -> Result<WorstCase> {
        let eps = radius.unwrap_or(sol.mmd);
        let upper_bound = if self.opts.certificate() {
            Some(kdro_dual_bound(
                p.loss,
                p.batch,
                &self.kernel(),
                &sol.x,
                &sol.y,
                eps,
                lambda,
            )?)
        } else {
            None
        };
        Ok(WorstCase {
            x: sol.x,
            y: sol.y,
            w: sol.w,
            value: sol.value,
            radius: sol.mmd,
            multiplier: lambda,
            upper_bound,
            closed_form: None,
        })
    }
}

/// The inner solver of the `mmd` set.
pub struct MmdDro(FlowInner<MmdSet>);

impl MmdDro {
    /// The solver of a checked `mmd` set (see [`super::Ambiguity::build`]); `set` must be
    /// [`AmbiguitySet::Mmd`].
    pub(crate) fn from_parts(set: AmbiguitySet, opts: InnerOptions) -> Self {
        let AmbiguitySet::Mmd {
            strength,
            flow,
            kernel,
            bandwidth,
            approx,
            extra_support,
        } = set
        else {
            unreachable!("MmdDro solves the mmd set")
        };
        let s = MmdSet {
            flow,
            kind: kernel,
            bandwidth,
            approx,
            extra_support,
            opts: opts.clone(),
            kernel: None,
        };
        MmdDro(FlowInner::new(s, strength, opts))
    }
}

impl InnerMax for MmdDro {
    fn name(&self) -> String {
        self.0.name()
    }
    fn solve(&mut self, loss: &dyn PointLoss, batch: &Batch) -> Result<WorstCase> {
        self.0.solve(loss, batch)
    }
}

/// The KDRO dual upper bound on `sup { E_P l : supp P in Z, MMD(P, P_N) <= eps }`, with
/// `Z` = the data `b` and the points `(zx, zy)`; `lambda_hint` centres the search over the
/// multiplier. See the module documentation for the method.
pub fn kdro_dual_bound(
    loss: &dyn PointLoss,
    b: &Batch,
    kernel: &Kernel,
    zx: &[f64],
    zy: &[f64],
    eps: f64,
    lambda_hint: f64,
) -> Result<f64> {
    let (n, d) = (b.len(), b.d);
    let mut x = b.x.to_vec();
    x.extend_from_slice(zx);
    let mut y = b.y.to_vec();
    y.extend_from_slice(zy);
    let m = y.len();
    let lz = finite_losses(loss, &x, &y)?;
    let gram: Arc<dyn LinOp + Send> = if m <= SERIAL_GRAM_MAX {
        Arc::new(gram(kernel, &x, &x, d)?)
    } else {
        Arc::new(GramOp::new(kernel, &x, d)?)
    };
    let mut v = vec![0.0; m];
    v[..n].iter_mut().for_each(|a| *a = 1.0 / n as f64);
    let mut kv = vec![0.0; m];
    gram.apply(&v, &mut kv);
    let vkv = dot(&v, &kv);
    let lmax = lz.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    // f = 0, f0 = max l: the trivial feasible point.
    let mut best = lmax;
    let bound_at = |w: &[f64], lam: f64| -> f64 {
        let mut kw = vec![0.0; m];
        gram.apply(w, &mut kw);
        let f: Vec<f64> = (0..m).map(|i| lam * (kw[i] - kv[i])).collect();
        let f0 = (0..m)
            .map(|i| lz[i] - f[i])
            .fold(f64::NEG_INFINITY, f64::max);
        let quad = (dot(w, &kw) - 2.0 * dot(w, &kv) + vkv).max(0.0);
        f0 + dot(&v, &f) + eps * lam * quad.sqrt()
    };
    let opts = QpOptions {
        tol: 1e-9,
        max_iter: 300,
        power_iters: 50,
        ..QpOptions::default()
    };
    let hint = if lambda_hint.is_finite() && lambda_hint > 0.0 {
        lambda_hint
    } else {
        1.0
    };
    let mut eval = |t: f64| -> f64 {
        let lam = t.exp();
        let q = WeightQuadratic {
            h: gram.clone(),
            h_scale: lam,
            b: (0..m).map(|i| lz[i] + lam * kv[i]).collect(),
            c: 0.5 * lam * vkv,
            metric: gram.clone(),
        };
        let (w, _) = solve_prox_qp(&q, &v, 1e4 / lam, &opts);
        let u = bound_at(&w, lam);
        if u < best {
            best = u;
        }
        u
    };
    let c = hint.ln();
    golden(&mut eval, c - 5.0, c + 5.0, 12);
    Ok(best)
}
