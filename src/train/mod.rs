//! The robust trainer: an outer minibatch loop (candle optimisers) over an inner
//! maximisation.
//!
//! For each minibatch `B` the inner solver ([`InnerMax`], built once per fit from the
//! checked ambiguity set, [`crate::dro::Ambiguity::build`]) returns worst-case particles
//! `(x_i*, y_i*, w_i)` for the current model; then one optimiser step is taken on
//!
//! `J(theta) = sum_i w_i l(theta, x_i*, y_i*)`
//!
//! with the particles **held fixed** (Danskin's theorem: at an exact inner optimum, the
//! gradient of `theta -> sup_{P in A} E_P l(theta, .)` is the gradient of `J`). With the
//! set `none` this is plain ERM (`w_i = 1/|B|`, particles = data). Where the problem is
//! convex in the parameters (linear, logistic and softmax models under `none`, the
//! 1-Wasserstein set, `kl`, `chi2`, `cvar`, the concave squared-cost penalty) the exact
//! full-batch solver of [`crate::solve`] can be used instead ([`SolverKind`]).
//!
//! Parameters are checked once (linfa's `ParamGuard` pattern): [`TrainParams`] is the
//! unchecked builder (echoed as given in `report.json` and `model.json`);
//! [`TrainParams::check`] returns [`ValidParams`], which also holds the checked
//! [`crate::dro::Ambiguity`]; [`Trainer::new`] accepts only [`ValidParams`]. On an
//! in-memory table, [`fit_table`] does the three steps (check, encode and split, fit) in
//! one call. [`evaluate()`] measures a model clean and under attacks, [`demo`] is the
//! comparison behind `robustflow demo`.
//!
//! ```no_run
//! use robustflow::data::{load, LoadOptions};
//! use robustflow::model::ModelKind;
//! use robustflow::train::{TrainParams, Trainer};
//!
//! let data = load("datasets/breast_cancer.csv", &LoadOptions::default())?;
//! let params = TrainParams::default()
//!     .model(ModelKind::Logistic)
//!     .epochs(20)
//!     .lr(0.05)
//!     .batch_size(64)
//!     .seed(1)
//!     .check()?;
//! let trained = Trainer::new(params).fit(&data)?;
//! let acc = trained.evaluate(&data.test)?.accuracy.unwrap();
//! println!("test accuracy {acc:.3}");
//! let p = trained.predict_proba(&data.test.x)?; // class probabilities per row
//! # let _ = p;
//! trained.save("out/model")?;
//! let again = robustflow::train::TrainedModel::load("out/model")?;
//! assert_eq!(again.predict(&data.test.x)?, trained.predict(&data.test.x)?);
//! # Ok::<(), robustflow::Error>(())
//! ```

mod adamw;
pub mod demo;
pub mod evaluate;
pub use adamw::FlatAdamW;
pub use evaluate::{evaluate, EvalRow};
pub mod select;

use crate::data::{Dataset, LoadOptions, RawTable, Schema, TabularData};
use crate::dro::{Ambiguity, AmbiguityConfig, Batch, InnerMax, PointLoss, WorstCase};
use crate::error::{Error, Result};
use crate::model::{Activation, Architecture, DenseParams, Model, ModelFile, ModelKind};
use crate::solve::{ExactProblem, ExactSet, Status};
use candle_core::backprop::GradStore;
use candle_core::Tensor;
use candle_nn::{Optimizer, ParamsAdamW, SGD};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// The outer optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// AdamW (decoupled weight decay), betas 0.9 / 0.999, eps 1e-8.
    AdamW,
    /// Plain SGD; weight decay is added to the objective as `wd/2 ||W||^2` (weights, not
    /// biases).
    Sgd,
}

impl std::str::FromStr for OptimizerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "adamw" | "adam" => Ok(OptimizerKind::AdamW),
            "sgd" => Ok(OptimizerKind::Sgd),
            _ => Err(Error::param("optimizer", s, "expected adamw or sgd")),
        }
    }
}

/// Which solver fits the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SolverKind {
    /// The exact full-batch solver ([`crate::solve`]) wherever the problem is convex
    /// (linear, logistic and softmax models under `none`, the 1-Wasserstein set, `kl`,
    /// `chi2`, `cvar` and the concave squared-cost penalty), minibatch training otherwise.
    Auto,
    /// The exact solver; an error where it does not apply.
    Exact,
    /// Minibatch training with the `optimizer` (the library default).
    #[default]
    Minibatch,
}

impl std::str::FromStr for SolverKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(SolverKind::Auto),
            "exact" | "newton" => Ok(SolverKind::Exact),
            "minibatch" => Ok(SolverKind::Minibatch),
            _ => Err(Error::param(
                "solver",
                s,
                "expected auto, exact, adamw or sgd",
            )),
        }
    }
}

/// The learning-rate schedule of minibatch training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `lr` throughout (the library default).
    #[default]
    Constant,
    /// Cosine decay per step, `lr_t = lr (1 + cos(pi t / T)) / 2` over the `T` steps of
    /// all epochs: the step (and with it the minibatch noise floor) tends to 0.
    Cosine,
    /// Halve the rate when the epoch's training objective has not improved by a relative
    /// `1e-4` for 3 epochs.
    Plateau,
}

