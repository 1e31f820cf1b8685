//! The exact worst case of the squared-cost Wasserstein set for models without hidden
//! layers (linear regression, logistic regression, softmax regression), and the Sinha et
//! al. certificate for MLPs with a proven smoothness constant.
//!
//! **Duality** [WRM, Blanchet-Murthy 2019]. With `c((x, y), (x0, y0)) = ||x - x0||^2
//! (+ kappa 1{y != y0})`,
//! `sup_{W_c(P, P_N) <= rho} E_P l = inf_{lam >= 0} lam rho + mean_i phi_i(lam)`,
//! `phi_i(lam) = sup_{x, y} l(x, y) - lam c((x, y), (x_i, y_i))`. The right side is an upper
//! bound at *every* `lam` (weak duality) as soon as each `phi_i` is bounded above
//! correctly; it is a 1-D convex function of `lam`, whose subgradient is `rho - mean_i
//! c_i(lam)` (the mean cost of the inner maximisers).
//!
//! **Inner sups, solved globally.** The loss depends on `x` only through `z = W x + b`
//! (`K x d`), so only the component of `x - x_i` in the row space of `W` changes the loss;
//! the orthogonal component only costs. Hence:
//! - *linear*, `l = (w.x + b - y)^2`, `r = w.x_i + b - y`, `a = ||w||`:
//!   `phi = lam r^2 / (lam - a^2)` at `x = x_i + w r / (lam - a^2)` when `lam > a^2`,
//!   `+inf` otherwise (closed form).
//! - *logistic*, `l = softplus(-m)` with the margin `m = (2y - 1)(w.x + b)`: moving a
//!   distance `t` along `-(2y - 1) w / a` lowers the margin by `u = a t`, so
//!   `phi = max_{u >= 0} f(u)`, `f(u) = softplus(u - m_i) - (lam / a^2) u^2`. `f'' =
//!   sigma'(u - m_i) - 2 lam / a^2` changes sign at most twice (at `m_i +- v_c`,
//!   `sigma'(v_c) = 2 lam / a^2`), so `[0, a^2 / lam]` (beyond it `f' <= -1`) splits into
//!   at most three pieces on which `f'` is monotone; each local maximum is the unique root
//!   of `f'` on a decreasing piece, found by bisection to adjacent floats. The global
//!   maximum is the best of them (`f'(0) > 0`, so `u = 0` is never it). The bound reported
//!   on a bracket `[u_l, u_r]` is `f(u_l) + f'(u_l)(u_r - u_l)` (valid since `f'` decreases
//!   there), so `phi` is bracketed, not estimated.
//! - *softmax*, `l = logsumexp(z) - z_y`: invariant under `z -> z + t 1`, so with `V` an
//!   orthonormal basis (`r <= K - 1` rows) of the row space of the centred `W - 1 wbar'`,
//!   `phi = sup_{a in R^r} g(a)`, `g(a) = l(z_i + W V' a) - lam ||a||^2`. With `M = W V'`
//!   and `||M||_F` (an upper bound on its spectral norm): the gradient of `l` in `a` is at most
//!   `G = sqrt 2 ||M||_F` (so the maximiser lies in `||a|| <= G / lam`), and its Hessian
//!   is at most `H = ||M||_F^2 / 2` (the Hessian of logsumexp is at most `1/2`).
//!   When `2 lam > H`, `g` is `(2 lam - H)`-strongly concave: the fixed-point iteration
//!   `a = M'(p - e_y) / (2 lam)` (a contraction) converges, and
//!   `phi <= g(a) + ||grad g(a)||^2 / (2 (2 lam - H))`. Otherwise a branch and bound on the
//!   box `[-G/lam, G/lam]^r` (best-first, halving the longest edge) with the bound
//!   `g(c) + ||grad g(c)|| delta + max(H - 2 lam, 0) delta^2 / 2` on a box of centre `c`
//!   and half-diagonal `delta`; it stops at a gap of `1e-9 (1 + |g|)` or after
//!   [`BNB_NODES`] boxes (fewer in more than 2 dimensions), and the upper bound it reports
//!   (the largest bound of the open boxes) is valid either way; with many classes (e.g. 10
//!   digits, a 9-dimensional span) the budget runs out and the bracket is loose.
//!
//! With a label cost every class `c` is tried and `phi_i` is the best of
//! `phi_{i,c} - kappa 1{c != y_i}`.
//!
//! **The dual.** `lam` is bisected on its logarithm (above `a^2` for linear models) until
//! the mean cost crosses `rho`: `lam_lo` (mean cost `C_lo > rho`) and `lam_hi`
//! (`C_hi <= rho`) within a relative `1e-12`. The **upper bound** is the smaller dual value
//! `lam rho + mean_i phi_i^up(lam)` of the two; the **lower bound** is the risk of the
//! feasible distribution that moves a fraction `theta = (rho - C_hi) / (C_lo - C_hi)` of
//! each point's mass to its `lam_lo` maximiser and the rest to its `lam_hi` maximiser (mean
//! cost exactly `rho`), evaluated with the model's own loss. The gap is at most
//! `(lam_hi - lam_lo)(rho - C_hi)`.
//!
//! **MLPs** ([`sinha_certificate`]): for a loss whose input gradient is `L`-Lipschitz,
//! `x -> l(x) - lam ||x - x_i||^2` is `(2 lam - L)`-strongly concave when `2 lam > L`, so
//! any approximate maximiser `x` gives `phi_i <= g(x) + ||grad g(x)||^2 / (2 (2 lam - L))`
//! and `lam rho + mean_i` of that is an upper bound [WRM, Theorem 2]. `L` comes from
//! [`PointLoss::input_smoothness`] (for [`crate::model::Model`]: from the spectral norms of
//! the weights, see there); without it, or when no `lam > L / 2` can be used, the upper
//! bound is `None` with the reason.

