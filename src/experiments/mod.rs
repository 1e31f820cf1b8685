//! The MMD-minimisation sampling experiments of docs/DESIGN.md §3 as a library: the
//! reference targets, initial laws, the flows to compare and one seeded run of all of them
//! on the same initial particles.
//!
//! Reference experiments (Arbel et al. 2019 \[MMDF]; Gladin et al. 2024 \[IFT], section 4 and
//! the camera-ready 100-d experiment of the reference code `egorgladin/ift_flow`):
//!
//! | target | law |
//! |---|---|
//! | `gaussian` | `N(0, [[1, .5], [.5, 1]])` |
//! | `mixture` | equal-weight mixture, means `(0,0)`, `(3,-1)`, `(1,4)`, covariances `[[1,1/2],[1/2,2]]`, `I`, `[[3,1/2],[1/2,1]]` |
//! | `mixture100d` | `d = 100`, 3 equal components; component `c` (seeded by `c`) has mean `20 g/||g||`, `g ~ N(0, I)`, covariance `D + P P'`, `D` diagonal `U[0.5, 5]`, `P` `100 x 10` with `U[0, 1]` entries |
//!
//! The particles start from `N((5, 5), I)` (2-D) or `N(0, I)` (100-d) by default.
//!
//! The energy is `F(mu) = 1/2 MMD^2(mu, pi_m)` with `pi_m` the uniform measure on `m` samples
//! of the target drawn once per seed (the *training* sample; the reference code instead
//! draws a fresh minibatch at every iteration). The trace's `mmd2` column is the weighted
//! V-statistic `MMD^2(mu, pi'_m)` against a *held-out* sample `pi'_m` (a second,
//! independent draw of the same size), as in the reference code; the trace's `energy`
//! column is `1/2 MMD^2` to the training sample. See [`HeldOutMmd`].
//!
//! The flows are the geometries [`Geometry::EXPERIMENT`] of the registry, built by
//! [`Geometry::build`] from [`FlowSettings::geometry_params`]. Settings are checked once:
//! [`ExperimentParams::check`] gives the [`ExperimentConfig`] that runs; summaries over
//! seeds are in [`summary`].

pub mod summary;

use crate::energy::{ApproxMmd, Energy, FirstVariation, WeightQuadratic};
use crate::error::{check_count, check_nonneg, check_positive, Error, Result};
use crate::flow::{
    Executor, FlowConfig, FlowParams, FlowResult, Geometry, GeometryParams, NoiseSchedule,
    Observer, QpOptions, Velocity,
};
use crate::kernel::{mmd2, Approx, Bandwidth, Kernel, KernelKind};
use crate::measure::{Distribution, Gaussian, GaussianMixture, LogDensity, Particles};
use ndarray::{Array1, Array2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

/// Names of the bundled reference targets.
pub const REFERENCE_TARGETS: [&str; 3] = ["gaussian", "mixture", "mixture100d"];

/// Every flow the experiment knows, in the order they are listed in reports (the names of
/// [`Geometry::EXPERIMENT`] in the registry's table).
pub fn flow_names() -> Vec<&'static str> {
    Geometry::EXPERIMENT.iter().map(|g| g.name()).collect()
}

/// The 2-D Gaussian target `N(0, [[1, .5], [.5, 1]])`.
pub fn gaussian_target() -> Result<GaussianMixture> {
    let g = Gaussian::new(Array1::zeros(2), ndarray::array![[1.0, 0.5], [0.5, 1.0]])?;
    GaussianMixture::new(vec![1.0], vec![g])
}

/// The 2-D three-component mixture target.
pub fn mixture_target() -> Result<GaussianMixture> {
    let c1 = Gaussian::new(
        ndarray::array![0.0, 0.0],
        ndarray::array![[1.0, 0.5], [0.5, 2.0]],
    )?;
    let c2 = Gaussian::new(ndarray::array![3.0, -1.0], Array2::eye(2))?;
    let c3 = Gaussian::new(
        ndarray::array![1.0, 4.0],
        ndarray::array![[3.0, 0.5], [0.5, 1.0]],
    )?;
    GaussianMixture::new(vec![1.0; 3], vec![c1, c2, c3])
}

