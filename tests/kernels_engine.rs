//! The kernel-sum engine against the naive double loop (issue 6).
//!
//! Every path (streamed, tiled), every SIMD level this CPU supports (forced through
//! `EngineOptions::simd`), `f64` and `f32`, for the three kernels, on random inputs of odd
//! sizes that do not fill a register block, a tile or a source chunk, and with `n` or `m`
//! equal to 1. Tolerances are relative to the absolute sums `sum_j |v_j| |k_ij|` and
//! `sum_j |v_j| |grad k_ij|` (the natural scale of the round-off): `1e-10` in `f64`,
//! `2e-5` in `f32`.
//!
//! Random Fourier features: `|phi(x)|^2 = 1` exactly (cos^2 + sin^2, a check of the
//! vectorised sin/cos), the witness gradient is the derivative of the RFF witness (finite
//! differences), the error of the kernel estimate shrinks like `1/sqrt(D)`, and the MMD^2
//! and witness gradient converge to the exact ones. Nystrom with every point a landmark
//! reproduces the exact witness and MMD^2.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use robustflow::kernel::engine::{sums_multi_with, sums_with, TILE_COLS, TILE_ROWS};
use robustflow::kernel::rff::{Nystrom, RandomFourierFeatures};
use robustflow::kernel::{
    kernel_sums, kernel_sums_with_grad, mmd2, EngineOptions, Kernel, KernelKind, PathChoice,
    SimdLevel,
};

const KINDS: [KernelKind; 3] = [KernelKind::Gaussian, KernelKind::Imq, KernelKind::Laplace];

fn naive_phi(kind: KernelKind, h: f64, r2: f64) -> (f64, f64) {
    // value and d/d(r2), written from the definitions
    match kind {
        KernelKind::Gaussian => {
            let v = (-r2 / (2.0 * h * h)).exp();
            (v, -v / (2.0 * h * h))
        }
        KernelKind::Imq => ((h * h + r2).powf(-0.5), -0.5 * (h * h + r2).powf(-1.5)),
        KernelKind::Laplace => {
            let r = r2.sqrt();
            let v = (-r / h).exp();
            (v, if r > 0.0 { -v / (2.0 * h * r) } else { 0.0 })
        }
    }
}

struct Naive {
    s: Vec<f64>,
    g: Vec<f64>,
    s_abs: Vec<f64>,
    g_abs: Vec<f64>,
}

fn naive(kind: KernelKind, h: f64, x: &[f64], y: &[f64], v: &[f64], d: usize) -> Naive {
    let n = x.len() / d;
    let m = y.len() / d;
    let mut out = Naive {
        s: vec![0.0; n],
        g: vec![0.0; n * d],
        s_abs: vec![0.0; n],
        g_abs: vec![0.0; n],
    };
    for i in 0..n {
        for j in 0..m {
            let xi = &x[i * d..(i + 1) * d];
            let yj = &y[j * d..(j + 1) * d];
            let r2: f64 = xi.iter().zip(yj).map(|(a, b)| (a - b) * (a - b)).sum();
            let (p, dp) = naive_phi(kind, h, r2);
            out.s[i] += v[j] * p;
            out.s_abs[i] += (v[j] * p).abs();
            for k in 0..d {
                let gk = v[j] * 2.0 * dp * (xi[k] - yj[k]);
                out.g[i * d + k] += gk;
                out.g_abs[i] += gk.abs();
            }
        }
    }
    out
}

fn rand_vec(rng: &mut StdRng, len: usize, scale: f64) -> Vec<f64> {
    (0..len).map(|_| scale * (rng.random::<f64>() * 2.0 - 1.0)).collect()
}

/// (n, m, d): odd sizes, n or m = 1, sizes crossing register blocks (4), tiles
/// (TILE_ROWS x TILE_COLS) and the dimensions with a compiled constant (1..4) and without.
fn shapes() -> Vec<(usize, usize, usize)> {
    vec![
        (1, 1, 1),
        (1, 9, 2),
        (11, 1, 3),
        (7, 13, 2),
        (5, 33, 4),
        (9, 21, 5),
        (TILE_ROWS + 3, TILE_COLS + 5, 9),
        (6, 2 * TILE_COLS + 7, 12),
        (3, 2100, 2),
    ]
}

