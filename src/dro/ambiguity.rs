//! An ambiguity set as data: which set (its energy and the geometry of its inner flow),
//! its strength (a radius or a penalty multiplier) and the options of the inner solver.
//!
//! Two types, unchecked and checked (linfa's `ParamGuard` pattern):
//!
//! - [`AmbiguityConfig`] is the flat record the CLI flags and `report.json` /
//!   `model.json` use (`set, radius, penalty, inner_steps, ...`; every field public, any
//!   combination representable);
//! - [`Ambiguity`] is what [`AmbiguityConfig::check`] returns once every field and every
//!   cross-field rule holds: an [`AmbiguitySet`] (one variant per set, carrying only that
//!   set's fields and its [`Strength`]) and the shared [`InnerOptions`], with private fields
//!   and getters. Inner solvers are built from it only ([`Ambiguity::build`]), so nothing
//!   downstream re-validates.
//!
//! Radii: `wasserstein` mean squared transport cost `rho = W_c(P, P_N)` with
//! `c = ||x - x0||^2 (+ kappa 1{y != y0})` (with `norm`: the 1-Wasserstein radius `eps`);
//! `kl` `KL(P | P_N)`; `chi2` `chi^2(P | P_N) = n ||w||^2 - 1`; `cvar`
//! `rho = ln(1 / alpha)` (the Renyi-infinity ball: `w_i <= e^rho / n`; `alpha = e^-rho`);
//! `mmd` the MMD itself (not its square): `MMD(P, P_N) <= eps`.

use super::{
    CvarDro, Erm, InnerFlow, InnerMax, MmdDro, Norm, SetKind, W1Dro, WassersteinDro, WeightDro,
    WfrDro,
};
use crate::error::{check_count, check_nonneg, check_positive, Error, Result};
use crate::kernel::{Approx, Bandwidth, KernelKind};

/// The largest `--extra-support` (extra support points of the MMD set).
pub const MAX_EXTRA_SUPPORT: usize = 100_000;

/// Hyper-parameters of an ambiguity set and its inner solver, unchecked: the flat record of
/// the CLI flags and of the reports. [`AmbiguityConfig::check`] turns it into an
/// [`Ambiguity`].
///
/// Step sizes are relative to the penalty's curvature: a Wasserstein step moves
/// `x <- x - tau / (2 gamma) grad g` (so `tau = 1` is the fixed-point iteration
/// `x = x0 + grad l(x) / (2 gamma)`), a Fisher-Rao step on a KL penalty uses `beta = 1 / lambda`
/// (`tau = 1` jumps to the exact solution); values in `(0, 1]` are stable.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AmbiguityConfig {
    /// The set.
    pub set: SetKind,
    /// Constraint form: the radius `eps` of `D(mu, P_N) <= eps` (the multiplier is tuned).
    pub radius: Option<f64>,
    /// Penalty form: the multiplier `lambda` of `-E_mu l + lambda D(mu, P_N)`.
    pub penalty: Option<f64>,
    /// Inner flow iterations per batch.
    pub inner_steps: usize,
    /// Inner flow step size.
    pub inner_step_size: f64,
    /// Wasserstein: cost `kappa` of changing a label (None: labels fixed).
    pub label_cost: Option<f64>,
    /// MMD set: the inner flow.
    pub inner_flow: InnerFlow,
    /// MMD set: the kernel on inputs.
    pub kernel: KernelKind,
    /// MMD set: the bandwidth rule.
    pub bandwidth: Bandwidth,
    /// MMD set: kernel approximation of the MMD penalty (`exact`, `rff:D`, `nystrom:M`;
    /// approximations need the `w` or `wfr` inner flow).
    pub approx: Approx,
    /// MMD set: extra support points added around the data.
    pub extra_support: usize,
    /// Keep the worst-case particles across epochs (warm start).
    pub warm_start: bool,
    /// Seed of the inner solver's randomness.
    pub seed: u64,
    /// `wasserstein`: use the 1-Wasserstein set with this norm as cost instead of the
    /// squared Euclidean cost (constraint form only; exact for linear models).
    pub norm: Option<Norm>,
    /// `wfr`: the multiplier of the KL term on the weights (default: `penalty`).
    pub kl_penalty: Option<f64>,
    /// `kl`, `chi2`: solve the penalised problem by the core's flow (FR for `kl`,
    /// projected steps for `chi2`) for `inner_steps` steps instead of the closed form.
    pub weight_flow: bool,
    /// Compute the upper bounds that cost extra work (the KDRO dual of `mmd`).
    pub certificate: bool,
    /// Constraint form: bisection steps on the multiplier.
    pub tune_iters: usize,
    /// Constraint form: stop the bisection when the radius reached is within
    /// `tune_tol * radius` below the radius.
    pub tune_tol: f64,
}