impl std::str::FromStr for LrSchedule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "constant" | "none" => Ok(LrSchedule::Constant),
            "cosine" => Ok(LrSchedule::Cosine),
            "plateau" => Ok(LrSchedule::Plateau),
            _ => Err(Error::param(
                "lr-schedule",
                s,
                "expected constant, cosine or plateau",
            )),
        }
    }
}

fn default_tol() -> f64 {
    1e-9
}

/// Training hyper-parameters, unchecked (builder; check them once with
/// [`TrainParams::check`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    /// The model family.
    pub model: ModelKind,
    /// MLP hidden widths.
    pub hidden: Vec<usize>,
    /// MLP activation.
    pub activation: Activation,
    /// Number of epochs.
    pub epochs: usize,
    /// Learning rate.
    pub lr: f64,
    /// Minibatch size (capped at the training size).
    pub batch_size: usize,
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Weight decay.
    pub weight_decay: f64,
    /// Seed of the initialisation and the minibatch shuffles.
    pub seed: u64,
    /// Early stopping: stop after this many epochs without a better validation loss (needs
    /// a validation split); the best parameters are restored.
    pub patience: Option<usize>,
    /// The ambiguity set and its inner solver.
    pub ambiguity: AmbiguityConfig,
    /// Hide the progress bar.
    pub quiet: bool,
    /// The solver (exact full-batch, minibatch, or chosen by convexity).
    #[serde(default)]
    pub solver: SolverKind,
    /// Exact solver: relative tolerance of the optimality test.
    #[serde(default = "default_tol")]
    pub tol: f64,
    /// Minibatch: the learning-rate schedule.
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Minibatch: stop when the epoch's training objective changes by less than this
    /// (relative) for 3 consecutive epochs (None: run every epoch).
    #[serde(default)]
    pub stop_tol: Option<f64>,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            model: ModelKind::Logistic,
            hidden: vec![64, 64],
            activation: Activation::Elu,
            epochs: 50,
            lr: 0.01,
            batch_size: 64,
            optimizer: OptimizerKind::AdamW,
            weight_decay: 0.0,
            seed: 0,
            patience: None,
            ambiguity: AmbiguityConfig::default(),
            quiet: true,
            solver: SolverKind::Minibatch,
            tol: default_tol(),
            lr_schedule: LrSchedule::Constant,
            stop_tol: None,
        }
    }
}

macro_rules! setter {
    ($name:ident, $t:ty, $doc:expr) => {
        #[doc = $doc]
        pub fn $name(mut self, v: $t) -> Self {
            self.$name = v;
            self
        }
    };
}

impl TrainParams {
    setter!(model, ModelKind, "Set the model family.");
    setter!(hidden, Vec<usize>, "Set the MLP hidden widths.");
    setter!(activation, Activation, "Set the MLP activation.");
    setter!(epochs, usize, "Set the number of epochs.");
    setter!(lr, f64, "Set the learning rate.");
    setter!(batch_size, usize, "Set the minibatch size.");
    setter!(optimizer, OptimizerKind, "Set the optimiser.");
    setter!(weight_decay, f64, "Set the weight decay.");
    setter!(seed, u64, "Set the seed.");
    setter!(patience, Option<usize>, "Set the early-stopping patience.");
    setter!(ambiguity, AmbiguityConfig, "Set the ambiguity set.");
    setter!(quiet, bool, "Hide the progress bar.");
    setter!(solver, SolverKind, "Set the solver.");
    setter!(tol, f64, "Set the exact solver's relative tolerance.");
    setter!(lr_schedule, LrSchedule, "Set the learning-rate schedule.");
    setter!(
        stop_tol,
        Option<f64>,
        "Set the minibatch stopping tolerance."
    );

    /// Check every hyper-parameter once (the ambiguity configuration with
    /// [`AmbiguityConfig::check`]); the trainer accepts only the result.
    pub fn check(self) -> Result<ValidParams> {
        crate::error::check_count("epochs", self.epochs)?;
        crate::error::check_positive("lr", self.lr)?;
        crate::error::check_count("batch-size", self.batch_size)?;
        crate::error::check_nonneg("weight-decay", self.weight_decay)?;
        crate::error::check_positive("tol", self.tol)?;
        if let Some(t) = self.stop_tol {
            crate::error::check_positive("stop-tol", t)?;
        }
        if let Some(p) = self.patience {
            crate::error::check_count("patience", p)?;
        }
        if self.model == ModelKind::Mlp {
            if self.hidden.is_empty() {
                return Err(Error::param(
                    "hidden",
                    "",
                    "an MLP needs at least one layer",
                ));
            }
            for &h in &self.hidden {
                crate::error::check_count("hidden", h)?;
            }
            crate::model::check::check_hidden_budget(&self.hidden)?;
        }
        let ambiguity = self.ambiguity.check_ref()?;
        Ok(ValidParams {
            params: self,
            ambiguity,
        })
    }

    /// The same as [`TrainParams::check`] (the name of earlier versions).
    pub fn validate(self) -> Result<ValidParams> {
        self.check()
    }
}

