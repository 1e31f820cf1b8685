//! `robustflow flow`: the MMD-minimisation sampling experiment (docs/DESIGN.md §3).
//!
//! Several flows of `F(mu) = 1/2 MMD^2(mu, pi_m)` are run on the same seed from the same
//! initial particles and compared at equal numbers of elementary updates (one IFT or WFR
//! iteration is a position update plus a weight update = two updates). See
//! [`crate::experiments`] for the targets, the flows and the evaluation protocol.
//!
//! Outputs in `--out-dir` (all written atomically):
//! - `trace.csv`: `flow, step, updates, energy, mmd2, mass, ess, time_s, seed` for every
//!   flow and seed; `energy` is `1/2 MMD^2` to the training target sample, `mmd2` the
//!   V-statistic `MMD^2` to an independent held-out sample of the same size;
//! - `particles_<flow>.csv`: final positions `x1..xd` and `weight` (first seed);
//! - `report.json`: `config`, `kernel`, `seeds`, `floor_mmd2`, per flow `flows.<name>`
//!   (`final_mmd2`, `final_energy`, `steps`, `updates`, `time_s`, `stop_reason`, `mass`,
//!   `ess`, `nonzero`; first seed) and `summary.<name>` (quantiles over seeds);
//! - `summary.csv`: per flow the median, quartiles, min and max over seeds of the final
//!   held-out `MMD^2`, the median ratio to the plain MMD flow, and the same (median,
//!   quartiles, ratio) for the training `MMD^2 = 2 F(mu)`;
//! - `mmd2.png` / `mmd2_train.png`: held-out / training `MMD^2` against updates (log
//!   scale; median over seeds);
//! - `particles_<flow>.png` (2-D only): final particles, marker area ~ weight, empty
//!   particles hollow, target samples in the background.

