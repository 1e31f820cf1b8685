//! Exact full-batch solvers for the convex training problems: linear (squared loss),
//! logistic and softmax models under ERM and the ambiguity sets whose robust objective is
//! convex in the parameters, solved to a certified relative tolerance (default `1e-9`).
//!
//! With scores `s_i = W^T x_i + b`, per-sample losses `l_i(theta)` (convex in
//! `theta = (W, b)`) and `wd/2 ||W||^2` added when `--weight-decay` is set, the objectives are
//! (robustflow's definitions, see [`crate::dro`]):
//!
//! | set | objective | method |
//! |---|---|---|
//! | `none` | `mean l` | Newton |
//! | `wasserstein` + norm, binary / linear | `mean l + eps L ||w||_*` (`L = 1` logistic; the squared loss is not Lipschitz: `+inf` unless `w = 0`) | barrier (SOC / box) + Newton |
//! | `wasserstein` + norm, softmax | `mean l + eps max_{j,c} ||w_j - w_c||_*` (the Lipschitz constant of `lse(s) - s_c` in `x`) | barrier + Newton |
//! | `kl`, penalty `lambda` | `lambda ln mean exp(l / lambda)` | Newton |
//! | `kl`, radius `rho` | `min_{lambda > 0} lambda rho + lambda ln mean exp(l / lambda)` (jointly convex) | Newton in `(theta, lambda)` |
//! | `chi2`, penalty `lambda` | `min_eta eta + lambda + mean (l - eta)_+^2 / (4 lambda)` | semismooth Newton in `(theta, eta)` |
//! | `chi2`, radius `rho` | `min_eta eta + sqrt(1 + rho) sqrt(mean (l - eta)_+^2)` (Duchi, Namkoong 2019) | semismooth Newton in `(theta, eta)` |
//! | `cvar`, `alpha = e^-rho` | `min_t t + mean (l - t)_+ / alpha` (Rockafellar, Uryasev 2000) | barrier + Newton |
//! | `wasserstein` penalty `gamma` (squared cost), binary / linear | `mean_i sup_delta h_i(s_i + delta) - gamma delta^2 / ||w||^2` | Newton, inner sup in closed form / 1-D Newton |
//!
//! The squared-cost penalty is solved only where each point's inner problem is strictly
//! concave, `gamma > ||w||^2 sup h'' / 2` (`||w||^2 < 8 gamma` logistic, `< gamma` squared
//! loss, where beyond it the sup is infinite); when the minimiser sits on that boundary the
//! solver says so ([`Status::NotConcave`]).
//!
//! **Stopping test.** Smooth objectives (every row but the norm and CVaR ones): the
//! relative gradient norm `||grad F|| / max(1, |F|) <= tol` (first-order optimality, `F` is
//! `C^1`: the `(.)_+^2` of chi2 is). Non-smooth ones are written as conic programs (epigraph
//! variables `t >= ||v||` with the log barriers `-mu ln(t^2 - ||v||^2)`, the hinge as
//! `min_u c u - mu ln(u - a) - mu ln u`, eliminated in closed form) and followed along the
//! central path; the duality gap of a centred point is `nu mu` (`nu` the barrier
//! parameter, Boyd & Vandenberghe 11.2), plus the Newton decrement for inexact centring, and
//! the test is `(nu mu + lambda_N^2) / max(1, |F|) <= tol`.
//!
//! **No minimiser.** Under `none`, `kl`, `chi2` and `cvar` without weight decay, a
//! classifier's objective has no minimiser when the training data are (strictly) linearly
//! separable: the loss tends to 0 along a separating direction. The solver stops as soon as
//! an iterate separates every training point (a certificate) and reports
//! [`Status::Separable`].

// Dense numerical kernels index several arrays in step.
#![allow(clippy::needless_range_loop)]

use crate::dro::{Ambiguity, AmbiguitySet, Norm, Strength};
use crate::error::{Error, Result};
use crate::model::Head;
use serde::{Deserialize, Serialize};

/// The convex robust objective the exact solver minimises.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExactSet {
    /// Empirical risk.
    Erm,
    /// 1-Wasserstein ball of radius `eps`, cost `||x - x'||` in `norm`, labels fixed.
    W1 {
        /// The cost norm (the penalty uses its dual).
        norm: Norm,
        /// The radius.
        eps: f64,
    },
    /// KL penalty `lambda`.
    KlPenalty(f64),
    /// KL ball of radius `rho`.
    KlRadius(f64),
    /// Chi-square penalty `lambda`.
    Chi2Penalty(f64),
    /// Chi-square ball of radius `rho`.
    Chi2Radius(f64),
    /// CVaR at level `alpha`.
    Cvar(f64),
    /// Squared-cost Wasserstein penalty `gamma` (labels fixed).
    W2Penalty(f64),
}

impl ExactSet {
    /// The exact problem of a checked ambiguity set for a model head, or the reason why
    /// there is none (non-convex or not covered).
    pub fn from_config(amb: &Ambiguity, head: Head, n: usize) -> std::result::Result<Self, String> {
        use Strength::{Penalty, Radius};
        let nf = n as f64;
        Ok(match amb.set() {
            AmbiguitySet::None => ExactSet::Erm,
            AmbiguitySet::W1 { radius, .. } if *radius == 0.0 => ExactSet::Erm,
            AmbiguitySet::W1 { radius, norm } => ExactSet::W1 {
                norm: *norm,
                eps: *radius,
            },
            AmbiguitySet::Wasserstein {
                strength: Penalty(g),
                label_cost: None,
            } => {
                if matches!(head, Head::Multi(_)) {
                    return Err("the squared-cost penalty of a softmax model is not covered by the exact solver".into());
                }
                ExactSet::W2Penalty(*g)
            }
            AmbiguitySet::Wasserstein {
                strength: Radius(r),
                ..
            } if *r == 0.0 => ExactSet::Erm,
            AmbiguitySet::Wasserstein { .. } => {
                return Err("the squared-cost Wasserstein set is solved exactly only in the penalty form without a label cost".into())
            }
            AmbiguitySet::Kl { strength, .. } => match *strength {
                Radius(0.0) => ExactSet::Erm,
                Radius(r) if r >= nf.ln() => ExactSet::Cvar(1.0 / nf),
                Radius(r) => ExactSet::KlRadius(r),
                Penalty(l) => ExactSet::KlPenalty(l),
            },
            AmbiguitySet::Chi2 { strength, .. } => match *strength {
                Radius(0.0) => ExactSet::Erm,
                Radius(r) if r >= nf - 1.0 => ExactSet::Cvar(1.0 / nf),
                Radius(r) => ExactSet::Chi2Radius(r),
                Penalty(l) => ExactSet::Chi2Penalty(l),
            },
            AmbiguitySet::Cvar { radius } if *radius == 0.0 => ExactSet::Erm,
            AmbiguitySet::Cvar { radius } => ExactSet::Cvar((-radius).exp()),
            AmbiguitySet::Mmd { .. } | AmbiguitySet::Wfr { .. } => {
                return Err(format!("the {} set moves particles through a kernel: not a convex problem in the parameters", amb.kind()))
            }
        })
    }
}

