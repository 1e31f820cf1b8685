//! Setting up a fit (the library side of `robustflow fit-kl`): the built-in targets by
//! name, their default step sizes and initial laws, Laplace whitening, the initial
//! particles and the method list.
//!
//! | target | law | energy of `ift`/`wfr`/`fr` (`--energy auto`) |
//! |---|---|---|
//! | `mixture` | isotropic Gaussian mixture (`--mixture-*`), `m` stratified samples | `1/2 MMD^2` |
//! | `gaussian` | `N(mean, cov)` | `1/2 KSD^2` |
//! | `banana`, `funnel` | [`Banana`], [`Funnel`] | `1/2 KSD^2` |
//! | `logistic-posterior` | [`LogisticPosterior`] of a CSV dataset, whitened by its Laplace approximation ([`Whitened`]) | `1/2 KSD^2` |
//! | `--samples FILE` | weighted samples ([`read_samples`]) | `1/2 MMD^2` |
//!
//! Whitening: with the Laplace approximation `N(m, L L')` of the density the flows run on
//! `z = L^{-1} (x - m)`; the forward KL is invariant under this affine map, so the fit maps
//! back by `x = m + L z` (Zhu 2024 \[IKL\]; the KSD is that of the whitened target).
//!
//! The default step sizes ([`default_step_sizes`]) are per target family and method: the
//! MMD energy on samples takes step 1, the KSD energy on densities 0.05 (the funnel's neck
//! 0.02, the logistic posterior 1e-3), SVGD 0.1; `--step-size` overrides them
//! ([`apply_step_sizes`]).

use super::fit::{read_samples, InferenceTarget, Method};
use super::targets::{Banana, Funnel, LogisticPosterior, SteinTarget, Whitened};
use crate::error::{Error, Result};
use crate::experiments::InitSpec;
use crate::io::read_numeric_csv;
use crate::measure::{Distribution, Gaussian, GaussianMixture, LogDensity, Particles};
use ndarray::{Array1, Array2};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The target of a fit and how to whiten it (the target flags of `robustflow fit-kl`).
#[derive(Debug, Clone, clap::Args)]
pub struct TargetOptions {
    /// Built-in target: mixture, banana, funnel, logistic-posterior or gaussian (ignored
    /// with --samples).
    #[arg(long, default_value = "mixture")]
    pub target: String,
    /// Target given by samples: a numeric CSV (one row per sample; a column named
    /// `weight` holds sample weights).
    #[arg(long)]
    pub samples: Option<PathBuf>,
    /// Dataset of the logistic-regression posterior (numeric CSV with a header).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Label column of --data (0/1 or -1/+1), by name or 1-based index.
    #[arg(long)]
    pub target_col: Option<String>,
    /// Feature columns of --data, comma separated (default: all other columns).
    #[arg(long)]
    pub features: Option<String>,
    /// Add an intercept to the logistic model (the posterior gains one dimension).
    #[arg(long)]
    pub intercept: bool,
    /// Prior standard deviation of the logistic coefficients.
    #[arg(long, default_value_t = 10.0)]
    pub prior_std: f64,
    /// Mixture weights, comma separated (normalised).
    #[arg(long, default_value = "0.25,0.75")]
    pub mixture_weights: String,
    /// Mixture means: components separated by `;`, coordinates by `,`.
    #[arg(long, default_value = "-4,0;4,0")]
    pub mixture_means: String,
    /// Standard deviation of every mixture component (isotropic).
    #[arg(long, default_value_t = 1.0)]
    pub mixture_std: f64,
    /// Gaussian target mean (comma separated).
    #[arg(long, default_value = "0,0")]
    pub gaussian_mean: String,
    /// Gaussian target covariance: rows separated by `;`.
    #[arg(long, default_value = "1,0.5;0.5,1")]
    pub gaussian_cov: String,
    /// Dimension of the banana and funnel targets.
    #[arg(long, default_value_t = 2)]
    pub dim: usize,
    /// Banana scale `a` (std of the first coordinate).
    #[arg(long, default_value_t = 1.5)]
    pub banana_a: f64,
    /// Banana twist `b`.
    #[arg(long, default_value_t = 0.5)]
    pub banana_b: f64,
    /// Funnel neck scale `sigma` (Neal: 3).
    #[arg(long, default_value_t = 1.5)]
    pub funnel_sigma: f64,
    /// Samples drawn from a mixture target for the MMD energy (stratified by component).
    #[arg(long, default_value_t = 1000)]
    pub target_samples: usize,
    /// Run the flows in coordinates whitened by the Laplace approximation (mode and inverse
    /// Hessian; the forward KL is invariant under this affine map): auto (on for the
    /// logistic posterior), on, off. Reports and files are in the original coordinates.
    #[arg(long, default_value = "auto")]
    pub whiten: String,
}

