//! Targets, Stein kernel and KSD energy: scores and Hessians against finite differences,
//! the Stein identity by Monte Carlo, KSD at and away from the target, gradients of the
//! first variation and of the energy against finite differences, the weight-quadratic
//! structure, and the divergence guard on bad scores.

use ndarray::{array, Array2};
use rand::rngs::StdRng;
use rand::SeedableRng;
use robustflow::energy::Energy;
use robustflow::inference::{
    fit, ksd2_u, ksd2_v, stein_gram, Banana, FitConfig, FitKernels, Funnel, InferenceTarget,
    KsdEnergy, LogisticPosterior, Method, SteinKernel, SteinTarget, Whitened,
};
use robustflow::kernel::Kernel;
use robustflow::measure::{Distribution, Gaussian, GaussianMixture, LogDensity, Particles};
use std::sync::Arc;

fn logistic_small() -> LogisticPosterior {
    let x = array![
        [1.0, 0.3, -0.5],
        [1.0, -1.2, 0.7],
        [1.0, 0.8, 1.1],
        [1.0, -0.4, -1.6],
        [1.0, 2.0, 0.1],
        [1.0, -0.9, 0.4]
    ];
    let y = vec![1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
    LogisticPosterior::new(x, y, 2.0, vec!["i".into(), "a".into(), "b".into()]).unwrap()
}

fn targets() -> Vec<(Arc<dyn SteinTarget>, Vec<Vec<f64>>)> {
    let g = Gaussian::new(array![0.5, -1.0], array![[1.0, 0.5], [0.5, 2.0]]).unwrap();
    let mix = GaussianMixture::new(
        vec![0.3, 0.7],
        vec![
            Gaussian::isotropic(array![-1.0, 0.0], 0.8).unwrap(),
            Gaussian::new(array![1.5, 0.5], array![[1.0, -0.3], [-0.3, 0.6]]).unwrap(),
        ],
    )
    .unwrap();
    let lp: Arc<dyn SteinTarget> = Arc::new(logistic_small());
    let wh = Whitened::new(
        lp.clone(),
        vec![0.2, -0.1, 0.3],
        &array![[0.5, 0.1, 0.0], [0.1, 0.4, 0.05], [0.0, 0.05, 0.3]],
    )
    .unwrap();
    vec![
        (Arc::new(g), vec![vec![0.3, 0.1], vec![-2.0, 1.5]]),
        (Arc::new(mix), vec![vec![0.1, 0.2], vec![-0.7, -0.4]]),
        (
            Arc::new(Banana::new(3, 1.5, 0.5).unwrap()),
            vec![vec![0.7, -0.3, 0.4], vec![-1.2, 1.0, -0.5]],
        ),
        (
            Arc::new(Funnel::new(3, 1.5).unwrap()),
            vec![vec![0.5, -0.3, 0.8], vec![-1.0, 0.2, -0.1]],
        ),
        (lp, vec![vec![0.3, -0.2, 0.5], vec![-1.0, 1.0, 0.0]]),
        (Arc::new(wh), vec![vec![0.1, 0.4, -0.3]]),
    ]
}

#[test]
fn scores_and_hessians_match_finite_differences() {
    for (t, points) in targets() {
        let d = t.dim();
        for x in points {
            let mut s = vec![0.0; d];
            t.score(&x, &mut s);
            for k in 0..d {
                let e = 1e-5;
                let mut xp = x.clone();
                let mut xm = x.clone();
                xp[k] += e;
                xm[k] -= e;
                let fd = (t.log_density(&xp) - t.log_density(&xm)) / (2.0 * e);
                assert!(
                    (fd - s[k]).abs() <= 1e-6 * (1.0 + s[k].abs()),
                    "{}: score[{k}] = {} vs fd {fd} at {x:?}",
                    t.name(),
                    s[k]
                );
            }
            // Hessian-vector product vs finite differences of the score
            let v: Vec<f64> = (0..d).map(|k| 0.3 + 0.4 * k as f64).collect();
            let mut hv = vec![0.0; d];
            t.hvp(&x, &v, &mut hv);
            let e = 1e-6;
            let xp: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + e * b).collect();
            let xm: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a - e * b).collect();
            let (mut sp, mut sm) = (vec![0.0; d], vec![0.0; d]);
            t.score(&xp, &mut sp);
            t.score(&xm, &mut sm);
            for k in 0..d {
                let fd = (sp[k] - sm[k]) / (2.0 * e);
                assert!(
                    (fd - hv[k]).abs() <= 1e-5 * (1.0 + hv[k].abs()),
                    "{}: hvp[{k}] = {} vs fd {fd} at {x:?}",
                    t.name(),
                    hv[k]
                );
            }
        }
    }
}

