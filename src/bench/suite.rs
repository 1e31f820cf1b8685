//! The benchmark grid: datasets x methods x training conditions x seeds ("cells"), each
//! cell evaluated under every test condition and budget ("rows").
//!
//! A cell trains one model per point of its method's hyper-parameter grid (the radius or
//! the penalty, three points for every DRO method, so every method gets the same tuning
//! budget), keeps the one with the best validation score (the mean of the clean validation
//! accuracy and the validation accuracy under PGD-L2 at the middle attack budget), and
//! evaluates it on the test data: clean, under white-box PGD in L2 and Linf at several
//! budgets (against the model itself), under covariate shift (every standardised feature
//! moved by `delta` training standard deviations, or the generator's shifted test set), and
//! under subpopulation shift (the `subpop` task). The `label_noise` training condition
//! flips a fraction of the training (and validation) labels and reports clean test
//! accuracy.
//!
//! The regression task `rls` (robust least squares, [`super::rls`]) has one condition,
//! `xi_shift`: the mean test loss when the test draws of `xi` are stretched by `1 + Delta`
//! (budget `Delta`); its accuracy column is `NaN`. Its methods are the ambiguity sets of the
//! grid (tuned the same way, on a validation split) and two of its own, worst-case robust
//! optimisation (`ro`) and the paper's kernel DRO (`kdro`); see [`applies`].
//!
//! Cells are numbered in a fixed order; shard `i/n` runs the cells whose index is `i` mod
//! `n`. Every cell's randomness is derived from its seed alone, so shards merged equal one
//! unsharded run.

use super::generators::{circles, gaussian_shift, subpopulation, LabelledData};
pub use super::methods::{method_grid, MMD_PENALTIES};
use crate::data::{
    attack, load, load_tables, Attack, Dataset, LoadOptions, Norm, RawTable, Shift, TabularData,
};
use crate::dro::{PointLoss, SetKind};
use crate::error::{Error, Result};
use crate::model::ModelKind;
use crate::train::{metrics, TrainParams, TrainedModel, Trainer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The datasets the suite knows (`--datasets`).
pub const ALL_DATASETS: [&str; 9] = [
    "breast_cancer",
    "iris",
    "wine",
    "digits",
    "circles",
    "gaussian",
    "subpop",
    "diabetes_cls",
    "rls",
];

/// The methods the suite knows (`--methods`). `ro` and `kdro` exist only for the `rls`
/// task; see [`applies`].
pub const ALL_METHODS: [&str; 11] = [
    "erm", "wrm", "w1", "kl", "chi2", "cvar", "mmd_ift", "mmd_wfr", "wfr", "ro", "kdro",
];

/// Whether a method runs on a dataset: the exact 1-Wasserstein set (`w1`) needs a linear
/// model with a Lipschitz loss (not `circles`, whose model is an MLP, nor `rls`, whose loss
/// is quadratic); worst-case robust optimisation (`ro`) and the paper's kernel DRO
/// (`kdro`) are defined for the `rls` task only. Everything else runs everywhere.
pub fn applies(dataset: &str, method: &str) -> bool {
    match method {
        "w1" => !matches!(dataset, "circles" | "rls"),
        "ro" | "kdro" => dataset == "rls",
        _ => true,
    }
}

fn default_rls_deltas() -> Vec<f64> {
    (0..=10).map(|k| 0.5 * k as f64).collect()
}
fn default_rls_n_train() -> usize {
    10
}
fn default_rls_n_test() -> usize {
    1000
}

/// The configuration of one benchmark run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteConfig {
    /// The suite name (quick, standard, full).
    pub suite: String,
    /// Datasets.
    pub datasets: Vec<String>,
    /// Methods.
    pub methods: Vec<String>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Training epochs of every model.
    pub epochs: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Inner-solver iterations per minibatch.
    pub inner_steps: usize,
    /// PGD-L2 budgets (standardised units).
    pub l2_budgets: Vec<f64>,
    /// PGD-Linf budgets.
    pub linf_budgets: Vec<f64>,
    /// PGD iterations.
    pub attack_steps: usize,
    /// Covariate-shift magnitudes.
    pub shifts: Vec<f64>,
    /// Label-noise flip rates (empty: no label-noise cells).
    pub label_noise: Vec<f64>,
    /// Test minority proportions of the `subpop` task (training uses 0.1).
    pub subpop_minority: Vec<f64>,
    /// Size of each synthetic training / test set.
    pub n_synthetic: usize,
    /// MLP hidden widths (circles).
    pub hidden: Vec<usize>,
    /// `rls`: the test shifts `Delta` (test draws `xi ~ (1 + Delta) U[-0.5, 0.5]`); the
    /// middle entry is the validation shift.
    #[serde(default = "default_rls_deltas")]
    pub rls_deltas: Vec<f64>,
    /// `rls`: training draws.
    #[serde(default = "default_rls_n_train")]
    pub rls_n_train: usize,
    /// `rls`: validation draws (from the training distribution).
    #[serde(default = "default_rls_n_train")]
    pub rls_n_val: usize,
    /// `rls`: test draws (the same draws, stretched, for every Delta).
    #[serde(default = "default_rls_n_test")]
    pub rls_n_test: usize,
    /// Kernel approximation of the MMD sets' penalty (`mmd_wfr`; `--approx`). The exact
    /// MMD-prox methods (`mmd_ift`, `kdro`) need the exact kernel.
    #[serde(default)]
    pub approx: crate::kernel::Approx,
}

