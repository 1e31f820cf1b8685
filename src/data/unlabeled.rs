//! Encoding rows **without labels** for prediction (`robustflow predict`).
//!
//! [`Schema::apply`] needs the target column (evaluation compares predictions with it);
//! [`encode_features`] encodes the feature columns only, with the same checks: every
//! column of the schema present (any order, extra columns ignored), categories known,
//! numbers finite and standardisable, missing cells filled by the training imputation
//! rule. The target column is **ignored** whether present or not: its cells are neither
//! read nor checked (a label never seen in training is no error here).
//!
//! One encoded row per data row, in file order: a model trained with `--impute drop`
//! (which drops rows with a missing cell) cannot predict such a row, so a missing feature
//! cell is then an error naming its row and column rather than a silently shorter output.

use super::{Dataset, Impute, RawTable, Schema};
use crate::error::{Error, Result};

/// Encode every data row of `table` with `schema`, ignoring the target column (see the
/// module documentation). Row `i` of the result is data row `i + 1` of the file
/// (`Dataset::rows`); labels are NaN. Errors name the file, the 1-based data row and
/// the column.
pub fn encode_features(schema: &Schema, table: &RawTable) -> Result<Dataset> {
    if schema.impute == Some(Impute::Drop) {
        for c in &schema.columns {
            let Some(j) = table.col_index(&c.name) else {
                continue; // reported as a missing column by the schema below
            };
            if let Some(i) = (0..table.n_rows()).find(|&i| table.get(i, j).is_missing()) {
                return Err(Error::Data {
                    path: table.path.clone(),
                    row: Some(i + 1),
                    col: Some(format!("{} ({})", j + 1, c.name)),
                    msg: "missing value: the model was trained with --impute drop, which \
                          drops such rows, but predict writes one row per input row; fill \
                          the cell or remove the row"
                        .into(),
                });
            }
        }
    }
    // The target column, if present, is hidden from the schema under a name the header
    // does not have, so its cells are not read.
    let mut features_only = schema.clone();
    let mut name = format!("{} (ignored)", schema.target);
    while table.col_index(&name).is_some() {
        name.push('_');
    }
    features_only.target = name;
    let data = features_only.apply_unlabelled(table)?;
    if data.len() != table.n_rows() {
        return Err(Error::Shape(format!(
            "{}: {} of {} rows encoded",
            table.path.display(),
            data.len(),
            table.n_rows()
        )));
    }
    Ok(data)
}