/// The 100-d three-component mixture of the IFT reference code (component `c` drawn from a
/// generator seeded with `c`, so the target does not depend on the run's seed).
pub fn mixture100d_target() -> Result<GaussianMixture> {
    let d = 100;
    let r = 10;
    let mut comps = Vec::new();
    for c in 0..3u64 {
        let mut rng = StdRng::seed_from_u64(c);
        let g: Vec<f64> = (0..d).map(|_| rng.sample(StandardNormal)).collect();
        let norm = g.iter().map(|a| a * a).sum::<f64>().sqrt();
        let mean: Array1<f64> = g.iter().map(|a| 20.0 * a / norm).collect();
        let p = Array2::from_shape_fn((d, r), |_| rng.random_range(0.0..1.0));
        let mut cov = p.dot(&p.t());
        for i in 0..d {
            cov[[i, i]] += rng.random_range(0.5..5.0);
        }
        comps.push(Gaussian::new(mean, cov)?);
    }
    GaussianMixture::new(vec![1.0; 3], comps)
}

/// A target of the experiment: a reference law (sampled, with a density) or a CSV file of
/// samples.
#[derive(Debug, Clone)]
pub enum TargetSpec {
    /// A bundled law by name.
    Reference(String),
    /// Samples read from a CSV file (rows = points).
    File(PathBuf),
}

impl std::str::FromStr for TargetSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if REFERENCE_TARGETS.contains(&s) {
            Ok(TargetSpec::Reference(s.to_string()))
        } else if s.to_ascii_lowercase().ends_with(".csv") {
            Ok(TargetSpec::File(PathBuf::from(s)))
        } else {
            Err(Error::param(
                "target",
                s,
                "expected gaussian, mixture, mixture100d or a .csv file of samples",
            ))
        }
    }
}

/// A loaded target: a law with a density, or fixed samples.
#[derive(Clone)]
pub enum LoadedTarget {
    /// A Gaussian mixture (reference targets).
    Law(Arc<GaussianMixture>),
    /// Samples from a file.
    Samples(Array2<f64>),
}

impl LoadedTarget {
    /// Load a target.
    pub fn load(spec: &TargetSpec) -> Result<Self> {
        match spec {
            TargetSpec::Reference(name) => Ok(LoadedTarget::Law(Arc::new(match name.as_str() {
                "gaussian" => gaussian_target()?,
                "mixture" => mixture_target()?,
                "mixture100d" => mixture100d_target()?,
                other => return Err(Error::param("target", other, "unknown reference target")),
            }))),
            TargetSpec::File(p) => {
                let t = crate::io::read_numeric_csv(p)?;
                if t.values.nrows() < 2 {
                    return Err(Error::Data {
                        path: p.clone(),
                        row: None,
                        col: None,
                        msg: "need at least 2 target samples".into(),
                    });
                }
                Ok(LoadedTarget::Samples(t.values))
            }
        }
    }
    /// Dimension.
    pub fn dim(&self) -> usize {
        match self {
            LoadedTarget::Law(g) => Distribution::dim(g.as_ref()),
            LoadedTarget::Samples(s) => s.ncols(),
        }
    }
    /// The density, when the target has one.
    pub fn density(&self) -> Option<Arc<dyn LogDensity>> {
        match self {
            LoadedTarget::Law(g) => Some(g.clone() as Arc<dyn LogDensity>),
            LoadedTarget::Samples(_) => None,
        }
    }
    /// Training and held-out samples: two independent draws of size `m` from a law; for a
    /// file of `N` rows, two disjoint random subsets of its rows (seeded by `rng`): `m`
    /// training rows and `m` held-out rows when `N >= 2 m`, otherwise `min(m, N - h)`
    /// training rows and the `h = min(m, N / 2)` held-out rows. Held-out rows are never
    /// training rows, so the noise floor `MMD^2(train, held-out)` is that of two
    /// independent samples, as for the built-in targets.
    pub fn samples(&self, m: usize, rng: &mut StdRng) -> (Array2<f64>, Array2<f64>) {
        match self {
            LoadedTarget::Law(g) => (g.sample(m, rng), g.sample(m, rng)),
            LoadedTarget::Samples(s) => {
                let n = s.nrows();
                let h = m.min(n / 2);
                let t = m.min(n - h);
                let idx = rand::seq::index::sample(rng, n, t + h).into_vec();
                (s.select(Axis(0), &idx[..t]), s.select(Axis(0), &idx[t..]))
            }
        }
    }
}

