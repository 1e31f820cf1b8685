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
//! a missing or renamed column or an unknown category is an [`Error::Data`](crate::Error::Data) naming the
//! file, row and column.
//!
//! Covariate shift ([`Shift`]) and attacks ([`attack`](mod@attack)) act on the **standardised**
//! features: a budget `eps = 1` is one training standard deviation per coordinate (Linf) or
//! a unit step in the whitened space (L2).
//!
//! The module is cut at its seams: `load` (the pipeline, [`load`] / [`load_tables`],
//! [`LoadOptions`], [`Dataset`], [`TabularData`]), `schema` (column typing, encoders, the
//! scaler, [`Schema`]), `impute` (missing values, [`Impute`]), `split` (seeded stratified
//! splits, [`stratified_split`]), `shift` ([`Shift`]), [`table`] and `reader` (the CSV
//! reader) and [`attack`](mod@attack). Every item is re-exported here: `crate::data::X` is the path to
//! use.

pub mod attack;
mod impute;
mod load;
pub(crate) mod reader;
mod schema;
mod shift;
mod split;
pub mod table;
pub mod unlabeled;

pub use attack::{attack, Attack, AttackKind, Norm};
pub use impute::{is_missing, Impute, NA_TOKENS};
pub use load::{load, load_tables, Dataset, LoadOptions, TabularData};
pub use schema::{ColumnEncoder, ColumnSpec, Schema, Task, MAX_ENCODED_BYTES};
pub use shift::Shift;
pub use split::stratified_split;
pub use table::{fmt_number, Cell, RawTable};

/// The population mean and standard deviation of the z-score scaler:
/// [`crate::stats::population_mean_std`] (kept here under its historical name).
pub use crate::stats::population_mean_std as mean_std;
