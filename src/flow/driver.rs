//! The driver that runs any [`FlowStep`] on any [`Energy`], with observers.
//!
//! Modelled on the `argmin` crate's executor / observer split: [`Executor::run`] owns the
//! loop, the seeded random number generator, the divergence guard (a NaN or infinite
//! position, weight or energy stops the run with [`Error::Diverged`] naming the step; so
//! does an energy that climbs back above its start by more than it ever descended below
//! it, at [`RISE_LIMIT`] records: the finite blow-up or oscillation of a step size too
//! large) and
//! the stopping rules (number of steps, relative energy change below `tol`, wall-time
//! budget); [`Observer`]s see a [`TraceRecord`] every `trace_every` steps and may stop the
//! run. The full trace is always returned in [`FlowResult`].

use super::{FlowStep, StepContext, StepInfo};
use crate::energy::Energy;
use crate::error::{check_count, check_nonneg, check_positive, Error, Result};
use crate::measure::Particles;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Records at which the energy `e` exceeds `E_0 + max(E_0 - E_best, 1e-9 |E_0|)` (its
/// start plus the largest descent so far) after which the driver stops the run as
/// diverged. A gradient flow's energy decreases; symmetric noise (Langevin, noise
/// injection) exceeds the mirror image of its own running minimum about once per run,
/// not this often.
pub const RISE_LIMIT: usize = 10;

/// Settings of a flow run, unchecked (linfa's `ParamGuard` pattern): build them with the
/// public fields or the builder methods, then [`FlowParams::check`] them once into the
/// [`FlowConfig`] that [`Executor::new`] takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowParams {
    /// Number of iterations.
    pub steps: usize,
    /// Step size `tau`.
    pub step_size: f64,
    /// Stop when the relative energy change between two records is at most this
    /// (0 disables the rule).
    pub tol: f64,
    /// Seed of the run's random number generator.
    pub seed: u64,
    /// Record (and evaluate the energy) every this many steps.
    pub trace_every: usize,
    /// Optional wall-time budget in seconds.
    pub max_time_s: Option<f64>,
}

impl Default for FlowParams {
    fn default() -> Self {
        FlowParams {
            steps: 100,
            step_size: 0.1,
            tol: 0.0,
            seed: 0,
            trace_every: 1,
            max_time_s: None,
        }
    }
}

impl FlowParams {
    /// `steps` iterations of size `step_size` (unchecked).
    pub fn new(steps: usize, step_size: f64) -> Self {
        FlowParams {
            steps,
            step_size,
            ..Default::default()
        }
    }
    /// With a seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// With a tolerance.
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }
    /// With a trace interval.
    pub fn trace_every(mut self, k: usize) -> Self {
        self.trace_every = k;
        self
    }
    /// With a wall-time budget in seconds.
    pub fn max_time_s(mut self, t: Option<f64>) -> Self {
        self.max_time_s = t;
        self
    }
    /// Check every field once; errors name the parameter (`steps`, `step-size`, `tol`,
    /// `trace-every`, `max-time`).
    pub fn check(self) -> Result<FlowConfig> {
        check_count("steps", self.steps)?;
        check_positive("step-size", self.step_size)?;
        check_nonneg("tol", self.tol)?;
        check_count("trace-every", self.trace_every)?;
        if let Some(t) = self.max_time_s {
            check_positive("max-time", t)?;
        }
        Ok(FlowConfig(self))
    }
}

/// Checked settings of a flow run (from [`FlowParams::check`]; read-only).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct FlowConfig(FlowParams);

