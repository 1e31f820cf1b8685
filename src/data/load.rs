//! Loading: [`load`] reads a CSV (and an optional separate test file) and runs the
//! pipeline, each step in its own module: the header and the target column; the rows kept
//! (missing values, `impute`); the labels (`schema`); the train / validation / test split
//! (`split`); column typing, encoders and the scaler fitted on the training part
//! (`schema`); constant columns (an error, or dropped with `--drop-constant`); the
//! regression target's scale; then every part encoded with the fitted [`Schema`].

use super::impute::used_rows;
use super::schema::{
    check_header, col_label, declared_kinds, feature_names, fit_columns, fit_labels,
};
use super::split::split_positions;
use super::{Cell, ColumnEncoder, Impute, RawTable, Schema, Task, MAX_ENCODED_BYTES};
use crate::error::{Error, Result};
use crate::stats::population_mean_std as mean_std;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A dataset ready for a model: standardised features and encoded labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    /// Features, row-major `n x d`, standardised.
    pub x: Vec<f64>,
    /// Labels: class index as `f64`, or the standardised response.
    pub y: Vec<f64>,
    /// The input dimension.
    pub d: usize,
    /// The 1-based data row of each sample in its source file.
    pub rows: Vec<usize>,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }
    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
    /// The sub-dataset of the given sample indices.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let d = self.d;
        let mut x = Vec::with_capacity(idx.len() * d);
        for &i in idx {
            x.extend_from_slice(&self.x[i * d..(i + 1) * d]);
        }
        Dataset {
            x,
            y: idx.iter().map(|&i| self.y[i]).collect(),
            d,
            rows: idx.iter().map(|&i| self.rows[i]).collect(),
        }
    }
    /// Sample counts per class (labels rounded to class indices).
    pub fn class_counts(&self, k: usize) -> Vec<usize> {
        let mut c = vec![0; k];
        for &y in &self.y {
            let i = y as usize;
            if i < k {
                c[i] += 1;
            }
        }
        c
    }
}

/// How to load and split a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadOptions {
    /// The target column (None: the last column).
    pub target: Option<String>,
    /// Force the task (None: classification, unless the model says regression).
    pub task: Option<Task>,
    /// Missing-value handling (None: missing values are an error).
    pub impute: Option<Impute>,
    /// Drop columns that are constant on the training part (with a warning) instead of
    /// failing.
    pub drop_constant: bool,
    /// Fraction of the rows held out for testing (ignored with `test_file`).
    pub test_fraction: f64,
    /// Fraction of the training part held out for validation (early stopping); 0: none.
    pub val_fraction: f64,
    /// A separate test file (same columns).
    pub test_file: Option<PathBuf>,
    /// Seed of the splits.
    pub seed: u64,
    /// Feature columns declared categorical (one-hot encoded whatever their cells).
    #[serde(default)]
    pub categorical: Vec<String>,
    /// Feature columns declared numeric (a cell that is not a number is an error).
    #[serde(default)]
    pub numeric: Vec<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            target: None,
            task: None,
            impute: None,
            drop_constant: false,
            test_fraction: 0.25,
            val_fraction: 0.0,
            test_file: None,
            seed: 0,
            categorical: Vec::new(),
            numeric: Vec::new(),
        }
    }
}

/// A loaded dataset: its schema and the standardised train / validation / test parts.
#[derive(Debug, Clone)]
pub struct TabularData {
    /// The schema fitted on the training part.
    pub schema: Schema,
    /// The training part.
    pub train: Dataset,
    /// The validation part (empty when `val_fraction` is 0).
    pub val: Dataset,
    /// The test part.
    pub test: Dataset,
}

/// Load a CSV, fit the schema on a training split and encode every part.
pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<TabularData> {
    let table = RawTable::read(path)?;
    let test_table = match &opts.test_file {
        Some(p) => Some(RawTable::read(p)?),
        None => None,
    };
    load_tables(&table, test_table.as_ref(), opts)
}

