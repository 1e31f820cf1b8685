//! Forward-KL fits through the public API: Gaussian targets given by a density (KSD energy)
//! and by samples (MMD energy) are recovered by every forward-KL method; the acceptance
//! mixture's masses are recovered by IFT and WFR and not by the reverse-KL baselines; the
//! Bayesian logistic-regression posterior on two features of `datasets/breast_cancer.csv`
//! matches a quadrature reference; facts 4 and 5 of docs/DESIGN.md §3.

use ndarray::{array, Array1, Array2};
use rand::rngs::StdRng;
use rand::SeedableRng;
use robustflow::energy::{Energy, MmdEnergy};
use robustflow::flow::{Executor, FisherRao, FlowParams, FlowStep, Wfr};
use robustflow::inference::{
    fit, summarize, CommonSupportKl, FitConfig, FitKernels, InferenceTarget, LogisticPosterior,
    Method, SteinTarget, Whitened,
};
use robustflow::kernel::{Bandwidth, Kernel};
use robustflow::measure::{Distribution, Gaussian, GaussianMixture, LogDensity, Particles};
use std::sync::Arc;

fn target_gaussian() -> Gaussian {
    Gaussian::new(array![1.0, -0.5], array![[1.0, 0.5], [0.5, 1.5]]).unwrap()
}

fn init(n: usize, centre: [f64; 2], sd: f64, seed: u64) -> Particles {
    let g = Gaussian::isotropic(Array1::from(centre.to_vec()), sd).unwrap();
    Particles::uniform(g.sample(n, &mut StdRng::seed_from_u64(seed))).unwrap()
}

fn check_moments(label: &str, mean: &[f64], cov: &[Vec<f64>], g: &Gaussian, tm: f64, tc: f64) {
    for k in 0..2 {
        assert!(
            (mean[k] - g.mean[k]).abs() <= tm,
            "{label}: mean {mean:?} vs {:?}",
            g.mean
        );
        for l in 0..2 {
            assert!(
                (cov[k][l] - g.cov[[k, l]]).abs() <= tc,
                "{label}: cov {cov:?} vs {:?}",
                g.cov
            );
        }
    }
}

/// Density target (KSD energy), particles started off-centre and too wide:
/// `N((1.5, 0), 2^2 I)` for `N((1, -0.5), [[1, .5], [.5, 1.5]])`.
#[test]
fn gaussian_density_recovered_by_forward_kl_methods() {
    let g = target_gaussian();
    let target = InferenceTarget::from_density(Arc::new(g.clone()));
    let mu0 = init(100, [1.5, 0.0], 2.0, 1);
    let mut cfg = FitConfig {
        steps: 300,
        ..Default::default()
    };
    // (method, step size, tolerance on mean entries, tolerance on covariance entries)
    let cases = [
        (Method::Ift, 0.1, 0.05, 0.05),
        (Method::Wfr, 0.1, 0.05, 0.05),
        (Method::Ksd, 0.5, 0.1, 0.2),
        (Method::Fr, 0.2, 0.05, 0.05),
    ];
    for (m, tau, _, _) in cases {
        cfg.step_sizes.insert(m, tau);
    }
    let k = FitKernels::new(&target, &mu0, &cfg).unwrap();
    for (m, _, tm, tc) in cases {
        let f = fit(&target, &mu0, m, &k, &cfg).unwrap();
        let r = summarize(&target, &k, &cfg, &f).unwrap();
        println!(
            "{m}: mean {:?} cov {:?} ksd {:?} ess {}",
            r.mean, r.cov, r.ksd, r.ess
        );
        check_moments(&format!("density/{m}"), &r.mean, &r.cov, &g, tm, tc);
        // the energy went down
        assert!(f.flow.final_energy < f.flow.trace[0].energy / 5.0, "{m}");
        // probability measure kept
        assert!((f.particles.mass() - 1.0).abs() < 1e-9);
    }
}

