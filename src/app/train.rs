//! `robustflow train` (fit a model on a CSV, optionally distributionally robust) and
//! `robustflow demo` (ERM versus a Wasserstein-robust model on the bundled breast-cancer
//! data, clean and under PGD-L2 attacks).
//!
//! `train` writes to `--out DIR`: `model.safetensors`, `model.json` (architecture, schema,
//! encoders, scaler, label map, training configuration, crate version) and `report.json`
//! (per-epoch loss, robust loss, radius reached, multiplier, train/test accuracy, time).
//! The ambiguity flags map one to one onto [`AmbiguityConfig`].

use super::eval::{evaluate, EvalRow};
use super::GlobalOpts;
use crate::data::{load, AttackKind, Impute, LoadOptions, Norm, Task};
use crate::dro::{build_inner, AmbiguityConfig, InnerFlow, SetKind};
use crate::error::{Error, Result};
use crate::model::{Activation, ModelKind};
use crate::train::{LrSchedule, OptimizerKind, SolverKind, TrainParams, TrainedModel, Trainer};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `robustflow train`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Training CSV (with a header row).
    #[arg(long)]
    pub data: PathBuf,
    /// Target column name (default: the last column).
    #[arg(long)]
    pub target: Option<String>,
    /// classification or regression (default: regression for `--model linear`,
    /// classification otherwise).
    #[arg(long)]
    pub task: Option<String>,
    /// Missing values: mean or drop (default: missing values are an error).
    #[arg(long)]
    pub impute: Option<String>,
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
    /// Model: logistic, softmax, mlp or linear.
    #[arg(long, default_value = "logistic")]
    pub model: String,
    /// MLP hidden widths, comma separated.
    #[arg(long, default_value = "64,64")]
    pub hidden: String,
    /// MLP activation: elu, relu or tanh.
    #[arg(long, default_value = "elu")]
    pub activation: String,
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
    pub optimizer: Option<String>,
    /// Solver: auto (the exact full-batch solver wherever the problem is convex: linear,
    /// logistic and softmax models under none, wasserstein with --w1-norm, kl, chi2, cvar and
    /// the concave squared-cost penalty; minibatch training otherwise), exact, adamw or sgd.
    #[arg(long, default_value = "auto")]
    pub solver: String,
    /// Exact solver: relative tolerance of the optimality test (gradient norm or duality gap).
    #[arg(long, default_value_t = 1e-9)]
    pub tol: f64,
    /// Minibatch: learning-rate schedule constant, cosine or plateau.
    #[arg(long, default_value = "cosine")]
    pub lr_schedule: String,
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
    /// Ambiguity set: none, wasserstein, kl, chi2, cvar, mmd or wfr.
    #[arg(long, default_value = "none")]
    pub ambiguity: String,
    /// Constraint form: the radius of the ambiguity set; a comma-separated list (with
    /// --select) chooses one on held-out data.
    #[arg(long)]
    pub radius: Option<crate::train::select::ValueList>,
    /// Penalty form: the multiplier lambda; a comma-separated list (with --select) chooses
    /// one on held-out data.
    #[arg(long)]
    pub penalty: Option<crate::train::select::ValueList>,
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
    /// Inner flow iterations per minibatch.
    #[arg(long, default_value_t = 20)]
    pub inner_steps: usize,
    /// Inner flow step size.
    #[arg(long, default_value_t = 0.1)]
    pub inner_step_size: f64,
    /// Wasserstein: cost of changing a label (default: labels fixed).
    #[arg(long)]
    pub label_cost: Option<f64>,
    /// MMD set: inner flow ift, wfr or w.
    #[arg(long, default_value = "ift")]
    pub inner_flow: String,
    /// MMD set: kernel gaussian, imq or laplace.
    #[arg(long, default_value = "gaussian")]
    pub kernel: String,
    /// MMD set: bandwidth (number) or `median`.
    #[arg(long, default_value = "median")]
    pub bandwidth: String,
    /// MMD set: kernel approximation of the MMD penalty, exact, rff:D (D random Fourier
    /// features, Gaussian kernel) or nystrom:M (M landmarks from the minibatch); the
    /// approximations need --inner-flow wfr or w.
    #[arg(long, default_value = "exact")]
    pub approx: String,
    /// MMD set: extra support points.
    #[arg(long, default_value_t = 0)]
    pub extra_support: usize,
    /// Keep the worst-case particles across epochs.
    #[arg(long)]
    pub warm_start: bool,
    /// `wasserstein`: use the 1-Wasserstein set with this norm cost (l1, l2, linf;
    /// constraint form) instead of the squared Euclidean cost.
    #[arg(long)]
    pub w1_norm: Option<String>,
    /// `wfr`: multiplier of the KL term on the weights (default: --penalty).
    #[arg(long)]
    pub kl_penalty: Option<f64>,
    /// `kl`, `chi2`: run the weight flow for --inner-steps instead of the closed form.
    #[arg(long)]
    pub weight_flow: bool,
    /// Constraint form: bisection steps on the multiplier.
    #[arg(long, default_value_t = 30)]
    pub tune_iters: usize,
    /// Constraint form: relative tolerance of the radius reached.
    #[arg(long, default_value_t = 1e-3)]
    pub tune_tol: f64,
    /// Output model directory.
    #[arg(long)]
    pub out: PathBuf,
}