use super::{check_batch, finite_losses, AmbiguityConfig, Batch, PointLoss, WorstCase};
use crate::error::{Error, Result};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// The loss of an [`Affine`] model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffineLoss {
    /// `(z - y)^2` (one output; linear regression).
    Squared,
    /// Binary cross-entropy `softplus(-(2y - 1) z)` (one output; logistic regression).
    Logistic,
    /// Softmax cross-entropy `logsumexp(z) - z_y` (`K` outputs).
    Softmax,
}

/// A model whose per-sample loss depends on `x` only through `z = W x + b`.
#[derive(Debug, Clone)]
pub struct Affine {
    /// The loss applied to `z`.
    pub loss: AffineLoss,
    /// `W`, `k x d` row-major.
    pub w: Vec<f64>,
    /// `b`, length `k`.
    pub b: Vec<f64>,
    /// Number of outputs `k`.
    pub k: usize,
    /// Input dimension `d`.
    pub d: usize,
}

/// Boxes a branch and bound may open per inner problem (softmax, non-concave case) when
/// the span has at most 2 dimensions; 2000 up to 4 dimensions, 200 beyond (the bound
/// reported stays valid when the budget runs out, only looser).
pub const BNB_NODES: usize = 20_000;

fn bnb_budget(r: usize) -> usize {
    match r {
        0..=2 => BNB_NODES,
        3..=4 => BNB_NODES / 10,
        _ => BNB_NODES / 100,
    }
}

/// Result of the exact certificate at one radius.
#[derive(Debug, Clone)]
pub struct ExactCertificate {
    /// The worst-case distribution (feasible, mean cost `<= rho`) and its risk (the lower
    /// bound); `upper_bound` holds the dual bound.
    pub worst: WorstCase,
    /// The dual value: a valid upper bound on the sup.
    pub upper: f64,
    /// The multipliers bracketing the optimal one.
    pub lam_lo: f64,
    /// See `lam_lo`.
    pub lam_hi: f64,
}

fn softplus(v: f64) -> f64 {
    v.max(0.0) + (-v.abs()).exp().ln_1p()
}

fn sigmoid(v: f64) -> f64 {
    if v >= 0.0 {
        1.0 / (1.0 + (-v).exp())
    } else {
        let e = v.exp();
        e / (1.0 + e)
    }
}