/// Checked [`TrainParams`] ([`TrainParams::check`]): the parameters as given (echoed in
/// reports and `model.json`) and the checked ambiguity set the inner solver is built from.
/// Read-only: the fields of [`TrainParams`] through `Deref`.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidParams {
    params: TrainParams,
    ambiguity: Ambiguity,
}

impl ValidParams {
    /// The checked ambiguity set.
    pub fn ambiguity_set(&self) -> &Ambiguity {
        &self.ambiguity
    }
    /// The parameters as given.
    pub fn params(&self) -> &TrainParams {
        &self.params
    }
}

impl std::ops::Deref for ValidParams {
    type Target = TrainParams;
    fn deref(&self) -> &TrainParams {
        &self.params
    }
}

/// One epoch of `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean clean (empirical) training loss over the epoch's minibatches.
    pub loss: f64,
    /// Mean worst-case (robust) loss `sum_i w_i l_i` over the minibatches.
    pub robust_loss: f64,
    /// Mean divergence reached by the inner solver.
    pub radius: f64,
    /// Mean multiplier of the inner solver (None when infinite, as for ERM).
    pub multiplier: Option<f64>,
    /// Training accuracy at the end of the epoch (None for a regression).
    pub train_accuracy: Option<f64>,
    /// Test accuracy (None without a test part or for a regression).
    pub test_accuracy: Option<f64>,
    /// Validation loss (None without a validation part).
    pub val_loss: Option<f64>,
    /// Wall time of the epoch in seconds.
    pub time_s: f64,
}

/// The training report (`report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// The inner solver's name.
    pub ambiguity: String,
    /// The hyper-parameters.
    pub params: TrainParams,
    /// Training / validation / test sizes.
    pub n_train: usize,
    /// Validation size.
    pub n_val: usize,
    /// Test size.
    pub n_test: usize,
    /// Per-epoch records.
    pub epochs: Vec<EpochRecord>,
    /// The epoch whose parameters were kept (the last one unless early stopping).
    pub best_epoch: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Final clean test metrics.
    pub test: Option<Metrics>,
    /// The solver that produced the parameters: `exact`, `adamw` or `sgd`.
    #[serde(default)]
    pub solver: String,
    /// Newton iterations (exact solver) or optimiser steps (minibatch).
    #[serde(default)]
    pub iterations: usize,
    /// Exact solver: the relative optimality measure reached (see `optimality_measure`).
    #[serde(default)]
    pub optimality: Option<f64>,
    /// `gradient-norm` (`||grad F|| / max(1, |F|)`) or `duality-gap`
    /// (`(nu mu + lambda_N^2) / max(1, |F|)`).
    #[serde(default)]
    pub optimality_measure: Option<String>,
    /// Exact solver: `converged`, `separable`, `not-concave` or `not-converged`.
    #[serde(default)]
    pub status: Option<String>,
    /// The training objective at the returned parameters: the exact solver's robust
    /// objective, or after minibatch training the mean over one pass of minibatches (in
    /// data order) of each batch's robust objective `sum_i w_i l_i` (+ SGD weight decay).
    #[serde(default)]
    pub objective: Option<f64>,
    /// Minibatch: the norm of the gradient of that objective (each batch's inner problem
    /// solved at the returned parameters, Danskin) at the returned parameters.
    #[serde(default)]
    pub grad_norm: Option<f64>,
    /// Why no minimiser exists, when the exact solver detected it.
    #[serde(default)]
    pub no_minimiser: Option<String>,
    /// Warnings (also printed by the CLI).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Wall time of the fit in seconds.
    #[serde(default)]
    pub fit_time_s: f64,
}

/// Loss and accuracy of a model on a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Mean per-sample loss.
    pub loss: f64,
    /// Accuracy (classification).
    pub accuracy: Option<f64>,
    /// Root mean squared error in original units (regression).
    pub rmse: Option<f64>,
}

/// Mean loss and accuracy of `model` on standardised inputs `x`, labels `y`.
pub fn metrics(model: &Model, schema: Option<&Schema>, x: &[f64], y: &[f64]) -> Result<Metrics> {
    if y.is_empty() {
        return Err(Error::param("data", 0, "no samples to evaluate"));
    }
    let (l, pred) = model.losses_and_predictions(x, y)?;
    let loss = l.iter().sum::<f64>() / l.len() as f64;
    Ok(match model.arch.n_classes() {
        Some(_) => Metrics {
            loss,
            accuracy: Some(
                pred.iter().zip(y).filter(|(p, t)| p == t).count() as f64 / y.len() as f64,
            ),
            rmse: None,
        },
        None => {
            let s = schema
                .and_then(|s| s.target_scale)
                .map(|t| t.1)
                .unwrap_or(1.0);
            let mse = pred
                .iter()
                .zip(y)
                .map(|(p, t)| (p - t).powi(2))
                .sum::<f64>()
                / y.len() as f64;
            Metrics {
                loss,
                accuracy: None,
                rmse: Some(mse.sqrt() * s),
            }
        }
    })
}

