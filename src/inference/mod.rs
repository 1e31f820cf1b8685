//! Forward-KL (inclusive) inference \[IKL\]: fit a mass-covering particle approximation
//! `mu = sum_i w_i delta_{x_i}` of a target `pi` by minimising `KL(pi | mu)`, kernelised.
//!
//! Zhu (2024, arXiv 2411.00214) shows that smoothing the first variation `1 - dpi/dmu` of
//! the inclusive KL with the kernel gives the MMD witness `K(mu - pi)`: the Wasserstein part
//! of the kernelised forward-KL flow is the MMD flow (Arbel et al. 2019) and its Fisher-Rao
//! part is the MMD-geometry weight flow, so IFT and WFR on `1/2 MMD^2` fit a target given by
//! samples (docs/DESIGN.md §2, §3 and §5). With an unnormalised density the Stein kernel
//! `k_pi` ([`stein`]) replaces `k`: the energy becomes `1/2 KSD^2(mu | pi)` ([`KsdEnergy`]),
//! its transport part is KSD descent (Korba et al. 2021) and the exact MMD-prox weight step
//! becomes the KSD-optimal reweighting QP (black-box importance sampling, Liu, Lee 2017).
//! Reverse-KL baselines: SVGD and Langevin.
//!
//! - [`targets`]: the [`SteinTarget`] trait and the banana, funnel and Bayesian logistic
//!   regression targets (plus Stein support for the core's Gaussian and Gaussian mixture).
//! - [`stein`]: Stein kernel, KSD V/U-statistics, [`KsdEnergy`].
//! - [`fit`](mod@fit): methods, [`fit()`](fit::fit), reports.
//! - [`setup`]: the built-in targets by name, default step sizes, whitening, initial
//!   particles and method lists of a fit (the library side of `robustflow fit-kl`).
//! - [`kl`]: the inclusive KL on a common support (facts 4 and 5 of docs/DESIGN.md §3).

pub mod fit;
pub mod kl;
pub mod setup;
pub mod stein;
pub mod targets;

pub use fit::{
    component_mass, fit, read_samples, stratified_mixture_sample, summarize, EnergyChoice,
    FitConfig, FitKernels, InferenceTarget, Method, MethodFit, MethodReport,
};
pub use kl::CommonSupportKl;
pub use stein::{
    ksd2_u, ksd2_v, stein_gram, stein_sums, stein_sums_with_grad, KsdEnergy, SteinGramOp,
    SteinKernel,
};
pub use targets::{
    as_log_density, fd_hvp, hessian, laplace_approximation, AsLogDensity, Banana, Funnel,
    LogisticPosterior, SteinTarget, Whitened,
};
