//! `robustflow train` (fit a model on a CSV, optionally distributionally robust) and
//! `robustflow demo` (ERM versus a Wasserstein-robust model on the bundled breast-cancer
//! data, clean and under PGD-L2 attacks).
//!
//! `train` writes to `--out DIR`: `model.safetensors`, `model.json` (architecture, schema,
//! encoders, scaler, label map, training configuration, crate version) and `report.json`
//! (per-epoch loss, robust loss, radius reached, multiplier, train/test accuracy, time).
//! The flag groups are those of [`super::args`]; the ambiguity flags map one to one onto
//! [`AmbiguityConfig`], checked once by [`TrainParams::check`].

use super::args::{AmbiguityArgs, Budgets, DataArgs, Hidden, InnerDefaults, ModelArgs};
use super::GlobalOpts;
use crate::data::{load, LoadOptions};
use crate::dro::{AmbiguityConfig, InnerFlow};
use crate::error::{Error, Result};
use crate::model::ModelKind;
pub use crate::train::demo::{Demo, DemoRow, DemoSets, DemoSummary};
use crate::train::{LrSchedule, OptimizerKind, SolverKind, TrainParams, TrainedModel};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `robustflow train`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// The training data.
    #[command(flatten)]
    pub data: DataArgs,
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Epochs.
    #[arg(long, default_value_t = 50)]
    pub epochs: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// Minibatch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Minibatch optimiser: adamw (default) or sgd. Giving it explicitly with `--solver
    /// auto` asks for minibatch training.
    #[arg(long)]
    pub optimizer: Option<OptimizerKind>,
    /// Solver: auto (the exact full-batch solver wherever the problem is convex: linear,
    /// logistic and softmax models under none, wasserstein with --w1-norm, kl, chi2, cvar and
    /// the concave squared-cost penalty; minibatch training otherwise), exact, adamw or sgd.
    #[arg(long, default_value = "auto")]
    pub solver: SolverChoice,
    /// Exact solver: relative tolerance of the optimality test (gradient norm or duality gap).
    #[arg(long, default_value_t = 1e-9)]
    pub tol: f64,
    /// Minibatch: learning-rate schedule constant, cosine or plateau.
    #[arg(long, default_value = "cosine")]
    pub lr_schedule: LrSchedule,
    /// Minibatch: stop when the epoch's training objective changes by less than this
    /// (relative) for 3 consecutive epochs.
    #[arg(long)]
    pub stop_tol: Option<f64>,
    /// Weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Early-stopping patience in epochs (needs --val-fraction > 0).
    #[arg(long)]
    pub patience: Option<usize>,
    /// Seed (splits, initialisation, minibatches, inner solver).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The ambiguity set.
    #[command(flatten)]
    pub ambiguity: AmbiguityArgs,
    /// Choose among the listed --radius or --penalty values: `val` (a stratified
    /// --val-fraction of the training part) or `cv:K` (stratified K-fold on the training
    /// part, seeded); then refit on all training rows. The table goes to report.json
    /// (`selection`).
    #[arg(long)]
    pub select: Option<String>,
    /// The criterion of --select: `loss` (mean held-out loss, lowest wins; default) or
    /// `attack:NORM:EPS` (held-out accuracy under PGD-NORM with budget EPS in standardised
    /// units, 20 steps as in eval, highest wins).
    #[arg(long)]
    pub select_by: Option<String>,
    /// Output model directory.
    #[arg(long)]
    pub out: PathBuf,
}

/// `--solver`: a solver, or a minibatch optimiser (`adamw`, `adam`, `sgd`) standing for
/// minibatch training with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolverChoice {
    /// `auto`, `exact` or `minibatch`.
    Solver(SolverKind),
    /// Minibatch training with this optimiser.
    Optimizer(OptimizerKind),
}

impl std::str::FromStr for SolverChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "adamw" | "adam" | "sgd" => Ok(SolverChoice::Optimizer(s.parse()?)),
            _ => Ok(SolverChoice::Solver(s.parse()?)),
        }
    }
}

/// Parse the inner flow of the MMD set.
pub fn parse_inner_flow(s: &str) -> Result<InnerFlow> {
    s.parse()
}

/// Parse `--hidden 64,64`.
pub fn parse_hidden(s: &str) -> Result<Vec<usize>> {
    Ok(s.parse::<Hidden>()?.0)
}

impl TrainArgs {
    /// The ambiguity configuration (flags one to one; train's defaults).
    pub fn ambiguity_config(&self) -> Result<AmbiguityConfig> {
        Ok(self.ambiguity.config(self.seed))
    }

    /// The data loading options.
    pub fn load_options(&self, model: ModelKind) -> Result<LoadOptions> {
        Ok(self.data.load_options(model, self.seed))
    }

