//! Tabular data: CSV loading with a schema, encoders, standardisation, splits, shifts and
//! white-box adversarial attacks.
//!
//! A CSV file with a header is read into typed columns ([`RawTable`], module [`table`]:
//! every cell is a number, an NA token or text; the dialect is described in the module
//! docs of `reader`: commas, quotes, CRLF, a UTF-8 BOM dropped, an unterminated quote
//! reported with its line, a semicolon- or tab-separated file named as such). The first
//! row must be a header: a header cell that is a number is an error (the file has no
//! header). The target column is chosen by name (default: the last column).
//!
//! **Column types** follow one rule, over the non-missing cells of the whole file:
//! every cell a number -> numeric; no cell a number -> categorical (one-hot, one indicator
//! per category, categories in sorted order); numbers *and* text -> an **error** naming the
//! rows of the cells that are not numbers (a stray `abc`, `1.2.3` or `"1,5"` in a numeric
//! column is a typo, not 500 categories). [`LoadOptions::categorical`] (`--categorical
//! COL,...`) forces one-hot encoding (numbers then name categories by value: `1` and `1.0`
//! are one category); [`LoadOptions::numeric`] (`--numeric COL,...`) requires numbers.
//!
//! **Labels** of a classification are compared as the cells of a categorical column:
//! numbers by value (`1`, `1.0`, `01` and `1e0` are one class, written `1`), text exactly.
//! Classes are indices `0..k`, sorted numerically when every label is a number, by name
//! otherwise. A regression target must be numeric and is standardised as well (the models
//! see `(y - mean) / std`; predictions are mapped back).
//!
//! Every encoded feature column is z-scored, `x' = (x - m_j) / s_j`, with `m_j`, `s_j`
//! fitted on the **training part only** (the test and validation parts keep whatever mean
//! they have). A feature column that is constant on the training part is an **error** (it
//! cannot be standardised), unless [`LoadOptions::drop_constant`] is set, in which case it
//! is dropped with a warning on stderr.
//!
//! Means and standard deviations are computed as `sum v/n` and `sum (v - m)^2 / n`, and,
//! when that overflows (values beyond ~1e154), again on `v / max|v|` ([`mean_std`]), so
//! every finite column standardises; a value whose z-score cannot be represented is an
//! error naming its row and column, never a NaN or a `null` in `model.json`.
//!
//! Missing values (empty cell or one of [`NA_TOKENS`]: `NA`, `N/A`, `#N/A`, `NaN`, `null`,
//! `?`, case-insensitive) are an error that
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
pub mod table;
pub mod unlabeled;

pub use attack::{attack, Attack, AttackKind, Norm};
pub use table::{fmt_number, Cell, RawTable};

use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use table::{number_key, RawColumn};

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

/// The NA tokens: a cell is missing when, trimmed, it is empty or one of these
/// (case-insensitive).
pub const NA_TOKENS: &[&str] = &["NA", "N/A", "#N/A", "NaN", "-NaN", "+NaN", "null", "?"];

/// True for the cell spellings treated as missing: empty, or one of [`NA_TOKENS`]
/// (`NA`, `N/A`, `#N/A`, `NaN` with any sign, `null`, `?`; case-insensitive).
pub fn is_missing(cell: &str) -> bool {
    let c = cell.trim();
    c.is_empty() || NA_TOKENS.iter().any(|t| c.eq_ignore_ascii_case(t))
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

/// The largest encoded feature matrix (bytes of `f64`) the loader builds; a one-hot
/// encoding wider than this (e.g. an identifier column declared categorical) is an error.
pub const MAX_ENCODED_BYTES: usize = 16 << 30;

/// Maps a cell to an index in a list of names (classes or categories): numbers are
/// compared by value (`1`, `1.0` and `01` name one class), text exactly. Names saved by an
/// older version (e.g. `"1.0"`) are found by value too.
struct NameIndex {
    num: HashMap<u64, usize>,
    text: HashMap<String, usize>,
}

impl NameIndex {
    fn new(names: &[String]) -> Self {
        let mut num = HashMap::new();
        let mut text = HashMap::new();
        for (k, s) in names.iter().enumerate() {
            match s.trim().parse::<f64>() {
                Ok(v) if !v.is_nan() => {
                    num.entry(number_key(v)).or_insert(k);
                }
                _ => {
                    text.entry(s.clone()).or_insert(k);
                }
            }
        }
        NameIndex { num, text }
    }

    /// The per-dictionary-entry lookup of one column of `table` (text cells resolved once).
    fn for_column<'a>(&'a self, col: &RawColumn) -> ColumnLookup<'a> {
        ColumnLookup {
            num: &self.num,
            dict: col
                .dict()
                .iter()
                .map(|s| self.text.get(&**s).copied())
                .collect(),
        }
    }
}

