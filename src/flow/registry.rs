//! The geometry registry: one name table for every flow geometry, and one factory.
//!
//! A flow is "energy + geometry"; this module names the geometries and builds their steps
//! ([`FlowStep`]) from one parameter set ([`GeometryParams`]). The names come from one
//! table ([`Geometry::TABLE`], in the spirit of geomloss's `routines[loss][backend]`):
//! `FromStr` (case-insensitive, canonical names and aliases), `Display` and serde all
//! read it.
//!
//! | geometry | step | flow | paper |
//! |---|---|---|---|
//! | `mmd` | [`Wasserstein`] | `dmu/dt = alpha div(mu grad g)` (the MMD flow on `1/2 MMD^2`) | Arbel, Korba, Salim, Gretton 2019 |
//! | `mmd-noise` | [`Wasserstein`] with noise injection | the same, `grad g` at `x + beta_n u` | Arbel et al. 2019, section 3.3 |
//! | `w` (`wasserstein`) | [`Wasserstein`] | the same, named for energies other than MMD (DRO) | |
//! | `fr` | [`FisherRao`] | `dmu/dt = -beta_fr mu (g - int g dmu)` | Chizat et al. 2018; Liero, Mielke, Savare 2018 |
//! | `wfr` | [`Wfr`] | both, by splitting | Chizat et al. 2018; Zhu 2024 \[IKL\] |
//! | `mmd-prox` (`prox`, `weights`) | [`MmdProx`], exact simplex QP | `dmu/dt = -beta K^{-1} g` | Gladin et al. 2024 \[IFT\] |
//! | `ift` | [`Ift`]: W step + exact MMD prox | `alpha div(mu grad g) - beta K^{-1} g` | Gladin et al. 2024 \[IFT\] |
//! | `ift-pg` | [`Ift`] with the projected-gradient weight step, rate `beta_pg / n` | the same, the reference code's variant | Gladin et al. 2024 |
//! | `kfr` | [`KernelFr`] | FR with `g` replaced by its kernel ridge regression | Zhu, Mielke 2024 \[KFR\] |
//! | `svgd` | [`Svgd`] (own step `svgd_step`) | Stein variational gradient descent | Liu, Wang 2016 |
//! | `langevin` | [`Langevin`] (own step `langevin_step`) | unadjusted Langevin | |
//!
//! The position steps of the weight-moving geometries (`wfr`, `ift`, `ift-pg`) use
//! [`GeometryParams::velocity`]; `mmd`, `mmd-noise` and `w` keep uniform weights and use
//! the unweighted velocity.
//!
//! Calling it (what experiments, inference, DRO and benchmarks do):
//!
//! ```
//! use robustflow::flow::{FlowStep, Geometry, GeometryParams};
//! let g: Geometry = "ift".parse()?;
//! let step = g.build(&GeometryParams { alpha: 1.0, beta: 2.0, ..Default::default() })?;
//! assert_eq!(step.name(), "ift");
//! assert_eq!(g.to_string(), "ift");
//! # Ok::<(), robustflow::Error>(())
//! ```
//!
//! Adding a geometry: write its step in its own file under `src/flow/` (a [`FlowStep`]),
//! then add a variant, a row of [`Geometry::TABLE`] and an arm of [`Geometry::build`] here.

use super::{
    FisherRao, FlowStep, Ift, KernelFr, Langevin, MmdProx, NoiseSchedule, ProxSolver, QpOptions,
    Svgd, Velocity, Wasserstein, Wfr,
};
use crate::error::{Error, Result};
use crate::kernel::{Bandwidth, Kernel, KernelKind};
use crate::measure::LogDensity;
use std::sync::Arc;

/// A flow geometry, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Geometry {
    /// The Wasserstein step as the MMD flow (Arbel et al. 2019).
    Mmd,
    /// The MMD flow with noise injection.
    MmdNoise,
    /// The Wasserstein step (for energies other than MMD).
    W,
    /// Fisher-Rao (weights only).
    Fr,
    /// Wasserstein-Fisher-Rao.
    Wfr,
    /// The MMD-proximal weight step (exact simplex QP).
    MmdProx,
    /// Interaction-Force Transport (W step + exact MMD prox).
    Ift,
    /// IFT with the projected-gradient weight step.
    IftPg,
    /// Kernel-approximated Fisher-Rao.
    Kfr,
    /// Stein variational gradient descent.
    Svgd,
    /// Unadjusted Langevin.
    Langevin,
}

