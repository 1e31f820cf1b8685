//! Selection of one hyper-parameter (the radius or the penalty of the ambiguity set) on
//! held-out parts of the training data, then a refit (`robustflow train --radius
//! 0.01,0.1,1 --select cv:5`).
//!
//! For candidate values `v_1 .. v_m` and held-out parts `F_1 .. F_K` of the training part
//! `T` (the test part is never used), each candidate is fitted on `T \ F_k` and scored on
//! `F_k`:
//!
//! `C(v, k) = criterion(model fitted on T \ F_k with value v, F_k)`,
//! `mean(v) = (1/K) sum_k C(v, k)`,
//! `std(v) = sqrt(sum_k (C(v, k) - mean(v))^2 / (K - 1))` (0 when `K = 1`),
//!
//! and the chosen value is `argmin_v mean(v)` for the validation **loss** (mean per-row
//! loss of the model, the quantity ERM minimises) or `argmax_v mean(v)` for the
//! **accuracy under a PGD attack** of a stated norm and budget (the attack of `robustflow
//! eval`, [`crate::data::attack()`], against each fitted model); ties go to the first
//! value in the order given. The model is then refitted with the chosen value on all of
//! `T`: the refit is the model `train` gives for that single value (same data, same seed).
//!
//! Held-out parts ([`Method`]):
//! - `val`: one part, a stratified seeded fraction of `T` (the split `--val-fraction`
//!   makes: [`stratified_split`] with seed `seed + 1`), `K = 1`;
//! - `cv:K`: stratified K-fold ([`kfold`]): per class, the rows are shuffled (seeded) and
//!   dealt to the folds in turn, continuing across classes, so every fold holds
//!   `floor(n_c / K)` or `ceil(n_c / K)` rows of each class `c` and the fold sizes differ
//!   by at most one (for a regression, one group).
//!
//! Every fit shares the training part's standardisation (the schema fitted on `T`), so a
//! radius in standardised units is the same set in every fold and in the refit; the
//! held-out rows contribute to those feature means and standard deviations, never their
//! labels.

use crate::data::{stratified_split, Attack, Dataset, Norm, TabularData};
use crate::error::{Error, Result};
use crate::train::{metrics, TrainedModel, Trainer, ValidParams};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A comma-separated list of candidate values (`0.01,0.1,1`); one value is a plain number.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueList(pub Vec<f64>);

impl ValueList {
    /// The first value (the only one unless selecting).
    pub fn first(&self) -> f64 {
        self.0[0]
    }
    /// The number of values.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Never true for a parsed list (at least one value).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::str::FromStr for ValueList {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let mut v: Vec<f64> = Vec::new();
        for t in s.split(',').map(str::trim) {
            let x: f64 = t.parse().map_err(|_| {
                format!("{t:?} is not a number (give a number or a comma-separated list, e.g. 0.01,0.1,1)")
            })?;
            if v.contains(&x) {
                return Err(format!("{t} is listed twice"));
            }
            v.push(x);
        }
        Ok(ValueList(v))
    }
}

/// How the held-out parts are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// One stratified seeded validation part of the training part (`--val-fraction`).
    Val,
    /// Stratified K-fold cross-validation on the training part.
    Cv(usize),
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        if t == "val" {
            return Ok(Method::Val);
        }
        if let Some(k) = t.strip_prefix("cv:") {
            return match k.trim().parse::<usize>() {
                Ok(k) if k >= 2 => Ok(Method::Cv(k)),
                _ => Err(Error::param(
                    "select",
                    s,
                    "cv:K needs an integer K >= 2 folds, e.g. cv:5",
                )),
            };
        }
        Err(Error::param(
            "select",
            s,
            "expected val (on --val-fraction) or cv:K (stratified K-fold)",
        ))
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::Val => write!(f, "val"),
            Method::Cv(k) => write!(f, "cv:{k}"),
        }
    }
}

/// What the held-out parts score.
#[derive(Debug, Clone, PartialEq)]
pub enum Criterion {
    /// Mean per-row loss on the held-out part (lower is better).
    Loss,
    /// Accuracy under this attack on the held-out part (higher is better; classifiers).
    Attack(Attack),
}

