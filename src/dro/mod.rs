//! Distributionally robust optimisation: `min_theta sup_{P in A} E_P[l(theta, xi)]`.
//!
//! The inner sup over an ambiguity set `A` around the data `P_N = 1/N sum_i delta_{xi_i}`
//! is solved by a flow of [`crate::flow`] on particles started at the data, on the energy
//! `F(mu) = -E_mu[l] + lambda D(mu, P_N)` (the penalty form of the set; the constraint
//! form `D(mu, P_N) <= eps` is its Lagrangian dual, the multiplier tuned; docs/DESIGN.md §4). The outer
//! step (in [`crate::model`] / the trainer) is ordinary gradient descent on
//! `sum_i w_i l(theta, xi_i)` with the worst-case particles held fixed (Danskin).
//!
//! The two halves meet at [`PointLoss`]: the model side implements it (per-sample losses
//! and their input gradients, from candle's autodiff), the ambiguity sets here consume it.
//!
//! | set | energy on the particles | core step | module |
//! |---|---|---|---|
//! | `wasserstein` \[WRM] | `sum_i w_i (-l(x_i) + gamma ||x_i - x0_i||^2 [+ kappa 1{y_i != y0_i}])` | [`crate::flow::Wasserstein`] | [`wasserstein`] |
//! | `wasserstein` + `norm` (1-Wasserstein, norm cost) \[WDRO] | exact: `empirical + eps ||w||_*` for linear models | (closed form) | [`wasserstein`] |
//! | `kl` | `-w.l + lambda KL(w | 1/n)` | [`crate::flow::FisherRao`] (or the closed form `softmax(l/lambda)`) | [`weights`] |
//! | `chi2` | `-w.l + lambda (n ||w||^2 - 1)` | projected step [`crate::flow::MmdProx`] (or `Proj(l / (2 lambda n))`) | [`weights`] |
//! | `cvar` | `sup w.l` over `w_i <= 1 / (alpha n)` | (closed form: top `alpha` fraction) | [`weights`] |
//! | `mmd` \[KDRO] | `-w.l(x) + lambda/2 MMD^2(mu, P_N)` | [`crate::flow::Ift`], [`crate::flow::Wfr`], W or MMD-prox | [`mmd`] |
//! | `wfr` | `-w.l + gamma sum w_i c_i + lambda KL(w | 1/n)` | [`crate::flow::Wfr`] | [`wfr`] |
//!
//! Penalty form: the multiplier is given. Constraint form (`radius`): the multiplier is
//! tuned by bisection on its logarithm until the divergence reached is at most the
//! radius (the feasible side is kept, so the value is a lower bound on the sup), and every
//! set reports an upper bound where theory gives one (see [`certify`](mod@certify)).
//!
//! # The shape of an ambiguity set
//!
//! An ambiguity set is *(energy, geometry, strength)*: the energy on the particles and the
//! flow of the core that solves it (the table above), and a [`Strength`] (a radius or a
//! penalty). In code:
//!
//! 1. [`AmbiguityConfig`], the unchecked flat record (CLI flags, `report.json`), is checked
//!    once by [`AmbiguityConfig::check`] into an [`Ambiguity`]: an [`AmbiguitySet`] (one
//!    variant per set with only its own fields and its strength) and the shared
//!    [`InnerOptions`] (inner steps, step size, warm start, seed, bisection). Every rule
//!    across fields lives there; nothing downstream re-validates ([`ambiguity`]).
//! 2. [`Ambiguity::build`] gives the set's [`InnerMax`]. The flow-solved sets (`wasserstein`
//!    with the squared cost, `kl`, `chi2`, `mmd`, `wfr`) implement only their penalised
//!    solve at one multiplier, the divergence reached and the worst case they report; one
//!    generic maximiser (the crate-private `dro::inner::FlowInner`) owns the ERM shortcut
//!    at radius 0, the multiplier tuning of the constraint form (bisection on
//!    `ln lambda`, `dro::tune`), the warm starts and the divergence checks,
//!    and [`InnerOptions`] owns the one call into the core flow. The closed forms (`cvar`,
//!    the 1-Wasserstein set) are plain [`InnerMax`] implementations.
//! 3. The model side meets the sets at [`PointLoss`] only.
//!
//! Adding a set: its energy and `PenalizedSet` implementation (`dro::inner`) in a new file here,
//! a variant of [`AmbiguitySet`] (and of [`SetKind`] with its name), its rules in
//! [`AmbiguityConfig::check`] and its arm in [`Ambiguity::build`].

pub mod ambiguity;
pub mod certify;
pub(crate) mod inner;
pub mod mmd;
pub(crate) mod tune;
pub mod w2exact;
pub mod wasserstein;
pub mod weights;
pub mod wfr;