/// Comma-separated finite numbers; errors name the flag `name`.
pub fn parse_list(name: &str, s: &str) -> Result<Vec<f64>> {
    s.split(',')
        .map(|t| {
            let t = t.trim();
            t.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| Error::param(name, s, &format!("`{t}` is not a finite number")))
        })
        .collect()
}

/// Rows separated by `;` of comma-separated numbers, all of one length.
pub fn parse_matrix(name: &str, s: &str) -> Result<Vec<Vec<f64>>> {
    let rows: Vec<Vec<f64>> = s
        .split(';')
        .map(|r| parse_list(name, r))
        .collect::<Result<_>>()?;
    let d = rows[0].len();
    if rows.iter().any(|r| r.len() != d) {
        return Err(Error::param(name, s, "rows of different lengths"));
    }
    Ok(rows)
}

/// The acceptance mixture or the one given by the options.
pub fn build_mixture(a: &TargetOptions) -> Result<GaussianMixture> {
    let w = parse_list("mixture-weights", &a.mixture_weights)?;
    let means = parse_matrix("mixture-means", &a.mixture_means)?;
    if w.len() != means.len() {
        return Err(Error::param(
            "mixture-weights",
            &a.mixture_weights,
            &format!("{} weights for {} means", w.len(), means.len()),
        ));
    }
    let comps = means
        .into_iter()
        .map(|m| Gaussian::isotropic(Array1::from(m), a.mixture_std))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| match e {
            Error::InvalidParameter { value, reason, .. } => Error::InvalidParameter {
                name: "mixture-std".into(),
                value,
                reason,
            },
            e => e,
        })?;
    GaussianMixture::new(w, comps)
}

/// A built target plus what a fit needs to initialise, report and plot it.
pub struct FitProblem {
    /// The target the flows run on (whitened when `whiten` is set).
    pub target: InferenceTarget,
    /// Centre of the automatic initial law.
    pub init_mean: Vec<f64>,
    /// Spread of the automatic initial law.
    pub init_std: f64,
    /// Per-method default step sizes.
    pub steps: BTreeMap<Method, f64>,
    /// Description for the report.
    pub info: serde_json::Value,
    /// When the flows run in whitened coordinates: the map back.
    pub whiten: Option<Arc<Whitened>>,
    /// The target in the original coordinates (for plots), when whitened.
    pub plot_target: Option<InferenceTarget>,
}

/// Default step sizes per method for a target family: `samples` (MMD energy), `funnel`,
/// `logistic`, anything else (`density`: the KSD energy).
pub fn default_step_sizes(kind: &str) -> BTreeMap<Method, f64> {
    let v: &[(Method, f64)] = match kind {
        // MMD energy on samples (mixture, --samples)
        "samples" => &[
            (Method::Ift, 1.0),
            (Method::Wfr, 1.0),
            (Method::Mmd, 1.0),
            (Method::Fr, 1.0),
            (Method::Ksd, 0.05),
            (Method::Svgd, 0.1),
            (Method::Langevin, 0.05),
        ],
        // the funnel's Hessian grows like e^{-v} in the neck: KSD descent and WFR fling
        // particles out of it with step 0.05
        "funnel" => &[
            (Method::Ift, 0.02),
            (Method::Wfr, 0.02),
            (Method::Mmd, 0.5),
            (Method::Fr, 0.02),
            (Method::Ksd, 0.02),
            (Method::Svgd, 0.1),
            (Method::Langevin, 0.02),
        ],
        "logistic" => &[
            (Method::Ift, 1e-3),
            (Method::Wfr, 1e-3),
            (Method::Mmd, 1e-3),
            (Method::Fr, 1e-3),
            (Method::Ksd, 1e-3),
            (Method::Svgd, 1e-3),
            (Method::Langevin, 1e-4),
        ],
        _ => &[
            (Method::Ift, 0.05),
            (Method::Wfr, 0.05),
            (Method::Mmd, 0.5),
            (Method::Fr, 0.05),
            (Method::Ksd, 0.05),
            (Method::Svgd, 0.1),
            (Method::Langevin, 0.05),
        ],
    };
    v.iter().copied().collect()
}