impl FlowConfig {
    /// `steps` iterations of size `step_size`, checked (`FlowParams::new(..).check()`).
    pub fn new(steps: usize, step_size: f64) -> Result<Self> {
        FlowParams::new(steps, step_size).check()
    }
    /// With a seed (any seed is valid).
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }
    /// Wrap parameters the caller's own checked configuration already guarantees (an
    /// experiment or fit config checked once); checked again in debug builds.
    pub(crate) fn from_checked(p: FlowParams) -> Self {
        debug_assert!(p.clone().check().is_ok(), "unchecked flow parameters {p:?}");
        FlowConfig(p)
    }
    /// Number of iterations.
    pub fn steps(&self) -> usize {
        self.0.steps
    }
    /// Step size `tau`.
    pub fn step_size(&self) -> f64 {
        self.0.step_size
    }
    /// Relative energy-change tolerance (0: off).
    pub fn tol_value(&self) -> f64 {
        self.0.tol
    }
    /// Seed of the run's random number generator.
    pub fn seed_value(&self) -> u64 {
        self.0.seed
    }
    /// Trace interval.
    pub fn trace_interval(&self) -> usize {
        self.0.trace_every
    }
    /// Wall-time budget in seconds.
    pub fn max_time_s(&self) -> Option<f64> {
        self.0.max_time_s
    }
    /// The unchecked parameters back (to change and check again).
    pub fn params(&self) -> &FlowParams {
        &self.0
    }
}

/// One row of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceRecord {
    /// The flow's name.
    pub flow: String,
    /// Iterations done.
    pub step: usize,
    /// Elementary updates done (`step * updates_per_step`).
    pub updates: usize,
    /// `F(mu)`.
    pub energy: f64,
    /// `MMD^2(mu, pi)` when the energy knows the target.
    pub mmd2: Option<f64>,
    /// Total mass `sum w`.
    pub mass: f64,
    /// Effective sample size.
    pub ess: f64,
    /// Wall time since the start, seconds.
    pub time_s: f64,
}