/// Global `max_{u >= 0} softplus(u - m) - c u^2` for `c > 0`: `(u*, value at u*, upper
/// bound on the max)` (see the module docs for the method and why it is global).
pub fn logistic_inner(m: f64, c: f64) -> (f64, f64, f64) {
    let f = |u: f64| softplus(u - m) - c * u * u;
    let fp = |u: f64| sigmoid(u - m) - 2.0 * c * u;
    // f'(u) <= 1 - 2cu <= -1 beyond u = 1 / c (also in floating point).
    let umax = 1.0 / c;
    let mut cuts = vec![0.0, umax];
    if 2.0 * c < 0.25 {
        // sigma'(v) = s (1 - s) = 2c at s = (1 + sqrt(1 - 8c)) / 2.
        let s = 0.5 * (1.0 + (1.0 - 8.0 * c).max(0.0).sqrt());
        let vc = (s / (1.0 - s)).ln();
        for p in [m - vc, m + vc] {
            if p > 0.0 && p < umax {
                cuts.push(p);
            }
        }
    }
    cuts.sort_by(f64::total_cmp);
    let mut best = (0.0, f(0.0), f(0.0));
    for wdw in cuts.windows(2) {
        let (mut lo, mut hi) = (wdw[0], wdw[1]);
        let (gl, gh) = (fp(lo), fp(hi));
        // A local maximum inside: f' goes from >= 0 to <= 0 (a decreasing piece).
        if !(gl >= 0.0 && gh <= 0.0) {
            continue;
        }
        for _ in 0..2000 {
            let mid = 0.5 * (lo + hi);
            if !(mid > lo && mid < hi) {
                break;
            }
            if fp(mid) >= 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let v = f(lo);
        let up = v + fp(lo).max(0.0) * (hi - lo);
        if v > best.1 {
            best = (lo, v, best.2.max(up));
        } else {
            best.2 = best.2.max(up);
        }
    }
    best.2 = best.2.max(best.1);
    best
}

/// Orthonormal basis (rows, `r x d`) of the row space of `W - 1 wbar'` (softmax), found by
/// modified Gram-Schmidt with a relative drop tolerance of `1e-12`.
fn softmax_basis(a: &Affine) -> Vec<Vec<f64>> {
    let (k, d) = (a.k, a.d);
    let mut mean = vec![0.0; d];
    for r in 0..k {
        for j in 0..d {
            mean[j] += a.w[r * d + j] / k as f64;
        }
    }
    let rows: Vec<Vec<f64>> = (0..k)
        .map(|r| (0..d).map(|j| a.w[r * d + j] - mean[j]).collect())
        .collect();
    let scale = rows
        .iter()
        .map(|v| crate::linalg::dot(v, v).sqrt())
        .fold(0.0, f64::max);
    let mut basis: Vec<Vec<f64>> = Vec::new();
    for mut v in rows {
        for _ in 0..2 {
            for q in &basis {
                let p = crate::linalg::dot(&v, q);
                v.iter_mut().zip(q).for_each(|(a, b)| *a -= p * b);
            }
        }
        let nv = crate::linalg::dot(&v, &v).sqrt();
        if nv > 1e-12 * scale && nv > 0.0 {
            v.iter_mut().for_each(|a| *a /= nv);
            basis.push(v);
        }
    }
    basis
}

struct Softmax {
    m: Vec<f64>, // k x r, M = W V'
    r: usize,
    k: usize,
    fro2: f64,
    basis: Vec<Vec<f64>>,
}

impl Softmax {
    fn new(aff: &Affine) -> Self {
        let basis = softmax_basis(aff);
        let (k, d, r) = (aff.k, aff.d, basis.len());
        let mut m = vec![0.0; k * r];
        for row in 0..k {
            for (c, q) in basis.iter().enumerate() {
                m[row * r + c] = crate::linalg::dot(&aff.w[row * d..(row + 1) * d], q);
            }
        }
        let fro2 = m.iter().map(|v| v * v).sum();
        Softmax {
            m,
            r,
            k,
            fro2,
            basis,
        }
    }
    /// `(g(a), grad g(a))` with `g(a) = ce(z0 + M a, y) - lam ||a||^2`.
    fn eval(&self, z0: &[f64], y: usize, lam: f64, a: &[f64]) -> (f64, Vec<f64>) {
        let (k, r) = (self.k, self.r);
        let z: Vec<f64> = (0..k)
            .map(|i| z0[i] + (0..r).map(|c| self.m[i * r + c] * a[c]).sum::<f64>())
            .collect();
        let mx = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - mx).exp()).collect();
        let s: f64 = e.iter().sum();
        let ce = mx + s.ln() - z[y];
        let aa: f64 = a.iter().map(|v| v * v).sum();
        let mut g: Vec<f64> = a.iter().map(|v| -2.0 * lam * v).collect();
        for i in 0..k {
            let pi = e[i] / s - if i == y { 1.0 } else { 0.0 };
            for c in 0..r {
                g[c] += self.m[i * r + c] * pi;
            }
        }
        (ce - lam * aa, g)
    }
    /// Global sup over `a`: `(a*, value, upper bound)`.
    fn inner(&self, z0: &[f64], y: usize, lam: f64) -> (Vec<f64>, f64, f64) {
        let r = self.r;
        if r == 0 {
            let (v, _) = self.eval(z0, y, lam, &[]);
            return (Vec::new(), v, v);
        }
        let h = 0.5 * self.fro2;
        let nrm = |g: &[f64]| g.iter().map(|v| v * v).sum::<f64>().sqrt();
        if 2.0 * lam > h {
            let mu = 2.0 * lam - h;
            let mut a = vec![0.0; r];
            let (mut v, mut g) = self.eval(z0, y, lam, &a);
            for _ in 0..100_000 {
                // a <- a + grad g / (2 lam): the fixed point a = M'(p - e_y) / (2 lam).
                let next: Vec<f64> = a.iter().zip(&g).map(|(a, g)| a + g / (2.0 * lam)).collect();
                let (v2, g2) = self.eval(z0, y, lam, &next);
                let done = nrm(&g2) <= 1e-13 * (1.0 + v2.abs()) || nrm(&g2) >= nrm(&g);
                if v2 >= v {
                    a = next;
                    v = v2;
                    g = g2;
                }
                if done {
                    break;
                }
            }
            let up = v + nrm(&g).powi(2) / (2.0 * mu);
            return (a, v, up);
        }
        // Branch and bound on [-R, R]^r.
        let big_r = 2f64.sqrt() * self.fro2.sqrt() / lam;
        let beta = (h - 2.0 * lam).max(0.0);
        #[derive(PartialEq)]
        struct Node {
            ub: f64,
            c: Vec<f64>,
            half: Vec<f64>,
        }
        impl Eq for Node {}
        impl PartialOrd for Node {
            fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for Node {
            fn cmp(&self, o: &Self) -> Ordering {
                self.ub.total_cmp(&o.ub)
            }
        }
        let mut best = (vec![0.0; r], f64::NEG_INFINITY);
        let make = |c: Vec<f64>, half: Vec<f64>, best: &mut (Vec<f64>, f64)| -> Node {
            let (v, g) = self.eval(z0, y, lam, &c);
            if v > best.1 {
                *best = (c.clone(), v);
            }
            let delta = nrm(&half);
            Node {
                ub: v + nrm(&g) * delta + 0.5 * beta * delta * delta,
                c,
                half,
            }
        };
        let mut heap = BinaryHeap::new();
        heap.push(make(vec![0.0; r], vec![big_r; r], &mut best));
        let mut opened = 1;
        let upper;
        loop {
            let Some(node) = heap.pop() else {
                upper = best.1;
                break;
            };
            if node.ub - best.1 <= 1e-9 * (1.0 + best.1.abs()) || opened >= bnb_budget(r) {
                upper = node.ub.max(best.1);
                break;
            }
            let j = (0..r)
                .max_by(|a, b| node.half[*a].total_cmp(&node.half[*b]))
                .expect("r >= 1");
            let mut half = node.half.clone();
            half[j] *= 0.5;
            for s in [-1.0, 1.0] {
                let mut c = node.c.clone();
                c[j] += s * half[j];
                let child = make(c, half.clone(), &mut best);
                opened += 1;
                if child.ub > best.1 {
                    heap.push(child);
                }
            }
        }
        (best.0, best.1, upper)
    }
}

