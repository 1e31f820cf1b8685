//! The fitting API: run one forward-KL method (or a reverse-KL baseline) from given initial
//! particles through the core's steps and [`Executor`], and summarise the result.
//!
//! A method is an energy and a geometry; the geometry's step comes from the registry
//! ([`Method::geometry`], [`Geometry::build`]):
//!
//! | method | energy | geometry (registry name: core step) | divergence |
//! |---|---|---|---|
//! | `ift` | `1/2 MMD^2` (samples) or `1/2 KSD^2` (density) | `ift`: [`crate::flow::Ift`], W step + exact MMD-prox weight QP | forward KL \[IKL\] |
//! | `wfr` | same | `wfr`: [`crate::flow::Wfr`], W step + Fisher-Rao mirror step | forward KL \[IKL\] |
//! | `mmd` | `1/2 MMD^2` | `w`: [`crate::flow::Wasserstein`] only (MMD flow, Arbel et al. 2019) | forward KL, transport only |
//! | `ksd` | `1/2 KSD^2` | `w`: [`crate::flow::Wasserstein`] only (KSD descent, Korba et al. 2021) | forward KL, transport only |
//! | `fr` | same as `ift` | `fr`: [`crate::flow::FisherRao`] only (reweighting) | forward KL, weights only |
//! | `svgd` | (score) | `svgd`: [`crate::flow::Svgd`] (Liu, Wang 2016) | reverse KL baseline |
//! | `langevin` | (score) | `langevin`: [`crate::flow::Langevin`] (ULA) | reverse KL baseline |
//!
//! With a KSD energy the MMD-prox QP of `ift` has `H = M = K_pi`, `b = 0`: it moves the
//! weights towards the KSD-optimal simplex weights (black-box importance sampling).

use super::stein::KsdEnergy;
use super::targets::{as_log_density, SteinTarget};
use crate::energy::{ApproxMmd, Energy};
use crate::error::{Error, Result};
use crate::flow::{
    Executor, FlowParams, FlowResult, Geometry, GeometryParams, ProgressObserver, QpOptions,
};
use crate::io::read_numeric_csv;
use crate::kernel::{mmd2, Bandwidth, Kernel, KernelKind};
use crate::measure::{Distribution, GaussianMixture, Particles};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A fitting method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Interaction-Force Transport (W step + MMD-prox weights) on the forward-KL energy.
    Ift,
    /// Wasserstein-Fisher-Rao on the forward-KL energy.
    Wfr,
    /// Transport only on `1/2 MMD^2` (MMD flow).
    Mmd,
    /// Transport only on `1/2 KSD^2` (KSD descent).
    Ksd,
    /// Reweighting only (Fisher-Rao) on the forward-KL energy.
    Fr,
    /// Stein variational gradient descent (reverse KL).
    Svgd,
    /// Unadjusted Langevin (reverse KL).
    Langevin,
}

impl Method {
    /// All methods in the order of the CLI help.
    pub const ALL: [Method; 7] = [
        Method::Ift,
        Method::Wfr,
        Method::Mmd,
        Method::Ksd,
        Method::Fr,
        Method::Svgd,
        Method::Langevin,
    ];
    /// The lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Ift => "ift",
            Method::Wfr => "wfr",
            Method::Mmd => "mmd",
            Method::Ksd => "ksd",
            Method::Fr => "fr",
            Method::Svgd => "svgd",
            Method::Langevin => "langevin",
        }
    }
    /// The geometry of the method's flow in the registry (`mmd` and `ksd` are both the
    /// Wasserstein step, on different energies).
    pub fn geometry(&self) -> Geometry {
        match self {
            Method::Ift => Geometry::Ift,
            Method::Wfr => Geometry::Wfr,
            Method::Mmd | Method::Ksd => Geometry::W,
            Method::Fr => Geometry::Fr,
            Method::Svgd => Geometry::Svgd,
            Method::Langevin => Geometry::Langevin,
        }
    }
    /// Whether the method minimises the forward (inclusive) KL.
    pub fn is_forward_kl(&self) -> bool {
        !matches!(self, Method::Svgd | Method::Langevin)
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Method::ALL
            .iter()
            .find(|m| m.as_str() == s.trim().to_ascii_lowercase())
            .copied()
            .ok_or_else(|| {
                Error::param(
                    "method",
                    s,
                    "expected one of ift, wfr, mmd, ksd, fr, svgd, langevin",
                )
            })
    }
}

