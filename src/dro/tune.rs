//! Tuning the multiplier of the penalty form to reach a radius (the constraint form).
//!
//! For every set here the divergence reached by the penalised solution, `D(lambda)`, is
//! non-increasing in `lambda`. [`tune`] brackets the radius by factors of 4 from a start
//! value and bisects on `ln lambda`, always keeping the feasible side (`D <= radius`), so
//! the returned solution is a feasible point of the constrained sup. A solve that diverges
//! counts as infeasible (a multiplier too small for the loss's growth).

use crate::error::{Error, Result};

/// One evaluation of the penalised problem.
pub(crate) struct Probe<S> {
    /// The multiplier.
    pub lambda: f64,
    /// The divergence reached.
    pub radius: f64,
    /// The solution.
    pub state: S,
    /// Whether the constraint is active: a smaller multiplier exceeded the radius. `false`
    /// when the radius was never exceeded (the multiplier then went to its floor and is no
    /// hint for the next call: callers must not carry it over).
    pub active: bool,
}

/// Find the smallest multiplier (up to the bisection's resolution) whose solution has
/// `radius <= target`. `eval(lambda)` returns `Ok(None)` when the solve diverged.
pub(crate) fn tune<S>(
    target: f64,
    lambda0: f64,
    iters: usize,
    rtol: f64,
    mut eval: impl FnMut(f64) -> Result<Option<(f64, S)>>,
) -> Result<Probe<S>> {
    let lambda0 = if lambda0.is_finite() && lambda0 > 0.0 {
        lambda0
    } else {
        1.0
    };
    let mut probe = |lam: f64| -> Result<Option<Probe<S>>> {
        Ok(eval(lam)?.map(|(radius, state)| Probe {
            lambda: lam,
            radius,
            state,
            active: true,
        }))
    };
    let feasible = |p: &Option<Probe<S>>| p.as_ref().is_some_and(|p| p.radius <= target);
    let first = probe(lambda0)?;
    let (mut lo, mut hi): (f64, Probe<S>);
    if feasible(&first) {
        hi = first.expect("feasible");
        let mut lam = hi.lambda;
        let mut found = None;
        for _ in 0..60 {
            lam /= 4.0;
            let q = probe(lam)?;
            if feasible(&q) {
                hi = q.expect("feasible");
            } else {
                found = Some(lam);
                break;
            }
        }
        match found {
            Some(l) => lo = l,
            // The radius is never exceeded: the set's largest divergence is below it.
            None => {
                hi.active = false;
                return Ok(hi);
            }
        }
    } else {
        lo = lambda0;
        let mut lam = lambda0;
        let mut found = None;
        for _ in 0..60 {
            lam *= 4.0;
            let q = probe(lam)?;
            if feasible(&q) {
                found = q;
                break;
            }
            lo = lam;
        }
        hi = found.ok_or_else(|| {
            Error::param(
                "radius",
                target,
                &format!(
                    "no multiplier up to {:e} reaches this radius (the inner solve diverges or the radius is too small)",
                    lam
                ),
            )
        })?;
    }
    for _ in 0..iters {
        if target - hi.radius <= rtol * target {
            break;
        }
        let mid = (lo * hi.lambda).sqrt();
        if !(mid > lo && mid < hi.lambda) {
            break;
        }
        let q = probe(mid)?;
        if feasible(&q) {
            hi = q.expect("feasible");
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

/// Treat a divergence of the inner solve as "infeasible" for [`tune`]; other errors pass.
pub(crate) fn diverged_as_none<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::Diverged { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Minimise a unimodal function on `[a, b]` by golden-section search; returns `(x, f(x))`.
pub(crate) fn golden(
    mut f: impl FnMut(f64) -> f64,
    mut a: f64,
    mut b: f64,
    iters: usize,
) -> (f64, f64) {
    let r = 0.5 * (5f64.sqrt() - 1.0);
    let mut c = b - r * (b - a);
    let mut d = a + r * (b - a);
    let mut fc = f(c);
    let mut fd = f(d);
    for _ in 0..iters {
        if fc <= fd {
            b = d;
            d = c;
            fd = fc;
            c = b - r * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + r * (b - a);
            fd = f(d);
        }
    }
    if fc <= fd {
        (c, fc)
    } else {
        (d, fd)
    }
}