fn paths(kind: KernelKind) -> Vec<PathChoice> {
    if kind == KernelKind::Laplace {
        vec![PathChoice::Auto, PathChoice::Streamed]
    } else {
        vec![PathChoice::Auto, PathChoice::Streamed, PathChoice::Tiled]
    }
}

fn check_close(
    what: &str,
    got: &[f64],
    want: &[f64],
    scale: &[f64],
    per: usize,
    tol: f64,
) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (idx, (a, b)) in got.iter().zip(want).enumerate() {
        let sc = scale[idx / per].max(1e-300);
        assert!(
            (a - b).abs() <= tol * sc + 1e-300,
            "{what}: entry {idx}: got {a}, want {b} (scale {sc})"
        );
    }
}

#[test]
fn every_path_and_simd_level_matches_the_naive_sums() {
    let mut rng = StdRng::seed_from_u64(11);
    let levels = SimdLevel::all_available();
    assert!(levels.contains(&SimdLevel::Baseline));
    for (n, m, d) in shapes() {
        let x = rand_vec(&mut rng, n * d, 1.5);
        let y = rand_vec(&mut rng, m * d, 1.5);
        let v = rand_vec(&mut rng, m, 1.0);
        let x32: Vec<f32> = x.iter().map(|&a| a as f32).collect();
        let y32: Vec<f32> = y.iter().map(|&a| a as f32).collect();
        let v32: Vec<f32> = v.iter().map(|&a| a as f32).collect();
        for kind in KINDS {
            let h = 0.8;
            let k = Kernel::new(kind, h).unwrap();
            let nv = naive(kind, h, &x, &y, &v, d);
            for &path in &paths(kind) {
                for &simd in &levels {
                    let opts = EngineOptions {
                        path,
                        simd: Some(simd),
                    };
                    let tag = format!("{kind} {path:?} {simd} n={n} m={m} d={d}");
                    let (s, g) = sums_with(&k, &x, &y, &v, d, true, &opts).unwrap();
                    check_close(&format!("{tag} f64 values"), &s, &nv.s, &nv.s_abs, 1, 1e-10);
                    check_close(&format!("{tag} f64 grads"), &g, &nv.g, &nv.g_abs, d, 1e-10);
                    let (s_only, g_none) = sums_with(&k, &x, &y, &v, d, false, &opts).unwrap();
                    assert!(g_none.is_empty());
                    check_close(&format!("{tag} f64 values only"), &s_only, &nv.s, &nv.s_abs, 1, 1e-10);
                    let (s32, g32) = sums_with(&k, &x32, &y32, &v32, d, true, &opts).unwrap();
                    let s32: Vec<f64> = s32.iter().map(|&a| a as f64).collect();
                    let g32: Vec<f64> = g32.iter().map(|&a| a as f64).collect();
                    check_close(&format!("{tag} f32 values"), &s32, &nv.s, &nv.s_abs, 1, 2e-5);
                    check_close(&format!("{tag} f32 grads"), &g32, &nv.g, &nv.g_abs, d, 2e-5);
                }
            }
        }
    }
}

#[test]
fn multi_sums_match_the_naive_sums_on_every_path() {
    let mut rng = StdRng::seed_from_u64(5);
    for (n, m, d, p) in [(1, 1, 1, 1), (7, 13, 3, 2), (TILE_ROWS + 1, TILE_COLS + 3, 9, 3), (5, 40, 12, 1)] {
        let x = rand_vec(&mut rng, n * d, 1.0);
        let y = rand_vec(&mut rng, m * d, 1.0);
        let vm = rand_vec(&mut rng, m * p, 1.0);
        for kind in KINDS {
            let k = Kernel::new(kind, 1.1).unwrap();
            // column by column through the naive sums
            let mut want = vec![0.0; n * p];
            let mut scale = vec![0.0; n];
            for c in 0..p {
                let col: Vec<f64> = (0..m).map(|j| vm[j * p + c]).collect();
                let nv = naive(kind, 1.1, &x, &y, &col, d);
                for i in 0..n {
                    want[i * p + c] = nv.s[i];
                    scale[i] += nv.s_abs[i];
                }
            }
            for &path in &paths(kind) {
                for simd in SimdLevel::all_available() {
                    let opts = EngineOptions { path, simd: Some(simd) };
                    let got = sums_multi_with(&k, &x, &y, &vm, d, p, &opts).unwrap();
                    check_close(&format!("multi {kind} {path:?} {simd} {n}x{m}x{d}x{p}"), &got, &want, &scale, p, 1e-10);
                }
            }
        }
    }
}

