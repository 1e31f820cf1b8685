//! The schema: column typing, encoders and the z-score scaler fitted on the training
//! part ([`Schema`]), and the encoding of any table with it ([`Schema::apply`]).
//!
//! **Typing** ([`fit_columns`]): over the non-missing cells of a feature column, every
//! cell a number -> numeric; no cell a number -> categorical (one-hot, categories in
//! sorted order, from every kept row so that a category seen only in the test part is
//! known); both -> an error naming the first cells that are not numbers, unless the column
//! is declared (`--categorical` / `--numeric`). **Labels** ([`fit_labels`]) are matched as
//! the cells of a categorical column: numbers by value, text exactly.
//!
//! **Scaling**: each encoded feature `j` gets `x' = (x - m_j) / s_j` with the population
//! mean and standard deviation of the training part ([`crate::stats::population_mean_std`]
//! for numeric columns; one-hot indicators summed in row order as the encoded matrix would
//! be). [`standardise`] falls back to `v / s - m / s` when the difference overflows; a
//! value whose z-score cannot be represented is an error naming its row and column.

use super::impute::{mean_fill, mode};
use super::table::{number_key, RawColumn};
use super::{fmt_number, Cell, Dataset, Impute, LoadOptions, RawTable};
use crate::error::{Error, Result};
use crate::stats::population_mean_std;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// `(v - m) / s`, falling back to `v / s - m / s` when the difference overflows; `None`
/// when the result cannot be represented.
pub(super) fn standardise(v: f64, m: f64, s: f64) -> Option<f64> {
    let z = (v - m) / s;
    if z.is_finite() {
        return Some(z);
    }
    let z = v / s - m / s;
    z.is_finite().then_some(z)
}

/// How a column was typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Numbers.
    Numeric,
    /// One-hot encoded categories.
    Categorical,
}

pub(super) fn col_label(table: &RawTable, j: usize) -> String {
    format!("{} ({})", j + 1, table.columns[j])
}

/// A header cell that is a number means the file has no header: an error for a training
/// or evaluation file (columns are matched by name).
pub(super) fn check_header(table: &RawTable) -> Result<()> {
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
pub(super) fn declared_kinds(
    table: &RawTable,
    tcol: usize,
    opts: &LoadOptions,
) -> Result<Vec<Option<Kind>>> {
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

/// The training means and standard deviations of the encoded features of one column
/// (one entry for a numeric column, one per category for a one-hot column).
pub(super) type FeatureStats = (Vec<f64>, Vec<f64>);

/// A [`Error::Data`] in `table`'s file.
pub(super) fn data_err(
    table: &RawTable,
    row: Option<usize>,
    col: Option<String>,
    msg: String,
) -> Error {
    Error::Data {
        path: table.path.clone(),
        row,
        col,
        msg,
    }
}

/// The classes (sorted numerically when every label is a number, by name otherwise) and
/// the class index of every row of `used` (classification), or empty lists after checking
/// that every regression target is a finite number.
pub(super) fn fit_labels(
    table: &RawTable,
    tcol: usize,
    task: Task,
    used: &[usize],
) -> Result<(Vec<String>, Vec<usize>)> {
    let derr =
        |row: Option<usize>, col: Option<String>, msg: String| data_err(table, row, col, msg);
    let tlabel = col_label(table, tcol);
    Ok(match task {
        Task::Classification => {
            let mut nums: HashMap<u64, f64> = HashMap::new();
            let mut texts: BTreeSet<&str> = BTreeSet::new();
            for &i in used {
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
            for &i in used {
                let k = lookup.get(col, i, table.get(i, tcol)).ok_or_else(|| {
                    derr(Some(i + 1), Some(tlabel.clone()), "label not found".into())
                })?;
                l.push(k);
            }
            (classes, l)
        }
        Task::Regression => {
            for &i in used {
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
    })
}

/// Type every feature column of `feat_cols` (declared kinds first), fit its encoder on the
/// training rows (categories from every kept row of `used`; the imputed value under
/// [`Impute::Mean`]) and the mean and standard deviation of each encoded feature. Returns
/// the columns and, per column, `(means, stds)` of its encoded features.
pub(super) fn fit_columns(
    table: &RawTable,
    feat_cols: &[usize],
    declared: &[Option<Kind>],
    used: &[usize],
    train_rows: &[usize],
    impute: Option<Impute>,
) -> Result<(Vec<ColumnSpec>, Vec<FeatureStats>)> {
    let derr =
        |row: Option<usize>, col: Option<String>, msg: String| data_err(table, row, col, msg);
    let n_train = train_rows.len();
    let mut columns = Vec::new();
    let mut stats: Vec<FeatureStats> = Vec::new();
    let mut vals: Vec<f64> = Vec::with_capacity(n_train);
    for &j in feat_cols {
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
                for &i in train_rows {
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
                let fill = (impute == Some(Impute::Mean)).then(|| mean_fill(&vals));
                if missing {
                    let f = fill.unwrap_or(0.0);
                    vals.clear();
                    for &i in train_rows {
                        vals.push(match table.get(i, j) {
                            Cell::Number(v) => v,
                            _ => f,
                        });
                    }
                }
                let (m, s) = population_mean_std(&vals);
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
                for &i in used {
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
                for &i in train_rows {
                    let k = lookup.get(col, i, table.get(i, j)).unwrap_or(usize::MAX);
                    if k < w {
                        counts[k] += 1;
                    }
                    codes.push(k);
                }
                // Most frequent; ties go to the first category in sorted order.
                let fill_k = (impute == Some(Impute::Mean)).then(|| mode(&counts));
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
    Ok((columns, stats))
}

pub(super) fn feature_names(cols: &[ColumnSpec]) -> Vec<String> {
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
    pub(super) fn encode_rows(&self, table: &RawTable, rows: &[usize]) -> Result<Dataset> {
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