#[test]
fn exact_samplers_match_exact_moments() {
    let mut rng = StdRng::seed_from_u64(3);
    let b = Banana::new(2, 1.5, 0.5).unwrap();
    let p = Particles::uniform(b.sample(40000, &mut rng)).unwrap();
    let (m, c) = (p.mean(), p.cov());
    let ec = b.cov();
    // Var x2 = 1 + 2 b^2 a^4 = 3.53; the sample variance of x2 has sd ~ sqrt(Var(x2^2)/n)
    assert!(m[0].abs() < 0.05 && m[1].abs() < 0.06, "banana mean {m:?}");
    assert!((c[[0, 0]] - ec[[0, 0]]).abs() < 0.08, "{c:?}");
    assert!((c[[1, 1]] - ec[[1, 1]]).abs() < 0.35, "{c:?} vs {ec:?}");
    let f = Funnel::new(2, 1.0).unwrap();
    let p = Particles::uniform(f.sample(40000, &mut rng)).unwrap();
    let c = p.cov();
    assert!((c[[0, 0]] - 1.0).abs() < 0.05, "{c:?}");
    assert!((c[[1, 1]] - (0.5f64).exp()).abs() < 0.1, "{c:?}");
}

fn gaussian2() -> Gaussian {
    Gaussian::new(array![1.0, -0.5], array![[1.0, 0.6], [0.6, 1.5]]).unwrap()
}

fn scores_of(t: &dyn SteinTarget, x: &Array2<f64>) -> Vec<f64> {
    let d = t.dim();
    let mut s = vec![0.0; x.len()];
    for (i, r) in x.outer_iter().enumerate() {
        t.score(r.as_slice().unwrap(), &mut s[i * d..(i + 1) * d]);
    }
    s
}

#[test]
fn stein_kernel_integrates_to_zero_under_the_target() {
    let g = gaussian2();
    let mut rng = StdRng::seed_from_u64(11);
    let m = 20000;
    let y = g.sample(m, &mut rng);
    let sy = scores_of(&g, &y);
    for base in [Kernel::imq(1.0).unwrap(), Kernel::gaussian(0.8).unwrap()] {
        let sk = SteinKernel::new(base).unwrap();
        for x in [[0.0, 0.0], [2.5, -1.0], [1.0, 1.0]] {
            let mut sx = [0.0; 2];
            g.score(&x, &mut sx);
            let vals: Vec<f64> = (0..m)
                .map(|j| sk.eval(&x, &sx, &y.row(j).to_vec(), &sy[2 * j..2 * j + 2]))
                .collect();
            let mean = vals.iter().sum::<f64>() / m as f64;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1) as f64;
            let se = (var / m as f64).sqrt();
            assert!(
                mean.abs() < 4.0 * se,
                "{:?}: E_pi k_pi(x, .) = {mean} (se {se}) at {x:?}",
                base.kind
            );
            // and it is not trivially zero: the kernel values are of order se * sqrt(m)
            assert!(var.sqrt() > 1e-3);
        }
    }
}