/// Sample target (MMD energy): 600 draws of the same Gaussian.
#[test]
fn gaussian_samples_recovered_by_forward_kl_methods() {
    let g = target_gaussian();
    let y = g.sample(600, &mut StdRng::seed_from_u64(7));
    let target = InferenceTarget::from_samples("samples", Particles::uniform(y).unwrap());
    let mu0 = init(100, [1.5, 0.0], 2.0, 2);
    let mut cfg = FitConfig {
        steps: 300,
        ..Default::default()
    };
    let cases = [
        (Method::Ift, 1.0, 0.1, 0.15),
        (Method::Wfr, 1.0, 0.1, 0.2),
        (Method::Mmd, 3.0, 0.1, 0.3),
        (Method::Fr, 1.0, 0.15, 0.3),
    ];
    for (m, tau, _, _) in cases {
        cfg.step_sizes.insert(m, tau);
    }
    let k = FitKernels::new(&target, &mu0, &cfg).unwrap();
    for (m, _, tm, tc) in cases {
        let kk = if m == Method::Mmd {
            // The plain MMD flow stalls with the median bandwidth (h ~ 1.2 here): particles
            // started beyond the kernel's reach feel no force (Arbel et al. 2019; the IFT
            // paper's motivation). A bandwidth at the scale of the initial spread fixes it.
            let c = FitConfig {
                bandwidth: Bandwidth::Fixed(2.5),
                ..cfg.clone()
            };
            FitKernels::new(&target, &mu0, &c).unwrap()
        } else {
            k
        };
        let f = fit(&target, &mu0, m, &kk, &cfg).unwrap();
        let r = summarize(&target, &k, &cfg, &f).unwrap();
        println!(
            "{m}: mean {:?} cov {:?} mmd2 {:?} ess {}",
            r.mean, r.cov, r.mmd2, r.ess
        );
        check_moments(&format!("samples/{m}"), &r.mean, &r.cov, &g, tm, tc);
        assert!(f.flow.final_energy < f.flow.trace[0].energy / 5.0, "{m}");
    }
    // the baselines need a density
    let e = fit(&target, &mu0, Method::Svgd, &k, &cfg).err().unwrap();
    assert!(e.to_string().contains("density"), "{e}");
}

