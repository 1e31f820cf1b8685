//! The MMD-geometry weight step: a proximal (JKO) step in the MMD metric with the atoms
//! fixed (Gladin, Dvurechensky, Mielke, Zhu, NeurIPS 2024 [IFT]; Zhu, Mielke 2024 [KFR]).
//!
//! `w <- argmin_{w in simplex} F(w) + 1/(2 eta) (w - w0)' M (w - w0)`, `eta = tau beta`,
//! with `F(w) = 1/2 s w'Hw - b'w + c` (for `1/2 MMD^2`: `H = M = K_xx`, `b = K_xy v`).
//!
//! Solvers ([`ProxSolver`]):
//! - `Exact`: accelerated projected gradient (FISTA with function restart) with the exact
//!   Euclidean simplex projection; Lipschitz constant `lambda_max(s H + M / eta)` by power
//!   iteration; stops when the KKT residual (the norm of the gradient mapping) is below
//!   `tol`; returns the best iterate, which is never worse than `w0`, so the step never
//!   raises the energy. Matrix-free `K v` for large `n` (see `GramOp`).
//! - `ProjectedGradient`: one projected-gradient step `w <- Proj(w - eta g)` with `g` the
//!   first variation: the cheap variant the reference IFT code runs (one gradient step on
//!   the JKO objective from `w0` is a gradient step on `F`, the proximal term having zero
//!   gradient there). Needs only the first variation, so it works for every energy.
//! - `Affine`: the prox with only the constraint `sum w = 1` (weights may turn negative),
//!   solved exactly by a dense KKT system; on fixed atoms it contracts the excess energy by
//!   exactly `1 / (1 + eta)^2` (DESIGN.md section 3, fact 3). For tests and small `n`.

use super::{FlowStep, StepContext};
use crate::energy::{Energy, WeightQuadratic};
use crate::error::{Error, Result};
use crate::linalg::{dot, power_iteration, project_simplex, solve, LinOp};
use crate::measure::Particles;
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Settings of the exact simplex QP solver.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QpOptions {
    /// Stop when the KKT residual `L ||w - Proj(w - grad/L)||_inf` falls below this.
    pub tol: f64,
    /// Iteration cap.
    pub max_iter: usize,
    /// Power-iteration steps for the Lipschitz constant.
    pub power_iters: usize,
}

impl Default for QpOptions {
    fn default() -> Self {
        QpOptions {
            tol: 1e-9,
            max_iter: 500,
            power_iters: 50,
        }
    }
}

/// Which weight update the MMD step uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ProxSolver {
    /// Exact simplex QP by accelerated projected gradient.
    Exact(QpOptions),
    /// One projected-gradient step (the reference code's variant).
    ProjectedGradient,
    /// Exact prox with only the sum-to-one constraint (dense; small `n`).
    Affine,
}

/// What the exact solver did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QpReport {
    /// Iterations run.
    pub iterations: usize,
    /// Final KKT residual.
    pub kkt_residual: f64,
    /// Final objective `F(w) + prox term`.
    pub objective: f64,
    /// The Lipschitz constant used.
    pub lipschitz: f64,
}

/// The MMD-proximal weight step.
#[derive(Debug, Clone)]
pub struct MmdProx {
    /// Weight `beta` of the MMD part (`eta = tau beta`).
    pub beta: f64,
    /// The solver.
    pub solver: ProxSolver,
    /// Report of the last exact solve.
    pub last: QpReport,
}

impl MmdProx {
    /// Exact prox step with default solver settings.
    pub fn new(beta: f64) -> Result<Self> {
        crate::error::check_positive("beta", beta)?;
        Ok(MmdProx {
            beta,
            solver: ProxSolver::Exact(QpOptions::default()),
            last: QpReport::default(),
        })
    }
    /// With another solver.
    pub fn with_solver(mut self, s: ProxSolver) -> Result<Self> {
        if let ProxSolver::Exact(o) = s {
            crate::error::check_positive("qp-tol", o.tol)?;
            crate::error::check_count("qp-max-iter", o.max_iter)?;
        }
        self.solver = s;
        Ok(self)
    }

