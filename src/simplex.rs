//! Simplex-constrained quadratic programs: the solver behind the MMD-proximal (JKO) weight
//! step of [`crate::flow::MmdProx`] (Gladin, Dvurechensky, Mielke, Zhu, NeurIPS 2024 \[IFT\];
//! Zhu, Mielke 2024 \[KFR\]).
//!
//! The problem is `min_{w in simplex} F(w) + 1/(2 eta) (w - w0)' M (w - w0)` with
//! `F(w) = 1/2 s w'Hw - b'w + c` (a [`WeightQuadratic`]), i.e. the simplex QP
//! `min_{w in simplex} 1/2 w'Qw - c'w` with `Q = s H + M / eta`, `c = b + M w0 / eta`.
//!
//! - [`solve_prox_qp`]: solved to a certified tolerance ([`QpOptions`], [`QpMethod`]).
//!   The default is a primal active-set method (Nocedal, Wright 2006, Alg. 16.3, on the
//!   simplex) that needs only columns of the Gram matrix: the Gaussian Gram matrix has a low
//!   numerical rank, so the minimiser is sparse (about 100 atoms of 2000 in the benchmark of
//!   `docs/PERFORMANCE.md`) and is found exactly, with a Frank-Wolfe gap `w'G - min_i G_i`
//!   (an upper bound on the distance to the optimal value) of about `1e-10`, where
//!   accelerated projected gradient stalls at a gap of `1e-4` after 500 iterations. Along a
//!   flow it starts from the previous support. Pricing is by column generation: the steps
//!   price a candidate set (free atoms and the most negative reduced costs) and the gap is
//!   checked on all `n` atoms once per round. If the support outgrows
//!   `QpOptions::max_support` it hands over to FISTA: accelerated projected gradient with
//!   function restart and the exact Euclidean simplex projection, Lipschitz constant
//!   `lambda_max(s H + M / eta)` by power iteration, stopped on the KKT residual.
//!   Either way the result never raises the objective above its value at `w0`.
//!   Matrix-free `K v` and columns for large `n` (see `crate::kernel::GramOp`).
//! - [`solve_prox_affine`]: the same objective with only the constraint `sum w = 1`
//!   (weights may turn negative), solved exactly by a dense KKT system; on fixed atoms the
//!   MMD prox then contracts the excess energy by exactly `1 / (1 + eta)^2`. For tests and
//!   small `n`.
//!
//! Every solve returns a [`QpReport`] (iterations, KKT residual, Frank-Wolfe gap, support),
//! which the flow step hands to the driver as its per-step diagnostics.

use crate::energy::WeightQuadratic;
use crate::error::{Error, Result};
use crate::linalg::{axpy_columns, dot, power_iteration, project_simplex, solve, LinOp};
use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which algorithm the exact simplex QP solver runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QpMethod {
    /// The primal active-set method, switching to accelerated projected gradient (warm
    /// started at the active-set iterate) if the support grows past
    /// [`QpOptions::max_support`].
    #[default]
    Auto,
    /// The primal active-set method only (no support cap).
    ActiveSet,
    /// Accelerated projected gradient (FISTA) only.
    Fista,
}

/// Settings of the exact simplex QP solver.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QpOptions {
    /// Stopping tolerance. Active set: stop when the Frank-Wolfe gap
    /// `w'G - min_i G_i` (an upper bound on `phi(w) - phi*`) is below it, or when no index
    /// outside the support can lower the objective. FISTA: stop when the KKT residual
    /// `L ||w - Proj(w - G/L)||_inf` falls below it.
    pub tol: f64,
    /// Iteration cap of FISTA.
    pub max_iter: usize,
    /// Power-iteration steps for FISTA's Lipschitz constant.
    pub power_iters: usize,
    /// The algorithm.
    #[serde(default)]
    pub method: QpMethod,
    /// `Auto`: the largest support the active-set method builds before it hands over to
    /// FISTA.
    #[serde(default = "default_max_support")]
    pub max_support: usize,
}

fn default_max_support() -> usize {
    400
}

impl Default for QpOptions {
    fn default() -> Self {
        QpOptions {
            tol: 1e-9,
            max_iter: 500,
            power_iters: 50,
            method: QpMethod::Auto,
            max_support: default_max_support(),
        }
    }
}

