//! Tabular data: CSV loading with a schema, encoders, standardisation, splits, shifts and
//! white-box adversarial attacks.
//!
//! A CSV file with a header is read as text ([`RawTable`]); the target column is chosen by
//! name (default: the last column). Feature columns whose every cell parses as a number are
//! numeric; any other feature column is one-hot encoded (one indicator per category, in
//! sorted order). Labels of a classification (strings or integers) are mapped to class
//! indices `0..k` in sorted order (integers numerically). A regression target is
//! standardised as well (the models see `(y - mean) / std`; predictions are mapped back).
//!
//! Every encoded feature column is z-scored, `x' = (x - m_j) / s_j`, with `m_j`, `s_j`
//! fitted on the **training part only** (the test and validation parts keep whatever mean
//! they have). A feature column that is constant on the training part is an **error** (it
//! cannot be standardised), unless [`LoadOptions::drop_constant`] is set, in which case it
//! is dropped with a warning on stderr.
//!
//! Missing values (empty cell, `NA`, `NaN`, `null`, case-insensitive) are an error that
//! lists the first affected rows and columns, unless [`Impute::Mean`] (numeric columns get
//! the training mean, categorical ones the most frequent category) or [`Impute::Drop`]
//! (rows with a missing cell are dropped) is chosen. A missing label always drops the row
//! under `--impute`, and is an error otherwise.
//!
//! Everything needed to encode new data the same way is kept in a serialisable
//! [`Schema`], saved with a model and reapplied at prediction time ([`Schema::apply`]):
//! a missing or renamed column or an unknown category is an [`Error::Data`] naming the
//! file, row and column.
//!
//! Covariate shift ([`Shift`]) and attacks ([`attack`]) act on the **standardised**
//! features: a budget `eps = 1` is one training standard deviation per coordinate (Linf) or
//! a unit step in the whitened space (L2).

pub mod attack;
pub(crate) mod reader;

pub use attack::{attack, Attack, AttackKind, Norm};

use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The kind of learning problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Labels are classes.
    Classification,
    /// Labels are real responses.
    Regression,
}

impl std::str::FromStr for Task {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "classification" | "classify" | "class" => Ok(Task::Classification),
            "regression" | "regress" => Ok(Task::Regression),
            _ => Err(Error::param(
                "task",
                s,
                "expected classification or regression",
            )),
        }
    }
}

/// What to do with missing values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Impute {
    /// Numeric cells get the training mean, categorical cells the most frequent category.
    Mean,
    /// Rows with a missing cell are dropped.
    Drop,
}

impl std::str::FromStr for Impute {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mean" => Ok(Impute::Mean),
            "drop" => Ok(Impute::Drop),
            _ => Err(Error::param("impute", s, "expected mean or drop")),
        }
    }
}

/// True for the cell spellings treated as missing: empty, `NA`, `NaN`, `null`, `?`.
pub fn is_missing(cell: &str) -> bool {
    let c = cell.trim();
    c.is_empty()
        || c.eq_ignore_ascii_case("na")
        || c.eq_ignore_ascii_case("nan")
        || c.eq_ignore_ascii_case("null")
        || c == "?"
}

/// A CSV file read as text: the header and the data rows (blank lines skipped).
#[derive(Debug, Clone)]
pub struct RawTable {
    /// The file it came from (for error messages).
    pub path: PathBuf,
    /// Column names from the header.
    pub columns: Vec<String>,
    /// Data rows, each with one cell per column (trimmed).
    pub rows: Vec<Vec<String>>,
}