impl std::str::FromStr for Criterion {
    type Err = Error;
    /// `loss`, or `attack:NORM:EPS` (PGD, 20 steps, as `eval --attack pgd`) with NORM `l2`
    /// or `linf` and EPS in standardised units, optionally `attack:NORM:EPS:STEPS`.
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        if t == "loss" {
            return Ok(Criterion::Loss);
        }
        let bad = || {
            Error::param(
                "select-by",
                s,
                "expected loss or attack:NORM:EPS[:STEPS] (PGD accuracy, NORM l2 or linf, EPS in standardised units), e.g. attack:l2:0.5",
            )
        };
        let parts: Vec<&str> = t.split(':').map(str::trim).collect();
        if parts.len() < 3 || parts.len() > 4 || parts[0] != "attack" {
            return Err(bad());
        }
        let norm: Norm = parts[1].parse().map_err(|_| bad())?;
        let eps: f64 = parts[2].parse().map_err(|_| bad())?;
        if !(eps.is_finite() && eps > 0.0 && (2.5 * eps).is_finite()) {
            return Err(Error::param(
                "select-by",
                s,
                "the attack budget must be a finite number > 0",
            ));
        }
        let mut a = Attack::pgd(norm, eps);
        if let Some(st) = parts.get(3) {
            a.steps = st
                .parse::<usize>()
                .ok()
                .filter(|&k| k >= 1)
                .ok_or_else(bad)?;
        }
        Ok(Criterion::Attack(a))
    }
}

impl Criterion {
    /// The name written in the table (`loss`, `attack:l2:0.5:20`).
    pub fn name(&self) -> String {
        match self {
            Criterion::Loss => "loss".into(),
            Criterion::Attack(a) => format!(
                "attack:{}:{}:{}",
                match a.norm {
                    Norm::L2 => "l2",
                    Norm::Linf => "linf",
                },
                a.eps,
                a.steps
            ),
        }
    }

    /// A sentence for the printed table.
    pub fn describe(&self) -> String {
        match self {
            Criterion::Loss => "mean held-out loss (lower is better)".into(),
            Criterion::Attack(a) => format!(
                "held-out accuracy under PGD-{} eps={} ({} steps, standardised units; higher is better)",
                match a.norm {
                    Norm::L2 => "L2",
                    Norm::Linf => "Linf",
                },
                a.eps,
                a.steps
            ),
        }
    }

    /// Whether a lower value is better.
    pub fn lower_is_better(&self) -> bool {
        matches!(self, Criterion::Loss)
    }

    /// The criterion of `model` on the held-out part `held`.
    pub fn score(&self, model: &TrainedModel, held: &Dataset) -> Result<f64> {
        let m = &model.model;
        let v = match self {
            Criterion::Loss => metrics(m, Some(&model.schema), &held.x, &held.y)?.loss,
            Criterion::Attack(a) => {
                let xa = crate::data::attack(m as &dyn crate::dro::PointLoss, &held.x, &held.y, a)?;
                metrics(m, Some(&model.schema), &xa, &held.y)?
                    .accuracy
                    .ok_or_else(|| {
                        Error::param("select-by", self.name(), "accuracy needs a classifier")
                    })?
            }
        };
        if v.is_finite() {
            Ok(v)
        } else {
            Err(Error::Other(format!(
                "the selection criterion {} is {v} on a held-out part",
                self.name()
            )))
        }
    }
}

/// Seeded stratified K-fold of `0..n`: the held-out index set of each fold, sorted (see
/// the module documentation). `labels = None` for one group (regression).
pub fn kfold(labels: Option<&[usize]>, n: usize, k: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        groups
            .entry(labels.map(|l| l[i]).unwrap_or(0))
            .or_default()
            .push(i);
    }
    let k = k.max(1);
    let mut folds = vec![Vec::new(); k];
    let mut next = 0usize;
    for (_, mut g) in groups {
        g.shuffle(&mut rng);
        for i in g {
            folds[next % k].push(i);
            next += 1;
        }
    }
    for f in &mut folds {
        f.sort_unstable();
    }
    folds
}