/// The outer objective `J(theta) = sum_i w_i l(theta, x_i, y_i)` at fixed particles, plus
/// `wd/2 sum ||W_l||^2` when `l2 > 0` (SGD weight decay). A scalar candle tensor whose
/// backward pass gives the step the trainer takes.
pub fn outer_objective(model: &Model, wc: &WorstCase, l2: f64) -> Result<Tensor> {
    let n = wc.y.len();
    if wc.w.len() != n || wc.x.len() != n * model.arch.input_dim {
        return Err(Error::Shape(format!(
            "worst case: {} weights, {} labels, {} inputs",
            wc.w.len(),
            n,
            wc.x.len()
        )));
    }
    // The particles enter as constants: no gradient flows into them.
    let x = model.input(&wc.x)?.detach();
    let l = model.loss_tensor(&x, &wc.y)?;
    let w = Tensor::from_slice(&wc.w, n, x.device())?;
    let mut j = l.mul(&w)?.sum_all()?;
    if l2 > 0.0 {
        for (k, v) in model.vars().iter().enumerate() {
            if k % 2 == 0 {
                j = j.add(&v.as_tensor().sqr()?.sum_all()?.affine(0.5 * l2, 0.0)?)?;
            }
        }
    }
    Ok(j)
}

/// The value of [`outer_objective`] and its gradient with respect to every parameter
/// (`[dW_0, db_0, dW_1, ...]`, each row-major like the parameter), written into `grads`
/// (reused across calls: the trainer allocates it once). Hand-written reverse mode
/// ([`crate::model::fast`]); the candle graph of [`outer_objective`] is the reference it
/// is tested against.
pub fn outer_value_and_grads(
    model: &Model,
    wc: &WorstCase,
    l2: f64,
    grads: &mut Vec<Vec<f64>>,
) -> Result<f64> {
    outer_pass(model, wc, l2, grads).map(|(j, _)| j)
}

/// [`outer_value_and_grads`], also returning the per-particle losses.
fn outer_pass(
    model: &Model,
    wc: &WorstCase,
    l2: f64,
    grads: &mut Vec<Vec<f64>>,
) -> Result<(f64, Vec<f64>)> {
    let n = wc.y.len();
    if wc.w.len() != n || wc.x.len() != n * model.arch.input_dim {
        return Err(Error::Shape(format!(
            "worst case: {} weights, {} labels, {} inputs",
            wc.w.len(),
            n,
            wc.x.len()
        )));
    }
    model.check_rows(&wc.x, &wc.y)?;
    let p = DenseParams::of(model)?;
    let l = p.weighted_param_grads(&wc.x, &wc.y, &wc.w, grads);
    let mut j: f64 = l.iter().zip(&wc.w).map(|(l, w)| l * w).sum();
    if l2 > 0.0 {
        for (k, w) in p.w.iter().enumerate() {
            j += 0.5 * l2 * w.iter().map(|v| v * v).sum::<f64>();
            for (g, v) in grads[2 * k].iter_mut().zip(w) {
                *g += l2 * v;
            }
        }
    }
    Ok((j, l))
}

/// The gradient of [`outer_objective`] with respect to the parameters, flattened in the
/// order of [`Model::vars`]: exactly what the optimiser is given.
pub fn outer_gradient(model: &Model, wc: &WorstCase, l2: f64) -> Result<Vec<f64>> {
    let mut g = Vec::new();
    outer_value_and_grads(model, wc, l2, &mut g)?;
    Ok(g.concat())
}

enum Opt {
    AdamW(FlatAdamW),
    Sgd(SGD),
}

impl Opt {
    fn set_lr(&mut self, lr: f64) {
        match self {
            Opt::AdamW(o) => o.set_learning_rate(lr),
            Opt::Sgd(o) => o.set_learning_rate(lr),
        }
    }
    /// One step with `grads[k]` the gradient of `vars[k]`.
    fn step(&mut self, vars: &[candle_core::Var], grads: &[Vec<f64>]) -> Result<()> {
        match self {
            Opt::AdamW(o) => o.step(grads)?,
            Opt::Sgd(o) => {
                let mut store = GradStore::default();
                for (v, g) in vars.iter().zip(grads) {
                    store.insert(v.as_tensor(), Tensor::from_slice(g, v.shape(), v.device())?);
                }
                o.step(&store)?
            }
        }
        Ok(())
    }
}

/// The trainer.
pub struct Trainer {
    params: ValidParams,
}

impl Trainer {
    /// A trainer with validated hyper-parameters.
    pub fn new(params: ValidParams) -> Self {
        Trainer { params }
    }

    /// The error of a diverging run: names the learning rate to lower.
    fn diverged(&self, step: usize, epoch: usize, loss: f64, best: f64) -> Error {
        Error::Diverged {
            step,
            detail: format!(
                "epoch {epoch}: training loss {loss:.4e} is {:.1e} times its best {best:.4e}; lower --lr (now {})",
                loss / best.max(f64::MIN_POSITIVE),
                self.params.lr
            ),
        }
    }

