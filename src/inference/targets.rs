//! Density targets for inference: the [`SteinTarget`] trait (a [`LogDensity`] that can also
//! apply the Hessian of `log pi`, which the gradient of the Stein kernel needs) and the
//! built-in targets.
//!
//! | target | `log pi~(x)` | exact sampler |
//! |---|---|---|
//! | [`Gaussian`] | `-1/2 (x-m)'S^{-1}(x-m)` | yes |
//! | [`GaussianMixture`] | `log sum_c p_c N(x; m_c, S_c)` | yes |
//! | [`Banana`] (twisted Gaussian, Haario, Saksman, Tamminen 1999) | `-x1^2/(2a^2) - (x2 + b(x1^2 - a^2))^2/2 - sum_{k>2} x_k^2/2` | yes |
//! | [`Funnel`] (Neal 2003) | `-v^2/(2 sigma^2) - (d-1) v/2 - e^{-v} sum_k x_k^2 / 2` with `v = x_1` | yes |
//! | [`LogisticPosterior`] | `sum_i [y_i z_i - log(1 + e^{z_i})] - |theta|^2/(2 s^2)`, `z = X theta` | no |
//!
//! Scores and Hessian-vector products are analytic; the tests compare them with finite
//! differences of the log density.

use crate::error::{Error, Result};
use crate::io::NumericTable;
use crate::measure::{Distribution, Gaussian, GaussianMixture, LogDensity};
use ndarray::Array2;
use rand::Rng;
use rand_distr::StandardNormal;
use std::path::Path;
use std::sync::Arc;

/// A density target usable by the Stein-kernel (KSD) flows: a [`LogDensity`] that can
/// also multiply a vector by the Hessian `grad^2 log pi(x)`.
///
/// The default [`hvp`](Self::hvp) differentiates the score by central finite
/// differences (two score calls); the built-in targets override it analytically.
pub trait SteinTarget: LogDensity {
    /// `out = grad^2 log pi(x) v` (length `d`).
    fn hvp(&self, x: &[f64], v: &[f64], out: &mut [f64]) {
        fd_hvp(self, x, v, out)
    }
}

/// Central finite-difference Hessian-vector product of a score:
/// `(s(x + e v) - s(x - e v)) / (2 e)` with `e = 1e-5 (1 + |x|) / |v|`.
pub fn fd_hvp<T: LogDensity + ?Sized>(t: &T, x: &[f64], v: &[f64], out: &mut [f64]) {
    let nv = v.iter().map(|a| a * a).sum::<f64>().sqrt();
    if nv == 0.0 {
        out.iter_mut().for_each(|o| *o = 0.0);
        return;
    }
    let nx = x.iter().map(|a| a * a).sum::<f64>().sqrt();
    let e = 1e-5 * (1.0 + nx) / nv;
    let xp: Vec<f64> = x.iter().zip(v).map(|(a, b)| a + e * b).collect();
    let xm: Vec<f64> = x.iter().zip(v).map(|(a, b)| a - e * b).collect();
    let mut sp = vec![0.0; x.len()];
    let mut sm = vec![0.0; x.len()];
    t.score(&xp, &mut sp);
    t.score(&xm, &mut sm);
    for ((o, a), b) in out.iter_mut().zip(&sp).zip(&sm) {
        *o = (a - b) / (2.0 * e);
    }
}

/// Adapter: an `Arc<dyn SteinTarget>` seen as an `Arc<dyn LogDensity>` (for the SVGD and
/// Langevin steps of the core, which take a plain log density).
pub struct AsLogDensity(pub Arc<dyn SteinTarget>);

impl LogDensity for AsLogDensity {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn log_density(&self, x: &[f64]) -> f64 {
        self.0.log_density(x)
    }
    fn score(&self, x: &[f64], out: &mut [f64]) {
        self.0.score(x, out)
    }
    fn name(&self) -> String {
        self.0.name()
    }
}

/// Wrap a Stein target as a plain log density.
pub fn as_log_density(t: Arc<dyn SteinTarget>) -> Arc<dyn LogDensity> {
    Arc::new(AsLogDensity(t))
}

impl SteinTarget for Gaussian {
    /// `grad^2 log N = -S^{-1}`.
    fn hvp(&self, _x: &[f64], v: &[f64], out: &mut [f64]) {
        // -S^{-1} v = score at (m + v) since score(x) = -S^{-1}(x - m).
        let xm: Vec<f64> = self.mean.iter().zip(v).map(|(m, a)| m + a).collect();
        self.score(&xm, out);
    }
}