    /// Apply the weight step to `mu` (shared with IFT).
    pub fn apply(
        &mut self,
        mu: &mut Particles,
        energy: &dyn Energy,
        ctx: &mut StepContext,
    ) -> Result<()> {
        let eta = ctx.tau * self.beta;
        match self.solver {
            ProxSolver::ProjectedGradient => {
                let g = energy.first_variation(mu, false)?.g;
                let w = mu.weights();
                let v: Vec<f64> = w.iter().zip(&g).map(|(a, b)| a - eta * b).collect();
                mu.set_weights(&project_simplex(&v))
            }
            ProxSolver::Exact(opts) => {
                let q = quadratic_of(energy, mu)?;
                let w0 = mu.weights();
                let (w, rep) = solve_prox_qp(&q, &w0, eta, &opts);
                self.last = rep;
                mu.set_weights(&w)
            }
            ProxSolver::Affine => {
                let q = quadratic_of(energy, mu)?;
                let w = solve_prox_affine(&q, &mu.weights(), eta)?;
                // Particles carry log-weights, so negative weights cannot be stored.
                if let Some((i, v)) = w.iter().enumerate().find(|(_, v)| **v < 0.0) {
                    return Err(Error::Other(format!(
                        "affine prox produced a negative weight {v} at particle {i}: use the simplex solver"
                    )));
                }
                mu.set_weights(&w)
            }
        }
    }
}

fn quadratic_of(energy: &dyn Energy, mu: &Particles) -> Result<WeightQuadratic> {
    energy.weight_quadratic(mu).unwrap_or_else(|| {
        Err(Error::Other(format!(
            "energy `{}` is not quadratic in the weights: use the projected-gradient MMD step",
            energy.name()
        )))
    })
}

/// Products `(H v, M v)`, sharing the work when `H` and `M` are the same operator.
fn products(q: &WeightQuadratic, v: &[f64], same: bool) -> (Vec<f64>, Vec<f64>) {
    let mut hv = vec![0.0; v.len()];
    q.h.apply(v, &mut hv);
    if same {
        let mv = hv.clone();
        (hv, mv)
    } else {
        let mut mv = vec![0.0; v.len()];
        q.metric.apply(v, &mut mv);
        (hv, mv)
    }
}

struct SumOp<'a> {
    q: &'a WeightQuadratic,
    inv_eta: f64,
}
impl LinOp for SumOp<'_> {
    fn dim(&self) -> usize {
        self.q.h.dim()
    }
    fn apply(&self, v: &[f64], out: &mut [f64]) {
        let mut m = vec![0.0; v.len()];
        self.q.h.apply(v, out);
        self.q.metric.apply(v, &mut m);
        for (o, mi) in out.iter_mut().zip(&m) {
            *o = self.q.h_scale * *o + self.inv_eta * mi;
        }
    }
}

