//! Forward-KL fit of a Bayesian logistic-regression posterior: prior `N(0, 10^2 I)` on the
//! coefficients of standardised features of `datasets/breast_cancer.csv` (label column
//! `target`). The flows run in coordinates whitened by the Laplace approximation (an affine
//! map, under which the forward KL is invariant) and are mapped back. Prints each method's
//! posterior mean and covariance next to the Laplace approximation.
//!
//! `cargo run --release --example fit_kl_logistic -- [features, comma separated] [particles] [steps]`
//! (default features `mean_radius,mean_texture`).

use rand::rngs::StdRng;
use rand::SeedableRng;
use robustflow::inference::{
    fit, summarize, FitConfig, FitKernels, InferenceTarget, LogisticPosterior, Method, SteinTarget,
    Whitened,
};
use robustflow::measure::{Distribution, Gaussian, Particles};
use std::path::Path;
use std::sync::Arc;

fn main() -> robustflow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let feats: Vec<String> = args
        .get(1)
        .map(|s| s.as_str())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or("mean_radius,mean_texture")
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let steps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(300);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/breast_cancer.csv");
    let table = robustflow::io::read_numeric_csv(&path)?;
    let post = LogisticPosterior::from_table(&table, &path, "target", Some(&feats), false, 10.0)?;
    let d = post.names.len();
    let post: Arc<dyn SteinTarget> = Arc::new(post);
    let w = Arc::new(Whitened::laplace(post, &vec![0.0; d])?);
    let lcov = w.l.dot(&w.l.t());
    println!(
        "Laplace: mode {:.4?} cov {:.4?}",
        w.shift,
        lcov.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>()
    );
    let target = InferenceTarget::from_density(w.clone() as Arc<dyn SteinTarget>);
    let init_law = Gaussian::isotropic(ndarray::Array1::zeros(d), 2.0)?;
    let init = Particles::uniform(init_law.sample(n, &mut StdRng::seed_from_u64(0)))?;
    let mut cfg = FitConfig {
        steps,
        ..Default::default()
    };
    for (m, tau) in [
        (Method::Ift, 0.05),
        (Method::Wfr, 0.05),
        (Method::Ksd, 0.05),
        (Method::Fr, 0.05),
        (Method::Svgd, 0.1),
        (Method::Langevin, 0.05),
    ] {
        cfg.step_sizes.insert(m, tau);
    }
    let kernels = FitKernels::new(&target, &init, &cfg)?;
    for m in [
        Method::Ift,
        Method::Wfr,
        Method::Ksd,
        Method::Fr,
        Method::Svgd,
        Method::Langevin,
    ] {
        let f = fit(&target, &init, m, &kernels, &cfg)?;
        let r = summarize(&target, &kernels, &cfg, &f)?;
        let x = Particles::with_log_weights(
            w.map_rows(&f.particles.x),
            f.particles.log_weights().clone(),
        )?;
        println!(
            "{m:8}: KSD (whitened) {:.3e}  ess {:6.1}  mean {:.4?}  cov {:.4?}",
            r.ksd.unwrap_or(f64::NAN),
            r.ess,
            x.mean(),
            x.cov().outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>()
        );
    }
    Ok(())
}