impl SuiteConfig {
    /// The preset of a suite: `quick` (CI: breast cancer, circles and rls; ERM, WRM and
    /// CVaR, plus RO and kernel DRO on rls; one seed, few epochs, 20% label noise),
    /// `standard` (breast cancer, wine, circles, gaussian, subpop, rls; every method; three
    /// seeds; 20% label noise) or `full` (everything, five seeds, more epochs).
    pub fn preset(name: &str) -> Result<Self> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        match name {
            "quick" => Ok(SuiteConfig {
                suite: "quick".into(),
                datasets: s(&["breast_cancer", "circles", "rls"]),
                methods: s(&["erm", "wrm", "cvar", "ro", "kdro"]),
                seeds: vec![0],
                epochs: 8,
                batch_size: 64,
                lr: 0.05,
                inner_steps: 5,
                l2_budgets: vec![0.5, 1.0],
                linf_budgets: vec![0.1],
                attack_steps: 10,
                shifts: vec![1.0],
                label_noise: vec![0.2],
                subpop_minority: vec![0.5],
                n_synthetic: 300,
                hidden: vec![16, 16],
                rls_deltas: vec![0.0, 2.5, 5.0],
                rls_n_train: 10,
                rls_n_val: 10,
                rls_n_test: 500,
                approx: crate::kernel::Approx::Exact,
            }),
            "standard" => Ok(SuiteConfig {
                suite: "standard".into(),
                datasets: s(&[
                    "breast_cancer",
                    "wine",
                    "circles",
                    "gaussian",
                    "subpop",
                    "rls",
                ]),
                methods: s(&ALL_METHODS),
                seeds: vec![0, 1, 2],
                epochs: 30,
                batch_size: 64,
                lr: 0.03,
                inner_steps: 10,
                l2_budgets: vec![0.25, 0.5, 1.0, 2.0],
                linf_budgets: vec![0.05, 0.1, 0.2],
                attack_steps: 20,
                shifts: vec![0.5, 1.0, 2.0],
                label_noise: vec![0.2],
                subpop_minority: vec![0.3, 0.5, 0.9],
                n_synthetic: 600,
                hidden: vec![32, 32],
                rls_deltas: default_rls_deltas(),
                rls_n_train: 10,
                rls_n_val: 10,
                rls_n_test: 1000,
                approx: crate::kernel::Approx::Exact,
            }),
            "full" => Ok(SuiteConfig {
                suite: "full".into(),
                datasets: s(&ALL_DATASETS),
                methods: s(&ALL_METHODS),
                seeds: vec![0, 1, 2, 3, 4],
                epochs: 60,
                batch_size: 64,
                lr: 0.02,
                inner_steps: 20,
                l2_budgets: vec![0.25, 0.5, 1.0, 2.0, 3.0],
                linf_budgets: vec![0.05, 0.1, 0.2, 0.3],
                attack_steps: 40,
                shifts: vec![0.5, 1.0, 2.0, 3.0],
                label_noise: vec![0.1, 0.2, 0.3],
                subpop_minority: vec![0.3, 0.5, 0.7, 0.9],
                n_synthetic: 1000,
                hidden: vec![64, 64],
                rls_deltas: default_rls_deltas(),
                rls_n_train: 10,
                rls_n_val: 10,
                rls_n_test: 2000,
                approx: crate::kernel::Approx::Exact,
            }),
            _ => Err(Error::param(
                "suite",
                name,
                "expected quick, standard or full",
            )),
        }
    }

    /// Check names and values.
    pub fn validate(&self) -> Result<()> {
        if !self.approx.is_exact() {
            if let Some(m) = self
                .methods
                .iter()
                .find(|m| ["mmd_ift", "kdro"].contains(&m.as_str()))
            {
                return Err(Error::param(
                    "approx",
                    self.approx,
                    &format!(
                        "method {m} needs the exact kernel (the MMD-prox weight step); use mmd_wfr"
                    ),
                ));
            }
        }
        for d in &self.datasets {
            if !ALL_DATASETS.contains(&d.as_str()) {
                return Err(Error::param(
                    "datasets",
                    d,
                    &format!(
                        "unknown dataset; expected one of {}",
                        ALL_DATASETS.join(",")
                    ),
                ));
            }
        }
        for m in &self.methods {
            if !ALL_METHODS.contains(&m.as_str()) {
                return Err(Error::param(
                    "methods",
                    m,
                    &format!("unknown method; expected one of {}", ALL_METHODS.join(",")),
                ));
            }
        }
        if self.seeds.is_empty() {
            return Err(Error::param("seeds", "", "need at least one seed"));
        }
        crate::error::check_count("epochs", self.epochs)?;
        crate::error::check_count("attack-steps", self.attack_steps)?;
        if self.datasets.iter().any(|d| d == "rls") {
            if self.rls_deltas.is_empty() {
                return Err(Error::param("rls-deltas", "", "need at least one Delta"));
            }
            if let Some(d) = self
                .rls_deltas
                .iter()
                .find(|d| !(d.is_finite() && **d >= 0.0))
            {
                return Err(Error::param(
                    "rls-deltas",
                    d,
                    "Delta must be finite and non-negative",
                ));
            }
            if self.rls_n_train < 2 {
                return Err(Error::param(
                    "rls-n-train",
                    self.rls_n_train,
                    "need at least 2 training draws",
                ));
            }
            crate::error::check_count("rls-n-val", self.rls_n_val)?;
            crate::error::check_count("rls-n-test", self.rls_n_test)?;
        }
        if let Some(m) = self
            .subpop_minority
            .iter()
            .find(|m| !(0.0..=1.0).contains(*m))
        {
            return Err(Error::param(
                "subpop-minority",
                m,
                "the minority proportion must be in [0, 1]",
            ));
        }
        for &r in &self.label_noise {
            if !(0.0..0.5).contains(&r) {
                return Err(Error::param(
                    "label-noise",
                    r,
                    "flip rate must be in [0, 0.5)",
                ));
            }
        }
        Ok(())
    }

    /// The cells of the grid in their fixed order: every clean-label cell (dataset, method,
    /// seed), then every label-noise cell, so that shards by index mod n mix datasets,
    /// methods and both kinds of cell. Pairs for which [`applies`] is false are left out, and
    /// `rls` (a regression) has no label-noise cells.
    pub fn cells(&self) -> Vec<Cell> {
        let mut out = Vec::new();
        let noise: Vec<Option<f64>> = std::iter::once(None)
            .chain(self.label_noise.iter().map(|&r| Some(r)))
            .collect();
        for nz in noise {
            for d in &self.datasets {
                if nz.is_some() && d == "rls" {
                    continue;
                }
                for m in &self.methods {
                    if !applies(d, m) {
                        continue;
                    }
                    for &seed in &self.seeds {
                        out.push(Cell {
                            dataset: d.clone(),
                            method: m.clone(),
                            noise: nz,
                            seed,
                        });
                    }
                }
            }
        }
        out
    }

    /// The row keys `(condition, budget)` a cell produces.
    pub fn row_keys(&self, cell: &Cell) -> Vec<(String, String)> {
        if let Some(r) = cell.noise {
            return vec![("label_noise".into(), fmt_budget(r))];
        }
        if cell.dataset == "rls" {
            return self
                .rls_deltas
                .iter()
                .map(|&d| ("xi_shift".to_string(), fmt_budget(d)))
                .collect();
        }
        let mut k = vec![("clean".to_string(), fmt_budget(0.0))];
        for &e in &self.l2_budgets {
            k.push(("pgd_l2".into(), fmt_budget(e)));
        }
        for &e in &self.linf_budgets {
            k.push(("pgd_linf".into(), fmt_budget(e)));
        }
        for &s in &self.shifts {
            k.push(("covariate_shift".into(), fmt_budget(s)));
        }
        if cell.dataset == "subpop" {
            for &m in &self.subpop_minority {
                k.push(("subpopulation".into(), fmt_budget(m)));
            }
        }
        k
    }
}