impl Default for AmbiguityConfig {
    fn default() -> Self {
        AmbiguityConfig {
            set: SetKind::None,
            radius: None,
            penalty: None,
            inner_steps: 20,
            inner_step_size: 0.1,
            label_cost: None,
            inner_flow: InnerFlow::Ift,
            kernel: KernelKind::Gaussian,
            bandwidth: Bandwidth::Median,
            approx: Approx::Exact,
            extra_support: 0,
            warm_start: false,
            seed: 0,
            norm: None,
            kl_penalty: None,
            weight_flow: false,
            certificate: false,
            tune_iters: 30,
            tune_tol: 1e-3,
        }
    }
}

/// The strength of an ambiguity set: the radius of the constraint form
/// `D(P, P_N) <= radius` (the multiplier is tuned) or the multiplier of the penalty form
/// `-E_P l + lambda D(P, P_N)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strength {
    /// Constraint form: the radius (finite, `>= 0`).
    Radius(f64),
    /// Penalty form: the multiplier (finite, `> 0`).
    Penalty(f64),
}

impl Strength {
    /// The radius of the constraint form.
    pub fn radius(&self) -> Option<f64> {
        match self {
            Strength::Radius(r) => Some(*r),
            Strength::Penalty(_) => None,
        }
    }
    /// The multiplier of the penalty form.
    pub fn penalty(&self) -> Option<f64> {
        match self {
            Strength::Penalty(p) => Some(*p),
            Strength::Radius(_) => None,
        }
    }
}

/// A checked ambiguity set: one variant per set, each with only its own fields.
#[derive(Debug, Clone, PartialEq)]
pub enum AmbiguitySet {
    /// No ambiguity: empirical risk minimisation.
    None,
    /// Wasserstein set with the squared cost `||x - x0||^2 (+ kappa 1{y != y0})` \[WRM\].
    Wasserstein {
        /// Radius (mean transport cost) or multiplier `gamma`.
        strength: Strength,
        /// The cost `kappa` of changing a label (`None`: labels fixed).
        label_cost: Option<f64>,
    },
    /// 1-Wasserstein ball with a norm cost, labels fixed (constraint form only) \[WDRO\].
    W1 {
        /// The radius `eps`.
        radius: f64,
        /// The norm of the transport cost.
        norm: Norm,
    },
    /// KL ball / penalty on the weights.
    Kl {
        /// Radius or multiplier.
        strength: Strength,
        /// Solve the penalised problem by the Fisher-Rao flow instead of the closed form.
        weight_flow: bool,
    },
    /// Chi-square ball / penalty on the weights.
    Chi2 {
        /// Radius or multiplier.
        strength: Strength,
        /// Solve the penalised problem by projected steps instead of the closed form.
        weight_flow: bool,
    },
    /// Conditional value at risk at level `alpha = e^-radius` (constraint form only).
    Cvar {
        /// `ln(1 / alpha)`.
        radius: f64,
    },
    /// MMD ball / penalty (kernel DRO) \[KDRO\].
    Mmd {
        /// Radius (the MMD itself) or multiplier `lambda` of `lambda/2 MMD^2`.
        strength: Strength,
        /// The inner flow.
        flow: InnerFlow,
        /// The kernel on inputs.
        kernel: KernelKind,
        /// The bandwidth rule.
        bandwidth: Bandwidth,
        /// Kernel approximation of the MMD term.
        approx: Approx,
        /// Extra support points around the data.
        extra_support: usize,
    },
    /// Unbalanced Wasserstein-Fisher-Rao set (penalty form only).
    Wfr {
        /// The multiplier `gamma` of the transport cost.
        penalty: f64,
        /// The multiplier of the KL term on the weights (`None`: `penalty`).
        kl_penalty: Option<f64>,
    },
}