impl RawTable {
    /// Read a CSV file with a header row. Ragged rows are an error naming the row.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(path, &text)
    }

    /// Parse CSV text (the `path` is only used in error messages).
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let err = |row: Option<usize>, col: Option<String>, msg: String| Error::Data {
            path: path.to_path_buf(),
            row,
            col,
            msg,
        };
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let columns: Vec<String> = rdr
            .headers()
            .map_err(|e| err(None, None, format!("cannot read the header: {e}")))?
            .iter()
            .map(|s| s.to_string())
            .collect();
        if columns.is_empty() || columns.iter().all(|c| c.is_empty()) {
            return Err(err(None, None, "no header row: the file is empty".into()));
        }
        let mut seen = BTreeSet::new();
        for (j, c) in columns.iter().enumerate() {
            if !seen.insert(c.clone()) {
                return Err(err(
                    Some(0),
                    Some(format!("{} ({c})", j + 1)),
                    "duplicate column name in the header".into(),
                ));
            }
        }
        let mut rows = Vec::new();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| err(None, None, format!("{e}")))?;
            if rec.iter().all(|c| c.is_empty()) {
                continue;
            }
            let row = rows.len() + 1;
            if rec.len() != columns.len() {
                return Err(err(
                    Some(row),
                    None,
                    format!(
                        "ragged row: {} fields, expected {} ({})",
                        rec.len(),
                        columns.len(),
                        columns.join(",")
                    ),
                ));
            }
            rows.push(rec.iter().map(|s| s.to_string()).collect());
        }
        if rows.is_empty() {
            return Err(err(
                None,
                None,
                format!("header ({}) but no data rows", columns.join(",")),
            ));
        }
        Ok(RawTable {
            path: path.to_path_buf(),
            columns,
            rows,
        })
    }

    fn col_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// How one input column is encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ColumnEncoder {
    /// A numeric column, used as is (then standardised).
    Numeric {
        /// The value imputed for a missing cell (the training mean), when imputing.
        fill: Option<f64>,
    },
    /// A categorical column, one-hot encoded: one indicator per category, in this order.
    OneHot {
        /// The categories seen in training.
        categories: Vec<String>,
        /// The category imputed for a missing cell (the most frequent), when imputing.
        fill: Option<String>,
    },
}

/// One input column of the schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSpec {
    /// The column name in the CSV header.
    pub name: String,
    /// Its encoder.
    pub encoder: ColumnEncoder,
}

/// Everything needed to turn a CSV into model inputs the way the training data was: the
/// columns, encoders, the z-score scaler and the label map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// The target column name.
    pub target: String,
    /// Classification or regression.
    pub task: Task,
    /// Input columns in order (the target and dropped columns excluded).
    pub columns: Vec<ColumnSpec>,
    /// Columns that were dropped (constant on the training part).
    pub dropped: Vec<String>,
    /// Names of the encoded features (`col` or `col=category`), the model's inputs.
    pub features: Vec<String>,
    /// Training means of the encoded features.
    pub mean: Vec<f64>,
    /// Training standard deviations of the encoded features.
    pub std: Vec<f64>,
    /// Class names, index = class (classification; empty for a regression).
    pub classes: Vec<String>,
    /// Regression: the training mean and standard deviation of the target.
    pub target_scale: Option<(f64, f64)>,
    /// The imputation rule used in training (None: missing values are an error).
    pub impute: Option<Impute>,
}

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

/// Seeded stratified split of `0..n`: per class (or per whole set for a regression,
/// `labels = None`), a shuffled `round(frac * n_c)` indices go to the second part. Returns
/// `(first, second)`, each sorted.
pub fn stratified_split(
    labels: Option<&[usize]>,
    n: usize,
    frac: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let g = labels.map(|l| l[i]).unwrap_or(0);
        groups.entry(g).or_default().push(i);
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (_, mut g) in groups {
        g.shuffle(&mut rng);
        let k = ((g.len() as f64) * frac).round() as usize;
        let k = k.min(g.len());
        b.extend_from_slice(&g[..k]);
        a.extend_from_slice(&g[k..]);
    }
    a.sort_unstable();
    b.sort_unstable();
    (a, b)
}

