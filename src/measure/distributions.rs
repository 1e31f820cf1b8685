//! Reference distributions with sampling, log density and score: Gaussians and Gaussian
//! mixtures in any dimension (targets and initial laws of the flow experiments).

use super::target::LogDensity;
use crate::error::{Error, Result};
use crate::linalg::{cholesky, logsumexp, solve_lower, solve_upper_t};
use ndarray::{Array1, Array2};
use rand::Rng;
use rand_distr::StandardNormal;

/// Something that can be sampled.
pub trait Distribution {
    /// Dimension.
    fn dim(&self) -> usize;
    /// `n` independent draws as an `n x d` array.
    fn sample(&self, n: usize, rng: &mut dyn rand::RngCore) -> Array2<f64>;
}

/// A Gaussian `N(m, S)` with a Cholesky factor `S = L L'`.
#[derive(Debug, Clone)]
pub struct Gaussian {
    /// Mean.
    pub mean: Array1<f64>,
    /// Covariance.
    pub cov: Array2<f64>,
    chol: Array2<f64>,
    log_norm: f64,
}

impl Gaussian {
    /// `N(mean, cov)`; errors unless `cov` is symmetric positive definite of matching size.
    pub fn new(mean: Array1<f64>, cov: Array2<f64>) -> Result<Self> {
        let d = mean.len();
        if cov.nrows() != d || cov.ncols() != d {
            return Err(Error::Shape(format!("mean has {d} entries, covariance is {}x{}", cov.nrows(), cov.ncols())));
        }
        let chol = cholesky(&cov)?;
        let logdet: f64 = (0..d).map(|i| 2.0 * chol[[i, i]].ln()).sum();
        let log_norm = -0.5 * (d as f64 * (2.0 * std::f64::consts::PI).ln() + logdet);
        Ok(Gaussian { mean, cov, chol, log_norm })
    }
    /// `N(mean, s^2 I)`.
    pub fn isotropic(mean: Array1<f64>, s: f64) -> Result<Self> {
        crate::error::check_positive("std", s)?;
        let d = mean.len();
        Self::new(mean, Array2::eye(d) * (s * s))
    }
    /// Normalised log density `log N(x; m, S)`.
    pub fn log_pdf(&self, x: &[f64]) -> f64 {
        let diff: Vec<f64> = x.iter().zip(self.mean.iter()).map(|(a, b)| a - b).collect();
        let z = solve_lower(&self.chol, &diff);
        self.log_norm - 0.5 * z.iter().map(|a| a * a).sum::<f64>()
    }
    /// `S^{-1} (x - m)`.
    fn precision_times_diff(&self, x: &[f64]) -> Vec<f64> {
        let diff: Vec<f64> = x.iter().zip(self.mean.iter()).map(|(a, b)| a - b).collect();
        solve_upper_t(&self.chol, &solve_lower(&self.chol, &diff))
    }
}

impl Distribution for Gaussian {
    fn dim(&self) -> usize {
        self.mean.len()
    }
    fn sample(&self, n: usize, rng: &mut dyn rand::RngCore) -> Array2<f64> {
        let d = self.mean.len();
        let mut out = Array2::zeros((n, d));
        let mut z = vec![0.0; d];
        for mut row in out.outer_iter_mut() {
            for zk in z.iter_mut() {
                *zk = rng.sample(StandardNormal);
            }
            for i in 0..d {
                let mut s = self.mean[i];
                for k in 0..=i {
                    s += self.chol[[i, k]] * z[k];
                }
                row[i] = s;
            }
        }
        out
    }
}

impl LogDensity for Gaussian {
    fn dim(&self) -> usize {
        self.mean.len()
    }
    fn log_density(&self, x: &[f64]) -> f64 {
        self.log_pdf(x)
    }
    fn score(&self, x: &[f64], out: &mut [f64]) {
        let p = self.precision_times_diff(x);
        for (o, v) in out.iter_mut().zip(p) {
            *o = -v;
        }
    }
    fn name(&self) -> String {
        "gaussian".into()
    }
}

/// A finite Gaussian mixture `sum_c p_c N(m_c, S_c)`.
#[derive(Debug, Clone)]
pub struct GaussianMixture {
    /// Mixture weights (sum to one).
    pub weights: Vec<f64>,
    /// Components.
    pub components: Vec<Gaussian>,
}

impl GaussianMixture {
    /// A mixture; the weights are normalised and must be positive; components share one dimension.
    pub fn new(weights: Vec<f64>, components: Vec<Gaussian>) -> Result<Self> {
        if weights.is_empty() || weights.len() != components.len() {
            return Err(Error::Shape(format!("{} weights for {} components", weights.len(), components.len())));
        }
        if weights.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
            return Err(Error::param("mixture-weights", format!("{weights:?}"), "must be positive"));
        }
        let d = components[0].mean.len();
        if components.iter().any(|c| c.mean.len() != d) {
            return Err(Error::Shape("mixture components of different dimensions".into()));
        }
        let s: f64 = weights.iter().sum();
        Ok(GaussianMixture {
            weights: weights.iter().map(|w| w / s).collect(),
            components,
        })
    }
    /// Posterior responsibilities `P(c | x)`.
    pub fn responsibilities(&self, x: &[f64]) -> Vec<f64> {
        let l: Vec<f64> = self.weights.iter().zip(&self.components).map(|(p, c)| p.ln() + c.log_pdf(x)).collect();
        let z = logsumexp(&l);
        l.iter().map(|a| (a - z).exp()).collect()
    }
}

impl Distribution for GaussianMixture {
    fn dim(&self) -> usize {
        self.components[0].mean.len()
    }
    fn sample(&self, n: usize, rng: &mut dyn rand::RngCore) -> Array2<f64> {
        let d = Distribution::dim(self);
        let mut out = Array2::zeros((n, d));
        for mut row in out.outer_iter_mut() {
            let u: f64 = rng.random();
            let mut acc = 0.0;
            let mut c = self.weights.len() - 1;
            for (k, p) in self.weights.iter().enumerate() {
                acc += p;
                if u < acc {
                    c = k;
                    break;
                }
            }
            let s = self.components[c].sample(1, rng);
            row.assign(&s.row(0));
        }
        out
    }
}

impl LogDensity for GaussianMixture {
    fn dim(&self) -> usize {
        Distribution::dim(self)
    }
    fn log_density(&self, x: &[f64]) -> f64 {
        let l: Vec<f64> = self.weights.iter().zip(&self.components).map(|(p, c)| p.ln() + c.log_pdf(x)).collect();
        logsumexp(&l)
    }
    fn score(&self, x: &[f64], out: &mut [f64]) {
        let r = self.responsibilities(x);
        out.iter_mut().for_each(|o| *o = 0.0);
        let mut s = vec![0.0; x.len()];
        for (rc, c) in r.iter().zip(&self.components) {
            c.score(x, &mut s);
            for (o, v) in out.iter_mut().zip(&s) {
                *o += rc * v;
            }
        }
    }
    fn name(&self) -> String {
        "mixture".into()
    }
}