/// [`load`] on tables already read.
pub fn load_tables(
    table: &RawTable,
    test_table: Option<&RawTable>,
    opts: &LoadOptions,
) -> Result<TabularData> {
    if !(0.0..1.0).contains(&opts.test_fraction) {
        return Err(Error::param(
            "test-fraction",
            opts.test_fraction,
            "must be in [0, 1)",
        ));
    }
    if !(0.0..1.0).contains(&opts.val_fraction) {
        return Err(Error::param(
            "val-fraction",
            opts.val_fraction,
            "must be in [0, 1)",
        ));
    }
    let path = &table.path;
    let derr = |row: Option<usize>, col: Option<String>, msg: String| Error::Data {
        path: path.clone(),
        row,
        col,
        msg,
    };
    check_header(table)?;
    if let Some(t) = test_table {
        check_header(t)?;
    }
    let target = opts
        .target
        .clone()
        .unwrap_or_else(|| table.columns.last().cloned().unwrap_or_default());
    let tcol = table.col_index(&target).ok_or_else(|| {
        derr(
            Some(0),
            Some(target.clone()),
            format!(
                "target column {target:?} not found in the header (columns: {})",
                table.columns.join(",")
            ),
        )
    })?;
    if table.columns.len() < 2 {
        return Err(derr(
            Some(0),
            None,
            "need at least one feature column besides the target".into(),
        ));
    }
    let task = opts.task.unwrap_or(Task::Classification);
    let feat_cols: Vec<usize> = (0..table.columns.len()).filter(|&j| j != tcol).collect();
    let declared = declared_kinds(table, tcol, opts)?;

    // Missing values: the rows kept (module `impute`).
    let used = used_rows(table, tcol, opts.impute)?;

    // Labels (module `schema`).
    let tlabel = col_label(table, tcol);
    let (classes, labels_cls) = fit_labels(table, tcol, task, &used)?;

    // Split (positions within `used`; module `split`).
    let strat = (task == Task::Classification).then_some(labels_cls.as_slice());
    let (train_pos, val_pos, test_pos) =
        split_positions(strat, used.len(), test_table.is_none(), opts);
    if train_pos.is_empty() {
        return Err(derr(None, None, "the training part is empty".into()));
    }
    if let Some(l) = strat {
        let present: BTreeSet<usize> = train_pos.iter().map(|&p| l[p]).collect();
        if present.len() < 2 {
            return Err(derr(
                None,
                Some(tlabel),
                "the training part has one class only".into(),
            ));
        }
    }
    drop(labels_cls);
    let train_rows: Vec<usize> = train_pos.iter().map(|&p| used[p]).collect();
    drop(train_pos);

    // Column types and encoders fitted on the training rows, with the mean and standard
    // deviation of every encoded feature (module `schema`).
    let (mut columns, mut stats) = fit_columns(
        table,
        &feat_cols,
        &declared,
        &used,
        &train_rows,
        opts.impute,
    )?;
    // Constant features: a numeric column, or a one-hot column all of whose indicators are
    // constant, cannot be standardised; the indicator of a category absent from the
    // training part is kept unscaled (std 1).
    let is_const = |m: f64, s: f64| s <= 1e-12 * m.abs().max(1.0);
    let bad_cols: Vec<usize> = (0..columns.len())
        .filter(|&c| {
            let (m, s) = &stats[c];
            m.iter().zip(s).all(|(&m, &s)| is_const(m, s))
        })
        .collect();
    let mut dropped = Vec::new();
    if !bad_cols.is_empty() {
        let names: Vec<String> = bad_cols.iter().map(|&c| columns[c].name.clone()).collect();
        if !opts.drop_constant {
            let j0 = table.col_index(&names[0]).unwrap_or(0);
            return Err(derr(
                None,
                Some(format!("{} ({})", j0 + 1, names[0])),
                format!(
                    "constant column(s) on the training part: {}; they cannot be standardised (remove them or pass --drop-constant)",
                    names.join(",")
                ),
            ));
        }
        eprintln!(
            "warning: {}: dropping constant column(s) {}",
            path.display(),
            names.join(",")
        );
        dropped = names;
        let mut c = 0;
        columns.retain(|_| {
            let keep = !bad_cols.contains(&c);
            c += 1;
            keep
        });
        let mut c = 0;
        stats.retain(|_| {
            let keep = !bad_cols.contains(&c);
            c += 1;
            keep
        });
        if columns.is_empty() {
            return Err(derr(None, None, "every feature column is constant".into()));
        }
    }
    let features = feature_names(&columns);
    let d = features.len();
    if used.len().saturating_mul(d).saturating_mul(8) > MAX_ENCODED_BYTES {
        let widest = columns
            .iter()
            .max_by_key(|c| match &c.encoder {
                ColumnEncoder::OneHot { categories, .. } => categories.len(),
                _ => 1,
            })
            .map(|c| c.name.clone())
            .unwrap_or_default();
        return Err(derr(
            None,
            Some(widest),
            format!(
                "{} rows x {d} encoded features exceed the loader's budget of {} GiB; the widest column is one-hot encoded (is it an identifier? drop it, or declare it --numeric)",
                used.len(),
                MAX_ENCODED_BYTES >> 30
            ),
        ));
    }
    let mut mean = Vec::with_capacity(d);
    let mut std = Vec::with_capacity(d);
    for (m, s) in stats {
        for (m, s) in m.into_iter().zip(s) {
            std.push(if is_const(m, s) { 1.0 } else { s });
            mean.push(m);
        }
    }
    let mut schema = Schema {
        target: target.clone(),
        task,
        columns,
        dropped,
        features,
        mean,
        std,
        classes,
        target_scale: None,
        impute: opts.impute,
    };
    // Target scaling for a regression.
    if task == Task::Regression {
        let ys: Vec<f64> = train_rows
            .iter()
            .map(|&i| match table.get(i, tcol) {
                Cell::Number(v) => v,
                _ => 0.0,
            })
            .collect();
        let n = ys.len() as f64;
        let mut m = ys.iter().sum::<f64>() / n;
        let mut s = (ys.iter().map(|y| (y - m).powi(2)).sum::<f64>() / n).sqrt();
        if !(m.is_finite() && s.is_finite()) {
            (m, s) = mean_std(&ys);
        }
        if s <= 0.0 {
            return Err(derr(
                None,
                Some(tlabel),
                "the regression target is constant on the training part".into(),
            ));
        }
        schema.target_scale = Some((m, s));
    }
    let to_rows = |pos: &[usize]| pos.iter().map(|&p| used[p]).collect::<Vec<_>>();
    let train = schema.encode_rows(table, &train_rows)?;
    drop(train_rows);
    let val = schema.encode_rows(table, &to_rows(&val_pos))?;
    let test = match test_table {
        Some(t) => schema.apply(t)?,
        None => schema.encode_rows(table, &to_rows(&test_pos))?,
    };
    Ok(TabularData {
        schema,
        train,
        val,
        test,
    })
}
