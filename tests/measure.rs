//! Weighted particle measures, reference distributions and the MMD energy against their
//! definitions:
//!
//! - `Particles`: log-domain weights, mass, normalisation, ESS in `[1, n]` (Kish), weighted
//!   mean and covariance;
//! - `Gaussian` / `GaussianMixture`: log density equals the closed form, score equals the
//!   finite-difference gradient of the log density, sample moments and component
//!   frequencies match within Monte-Carlo error, responsibilities sum to one;
//! - `MmdEnergy`: value = `1/2 MMD^2`; first variation = derivative in the weights,
//!   `w_i grad f(x_i)` = derivative in the positions (finite differences), so the W step is
//!   the (preconditioned) gradient of F.

use ndarray::{array, Array1, Array2};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use robustflow::energy::{Energy, MmdEnergy};
use robustflow::kernel::{mmd2, Kernel, KernelKind};
use robustflow::measure::target::scores;
use robustflow::measure::{Distribution, Gaussian, GaussianMixture, LogDensity, Particles, Target};
use std::sync::Arc;

fn rand_simplex(rng: &mut StdRng, n: usize) -> Vec<f64> {
    let w: Vec<f64> = (0..n).map(|_| 0.05 + rng.random::<f64>()).collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|a| a / s).collect()
}