#[test]
fn ksd_is_zero_at_the_target_and_positive_elsewhere() {
    let g = gaussian2();
    let sk = SteinKernel::new(Kernel::imq(1.0).unwrap()).unwrap();
    let n = 300;
    let reps = 30;
    let mut rng = StdRng::seed_from_u64(5);
    let w = vec![1.0 / n as f64; n];
    let mut u_at = Vec::new();
    let mut u_off = Vec::new();
    for _ in 0..reps {
        let x = g.sample(n, &mut rng);
        let s = scores_of(&g, &x);
        u_at.push(ksd2_u(&sk, x.as_slice().unwrap(), &s, &w, 2).unwrap());
        // shifted samples: not from the target
        let xs = x.mapv(|v| v + 0.5);
        let ss = scores_of(&g, &xs);
        u_off.push(ksd2_u(&sk, xs.as_slice().unwrap(), &ss, &w, 2).unwrap());
        // the V-statistic is a squared norm: >= 0
        assert!(ksd2_v(&sk, x.as_slice().unwrap(), &s, &w, 2).unwrap() >= 0.0);
    }
    let stats = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
        (m, sd / (v.len() as f64).sqrt())
    };
    let (m_at, se_at) = stats(&u_at);
    let (m_off, se_off) = stats(&u_off);
    assert!(
        m_at.abs() < 4.0 * se_at,
        "U-stat at target {m_at} (se {se_at})"
    );
    assert!(
        m_off > 10.0 * se_off.max(se_at),
        "U-stat off target {m_off} (se {se_off})"
    );
    assert!(m_off > 20.0 * m_at.abs());
    // V-statistic == w'K_pi w with the explicit Gram matrix
    let x = g.sample(50, &mut rng);
    let s = scores_of(&g, &x);
    let w: Vec<f64> = (0..50).map(|i| (1.0 + i as f64) / 1275.0).collect();
    let k = stein_gram(&sk, x.as_slice().unwrap(), &s, 2).unwrap();
    let q: f64 = (0..50)
        .map(|i| (0..50).map(|j| w[i] * k[[i, j]] * w[j]).sum::<f64>())
        .sum();
    let v = ksd2_v(&sk, x.as_slice().unwrap(), &s, &w, 2).unwrap();
    assert!((q - v).abs() < 1e-12 * q.abs().max(1.0));
    // symmetric, positive semi-definite (Gram of a p.d. kernel)
    for i in 0..50 {
        for j in 0..50 {
            assert!((k[[i, j]] - k[[j, i]]).abs() < 1e-12 * (1.0 + k[[i, j]].abs()));
        }
    }
}

#[test]
fn laplace_base_kernel_is_rejected() {
    let e = SteinKernel::new(Kernel::laplace(1.0).unwrap()).unwrap_err();
    assert!(e.to_string().contains("stein-kernel"), "{e}");
}

fn particles_for(t: &dyn SteinTarget, n: usize, seed: u64) -> Particles {
    let d = t.dim();
    let mut rng = StdRng::seed_from_u64(seed);
    let g = Gaussian::isotropic(ndarray::Array1::zeros(d), 1.2).unwrap();
    let x = g.sample(n, &mut rng);
    let w: Vec<f64> = (0..n).map(|i| 1.0 + (i % 3) as f64).collect();
    let s: f64 = w.iter().sum();
    Particles::with_weights(x, &w.iter().map(|a| a / s).collect::<Vec<_>>()).unwrap()
}

#[test]
fn ksd_first_variation_gradient_matches_finite_differences() {
    for (t, _) in targets() {
        for base in [Kernel::imq(1.3).unwrap(), Kernel::gaussian(0.9).unwrap()] {
            let e = KsdEnergy::new(base, t.clone()).unwrap();
            let mu = particles_for(t.as_ref(), 12, 1);
            let d = mu.dim();
            let at: Vec<f64> = (0..5 * d)
                .map(|k| 0.37 * ((k * 7 % 11) as f64 - 5.0) / 5.0)
                .collect();
            let fv = e.first_variation_at(&mu, &at, true).unwrap();
            let grad = fv.grad.unwrap();
            let h = 1e-5;
            for p in 0..5 {
                for k in 0..d {
                    let mut ap = at[p * d..(p + 1) * d].to_vec();
                    let mut am = ap.clone();
                    ap[k] += h;
                    am[k] -= h;
                    let gp = e.first_variation_at(&mu, &ap, false).unwrap().g[0];
                    let gm = e.first_variation_at(&mu, &am, false).unwrap().g[0];
                    let fd = (gp - gm) / (2.0 * h);
                    let an = grad[p * d + k];
                    assert!(
                        (fd - an).abs() <= 1e-5 * (1.0 + an.abs()),
                        "{} {:?}: grad g[{p},{k}] = {an} vs fd {fd}",
                        t.name(),
                        base.kind
                    );
                    // values agree with the no-gradient path
                }
                let g0 = e
                    .first_variation_at(&mu, &at[p * d..(p + 1) * d], false)
                    .unwrap()
                    .g[0];
                assert!((g0 - fv.g[p]).abs() <= 1e-10 * (1.0 + g0.abs()));
            }
        }
    }
}

