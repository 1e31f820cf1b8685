//! The robust least-squares task of kernel DRO (Zhu, Jitkrittum, Diehl, Schölkopf,
//! AISTATS 2021, section 5) on [`RobustLeastSquares`]: loss `l(theta, xi) = ||(A + xi B)
//! theta - b||^2`, `N` training draws `xi ~ U[-0.5, 0.5]`, test draws `xi ~ (1 + Delta)
//! U[-0.5, 0.5]`. It is the regression task of the benchmark grid (dataset `rls`,
//! condition `xi_shift`, budget `Delta`); see [`run_rls`].
//!
//! Solutions compared:
//! - ERM: the sample-average solution.
//! - Worst-case robust optimisation (RO, method `ro`) over `Xi = [-0.5, 0.5]`: `min_theta
//!   max_{xi in Xi} l(theta, xi)`. `l` is convex in `xi`, so the max is at an endpoint, and
//!   the problem is `min_theta max_w [w l(theta, -0.5) + (1 - w) l(theta, 0.5)]`, solved by
//!   a golden-section search on the concave dual function of `w`.
//! - Kernel DRO as in the paper (method `kdro`, [`kernel_dro`]): penalty form with the worst
//!   case supported on the data and a grid of `Xi`: `min_theta max_{w in simplex} sum_j w_j
//!   l(theta, z_j) - lambda ||sum_j (w_j - w0_j) phi(z_j)||_H^2`, with a Gaussian kernel and
//!   `w0` uniform on the data. The inner problem is a concave quadratic on the simplex
//!   (projected gradient ascent); the outer is a damped best response (a Newton step on the
//!   convex Danskin envelope).
//! - Every ambiguity set of the grid (`wrm`, `kl`, `chi2`, `cvar`, `mmd_ift`, `mmd_wfr`,
//!   `wfr`; [`fit_dro`]): the toolkit's own inner solver ([`crate::dro::build_inner`]) on
//!   the training draws, seen as 1-D data points in standardised units (as the features of
//!   the classification tasks), through [`RlsLoss`]; the outer problem is the same damped
//!   best response. `w1` is not run: its exact form needs a Lipschitz loss.
//!
//! Each method's radius or penalty is chosen from its 3-point grid (the classification
//! grid's, [`super::methods::method_grid`]; `kdro`: `lambda` in {1, 10, 100}) on a validation
//! split of fresh training-distribution draws, by the same rule as the classification
//! cells: the mean of the validation loss at `Delta = 0` and at the middle `Delta` of the
//! test list (the validation draws stretched by `1 + Delta`, as PGD at the middle budget
//! perturbs the validation points there).

use super::generators::RobustLeastSquares;
use crate::dro::{build_inner, AmbiguityConfig, Batch, PointLoss, SetKind};
use crate::error::{Error, Result};
use ndarray::Array2;
use serde::Serialize;

/// Minimiser of `sum_k w_k l(theta, xi_k)` (weighted normal equations).
pub fn weighted_ls(p: &RobustLeastSquares, xis: &[f64], w: &[f64]) -> Result<Vec<f64>> {
    let d = p.a.ncols();
    let mut h = Array2::<f64>::zeros((d, d));
    let mut r = vec![0.0; d];
    for (&xi, &wk) in xis.iter().zip(w) {
        if wk == 0.0 {
            continue;
        }
        let m = &p.a + &(&p.b_mat * xi);
        h = h + m.t().dot(&m) * wk;
        let mb = m.t().dot(&p.b);
        for j in 0..d {
            r[j] += wk * mb[j];
        }
    }
    for j in 0..d {
        h[[j, j]] += 1e-10;
    }
    crate::linalg::solve(&h, &r)
}

