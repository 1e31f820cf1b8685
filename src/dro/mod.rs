//! Distributionally robust optimisation: `min_theta sup_{P in A} E_P[l(theta, xi)]`.
//!
//! The inner sup over an ambiguity set `A` around the data `P_N = 1/N sum_i delta_{xi_i}`
//! is solved by a flow of [`crate::flow`] on particles started at the data, on the energy
//! `F(mu) = -E_mu[l] + lambda D(mu, P_N)` (penalty form; DESIGN.md section 4). The outer
//! step (in [`crate::model`] / the trainer) is ordinary gradient descent on
//! `sum_i w_i l(theta, xi_i)` with the worst-case particles held fixed (Danskin).
//!
//! The two halves meet at [`PointLoss`]: the model side implements it (per-sample losses
//! and their input gradients, from candle's autodiff), the ambiguity sets here consume it.

use crate::error::Result;

/// Per-sample losses `l(theta, (x_i, y_i))` of a fixed model, and their gradients with
/// respect to the inputs, on plain row-major `f64` arrays.
///
/// `x` is `n x d` row-major; `y` holds one label per row: the class index as `f64` for a
/// classifier (`0.0, 1.0, ...`), the real response for a regression.
pub trait PointLoss: Sync {
    /// The input dimension `d`.
    fn dim(&self) -> usize;
    /// The number of classes of a classifier (labels `0..k`), `None` for a regression.
    fn n_classes(&self) -> Option<usize>;
    /// Losses `l_i = l(theta, (x_i, y_i))`.
    fn losses(&self, x: &[f64], y: &[f64]) -> Result<Vec<f64>>;
    /// Losses and their gradients `grad_x l(theta, (x_i, y_i))` (row-major `n x d`).
    fn losses_and_grads(&self, x: &[f64], y: &[f64]) -> Result<(Vec<f64>, Vec<f64>)>;
}

/// A minibatch of data points `xi_i = (x_i, y_i)`.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// Inputs, row-major `n x d`.
    pub x: &'a [f64],
    /// Labels (class index as `f64`, or the real response), one per row.
    pub y: &'a [f64],
    /// The input dimension.
    pub d: usize,
    /// The rows' indices in the training set (lets a solver warm-start per data point).
    pub idx: &'a [usize],
}

impl Batch<'_> {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.y.len()
    }
    /// True when the batch has no points.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// The worst-case distribution an inner solver found: particles `(x_i, y_i)` with weights
/// `w_i` (a probability vector), a feasible point of the sup.
#[derive(Debug, Clone, Default)]
pub struct WorstCase {
    /// Particle inputs, row-major `n x d`.
    pub x: Vec<f64>,
    /// Particle labels.
    pub y: Vec<f64>,
    /// Particle weights (sum 1).
    pub w: Vec<f64>,
    /// The worst-case risk `sum_i w_i l(theta, xi_i)` at these particles.
    pub value: f64,
    /// The divergence `D(mu, P_N)` reached (the radius of the constraint form).
    pub radius: f64,
    /// The multiplier `lambda` (penalty) used or tuned.
    pub multiplier: f64,
}

/// An inner maximisation `sup_{P in A} E_P l` for a fixed model.
pub trait InnerMax: Send {
    /// A short name (`none`, `wasserstein`, `kl`, ...).
    fn name(&self) -> String;
    /// Solve the inner problem on one batch for the model behind `loss`.
    fn solve(&mut self, loss: &dyn PointLoss, batch: &Batch) -> Result<WorstCase>;
}

/// Empirical risk minimisation: the "worst case" is the data itself with equal weights.
#[derive(Debug, Clone, Copy, Default)]
pub struct Erm;

