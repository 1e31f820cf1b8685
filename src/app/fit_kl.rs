//! `robustflow fit-kl`: forward-KL (inclusive) particle approximations of a sample or
//! density target by IFT / WFR / MMD / KSD / FR flows, against the reverse-KL baselines
//! SVGD and Langevin, all from the same seed and initial particles.
//!
//! Writes to `--out-dir`: `particles_<method>.csv` (positions and weight), `report.json`
//! (per method under `methods.<name>`), `trace.csv` (all methods), and PNG plots
//! `particles_<method>.png` (2-D: over the target density; higher dimensions: the two
//! coordinates of `--plot-dims`) and `trace.png`.

use super::GlobalOpts;
use crate::error::{Error, Result};
use crate::inference::{
    fit, summarize, Banana, EnergyChoice, FitConfig, FitKernels, Funnel, InferenceTarget,
    LogisticPosterior, Method, MethodReport, SteinTarget, Whitened,
};
use crate::io::{read_numeric_csv, write_json_atomic, write_points_csv};
use crate::kernel::{Bandwidth, KernelKind};
use crate::measure::{Distribution, Gaussian, GaussianMixture, LogDensity, Particles};
use crate::plot::{line_chart, scatter_weighted, Background, Series, WeightedPoints};
use ndarray::{Array1, Array2};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Arguments of `robustflow fit-kl`.
#[derive(Debug, Clone, clap::Args)]
pub struct FitKlArgs {
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
    /// Methods to compare, comma separated: ift, wfr, mmd, ksd, fr, svgd, langevin, or `all`
    /// (the applicable ones). Default: ift, wfr, svgd, langevin (svgd and langevin only for
    /// density targets).
    #[arg(long, default_value = "ift,wfr,svgd,langevin")]
    pub method: String,
    /// Energy of ift, wfr and fr: auto (MMD to samples when the target has them: --samples
    /// and the mixture; KSD otherwise), ksd or mmd.
    #[arg(long, default_value = "auto")]
    pub energy: String,
    /// Number of particles.
    #[arg(long, default_value_t = 200)]
    pub particles: usize,
    /// Iterations per method.
    #[arg(long, default_value_t = 400)]
    pub steps: usize,
    /// Step size: one number for every method, or `method=value` pairs
    /// (e.g. `ift=1,svgd=0.1`) overriding the per-target defaults.
    #[arg(long)]
    pub step_size: Option<String>,
    /// Initial particles: `auto` (a broad Gaussian chosen for the target), `normal:MEAN:STD`
    /// (MEAN comma separated or one value for all coordinates), or a CSV file of positions.
    #[arg(long, default_value = "auto")]
    pub init: String,
    /// Seed (initial particles, target samples, Langevin noise).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Repeat the comparison for seeds `seed .. seed + seeds - 1` and report the median
    /// (outputs other than the summary are those of the first seed).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Weight of the transport part.
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
    /// Weight `beta` of the MMD-prox weight step of ift (`eta = step * beta`).
    #[arg(long, default_value_t = 1.0)]
    pub beta: f64,
    /// Weight of the Fisher-Rao mirror step of wfr and fr (`w <- w exp(-step * fr_beta * g)`).
    /// Default: 1 for the MMD energy (sample and mixture targets, step 1), 10 for the KSD
    /// energy (density targets, step 0.05): the mirror step is stable for
    /// `step * fr_beta * max|k| <~ 1`; larger products make the weights oscillate.
    #[arg(long)]
    pub fr_beta: Option<f64>,
    /// MMD kernel: gaussian, imq or laplace.
    #[arg(long, default_value = "gaussian")]
    pub kernel: String,
    /// Kernel approximation of the MMD energy: exact, rff:D (D random Fourier features,
    /// Gaussian kernel) or nystrom:M (M landmarks from the target samples). The reported
    /// MMD^2 to the target stays exact; the ift weight step needs the exact kernel.
    #[arg(long, default_value = "exact")]
    pub approx: String,
    /// MMD bandwidth: a number or `median` (over the target samples).
    #[arg(long, default_value = "median")]
    pub bandwidth: String,
    /// Stein base kernel: imq or gaussian.
    #[arg(long, default_value = "imq")]
    pub stein_kernel: String,
    /// Stein bandwidth: a number or `median` (over the initial particles).
    #[arg(long, default_value = "median")]
    pub stein_bandwidth: String,
    /// Samples drawn from a mixture target for the MMD energy (stratified by component).
    #[arg(long, default_value_t = 1000)]
    pub target_samples: usize,
    /// Run the flows in coordinates whitened by the Laplace approximation (mode and inverse
    /// Hessian; the forward KL is invariant under this affine map): auto (on for the
    /// logistic posterior), on, off. Reports and files are in the original coordinates.
    #[arg(long, default_value = "auto")]
    pub whiten: String,
    /// Trace every this many steps.
    #[arg(long, default_value_t = 10)]
    pub trace_every: usize,
    /// Coordinates (1-based) shown in plots of targets with more than two dimensions.
    #[arg(long, default_value = "1,2")]
    pub plot_dims: String,
    /// Output directory.
    #[arg(long, default_value = "fit-kl-out")]
    pub out_dir: PathBuf,
}