impl SteinTarget for GaussianMixture {
    /// `grad^2 log p = sum_c r_c (-P_c + s_c s_c') - s s'` with responsibilities `r_c`,
    /// component scores `s_c`, precisions `P_c` and the mixture score `s = sum_c r_c s_c`.
    fn hvp(&self, x: &[f64], v: &[f64], out: &mut [f64]) {
        let d = x.len();
        let r = self.responsibilities(x);
        let mut s = vec![0.0; d];
        let mut sc = vec![0.0; d];
        let mut pv = vec![0.0; d];
        out.iter_mut().for_each(|o| *o = 0.0);
        for (rc, c) in r.iter().zip(&self.components) {
            if *rc == 0.0 {
                continue;
            }
            c.score(x, &mut sc);
            c.hvp(x, v, &mut pv); // -P_c v
            let scv: f64 = sc.iter().zip(v).map(|(a, b)| a * b).sum();
            for k in 0..d {
                out[k] += rc * (pv[k] + sc[k] * scv);
                s[k] += rc * sc[k];
            }
        }
        let sv: f64 = s.iter().zip(v).map(|(a, b)| a * b).sum();
        for k in 0..d {
            out[k] -= s[k] * sv;
        }
    }
}

/// The banana (twisted Gaussian) of Haario, Saksman, Tamminen (1999): if
/// `z ~ N(0, diag(a^2, 1, ..., 1))` then `x = (z1, z2 - b (z1^2 - a^2), z3, ...)`.
/// Its mean is 0 and its covariance `diag(a^2, 1 + 2 b^2 a^4, 1, ..., 1)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Banana {
    /// Dimension (>= 2).
    pub d: usize,
    /// Standard deviation `a` of the first coordinate.
    pub a: f64,
    /// Twist `b`.
    pub b: f64,
}

impl Banana {
    /// A banana in dimension `d >= 2` with scale `a > 0` and twist `b` (finite).
    pub fn new(d: usize, a: f64, b: f64) -> Result<Self> {
        if d < 2 {
            return Err(Error::param("dim", d, "the banana needs d >= 2"));
        }
        crate::error::check_positive("banana-a", a)?;
        if !b.is_finite() {
            return Err(Error::param("banana-b", b, "must be finite"));
        }
        Ok(Banana { d, a, b })
    }
    /// The exact mean (zero).
    pub fn mean(&self) -> Vec<f64> {
        vec![0.0; self.d]
    }
    /// The exact covariance `diag(a^2, 1 + 2 b^2 a^4, 1, ...)`.
    pub fn cov(&self) -> Array2<f64> {
        let mut c = Array2::eye(self.d);
        c[[0, 0]] = self.a * self.a;
        c[[1, 1]] = 1.0 + 2.0 * self.b * self.b * self.a.powi(4);
        c
    }
    fn u(&self, x: &[f64]) -> f64 {
        x[1] + self.b * (x[0] * x[0] - self.a * self.a)
    }
}

impl LogDensity for Banana {
    fn dim(&self) -> usize {
        self.d
    }
    fn log_density(&self, x: &[f64]) -> f64 {
        let u = self.u(x);
        -x[0] * x[0] / (2.0 * self.a * self.a)
            - 0.5 * u * u
            - 0.5 * x[2..].iter().map(|a| a * a).sum::<f64>()
    }
    fn score(&self, x: &[f64], out: &mut [f64]) {
        let u = self.u(x);
        out[0] = -x[0] / (self.a * self.a) - 2.0 * self.b * x[0] * u;
        out[1] = -u;
        for k in 2..self.d {
            out[k] = -x[k];
        }
    }
    fn name(&self) -> String {
        "banana".into()
    }
}

impl SteinTarget for Banana {
    fn hvp(&self, x: &[f64], v: &[f64], out: &mut [f64]) {
        let u = self.u(x);
        let b = self.b;
        let h00 = -1.0 / (self.a * self.a) - 2.0 * b * u - 4.0 * b * b * x[0] * x[0];
        let h01 = -2.0 * b * x[0];
        out[0] = h00 * v[0] + h01 * v[1];
        out[1] = h01 * v[0] - v[1];
        for k in 2..self.d {
            out[k] = -v[k];
        }
    }
}