pub use ambiguity::{
    build_inner, Ambiguity, AmbiguityConfig, AmbiguitySet, InnerOptions, Strength,
    MAX_EXTRA_SUPPORT,
};
pub use certify::{certify, certify_full, w1_closed_form, CertifyRow};
pub use mmd::{MmdDro, MmdDroEnergy};
pub use wasserstein::{W1Dro, WassersteinDro, WassersteinEnergy};
pub use weights::{Chi2Energy, CvarDro, KlEnergy, WeightDro};
pub use wfr::{WfrDro, WfrEnergy};

use crate::error::{Error, Result};

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
    /// For a model whose loss depends on `x` only through the score `s = w.x + b`
    /// (binary logistic regression, linear regression): `(w, b)`. `None` (the default)
    /// for other models. Used by the 1-Wasserstein closed form.
    fn linear_weights(&self) -> Option<(Vec<f64>, f64)> {
        None
    }
    /// The Lipschitz constant of the per-sample loss as a function of the score `s` of
    /// [`PointLoss::linear_weights`]: `1` for the logistic loss, `None` (the default) when
    /// it is unbounded (the squared loss) or unknown. The 1-Wasserstein closed form
    /// `empirical + eps L ||w||_*` needs both.
    fn score_lipschitz(&self) -> Option<f64> {
        None
    }
    /// For a model without hidden layers: its affine map `z = W x + b` and the loss on
    /// `z` (linear, logistic, softmax regression). `None` (the default) otherwise. Used by
    /// the exact squared-cost Wasserstein certificate ([`w2exact`]).
    fn affine(&self) -> Option<w2exact::Affine> {
        None
    }
    /// A proven upper bound on the Lipschitz constant of `x -> grad_x l(x, y)` (for every
    /// label), or the reason there is none. Used by Sinha's certificate
    /// ([`w2exact::sinha_certificate`]).
    fn input_smoothness(&self) -> std::result::Result<f64, String> {
        Err("the model gives no bound on the Lipschitz constant of its input gradient".into())
    }
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
    /// An upper bound on the sup over the set at `radius` (dual / certificate), when the
    /// set has one and it was asked for ([`AmbiguityConfig::certificate`]; always for
    /// `kl`, `chi2`, `cvar`, `wasserstein`).
    pub upper_bound: Option<f64>,
    /// The exact worst-case risk when a closed form exists.
    pub closed_form: Option<f64>,
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
            upper_bound: Some(value),
            closed_form: Some(value),
        })
    }
}

/// The ambiguity sets (the `set` field of [`AmbiguityConfig`]; see the module docs' table
/// and docs/DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetKind {
    /// No ambiguity: empirical risk minimisation.
    None,
    /// Wasserstein ball with squared cost on the features \[WRM].
    Wasserstein,
    /// KL ball / penalty on the weights.
    Kl,
    /// Chi-square ball / penalty on the weights.
    Chi2,
    /// Conditional value at risk.
    Cvar,
    /// MMD ball (kernel DRO) \[KDRO].
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

impl std::fmt::Display for SetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SetKind::None => "none",
            SetKind::Wasserstein => "wasserstein",
            SetKind::Kl => "kl",
            SetKind::Chi2 => "chi2",
            SetKind::Cvar => "cvar",
            SetKind::Mmd => "mmd",
            SetKind::Wfr => "wfr",
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
    /// MMD-prox weight step only (atoms fixed at the support points: the KDRO QP).
    Prox,
}

impl InnerFlow {
    /// The core geometry of [`crate::flow::registry`] that runs this inner flow.
    pub fn geometry(self) -> crate::flow::Geometry {
        use crate::flow::Geometry;
        match self {
            InnerFlow::Ift => Geometry::Ift,
            InnerFlow::Wfr => Geometry::Wfr,
            InnerFlow::W => Geometry::W,
            InnerFlow::Prox => Geometry::MmdProx,
        }
    }
}

impl std::str::FromStr for InnerFlow {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "ift" => InnerFlow::Ift,
            "wfr" => InnerFlow::Wfr,
            "w" | "wasserstein" => InnerFlow::W,
            "prox" | "mmd-prox" | "weights" => InnerFlow::Prox,
            _ => {
                return Err(Error::param(
                    "inner-flow",
                    s,
                    "expected ift, wfr, w or prox",
                ))
            }
        })
    }
}

/// The norm of the transport cost `||x - x'||` of the 1-Wasserstein set (its dual norm
/// multiplies `eps` in the closed form: L2 -> L2, L1 -> Linf, Linf -> L1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Euclidean.
    L2,
    /// Sum of absolute values.
    L1,
    /// Largest absolute value.
    Linf,
}

