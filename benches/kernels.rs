//! Criterion benchmarks of the kernel-sum engine (issues 2 and 6).
//!
//! - `witness_grad/{f64,f32}/n{N}_d{D}`: Gaussian witness + gradient sums at `n = m` in
//!   {1000, 10000}, `d` in {2, 100} (the issue-2 acceptance sizes);
//! - `mmd_prox/exact_step/n{N}`: one exact MMD-prox weight step (simplex QP, default
//!   options: active set) from uniform weights at `n` in {500, 2000}, `d = 2`;
//!   `mmd_prox/warm_step_in_ift/n{N}`: the same step along an IFT flow (after 10
//!   iterations, starting from the previous, sparse weights); both alone, with the
//!   target-potential cache off (the step pays for `b = K_xy v`); next to
//!   `mmd_prox/w_step_sums/n{N}`, the W step's kernel sums (witness and gradient at the
//!   particles, uniform weights) on the same problem; and
//!   `mmd_prox/ift_iteration/n{N}`: one whole IFT iteration (W step, then prox step) of
//!   the flow itself from that state (cache on and primed, as in a running flow);
//! - `rff_step/n10000_d10_D1024`: one MMD-flow step with random Fourier features.
//!
//! Run `cargo bench --bench kernels` (add `-- --quick` for a fast pass). Each group uses
//! 10 samples and a short measurement time so the whole run stays in minutes.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use robustflow::energy::{Energy, MmdEnergy};
use robustflow::flow::{FlowStep, Ift, MmdProx, StepContext, Wasserstein};
use robustflow::kernel::rff::RandomFourierFeatures;
use robustflow::kernel::{kernel_sums_with_grad, kernel_sums_with_grad_f32, Kernel};
use robustflow::measure::Particles;
use std::hint::black_box;
use std::time::Duration;

fn gauss(rng: &mut StdRng, len: usize, shift: f64) -> Vec<f64> {
    (0..len)
        .map(|_| rng.sample::<f64, _>(StandardNormal) + shift)
        .collect()
}

fn witness_grad(c: &mut Criterion) {
    let mut g = c.benchmark_group("witness_grad");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300));
    let mut rng = StdRng::seed_from_u64(0);
    for &n in &[1000usize, 10000] {
        for &d in &[2usize, 100] {
            let x = gauss(&mut rng, n * d, 0.0);
            let y = gauss(&mut rng, n * d, 0.5);
            let v = vec![1.0 / n as f64; n];
            let k = Kernel::gaussian((d as f64).sqrt()).unwrap();
            g.bench_function(BenchmarkId::new("f64", format!("n{n}_d{d}")), |b| {
                b.iter(|| black_box(kernel_sums_with_grad(&k, &x, &y, &v, d).unwrap()))
            });
            let x32: Vec<f32> = x.iter().map(|&a| a as f32).collect();
            let y32: Vec<f32> = y.iter().map(|&a| a as f32).collect();
            let v32: Vec<f32> = v.iter().map(|&a| a as f32).collect();
            g.bench_function(BenchmarkId::new("f32", format!("n{n}_d{d}")), |b| {
                b.iter(|| black_box(kernel_sums_with_grad_f32(&k, &x32, &y32, &v32, d).unwrap()))
            });
        }
    }
    g.finish();
}