/// Which energy the forward-KL methods `ift`, `wfr` and `fr` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EnergyChoice {
    /// `1/2 MMD^2` when the target has samples, `1/2 KSD^2` otherwise.
    #[default]
    Auto,
    /// Always `1/2 KSD^2` (needs a density).
    Ksd,
    /// Always `1/2 MMD^2` (needs samples).
    Mmd,
}

impl std::str::FromStr for EnergyChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(EnergyChoice::Auto),
            "ksd" => Ok(EnergyChoice::Ksd),
            "mmd" => Ok(EnergyChoice::Mmd),
            _ => Err(Error::param("energy", s, "expected auto, ksd or mmd")),
        }
    }
}

/// What is being approximated: a density (with its score), samples, or both.
#[derive(Clone)]
pub struct InferenceTarget {
    /// Short name for reports.
    pub name: String,
    /// The unnormalised density, when known.
    pub density: Option<Arc<dyn SteinTarget>>,
    /// Weighted samples used by the MMD energy, when available.
    pub samples: Option<Particles>,
    /// The mixture, when the target is one (for component masses).
    pub mixture: Option<GaussianMixture>,
    /// Exact samples of the target used only to evaluate fits (MMD^2 in the report).
    pub reference: Option<Particles>,
}

impl std::fmt::Debug for InferenceTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferenceTarget")
            .field("name", &self.name)
            .field("density", &self.density.as_ref().map(|d| d.name()))
            .field("samples", &self.samples.as_ref().map(|s| s.len()))
            .finish()
    }
}

impl InferenceTarget {
    /// A target given by weighted samples only.
    pub fn from_samples(name: &str, samples: Particles) -> Self {
        InferenceTarget {
            name: name.into(),
            density: None,
            reference: Some(samples.clone()),
            samples: Some(samples),
            mixture: None,
        }
    }
    /// A target given by a density only.
    pub fn from_density(density: Arc<dyn SteinTarget>) -> Self {
        InferenceTarget {
            name: density.name(),
            density: Some(density),
            samples: None,
            mixture: None,
            reference: None,
        }
    }
    /// Add exact reference samples (evaluation only).
    pub fn with_reference(mut self, r: Particles) -> Self {
        self.reference = Some(r);
        self
    }
    /// A Gaussian mixture target: its density, and `m` stratified samples (component `c`
    /// gets `round(p_c m)` draws, so the sample's mixing proportions are exact up to
    /// rounding) which the MMD energy uses; the same samples serve as reference.
    pub fn mixture(mix: GaussianMixture, m: usize, seed: u64) -> Result<Self> {
        crate::error::check_count("target-samples", m)?;
        let samples = stratified_mixture_sample(&mix, m, seed)?;
        Ok(InferenceTarget {
            name: "mixture".into(),
            density: Some(Arc::new(mix.clone())),
            samples: Some(samples.clone()),
            mixture: Some(mix),
            reference: Some(samples),
        })
    }
    /// Dimension.
    pub fn dim(&self) -> usize {
        if let Some(d) = &self.density {
            d.dim()
        } else {
            self.samples.as_ref().map(|s| s.dim()).unwrap_or(0)
        }
    }
}

/// `m` stratified draws of a mixture as equally weighted particles.
pub fn stratified_mixture_sample(mix: &GaussianMixture, m: usize, seed: u64) -> Result<Particles> {
    let mut rng = StdRng::seed_from_u64(seed);
    let d = Distribution::dim(mix);
    let mut counts: Vec<usize> = mix
        .weights
        .iter()
        .map(|p| (p * m as f64).round() as usize)
        .collect();
    let total: usize = counts.iter().sum();
    // fix rounding on the largest component
    let big = (0..counts.len())
        .max_by(|a, b| mix.weights[*a].total_cmp(&mix.weights[*b]))
        .unwrap_or(0);
    if total != m {
        counts[big] = (counts[big] + m).saturating_sub(total).max(1);
    }
    let n: usize = counts.iter().sum();
    let mut x = ndarray::Array2::zeros((n, d));
    let mut r = 0;
    for (c, &k) in counts.iter().enumerate() {
        let s = mix.components[c].sample(k, &mut rng);
        for row in s.outer_iter() {
            x.row_mut(r).assign(&row);
            r += 1;
        }
    }
    Particles::uniform(x)
}