/// Budgets as they appear in `results.csv` (shortest round-trip form).
pub fn fmt_budget(b: f64) -> String {
    format!("{b}")
}

/// One training unit of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Dataset name.
    pub dataset: String,
    /// Method name.
    pub method: String,
    /// Label-noise flip rate (None: clean training labels).
    pub noise: Option<f64>,
    /// Seed.
    pub seed: u64,
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/seed {}", self.dataset, self.method, self.seed)?;
        if let Some(r) = self.noise {
            write!(f, "/noise {r}")?;
        }
        Ok(())
    }
}

/// One line of `results.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Dataset.
    pub dataset: String,
    /// Method.
    pub method: String,
    /// Condition: clean, pgd_l2, pgd_linf, covariate_shift, subpopulation, label_noise,
    /// xi_shift (the `rls` task).
    pub condition: String,
    /// Budget (attack radius, shift magnitude, minority proportion, flip rate or Delta).
    pub budget: String,
    /// Seed.
    pub seed: u64,
    /// Test accuracy (`NaN` for the regression task `rls`).
    pub accuracy: f64,
    /// Mean test loss.
    pub loss: f64,
    /// Wall time of the cell (tuning, training and evaluation) in seconds.
    pub time_s: f64,
    /// The hyper-parameter chosen on the validation split (e.g. `penalty=1`).
    pub chosen: String,
}