impl Norm {
    /// `||v||` in this norm.
    pub fn of(&self, v: &[f64]) -> f64 {
        match self {
            Norm::L2 => v.iter().map(|a| a * a).sum::<f64>().sqrt(),
            Norm::L1 => v.iter().map(|a| a.abs()).sum(),
            Norm::Linf => v.iter().fold(0.0, |m, a| m.max(a.abs())),
        }
    }
    /// The dual norm `||v||_*`.
    pub fn dual_of(&self, v: &[f64]) -> f64 {
        match self {
            Norm::L2 => Norm::L2.of(v),
            Norm::L1 => Norm::Linf.of(v),
            Norm::Linf => Norm::L1.of(v),
        }
    }
    /// A unit vector `u` (`||u|| = 1`) with `g.u = ||g||_*` (the steepest direction).
    pub fn steepest(&self, g: &[f64]) -> Vec<f64> {
        let mut u = vec![0.0; g.len()];
        match self {
            Norm::L2 => {
                let n = Norm::L2.of(g);
                if n > 0.0 {
                    u.iter_mut().zip(g).for_each(|(a, b)| *a = b / n);
                }
            }
            Norm::Linf => u
                .iter_mut()
                .zip(g)
                .for_each(|(a, b)| *a = b.signum() * (*b != 0.0) as u8 as f64),
            Norm::L1 => {
                if let Some((k, v)) = g
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                {
                    if *v != 0.0 {
                        u[k] = v.signum();
                    }
                }
            }
        }
        u
    }
}

impl std::str::FromStr for Norm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "l2" | "2" => Norm::L2,
            "l1" | "1" => Norm::L1,
            "linf" | "inf" | "l-inf" => Norm::Linf,
            _ => return Err(Error::param("norm", s, "expected l2, l1 or linf")),
        })
    }
}

/// Check a batch against a loss: shapes, finiteness. Errors name the row.
pub(crate) fn check_batch(loss: &dyn PointLoss, b: &Batch) -> Result<usize> {
    let n = b.len();
    if n == 0 {
        return Err(Error::param("batch", 0, "empty batch"));
    }
    if b.d == 0 || b.d != loss.dim() {
        return Err(Error::Shape(format!(
            "batch has d = {}, the model expects d = {}",
            b.d,
            loss.dim()
        )));
    }
    if b.x.len() != n * b.d {
        return Err(Error::Shape(format!(
            "batch has {} inputs for {n} labels of dimension {}",
            b.x.len(),
            b.d
        )));
    }
    if !b.idx.is_empty() && b.idx.len() != n {
        return Err(Error::Shape(format!(
            "batch has {} indices for {n} points",
            b.idx.len()
        )));
    }
    if let Some(k) = b.x.iter().position(|v| !v.is_finite()) {
        return Err(Error::param(
            "batch",
            b.x[k],
            &format!("input row {}, column {} is not finite", k / b.d, k % b.d),
        ));
    }
    Ok(n)
}

/// Losses, checked finite (a NaN loss would silently poison the weights).
pub(crate) fn finite_losses(loss: &dyn PointLoss, x: &[f64], y: &[f64]) -> Result<Vec<f64>> {
    let l = loss.losses(x, y)?;
    check_finite_losses(&l)?;
    Ok(l)
}

pub(crate) fn check_finite_losses(l: &[f64]) -> Result<()> {
    if let Some(i) = l.iter().position(|v| !v.is_finite()) {
        return Err(Error::Diverged {
            step: 0,
            detail: format!("loss of point {i} is {}", l[i]),
        });
    }
    Ok(())
}

/// The divergence checks of an inner solution (a finite blow-up is as wrong as a NaN):
/// its risk and radius must be finite, its risk at least the empirical risk `empirical`
/// (the data itself is feasible, and an ascent from it cannot lose), and its divergence
/// not far beyond the radius asked for (`radius`, constraint form). A failure is an
/// [`Error::Diverged`] naming `--inner-step-size`.
pub(crate) fn check_inner_solution(
    wc: &WorstCase,
    empirical: f64,
    radius: Option<f64>,
) -> Result<()> {
    let fail = |what: String| {
        Err(Error::Diverged {
            step: 0,
            detail: format!(
                "the inner maximisation diverged: {what}; lower --inner-step-size (or raise --inner-steps)"
            ),
        })
    };
    if !wc.value.is_finite() || !wc.radius.is_finite() {
        return fail(format!(
            "robust risk {} at divergence {}",
            wc.value, wc.radius
        ));
    }
    if wc.value < empirical - 1e-6 * (1.0 + empirical.abs()) {
        return fail(format!(
            "robust risk {:.6e} below the empirical risk {:.6e}",
            wc.value, empirical
        ));
    }
    if let Some(r) = radius {
        if wc.radius > 10.0 * r + 1e-12 {
            return fail(format!(
                "divergence {:.4e} far beyond the radius {r}",
                wc.radius
            ));
        }
    }
    Ok(())
}

/// Particles from a row-major array.
pub(crate) fn particles(x: Vec<f64>, d: usize, w: &[f64]) -> Result<crate::measure::Particles> {
    let n = x.len() / d;
    let a = ndarray::Array2::from_shape_vec((n, d), x)
        .map_err(|e| Error::Shape(format!("particles: {e}")))?;
    crate::measure::Particles::with_weights(a, w)
}
