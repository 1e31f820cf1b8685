//! Accuracy and loss of a trained model, clean, under white-box attacks (FGSM / PGD
//! against the model itself, [`crate::data::attack()`]) and under a covariate shift: the
//! library side of `robustflow eval` and of the demo.

use super::{metrics, TrainedModel};
use crate::data::{attack, Attack, AttackKind, Norm, Shift};
use crate::dro::PointLoss;
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// One evaluated condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// `clean`, `fgsm` / `pgd`, or `shift`.
    pub condition: String,
    /// The attack norm (`l2` / `linf`), if attacked.
    pub norm: Option<String>,
    /// The attack budget (standardised units), if attacked.
    pub eps: Option<f64>,
    /// Accuracy (classification).
    pub accuracy: Option<f64>,
    /// Mean loss.
    pub loss: f64,
    /// RMSE in original units (regression).
    pub rmse: Option<f64>,
}

/// Evaluate `model` on encoded data `(x, y)`: clean, under each attack budget, and under
/// an optional shift.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    model: &TrainedModel,
    x: &[f64],
    y: &[f64],
    attack_kind: Option<AttackKind>,
    norm: Norm,
    eps: &[f64],
    attack_steps: usize,
    shift: Option<&Shift>,
) -> Result<Vec<EvalRow>> {
    let m = &model.model;
    let mut rows = Vec::new();
    let clean = metrics(m, Some(&model.schema), x, y)?;
    rows.push(EvalRow {
        condition: "clean".into(),
        norm: None,
        eps: None,
        accuracy: clean.accuracy,
        loss: clean.loss,
        rmse: clean.rmse,
    });
    if let Some(kind) = attack_kind {
        for &e in eps {
            let a = Attack {
                kind,
                norm,
                eps: e,
                steps: attack_steps,
                step_size: None,
            };
            let xa = attack(m as &dyn PointLoss, x, y, &a)?;
            let r = metrics(m, Some(&model.schema), &xa, y)?;
            rows.push(EvalRow {
                condition: match kind {
                    AttackKind::Fgsm => "fgsm".into(),
                    AttackKind::Pgd => "pgd".into(),
                },
                norm: Some(match norm {
                    Norm::L2 => "l2".into(),
                    Norm::Linf => "linf".into(),
                }),
                eps: Some(e),
                accuracy: r.accuracy,
                loss: r.loss,
                rmse: r.rmse,
            });
        }
    }
    if let Some(s) = shift {
        let mut xs = x.to_vec();
        s.apply(&mut xs);
        let r = metrics(m, Some(&model.schema), &xs, y)?;
        rows.push(EvalRow {
            condition: format!("shift {}", s.spec),
            norm: None,
            eps: None,
            accuracy: r.accuracy,
            loss: r.loss,
            rmse: r.rmse,
        });
    }
    Ok(rows)
}