impl Geometry {
    /// The one name table: `(geometry, canonical name, aliases)`.
    pub const TABLE: [(Geometry, &'static str, &'static [&'static str]); 11] = [
        (Geometry::Mmd, "mmd", &[]),
        (Geometry::MmdNoise, "mmd-noise", &[]),
        (Geometry::W, "w", &["wasserstein"]),
        (Geometry::Fr, "fr", &["fisher-rao"]),
        (Geometry::Wfr, "wfr", &[]),
        (Geometry::MmdProx, "mmd-prox", &["prox", "weights"]),
        (Geometry::Ift, "ift", &[]),
        (Geometry::IftPg, "ift-pg", &[]),
        (Geometry::Kfr, "kfr", &[]),
        (Geometry::Svgd, "svgd", &[]),
        (Geometry::Langevin, "langevin", &[]),
    ];

    /// The geometries the sampling experiment (`robustflow flow`) compares, in report order.
    pub const EXPERIMENT: [Geometry; 10] = [
        Geometry::Mmd,
        Geometry::MmdNoise,
        Geometry::Fr,
        Geometry::Wfr,
        Geometry::MmdProx,
        Geometry::Ift,
        Geometry::IftPg,
        Geometry::Kfr,
        Geometry::Svgd,
        Geometry::Langevin,
    ];

    /// The canonical name.
    pub fn name(self) -> &'static str {
        Self::TABLE
            .iter()
            .find(|(g, _, _)| *g == self)
            .map(|(_, n, _)| *n)
            .expect("every geometry has a row in the table")
    }

    /// The geometry whose canonical name is `s` exactly (no aliases, no case folding).
    pub fn from_canonical(s: &str) -> Option<Geometry> {
        Self::TABLE
            .iter()
            .find(|(_, n, _)| *n == s)
            .map(|(g, _, _)| *g)
    }

    /// Whether the step needs the target's density (score): SVGD and Langevin.
    pub fn needs_density(self) -> bool {
        matches!(self, Geometry::Svgd | Geometry::Langevin)
    }

    /// Whether the step takes the exact MMD-prox weight step (a weight-quadratic energy
    /// with the exact kernel).
    pub fn needs_exact_prox(self) -> bool {
        matches!(self, Geometry::MmdProx | Geometry::Ift)
    }

    /// Build the step of this geometry from `p`. Parameters are checked by the steps'
    /// constructors; errors name the parameter (`alpha`, `beta`, `lambda`, `qp-tol`,
    /// `qp-max-iter`, `noise`).
    pub fn build(self, p: &GeometryParams) -> Result<Box<dyn FlowStep>> {
        let w =
            || -> Result<Wasserstein> { Ok(Wasserstein::new(p.alpha)?.with_velocity(p.velocity)) };
        let exact =
            || -> Result<MmdProx> { MmdProx::new(p.beta)?.with_solver(ProxSolver::Exact(p.qp)) };
        let density = || {
            p.density.clone().ok_or_else(|| {
                Error::param(
                    "flow",
                    self,
                    "needs a target with a density (gaussian, mixture, mixture100d), not a sample file",
                )
            })
        };
        Ok(match self {
            Geometry::Mmd | Geometry::W => Box::new(Wasserstein::new(p.alpha)?),
            Geometry::MmdNoise => Box::new(Wasserstein::new(p.alpha)?.with_noise(p.noise)?),
            Geometry::Fr => Box::new(FisherRao::new(p.beta_fr)?),
            Geometry::Wfr => Box::new(Wfr {
                w: w()?,
                fr: FisherRao::new(p.beta_fr)?,
            }),
            Geometry::MmdProx => Box::new(exact()?),
            Geometry::Ift => Box::new(Ift {
                w: w()?,
                prox: exact()?,
            }),
            Geometry::IftPg => Box::new(Ift {
                w: w()?,
                prox: MmdProx::new(p.beta_pg / p.particles.max(1) as f64)?
                    .with_solver(ProxSolver::ProjectedGradient)?,
            }),
            Geometry::Kfr => {
                let k = p.kernel.ok_or_else(|| {
                    Error::param(
                        "flow",
                        self,
                        "needs the regression kernel (GeometryParams::kernel)",
                    )
                })?;
                Box::new(KernelFr::new(k, p.lambda, p.beta_fr)?)
            }
            Geometry::Svgd => {
                let s = Svgd::new(density()?, p.svgd_kernel, Bandwidth::Median);
                Box::new(match p.svgd_step {
                    Some(t) => s.with_step_size(t),
                    None => s,
                })
            }
            Geometry::Langevin => {
                let s = Langevin::new(density()?);
                Box::new(match p.langevin_step {
                    Some(t) => s.with_step_size(t),
                    None => s,
                })
            }
        })
    }
}

impl std::fmt::Display for Geometry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Geometry {
    type Err = Error;
    /// A canonical name or an alias of [`Geometry::TABLE`], case-insensitive.
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        Self::TABLE
            .iter()
            .find(|(_, n, a)| *n == t || a.contains(&t.as_str()))
            .map(|(g, _, _)| *g)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::TABLE.iter().map(|(_, n, _)| *n).collect();
                Error::param(
                    "flow",
                    s,
                    &format!("unknown flow; expected one of {}", names.join(",")),
                )
            })
    }
}

