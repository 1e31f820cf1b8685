//! Results do not depend on the number of threads (issue 6): the engine's sums (streamed
//! and tiled, f64 and f32, values, gradients, multi), the MMD^2 and the random-feature
//! embedding and witness are bitwise identical in a 1-thread and a 2-thread rayon pool.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use robustflow::kernel::engine::{sums_multi_with, sums_with};
use robustflow::kernel::rff::RandomFourierFeatures;
use robustflow::kernel::{mmd2, EngineOptions, Kernel, KernelKind, PathChoice};

fn pool(t: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap()
}

fn rand_vec(rng: &mut StdRng, len: usize) -> Vec<f64> {
    (0..len).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect()
}

#[test]
fn sums_are_identical_for_one_and_two_threads() {
    let (p1, p2) = (pool(1), pool(2));
    let mut rng = StdRng::seed_from_u64(1);
    // sizes giving several row tasks and tiles, so the two pools really split the work
    for (n, m, d) in [(700, 900, 2), (300, 1100, 5), (400, 700, 16)] {
        let x = rand_vec(&mut rng, n * d);
        let y = rand_vec(&mut rng, m * d);
        let v = rand_vec(&mut rng, m);
        let x32: Vec<f32> = x.iter().map(|&a| a as f32).collect();
        let y32: Vec<f32> = y.iter().map(|&a| a as f32).collect();
        let v32: Vec<f32> = v.iter().map(|&a| a as f32).collect();
        for kind in [KernelKind::Gaussian, KernelKind::Imq, KernelKind::Laplace] {
            let k = Kernel::new(kind, 0.7).unwrap();
            let mut paths = vec![PathChoice::Streamed];
            if kind != KernelKind::Laplace {
                paths.push(PathChoice::Tiled);
            }
            for path in paths {
                let o = EngineOptions { path, simd: None };
                let a = p1.install(|| sums_with(&k, &x, &y, &v, d, true, &o).unwrap());
                let b = p2.install(|| sums_with(&k, &x, &y, &v, d, true, &o).unwrap());
                assert_eq!(a, b, "{kind} {path:?} f64 n={n} d={d}");
                let a = p1.install(|| sums_with(&k, &x32, &y32, &v32, d, true, &o).unwrap());
                let b = p2.install(|| sums_with(&k, &x32, &y32, &v32, d, true, &o).unwrap());
                assert_eq!(a, b, "{kind} {path:?} f32 n={n} d={d}");
                let vm = &y[..m * 2.min(d)];
                let p = 2.min(d);
                let a = p1.install(|| sums_multi_with(&k, &x, &y, vm, d, p, &o).unwrap());
                let b = p2.install(|| sums_multi_with(&k, &x, &y, vm, d, p, &o).unwrap());
                assert_eq!(a, b, "{kind} {path:?} multi");
            }
            let w = vec![1.0 / n as f64; n];
            let vv = vec![1.0 / m as f64; m];
            let a = p1.install(|| mmd2(&k, &x, &w, &y, &vv, d).unwrap());
            let b = p2.install(|| mmd2(&k, &x, &w, &y, &vv, d).unwrap());
            assert_eq!(a.to_bits(), b.to_bits(), "{kind} mmd2");
        }
    }
}

#[test]
fn random_features_are_identical_for_one_and_two_threads() {
    let (p1, p2) = (pool(1), pool(2));
    let mut rng = StdRng::seed_from_u64(2);
    let (n, d) = (1000, 4);
    let x = rand_vec(&mut rng, n * d);
    let w = vec![1.0 / n as f64; n];
    let k = Kernel::gaussian(1.0).unwrap();
    let rff = RandomFourierFeatures::new(&k, d, 300, 9).unwrap();
    let za = p1.install(|| rff.embedding(&x, &w).unwrap());
    let zb = p2.install(|| rff.embedding(&x, &w).unwrap());
    assert_eq!(za, zb);
    let a = p1.install(|| rff.witness(&x, &za, true).unwrap());
    let b = p2.install(|| rff.witness(&x, &za, true).unwrap());
    assert_eq!(a, b);
}
