//! Flag groups shared by several subcommands, declared once as clap `Args` structs and
//! `#[command(flatten)]`ed into the commands, typed (`FromStr`) so that a bad value is a
//! usage error naming the flag:
//!
//! | group | flags | used by |
//! |---|---|---|
//! | [`ModelDataArgs`] | `--model DIR --data CSV` | `certify`, `eval` |
//! | [`DataArgs`] | `--data`, `--target`, `--task`, `--impute`, splits, column types | `train` |
//! | [`ModelArgs`] | `--model KIND --hidden --activation` | `train` |
//! | [`AmbiguityArgs`] | `--ambiguity --radius --penalty`, the set options below, `--approx`, `--warm-start`, `--w1-norm`, `--kl-penalty`, `--weight-flow` | `train` |
//! | [`SetArgs`] | `--label-cost`, `--inner-flow`, `--kernel`, `--bandwidth`, `--extra-support` | `train`, `certify` |
//! | [`InnerArgs`] | `--inner-steps`, `--inner-step-size`, `--tune-iters`, `--tune-tol` | `train`, `certify` |
//!
//! The defaults of [`InnerArgs`] differ between commands (training takes many cheap inner
//! solves, a certificate few accurate ones): each command resolves them with its own
//! [`InnerDefaults`] ([`InnerDefaults::TRAIN`], [`InnerDefaults::certify`]).

use crate::data::{Impute, LoadOptions, Task};
use crate::dro::{AmbiguityConfig, InnerFlow, Norm, SetKind};
use crate::error::{Error, Result};
use crate::kernel::{Approx, Bandwidth, KernelKind};
use crate::model::{Activation, ModelKind};
use crate::train::select::ValueList;
use std::path::PathBuf;

/// `--model DIR --data CSV`: a model directory written by `robustflow train` and a CSV
/// with the training file's columns (extra columns are ignored).
#[derive(Debug, Clone, clap::Args)]
pub struct ModelDataArgs {
    /// The model directory written by `robustflow train`.
    #[arg(long)]
    pub model: PathBuf,
    /// The CSV (same columns as the training file; extra columns ignored).
    #[arg(long)]
    pub data: PathBuf,
}

/// The training data: the CSV, its target and column types, and the splits.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Training CSV (with a header row).
    #[arg(long)]
    pub data: PathBuf,
    /// Target column name (default: the last column).
    #[arg(long)]
    pub target: Option<String>,
    /// classification or regression (default: regression for `--model linear`,
    /// classification otherwise).
    #[arg(long)]
    pub task: Option<Task>,
    /// Missing values: mean or drop (default: missing values are an error).
    #[arg(long)]
    pub impute: Option<Impute>,
    /// Drop feature columns that are constant on the training part (default: error).
    #[arg(long)]
    pub drop_constant: bool,
    /// Feature columns to one-hot encode whatever their cells (comma separated). By
    /// default a column is numeric when every non-missing cell is a number, categorical
    /// when none is, and an error naming the rows when it mixes both.
    #[arg(long, value_delimiter = ',')]
    pub categorical: Vec<String>,
    /// Feature columns that must be numeric (comma separated): a cell that is not a
    /// number is an error naming its row.
    #[arg(long, value_delimiter = ',')]
    pub numeric: Vec<String>,
    /// Fraction of rows held out for testing (stratified, seeded).
    #[arg(long, default_value_t = 0.25)]
    pub test_fraction: f64,
    /// Fraction of the training part held out for validation (early stopping).
    #[arg(long, default_value_t = 0.0)]
    pub val_fraction: f64,
    /// A separate test CSV (replaces the split).
    #[arg(long)]
    pub test: Option<PathBuf>,
}

impl DataArgs {
    /// The data loading options for a model of kind `model` (its task by default) and the
    /// split seed `seed`.
    pub fn load_options(&self, model: ModelKind, seed: u64) -> LoadOptions {
        let task = self
            .task
            .or((model == ModelKind::Linear).then_some(Task::Regression));
        LoadOptions {
            target: self.target.clone(),
            task,
            impute: self.impute,
            drop_constant: self.drop_constant,
            test_fraction: if self.test.is_some() {
                0.0
            } else {
                self.test_fraction
            },
            val_fraction: self.val_fraction,
            test_file: self.test.clone(),
            seed,
            categorical: self.categorical.clone(),
            numeric: self.numeric.clone(),
        }
    }
}

/// MLP hidden widths, `--hidden 64,64` (positive integers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hidden(pub Vec<usize>);