/// One held-out part of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldInfo {
    /// Rows fitted on.
    pub n_fit: usize,
    /// Rows held out.
    pub n_held_out: usize,
    /// Held-out rows per class, in the model's class order (classification).
    pub class_counts: Option<Vec<usize>>,
    /// The held-out rows: 1-based data rows of the training file.
    pub rows: Vec<usize>,
}

/// One candidate value of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateScore {
    /// The value (of `--radius` or `--penalty`).
    pub value: f64,
    /// Mean of the criterion over the held-out parts.
    pub mean: f64,
    /// Standard deviation over the held-out parts (`K - 1` denominator; 0 for one part).
    pub std: f64,
    /// The criterion on each held-out part, in fold order.
    pub folds: Vec<f64>,
    /// Warnings of the fits on the held-out parts (e.g. separable data), with the part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The selection table (`report.json` key `selection`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionTable {
    /// The selected flag: `radius` or `penalty`.
    pub parameter: String,
    /// `val` or `cv:K`.
    pub method: String,
    /// `loss` or `attack:NORM:EPS:STEPS`.
    pub criterion: String,
    /// `lower` or `higher` (which criterion values are better).
    pub better: String,
    /// The seed of the held-out parts.
    pub seed: u64,
    /// Rows of the training part (fitted on by the refit).
    pub n_train: usize,
    /// The held-out parts.
    pub folds: Vec<FoldInfo>,
    /// Every candidate, in the order given.
    pub candidates: Vec<CandidateScore>,
    /// The chosen value.
    pub chosen: f64,
    /// Its index in `candidates`.
    pub chosen_index: usize,
}

/// How to select: the held-out parts, the criterion and the seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    /// `val` or `cv:K`.
    pub method: Method,
    /// The validation fraction of [`Method::Val`].
    pub val_fraction: f64,
    /// The criterion.
    pub criterion: Criterion,
    /// Seed of the held-out parts.
    pub seed: u64,
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

/// The index of the best mean (first one on ties).
pub fn best_index(candidates: &[CandidateScore], lower_is_better: bool) -> usize {
    let mut best = 0;
    for (i, c) in candidates.iter().enumerate().skip(1) {
        let b = candidates[best].mean;
        if (lower_is_better && c.mean < b) || (!lower_is_better && c.mean > b) {
            best = i;
        }
    }
    best
}