    /// The exact problem to solve, if the solver choice and the problem allow one, and the
    /// reason minibatch training is used under `auto`.
    fn exact_choice(
        &self,
        arch: &Architecture,
        n: usize,
    ) -> Result<(Option<ExactSet>, Vec<String>)> {
        let p = &self.params;
        let why = if p.model == ModelKind::Mlp {
            Err("an MLP is not convex in its parameters".to_string())
        } else {
            ExactSet::from_config(&p.ambiguity, arch.head, n)
        };
        match (p.solver, why) {
            (SolverKind::Minibatch, _) => Ok((None, Vec::new())),
            (SolverKind::Exact | SolverKind::Auto, Ok(s)) => Ok((Some(s), Vec::new())),
            (SolverKind::Exact, Err(r)) => Err(Error::param("solver", "exact", &r)),
            (SolverKind::Auto, Err(r)) => {
                Ok((None, vec![format!("solver auto: minibatch training ({r})")]))
            }
        }
    }

    /// Fit with the exact solver. `Ok(Err(warning))` asks for minibatch training instead
    /// (`auto` and a squared-cost inner problem that is not concave at the minimiser).
    fn fit_exact(
        &self,
        data: &TabularData,
        arch: &Architecture,
        set: ExactSet,
    ) -> Result<std::result::Result<TrainedModel, String>> {
        let p = &self.params;
        let train = &data.train;
        let schema = &data.schema;
        let t0 = Instant::now();
        let prob = ExactProblem {
            x: &train.x,
            y: &train.y,
            d: train.d,
            head: arch.head,
            wd: p.weight_decay,
            set,
            tol: p.tol,
            max_iter: 1000,
        };
        let fit = prob.solve()?;
        if fit.status == Status::NotConcave {
            let w = fit.warnings.join("; ");
            if p.solver == SolverKind::Auto {
                return Ok(Err(format!("solver auto: minibatch training ({w})")));
            }
            return Err(Error::param("solver", "exact", &w));
        }
        if fit.theta.iter().any(|v| !v.is_finite()) || !fit.objective.is_finite() {
            return Err(Error::Diverged {
                step: fit.iterations,
                detail: format!("exact solver: objective {}", fit.objective),
            });
        }
        let model = Model::new(arch.clone(), p.seed)?;
        model.set_params_flat(&fit.theta)?;
        let fit_time_s = t0.elapsed().as_secs_f64();
        let test = if data.test.is_empty() {
            None
        } else {
            Some(metrics(&model, Some(schema), &data.test.x, &data.test.y)?)
        };
        let report = TrainReport {
            ambiguity: self.params.ambiguity.name(),
            params: (*self.params).clone(),
            n_train: train.len(),
            n_val: data.val.len(),
            n_test: data.test.len(),
            epochs: Vec::new(),
            best_epoch: 0,
            stopped_early: false,
            test,
            solver: "exact".into(),
            iterations: fit.iterations,
            optimality: Some(fit.optimality).filter(|v| v.is_finite()),
            optimality_measure: Some(fit.measure.to_string()),
            status: Some(
                serde_json::to_value(fit.status)?
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            ),
            objective: Some(fit.objective),
            grad_norm: None,
            no_minimiser: (fit.status == Status::Separable).then(|| fit.warnings.join("; ")),
            warnings: fit.warnings,
            fit_time_s,
        };
        Ok(Ok(TrainedModel {
            model,
            schema: schema.clone(),
            params: (*self.params).clone(),
            report,
        }))
    }

    /// Train on `data.train` (early stopping on `data.val`, test accuracy on `data.test`),
    /// with the inner solver of `params.ambiguity`.
    pub fn fit(&self, data: &TabularData) -> Result<TrainedModel> {
        let inner = self.params.ambiguity.build();
        self.fit_with(data, inner)
    }