/// The acceptance mixture of issue 4, scaled down for CI: 2-D, weights 0.25 / 0.75, modes
/// 8 standard deviations apart, particles from the broad `N(0, 4^2 I)` over both modes.
/// Over three seeds the forward-KL flows IFT and WFR (MMD energy on stratified target
/// samples) put each mode's mass within 0.05 of its weight (median of the max error over
/// the modes), and the reverse-KL baselines SVGD and Langevin, which cannot move mass
/// between modes, are further off than both. (The full 10-seed run is in docs/FIT_KL.md.)
#[test]
fn mixture_masses_recovered_by_ift_and_wfr_not_by_reverse_kl() {
    let mix = GaussianMixture::new(
        vec![0.25, 0.75],
        vec![
            Gaussian::isotropic(array![-4.0, 0.0], 1.0).unwrap(),
            Gaussian::isotropic(array![4.0, 0.0], 1.0).unwrap(),
        ],
    )
    .unwrap();
    let methods = [
        (Method::Ift, 1.0),
        (Method::Wfr, 1.0),
        (Method::Svgd, 0.1),
        (Method::Langevin, 0.05),
    ];
    let mut errs: Vec<Vec<f64>> = vec![Vec::new(); methods.len()];
    for seed in 0..3u64 {
        let target = InferenceTarget::mixture(mix.clone(), 300, 100 + seed).unwrap();
        let mu0 = init(80, [0.0, 0.0], 4.0, seed);
        let mut cfg = FitConfig {
            steps: 150,
            seed,
            fr_beta: 1.0,
            ..Default::default()
        };
        for (m, tau) in methods {
            cfg.step_sizes.insert(m, tau);
        }
        let k = FitKernels::new(&target, &mu0, &cfg).unwrap();
        for (i, (m, _)) in methods.iter().enumerate() {
            let f = fit(&target, &mu0, *m, &k, &cfg).unwrap();
            let r = summarize(&target, &k, &cfg, &f).unwrap();
            let cm = r.component_mass.expect("mixture target");
            assert!((cm.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            let e = cm
                .iter()
                .zip(&mix.weights)
                .fold(0.0f64, |a, (u, v)| a.max((u - v).abs()));
            println!("seed {seed} {m}: mass {cm:.3?} error {e:.3}");
            errs[i].push(e);
        }
    }
    let med: Vec<f64> = errs
        .iter()
        .map(|v| {
            let mut s = v.clone();
            s.sort_by(|a, b| a.total_cmp(b));
            s[s.len() / 2]
        })
        .collect();
    println!("median errors ift, wfr, svgd, langevin: {med:.3?}");
    assert!(med[0] <= 0.05 && med[1] <= 0.05, "IFT/WFR: {med:?}");
    for b in [2, 3] {
        assert!(med[b] > med[0].max(med[1]), "baseline {b}: {med:?}");
    }
}

/// Quadrature reference of a 2-D density: mean and covariance of `x = m + L z` on a
/// regular grid over `z in [-r, r]^2` (the Jacobian of the affine map is constant).
fn quadrature_moments(w: &Whitened, r: f64, n: usize) -> (Vec<f64>, Array2<f64>) {
    let h = 2.0 * r / (n - 1) as f64;
    let mut pts = Vec::with_capacity(n * n);
    let mut lps = Vec::with_capacity(n * n);
    for a in 0..n {
        for b in 0..n {
            let z = [-r + a as f64 * h, -r + b as f64 * h];
            lps.push(w.log_density(&z));
            pts.push(w.to_original(&z));
        }
    }
    let lmax = lps.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let ws: Vec<f64> = lps.iter().map(|l| (l - lmax).exp()).collect();
    let z: f64 = ws.iter().sum();
    let mut mean = vec![0.0; 2];
    for (p, wi) in pts.iter().zip(&ws) {
        for k in 0..2 {
            mean[k] += wi * p[k] / z;
        }
    }
    let mut cov = Array2::zeros((2, 2));
    for (p, wi) in pts.iter().zip(&ws) {
        for k in 0..2 {
            for l in 0..2 {
                cov[[k, l]] += wi * (p[k] - mean[k]) * (p[l] - mean[l]) / z;
            }
        }
    }
    // the grid reaches far enough: the density at its edge is negligible
    let edge = (0..n)
        .flat_map(|i| [i, n * (n - 1) + i, i * n, i * n + n - 1])
        .map(|i| ws[i])
        .fold(0.0f64, f64::max);
    assert!(edge < 1e-8, "grid too small: edge density {edge}");
    (mean, cov)
}

/// Acceptance of issue 4: Bayesian logistic regression (prior `N(0, 10^2 I)`, no
/// intercept) on the standardised features `mean_radius`, `mean_texture` of
/// `datasets/breast_cancer.csv`. The forward-KL fit (IFT on `1/2 KSD^2`, in coordinates
/// whitened by the Laplace approximation, mapped back) matches the posterior mean and
/// covariance from quadrature on a 161 x 161 grid: each mean entry within 0.1 posterior
/// standard deviations, each covariance entry within 0.15 `sd_k sd_l`. The posterior is
/// skewed (its mean is not the Laplace mode), and the fit gets closer to the quadrature
/// mean than the Laplace mode is.
#[test]
fn logistic_posterior_matches_quadrature() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/breast_cancer.csv");
    let table = robustflow::io::read_numeric_csv(&path).unwrap();
    let feats = vec!["mean_radius".to_string(), "mean_texture".to_string()];
    let post =
        LogisticPosterior::from_table(&table, &path, "target", Some(&feats), false, 10.0).unwrap();
    let post: Arc<dyn SteinTarget> = Arc::new(post);
    let w = Arc::new(Whitened::laplace(post, &[0.0, 0.0]).unwrap());
    let (qm, qc) = quadrature_moments(&w, 8.0, 161);
    let sd = [qc[[0, 0]].sqrt(), qc[[1, 1]].sqrt()];
    println!(
        "quadrature mean {qm:?} cov {qc:?}; Laplace mode {:?}",
        w.shift
    );

    let target = InferenceTarget::from_density(w.clone() as Arc<dyn SteinTarget>);
    let mu0 = init(80, [0.0, 0.0], 2.0, 3);
    let mut cfg = FitConfig {
        steps: 200,
        ..Default::default()
    };
    cfg.step_sizes.insert(Method::Ift, 0.05);
    let k = FitKernels::new(&target, &mu0, &cfg).unwrap();
    let f = fit(&target, &mu0, Method::Ift, &k, &cfg).unwrap();
    let x = Particles::with_log_weights(
        w.map_rows(&f.particles.x),
        f.particles.log_weights().clone(),
    )
    .unwrap();
    let (m, c) = (x.mean(), x.cov());
    println!("ift mean {m:?} cov {c:?} ess {}", x.ess());
    for kk in 0..2 {
        assert!(
            (m[kk] - qm[kk]).abs() <= 0.1 * sd[kk],
            "mean {m:?} vs quadrature {qm:?} (sd {sd:?})"
        );
        for l in 0..2 {
            assert!(
                (c[[kk, l]] - qc[[kk, l]]).abs() <= 0.15 * sd[kk] * sd[l],
                "cov {c:?} vs quadrature {qc:?}"
            );
        }
    }
    let dist = |a: &[f64]| ((a[0] - qm[0]) / sd[0]).hypot((a[1] - qm[1]) / sd[1]);
    assert!(dist(&m) < dist(&w.shift), "fit {m:?} mode {:?}", w.shift);
}

fn simplex(n: usize, seed: u64) -> Vec<f64> {
    use rand::Rng;
    let mut rng = StdRng::seed_from_u64(seed);
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(0.05..1.0)).collect();
    let s: f64 = v.iter().sum();
    v.iter().map(|a| a / s).collect()
}