    /// The minibatch-only settings given with a value other than their default (`--epochs`,
    /// `--lr`, `--batch-size`, `--inner-steps`, `--inner-step-size`, `--lr-schedule`,
    /// `--stop-tol`), as `--flag value` strings: the exact solver does not use them.
    pub fn minibatch_settings_given(&self) -> Vec<String> {
        let d = InnerDefaults::TRAIN;
        let inner = self.ambiguity.inner.resolve(d);
        let mut v = Vec::new();
        if self.epochs != 50 {
            v.push(format!("--epochs {}", self.epochs));
        }
        if self.lr != 0.01 {
            v.push(format!("--lr {}", self.lr));
        }
        if self.batch_size != 64 {
            v.push(format!("--batch-size {}", self.batch_size));
        }
        if inner.inner_steps != d.inner_steps {
            v.push(format!("--inner-steps {}", inner.inner_steps));
        }
        if inner.inner_step_size != d.inner_step_size {
            v.push(format!("--inner-step-size {}", inner.inner_step_size));
        }
        if self.lr_schedule != LrSchedule::Cosine {
            let name = format!("{:?}", self.lr_schedule).to_lowercase();
            v.push(format!("--lr-schedule {name}"));
        }
        if let Some(t) = self.stop_tol {
            v.push(format!("--stop-tol {t}"));
        }
        v
    }

    /// The training hyper-parameters (unchecked).
    pub fn params(&self, quiet: bool) -> Result<TrainParams> {
        let (solver, optimizer) = match self.solver {
            SolverChoice::Optimizer(o) => {
                if let Some(given) = self.optimizer {
                    if given != o {
                        let name = |k: OptimizerKind| format!("{k:?}").to_lowercase();
                        return Err(Error::param(
                            "optimizer",
                            name(given),
                            &format!("conflicts with --solver {}", name(o)),
                        ));
                    }
                }
                (SolverKind::Minibatch, o)
            }
            SolverChoice::Solver(s) => {
                let o = self.optimizer.unwrap_or(OptimizerKind::AdamW);
                // An explicit --optimizer asks for minibatch training.
                let s = if s == SolverKind::Auto && self.optimizer.is_some() {
                    SolverKind::Minibatch
                } else {
                    s
                };
                (s, o)
            }
        };
        Ok(TrainParams::default()
            .model(self.model.model)
            .hidden(self.model.hidden.0.clone())
            .activation(self.model.activation)
            .epochs(self.epochs)
            .lr(self.lr)
            .batch_size(self.batch_size)
            .optimizer(optimizer)
            .weight_decay(self.weight_decay)
            .seed(self.seed)
            .patience(self.patience)
            .ambiguity(self.ambiguity_config()?)
            .quiet(quiet)
            .solver(solver)
            .tol(self.tol)
            .lr_schedule(self.lr_schedule)
            .stop_tol(self.stop_tol))
    }
}