/// Read a target given by weighted samples: a numeric CSV (`crate::io::read_numeric_csv`:
/// header optional, one row per sample); a column named `weight` (case-insensitive) holds
/// the sample weights (non-negative, normalised here), all other columns are coordinates.
/// Without it the samples are equally weighted. Empty, ragged or non-numeric files and
/// negative or all-zero weights are errors naming the file (and row and column).
pub fn read_samples(path: &Path) -> Result<Particles> {
    let t = read_numeric_csv(path)?;
    let wcol = t
        .columns
        .iter()
        .position(|c| c.eq_ignore_ascii_case("weight"));
    let d = t.values.ncols() - usize::from(wcol.is_some());
    if d == 0 {
        return Err(Error::Data {
            path: path.into(),
            row: None,
            col: None,
            msg: "no coordinate columns".into(),
        });
    }
    let cols: Vec<usize> = (0..t.values.ncols()).filter(|j| Some(*j) != wcol).collect();
    let x = t.values.select(ndarray::Axis(1), &cols);
    match wcol {
        Some(j) => {
            let w: Vec<f64> = t.values.column(j).to_vec();
            if let Some((i, v)) = w.iter().enumerate().find(|(_, v)| **v < 0.0) {
                return Err(Error::Data {
                    path: path.into(),
                    row: Some(i + 1),
                    col: Some(format!("{} (weight)", j + 1)),
                    msg: format!("negative weight {v}"),
                });
            }
            let s: f64 = w.iter().sum();
            if s.is_nan() || s <= 0.0 {
                return Err(Error::Data {
                    path: path.into(),
                    row: None,
                    col: Some(format!("{} (weight)", j + 1)),
                    msg: "weights sum to zero".into(),
                });
            }
            let w: Vec<f64> = w.iter().map(|v| v / s).collect();
            Particles::with_weights(x, &w)
        }
        None => Particles::uniform(x),
    }
}

/// Settings of a fit.
#[derive(Debug, Clone, Serialize)]
pub struct FitConfig {
    /// Iterations per method.
    pub steps: usize,
    /// Default step size.
    pub step_size: f64,
    /// Per-method step sizes overriding `step_size`.
    pub step_sizes: BTreeMap<Method, f64>,
    /// Seed (noise of Langevin; the same for every method).
    pub seed: u64,
    /// Weight `alpha` of the transport part.
    pub alpha: f64,
    /// Weight `beta` of the MMD-prox weight step of `ift` (`eta = tau beta`).
    pub beta: f64,
    /// Weight of the Fisher-Rao mirror step of `wfr` and `fr`
    /// (`w_i <- w_i exp(-tau fr_beta g_i) / Z`).
    pub fr_beta: f64,
    /// Base kernel of the MMD energy.
    pub kernel: KernelKind,
    /// Bandwidth of the MMD kernel (median: over the target samples).
    pub bandwidth: Bandwidth,
    /// Base kernel of the Stein kernel.
    pub stein_kernel: KernelKind,
    /// Bandwidth of the Stein base kernel (median: over the initial particles).
    pub stein_bandwidth: Bandwidth,
    /// Energy used by `ift`, `wfr`, `fr`.
    pub energy: EnergyChoice,
    /// Settings of the exact simplex QP of the `ift` weight step.
    pub qp: QpOptions,
    /// Trace interval.
    pub trace_every: usize,
    /// Hide progress bars.
    pub quiet: bool,
    /// Kernel approximation of the MMD energy (`--approx`; features or landmarks seeded
    /// by `seed`).
    pub approx: crate::kernel::Approx,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            steps: 500,
            step_size: 0.1,
            step_sizes: BTreeMap::new(),
            seed: 0,
            alpha: 1.0,
            beta: 1.0,
            fr_beta: 10.0,
            kernel: KernelKind::Gaussian,
            bandwidth: Bandwidth::Median,
            stein_kernel: KernelKind::Imq,
            stein_bandwidth: Bandwidth::Median,
            energy: EnergyChoice::Auto,
            qp: QpOptions {
                tol: 1e-7,
                max_iter: 100,
                power_iters: 30,
                ..QpOptions::default()
            },
            trace_every: 10,
            quiet: true,
            approx: crate::kernel::Approx::Exact,
        }
    }
}

impl FitConfig {
    /// The step size of `m`.
    pub fn step_of(&self, m: Method) -> f64 {
        self.step_sizes.get(&m).copied().unwrap_or(self.step_size)
    }
}

