//! The exact squared-cost Wasserstein certificate (`robustflow::dro::w2exact`): inner sups
//! against brute force, lower <= upper, and the bounds against a brute-force dual (a grid
//! over the multiplier and a fine grid over the shift along the weight direction).

use proptest::prelude::*;
use robustflow::dro::w2exact::{exact_certificate, logistic_inner, sinha_certificate};
use robustflow::dro::{certify, AmbiguityConfig, Batch, PointLoss, SetKind};
use robustflow::model::{Activation, Architecture, Model, ModelKind};

fn lcg(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed
        .wrapping_mul(2862933555777941757)
        .wrapping_add(3037000493);
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64) / ((1u64 << 53) as f64)
    }
}

fn softplus(v: f64) -> f64 {
    v.max(0.0) + (-v.abs()).exp().ln_1p()
}

/// A model without hidden layers with the given parameters (W as `d x k`, then `b`).
fn model(kind: ModelKind, d: usize, classes: Option<usize>, params: &[f64]) -> Model {
    let arch = Architecture::new(kind, d, classes, &[], Activation::Elu).unwrap();
    let m = Model::new(arch, 0).unwrap();
    m.set_params_flat(params).unwrap();
    m
}

struct Problem {
    x: Vec<f64>,
    y: Vec<f64>,
    d: usize,
}

fn data(kind: ModelKind, n: usize, d: usize, k: usize, seed: u64) -> Problem {
    let mut u = lcg(seed);
    let x: Vec<f64> = (0..n * d).map(|_| 4.0 * u() - 2.0).collect();
    let y = (0..n)
        .map(|_| match kind {
            ModelKind::Linear => 2.0 * u() - 1.0,
            _ => ((u() * k as f64) as usize).min(k - 1) as f64,
        })
        .collect();
    Problem { x, y, d }
}

/// `inf_lam lam rho + mean_i sup_t [loss(score_i(t)) - lam t^2]` by brute force: `t` on a
/// fine grid along the direction that hurts most, `lam` on a log grid then refined.
fn brute_dual_binary(kind: ModelKind, w: &[f64], b: f64, p: &Problem, rho: f64) -> f64 {
    let a = w.iter().map(|v| v * v).sum::<f64>().sqrt();
    let n = p.y.len();
    let phi = |lam: f64| -> f64 {
        let mut tot = 0.0;
        for i in 0..n {
            let s0: f64 = (0..p.d).map(|j| w[j] * p.x[i * p.d + j]).sum::<f64>() + b;
            // t signed along w / ||w||: a grid, then golden-section refinement around
            // the best grid point.
            let g = |t: f64| {
                let sc = s0 + a * t;
                let l = match kind {
                    ModelKind::Linear => (sc - p.y[i]).powi(2),
                    _ => softplus(-(2.0 * p.y[i] - 1.0) * sc),
                };
                l - lam * t * t
            };
            let tmax = 200.0 / lam.sqrt().max(1e-3);
            let steps = 2000;
            let ts: Vec<f64> = (0..=2 * steps)
                .map(|s| {
                    let r = (s as f64 - steps as f64) / steps as f64;
                    tmax * r * r.abs()
                })
                .collect();
            let (mut bi, mut bv) = (0, f64::NEG_INFINITY);
            for (k, &t) in ts.iter().enumerate() {
                let v = g(t);
                if v > bv {
                    bi = k;
                    bv = v;
                }
            }
            let (mut lo, mut hi) = (ts[bi.saturating_sub(1)], ts[(bi + 1).min(ts.len() - 1)]);
            for _ in 0..100 {
                let m0 = lo + (hi - lo) / 3.0;
                let m1 = hi - (hi - lo) / 3.0;
                if g(m0) < g(m1) {
                    lo = m0;
                } else {
                    hi = m1;
                }
            }
            tot += bv.max(g(0.5 * (lo + hi)));
        }
        lam * rho + tot / n as f64
    };
    let lo = if kind == ModelKind::Linear {
        a * a
    } else {
        0.0
    };
    let mut best = (f64::INFINITY, 1.0);
    for k in -40..=40 {
        let lam = lo + 10f64.powf(k as f64 / 8.0);
        let v = phi(lam);
        if v < best.0 {
            best = (v, lam);
        }
    }
    // refine around the best grid point
    let (mut l0, mut l1) = ((best.1 - lo) / 1.4, (best.1 - lo) * 1.4);
    for _ in 0..40 {
        let m0 = l0 + (l1 - l0) / 3.0;
        let m1 = l1 - (l1 - l0) / 3.0;
        if phi(lo + m0) < phi(lo + m1) {
            l1 = m1;
        } else {
            l0 = m0;
        }
    }
    best.0.min(phi(lo + 0.5 * (l0 + l1)))
}