/// The initial law of the particles: the one parser of `--init` for `flow` and `fit-kl`.
///
/// `gaussian:MEAN:STD` (`normal:MEAN:STD` is accepted as an alias; `MEAN` defaults to 0,
/// `STD` to 1) or a `.csv` file of positions.
#[derive(Debug, Clone)]
pub enum InitSpec {
    /// `gaussian:MEAN:STD`: `N(mean, std^2 I)`; `MEAN` is one number (repeated in every
    /// coordinate) or `d` comma-separated numbers.
    Gaussian {
        /// Mean (length 1 = broadcast).
        mean: Vec<f64>,
        /// Standard deviation.
        std: f64,
    },
    /// Positions read from a CSV file (rows = particles; `--particles` is then ignored).
    File(PathBuf),
}

impl std::str::FromStr for InitSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.to_ascii_lowercase().ends_with(".csv") {
            return Ok(InitSpec::File(PathBuf::from(s)));
        }
        let bad = |why: &str| Error::param("init", s, why);
        let parts: Vec<&str> = s.split(':').collect();
        if !InitSpec::is_gaussian(s) {
            return Err(bad(
                "expected gaussian:MEAN:STD (e.g. gaussian:5,5:1) or a .csv file",
            ));
        }
        let mean: Vec<f64> = match parts.get(1) {
            Some(m) if !m.is_empty() => m
                .split(',')
                .map(|a| a.trim().parse::<f64>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| bad("the mean must be comma-separated numbers"))?,
            _ => vec![0.0],
        };
        if mean.iter().any(|a| !a.is_finite()) {
            return Err(bad("the mean must be finite"));
        }
        let std = match parts.get(2) {
            Some(v) => v
                .trim()
                .parse::<f64>()
                .map_err(|_| bad("the standard deviation must be a number"))?,
            None => 1.0,
        };
        if parts.len() > 3 {
            return Err(bad("expected gaussian:MEAN:STD"));
        }
        if !(std.is_finite() && std > 0.0) {
            return Err(bad("the standard deviation must be finite and > 0"));
        }
        Ok(InitSpec::Gaussian { mean, std })
    }
}

