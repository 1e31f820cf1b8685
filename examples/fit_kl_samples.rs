//! Forward-KL fit of a target given by weighted samples in a CSV file (`1/2 MMD^2` energy):
//! IFT, WFR, the transport-only MMD flow and reweighting-only FR, from the same initial
//! particles, compared with the sample's own mean and covariance.
//!
//! `cargo run --release --example fit_kl_samples -- [FILE.csv] [particles] [steps]`
//!
//! Without a file, the example writes `fit_kl_samples_demo.csv` (in the system temporary
//! directory) holding 500 draws of a ring with unequal weights and fits that. The CSV has
//! one row per sample and a header; a column named `weight` holds the sample weights
//! (`robustflow::inference::read_samples`, the reader behind `fit-kl --samples`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use robustflow::inference::{
    fit, read_samples, summarize, FitConfig, FitKernels, InferenceTarget, Method,
};
use robustflow::measure::{Distribution, Gaussian, Particles};
use std::path::PathBuf;

fn demo_file() -> robustflow::Result<PathBuf> {
    let mut rng = StdRng::seed_from_u64(1);
    let mut text = String::from("x,y,weight\n");
    for _ in 0..500 {
        let t: f64 = rng.random_range(0.0..std::f64::consts::TAU);
        let r = 3.0 + 0.3 * rng.random_range(-1.0..1.0);
        // heavier on the right half of the ring
        let w = if t.cos() > 0.0 { 3.0 } else { 1.0 };
        text.push_str(&format!("{},{},{w}\n", r * t.cos(), r * t.sin()));
    }
    let p = std::env::temp_dir().join("fit_kl_samples_demo.csv");
    robustflow::io::write_atomic(&p, text.as_bytes())?;
    Ok(p)
}

fn main() -> robustflow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = match args.get(1) {
        Some(p) => PathBuf::from(p),
        None => demo_file()?,
    };
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(150);
    let steps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(300);
    let samples = read_samples(&path)?;
    let d = samples.dim();
    println!(
        "{}: {} samples in d = {d}, mean {:.3?}",
        path.display(),
        samples.len(),
        samples.mean()
    );
    let target = InferenceTarget::from_samples("samples", samples.clone());
    // a broad start around the sample mean
    let c = samples.cov();
    let sd = (0..d).map(|k| c[[k, k]]).fold(0.0, f64::max).sqrt();
    let init_law = Gaussian::isotropic(ndarray::Array1::from(samples.mean()), 2.0 * sd)?;
    let init = Particles::uniform(init_law.sample(n, &mut StdRng::seed_from_u64(0)))?;
    let mut cfg = FitConfig {
        steps,
        fr_beta: 1.0,
        ..Default::default()
    };
    for m in [Method::Ift, Method::Wfr, Method::Mmd, Method::Fr] {
        cfg.step_sizes.insert(m, 1.0);
    }
    let kernels = FitKernels::new(&target, &init, &cfg)?;
    println!(
        "target cov {:.3?}",
        c.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>()
    );
    for m in [Method::Ift, Method::Wfr, Method::Mmd, Method::Fr] {
        let f = fit(&target, &init, m, &kernels, &cfg)?;
        let r = summarize(&target, &kernels, &cfg, &f)?;
        println!(
            "{m:4}: MMD^2 {:.2e}  ess {:6.1}  mean {:.3?}  cov {:.3?}  ({:.2}s)",
            r.mmd2.unwrap_or(f64::NAN),
            r.ess,
            r.mean,
            r.cov,
            r.time_s
        );
    }
    Ok(())
}