#[test]
fn logistic_inner_is_global() {
    let mut u = lcg(7);
    for _ in 0..300 {
        let m = 12.0 * u() - 4.0;
        let c = 10f64.powf(4.0 * u() - 3.0);
        let (us, v, up) = logistic_inner(m, c);
        assert!(
            v <= up + 1e-15 && up - v <= 1e-12 * (1.0 + v.abs()),
            "{m} {c}"
        );
        let f = |t: f64| softplus(t - m) - c * t * t;
        assert!((f(us) - v).abs() <= 1e-12 * (1.0 + v.abs()));
        let umax = 1.0 / c;
        let mut brute = f64::NEG_INFINITY;
        for s in 0..=200_000 {
            brute = brute.max(f(umax * s as f64 / 200_000.0));
        }
        assert!(
            brute <= up + 1e-12 * (1.0 + up.abs()),
            "m {m} c {c}: brute {brute} > {up}"
        );
        assert!(
            v >= brute - 1e-6 * (1.0 + brute.abs()),
            "m {m} c {c}: {v} < brute {brute}"
        );
    }
}

fn check_binary(kind: ModelKind, seed: u64, rho: f64) {
    let (n, d) = (12, 3);
    let p = data(kind, n, d, 2, seed);
    let mut u = lcg(seed + 100);
    let params: Vec<f64> = (0..d + 1).map(|_| 2.0 * u() - 1.0).collect();
    let classes = (kind == ModelKind::Logistic).then_some(2);
    let m = model(kind, d, classes, &params);
    let idx: Vec<usize> = (0..n).collect();
    let batch = Batch {
        x: &p.x,
        y: &p.y,
        d,
        idx: &idx,
    };
    let aff = m.affine().expect("affine");
    let cfg = AmbiguityConfig::constrained(SetKind::Wasserstein, rho);
    let ex = exact_certificate(&m, &aff, &batch, &cfg, rho).unwrap();
    let (lo, up) = (ex.worst.value, ex.upper);
    assert!(
        lo <= up + 1e-12 * up.abs(),
        "{kind:?} {seed} {rho}: {lo} > {up}"
    );
    assert!(
        up - lo <= 1e-3 * up.abs(),
        "{kind:?} {seed} {rho}: gap {lo} {up}"
    );
    assert!(ex.worst.radius <= rho * (1.0 + 1e-9), "{}", ex.worst.radius);
    let wsum: f64 = ex.worst.w.iter().sum();
    assert!((wsum - 1.0).abs() < 1e-12);
    let brute = brute_dual_binary(kind, &params[..d], params[d], &p, rho);
    // the brute dual is an upper bound up to its t grid; both bounds must sit at it
    assert!(
        (brute - up).abs() <= 1e-3 * brute.abs() && lo <= brute * (1.0 + 1e-6),
        "{kind:?} seed {seed} rho {rho}: lower {lo} upper {up} brute {brute}"
    );
}

#[test]
fn logistic_bounds_match_the_brute_force_dual() {
    for seed in 0..3 {
        for rho in [0.01, 0.3, 2.0] {
            check_binary(ModelKind::Logistic, seed, rho);
        }
    }
}

#[test]
fn linear_bounds_match_the_brute_force_dual() {
    for seed in 0..3 {
        for rho in [0.01, 0.3, 2.0] {
            check_binary(ModelKind::Linear, seed, rho);
        }
    }
}