#[test]
fn engine_rejects_bad_requests() {
    let k = Kernel::laplace(1.0).unwrap();
    let x = vec![0.0; 6];
    let opts = EngineOptions {
        path: PathChoice::Tiled,
        simd: None,
    };
    let e = sums_with(&k, &x, &x, &[1.0, 1.0, 1.0], 2, true, &opts).unwrap_err();
    assert!(e.to_string().contains("tiled"), "{e}");
    // shape errors
    assert!(sums_with(&k, &x, &x, &[1.0, 1.0], 2, true, &EngineOptions::default()).is_err());
    assert!(sums_with(&k, &x, &x[..5], &[1.0, 1.0], 2, true, &EngineOptions::default()).is_err());
    // an unavailable SIMD level is an error, not a crash
    for l in [SimdLevel::Avx512, SimdLevel::Avx2Fma] {
        let o = EngineOptions { path: PathChoice::Streamed, simd: Some(l) };
        let r = sums_with(&k, &x, &x, &[1.0; 3], 2, false, &o);
        assert_eq!(r.is_ok(), l.available());
    }
    // a NaN in the input gives NaN in the affected row (never a silent finite value)
    let mut xn = vec![0.1, 0.2, 0.3, 0.4];
    xn[1] = f64::NAN;
    for kind in KINDS {
        let k = Kernel::new(kind, 1.0).unwrap();
        let (s, g) = kernel_sums_with_grad(&k, &xn, &[0.0, 0.0, 1.0, 1.0], &[0.5, 0.5], 2).unwrap();
        assert!(s[0].is_nan() && g[0].is_nan(), "{kind}: {s:?}");
        assert!(s[1].is_finite());
    }
}

#[test]
fn polynomial_exp_is_accurate_over_its_range() {
    // Through the Gaussian sums with one source at distance r: s = exp(-r^2 / 2).
    let k = Kernel::gaussian(1.0).unwrap();
    let mut worst = 0.0f64;
    for i in 0..2000 {
        let r = i as f64 * 0.02; // exp down to e^-800 (underflow to 0)
        for simd in SimdLevel::all_available() {
            let o = EngineOptions { path: PathChoice::Streamed, simd: Some(simd) };
            let (s, _) = sums_with(&k, &[r], &[0.0], &[1.0], 1, false, &o).unwrap();
            let want = (-r * r / 2.0f64).exp();
            if want > 1e-300 {
                worst = worst.max((s[0] - want).abs() / want);
            } else {
                assert!(s[0] < 1e-300);
            }
        }
    }
    assert!(worst < 1e-14, "worst relative error {worst}");
}

#[test]
fn rff_features_have_unit_norm_and_a_consistent_gradient() {
    let mut rng = StdRng::seed_from_u64(3);
    let d = 3;
    let k = Kernel::gaussian(0.9).unwrap();
    for simd in SimdLevel::all_available() {
        let rff = RandomFourierFeatures::new(&k, d, 37, 4).unwrap().with_simd(simd).unwrap();
        // |phi(x)|^2 = 1/D sum (cos^2 + sin^2) = 1 for any x (includes far-out points, which
        // exercise the range reduction)
        for scale in [0.1, 3.0, 300.0] {
            let x = rand_vec(&mut rng, d, scale);
            let z = rff.embedding(&x, &[1.0]).unwrap();
            let norm2: f64 = z.iter().map(|a| a * a).sum();
            assert!((norm2 - 1.0).abs() < 1e-12, "{simd} scale {scale}: {norm2}");
        }
        // gradient of the RFF witness = its finite differences
        let x = rand_vec(&mut rng, 5 * d, 1.0);
        let delta = rand_vec(&mut rng, 2 * 37, 1.0);
        let (f, g) = rff.witness(&x, &delta, true).unwrap();
        let eps = 1e-6;
        for i in 0..5 {
            for kk in 0..d {
                let mut xp = x[i * d..(i + 1) * d].to_vec();
                let mut xm = xp.clone();
                xp[kk] += eps;
                xm[kk] -= eps;
                let fp = rff.witness(&xp, &delta, false).unwrap().0[0];
                let fm = rff.witness(&xm, &delta, false).unwrap().0[0];
                let fd = (fp - fm) / (2.0 * eps);
                assert!((fd - g[i * d + kk]).abs() < 1e-6 * (1.0 + fd.abs()), "{fd} vs {}", g[i * d + kk]);
            }
            // the witness is phi(x) . delta
            let z = rff.embedding(&x[i * d..(i + 1) * d], &[1.0]).unwrap();
            let want: f64 = z.iter().zip(&delta).map(|(a, b)| a * b).sum();
            assert!((f[i] - want).abs() < 1e-12 * (1.0 + want.abs()));
        }
    }
}