/// The kernels a fit uses, fixed once for all methods (so that they are compared with
/// the same energies).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FitKernels {
    /// The MMD kernel (when the target has samples).
    pub mmd: Option<Kernel>,
    /// The Stein base kernel (when the target has a density).
    pub stein: Option<Kernel>,
}

impl FitKernels {
    /// Kernels from the configuration: MMD bandwidth by the median rule over the target
    /// samples, Stein bandwidth by the median rule over the initial particles.
    pub fn new(target: &InferenceTarget, init: &Particles, cfg: &FitConfig) -> Result<Self> {
        let mmd = match (&target.samples, &target.reference) {
            (Some(s), _) | (None, Some(s)) => Some(Kernel::with_bandwidth(
                cfg.kernel,
                cfg.bandwidth,
                s.x_slice(),
                s.dim(),
            )?),
            _ => None,
        };
        let stein = match &target.density {
            Some(_) => Some(Kernel::with_bandwidth(
                cfg.stein_kernel,
                cfg.stein_bandwidth,
                init.x_slice(),
                init.dim(),
            )?),
            None => None,
        };
        Ok(FitKernels { mmd, stein })
    }
}

/// The result of one method.
pub struct MethodFit {
    /// The method.
    pub method: Method,
    /// Name of the energy it descended (`mmd`, `ksd`, or `reverse-kl`).
    pub energy: String,
    /// Final particles.
    pub particles: Particles,
    /// The driver's result.
    pub flow: FlowResult,
}

enum EnergyBox {
    Mmd(Box<ApproxMmd>),
    Ksd(KsdEnergy),
}

impl EnergyBox {
    fn as_dyn(&self) -> &dyn Energy {
        match self {
            EnergyBox::Mmd(e) => e.as_ref(),
            EnergyBox::Ksd(e) => e,
        }
    }
}

fn mmd_energy(
    target: &InferenceTarget,
    k: &FitKernels,
    m: Method,
    cfg: &FitConfig,
) -> Result<EnergyBox> {
    match (&target.samples, k.mmd) {
        (Some(s), Some(kern)) => Ok(EnergyBox::Mmd(Box::new(ApproxMmd::new(
            kern,
            s.clone(),
            cfg.approx,
            cfg.seed.wrapping_add(0x5EED),
        )?))),
        _ => Err(Error::param(
            "method",
            m,
            "the MMD energy needs target samples (give --samples, or a target that can be sampled)",
        )),
    }
}

fn ksd_energy(target: &InferenceTarget, k: &FitKernels, m: Method) -> Result<EnergyBox> {
    match (&target.density, k.stein) {
        (Some(d), Some(kern)) => Ok(EnergyBox::Ksd(KsdEnergy::new(kern, d.clone())?)),
        _ => Err(Error::param(
            "method",
            m,
            "the KSD energy and the reverse-KL baselines need a density target",
        )),
    }
}

/// Run `method` from `init` (copied) on `target`.
pub fn fit(
    target: &InferenceTarget,
    init: &Particles,
    method: Method,
    kernels: &FitKernels,
    cfg: &FitConfig,
) -> Result<MethodFit> {
    if init.dim() != target.dim() {
        return Err(Error::Shape(format!(
            "initial particles have d = {}, target {} has d = {}",
            init.dim(),
            target.name,
            target.dim()
        )));
    }
    let energy = match method {
        Method::Mmd => mmd_energy(target, kernels, method, cfg)?,
        Method::Ksd => ksd_energy(target, kernels, method)?,
        Method::Svgd | Method::Langevin => {
            if target.density.is_none() {
                return Err(Error::param(
                    "method",
                    method,
                    "the reverse-KL baselines need a density target (not --samples)",
                ));
            }
            if target.samples.is_some() && cfg.energy != EnergyChoice::Ksd {
                mmd_energy(target, kernels, method, cfg)?
            } else {
                ksd_energy(target, kernels, method)?
            }
        }
        Method::Ift | Method::Wfr | Method::Fr => match cfg.energy {
            EnergyChoice::Mmd => mmd_energy(target, kernels, method, cfg)?,
            EnergyChoice::Ksd => ksd_energy(target, kernels, method)?,
            EnergyChoice::Auto => {
                if target.samples.is_some() {
                    mmd_energy(target, kernels, method, cfg)?
                } else {
                    ksd_energy(target, kernels, method)?
                }
            }
        },
    };
    let density = match method {
        Method::Svgd | Method::Langevin => {
            Some(as_log_density(target.density.clone().ok_or_else(|| {
                Error::param("method", method, "needs a density target")
            })?))
        }
        _ => None,
    };
    let mut step = method.geometry().build(&GeometryParams {
        alpha: cfg.alpha,
        beta: cfg.beta,
        beta_fr: cfg.fr_beta,
        qp: cfg.qp,
        svgd_kernel: KernelKind::Gaussian,
        density,
        ..GeometryParams::default()
    })?;
    let fc = FlowParams::new(cfg.steps, cfg.step_of(method))
        .seed(cfg.seed)
        .trace_every(cfg.trace_every)
        .check()?;
    let mut ex =
        Executor::new(fc)?.observe(ProgressObserver::new(method.as_str(), cfg.steps, cfg.quiet));
    let mut mu = init.clone();
    let e = energy.as_dyn();
    let mut flow = ex.run(&mut mu, e, &mut step)?;
    flow.flow = method.as_str().to_string();
    for r in flow.trace.iter_mut() {
        r.flow = method.as_str().to_string();
    }
    let ename = if method.is_forward_kl() {
        e.name()
    } else {
        "reverse-kl".to_string()
    };
    Ok(MethodFit {
        method,
        energy: ename,
        particles: mu,
        flow,
    })
}