impl Row {
    /// The key `(dataset, method, condition, budget, seed)` that a rerun skips.
    pub fn key(&self) -> (String, String, String, String, u64) {
        (
            self.dataset.clone(),
            self.method.clone(),
            self.condition.clone(),
            self.budget.clone(),
            self.seed,
        )
    }
}

/// The CSV header of `results.csv`.
pub const HEADER: [&str; 9] = [
    "dataset",
    "method",
    "condition",
    "budget",
    "seed",
    "accuracy",
    "loss",
    "time_s",
    "chosen",
];

/// Write rows as `results.csv` (atomically), sorted by key.
pub fn write_results(path: &Path, rows: &[Row]) -> Result<()> {
    let mut rows = rows.to_vec();
    rows.sort_by_key(Row::key);
    let header: Vec<String> = HEADER.iter().map(|s| s.to_string()).collect();
    crate::io::write_csv_atomic(
        path,
        &header,
        rows.iter().map(|r| {
            vec![
                r.dataset.clone(),
                r.method.clone(),
                r.condition.clone(),
                r.budget.clone(),
                r.seed.to_string(),
                format!("{}", r.accuracy),
                format!("{}", r.loss),
                format!("{:.3}", r.time_s),
                r.chosen.clone(),
            ]
        }),
    )
}

/// Read a `results.csv` (missing file: no rows). Errors name the file and row.
pub fn read_results(path: &Path) -> Result<Vec<Row>> {
    if !path.exists() {
        return Ok(vec![]);
    }
    let t = RawTable::read(path)?;
    let col = |name: &str| -> Result<usize> {
        t.columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| Error::Data {
                path: path.to_path_buf(),
                row: Some(0),
                col: Some(name.into()),
                msg: "column missing from the header".into(),
            })
    };
    let idx: Vec<usize> = HEADER.iter().map(|h| col(h)).collect::<Result<_>>()?;
    let mut out = Vec::new();
    for i in 0..t.n_rows() {
        let r = |k: usize| t.cell(i, idx[k]).into_owned();
        let num = |k: usize| -> Result<f64> {
            r(k).parse::<f64>().map_err(|_| Error::Data {
                path: path.to_path_buf(),
                row: Some(i + 1),
                col: Some(HEADER[k].into()),
                msg: format!("not a number: {:?}", r(k)),
            })
        };
        out.push(Row {
            dataset: r(0),
            method: r(1),
            condition: r(2),
            budget: r(3),
            seed: num(4)? as u64,
            accuracy: num(5)?,
            loss: num(6)?,
            time_s: num(7)?,
            chosen: r(8),
        });
    }
    Ok(out)
}