#[test]
fn rff_error_shrinks_like_one_over_sqrt_d() {
    // RMS error of phi(x).phi(y) against k(x, y) over pairs and seeds, for D = 16 and 1024.
    let mut rng = StdRng::seed_from_u64(8);
    let d = 2;
    let h = 1.0;
    let k = Kernel::gaussian(h).unwrap();
    let x = rand_vec(&mut rng, 40 * d, 1.5);
    let rms = |nf: usize| -> f64 {
        let mut se = 0.0;
        let mut cnt = 0.0;
        for seed in 0..6 {
            let rff = RandomFourierFeatures::new(&k, d, nf, seed).unwrap();
            let feats: Vec<Vec<f64>> = (0..40)
                .map(|i| rff.embedding(&x[i * d..(i + 1) * d], &[1.0]).unwrap())
                .collect();
            for i in 0..40 {
                for j in 0..i {
                    let approx: f64 = feats[i].iter().zip(&feats[j]).map(|(a, b)| a * b).sum();
                    let exact = k.eval(&x[i * d..(i + 1) * d], &x[j * d..(j + 1) * d]);
                    se += (approx - exact).powi(2);
                    cnt += 1.0;
                }
            }
        }
        (se / cnt).sqrt()
    };
    let e16 = rms(16);
    let e1024 = rms(1024);
    // 1/sqrt(D) predicts a ratio of 8; allow sampling noise
    let ratio = e16 / e1024;
    assert!(ratio > 5.0 && ratio < 12.0, "e16 {e16}, e1024 {e1024}, ratio {ratio}");
    // and the scaled error sqrt(D) e_D is O(1) (at most the per-feature std, <= 1)
    assert!(e1024 * 32.0 < 1.0 && e16 * 4.0 < 1.0);
}

#[test]
fn rff_mmd_and_witness_gradient_approach_the_exact_ones() {
    let mut rng = StdRng::seed_from_u64(21);
    let (n, m, d) = (300, 200, 3);
    let x = rand_vec(&mut rng, n * d, 1.0);
    let y: Vec<f64> = rand_vec(&mut rng, m * d, 1.0).iter().map(|a| a + 0.5).collect();
    let w = vec![1.0 / n as f64; n];
    let v = vec![1.0 / m as f64; m];
    let k = Kernel::gaussian(1.0).unwrap();
    let exact = mmd2(&k, &x, &w, &y, &v, d).unwrap();
    // exact witness gradient: sources [x; y] with weights [w; -v]
    let mut src = x.clone();
    src.extend_from_slice(&y);
    let mut sw = w.clone();
    sw.extend(v.iter().map(|a| -a));
    let (_, g_exact) = kernel_sums_with_grad(&k, &x, &src, &sw, d).unwrap();
    let gnorm = g_exact.iter().map(|a| a * a).sum::<f64>().sqrt();
    let mut errs = Vec::new();
    for nf in [64, 4096] {
        let rff = RandomFourierFeatures::new(&k, d, nf, 1).unwrap();
        let approx = rff.mmd2(&x, &w, &y, &v).unwrap();
        let delta: Vec<f64> = rff
            .embedding(&x, &w)
            .unwrap()
            .iter()
            .zip(rff.embedding(&y, &v).unwrap())
            .map(|(a, b)| a - b)
            .collect();
        let (_, g) = rff.witness(&x, &delta, true).unwrap();
        let gerr = g.iter().zip(&g_exact).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt() / gnorm;
        errs.push(((approx - exact).abs() / exact, gerr));
    }
    assert!(errs[1].0 < 0.1 && errs[1].1 < 0.1, "{errs:?}");
    assert!(errs[1].1 < errs[0].1, "{errs:?}");
}

