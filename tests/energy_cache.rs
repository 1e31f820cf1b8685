//! The MMD energy's cache of the target potential `u = K_xy v` (src/energy/mmd.rs).
//!
//! The cache must be invisible: with it on or off, `value`, `first_variation_at` (values
//! and gradients) and the linear term `b` of `weight_quadratic` agree to round-off, for
//! every kernel and on both engine paths (streamed for small d, tiled for d >= 8); it is
//! invalidated when the positions move (even by one ulp) or the kernel changes; and a
//! whole IFT run (W step, then MMD-prox, the case the cache exists for) follows the
//! same trajectory with and without it.

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use robustflow::energy::{Energy, MmdEnergy};
use robustflow::flow::{Executor, FlowConfig, Ift};
use robustflow::kernel::{kernel_sums, kernel_sums_with_grad, Kernel, KernelKind};
use robustflow::measure::Particles;

fn cloud(rng: &mut StdRng, n: usize, d: usize, shift: f64) -> Array2<f64> {
    Array2::from_shape_fn((n, d), |_| shift + rng.random::<f64>() * 2.0 - 1.0)
}

/// `mu` with random weights, a few of them exactly zero (so the support is a strict subset).
fn problem(seed: u64, kind: KernelKind, d: usize) -> (Particles, MmdEnergy, MmdEnergy) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (n, m) = (37, 29);
    let x = cloud(&mut rng, n, d, 0.0);
    let w: Vec<f64> = (0..n)
        .map(|i| {
            if i % 5 == 2 {
                0.0
            } else {
                0.1 + rng.random::<f64>()
            }
        })
        .collect();
    let s: f64 = w.iter().sum();
    let w: Vec<f64> = w.iter().map(|a| a / s).collect();
    let mu = Particles::with_weights(x, &w).unwrap();
    let target = Particles::uniform(cloud(&mut rng, m, d, 0.3)).unwrap();
    let h = (d as f64).sqrt() * 0.8;
    let kernel = Kernel::new(kind, h).unwrap();
    let cached = MmdEnergy::new(kernel, target.clone()).unwrap();
    let plain = MmdEnergy::new(kernel, target)
        .unwrap()
        .with_potential_cache(false);
    (mu, cached, plain)
}

fn close(a: &[f64], b: &[f64], rel: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = a
        .iter()
        .chain(b)
        .fold(0.0f64, |s, v| s.max(v.abs()))
        .max(1e-300);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(x.is_finite() && y.is_finite(), "{what}[{i}] not finite");
        assert!(
            (x - y).abs() <= rel * scale,
            "{what}[{i}]: {x} vs {y} (scale {scale})"
        );
    }
}

/// The naive witness `f(a) = sum_i w_i k(a, x_i) - sum_j v_j k(a, y_j)` and its gradient.
fn naive_witness(e: &MmdEnergy, mu: &Particles, at: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let d = mu.dim();
    let (g1, d1) = kernel_sums_with_grad(&e.kernel, at, mu.x_slice(), &mu.weights(), d).unwrap();
    let (g2, d2) =
        kernel_sums_with_grad(&e.kernel, at, e.target.x_slice(), &e.target.weights(), d).unwrap();
    (
        g1.iter().zip(&g2).map(|(a, b)| a - b).collect(),
        d1.iter().zip(&d2).map(|(a, b)| a - b).collect(),
    )
}

const CASES: [(KernelKind, usize); 7] = [
    (KernelKind::Gaussian, 2),
    (KernelKind::Gaussian, 6),
    (KernelKind::Gaussian, 10),
    (KernelKind::Imq, 2),
    (KernelKind::Imq, 12),
    (KernelKind::Laplace, 2),
    (KernelKind::Laplace, 9),
];

#[test]
fn cache_on_and_off_agree_on_every_path() {
    for (c, &(kind, d)) in CASES.iter().enumerate() {
        let (mu, cached, plain) = problem(10 + c as u64, kind, d);
        let tag = format!("{kind} d={d}");
        // Call order exercises hits and misses: a gradient-free witness first (may or may
        // not store gradients), then with gradients (hit or upgrade), then value and b.
        for with_grad in [false, true, true] {
            let a = cached.first_variation(&mu, with_grad).unwrap();
            let b = plain.first_variation(&mu, with_grad).unwrap();
            close(&a.g, &b.g, 1e-13, &format!("{tag} witness"));
            if with_grad {
                close(
                    a.grad.as_ref().unwrap(),
                    b.grad.as_ref().unwrap(),
                    1e-13,
                    &format!("{tag} gradient"),
                );
                let (ng, ngrad) = naive_witness(&plain, &mu, mu.x_slice());
                close(&a.g, &ng, 1e-12, &format!("{tag} witness vs naive"));
                close(
                    a.grad.as_ref().unwrap(),
                    &ngrad,
                    1e-12,
                    &format!("{tag} grad vs naive"),
                );
            }
        }
        let (va, vb) = (cached.value(&mu).unwrap(), plain.value(&mu).unwrap());
        assert!(
            (va - vb).abs() <= 1e-14 * vb.abs().max(1e-3),
            "{tag}: value {va} vs {vb}"
        );
        let qa = cached.weight_quadratic(&mu).unwrap().unwrap();
        let qb = plain.weight_quadratic(&mu).unwrap().unwrap();
        close(&qa.b, &qb.b, 1e-13, &format!("{tag} b"));
        let b_naive = kernel_sums(
            &cached.kernel,
            mu.x_slice(),
            cached.target.x_slice(),
            &cached.target.weights(),
            d,
        )
        .unwrap();
        close(&qa.b, &b_naive, 1e-13, &format!("{tag} b vs K_xy v"));
        // The value from the quadratic form equals the energy: 1/2 w'Kw - b'w + c.
        let w = mu.weights();
        let mut hw = vec![0.0; w.len()];
        qa.h.apply(&w, &mut hw);
        let quad = 0.5 * qa.h_scale * robustflow::linalg::dot(&w, &hw)
            - robustflow::linalg::dot(&qa.b, &w)
            + qa.c;
        assert!(
            (quad - va).abs() <= 1e-12,
            "{tag}: quadratic form {quad} vs value {va}"
        );
    }
}