impl Selector {
    /// The held-out index sets of `train` (indices into it), checked non-empty on both
    /// sides.
    pub fn held_out(&self, train: &Dataset, n_classes: Option<usize>) -> Result<Vec<Vec<usize>>> {
        let n = train.len();
        let labels: Option<Vec<usize>> =
            n_classes.map(|_| train.y.iter().map(|&y| y as usize).collect());
        let parts = match self.method {
            Method::Val => {
                if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
                    return Err(Error::param(
                        "val-fraction",
                        self.val_fraction,
                        "--select val scores the candidates on this fraction of the training part: give --val-fraction in (0, 1), e.g. 0.2 (or use --select cv:K)",
                    ));
                }
                vec![
                    stratified_split(
                        labels.as_deref(),
                        n,
                        self.val_fraction,
                        self.seed.wrapping_add(1),
                    )
                    .1,
                ]
            }
            Method::Cv(k) => {
                if k > n {
                    return Err(Error::param(
                        "select",
                        self.method,
                        &format!("more folds than the {n} training rows"),
                    ));
                }
                kfold(labels.as_deref(), n, k, self.seed)
            }
        };
        for p in &parts {
            if p.is_empty() || p.len() == n {
                return Err(Error::param(
                    "select",
                    self.method,
                    &format!(
                        "a held-out part of {} of the {n} training rows leaves nothing to {}",
                        p.len(),
                        if p.is_empty() { "score" } else { "fit" }
                    ),
                ));
            }
        }
        Ok(parts)
    }

    /// Score every candidate `(value, params)` on the held-out parts of `data.train`
    /// (`parameter` names the flag in the table) and choose one; nothing is refitted
    /// here (see [`Selector::select_and_refit`]). Each candidate's parameters are used as
    /// given (set `quiet` to hide the progress bars of the fold fits).
    pub fn score(
        &self,
        data: &TabularData,
        parameter: &str,
        candidates: &[(f64, ValidParams)],
    ) -> Result<SelectionTable> {
        if candidates.is_empty() {
            return Err(Error::param(parameter, "", "no candidate values"));
        }
        let n_classes = data.schema.n_classes();
        if matches!(self.criterion, Criterion::Attack(_)) && n_classes.is_none() {
            return Err(Error::param(
                "select-by",
                self.criterion.name(),
                "accuracy under attack needs a classifier; use --select-by loss for a regression",
            ));
        }
        let train = &data.train;
        let parts = self.held_out(train, n_classes)?;
        let empty = Dataset {
            d: train.d,
            ..Dataset::default()
        };
        let mut folds = Vec::with_capacity(parts.len());
        let mut splits = Vec::with_capacity(parts.len());
        for held in &parts {
            let mut in_held = vec![false; train.len()];
            for &i in held {
                in_held[i] = true;
            }
            let fit: Vec<usize> = (0..train.len()).filter(|&i| !in_held[i]).collect();
            let held_data = train.subset(held);
            folds.push(FoldInfo {
                n_fit: fit.len(),
                n_held_out: held.len(),
                class_counts: n_classes.map(|k| held_data.class_counts(k)),
                rows: held_data.rows.clone(),
            });
            let part = TabularData {
                schema: data.schema.clone(),
                train: train.subset(&fit),
                val: empty.clone(),
                test: empty.clone(),
            };
            splits.push((part, held_data));
        }
        let mut scores = Vec::with_capacity(candidates.len());
        for (value, params) in candidates {
            let trainer = Trainer::new(params.clone());
            let mut per_fold = Vec::with_capacity(splits.len());
            let mut warnings = Vec::new();
            for (k, (part, held)) in splits.iter().enumerate() {
                let ctx = |e: Error| {
                    Error::Other(format!(
                        "selection, --{parameter} {value}, held-out part {} of {}: {e}",
                        k + 1,
                        splits.len()
                    ))
                };
                let model = trainer.fit(part).map_err(ctx)?;
                warnings.extend(
                    model
                        .report
                        .warnings
                        .iter()
                        .map(|w| format!("held-out part {}: {w}", k + 1)),
                );
                per_fold.push(self.criterion.score(&model, held).map_err(ctx)?);
            }
            let (mean, std) = mean_std(&per_fold);
            scores.push(CandidateScore {
                value: *value,
                mean,
                std,
                folds: per_fold,
                warnings,
            });
        }
        let lower = self.criterion.lower_is_better();
        let chosen_index = best_index(&scores, lower);
        Ok(SelectionTable {
            parameter: parameter.to_string(),
            method: self.method.to_string(),
            criterion: self.criterion.name(),
            better: if lower { "lower" } else { "higher" }.into(),
            seed: self.seed,
            n_train: train.len(),
            folds,
            chosen: scores[chosen_index].value,
            chosen_index,
            candidates: scores,
        })
    }

    /// [`Selector::score`], then the refit of the chosen candidate on all of
    /// `data.train` (validation and test parts as in `data`).
    pub fn select_and_refit(
        &self,
        data: &TabularData,
        parameter: &str,
        candidates: &[(f64, ValidParams)],
    ) -> Result<(SelectionTable, TrainedModel)> {
        let table = self.score(data, parameter, candidates)?;
        let model = Trainer::new(candidates[table.chosen_index].1.clone()).fit(data)?;
        Ok((table, model))
    }
}