/// Worst-case RO over `[-half, half]`.
pub fn robust_opt(p: &RobustLeastSquares, half: f64) -> Result<Vec<f64>> {
    let ends = [-half, half];
    let g = |w: f64| -> Result<(f64, Vec<f64>)> {
        let th = weighted_ls(p, &ends, &[w, 1.0 - w])?;
        Ok((w * p.loss(&th, -half) + (1.0 - w) * p.loss(&th, half), th))
    };
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    let phi = 0.5 * (5f64.sqrt() - 1.0);
    for _ in 0..60 {
        let a = hi - phi * (hi - lo);
        let b = lo + phi * (hi - lo);
        if g(a)?.0 > g(b)?.0 {
            hi = b;
        } else {
            lo = a;
        }
    }
    Ok(g(0.5 * (lo + hi))?.1)
}

fn project_simplex(v: &mut [f64]) {
    let mut u: Vec<f64> = v.to_vec();
    u.sort_by(|a, b| b.total_cmp(a));
    let (mut css, mut tau) = (0.0, 0.0);
    for (i, &ui) in u.iter().enumerate() {
        css += ui;
        let t = (css - 1.0) / (i + 1) as f64;
        if ui - t > 0.0 {
            tau = t;
        }
    }
    for x in v.iter_mut() {
        *x = (*x - tau).max(0.0);
    }
}