    /// Train with a given inner solver.
    pub fn fit_with(
        &self,
        data: &TabularData,
        mut inner: Box<dyn InnerMax>,
    ) -> Result<TrainedModel> {
        let p = &self.params;
        let schema = &data.schema;
        let train = &data.train;
        if train.is_empty() {
            return Err(Error::param("data", 0, "the training part is empty"));
        }
        let arch = Architecture::new(
            p.model,
            schema.dim(),
            schema.n_classes(),
            &p.hidden,
            p.activation,
        )?;
        if p.patience.is_some() && data.val.is_empty() {
            return Err(Error::param(
                "patience",
                p.patience.unwrap_or(0),
                "early stopping needs a validation split (--val-fraction > 0)",
            ));
        }
        let t_fit = Instant::now();
        let (exact, mut warnings) = self.exact_choice(&arch, train.len())?;
        if let Some(set) = exact {
            match self.fit_exact(data, &arch, set)? {
                Ok(tm) => return Ok(tm),
                Err(w) => warnings.push(w),
            }
        }
        let model = Model::new(arch, p.seed)?;
        let mut opt = match p.optimizer {
            OptimizerKind::AdamW => Opt::AdamW(FlatAdamW::new(
                model.vars(),
                ParamsAdamW {
                    lr: p.lr,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: p.weight_decay,
                },
            )?),
            OptimizerKind::Sgd => Opt::Sgd(SGD::new(model.vars(), p.lr)?),
        };
        let l2 = if p.optimizer == OptimizerKind::Sgd {
            p.weight_decay
        } else {
            0.0
        };
        let n = train.len();
        let d = train.d;
        let bs = p.batch_size.min(n);
        let mut rng = StdRng::seed_from_u64(p.seed ^ 0x05ee_d0fb_a7c4);
        let mut order: Vec<usize> = (0..n).collect();
        let bar = crate::progress::bar(
            p.epochs as u64,
            "{prefix} [{bar:30}] epoch {pos}/{len} {msg} ({elapsed})",
            p.quiet,
        );
        bar.set_prefix(inner.name());
        let mut records = Vec::new();
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        let mut since_best = 0;
        let mut stopped_early = false;
        let mut step = 0usize;
        let vars = model.vars();
        let mut pgrads: Vec<Vec<f64>> = Vec::new();
        let mut bx: Vec<f64> = Vec::with_capacity(bs * d);
        let mut by: Vec<f64> = Vec::with_capacity(bs);
        let total_steps = p.epochs * n.div_ceil(bs);
        let init_loss = metrics(&model, Some(schema), &train.x, &train.y)?.loss;
        let mut best_loss = init_loss;
        let mut lr_now = p.lr;
        let (mut plateau_best, mut plateau_wait) = (f64::INFINITY, 0usize);
        let (mut prev_obj, mut flat_epochs) = (f64::NAN, 0usize);
        let mut converged = false;
        for epoch in 1..=p.epochs {
            let t0 = Instant::now();
            order.shuffle(&mut rng);
            let (mut sl, mut sr, mut srad, mut smul, mut nb) = (0.0, 0.0, 0.0, 0.0, 0usize);
            for (b, idx) in order.chunks(bs).enumerate() {
                bx.clear();
                by.clear();
                for &i in idx {
                    bx.extend_from_slice(&train.x[i * d..(i + 1) * d]);
                    by.push(train.y[i]);
                }
                let batch = Batch {
                    x: &bx,
                    y: &by,
                    d,
                    idx,
                };
                let wc = inner.solve(&model, &batch)?;
                let (objv, lp) = outer_pass(&model, &wc, l2, &mut pgrads)?;
                // The clean loss: when the particles are the batch itself (ERM) the outer
                // pass has just computed exactly these losses (same rows, same code).
                let clean = if wc.x == bx && wc.y == by {
                    lp.iter().sum::<f64>() / lp.len() as f64
                } else {
                    let c = model.losses(&bx, &by)?;
                    c.iter().sum::<f64>() / c.len() as f64
                };
                if !clean.is_finite() || !wc.value.is_finite() || !objv.is_finite() {
                    return Err(Error::Diverged {
                        step,
                        detail: format!(
                            "epoch {epoch}, batch {}: loss {clean}, robust loss {} (try a smaller --lr)",
                            b + 1,
                            wc.value
                        ),
                    });
                }
                if clean > 1e6 * best_loss.max(init_loss) {
                    return Err(self.diverged(step, epoch, clean, best_loss));
                }
                if p.lr_schedule == LrSchedule::Cosine {
                    let t = step as f64 / total_steps.max(1) as f64;
                    opt.set_lr(p.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()));
                }
                opt.step(&vars, &pgrads)?;
                step += 1;
                sl += clean;
                sr += wc.value;
                srad += wc.radius;
                smul += wc.multiplier;
                nb += 1;
            }
            let nbf = nb as f64;
            let tr = metrics(&model, Some(schema), &train.x, &train.y)?;
            if !tr.loss.is_finite() {
                return Err(Error::Diverged {
                    step,
                    detail: format!(
                        "epoch {epoch}: training loss {} (lower --lr, now {})",
                        tr.loss, p.lr
                    ),
                });
            }
            if tr.loss > 100.0 * best_loss && tr.loss > init_loss {
                return Err(self.diverged(step, epoch, tr.loss, best_loss));
            }
            best_loss = best_loss.min(tr.loss);
            let te = if data.test.is_empty() {
                None
            } else {
                Some(metrics(&model, Some(schema), &data.test.x, &data.test.y)?)
            };
            let val_loss = if data.val.is_empty() {
                None
            } else {
                Some(metrics(&model, Some(schema), &data.val.x, &data.val.y)?.loss)
            };
            let rec = EpochRecord {
                epoch,
                loss: sl / nbf,
                robust_loss: sr / nbf,
                radius: srad / nbf,
                multiplier: Some(smul / nbf).filter(|m| m.is_finite()),
                train_accuracy: tr.accuracy,
                test_accuracy: te.and_then(|m| m.accuracy),
                val_loss,
                time_s: t0.elapsed().as_secs_f64(),
            };
            bar.set_message(format!(
                "loss {:.4} robust {:.4}{}",
                rec.loss,
                rec.robust_loss,
                rec.test_accuracy
                    .map(|a| format!(" test acc {a:.3}"))
                    .unwrap_or_default()
            ));
            bar.inc(1);
            // The epoch's training objective: the full-batch loss for ERM, the mean robust
            // loss over the minibatches otherwise.
            let epoch_obj = if inner.name() == "none" {
                tr.loss
            } else {
                rec.robust_loss
            };
            records.push(rec);
            if p.lr_schedule == LrSchedule::Plateau {
                if epoch_obj < plateau_best * (1.0 - 1e-4) {
                    plateau_best = epoch_obj;
                    plateau_wait = 0;
                } else {
                    plateau_wait += 1;
                    if plateau_wait >= 3 {
                        lr_now *= 0.5;
                        opt.set_lr(lr_now);
                        plateau_wait = 0;
                    }
                }
            }
            if let Some(tol) = p.stop_tol {
                if (epoch_obj - prev_obj).abs() <= tol * epoch_obj.abs() {
                    flat_epochs += 1;
                } else {
                    flat_epochs = 0;
                }
                prev_obj = epoch_obj;
                if flat_epochs >= 3 {
                    converged = true;
                    break;
                }
            }
            if let (Some(pat), Some(v)) = (p.patience, val_loss) {
                if best.as_ref().is_none_or(|b| v < b.0) {
                    best = Some((v, epoch, model.params_flat()?));
                    since_best = 0;
                } else {
                    since_best += 1;
                    if since_best >= pat {
                        stopped_early = true;
                        break;
                    }
                }
            }
        }
        bar.finish_and_clear();
        let best_epoch = match best {
            Some((_, e, theta)) => {
                model.set_params_flat(&theta)?;
                e
            }
            None => records.len(),
        };
        let test = if data.test.is_empty() {
            None
        } else {
            Some(metrics(&model, Some(schema), &data.test.x, &data.test.y)?)
        };
        // The training objective and its gradient norm at the returned parameters: the
        // mean over one pass of minibatches in data order of each batch's robust objective
        // (the minibatch DRO objective that training minimises), so memory stays O(batch)
        // and a kernel inner flow never runs on the whole training part (O(n^2)).
        let mut objective = 0.0;
        let mut grad: Vec<f64> = Vec::new();
        let mut bgrads: Vec<Vec<f64>> = Vec::new();
        let all: Vec<usize> = (0..n).collect();
        for idx in all.chunks(bs) {
            let (lo, hi) = (idx[0], idx[idx.len() - 1] + 1);
            let batch = Batch {
                x: &train.x[lo * d..hi * d],
                y: &train.y[lo..hi],
                d,
                idx,
            };
            let wc = inner.solve(&model, &batch)?;
            let frac = idx.len() as f64 / n as f64;
            objective += frac * outer_value_and_grads(&model, &wc, l2, &mut bgrads)?;
            let flat = bgrads.concat();
            if grad.is_empty() {
                grad = vec![0.0; flat.len()];
            }
            for (g, v) in grad.iter_mut().zip(&flat) {
                *g += frac * v;
            }
        }
        let grad_norm = grad.iter().map(|v| v * v).sum::<f64>().sqrt();
        if converged {
            stopped_early = true;
        }
        let report = TrainReport {
            ambiguity: inner.name(),
            params: (*self.params).clone(),
            n_train: train.len(),
            n_val: data.val.len(),
            n_test: data.test.len(),
            epochs: records,
            best_epoch,
            stopped_early,
            test,
            solver: match p.optimizer {
                OptimizerKind::AdamW => "adamw".into(),
                OptimizerKind::Sgd => "sgd".into(),
            },
            iterations: step,
            optimality: None,
            optimality_measure: None,
            status: None,
            objective: Some(objective).filter(|v| v.is_finite()),
            grad_norm: Some(grad_norm).filter(|v| v.is_finite()),
            no_minimiser: None,
            warnings,
            fit_time_s: t_fit.elapsed().as_secs_f64(),
        };
        Ok(TrainedModel {
            model,
            schema: schema.clone(),
            params: (*self.params).clone(),
            report,
        })
    }
}