impl SelectionTable {
    /// The table as text (one line per candidate, the chosen one marked `*`).
    pub fn render(&self, criterion_description: &str) -> String {
        let parts = if self.method == "val" {
            "one validation part".to_string()
        } else {
            format!("{} stratified folds", self.folds.len())
        };
        let mut s = format!(
            "selection of --{} on {} training rows, {parts} (--select {}, seed {}); criterion: {criterion_description}\n",
            self.parameter, self.n_train, self.method, self.seed
        );
        s.push_str(&format!(
            "  {:>12} {:>12} {:>12}  per part\n",
            self.parameter, "mean", "std"
        ));
        for (i, c) in self.candidates.iter().enumerate() {
            let per: Vec<String> = c.folds.iter().map(|v| format!("{v:.4}")).collect();
            s.push_str(&format!(
                "{} {:>12} {:>12.6} {:>12.6}  {}\n",
                if i == self.chosen_index { "*" } else { " " },
                c.value,
                c.mean,
                c.std,
                per.join(" ")
            ));
        }
        s.push_str(&format!(
            "chose --{} {} ({} {} mean); refit on all {} training rows\n",
            self.parameter, self.chosen, self.better, self.criterion, self.n_train
        ));
        s
    }

    /// Save `model` to `dir` as [`TrainedModel::save`] does, with this table under the key
    /// `selection` of `report.json` (the directory is written as a unit).
    pub fn save_with_model(
        &self,
        model: &TrainedModel,
        dir: impl AsRef<std::path::Path>,
    ) -> Result<()> {
        let meta = crate::model::ModelFile::new(
            model.model.arch.clone(),
            Some(model.schema.clone()),
            serde_json::to_value(&model.params)?,
        );
        #[derive(Serialize)]
        struct WithSelection<'a> {
            #[serde(flatten)]
            report: &'a crate::train::TrainReport,
            selection: &'a SelectionTable,
        }
        let mut text = serde_json::to_string_pretty(&WithSelection {
            report: &model.report,
            selection: self,
        })?;
        text.push('\n');
        model
            .model
            .save_with(dir, &meta, &[("report.json", text.into_bytes())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kfold_is_a_stratified_partition() {
        let labels: Vec<usize> = (0..103).map(|i| if i % 7 < 2 { 1 } else { 0 }).collect();
        let folds = kfold(Some(&labels), labels.len(), 5, 9);
        let mut seen = vec![0; labels.len()];
        for f in &folds {
            for &i in f {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "a partition");
        for c in 0..2 {
            let n_c = labels.iter().filter(|&&l| l == c).count();
            for f in &folds {
                let k = f.iter().filter(|&&i| labels[i] == c).count();
                assert!(
                    k == n_c / 5 || k == n_c.div_ceil(5),
                    "class {c}: {k} of {n_c}"
                );
            }
        }
        let sizes: Vec<usize> = folds.iter().map(Vec::len).collect();
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        assert_eq!(folds, kfold(Some(&labels), labels.len(), 5, 9));
        assert_ne!(folds, kfold(Some(&labels), labels.len(), 5, 10));
    }

    #[test]
    fn parsing() {
        assert_eq!("0.1, 1".parse::<ValueList>().unwrap().0, vec![0.1, 1.0]);
        assert!("0.1,0.1".parse::<ValueList>().is_err());
        assert!("0.1,x".parse::<ValueList>().is_err());
        assert_eq!("cv:3".parse::<Method>().unwrap(), Method::Cv(3));
        assert!("cv:1".parse::<Method>().is_err());
        assert_eq!("val".parse::<Method>().unwrap(), Method::Val);
        assert_eq!("loss".parse::<Criterion>().unwrap(), Criterion::Loss);
        let c: Criterion = "attack:linf:0.2".parse().unwrap();
        assert_eq!(c.name(), "attack:linf:0.2:20");
        assert!("attack:l3:0.2".parse::<Criterion>().is_err());
        assert!("attack:l2:0".parse::<Criterion>().is_err());
    }

    #[test]
    fn best_index_follows_the_direction_and_ties_go_first() {
        let c = |m: f64| CandidateScore {
            value: m,
            mean: m,
            std: 0.0,
            folds: vec![m],
            warnings: Vec::new(),
        };
        let v = vec![c(0.3), c(0.1), c(0.1), c(0.5)];
        assert_eq!(best_index(&v, true), 1);
        assert_eq!(best_index(&v, false), 3);
        let t = vec![c(0.2), c(0.2)];
        assert_eq!(best_index(&t, false), 0);
    }
}