/// What the exact solver did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QpReport {
    /// Iterations run (active-set steps plus FISTA iterations).
    pub iterations: usize,
    /// Final KKT residual. FISTA: the gradient-mapping norm `L ||w - Proj(w - G/L)||_inf`;
    /// active set: the complementarity residual `max_{w_i > 0} G_i - min_j G_j` (dual
    /// feasibility holds by construction).
    pub kkt_residual: f64,
    /// The Frank-Wolfe (duality) gap `w'G - min_i G_i >= phi(w) - phi*` at the result.
    pub fw_gap: f64,
    /// Final objective `F(w) + prox term`.
    pub objective: f64,
    /// The Lipschitz constant FISTA used (0 when FISTA did not run).
    pub lipschitz: f64,
    /// Number of non-zero weights in the result.
    pub support: usize,
    /// Whether FISTA produced the result (`Auto` hands over when the support outgrows the cap).
    pub used_fista: bool,
    /// Active set: pricing rounds on all atoms (each after the steps on a candidate set).
    pub rounds: usize,
    /// Active set: the largest candidate set priced between rounds (`n` when every atom
    /// was a candidate).
    pub candidates: usize,
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

/// Solve the MMD-prox QP
/// `min_{w in simplex} F(w) + 1/(2 eta) (w - w0)'M(w - w0)`, i.e.
/// `min_{w in simplex} 1/2 w'Qw - c'w` with `Q = s H + M / eta` and `c = b + M w0 / eta`.
///
/// `opts.method` picks the algorithm ([`QpMethod`]). The default (`Auto`) runs the primal
/// active-set method (`active_set_prox`): exact up to round-off, certified by the
/// Frank-Wolfe gap, and fast because the solution is sparse (the Gaussian Gram matrix has
/// a low numerical rank, and a minimiser with at most about that many atoms exists). If
/// the support grows past `opts.max_support` it hands over to FISTA, warm started at the
/// better of its iterate and `w0`. Either way the result is never worse than `w0` (when
/// `w0` is feasible), so the step never raises the prox objective.
pub fn solve_prox_qp(
    q: &WeightQuadratic,
    w0: &[f64],
    eta: f64,
    opts: &QpOptions,
) -> (Vec<f64>, QpReport) {
    match opts.method {
        QpMethod::Fista => fista_prox(q, w0, w0, eta, opts),
        QpMethod::ActiveSet | QpMethod::Auto => {
            let cap = if opts.method == QpMethod::ActiveSet {
                usize::MAX
            } else {
                opts.max_support.max(1)
            };
            match active_set_prox(q, w0, eta, opts.tol, cap) {
                AsOutcome::Done(w, rep) => (w, rep),
                AsOutcome::HandOver {
                    w,
                    phi_w,
                    phi_w0,
                    iterations,
                } => {
                    let start = if phi_w <= phi_w0 {
                        w
                    } else {
                        feasible_start(w0)
                    };
                    let (w, mut rep) = fista_prox(q, w0, &start, eta, opts);
                    rep.iterations += iterations;
                    (w, rep)
                }
            }
        }
    }
}

/// A feasible point near `w0`: `w0` renormalised when it is non-negative with a sum within
/// `1e-9` of one (so zero weights stay exactly zero), else its Euclidean projection.
fn feasible_start(w0: &[f64]) -> Vec<f64> {
    let s: f64 = w0.iter().sum();
    if w0.iter().all(|a| *a >= 0.0 && a.is_finite()) && (s - 1.0).abs() <= 1e-9 {
        w0.iter().map(|a| a / s).collect()
    } else {
        project_simplex(w0)
    }
}

/// What the active-set method returns.
enum AsOutcome {
    /// The solution and its report.
    Done(Vec<f64>, QpReport),
    /// The support outgrew the cap: the current feasible iterate, its objective
    /// `1/2 w'Qw - c'w` and that of the projected `w0`, and the steps taken.
    HandOver {
        w: Vec<f64>,
        phi_w: f64,
        phi_w0: f64,
        iterations: usize,
    },
}