/// Train on an in-memory table: check `params` once, encode and split `table` with `opts`
/// (the schema is fitted on the training part, as `robustflow train` does for a CSV) and
/// fit. The one-call entry point for bindings.
///
/// ```
/// use robustflow::data::{LoadOptions, RawTable};
/// use robustflow::dro::{AmbiguityConfig, SetKind};
/// use robustflow::train::{fit_table, TrainParams};
///
/// let mut csv = String::from("a,b,label\n");
/// for i in 0..40 {
///     let t = i as f64 / 40.0;
///     csv += &format!("{t},{},{}\n", 1.0 - t * t, (i % 2 == 0) as u8);
/// }
/// let table = RawTable::parse("in-memory.csv".as_ref(), &csv)?;
/// let params = TrainParams::default()
///     .epochs(3)
///     .ambiguity(AmbiguityConfig::constrained(SetKind::Kl, 0.1));
/// let trained = fit_table(&table, &LoadOptions::default(), params)?;
/// assert_eq!(trained.report.ambiguity, "kl");
/// assert_eq!(trained.report.epochs.len(), 3);
/// # Ok::<(), robustflow::Error>(())
/// ```
pub fn fit_table(
    table: &RawTable,
    opts: &LoadOptions,
    params: TrainParams,
) -> Result<TrainedModel> {
    let params = params.check()?;
    let data = crate::data::load_tables(table, None, opts)?;
    Trainer::new(params).fit(&data)
}