/// Summary of one fit (the `methods.<name>` entry of `report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct MethodReport {
    /// Energy descended.
    pub energy: String,
    /// Weighted mean.
    pub mean: Vec<f64>,
    /// Weighted covariance (rows).
    pub cov: Vec<Vec<f64>>,
    /// Mass of the particles whose most responsible mixture component is `c`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component_mass: Option<Vec<f64>>,
    /// Effective sample size of the weights.
    pub ess: f64,
    /// `KSD(mu | pi)` (V-statistic, with the fit's Stein kernel), density targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ksd: Option<f64>,
    /// `MMD^2(mu, pi)` to the target samples (V-statistic, the fit's MMD kernel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mmd2: Option<f64>,
    /// Wall time of the run, seconds.
    pub time_s: f64,
    /// Iterations run.
    pub steps: usize,
    /// Step size used.
    pub step_size: f64,
    /// Final value of the energy descended (for the baselines: the KSD energy, traced).
    pub final_energy: f64,
    /// Why the run stopped.
    pub stop_reason: String,
}

/// Component masses: the weight of the particles whose most responsible component is `c`.
pub fn component_mass(mix: &GaussianMixture, mu: &Particles) -> Vec<f64> {
    let w = mu.weights();
    let s: f64 = w.iter().sum();
    let mut m = vec![0.0; mix.weights.len()];
    for (row, wi) in mu.x.outer_iter().zip(&w) {
        let r = mix.responsibilities(row.as_slice().expect("standard layout"));
        let c = (0..r.len())
            .max_by(|a, b| r[*a].total_cmp(&r[*b]))
            .unwrap_or(0);
        m[c] += wi / s;
    }
    m
}

/// Summarise a fit against the target.
pub fn summarize(
    target: &InferenceTarget,
    kernels: &FitKernels,
    cfg: &FitConfig,
    f: &MethodFit,
) -> Result<MethodReport> {
    let mu = &f.particles;
    let ksd = match (&target.density, kernels.stein) {
        (Some(d), Some(k)) => Some(KsdEnergy::new(k, d.clone())?.ksd2(mu)?.sqrt()),
        _ => None,
    };
    let mmd2v = match (&target.reference, kernels.mmd) {
        (Some(r), Some(k)) => Some(mmd2(
            &k,
            mu.x_slice(),
            &normalized(mu),
            r.x_slice(),
            &normalized(r),
            mu.dim(),
        )?),
        _ => None,
    };
    Ok(MethodReport {
        energy: f.energy.clone(),
        mean: mu.mean(),
        cov: mu.cov().outer_iter().map(|r| r.to_vec()).collect(),
        component_mass: target.mixture.as_ref().map(|m| component_mass(m, mu)),
        ess: mu.ess(),
        ksd,
        mmd2: mmd2v,
        time_s: f.flow.time_s,
        steps: f.flow.steps,
        step_size: cfg.step_of(f.method),
        final_energy: f.flow.final_energy,
        stop_reason: f.flow.stop_reason.clone(),
    })
}

fn normalized(p: &Particles) -> Vec<f64> {
    let w = p.weights();
    let s: f64 = w.iter().sum();
    w.iter().map(|a| a / s).collect()
}