#[test]
fn random_perturbations_never_beat_the_inner_bound() {
    // phi_i(lam) bounds l(x) - lam ||x - x_i||^2 at any x, not only along the weights.
    let (n, d) = (6, 4);
    for (kind, classes, k) in [
        (ModelKind::Logistic, Some(2), 1),
        (ModelKind::Softmax, Some(3), 3),
        (ModelKind::Linear, None, 1),
    ] {
        let p = data(kind, n, d, classes.unwrap_or(2), 11);
        let mut u = lcg(5);
        let params: Vec<f64> = (0..d * k + k).map(|_| 2.0 * u() - 1.0).collect();
        let m = model(kind, d, classes, &params);
        let idx: Vec<usize> = (0..n).collect();
        let batch = Batch {
            x: &p.x,
            y: &p.y,
            d,
            idx: &idx,
        };
        let aff = m.affine().unwrap();
        for rho in [0.05, 0.5] {
            let cfg = AmbiguityConfig::constrained(SetKind::Wasserstein, rho);
            let ex = exact_certificate(&m, &aff, &batch, &cfg, rho).unwrap();
            // Any coupling: move every point by a random shift scaled to mean cost rho.
            for _ in 0..200 {
                let mut sh: Vec<f64> = (0..n * d).map(|_| 2.0 * u() - 1.0).collect();
                let c: f64 = sh.iter().map(|v| v * v).sum::<f64>() / n as f64;
                let s = (rho / c).sqrt() * u();
                sh.iter_mut().for_each(|v| *v *= s);
                let x: Vec<f64> = p.x.iter().zip(&sh).map(|(a, b)| a + b).collect();
                let l = m.losses(&x, &p.y).unwrap();
                let v = l.iter().sum::<f64>() / n as f64;
                assert!(
                    v <= ex.upper * (1.0 + 1e-12),
                    "{kind:?}: {v} > {}",
                    ex.upper
                );
            }
            assert!(ex.worst.value <= ex.upper * (1.0 + 1e-12));
            assert!(
                ex.upper - ex.worst.value <= 1e-3 * ex.upper,
                "{kind:?} {rho}"
            );
        }
    }
}

#[test]
fn softmax_inner_sup_matches_a_grid_in_the_span() {
    // K = 3, d = 2: the inner sup over x in R^2 by a fine grid must not exceed phi's bound.
    let (n, d, k) = (5, 2, 3);
    let p = data(ModelKind::Softmax, n, d, k, 3);
    let mut u = lcg(9);
    let params: Vec<f64> = (0..d * k + k).map(|_| 3.0 * u() - 1.5).collect();
    let m = model(ModelKind::Softmax, d, Some(k), &params);
    let idx: Vec<usize> = (0..n).collect();
    let batch = Batch {
        x: &p.x,
        y: &p.y,
        d,
        idx: &idx,
    };
    let aff = m.affine().unwrap();
    for rho in [0.1, 1.0] {
        let cfg = AmbiguityConfig::constrained(SetKind::Wasserstein, rho);
        let ex = exact_certificate(&m, &aff, &batch, &cfg, rho).unwrap();
        let lam = ex.lam_hi;
        // brute force phi_i(lam) on a grid around each point
        let mut tot = 0.0;
        for i in 0..n {
            let x0 = &p.x[i * d..(i + 1) * d];
            let mut best = f64::NEG_INFINITY;
            let r = 6.0 / lam.sqrt().max(0.3);
            let g = 300;
            let mut xs = Vec::with_capacity((g + 1) * (g + 1) * d);
            for a in 0..=g {
                for b in 0..=g {
                    xs.push(x0[0] + r * (2.0 * a as f64 / g as f64 - 1.0));
                    xs.push(x0[1] + r * (2.0 * b as f64 / g as f64 - 1.0));
                }
            }
            let ys = vec![p.y[i]; xs.len() / d];
            let l = m.losses(&xs, &ys).unwrap();
            for (j, lj) in l.iter().enumerate() {
                let c = (xs[j * d] - x0[0]).powi(2) + (xs[j * d + 1] - x0[1]).powi(2);
                best = best.max(lj - lam * c);
            }
            tot += best;
        }
        let brute_dual = lam * rho + tot / n as f64;
        assert!(
            brute_dual <= ex.upper * (1.0 + 1e-9) + 1e-12,
            "{brute_dual} > {}",
            ex.upper
        );
        assert!(ex.worst.value <= ex.upper && ex.upper - ex.worst.value <= 1e-3 * ex.upper);
        assert!(
            ex.upper - brute_dual <= 2e-3 * ex.upper,
            "{} vs {brute_dual}",
            ex.upper
        );
    }
}

