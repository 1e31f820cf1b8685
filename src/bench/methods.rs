//! The tuning grid of each benchmark method ([`method_grid`]): the ambiguity
//! configurations the suite ([`super::suite`]) and the robust least-squares task
//! ([`super::rls`]) tune over. A module of its own so that `suite` and `rls` both use it
//! without importing each other.

use crate::dro::{AmbiguityConfig, InnerFlow, SetKind};
use crate::error::{Error, Result};

/// A method's ambiguity configurations (its tuning grid) and their labels. Every DRO
/// method has three points: WRM and WFR penalty `gamma` in {0.5, 1, 2}; W1 radius in
/// {0.05, 0.1, 0.2}; KL radius in {0.05, 0.2, 0.5}; chi2 radius in {0.1, 0.5, 1}; CVaR
/// `alpha` in {0.5, 0.2, 0.1}; MMD (IFT or WFR inner flow) penalty `lambda` in {1, 3, 10}
/// of `-E_mu l + lambda/2 MMD^2(mu, P_N)` (the penalty form, as WRM and WFR: the constraint
/// form's bisection on `lambda` costs 10-30 penalised solves per minibatch). `ro` and
/// `kdro` are `rls`-only ([`super::rls::rls_grid`]) and an error here.
pub fn method_grid(
    method: &str,
    inner_steps: usize,
    seed: u64,
) -> Result<Vec<(String, AmbiguityConfig)>> {
    let base = AmbiguityConfig {
        inner_steps,
        inner_step_size: 0.1,
        seed,
        ..AmbiguityConfig::default()
    };
    let radius = |set: SetKind, rs: &[f64], extra: &dyn Fn(&mut AmbiguityConfig)| {
        rs.iter()
            .map(|&r| {
                let mut c = AmbiguityConfig {
                    set,
                    radius: Some(r),
                    ..base.clone()
                };
                extra(&mut c);
                (format!("radius={r}"), c)
            })
            .collect::<Vec<_>>()
    };
    let penalty = |set: SetKind, ps: &[f64], inner_flow: InnerFlow| {
        ps.iter()
            .map(|&p| {
                (
                    format!("penalty={p}"),
                    AmbiguityConfig {
                        set,
                        penalty: Some(p),
                        inner_flow,
                        ..base.clone()
                    },
                )
            })
            .collect::<Vec<_>>()
    };
    let none = |_: &mut AmbiguityConfig| {};
    Ok(match method {
        "erm" => vec![("-".into(), base.clone())],
        "wrm" => penalty(SetKind::Wasserstein, &[0.5, 1.0, 2.0], InnerFlow::Ift),
        "w1" => radius(SetKind::Wasserstein, &[0.05, 0.1, 0.2], &|c| {
            c.norm = Some(crate::dro::Norm::L2)
        }),
        "kl" => radius(SetKind::Kl, &[0.05, 0.2, 0.5], &none),
        "chi2" => radius(SetKind::Chi2, &[0.1, 0.5, 1.0], &none),
        // rho = ln(1/alpha) for alpha = 0.5, 0.2, 0.1
        "cvar" => radius(
            SetKind::Cvar,
            &[0.5f64.recip().ln(), 5f64.ln(), 10f64.ln()],
            &none,
        ),
        "wfr" => penalty(SetKind::Wfr, &[0.5, 1.0, 2.0], InnerFlow::Ift),
        "ro" | "kdro" => {
            return Err(Error::param(
                "methods",
                method,
                "defined for the rls task only",
            ))
        }
        other => {
            // `mmd_<geometry>`: the MMD set with the inner flow named by the geometry
            // registry (`ift` or `wfr`)
            match other
                .strip_prefix("mmd_")
                .and_then(crate::flow::Geometry::from_canonical)
            {
                Some(g @ (crate::flow::Geometry::Ift | crate::flow::Geometry::Wfr)) => {
                    penalty(SetKind::Mmd, &MMD_PENALTIES, g.name().parse::<InnerFlow>()?)
                }
                _ => return Err(Error::param("methods", method, "unknown method")),
            }
        }
    })
}

/// The MMD methods' penalties (`lambda` of `-E_mu l + lambda/2 MMD^2`); the `demo`'s
/// kernel-DRO penalty 10 was chosen from the same three values.
pub const MMD_PENALTIES: [f64; 3] = [1.0, 3.0, 10.0];