/// Run `robustflow train`; returns the trained model (also saved to `--out`).
pub fn run(args: &TrainArgs, g: &GlobalOpts) -> Result<TrainedModel> {
    let mut guard = crate::outputs::OutputGuard::new().input("data", &args.data.data);
    if let Some(t) = &args.data.test {
        guard = guard.input("test", t);
    }
    guard.replaced_dir("out", &args.out)?;
    crate::outputs::check_model_dir_target(&args.out)?;
    let params = args.params(g.quiet)?.check()?;
    let sel = super::select::selector(args)?;
    let data = load(
        &args.data.data,
        &super::select::load_options(args, sel.as_ref(), params.model)?,
    )?;
    let t0 = Instant::now();
    let (trained, table) = super::select::fit(args, g, sel.as_ref(), params, &data)?;
    super::select::save(&trained, table.as_ref(), &args.out)?;
    let r = &trained.report;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    if r.solver == "exact" {
        let unused = args.minibatch_settings_given();
        if !unused.is_empty() {
            eprintln!(
                "warning: the exact solver does not use {}; give --solver adamw (or sgd) for minibatch training",
                unused.join(", ")
            );
        }
    }
    let last = r.epochs.last();
    println!(
        "trained {:?} ({}) on {} rows x {} features in {:.2} s; {} epochs{}",
        trained.model.arch.kind,
        r.ambiguity,
        r.n_train,
        trained.schema.dim(),
        t0.elapsed().as_secs_f64(),
        r.epochs.len(),
        if r.stopped_early {
            format!(" (early stop, best epoch {})", r.best_epoch)
        } else {
            String::new()
        }
    );
    if r.solver == "exact" {
        println!(
            "exact solver: objective {:.12}, {} Newton iterations, {} {:.2e} ({}), fit {:.4} s",
            r.objective.unwrap_or(f64::NAN),
            r.iterations,
            r.optimality_measure.as_deref().unwrap_or("optimality"),
            r.optimality.unwrap_or(f64::NAN),
            r.status.as_deref().unwrap_or("-"),
            r.fit_time_s
        );
    } else if let Some(gn) = r.grad_norm {
        println!(
            "{}: objective {:.6}, full-batch gradient norm {gn:.3e} after {} steps",
            r.solver,
            r.objective.unwrap_or(f64::NAN),
            r.iterations
        );
    }
    if let Some(e) = last {
        println!(
            "final loss {:.4}, robust loss {:.4}, radius {:.4}, train accuracy {}",
            e.loss,
            e.robust_loss,
            e.radius,
            e.train_accuracy
                .map(|a| format!("{a:.4}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    if let Some(t) = &r.test {
        println!(
            "test ({} rows): loss {:.4}, accuracy {}, rmse {}",
            r.n_test,
            t.loss,
            t.accuracy
                .map(|a| format!("{a:.4}"))
                .unwrap_or_else(|| "-".into()),
            t.rmse
                .map(|a| format!("{a:.4}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    println!("wrote {}", args.out.display());
    Ok(trained)
}

/// Arguments of `robustflow demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The dataset (default: the bundled breast-cancer data).
    #[arg(long, default_value = "datasets/breast_cancer.csv")]
    pub data: PathBuf,
    /// Output directory.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// PGD-L2 budgets (standardised units), comma separated.
    #[arg(long, default_value = "0.5,1,2")]
    pub eps: Budgets,
    /// Wasserstein penalty (the multiplier gamma of `l - gamma ||x - x0||^2`).
    #[arg(long, default_value_t = 0.5)]
    pub penalty: f64,
    /// Inner (Wasserstein flow) iterations per minibatch.
    #[arg(long, default_value_t = 10)]
    pub inner_steps: usize,
    /// Inner step size (relative: 1 is the fixed-point iteration).
    #[arg(long, default_value_t = 0.5)]
    pub inner_step_size: f64,
    /// Epochs of each model.
    #[arg(long, default_value_t = 60)]
    pub epochs: usize,
    /// MMD (kernel DRO) penalty: the multiplier lambda of `-E_mu l + lambda/2 MMD^2(mu, P_N)`.
    #[arg(long, default_value_t = 10.0)]
    pub mmd_penalty: f64,
    /// MMD (kernel DRO) inner flow: ift, wfr, w or prox.
    #[arg(long, default_value = "ift")]
    pub mmd_inner_flow: InnerFlow,
    /// The ambiguity sets compared (comma separated; `none` is ERM).
    #[arg(long, default_value = "none,wasserstein,mmd")]
    pub sets: String,
    /// Number of seeds (split, initialisation, minibatches); mean and spread are shown.
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Run `robustflow demo` (the comparison is [`Demo::run`]).
pub fn run_demo(args: &DemoArgs, g: &GlobalOpts) -> Result<Vec<DemoSummary>> {
    let eps = &args.eps.0;
    crate::error::check_count("seeds", args.seeds as usize)?;
    let guard = crate::outputs::OutputGuard::new().input("data", &args.data);
    guard.files_in(
        "out",
        &args.out,
        &[("comparison", ".csv"), ("comparison", ".json")],
    )?;
    let sets = DemoSets {
        names: args
            .sets
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        penalty: args.penalty,
        mmd_penalty: args.mmd_penalty,
        mmd_inner_flow: args.mmd_inner_flow,
        inner_steps: args.inner_steps,
        inner_step_size: args.inner_step_size,
    };
    let configs = sets.configs()?;
    for (name, _) in &configs {
        guard.replaced_dir("out", args.out.join(name))?;
        crate::outputs::check_model_dir_target(&args.out.join(name))?;
    }
    if configs.is_empty() {
        return Err(Error::param("sets", &args.sets, "no ambiguity set given"));
    }
    let t_all = Instant::now();
    let demo = Demo::run(
        &args.data,
        &configs,
        eps,
        args.epochs,
        args.seeds,
        args.seed,
        g.quiet,
        |name, seed, trained| {
            if seed == args.seed {
                trained.save(args.out.join(name))?;
            }
            Ok(())
        },
    )?;
    print!("{}", demo.table());
    demo.write(&args.out)?;
    println!(
        "wrote {} (models of seed {} in {}) in {:.1} s",
        args.out.display(),
        args.seed,
        configs
            .iter()
            .map(|(n, _)| format!("{n}/"))
            .collect::<Vec<_>>()
            .join(", "),
        t_all.elapsed().as_secs_f64()
    );
    Ok(demo.summary)
}
