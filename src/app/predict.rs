//! `robustflow predict`: predictions of a trained model on rows **without labels**.
//!
//! The data file is encoded with the model's saved schema by
//! [`crate::data::unlabeled::encode_features`]: the checks of `eval` (every schema column
//! present, categories known, numbers finite, missing cells only where the training
//! imputation fills them; errors name the file, row and column), except that the target
//! column may be absent and, when present, is **ignored** (neither read nor checked).
//!
//! Output (`--out FILE.csv`, written atomically; it may not overwrite an input): one row
//! per data row, in file order, with the columns
//!
//! - `row`: the 1-based data row of the input file (as in `eval --predictions`);
//! - `predicted`: the class, as written in the training file (classification), or the
//!   response in original units (regression);
//! - `p_<class>`, one per class in the model's class order: the predicted probabilities
//!   (classification only; for a binary model `p_<first> = 1 - p_<second>`).
//!
//! The values are those of `eval --predictions` on the same rows (same encoding, same
//! forward pass, same formatting).

use super::GlobalOpts;
use crate::data::RawTable;
use crate::error::{Error, Result};
use crate::train::TrainedModel;
use std::path::PathBuf;

/// Arguments of `robustflow predict`.
#[derive(Debug, Clone, clap::Args)]
pub struct PredictArgs {
    /// The model directory written by `robustflow train`.
    #[arg(long)]
    pub model: PathBuf,
    /// The CSV to predict on: the model's feature columns (any order; extra columns and the
    /// target column, if present, are ignored).
    #[arg(long)]
    pub data: PathBuf,
    /// The output CSV: `row,predicted` and, for a classifier, `p_<class>` per class.
    #[arg(long)]
    pub out: PathBuf,
}

/// What `predict` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictSummary {
    /// Rows predicted (= data rows of the input file).
    pub n: usize,
    /// The output header.
    pub header: Vec<String>,
}

/// The output header for `model`: `row,predicted,p_<class>...`.
pub fn header(model: &TrainedModel) -> Vec<String> {
    let mut h = vec!["row".to_string(), "predicted".into()];
    if model.schema.n_classes().is_some() {
        h.extend(model.schema.classes.iter().map(|c| format!("p_{c}")));
    }
    h
}

/// Predict on every row of `table`: the output rows of `robustflow predict` (see the
/// module documentation), in file order.
pub fn predict_rows(model: &TrainedModel, table: &RawTable) -> Result<Vec<Vec<String>>> {
    let data = crate::data::unlabeled::encode_features(&model.schema, table)?;
    let pred = model.predict(&data.x)?;
    let classifier = model.schema.n_classes().is_some();
    let proba = if classifier {
        model.predict_proba(&data.x)?
    } else {
        Vec::new()
    };
    let s = &model.schema;
    Ok((0..data.len())
        .map(|i| {
            let mut r = vec![format!("{}", data.rows[i])];
            if classifier {
                r.push(s.label_name(pred[i]));
                r.extend(proba[i].iter().map(|p| format!("{p}")));
            } else {
                r.push(format!("{}", pred[i]));
            }
            r
        })
        .collect())
}

/// Run `robustflow predict`.
pub fn run(args: &PredictArgs, _g: &GlobalOpts) -> Result<PredictSummary> {
    let guard = crate::outputs::OutputGuard::new()
        .input("data", &args.data)
        .model_dir("model", &args.model);
    guard.file("out", &args.out)?;
    let model = super::info::load_model_dir(&args.model)?;
    let table = RawTable::read(&args.data)?;
    if table.n_rows() == 0 {
        return Err(Error::Data {
            path: args.data.clone(),
            row: None,
            col: None,
            msg: "no rows to predict".into(),
        });
    }
    let rows = predict_rows(&model, &table)?;
    let header = header(&model);
    let n = rows.len();
    crate::io::write_csv_atomic(&args.out, &header, rows)?;
    println!(
        "predicted {n} rows of {} with model {}; wrote {} ({})",
        args.data.display(),
        args.model.display(),
        args.out.display(),
        header.join(",")
    );
    Ok(PredictSummary { n, header })
}