fn parse_class_order(values: &BTreeSet<String>) -> Vec<String> {
    let ints: Option<Vec<(i64, String)>> = values
        .iter()
        .map(|v| v.parse::<i64>().ok().map(|i| (i, v.clone())))
        .collect();
    match ints {
        Some(mut v) => {
            v.sort();
            v.into_iter().map(|(_, s)| s).collect()
        }
        None => values.iter().cloned().collect(),
    }
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

    // Missing values.
    let mut missing: Vec<(usize, usize)> = Vec::new();
    for (i, r) in table.rows.iter().enumerate() {
        for (j, c) in r.iter().enumerate() {
            if is_missing(c) {
                missing.push((i, j));
            }
        }
    }
    let mut keep_row = vec![true; table.rows.len()];
    if !missing.is_empty() {
        match opts.impute {
            None => {
                let list: Vec<String> = missing
                    .iter()
                    .take(5)
                    .map(|&(i, j)| format!("row {} column {} ({})", i + 1, j + 1, table.columns[j]))
                    .collect();
                let (i0, j0) = missing[0];
                return Err(derr(
                    Some(i0 + 1),
                    Some(format!("{} ({})", j0 + 1, table.columns[j0])),
                    format!(
                        "{} missing value(s) (empty, NA or NaN), first at: {}; use --impute mean|drop",
                        missing.len(),
                        list.join("; ")
                    ),
                ));
            }
            Some(Impute::Drop) => {
                for &(i, _) in &missing {
                    keep_row[i] = false;
                }
            }
            Some(Impute::Mean) => {
                for &(i, j) in &missing {
                    if j == tcol {
                        keep_row[i] = false;
                    }
                }
            }
        }
    }
    let used: Vec<usize> = (0..table.rows.len()).filter(|&i| keep_row[i]).collect();
    if used.is_empty() {
        return Err(derr(
            None,
            None,
            "no rows left after dropping missing values".into(),
        ));
    }

    // Labels.
    let (classes, labels_cls): (Vec<String>, Vec<usize>) = match task {
        Task::Classification => {
            let vals: BTreeSet<String> =
                used.iter().map(|&i| table.rows[i][tcol].clone()).collect();
            let classes = parse_class_order(&vals);
            if classes.len() < 2 {
                return Err(derr(
                    None,
                    Some(format!("{} ({target})", tcol + 1)),
                    format!(
                        "the target has one class only ({:?}); a classifier needs at least two",
                        classes.first().cloned().unwrap_or_default()
                    ),
                ));
            }
            let map: BTreeMap<&str, usize> = classes
                .iter()
                .enumerate()
                .map(|(k, c)| (c.as_str(), k))
                .collect();
            let l = used
                .iter()
                .map(|&i| map[table.rows[i][tcol].as_str()])
                .collect();
            (classes, l)
        }
        Task::Regression => {
            for &i in &used {
                let c = &table.rows[i][tcol];
                if c.parse::<f64>().map(|v| !v.is_finite()).unwrap_or(true) {
                    return Err(derr(
                        Some(i + 1),
                        Some(format!("{} ({target})", tcol + 1)),
                        format!("regression target is not a finite number: {c:?}"),
                    ));
                }
            }
            (Vec::new(), vec![0; used.len()])
        }
    };

    // Split (positions within `used`).
    let strat = (task == Task::Classification).then_some(labels_cls.as_slice());
    let (train_pos, test_pos) = if test_table.is_some() {
        ((0..used.len()).collect(), Vec::new())
    } else {
        stratified_split(strat, used.len(), opts.test_fraction, opts.seed)
    };
    let (train_pos, val_pos) = if opts.val_fraction > 0.0 {
        let sub: Option<Vec<usize>> = strat.map(|l| train_pos.iter().map(|&p| l[p]).collect());
        let (a, b) = stratified_split(
            sub.as_deref(),
            train_pos.len(),
            opts.val_fraction,
            opts.seed.wrapping_add(1),
        );
        (
            a.iter().map(|&k| train_pos[k]).collect::<Vec<_>>(),
            b.iter().map(|&k| train_pos[k]).collect::<Vec<_>>(),
        )
    } else {
        (train_pos, Vec::new())
    };
    if train_pos.is_empty() {
        return Err(derr(None, None, "the training part is empty".into()));
    }
    if let Some(l) = strat {
        let present: BTreeSet<usize> = train_pos.iter().map(|&p| l[p]).collect();
        if present.len() < 2 {
            return Err(derr(
                None,
                Some(format!("{} ({target})", tcol + 1)),
                "the training part has one class only".into(),
            ));
        }
    }
    let train_rows: Vec<usize> = train_pos.iter().map(|&p| used[p]).collect();

    // Encoders fitted on the training rows.
    let mut columns = Vec::new();
    for &j in &feat_cols {
        let name = table.columns[j].clone();
        let cells: Vec<&str> = train_rows
            .iter()
            .map(|&i| table.rows[i][j].as_str())
            .filter(|c| !is_missing(c))
            .collect();
        let all_cells_numeric = table
            .rows
            .iter()
            .map(|r| r[j].as_str())
            .filter(|c| !is_missing(c))
            .all(|c| c.parse::<f64>().is_ok());
        let encoder = if all_cells_numeric {
            let vals: Vec<f64> = cells
                .iter()
                .map(|c| c.parse::<f64>().unwrap_or(0.0))
                .collect();
            if let Some(k) = vals.iter().position(|v| !v.is_finite()) {
                return Err(derr(
                    Some(train_rows[k] + 1),
                    Some(format!("{} ({name})", j + 1)),
                    "value is not finite".into(),
                ));
            }
            let fill = (opts.impute == Some(Impute::Mean))
                .then(|| vals.iter().sum::<f64>() / vals.len().max(1) as f64);
            ColumnEncoder::Numeric { fill }
        } else {
            // Categories from every used row (so a category seen only in the test part is
            // known); the imputed category is the most frequent one in training.
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for &i in &used {
                let c = table.rows[i][j].as_str();
                if !is_missing(c) {
                    counts.entry(c.to_string()).or_default();
                }
            }
            for c in &cells {
                *counts.entry(c.to_string()).or_default() += 1;
            }
            let fill = (opts.impute == Some(Impute::Mean)).then(|| {
                counts
                    .iter()
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                    .map(|(k, _)| k.clone())
                    .unwrap_or_default()
            });
            ColumnEncoder::OneHot {
                categories: counts.keys().cloned().collect(),
                fill,
            }
        };
        columns.push(ColumnSpec { name, encoder });
    }
    let mut schema = Schema {
        target: target.clone(),
        task,
        columns,
        dropped: Vec::new(),
        features: Vec::new(),
        mean: Vec::new(),
        std: Vec::new(),
        classes: classes.clone(),
        target_scale: None,
        impute: opts.impute,
    };
    // Encode the training rows unscaled, check constant features.
    loop {
        schema.features = feature_names(&schema.columns);
        let d = schema.features.len();
        schema.mean = vec![0.0; d];
        schema.std = vec![1.0; d];
        let raw = schema.encode_rows(table, &train_rows, false)?;
        let n = train_rows.len() as f64;
        let mut mean = vec![0.0; d];
        for r in raw.x.chunks(d) {
            for (m, v) in mean.iter_mut().zip(r) {
                *m += v / n;
            }
        }
        let mut var = vec![0.0; d];
        for r in raw.x.chunks(d) {
            for j in 0..d {
                var[j] += (r[j] - mean[j]).powi(2) / n;
            }
        }
        let constant: Vec<usize> = (0..d)
            .filter(|&j| var[j].sqrt() <= 1e-12 * mean[j].abs().max(1.0))
            .collect();
        if constant.is_empty() {
            schema.mean = mean;
            schema.std = var.iter().map(|v| v.sqrt()).collect();
            break;
        }
        // Map encoded features back to their source columns.
        let mut bad_cols = BTreeSet::new();
        let mut k = 0;
        for (c, spec) in schema.columns.iter().enumerate() {
            let w = match &spec.encoder {
                ColumnEncoder::Numeric { .. } => 1,
                ColumnEncoder::OneHot { categories, .. } => categories.len(),
            };
            if constant.iter().any(|&j| j >= k && j < k + w)
                && (w == 1 || constant.iter().filter(|&&j| j >= k && j < k + w).count() == w)
            {
                bad_cols.insert(c);
            }
            k += w;
        }
        if bad_cols.is_empty() {
            // Only indicators of categories absent from the training part are constant
            // (zero): keep them unscaled (std 1).
            schema.mean = mean;
            schema.std = (0..d)
                .map(|j| {
                    if constant.contains(&j) {
                        1.0
                    } else {
                        var[j].sqrt()
                    }
                })
                .collect();
            break;
        }
        let names: Vec<String> = bad_cols
            .iter()
            .map(|&c| schema.columns[c].name.clone())
            .collect();
        if !opts.drop_constant {
            let c0 = *bad_cols.iter().next().unwrap_or(&0);
            let j0 = table.col_index(&schema.columns[c0].name).unwrap_or(0);
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
        schema.dropped.extend(names);
        let drop: Vec<usize> = bad_cols.into_iter().collect();
        let mut c = 0;
        schema.columns.retain(|_| {
            let keep = !drop.contains(&c);
            c += 1;
            keep
        });
        if schema.columns.is_empty() {
            return Err(derr(None, None, "every feature column is constant".into()));
        }
    }
    // Target scaling for a regression.
    if task == Task::Regression {
        let ys: Vec<f64> = train_rows
            .iter()
            .map(|&i| table.rows[i][tcol].parse::<f64>().unwrap_or(0.0))
            .collect();
        let n = ys.len() as f64;
        let m = ys.iter().sum::<f64>() / n;
        let s = (ys.iter().map(|y| (y - m).powi(2)).sum::<f64>() / n).sqrt();
        if s <= 0.0 {
            return Err(derr(
                None,
                Some(format!("{} ({target})", tcol + 1)),
                "the regression target is constant on the training part".into(),
            ));
        }
        schema.target_scale = Some((m, s));
    }
    let to_rows = |pos: &[usize]| pos.iter().map(|&p| used[p]).collect::<Vec<_>>();
    let train = schema.encode_rows(table, &train_rows, true)?;
    let val = schema.encode_rows(table, &to_rows(&val_pos), true)?;
    let test = match test_table {
        Some(t) => schema.apply(t)?,
        None => schema.encode_rows(table, &to_rows(&test_pos), true)?,
    };
    Ok(TabularData {
        schema,
        train,
        val,
        test,
    })
}

fn feature_names(cols: &[ColumnSpec]) -> Vec<String> {
    let mut f = Vec::new();
    for c in cols {
        match &c.encoder {
            ColumnEncoder::Numeric { .. } => f.push(c.name.clone()),
            ColumnEncoder::OneHot { categories, .. } => {
                for k in categories {
                    f.push(format!("{}={k}", c.name));
                }
            }
        }
    }
    f
}

impl Schema {
    /// The input dimension of the encoded features.
    pub fn dim(&self) -> usize {
        self.features.len()
    }

    /// The number of classes (None for a regression).
    pub fn n_classes(&self) -> Option<usize> {
        (self.task == Task::Classification).then_some(self.classes.len())
    }

    /// Encode a table read at prediction time: every schema column must be present (by
    /// name, any order; extra columns are ignored), categories must be known, and labels
    /// must be known classes. Missing cells follow the training imputation rule.
    pub fn apply(&self, table: &RawTable) -> Result<Dataset> {
        self.apply_inner(table, true)
    }

    /// Like [`Schema::apply`], but the target column may be absent (labels are then NaN).
    pub fn apply_unlabelled(&self, table: &RawTable) -> Result<Dataset> {
        self.apply_inner(table, false)
    }

    fn apply_inner(&self, table: &RawTable, need_target: bool) -> Result<Dataset> {
        for c in &self.columns {
            if table.col_index(&c.name).is_none() {
                return Err(Error::Data {
                    path: table.path.clone(),
                    row: Some(0),
                    col: Some(c.name.clone()),
                    msg: format!(
                        "column {:?} of the model's schema is missing from the header (renamed?); header: {}",
                        c.name,
                        table.columns.join(",")
                    ),
                });
            }
        }
        if need_target && table.col_index(&self.target).is_none() {
            return Err(Error::Data {
                path: table.path.clone(),
                row: Some(0),
                col: Some(self.target.clone()),
                msg: format!("target column {:?} is missing from the header", self.target),
            });
        }
        let mut rows: Vec<usize> = Vec::new();
        for (i, r) in table.rows.iter().enumerate() {
            let drop = self.impute == Some(Impute::Drop)
                && self
                    .columns
                    .iter()
                    .any(|c| is_missing(&r[table.col_index(&c.name).unwrap_or(0)]));
            if !drop {
                rows.push(i);
            }
        }
        self.encode_rows(table, &rows, true)
    }

    /// Encode the given 0-based rows of `table` (standardised when `scale`).
    fn encode_rows(&self, table: &RawTable, rows: &[usize], scale: bool) -> Result<Dataset> {
        let path = &table.path;
        let d = self.features.len();
        let idx: Vec<usize> = self
            .columns
            .iter()
            .map(|c| table.col_index(&c.name).unwrap_or(usize::MAX))
            .collect();
        let tcol = table.col_index(&self.target);
        let cls: BTreeMap<&str, usize> = self
            .classes
            .iter()
            .enumerate()
            .map(|(k, c)| (c.as_str(), k))
            .collect();
        let mut x = Vec::with_capacity(rows.len() * d);
        let mut y = Vec::with_capacity(rows.len());
        for &i in rows {
            let r = &table.rows[i];
            let row = Some(i + 1);
            let col = |j: usize| Some(format!("{} ({})", j + 1, table.columns[j]));
            let start = x.len();
            for (spec, &j) in self.columns.iter().zip(&idx) {
                let cell = r[j].as_str();
                match &spec.encoder {
                    ColumnEncoder::Numeric { fill } => {
                        let v = if is_missing(cell) {
                            fill.ok_or_else(|| Error::Data {
                                path: path.clone(),
                                row,
                                col: col(j),
                                msg: "missing value (use --impute mean|drop at training)".into(),
                            })?
                        } else {
                            let v: f64 = cell.parse().map_err(|_| Error::Data {
                                path: path.clone(),
                                row,
                                col: col(j),
                                msg: format!(
                                    "not a number: {cell:?} (the column was numeric in training)"
                                ),
                            })?;
                            if !v.is_finite() {
                                return Err(Error::Data {
                                    path: path.clone(),
                                    row,
                                    col: col(j),
                                    msg: format!("value {cell:?} is not finite"),
                                });
                            }
                            v
                        };
                        x.push(v);
                    }
                    ColumnEncoder::OneHot { categories, fill } => {
                        let c = if is_missing(cell) {
                            fill.as_deref().ok_or_else(|| Error::Data {
                                path: path.clone(),
                                row,
                                col: col(j),
                                msg: "missing value (use --impute mean|drop at training)".into(),
                            })?
                        } else {
                            cell
                        };
                        let k =
                            categories
                                .iter()
                                .position(|q| q == c)
                                .ok_or_else(|| Error::Data {
                                    path: path.clone(),
                                    row,
                                    col: col(j),
                                    msg: format!(
                                        "unknown category {c:?} (known: {})",
                                        categories.join(",")
                                    ),
                                })?;
                        for q in 0..categories.len() {
                            x.push(if q == k { 1.0 } else { 0.0 });
                        }
                    }
                }
            }
            if scale {
                for (j, v) in x[start..].iter_mut().enumerate() {
                    *v = (*v - self.mean[j]) / self.std[j];
                }
            }
            let label = match tcol {
                None => f64::NAN,
                Some(t) => {
                    let cell = r[t].as_str();
                    match self.task {
                        Task::Classification => *cls.get(cell).ok_or_else(|| Error::Data {
                            path: path.clone(),
                            row,
                            col: col(t),
                            msg: format!(
                                "unknown label {cell:?} (classes: {})",
                                self.classes.join(",")
                            ),
                        })? as f64,
                        Task::Regression => {
                            let v: f64 = cell.parse().map_err(|_| Error::Data {
                                path: path.clone(),
                                row,
                                col: col(t),
                                msg: format!("regression target is not a number: {cell:?}"),
                            })?;
                            match self.target_scale {
                                Some((m, s)) => (v - m) / s,
                                None => v,
                            }
                        }
                    }
                }
            };
            y.push(label);
        }
        Ok(Dataset {
            x,
            y,
            d,
            rows: rows.iter().map(|i| i + 1).collect(),
        })
    }

    /// Map a model output for a regression back to original units (identity otherwise).
    pub fn unscale_target(&self, v: f64) -> f64 {
        match self.target_scale {
            Some((m, s)) => v * s + m,
            None => v,
        }
    }

    /// The label as written in the CSV for an encoded label (class name, or the response
    /// in original units).
    pub fn label_name(&self, y: f64) -> String {
        match self.task {
            Task::Classification => self
                .classes
                .get(y as usize)
                .cloned()
                .unwrap_or_else(|| format!("{y}")),
            Task::Regression => format!("{}", self.unscale_target(y)),
        }
    }
}

/// A covariate shift on the standardised features: `x_j' = x_j * scale_j + delta_j`.
///
/// Syntax (`--shift`): comma-separated items `COL+DELTA`, `COL-DELTA` (mean shift by
/// `DELTA` training standard deviations) or `COL*FACTOR` (scale the column's spread around
/// the training mean by `FACTOR`); `COL` is an encoded feature name or `*` for all. Example:
/// `--shift '*+0.5,mean_radius*1.5'`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shift {
    /// Per-feature multiplicative factor.
    pub scale: Vec<f64>,
    /// Per-feature additive shift (in training standard deviations).
    pub delta: Vec<f64>,
    /// The specification it was parsed from.
    pub spec: String,
}