/// The data of one dataset and seed: the split with a validation part, the model family,
/// and extra test sets `(condition, budget, data)` from the generators.
pub struct BenchData {
    /// Train / validation / test parts (standardised with the training statistics).
    pub data: TabularData,
    /// The model family.
    pub model: ModelKind,
    /// Generator test sets for covariate and subpopulation shift.
    pub extra: Vec<(String, f64, Dataset)>,
}

fn to_table(d: &LabelledData, name: &str) -> Result<RawTable> {
    let mut s = String::new();
    s.push_str(&d.columns.join(","));
    s.push_str(",target\n");
    for (r, y) in d.x.outer_iter().zip(&d.y) {
        let cells: Vec<String> = r.iter().map(|a| format!("{a}")).collect();
        s.push_str(&cells.join(","));
        s.push_str(&format!(",{}\n", *y as i64));
    }
    RawTable::parse(&PathBuf::from(name), &s)
}

/// A generator task's training set, test set and extra test sets `(condition, budget, data)`.
pub type SyntheticTask = (LabelledData, LabelledData, Vec<(String, f64, LabelledData)>);

/// The synthetic training and test sets of a generator task (also what `--write-data`
/// writes): `(train, test, [(condition, budget, shifted test)])`.
pub fn synthetic(name: &str, cfg: &SuiteConfig, seed: u64) -> Result<SyntheticTask> {
    let n = cfg.n_synthetic;
    let s = seed.wrapping_mul(1000);
    Ok(match name {
        "circles" => (
            circles(n, true, s.wrapping_add(1)),
            circles(n, false, s.wrapping_add(2)),
            vec![],
        ),
        "gaussian" => {
            let extra = cfg
                .shifts
                .iter()
                .enumerate()
                .map(|(k, &d)| {
                    (
                        "covariate_shift".to_string(),
                        d,
                        gaussian_shift(n, 5, 2.0, d, 1.0, s.wrapping_add(10 + k as u64)),
                    )
                })
                .collect();
            (
                gaussian_shift(n, 5, 2.0, 0.0, 1.0, s.wrapping_add(1)),
                gaussian_shift(n, 5, 2.0, 0.0, 1.0, s.wrapping_add(2)),
                extra,
            )
        }
        "rls" => {
            return Err(Error::param(
                "datasets",
                name,
                "the rls task is not a labelled table; see bench::rls::RlsData",
            ))
        }
        "subpop" => {
            let extra = cfg
                .subpop_minority
                .iter()
                .enumerate()
                .map(|(k, &m)| {
                    (
                        "subpopulation".to_string(),
                        m,
                        subpopulation(n, m, s.wrapping_add(20 + k as u64)),
                    )
                })
                .collect();
            (
                subpopulation(n, 0.1, s.wrapping_add(1)),
                subpopulation(n, 0.1, s.wrapping_add(2)),
                extra,
            )
        }
        _ => return Err(Error::param("datasets", name, "not a synthetic task")),
    })
}