/// Build the target of `a` for `seed` (mixture samples and reference samples are seeded),
/// whitened when `a.whiten` asks for it.
pub fn build_target(a: &TargetOptions, seed: u64) -> Result<FitProblem> {
    let mut b = build_target_raw(a, seed)?;
    let on = match a.whiten.as_str() {
        "auto" => b.info["kind"] == "logistic-posterior",
        "on" => true,
        "off" => false,
        w => return Err(Error::param("whiten", w, "expected auto, on or off")),
    };
    if on {
        let dens =
            b.target.density.clone().ok_or_else(|| {
                Error::param("whiten", &a.whiten, "whitening needs a density target")
            })?;
        let w = Arc::new(Whitened::laplace(dens, &b.init_mean)?);
        b.info["whitened"] = serde_json::json!({"laplace_mode": w.shift,
            "laplace_cov": w.l.dot(&w.l.t()).outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>()});
        let d = w.shift.len();
        let orig = std::mem::replace(
            &mut b.target,
            InferenceTarget::from_density(w.clone() as Arc<dyn SteinTarget>),
        );
        b.plot_target = Some(orig);
        b.init_mean = vec![0.0; d];
        b.init_std = 2.0;
        b.steps = default_step_sizes("density");
        b.whiten = Some(w);
    }
    Ok(b)
}