impl Distribution for Banana {
    fn dim(&self) -> usize {
        self.d
    }
    fn sample(&self, n: usize, rng: &mut dyn rand::RngCore) -> Array2<f64> {
        let mut out = Array2::zeros((n, self.d));
        for mut row in out.outer_iter_mut() {
            for k in 0..self.d {
                row[k] = rng.sample::<f64, _>(StandardNormal);
            }
            row[0] *= self.a;
            row[1] -= self.b * (row[0] * row[0] - self.a * self.a);
        }
        out
    }
}

/// Neal's funnel (Neal 2003): `v = x_1 ~ N(0, sigma^2)`, `x_k | v ~ N(0, e^v)` for
/// `k = 2..d`. Mean 0, `Var v = sigma^2`, `Var x_k = e^{sigma^2 / 2}`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Funnel {
    /// Dimension (>= 2).
    pub d: usize,
    /// Standard deviation of the neck coordinate `v` (Neal: 3).
    pub sigma: f64,
}

impl Funnel {
    /// A funnel in dimension `d >= 2` with neck scale `sigma > 0`.
    pub fn new(d: usize, sigma: f64) -> Result<Self> {
        if d < 2 {
            return Err(Error::param("dim", d, "the funnel needs d >= 2"));
        }
        crate::error::check_positive("funnel-sigma", sigma)?;
        Ok(Funnel { d, sigma })
    }
    /// The exact covariance `diag(sigma^2, e^{sigma^2/2}, ...)`.
    pub fn cov(&self) -> Array2<f64> {
        let mut c = Array2::eye(self.d) * (self.sigma * self.sigma / 2.0).exp();
        c[[0, 0]] = self.sigma * self.sigma;
        c
    }
}

impl LogDensity for Funnel {
    fn dim(&self) -> usize {
        self.d
    }
    fn log_density(&self, x: &[f64]) -> f64 {
        let v = x[0];
        let q: f64 = x[1..].iter().map(|a| a * a).sum();
        -v * v / (2.0 * self.sigma * self.sigma)
            - 0.5 * (self.d - 1) as f64 * v
            - 0.5 * q * (-v).exp()
    }
    fn score(&self, x: &[f64], out: &mut [f64]) {
        let v = x[0];
        let e = (-v).exp();
        let q: f64 = x[1..].iter().map(|a| a * a).sum();
        out[0] = -v / (self.sigma * self.sigma) - 0.5 * (self.d - 1) as f64 + 0.5 * q * e;
        for k in 1..self.d {
            out[k] = -x[k] * e;
        }
    }
    fn name(&self) -> String {
        "funnel".into()
    }
}

impl SteinTarget for Funnel {
    fn hvp(&self, x: &[f64], w: &[f64], out: &mut [f64]) {
        let v = x[0];
        let e = (-v).exp();
        let q: f64 = x[1..].iter().map(|a| a * a).sum();
        // H00 = -1/sigma^2 - q e/2, H0k = x_k e, Hkk = -e
        let mut o0 = (-1.0 / (self.sigma * self.sigma) - 0.5 * q * e) * w[0];
        for k in 1..self.d {
            o0 += x[k] * e * w[k];
            out[k] = x[k] * e * w[0] - e * w[k];
        }
        out[0] = o0;
    }
}

impl Distribution for Funnel {
    fn dim(&self) -> usize {
        self.d
    }
    fn sample(&self, n: usize, rng: &mut dyn rand::RngCore) -> Array2<f64> {
        let mut out = Array2::zeros((n, self.d));
        for mut row in out.outer_iter_mut() {
            let v = self.sigma * rng.sample::<f64, _>(StandardNormal);
            row[0] = v;
            let s = (0.5 * v).exp();
            for k in 1..self.d {
                row[k] = s * rng.sample::<f64, _>(StandardNormal);
            }
        }
        out
    }
}

/// The posterior of Bayesian logistic regression with a Gaussian prior
/// `theta ~ N(0, s^2 I)` and labels `y_i in {0, 1}`:
/// `log pi(theta) = sum_i [y_i z_i - log(1 + e^{z_i})] - |theta|^2 / (2 s^2)`, `z = X theta`.
/// Score `X'(y - sigma(z)) - theta / s^2`; Hessian `-X' diag(sigma(z)(1 - sigma(z))) X - I / s^2`.
#[derive(Debug, Clone)]
pub struct LogisticPosterior {
    /// Design matrix `n x p` (standardised features, plus a column of ones first when an
    /// intercept is used).
    pub x: Array2<f64>,
    /// Labels in `{0, 1}`.
    pub y: Vec<f64>,
    /// Prior standard deviation `s`.
    pub prior_std: f64,
    /// Names of the coefficients (`intercept` and the feature names).
    pub names: Vec<String>,
}

fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

impl LogisticPosterior {
    /// A posterior for design `x` (`n x p`), labels `y` in `{0, 1}` and prior std `s`.
    pub fn new(x: Array2<f64>, y: Vec<f64>, prior_std: f64, names: Vec<String>) -> Result<Self> {
        crate::error::check_positive("prior-std", prior_std)?;
        if x.nrows() == 0 || x.ncols() == 0 {
            return Err(Error::Shape("empty design matrix".into()));
        }
        if y.len() != x.nrows() {
            return Err(Error::Shape(format!(
                "{} labels for {} rows",
                y.len(),
                x.nrows()
            )));
        }
        if let Some((i, v)) = y
            .iter()
            .enumerate()
            .find(|(_, v)| !(**v == 0.0 || **v == 1.0))
        {
            return Err(Error::param(
                "target",
                v,
                &format!("label of row {} must be 0 or 1", i + 1),
            ));
        }
        if names.len() != x.ncols() {
            return Err(Error::Shape(format!(
                "{} names for {} coefficients",
                names.len(),
                x.ncols()
            )));
        }
        Ok(LogisticPosterior {
            x: x.as_standard_layout().to_owned(),
            y,
            prior_std,
            names,
        })
    }

    /// Build from a numeric table: labels from column `target_col` (values 0/1, or -1/+1
    /// mapped to 0/1), features from `features` (all other columns when `None`), each
    /// standardised to mean 0 and standard deviation 1; a leading column of ones when
    /// `intercept`. Errors name the file, row and column of a bad label or a constant
    /// feature.
    pub fn from_table(
        table: &NumericTable,
        path: &Path,
        target_col: &str,
        features: Option<&[String]>,
        intercept: bool,
        prior_std: f64,
    ) -> Result<Self> {
        let find = |name: &str| -> Result<usize> {
            table
                .columns
                .iter()
                .position(|c| c == name)
                .or_else(|| {
                    // also accept a 1-based column index
                    name.parse::<usize>()
                        .ok()
                        .filter(|&j| j >= 1 && j <= table.columns.len())
                        .map(|j| j - 1)
                })
                .ok_or_else(|| Error::Data {
                    path: path.into(),
                    row: None,
                    col: Some(name.to_string()),
                    msg: format!("no such column (columns: {})", table.columns.join(", ")),
                })
        };
        let tj = find(target_col)?;
        let fj: Vec<usize> = match features {
            Some(f) => f.iter().map(|s| find(s.trim())).collect::<Result<_>>()?,
            None => (0..table.columns.len()).filter(|&j| j != tj).collect(),
        };
        if fj.is_empty() {
            return Err(Error::param("features", "", "no feature columns"));
        }
        if fj.contains(&tj) {
            return Err(Error::param(
                "features",
                target_col,
                "the target column cannot be a feature",
            ));
        }
        let n = table.values.nrows();
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let v = table.values[[i, tj]];
            y.push(match v {
                v if v == 0.0 || v == -1.0 => 0.0,
                1.0 => 1.0,
                _ => {
                    return Err(Error::Data {
                        path: path.into(),
                        row: Some(i + 1),
                        col: Some(format!("{} ({})", tj + 1, table.columns[tj])),
                        msg: format!("label {v} is not 0/1 (or -1/+1)"),
                    })
                }
            });
        }
        let off = usize::from(intercept);
        let p = fj.len() + off;
        let mut x = Array2::<f64>::zeros((n, p));
        let mut names = Vec::with_capacity(p);
        if intercept {
            x.column_mut(0).fill(1.0);
            names.push("intercept".to_string());
        }
        for (k, &j) in fj.iter().enumerate() {
            let col = table.values.column(j);
            let m = col.mean().unwrap_or(0.0);
            let sd = (col.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / n as f64).sqrt();
            if sd.is_nan() || sd <= 0.0 {
                return Err(Error::Data {
                    path: path.into(),
                    row: None,
                    col: Some(format!("{} ({})", j + 1, table.columns[j])),
                    msg: "constant feature cannot be standardised".into(),
                });
            }
            for i in 0..n {
                x[[i, k + off]] = (col[i] - m) / sd;
            }
            names.push(table.columns[j].clone());
        }
        Self::new(x, y, prior_std, names)
    }

    fn z(&self, theta: &[f64]) -> Vec<f64> {
        self.x
            .outer_iter()
            .map(|r| r.iter().zip(theta).map(|(a, b)| a * b).sum())
            .collect()
    }
}

