//! Gradient flows of an energy in a chosen geometry, as particle steps, and one driver.
//!
//! A flow is "energy + geometry" (docs/DESIGN.md §3). Each geometry is a [`FlowStep`]:
//!
//! | step | continuous flow | particle update |
//! |---|---|---|
//! | [`Wasserstein`] | `dmu/dt = alpha div(mu grad g)` | `x_i <- x_i - tau alpha grad g(x_i)` (optional noise injection, Arbel et al. 2019) |
//! | [`FisherRao`] | `dmu/dt = -beta mu (g - int g dmu)` | `w_i <- w_i exp(-tau beta g_i) / Z` (log domain) |
//! | [`Wfr`] | both (Wasserstein-Fisher-Rao) | W step then FR step |
//! | [`MmdProx`] | `dmu/dt = -beta K^{-1} g` (MMD geometry) | JKO weight step: simplex QP |
//! | [`Ift`] | `alpha div(mu grad g) - beta K^{-1} g` (Gladin et al. 2024) | W step then MMD-prox step |
//! | [`KernelFr`] | FR with `g` replaced by its kernel ridge regression (Zhu, Mielke 2024) | mirror step on `g_lambda` |
//! | [`Svgd`] | Stein variational gradient descent (Liu, Wang 2016) | `x_i += tau sum_j w_j [k_ji s_j + grad_{x_j} k_ji]` |
//! | [`Langevin`] | overdamped Langevin | `x_i += tau s(x_i) + sqrt(2 tau) u_i` |
//!
//! Every geometry has one name in the registry ([`registry`]): [`Geometry`] (`FromStr`,
//! `Display`, serde from one name table) and [`Geometry::build`] from [`GeometryParams`]
//! give the boxed step; experiments, inference and benchmarks build their steps there. A
//! step that runs on its own time scale (SVGD, Langevin) carries its step size as a field.
//!
//! The [`Executor`] runs any step for a number of iterations with observers (trace,
//! progress bar, stopping rules) and a divergence guard, in the spirit of `argmin`: a
//! step returns its diagnostics ([`StepInfo`], e.g. the report of the MMD-prox QP) to the
//! driver, which hands them to the observers ([`Observer::step_info`]), as argmin's
//! `Solver::next_iter` returns its key-value pairs to the executor. Run settings are
//! checked once: [`FlowParams::check`] gives the [`FlowConfig`] the executor takes.

pub mod driver;
pub mod fisher_rao;
pub mod ift;
pub mod kernel_fr;
pub mod langevin;
pub mod mmd_prox;
pub mod registry;
pub mod svgd;
pub mod wasserstein;
pub mod wfr;

pub use driver::{
    Control, Executor, FlowConfig, FlowParams, FlowResult, Observer, ProgressObserver, StepLog,
    Trace, TraceRecord,
};
pub use fisher_rao::FisherRao;
pub use ift::Ift;
pub use kernel_fr::KernelFr;
pub use langevin::Langevin;
pub use mmd_prox::{MmdProx, ProxSolver, QpMethod, QpOptions, QpReport};
pub use registry::{Geometry, GeometryParams};
pub use svgd::Svgd;
pub use wasserstein::{NoiseSchedule, Velocity, Wasserstein};
pub use wfr::Wfr;

use crate::energy::Energy;
use crate::error::Result;
use crate::measure::Particles;
use rand::rngs::StdRng;
use serde::Serialize;

/// What a step may use besides the measure and the energy.
pub struct StepContext<'a> {
    /// The 0-based iteration number.
    pub step: usize,
    /// The step size `tau`.
    pub tau: f64,
    /// The run's random number generator (seeded by the driver).
    pub rng: &'a mut StdRng,
}

/// What one iteration reports to the driver besides the new measure (argmin's `KV`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StepInfo {
    /// The report of the exact simplex QP, when the step solved one (MMD-prox, IFT).
    pub qp: Option<QpReport>,
}

/// One iteration of a particle flow in some geometry.
pub trait FlowStep {
    /// A short name (`w`, `fr`, `wfr`, `mmd-prox`, `ift`, ...).
    fn name(&self) -> String;
    /// How many elementary updates one iteration makes (IFT and WFR: 2, a position update
    /// and a weight update), for comparing flows at equal numbers of updates.
    fn updates_per_step(&self) -> usize {
        1
    }
    /// Whether the step keeps a probability measure on the simplex.
    fn keeps_simplex(&self) -> bool {
        true
    }
    /// Advance `mu` by one iteration of size `ctx.tau` (or the step's own step size, for
    /// SVGD and Langevin) along the flow of `energy`; returns the step's diagnostics.
    fn step(
        &mut self,
        mu: &mut Particles,
        energy: &dyn Energy,
        ctx: &mut StepContext,
    ) -> Result<StepInfo>;
}

impl<S: FlowStep + ?Sized> FlowStep for Box<S> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn updates_per_step(&self) -> usize {
        (**self).updates_per_step()
    }
    fn keeps_simplex(&self) -> bool {
        (**self).keeps_simplex()
    }
    fn step(
        &mut self,
        mu: &mut Particles,
        energy: &dyn Energy,
        ctx: &mut StepContext,
    ) -> Result<StepInfo> {
        (**self).step(mu, energy, ctx)
    }
}