impl std::fmt::Display for InitSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InitSpec::Gaussian { mean, std } => {
                let m: Vec<String> = mean.iter().map(|a| a.to_string()).collect();
                write!(f, "gaussian:{}:{std}", m.join(","))
            }
            InitSpec::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl InitSpec {
    /// Whether `s` names the Gaussian law (`gaussian` or its alias `normal`, any case,
    /// alone or followed by `:`).
    pub fn is_gaussian(s: &str) -> bool {
        let head = s.split(':').next().unwrap_or("").to_ascii_lowercase();
        head == "gaussian" || head == "normal"
    }
    /// The default initial law for a target: `N(0, I)` in 100-d, `N((5,5), I)` otherwise
    /// (the mean is repeated in every coordinate).
    pub fn default_for(target: &TargetSpec) -> Self {
        let m = match target {
            TargetSpec::Reference(n) if n == "mixture100d" => 0.0,
            _ => 5.0,
        };
        InitSpec::Gaussian {
            mean: vec![m],
            std: 1.0,
        }
    }
    /// Draw `n` initial positions in dimension `d`.
    pub fn positions(&self, n: usize, d: usize, rng: &mut StdRng) -> Result<Array2<f64>> {
        match self {
            InitSpec::Gaussian { mean, std } => {
                let m: Array1<f64> = if mean.len() == 1 {
                    Array1::from_elem(d, mean[0])
                } else if mean.len() == d {
                    Array1::from(mean.clone())
                } else {
                    return Err(Error::param(
                        "init",
                        format!("{mean:?}"),
                        &format!(
                            "the mean has {} entries, the target has d = {d}",
                            mean.len()
                        ),
                    ));
                };
                Ok(Gaussian::isotropic(m, *std)?.sample(n, rng))
            }
            InitSpec::File(p) => {
                let t = crate::io::read_numeric_csv(p)?;
                if t.values.ncols() != d {
                    return Err(Error::Data {
                        path: p.clone(),
                        row: None,
                        col: None,
                        msg: format!("{} columns, but the target has d = {d}", t.values.ncols()),
                    });
                }
                Ok(t.values)
            }
        }
    }
}

/// `1/2 MMD^2` to the training sample, reporting `MMD^2` to a held-out sample in traces.
///
/// Every method but [`Energy::mmd2_to_target`] delegates to the wrapped [`ApproxMmd`];
/// `mmd2_to_target` is the weighted V-statistic `MMD^2(mu, pi')` against the held-out
/// sample `pi'` (uniform weights).
pub struct HeldOutMmd {
    /// The energy the flows descend (exact or approximated, `--approx`).
    pub inner: ApproxMmd,
    /// The held-out sample.
    pub heldout: Array2<f64>,
    v: Vec<f64>,
}

impl HeldOutMmd {
    /// Wrap `inner`, evaluating with `heldout` (rows = samples, uniform weights).
    pub fn new(inner: ApproxMmd, heldout: Array2<f64>) -> Result<Self> {
        let m = heldout.nrows();
        check_count("target-samples", m)?;
        let heldout = heldout.as_standard_layout().to_owned();
        Ok(HeldOutMmd {
            inner,
            heldout,
            v: vec![1.0 / m as f64; m],
        })
    }
}

impl Energy for HeldOutMmd {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn value(&self, mu: &Particles) -> Result<f64> {
        self.inner.value(mu)
    }
    fn first_variation_at(
        &self,
        mu: &Particles,
        at: &[f64],
        with_grad: bool,
    ) -> Result<FirstVariation> {
        self.inner.first_variation_at(mu, at, with_grad)
    }
    fn mmd2_to_target(&self, mu: &Particles) -> Option<Result<f64>> {
        // always the exact kernel: the evaluation does not depend on `--approx`
        Some(mmd2(
            &self.inner.kernel(),
            mu.x_slice(),
            &mu.weights(),
            self.heldout.as_slice().expect("standard layout"),
            &self.v,
            mu.dim(),
        ))
    }
    fn weight_quadratic(&self, mu: &Particles) -> Option<Result<WeightQuadratic>> {
        self.inner.weight_quadratic(mu)
    }
}