/// Parse the inner flow of the MMD set.
pub fn parse_inner_flow(s: &str) -> Result<InnerFlow> {
    s.parse()
}

/// Parse `--hidden 64,64`.
pub fn parse_hidden(s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<usize>()
                .ok()
                .filter(|&h| h >= 1)
                .ok_or_else(|| Error::param("hidden", t, "expected positive integers, e.g. 64,64"))
        })
        .collect()
}

impl TrainArgs {
    /// The ambiguity configuration (flags one to one).
    pub fn ambiguity_config(&self) -> Result<AmbiguityConfig> {
        Ok(AmbiguityConfig {
            set: self.ambiguity.parse()?,
            radius: self.radius.as_ref().map(|v| v.first()),
            penalty: self.penalty.as_ref().map(|v| v.first()),
            inner_steps: self.inner_steps,
            inner_step_size: self.inner_step_size,
            label_cost: self.label_cost,
            inner_flow: parse_inner_flow(&self.inner_flow)?,
            kernel: self.kernel.parse()?,
            bandwidth: self.bandwidth.parse()?,
            approx: self.approx.parse()?,
            extra_support: self.extra_support,
            warm_start: self.warm_start,
            seed: self.seed,
            norm: self.w1_norm.as_deref().map(str::parse).transpose()?,
            kl_penalty: self.kl_penalty,
            weight_flow: self.weight_flow,
            certificate: false,
            tune_iters: self.tune_iters,
            tune_tol: self.tune_tol,
        })
    }

    /// The data loading options.
    pub fn load_options(&self, model: ModelKind) -> Result<LoadOptions> {
        let task: Option<Task> = match &self.task {
            Some(t) => Some(t.parse()?),
            None => (model == ModelKind::Linear).then_some(Task::Regression),
        };
        let impute: Option<Impute> = self.impute.as_deref().map(str::parse).transpose()?;
        Ok(LoadOptions {
            target: self.target.clone(),
            task,
            impute,
            drop_constant: self.drop_constant,
            test_fraction: if self.test.is_some() {
                0.0
            } else {
                self.test_fraction
            },
            val_fraction: self.val_fraction,
            test_file: self.test.clone(),
            seed: self.seed,
            categorical: self.categorical.clone(),
            numeric: self.numeric.clone(),
        })
    }

    /// The minibatch-only settings given with a value other than their default (`--epochs`,
    /// `--lr`, `--batch-size`, `--inner-steps`, `--inner-step-size`, `--lr-schedule`,
    /// `--stop-tol`), as `--flag value` strings: the exact solver does not use them.
    pub fn minibatch_settings_given(&self) -> Vec<String> {
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
        if self.inner_steps != 20 {
            v.push(format!("--inner-steps {}", self.inner_steps));
        }
        if self.inner_step_size != 0.1 {
            v.push(format!("--inner-step-size {}", self.inner_step_size));
        }
        if !self.lr_schedule.eq_ignore_ascii_case("cosine") {
            v.push(format!("--lr-schedule {}", self.lr_schedule));
        }
        if let Some(t) = self.stop_tol {
            v.push(format!("--stop-tol {t}"));
        }
        v
    }

