//! Validation of a model before it is built or used, and the memory budget.
//!
//! A model directory is untrusted input: `model.json` may have been edited by hand,
//! truncated, or written by another version. Everything read from it is checked before
//! anything is allocated or indexed:
//!
//! - the format version (`format` must be [`FORMAT_VERSION`]);
//! - the architecture: the head agrees with the family (logistic: binary, softmax:
//!   `k >= 2` classes, linear: regression, MLP: at least one hidden layer), every
//!   dimension is `>= 1`, and the parameter count `sum_l (d_l + 1) d_{l+1}` (computed with
//!   checked arithmetic) is within [`MAX_PARAMS`];
//! - the schema: `features`, `mean` and `std` have `input_dim` entries, the columns'
//!   encoded widths add up to `input_dim`, every mean, fill value and target scale is
//!   finite and every standard deviation finite and `> 0`, the classes match the head;
//! - the weights (`model.safetensors`): the file size is what the architecture implies
//!   (checked before reading), every tensor is present with the shape of the architecture
//!   and dtype f64, and every value is finite.
//!
//! Every failure is an [`Error::Data`] naming the file, or, for sizes given as flags,
//! an [`Error::InvalidParameter`] naming the flag.

use super::{Architecture, Head, ModelKind};
use crate::data::{ColumnEncoder, Schema, Task};
use crate::error::{Error, Result};
use std::path::Path;

/// The `format` of `model.json` this version writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The memory budget of a model: at most `2^26 = 67_108_864` parameters (512 MiB as f64;
/// training holds about four copies: parameters, gradients and the two AdamW moments).
pub const MAX_PARAMS: usize = 1 << 26;

/// The memory budget of one forward pass: `rows x widest layer` at most `2^28` values
/// (2 GiB as f64).
pub const MAX_ACTIVATIONS: usize = 1 << 28;

/// Largest `model.json` read (256 MiB): a schema with many one-hot categories is large,
/// but not that large.
pub const MAX_JSON_BYTES: u64 = 1 << 28;

/// Slack allowed for the safetensors header beyond the parameter bytes (1 MiB).
pub const SAFETENSORS_HEADER_SLACK: u64 = 1 << 20;

/// The layer widths `input_dim, hidden..., n_out`.
pub fn layer_dims(arch: &Architecture) -> Vec<usize> {
    let mut dims = vec![arch.input_dim];
    dims.extend_from_slice(&arch.hidden);
    dims.push(arch.head.n_out());
    dims
}

/// The number of parameters `sum_l (d_l + 1) d_{l+1}` of the layer widths `dims`, or
/// `None` when it overflows `usize`.
pub fn param_count(dims: &[usize]) -> Option<usize> {
    dims.windows(2).try_fold(0usize, |acc, w| {
        w[0].checked_add(1)?
            .checked_mul(w[1])
            .and_then(|p| acc.checked_add(p))
    })
}

/// Check the layer widths against [`MAX_PARAMS`]; the error blames `flag` (a CLI flag or
/// a `model.json` field).
pub fn check_param_budget(flag: &str, dims: &[usize]) -> Result<usize> {
    match param_count(dims) {
        Some(p) if p <= MAX_PARAMS => Ok(p),
        p => Err(Error::param(
            flag,
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(","),
            &format!(
                "layer widths (input, hidden..., output) give {} parameters; the memory budget is {MAX_PARAMS} parameters (512 MiB as f64)",
                p.map(|p| p.to_string()).unwrap_or_else(|| "more than 2^64".into())
            ),
        )),
    }
}

/// Check the hidden widths alone (before the data, hence the input dimension, is known):
/// consecutive hidden layers within [`MAX_PARAMS`].
pub fn check_hidden_budget(hidden: &[usize]) -> Result<()> {
    for &h in hidden {
        if h > MAX_PARAMS {
            return Err(Error::param(
                "hidden",
                h,
                &format!("a layer of more than {MAX_PARAMS} units exceeds the memory budget"),
            ));
        }
    }
    if hidden.len() >= 2 {
        check_param_budget("hidden", hidden)?;
    }
    Ok(())
}

/// Check that a forward pass over `rows` rows fits [`MAX_ACTIVATIONS`].
pub fn check_activation_budget(arch: &Architecture, rows: usize) -> Result<()> {
    let widest = layer_dims(arch).into_iter().max().unwrap_or(1);
    match rows.checked_mul(widest) {
        Some(v) if v <= MAX_ACTIVATIONS => Ok(()),
        _ => Err(Error::param(
            "rows",
            rows,
            &format!(
                "{rows} rows x the widest layer ({widest}) exceed the memory budget of {MAX_ACTIVATIONS} values per pass; split the data file"
            ),
        )),
    }
}

