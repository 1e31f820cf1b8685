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
use crate::train::{OptimizerKind, TrainParams, TrainedModel, Trainer};
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
    /// Optimiser: adamw or sgd.
    #[arg(long, default_value = "adamw")]
    pub optimizer: String,
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
    /// Constraint form: the radius of the ambiguity set.
    #[arg(long)]
    pub radius: Option<f64>,
    /// Penalty form: the multiplier lambda.
    #[arg(long)]
    pub penalty: Option<f64>,
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
    /// MMD set: extra support points.
    #[arg(long, default_value_t = 0)]
    pub extra_support: usize,
    /// Keep the worst-case particles across epochs.
    #[arg(long)]
    pub warm_start: bool,
    /// Output model directory.
    #[arg(long)]
    pub out: PathBuf,
}

/// Parse the inner flow of the MMD set.
pub fn parse_inner_flow(s: &str) -> Result<InnerFlow> {
    match s.to_ascii_lowercase().as_str() {
        "ift" => Ok(InnerFlow::Ift),
        "wfr" => Ok(InnerFlow::Wfr),
        "w" | "wasserstein" => Ok(InnerFlow::W),
        _ => Err(Error::param("inner-flow", s, "expected ift, wfr or w")),
    }
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
            radius: self.radius,
            penalty: self.penalty,
            inner_steps: self.inner_steps,
            inner_step_size: self.inner_step_size,
            label_cost: self.label_cost,
            inner_flow: parse_inner_flow(&self.inner_flow)?,
            kernel: self.kernel.parse()?,
            bandwidth: self.bandwidth.parse()?,
            extra_support: self.extra_support,
            warm_start: self.warm_start,
            seed: self.seed,
            ..AmbiguityConfig::default()
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
            test_fraction: if self.test.is_some() { 0.0 } else { self.test_fraction },
            val_fraction: self.val_fraction,
            test_file: self.test.clone(),
            seed: self.seed,
        })
    }

    /// The training hyper-parameters.
    pub fn params(&self, quiet: bool) -> Result<TrainParams> {
        let optimizer: OptimizerKind = self.optimizer.parse()?;
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
            .quiet(quiet))
    }
}

/// Run `robustflow train`; returns the trained model (also saved to `--out`).
pub fn run(args: &TrainArgs, g: &GlobalOpts) -> Result<TrainedModel> {
    let params = args.params(g.quiet)?.validate()?;
    let data = load(&args.data, &args.load_options(params.model)?)?;
    let t0 = Instant::now();
    let trained = Trainer::new(params).fit(&data)?;
    trained.save(&args.out)?;
    let r = &trained.report;
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
            t.accuracy.map(|a| format!("{a:.4}")).unwrap_or_else(|| "-".into()),
            t.rmse.map(|a| format!("{a:.4}")).unwrap_or_else(|| "-".into())
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
    #[arg(long, default_value_t = 1.0)]
    pub penalty: f64,
    /// Epochs of each model.
    #[arg(long, default_value_t = 60)]
    pub epochs: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// One model of the demo comparison.
#[derive(Debug, Clone, Serialize)]
pub struct DemoRow {
    /// The ambiguity set.
    pub ambiguity: String,
    /// Training time in seconds.
    pub train_time_s: f64,
    /// Clean test accuracy and the accuracy under each PGD-L2 budget.
    pub rows: Vec<EvalRow>,
}

/// Run `robustflow demo`.
pub fn run_demo(args: &DemoArgs, g: &GlobalOpts) -> Result<Vec<DemoRow>> {
    let eps = super::eval::parse_eps(&args.eps)?;
    let opts = LoadOptions {
        seed: args.seed,
        ..LoadOptions::default()
    };
    let data = load(&args.data, &opts)?;
    let base = TrainParams::default()
        .model(ModelKind::Logistic)
        .epochs(args.epochs)
        .lr(0.05)
        .batch_size(64)
        .seed(args.seed)
        .quiet(g.quiet);
    let robust_cfg = AmbiguityConfig {
        set: SetKind::Wasserstein,
        penalty: Some(args.penalty),
        inner_steps: 15,
        inner_step_size: 0.1,
        seed: args.seed,
        ..AmbiguityConfig::default()
    };
    let mut configs = vec![("none".to_string(), AmbiguityConfig::default())];
    match build_inner(&robust_cfg) {
        Ok(_) => configs.push(("wasserstein".into(), robust_cfg)),
        Err(e) => eprintln!(
            "note: the Wasserstein inner solver is not available in this build ({e}); showing ERM only"
        ),
    }
    let mut out = Vec::new();
    for (name, cfg) in configs {
        let t0 = Instant::now();
        let trained = Trainer::new(base.clone().ambiguity(cfg).validate()?).fit(&data)?;
        let dt = t0.elapsed().as_secs_f64();
        trained.save(args.out.join(&name))?;
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
        out.push(DemoRow {
            ambiguity: name,
            train_time_s: dt,
            rows,
        });
    }
    println!(
        "breast cancer ({} train / {} test rows, logistic model); test accuracy, clean and under PGD-L2 (budgets in standardised units)",
        data.train.len(),
        data.test.len()
    );
    let mut head = format!("{:<14} {:>8}", "ambiguity", "clean");
    for e in &eps {
        head.push_str(&format!(" {:>10}", format!("eps={e}")));
    }
    head.push_str(&format!(" {:>9}", "train s"));
    println!("{head}");
    for r in &out {
        let mut line = format!("{:<14}", r.ambiguity);
        for (k, row) in r.rows.iter().enumerate() {
            let w = if k == 0 { 8 } else { 10 };
            line.push_str(&format!(
                " {:>w$}",
                row.accuracy.map(|a| format!("{a:.4}")).unwrap_or_default()
            ));
        }
        line.push_str(&format!(" {:>9.2}", r.train_time_s));
        println!("{line}");
    }
    crate::io::write_json_atomic(args.out.join("comparison.json"), &out)?;
    println!("wrote {}", args.out.display());
    Ok(out)
}