impl Shift {
    /// Parse a shift specification against the schema's feature names.
    pub fn parse(spec: &str, features: &[String]) -> Result<Shift> {
        let d = features.len();
        let mut scale = vec![1.0; d];
        let mut delta = vec![0.0; d];
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let pos = item
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == '+' || c == '-' || c == '*')
                .map(|(i, _)| i)
                .ok_or_else(|| {
                    Error::param("shift", item, "expected COL+DELTA, COL-DELTA or COL*FACTOR")
                })?;
            let (col, rest) = item.split_at(pos);
            let op = &rest[..1];
            let num: f64 = rest[1..]
                .parse()
                .map_err(|_| Error::param("shift", item, "the amount is not a number"))?;
            if !num.is_finite() {
                return Err(Error::param("shift", item, "the amount must be finite"));
            }
            let targets: Vec<usize> = if col == "*" {
                (0..d).collect()
            } else {
                vec![features.iter().position(|f| f == col).ok_or_else(|| {
                    Error::param("shift", item, "unknown feature (see model.json `features`)")
                })?]
            };
            for j in targets {
                match op {
                    "+" => delta[j] += num,
                    "-" => delta[j] -= num,
                    _ => scale[j] *= num,
                }
            }
        }
        Ok(Shift {
            scale,
            delta,
            spec: spec.to_string(),
        })
    }

    /// Apply the shift to standardised features (row-major `n x d`).
    pub fn apply(&self, x: &mut [f64]) {
        let d = self.scale.len();
        if d == 0 {
            return;
        }
        for r in x.chunks_mut(d) {
            for j in 0..d {
                r[j] = r[j] * self.scale[j] + self.delta[j];
            }
        }
    }
}