/// The per-geometry parameters of the flows.
///
/// A position (Wasserstein) update moves `x_i` by `-tau alpha v_i grad g(x_i)` (`v_i = 1`,
/// or `n w_i` for the mass-weighted velocity); weight updates use `tau` times:
/// `beta` (MMD-prox / IFT: `eta = tau beta`), `beta_fr` (FR / WFR / KFR mirror steps:
/// `w_i <- w_i exp(-tau beta_fr g_i) / Z`), `beta_pg` (IFT-PG: `w <- Proj(w - tau beta_pg g / n)`,
/// so that the relative weight change per step is about `tau beta_pg g_i`, the same scale
/// as the FR step, whatever `n`).
#[derive(Debug, Clone, Serialize)]
pub struct FlowSettings {
    /// Step size `tau`.
    pub step_size: f64,
    /// Transport weight `alpha`.
    pub alpha: f64,
    /// MMD-geometry weight (`eta = tau beta`).
    pub beta: f64,
    /// Fisher-Rao weight.
    pub beta_fr: f64,
    /// Projected-gradient weight (learning rate `tau beta_pg / n`).
    pub beta_pg: f64,
    /// Ridge of kernel FR.
    pub lambda: f64,
    /// Velocity of the flows' position steps (`mmd` keeps uniform weights, so only the
    /// weight-moving flows see a difference).
    pub velocity: Velocity,
    /// Noise injection of `mmd-noise`: initial level.
    pub noise: f64,
    /// Noise halving period in iterations (`None`: constant).
    pub noise_half_life: Option<usize>,
    /// No noise from this iteration on.
    pub noise_off: Option<usize>,
    /// Step size of SVGD (its own scale).
    pub svgd_step: f64,
    /// Step size of Langevin.
    pub langevin_step: f64,
    /// KKT tolerance of the exact MMD-prox QP solver.
    pub qp_tol: f64,
    /// Iteration cap of the exact MMD-prox QP solver.
    pub qp_max_iter: usize,
}

impl FlowSettings {
    /// Check every field; errors name the CLI parameter. Called once, by
    /// [`ExperimentParams::check`].
    fn check(&self) -> Result<()> {
        check_positive("step-size", self.step_size)?;
        check_positive("alpha", self.alpha)?;
        check_positive("beta", self.beta)?;
        check_positive("beta-fr", self.beta_fr)?;
        check_positive("beta-pg", self.beta_pg)?;
        check_positive("lambda", self.lambda)?;
        check_nonneg("noise", self.noise)?;
        if let Some(h) = self.noise_half_life {
            check_count("noise-half-life", h)?;
        }
        check_positive("svgd-step", self.svgd_step)?;
        check_positive("langevin-step", self.langevin_step)?;
        check_positive("qp-tol", self.qp_tol)?;
        check_count("qp-max-iter", self.qp_max_iter)?;
        Ok(())
    }
}

impl FlowSettings {
    /// The registry's parameters of every geometry for `n` particles, the regression kernel
    /// `kernel` (kfr, and SVGD's profile) and the target density (svgd, langevin).
    pub fn geometry_params(
        &self,
        n: usize,
        kernel: &Kernel,
        density: Option<Arc<dyn LogDensity>>,
    ) -> GeometryParams {
        GeometryParams {
            alpha: self.alpha,
            velocity: self.velocity,
            beta: self.beta,
            beta_fr: self.beta_fr,
            beta_pg: self.beta_pg,
            particles: n,
            lambda: self.lambda,
            kernel: Some(*kernel),
            noise: NoiseSchedule {
                beta0: self.noise,
                half_life: self.noise_half_life,
                off_after: self.noise_off,
            },
            qp: QpOptions {
                tol: self.qp_tol,
                max_iter: self.qp_max_iter,
                power_iters: 30,
                ..QpOptions::default()
            },
            svgd_kernel: kernel.kind,
            svgd_step: Some(self.svgd_step),
            langevin_step: Some(self.langevin_step),
            density,
        }
    }
}

/// Parse a list of seeds: `A..B` (B excluded) or `a,b,c`; errors name `seeds`.
pub fn parse_seeds(s: &str) -> Result<Vec<u64>> {
    let bad = || Error::param("seeds", s, "expected A..B (B excluded) or a comma list");
    let v: Vec<u64> = if let Some((a, b)) = s.split_once("..") {
        let a: u64 = a.trim().parse().map_err(|_| bad())?;
        let b: u64 = b.trim().parse().map_err(|_| bad())?;
        (a..b).collect()
    } else {
        s.split(',')
            .map(|t| t.trim().parse::<u64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad())?
    };
    if v.is_empty() {
        return Err(Error::param("seeds", s, "no seed in the range"));
    }
    Ok(v)
}