impl serde::Serialize for Geometry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Geometry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Everything any geometry's step reads. Each geometry uses only its own fields (the
/// table of the module docs); the defaults are those of `robustflow flow`'s weights
/// (`alpha = beta = 1`) with the exact QP's default settings.
#[derive(Clone)]
pub struct GeometryParams {
    /// Transport weight `alpha` (position updates `x <- x - tau alpha v grad g`).
    pub alpha: f64,
    /// Velocity of the position steps of `wfr`, `ift`, `ift-pg`.
    pub velocity: Velocity,
    /// MMD-geometry weight `beta` of `mmd-prox` and `ift` (`eta = tau beta`).
    pub beta: f64,
    /// Fisher-Rao weight of `fr`, `wfr`, `kfr` (`w <- w exp(-tau beta_fr g) / Z`).
    pub beta_fr: f64,
    /// Projected-gradient weight of `ift-pg`: `w <- Proj(w - tau beta_pg g / n)`.
    pub beta_pg: f64,
    /// Number of particles `n` (the `ift-pg` rate is `beta_pg / n`).
    pub particles: usize,
    /// Ridge `lambda` of `kfr`.
    pub lambda: f64,
    /// Regression kernel of `kfr`.
    pub kernel: Option<Kernel>,
    /// Noise schedule of `mmd-noise`.
    pub noise: NoiseSchedule,
    /// Settings of the exact simplex QP of `mmd-prox` and `ift`.
    pub qp: QpOptions,
    /// Kernel profile of SVGD (bandwidth by the median rule at every step).
    pub svgd_kernel: KernelKind,
    /// SVGD's own step size (`None`: the driver's).
    pub svgd_step: Option<f64>,
    /// Langevin's own step size (`None`: the driver's).
    pub langevin_step: Option<f64>,
    /// The target density (SVGD, Langevin).
    pub density: Option<Arc<dyn LogDensity>>,
}

impl Default for GeometryParams {
    fn default() -> Self {
        GeometryParams {
            alpha: 1.0,
            velocity: Velocity::Unweighted,
            beta: 1.0,
            beta_fr: 1.0,
            beta_pg: 1.0,
            particles: 1,
            lambda: 1e-3,
            kernel: None,
            noise: NoiseSchedule {
                beta0: 1.0,
                half_life: None,
                off_after: None,
            },
            qp: QpOptions::default(),
            svgd_kernel: KernelKind::Gaussian,
            svgd_step: None,
            langevin_step: None,
            density: None,
        }
    }
}

impl std::fmt::Debug for GeometryParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeometryParams")
            .field("alpha", &self.alpha)
            .field("velocity", &self.velocity)
            .field("beta", &self.beta)
            .field("beta_fr", &self.beta_fr)
            .field("beta_pg", &self.beta_pg)
            .field("particles", &self.particles)
            .field("lambda", &self.lambda)
            .field("kernel", &self.kernel)
            .field("noise", &self.noise)
            .field("qp", &self.qp)
            .field("svgd_kernel", &self.svgd_kernel)
            .field("svgd_step", &self.svgd_step)
            .field("langevin_step", &self.langevin_step)
            .field("density", &self.density.as_ref().map(|d| d.name()))
            .finish()
    }
}