struct ColumnLookup<'a> {
    num: &'a HashMap<u64, usize>,
    dict: Vec<Option<usize>>,
}

impl ColumnLookup<'_> {
    #[inline]
    fn get(&self, col: &RawColumn, i: usize, cell: Cell<'_>) -> Option<usize> {
        match cell {
            Cell::Number(v) => self.num.get(&number_key(v)).copied(),
            _ => col.text_index(i).and_then(|k| self.dict[k]),
        }
    }
}

/// The name of a cell as a class or category: numbers by [`fmt_number`], text as is.
fn cell_name(c: Cell<'_>) -> String {
    match c {
        Cell::Number(v) => fmt_number(v),
        Cell::Missing(s) | Cell::Text(s) => s.to_string(),
    }
}

/// Mean and standard deviation of `vals` (population, `1/n`), computed as before
/// (`sum v/n`, `sum (v - m)^2 / n`) and, when that overflows (values beyond ~1e154),
/// again on `v / max|v|` and scaled back, which is finite for every finite input.
pub fn mean_std(vals: &[f64]) -> (f64, f64) {
    let n = vals.len() as f64;
    let mut m = 0.0;
    for v in vals {
        m += v / n;
    }
    let mut var = 0.0;
    for v in vals {
        var += (v - m).powi(2) / n;
    }
    if m.is_finite() && var.is_finite() {
        return (m, var.sqrt());
    }
    let a = vals.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let mut m1 = 0.0;
    for v in vals {
        m1 += (v / a) / n;
    }
    let mut var1 = 0.0;
    for v in vals {
        var1 += (v / a - m1).powi(2) / n;
    }
    (m1 * a, var1.sqrt() * a)
}

/// `(v - m) / s`, falling back to `v / s - m / s` when the difference overflows; `None`
/// when the result cannot be represented.
fn standardise(v: f64, m: f64, s: f64) -> Option<f64> {
    let z = (v - m) / s;
    if z.is_finite() {
        return Some(z);
    }
    let z = v / s - m / s;
    z.is_finite().then_some(z)
}

/// How a column was typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Numeric,
    Categorical,
}

fn col_label(table: &RawTable, j: usize) -> String {
    format!("{} ({})", j + 1, table.columns[j])
}

/// A header cell that is a number means the file has no header: an error for a training
/// or evaluation file (columns are matched by name).
fn check_header(table: &RawTable) -> Result<()> {
    if let Some((j, c)) = table
        .columns
        .iter()
        .enumerate()
        .find(|(_, c)| c.parse::<f64>().is_ok())
    {
        return Err(Error::Data {
            path: table.path.clone(),
            row: Some(0),
            col: Some(col_label(table, j)),
            msg: format!(
                "the first row is not a header: {c:?} is a number; the file needs a header row naming its columns (add one, e.g. x1,x2,...,target)"
            ),
        });
    }
    Ok(())
}

/// The declared type of each column from `--categorical` / `--numeric`.
fn declared_kinds(table: &RawTable, tcol: usize, opts: &LoadOptions) -> Result<Vec<Option<Kind>>> {
    let mut kinds = vec![None; table.columns.len()];
    for (flag, list, kind) in [
        ("categorical", &opts.categorical, Kind::Categorical),
        ("numeric", &opts.numeric, Kind::Numeric),
    ] {
        for name in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            let j = table.col_index(name).ok_or_else(|| {
                Error::param(
                    flag,
                    name,
                    &format!(
                        "not a column of {} (columns: {})",
                        table.path.display(),
                        table.columns.join(",")
                    ),
                )
            })?;
            if j == tcol {
                return Err(Error::param(
                    flag,
                    name,
                    "is the target column (the task decides how labels are read)",
                ));
            }
            if kinds[j].is_some_and(|k| k != kind) {
                return Err(Error::param(
                    flag,
                    name,
                    "declared both --categorical and --numeric",
                ));
            }
            kinds[j] = Some(kind);
        }
    }
    Ok(kinds)
}