/// Parse a comma-separated list of flow names of [`Geometry::EXPERIMENT`] (canonical
/// names, case-insensitive; `all`; duplicates removed, order kept).
pub fn parse_flows(s: &str) -> Result<Vec<Geometry>> {
    let unknown = |f: &str| {
        Error::param(
            "flow",
            f,
            &format!("unknown flow; expected some of {}", flow_names().join(",")),
        )
    };
    let mut out: Vec<Geometry> = Vec::new();
    for f in s.split(',').map(|a| a.trim().to_ascii_lowercase()) {
        if f.is_empty() {
            continue;
        }
        if f == "all" {
            for g in Geometry::EXPERIMENT {
                if !out.contains(&g) {
                    out.push(g);
                }
            }
            continue;
        }
        let g = Geometry::from_canonical(&f)
            .filter(|g| Geometry::EXPERIMENT.contains(g))
            .ok_or_else(|| unknown(&f))?;
        if !out.contains(&g) {
            out.push(g);
        }
    }
    if out.is_empty() {
        return Err(Error::param("flow", s, "no flow given"));
    }
    Ok(out)
}

/// Everything one seeded comparison needs, unchecked (linfa's `ParamGuard` pattern):
/// [`ExperimentParams::check`] checks it once into an [`ExperimentConfig`], the only type
/// that runs.
#[derive(Clone)]
pub struct ExperimentParams {
    /// The target.
    pub target: LoadedTarget,
    /// Target samples `m` (training and held-out each).
    pub target_samples: usize,
    /// The initial law.
    pub init: InitSpec,
    /// Number of particles `n` (ignored for a CSV init).
    pub particles: usize,
    /// Flows to compare.
    pub flows: Vec<Geometry>,
    /// Budget of elementary updates per flow: a flow with two updates per iteration (WFR,
    /// IFT) runs half as many iterations.
    pub updates: usize,
    /// Record every this many updates.
    pub trace_every: usize,
    /// Kernel profile.
    pub kernel: KernelKind,
    /// Bandwidth rule; the median heuristic is applied to the pooled initial particles and
    /// training target sample.
    pub bandwidth: Bandwidth,
    /// Flow parameters.
    pub params: FlowSettings,
    /// Optional wall-time budget per flow, seconds.
    pub max_time_s: Option<f64>,
    /// The energy's kernel approximation (`--approx`); the held-out evaluation and the
    /// noise floor stay exact.
    pub approx: Approx,
}

/// One flow's outcome in one seeded run.
pub struct FlowOutcome {
    /// The driver's result.
    pub result: FlowResult,
    /// The final particles.
    pub particles: Particles,
}

/// The outcome of one seeded run of all flows.
pub struct ExperimentRun {
    /// The seed.
    pub seed: u64,
    /// The kernel used (bandwidth resolved).
    pub kernel: Kernel,
    /// The training target sample.
    pub target_sample: Array2<f64>,
    /// The initial particles (shared by all flows).
    pub init: Particles,
    /// `MMD^2` of the training sample to the held-out sample (the noise floor).
    pub floor_mmd2: f64,
    /// Per flow, in the order asked.
    pub flows: Vec<(String, FlowOutcome)>,
}

impl ExperimentParams {
    /// Check the settings once; errors name the CLI parameter (`particles`,
    /// `target-samples`, `steps`, `trace-every`, `bandwidth`, `max-time`, the flow
    /// settings', and `approx` when an exact-prox flow meets an approximate kernel).
    pub fn check(self) -> Result<ExperimentConfig> {
        check_count("particles", self.particles)?;
        check_count("target-samples", self.target_samples)?;
        check_count("steps", self.updates)?;
        check_count("trace-every", self.trace_every)?;
        if let Bandwidth::Fixed(h) = self.bandwidth {
            check_positive("bandwidth", h)?;
        }
        if let Some(t) = self.max_time_s {
            check_positive("max-time", t)?;
        }
        if !self.approx.is_exact() {
            if let Some(f) = self.flows.iter().find(|f| f.needs_exact_prox()) {
                return Err(Error::param(
                    "approx",
                    self.approx,
                    &format!("flow {f} takes the exact MMD-prox weight step: use the exact kernel, or ift-pg / wfr"),
                ));
            }
        }
        self.params.check()?;
        Ok(ExperimentConfig(self))
    }
}