#[test]
fn particles_weights_mass_and_normalisation() {
    let x = array![[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]];
    let p = Particles::uniform(x.clone()).unwrap();
    assert_eq!(p.len(), 4);
    assert_eq!(p.dim(), 2);
    assert!(!p.is_empty());
    for w in p.weights() {
        assert!((w - 0.25).abs() < 1e-16);
    }
    assert!((p.mass() - 1.0).abs() < 1e-15);
    assert!((p.ess() - 4.0).abs() < 1e-12);
    assert_eq!(p.x_slice(), &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    // Zero weights are -inf in the log domain; mass and ESS ignore them.
    let mut q = Particles::with_weights(x.clone(), &[2.0, 0.0, 2.0, 0.0]).unwrap();
    assert_eq!(q.log_weights()[1], f64::NEG_INFINITY);
    assert!((q.mass() - 4.0).abs() < 1e-15);
    assert!((q.ess() - 2.0).abs() < 1e-12);
    q.normalize().unwrap();
    assert!((q.mass() - 1.0).abs() < 1e-15);
    assert_eq!(q.weights(), vec![0.5, 0.0, 0.5, 0.0]);
    // One particle carrying all the mass: ESS 1.
    let r = Particles::with_weights(x.clone(), &[0.0, 0.0, 3.0, 0.0]).unwrap();
    assert!((r.ess() - 1.0).abs() < 1e-15);
    // Log weights far below the f64 range stay usable after normalisation.
    let mut s = Particles::with_log_weights(
        x.clone(),
        Array1::from(vec![
            -2000.0,
            -2000.0 + 3f64.ln(),
            f64::NEG_INFINITY,
            -2000.0,
        ]),
    )
    .unwrap();
    assert_eq!(s.mass(), 0.0);
    s.normalize().unwrap();
    let w = s.weights();
    // (-2000 + ln 3 carries an absolute rounding error of ~2e-13.)
    assert!(
        (w[0] - 0.2).abs() < 1e-12
            && (w[1] - 0.6).abs() < 1e-12
            && w[2] == 0.0
            && (w[3] - 0.2).abs() < 1e-12,
        "{w:?}"
    );
    // A measure of zero mass cannot be normalised.
    let mut z = Particles::with_weights(x.clone(), &[0.0; 4]).unwrap();
    assert!(z.normalize().is_err());
    assert_eq!(z.ess(), 0.0);
    // set_weights / set_log_weights keep positions and check lengths.
    let mut t = Particles::uniform(x.clone()).unwrap();
    t.set_weights(&[0.1, 0.2, 0.3, 0.4]).unwrap();
    assert!((t.weights()[3] - 0.4).abs() < 1e-16);
    assert!(t.set_log_weights(Array1::zeros(3)).is_err());
    assert_eq!(t.x, x);
    // Non-finite entries are found and named.
    assert!(t.first_non_finite().is_none());
    t.x[[2, 1]] = f64::NAN;
    assert!(t.first_non_finite().unwrap().contains("particle 2"));
    let mut u = Particles::uniform(x.clone()).unwrap();
    u.set_log_weights(Array1::from(vec![0.0, f64::NAN, 0.0, 0.0]))
        .unwrap();
    assert!(u.first_non_finite().unwrap().contains("particle 1"));
    // Column-major input is stored row-major.
    let mut cm = Array2::<f64>::zeros(ndarray::ShapeBuilder::f((4, 2)));
    cm.assign(&x);
    assert!(!cm.is_standard_layout());
    let v = Particles::uniform(cm).unwrap();
    assert_eq!(v.x_slice(), p.x_slice());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    /// ESS is in [1, n]; mean and covariance are the weighted moments (normalised by mass).
    #[test]
    fn prop_weighted_moments(seed in 0u64..100_000, n in 1usize..20, d in 1usize..4, mass in 0.1f64..10.0) {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((n, d), |_| rng.random::<f64>() * 4.0 - 2.0);
        let w: Vec<f64> = rand_simplex(&mut rng, n).iter().map(|a| a * mass).collect();
        let p = Particles::with_weights(x.clone(), &w).unwrap();
        prop_assert!((p.mass() - mass).abs() <= 1e-12 * mass);
        let ess = p.ess();
        prop_assert!(ess >= 1.0 - 1e-12 && ess <= n as f64 + 1e-12);
        let m = p.mean();
        for a in 0..d {
            let e: f64 = (0..n).map(|i| w[i] * x[[i, a]]).sum::<f64>() / mass;
            prop_assert!((m[a] - e).abs() <= 1e-12);
        }
        let c = p.cov();
        for a in 0..d {
            for b in 0..d {
                let e: f64 = (0..n).map(|i| w[i] * (x[[i, a]] - m[a]) * (x[[i, b]] - m[b])).sum::<f64>() / mass;
                prop_assert!((c[[a, b]] - e).abs() <= 1e-12);
                prop_assert!((c[[a, b]] - c[[b, a]]).abs() <= 1e-15);
            }
        }
    }
}

fn fd_score(p: &dyn LogDensity, x: &[f64]) -> Vec<f64> {
    let eps = 1e-5;
    (0..x.len())
        .map(|a| {
            let mut xp = x.to_vec();
            let mut xm = x.to_vec();
            xp[a] += eps;
            xm[a] -= eps;
            (p.log_density(&xp) - p.log_density(&xm)) / (2.0 * eps)
        })
        .collect()
}

#[test]
fn gaussian_density_score_and_samples() {
    let m = Array1::from(vec![1.0, -2.0]);
    let s = array![[2.0, 0.6], [0.6, 0.5]];
    let g = Gaussian::new(m.clone(), s.clone()).unwrap();
    // Closed form in 2-D: det = 1 - 0.36 = 0.64, inverse = [[0.5, -0.6], [-0.6, 2]] / 0.64.
    let det: f64 = 0.64;
    let x = [0.3, 0.7];
    let (u, v) = (x[0] - 1.0, x[1] + 2.0);
    let q = (0.5 * u * u - 1.2 * u * v + 2.0 * v * v) / det;
    let expect = -0.5 * q - (2.0 * std::f64::consts::PI).ln() - 0.5 * det.ln();
    assert!(
        (g.log_pdf(&x) - expect).abs() < 1e-13,
        "{} vs {expect}",
        g.log_pdf(&x)
    );
    assert_eq!(LogDensity::dim(&g), 2);
    let mut sc = vec![0.0; 2];
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..20 {
        let p = [
            rng.random::<f64>() * 6.0 - 3.0,
            rng.random::<f64>() * 6.0 - 3.0,
        ];
        g.score(&p, &mut sc);
        let fd = fd_score(&g, &p);
        for a in 0..2 {
            assert!(
                (sc[a] - fd[a]).abs() < 1e-6 * (1.0 + fd[a].abs()),
                "score {sc:?} vs {fd:?}"
            );
        }
    }
    // Sample moments within Monte-Carlo error (n = 20000: se of the mean ~ 0.01).
    let n = 20_000;
    let xs = g.sample(n, &mut rng);
    let p = Particles::uniform(xs).unwrap();
    let (mean, cov) = (p.mean(), p.cov());
    for a in 0..2 {
        assert!(
            (mean[a] - m[a]).abs() < 5.0 * (s[[a, a]] / n as f64).sqrt(),
            "mean {mean:?}"
        );
        for b in 0..2 {
            let se = ((s[[a, a]] * s[[b, b]] + s[[a, b]] * s[[a, b]]) / n as f64).sqrt();
            assert!((cov[[a, b]] - s[[a, b]]).abs() < 5.0 * se, "cov {cov:?}");
        }
    }
    // Same seed, same samples.
    let a = g.sample(5, &mut StdRng::seed_from_u64(9));
    let b = g.sample(5, &mut StdRng::seed_from_u64(9));
    assert_eq!(a, b);
}

#[test]
fn gaussian_mixture_density_score_and_samples() {
    let comps = vec![
        Gaussian::isotropic(Array1::from(vec![0.0, 0.0]), 1.0).unwrap(),
        Gaussian::isotropic(Array1::from(vec![3.0, -1.0]), 0.7).unwrap(),
        Gaussian::new(Array1::from(vec![1.0, 4.0]), array![[1.0, 0.3], [0.3, 0.8]]).unwrap(),
    ];
    let mix = GaussianMixture::new(vec![2.0, 1.0, 1.0], comps.clone()).unwrap();
    assert_eq!(mix.weights, vec![0.5, 0.25, 0.25]);
    let mut rng = StdRng::seed_from_u64(2);
    let mut sc = vec![0.0; 2];
    for _ in 0..30 {
        let p = [
            rng.random::<f64>() * 8.0 - 2.0,
            rng.random::<f64>() * 8.0 - 3.0,
        ];
        let expect = (0..3)
            .map(|c| mix.weights[c] * comps[c].log_pdf(&p).exp())
            .sum::<f64>()
            .ln();
        assert!((mix.log_density(&p) - expect).abs() < 1e-12);
        let r = mix.responsibilities(&p);
        assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-14);
        mix.score(&p, &mut sc);
        let fd = fd_score(&mix, &p);
        for a in 0..2 {
            assert!(
                (sc[a] - fd[a]).abs() < 1e-6 * (1.0 + fd[a].abs()),
                "mixture score {sc:?} vs {fd:?}"
            );
        }
    }
    // Far from all components the log density stays finite (log-sum-exp).
    let far = [200.0, -300.0];
    assert!(mix.log_density(&far).is_finite());
    mix.score(&far, &mut sc);
    assert!(sc.iter().all(|v| v.is_finite()));
    // Component frequencies of samples (assign each sample to its most likely component).
    let n = 20_000;
    let xs = mix.sample(n, &mut rng);
    let mut counts = [0usize; 3];
    for row in xs.outer_iter() {
        let r = mix.responsibilities(row.as_slice().unwrap());
        let c = (0..3).max_by(|a, b| r[*a].total_cmp(&r[*b])).unwrap();
        counts[c] += 1;
    }
    for c in 0..3 {
        let f = counts[c] as f64 / n as f64;
        // Components overlap a little: allow 0.03 besides the Monte-Carlo error.
        assert!(
            (f - mix.weights[c]).abs() < 0.03,
            "component {c}: frequency {f}"
        );
    }
}