/// Load (or generate) a dataset for one seed. `data_dir` holds the bundled CSVs.
pub fn bench_data(name: &str, cfg: &SuiteConfig, seed: u64, data_dir: &Path) -> Result<BenchData> {
    let opts = LoadOptions {
        test_fraction: 0.25,
        val_fraction: 0.2,
        seed,
        ..LoadOptions::default()
    };
    match name {
        "circles" | "gaussian" | "subpop" => {
            let (tr, te, extra) = synthetic(name, cfg, seed)?;
            let ttr = to_table(&tr, &format!("<{name} train>"))?;
            let tte = to_table(&te, &format!("<{name} test>"))?;
            let o = LoadOptions {
                test_fraction: 0.0,
                ..opts
            };
            let data = load_tables(&ttr, Some(&tte), &o)?;
            let mut ex = Vec::new();
            for (c, b, d) in extra {
                let t = to_table(&d, &format!("<{name} {c} {b}>"))?;
                ex.push((c, b, data.schema.apply(&t)?));
            }
            let model = if name == "circles" {
                ModelKind::Mlp
            } else {
                ModelKind::Logistic
            };
            Ok(BenchData {
                data,
                model,
                extra: ex,
            })
        }
        _ => {
            let file = if name == "diabetes_cls" {
                "diabetes.csv"
            } else {
                &format!("{name}.csv")
            };
            let path = data_dir.join(file);
            let data = if name == "diabetes_cls" {
                // regression target binarised at its training median
                let mut t = RawTable::read(&path)?;
                let last = t.columns.len() - 1;
                let v: Vec<f64> = (0..t.n_rows())
                    .map(|i| t.cell(i, last).parse::<f64>().unwrap_or(f64::NAN))
                    .collect();
                let mut s = v.clone();
                s.sort_by(|a, b| a.total_cmp(b));
                let med = s[s.len() / 2];
                t.set_column(last, v.iter().map(|y| if *y > med { "1" } else { "0" }))?;
                load_tables(&t, None, &opts)?
            } else {
                load(&path, &opts)?
            };
            let model = match data.schema.n_classes() {
                Some(k) if k > 2 => ModelKind::Softmax,
                _ => ModelKind::Logistic,
            };
            Ok(BenchData {
                data,
                model,
                extra: vec![],
            })
        }
    }
}

/// Flip a fraction `rate` of the labels of `d` to another class (seeded).
pub fn flip_labels(d: &mut Dataset, n_classes: usize, rate: f64, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0f11_9ab3);
    for y in d.y.iter_mut() {
        if rng.random::<f64>() < rate {
            let k = n_classes.max(2);
            let off = 1 + rng.random_range(0..k - 1);
            *y = ((*y as usize + off) % k) as f64;
        }
    }
}

fn pgd_accuracy(
    m: &TrainedModel,
    d: &Dataset,
    norm: Norm,
    eps: f64,
    steps: usize,
) -> Result<(f64, f64)> {
    let a = Attack {
        steps,
        ..Attack::pgd(norm, eps)
    };
    let xa = attack(&m.model as &dyn PointLoss, &d.x, &d.y, &a)?;
    let r = metrics(&m.model, Some(&m.schema), &xa, &d.y)?;
    Ok((r.accuracy.unwrap_or(f64::NAN), r.loss))
}

/// Run one `rls` cell ([`super::rls::run_rls`]): one row per Delta, accuracy `NaN`.
fn run_rls_cell(cfg: &SuiteConfig, cell: &Cell) -> Result<Vec<Row>> {
    let t0 = Instant::now();
    let data = super::rls::RlsData::new(cfg.rls_n_train, cfg.rls_n_val, cfg.rls_n_test, cell.seed)?;
    let r = super::rls::run_rls(
        &cell.method,
        &data,
        &cfg.rls_deltas,
        cfg.inner_steps,
        cell.seed,
    )?;
    let dt = t0.elapsed().as_secs_f64();
    r.losses
        .iter()
        .map(|&(d, l)| {
            if !l.is_finite() {
                return Err(Error::Diverged {
                    step: 0,
                    detail: format!("{cell}: non-finite test loss {l} at Delta = {d}"),
                });
            }
            Ok(Row {
                dataset: cell.dataset.clone(),
                method: cell.method.clone(),
                condition: "xi_shift".into(),
                budget: fmt_budget(d),
                seed: cell.seed,
                accuracy: f64::NAN,
                loss: l,
                time_s: dt,
                chosen: r.chosen.clone(),
            })
        })
        .collect()
}

