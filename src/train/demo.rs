//! The demo comparison behind `robustflow demo`: ERM against robust models (the
//! Wasserstein set \[WRM\] and the MMD set \[KDRO\] in the penalty form) on one dataset over
//! several seeds, each model evaluated clean and under PGD-L2 attacks of several budgets
//! (standardised units). [`Demo::run`] trains and evaluates; [`Demo::table`] and
//! [`Demo::write`] give the text table and `comparison.csv` / `comparison.json`.

use super::evaluate::{evaluate, EvalRow};
use super::{TrainParams, Trainer};
use crate::data::{load, AttackKind, LoadOptions, Norm};
use crate::dro::{AmbiguityConfig, InnerFlow, SetKind};
use crate::error::{Error, Result};
use crate::model::ModelKind;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

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

/// The robust sets of the demo and their settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSets {
    /// The sets compared, by name (`none`, `wasserstein`, `mmd`).
    pub names: Vec<String>,
    /// Wasserstein penalty `gamma` of `l - gamma ||x - x0||^2`.
    pub penalty: f64,
    /// MMD penalty `lambda` of `-E_mu l + lambda/2 MMD^2(mu, P_N)`.
    pub mmd_penalty: f64,
    /// MMD inner flow.
    pub mmd_inner_flow: InnerFlow,
    /// Inner iterations per minibatch.
    pub inner_steps: usize,
    /// Inner step size.
    pub inner_step_size: f64,
}

impl DemoSets {
    /// The ambiguity configuration of every set (checked), by name.
    pub fn configs(&self) -> Result<Vec<(String, AmbiguityConfig)>> {
        let base = AmbiguityConfig {
            inner_steps: self.inner_steps,
            inner_step_size: self.inner_step_size,
            ..AmbiguityConfig::default()
        };
        let mut out = Vec::new();
        for name in &self.names {
            let cfg = match name.parse::<SetKind>()? {
                SetKind::None => AmbiguityConfig::default(),
                SetKind::Wasserstein => AmbiguityConfig {
                    set: SetKind::Wasserstein,
                    penalty: Some(self.penalty),
                    ..base.clone()
                },
                SetKind::Mmd => AmbiguityConfig {
                    set: SetKind::Mmd,
                    penalty: Some(self.mmd_penalty),
                    inner_flow: self.mmd_inner_flow,
                    ..base.clone()
                },
                _ => {
                    return Err(Error::param(
                        "sets",
                        name,
                        "the demo compares none, wasserstein and mmd; use `robustflow train` for the other sets",
                    ))
                }
            };
            cfg.check_ref()?;
            out.push((name.clone(), cfg));
        }
        Ok(out)
    }
}

/// The results of a demo run.
#[derive(Debug, Clone)]
pub struct Demo {
    /// The dataset.
    pub data: PathBuf,
    /// Train / test sizes (of the last seed's split).
    pub sizes: (usize, usize),
    /// The PGD-L2 budgets.
    pub eps: Vec<f64>,
    /// The number of seeds.
    pub seeds: u64,
    /// The sets, by name, in order.
    pub sets: Vec<String>,
    /// One row per set and seed.
    pub runs: Vec<DemoRow>,
    /// Mean and spread per set and condition.
    pub summary: Vec<DemoSummary>,
}

use crate::stats::mean_std;

impl Demo {
    /// Train a logistic model per set and seed (`seeds` seeds from `seed`, wrapping at
    /// `2^64`; `epochs` epochs, learning rate 0.05, batch 64) on `data` and evaluate it
    /// clean and under PGD-L2 (20 steps) at each budget of `eps`. `on_model(name, seed,
    /// model)` sees every trained model (the app saves those of the first seed).
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        data: &Path,
        configs: &[(String, AmbiguityConfig)],
        eps: &[f64],
        epochs: usize,
        seeds: u64,
        seed: u64,
        quiet: bool,
        mut on_model: impl FnMut(&str, u64, &super::TrainedModel) -> Result<()>,
    ) -> Result<Demo> {
        let mut runs = Vec::new();
        let mut sizes = (0, 0);
        // `seed + i` wraps around at 2^64 (a seed is an opaque RNG key; no overflow).
        for s in (0..seeds).map(|i| seed.wrapping_add(i)) {
            let opts = LoadOptions {
                seed: s,
                ..LoadOptions::default()
            };
            let d = load(data, &opts)?;
            sizes = (d.train.len(), d.test.len());
            for (name, cfg) in configs {
                let params = TrainParams::default()
                    .model(ModelKind::Logistic)
                    .epochs(epochs)
                    .lr(0.05)
                    .batch_size(64)
                    .seed(s)
                    .quiet(quiet)
                    .ambiguity(AmbiguityConfig {
                        seed: s,
                        ..cfg.clone()
                    })
                    .check()?;
                let t0 = Instant::now();
                let trained = Trainer::new(params).fit(&d)?;
                let dt = t0.elapsed().as_secs_f64();
                on_model(name, s, &trained)?;
                let rows = evaluate(
                    &trained,
                    &d.test.x,
                    &d.test.y,
                    Some(AttackKind::Pgd),
                    Norm::L2,
                    eps,
                    20,
                    None,
                )?;
                runs.push(DemoRow {
                    ambiguity: name.clone(),
                    seed: s,
                    train_time_s: dt,
                    rows,
                });
            }
        }
        let mut summary = Vec::new();
        for (name, _) in configs {
            let of: Vec<&DemoRow> = runs.iter().filter(|r| &r.ambiguity == name).collect();
            for k in 0..=eps.len() {
                let v: Vec<f64> = of
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
        Ok(Demo {
            data: data.to_path_buf(),
            sizes,
            eps: eps.to_vec(),
            seeds,
            sets: configs.iter().map(|(n, _)| n.clone()).collect(),
            runs,
            summary,
        })
    }

    /// The text table: one line per set, the mean and spread of the test accuracy clean
    /// and at each budget.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} ({} train / {} test rows, logistic model, {} seed(s)): test accuracy, mean +- std, clean and under PGD-L2 (20 steps; budgets in standardised units)\n",
            self.data.display(),
            self.sizes.0,
            self.sizes.1,
            self.seeds
        );
        let mut head = format!("{:<13} {:>15}", "ambiguity", "clean");
        for e in &self.eps {
            head.push_str(&format!(" {:>15}", format!("eps={e}")));
        }
        out.push_str(&head);
        out.push('\n');
        for name in &self.sets {
            let mut line = format!("{name:<13}");
            for s in self.summary.iter().filter(|s| &s.ambiguity == name) {
                line.push_str(&format!(
                    " {:>15}",
                    format!("{:.3} +- {:.3}", s.mean, s.std)
                ));
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// Write `comparison.csv` (the summary) and `comparison.json` (summary and runs) to
    /// `dir`, atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
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
            dir.join("comparison.csv"),
            &header,
            self.summary.iter().map(|s| {
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
            dir.join("comparison.json"),
            &serde_json::json!({ "summary": &self.summary, "runs": &self.runs }),
        )
    }
}