#[test]
fn certify_rows_bracket_and_mlp_rows_are_bounds_or_null() {
    let (n, d) = (20, 3);
    let p = data(ModelKind::Logistic, n, d, 2, 21);
    let idx: Vec<usize> = (0..n).collect();
    let batch = Batch {
        x: &p.x,
        y: &p.y,
        d,
        idx: &idx,
    };
    let cfg = AmbiguityConfig::constrained(SetKind::Wasserstein, 0.0);
    let m = model(ModelKind::Logistic, d, Some(2), &[0.8, -0.5, 0.3, 0.1]);
    let rows = certify(&m, &batch, &cfg, &[0.0, 0.1, 0.5]).unwrap();
    for r in &rows {
        let ub = r.upper_bound.expect("exact for logistic");
        assert!(
            r.lower_bound <= ub && ub - r.lower_bound <= 1e-3 * ub,
            "{r:?}"
        );
    }
    for act in [Activation::Elu, Activation::Tanh, Activation::Relu] {
        let arch = Architecture::new(ModelKind::Mlp, d, Some(2), &[4], act).unwrap();
        let mlp = Model::new(arch, 3).unwrap();
        let mut c = cfg.clone();
        c.inner_steps = 50;
        c.inner_step_size = 0.5;
        let rows = certify(&mlp, &batch, &c, &[0.1, 0.5]).unwrap();
        for r in &rows {
            match r.upper_bound {
                Some(ub) => assert!(r.lower_bound <= ub, "{act:?} {r:?}"),
                None => assert!(r
                    .upper_bound_note
                    .as_deref()
                    .unwrap()
                    .contains("no upper bound")),
            }
        }
        if act == Activation::Relu {
            assert!(rows.iter().all(|r| r.upper_bound.is_none()));
        } else {
            assert!(
                rows.iter().all(|r| r.upper_bound.is_some()),
                "{act:?}: {rows:?}"
            );
        }
    }
}

#[test]
fn sinha_bound_dominates_random_couplings() {
    // An MLP with a proven smoothness constant: the certificate at lam > L/2 bounds the
    // risk of random feasible couplings.
    let (n, d) = (10, 2);
    let p = data(ModelKind::Logistic, n, d, 2, 4);
    let idx: Vec<usize> = (0..n).collect();
    let batch = Batch {
        x: &p.x,
        y: &p.y,
        d,
        idx: &idx,
    };
    let arch = Architecture::new(ModelKind::Mlp, d, Some(2), &[5], Activation::Tanh).unwrap();
    let mlp = Model::new(arch, 8).unwrap();
    let smooth = mlp.input_smoothness().unwrap();
    let rho = 0.2;
    let lam = smooth; // 2 lam > L
    let ub = sinha_certificate(&mlp, &batch, &p.x, lam, smooth, rho)
        .unwrap()
        .unwrap();
    let mut u = lcg(1);
    for _ in 0..300 {
        let mut sh: Vec<f64> = (0..n * d).map(|_| 2.0 * u() - 1.0).collect();
        let c: f64 = sh.iter().map(|v| v * v).sum::<f64>() / n as f64;
        let s = (rho / c).sqrt();
        sh.iter_mut().for_each(|v| *v *= s);
        let x: Vec<f64> = p.x.iter().zip(&sh).map(|(a, b)| a + b).collect();
        let v = mlp.losses(&x, &p.y).unwrap().iter().sum::<f64>() / n as f64;
        assert!(v <= ub, "{v} > {ub}");
    }
    assert!(
        sinha_certificate(&mlp, &batch, &p.x, 0.4 * smooth, smooth, rho)
            .unwrap()
            .is_none()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn lower_never_exceeds_upper(seed in 0u64..10_000, rho in 0.001f64..5.0, lin in any::<bool>(), scale in 0.1f64..4.0) {
        let kind = if lin { ModelKind::Linear } else { ModelKind::Logistic };
        let (n, d) = (8, 3);
        let p = data(kind, n, d, 2, seed);
        let mut u = lcg(seed ^ 0xabc);
        let params: Vec<f64> = (0..d + 1).map(|_| scale * (2.0 * u() - 1.0)).collect();
        let m = model(kind, d, (!lin).then_some(2), &params);
        let idx: Vec<usize> = (0..n).collect();
        let batch = Batch { x: &p.x, y: &p.y, d, idx: &idx };
        let cfg = AmbiguityConfig::constrained(SetKind::Wasserstein, rho);
        let ex = exact_certificate(&m, &m.affine().unwrap(), &batch, &cfg, rho).unwrap();
        prop_assert!(ex.worst.value <= ex.upper * (1.0 + 1e-12));
        prop_assert!(ex.upper - ex.worst.value <= 1e-3 * ex.upper);
        prop_assert!(ex.worst.radius <= rho * (1.0 + 1e-9));
    }
}
