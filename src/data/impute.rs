//! Missing values: which cells are missing ([`is_missing`], [`NA_TOKENS`]), which rows a
//! load keeps ([`used_rows`]: without `--impute` a missing cell is an error naming the
//! first affected rows and columns; [`Impute::Drop`] drops every row with a missing cell;
//! [`Impute::Mean`] drops only the rows with a missing label), and what a missing cell is
//! filled with under [`Impute::Mean`]: the training mean of a numeric column
//! ([`mean_fill`]), the most frequent training category of a categorical one
//! ([`mode`]).

use super::schema::{col_label, data_err};
use super::RawTable;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

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

/// The 0-based rows of `table` a load keeps, in order: every row when nothing is missing;
/// otherwise an error listing the first missing cells (no `impute`), or the rows left after
/// dropping those with a missing cell ([`Impute::Drop`]) or a missing label in column
/// `tcol` ([`Impute::Mean`]). An error when no row is left.
pub(super) fn used_rows(
    table: &RawTable,
    tcol: usize,
    impute: Option<Impute>,
) -> Result<Vec<usize>> {
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
                    match impute {
                        Some(Impute::Drop) => *keep = false,
                        Some(Impute::Mean) if j == tcol => *keep = false,
                        _ => {}
                    }
                }
            }
        }
        if impute.is_none() && count > 0 {
            let text: Vec<String> = list
                .iter()
                .map(|&(i, j)| format!("row {} column {}", i + 1, col_label(table, j)))
                .collect();
            let (i0, j0) = list[0];
            return Err(data_err(
                table,
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
        return Err(data_err(
            table,
            None,
            None,
            "no rows left after dropping missing values".into(),
        ));
    }
    Ok(used)
}

/// The value imputed for a missing numeric cell: the mean of the column's finite training
/// values, `sum v / n`, or, when that overflows, the overflow-safe mean of
/// [`crate::stats::population_mean_std`].
pub(super) fn mean_fill(vals: &[f64]) -> f64 {
    let m = vals.iter().sum::<f64>() / vals.len().max(1) as f64;
    if m.is_finite() {
        m
    } else {
        crate::stats::population_mean_std(vals).0
    }
}

/// The category imputed for a missing categorical cell: the index of the largest count;
/// ties go to the first category in sorted order. 0 for no categories.
pub(super) fn mode(counts: &[usize]) -> usize {
    let mut best = 0;
    for k in 1..counts.len() {
        if counts[k] > counts[best] {
            best = k;
        }
    }
    best
}