/// The error for a column of numbers holding some text (or a `--numeric` column holding
/// text): names the first rows and cells.
fn non_numbers_error(table: &RawTable, j: usize, declared: bool) -> Error {
    let col = table.column(j);
    let mut list = Vec::new();
    let mut first = None;
    for i in 0..table.n_rows() {
        if let Cell::Text(s) = table.get(i, j) {
            first.get_or_insert(i + 1);
            if list.len() < 5 {
                list.push(format!("row {}: {s:?}", i + 1));
            } else {
                break;
            }
        }
    }
    let name = &table.columns[j];
    let why = if declared {
        format!(
            "column {name:?} is declared numeric (--numeric) but {} cell(s) are not numbers",
            col.n_text
        )
    } else {
        format!(
            "{} cell(s) are numbers but {} are not",
            col.n_number, col.n_text
        )
    };
    Error::Data {
        path: table.path.clone(),
        row: first,
        col: Some(col_label(table, j)),
        msg: format!(
            "{why} ({}{}); fix them, write them as NA (missing), or declare the column categorical with --categorical {name}",
            list.join(", "),
            if col.n_text > list.len() { ", ..." } else { "" }
        ),
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
    let n_rows = table.n_rows();

    // Missing values (row-major order, only the columns that have any).
    let na_cols: Vec<usize> = (0..table.columns.len())
        .filter(|&j| {
            let c = table.column(j);
            c.n_number + c.n_text < n_rows
        })
        .collect();
    let mut keep_row = vec![true; n_rows];
    if !na_cols.is_empty() {
        let mut count = 0usize;
        let mut list: Vec<(usize, usize)> = Vec::new();
        for (i, keep) in keep_row.iter_mut().enumerate() {
            for &j in &na_cols {
                if table.get(i, j).is_missing() {
                    count += 1;
                    if list.len() < 5 {
                        list.push((i, j));
                    }
                    match opts.impute {
                        Some(Impute::Drop) => *keep = false,
                        Some(Impute::Mean) if j == tcol => *keep = false,
                        _ => {}
                    }
                }
            }
        }
        if opts.impute.is_none() && count > 0 {
            let text: Vec<String> = list
                .iter()
                .map(|&(i, j)| format!("row {} column {}", i + 1, col_label(table, j)))
                .collect();
            let (i0, j0) = list[0];
            return Err(derr(
                Some(i0 + 1),
                Some(col_label(table, j0)),
                format!(
                    "{count} missing value(s) (empty, NA or NaN), first at: {}; use --impute mean|drop",
                    text.join("; ")
                ),
            ));
        }
    }
    let used: Vec<usize> = (0..n_rows).filter(|&i| keep_row[i]).collect();
    drop(keep_row);
    if used.is_empty() {
        return Err(derr(
            None,
            None,
            "no rows left after dropping missing values".into(),
        ));
    }

    // Labels.
    let tlabel = col_label(table, tcol);
    let (classes, labels_cls): (Vec<String>, Vec<usize>) = match task {
        Task::Classification => {
            let mut nums: HashMap<u64, f64> = HashMap::new();
            let mut texts: BTreeSet<&str> = BTreeSet::new();
            for &i in &used {
                match table.get(i, tcol) {
                    Cell::Number(v) => {
                        nums.entry(number_key(v)).or_insert(v);
                    }
                    Cell::Missing(s) | Cell::Text(s) => {
                        texts.insert(s);
                    }
                }
            }
            let classes: Vec<String> = if texts.is_empty() {
                let mut v: Vec<f64> = nums.into_values().collect();
                v.sort_by(|a, b| a.total_cmp(b));
                v.into_iter().map(fmt_number).collect()
            } else {
                let mut v: Vec<String> = nums.into_values().map(fmt_number).collect();
                v.extend(texts.into_iter().map(String::from));
                v.sort();
                v
            };
            if classes.len() < 2 {
                return Err(derr(
                    None,
                    Some(tlabel),
                    format!(
                        "the target has one class only ({:?}); a classifier needs at least two",
                        classes.first().cloned().unwrap_or_default()
                    ),
                ));
            }
            let index = NameIndex::new(&classes);
            let col = table.column(tcol);
            let lookup = index.for_column(col);
            let mut l = Vec::with_capacity(used.len());
            for &i in &used {
                let k = lookup.get(col, i, table.get(i, tcol)).ok_or_else(|| {
                    derr(Some(i + 1), Some(tlabel.clone()), "label not found".into())
                })?;
                l.push(k);
            }
            (classes, l)
        }
        Task::Regression => {
            for &i in &used {
                let c = table.get(i, tcol);
                if !matches!(c, Cell::Number(v) if v.is_finite()) {
                    return Err(derr(
                        Some(i + 1),
                        Some(tlabel),
                        format!(
                            "regression target is not a finite number: {:?}",
                            cell_name(c)
                        ),
                    ));
                }
            }
            (Vec::new(), Vec::new())
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
                Some(tlabel),
                "the training part has one class only".into(),
            ));
        }
    }
    drop(labels_cls);
    let train_rows: Vec<usize> = train_pos.iter().map(|&p| used[p]).collect();
    drop(train_pos);

    // Column types and encoders fitted on the training rows, with the mean and standard
    // deviation of every encoded feature.
    let n_train = train_rows.len();
    let mut columns = Vec::new();
    let mut stats: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    let mut vals: Vec<f64> = Vec::with_capacity(n_train);
    for &j in &feat_cols {
        let name = table.columns[j].clone();
        let col = table.column(j);
        let kind = match declared[j] {
            Some(Kind::Categorical) => Kind::Categorical,
            Some(Kind::Numeric) if col.n_text > 0 => return Err(non_numbers_error(table, j, true)),
            Some(Kind::Numeric) => Kind::Numeric,
            None if col.n_text == 0 => Kind::Numeric,
            None if col.n_number == 0 => Kind::Categorical,
            None => return Err(non_numbers_error(table, j, false)),
        };
        match kind {
            Kind::Numeric => {
                vals.clear();
                let mut missing = false;
                for &i in &train_rows {
                    match table.get(i, j) {
                        Cell::Number(v) if v.is_finite() => vals.push(v),
                        Cell::Number(v) => {
                            return Err(derr(
                                Some(i + 1),
                                Some(col_label(table, j)),
                                format!("value {:?} is not finite", fmt_number(v)),
                            ))
                        }
                        _ => missing = true,
                    }
                }
                let fill = (opts.impute == Some(Impute::Mean)).then(|| {
                    let m = vals.iter().sum::<f64>() / vals.len().max(1) as f64;
                    if m.is_finite() {
                        m
                    } else {
                        mean_std(&vals).0
                    }
                });
                if missing {
                    let f = fill.unwrap_or(0.0);
                    vals.clear();
                    for &i in &train_rows {
                        vals.push(match table.get(i, j) {
                            Cell::Number(v) => v,
                            _ => f,
                        });
                    }
                }
                let (m, s) = mean_std(&vals);
                stats.push((vec![m], vec![s]));
                columns.push(ColumnSpec {
                    name,
                    encoder: ColumnEncoder::Numeric { fill },
                });
            }
            Kind::Categorical => {
                // Categories from every used row (so a category seen only in the test
                // part is known); the imputed category is the most frequent one in
                // training.
                let mut names: BTreeMap<String, usize> = BTreeMap::new();
                let mut nums: HashMap<u64, f64> = HashMap::new();
                let mut texts = vec![false; col.dict().len()];
                for &i in &used {
                    match table.get(i, j) {
                        Cell::Number(v) => {
                            nums.entry(number_key(v)).or_insert(v);
                        }
                        Cell::Text(_) => texts[col.text_index(i).unwrap_or(0)] = true,
                        Cell::Missing(_) => {}
                    }
                }
                for v in nums.into_values() {
                    names.insert(fmt_number(v), 0);
                }
                for (k, seen) in texts.into_iter().enumerate() {
                    if seen {
                        names.insert(col.dict()[k].to_string(), 0);
                    }
                }
                let categories: Vec<String> = names.into_keys().collect();
                let index = NameIndex::new(&categories);
                let lookup = index.for_column(col);
                let w = categories.len();
                let mut counts = vec![0usize; w];
                let mut codes: Vec<usize> = Vec::with_capacity(n_train);
                for &i in &train_rows {
                    let k = lookup.get(col, i, table.get(i, j)).unwrap_or(usize::MAX);
                    if k < w {
                        counts[k] += 1;
                    }
                    codes.push(k);
                }
                let fill_k = (opts.impute == Some(Impute::Mean)).then(|| {
                    // Most frequent; ties go to the first category in sorted order.
                    let mut best = 0;
                    for k in 1..w {
                        if counts[k] > counts[best] {
                            best = k;
                        }
                    }
                    best
                });
                let fill = fill_k.map(|k| categories.get(k).cloned().unwrap_or_default());
                for c in codes.iter_mut() {
                    if *c == usize::MAX {
                        *c = fill_k.unwrap_or(usize::MAX);
                    }
                }
                // Mean and standard deviation of each indicator, summed in row order as
                // the encoded matrix would be.
                let n = n_train as f64;
                let mut mean = vec![0.0; w];
                for &c in &codes {
                    if c < w {
                        mean[c] += 1.0 / n;
                    }
                }
                let mut std = vec![0.0; w];
                for (q, s) in std.iter_mut().enumerate() {
                    let (on, off) = ((1.0 - mean[q]).powi(2) / n, mean[q].powi(2) / n);
                    let mut var = 0.0;
                    for &c in &codes {
                        var += if c == q { on } else { off };
                    }
                    *s = var.sqrt();
                }
                stats.push((mean, std));
                columns.push(ColumnSpec {
                    name,
                    encoder: ColumnEncoder::OneHot { categories, fill },
                });
            }
        }
    }
    drop(vals);
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
    /// must be known classes. Missing cells follow the training imputation rule. Numbers
    /// are matched by value (`1.0` is the category or class `1`).
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
                check_header(table)?;
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
            check_header(table)?;
            return Err(Error::Data {
                path: table.path.clone(),
                row: Some(0),
                col: Some(self.target.clone()),
                msg: format!("target column {:?} is missing from the header", self.target),
            });
        }
        let mut rows: Vec<usize> = Vec::new();
        let idx: Vec<usize> = self
            .columns
            .iter()
            .map(|c| table.col_index(&c.name).unwrap_or(0))
            .collect();
        for i in 0..table.n_rows() {
            let drop = self.impute == Some(Impute::Drop)
                && idx.iter().any(|&j| table.get(i, j).is_missing());
            if !drop {
                rows.push(i);
            }
        }
        self.encode_rows(table, &rows)
    }

    /// Check that the schema is consistent (feature, mean and std lengths; finite scaler;
    /// class list), so that encoding cannot index out of bounds.
    pub fn check_encodable(&self) -> Result<()> {
        let d = self.features.len();
        let widths: usize = self
            .columns
            .iter()
            .map(|c| match &c.encoder {
                ColumnEncoder::Numeric { .. } => 1,
                ColumnEncoder::OneHot { categories, .. } => categories.len(),
            })
            .sum();
        let bad = |what: String| Err(Error::Other(format!("invalid model schema: {what}")));
        if widths != d {
            return bad(format!(
                "the columns encode {widths} features but {d} are named"
            ));
        }
        if self.mean.len() != d || self.std.len() != d {
            return bad(format!(
                "{} means and {} standard deviations for {d} features",
                self.mean.len(),
                self.std.len()
            ));
        }
        if let Some(j) = (0..d)
            .find(|&j| !(self.mean[j].is_finite() && self.std[j].is_finite() && self.std[j] > 0.0))
        {
            return bad(format!(
                "feature {:?} has mean {} and std {} (need finite values and std > 0)",
                self.features[j], self.mean[j], self.std[j]
            ));
        }
        if let Some((m, s)) = self.target_scale {
            if !(m.is_finite() && s.is_finite() && s > 0.0) {
                return bad(format!("target scale ({m}, {s})"));
            }
        }
        if self.task == Task::Classification && self.classes.len() < 2 {
            return bad(format!("{} classes", self.classes.len()));
        }
        Ok(())
    }

    /// Encode and standardise the given 0-based rows of `table`.
    fn encode_rows(&self, table: &RawTable, rows: &[usize]) -> Result<Dataset> {
        self.check_encodable()?;
        let path = &table.path;
        let d = self.features.len();
        let derr = |i: usize, j: usize, msg: String| Error::Data {
            path: path.clone(),
            row: Some(i + 1),
            col: Some(col_label(table, j)),
            msg,
        };
        let missing_msg = || "missing value (use --impute mean|drop at training)".to_string();
        enum Enc<'a> {
            Num(Option<f64>),
            Hot(ColumnLookup<'a>, &'a [String], Option<usize>),
        }
        let mut idx = Vec::with_capacity(self.columns.len());
        let mut indices = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let j = table.col_index(&c.name).ok_or_else(|| Error::Data {
                path: path.clone(),
                row: Some(0),
                col: Some(c.name.clone()),
                msg: format!("column {:?} is missing from the header", c.name),
            })?;
            idx.push(j);
            indices.push(match &c.encoder {
                ColumnEncoder::OneHot { categories, .. } => Some(NameIndex::new(categories)),
                ColumnEncoder::Numeric { .. } => None,
            });
        }
        let encs: Vec<Enc> = self
            .columns
            .iter()
            .zip(&idx)
            .zip(&indices)
            .map(|((c, &j), ix)| match (&c.encoder, ix) {
                (ColumnEncoder::OneHot { categories, fill }, Some(ix)) => {
                    let f = fill.as_ref().map(|f| {
                        categories
                            .iter()
                            .position(|q| q == f)
                            .unwrap_or(categories.len())
                    });
                    Enc::Hot(ix.for_column(table.column(j)), categories, f)
                }
                (ColumnEncoder::Numeric { fill }, _) => Enc::Num(*fill),
                _ => Enc::Num(None),
            })
            .collect();
        let tcol = table.col_index(&self.target);
        let class_index = NameIndex::new(&self.classes);
        let class_lookup = tcol.map(|t| class_index.for_column(table.column(t)));
        let len = rows
            .len()
            .checked_mul(d)
            .filter(|&l| l.saturating_mul(8) <= MAX_ENCODED_BYTES);
        let mut x = Vec::with_capacity(len.ok_or_else(|| {
            Error::Other(format!(
                "{}: {} rows x {d} features exceed the loader's budget of {} GiB",
                path.display(),
                rows.len(),
                MAX_ENCODED_BYTES >> 30
            ))
        })?);
        let mut y = Vec::with_capacity(rows.len());
        for &i in rows {
            let mut k = 0;
            for (enc, &j) in encs.iter().zip(&idx) {
                let cell = table.get(i, j);
                match enc {
                    Enc::Num(fill) => {
                        let v = match cell {
                            Cell::Number(v) if v.is_finite() => v,
                            Cell::Number(v) => {
                                return Err(derr(
                                    i,
                                    j,
                                    format!("value {:?} is not finite", fmt_number(v)),
                                ))
                            }
                            Cell::Missing(_) => fill.ok_or_else(|| derr(i, j, missing_msg()))?,
                            Cell::Text(s) => {
                                return Err(derr(
                                    i,
                                    j,
                                    format!(
                                        "not a number: {s:?} (the column was numeric in training)"
                                    ),
                                ))
                            }
                        };
                        let z = standardise(v, self.mean[k], self.std[k]).ok_or_else(|| {
                            derr(
                                i,
                                j,
                                format!(
                                    "value {v:e} cannot be standardised: (v - {:e}) / {:e} overflows",
                                    self.mean[k], self.std[k]
                                ),
                            )
                        })?;
                        x.push(z);
                        k += 1;
                    }
                    Enc::Hot(lookup, categories, fill) => {
                        let w = categories.len();
                        let q = match cell {
                            Cell::Missing(_) => fill.ok_or_else(|| derr(i, j, missing_msg()))?,
                            c => lookup.get(table.column(j), i, c).ok_or_else(|| {
                                derr(
                                    i,
                                    j,
                                    format!(
                                        "unknown category {:?} (known: {})",
                                        cell_name(c),
                                        categories.join(",")
                                    ),
                                )
                            })?,
                        };
                        for r in 0..w {
                            let v = if r == q { 1.0 } else { 0.0 };
                            x.push((v - self.mean[k + r]) / self.std[k + r]);
                        }
                        k += w;
                    }
                }
            }
            let label = match (tcol, &class_lookup) {
                (None, _) => f64::NAN,
                (Some(t), lookup) => {
                    let cell = table.get(i, t);
                    match self.task {
                        Task::Classification => lookup
                            .as_ref()
                            .and_then(|l| l.get(table.column(t), i, cell))
                            .ok_or_else(|| {
                                derr(
                                    i,
                                    t,
                                    format!(
                                        "unknown label {:?} (classes: {})",
                                        cell_name(cell),
                                        self.classes.join(",")
                                    ),
                                )
                            })? as f64,
                        Task::Regression => {
                            let v = match cell {
                                Cell::Number(v) => v,
                                c => {
                                    return Err(derr(
                                        i,
                                        t,
                                        format!(
                                            "regression target is not a number: {:?}",
                                            cell_name(c)
                                        ),
                                    ))
                                }
                            };
                            match self.target_scale {
                                Some((m, s)) => standardise(v, m, s).ok_or_else(|| {
                                    derr(i, t, format!("target {v:e} cannot be standardised"))
                                })?,
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