fn build_target_raw(a: &TargetOptions, seed: u64) -> Result<FitProblem> {
    if let Some(p) = &a.samples {
        let s = read_samples(p)?;
        let mean = s.mean();
        let c = s.cov();
        let sd = (0..s.dim()).map(|k| c[[k, k]]).fold(0.0, f64::max).sqrt();
        return Ok(FitProblem {
            info: serde_json::json!({"kind": "samples", "file": p, "n": s.len(), "dim": s.dim()}),
            target: InferenceTarget::from_samples("samples", s),
            init_mean: mean,
            init_std: 2.0 * sd.max(1e-3),
            steps: default_step_sizes("samples"),
            whiten: None,
            plot_target: None,
        });
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_0f7a_46e7);
    match a.target.as_str() {
        "mixture" => {
            let mix = build_mixture(a)?;
            let d = Distribution::dim(&mix);
            let k = mix.components.len() as f64;
            let centre: Vec<f64> = (0..d)
                .map(|j| mix.components.iter().map(|c| c.mean[j]).sum::<f64>() / k)
                .collect();
            let spread = mix
                .components
                .iter()
                .map(|c| {
                    c.mean
                        .iter()
                        .zip(&centre)
                        .map(|(p, q)| (p - q) * (p - q))
                        .sum::<f64>()
                        .sqrt()
                })
                .fold(0.0, f64::max);
            Ok(FitProblem {
                info: serde_json::json!({"kind": "mixture", "weights": mix.weights,
                    "means": mix.components.iter().map(|c| c.mean.to_vec()).collect::<Vec<_>>(),
                    "std": a.mixture_std, "target_samples": a.target_samples}),
                target: InferenceTarget::mixture(mix, a.target_samples, seed ^ 0x7a46e7)?,
                init_mean: centre,
                init_std: spread.max(a.mixture_std),
                steps: default_step_sizes("samples"),
                whiten: None,
                plot_target: None,
            })
        }
        "gaussian" => {
            let m = parse_list("gaussian-mean", &a.gaussian_mean)?;
            let c = parse_matrix("gaussian-cov", &a.gaussian_cov)?;
            let d = m.len();
            if c.len() != d || c[0].len() != d {
                return Err(Error::param(
                    "gaussian-cov",
                    &a.gaussian_cov,
                    &format!("must be {d} x {d} for a mean of length {d}"),
                ));
            }
            let cov = Array2::from_shape_fn((d, d), |(i, j)| c[i][j]);
            let g = Gaussian::new(Array1::from(m.clone()), cov)
                .map_err(|e| Error::param("gaussian-cov", &a.gaussian_cov, &e.to_string()))?;
            let sd = (0..d).map(|k| c[k][k]).fold(0.0, f64::max).sqrt();
            let reference = Particles::uniform(g.sample(2000, &mut rng))?;
            Ok(FitProblem {
                info: serde_json::json!({"kind": "gaussian", "mean": m, "cov": c}),
                target: InferenceTarget::from_density(Arc::new(g)).with_reference(reference),
                init_mean: m,
                init_std: 2.0 * sd,
                steps: default_step_sizes("density"),
                whiten: None,
                plot_target: None,
            })
        }
        "banana" => {
            let b = Banana::new(a.dim, a.banana_a, a.banana_b)?;
            let reference = Particles::uniform(b.sample(2000, &mut rng))?;
            Ok(FitProblem {
                info: serde_json::json!({"kind": "banana", "dim": a.dim, "a": a.banana_a,
                    "b": a.banana_b, "exact_mean": b.mean(),
                    "exact_cov": b.cov().outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>()}),
                target: InferenceTarget::from_density(Arc::new(b)).with_reference(reference),
                init_mean: vec![0.0; a.dim],
                init_std: 2.0,
                steps: default_step_sizes("density"),
                whiten: None,
                plot_target: None,
            })
        }
        "funnel" => {
            let f = Funnel::new(a.dim, a.funnel_sigma)?;
            let reference = Particles::uniform(f.sample(2000, &mut rng))?;
            Ok(FitProblem {
                info: serde_json::json!({"kind": "funnel", "dim": a.dim, "sigma": a.funnel_sigma,
                    "exact_cov": f.cov().outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>()}),
                target: InferenceTarget::from_density(Arc::new(f)).with_reference(reference),
                init_mean: vec![0.0; a.dim],
                init_std: 1.5,
                steps: default_step_sizes("funnel"),
                whiten: None,
                plot_target: None,
            })
        }
        "logistic-posterior" | "logistic" => {
            let path = a.data.as_ref().ok_or_else(|| {
                Error::param("data", "", "--target logistic-posterior needs --data FILE")
            })?;
            let tc = a.target_col.as_deref().ok_or_else(|| {
                Error::param(
                    "target-col",
                    "",
                    "--target logistic-posterior needs --target-col COL",
                )
            })?;
            let table = read_numeric_csv(path)?;
            let feats: Option<Vec<String>> = a
                .features
                .as_ref()
                .map(|f| f.split(',').map(|s| s.trim().to_string()).collect());
            let post = LogisticPosterior::from_table(
                &table,
                path,
                tc,
                feats.as_deref(),
                a.intercept,
                a.prior_std,
            )?;
            let d = LogDensity::dim(&post);
            Ok(FitProblem {
                info: serde_json::json!({"kind": "logistic-posterior", "data": path,
                    "target_col": tc, "coefficients": post.names, "intercept": a.intercept,
                    "prior_std": a.prior_std, "n": post.y.len(),
                    "features_standardised": true}),
                target: InferenceTarget::from_density(Arc::new(post)),
                init_mean: vec![0.0; d],
                init_std: 1.0,
                steps: default_step_sizes("logistic"),
                whiten: None,
                plot_target: None,
            })
        }
        other => Err(Error::param(
            "target",
            other,
            "expected mixture, banana, funnel, logistic-posterior or gaussian (or give --samples)",
        )),
    }
}