/// How the exact solver ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The stopping test holds.
    Converged,
    /// The training data are linearly separable: no minimiser exists.
    Separable,
    /// The minimiser of the squared-cost penalty is where the inner problem stops being
    /// concave.
    NotConcave,
    /// The iteration budget ran out (or the line search stalled) before the test held.
    NotConverged,
}

/// The result of an exact fit.
#[derive(Debug, Clone)]
pub struct ExactFit {
    /// The parameters in the order of [`crate::model::Model::params_flat`] (`W` as
    /// `d x k` row-major, then `b`).
    pub theta: Vec<f64>,
    /// The robust objective at `theta` (with the weight-decay term).
    pub objective: f64,
    /// Newton iterations.
    pub iterations: usize,
    /// The relative optimality measure reached.
    pub optimality: f64,
    /// `gradient-norm` or `duality-gap`.
    pub measure: &'static str,
    /// How the solver ended.
    pub status: Status,
    /// Messages for the user (no minimiser, degenerate problem, ...).
    pub warnings: Vec<String>,
}

/// An exact problem on standardised training data.
pub struct ExactProblem<'a> {
    /// Inputs, row-major `n x d`.
    pub x: &'a [f64],
    /// Labels (class index) or responses.
    pub y: &'a [f64],
    /// Input dimension.
    pub d: usize,
    /// Model head (binary, multi-class, regression).
    pub head: Head,
    /// Weight decay `wd/2 ||W||^2`.
    pub wd: f64,
    /// The robust objective.
    pub set: ExactSet,
    /// Relative tolerance of the stopping test.
    pub tol: f64,
    /// Newton iteration budget.
    pub max_iter: usize,
}

/// Per-sample losses, score derivatives `r_i = dl/ds` (`k`) and Hessians `Q_i` (`k x k`).
struct PerSample {
    l: Vec<f64>,
    r: Vec<f64>,
    q: Vec<f64>,
}

fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}
fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Loss `h(s)`, `h'`, `h''` of a one-output head.
fn h1(head: Head, s: f64, y: f64) -> (f64, f64, f64) {
    match head {
        Head::Regression => ((s - y) * (s - y), 2.0 * (s - y), 2.0),
        _ => {
            let p = sigmoid(s);
            (softplus(s) - s * y, p - y, p * (1.0 - p))
        }
    }
}

/// Dense symmetric system solve by Cholesky with a small ridge (retried larger on failure).
fn chol_solve(h: &[f64], g: &[f64], m: usize) -> Option<Vec<f64>> {
    let scale = (0..m)
        .map(|i| h[i * m + i].abs())
        .fold(0.0, f64::max)
        .max(1e-300);
    let mut ridge = 1e-13 * scale;
    for _ in 0..8 {
        let mut l = h.to_vec();
        for i in 0..m {
            l[i * m + i] += ridge;
        }
        let mut ok = true;
        for j in 0..m {
            let mut s = l[j * m + j];
            for p in 0..j {
                s -= l[j * m + p] * l[j * m + p];
            }
            if s <= 0.0 || !s.is_finite() {
                ok = false;
                break;
            }
            let dj = s.sqrt();
            l[j * m + j] = dj;
            for i in j + 1..m {
                let mut s = l[i * m + j];
                for p in 0..j {
                    s -= l[i * m + p] * l[j * m + p];
                }
                l[i * m + j] = s / dj;
            }
        }
        if ok {
            let mut z = g.to_vec();
            for i in 0..m {
                let mut s = z[i];
                for p in 0..i {
                    s -= l[i * m + p] * z[p];
                }
                z[i] = s / l[i * m + i];
            }
            for i in (0..m).rev() {
                let mut s = z[i];
                for p in i + 1..m {
                    s -= l[p * m + i] * z[p];
                }
                z[i] = s / l[i * m + i];
            }
            return Some(z);
        }
        ridge = (ridge * 100.0).max(1e-12 * scale);
    }
    None
}

/// Value, gradient and (optionally) Hessian of a smooth function of the variables.
struct Eval {
    f: f64,
    g: Vec<f64>,
    h: Vec<f64>,
}

/// A combiner `C(l, e)` of the per-sample losses with extra variables `e`, and its
/// derivatives: gradient `c` in `l`, Hessian `diag(a) + sum beta (v_l, v_e)(v_l, v_e)^T`
/// in `l` (and `e` through the low-rank terms), cross `cle` (`n x me`), `ce`, `cee`.
struct Comb {
    val: f64,
    c: Vec<f64>,
    a: Vec<f64>,
    low: Vec<(f64, Vec<f64>, Vec<f64>)>,
    cle: Vec<f64>,
    ce: Vec<f64>,
    cee: Vec<f64>,
}

/// A log-barrier term `-mu ln q`: `Quad`: `q = z_t^2 - sum_m (z_{p_m} - z_{n_m})^2`
/// (`n_m` optional); `Lin`: `q = z_t - sum z_minus`.
enum Barrier {
    Quad {
        t: usize,
        v: Vec<(usize, Option<usize>)>,
    },
    Lin {
        t: usize,
        minus: Vec<usize>,
    },
}

impl Barrier {
    fn nu(&self) -> f64 {
        match self {
            Barrier::Quad { .. } => 2.0,
            Barrier::Lin { .. } => 1.0,
        }
    }
    /// `q`, its sparse gradient, and whether `q` has the quadratic Hessian.
    fn q(&self, z: &[f64]) -> (f64, Vec<(usize, f64)>) {
        match self {
            Barrier::Quad { t, v } => {
                let mut q = z[*t] * z[*t];
                let mut g = vec![(*t, 2.0 * z[*t])];
                for &(p, nn) in v {
                    let vm = z[p] - nn.map(|k| z[k]).unwrap_or(0.0);
                    q -= vm * vm;
                    g.push((p, -2.0 * vm));
                    if let Some(k) = nn {
                        g.push((k, 2.0 * vm));
                    }
                }
                (q, g)
            }
            Barrier::Lin { t, minus } => {
                let mut q = z[*t];
                let mut g = vec![(*t, 1.0)];
                for &k in minus {
                    q -= z[k];
                    g.push((k, -1.0));
                }
                (q, g)
            }
        }
    }
}