/// Dot product with four partial sums (vectorisable; a fixed summation order).
#[inline]
fn dot4(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Lower-triangular Cholesky factor `R R' = A_FF + eps I` of the active block, kept up to
/// date under appends (one forward solve) and deletions (Givens rotations), `O(s^2)` each,
/// together with the forward solutions `y_c = R^{-1} c_F` and `y_1 = R^{-1} 1`, updated in
/// `O(s)` by the same operations. With them the equality-constrained sub-problem
/// `A_FF z + nu 1 = c_F, 1'z = 1` costs one triangular back-solve:
/// `nu = (y_1'y_c - 1) / y_1'y_1` and `z = R'^{-1} (y_c - nu y_1)`.
struct Chol {
    rows: Vec<Vec<f64>>,
    yc: Vec<f64>,
    y1: Vec<f64>,
}

impl Chol {
    fn new() -> Self {
        Chol {
            rows: Vec::new(),
            yc: Vec::new(),
            y1: Vec::new(),
        }
    }
    fn len(&self) -> usize {
        self.rows.len()
    }
    /// Forward solve `R y = b`.
    fn forward(&self, b: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; b.len()];
        for (i, row) in self.rows.iter().enumerate() {
            let s = dot4(&row[..i], &y[..i]);
            y[i] = (b[i] - s) / row[i];
        }
        y
    }
    /// Recompute `y_c` and `y_1` from scratch (against drift of the updates).
    fn refresh(&mut self, cf: &[f64]) {
        self.yc = self.forward(cf);
        self.y1 = self.forward(&vec![1.0; cf.len()]);
    }
    /// The solution `z` of `A_FF z + nu 1 = c_F`, `1'z = 1`.
    fn eqp(&self) -> Vec<f64> {
        let nu = (dot4(&self.y1, &self.yc) - 1.0) / dot4(&self.y1, &self.y1);
        let mut x: Vec<f64> = self
            .yc
            .iter()
            .zip(&self.y1)
            .map(|(a, b)| a - nu * b)
            .collect();
        // Back-solve R' x = rhs, row-wise (R is stored by rows).
        for i in (0..self.len()).rev() {
            x[i] /= self.rows[i][i];
            let xi = x[i];
            for (xk, rik) in x[..i].iter_mut().zip(&self.rows[i][..i]) {
                *xk -= rik * xi;
            }
        }
        x
    }
    /// Append the row/column `a` (entries against the current block) with diagonal `diag`
    /// and right-hand side entry `c_new`.
    fn append(&mut self, a: &[f64], diag: f64, c_new: f64) {
        let mut y = self.forward(a);
        let d2 = diag - dot4(&y, &y);
        // `diag` includes the ridge, so `d2 >= ridge` in exact arithmetic; round-off can
        // push it below, so floor it at a tiny fraction of the diagonal.
        let r = d2.max(diag * 1e-14).sqrt();
        self.yc.push((c_new - dot4(&y, &self.yc)) / r);
        self.y1.push((1.0 - dot4(&y, &self.y1)) / r);
        y.push(r);
        self.rows.push(y);
    }
    /// Delete position `p` (row and column) by Givens rotations on the trailing rows
    /// (`R <- R G`, so the forward solutions turn by `G'`).
    fn delete(&mut self, p: usize) {
        let s = self.len();
        for a in p..s - 1 {
            let r = a + 1;
            let (x, y) = (self.rows[r][a], self.rows[r][a + 1]);
            let h = x.hypot(y);
            let (c, sn) = if h == 0.0 { (1.0, 0.0) } else { (x / h, y / h) };
            for row in self.rows[r..].iter_mut() {
                let (u, v) = (row[a], row[a + 1]);
                row[a] = c * u + sn * v;
                row[a + 1] = -sn * u + c * v;
            }
            for y in [&mut self.yc, &mut self.y1] {
                let (u, v) = (y[a], y[a + 1]);
                y[a] = c * u + sn * v;
                y[a + 1] = -sn * u + c * v;
            }
        }
        self.rows.remove(p);
        for row in self.rows[p..].iter_mut() {
            row.pop();
        }
        self.yc.pop();
        self.y1.pop();
    }
}