/// A trained model with its schema, hyper-parameters and training report.
#[derive(Debug, Clone)]
pub struct TrainedModel {
    /// The candle model.
    pub model: Model,
    /// The data schema.
    pub schema: Schema,
    /// The hyper-parameters it was trained with.
    pub params: TrainParams,
    /// The training report (empty epochs when loaded from a directory without a report).
    pub report: TrainReport,
}

impl TrainedModel {
    /// Predictions on standardised inputs: class indices (as `f64`) or, for a regression,
    /// the response in original units.
    pub fn predict(&self, x: &[f64]) -> Result<Vec<f64>> {
        let p = self.model.predict(x)?;
        Ok(match self.model.arch.n_classes() {
            Some(_) => p,
            None => p
                .into_iter()
                .map(|v| self.schema.unscale_target(v))
                .collect(),
        })
    }

    /// Class probabilities per row (empty rows for a regression).
    pub fn predict_proba(&self, x: &[f64]) -> Result<Vec<Vec<f64>>> {
        self.model.predict_proba(x)
    }

    /// Encode a CSV table with the saved schema (errors name file, row and column).
    pub fn encode(&self, table: &RawTable) -> Result<Dataset> {
        self.schema.apply(table)
    }

    /// Loss and accuracy on an encoded dataset.
    pub fn evaluate(&self, data: &Dataset) -> Result<Metrics> {
        metrics(&self.model, Some(&self.schema), &data.x, &data.y)
    }

    /// The worst-case risk of this model over the ambiguity set `cfg.set` at each radius
    /// (constraint form), on all of `data`: lower bound (a feasible distribution found by
    /// the inner flow), upper bound and closed form where theory gives them. See
    /// [`crate::dro::certify`](mod@crate::dro::certify).
    pub fn certify(
        &self,
        data: &Dataset,
        cfg: &AmbiguityConfig,
        radii: &[f64],
    ) -> Result<Vec<crate::dro::certify::CertifyRow>> {
        let idx: Vec<usize> = (0..data.len()).collect();
        let batch = Batch {
            x: &data.x,
            y: &data.y,
            d: data.d,
            idx: &idx,
        };
        crate::dro::certify::certify(&self.model, &batch, cfg, radii)
    }

    /// Save to `dir`: `model.safetensors`, `model.json` and `report.json`, written as a
    /// unit (see [`crate::outputs::AtomicDir`]).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let meta = ModelFile::new(
            self.model.arch.clone(),
            Some(self.schema.clone()),
            serde_json::to_value(&self.params)?,
        );
        let mut report = serde_json::to_string_pretty(&self.report)?;
        report.push('\n');
        self.model
            .save_with(dir, &meta, &[("report.json", report.into_bytes())])
    }

    /// Load a model directory written by [`TrainedModel::save`]; every file is validated
    /// before use (see [`TrainedModel::from_bytes`]).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let (model, meta) = Model::load(dir)?;
        let rpath = dir.join("report.json");
        let report = match std::fs::read(&rpath) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&rpath, e)),
        };
        Self::from_parts(model, meta, report.as_deref(), dir)
    }

    /// Build a trained model from the bytes of `model.json`, `model.safetensors` and
    /// (optionally) `report.json` of the directory `dir` (used in error messages). Every
    /// field, dimension and value is checked ([`crate::model::check`]): bad bytes give an
    /// error naming the file, never a panic.
    pub fn from_bytes(
        model_json: &[u8],
        safetensors: &[u8],
        report_json: Option<&[u8]>,
        dir: &Path,
    ) -> Result<Self> {
        let meta = ModelFile::parse(model_json, &dir.join("model.json"))?;
        let model = Model::from_safetensors(
            meta.arch.clone(),
            safetensors,
            &dir.join("model.safetensors"),
        )?;
        Self::from_parts(model, meta, report_json, dir)
    }

    fn from_parts(
        model: Model,
        meta: ModelFile,
        report_json: Option<&[u8]>,
        dir: &Path,
    ) -> Result<Self> {
        let jpath = dir.join("model.json");
        let schema = meta.schema.ok_or_else(|| Error::Data {
            path: jpath.clone(),
            row: None,
            col: None,
            msg: "no data schema in model.json".into(),
        })?;
        let params: TrainParams =
            serde_json::from_value(meta.training).map_err(|e| Error::Data {
                path: jpath.clone(),
                row: None,
                col: None,
                msg: format!("training configuration: {e}"),
            })?;
        let rpath = dir.join("report.json");
        let report = match report_json {
            Some(t) => serde_json::from_slice(t).map_err(|e| Error::Data {
                path: rpath.clone(),
                row: None,
                col: None,
                msg: format!("{e}"),
            })?,
            None => TrainReport {
                ambiguity: format!("{:?}", params.ambiguity.set).to_lowercase(),
                params: params.clone(),
                n_train: 0,
                n_val: 0,
                n_test: 0,
                epochs: Vec::new(),
                best_epoch: 0,
                stopped_early: false,
                test: None,
                solver: String::new(),
                iterations: 0,
                optimality: None,
                optimality_measure: None,
                status: None,
                objective: None,
                grad_norm: None,
                no_minimiser: None,
                warnings: Vec::new(),
                fit_time_s: 0.0,
            },
        };
        Ok(TrainedModel {
            model,
            schema,
            params,
            report,
        })
    }
}