impl TraceRecord {
    /// CSV header matching [`TraceRecord::csv_row`].
    pub fn csv_header() -> Vec<String> {
        [
            "flow", "step", "updates", "energy", "mmd2", "mass", "ess", "time_s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
    /// The record as CSV cells (`mmd2` empty when unknown).
    pub fn csv_row(&self) -> Vec<String> {
        vec![
            self.flow.clone(),
            self.step.to_string(),
            self.updates.to_string(),
            format!("{:e}", self.energy),
            self.mmd2.map(|v| format!("{v:e}")).unwrap_or_default(),
            format!("{}", self.mass),
            format!("{}", self.ess),
            format!("{:.6}", self.time_s),
        ]
    }
}

/// What an observer asks the driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop now, with a reason.
    Stop(String),
}

/// Sees every record of a run, and the diagnostics of every step.
pub trait Observer {
    /// Called at step 0 and every `trace_every` steps.
    fn observe(&mut self, rec: &TraceRecord, mu: &Particles) -> Result<Control>;
    /// Called after every iteration `step` (0-based) with the diagnostics the step
    /// returned (argmin's `KV`); by default ignored.
    fn step_info(&mut self, _step: usize, _info: &StepInfo) {}
    /// Called once at the end.
    fn finish(&mut self) {}
}

/// Collects the records (the executor also returns them; this one can be shared).
#[derive(Debug, Default, Clone)]
pub struct Trace {
    /// The records.
    pub records: Vec<TraceRecord>,
}

impl Observer for Trace {
    fn observe(&mut self, rec: &TraceRecord, _mu: &Particles) -> Result<Control> {
        self.records.push(rec.clone());
        Ok(Control::Continue)
    }
}

/// Collects the diagnostics of every step (`(iteration, info)`), e.g. the MMD-prox QP
/// reports of an IFT run.
#[derive(Debug, Default, Clone)]
pub struct StepLog {
    /// The diagnostics, in order.
    pub steps: Vec<(usize, StepInfo)>,
}

impl Observer for StepLog {
    fn observe(&mut self, _rec: &TraceRecord, _mu: &Particles) -> Result<Control> {
        Ok(Control::Continue)
    }
    fn step_info(&mut self, step: usize, info: &StepInfo) {
        self.steps.push((step, *info));
    }
}

/// A progress bar on standard error, hidden when standard error is not a terminal or when
/// `quiet` is set.
pub struct ProgressObserver {
    bar: indicatif::ProgressBar,
}

impl ProgressObserver {
    /// A bar for `steps` steps labelled `label`.
    pub fn new(label: &str, steps: usize, quiet: bool) -> Self {
        let bar = crate::progress::bar(
            steps as u64,
            "{prefix:>10} [{bar:30}] {pos}/{len} {msg} ({eta})",
            quiet,
        );
        bar.set_prefix(label.to_string());
        ProgressObserver { bar }
    }
}

impl Observer for ProgressObserver {
    fn observe(&mut self, rec: &TraceRecord, _mu: &Particles) -> Result<Control> {
        self.bar.set_position(rec.step as u64);
        self.bar.set_message(format!("F = {:.3e}", rec.energy));
        Ok(Control::Continue)
    }
    fn finish(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct FlowResult {
    /// Name of the flow.
    pub flow: String,
    /// All records.
    pub trace: Vec<TraceRecord>,
    /// Iterations done.
    pub steps: usize,
    /// Elementary updates done.
    pub updates: usize,
    /// Wall time, seconds.
    pub time_s: f64,
    /// Final energy.
    pub final_energy: f64,
    /// Final `MMD^2` to the target, when known.
    pub final_mmd2: Option<f64>,
    /// Why the run stopped.
    pub stop_reason: String,
}

/// Runs flows.
pub struct Executor {
    /// Settings.
    pub config: FlowConfig,
    observers: Vec<Box<dyn Observer>>,
}

impl Executor {
    /// An executor with checked settings and no observers. The settings were checked by
    /// [`FlowParams::check`], so this never fails; it returns `Result` so that callers'
    /// `?` stay valid.
    pub fn new(config: FlowConfig) -> Result<Self> {
        Ok(Executor {
            config,
            observers: Vec::new(),
        })
    }
    /// Add an observer.
    pub fn observe(mut self, o: impl Observer + 'static) -> Self {
        self.observers.push(Box::new(o));
        self
    }
    /// Add a boxed observer.
    pub fn add_observer(&mut self, o: Box<dyn Observer>) {
        self.observers.push(o);
    }

    fn record(
        &self,
        name: &str,
        step: usize,
        ups: usize,
        mu: &Particles,
        energy: &dyn Energy,
        t0: Instant,
    ) -> Result<TraceRecord> {
        // A non-finite value seen after `step` iterations was produced by iteration
        // `step - 1` (0-based, as in the position check of `run`); at the start, step 0.
        let it = step.saturating_sub(1);
        let e = energy.value(mu).map_err(|e| at_step(e, it))?;
        if !e.is_finite() {
            return Err(Error::Diverged {
                step: it,
                detail: format!("energy {} is {e}", energy.name()),
            });
        }
        let mass = mu.mass();
        if !mass.is_finite() || mass == 0.0 {
            return Err(Error::Diverged {
                step: it,
                detail: format!(
                    "total mass of the particles is {mass} (weights overflowed or underflowed)"
                ),
            });
        }
        let mmd2 = energy
            .mmd2_to_target(mu)
            .transpose()
            .map_err(|e| at_step(e, it))?;
        if let Some(m) = mmd2.filter(|m| !m.is_finite()) {
            return Err(Error::Diverged {
                step: it,
                detail: format!("MMD^2 to the target is {m}"),
            });
        }
        Ok(TraceRecord {
            flow: name.to_string(),
            step,
            updates: step * ups,
            energy: e,
            mmd2,
            mass,
            ess: mu.ess(),
            time_s: t0.elapsed().as_secs_f64(),
        })
    }

    /// Run `step` on `mu` for the configured number of iterations.
    /// Observers are finished (progress bars cleared) also when the run fails.
    pub fn run(
        &mut self,
        mu: &mut Particles,
        energy: &dyn Energy,
        step: &mut dyn FlowStep,
    ) -> Result<FlowResult> {
        let r = self.run_inner(mu, energy, step);
        for o in self.observers.iter_mut() {
            o.finish();
        }
        r
    }

    fn run_inner(
        &mut self,
        mu: &mut Particles,
        energy: &dyn Energy,
        step: &mut dyn FlowStep,
    ) -> Result<FlowResult> {
        let cfg = self.config.params().clone();
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let name = step.name();
        let ups = step.updates_per_step();
        let t0 = Instant::now();
        let mut trace = Vec::new();
        let mut stop_reason = format!("reached {} steps", cfg.steps);
        let first = self.record(&name, 0, ups, mu, energy, t0)?;
        let mut last_energy = first.energy;
        let first_energy = first.energy;
        let mut best_energy = first.energy;
        let mut rises = 0usize;
        for o in self.observers.iter_mut() {
            o.observe(&first, mu)?;
        }
        trace.push(first);
        let mut done = 0;
        'outer: for k in 0..cfg.steps {
            let mut ctx = StepContext {
                step: k,
                tau: cfg.step_size,
                rng: &mut rng,
            };
            let info = step.step(mu, energy, &mut ctx).map_err(|e| at_step(e, k))?;
            for o in self.observers.iter_mut() {
                o.step_info(k, &info);
            }
            done = k + 1;
            if let Some(detail) = mu.first_non_finite() {
                return Err(Error::Diverged { step: k, detail });
            }
            if done % cfg.trace_every == 0 || done == cfg.steps {
                let rec = self.record(&name, done, ups, mu, energy, t0)?;
                let e = rec.energy;
                // Every observer sees the record; the first stop request wins.
                let mut stop = None;
                for o in self.observers.iter_mut() {
                    if let Control::Stop(r) = o.observe(&rec, mu)? {
                        stop.get_or_insert(r);
                    }
                }
                trace.push(rec);
                best_energy = best_energy.min(e);
                let margin = (first_energy - best_energy).max(1e-9 * first_energy.abs());
                if e > first_energy + margin {
                    rises += 1;
                    if rises >= RISE_LIMIT {
                        return Err(Error::Diverged {
                            step: k,
                            detail: format!(
                                "energy {} rose above its start {first_energy:.6e} by more than \
                                 its largest descent ({margin:.3e}) at {rises} records (now \
                                 {e:.6e}): the step size is too large; lower --step-size (or \
                                 the flow's own step: --alpha, --svgd-step, --langevin-step)",
                                energy.name()
                            ),
                        });
                    }
                }
                if let Some(r) = stop {
                    stop_reason = r;
                    break 'outer;
                }
                if cfg.tol > 0.0 && (last_energy - e).abs() <= cfg.tol * last_energy.abs() {
                    stop_reason = format!("relative energy change below tol = {}", cfg.tol);
                    break;
                }
                last_energy = e;
            }
            if let Some(tmax) = cfg.max_time_s {
                if t0.elapsed().as_secs_f64() > tmax {
                    stop_reason = format!("time budget of {tmax} s reached");
                    break;
                }
            }
        }
        if trace.last().map(|r| r.step) != Some(done) {
            trace.push(self.record(&name, done, ups, mu, energy, t0)?);
        }
        let last = trace.last().expect("at least one record");
        Ok(FlowResult {
            flow: name,
            steps: done,
            updates: done * ups,
            time_s: t0.elapsed().as_secs_f64(),
            final_energy: last.energy,
            final_mmd2: last.mmd2,
            stop_reason,
            trace,
        })
    }
}

/// An [`Error::Diverged`] raised inside iteration `k` (by the step or the energy, which do
/// not know the iteration) names iteration `k`; other errors pass unchanged.
fn at_step(e: Error, k: usize) -> Error {
    match e {
        Error::Diverged { detail, .. } => Error::Diverged { step: k, detail },
        e => e,
    }
}

/// Write records as CSV (header [`TraceRecord::csv_header`]) atomically.
pub fn write_trace_csv(path: impl AsRef<std::path::Path>, records: &[TraceRecord]) -> Result<()> {
    crate::io::write_csv_atomic(
        path,
        &TraceRecord::csv_header(),
        records.iter().map(|r| r.csv_row()),
    )
}