/// The gradient `G = (Q + eps I) w - c` at a set of rows, brought up to date lazily: `wg`
/// holds the weights it was computed at and `dirty` the indices whose weight changed since.
struct Tracker {
    /// `G` at the tracked rows (all `n`, or the candidate rows).
    g: Vec<f64>,
    /// The weights `G` was computed at (indexed by atom).
    wg: Vec<f64>,
    dirty: Vec<usize>,
    is_dirty: Vec<bool>,
}

impl Tracker {
    fn new(g: Vec<f64>, n: usize) -> Self {
        Tracker {
            g,
            wg: vec![0.0; n],
            dirty: Vec::new(),
            is_dirty: vec![false; n],
        }
    }
    fn mark(&mut self, j: usize) {
        if !self.is_dirty[j] {
            self.is_dirty[j] = true;
            self.dirty.push(j);
        }
    }
    /// Take `other`'s `G` and weights, `other` tracking the same (all `n`) rows and being
    /// up to date: nothing is dirty afterwards.
    fn adopt(&mut self, other: &Tracker) {
        debug_assert!(other.dirty.is_empty() && other.g.len() == self.g.len());
        self.g.copy_from_slice(&other.g);
        self.wg.copy_from_slice(&other.wg);
        for j in self.dirty.drain(..) {
            self.is_dirty[j] = false;
        }
    }
    /// `G += sum_j (w_j - wg_j) col_j` over the dirty atoms, in row blocks (in parallel when
    /// the update is large; each entry accumulates in the same order whatever the number
    /// of threads, so results do not depend on it). `pos(j)` is atom `j`'s tracked row (for
    /// the ridge term) and `col(j)` its column restricted to the tracked rows.
    fn sync<'a>(
        &mut self,
        w: &[f64],
        ridge: f64,
        pos: impl Fn(usize) -> usize,
        col: impl Fn(usize) -> &'a [f64],
    ) {
        let mut upd: Vec<(f64, &[f64])> = Vec::with_capacity(self.dirty.len());
        for &j in &self.dirty {
            self.is_dirty[j] = false;
            let dj = w[j] - self.wg[j];
            if dj != 0.0 {
                upd.push((dj, col(j)));
                self.g[pos(j)] += ridge * dj;
                self.wg[j] = w[j];
            }
        }
        self.dirty.clear();
        const BLOCK: usize = 512;
        let body = |(b, chunk): (usize, &mut [f64])| axpy_columns(chunk, &upd, b * BLOCK);
        if upd.len() * self.g.len() >= 1 << 20 {
            self.g.par_chunks_mut(BLOCK).enumerate().for_each(body);
        } else {
            self.g.chunks_mut(BLOCK).enumerate().for_each(body);
        }
    }
}