#[test]
fn ksd_energy_position_gradient_is_weight_times_first_variation_gradient() {
    // dF/dx_i = w_i grad g(x_i) for F = 1/2 KSD^2: the Wasserstein step is KSD descent.
    let t: Arc<dyn SteinTarget> = Arc::new(Banana::new(2, 1.5, 0.5).unwrap());
    let e = KsdEnergy::new(Kernel::imq(1.0).unwrap(), t.clone()).unwrap();
    let mu = particles_for(t.as_ref(), 10, 4);
    let w = mu.weights();
    let grad = e.first_variation(&mu, true).unwrap().grad.unwrap();
    let h = 1e-6;
    for i in [0usize, 3, 9] {
        for k in 0..2 {
            let mut p = mu.clone();
            p.x[[i, k]] += h;
            let fp = e.value(&p).unwrap();
            p.x[[i, k]] -= 2.0 * h;
            let fm = e.value(&p).unwrap();
            let fd = (fp - fm) / (2.0 * h);
            let an = w[i] * grad[i * 2 + k];
            assert!((fd - an).abs() <= 1e-6 * (1.0 + an.abs()), "{fd} vs {an}");
        }
    }
    // weight quadratic: F(w) = 1/2 w'K_pi w, b = 0
    let q = e.weight_quadratic(&mu).unwrap().unwrap();
    assert!((q.value(&w) - e.value(&mu).unwrap()).abs() < 1e-12);
    assert!(q.b.iter().all(|b| *b == 0.0) && q.c == 0.0);
    // first variation = K_pi w (gradient of F in the weights)
    let g = e.first_variation(&mu, false).unwrap().g;
    let mut kw = vec![0.0; w.len()];
    q.h.apply(&w, &mut kw);
    for (a, b) in g.iter().zip(&kw) {
        assert!((a - b).abs() < 1e-10 * (1.0 + a.abs()));
    }
}

/// A Gaussian centred at `(5, 0)` whose score turns NaN to the right of `x1 = 2.5`: every
/// flow pushes the particles into the bad region.
struct Broken;
impl LogDensity for Broken {
    fn dim(&self) -> usize {
        2
    }
    fn log_density(&self, x: &[f64]) -> f64 {
        -0.5 * ((x[0] - 5.0).powi(2) + x[1] * x[1])
    }
    fn score(&self, x: &[f64], out: &mut [f64]) {
        if x[0] > 2.5 {
            out[0] = f64::NAN;
            out[1] = f64::NAN;
        } else {
            out[0] = 5.0 - x[0];
            out[1] = -x[1];
        }
    }
    fn name(&self) -> String {
        "broken".into()
    }
}
impl SteinTarget for Broken {}