#[test]
fn nystrom_on_all_points_is_exact() {
    let mut rng = StdRng::seed_from_u64(2);
    let (n, m, d) = (30, 20, 2);
    let x = rand_vec(&mut rng, n * d, 1.0);
    let y = rand_vec(&mut rng, m * d, 1.0);
    let w = vec![1.0 / n as f64; n];
    let v = vec![1.0 / m as f64; m];
    let mut all = x.clone();
    all.extend_from_slice(&y);
    for kind in [KernelKind::Gaussian, KernelKind::Imq] {
        let k = Kernel::new(kind, 1.3).unwrap();
        let ny = Nystrom::new(&k, &all, d).unwrap();
        let exact = mmd2(&k, &x, &w, &y, &v, d).unwrap();
        let approx = ny.mmd2(&x, &w, &y, &v).unwrap();
        assert!((approx - exact).abs() < 1e-6 * (1.0 + exact), "{kind}: {approx} vs {exact}");
        // witness f = K_x[x;y] [w; -v]
        let delta: Vec<f64> = ny
            .embedding(&x, &w)
            .unwrap()
            .iter()
            .zip(ny.embedding(&y, &v).unwrap())
            .map(|(a, b)| a - b)
            .collect();
        let (f, _) = ny.witness(&x, &delta, true).unwrap();
        let mut sw = w.clone();
        sw.extend(v.iter().map(|a| -a));
        let f_exact = kernel_sums(&k, &x, &all, &sw, d).unwrap();
        for (a, b) in f.iter().zip(&f_exact) {
            assert!((a - b).abs() < 1e-5, "{kind}: {a} vs {b}");
        }
    }
    // a subsample of landmarks is seeded
    let k = Kernel::gaussian(1.0).unwrap();
    let a = Nystrom::from_sample(&k, &all, d, 10, 7).unwrap();
    let b = Nystrom::from_sample(&k, &all, d, 10, 7).unwrap();
    assert_eq!(a.landmarks, b.landmarks);
    assert!(Nystrom::from_sample(&k, &all, d, 100, 7).is_err());
    assert!(RandomFourierFeatures::new(&Kernel::laplace(1.0).unwrap(), d, 10, 0).is_err());
    assert!(RandomFourierFeatures::new(&k, d, 0, 0).is_err());
}

#[test]
fn rff_energy_gradient_is_the_derivative_of_its_value_and_close_to_exact() {
    use ndarray::Array2;
    use robustflow::energy::{Energy, MmdEnergy, MmdRffEnergy};
    use robustflow::measure::Particles;
    let mut rng = StdRng::seed_from_u64(4);
    let (n, m, d) = (40, 50, 2);
    let x = Array2::from_shape_vec((n, d), rand_vec(&mut rng, n * d, 1.0)).unwrap();
    let y = Array2::from_shape_vec((m, d), rand_vec(&mut rng, m * d, 1.0).iter().map(|a| a + 0.7).collect()).unwrap();
    let target = Particles::uniform(y).unwrap();
    let k = Kernel::gaussian(1.0).unwrap();
    let e = MmdRffEnergy::new(k, &target, 4096, 3).unwrap();
    let exact = MmdEnergy::new(k, target.clone()).unwrap();
    let mu = Particles::uniform(x).unwrap();
    let (fa, fe) = (e.value(&mu).unwrap(), exact.value(&mu).unwrap());
    assert!((fa - fe).abs() < 0.1 * fe, "rff {fa} vs exact {fe}");
    // dF/dx_ik = w_i d_k f(x_i) (first variation's gradient times the weight)
    let fv = e.first_variation(&mu, true).unwrap();
    let grad = fv.grad.unwrap();
    let eps = 1e-6;
    for (i, kk) in [(0, 0), (7, 1), (39, 0)] {
        let mut p = mu.clone();
        p.x_slice_mut()[i * d + kk] += eps;
        let mut q = mu.clone();
        q.x_slice_mut()[i * d + kk] -= eps;
        let fd = (e.value(&p).unwrap() - e.value(&q).unwrap()) / (2.0 * eps);
        let an = grad[i * d + kk] / n as f64;
        assert!((fd - an).abs() < 1e-6 * (1e-3 + an.abs()) + 1e-10, "{fd} vs {an}");
    }
    // the energy knows its approximate MMD^2
    let m2 = e.mmd2_to_target(&mu).unwrap().unwrap();
    assert!((m2 - 2.0 * fa).abs() < 1e-15);
}