impl AmbiguitySet {
    /// The set's kind (the `set` field of the flat record).
    pub fn kind(&self) -> SetKind {
        match self {
            AmbiguitySet::None => SetKind::None,
            AmbiguitySet::Wasserstein { .. } | AmbiguitySet::W1 { .. } => SetKind::Wasserstein,
            AmbiguitySet::Kl { .. } => SetKind::Kl,
            AmbiguitySet::Chi2 { .. } => SetKind::Chi2,
            AmbiguitySet::Cvar { .. } => SetKind::Cvar,
            AmbiguitySet::Mmd { .. } => SetKind::Mmd,
            AmbiguitySet::Wfr { .. } => SetKind::Wfr,
        }
    }
    /// The name of the inner solver (`none`, `wasserstein`, `wasserstein-1`, `kl`, ...),
    /// as in reports.
    pub fn name(&self) -> String {
        match self {
            AmbiguitySet::W1 { .. } => "wasserstein-1".into(),
            s => s.kind().to_string(),
        }
    }
    /// The strength (`None` for ERM).
    pub fn strength(&self) -> Option<Strength> {
        match self {
            AmbiguitySet::None => None,
            AmbiguitySet::Wasserstein { strength, .. }
            | AmbiguitySet::Kl { strength, .. }
            | AmbiguitySet::Chi2 { strength, .. }
            | AmbiguitySet::Mmd { strength, .. } => Some(*strength),
            AmbiguitySet::W1 { radius, .. } | AmbiguitySet::Cvar { radius } => {
                Some(Strength::Radius(*radius))
            }
            AmbiguitySet::Wfr { penalty, .. } => Some(Strength::Penalty(*penalty)),
        }
    }
}

/// Options shared by every inner solver (checked: built by [`AmbiguityConfig::check`]).
#[derive(Debug, Clone, PartialEq)]
pub struct InnerOptions {
    steps: usize,
    step_size: f64,
    warm_start: bool,
    seed: u64,
    certificate: bool,
    tune_iters: usize,
    tune_tol: f64,
}

impl InnerOptions {
    /// Inner flow iterations per batch (`>= 1`).
    pub fn steps(&self) -> usize {
        self.steps
    }
    /// Inner flow step size (finite, `> 0`).
    pub fn step_size(&self) -> f64 {
        self.step_size
    }
    /// Whether the worst-case particles are kept across epochs.
    pub fn warm_start(&self) -> bool {
        self.warm_start
    }
    /// Seed of the inner solver's randomness.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Whether the upper bounds that cost extra work are computed.
    pub fn certificate(&self) -> bool {
        self.certificate
    }
    /// Constraint form: bisection steps on the multiplier (`>= 1`).
    pub fn tune_iters(&self) -> usize {
        self.tune_iters
    }
    /// Constraint form: relative tolerance on the radius reached (`> 0`).
    pub fn tune_tol(&self) -> f64 {
        self.tune_tol
    }

    /// Run a core flow step for [`Self::steps`] iterations of size [`Self::step_size`]
    /// with the core driver (records only at the start and the end, so the energy is
    /// evaluated twice): the one call of every inner solver into [`crate::flow`].
    pub(crate) fn run_flow(
        &self,
        mu: &mut crate::measure::Particles,
        energy: &dyn crate::energy::Energy,
        step: &mut dyn crate::flow::FlowStep,
    ) -> Result<crate::flow::FlowResult> {
        let cfg = crate::flow::FlowParams::new(self.steps, self.step_size)
            .seed(self.seed)
            .trace_every(self.steps)
            .check()?;
        crate::flow::Executor::new(cfg)?.run(mu, energy, step)
    }
}

/// A checked ambiguity set and its inner options ([`AmbiguityConfig::check`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Ambiguity {
    set: AmbiguitySet,
    inner: InnerOptions,
}

impl Ambiguity {
    /// The set, with its own fields.
    pub fn set(&self) -> &AmbiguitySet {
        &self.set
    }
    /// The options of the inner solver.
    pub fn inner(&self) -> &InnerOptions {
        &self.inner
    }
    /// The set's kind.
    pub fn kind(&self) -> SetKind {
        self.set.kind()
    }
    /// The name of the inner solver, as in reports ([`AmbiguitySet::name`]).
    pub fn name(&self) -> String {
        self.set.name()
    }
    /// The strength (`None` for ERM).
    pub fn strength(&self) -> Option<Strength> {
        self.set.strength()
    }
    /// The inner solver of this set (a fresh one: its warm starts and multiplier hints
    /// start empty).
    pub fn build(&self) -> Box<dyn InnerMax> {
        let opts = self.inner.clone();
        match &self.set {
            AmbiguitySet::None => Box::new(Erm),
            AmbiguitySet::W1 { radius, norm } => Box::new(W1Dro::from_parts(*radius, *norm)),
            AmbiguitySet::Wasserstein {
                strength,
                label_cost,
            } => Box::new(WassersteinDro::from_parts(*strength, *label_cost, opts)),
            AmbiguitySet::Kl {
                strength,
                weight_flow,
            } => Box::new(WeightDro::from_parts(
                SetKind::Kl,
                *strength,
                *weight_flow,
                opts,
            )),
            AmbiguitySet::Chi2 {
                strength,
                weight_flow,
            } => Box::new(WeightDro::from_parts(
                SetKind::Chi2,
                *strength,
                *weight_flow,
                opts,
            )),
            AmbiguitySet::Cvar { radius } => Box::new(CvarDro::from_radius(*radius)),
            AmbiguitySet::Mmd { .. } => Box::new(MmdDro::from_parts(self.set.clone(), opts)),
            AmbiguitySet::Wfr {
                penalty,
                kl_penalty,
            } => Box::new(WfrDro::from_parts(*penalty, *kl_penalty, opts)),
        }
    }
}