fn data_err(path: &Path, msg: String) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        row: None,
        col: None,
        msg,
    }
}

/// Check an architecture read from `path` (`model.json`): the head agrees with the family,
/// every width is `>= 1`, and the parameter count is within the budget.
pub fn check_architecture(arch: &Architecture, path: &Path) -> Result<()> {
    let e = |m: String| data_err(path, format!("arch: {m}"));
    if arch.input_dim == 0 {
        return Err(e("input_dim is 0".into()));
    }
    if let Some(l) = arch.hidden.iter().position(|&h| h == 0) {
        return Err(e(format!("hidden layer {l} has width 0")));
    }
    match (arch.kind, arch.head) {
        (_, Head::Multi(k)) if k < 2 => {
            return Err(e(format!("a multi-class head needs >= 2 classes, got {k}")))
        }
        (ModelKind::Logistic, Head::Binary)
        | (ModelKind::Softmax, Head::Multi(_))
        | (ModelKind::Linear, Head::Regression)
        | (ModelKind::Mlp, _) => {}
        (kind, head) => {
            return Err(e(format!(
                "model kind {kind:?} cannot have a {head:?} head"
            )))
        }
    }
    match (arch.kind, arch.hidden.is_empty()) {
        (ModelKind::Mlp, true) => return Err(e("an MLP needs at least one hidden layer".into())),
        (ModelKind::Mlp, false) | (_, true) => {}
        (kind, false) => return Err(e(format!("model kind {kind:?} has no hidden layers"))),
    }
    check_param_budget("arch", &layer_dims(arch)).map_err(|err| e(err.to_string()))?;
    Ok(())
}

/// Check a schema read from `path` against the architecture it feeds.
pub fn check_schema(schema: &Schema, arch: &Architecture, path: &Path) -> Result<()> {
    let e = |m: String| data_err(path, format!("schema: {m}"));
    let d = arch.input_dim;
    for (name, len) in [
        ("features", schema.features.len()),
        ("mean", schema.mean.len()),
        ("std", schema.std.len()),
    ] {
        if len != d {
            return Err(e(format!(
                "{name} has {len} entries, the model's input dimension is {d}"
            )));
        }
    }
    let mut width = 0usize;
    for c in &schema.columns {
        match &c.encoder {
            ColumnEncoder::Numeric { fill } => {
                if let Some(f) = fill.filter(|f| !f.is_finite()) {
                    return Err(e(format!(
                        "column {:?}: fill value {f} is not finite",
                        c.name
                    )));
                }
                width += 1;
            }
            ColumnEncoder::OneHot { categories, fill } => {
                if categories.is_empty() {
                    return Err(e(format!("column {:?}: no categories", c.name)));
                }
                if let Some(f) = fill.as_ref().filter(|f| !categories.contains(f)) {
                    return Err(e(format!(
                        "column {:?}: fill category {f:?} is not one of its categories",
                        c.name
                    )));
                }
                width = width.saturating_add(categories.len());
            }
        }
    }
    if width != d {
        return Err(e(format!(
            "the columns encode {width} features, the model's input dimension is {d}"
        )));
    }
    if let Some(j) = schema.mean.iter().position(|m| !m.is_finite()) {
        return Err(e(format!(
            "mean of feature {} ({}) is {}, not finite",
            j + 1,
            schema.features[j],
            schema.mean[j]
        )));
    }
    if let Some(j) = schema.std.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(e(format!(
            "std of feature {} ({}) is {}, not finite and > 0",
            j + 1,
            schema.features[j],
            schema.std[j]
        )));
    }
    match (schema.task, arch.n_classes()) {
        (Task::Classification, Some(k)) => {
            if schema.classes.len() != k {
                return Err(e(format!(
                    "{} classes, the model's head has {k}",
                    schema.classes.len()
                )));
            }
        }
        (Task::Regression, None) => {
            if let Some((m, s)) = schema.target_scale {
                if !(m.is_finite() && s.is_finite() && s > 0.0) {
                    return Err(e(format!(
                        "target_scale ({m}, {s}) is not a finite mean and a finite std > 0"
                    )));
                }
            }
        }
        (task, k) => {
            return Err(e(format!(
                "task {task:?} does not match the model's head ({})",
                k.map(|k| format!("{k} classes"))
                    .unwrap_or_else(|| "regression".into())
            )))
        }
    }
    Ok(())
}