#[test]
fn cache_is_invalidated_by_moves_and_kernel_changes() {
    for (c, &(kind, d)) in CASES.iter().enumerate() {
        let (mut mu, mut cached, plain) = problem(40 + c as u64, kind, d);
        let tag = format!("{kind} d={d}");
        let before = cached.first_variation(&mu, true).unwrap();
        // Move one coordinate of one particle by one ulp, then by a visible amount: the
        // cached energy must follow the plain one, not return the stale potential.
        for delta in [f64::EPSILON, 0.25] {
            let xi = &mut mu.x_slice_mut()[3 * d + d - 1];
            *xi += delta * xi.abs().max(1.0);
            let a = cached.first_variation(&mu, true).unwrap();
            let b = plain.first_variation(&mu, true).unwrap();
            close(&a.g, &b.g, 1e-13, &format!("{tag} moved witness"));
            close(
                a.grad.as_ref().unwrap(),
                b.grad.as_ref().unwrap(),
                1e-13,
                &tag,
            );
            let (va, vb) = (cached.value(&mu).unwrap(), plain.value(&mu).unwrap());
            assert!(
                (va - vb).abs() <= 1e-14 * vb.abs().max(1e-3),
                "{tag} moved value"
            );
        }
        let moved = cached.first_variation(&mu, false).unwrap();
        assert!(
            (moved.g[3] - before.g[3]).abs() > 1e-6,
            "{tag}: the visible move changed nothing (test is not testing)"
        );
        // Change the bandwidth through the public field.
        let old = cached.first_variation(&mu, false).unwrap();
        cached.kernel = Kernel::new(kind, cached.kernel.h * 1.7).unwrap();
        let fresh = MmdEnergy::new(cached.kernel, cached.target.clone())
            .unwrap()
            .with_potential_cache(false);
        let a = cached.first_variation(&mu, true).unwrap();
        let b = fresh.first_variation(&mu, true).unwrap();
        close(&a.g, &b.g, 1e-13, &format!("{tag} new kernel"));
        assert!(
            a.g.iter().zip(&old.g).any(|(x, y)| (x - y).abs() > 1e-6),
            "{tag}: the kernel change was not seen"
        );
        // Evaluating at other points in between must not poison the cache for `mu`.
        let probe: Vec<f64> = mu.x_slice().iter().map(|v| v * 0.5 - 0.1).collect();
        let p1 = cached.first_variation_at(&mu, &probe, true).unwrap();
        let p2 = fresh.first_variation_at(&mu, &probe, true).unwrap();
        close(&p1.g, &p2.g, 1e-13, &format!("{tag} probe"));
        let again = cached.first_variation(&mu, false).unwrap();
        close(&again.g, &b.g, 1e-13, &format!("{tag} after probe"));
        // A clone starts with an empty cache and gives the same values.
        let cl = cached.clone();
        close(
            &cl.first_variation(&mu, false).unwrap().g,
            &b.g,
            1e-13,
            &tag,
        );
        cached.clear_potential_cache();
        close(
            &cached.first_variation(&mu, false).unwrap().g,
            &b.g,
            1e-13,
            &tag,
        );
    }
}

#[test]
fn ift_trajectory_is_the_same_with_and_without_the_cache() {
    for &(kind, d) in &[
        (KernelKind::Gaussian, 2),
        (KernelKind::Gaussian, 10),
        (KernelKind::Laplace, 3),
    ] {
        let mut rng = StdRng::seed_from_u64(77);
        let (n, m) = (60, 45);
        let mu0 = Particles::uniform(cloud(&mut rng, n, d, -0.5)).unwrap();
        let target = Particles::uniform(cloud(&mut rng, m, d, 0.5)).unwrap();
        let kernel = Kernel::new(kind, (d as f64).sqrt()).unwrap();
        let cached = MmdEnergy::new(kernel, target.clone()).unwrap();
        let plain = MmdEnergy::new(kernel, target)
            .unwrap()
            .with_potential_cache(false);
        let run = |e: &MmdEnergy| {
            let mut mu = mu0.clone();
            let mut ex = Executor::new(FlowConfig::new(15, 0.3).unwrap()).unwrap();
            let mut st = Ift::new(1.0, 1.0).unwrap();
            let r = ex.run(&mut mu, e, &mut st).unwrap();
            (mu, r)
        };
        let (ma, ra) = run(&cached);
        let (mb, rb) = run(&plain);
        let tag = format!("{kind} d={d}");
        close(
            ma.x_slice(),
            mb.x_slice(),
            1e-10,
            &format!("{tag} positions"),
        );
        close(
            &ma.weights(),
            &mb.weights(),
            1e-10,
            &format!("{tag} weights"),
        );
        assert_eq!(ra.trace.len(), rb.trace.len());
        for (a, b) in ra.trace.iter().zip(&rb.trace) {
            assert!(
                (a.energy - b.energy).abs() <= 1e-12 * b.energy.abs().max(1e-6),
                "{tag} step {}: energy {} vs {}",
                a.step,
                a.energy,
                b.energy
            );
        }
        // And the flow did something: the energy fell by a real factor.
        let (e0, e1) = (ra.trace[0].energy, ra.final_energy);
        assert!(e1 < 0.5 * e0, "{tag}: IFT energy {e0} -> {e1}");
    }
}