    /// The training hyper-parameters.
    pub fn params(&self, quiet: bool) -> Result<TrainParams> {
        let solver_name = self.solver.to_ascii_lowercase();
        let (solver, optimizer): (SolverKind, OptimizerKind) = match solver_name.as_str() {
            "adamw" | "adam" | "sgd" => {
                let o: OptimizerKind = solver_name.parse()?;
                if let Some(given) = &self.optimizer {
                    if given.parse::<OptimizerKind>()? != o {
                        return Err(Error::param(
                            "optimizer",
                            given,
                            &format!("conflicts with --solver {}", self.solver),
                        ));
                    }
                }
                (SolverKind::Minibatch, o)
            }
            _ => {
                let s: SolverKind = solver_name.parse()?;
                let o: OptimizerKind = self.optimizer.as_deref().unwrap_or("adamw").parse()?;
                // An explicit --optimizer asks for minibatch training.
                let s = if s == SolverKind::Auto && self.optimizer.is_some() {
                    SolverKind::Minibatch
                } else {
                    s
                };
                (s, o)
            }
        };
        let activation: Activation = self.activation.parse()?;
        Ok(TrainParams::default()
            .model(self.model.parse()?)
            .hidden(parse_hidden(&self.hidden)?)
            .activation(activation)
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
            .lr_schedule(self.lr_schedule.parse::<LrSchedule>()?)
            .stop_tol(self.stop_tol))
    }
}

/// Run `robustflow train`; returns the trained model (also saved to `--out`).
pub fn run(args: &TrainArgs, g: &GlobalOpts) -> Result<TrainedModel> {
    let mut guard = crate::outputs::OutputGuard::new().input("data", &args.data);
    if let Some(t) = &args.test {
        guard = guard.input("test", t);
    }
    guard.replaced_dir("out", &args.out)?;
    crate::outputs::check_model_dir_target(&args.out)?;
    let params = args.params(g.quiet)?.validate()?;
    let sel = super::select::selector(args)?;
    let data = load(
        &args.data,
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
    pub eps: String,
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
    pub mmd_inner_flow: String,
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

/// One model of the demo comparison for one seed.
#[derive(Debug, Clone, Serialize)]
pub struct DemoRow {
    /// The ambiguity set.
    pub ambiguity: String,
    /// The seed.
    pub seed: u64,
    /// Training time in seconds.
    pub train_time_s: f64,
    /// Clean test accuracy and the accuracy under each PGD-L2 budget.
    pub rows: Vec<EvalRow>,
}

/// Mean and standard deviation over seeds of one accuracy of the demo.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    /// The ambiguity set.
    pub ambiguity: String,
    /// `clean` or `pgd-l2`.
    pub condition: String,
    /// The PGD-L2 budget (standardised units).
    pub eps: Option<f64>,
    /// Mean test accuracy over seeds.
    pub mean: f64,
    /// Standard deviation over seeds (n - 1 denominator; 0 for one seed).
    pub std: f64,
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, s)
}