/// The initial particles of `init` (`auto`, `gaussian:MEAN:STD` (alias `normal:`), or a
/// file of positions read by [`read_samples`]) for problem `b`, in the flows' (possibly
/// whitened) coordinates: user-given positions are in the original coordinates.
pub fn initial_particles(
    init: &str,
    particles: usize,
    b: &FitProblem,
    seed: u64,
) -> Result<Particles> {
    let p = initial_particles_raw(init, particles, b, seed)?;
    match (&b.whiten, init) {
        (Some(w), i) if i != "auto" => {
            // user-given positions are in the original coordinates: z = L^{-1}(x - m)
            let mut z = p.x.clone();
            for mut r in z.outer_iter_mut() {
                let diff: Vec<f64> = r.iter().zip(&w.shift).map(|(x, m)| x - m).collect();
                let zi = crate::linalg::solve_lower(&w.l, &diff);
                r.assign(&ndarray::ArrayView1::from(&zi[..]));
            }
            Particles::with_log_weights(z, p.log_weights().clone())
        }
        _ => Ok(p),
    }
}

fn initial_particles_raw(
    init: &str,
    particles: usize,
    b: &FitProblem,
    seed: u64,
) -> Result<Particles> {
    let d = b.target.dim();
    let mut rng = StdRng::seed_from_u64(seed);
    crate::error::check_count("particles", particles)?;
    if init == "auto" {
        let g = Gaussian::isotropic(Array1::from(b.init_mean.clone()), b.init_std)?;
        return Particles::uniform(g.sample(particles, &mut rng));
    }
    if InitSpec::is_gaussian(init) {
        // the one initial-law parser (`gaussian:MEAN:STD`, alias `normal:MEAN:STD`)
        let spec: InitSpec = init.parse()?;
        return Particles::uniform(spec.positions(particles, d, &mut rng)?);
    }
    let p = read_samples(Path::new(init))?;
    if p.dim() != d {
        return Err(Error::Data {
            path: init.into(),
            row: None,
            col: None,
            msg: format!("{} coordinate columns, target has d = {d}", p.dim()),
        });
    }
    Ok(p)
}

/// The methods of a comma list (or `all`: those applicable to `t`), duplicates removed;
/// on a sample target the score-based methods are dropped.
pub fn parse_methods(s: &str, t: &InferenceTarget) -> Result<Vec<Method>> {
    if s.trim() == "all" {
        return Ok(Method::ALL
            .iter()
            .copied()
            .filter(|m| match m {
                Method::Mmd => t.samples.is_some(),
                Method::Ksd | Method::Svgd | Method::Langevin => t.density.is_some(),
                _ => true,
            })
            .collect());
    }
    let mut out: Vec<Method> = Vec::new();
    for p in s.split(',').filter(|p| !p.trim().is_empty()) {
        let m: Method = p.parse()?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.is_empty() {
        return Err(Error::param("method", s, "no method given"));
    }
    if t.density.is_none() {
        // sample targets: the baselines need a score
        out.retain(|m| !matches!(m, Method::Svgd | Method::Langevin | Method::Ksd));
        if out.is_empty() {
            return Err(Error::param(
                "method",
                s,
                "svgd, langevin and ksd need a density target; with --samples use ift, wfr, mmd, fr",
            ));
        }
    }
    Ok(out)
}

/// Apply `--step-size` (one number, or `method=value` pairs) over the defaults.
pub fn apply_step_sizes(spec: &Option<String>, steps: &mut BTreeMap<Method, f64>) -> Result<()> {
    let Some(spec) = spec else { return Ok(()) };
    if let Ok(v) = spec.trim().parse::<f64>() {
        crate::error::check_positive("step-size", v)?;
        for m in Method::ALL {
            steps.insert(m, v);
        }
        return Ok(());
    }
    for p in spec.split(',') {
        let (m, v) = p.split_once('=').ok_or_else(|| {
            Error::param("step-size", spec, "expected a number or method=value pairs")
        })?;
        let m: Method = m.parse()?;
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| Error::param("step-size", spec, "not a number"))?;
        steps.insert(m, crate::error::check_positive("step-size", v)?);
    }
    Ok(())
}