/// One point's inner solution.
#[derive(Debug, Clone)]
struct Inner {
    x: Vec<f64>,
    y: f64,
    /// `l(x, y) - lam cost` (as computed in closed form).
    phi: f64,
    /// An upper bound on the sup.
    phi_up: f64,
    /// `||x - x0||^2 + kappa 1{y != y0}`.
    cost: f64,
}

struct Solver<'a> {
    aff: &'a Affine,
    sm: Option<Softmax>,
    kappa: Option<f64>,
}

impl Solver<'_> {
    /// The smallest multiplier with finite inner sups.
    fn lam_min(&self) -> f64 {
        match self.aff.loss {
            AffineLoss::Squared => self.aff.w.iter().map(|v| v * v).sum(),
            _ => 0.0,
        }
    }
    fn point(&self, x0: &[f64], y0: f64, lam: f64) -> Inner {
        let a = self.aff;
        let labels: Vec<f64> = match (self.kappa, a.loss) {
            (Some(_), AffineLoss::Logistic) => vec![0.0, 1.0],
            (Some(_), AffineLoss::Softmax) => (0..a.k).map(|c| c as f64).collect(),
            _ => vec![y0],
        };
        let mut best: Option<Inner> = None;
        for y in labels {
            let extra = if y != y0 {
                self.kappa.unwrap_or(0.0)
            } else {
                0.0
            };
            let mut s = self.point_label(x0, y, lam);
            s.phi -= lam * extra;
            s.phi_up -= lam * extra;
            s.cost += extra;
            match &mut best {
                Some(b) => {
                    let up = b.phi_up.max(s.phi_up);
                    if s.phi > b.phi {
                        *b = s;
                    }
                    b.phi_up = up;
                }
                None => best = Some(s),
            }
        }
        best.expect("at least one label")
    }
    fn point_label(&self, x0: &[f64], y: f64, lam: f64) -> Inner {
        let a = self.aff;
        let d = a.d;
        match a.loss {
            AffineLoss::Squared | AffineLoss::Logistic => {
                let w = &a.w[..d];
                let a2: f64 = w.iter().map(|v| v * v).sum();
                let s0 = crate::linalg::dot(w, x0) + a.b[0];
                if a2 == 0.0 {
                    let l = if a.loss == AffineLoss::Squared {
                        (s0 - y).powi(2)
                    } else {
                        softplus(-(2.0 * y - 1.0) * s0)
                    };
                    return Inner {
                        x: x0.to_vec(),
                        y,
                        phi: l,
                        phi_up: l,
                        cost: 0.0,
                    };
                }
                if a.loss == AffineLoss::Squared {
                    let r = s0 - y;
                    let den = lam - a2;
                    if den <= 0.0 {
                        return Inner {
                            x: x0.to_vec(),
                            y,
                            phi: f64::INFINITY,
                            phi_up: f64::INFINITY,
                            cost: f64::INFINITY,
                        };
                    }
                    let x: Vec<f64> = x0.iter().zip(w).map(|(x, w)| x + w * r / den).collect();
                    let phi = lam * r * r / den;
                    let cost = crate::kernel::sq_dist(&x, x0);
                    return Inner {
                        x,
                        y,
                        phi,
                        phi_up: phi,
                        cost,
                    };
                }
                let sy = 2.0 * y - 1.0;
                let m0 = sy * s0;
                let (u, v, up) = logistic_inner(m0, lam / a2);
                let x: Vec<f64> = x0.iter().zip(w).map(|(x, w)| x - sy * w * u / a2).collect();
                let cost = crate::kernel::sq_dist(&x, x0);
                Inner {
                    x,
                    y,
                    phi: v,
                    phi_up: up,
                    cost,
                }
            }
            AffineLoss::Softmax => {
                let sm = self.sm.as_ref().expect("softmax");
                let z0: Vec<f64> = (0..a.k)
                    .map(|i| crate::linalg::dot(&a.w[i * d..(i + 1) * d], x0) + a.b[i])
                    .collect();
                let (av, v, up) = sm.inner(&z0, y as usize, lam);
                let mut x = x0.to_vec();
                for (c, q) in sm.basis.iter().enumerate() {
                    x.iter_mut().zip(q).for_each(|(x, q)| *x += av[c] * q);
                }
                let cost = crate::kernel::sq_dist(&x, x0);
                Inner {
                    x,
                    y,
                    phi: v,
                    phi_up: up,
                    cost,
                }
            }
        }
    }
    fn all(&self, b: &Batch, lam: f64) -> Vec<Inner> {
        use rayon::prelude::*;
        let d = b.d;
        (0..b.len())
            .into_par_iter()
            .map(|i| self.point(&b.x[i * d..(i + 1) * d], b.y[i], lam))
            .collect()
    }
}

