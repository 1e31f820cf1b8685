//! The generic inner maximiser of the flow-solved sets (`wasserstein` with the squared
//! cost, `kl`, `chi2`, `mmd`, `wfr`).
//!
//! Every such set solves the penalised problem `sup_mu E_mu l - lambda D(mu, P_N)` at a
//! given multiplier (usually by a flow of [`crate::flow`], see
//! [`super::InnerOptions::run_flow`]); what is common to all of them lives here, once, in
//! [`FlowInner`]:
//!
//! - the ERM shortcut: radius 0 is the data itself ([`erm_case`]);
//! - the strength: the penalty form solves at the given multiplier, the constraint form
//!   tunes it by bisection on `ln lambda` ([`super::tune::tune`]) until `D <= radius`,
//!   starting from the multiplier tuned on the previous batch when the constraint was
//!   active there;
//! - warm starts: the final positions of every data point (by its index in the training
//!   set) are kept across batches and epochs when `warm_start` is set;
//! - the divergence checks of the solution ([`super::check_inner_solution`]).
//!
//! A set implements [`PenalizedSet`]: its penalised solve, the divergence of a solution,
//! and the worst case it reports.

use super::ambiguity::{InnerOptions, Strength};
use super::tune::{diverged_as_none, tune, Probe};
use super::WorstCase;
use super::{check_batch, check_inner_solution, finite_losses, Batch, InnerMax, PointLoss};
use crate::error::Result;
use std::collections::HashMap;

/// `sum v / len`.
pub(crate) fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The empirical "worst case" of radius 0 (the data itself).
pub(crate) fn erm_case(loss: &dyn PointLoss, b: &Batch) -> Result<WorstCase> {
    let n = b.len();
    let l = finite_losses(loss, b.x, b.y)?;
    let value = mean(&l);
    Ok(WorstCase {
        x: b.x.to_vec(),
        y: b.y.to_vec(),
        w: vec![1.0 / n as f64; n],
        value,
        radius: 0.0,
        multiplier: f64::INFINITY,
        upper_bound: Some(value),
        closed_form: Some(value),
    })
}

/// One inner problem: the model's loss on a batch, the losses at the data, and the warm
/// start positions of the batch's points.
pub(crate) struct Problem<'a> {
    /// The model's per-sample loss.
    pub loss: &'a dyn PointLoss,
    /// The batch.
    pub batch: &'a Batch<'a>,
    /// The losses at the data (checked finite).
    pub l: Vec<f64>,
    /// Their mean, the empirical risk.
    pub empirical: f64,
    warm: Option<&'a HashMap<usize, Vec<f64>>>,
}

impl Problem<'_> {
    /// The number of data points.
    pub fn n(&self) -> usize {
        self.batch.len()
    }
    /// The largest deviation of a loss from the empirical risk.
    pub fn spread(&self) -> f64 {
        let m = self.empirical;
        self.l.iter().fold(0.0f64, |a, v| a.max((v - m).abs()))
    }
    /// The warm-start positions of data point `i` of the batch (as stored by
    /// [`PenalizedSet::warm_rows`]), when warm starts are on.
    pub fn warm(&self, i: usize) -> Option<&Vec<f64>> {
        self.warm.and_then(|w| w.get(&self.batch.idx[i]))
    }
}