/// The smoothed hinge `phi(a) = min_{u > max(a, 0)} c u - mu ln(u - a) - mu ln u`:
/// value, first and second derivative (envelope / implicit function).
fn smooth_hinge(a: f64, c: f64, mu: f64) -> (f64, f64, f64) {
    let sq = (c * c * a * a + 4.0 * mu * mu).sqrt();
    // u = ((c a + 2 mu) + sq) / (2c), u - a = ((2 mu - c a) + sq) / (2c), both stable.
    let (u, ua) = if a >= 0.0 {
        let u = (c * a + 2.0 * mu + sq) / (2.0 * c);
        let ua = (2.0 * mu + 4.0 * mu * mu / (sq + c * a)) / (2.0 * c);
        (u, ua)
    } else {
        let u = (2.0 * mu + 4.0 * mu * mu / (sq - c * a)) / (2.0 * c);
        (u, u - a)
    };
    let val = c * u - mu * ua.ln() - mu * u.ln();
    let d1 = mu / ua;
    let du = (c * u - mu) / sq;
    let d2 = -mu * (du - 1.0) / (ua * ua);
    (val, d1, d2)
}

impl ExactProblem<'_> {
    fn n(&self) -> usize {
        self.y.len()
    }
    fn k(&self) -> usize {
        self.head.n_out()
    }
    fn dtheta(&self) -> usize {
        (self.d + 1) * self.k()
    }
    fn scores(&self, th: &[f64]) -> Vec<f64> {
        let (n, d, k) = (self.n(), self.d, self.k());
        let mut s = vec![0.0; n * k];
        for i in 0..n {
            let xi = &self.x[i * d..(i + 1) * d];
            for o in 0..k {
                let mut a = th[d * k + o];
                for j in 0..d {
                    a += xi[j] * th[j * k + o];
                }
                s[i * k + o] = a;
            }
        }
        s
    }
    fn per_sample(&self, s: &[f64]) -> PerSample {
        let (n, k) = (self.n(), self.k());
        let mut l = vec![0.0; n];
        let mut r = vec![0.0; n * k];
        let mut q = vec![0.0; n * k * k];
        for i in 0..n {
            match self.head {
                Head::Multi(_) => {
                    let si = &s[i * k..(i + 1) * k];
                    let m = si.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = si.iter().map(|v| (v - m).exp()).collect();
                    let z: f64 = e.iter().sum();
                    let c = self.y[i] as usize;
                    l[i] = m + z.ln() - si[c];
                    for o in 0..k {
                        let p = e[o] / z;
                        r[i * k + o] = p - if o == c { 1.0 } else { 0.0 };
                        for o2 in 0..k {
                            let p2 = e[o2] / z;
                            q[i * k * k + o * k + o2] = if o == o2 { p - p * p } else { -p * p2 };
                        }
                    }
                }
                _ => {
                    let (a, b, c) = h1(self.head, s[i], self.y[i]);
                    l[i] = a;
                    r[i] = b;
                    q[i] = c;
                }
            }
        }
        PerSample { l, r, q }
    }

    /// Does `th` separate every training point strictly?
    fn separates(&self, th: &[f64]) -> bool {
        let k = self.k();
        let s = self.scores(th);
        (0..self.n()).all(|i| match self.head {
            Head::Binary => (2.0 * self.y[i] - 1.0) * s[i] > 0.0,
            Head::Multi(_) => {
                let c = self.y[i] as usize;
                (0..k).all(|o| o == c || s[i * k + c] > s[i * k + o])
            }
            Head::Regression => false,
        })
    }

    /// Assemble `sum_i` terms of the data part from per-sample weights.
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        &self,
        ps: &PerSample,
        cb: &Comb,
        me: usize,
        m: usize,
        hess: bool,
        g: &mut [f64],
        h: &mut [f64],
    ) {
        let (n, d, k) = (self.n(), self.d, self.k());
        let dt = self.dtheta();
        let mut xt = vec![0.0; d + 1];
        let mut mm = vec![0.0; k * k];
        for i in 0..n {
            xt[..d].copy_from_slice(&self.x[i * d..(i + 1) * d]);
            xt[d] = 1.0;
            let ri = &ps.r[i * k..(i + 1) * k];
            for j in 0..=d {
                for o in 0..k {
                    g[j * k + o] += cb.c[i] * ri[o] * xt[j];
                }
            }
            if !hess {
                continue;
            }
            for o in 0..k {
                for o2 in 0..k {
                    mm[o * k + o2] =
                        cb.c[i] * ps.q[i * k * k + o * k + o2] + cb.a[i] * ri[o] * ri[o2];
                }
            }
            if k == 1 {
                let w = mm[0];
                if w != 0.0 {
                    for j in 0..=d {
                        let a = w * xt[j];
                        let row = &mut h[j * m + j..j * m + d + 1];
                        for (hv, xv) in row.iter_mut().zip(&xt[j..=d]) {
                            *hv += a * xv;
                        }
                    }
                }
            } else {
                for j in 0..=d {
                    for j2 in j..=d {
                        let xx = xt[j] * xt[j2];
                        if xx == 0.0 {
                            continue;
                        }
                        for o in 0..k {
                            let row = (j * k + o) * m + j2 * k;
                            for o2 in 0..k {
                                h[row + o2] += mm[o * k + o2] * xx;
                            }
                        }
                    }
                }
            }
            for q in 0..me {
                let w = cb.cle[i * me + q];
                if w != 0.0 {
                    for j in 0..=d {
                        for o in 0..k {
                            h[(j * k + o) * m + dt + q] += w * ri[o] * xt[j];
                        }
                    }
                }
            }
        }
        for q in 0..me {
            g[dt + q] += cb.ce[q];
        }
        if !hess {
            return;
        }
        // Symmetrise the theta block (upper triangle by (j, j2) blocks filled above).
        for j in 0..=d {
            for j2 in j + 1..=d {
                for o in 0..k {
                    for o2 in 0..k {
                        h[(j2 * k + o2) * m + j * k + o] = h[(j * k + o) * m + j2 * k + o2];
                    }
                }
            }
        }
        for a in 0..dt {
            for q in 0..me {
                h[(dt + q) * m + a] = h[a * m + dt + q];
            }
        }
        for q in 0..me {
            for q2 in 0..me {
                h[(dt + q) * m + dt + q2] += cb.cee[q * me + q2];
            }
        }
        for (beta, vl, ve) in &cb.low {
            let mut u = vec![0.0; dt + me];
            for i in 0..n {
                if vl[i] == 0.0 {
                    continue;
                }
                for j in 0..d {
                    let xv = self.x[i * d + j] * vl[i];
                    for o in 0..k {
                        u[j * k + o] += xv * ps.r[i * k + o];
                    }
                }
                for o in 0..k {
                    u[d * k + o] += vl[i] * ps.r[i * k + o];
                }
            }
            u[dt..dt + me].copy_from_slice(ve);
            for a in 0..dt + me {
                if u[a] == 0.0 {
                    continue;
                }
                for b in 0..dt + me {
                    h[a * m + b] += beta * u[a] * u[b];
                }
            }
        }
    }

    /// The combiner of the set at losses `l` and extras `e` (barrier weight `mu` for CVaR).
    fn combine(&self, l: &[f64], e: &[f64], mu: f64) -> Option<Comb> {
        let n = l.len();
        let nf = n as f64;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / nf;
        let plain = |val: f64, c: Vec<f64>| Comb {
            val,
            c,
            a: vec![0.0; n],
            low: Vec::new(),
            cle: Vec::new(),
            ce: Vec::new(),
            cee: Vec::new(),
        };
        Some(match self.set {
            ExactSet::Erm | ExactSet::W1 { .. } => plain(mean(l), vec![1.0 / nf; n]),
            ExactSet::KlPenalty(lam) | ExactSet::KlRadius(lam) => {
                let (lam, rho, me) = match self.set {
                    ExactSet::KlRadius(rho) => (e[0], rho, 1),
                    _ => (lam, 0.0, 0),
                };
                if lam.is_nan() || lam <= 0.0 {
                    return None;
                }
                let mx = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let ex: Vec<f64> = l.iter().map(|v| ((v - mx) / lam).exp()).collect();
                let z: f64 = ex.iter().sum();
                let lse = mx / lam + z.ln() - nf.ln();
                let p: Vec<f64> = ex.iter().map(|v| v / z).collect();
                let el: f64 = p.iter().zip(l).map(|(a, b)| a * b).sum();
                let mut cb = Comb {
                    val: lam * rho + lam * lse,
                    c: p.clone(),
                    a: p.iter().map(|v| v / lam).collect(),
                    low: vec![(-1.0 / lam, p.clone(), vec![0.0; me])],
                    cle: vec![0.0; n * me],
                    ce: vec![0.0; me],
                    cee: vec![0.0; me * me],
                };
                if me == 1 {
                    let var: f64 = p.iter().zip(l).map(|(a, b)| a * (b - el) * (b - el)).sum();
                    cb.ce[0] = rho + lse - el / lam;
                    cb.cee[0] = var / (lam * lam * lam);
                    for i in 0..n {
                        cb.cle[i] = -p[i] * (l[i] - el) / (lam * lam);
                    }
                }
                cb
            }
            ExactSet::Chi2Penalty(lam) => {
                let eta = e[0];
                let rp: Vec<f64> = l.iter().map(|v| (v - eta).max(0.0)).collect();
                let s = 1.0 / (2.0 * lam * nf);
                let act: Vec<f64> = rp.iter().map(|v| if *v > 0.0 { s } else { 0.0 }).collect();
                Comb {
                    val: eta + lam + rp.iter().map(|v| v * v).sum::<f64>() / (4.0 * lam * nf),
                    c: rp.iter().map(|v| v * s).collect(),
                    cle: act.iter().map(|v| -v).collect(),
                    ce: vec![1.0 - rp.iter().map(|v| v * s).sum::<f64>()],
                    cee: vec![act.iter().sum()],
                    a: act,
                    low: Vec::new(),
                }
            }
            ExactSet::Chi2Radius(rho) => {
                let eta = e[0];
                let kap = (1.0 + rho).sqrt();
                let rp: Vec<f64> = l.iter().map(|v| (v - eta).max(0.0)).collect();
                let gg = rp.iter().map(|v| v * v).sum::<f64>() / nf;
                if gg <= 0.0 {
                    // Every loss below eta: the value is eta, the gradient leaves the kink.
                    return Some(Comb {
                        val: eta,
                        c: vec![0.0; n],
                        a: vec![0.0; n],
                        low: Vec::new(),
                        cle: vec![0.0; n],
                        ce: vec![1.0],
                        cee: vec![0.0],
                    });
                }
                let sg = gg.sqrt();
                let c: Vec<f64> = rp.iter().map(|v| kap * v / (nf * sg)).collect();
                let act: Vec<f64> = rp
                    .iter()
                    .map(|v| if *v > 0.0 { kap / (nf * sg) } else { 0.0 })
                    .collect();
                let sr: f64 = rp.iter().sum();
                // rank one: -kap / (4 G^1.5) grad G grad G^T, grad G = (2 r / n, -2 sum r / n)
                let beta = -kap / (4.0 * gg * sg);
                Comb {
                    val: eta + kap * sg,
                    ce: vec![1.0 - c.iter().sum::<f64>()],
                    cle: act.iter().map(|v| -v).collect(),
                    cee: vec![act.iter().sum()],
                    low: vec![(
                        beta,
                        rp.iter().map(|v| 2.0 * v / nf).collect(),
                        vec![-2.0 * sr / nf],
                    )],
                    c,
                    a: act,
                }
            }
            ExactSet::Cvar(alpha) => {
                let t = e[0];
                let c = 1.0 / (alpha * nf);
                let mut cb = Comb {
                    val: t,
                    c: vec![0.0; n],
                    a: vec![0.0; n],
                    low: Vec::new(),
                    cle: vec![0.0; n],
                    ce: vec![1.0],
                    cee: vec![0.0],
                };
                for i in 0..n {
                    let (v, d1, d2) = smooth_hinge(l[i] - t, c, mu);
                    cb.val += v;
                    cb.c[i] = d1;
                    cb.a[i] = d2;
                    cb.cle[i] = -d2;
                    cb.ce[0] -= d1;
                    cb.cee[0] += d2;
                }
                cb
            }
            ExactSet::W2Penalty(_) => unreachable!("handled by w2_eval"),
        })
    }

    fn set_extras(&self) -> usize {
        match self.set {
            ExactSet::KlRadius(_)
            | ExactSet::Chi2Penalty(_)
            | ExactSet::Chi2Radius(_)
            | ExactSet::Cvar(_) => 1,
            _ => 0,
        }
    }

    /// The W1 penalty as epigraph variables with barriers: `(linear coefficients on the
    /// extras, barrier terms, initial extras)`; indices are absolute.
    fn w1_barriers(&self, norm: Norm, eps: f64, base: usize) -> (Vec<f64>, Vec<Barrier>, Vec<f64>) {
        let (d, k) = (self.d, self.k());
        let w = |j: usize, o: usize| j * k + o;
        let mut coef = Vec::new();
        let mut bars = Vec::new();
        let mut init = Vec::new();
        match self.head {
            Head::Binary | Head::Regression => match norm {
                // cost l2: dual l2, one t >= ||w||_2
                Norm::L2 => {
                    coef.push(eps);
                    init.push(1.0);
                    bars.push(Barrier::Quad {
                        t: base,
                        v: (0..d).map(|j| (w(j, 0), None)).collect(),
                    });
                }
                // cost l1: dual linf, t >= |w_j|
                Norm::L1 => {
                    coef.push(eps);
                    init.push(1.0);
                    for j in 0..d {
                        bars.push(Barrier::Quad {
                            t: base,
                            v: vec![(w(j, 0), None)],
                        });
                    }
                }
                // cost linf: dual l1, t_j >= |w_j|
                Norm::Linf => {
                    for j in 0..d {
                        coef.push(eps);
                        init.push(1.0);
                        bars.push(Barrier::Quad {
                            t: base + j,
                            v: vec![(w(j, 0), None)],
                        });
                    }
                }
            },
            Head::Multi(_) => {
                let mut present = vec![false; k];
                for &y in self.y {
                    present[y as usize] = true;
                }
                let pairs: Vec<(usize, usize)> = (0..k)
                    .flat_map(|a| (a + 1..k).map(move |b| (a, b)))
                    .filter(|&(a, b)| present[a] || present[b])
                    .collect();
                coef.push(eps);
                let t = base;
                match norm {
                    Norm::L2 => {
                        init.push(1.0);
                        for &(a, b) in &pairs {
                            bars.push(Barrier::Quad {
                                t,
                                v: (0..d).map(|j| (w(j, a), Some(w(j, b)))).collect(),
                            });
                        }
                    }
                    Norm::L1 => {
                        init.push(1.0);
                        for &(a, b) in &pairs {
                            for j in 0..d {
                                bars.push(Barrier::Quad {
                                    t,
                                    v: vec![(w(j, a), Some(w(j, b)))],
                                });
                            }
                        }
                    }
                    Norm::Linf => {
                        init.push(d as f64 + 1.0);
                        let mut next = base + 1;
                        for &(a, b) in &pairs {
                            let mut minus = Vec::new();
                            for j in 0..d {
                                coef.push(0.0);
                                init.push(1.0);
                                bars.push(Barrier::Quad {
                                    t: next,
                                    v: vec![(w(j, a), Some(w(j, b)))],
                                });
                                minus.push(next);
                                next += 1;
                            }
                            bars.push(Barrier::Lin { t, minus });
                        }
                    }
                }
            }
        }
        (coef, bars, init)
    }

    /// The exact W1 penalty `eps L max ||.||_*` at `th`.
    fn w1_penalty(&self, norm: Norm, eps: f64, th: &[f64]) -> f64 {
        let (d, k) = (self.d, self.k());
        match self.head {
            Head::Multi(_) => {
                let mut present = vec![false; k];
                for &y in self.y {
                    present[y as usize] = true;
                }
                let mut best = 0.0f64;
                for a in 0..k {
                    for b in a + 1..k {
                        if present[a] || present[b] {
                            let v: Vec<f64> =
                                (0..d).map(|j| th[j * k + a] - th[j * k + b]).collect();
                            best = best.max(norm.dual_of(&v));
                        }
                    }
                }
                eps * best
            }
            _ => eps * norm.dual_of(&th[..d]),
        }
    }

    fn wd_term(&self, th: &[f64]) -> f64 {
        let nw = self.d * self.k();
        0.5 * self.wd * th[..nw].iter().map(|v| v * v).sum::<f64>()
    }

    /// Squared-cost penalty data term (binary / regression heads).
    fn w2_eval(&self, gamma: f64, th: &[f64], hess: bool, m: usize) -> Option<Eval> {
        let (n, d) = (self.n(), self.d);
        let nf = n as f64;
        let a: f64 = th[..d].iter().map(|v| v * v).sum();
        let qmax = if self.head == Head::Regression {
            2.0
        } else {
            0.25
        };
        if a * qmax >= 2.0 * gamma * (1.0 - 1e-12) {
            return None;
        }
        let s = self.scores(th);
        let mut f = 0.0;
        let mut g = vec![0.0; m];
        let mut h = vec![0.0; if hess { m * m } else { 0 }];
        let (mut sa, mut saa) = (0.0, 0.0);
        let mut vsa = vec![0.0; d + 1];
        for i in 0..n {
            // u solves h'(s + a u) = 2 gamma u (unique: the map is decreasing).
            let u = match self.head {
                Head::Regression => (s[i] - self.y[i]) / (gamma - a),
                _ => {
                    let (mut lo, mut hi) = (-1.0 / (2.0 * gamma), 1.0 / (2.0 * gamma));
                    let mut u = 0.0;
                    for _ in 0..100 {
                        let (_, h1v, h2v) = h1(self.head, s[i] + a * u, self.y[i]);
                        let fu = h1v - 2.0 * gamma * u;
                        if fu > 0.0 {
                            lo = u;
                        } else {
                            hi = u;
                        }
                        let step = fu / (2.0 * gamma - a * h2v);
                        let mut nu = u + step;
                        if !(nu > lo && nu < hi) {
                            nu = 0.5 * (lo + hi);
                        }
                        if (nu - u).abs() <= 1e-16 * (1.0 + u.abs()) {
                            u = nu;
                            break;
                        }
                        u = nu;
                    }
                    u
                }
            };
            let (hv, _h1v, q) = h1(self.head, s[i] + a * u, self.y[i]);
            let psi = hv - gamma * a * u * u;
            let psi_s = 2.0 * gamma * u;
            let psi_a = gamma * u * u;
            let den = 2.0 * gamma - a * q;
            let psi_ss = q * 2.0 * gamma / den;
            let psi_sa = 2.0 * gamma * q * u / den;
            let psi_aa = 2.0 * gamma * q * u * u / den;
            f += psi / nf;
            sa += psi_a / nf;
            saa += psi_aa / nf;
            let xi = &self.x[i * d..(i + 1) * d];
            for j in 0..d {
                g[j] += psi_s * xi[j] / nf;
            }
            g[d] += psi_s / nf;
            if hess {
                for j in 0..=d {
                    let xj = if j < d { xi[j] } else { 1.0 };
                    vsa[j] += psi_sa * xj / nf;
                    for j2 in j..=d {
                        let x2 = if j2 < d { xi[j2] } else { 1.0 };
                        h[j * m + j2] += psi_ss * xj * x2 / nf;
                    }
                }
            }
        }
        for j in 0..d {
            g[j] += sa * 2.0 * th[j];
        }
        if hess {
            for j in 0..=d {
                for j2 in 0..j {
                    h[j * m + j2] = h[j2 * m + j];
                }
            }
            for j in 0..=d {
                for j2 in 0..d {
                    // vsa (x) 2w + 2w (x) vsa
                    h[j * m + j2] += vsa[j] * 2.0 * th[j2];
                    h[j2 * m + j] += vsa[j] * 2.0 * th[j2];
                }
            }
            for j in 0..d {
                for j2 in 0..d {
                    h[j * m + j2] += saa * 4.0 * th[j] * th[j2];
                }
                h[j * m + j] += 2.0 * sa;
            }
        }
        Some(Eval { f, g, h })
    }

    /// The objective (barrier-smoothed at `mu` where the set is non-smooth) at `z`.
    fn eval(
        &self,
        z: &[f64],
        mu: f64,
        hess: bool,
        bars: &[Barrier],
        coef: &[f64],
        m: usize,
    ) -> Option<Eval> {
        let dt = self.dtheta();
        let me = self.set_extras();
        let th = &z[..dt];
        let mut ev = match self.set {
            ExactSet::W2Penalty(gamma) => self.w2_eval(gamma, th, hess, m)?,
            _ => {
                let s = self.scores(th);
                let ps = self.per_sample(&s);
                let cb = self.combine(&ps.l, &z[dt..dt + me], mu)?;
                if !cb.val.is_finite() {
                    return None;
                }
                let mut g = vec![0.0; m];
                let mut h = vec![0.0; if hess { m * m } else { 0 }];
                self.assemble(&ps, &cb, me, m, hess, &mut g, &mut h);
                Eval { f: cb.val, g, h }
            }
        };
        if self.wd > 0.0 {
            let nw = self.d * self.k();
            ev.f += self.wd_term(th);
            for a in 0..nw {
                ev.g[a] += self.wd * z[a];
                if hess {
                    ev.h[a * m + a] += self.wd;
                }
            }
        }
        let base = dt + me;
        for (q, c) in coef.iter().enumerate() {
            ev.f += c * z[base + q];
            ev.g[base + q] += c;
        }
        for b in bars {
            let (q, gq) = b.q(z);
            let t = match b {
                Barrier::Quad { t, .. } | Barrier::Lin { t, .. } => *t,
            };
            // The second-order cone is the branch t > 0 of t^2 > ||v||^2.
            if !(q > 0.0 && z[t] > 0.0) {
                return None;
            }
            ev.f -= mu * q.ln();
            for &(a, v) in &gq {
                ev.g[a] -= mu * v / q;
            }
            if hess {
                for &(a, va) in &gq {
                    for &(c, vc) in &gq {
                        ev.h[a * m + c] += mu * va * vc / (q * q);
                    }
                }
                if let Barrier::Quad { t, v } = b {
                    ev.h[t * m + t] -= mu * 2.0 / q;
                    for &(p, nn) in v {
                        ev.h[p * m + p] += mu * 2.0 / q;
                        if let Some(k) = nn {
                            ev.h[k * m + k] += mu * 2.0 / q;
                            ev.h[p * m + k] -= mu * 2.0 / q;
                            ev.h[k * m + p] -= mu * 2.0 / q;
                        }
                    }
                }
            }
        }
        if !ev.f.is_finite() {
            return None;
        }
        Some(ev)
    }

    /// The true (unsmoothed) robust objective at `theta` (extras minimised in closed form
    /// where the set has them; for the smooth sets the current extras are used).
    fn true_objective(&self, z: &[f64]) -> f64 {
        let dt = self.dtheta();
        let th = &z[..dt];
        let l = self.per_sample(&self.scores(th)).l;
        let base = match self.set {
            ExactSet::W1 { norm, eps } => {
                if self.head == Head::Regression {
                    let w0 = th[..self.d].iter().all(|v| *v == 0.0);
                    crate::dro::inner::mean(&l) + if w0 { 0.0 } else { f64::INFINITY }
                } else {
                    crate::dro::inner::mean(&l) + self.w1_penalty(norm, eps, th)
                }
            }
            ExactSet::Cvar(alpha) => crate::dro::weights::cvar_dual(&l, alpha).0,
            _ => {
                let me = self.set_extras();
                let m = dt + me;
                self.eval(&z[..m], 0.0, false, &[], &[], m)
                    .map(|e| e.f - self.wd_term(th))
                    .unwrap_or(f64::INFINITY)
            }
        };
        base + self.wd_term(th)
    }

    /// `mean l + eps ||w||_2` is smooth away from `w = 0`: plain Newton from the negative
    /// gradient at 0, stopped on the relative gradient norm. `None` (use the barrier
    /// method) when the minimiser may be at `w = 0` or Newton does not converge.
    fn w1_l2_smooth(&self, eps: f64) -> Option<ExactFit> {
        let d = self.d;
        let m = self.dtheta();
        let erm = ExactProblem {
            set: ExactSet::Erm,
            ..*self
        };
        let f = |z: &[f64], hess: bool| -> Option<Eval> {
            let mut ev = erm.eval(z, 0.0, hess, &[], &[], m)?;
            let nw = z[..d].iter().map(|v| v * v).sum::<f64>().sqrt();
            if nw.is_nan() || nw <= 1e-9 {
                return None;
            }
            ev.f += eps * nw;
            for j in 0..d {
                ev.g[j] += eps * z[j] / nw;
                if hess {
                    for j2 in 0..d {
                        let id = if j == j2 { 1.0 } else { 0.0 };
                        ev.h[j * m + j2] += eps / nw * (id - z[j] * z[j2] / (nw * nw));
                    }
                }
            }
            Some(ev)
        };
        let mut z = vec![0.0; m];
        let g0 = erm.eval(&z, 0.0, false, &[], &[], m)?.g;
        let ng = g0[..d].iter().map(|v| v * v).sum::<f64>().sqrt();
        if ng <= eps {
            return None;
        }
        for j in 0..d {
            z[j] = -g0[j];
        }
        for it in 0..100 {
            let ev = f(&z, true)?;
            let scale = ev.f.abs().max(1.0);
            let gn = ev.g.iter().map(|v| v * v).sum::<f64>().sqrt();
            if gn <= 1e-2 * self.tol * scale {
                let objective = self.true_objective(&z);
                return Some(ExactFit {
                    theta: z,
                    objective,
                    iterations: it,
                    optimality: gn / scale,
                    measure: "gradient-norm",
                    status: Status::Converged,
                    warnings: Vec::new(),
                });
            }
            let neg: Vec<f64> = ev.g.iter().map(|v| -v).collect();
            let p = chol_solve(&ev.h, &neg, m)?;
            let dec2 = -crate::linalg::dot(&ev.g, &p);
            let mut step = 1.0;
            let mut moved = false;
            for _ in 0..60 {
                let zn: Vec<f64> = z.iter().zip(&p).map(|(a, b)| a + step * b).collect();
                if let Some(e2) = f(&zn, false) {
                    if e2.f <= ev.f - 1e-4 * step * dec2 + 4.0 * f64::EPSILON * scale {
                        moved = true;
                        z = zn;
                        break;
                    }
                }
                step *= 0.5;
            }
            if !moved {
                return None;
            }
        }
        None
    }

    /// Minimise. Starts at `theta = 0`.
    pub fn solve(&self) -> Result<ExactFit> {
        let (n, d) = (self.n(), self.d);
        if n == 0 || self.x.len() != n * d {
            return Err(Error::Shape(format!(
                "exact solver: {} inputs for {n} rows of dimension {d}",
                self.x.len()
            )));
        }
        crate::error::check_positive("tol", self.tol)?;
        let dt = self.dtheta();
        let me = self.set_extras();
        let mut warnings = Vec::new();
        // Degenerate: squared loss over a 1-Wasserstein ball.
        if let (ExactSet::W1 { .. }, Head::Regression) = (self.set, self.head) {
            let ybar = crate::dro::inner::mean(self.y);
            let mut theta = vec![0.0; dt];
            theta[d] = ybar;
            warnings.push("the squared loss grows quadratically: its worst case over a 1-Wasserstein ball is +inf for every w != 0, so the robust minimiser is the constant predictor w = 0, b = mean(y); use the squared-cost set (--ambiguity wasserstein --penalty GAMMA) for a non-trivial robust regression".to_string());
            let objective = self.true_objective(&theta);
            return Ok(ExactFit {
                theta,
                objective,
                iterations: 0,
                optimality: 0.0,
                measure: "gradient-norm",
                status: Status::Converged,
                warnings,
            });
        }
        if let (
            ExactSet::W1 {
                norm: Norm::L2,
                eps,
            },
            Head::Binary,
        ) = (self.set, self.head)
        {
            if let Some(fit) = self.w1_l2_smooth(eps) {
                return Ok(fit);
            }
        }
        let (coef, bars, init) = match self.set {
            ExactSet::W1 { norm, eps } => self.w1_barriers(norm, eps, dt + me),
            _ => (Vec::new(), Vec::new(), Vec::new()),
        };
        let barrier = !bars.is_empty() || matches!(self.set, ExactSet::Cvar(_));
        let nu: f64 = bars.iter().map(Barrier::nu).sum::<f64>()
            + if matches!(self.set, ExactSet::Cvar(_)) {
                2.0 * n as f64
            } else {
                0.0
            };
        let m = dt + me + coef.len();
        let mut z = vec![0.0; m];
        z[dt + me..].copy_from_slice(&init);
        if me == 1 {
            // Warm start from the ERM fit (at theta = 0 every loss is equal and the dual
            // variable sits on a kink of the chi2 / CVaR objectives).
            {
                let erm = ExactProblem {
                    set: ExactSet::Erm,
                    max_iter: 50,
                    tol: 1e-6,
                    ..*self
                };
                if let Ok(f) = erm.solve() {
                    if f.theta.iter().all(|v| v.is_finite()) {
                        z[..dt].copy_from_slice(&f.theta);
                    }
                }
            }
            let l0 = self.per_sample(&self.scores(&z[..dt])).l;
            let mean = crate::dro::inner::mean(&l0);
            z[dt] = match self.set {
                ExactSet::KlRadius(_) => 1.0,
                ExactSet::Cvar(_) => mean,
                _ => l0.iter().cloned().fold(f64::INFINITY, f64::min) - 1.0,
            };
        }
        let check_sep = self.head != Head::Regression
            && self.wd == 0.0
            && matches!(
                self.set,
                ExactSet::Erm
                    | ExactSet::KlPenalty(_)
                    | ExactSet::KlRadius(_)
                    | ExactSet::Chi2Penalty(_)
                    | ExactSet::Chi2Radius(_)
                    | ExactSet::Cvar(_)
            );
        let mut mu = if barrier { 1.0 } else { 0.0 };
        let mut iters = 0usize;
        let mut status = Status::NotConverged;
        let mut optimality = f64::INFINITY;
        'outer: loop {
            // Centre (or minimise) at this mu.
            let mut stalled = false;
            let mut dec2 = f64::INFINITY;
            let mut gnorm;
            let mut fval;
            loop {
                if iters >= self.max_iter {
                    break 'outer;
                }
                let ev = match self.eval(&z, mu, true, &bars, &coef, m) {
                    Some(e) => e,
                    None => {
                        return Err(Error::Other(
                            "exact solver: the iterate left the domain".into(),
                        ))
                    }
                };
                fval = ev.f;
                gnorm = ev.g.iter().map(|v| v * v).sum::<f64>().sqrt();
                let scale = ev.f.abs().max(1.0);
                if !barrier && gnorm <= self.tol * scale * 1e-2 {
                    dec2 = 0.0;
                    break;
                }
                let neg: Vec<f64> = ev.g.iter().map(|v| -v).collect();
                let Some(p) = chol_solve(&ev.h, &neg, m) else {
                    stalled = true;
                    break;
                };
                dec2 = -crate::linalg::dot(&ev.g, &p);
                if std::env::var_os("RF_EXACT_TRACE").is_some() {
                    eprintln!("it {iters} mu {mu:.3e} f {:.12e} |g| {gnorm:.3e} dec2 {dec2:.3e} true {:.12e}", ev.f, self.true_objective(&z));
                }
                // Intermediate stages are centred loosely, the last one tightly.
                let last = nu * mu <= 0.5 * self.tol * scale;
                if barrier && (dec2 <= 1e-2 * self.tol * scale || (!last && dec2 <= 0.1 * nu * mu))
                {
                    break;
                }
                // Backtracking (Armijo) line search; out-of-domain points are rejected.
                let mut step = 1.0;
                let mut moved = false;
                for _ in 0..60 {
                    let zn: Vec<f64> = z.iter().zip(&p).map(|(a, b)| a + step * b).collect();
                    if let Some(e2) = self.eval(&zn, mu, false, &bars, &coef, m) {
                        if e2.f <= ev.f - 1e-4 * step * dec2 + 4.0 * f64::EPSILON * scale {
                            moved = e2.f < ev.f || step == 1.0;
                            z = zn;
                            break;
                        }
                    }
                    step *= 0.5;
                }
                iters += 1;
                if check_sep && self.separates(&z[..dt]) {
                    status = Status::Separable;
                    break 'outer;
                }
                if !moved {
                    stalled = true;
                    break;
                }
            }
            let scale = fval.abs().max(1.0);
            if barrier {
                optimality = (nu * mu + dec2.max(0.0)) / scale;
                if optimality <= self.tol {
                    status = Status::Converged;
                    break;
                }
                if stalled && nu * mu <= self.tol * scale {
                    break;
                }
                mu = (mu / 100.0).max(0.4 * self.tol * scale / nu).min(mu * 0.5);
                if mu < 1e-300 {
                    break;
                }
            } else {
                optimality = gnorm / scale;
                if optimality <= self.tol {
                    status = Status::Converged;
                }
                break;
            }
        }
        if let ExactSet::W2Penalty(gamma) = self.set {
            let a: f64 = z[..d].iter().map(|v| v * v).sum();
            let qmax = if self.head == Head::Regression {
                2.0
            } else {
                0.25
            };
            if status != Status::Converged && a * qmax >= 2.0 * gamma * (1.0 - 1e-6) {
                status = Status::NotConcave;
            }
        }
        match status {
            Status::Separable => warnings.push(
                "the training data are linearly separable: the objective has no minimiser (the loss tends to 0 along a separating direction, so the weights grow without bound); add --weight-decay or a Wasserstein radius (--ambiguity wasserstein --w1-norm l2 --radius R) to get a unique, finite fit".to_string(),
            ),
            Status::NotConcave => warnings.push(format!(
                "the squared-cost inner problem is not concave at the minimiser (||w||^2 reaches {} the bound 2 gamma / sup h''): the exact solver does not apply; raise --penalty or use --solver adamw",
                if self.head == Head::Regression { "gamma," } else { "8 gamma," }
            )),
            Status::NotConverged => warnings.push(format!(
                "the exact solver stopped after {iters} Newton iterations at relative optimality {optimality:.3e} (> {:.1e})",
                self.tol
            )),
            Status::Converged => {}
        }
        let objective = self.true_objective(&z);
        Ok(ExactFit {
            theta: z[..dt].to_vec(),
            objective,
            iterations: iters,
            optimality,
            measure: if barrier {
                "duality-gap"
            } else {
                "gradient-norm"
            },
            status,
            warnings,
        })
    }

    /// The robust objective at given parameters (model layout), for tests and benchmarks.
    pub fn objective(&self, theta: &[f64]) -> Result<f64> {
        if theta.len() != self.dtheta() {
            return Err(Error::Shape(format!(
                "{} parameters, expected {}",
                theta.len(),
                self.dtheta()
            )));
        }
        let me = self.set_extras();
        if me == 0 || matches!(self.set, ExactSet::Cvar(_)) {
            let mut z = theta.to_vec();
            z.resize(self.dtheta() + me, 0.0);
            return Ok(self.true_objective(&z));
        }
        // Minimise over the one extra variable by golden section on a bracket.
        let l = self.per_sample(&self.scores(theta)).l;
        let f = |e: f64| -> f64 {
            self.combine(&l, &[e], 0.0)
                .map(|c| c.val)
                .unwrap_or(f64::INFINITY)
        };
        let lmax = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lmin = l.iter().cloned().fold(f64::INFINITY, f64::min);
        let v = match self.set {
            ExactSet::KlRadius(_) => {
                let (lo, hi) = ((1e-8f64).ln(), (1e8f64).ln());
                crate::dro::tune::golden(|t| f(t.exp()), lo, hi, 300).1
            }
            _ => crate::dro::tune::golden(f, lmin - 10.0 * (1.0 + lmax - lmin), lmax, 300).1,
        };
        Ok(v + self.wd_term(theta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, d: usize, head: Head, seed: u64) -> (Vec<f64>, Vec<f64>) {
        use rand::{Rng, SeedableRng};
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        let x: Vec<f64> = (0..n * d).map(|_| r.random_range(-2.0..2.0)).collect();
        let y = (0..n)
            .map(|i| {
                let s: f64 = x[i * d..(i + 1) * d]
                    .iter()
                    .enumerate()
                    .map(|(j, v)| v * (j as f64 - 1.0))
                    .sum::<f64>()
                    + r.random_range(-2.0..2.0);
                match head {
                    Head::Binary => (s > 0.0) as u8 as f64,
                    Head::Multi(k) => ((s + 3.0).max(0.0) as usize).min(k - 1) as f64,
                    Head::Regression => s,
                }
            })
            .collect();
        (x, y)
    }

    /// Gradient and Hessian of the (smoothed) objective against central finite differences.
    #[test]
    fn derivatives_match_finite_differences() {
        let sets = [
            ExactSet::Erm,
            ExactSet::W1 {
                norm: Norm::L2,
                eps: 0.1,
            },
            ExactSet::W1 {
                norm: Norm::L1,
                eps: 0.1,
            },
            ExactSet::W1 {
                norm: Norm::Linf,
                eps: 0.1,
            },
            ExactSet::KlPenalty(0.7),
            ExactSet::KlRadius(0.2),
            ExactSet::Chi2Penalty(0.7),
            ExactSet::Chi2Radius(0.3),
            ExactSet::Cvar(0.3),
            ExactSet::W2Penalty(5.0),
        ];
        for head in [Head::Binary, Head::Multi(3), Head::Regression] {
            let (x, y) = data(30, 3, head, 1);
            for set in sets {
                if matches!(set, ExactSet::W2Penalty(_)) && matches!(head, Head::Multi(_)) {
                    continue;
                }
                if matches!(set, ExactSet::W1 { .. }) && head == Head::Regression {
                    continue;
                }
                let p = ExactProblem {
                    x: &x,
                    y: &y,
                    d: 3,
                    head,
                    wd: 0.1,
                    set,
                    tol: 1e-9,
                    max_iter: 100,
                };
                let dt = p.dtheta();
                let me = p.set_extras();
                let (coef, bars, init) = match set {
                    ExactSet::W1 { norm, eps } => p.w1_barriers(norm, eps, dt + me),
                    _ => (Vec::new(), Vec::new(), Vec::new()),
                };
                let m = dt + me + coef.len();
                let mut z: Vec<f64> = (0..m).map(|i| 0.1 * ((i * 7 % 5) as f64 - 2.0)).collect();
                for (q, v) in init.iter().enumerate() {
                    z[dt + me + q] = v * 1.5;
                }
                if me == 1 {
                    z[dt] = if matches!(set, ExactSet::KlRadius(_)) {
                        0.8
                    } else {
                        0.2
                    };
                }
                let mu = 0.05;
                let ev = p
                    .eval(&z, mu, true, &bars, &coef, m)
                    .unwrap_or_else(|| panic!("{head:?} {set:?} out of domain"));
                let h = 1e-6;
                for a in 0..m {
                    let mut zp = z.clone();
                    zp[a] += h;
                    let mut zm = z.clone();
                    zm[a] -= h;
                    let ep = p.eval(&zp, mu, true, &bars, &coef, m).unwrap();
                    let em = p.eval(&zm, mu, true, &bars, &coef, m).unwrap();
                    let fd = (ep.f - em.f) / (2.0 * h);
                    assert!(
                        (fd - ev.g[a]).abs() <= 1e-6 * (1.0 + fd.abs()),
                        "{head:?} {set:?} grad {a}: fd {fd} vs {}",
                        ev.g[a]
                    );
                    for b in 0..m {
                        let fd = (ep.g[b] - em.g[b]) / (2.0 * h);
                        assert!(
                            (fd - ev.h[a * m + b]).abs() <= 1e-5 * (1.0 + fd.abs()),
                            "{head:?} {set:?} hess {a},{b}: fd {fd} vs {}",
                            ev.h[a * m + b]
                        );
                    }
                }
            }
        }
    }
}