/// Kernel DRO (penalty `lambda`, Gaussian kernel of bandwidth `sigma`) with support the
/// training draws plus `grid` points on `[-half, half]`; returns `theta`.
pub fn kernel_dro(
    p: &RobustLeastSquares,
    train: &[f64],
    half: f64,
    grid: usize,
    lambda: f64,
    sigma: f64,
) -> Result<Vec<f64>> {
    let mut z: Vec<f64> = train.to_vec();
    for k in 0..grid {
        z.push(-half + 2.0 * half * k as f64 / (grid - 1).max(1) as f64);
    }
    let m = z.len();
    let n = train.len() as f64;
    let w0: Vec<f64> = (0..m)
        .map(|j| if j < train.len() { 1.0 / n } else { 0.0 })
        .collect();
    let k: Vec<f64> = (0..m * m)
        .map(|ij| {
            let (i, j) = (ij / m, ij % m);
            (-(z[i] - z[j]).powi(2) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    // the inner gradient is 2 lambda lambda_max(K)-Lipschitz, lambda_max(K) <= m
    let inner_step = 1.0 / (2.0 * lambda * m as f64);
    let mut theta = p.erm(train)?;
    let mut w = w0.clone();
    let d = theta.len();
    for _ in 0..200 {
        let l: Vec<f64> = z.iter().map(|&xi| p.loss(&theta, xi)).collect();
        for _ in 0..200 {
            let diff: Vec<f64> = w.iter().zip(&w0).map(|(a, b)| a - b).collect();
            let mut g = l.clone();
            for i in 0..m {
                let kd: f64 = (0..m).map(|j| k[i * m + j] * diff[j]).sum();
                g[i] -= 2.0 * lambda * kd;
            }
            for i in 0..m {
                w[i] += inner_step * g[i];
            }
            project_simplex(&mut w);
        }
        // damped best response: theta <- theta + 1/2 (argmin_theta sum_j w_j l_j - theta),
        // a Newton step on the Danskin envelope at the current worst case
        let br = weighted_ls(p, &z, &w)?;
        for q in 0..d {
            theta[q] += 0.5 * (br[q] - theta[q]);
        }
    }
    Ok(theta)
}

/// The loss `l(theta, mu + sigma z)` of a fixed `theta` as a function of the standardised
/// draw `z` (one feature, labels ignored), for the toolkit's inner solvers. With `u = A theta
/// - b` and `v = B theta`, `l = ||u||^2 + 2 xi u.v + xi^2 ||v||^2`.
pub struct RlsLoss {
    uu: f64,
    uv: f64,
    vv: f64,
    mu: f64,
    sigma: f64,
}

impl RlsLoss {
    /// The loss of `theta` on `p`, with draws standardised as `z = (xi - mu) / sigma`.
    pub fn new(p: &RobustLeastSquares, theta: &[f64], mu: f64, sigma: f64) -> Result<Self> {
        if theta.len() != p.a.ncols() {
            return Err(Error::Shape(format!(
                "rls: theta has {} entries, the task has {} unknowns",
                theta.len(),
                p.a.ncols()
            )));
        }
        if !(sigma > 0.0 && sigma.is_finite() && mu.is_finite()) {
            return Err(Error::param(
                "rls standardisation",
                format!("mu = {mu}, sigma = {sigma}"),
                "need a finite mean and a positive, finite standard deviation",
            ));
        }
        let (mut uu, mut uv, mut vv) = (0.0, 0.0, 0.0);
        for i in 0..p.b.len() {
            let mut u = -p.b[i];
            let mut v = 0.0;
            for (j, t) in theta.iter().enumerate() {
                u += p.a[[i, j]] * t;
                v += p.b_mat[[i, j]] * t;
            }
            uu += u * u;
            uv += u * v;
            vv += v * v;
        }
        Ok(RlsLoss {
            uu,
            uv,
            vv,
            mu,
            sigma,
        })
    }
    fn check(&self, x: &[f64], y: &[f64]) -> Result<()> {
        if x.len() != y.len() {
            return Err(Error::Shape(format!(
                "rls loss: {} draws for {} labels",
                x.len(),
                y.len()
            )));
        }
        Ok(())
    }
    fn at(&self, z: f64) -> (f64, f64) {
        let xi = self.mu + self.sigma * z;
        let l = self.uu + 2.0 * xi * self.uv + xi * xi * self.vv;
        let dl = 2.0 * self.uv + 2.0 * xi * self.vv;
        (l, self.sigma * dl)
    }
}

impl PointLoss for RlsLoss {
    fn dim(&self) -> usize {
        1
    }
    fn n_classes(&self) -> Option<usize> {
        None
    }
    fn losses(&self, x: &[f64], y: &[f64]) -> Result<Vec<f64>> {
        self.check(x, y)?;
        Ok(x.iter().map(|&z| self.at(z).0).collect())
    }
    fn losses_and_grads(&self, x: &[f64], y: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        self.check(x, y)?;
        Ok(x.iter().map(|&z| self.at(z)).unzip())
    }
}

/// Outer iterations of [`fit_dro`] and [`kernel_dro`]-style damped best responses.
pub const OUTER_ITERS: usize = 200;

/// Robust least squares over an ambiguity set of the toolkit: `min_theta sup_{P in A}
/// E_P l(theta, xi)` around the empirical distribution of `train`, the inner sup solved by
/// the set's own solver ([`build_inner`]) on the standardised draws, the outer by a damped
/// best response `theta <- theta + t (argmin_theta' sum_i w_i l(theta', xi_i) - theta)` at
/// the worst case `(xi_i, w_i)` (`t = 1/2` for the first half of [`OUTER_ITERS`], then
/// decreasing like `1/k`, which averages out an oscillating worst case). Starts at ERM;
/// stops early when a step is below `1e-10 (1 + ||theta||)`.
pub fn fit_dro(p: &RobustLeastSquares, train: &[f64], cfg: &AmbiguityConfig) -> Result<Vec<f64>> {
    let n = train.len();
    if n < 2 {
        return Err(Error::param(
            "rls train draws",
            n,
            "need at least two training draws",
        ));
    }
    if let Some(k) = train.iter().position(|v| !v.is_finite()) {
        return Err(Error::param(
            "rls train draws",
            train[k],
            &format!("draw {k} is not finite"),
        ));
    }
    let theta0 = p.erm(train)?;
    if cfg.set == SetKind::None {
        return Ok(theta0);
    }
    if cfg.norm.is_some() {
        return Err(Error::param(
            "methods",
            "w1",
            "the exact 1-Wasserstein set needs a Lipschitz loss; not run on the rls task",
        ));
    }
    let mut inner = build_inner(cfg)?;
    let mu = train.iter().sum::<f64>() / n as f64;
    let var = train.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / n as f64;
    let sigma = var.sqrt().max(1e-12);
    let z: Vec<f64> = train.iter().map(|v| (v - mu) / sigma).collect();
    let y = vec![0.0; n];
    let idx: Vec<usize> = (0..n).collect();
    let batch = Batch {
        x: &z,
        y: &y,
        d: 1,
        idx: &idx,
    };
    let mut theta = theta0;
    let half = OUTER_ITERS / 2;
    for k in 0..OUTER_ITERS {
        let loss = RlsLoss::new(p, &theta, mu, sigma)?;
        let wc = inner.solve(&loss, &batch)?;
        let xis: Vec<f64> = wc.x.iter().map(|z| mu + sigma * z).collect();
        let br = weighted_ls(p, &xis, &wc.w)?;
        let t = if k < half {
            0.5
        } else {
            0.5 * half as f64 / k as f64
        };
        let mut step2 = 0.0;
        let mut norm2 = 0.0;
        for (th, b) in theta.iter_mut().zip(&br) {
            let s = t * (b - *th);
            *th += s;
            step2 += s * s;
            norm2 += *th * *th;
        }
        if theta.iter().any(|v| !v.is_finite()) {
            return Err(Error::Diverged {
                step: k,
                detail: "rls: robust solution is not finite".into(),
            });
        }
        if step2.sqrt() <= 1e-10 * (1.0 + norm2.sqrt()) {
            break;
        }
    }
    Ok(theta)
}

/// How one point of an `rls` method's grid is fitted.
#[derive(Debug, Clone, PartialEq)]
pub enum RlsFit {
    /// The sample average.
    Erm,
    /// Worst case over `[-0.5, 0.5]`.
    Ro,
    /// The paper's kernel DRO (support: data and 21 grid points of `[-0.5, 0.5]`,
    /// bandwidth 0.2) with this penalty.
    Kdro(f64),
    /// A toolkit ambiguity set ([`fit_dro`]).
    Set(AmbiguityConfig),
}

/// The `kdro` penalties (the grid of every method has three points).
pub const KDRO_LAMBDAS: [f64; 3] = [1.0, 10.0, 100.0];

/// An `rls` method's grid: `(label, fit)`. `erm` and `ro` have no parameter; `kdro` has
/// [`KDRO_LAMBDAS`]; the ambiguity sets have the classification grid of
/// [`super::methods::method_grid`]. `w1` is an error (not defined for this loss).
pub fn rls_grid(method: &str, inner_steps: usize, seed: u64) -> Result<Vec<(String, RlsFit)>> {
    Ok(match method {
        "erm" => vec![("-".into(), RlsFit::Erm)],
        "ro" => vec![("-".into(), RlsFit::Ro)],
        "kdro" => KDRO_LAMBDAS
            .iter()
            .map(|&l| (format!("penalty={l}"), RlsFit::Kdro(l)))
            .collect(),
        "w1" => {
            return Err(Error::param(
                "methods",
                method,
                "the exact 1-Wasserstein set needs a Lipschitz loss; not run on the rls task",
            ))
        }
        _ => super::methods::method_grid(method, inner_steps, seed)?
            .into_iter()
            .map(|(l, c)| (l, RlsFit::Set(c)))
            .collect(),
    })
}

/// Fit one grid point.
pub fn fit(p: &RobustLeastSquares, train: &[f64], f: &RlsFit) -> Result<Vec<f64>> {
    match f {
        RlsFit::Erm => p.erm(train),
        RlsFit::Ro => robust_opt(p, 0.5),
        RlsFit::Kdro(l) => kernel_dro(p, train, 0.5, 21, *l, 0.2),
        RlsFit::Set(c) => fit_dro(p, train, c),
    }
}

/// The draws of one seed of the `rls` task.
#[derive(Debug, Clone, PartialEq)]
pub struct RlsData {
    /// The instance (fixed: generator seed 0, `B` scale 1).
    pub problem: RobustLeastSquares,
    /// Training draws `xi ~ U[-0.5, 0.5]`.
    pub train: Vec<f64>,
    /// Validation draws from the training distribution.
    pub val: Vec<f64>,
    /// The test draws at `Delta = 0`; the test set at `Delta` is these times `1 + Delta`.
    pub test: Vec<f64>,
}

impl RlsData {
    /// The draws for `seed`: `n_train` training, `n_val` validation and `n_test` test
    /// draws (each from its own seeded stream, so changing one size leaves the others).
    pub fn new(n_train: usize, n_val: usize, n_test: usize, seed: u64) -> Result<Self> {
        if n_train < 2 {
            return Err(Error::param(
                "rls-n-train",
                n_train,
                "need at least 2 draws",
            ));
        }
        crate::error::check_count("rls-n-val", n_val)?;
        crate::error::check_count("rls-n-test", n_test)?;
        let s = seed.wrapping_mul(1000);
        Ok(RlsData {
            problem: RobustLeastSquares::new(0, 1.0),
            train: RobustLeastSquares::sample_xi(n_train, 0.0, s.wrapping_add(1)),
            val: RobustLeastSquares::sample_xi(n_val, 0.0, s.wrapping_add(2)),
            test: RobustLeastSquares::sample_xi(n_test, 0.0, s.wrapping_add(3)),
        })
    }
}

fn scaled(v: &[f64], delta: f64) -> Vec<f64> {
    v.iter().map(|x| (1.0 + delta) * x).collect()
}

/// The outcome of one `rls` cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RlsResult {
    /// The grid point chosen on the validation split.
    pub chosen: String,
    /// The chosen solution.
    pub theta: Vec<f64>,
    /// `(Delta, mean test loss)` for every Delta.
    pub losses: Vec<(f64, f64)>,
}

/// Run one `rls` cell: fit every point of the method's grid on the training draws, keep
/// the one with the lowest validation score (the mean of the validation loss at `Delta =
/// 0` and at the middle entry of `deltas`), and report its mean test loss at every `Delta`
/// (the test draws stretched by `1 + Delta`). A grid point whose fit diverges is skipped;
/// if all do, the error is returned.
pub fn run_rls(
    method: &str,
    data: &RlsData,
    deltas: &[f64],
    inner_steps: usize,
    seed: u64,
) -> Result<RlsResult> {
    if deltas.is_empty() {
        return Err(Error::param("rls-deltas", "", "need at least one Delta"));
    }
    if let Some(d) = deltas.iter().find(|d| !(d.is_finite() && **d >= 0.0)) {
        return Err(Error::param(
            "rls-deltas",
            d,
            "Delta must be finite and non-negative",
        ));
    }
    let p = &data.problem;
    let mid = deltas[deltas.len() / 2];
    let val_mid = scaled(&data.val, mid);
    let mut best: Option<(f64, String, Vec<f64>)> = None;
    let mut last_err = None;
    for (label, f) in rls_grid(method, inner_steps, seed)? {
        let theta = match fit(p, &data.train, &f) {
            Ok(t) => t,
            Err(e @ Error::Diverged { .. }) => {
                last_err = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let score = 0.5 * (p.mean_loss(&theta, &data.val) + p.mean_loss(&theta, &val_mid));
        if score.is_finite() && best.as_ref().is_none_or(|b| score < b.0) {
            best = Some((score, label, theta));
        }
    }
    let (_, chosen, theta) = match best {
        Some(b) => b,
        None => {
            return Err(last_err.unwrap_or_else(|| {
                Error::param("methods", method, "no grid point gave a finite fit")
            }))
        }
    };
    let losses = deltas
        .iter()
        .map(|&d| (d, p.mean_loss(&theta, &scaled(&data.test, d))))
        .collect();
    Ok(RlsResult {
        chosen,
        theta,
        losses,
    })
}