/// Run `robustflow demo`.
pub fn run_demo(args: &DemoArgs, g: &GlobalOpts) -> Result<Vec<DemoSummary>> {
    let eps = super::eval::parse_eps(&args.eps)?;
    crate::error::check_count("seeds", args.seeds as usize)?;
    let guard = crate::outputs::OutputGuard::new().input("data", &args.data);
    guard.files_in(
        "out",
        &args.out,
        &[("comparison", ".csv"), ("comparison", ".json")],
    )?;
    let robust_cfg = AmbiguityConfig {
        set: SetKind::Wasserstein,
        penalty: Some(args.penalty),
        inner_steps: args.inner_steps,
        inner_step_size: args.inner_step_size,
        ..AmbiguityConfig::default()
    };
    let mmd_cfg = AmbiguityConfig {
        set: SetKind::Mmd,
        penalty: Some(args.mmd_penalty),
        inner_steps: args.inner_steps,
        inner_step_size: args.inner_step_size,
        inner_flow: parse_inner_flow(&args.mmd_inner_flow)?,
        ..AmbiguityConfig::default()
    };
    let mut configs = Vec::new();
    for name in args
        .sets
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let cfg = match name.parse::<SetKind>()? {
            SetKind::None => AmbiguityConfig::default(),
            SetKind::Wasserstein => robust_cfg.clone(),
            SetKind::Mmd => mmd_cfg.clone(),
            _ => {
                return Err(Error::param(
                    "sets",
                    name,
                    "the demo compares none, wasserstein and mmd; use `robustflow train` for the other sets",
                ))
            }
        };
        build_inner(&cfg)?;
        guard.replaced_dir("out", args.out.join(name))?;
        crate::outputs::check_model_dir_target(&args.out.join(name))?;
        configs.push((name.to_string(), cfg));
    }
    if configs.is_empty() {
        return Err(Error::param("sets", &args.sets, "no ambiguity set given"));
    }
    let t_all = Instant::now();
    let mut per_seed = Vec::new();
    let mut sizes = (0, 0);
    // `seed + i` wraps around at 2^64 (a seed is an opaque RNG key; no overflow).
    for seed in (0..args.seeds).map(|i| args.seed.wrapping_add(i)) {
        let opts = LoadOptions {
            seed,
            ..LoadOptions::default()
        };
        let data = load(&args.data, &opts)?;
        sizes = (data.train.len(), data.test.len());
        for (name, cfg) in &configs {
            let params = TrainParams::default()
                .model(ModelKind::Logistic)
                .epochs(args.epochs)
                .lr(0.05)
                .batch_size(64)
                .seed(seed)
                .quiet(g.quiet)
                .ambiguity(AmbiguityConfig {
                    seed,
                    ..cfg.clone()
                })
                .validate()?;
            let t0 = Instant::now();
            let trained = Trainer::new(params).fit(&data)?;
            let dt = t0.elapsed().as_secs_f64();
            if seed == args.seed {
                trained.save(args.out.join(name))?;
            }
            let rows = evaluate(
                &trained,
                &data.test.x,
                &data.test.y,
                Some(AttackKind::Pgd),
                Norm::L2,
                &eps,
                20,
                None,
            )?;
            per_seed.push(DemoRow {
                ambiguity: name.clone(),
                seed,
                train_time_s: dt,
                rows,
            });
        }
    }
    let mut summary = Vec::new();
    for (name, _) in &configs {
        let runs: Vec<&DemoRow> = per_seed.iter().filter(|r| &r.ambiguity == name).collect();
        for k in 0..=eps.len() {
            let v: Vec<f64> = runs
                .iter()
                .map(|r| r.rows[k].accuracy.unwrap_or(f64::NAN))
                .collect();
            let (mean, std) = mean_std(&v);
            summary.push(DemoSummary {
                ambiguity: name.clone(),
                condition: if k == 0 {
                    "clean".into()
                } else {
                    "pgd-l2".into()
                },
                eps: (k > 0).then(|| eps[k - 1]),
                mean,
                std,
            });
        }
    }
    println!(
        "{} ({} train / {} test rows, logistic model, {} seed(s)): test accuracy, mean +- std, clean and under PGD-L2 (20 steps; budgets in standardised units)",
        args.data.display(),
        sizes.0,
        sizes.1,
        args.seeds
    );
    let mut head = format!("{:<13} {:>15}", "ambiguity", "clean");
    for e in &eps {
        head.push_str(&format!(" {:>15}", format!("eps={e}")));
    }
    println!("{head}");
    for (name, _) in &configs {
        let mut line = format!("{name:<13}");
        for s in summary.iter().filter(|s| &s.ambiguity == name) {
            line.push_str(&format!(
                " {:>15}",
                format!("{:.3} +- {:.3}", s.mean, s.std)
            ));
        }
        println!("{line}");
    }
    let header: Vec<String> = [
        "ambiguity",
        "condition",
        "eps",
        "mean_accuracy",
        "std_accuracy",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    crate::io::write_csv_atomic(
        args.out.join("comparison.csv"),
        &header,
        summary.iter().map(|s| {
            vec![
                s.ambiguity.clone(),
                s.condition.clone(),
                s.eps.map(|e| format!("{e}")).unwrap_or_default(),
                format!("{}", s.mean),
                format!("{}", s.std),
            ]
        }),
    )?;
    crate::io::write_json_atomic(
        args.out.join("comparison.json"),
        &serde_json::json!({ "summary": &summary, "runs": &per_seed }),
    )?;
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
    Ok(summary)
}
