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
use crate::experiments::Quantiles;
use crate::inference::setup::{
    apply_step_sizes, build_target, default_step_sizes, initial_particles, parse_methods,
    TargetOptions,
};
use crate::inference::{
    fit, summarize, EnergyChoice, FitConfig, FitKernels, InferenceTarget, Method, MethodReport,
};
use crate::io::{write_json_atomic, write_points_csv};
use crate::kernel::{Bandwidth, KernelKind};
use crate::measure::Particles;
use crate::plot::{line_chart, scatter_weighted, Background, Series, WeightedPoints};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Arguments of `robustflow fit-kl`.
#[derive(Debug, Clone, clap::Args)]
pub struct FitKlArgs {
    /// The target (`--target`, `--samples`, `--data`, the target's own flags, `--whiten`,
    /// `--target-samples`).
    #[command(flatten)]
    pub target: TargetOptions,
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

pub use crate::inference::read_samples;

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
    for (flag, p) in [("samples", &a.target.samples), ("data", &a.target.data)] {
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
        let built = build_target(&a.target, seed)?;
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
        let init = initial_particles(&a.init, a.particles, &built, seed)?;
        // the mixture has samples and a density: with --energy ksd its step sizes are those
        // of the density targets
        let mut step_sizes = if energy == EnergyChoice::Ksd && built.info["kind"] == "mixture" {
            default_step_sizes("density")
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
        let q = Quantiles::of(v)?;
        summary.median_mass_error.insert(k.clone(), q.median);
        summary
            .mass_error_quantiles
            .insert(k.clone(), [q.min, q.q25, q.median, q.q75, q.max]);
    }
    if a.seeds > 1 && !summary.median_mass_error.is_empty() && !g.silent {
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