/// Primal active-set method for `min_{w in simplex} 1/2 w'Qw - c'w` (the prox QP of
/// [`solve_prox_qp`]), after the classical method for convex QPs (Nocedal, Wright,
/// Numerical Optimization, 2006, Algorithm 16.3) specialised to the simplex, with the
/// Gram matrix accessed by columns only and the pricing done by column generation.
///
/// Iterates stay feasible. On the free set `F` the equality-constrained sub-problem
/// `Q_FF z + nu 1 = c_F, 1'z = 1` is solved with an updated Cholesky factor of
/// `Q_FF + eps I` (`eps = 1e-13 max_i Q_ii`, which only guards the factorisation) and
/// updated forward solutions, one `O(s^2)` back-solve per step. If `z` is positive it is
/// taken, and the index with the most negative reduced cost `G_i + nu` (`G = Qw - c`) joins
/// `F`; otherwise the step to `z` is cut at the first weight that reaches zero and that
/// index leaves `F`. The objective never increases.
///
/// Pricing (column generation, as in the partial pricing of the simplex method): the
/// steps above price only a candidate set `C`, the free set plus the `max(32, 2|F|)`
/// indices with the most negative reduced costs, keeping `G` on `C` up to date (`O(|C|)`
/// per changed weight). When no candidate can enter, `G` is brought up to date on all `n`
/// atoms (`O(n)` per weight changed since the last round) and the Frank-Wolfe gap
/// `w'G - min_i G_i` (an upper bound on `phi(w) - phi*`) is checked: it stops when the gap
/// is at most `tol` or no index can enter (round-off floor), else `C` is rebuilt from the
/// new reduced costs and the steps resume. The result is the optimum over all `n`
/// atoms, certified on all `n`; only the bookkeeping is restricted.
///
/// Start: the support of `w0` when it has at most `cap / 2` atoms (warm start along a
/// flow, where the support is small and stable), else the best vertex
/// `argmin_i 1/2 Q_ii - c_i`. Cost per step `O(s^2 + |C| s)` plus `O(n s)` per pricing
/// round and one kernel column per new index (`s` the support size): no `n x n` matrix is
/// formed.
fn active_set_prox(q: &WeightQuadratic, w0: &[f64], eta: f64, tol: f64, cap: usize) -> AsOutcome {
    let n = w0.len();
    let inv_eta = 1.0 / eta;
    let same = std::ptr::eq(
        Arc::as_ptr(&q.h) as *const u8,
        Arc::as_ptr(&q.metric) as *const u8,
    );
    // c = b + M w0 / eta and the diagonal of Q.
    let w0p = feasible_start(w0);
    let mut m_w0 = vec![0.0; n];
    q.metric.apply(w0, &mut m_w0);
    let c: Vec<f64> = (0..n).map(|i| q.b[i] + inv_eta * m_w0[i]).collect();
    let mut diag = vec![0.0; n];
    q.h.diagonal(&mut diag);
    if same {
        diag.iter_mut().for_each(|v| *v *= q.h_scale + inv_eta);
    } else {
        let mut dm = vec![0.0; n];
        q.metric.diagonal(&mut dm);
        for (v, m) in diag.iter_mut().zip(&dm) {
            *v = q.h_scale * *v + inv_eta * m;
        }
    }
    let ridge = 1e-13 * diag.iter().cloned().fold(0.0f64, f64::max).max(1e-300);
    // Columns of Q (all n rows), computed once per index and cached.
    let make_column = |j: usize| -> Vec<f64> {
        let mut col = vec![0.0; n];
        q.h.column(j, &mut col);
        if same {
            col.iter_mut().for_each(|v| *v *= q.h_scale + inv_eta);
        } else {
            let mut tmp = vec![0.0; n];
            q.metric.column(j, &mut tmp);
            for (v, m) in col.iter_mut().zip(&tmp) {
                *v = q.h_scale * *v + inv_eta * m;
            }
        }
        col
    };
    let mut cols: Vec<Option<Vec<f64>>> = vec![None; n];
    let column = |j: usize, cols: &mut Vec<Option<Vec<f64>>>| {
        if cols[j].is_none() {
            cols[j] = Some(make_column(j));
        }
    };
    // Objective of the feasible start (for the hand-over and the safety net). When H and
    // M are one operator and w0 is feasible up to a renormalisation, Q w0 comes from M w0.
    let phi_of = |w: &[f64], qw: &[f64]| 0.5 * dot(w, qw) - dot(&c, w);
    let phi_w0 = {
        let qw: Vec<f64> = if same && w0.iter().zip(&w0p).all(|(a, b)| (*a == 0.0) == (*b == 0.0)) {
            let r = w0p.iter().sum::<f64>() / w0.iter().sum::<f64>();
            m_w0.iter().map(|v| v * r * (q.h_scale + inv_eta)).collect()
        } else {
            let (mut hw, mut mw) = (vec![0.0; n], vec![0.0; n]);
            q.h.apply(&w0p, &mut hw);
            q.metric.apply(&w0p, &mut mw);
            (0..n)
                .map(|i| q.h_scale * hw[i] + inv_eta * mw[i])
                .collect()
        };
        phi_of(&w0p, &qw)
    };
    // Start.
    let supp0: Vec<usize> = (0..n).filter(|&i| w0p[i] > 0.0).collect();
    let (mut free, mut w): (Vec<usize>, Vec<f64>) = if !supp0.is_empty() && supp0.len() <= cap / 2 {
        (supp0, w0p.clone())
    } else {
        let j = (0..n)
            .min_by(|&a, &b| (0.5 * diag[a] - c[a]).total_cmp(&(0.5 * diag[b] - c[b])))
            .unwrap_or(0);
        let mut w = vec![0.0; n];
        w[j] = 1.0;
        (vec![j], w)
    };
    let mut in_free = vec![false; n];
    let mut chol = Chol::new();
    // The columns of a warm start, in parallel when there are many (each column is
    // computed alone, so the result does not depend on the number of threads).
    if free.len() * n >= 1 << 16 {
        let new: Vec<(usize, Vec<f64>)> = free.par_iter().map(|&j| (j, make_column(j))).collect();
        for (j, col) in new {
            cols[j] = Some(col);
        }
    }
    for (k, &j) in free.iter().enumerate() {
        in_free[j] = true;
        column(j, &mut cols);
        let colj = cols[j].as_ref().expect("cached");
        let a: Vec<f64> = free[..k].iter().map(|&i| colj[i]).collect();
        chol.append(&a, diag[j] + ridge, c[j]);
    }
    // G on all n atoms (synced once per pricing round) and on the candidate set.
    let mut glob = Tracker::new(c.iter().map(|v| -v).collect(), n);
    for &j in &free {
        glob.mark(j);
    }
    // Candidate set of the current round: `cand` (atom ids), `loc` (atom -> position in
    // `cand`, or NONE) and, per atom free during the round, its column on the candidate
    // rows. With `all` set the candidate set is every atom and the full columns serve.
    const NONE: usize = usize::MAX;
    let mut cand: Vec<usize> = Vec::new();
    let mut loc = vec![NONE; n];
    let mut lcols: Vec<Option<Vec<f64>>> = vec![None; n];
    let mut local = Tracker::new(Vec::new(), n);
    let per_round = |free: usize| (2 * free).max(32);
    let max_steps = 50 + 20 * n.min(cap.saturating_mul(2));
    let mut steps = 0usize;
    let mut rep = QpReport::default();
    let sync_glob = |glob: &mut Tracker, w: &[f64], cols: &[Option<Vec<f64>>]| {
        glob.sync(
            w,
            ridge,
            |j| j,
            |j| {
                cols[j]
                    .as_deref()
                    .expect("columns of touched indices are cached")
            },
        )
    };
    sync_glob(&mut glob, &w, &cols);
    // A start that is already optimal to `tol` is returned unchanged (a fixed point such as
    // `mu = pi` must stay exactly where it is, as FISTA's initial KKT test ensures).
    let gmin0 = glob.g.iter().cloned().fold(f64::INFINITY, f64::min);
    let start_optimal = dot(&w, &glob.g) - gmin0 <= tol;
    'rounds: loop {
        if start_optimal {
            break;
        }
        // Global pricing on the synced G.
        let g = &glob.g;
        let wg_dot: f64 = free.iter().map(|&j| w[j] * g[j]).sum();
        let gmin = g.iter().cloned().fold(f64::INFINITY, f64::min);
        // An entering index must lower the objective beyond round-off.
        let floor = 1e-14 * (1.0 + g.iter().fold(0.0f64, |a, b| a.max(b.abs())));
        if wg_dot - gmin <= tol || steps >= max_steps {
            break;
        }
        let mut viol: Vec<usize> = (0..n)
            .filter(|&i| !in_free[i] && g[i] < wg_dot - floor)
            .collect();
        // No index can enter: optimal once w is optimal on its free set (after a pass of
        // the steps; the start need not be).
        if viol.is_empty() && rep.rounds > 0 {
            break;
        }
        // The candidate set of this round: the free set and the most negative violators.
        let k = per_round(free.len()).min(viol.len());
        if k < viol.len() {
            viol.select_nth_unstable_by(k - 1, |&a, &b| g[a].total_cmp(&g[b]).then(a.cmp(&b)));
            viol.truncate(k);
        }
        for &i in &cand {
            loc[i] = NONE;
        }
        cand.clear();
        let all = 2 * (free.len() + viol.len()) > n;
        if all {
            cand.extend(0..n);
            loc.iter_mut().enumerate().for_each(|(i, l)| *l = i);
        } else {
            for &i in free.iter().chain(viol.iter()) {
                loc[i] = cand.len();
                cand.push(i);
            }
            for &j in &free {
                let colj = cols[j].as_ref().expect("cached");
                lcols[j] = Some(cand.iter().map(|&i| colj[i]).collect());
            }
        }
        rep.rounds += 1;
        rep.candidates = rep.candidates.max(cand.len());
        // The candidate rows of G, taken from the synced global G.
        local.g = cand.iter().map(|&i| glob.g[i]).collect();
        local.wg.copy_from_slice(&glob.wg);
        for j in local.dirty.drain(..) {
            local.is_dirty[j] = false;
        }
        let cf: Vec<f64> = free.iter().map(|&j| c[j]).collect();
        chol.refresh(&cf);
        // Active-set steps, priced on the candidate set.
        loop {
            steps += 1;
            let z = chol.eqp();
            if z.iter().all(|v| *v > 0.0) {
                for (k, &j) in free.iter().enumerate() {
                    if w[j] != z[k] {
                        w[j] = z[k];
                        local.mark(j);
                        glob.mark(j);
                    }
                }
                {
                    let (lc, fc, lo) = (&lcols, &cols, &loc);
                    local.sync(
                        &w,
                        ridge,
                        |j| lo[j],
                        |j| {
                            if all {
                                fc[j].as_deref()
                            } else {
                                lc[j].as_deref()
                            }
                            .expect("columns of touched indices are cached")
                        },
                    );
                }
                // Pricing: the most negative reduced cost on the candidate set.
                let gl = &local.g;
                let wg_dot: f64 = free.iter().map(|&j| w[j] * gl[loc[j]]).sum();
                let (mut pmin, mut gmin_out) = (NONE, f64::INFINITY);
                for (p, &i) in cand.iter().enumerate() {
                    if !in_free[i] && gl[p] < gmin_out {
                        gmin_out = gl[p];
                        pmin = p;
                    }
                }
                let gmin_all = free.iter().map(|&j| gl[loc[j]]).fold(gmin_out, f64::min);
                if wg_dot - gmin_all <= tol
                    || pmin == NONE
                    || gmin_out >= wg_dot - floor
                    || steps >= max_steps
                {
                    // Re-price on all atoms. (When every atom is a candidate, the local
                    // G is already the global one: take it instead of redoing the updates.)
                    if all {
                        glob.adopt(&local);
                    } else {
                        sync_glob(&mut glob, &w, &cols);
                    }
                    continue 'rounds;
                }
                if free.len() >= cap {
                    sync_glob(&mut glob, &w, &cols);
                    let qw: Vec<f64> = (0..n).map(|i| glob.g[i] + c[i] - ridge * w[i]).collect();
                    let phi_w = phi_of(&w, &qw);
                    return AsOutcome::HandOver {
                        w,
                        phi_w,
                        phi_w0,
                        iterations: steps,
                    };
                }
                // Enter the most negative reduced cost. (One index per step: entering
                // several at once lets degenerate, rank-deficient problems grow supports
                // whose Gram blocks are numerically singular.)
                let imin = cand[pmin];
                column(imin, &mut cols);
                let colj = cols[imin].as_ref().expect("cached");
                let a: Vec<f64> = free.iter().map(|&i| colj[i]).collect();
                chol.append(&a, diag[imin] + ridge, c[imin]);
                if !all {
                    lcols[imin] = Some(cand.iter().map(|&i| colj[i]).collect());
                }
                free.push(imin);
                in_free[imin] = true;
            } else {
                // Ratio test: the largest step towards z that keeps w >= 0.
                let mut alpha = 1.0f64;
                for (k, &j) in free.iter().enumerate() {
                    if z[k] <= 0.0 {
                        let den = w[j] - z[k];
                        let r = if den > 0.0 { w[j] / den } else { 0.0 };
                        alpha = alpha.min(r);
                    }
                }
                let mut leave = Vec::new();
                for (k, &j) in free.iter().enumerate() {
                    let v = w[j] + alpha * (z[k] - w[j]);
                    let v = if z[k] <= 0.0 && w[j] * (1.0 - 1e-12) <= alpha * (w[j] - z[k]) {
                        0.0
                    } else {
                        v.max(0.0)
                    };
                    if v != w[j] {
                        w[j] = v;
                        local.mark(j);
                        glob.mark(j);
                    }
                    if v == 0.0 {
                        leave.push(k);
                    }
                }
                if leave.is_empty() {
                    // Round-off: force out the most negative component.
                    let (k, _) = z
                        .iter()
                        .enumerate()
                        .min_by(|a, b| a.1.total_cmp(b.1))
                        .expect("non-empty");
                    let j = free[k];
                    w[j] = 0.0;
                    local.mark(j);
                    glob.mark(j);
                    leave.push(k);
                }
                for &k in leave.iter().rev() {
                    let j = free.remove(k);
                    in_free[j] = false;
                    chol.delete(k);
                }
                // Keep the sum exactly one against drift.
                let s: f64 = free.iter().map(|&j| w[j]).sum();
                if s > 0.0 && (s - 1.0).abs() > 0.0 {
                    for &j in &free {
                        w[j] /= s;
                        local.mark(j);
                        glob.mark(j);
                    }
                }
                if free.is_empty() || steps >= max_steps {
                    // Cannot happen for a convex QP in exact arithmetic; fall back to FISTA.
                    let w = if free.is_empty() { w0p.clone() } else { w };
                    return AsOutcome::HandOver {
                        w,
                        phi_w: f64::INFINITY,
                        phi_w0,
                        iterations: steps,
                    };
                }
            }
        }
    }
    sync_glob(&mut glob, &w, &cols);
    // Report on the unregularised problem: G_true = G - eps w.
    let gt: Vec<f64> = (0..n).map(|i| glob.g[i] - ridge * w[i]).collect();
    let gmin = gt.iter().cloned().fold(f64::INFINITY, f64::min);
    rep.iterations = steps;
    rep.fw_gap = (dot(&w, &gt) - gmin).max(0.0);
    rep.kkt_residual = free.iter().map(|&j| gt[j] - gmin).fold(0.0f64, f64::max);
    let qw: Vec<f64> = (0..n).map(|i| gt[i] + c[i]).collect();
    let phi_w = phi_of(&w, &qw);
    let konst = q.c + 0.5 * inv_eta * dot(w0, &m_w0);
    rep.objective = phi_w + konst;
    rep.support = free.len();
    if phi_w > phi_w0 + 4.0 * f64::EPSILON * (1.0 + phi_w0.abs()) {
        // Never return a point worse than the start (round-off safety net).
        return AsOutcome::HandOver {
            w: w0p,
            phi_w: phi_w0,
            phi_w0,
            iterations: steps,
        };
    }
    AsOutcome::Done(w, rep)
}

