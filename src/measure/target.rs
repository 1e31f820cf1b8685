//! Targets `pi` of a flow: weighted samples, or an unnormalised log density with its score.

use super::Particles;
use crate::error::{Error, Result};
use std::sync::Arc;

/// An unnormalised log density `log pi~(x)` and its score `s(x) = grad log pi(x)`.
///
/// Implement this trait to use your own model as a target of Langevin, SVGD or the
/// Stein-kernel (KSD) flows. Both methods receive one point of dimension [`dim`](Self::dim).
pub trait LogDensity: Send + Sync {
    /// The dimension `d`.
    fn dim(&self) -> usize;
    /// `log pi~(x)` up to an additive constant.
    fn log_density(&self, x: &[f64]) -> f64;
    /// The score `grad_x log pi(x)` written to `out` (length `d`).
    fn score(&self, x: &[f64], out: &mut [f64]);
    /// A short name for reports.
    fn name(&self) -> String {
        "density".into()
    }
}

/// Evaluate the score at every row of the row-major `n x d` array `x`; errors naming the
/// particle (and `step`, when given) if a score is NaN or infinite.
pub fn scores(p: &dyn LogDensity, x: &[f64], step: Option<usize>) -> Result<Vec<f64>> {
    use rayon::prelude::*;
    let d = p.dim();
    if !x.len().is_multiple_of(d) {
        return Err(Error::Shape(format!(
            "{} values are not rows of d = {d}",
            x.len()
        )));
    }
    let mut out = vec![0.0; x.len()];
    out.par_chunks_mut(d)
        .zip(x.par_chunks(d))
        .for_each(|(o, xi)| p.score(xi, o));
    if let Some(k) = out.iter().position(|v| !v.is_finite()) {
        let detail = format!(
            "score of particle {} is {} (target {})",
            k / d,
            out[k],
            p.name()
        );
        return Err(match step {
            Some(step) => Error::Diverged { step, detail },
            None => Error::Other(detail),
        });
    }
    Ok(out)
}

/// A target measure.
#[derive(Clone)]
pub enum Target {
    /// Weighted samples `pi = sum_j v_j delta_{y_j}`.
    Samples(Particles),
    /// An unnormalised density.
    Density(Arc<dyn LogDensity>),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Samples(p) => write!(f, "Target::Samples(n = {}, d = {})", p.len(), p.dim()),
            Target::Density(p) => write!(f, "Target::Density({})", p.name()),
        }
    }
}
