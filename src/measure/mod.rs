//! Weighted particle measures `mu = sum_i w_i delta_{x_i}` and targets.
//!
//! Weights are stored in the log domain (`log w_i`, `-inf` for an empty particle) so that
//! Fisher-Rao (multiplicative) updates never underflow; [`Particles::weights`] gives the
//! linear weights. A probability measure has `sum w = 1`; positive (unbalanced) measures
//! may have any total mass.

pub mod distributions;
pub mod target;

pub use distributions::{Distribution, Gaussian, GaussianMixture};
pub use target::{LogDensity, Target};

use crate::error::{Error, Result};
use crate::linalg::logsumexp;
use ndarray::{Array1, Array2};

/// A weighted particle measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Particles {
    /// Positions, `n x d`, row-major (standard layout is kept by every method).
    pub x: Array2<f64>,
    log_w: Array1<f64>,
}

impl Particles {
    /// Particles at `x` with equal weights `1/n`.
    pub fn uniform(x: Array2<f64>) -> Result<Self> {
        let n = x.nrows();
        if n == 0 {
            return Err(Error::param("particles", 0, "need at least one particle"));
        }
        let x = x.as_standard_layout().to_owned();
        Ok(Particles {
            x,
            log_w: Array1::from_elem(n, -(n as f64).ln()),
        })
    }

    /// Particles with the given (non-negative, finite) weights. They are not normalised.
    pub fn with_weights(x: Array2<f64>, w: &[f64]) -> Result<Self> {
        let n = x.nrows();
        if n == 0 {
            return Err(Error::param("particles", 0, "need at least one particle"));
        }
        if w.len() != n {
            return Err(Error::Shape(format!("{} weights for {n} particles", w.len())));
        }
        if let Some((i, v)) = w.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
            return Err(Error::param("weights", v, &format!("weight of particle {i} must be finite and >= 0")));
        }
        Ok(Particles {
            x: x.as_standard_layout().to_owned(),
            log_w: w.iter().map(|v| v.ln()).collect(),
        })
    }

    /// Particles with given log-weights.
    pub fn with_log_weights(x: Array2<f64>, log_w: Array1<f64>) -> Result<Self> {
        if log_w.len() != x.nrows() {
            return Err(Error::Shape(format!("{} log-weights for {} particles", log_w.len(), x.nrows())));
        }
        Ok(Particles {
            x: x.as_standard_layout().to_owned(),
            log_w,
        })
    }

    /// Number of particles `n`.
    pub fn len(&self) -> usize {
        self.x.nrows()
    }
    /// True when there are no particles (never for a constructed value).
    pub fn is_empty(&self) -> bool {
        self.x.nrows() == 0
    }
    /// Dimension `d`.
    pub fn dim(&self) -> usize {
        self.x.ncols()
    }
    /// Positions as a row-major slice.
    pub fn x_slice(&self) -> &[f64] {
        self.x.as_slice().expect("particles are kept in standard layout")
    }
    /// Mutable positions as a row-major slice.
    pub fn x_slice_mut(&mut self) -> &mut [f64] {
        self.x.as_slice_mut().expect("particles are kept in standard layout")
    }
    /// Linear weights `w_i = exp(log w_i)`.
    pub fn weights(&self) -> Vec<f64> {
        self.log_w.iter().map(|l| l.exp()).collect()
    }
    /// Log-weights.
    pub fn log_weights(&self) -> &Array1<f64> {
        &self.log_w
    }
    /// Set linear weights (must be finite and non-negative).
    pub fn set_weights(&mut self, w: &[f64]) -> Result<()> {
        let p = Particles::with_weights(Array2::zeros((w.len(), 1)), w)?;
        if w.len() != self.len() {
            return Err(Error::Shape(format!("{} weights for {} particles", w.len(), self.len())));
        }
        self.log_w = p.log_w;
        Ok(())
    }
    /// Set log-weights.
    pub fn set_log_weights(&mut self, lw: Array1<f64>) -> Result<()> {
        if lw.len() != self.len() {
            return Err(Error::Shape(format!("{} log-weights for {} particles", lw.len(), self.len())));
        }
        self.log_w = lw;
        Ok(())
    }
    /// Total mass `sum w_i`.
    pub fn mass(&self) -> f64 {
        logsumexp(self.log_w.as_slice().expect("contiguous")).exp()
    }
    /// Normalise to a probability measure (in the log domain). Errors if the mass is zero.
    pub fn normalize(&mut self) -> Result<()> {
        let l = logsumexp(self.log_w.as_slice().expect("contiguous"));
        if !l.is_finite() {
            return Err(Error::Other(format!("cannot normalise a measure of mass exp({l})")));
        }
        self.log_w.mapv_inplace(|a| a - l);
        Ok(())
    }
    /// Effective sample size `(sum w)^2 / sum w^2` (Kish), between 1 and `n`.
    pub fn ess(&self) -> f64 {
        let w = self.weights();
        let s: f64 = w.iter().sum();
        let s2: f64 = w.iter().map(|a| a * a).sum();
        if s2 > 0.0 {
            s * s / s2
        } else {
            0.0
        }
    }
    /// Weighted mean of the positions (normalised by the mass).
    pub fn mean(&self) -> Vec<f64> {
        let w = self.weights();
        let s: f64 = w.iter().sum();
        let d = self.dim();
        let mut m = vec![0.0; d];
        for (row, wi) in self.x.outer_iter().zip(&w) {
            for (mk, xk) in m.iter_mut().zip(row) {
                *mk += wi * xk;
            }
        }
        m.iter_mut().for_each(|a| *a /= s);
        m
    }
    /// Weighted covariance of the positions (normalised by the mass), `d x d`.
    pub fn cov(&self) -> Array2<f64> {
        let w = self.weights();
        let s: f64 = w.iter().sum();
        let m = self.mean();
        let d = self.dim();
        let mut c = Array2::zeros((d, d));
        for (row, wi) in self.x.outer_iter().zip(&w) {
            for a in 0..d {
                for b in 0..d {
                    c[[a, b]] += wi * (row[a] - m[a]) * (row[b] - m[b]);
                }
            }
        }
        c.mapv_inplace(|v| v / s);
        c
    }
    /// Index of the first particle with a non-finite position or weight, with a description.
    pub fn first_non_finite(&self) -> Option<String> {
        let d = self.dim();
        if let Some((k, v)) = self.x_slice().iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Some(format!("position of particle {} is {v}", k / d));
        }
        if let Some((i, v)) = self.log_w.iter().enumerate().find(|(_, v)| v.is_nan() || **v == f64::INFINITY) {
            return Some(format!("log-weight of particle {i} is {v}"));
        }
        None
    }
}
