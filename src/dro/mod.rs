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