#[test]
fn nan_scores_stop_with_the_particle_and_step() {
    let target = InferenceTarget::from_density(Arc::new(Broken));
    let x = array![[0.0, 0.0], [0.5, 0.5], [-0.5, 0.2], [1.5, 0.0], [1.0, -1.0]];
    let init = Particles::uniform(x).unwrap();
    let mut cfg = FitConfig {
        steps: 400,
        trace_every: 1,
        ..Default::default()
    };
    cfg.step_sizes.insert(Method::Langevin, 0.02);
    cfg.step_sizes.insert(Method::Ksd, 0.05);
    cfg.step_sizes.insert(Method::Ift, 0.05);
    let k = FitKernels::new(&target, &init, &cfg).unwrap();
    for m in [Method::Langevin, Method::Ksd, Method::Ift] {
        let err = fit(&target, &init, m, &k, &cfg).err().expect("must fail");
        let msg = err.to_string();
        assert!(
            msg.contains("diverged at step")
                && !msg.contains("step 0:")
                && msg.contains("particle")
                && msg.contains("NaN"),
            "{m}: {msg}"
        );
    }
    // already bad at the start: step 0, particle 1
    let init = Particles::uniform(array![[0.0, 0.0], [3.0, 0.0], [1.0, 1.0]]).unwrap();
    let err = fit(&target, &init, Method::Ift, &k, &cfg).err().unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("step 0") && msg.contains("particle 1"),
        "{msg}"
    );
}

/// The same with an infinite score (`+inf` in the first coordinate past `x1 = 2.5`).
struct Infinite;
impl LogDensity for Infinite {
    fn dim(&self) -> usize {
        2
    }
    fn log_density(&self, x: &[f64]) -> f64 {
        Broken.log_density(x)
    }
    fn score(&self, x: &[f64], out: &mut [f64]) {
        Broken.score(x, out);
        if x[0] > 2.5 {
            out[0] = f64::INFINITY;
            out[1] = 0.0;
        }
    }
    fn name(&self) -> String {
        "infinite".into()
    }
}
impl SteinTarget for Infinite {}

#[test]
fn infinite_scores_stop_with_the_particle_and_step() {
    let target = InferenceTarget::from_density(Arc::new(Infinite));
    let init =
        Particles::uniform(array![[0.0, 0.0], [0.5, 0.5], [-0.5, 0.2], [1.0, -1.0]]).unwrap();
    let mut cfg = FitConfig {
        steps: 400,
        ..Default::default()
    };
    cfg.step_sizes.insert(Method::Langevin, 0.02);
    cfg.step_sizes.insert(Method::Wfr, 0.05);
    let k = FitKernels::new(&target, &init, &cfg).unwrap();
    for m in [Method::Langevin, Method::Wfr] {
        let msg = fit(&target, &init, m, &k, &cfg)
            .err()
            .expect("must fail")
            .to_string();
        assert!(
            msg.contains("diverged at step") && msg.contains("particle") && msg.contains("inf"),
            "{m}: {msg}"
        );
    }
}

#[test]
fn bad_sample_files_give_clear_errors() {
    use robustflow::app::fit_kl::read_samples;
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let e = read_samples(&empty).unwrap_err().to_string();
    assert!(e.contains("empty.csv") && e.contains("no rows"), "{e}");
    let ragged = dir.path().join("ragged.csv");
    std::fs::write(&ragged, "x1,x2\n1,2\n3\n4,5\n").unwrap();
    let e = read_samples(&ragged).unwrap_err().to_string();
    assert!(
        e.contains("ragged.csv") && e.contains("row 2") && e.contains("ragged"),
        "{e}"
    );
    let header_only = dir.path().join("h.csv");
    std::fs::write(&header_only, "x1,x2\n").unwrap();
    let e = read_samples(&header_only).unwrap_err().to_string();
    assert!(e.contains("no data rows"), "{e}");
    let negw = dir.path().join("w.csv");
    std::fs::write(&negw, "x1,weight\n1,0.5\n2,-1\n").unwrap();
    let e = read_samples(&negw).unwrap_err().to_string();
    assert!(e.contains("row 2") && e.contains("negative weight"), "{e}");
    let ok = dir.path().join("ok.csv");
    std::fs::write(&ok, "x1,x2,weight\n1,2,1\n3,4,3\n").unwrap();
    let p = read_samples(&ok).unwrap();
    assert_eq!(p.dim(), 2);
    assert!((p.weights()[1] - 0.75).abs() < 1e-12);
}