use super::GlobalOpts;
use crate::error::{Error, Result};
use crate::experiments::summary::{median_curve, FlowSummary};
use crate::experiments::{
    parse_flows, ExperimentConfig, ExperimentParams, ExperimentRun, FlowSettings, InitSpec,
    LoadedTarget, Quantiles, TargetSpec,
};
use crate::flow::{Observer, ProgressObserver, TraceRecord, Velocity};
use crate::kernel::{Bandwidth, KernelKind};
use crate::plot::{line_chart, scatter_weighted, Background, Series, WeightedPoints};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// Arguments of `robustflow flow`.
#[derive(Debug, Clone, clap::Args)]
pub struct FlowArgs {
    /// Target: gaussian, mixture, mixture100d, or a CSV file of samples (rows = points).
    #[arg(long, default_value = "gaussian")]
    pub target: String,
    /// Target samples drawn per seed (training sample of the energy; the held-out
    /// evaluation sample has the same size). For a CSV target, two disjoint random
    /// subsets of its rows (seeded; at most half the rows are held out). Default: the
    /// number of particles.
    #[arg(long)]
    pub target_samples: Option<usize>,
    /// Initial law `gaussian:MEAN:STD` (MEAN one number or d comma-separated numbers) or a
    /// CSV of positions. Default: gaussian:5:1 (gaussian:0:1 for mixture100d).
    #[arg(long)]
    pub init: Option<String>,
    /// Number of particles.
    #[arg(long, default_value_t = 300)]
    pub particles: usize,
    /// Flows to compare (comma-separated): mmd, mmd-noise, fr, wfr, mmd-prox, ift, ift-pg,
    /// kfr, svgd, langevin, or all.
    #[arg(long, default_value = "mmd,mmd-noise,wfr,ift,ift-pg")]
    pub flow: String,
    /// Budget of elementary updates per flow (two-update flows, WFR and IFT, run half as
    /// many iterations).
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    /// Step size tau (shared by the position and weight parts).
    #[arg(long, default_value_t = 1.0)]
    pub step_size: f64,
    /// Weight alpha of the transport (Wasserstein) part: x <- x - tau alpha grad f.
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
    /// Weight beta of the MMD geometry (mmd-prox, ift): proximal parameter eta = tau beta.
    #[arg(long, default_value_t = 1.0)]
    pub beta: f64,
    /// Weight of the Fisher-Rao part (fr, wfr, kfr): w <- w exp(-tau beta_fr f) / Z.
    #[arg(long, default_value_t = 5.0)]
    pub beta_fr: f64,
    /// Weight of the projected-gradient MMD step (ift-pg): w <- Proj(w - tau beta_pg f / n).
    #[arg(long, default_value_t = 5.0)]
    pub beta_pg: f64,
    /// Ridge lambda of kernel Fisher-Rao (kfr).
    #[arg(long, default_value_t = 1e-3)]
    pub lambda: f64,
    /// Position velocity of the weight-moving flows: unweighted (-alpha grad f, the paper
    /// form) or mass-weighted (-alpha n w_i grad f, the IFT reference code; empty
    /// particles stop).
    #[arg(long, default_value = "unweighted")]
    pub velocity: String,
    /// Initial noise level of mmd-noise (gradient evaluated at x + level u, u ~ N(0, I)).
    #[arg(long, default_value_t = 1.0)]
    pub noise: f64,
    /// Halve the noise level every this many iterations (0: constant).
    #[arg(long, default_value_t = 0)]
    pub noise_half_life: usize,
    /// Switch the noise off from this iteration on (default: after 60% of the budget).
    #[arg(long)]
    pub noise_off: Option<usize>,
    /// Step size of SVGD.
    #[arg(long, default_value_t = 0.1)]
    pub svgd_step: f64,
    /// Step size of Langevin.
    #[arg(long, default_value_t = 0.01)]
    pub langevin_step: f64,
    /// KKT tolerance of the exact MMD-prox QP (mmd-prox, ift).
    #[arg(long, default_value_t = 1e-6)]
    pub qp_tol: f64,
    /// Iteration cap of the exact MMD-prox QP.
    #[arg(long, default_value_t = 100)]
    pub qp_max_iter: usize,
    /// Kernel: gaussian, imq or laplace.
    #[arg(long, default_value = "gaussian")]
    pub kernel: String,
    /// Bandwidth h (number) or `median` (h^2 = median squared distance / 2 over the pooled
    /// initial particles and training target sample).
    #[arg(long, default_value = "1")]
    pub bandwidth: String,
    /// Seed (target samples, initial particles, noise).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Several seeds, `A..B` (B excluded) or a comma list; overrides --seed and writes the
    /// summary over seeds.
    #[arg(long)]
    pub seeds: Option<String>,
    /// Record the trace every this many updates (default: steps / 100).
    #[arg(long)]
    pub trace_every: Option<usize>,
    /// Wall-time budget per flow and seed, seconds.
    #[arg(long)]
    pub max_time: Option<f64>,
    /// Kernel approximation of the energy: exact, rff:D (D random Fourier features,
    /// Gaussian kernel) or nystrom:M (M landmarks from the training target sample). The
    /// held-out evaluation and the noise floor stay exact. The exact MMD-prox weight step
    /// (mmd-prox, ift) needs the exact kernel.
    #[arg(long, default_value = "exact")]
    pub approx: String,
    /// Output directory.
    #[arg(long, default_value = "out/flow")]
    pub out_dir: PathBuf,
}

impl Default for FlowArgs {
    fn default() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct W {
            #[command(flatten)]
            a: FlowArgs,
        }
        W::parse_from(["flow"]).a
    }
}

pub use crate::experiments::parse_seeds;

/// Validate the arguments into an experiment configuration and the list of seeds.
pub fn config_of(args: &FlowArgs) -> Result<(ExperimentConfig, Vec<u64>)> {
    let spec: TargetSpec = args.target.parse()?;
    let target = LoadedTarget::load(&spec)?;
    let init: InitSpec = match &args.init {
        Some(s) => s.parse()?,
        None => InitSpec::default_for(&spec),
    };
    let flows = parse_flows(&args.flow)?;
    let approx: crate::kernel::Approx = args.approx.parse()?;
    let kernel: KernelKind = args.kernel.parse()?;
    let bandwidth: Bandwidth = args.bandwidth.parse()?;
    let trace_every = args.trace_every.unwrap_or((args.steps / 100).max(2));
    let seeds = match &args.seeds {
        Some(s) => parse_seeds(s)?,
        None => vec![args.seed],
    };
    let params = FlowSettings {
        step_size: args.step_size,
        alpha: args.alpha,
        beta: args.beta,
        beta_fr: args.beta_fr,
        beta_pg: args.beta_pg,
        lambda: args.lambda,
        velocity: args.velocity.parse::<Velocity>()?,
        noise: args.noise,
        noise_half_life: (args.noise_half_life > 0).then_some(args.noise_half_life),
        noise_off: Some(args.noise_off.unwrap_or(args.steps * 3 / 5)),
        svgd_step: args.svgd_step,
        langevin_step: args.langevin_step,
        qp_tol: args.qp_tol,
        qp_max_iter: args.qp_max_iter,
    };
    // a CSV init fixes the particles (`--particles` is then only checked to be >= 1)
    let particles = match &init {
        InitSpec::File(_) => args.particles.min(1),
        _ => args.particles,
    };
    let cfg = ExperimentParams {
        target,
        target_samples: args.target_samples.unwrap_or(args.particles),
        init,
        particles,
        flows,
        updates: args.steps,
        trace_every,
        kernel,
        bandwidth,
        params,
        max_time_s: args.max_time,
        approx,
    }
    .check()?;
    Ok((cfg, seeds))
}