#[test]
fn scores_are_evaluated_per_particle() {
    let g: Arc<dyn LogDensity> =
        Arc::new(Gaussian::isotropic(Array1::from(vec![1.0, 2.0]), 2.0).unwrap());
    let x = [0.0, 0.0, 1.0, 2.0, 5.0, -1.0];
    let s = scores(g.as_ref(), &x, None).unwrap();
    assert_eq!(s, vec![0.25, 0.5, 0.0, 0.0, -1.0, 0.75]);
    assert!(scores(g.as_ref(), &x[..5], None).is_err());
    let t = Target::Density(g);
    assert!(format!("{t:?}").contains("gaussian"));
    let t = Target::Samples(Particles::uniform(Array2::zeros((3, 2))).unwrap());
    assert!(format!("{t:?}").contains("n = 3"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// `F = 1/2 MMD^2`, with and without zero weights; `dF/dw_i = g_i` (F is quadratic in
    /// free weights) and
    /// `dF/dx_i = w_i grad f(x_i)`, by central differences; the first variation at other points
    /// is the witness `f(z) = sum w k(z, x) - sum v k(z, y)`.
    #[test]
    fn prop_mmd_energy_derivatives(seed in 0u64..100_000, n in 1usize..7, m in 1usize..7, d in 1usize..4, kind in 0usize..2) {
        let kind = [KernelKind::Gaussian, KernelKind::Imq][kind];
        let mut rng = StdRng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((n, d), |_| rng.random::<f64>() * 4.0 - 2.0);
        let y = Array2::from_shape_fn((m, d), |_| rng.random::<f64>() * 4.0 - 1.5);
        let mut w = rand_simplex(&mut rng, n);
        if seed % 2 == 0 && n >= 2 {
            // Exact zeros (the energy leaves zero-weight particles out of its sums).
            for i in (0..n).step_by(2) {
                w[i] = 0.0;
            }
            let s: f64 = w.iter().sum();
            w.iter_mut().for_each(|a| *a /= s);
        }
        let v = rand_simplex(&mut rng, m);
        let k = Kernel::new(kind, 0.8 + rng.random::<f64>()).unwrap();
        let mu = Particles::with_weights(x.clone(), &w).unwrap();
        let e = MmdEnergy::new(k, Particles::with_weights(y.clone(), &v).unwrap()).unwrap();
        let f = e.value(&mu).unwrap();
        let m2 = mmd2(&k, mu.x_slice(), &w, y.as_slice().unwrap(), &v, d).unwrap();
        prop_assert!((f - 0.5 * m2).abs() <= 1e-14);
        prop_assert!((e.mmd2_to_target(&mu).unwrap().unwrap() - m2).abs() <= 1e-14);
        let fv = e.first_variation(&mu, true).unwrap();
        let grad = fv.grad.unwrap();
        let eps = 1e-6;
        for i in 0..n {
            let mut wp = w.clone();
            let mut wm = w.clone();
            wp[i] += eps;
            wm[i] -= eps.min(w[i]);
            let h = wp[i] - wm[i];
            let fp = e.value(&Particles::with_weights(x.clone(), &wp).unwrap()).unwrap();
            let fm = e.value(&Particles::with_weights(x.clone(), &wm).unwrap()).unwrap();
            prop_assert!(((fp - fm) / h - fv.g[i]).abs() <= 1e-6, "dF/dw_{i} = {} vs g = {}", (fp - fm) / h, fv.g[i]);
            for a in 0..d {
                let mut xp = x.clone();
                let mut xm = x.clone();
                xp[[i, a]] += eps;
                xm[[i, a]] -= eps;
                let fp = e.value(&Particles::with_weights(xp, &w).unwrap()).unwrap();
                let fm = e.value(&Particles::with_weights(xm, &w).unwrap()).unwrap();
                let fd = (fp - fm) / (2.0 * eps);
                prop_assert!((fd - w[i] * grad[i * d + a]).abs() <= 1e-7, "dF/dx = {fd} vs w grad f = {}", w[i] * grad[i * d + a]);
            }
        }
        let z: Vec<f64> = (0..3 * d).map(|_| rng.random::<f64>() * 5.0 - 2.5).collect();
        let fz = e.first_variation_at(&mu, &z, false).unwrap();
        prop_assert!(fz.grad.is_none());
        for r in 0..3 {
            let p = &z[r * d..(r + 1) * d];
            let mut s = 0.0;
            for i in 0..n {
                s += w[i] * k.eval(p, x.row(i).as_slice().unwrap());
            }
            for j in 0..m {
                s -= v[j] * k.eval(p, y.row(j).as_slice().unwrap());
            }
            prop_assert!((fz.g[r] - s).abs() <= 1e-14);
        }
    }
}