/// Fact 4 of docs/DESIGN.md §3: the FR flow of the inclusive KL on a common support is
/// `w_t = e^{-beta t} w_0 + (1 - e^{-beta t}) p`. The core's FR mirror step and the WFR step
/// (whose transport part is void here) on [`CommonSupportKl`] converge to it at first order
/// in the step, keep the atoms, and `KL(p | w_t) <= e^{-beta t} KL(p | w_0)` along the run.
#[test]
fn fact4_fr_and_wfr_flows_of_inclusive_kl_follow_the_closed_form() {
    let n = 9;
    let x = init(n, [0.0, 0.0], 1.0, 5).x;
    let w0 = simplex(n, 6);
    let p = simplex(n, 7);
    let e = CommonSupportKl::new(p.clone()).unwrap();
    let (beta, t) = (2.0, 1.0);
    let closed = e.fr_solution(&w0, beta, t);
    let steps_of: [Box<dyn Fn() -> Box<dyn FlowStep>>; 2] = [
        Box::new(move || Box::new(FisherRao::new(beta).unwrap())),
        Box::new(move || Box::new(Wfr::new(1.0, beta).unwrap())),
    ];
    for mk in steps_of.iter() {
        let mut errs = Vec::new();
        for steps in [400usize, 800, 1600] {
            let tau = t / steps as f64;
            let mut mu = Particles::with_weights(x.clone(), &w0).unwrap();
            let cfg = FlowParams::new(steps, tau)
                .trace_every(steps / 8)
                .check()
                .unwrap();
            let mut step = mk();
            let r = Executor::new(cfg)
                .unwrap()
                .run(&mut mu, &e, step.as_mut())
                .unwrap();
            assert_eq!(mu.x, x, "{}: atoms moved", step.name());
            assert!((mu.mass() - 1.0).abs() < 1e-12);
            let err = mu
                .weights()
                .iter()
                .zip(&closed)
                .fold(0.0f64, |a, (u, v)| a.max((u - v).abs()));
            let kl0 = r.trace[0].energy;
            for rec in &r.trace {
                let tt = rec.step as f64 * tau;
                assert!(
                    rec.energy <= (-beta * tt).exp() * kl0 * (1.0 + 10.0 * tau),
                    "{}: KL {} above the bound at t = {tt}",
                    step.name(),
                    rec.energy
                );
            }
            errs.push(err);
        }
        println!("{}: errors {errs:?}", mk().name());
        assert!(errs[2] < 5e-3, "{errs:?}");
        for k in 0..2 {
            let ratio = errs[k] / errs[k + 1];
            assert!((1.8..2.2).contains(&ratio), "first order: {errs:?}");
        }
    }
}

/// Fact 5 of docs/DESIGN.md §3: on a common support the kernel-smoothed first variation
/// of the inclusive KL, `K_mu(1 - p/w)`, is the witness of `1/2 MMD^2(mu, pi)` (the first
/// variation of the MMD energy), at arbitrary evaluation points, for every base kernel.
#[test]
fn fact5_kernelised_inclusive_kl_is_the_mmd_witness() {
    use robustflow::kernel::KernelKind;
    let n = 10;
    let x = init(n, [0.5, -0.5], 1.5, 8).x;
    let w = simplex(n, 9);
    let p = simplex(n, 10);
    let z = init(15, [0.0, 0.0], 3.0, 11).x;
    let z = z.as_slice().unwrap();
    let kl = CommonSupportKl::new(p.clone()).unwrap();
    let mu = Particles::with_weights(x.clone(), &w).unwrap();
    for kind in [KernelKind::Gaussian, KernelKind::Imq, KernelKind::Laplace] {
        let k = Kernel::new(kind, 1.1).unwrap();
        let mmd = MmdEnergy::new(k, Particles::with_weights(x.clone(), &p).unwrap()).unwrap();
        let witness = mmd.first_variation_at(&mu, z, false).unwrap().g;
        let smoothed = kl.kernelised_first_variation(&k, &mu, z).unwrap();
        for (a, b) in witness.iter().zip(&smoothed) {
            assert!((a - b).abs() <= 1e-14, "{kind:?}: {a} vs {b}");
        }
    }
    // the unsmoothed first variation is 1 - p/w on the atoms
    let g = kl.first_variation(&mu, false).unwrap().g;
    for i in 0..n {
        assert!((g[i] - (1.0 - p[i] / w[i])).abs() < 1e-12 * (1.0 + p[i] / w[i]));
    }
}