/// Run `robustflow flow`; returns the report written to `report.json`.
pub fn run(args: &FlowArgs, global: &GlobalOpts) -> Result<Value> {
    let (cfg, seeds) = config_of(args)?;
    let out = &args.out_dir;
    let mut guard = crate::outputs::OutputGuard::new();
    for (flag, s) in [("target", Some(&args.target)), ("init", args.init.as_ref())] {
        if let Some(s) = s.filter(|s| s.to_ascii_lowercase().ends_with(".csv")) {
            guard = guard.input(flag, s);
        }
    }
    guard.files_in(
        "out-dir",
        out,
        &[
            ("trace", ".csv"),
            ("summary", ".csv"),
            ("report", ".json"),
            ("particles_", ".csv"),
            ("", ".png"),
        ],
    )?;
    let quiet = global.quiet;
    let mut runs: Vec<ExperimentRun> = Vec::new();
    for &seed in &seeds {
        let label_seed = seeds.len() > 1;
        let run = cfg.run(seed, |name, iters| {
            let label = if label_seed {
                format!("{name} s{seed}")
            } else {
                name.to_string()
            };
            vec![Box::new(ProgressObserver::new(&label, iters, quiet)) as Box<dyn Observer>]
        })?;
        if !quiet && seeds.len() > 1 {
            let parts: Vec<String> = run
                .flows
                .iter()
                .map(|(n, o)| format!("{n} {:.3e}", o.result.final_mmd2.unwrap_or(f64::NAN)))
                .collect();
            eprintln!("seed {seed}: {}", parts.join(", "));
        }
        runs.push(run);
    }
    // Only now (every flow finished without diverging) is anything written.
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let first = &runs[0];

    // trace.csv (all seeds, all flows)
    let mut header = TraceRecord::csv_header();
    header.push("seed".into());
    let rows = runs.iter().flat_map(|r| {
        r.flows.iter().flat_map(move |(_, o)| {
            o.result.trace.iter().map(move |rec| {
                let mut row = rec.csv_row();
                row.push(r.seed.to_string());
                row
            })
        })
    });
    crate::io::write_csv_atomic(out.join("trace.csv"), &header, rows)?;

    // particles_<flow>.csv (first seed)
    for (name, o) in &first.flows {
        crate::io::write_points_csv(
            out.join(format!("particles_{name}.csv")),
            &o.particles.x,
            Some(&o.particles.weights()),
        )?;
    }

    // per-flow summaries over seeds, on two metrics: the held-out `MMD^2` (`final_mmd2`) and
    // the training `MMD^2 = 2 F(mu)` the flows minimise (`final_train_mmd2`)
    let summaries = FlowSummary::over_seeds(&runs, &cfg.flows)?;
    let summary: Map<String, Value> = summaries
        .iter()
        .map(|f| (f.flow.clone(), f.to_json()))
        .collect();
    crate::io::write_csv_atomic(
        out.join("summary.csv"),
        &FlowSummary::csv_header(),
        summaries.iter().map(|f| f.csv_row()),
    )?;

    // report.json
    let flows = first.flows_json();
    let floors: Vec<f64> = runs.iter().map(|r| r.floor_mmd2).collect();
    let report = json!({
        "command": "flow",
        "config": {
            "target": args.target,
            "dim": cfg.target.dim(),
            "target_samples": cfg.target_samples,
            "target_training_rows": first.target_sample.nrows(),
            "init": cfg.init.to_string(),
            "particles": first.init.len(),
            "flows": cfg.flows,
            "updates": cfg.updates,
            "trace_every": cfg.trace_every,
            "kernel": cfg.kernel.to_string(),
            "bandwidth": args.bandwidth,
            "params": cfg.params,
            "seeds": seeds,
            "max_time_s": cfg.max_time_s,
            "approx": cfg.approx,
        },
        "approx": cfg.approx,
        "kernel": { "kind": first.kernel.kind.to_string(), "h": first.kernel.h },
        "evaluation": "mmd2 = weighted V-statistic MMD^2 to an independent held-out target sample of size target_samples (energy = 1/2 MMD^2 to the training sample); floor_mmd2 = MMD^2 between the training and held-out samples",
        "floor_mmd2": Quantiles::of(&floors)?,
        "flows": flows,
        "summary": summary,
    });
    crate::io::write_json_atomic(out.join("report.json"), &report)?;

    // mmd2.png (held-out) and mmd2_train.png (training, 2 F): median over seeds at each
    // recorded update count
    let seeds_note = if runs.len() > 1 {
        format!(", median of {} seeds", runs.len())
    } else {
        String::new()
    };
    for (file, what, train) in [
        ("mmd2.png", "MMD^2 to held-out target", false),
        ("mmd2_train.png", "MMD^2 to training target (2 F)", true),
    ] {
        let series: Vec<Series> = cfg
            .flows
            .iter()
            .map(|g| Series {
                name: g.to_string(),
                points: median_curve(&runs, g.name(), train),
            })
            .collect();
        line_chart(
            out.join(file),
            &format!("{what} ({}{seeds_note})", args.target),
            "updates (one IFT/WFR iteration = 2)",
            "MMD^2",
            &series,
            true,
        )?;
    }

    // particles_<flow>.png for 2-D runs
    if cfg.target.dim() == 2 {
        let tpts: Vec<(f64, f64, f64)> = first
            .target_sample
            .outer_iter()
            .map(|r| (r[0], r[1], 1.0))
            .collect();
        let bounds = first.plot_bounds();
        let density = cfg.target.density();
        for (name, o) in &first.flows {
            let w = o.particles.weights();
            let pts: Vec<(f64, f64, f64)> = o
                .particles
                .x
                .outer_iter()
                .zip(&w)
                .map(|(r, &wi)| (r[0], r[1], wi))
                .collect();
            let f = |a: f64, b: f64| {
                density
                    .as_ref()
                    .map(|d| d.log_density(&[a, b]).exp())
                    .unwrap_or(0.0)
            };
            let bg = density.as_ref().map(|_| Background {
                f: &f,
                resolution: 120,
            });
            let mut sets = Vec::new();
            if density.is_none() {
                sets.push(WeightedPoints {
                    name: "target samples".into(),
                    points: tpts.clone(),
                    fixed_size: true,
                });
            }
            sets.push(WeightedPoints {
                name: format!("{name} particles"),
                points: pts,
                fixed_size: false,
            });
            let r = &o.result;
            scatter_weighted(
                out.join(format!("particles_{name}.png")),
                &format!(
                    "{name}: {} updates, MMD^2 = {:.2e}",
                    r.updates,
                    r.final_mmd2.unwrap_or(f64::NAN)
                ),
                &sets,
                bg,
                Some(bounds),
            )?;
        }
    }

    // printed summary (not for library callers, who get the report)
    if !global.silent {
        println!(
            "robustflow flow: target {}, d = {}, n = {}, m = {}, kernel {} h = {:.4} ({}), {} updates, {} seed(s)",
            args.target,
            cfg.target.dim(),
            first.init.len(),
            first.target_sample.nrows(),
            first.kernel.kind,
            first.kernel.h,
            cfg.approx,
            cfg.updates,
            runs.len()
        );
        println!(
            "{:<10} {:>12} {:>10} {:>12} {:>12} {:>12} {:>10} {:>9}",
            "flow", "train MMD2", "vs mmd", "held-out", "q25", "q75", "vs mmd", "time s"
        );
        let e3 = |v: Option<f64>| v.map(|v| format!("{v:.3e}")).unwrap_or_default();
        for f in &summaries {
            println!(
                "{:<10} {:>12} {:>10} {:>12} {:>12} {:>12} {:>10} {:>9}",
                f.flow,
                e3(Some(f.final_train_mmd2.median)),
                e3(f.median_train_ratio_to_mmd),
                e3(Some(f.final_mmd2.median)),
                e3(Some(f.final_mmd2.q25)),
                e3(Some(f.final_mmd2.q75)),
                e3(f.median_ratio_to_mmd),
                format!("{:.3}", f.time_s.median)
            );
        }
        println!("(medians over seeds; `vs mmd` = median over seeds of flow / plain MMD flow)");
        println!(
            "held-out noise floor MMD2 (training vs held-out sample): {:.3e}; outputs in {}",
            Quantiles::of(&floors)?.median,
            out.display()
        );
    }
    Ok(report)
}