fn parse_list(name: &str, s: &str) -> Result<Vec<f64>> {
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

fn parse_matrix(name: &str, s: &str) -> Result<Vec<Vec<f64>>> {
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
fn build_mixture(a: &FitKlArgs) -> Result<GaussianMixture> {
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

pub use crate::inference::read_samples;

/// A built target plus what the app needs to plot and initialise it.
struct Built {
    target: InferenceTarget,
    /// Centre and spread of the automatic initial law.
    init_mean: Vec<f64>,
    init_std: f64,
    /// Per-method default step sizes.
    steps: BTreeMap<Method, f64>,
    /// Description for the report.
    info: serde_json::Value,
    /// When the flows run in whitened coordinates: the map back.
    whiten: Option<Arc<Whitened>>,
    /// The target in the original coordinates (for plots), when whitened.
    plot_target: Option<InferenceTarget>,
}

fn default_steps(kind: &str) -> BTreeMap<Method, f64> {
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

fn build_target(a: &FitKlArgs, seed: u64) -> Result<Built> {
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
        b.steps = default_steps("density");
        b.whiten = Some(w);
    }
    Ok(b)
}

fn build_target_raw(a: &FitKlArgs, seed: u64) -> Result<Built> {
    if let Some(p) = &a.samples {
        let s = read_samples(p)?;
        let mean = s.mean();
        let c = s.cov();
        let sd = (0..s.dim()).map(|k| c[[k, k]]).fold(0.0, f64::max).sqrt();
        return Ok(Built {
            info: serde_json::json!({"kind": "samples", "file": p, "n": s.len(), "dim": s.dim()}),
            target: InferenceTarget::from_samples("samples", s),
            init_mean: mean,
            init_std: 2.0 * sd.max(1e-3),
            steps: default_steps("samples"),
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
            Ok(Built {
                info: serde_json::json!({"kind": "mixture", "weights": mix.weights,
                    "means": mix.components.iter().map(|c| c.mean.to_vec()).collect::<Vec<_>>(),
                    "std": a.mixture_std, "target_samples": a.target_samples}),
                target: InferenceTarget::mixture(mix, a.target_samples, seed ^ 0x7a46e7)?,
                init_mean: centre,
                init_std: spread.max(a.mixture_std),
                steps: default_steps("samples"),
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
            Ok(Built {
                info: serde_json::json!({"kind": "gaussian", "mean": m, "cov": c}),
                target: InferenceTarget::from_density(Arc::new(g)).with_reference(reference),
                init_mean: m,
                init_std: 2.0 * sd,
                steps: default_steps("density"),
                whiten: None,
                plot_target: None,
            })
        }
        "banana" => {
            let b = Banana::new(a.dim, a.banana_a, a.banana_b)?;
            let reference = Particles::uniform(b.sample(2000, &mut rng))?;
            Ok(Built {
                info: serde_json::json!({"kind": "banana", "dim": a.dim, "a": a.banana_a,
                    "b": a.banana_b, "exact_mean": b.mean(),
                    "exact_cov": b.cov().outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>()}),
                target: InferenceTarget::from_density(Arc::new(b)).with_reference(reference),
                init_mean: vec![0.0; a.dim],
                init_std: 2.0,
                steps: default_steps("density"),
                whiten: None,
                plot_target: None,
            })
        }
        "funnel" => {
            let f = Funnel::new(a.dim, a.funnel_sigma)?;
            let reference = Particles::uniform(f.sample(2000, &mut rng))?;
            Ok(Built {
                info: serde_json::json!({"kind": "funnel", "dim": a.dim, "sigma": a.funnel_sigma,
                    "exact_cov": f.cov().outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>()}),
                target: InferenceTarget::from_density(Arc::new(f)).with_reference(reference),
                init_mean: vec![0.0; a.dim],
                init_std: 1.5,
                steps: default_steps("funnel"),
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
            Ok(Built {
                info: serde_json::json!({"kind": "logistic-posterior", "data": path,
                    "target_col": tc, "coefficients": post.names, "intercept": a.intercept,
                    "prior_std": a.prior_std, "n": post.y.len(),
                    "features_standardised": true}),
                target: InferenceTarget::from_density(Arc::new(post)),
                init_mean: vec![0.0; d],
                init_std: 1.0,
                steps: default_steps("logistic"),
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

fn initial_particles(a: &FitKlArgs, b: &Built, seed: u64) -> Result<Particles> {
    let p = initial_particles_raw(a, b, seed)?;
    match (&b.whiten, a.init.as_str()) {
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

fn initial_particles_raw(a: &FitKlArgs, b: &Built, seed: u64) -> Result<Particles> {
    let d = b.target.dim();
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = |mean: Vec<f64>, sd: f64, rng: &mut StdRng| -> Result<Particles> {
        let g = Gaussian::isotropic(Array1::from(mean), sd)?;
        Particles::uniform(g.sample(a.particles, rng))
    };
    crate::error::check_count("particles", a.particles)?;
    if a.init == "auto" {
        return normal(b.init_mean.clone(), b.init_std, &mut rng);
    }
    if let Some(rest) = a.init.strip_prefix("normal:") {
        let (m, s) = rest
            .rsplit_once(':')
            .ok_or_else(|| Error::param("init", &a.init, "expected normal:MEAN:STD"))?;
        let mut mean = parse_list("init", m)?;
        if mean.len() == 1 {
            mean = vec![mean[0]; d];
        }
        if mean.len() != d {
            return Err(Error::param(
                "init",
                &a.init,
                &format!("mean has {} entries, target has d = {d}", mean.len()),
            ));
        }
        let sd: f64 = s
            .parse()
            .map_err(|_| Error::param("init", &a.init, "STD is not a number"))?;
        return normal(mean, crate::error::check_positive("init", sd)?, &mut rng);
    }
    let p = read_samples(Path::new(&a.init))?;
    if p.dim() != d {
        return Err(Error::Data {
            path: a.init.clone().into(),
            row: None,
            col: None,
            msg: format!("{} coordinate columns, target has d = {d}", p.dim()),
        });
    }
    Ok(p)
}

fn parse_methods(s: &str, t: &InferenceTarget) -> Result<Vec<Method>> {
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

fn apply_step_sizes(spec: &Option<String>, steps: &mut BTreeMap<Method, f64>) -> Result<()> {
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

/// The report written to `report.json`.
#[derive(Serialize)]
struct Report {
    command: String,
    target: serde_json::Value,
    particles: usize,
    steps: usize,
    seed: u64,
    energy: EnergyChoice,
    alpha: f64,
    beta: f64,
    fr_beta: f64,
    kernels: FitKernels,
    /// Kernel approximation of the MMD energy (`exact`, `rff:D`, `nystrom:M`).
    approx: crate::kernel::Approx,
    methods: BTreeMap<String, MethodReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seeds: Option<SeedSummary>,
}

#[derive(Serialize)]
struct SeedSummary {
    seeds: Vec<u64>,
    /// per method: per seed component masses (mixtures) or mean vectors
    component_mass: BTreeMap<String, Vec<Vec<f64>>>,
    /// per method: per seed max_c |mass_c - p_c|
    mass_error: BTreeMap<String, Vec<f64>>,
    /// per method: median over seeds of mass_error
    median_mass_error: BTreeMap<String, f64>,
    /// per method: [min, lower quartile, median, upper quartile, max] over seeds of mass_error
    mass_error_quantiles: BTreeMap<String, [f64; 5]>,
    /// per method: per seed KSD or MMD^2 to the target
    discrepancy: BTreeMap<String, Vec<f64>>,
}

/// Quantile `p` of sorted values by linear interpolation (the median of an even count is
/// the mean of the two middle values).
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let h = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

fn plot_dims(s: &str, d: usize) -> Result<(usize, usize)> {
    let v: Vec<usize> = s
        .split(',')
        .map(|t| t.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::param("plot-dims", s, "expected two 1-based indices i,j"))?;
    if v.len() != 2 || v.iter().any(|&i| i == 0 || i > d) || v[0] == v[1] {
        return Err(Error::param(
            "plot-dims",
            s,
            &format!("expected two different 1-based indices in 1..={d}"),
        ));
    }
    Ok((v[0] - 1, v[1] - 1))
}

fn plot_particles(
    path: &Path,
    title: &str,
    mu: &Particles,
    t: &InferenceTarget,
    dims: (usize, usize),
) -> Result<()> {
    let (i, j) = dims;
    let w = mu.weights();
    let pts: Vec<(f64, f64, f64)> =
        mu.x.outer_iter()
            .zip(&w)
            .map(|(r, wi)| (r[i], r[j], *wi))
            .collect();
    let mut sets = Vec::new();
    // bounds from the reference samples (or the target samples) and the particles
    let mut all: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1)).collect();
    let refs = t.reference.as_ref().or(t.samples.as_ref());
    if let Some(r) = refs {
        all.extend(r.x.outer_iter().map(|row| (row[i], row[j])));
        if t.density.is_none() || mu.dim() > 2 {
            sets.push(WeightedPoints {
                name: "target samples".into(),
                points: r.x.outer_iter().map(|row| (row[i], row[j], 1.0)).collect(),
                fixed_size: true,
            });
        }
    }
    sets.push(WeightedPoints {
        name: title.into(),
        points: pts,
        fixed_size: false,
    });
    // the particles drawn last, on top
    let q = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() - 1) as f64 * p) as usize]
    };
    let mut xs: Vec<f64> = all.iter().map(|p| p.0).filter(|v| v.is_finite()).collect();
    let mut ys: Vec<f64> = all.iter().map(|p| p.1).filter(|v| v.is_finite()).collect();
    let (x0, x1) = (q(&mut xs, 0.005), q(&mut xs, 0.995));
    let (y0, y1) = (q(&mut ys, 0.005), q(&mut ys, 0.995));
    let px = 0.1 * (x1 - x0).max(1e-6);
    let py = 0.1 * (y1 - y0).max(1e-6);
    let bounds = ((x0 - px, x1 + px), (y0 - py, y1 + py));
    let dens = t.density.clone().filter(|d| d.dim() == 2);
    let f;
    let bg = match &dens {
        Some(dn) => {
            // normalise by the density's maximum on the grid (done by the plot)
            let lmax = {
                let mut m = f64::NEG_INFINITY;
                for a in 0..60 {
                    for b in 0..60 {
                        let x = bounds.0 .0 + (a as f64 + 0.5) / 60.0 * (bounds.0 .1 - bounds.0 .0);
                        let y = bounds.1 .0 + (b as f64 + 0.5) / 60.0 * (bounds.1 .1 - bounds.1 .0);
                        m = m.max(dn.log_density(&[x, y]));
                    }
                }
                m
            };
            let dn = dn.clone();
            f = move |x: f64, y: f64| (dn.log_density(&[x, y]) - lmax).exp();
            Some(Background {
                f: &f,
                resolution: 120,
            })
        }
        None => None,
    };
    scatter_weighted(path, title, &sets, bg, Some(bounds))
}

/// Run `robustflow fit-kl`.
pub fn run(a: &FitKlArgs, g: &GlobalOpts) -> Result<()> {
    crate::error::check_count("seeds", a.seeds as usize)?;
    crate::error::check_count("steps", a.steps)?;
    let energy: EnergyChoice = a.energy.parse()?;
    let kernel: KernelKind = a.kernel.parse()?;
    let approx: crate::kernel::Approx = a.approx.parse()?;
    let bandwidth: Bandwidth = a.bandwidth.parse()?;
    let stein_kernel: KernelKind = a.stein_kernel.parse()?;
    if stein_kernel == KernelKind::Laplace {
        return Err(Error::param(
            "stein-kernel",
            "laplace",
            "the Stein kernel needs a twice differentiable base kernel: use imq or gaussian",
        ));
    }
    let stein_bandwidth: Bandwidth = a.stein_bandwidth.parse()?;
    let mut guard = crate::outputs::OutputGuard::new();
    for (flag, p) in [("samples", &a.samples), ("data", &a.data)] {
        if let Some(p) = p {
            guard = guard.input(flag, p);
        }
    }
    guard.files_in(
        "out-dir",
        &a.out_dir,
        &[
            ("trace", ".csv"),
            ("report", ".json"),
            ("particles_", ".csv"),
            ("", ".png"),
        ],
    )?;
    std::fs::create_dir_all(&a.out_dir).map_err(|e| Error::io(&a.out_dir, e))?;
    let mut methods_first: BTreeMap<String, MethodReport> = BTreeMap::new();
    let mut summary = SeedSummary {
        seeds: Vec::new(),
        component_mass: BTreeMap::new(),
        mass_error: BTreeMap::new(),
        median_mass_error: BTreeMap::new(),
        mass_error_quantiles: BTreeMap::new(),
        discrepancy: BTreeMap::new(),
    };
    let mut first_kernels = None;
    let mut first_fr_beta = f64::NAN;
    let mut info = serde_json::Value::Null;
    // `seed + i` wraps around at 2^64 (a seed is an opaque RNG key; no overflow).
    for seed in (0..a.seeds).map(|i| a.seed.wrapping_add(i)) {
        let built = build_target(a, seed)?;
        let methods = parse_methods(&a.method, &built.target)?;
        if !approx.is_exact()
            && methods.contains(&Method::Ift)
            && built.target.samples.is_some()
            && energy != EnergyChoice::Ksd
        {
            return Err(Error::param(
                "approx",
                &a.approx,
                "ift takes the exact MMD-prox weight step: use the exact kernel, or wfr / mmd / fr",
            ));
        }
        let init = initial_particles(a, &built, seed)?;
        // the mixture has samples and a density: with --energy ksd its step sizes are those
        // of the density targets
        let mut step_sizes = if energy == EnergyChoice::Ksd && built.info["kind"] == "mixture" {
            default_steps("density")
        } else {
            built.steps.clone()
        };
        apply_step_sizes(&a.step_size, &mut step_sizes)?;
        let cfg = FitConfig {
            steps: a.steps,
            step_size: 0.1,
            step_sizes,
            seed,
            alpha: a.alpha,
            beta: a.beta,
            fr_beta: match a.fr_beta {
                Some(v) => crate::error::check_positive("fr-beta", v)?,
                None if built.target.samples.is_some() && energy != EnergyChoice::Ksd => 1.0,
                None => 10.0,
            },
            kernel,
            bandwidth,
            stein_kernel,
            stein_bandwidth,
            energy,
            trace_every: a.trace_every,
            quiet: g.quiet,
            approx,
            ..Default::default()
        };
        let kernels = FitKernels::new(&built.target, &init, &cfg)?;
        let first = seed == a.seed;
        let dims = if built.target.dim() >= 2 {
            Some(plot_dims(&a.plot_dims, built.target.dim())?)
        } else {
            None
        };
        let mut traces = Vec::new();
        summary.seeds.push(seed);
        for m in &methods {
            let mut f = fit(&built.target, &init, *m, &kernels, &cfg)?;
            let mut rep = summarize(&built.target, &kernels, &cfg, &f)?;
            if let Some(w) = &built.whiten {
                // back to the original coordinates (KSD stays the whitened one)
                f.particles = Particles::with_log_weights(
                    w.map_rows(&f.particles.x),
                    f.particles.log_weights().clone(),
                )?;
                rep.mean = f.particles.mean();
                rep.cov = f.particles.cov().outer_iter().map(|r| r.to_vec()).collect();
            }
            let plot_target = built.plot_target.as_ref().unwrap_or(&built.target);
            let name = m.as_str().to_string();
            if !g.quiet {
                eprintln!(
                    "seed {seed} {name:9} energy {:>4}  {}  ess {:8.1}  {:.2}s",
                    rep.energy,
                    match (&rep.component_mass, rep.ksd, rep.mmd2) {
                        (Some(cm), _, _) => format!("mass {cm:.3?}"),
                        (None, Some(k), _) => format!("ksd {k:.3e}"),
                        (None, None, Some(v)) => format!("mmd2 {v:.3e}"),
                        _ => String::new(),
                    },
                    rep.ess,
                    rep.time_s
                );
            }
            if let (Some(cm), Some(mix)) = (&rep.component_mass, &built.target.mixture) {
                let err = cm
                    .iter()
                    .zip(&mix.weights)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                summary
                    .component_mass
                    .entry(name.clone())
                    .or_default()
                    .push(cm.clone());
                summary
                    .mass_error
                    .entry(name.clone())
                    .or_default()
                    .push(err);
            }
            if let Some(v) = rep.ksd.or(rep.mmd2) {
                summary.discrepancy.entry(name.clone()).or_default().push(v);
            }
            if first {
                write_points_csv(
                    a.out_dir.join(format!("particles_{name}.csv")),
                    &f.particles.x,
                    Some(&f.particles.weights()),
                )?;
                if let Some(dims) = dims {
                    plot_particles(
                        &a.out_dir.join(format!("particles_{name}.png")),
                        &format!("{name} ({}), {}", rep.energy, built.target.name),
                        &f.particles,
                        plot_target,
                        dims,
                    )?;
                }
                traces.extend(f.flow.trace.iter().cloned());
                methods_first.insert(name, rep);
            }
        }
        if first {
            crate::flow::driver::write_trace_csv(a.out_dir.join("trace.csv"), &traces)?;
            let mut series: BTreeMap<String, Series> = BTreeMap::new();
            for r in &traces {
                if let Some(v) = r.mmd2 {
                    let label = format!("{} ({})", r.flow, methods_first[&r.flow].energy);
                    series
                        .entry(r.flow.clone())
                        .or_insert_with(|| Series {
                            name: label,
                            points: Vec::new(),
                        })
                        .points
                        .push((r.step as f64, v));
                }
            }
            let series: Vec<Series> = series.into_values().collect();
            line_chart(
                a.out_dir.join("trace.png"),
                &format!("fit-kl on {}: discrepancy to the target", built.target.name),
                "iteration",
                "MMD^2 (mmd energy) or KSD^2 (ksd energy)",
                &series,
                true,
            )?;
            first_kernels = Some(kernels);
            first_fr_beta = cfg.fr_beta;
            info = built.info.clone();
        }
    }
    for (k, v) in &summary.mass_error {
        let mut s = v.clone();
        s.sort_by(|a, b| a.total_cmp(b));
        let q = |p: f64| quantile(&s, p);
        summary.median_mass_error.insert(k.clone(), q(0.5));
        summary
            .mass_error_quantiles
            .insert(k.clone(), [q(0.0), q(0.25), q(0.5), q(0.75), q(1.0)]);
    }
    if a.seeds > 1 && !summary.median_mass_error.is_empty() {
        println!(
            "max_c |mass_c - p_c| over {} seeds: median [min, lower quartile, upper quartile, max]",
            a.seeds
        );
        for (k, v) in &summary.mass_error_quantiles {
            println!(
                "  {k:9} {:.3} [{:.3}, {:.3}, {:.3}, {:.3}]",
                v[2], v[0], v[1], v[3], v[4]
            );
        }
    }
    let report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        target: info,
        particles: a.particles,
        steps: a.steps,
        seed: a.seed,
        energy,
        alpha: a.alpha,
        beta: a.beta,
        fr_beta: first_fr_beta,
        kernels: first_kernels.expect("at least one seed"),
        approx,
        methods: methods_first,
        seeds: (a.seeds > 1).then_some(summary),
    };
    write_json_atomic(a.out_dir.join("report.json"), &report)?;
    if !g.quiet {
        eprintln!("wrote {}", a.out_dir.display());
    }
    Ok(())
}