fn mean_of(v: &[Inner], f: impl Fn(&Inner) -> f64) -> f64 {
    v.iter().map(f).sum::<f64>() / v.len() as f64
}

/// The exact worst case over `{P : W_c(P, P_N) <= rho}` (squared cost, labels fixed
/// unless `cfg.label_cost`) of an affine model: a feasible distribution (lower bound) and
/// the dual value (upper bound), within the gap of the module docs.
pub fn exact_certificate(
    loss: &dyn PointLoss,
    aff: &Affine,
    batch: &Batch,
    cfg: &AmbiguityConfig,
    rho: f64,
) -> Result<ExactCertificate> {
    let n = check_batch(loss, batch)?;
    crate::error::check_nonneg("radius", rho)?;
    if aff.d != batch.d || aff.w.len() != aff.k * aff.d || aff.b.len() != aff.k {
        return Err(Error::Shape(format!(
            "affine model with k = {}, d = {} ({} weights, {} biases) for data of d = {}",
            aff.k,
            aff.d,
            aff.w.len(),
            aff.b.len(),
            batch.d
        )));
    }
    if rho == 0.0 {
        let wc = super::inner::erm_case(loss, batch)?;
        let v = wc.value;
        return Ok(ExactCertificate {
            worst: wc,
            upper: v,
            lam_lo: f64::INFINITY,
            lam_hi: f64::INFINITY,
        });
    }
    let solver = Solver {
        aff,
        sm: (aff.loss == AffineLoss::Softmax).then(|| Softmax::new(aff)),
        kappa: cfg.label_cost,
    };
    let base = solver.lam_min();
    let scale = if base > 0.0 { base } else { 1.0 };
    // lam = base + s; C(s) = mean cost, non-increasing in s.
    let eval = |s: f64| {
        let v = solver.all(batch, base + s);
        let c = mean_of(&v, |p| p.cost);
        (c, v)
    };
    let mut s_hi = scale;
    let (mut c_hi, mut v_hi) = eval(s_hi);
    let mut s_lo;
    let (mut c_lo, mut v_lo);
    if c_hi <= rho {
        // Expand down until infeasible (or the loss is flat).
        let mut found = None;
        for _ in 0..200 {
            let s = s_hi / 4.0;
            let (c, v) = eval(s);
            if c > rho {
                found = Some((s, c, v));
                break;
            }
            (s_hi, c_hi, v_hi) = (s, c, v);
            if s_hi < 1e-300 {
                break;
            }
        }
        match found {
            Some((s, c, v)) => {
                s_lo = s;
                c_lo = c;
                v_lo = v;
            }
            None => {
                // The radius is never reached: the dual's infimum is at lam -> base.
                s_lo = s_hi;
                c_lo = c_hi;
                v_lo = v_hi.clone();
            }
        }
    } else {
        s_lo = s_hi;
        c_lo = c_hi;
        v_lo = v_hi;
        let mut found = None;
        for _ in 0..200 {
            let s = s_lo * 4.0;
            let (c, v) = eval(s);
            if c <= rho {
                found = Some((s, c, v));
                break;
            }
            (s_lo, c_lo, v_lo) = (s, c, v);
        }
        let (s, c, v) = found.ok_or_else(|| {
            Error::param(
                "radius",
                rho,
                "no multiplier brings the mean transport cost down to the radius",
            )
        })?;
        s_hi = s;
        c_hi = c;
        v_hi = v;
    }
    if s_lo < s_hi {
        for _ in 0..400 {
            if s_hi / s_lo - 1.0 <= 1e-12 {
                break;
            }
            let mid = (s_lo * s_hi).sqrt();
            if !(mid > s_lo && mid < s_hi) {
                break;
            }
            let (c, v) = eval(mid);
            if c > rho {
                (s_lo, c_lo, v_lo) = (mid, c, v);
            } else {
                (s_hi, c_hi, v_hi) = (mid, c, v);
            }
        }
    }
    // 1e-12 relative covers the floating-point rounding of the sums.
    let dual = |lam: f64, v: &[Inner]| {
        let u = lam * rho + mean_of(v, |p| p.phi_up);
        u + 1e-12 * (1.0 + u.abs())
    };
    let upper = {
        let a = dual(base + s_hi, &v_hi);
        let b = dual(base + s_lo, &v_lo);
        if b.is_finite() {
            a.min(b)
        } else {
            a
        }
    };
    // Mix the two maximisers to reach the radius exactly.
    let theta = if c_lo > c_hi && c_lo.is_finite() {
        ((rho - c_hi) / (c_lo - c_hi)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let d = batch.d;
    let mut x = Vec::with_capacity(2 * n * d);
    let mut y = Vec::with_capacity(2 * n);
    let mut w = Vec::with_capacity(2 * n);
    for i in 0..n {
        if theta > 0.0 {
            x.extend_from_slice(&v_lo[i].x);
            y.push(v_lo[i].y);
            w.push(theta / n as f64);
        }
        if theta < 1.0 {
            x.extend_from_slice(&v_hi[i].x);
            y.push(v_hi[i].y);
            w.push((1.0 - theta) / n as f64);
        }
    }
    let l = finite_losses(loss, &x, &y)?;
    let value: f64 = l.iter().zip(&w).map(|(l, w)| l * w).sum();
    // The transport cost of this coupling, recomputed from the particles.
    let mut radius = 0.0;
    let mut k = 0;
    for i in 0..n {
        let x0 = &batch.x[i * d..(i + 1) * d];
        for _ in 0..(usize::from(theta > 0.0) + usize::from(theta < 1.0)) {
            let extra = match cfg.label_cost {
                Some(kappa) if y[k] != batch.y[i] => kappa,
                _ => 0.0,
            };
            radius += w[k] * (crate::kernel::sq_dist(&x[k * d..(k + 1) * d], x0) + extra);
            k += 1;
        }
    }
    let lam_hi = base + s_hi;
    Ok(ExactCertificate {
        worst: WorstCase {
            x,
            y,
            w,
            value,
            radius,
            multiplier: lam_hi,
            upper_bound: Some(upper),
            closed_form: None,
        },
        upper,
        lam_lo: base + s_lo,
        lam_hi,
    })
}

/// Sinha et al.'s certificate from an approximate inner solution at multiplier `lam`
/// (particles `x`, one per data point, labels fixed) for a loss whose input gradient is
/// `smooth`-Lipschitz: `lam rho + mean_i [g_i(x_i) + ||grad g_i(x_i)||^2 / (2 (2 lam -
/// smooth))]`, `g_i(x) = l(x) - lam ||x - x0_i||^2`. `None` unless `2 lam > smooth`.
pub fn sinha_certificate(
    loss: &dyn PointLoss,
    batch: &Batch,
    x: &[f64],
    lam: f64,
    smooth: f64,
    rho: f64,
) -> Result<Option<f64>> {
    let mu = 2.0 * lam - smooth;
    if !(mu > 0.0 && lam.is_finite()) {
        return Ok(None);
    }
    let n = batch.len();
    let d = batch.d;
    let (l, g) = loss.losses_and_grads(x, batch.y)?;
    super::check_finite_losses(&l)?;
    let mut tot = 0.0;
    for i in 0..n {
        let xi = &x[i * d..(i + 1) * d];
        let x0 = &batch.x[i * d..(i + 1) * d];
        let c = crate::kernel::sq_dist(xi, x0);
        let gn2: f64 = (0..d)
            .map(|j| (g[i * d + j] - 2.0 * lam * (xi[j] - x0[j])).powi(2))
            .sum();
        tot += l[i] - lam * c + gn2 / (2.0 * mu);
    }
    let v = lam * rho + tot / n as f64;
    Ok(v.is_finite().then_some(v))
}
