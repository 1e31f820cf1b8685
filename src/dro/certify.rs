//! Certificates of a trained model: the worst-case risk over an ambiguity set at several
//! radii, bracketed by a lower bound (the value of the feasible distribution the inner
//! flow found) and an upper bound where theory gives one:
//!
//! | set | upper bound | closed form |
//! |---|---|---|
//! | `wasserstein` (squared cost), linear / logistic / softmax | the dual `inf_lam lam rho + mean_i phi_i(lam)` with every inner sup solved globally ([`super::w2exact`]) | exact to the bisection's gap (lower and upper within `1e-3` relative) |
//! | `wasserstein` (squared cost), MLP | Sinha's certificate with a proven smoothness constant `L` of the input gradient, at multipliers `lam > L / 2` ([`super::w2exact::sinha_certificate`]); `null` with the reason otherwise | — |
//! | `wasserstein` + `norm` | the closed form | `mean l + eps L ||w||_*` (linear models) [WDRO] |
//! | `kl` | `min_lambda lambda rho + lambda ln mean exp(l / lambda)` | the same 1-D dual, solved by golden section |
//! | `chi2` | the 1-D dual | `mean l + sqrt(rho var l)` (unclipped) or the 1-D dual |
//! | `cvar` | `t + mean (l - t)_+ / alpha` at `t = VaR` | the top-`alpha` mean |
//! | `mmd` | none: the KDRO dual on the support points bounds only distributions on those points (it is reported in `upper_bound_note`) | — |
//!
//! `upper_bound` is a valid upper bound or `None`, with the reason in `upper_bound_note`;
//! `lower_bound` is always the risk of a feasible distribution. A row with
//! `lower_bound > upper_bound` would be a bug: [`certify_full`] returns an error instead.
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
    /// A valid upper bound on the sup, where theory gives one (`None` otherwise).
    pub upper_bound: Option<f64>,
    /// Why there is no upper bound, or how it was obtained.
    #[serde(default)]
    pub upper_bound_note: Option<String>,
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
        let (wc, name, upper, note) = if c.set == super::SetKind::Wasserstein && c.norm.is_none() {
            wasserstein_row(loss, data, &c, r)?
        } else {
            let mut solver = build_inner(&c)?;
            let wc = solver.solve(loss, data)?;
            let (ub, note) = if c.set == super::SetKind::Mmd {
                (
                    None,
                    wc.upper_bound.map(|u| {
                        format!(
                            "no upper bound: the KDRO dual on the support points ({u:.6}) \
                             bounds only distributions supported on those points"
                        )
                    }),
                )
            } else if wc.upper_bound.is_none() {
                (
                    None,
                    Some(format!("the {} set has no upper bound here", solver.name())),
                )
            } else {
                (wc.upper_bound, None)
            };
            (wc, solver.name(), ub, note)
        };
        // An exact value is its own bound (e.g. radius 0).
        let (upper, note) = match (upper, wc.closed_form) {
            (None, Some(c)) => (Some(c), Some("the closed form".to_string())),
            _ => (upper, note),
        };
        super::check_inner_solution(&wc, empirical, Some(r))?;
        if let Some(u) = upper {
            if wc.value > u + 1e-9 * (1.0 + u.abs()) {
                return Err(Error::Other(format!(
                    "certify at radius {r}: the feasible value {} exceeds the upper bound {u} \
                     (a bug: please report it)",
                    wc.value
                )));
            }
        }
        let row = CertifyRow {
            ambiguity: name,
            radius: r,
            lower_bound: wc.value,
            upper_bound: upper,
            upper_bound_note: note,
            closed_form: wc.closed_form,
            radius_reached: wc.radius,
            multiplier: wc.multiplier.is_finite().then_some(wc.multiplier),
            empirical_risk: empirical,
        };
        out.push((row, wc));
    }
    Ok(out)
}

/// The squared-cost Wasserstein row at radius `r`: exact for affine models, the inner
/// flow plus Sinha's certificate (when a smoothness constant is proven) otherwise.
fn wasserstein_row(
    loss: &dyn PointLoss,
    data: &Batch,
    c: &AmbiguityConfig,
    r: f64,
) -> Result<(WorstCase, String, Option<f64>, Option<String>)> {
    if let Some(aff) = loss.affine() {
        let ex = super::w2exact::exact_certificate(loss, &aff, data, c, r)?;
        return Ok((
            ex.worst,
            "wasserstein".into(),
            Some(ex.upper),
            Some("exact dual, inner sups solved globally".into()),
        ));
    }
    let checked = c.check_ref()?;
    let mut solver = checked.build();
    let wc = solver.solve(loss, data)?;
    let name = solver.name();
    if r == 0.0 {
        let v = wc.value;
        return Ok((wc, name, Some(v), None));
    }
    let smooth = match loss.input_smoothness() {
        Ok(s) => s,
        Err(reason) => return Ok((wc, name, None, Some(format!("no upper bound: {reason}")))),
    };
    let mut best: Option<f64> = None;
    let mut used = Vec::new();
    // At the tuned multiplier (labels fixed, one particle per point), when 2 lam > L.
    if c.label_cost.is_none() && wc.w.len() == data.len() {
        if let Some(u) =
            super::w2exact::sinha_certificate(loss, data, &wc.x, wc.multiplier, smooth, r)?
        {
            best = Some(u);
            used.push(wc.multiplier);
        }
    }
    // At lam = L (the inner problem is then L-strongly concave), always valid.
    if c.label_cost.is_none() {
        let lam = smooth.max(f64::MIN_POSITIVE);
        let sol = super::tune::diverged_as_none(super::wasserstein::wrm_penalized(
            loss,
            data,
            c.label_cost,
            checked.inner(),
            lam,
            &|_| None,
        ))?;
        if let Some(sol) = sol {
            if let Some(u) = super::w2exact::sinha_certificate(loss, data, &sol.x, lam, smooth, r)?
            {
                best = Some(best.map_or(u, |b: f64| b.min(u)));
                used.push(lam);
            }
        }
    }
    let note = match best {
        Some(_) => format!(
            "Sinha et al.'s certificate with the proven smoothness bound L = {smooth:.4e} at lam = {}",
            used.iter().map(|l| format!("{l:.4e}")).collect::<Vec<_>>().join(", ")
        ),
        None if c.label_cost.is_some() => {
            "no upper bound: Sinha's certificate is implemented for fixed labels".into()
        }
        None => format!(
            "no upper bound: no multiplier above L / 2 = {:.4e} gave a finite certificate",
            smooth / 2.0
        ),
    };
    Ok((wc, name, best, Some(note)))
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