impl std::str::FromStr for Hidden {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        s.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<usize>().ok().filter(|&h| h >= 1).ok_or_else(|| {
                    Error::param("hidden", t, "expected positive integers, e.g. 64,64")
                })
            })
            .collect::<Result<_>>()
            .map(Hidden)
    }
}

/// The model family and its architecture.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Model: logistic, softmax, mlp or linear.
    #[arg(long, default_value = "logistic")]
    pub model: ModelKind,
    /// MLP hidden widths, comma separated.
    #[arg(long, default_value = "64,64")]
    pub hidden: Hidden,
    /// MLP activation: elu, relu or tanh.
    #[arg(long, default_value = "elu")]
    pub activation: Activation,
}

/// Options of particular ambiguity sets, with the same meaning and default in every
/// command.
#[derive(Debug, Clone, clap::Args)]
pub struct SetArgs {
    /// wasserstein: cost of changing a label (default: labels fixed).
    #[arg(long)]
    pub label_cost: Option<f64>,
    /// mmd: the inner flow (ift, wfr, w, prox).
    #[arg(long, default_value = "ift")]
    pub inner_flow: InnerFlow,
    /// mmd: the kernel (gaussian, imq, laplace).
    #[arg(long, default_value = "gaussian")]
    pub kernel: KernelKind,
    /// mmd: the bandwidth (a number or `median`).
    #[arg(long, default_value = "median")]
    pub bandwidth: Bandwidth,
    /// mmd: extra support points around the data.
    #[arg(long, default_value_t = 0)]
    pub extra_support: usize,
}

/// The inner solver's effort; each command has its own defaults ([`InnerDefaults`]).
#[derive(Debug, Clone, clap::Args)]
pub struct InnerArgs {
    /// Inner flow iterations per solve (default: 20 in train; 100 in certify, 20 for mmd).
    #[arg(long)]
    pub inner_steps: Option<usize>,
    /// Inner flow step size, relative to the penalty's curvature (see the DRO docs)
    /// (default: 0.1 in train; 0.5 in certify).
    #[arg(long)]
    pub inner_step_size: Option<f64>,
    /// Constraint form: bisection steps on the multiplier (default: 30; 12 for mmd in
    /// certify).
    #[arg(long)]
    pub tune_iters: Option<usize>,
    /// Constraint form: relative tolerance of the radius reached (default: 1e-3; 1e-2 for
    /// mmd in certify).
    #[arg(long)]
    pub tune_tol: Option<f64>,
}

/// The defaults of [`InnerArgs`] in one command.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InnerDefaults {
    /// `--inner-steps`.
    pub inner_steps: usize,
    /// `--inner-step-size`.
    pub inner_step_size: f64,
    /// `--tune-iters`.
    pub tune_iters: usize,
    /// `--tune-tol`.
    pub tune_tol: f64,
}

impl InnerDefaults {
    /// `robustflow train` (and the library's default [`AmbiguityConfig`]).
    pub const TRAIN: InnerDefaults = InnerDefaults {
        inner_steps: 20,
        inner_step_size: 0.1,
        tune_iters: 30,
        tune_tol: 1e-3,
    };

    /// `robustflow certify` for the set `set`: more inner steps and a larger step (few,
    /// accurate solves), except for `mmd` whose solves cost O(n^2) each.
    pub fn certify(set: SetKind) -> InnerDefaults {
        let mmd = set == SetKind::Mmd;
        InnerDefaults {
            inner_steps: if mmd { 20 } else { 100 },
            inner_step_size: 0.5,
            tune_iters: if mmd { 12 } else { 30 },
            tune_tol: if mmd { 1e-2 } else { 1e-3 },
        }
    }
}

impl InnerArgs {
    /// The values given, the defaults `d` for the others.
    pub fn resolve(&self, d: InnerDefaults) -> InnerDefaults {
        InnerDefaults {
            inner_steps: self.inner_steps.unwrap_or(d.inner_steps),
            inner_step_size: self.inner_step_size.unwrap_or(d.inner_step_size),
            tune_iters: self.tune_iters.unwrap_or(d.tune_iters),
            tune_tol: self.tune_tol.unwrap_or(d.tune_tol),
        }
    }
}

/// The one parser of comma-separated lists of non-negative numbers (`--radius`, `--eps`):
/// blank items are skipped; an item that is not a number, or is negative or not finite,
/// is an error naming `flag`.
pub fn parse_nonneg_list(flag: &str, s: &str) -> Result<Vec<f64>> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            let v: f64 = t
                .parse()
                .map_err(|_| Error::param(flag, t, "not a number"))?;
            crate::error::check_nonneg(flag, v)
        })
        .collect()
}