/// FISTA on the prox QP from `start` (projected onto the simplex): accelerated projected
/// gradient with function restart (Beck, Teboulle 2009; O'Donoghue, Candes 2015). Returns
/// the last iterate when its KKT residual is below `opts.tol` (and its objective is not
/// above the start's beyond round-off), else the best iterate seen (never worse than the
/// start); the report's residual is the returned point's.
fn fista_prox(
    q: &WeightQuadratic,
    w0: &[f64],
    start: &[f64],
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
    // Start from the projection of `start` (itself when feasible).
    let mut w = feasible_start(start);
    let (mut hw, mut mw) = products(q, &w, same);
    let mut obj = objective(&w, &hw, &mw);
    let obj_start = obj;
    let mut best = (w.clone(), obj);
    let mut w_prev = w.clone();
    let (mut hw_prev, mut mw_prev) = (hw.clone(), mw.clone());
    let mut t = 1.0f64;
    let mut rep = QpReport {
        lipschitz: lip,
        used_fista: true,
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
    let fw = |w: &[f64], g: &[f64]| -> f64 {
        let gmin = g.iter().cloned().fold(f64::INFINITY, f64::min);
        (dot(w, g) - gmin).max(0.0)
    };
    if rep.kkt_residual <= opts.tol && obj <= obj_start + roundoff {
        rep.objective = obj;
        rep.fw_gap = fw(&w, &g);
        rep.support = w.iter().filter(|a| **a > 0.0).count();
        return (w, rep);
    }
    let (hb, mb) = products(q, &best.0, same);
    let gb = gradient(&hb, &mb);
    rep.kkt_residual = kkt(&best.0, &gb);
    rep.fw_gap = fw(&best.0, &gb);
    rep.objective = best.1;
    rep.support = best.0.iter().filter(|a| **a > 0.0).count();
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
