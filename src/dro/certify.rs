//! Certificates of a trained model: the worst-case risk over an ambiguity set at several
//! radii, bracketed by a lower bound (the value of the feasible distribution the inner
//! flow found) and an upper bound where theory gives one:
//!
//! | set | upper bound | closed form |
//! |---|---|---|
//! | `wasserstein` (squared cost) | Sinha's certificate `min_gamma gamma rho + mean phi_gamma` [WRM] | — |
//! | `wasserstein` + `norm` | the closed form | `mean l + eps L ||w||_*` (linear models) [WDRO] |
//! | `kl` | `min_lambda lambda rho + lambda ln mean exp(l / lambda)` | the same 1-D dual, solved by golden section |
//! | `chi2` | the 1-D dual | `mean l + sqrt(rho var l)` (unclipped) or the 1-D dual |
//! | `cvar` | `t + mean (l - t)_+ / alpha` at `t = VaR` | the top-`alpha` mean |
//! | `mmd` | the KDRO dual on the support points [KDRO] | — |
//!
//! See [`super::AmbiguityConfig`] for the radius of each set.

use super::{build_inner, AmbiguityConfig, Batch, PointLoss, WorstCase};
use crate::error::{check_nonneg, Error, Result};
use serde::{Deserialize, Serialize};

pub use super::wasserstein::w1_closed_form;

/// One row of a certificate: a set and a radius.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertifyRow {
    /// The set (`wasserstein`, `wasserstein-1`, `kl`, ...).
    pub ambiguity: String,
    /// The radius asked for.
    pub radius: f64,
    /// The worst-case risk of the feasible distribution found (a lower bound on the sup).
    pub lower_bound: f64,
    /// An upper bound on the sup, where theory gives one.
    pub upper_bound: Option<f64>,
    /// The exact sup, where a closed form exists.
    pub closed_form: Option<f64>,
    /// The divergence of the distribution found (`<= radius`).
    pub radius_reached: f64,
    /// The multiplier tuned to reach the radius (`null` in JSON when infinite: radius 0).
    pub multiplier: Option<f64>,
    /// The empirical risk `mean_i l(xi_i)`.
    pub empirical_risk: f64,
}

/// [`certify_full`] without the worst-case distributions.
pub fn certify(
    loss: &dyn PointLoss,
    data: &Batch,
    cfg: &AmbiguityConfig,
    radii: &[f64],
) -> Result<Vec<CertifyRow>> {
    Ok(certify_full(loss, data, cfg, radii)?
        .into_iter()
        .map(|(r, _)| r)
        .collect())
}

/// For each radius, solve the inner sup of `cfg.set` in the constraint form (the penalty
/// in `cfg` is ignored; upper bounds are asked for) on all of `data`, and return the row and
/// the worst-case distribution.
pub fn certify_full(
    loss: &dyn PointLoss,
    data: &Batch,
    cfg: &AmbiguityConfig,
    radii: &[f64],
) -> Result<Vec<(CertifyRow, WorstCase)>> {
    if radii.is_empty() {
        return Err(Error::param("radius", "[]", "give at least one radius"));
    }
    let empirical = {
        let l = super::finite_losses(loss, data.x, data.y)?;
        l.iter().sum::<f64>() / l.len().max(1) as f64
    };
    let mut out = Vec::with_capacity(radii.len());
    for &r in radii {
        check_nonneg("radius", r)?;
        let mut c = cfg.clone();
        c.radius = Some(r);
        c.penalty = None;
        c.certificate = true;
        c.warm_start = false;
        let mut solver = build_inner(&c)?;
        let wc = solver.solve(loss, data)?;
        let row = CertifyRow {
            ambiguity: solver.name(),
            radius: r,
            lower_bound: wc.value,
            upper_bound: wc.upper_bound,
            closed_form: wc.closed_form,
            radius_reached: wc.radius,
            multiplier: wc.multiplier.is_finite().then_some(wc.multiplier),
            empirical_risk: empirical,
        };
        out.push((row, wc));
    }
    Ok(out)
}

/// Write worst-case distributions as CSV (atomically): columns `radius`, the features
/// (`names`, or `x1..xd`), `label`, `weight`, one row per particle.
pub fn write_worst_csv(
    path: impl AsRef<std::path::Path>,
    d: usize,
    names: Option<&[String]>,
    cases: &[(f64, &WorstCase)],
) -> Result<()> {
    let mut header = vec!["radius".to_string()];
    match names {
        Some(n) if n.len() == d => header.extend(n.iter().cloned()),
        _ => header.extend((1..=d).map(|k| format!("x{k}"))),
    }
    header.push("label".into());
    header.push("weight".into());
    let mut rows = Vec::new();
    for (r, wc) in cases {
        if wc.x.len() != wc.w.len() * d || wc.y.len() != wc.w.len() {
            return Err(Error::Shape(format!(
                "worst case has {} values, {} labels and {} weights for d = {d}",
                wc.x.len(),
                wc.y.len(),
                wc.w.len()
            )));
        }
        for i in 0..wc.w.len() {
            let mut row = vec![format!("{r}")];
            row.extend(wc.x[i * d..(i + 1) * d].iter().map(|v| format!("{v}")));
            row.push(format!("{}", wc.y[i]));
            row.push(format!("{:e}", wc.w[i]));
            rows.push(row);
        }
    }
    crate::io::write_csv_atomic(path, &header, rows)
}