/// A set whose inner sup is solved through its penalised problem (see the module docs).
pub(crate) trait PenalizedSet: Send {
    /// The penalised solution at one multiplier.
    type Sol;
    /// The set's name (`wasserstein`, `kl`, ...).
    fn name(&self) -> String;
    /// Called once per batch before any solve (e.g. to choose a bandwidth; to reset the
    /// bounds gathered over the multipliers tried).
    fn prepare(&mut self, _p: &Problem) -> Result<()> {
        Ok(())
    }
    /// Solve the penalised problem at `lambda`.
    fn penalized(&mut self, p: &Problem, lambda: f64) -> Result<Self::Sol>;
    /// The divergence `D(mu, P_N)` the solution reached.
    fn divergence(&self, sol: &Self::Sol) -> f64;
    /// One probe of the bisection: the divergence and the solution, `None` when the solve
    /// counts as infeasible (by default: it diverged).
    fn probe(&mut self, p: &Problem, lambda: f64) -> Result<Option<(f64, Self::Sol)>> {
        Ok(diverged_as_none(self.penalized(p, lambda))?.map(|s| (self.divergence(&s), s)))
    }
    /// The first multiplier of the bisection (without a hint from the previous batch).
    fn first_multiplier(&self, p: &Problem, radius: f64) -> f64;
    /// The constraint form's answer without a bisection, where the set has one.
    fn shortcut(&mut self, _p: &Problem, _radius: f64) -> Result<Option<WorstCase>> {
        Ok(None)
    }
    /// Inspect (or reword the error of) the bisection's result.
    fn tuned(
        &mut self,
        _p: &Problem,
        _radius: f64,
        r: Result<Probe<Self::Sol>>,
    ) -> Result<Probe<Self::Sol>> {
        r
    }
    /// The positions to keep for warm starts: `(rows, per)`, row `i` of the batch being
    /// `rows[i * per..(i + 1) * per]`. `None`: the set has no positions to keep.
    fn warm_rows<'s>(&self, _sol: &'s Self::Sol) -> Option<(&'s [f64], usize)> {
        None
    }
    /// The worst case of a solution at multiplier `lambda` (`radius`: the constraint
    /// form's radius).
    fn worst_case(
        &mut self,
        p: &Problem,
        sol: Self::Sol,
        lambda: f64,
        radius: Option<f64>,
    ) -> Result<WorstCase>;
}

/// The inner solver of a [`PenalizedSet`] (see the module docs).
pub(crate) struct FlowInner<S> {
    set: S,
    strength: Strength,
    opts: InnerOptions,
    warm: HashMap<usize, Vec<f64>>,
    last_lambda: Option<f64>,
}

impl<S: PenalizedSet> FlowInner<S> {
    /// The solver of `set` at `strength`.
    pub fn new(set: S, strength: Strength, opts: InnerOptions) -> Self {
        FlowInner {
            set,
            strength,
            opts,
            warm: HashMap::new(),
            last_lambda: None,
        }
    }
}

impl<S: PenalizedSet> InnerMax for FlowInner<S> {
    fn name(&self) -> String {
        self.set.name()
    }
    fn solve(&mut self, loss: &dyn PointLoss, batch: &Batch) -> Result<WorstCase> {
        let n = check_batch(loss, batch)?;
        let radius = self.strength.radius();
        if radius == Some(0.0) {
            return erm_case(loss, batch);
        }
        let warm_on = self.opts.warm_start() && !batch.idx.is_empty();
        let l = finite_losses(loss, batch.x, batch.y)?;
        let p = Problem {
            loss,
            batch,
            empirical: mean(&l),
            l,
            warm: warm_on.then_some(&self.warm),
        };
        self.set.prepare(&p)?;
        let (lambda, sol) = match self.strength {
            Strength::Penalty(lam) => (lam, self.set.penalized(&p, lam)?),
            Strength::Radius(r) => {
                if let Some(wc) = self.set.shortcut(&p, r)? {
                    check_inner_solution(&wc, p.empirical, radius)?;
                    return Ok(wc);
                }
                let start = self
                    .last_lambda
                    .unwrap_or_else(|| self.set.first_multiplier(&p, r));
                let set = &mut self.set;
                let tuned = tune(
                    r,
                    start,
                    self.opts.tune_iters(),
                    self.opts.tune_tol(),
                    |lam| set.probe(&p, lam),
                );
                let probe = self.set.tuned(&p, r, tuned)?;
                if probe.active {
                    self.last_lambda = Some(probe.lambda);
                }
                (probe.lambda, probe.state)
            }
        };
        let keep: Option<Vec<(usize, Vec<f64>)>> = if warm_on {
            self.set.warm_rows(&sol).map(|(rows, per)| {
                (0..n)
                    .map(|i| (batch.idx[i], rows[i * per..(i + 1) * per].to_vec()))
                    .collect()
            })
        } else {
            None
        };
        let wc = self.set.worst_case(&p, sol, lambda, radius)?;
        let empirical = p.empirical;
        drop(p);
        if let Some(keep) = keep {
            self.warm.extend(keep);
        }
        check_inner_solution(&wc, empirical, radius)?;
        Ok(wc)
    }
}