impl LogDensity for LogisticPosterior {
    fn dim(&self) -> usize {
        self.x.ncols()
    }
    fn log_density(&self, theta: &[f64]) -> f64 {
        let z = self.z(theta);
        let ll: f64 = z
            .iter()
            .zip(&self.y)
            .map(|(zi, yi)| yi * zi - softplus(*zi))
            .sum();
        ll - theta.iter().map(|a| a * a).sum::<f64>() / (2.0 * self.prior_std.powi(2))
    }
    fn score(&self, theta: &[f64], out: &mut [f64]) {
        let inv = 1.0 / self.prior_std.powi(2);
        for (o, t) in out.iter_mut().zip(theta) {
            *o = -t * inv;
        }
        for (r, yi) in self.x.outer_iter().zip(&self.y) {
            let zi: f64 = r.iter().zip(theta).map(|(a, b)| a * b).sum();
            let c = yi - sigmoid(zi);
            for (o, a) in out.iter_mut().zip(r) {
                *o += c * a;
            }
        }
    }
    fn name(&self) -> String {
        "logistic-posterior".into()
    }
}

impl SteinTarget for LogisticPosterior {
    fn hvp(&self, theta: &[f64], v: &[f64], out: &mut [f64]) {
        let inv = 1.0 / self.prior_std.powi(2);
        for (o, a) in out.iter_mut().zip(v) {
            *o = -a * inv;
        }
        for r in self.x.outer_iter() {
            let zi: f64 = r.iter().zip(theta).map(|(a, b)| a * b).sum();
            let xv: f64 = r.iter().zip(v).map(|(a, b)| a * b).sum();
            let p = sigmoid(zi);
            let c = p * (1.0 - p) * xv;
            for (o, a) in out.iter_mut().zip(r) {
                *o -= c * a;
            }
        }
    }
}

/// The Hessian `grad^2 log pi(x)` as a dense `d x d` matrix, from `d` Hessian-vector
/// products (symmetrised).
pub fn hessian(t: &dyn SteinTarget, x: &[f64]) -> Array2<f64> {
    let d = x.len();
    let mut h = Array2::zeros((d, d));
    let mut e = vec![0.0; d];
    let mut col = vec![0.0; d];
    for j in 0..d {
        e[j] = 1.0;
        t.hvp(x, &e, &mut col);
        for i in 0..d {
            h[[i, j]] = col[i];
        }
        e[j] = 0.0;
    }
    (&h + &h.t()) * 0.5
}

/// The Laplace approximation `N(m, (-grad^2 log pi(m))^{-1})` at the mode `m` found by
/// damped Newton iterations from `x0` (backtracking on `log pi`). Errors if the Hessian
/// at the mode is not negative definite or the iteration does not converge.
pub fn laplace_approximation(t: &dyn SteinTarget, x0: &[f64]) -> Result<(Vec<f64>, Array2<f64>)> {
    let d = x0.len();
    let mut x = x0.to_vec();
    let mut lp = t.log_density(&x);
    let mut s = vec![0.0; d];
    for _ in 0..200 {
        t.score(&x, &mut s);
        let neg_h = hessian(t, &x) * -1.0;
        let step = match crate::linalg::solve(&neg_h, &s) {
            Ok(v) if v.iter().all(|a| a.is_finite()) => v,
            _ => s.clone(),
        };
        let mut a = 1.0;
        let mut moved = false;
        for _ in 0..60 {
            let xn: Vec<f64> = x.iter().zip(&step).map(|(p, q)| p + a * q).collect();
            let ln = t.log_density(&xn);
            if ln.is_finite() && ln >= lp {
                x = xn;
                lp = ln;
                moved = true;
                break;
            }
            a *= 0.5;
        }
        let gn = s.iter().map(|v| v * v).sum::<f64>().sqrt();
        if !moved || gn < 1e-10 {
            break;
        }
    }
    t.score(&x, &mut s);
    let gn = s.iter().map(|v| v * v).sum::<f64>().sqrt();
    if gn.is_nan() || gn >= 1e-6 * (1.0 + lp.abs()) {
        return Err(Error::Other(format!(
            "Laplace approximation of {}: Newton did not converge (|score| = {gn:.3e})",
            t.name()
        )));
    }
    let neg_h = hessian(t, &x) * -1.0;
    let l = crate::linalg::cholesky(&neg_h).map_err(|_| {
        Error::Other(format!(
            "Laplace approximation of {}: the Hessian at the mode is not negative definite",
            t.name()
        ))
    })?;
    // cov = (L L')^{-1}: solve column by column
    let mut cov = Array2::zeros((d, d));
    let mut e = vec![0.0; d];
    for j in 0..d {
        e[j] = 1.0;
        let c = crate::linalg::solve_upper_t(&l, &crate::linalg::solve_lower(&l, &e));
        for i in 0..d {
            cov[[i, j]] = c[i];
        }
        e[j] = 0.0;
    }
    Ok((x, cov))
}