/// Solve `min_{w in simplex} F(w) + 1/(2 eta) (w - w0)'M(w - w0)` by accelerated
/// projected gradient with function restart (Beck, Teboulle 2009; O'Donoghue, Candes
/// 2015). Returns the last iterate when its KKT residual is below `opts.tol` (and its
/// objective is not above the start's beyond round-off), else the best iterate seen (never
/// worse than `w0` when `w0` is feasible); the report's residual is the returned point's.
pub fn solve_prox_qp(
    q: &WeightQuadratic,
    w0: &[f64],
    eta: f64,
    opts: &QpOptions,
) -> (Vec<f64>, QpReport) {
    let n = w0.len();
    let inv_eta = 1.0 / eta;
    let same = std::ptr::eq(
        Arc::as_ptr(&q.h) as *const u8,
        Arc::as_ptr(&q.metric) as *const u8,
    );
    let lip = power_iteration(&SumOp { q, inv_eta }, opts.power_iters).max(1e-300);
    let (_, m_w0) = products(q, w0, same);
    let objective = |w: &[f64], hw: &[f64], mw: &[f64]| -> f64 {
        // F(w) + 1/(2 eta) (w - w0)'M(w - w0) with M w0 known
        let f = 0.5 * q.h_scale * dot(w, hw) - dot(&q.b, w) + q.c;
        let quad = dot(w, mw) - 2.0 * dot(w, &m_w0) + dot(w0, &m_w0);
        f + 0.5 * inv_eta * quad
    };
    let gradient = |hw: &[f64], mw: &[f64]| -> Vec<f64> {
        (0..n)
            .map(|i| q.h_scale * hw[i] - q.b[i] + inv_eta * (mw[i] - m_w0[i]))
            .collect()
    };
    let kkt = |w: &[f64], g: &[f64]| -> f64 {
        let z: Vec<f64> = w.iter().zip(g).map(|(a, b)| a - b / lip).collect();
        let p = project_simplex(&z);
        lip * w
            .iter()
            .zip(&p)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    };
    // Start from the projection of w0 (w0 itself when feasible).
    let mut w = project_simplex(w0);
    let (mut hw, mut mw) = products(q, &w, same);
    let mut obj = objective(&w, &hw, &mw);
    let obj_start = obj;
    let mut best = (w.clone(), obj);
    let mut w_prev = w.clone();
    let (mut hw_prev, mut mw_prev) = (hw.clone(), mw.clone());
    let mut t = 1.0f64;
    let mut rep = QpReport {
        lipschitz: lip,
        ..Default::default()
    };
    let mut g = gradient(&hw, &mw);
    rep.kkt_residual = kkt(&w, &g);
    for it in 0..opts.max_iter {
        if rep.kkt_residual <= opts.tol {
            break;
        }
        rep.iterations = it + 1;
        let t_new = 0.5 * (1.0 + (1.0 + 4.0 * t * t).sqrt());
        let mom = (t - 1.0) / t_new;
        let y: Vec<f64> = (0..n).map(|i| w[i] + mom * (w[i] - w_prev[i])).collect();
        let hy: Vec<f64> = (0..n).map(|i| hw[i] + mom * (hw[i] - hw_prev[i])).collect();
        let my: Vec<f64> = (0..n).map(|i| mw[i] + mom * (mw[i] - mw_prev[i])).collect();
        let gy = gradient(&hy, &my);
        let z: Vec<f64> = (0..n).map(|i| y[i] - gy[i] / lip).collect();
        let w_new = project_simplex(&z);
        let (hw_new, mw_new) = products(q, &w_new, same);
        let obj_new = objective(&w_new, &hw_new, &mw_new);
        if obj_new > obj {
            // function restart: drop the momentum
            t = 1.0;
        } else {
            t = t_new;
        }
        w_prev = std::mem::replace(&mut w, w_new);
        hw_prev = std::mem::replace(&mut hw, hw_new);
        mw_prev = std::mem::replace(&mut mw, mw_new);
        obj = obj_new;
        if obj < best.1 {
            best = (w.clone(), obj);
        }
        g = gradient(&hw, &mw);
        rep.kkt_residual = kkt(&w, &g);
    }
    // Return the last iterate when the KKT test certifies it and it is not worse than the
    // start beyond round-off; otherwise the best iterate seen (never worse than the start),
    // with its own KKT residual. (Near the optimum the objective is flat to round-off, so
    // the best-by-objective iterate can be an earlier, less accurate one.)
    let roundoff = 4.0 * f64::EPSILON * (1.0 + obj_start.abs());
    if rep.kkt_residual <= opts.tol && obj <= obj_start + roundoff {
        rep.objective = obj;
        return (w, rep);
    }
    let (hb, mb) = products(q, &best.0, same);
    rep.kkt_residual = kkt(&best.0, &gradient(&hb, &mb));
    rep.objective = best.1;
    (best.0, rep)
}

fn dense_of(op: &dyn LinOp) -> Array2<f64> {
    let n = op.dim();
    let mut a = Array2::zeros((n, n));
    let mut e = vec![0.0; n];
    let mut col = vec![0.0; n];
    for j in 0..n {
        e[j] = 1.0;
        op.apply(&e, &mut col);
        for i in 0..n {
            a[[i, j]] = col[i];
        }
        e[j] = 0.0;
    }
    a
}

/// The prox with only `sum w = 1`: solves the KKT system
/// `[(s H + M/eta), 1; 1', 0] [w; nu] = [b + M w0 / eta; 1]` densely (`n <= 2000`).
pub fn solve_prox_affine(q: &WeightQuadratic, w0: &[f64], eta: f64) -> Result<Vec<f64>> {
    let n = w0.len();
    if n > 2000 {
        return Err(Error::param(
            "particles",
            n,
            "the affine prox is dense: at most 2000 particles",
        ));
    }
    let h = dense_of(q.h.as_ref());
    let m = dense_of(q.metric.as_ref());
    let mut a = Array2::<f64>::zeros((n + 1, n + 1));
    let mut rhs = vec![0.0; n + 1];
    for i in 0..n {
        for j in 0..n {
            a[[i, j]] = q.h_scale * h[[i, j]] + m[[i, j]] / eta;
        }
        a[[i, n]] = 1.0;
        a[[n, i]] = 1.0;
        rhs[i] = q.b[i] + (0..n).map(|j| m[[i, j]] * w0[j]).sum::<f64>() / eta;
    }
    rhs[n] = 1.0;
    let sol = solve(&a, &rhs)?;
    Ok(sol[..n].to_vec())
}

impl FlowStep for MmdProx {
    fn name(&self) -> String {
        match self.solver {
            ProxSolver::ProjectedGradient => "mmd-pg".into(),
            _ => "mmd-prox".into(),
        }
    }
    fn step(
        &mut self,
        mu: &mut Particles,
        energy: &dyn Energy,
        ctx: &mut StepContext,
    ) -> Result<()> {
        self.apply(mu, energy, ctx)
    }
}