/// Run one cell: tune on the validation split, train, evaluate every condition.
pub fn run_cell(cfg: &SuiteConfig, cell: &Cell, data_dir: &Path) -> Result<Vec<Row>> {
    if !applies(&cell.dataset, &cell.method) {
        return Err(Error::param(
            "methods",
            &cell.method,
            &format!("not defined for the {} task", cell.dataset),
        ));
    }
    if cell.dataset == "rls" {
        return run_rls_cell(cfg, cell);
    }
    let t0 = Instant::now();
    let mut bd = bench_data(&cell.dataset, cfg, cell.seed, data_dir)?;
    let k = bd.data.schema.n_classes().unwrap_or(2);
    if let Some(r) = cell.noise {
        flip_labels(&mut bd.data.train, k, r, cell.seed);
        flip_labels(&mut bd.data.val, k, r, cell.seed.wrapping_add(7));
    }
    let params = TrainParams::default()
        .model(bd.model)
        .hidden(cfg.hidden.clone())
        .epochs(cfg.epochs)
        .lr(cfg.lr)
        .batch_size(cfg.batch_size)
        .seed(cell.seed)
        .quiet(true);
    let mid = cfg
        .l2_budgets
        .get(cfg.l2_budgets.len() / 2)
        .copied()
        .unwrap_or(0.5);
    let mut best: Option<(f64, String, TrainedModel)> = None;
    for (label, mut amb) in method_grid(&cell.method, cfg.inner_steps, cell.seed)? {
        if amb.set == SetKind::Mmd {
            amb.approx = cfg.approx;
        }
        let p = params.clone().ambiguity(amb).check()?;
        let m = Trainer::new(p).fit(&bd.data)?;
        let v = &bd.data.val;
        let clean = m.evaluate(v)?.accuracy.unwrap_or(0.0);
        let (adv, _) = pgd_accuracy(&m, v, Norm::L2, mid, cfg.attack_steps)?;
        let score = 0.5 * (clean + adv);
        if best.as_ref().is_none_or(|b| score > b.0) {
            best = Some((score, label, m));
        }
    }
    let (_, chosen, m) = best.ok_or_else(|| Error::param("methods", &cell.method, "empty grid"))?;
    let test = &bd.data.test;
    let mut res: Vec<(String, f64, f64, f64)> = Vec::new();
    let clean = m.evaluate(test)?;
    if let Some(r) = cell.noise {
        res.push((
            "label_noise".into(),
            r,
            clean.accuracy.unwrap_or(f64::NAN),
            clean.loss,
        ));
    } else {
        res.push((
            "clean".into(),
            0.0,
            clean.accuracy.unwrap_or(f64::NAN),
            clean.loss,
        ));
        for &e in &cfg.l2_budgets {
            let (a, l) = pgd_accuracy(&m, test, Norm::L2, e, cfg.attack_steps)?;
            res.push(("pgd_l2".into(), e, a, l));
        }
        for &e in &cfg.linf_budgets {
            let (a, l) = pgd_accuracy(&m, test, Norm::Linf, e, cfg.attack_steps)?;
            res.push(("pgd_linf".into(), e, a, l));
        }
        let gen_shift = bd.extra.iter().any(|e| e.0 == "covariate_shift");
        if !gen_shift {
            for &s in &cfg.shifts {
                let sh = Shift::parse(&format!("*+{s}"), &bd.data.schema.features)?;
                let mut x = test.x.clone();
                sh.apply(&mut x);
                let r = metrics(&m.model, Some(&m.schema), &x, &test.y)?;
                res.push((
                    "covariate_shift".into(),
                    s,
                    r.accuracy.unwrap_or(f64::NAN),
                    r.loss,
                ));
            }
        }
        for (c, b, d) in &bd.extra {
            let r = m.evaluate(d)?;
            res.push((c.clone(), *b, r.accuracy.unwrap_or(f64::NAN), r.loss));
        }
    }
    let dt = t0.elapsed().as_secs_f64();
    for (c, _, a, l) in &res {
        if !a.is_finite() || !l.is_finite() {
            return Err(Error::Diverged {
                step: 0,
                detail: format!("{cell}: non-finite accuracy {a} or loss {l} under {c}"),
            });
        }
    }
    Ok(res
        .into_iter()
        .map(|(condition, b, accuracy, loss)| Row {
            dataset: cell.dataset.clone(),
            method: cell.method.clone(),
            condition,
            budget: fmt_budget(b),
            seed: cell.seed,
            accuracy,
            loss,
            time_s: dt,
            chosen: chosen.clone(),
        })
        .collect())
}

/// Which cells of `cells` belong to shard `i` of `n` (cell index mod n).
pub fn shard_cells(cells: Vec<Cell>, shard: (usize, usize)) -> Vec<(usize, Cell)> {
    cells
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % shard.1 == shard.0)
        .collect()
}

/// Keys already present in a set of rows.
pub fn done_keys(rows: &[Row]) -> BTreeSet<(String, String, String, String, u64)> {
    rows.iter().map(Row::key).collect()
}