/// A target in whitened coordinates `z`, `x = m + L z` with `L` lower triangular
/// (typically `L L'` the Laplace covariance): `log pi_z(z) = log pi(m + L z)` (+ const),
/// score `L' s(x)`, Hessian-vector product `L' H_x L v`.
///
/// The forward KL is invariant under this bijection (`KL(pi | mu) = KL(pi_z | mu_z)`), so a
/// fit in `z` mapped back by [`Whitened::to_original`] is a fit of `pi`; the flows are
/// better conditioned there (scores of order one).
pub struct Whitened {
    /// The target in the original coordinates.
    pub inner: Arc<dyn SteinTarget>,
    /// Shift `m`.
    pub shift: Vec<f64>,
    /// Lower-triangular factor `L`.
    pub l: Array2<f64>,
}

impl Whitened {
    /// Whitening by `x = m + L z` with `L` the Cholesky factor of `cov`.
    pub fn new(inner: Arc<dyn SteinTarget>, shift: Vec<f64>, cov: &Array2<f64>) -> Result<Self> {
        let d = inner.dim();
        if shift.len() != d || cov.nrows() != d || cov.ncols() != d {
            return Err(Error::Shape(format!(
                "whitening of a d = {d} target with a shift of {} and a {}x{} covariance",
                shift.len(),
                cov.nrows(),
                cov.ncols()
            )));
        }
        let l = crate::linalg::cholesky(cov)?;
        Ok(Whitened { inner, shift, l })
    }
    /// Whitening by the Laplace approximation at the mode found from `x0`.
    pub fn laplace(inner: Arc<dyn SteinTarget>, x0: &[f64]) -> Result<Self> {
        let (m, c) = laplace_approximation(inner.as_ref(), x0)?;
        Self::new(inner, m, &c)
    }
    /// `x = m + L z`.
    pub fn to_original(&self, z: &[f64]) -> Vec<f64> {
        let d = z.len();
        (0..d)
            .map(|i| self.shift[i] + (0..=i).map(|k| self.l[[i, k]] * z[k]).sum::<f64>())
            .collect()
    }
    /// Map all rows of `z` (`n x d`) to the original coordinates.
    pub fn map_rows(&self, z: &Array2<f64>) -> Array2<f64> {
        let mut out = z.clone();
        for (mut o, r) in out.outer_iter_mut().zip(z.outer_iter()) {
            let x = self.to_original(r.as_slice().expect("standard layout"));
            o.assign(&ndarray::ArrayView1::from(&x[..]));
        }
        out
    }
    fn lt_times(&self, v: &[f64]) -> Vec<f64> {
        let d = v.len();
        (0..d)
            .map(|k| (k..d).map(|i| self.l[[i, k]] * v[i]).sum())
            .collect()
    }
    fn l_times(&self, v: &[f64]) -> Vec<f64> {
        let d = v.len();
        (0..d)
            .map(|i| (0..=i).map(|k| self.l[[i, k]] * v[k]).sum())
            .collect()
    }
}

impl LogDensity for Whitened {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn log_density(&self, z: &[f64]) -> f64 {
        self.inner.log_density(&self.to_original(z))
    }
    fn score(&self, z: &[f64], out: &mut [f64]) {
        let x = self.to_original(z);
        let mut s = vec![0.0; x.len()];
        self.inner.score(&x, &mut s);
        out.copy_from_slice(&self.lt_times(&s));
    }
    fn name(&self) -> String {
        format!("{} (whitened)", self.inner.name())
    }
}

impl SteinTarget for Whitened {
    fn hvp(&self, z: &[f64], v: &[f64], out: &mut [f64]) {
        let x = self.to_original(z);
        let lv = self.l_times(v);
        let mut h = vec![0.0; x.len()];
        self.inner.hvp(&x, &lv, &mut h);
        out.copy_from_slice(&self.lt_times(&h));
    }
}
