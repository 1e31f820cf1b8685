//! Covariate shift of standardised features ([`Shift`], `--shift`).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

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
