//! White-box adversarial attacks on the standardised inputs of a model, through
//! [`PointLoss::losses_and_grads`].
//!
//! - FGSM (Goodfellow et al. 2015): one step `x' = x0 + eps sign(g)` (Linf) or
//!   `x' = x0 + eps g / ||g||_2` (L2), `g = grad_x l(theta, x0, y)`.
//! - PGD (Madry et al. 2018): `steps` ascent steps of size `alpha` (default
//!   `2.5 eps / steps`) along the same directions, each followed by the projection onto the
//!   ball `||x - x0|| <= eps` (clipping for Linf, radial rescaling for L2), started at `x0`.
//!   The iterate with the largest loss is kept per sample, so the attacked loss is never
//!   below the clean one.
//!
//! Budgets are in **standardised units** (the z-scored features the model sees): Linf
//! `eps = 0.1` moves each feature by at most 0.1 training standard deviations.

use crate::dro::PointLoss;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The attack algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttackKind {
    /// Fast gradient (sign) method: one step.
    Fgsm,
    /// Projected gradient ascent.
    Pgd,
}

impl std::str::FromStr for AttackKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "fgsm" | "fgm" => Ok(AttackKind::Fgsm),
            "pgd" => Ok(AttackKind::Pgd),
            _ => Err(Error::param("attack", s, "expected fgsm or pgd")),
        }
    }
}

/// The norm of the perturbation budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Euclidean ball.
    L2,
    /// Box (max norm).
    Linf,
}

impl std::str::FromStr for Norm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "l2" | "2" => Ok(Norm::L2),
            "linf" | "inf" | "l_inf" => Ok(Norm::Linf),
            _ => Err(Error::param("norm", s, "expected l2 or linf")),
        }
    }
}

/// An attack configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Attack {
    /// FGSM or PGD.
    pub kind: AttackKind,
    /// The norm of the budget.
    pub norm: Norm,
    /// The budget, in standardised units.
    pub eps: f64,
    /// PGD iterations.
    pub steps: usize,
    /// PGD step size (None: `2.5 eps / steps`).
    pub step_size: Option<f64>,
}

impl Attack {
    /// A PGD attack with 20 steps.
    pub fn pgd(norm: Norm, eps: f64) -> Self {
        Attack {
            kind: AttackKind::Pgd,
            norm,
            eps,
            steps: 20,
            step_size: None,
        }
    }
    /// An FGSM attack.
    pub fn fgsm(norm: Norm, eps: f64) -> Self {
        Attack {
            kind: AttackKind::Fgsm,
            norm,
            eps,
            steps: 1,
            step_size: None,
        }
    }
}

fn direction(g: &[f64], norm: Norm, out: &mut [f64]) {
    match norm {
        Norm::Linf => {
            for (o, v) in out.iter_mut().zip(g) {
                *o = if *v > 0.0 {
                    1.0
                } else if *v < 0.0 {
                    -1.0
                } else {
                    0.0
                };
            }
        }
        Norm::L2 => {
            let n = g.iter().map(|v| v * v).sum::<f64>().sqrt();
            for (o, v) in out.iter_mut().zip(g) {
                *o = if n > 0.0 { v / n } else { 0.0 };
            }
        }
    }
}

fn project(x: &mut [f64], x0: &[f64], norm: Norm, eps: f64) {
    match norm {
        Norm::Linf => {
            for (a, b) in x.iter_mut().zip(x0) {
                *a = a.clamp(b - eps, b + eps);
            }
        }
        Norm::L2 => {
            let n = x
                .iter()
                .zip(x0)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt();
            if n > eps {
                let s = eps / n;
                for (a, b) in x.iter_mut().zip(x0) {
                    *a = b + (*a - b) * s;
                }
            }
        }
    }
}

/// Attack the inputs `x` (row-major `n x d`, standardised) with labels `y` against the
/// model behind `loss`; returns the perturbed inputs.
pub fn attack(loss: &dyn PointLoss, x: &[f64], y: &[f64], a: &Attack) -> Result<Vec<f64>> {
    crate::error::check_nonneg("eps", a.eps)?;
    let d = loss.dim();
    if d == 0 || x.len() != y.len() * d {
        return Err(Error::Shape(format!(
            "attack: {} inputs for {} labels of dimension {d}",
            x.len(),
            y.len()
        )));
    }
    if a.eps == 0.0 {
        return Ok(x.to_vec());
    }
    let (steps, alpha) = match a.kind {
        AttackKind::Fgsm => (1, a.eps),
        AttackKind::Pgd => {
            crate::error::check_count("attack-steps", a.steps)?;
            let alpha = a.step_size.unwrap_or(2.5 * a.eps / a.steps as f64);
            crate::error::check_positive("attack-step-size", alpha)?;
            (a.steps, alpha)
        }
    };
    let mut cur = x.to_vec();
    let (mut best_l, _) = (loss.losses(x, y)?, ());
    let mut best = x.to_vec();
    let mut dir = vec![0.0; d];
    for _ in 0..steps {
        let (_, g) = loss.losses_and_grads(&cur, y)?;
        for i in 0..y.len() {
            let r = i * d..(i + 1) * d;
            direction(&g[r.clone()], a.norm, &mut dir);
            for (c, v) in cur[r.clone()].iter_mut().zip(&dir) {
                *c += alpha * v;
            }
            project(&mut cur[r.clone()], &x[r], a.norm, a.eps);
        }
        let l = loss.losses(&cur, y)?;
        for i in 0..y.len() {
            if !l[i].is_finite() {
                return Err(Error::Diverged {
                    step: 0,
                    detail: format!("attack: non-finite loss at sample {i}"),
                });
            }
            if l[i] > best_l[i] || a.kind == AttackKind::Fgsm {
                best_l[i] = l[i];
                best[i * d..(i + 1) * d].copy_from_slice(&cur[i * d..(i + 1) * d]);
            }
        }
    }
    Ok(best)
}