impl AmbiguityConfig {
    /// A configuration for `set` in the constraint form `D(P, P_N) <= radius`.
    pub fn constrained(set: SetKind, radius: f64) -> Self {
        AmbiguityConfig {
            set,
            radius: Some(radius),
            ..Default::default()
        }
    }
    /// A configuration for `set` in the penalty form with multiplier `penalty`.
    pub fn penalized(set: SetKind, penalty: f64) -> Self {
        AmbiguityConfig {
            set,
            penalty: Some(penalty),
            ..Default::default()
        }
    }

    /// Check every field and every cross-field rule, once, and return the checked set;
    /// errors name the parameter (as the CLI flag).
    pub fn check(self) -> Result<Ambiguity> {
        self.check_ref()
    }

    /// [`AmbiguityConfig::check`] without consuming the record.
    pub fn check_ref(&self) -> Result<Ambiguity> {
        let inner = InnerOptions {
            steps: check_count("inner-steps", self.inner_steps)?,
            step_size: check_positive("inner-step-size", self.inner_step_size)?,
            tune_iters: check_count("tune-iters", self.tune_iters)?,
            tune_tol: check_positive("tune-tol", self.tune_tol)?,
            warm_start: self.warm_start,
            seed: self.seed,
            certificate: self.certificate,
        };
        if let Some(k) = self.label_cost {
            check_nonneg("label-cost", k)?;
            if self.set != SetKind::Wasserstein {
                return Err(Error::param(
                    "label-cost",
                    k,
                    "only the wasserstein set moves labels",
                ));
            }
        }
        if let Some(k) = self.kl_penalty {
            check_positive("kl-penalty", k)?;
        }
        if let Bandwidth::Fixed(h) = self.bandwidth {
            check_positive("bandwidth", h)?;
        }
        if self.extra_support > MAX_EXTRA_SUPPORT {
            return Err(Error::param(
                "extra-support",
                self.extra_support,
                &format!("at most {MAX_EXTRA_SUPPORT} extra support points (each inner step costs O((n + m)^2) kernel evaluations and O((n + m) d) memory)"),
            ));
        }
        if self.set == SetKind::None {
            self.no_set_flags()?;
            return Ok(Ambiguity {
                set: AmbiguitySet::None,
                inner,
            });
        }
        if self.kl_penalty.is_some() && self.set != SetKind::Wfr {
            return Err(Error::param(
                "kl-penalty",
                self.kl_penalty.unwrap_or_default(),
                "is the KL multiplier of the wfr set only",
            ));
        }
        if self.weight_flow && !matches!(self.set, SetKind::Kl | SetKind::Chi2) {
            return Err(Error::param(
                "weight-flow",
                "given",
                "is for the kl and chi2 sets only",
            ));
        }
        let strength = self.strength()?;
        let set = match self.set {
            SetKind::None => unreachable!("handled above"),
            SetKind::Wasserstein => match self.norm {
                Some(norm) => {
                    let Strength::Radius(radius) = strength else {
                        return Err(self.norm_error());
                    };
                    if let Some(k) = self.label_cost {
                        return Err(Error::param(
                            "label-cost",
                            k,
                            "the 1-Wasserstein set keeps labels fixed",
                        ));
                    }
                    self.no_kernel_flags()?;
                    AmbiguitySet::W1 { radius, norm }
                }
                None => {
                    self.no_kernel_flags()?;
                    AmbiguitySet::Wasserstein {
                        strength,
                        label_cost: self.label_cost,
                    }
                }
            },
            SetKind::Kl | SetKind::Chi2 => {
                self.no_norm()?;
                self.no_kernel_flags()?;
                let weight_flow = self.weight_flow;
                if self.set == SetKind::Kl {
                    AmbiguitySet::Kl {
                        strength,
                        weight_flow,
                    }
                } else {
                    AmbiguitySet::Chi2 {
                        strength,
                        weight_flow,
                    }
                }
            }
            SetKind::Cvar => {
                let Strength::Radius(radius) = strength else {
                    return Err(Error::param(
                        "penalty",
                        self.penalty.unwrap_or_default(),
                        "cvar has only the constraint form: give --radius = ln(1/alpha)",
                    ));
                };
                self.no_norm()?;
                self.no_kernel_flags()?;
                AmbiguitySet::Cvar { radius }
            }
            SetKind::Mmd => {
                self.no_norm()?;
                if !self.approx.is_exact()
                    && matches!(self.inner_flow, InnerFlow::Ift | InnerFlow::Prox)
                {
                    return Err(Error::param(
                        "approx",
                        self.approx,
                        "the MMD-prox weight step (inner flow ift, prox) needs the exact kernel: use --inner-flow wfr or w",
                    ));
                }
                AmbiguitySet::Mmd {
                    strength,
                    flow: self.inner_flow,
                    kernel: self.kernel,
                    bandwidth: self.bandwidth,
                    approx: self.approx,
                    extra_support: self.extra_support,
                }
            }
            SetKind::Wfr => {
                self.no_norm()?;
                let Strength::Penalty(penalty) = strength else {
                    return Err(Error::param(
                        "radius",
                        self.radius.unwrap_or_default(),
                        "wfr has only the penalty form: give --penalty (and optionally kl_penalty)",
                    ));
                };
                self.no_kernel_flags()?;
                AmbiguitySet::Wfr {
                    penalty,
                    kl_penalty: self.kl_penalty,
                }
            }
        };
        Ok(Ambiguity { set, inner })
    }