fn mmd_prox(c: &mut Criterion) {
    let mut g = c.benchmark_group("mmd_prox");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300));
    let mut rng = StdRng::seed_from_u64(1);
    for &n in &[500usize, 2000] {
        let d = 2;
        let xp = Array2::from_shape_vec((n, d), gauss(&mut rng, n * d, 0.0)).unwrap();
        let yp = Array2::from_shape_vec((n, d), gauss(&mut rng, n * d, 1.0)).unwrap();
        let energy = MmdEnergy::new(
            Kernel::gaussian(1.0).unwrap(),
            Particles::uniform(yp).unwrap(),
        )
        .unwrap();
        // Steps alone: the energy without the target-potential cache.
        let plain = energy.clone().with_potential_cache(false);
        let mu0 = Particles::uniform(xp).unwrap();
        g.bench_function(BenchmarkId::new("exact_step", format!("n{n}")), |b| {
            b.iter(|| {
                let mut mu = mu0.clone();
                let mut r = StdRng::seed_from_u64(0);
                let mut ctx = StepContext {
                    step: 0,
                    tau: 0.1,
                    rng: &mut r,
                };
                MmdProx::new(1.0)
                    .unwrap()
                    .apply(&mut mu, &plain, &mut ctx)
                    .unwrap();
                black_box(mu)
            })
        });
        // Along an IFT flow: the state after 10 IFT iterations and one more W step; the
        // prox step starts from the previous (sparse) weights.
        let mut mu_w = mu0.clone();
        let mut ift = Ift {
            w: Wasserstein::new(1.0).unwrap(),
            prox: MmdProx::new(1.0).unwrap(),
        };
        let mut r = StdRng::seed_from_u64(1);
        for k in 0..10 {
            let mut ctx = StepContext {
                step: k,
                tau: 0.1,
                rng: &mut r,
            };
            ift.step(&mut mu_w, &energy, &mut ctx).unwrap();
        }
        let mu_ift = mu_w.clone();
        let mut ctx = StepContext {
            step: 10,
            tau: 0.1,
            rng: &mut r,
        };
        ift.w.step(&mut mu_w, &energy, &mut ctx).unwrap();
        g.bench_function(BenchmarkId::new("warm_step_in_ift", format!("n{n}")), |b| {
            b.iter(|| {
                let mut mu = mu_w.clone();
                let mut r = StdRng::seed_from_u64(0);
                let mut ctx = StepContext {
                    step: 11,
                    tau: 0.1,
                    rng: &mut r,
                };
                MmdProx::new(1.0)
                    .unwrap()
                    .apply(&mut mu, &plain, &mut ctx)
                    .unwrap();
                black_box(mu)
            })
        });
        g.bench_function(BenchmarkId::new("w_step_sums", format!("n{n}")), |b| {
            b.iter(|| black_box(plain.first_variation(&mu0, true).unwrap()))
        });
        // A whole IFT iteration from the state after 10 iterations, the cache holding the
        // target potential at these positions (as the previous prox step leaves it).
        g.bench_function(BenchmarkId::new("ift_iteration", format!("n{n}")), |b| {
            b.iter_batched(
                || {
                    energy.target_potential(mu_ift.x_slice(), true).unwrap();
                    (mu_ift.clone(), ift.clone())
                },
                |(mut mu, mut st)| {
                    let mut r = StdRng::seed_from_u64(0);
                    let mut ctx = StepContext {
                        step: 10,
                        tau: 0.1,
                        rng: &mut r,
                    };
                    st.step(&mut mu, &energy, &mut ctx).unwrap();
                    black_box(mu)
                },
                // One setup per timed call: the cache holds one potential, and the
                // previous call's prox step leaves it at other positions.
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn rff_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("rff_step");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300));
    let mut rng = StdRng::seed_from_u64(2);
    let (n, d, nf) = (10000usize, 10usize, 1024usize);
    let k = Kernel::gaussian((d as f64).sqrt()).unwrap();
    let x = gauss(&mut rng, n * d, 0.0);
    let y = gauss(&mut rng, n * d, 0.5);
    let w = vec![1.0 / n as f64; n];
    let rff = RandomFourierFeatures::new(&k, d, nf, 0).unwrap();
    let z_pi = rff.embedding(&y, &w).unwrap();
    g.bench_function(format!("n{n}_d{d}_D{nf}"), |b| {
        b.iter(|| {
            let z = rff.embedding(&x, &w).unwrap();
            let delta: Vec<f64> = z.iter().zip(&z_pi).map(|(a, b)| a - b).collect();
            black_box(rff.witness(&x, &delta, true).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, witness_grad, mmd_prox, rff_step);
criterion_main!(benches);