impl InnerMax for Erm {
    fn name(&self) -> String {
        "none".into()
    }
    fn solve(&mut self, loss: &dyn PointLoss, batch: &Batch) -> Result<WorstCase> {
        let n = batch.len();
        if n == 0 {
            return Err(crate::error::Error::param("batch", 0, "empty batch"));
        }
        let l = loss.losses(batch.x, batch.y)?;
        let w = vec![1.0 / n as f64; n];
        let value = crate::linalg::dot(&w, &l);
        Ok(WorstCase {
            x: batch.x.to_vec(),
            y: batch.y.to_vec(),
            w,
            value,
            radius: 0.0,
            multiplier: f64::INFINITY,
        })
    }
}

/// The ambiguity sets of DESIGN.md section 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetKind {
    /// No ambiguity: empirical risk minimisation.
    None,
    /// Wasserstein ball with squared cost on the features [WRM].
    Wasserstein,
    /// KL ball / penalty on the weights.
    Kl,
    /// Chi-square ball / penalty on the weights.
    Chi2,
    /// Conditional value at risk.
    Cvar,
    /// MMD ball (kernel DRO) [KDRO].
    Mmd,
    /// Unbalanced Wasserstein-Fisher-Rao set.
    Wfr,
}

impl std::str::FromStr for SetKind {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "none" | "erm" => SetKind::None,
            "wasserstein" | "w" | "wrm" => SetKind::Wasserstein,
            "kl" => SetKind::Kl,
            "chi2" | "chi-square" => SetKind::Chi2,
            "cvar" => SetKind::Cvar,
            "mmd" | "kdro" => SetKind::Mmd,
            "wfr" => SetKind::Wfr,
            _ => {
                return Err(crate::error::Error::param(
                    "ambiguity",
                    s,
                    "expected none, wasserstein, kl, chi2, cvar, mmd or wfr",
                ))
            }
        })
    }
}

/// Which flow solves the MMD (kernel DRO) inner problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InnerFlow {
    /// Wasserstein step then MMD-prox weight step.
    Ift,
    /// Wasserstein step then Fisher-Rao weight step.
    Wfr,
    /// Wasserstein (positions only).
    W,
}

/// Hyper-parameters of an ambiguity set and its inner solver (validated by [`build_inner`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AmbiguityConfig {
    /// The set.
    pub set: SetKind,
    /// Constraint form: the radius `eps` of `D(mu, P_N) <= eps` (the multiplier is tuned).
    pub radius: Option<f64>,
    /// Penalty form: the multiplier `lambda` of `-E_mu l + lambda D(mu, P_N)`.
    pub penalty: Option<f64>,
    /// Inner flow iterations per batch.
    pub inner_steps: usize,
    /// Inner flow step size.
    pub inner_step_size: f64,
    /// Wasserstein: cost `kappa` of changing a label (None: labels fixed).
    pub label_cost: Option<f64>,
    /// MMD set: the inner flow.
    pub inner_flow: InnerFlow,
    /// MMD set: the kernel on inputs.
    pub kernel: crate::kernel::KernelKind,
    /// MMD set: the bandwidth rule.
    pub bandwidth: crate::kernel::Bandwidth,
    /// MMD set: extra support points added around the data.
    pub extra_support: usize,
    /// Keep the worst-case particles across epochs (warm start).
    pub warm_start: bool,
    /// Seed of the inner solver's randomness.
    pub seed: u64,
}

impl Default for AmbiguityConfig {
    fn default() -> Self {
        AmbiguityConfig {
            set: SetKind::None,
            radius: None,
            penalty: None,
            inner_steps: 20,
            inner_step_size: 0.1,
            label_cost: None,
            inner_flow: InnerFlow::Ift,
            kernel: crate::kernel::KernelKind::Gaussian,
            bandwidth: crate::kernel::Bandwidth::Median,
            extra_support: 0,
            warm_start: false,
            seed: 0,
        }
    }
}

/// Build the inner solver of an ambiguity set.
pub fn build_inner(cfg: &AmbiguityConfig) -> Result<Box<dyn InnerMax>> {
    match cfg.set {
        SetKind::None => Ok(Box::new(Erm)),
        other => Err(crate::error::Error::Other(format!(
            "ambiguity set {other:?}: inner solver not built yet"
        ))),
    }
}