/// Radii, `--radius 0,0.1,0.2` (at least one, each `>= 0`).
#[derive(Debug, Clone, PartialEq)]
pub struct Radii(pub Vec<f64>);

impl std::str::FromStr for Radii {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let v = parse_nonneg_list("radius", s)?;
        if v.is_empty() {
            return Err(Error::param("radius", s, "give at least one radius"));
        }
        Ok(Radii(v))
    }
}

/// Attack budgets, `--eps 0.1,0.5,1` (each `>= 0`, with a finite PGD step).
#[derive(Debug, Clone, PartialEq)]
pub struct Budgets(pub Vec<f64>);

impl std::str::FromStr for Budgets {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let v = parse_nonneg_list("eps", s)?;
        // The PGD step 2.5 eps / steps must be finite too: blame `eps`, the flag given.
        if let Some(e) = v.iter().find(|v| !(2.5 * **v).is_finite()) {
            let t = s
                .split(',')
                .map(str::trim)
                .find(|t| t.parse::<f64>().ok() == Some(*e))
                .unwrap_or(s);
            return Err(Error::param(
                "eps",
                t,
                "too large: the attack step 2.5 eps / steps overflows",
            ));
        }
        Ok(Budgets(v))
    }
}

/// The ambiguity set of `robustflow train`: the set, its strength, its options and the
/// inner solver's effort (train's defaults, [`InnerDefaults::TRAIN`]). Maps one to one
/// onto [`AmbiguityConfig`] ([`AmbiguityArgs::config`]), checked by
/// [`AmbiguityConfig::check`].
#[derive(Debug, Clone, clap::Args)]
pub struct AmbiguityArgs {
    /// Ambiguity set: none, wasserstein, kl, chi2, cvar, mmd or wfr.
    #[arg(long, default_value = "none")]
    pub ambiguity: SetKind,
    /// Constraint form: the radius of the ambiguity set; a comma-separated list (with
    /// --select) chooses one on held-out data.
    #[arg(long)]
    pub radius: Option<ValueList>,
    /// Penalty form: the multiplier lambda; a comma-separated list (with --select) chooses
    /// one on held-out data.
    #[arg(long)]
    pub penalty: Option<ValueList>,
    /// The inner solver's effort.
    #[command(flatten)]
    pub inner: InnerArgs,
    /// Options of particular sets.
    #[command(flatten)]
    pub set: SetArgs,
    /// mmd: kernel approximation of the MMD penalty, exact, rff:D (D random Fourier
    /// features, Gaussian kernel) or nystrom:M (M landmarks from the minibatch); the
    /// approximations need --inner-flow wfr or w.
    #[arg(long, default_value = "exact")]
    pub approx: Approx,
    /// Keep the worst-case particles across epochs.
    #[arg(long)]
    pub warm_start: bool,
    /// `wasserstein`: use the 1-Wasserstein set with this norm cost (l1, l2, linf;
    /// constraint form) instead of the squared Euclidean cost.
    #[arg(long)]
    pub w1_norm: Option<Norm>,
    /// `wfr`: multiplier of the KL term on the weights (default: --penalty).
    #[arg(long)]
    pub kl_penalty: Option<f64>,
    /// `kl`, `chi2`: run the weight flow for --inner-steps instead of the closed form.
    #[arg(long)]
    pub weight_flow: bool,
}

impl AmbiguityArgs {
    /// The (unchecked) configuration, the inner solver seeded with `seed`.
    pub fn config(&self, seed: u64) -> AmbiguityConfig {
        let inner = self.inner.resolve(InnerDefaults::TRAIN);
        AmbiguityConfig {
            set: self.ambiguity,
            radius: self.radius.as_ref().map(ValueList::first),
            penalty: self.penalty.as_ref().map(ValueList::first),
            inner_steps: inner.inner_steps,
            inner_step_size: inner.inner_step_size,
            label_cost: self.set.label_cost,
            inner_flow: self.set.inner_flow,
            kernel: self.set.kernel,
            bandwidth: self.set.bandwidth,
            approx: self.approx,
            extra_support: self.set.extra_support,
            warm_start: self.warm_start,
            seed,
            norm: self.w1_norm,
            kl_penalty: self.kl_penalty,
            weight_flow: self.weight_flow,
            certificate: false,
            tune_iters: inner.tune_iters,
            tune_tol: inner.tune_tol,
        }
    }
}