    /// The flags of an ambiguity set given without one would be silently ignored.
    fn no_set_flags(&self) -> Result<()> {
        let on = |b: bool| b.then(|| "given".to_string());
        for (flag, given) in [
            ("radius", self.radius.map(|v| v.to_string())),
            ("penalty", self.penalty.map(|v| v.to_string())),
            (
                "w1-norm",
                self.norm.map(|v| format!("{v:?}").to_lowercase()),
            ),
            ("kl-penalty", self.kl_penalty.map(|v| v.to_string())),
            (
                "extra-support",
                (self.extra_support > 0).then(|| self.extra_support.to_string()),
            ),
            ("weight-flow", on(self.weight_flow)),
            ("warm-start", on(self.warm_start)),
        ] {
            if let Some(value) = given {
                return Err(Error::param(
                    flag,
                    value,
                    "has no effect without an ambiguity set: add --ambiguity wasserstein|kl|chi2|cvar|mmd|wfr, or drop the flag",
                ));
            }
        }
        Ok(())
    }

    /// Exactly one of `radius` (checked `>= 0`) and `penalty` (checked `> 0`).
    fn strength(&self) -> Result<Strength> {
        match (self.radius, self.penalty) {
            (Some(r), None) => Ok(Strength::Radius(check_nonneg("radius", r)?)),
            (None, Some(p)) => Ok(Strength::Penalty(check_positive("penalty", p)?)),
            (Some(_), Some(_)) => Err(Error::param(
                "penalty",
                self.penalty.unwrap_or_default(),
                "give either --radius (constraint form) or --penalty, not both",
            )),
            (None, None) => Err(Error::param(
                "radius",
                "none",
                &format!("ambiguity set {} needs --radius or --penalty", self.set),
            )),
        }
    }

    fn norm_error(&self) -> Error {
        Error::param(
            "norm",
            format!("{:?}", self.norm),
            "the norm cost is for the wasserstein set in the constraint form (--radius)",
        )
    }

    fn no_norm(&self) -> Result<()> {
        match self.norm {
            Some(_) => Err(self.norm_error()),
            None => Ok(()),
        }
    }

    /// The MMD set's kernel approximation and extra support points, given to another set.
    fn no_kernel_flags(&self) -> Result<()> {
        if !self.approx.is_exact() {
            return Err(Error::param(
                "approx",
                self.approx,
                "a kernel approximation is for the mmd set",
            ));
        }
        if self.extra_support > 0 {
            return Err(Error::param(
                "extra-support",
                self.extra_support,
                "extra support points are for the mmd set",
            ));
        }
        Ok(())
    }
}

/// Check `cfg` and build its inner solver: `cfg.check_ref()?.build()`.
pub fn build_inner(cfg: &AmbiguityConfig) -> Result<Box<dyn InnerMax>> {
    Ok(cfg.check_ref()?.build())
}