/// Checked settings of the experiment (from [`ExperimentParams::check`]); read-only
/// access to the fields through `Deref`.
#[derive(Clone)]
pub struct ExperimentConfig(ExperimentParams);

impl std::ops::Deref for ExperimentConfig {
    type Target = ExperimentParams;
    fn deref(&self) -> &ExperimentParams {
        &self.0
    }
}

impl ExperimentConfig {
    /// Run every flow from the same initial particles with seed `seed`. `observers(flow,
    /// iterations)` may attach extra observers (progress bars) to each run.
    pub fn run(
        &self,
        seed: u64,
        mut observers: impl FnMut(&str, usize) -> Vec<Box<dyn Observer>>,
    ) -> Result<ExperimentRun> {
        let d = self.target.dim();
        let mut rng = StdRng::seed_from_u64(seed);
        let (train, heldout) = self.target.samples(self.target_samples, &mut rng);
        let x0 = self.init.positions(self.particles, d, &mut rng)?;
        let init = Particles::uniform(x0)?;
        let kernel = match self.bandwidth {
            Bandwidth::Fixed(h) => Kernel::new(self.kernel, h)?,
            Bandwidth::Median => {
                let mut pooled = init.x_slice().to_vec();
                pooled.extend(train.iter());
                Kernel::with_bandwidth(self.kernel, Bandwidth::Median, &pooled, d)?
            }
        };
        let target = Particles::uniform(train.clone())?;
        let inner = ApproxMmd::new(
            kernel,
            target,
            self.approx,
            seed.wrapping_mul(0x2545_F491_4F6C_DD1D).wrapping_add(5),
        )?;
        let energy = HeldOutMmd::new(inner, heldout.clone())?;
        let m = heldout.nrows();
        let floor_mmd2 = mmd2(
            &kernel,
            train.as_standard_layout().as_slice().expect("standard"),
            &vec![1.0 / train.nrows() as f64; train.nrows()],
            energy.heldout.as_slice().expect("standard"),
            &vec![1.0 / m as f64; m],
            d,
        )?;
        let mut flows = Vec::new();
        let gp = self
            .params
            .geometry_params(init.len(), &kernel, self.target.density());
        for geometry in &self.flows {
            let name = geometry.name().to_string();
            let mut step = geometry.build(&gp)?;
            let ups = step.updates_per_step();
            let iters = (self.updates / ups).max(1);
            // every field was checked by `ExperimentParams::check` (iters, trace interval >= 1)
            let cfg = FlowConfig::from_checked(FlowParams {
                steps: iters,
                step_size: self.params.step_size,
                tol: 0.0,
                seed: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(17),
                trace_every: (self.trace_every / ups).max(1),
                max_time_s: self.max_time_s,
            });
            let mut ex = Executor::new(cfg)?;
            for o in observers(&name, iters) {
                ex.add_observer(o);
            }
            let mut mu = init.clone();
            let mut result = ex.run(&mut mu, &energy, &mut step).map_err(|e| match e {
                Error::Diverged { step, detail } => Error::Diverged {
                    step,
                    detail: format!("flow {name}: {detail}"),
                },
                e => e,
            })?;
            result.flow = name.clone();
            for r in result.trace.iter_mut() {
                r.flow = name.clone();
            }
            flows.push((
                name.clone(),
                FlowOutcome {
                    result,
                    particles: mu,
                },
            ));
        }
        Ok(ExperimentRun {
            seed,
            kernel,
            target_sample: train,
            init,
            floor_mmd2,
            flows,
        })
    }
}

/// Median and quartiles of a sample: one definition, in the leaf [`crate::stats`] module.
pub use crate::stats::Quantiles;
