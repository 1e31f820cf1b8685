//! Every flow step against the facts of docs/DESIGN.md §3 (and research/papers.md
//! section 9):
//!
//! 1. for small steps the energy decreases, at the rate the continuous flow dissipates it
//!    (W: `alpha int |grad f|^2 dmu`; FR: `beta Var_mu(g)`), and within the descent lemma of
//!    Arbel et al. for `tau = 1/(3L)`; the projected-gradient MMD step obeys the projected
//!    gradient descent lemma; FR / WFR / IFT / MMD-prox keep the simplex; W keeps the weights;
//!    FR and the MMD-prox keep the positions;
//! 2. `mu = pi` is a fixed point of every MMD-energy flow (also with noise injection);
//! 3. runs are reproducible from the seed (and independent of the number of threads);
//!
//! plus fact 4 (FR flow of the inclusive KL follows `w_t = e^{-t} w_0 + (1 - e^{-t}) p`),
//! fact 5 (`K_mu(1 - p/w) = f`), fact 6 (a Dirac never separates under the plain MMD flow;
//! noise separates it), the kernel-FR limit `lambda -> 0`, SVGD and Langevin on Gaussian
//! targets, and the driver (trace fields, tolerance stop, observers, divergence guard).

use ndarray::{Array1, Array2};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use robustflow::energy::{Energy, FirstVariation, MmdEnergy};
use robustflow::flow::{
    Control, Executor, FisherRao, FlowConfig, FlowParams, FlowStep, Ift, KernelFr, Langevin,
    MmdProx, NoiseSchedule, Observer, ProxSolver, StepContext, StepInfo, Svgd, TraceRecord,
    Velocity, Wasserstein, Wfr,
};
use robustflow::kernel::{gram, kernel_sums, Bandwidth, Kernel, KernelKind};
use robustflow::linalg::{power_iteration, solve};
use robustflow::measure::{Distribution, Gaussian, LogDensity, Particles};
use robustflow::{Error, Result};
use std::sync::Arc;

const KINDS: [KernelKind; 3] = [KernelKind::Gaussian, KernelKind::Imq, KernelKind::Laplace];

fn rand_simplex(rng: &mut StdRng, n: usize) -> Vec<f64> {
    let w: Vec<f64> = (0..n).map(|_| 0.05 + rng.random::<f64>()).collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|a| a / s).collect()
}

fn rand_matrix(rng: &mut StdRng, n: usize, d: usize, scale: f64, offset: f64) -> Array2<f64> {
    Array2::from_shape_fn((n, d), |_| {
        offset + scale * (2.0 * rng.random::<f64>() - 1.0)
    })
}

/// A random MMD problem: `n` weighted particles and `m` weighted target samples in a box,
/// overlapping, with a kernel of the given kind and a random bandwidth.
fn problem(seed: u64, n: usize, m: usize, d: usize, kind: KernelKind) -> (Particles, MmdEnergy) {
    let mut rng = StdRng::seed_from_u64(seed);
    let h = 0.7 + rng.random::<f64>();
    let x = rand_matrix(&mut rng, n, d, 2.0, 0.0);
    let y = rand_matrix(&mut rng, m, d, 2.0, 0.5);
    let w = rand_simplex(&mut rng, n);
    let v = rand_simplex(&mut rng, m);
    let mu = Particles::with_weights(x, &w).unwrap();
    let target = Particles::with_weights(y, &v).unwrap();
    let e = MmdEnergy::new(Kernel::new(kind, h).unwrap(), target).unwrap();
    (mu, e)
}

/// One step of `step` with step size `tau`.
fn one_step(
    step: &mut dyn FlowStep,
    mu: &mut Particles,
    e: &dyn Energy,
    tau: f64,
    seed: u64,
) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ctx = StepContext {
        step: 0,
        tau,
        rng: &mut rng,
    };
    step.step(mu, e, &mut ctx).map(|_| ())
}

/// `int |grad f|^2 dmu` and, for the mass-weighted velocity, `n sum w_i^2 |grad f_i|^2`.
fn w_dissipation(mu: &Particles, e: &dyn Energy) -> (f64, f64) {
    let fv = e.first_variation(mu, true).unwrap();
    let grad = fv.grad.unwrap();
    let d = mu.dim();
    let n = mu.len() as f64;
    let w = mu.weights();
    let mut a = 0.0;
    let mut b = 0.0;
    for (i, wi) in w.iter().enumerate() {
        let g2: f64 = grad[i * d..(i + 1) * d].iter().map(|t| t * t).sum();
        a += wi * g2;
        b += n * wi * wi * g2;
    }
    (a, b)
}

/// `Var_mu(g) = sum w g^2 - (sum w g)^2` (probability weights).
fn fr_dissipation(mu: &Particles, e: &dyn Energy) -> f64 {
    let g = e.first_variation(mu, false).unwrap().g;
    let w = mu.weights();
    let m: f64 = w.iter().zip(&g).map(|(a, b)| a * b).sum();
    w.iter().zip(&g).map(|(a, b)| a * (b - m) * (b - m)).sum()
}

fn assert_simplex(mu: &Particles, what: &str) {
    let w = mu.weights();
    let s: f64 = w.iter().sum();
    assert!((s - 1.0).abs() <= 1e-12, "{what}: weights sum to {s}");
    assert!(
        w.iter().all(|a| *a >= 0.0 && a.is_finite()),
        "{what}: weights {w:?}"
    );
    assert!(
        (mu.mass() - 1.0).abs() <= 1e-12,
        "{what}: mass {}",
        mu.mass()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(16), .. ProptestConfig::default() })]

    /// W step: the energy drops at the rate `alpha int |grad f|^2 dmu` for small `tau`
    /// (mass-weighted velocity: `alpha n sum w_i^2 |grad f_i|^2`), the weights do not change,
    /// and at `tau alpha = 1/(3L)` the descent lemma of Arbel et al. (2019, Prop. 4) holds:
    /// `F_new - F_old <= -tau alpha (1 - 3/2 tau alpha L) int |grad f|^2 dmu`.
    #[test]
    fn prop_wasserstein_descends(seed in 0u64..1_000_000, n in 1usize..9, m in 1usize..9, d in 1usize..4, imq in any::<bool>(), alpha in 0.5f64..2.0) {
        let kind = if imq { KernelKind::Imq } else { KernelKind::Gaussian };
        let (mu0, e) = problem(seed, n, m, d, kind);
        let f0 = e.value(&mu0).unwrap();
        let (dis, dis_mw) = w_dissipation(&mu0, &e);
        prop_assume!(dis > 1e-8);
        for (vel, rate) in [(Velocity::Unweighted, dis), (Velocity::MassWeighted, dis_mw)] {
            let tau = 1e-5;
            let mut mu = mu0.clone();
            let mut st = Wasserstein::new(alpha).unwrap().with_velocity(vel);
            one_step(&mut st, &mut mu, &e, tau, 0).unwrap();
            let f1 = e.value(&mu).unwrap();
            prop_assert!(f1 < f0, "{vel:?}: energy rose {f0} -> {f1}");
            let observed = (f0 - f1) / tau;
            prop_assert!((observed - alpha * rate).abs() <= 1e-3 * alpha * rate + 1e-10,
                "{vel:?}: dissipation {observed} vs alpha * rate {}", alpha * rate);
            prop_assert_eq!(mu.log_weights(), mu0.log_weights());
        }
        // Descent lemma at half the threshold 2/(3L).
        let lip = e.kernel.grad_lipschitz().unwrap();
        let tau = 1.0 / (3.0 * lip * alpha);
        let mut mu = mu0.clone();
        one_step(&mut Wasserstein::new(alpha).unwrap(), &mut mu, &e, tau, 0).unwrap();
        let f1 = e.value(&mu).unwrap();
        let bound = -tau * alpha * (1.0 - 1.5 * tau * alpha * lip) * dis;
        prop_assert!(f1 - f0 <= bound + 1e-13, "descent lemma: dF = {} > {bound}", f1 - f0);
    }

    /// FR step: positions fixed, simplex kept, energy drops at the rate `beta Var_mu(g)`.
    #[test]
    fn prop_fisher_rao_descends(seed in 0u64..1_000_000, n in 2usize..9, m in 1usize..9, d in 1usize..4, kind in 0usize..3, beta in 0.5f64..2.0) {
        let (mu0, e) = problem(seed, n, m, d, KINDS[kind]);
        let f0 = e.value(&mu0).unwrap();
        let rate = fr_dissipation(&mu0, &e);
        prop_assume!(rate > 1e-8);
        let tau = 1e-5;
        let mut mu = mu0.clone();
        one_step(&mut FisherRao::new(beta).unwrap(), &mut mu, &e, tau, 0).unwrap();
        let f1 = e.value(&mu).unwrap();
        let observed = (f0 - f1) / tau;
        prop_assert!((observed - beta * rate).abs() <= 1e-3 * beta * rate + 1e-10, "dissipation {observed} vs {}", beta * rate);
        prop_assert_eq!(&mu.x, &mu0.x);
        assert_simplex(&mu, "fr");
        // Larger steps keep the simplex too (log-domain normalisation).
        for _ in 0..20 {
            one_step(&mut FisherRao::new(beta).unwrap(), &mut mu, &e, 5.0, 0).unwrap();
        }
        assert_simplex(&mu, "fr, 20 large steps");
        prop_assert_eq!(&mu.x, &mu0.x);
    }

    /// WFR: energy drops at `alpha int |grad f|^2 dmu + beta Var_mu(g)` to first order; IFT:
    /// the energy drops for small steps; both keep the simplex.
    #[test]
    fn prop_wfr_and_ift_descend(seed in 0u64..1_000_000, n in 2usize..9, m in 1usize..9, d in 1usize..4, imq in any::<bool>()) {
        let kind = if imq { KernelKind::Imq } else { KernelKind::Gaussian };
        let (mu0, e) = problem(seed, n, m, d, kind);
        let f0 = e.value(&mu0).unwrap();
        let (dis, _) = w_dissipation(&mu0, &e);
        let var = fr_dissipation(&mu0, &e);
        prop_assume!(dis + var > 1e-8);
        let (alpha, beta, tau) = (1.0, 0.7, 1e-5);
        let mut mu = mu0.clone();
        one_step(&mut Wfr::new(alpha, beta).unwrap(), &mut mu, &e, tau, 0).unwrap();
        let f1 = e.value(&mu).unwrap();
        let expect = alpha * dis + beta * var;
        prop_assert!(((f0 - f1) / tau - expect).abs() <= 2e-3 * expect + 1e-10, "WFR dissipation {} vs {expect}", (f0 - f1) / tau);
        assert_simplex(&mu, "wfr");
        let mut mu = mu0.clone();
        let tau = 0.1 / e.kernel.grad_lipschitz().unwrap();
        one_step(&mut Ift::new(alpha, beta).unwrap(), &mut mu, &e, tau, 0).unwrap();
        let f1 = e.value(&mu).unwrap();
        prop_assert!(f1 <= f0 + 1e-14, "IFT raised the energy {f0} -> {f1}");
        assert_simplex(&mu, "ift");
        for _ in 0..10 {
            one_step(&mut Wfr::new(alpha, beta).unwrap(), &mut mu, &e, 0.3, 0).unwrap();
            one_step(&mut Ift::new(alpha, beta).unwrap(), &mut mu, &e, 0.3, 0).unwrap();
        }
        assert_simplex(&mu, "wfr and ift, larger steps");
    }

    /// The projected-gradient MMD step `w <- Proj(w - eta g)` with `eta <= 1/lambda_max(K)`
    /// obeys the projected-gradient descent lemma
    /// `F(w+) <= F(w) - ||w+ - w||^2 / (2 eta)`, keeps the simplex and the positions.
    #[test]
    fn prop_mmd_projected_gradient_descends(seed in 0u64..1_000_000, n in 2usize..10, m in 1usize..9, d in 1usize..4, kind in 0usize..3) {
        let (mu0, e) = problem(seed, n, m, d, KINDS[kind]);
        let kxx = gram(&e.kernel, mu0.x_slice(), mu0.x_slice(), d).unwrap();
        let lam = power_iteration(&kxx, 200);
        let beta = 1.0;
        let tau = 1.0 / lam;
        let mut mu = mu0.clone();
        for _ in 0..5 {
            let f0 = e.value(&mu).unwrap();
            let w0 = mu.weights();
            let mut st = MmdProx::new(beta).unwrap().with_solver(ProxSolver::ProjectedGradient).unwrap();
            one_step(&mut st, &mut mu, &e, tau, 0).unwrap();
            let f1 = e.value(&mu).unwrap();
            let dw2: f64 = mu.weights().iter().zip(&w0).map(|(a, b)| (a - b) * (a - b)).sum();
            prop_assert!(f1 <= f0 - dw2 / (2.0 * tau * beta) + 1e-13, "PG step: {f0} -> {f1}, |dw|^2 = {dw2}");
            assert_simplex(&mu, "mmd-pg");
            prop_assert_eq!(&mu.x, &mu0.x);
        }
    }

    /// The exact MMD-prox step never raises the energy, whatever the step size, keeps the
    /// simplex and the positions.
    #[test]
    fn prop_mmd_prox_never_raises_energy(seed in 0u64..1_000_000, n in 2usize..12, m in 1usize..9, d in 1usize..4, kind in 0usize..3, log_tau in -3.0f64..3.0) {
        let (mu0, e) = problem(seed, n, m, d, KINDS[kind]);
        let mut mu = mu0.clone();
        let mut st = MmdProx::new(1.0).unwrap();
        for _ in 0..4 {
            let f0 = e.value(&mu).unwrap();
            one_step(&mut st, &mut mu, &e, 10f64.powf(log_tau), 0).unwrap();
            let f1 = e.value(&mu).unwrap();
            prop_assert!(f1 <= f0 + 1e-13, "prox raised the energy {f0} -> {f1}");
            assert_simplex(&mu, "mmd-prox");
            prop_assert_eq!(&mu.x, &mu0.x);
        }
    }

    /// Kernel-approximated FR: the energy drops for small steps, positions stay, simplex kept.
    #[test]
    fn prop_kernel_fr_descends(seed in 0u64..1_000_000, n in 2usize..9, m in 1usize..9, d in 1usize..4, kind in 0usize..3, log_lambda in -4.0f64..1.0) {
        let (mu0, e) = problem(seed, n, m, d, KINDS[kind]);
        prop_assume!(fr_dissipation(&mu0, &e) > 1e-8);
        let f0 = e.value(&mu0).unwrap();
        let mut mu = mu0.clone();
        let mut st = KernelFr::new(e.kernel, 10f64.powf(log_lambda), 1.0).unwrap();
        one_step(&mut st, &mut mu, &e, 1e-4, 0).unwrap();
        let f1 = e.value(&mu).unwrap();
        prop_assert!(f1 <= f0 + 1e-15, "kernel FR raised the energy {f0} -> {f1}");
        assert_simplex(&mu, "kfr");
        prop_assert_eq!(&mu.x, &mu0.x);
    }
}

/// `mu = pi` (particles on the target samples, same weights) is a fixed point of every flow
/// of the MMD energy, including noise injection (the witness vanishes everywhere).
#[test]
fn target_is_a_fixed_point_of_every_mmd_flow() {
    for kind in KINDS {
        let mut rng = StdRng::seed_from_u64(11);
        let (n, d) = (9, 2);
        let y = rand_matrix(&mut rng, n, d, 2.0, 0.0);
        let v = rand_simplex(&mut rng, n);
        let target = Particles::with_weights(y.clone(), &v).unwrap();
        let k = Kernel::new(kind, 1.1).unwrap();
        let e = MmdEnergy::new(k, target.clone()).unwrap();
        let noise = NoiseSchedule {
            beta0: 0.5,
            half_life: None,
            off_after: None,
        };
        let steps: Vec<Box<dyn FlowStep>> = vec![
            Box::new(Wasserstein::new(1.0).unwrap()),
            Box::new(
                Wasserstein::new(1.0)
                    .unwrap()
                    .with_velocity(Velocity::MassWeighted),
            ),
            Box::new(Wasserstein::new(1.0).unwrap().with_noise(noise).unwrap()),
            Box::new(FisherRao::new(1.0).unwrap()),
            Box::new(Wfr::new(1.0, 1.0).unwrap()),
            Box::new(MmdProx::new(1.0).unwrap()),
            Box::new(
                MmdProx::new(1.0)
                    .unwrap()
                    .with_solver(ProxSolver::ProjectedGradient)
                    .unwrap(),
            ),
            Box::new(
                MmdProx::new(1.0)
                    .unwrap()
                    .with_solver(ProxSolver::Affine)
                    .unwrap(),
            ),
            Box::new(Ift::new(1.0, 1.0).unwrap()),
            Box::new(KernelFr::new(k, 1e-3, 1.0).unwrap()),
        ];
        for mut st in steps {
            let mut mu = target.clone();
            let mut ex = Executor::new(FlowConfig::new(5, 0.5).unwrap().seed(3)).unwrap();
            let r = ex.run(&mut mu, &e, &mut st).unwrap();
            let name = st.name();
            let dx = (&mu.x - &y).iter().fold(0.0f64, |a, b| a.max(b.abs()));
            let dw = mu
                .weights()
                .iter()
                .zip(&v)
                .fold(0.0f64, |a, (p, q)| a.max((p - q).abs()));
            assert!(dx <= 1e-12, "{kind} {name}: particles moved by {dx}");
            assert!(dw <= 1e-12, "{kind} {name}: weights moved by {dw}");
            assert!(
                r.final_energy <= 1e-14,
                "{kind} {name}: energy {}",
                r.final_energy
            );
        }
    }
}

/// Runs are reproducible from the seed: bit-identical particles for the same seed, different
/// particles for another seed when noise is used; deterministic flows do not depend on the
/// seed nor on the number of threads.
#[test]
fn runs_are_reproducible_from_the_seed() {
    let (mu0, e) = problem(21, 40, 30, 2, KernelKind::Gaussian);
    let target = Arc::new(Gaussian::isotropic(Array1::from(vec![0.5, 0.5]), 1.0).unwrap());
    let noise = NoiseSchedule {
        beta0: 0.3,
        half_life: Some(10),
        off_after: None,
    };
    let make = |which: usize| -> Box<dyn FlowStep> {
        match which {
            0 => Box::new(Wasserstein::new(1.0).unwrap().with_noise(noise).unwrap()),
            1 => Box::new(Langevin::new(target.clone())),
            2 => Box::new(Ift {
                w: Wasserstein::new(1.0).unwrap().with_noise(noise).unwrap(),
                prox: MmdProx::new(1.0).unwrap(),
            }),
            3 => Box::new(Ift::new(1.0, 1.0).unwrap()),
            4 => Box::new(Wfr::new(1.0, 1.0).unwrap()),
            _ => Box::new(Svgd::new(
                target.clone(),
                KernelKind::Gaussian,
                Bandwidth::Median,
            )),
        }
    };
    let run = |which: usize, seed: u64| -> Particles {
        let mut mu = mu0.clone();
        let mut ex = Executor::new(FlowConfig::new(15, 0.2).unwrap().seed(seed)).unwrap();
        ex.run(&mut mu, &e, &mut make(which)).unwrap();
        mu
    };
    for which in 0..6 {
        let a = run(which, 7);
        let b = run(which, 7);
        let name = make(which).name();
        assert!(a == b, "{name}: same seed, different particles");
        let c = run(which, 8);
        if which <= 2 {
            assert!(a.x != c.x, "{name}: another seed gave the same particles");
        } else {
            assert!(a == c, "{name}: deterministic flow depends on the seed");
        }
        // The kernel sums are documented to be independent of the number of threads.
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| run(which, 7));
        let three = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap()
            .install(|| run(which, 7));
        assert!(
            one == a && three == a,
            "{name}: result depends on the number of threads"
        );
    }
}

/// Fact 6: with a radial kernel, particles started at one point move together forever under
/// the plain MMD flow; with noise injection they separate.
#[test]
fn dirac_never_separates_without_noise_and_separates_with_noise() {
    for kind in [KernelKind::Gaussian, KernelKind::Imq, KernelKind::Laplace] {
        let (_, e) = problem(31, 1, 25, 2, kind);
        let x0 = Array2::from_shape_fn((20, 2), |(_, j)| [2.5, -1.0][j]);
        for vel in [Velocity::Unweighted, Velocity::MassWeighted] {
            let mut mu = Particles::uniform(x0.clone()).unwrap();
            let mut ex = Executor::new(FlowConfig::new(200, 0.3).unwrap()).unwrap();
            let r = ex
                .run(
                    &mut mu,
                    &e,
                    &mut Wasserstein::new(1.0).unwrap().with_velocity(vel),
                )
                .unwrap();
            let first = mu.x.row(0).to_owned();
            for row in mu.x.outer_iter() {
                assert_eq!(row, first, "{kind} {vel:?}: the Dirac separated");
            }
            assert!(first[0] != 2.5, "{kind}: the Dirac did not move");
            assert!(
                r.final_energy < r.trace[0].energy,
                "{kind}: energy did not drop"
            );
        }
        let mut mu = Particles::uniform(x0.clone()).unwrap();
        let noise = NoiseSchedule {
            beta0: 0.5,
            half_life: Some(100),
            off_after: Some(150),
        };
        let mut ex = Executor::new(FlowConfig::new(200, 0.3).unwrap().seed(1)).unwrap();
        ex.run(
            &mut mu,
            &e,
            &mut Wasserstein::new(1.0).unwrap().with_noise(noise).unwrap(),
        )
        .unwrap();
        let mut spread = 0.0f64;
        for a in mu.x.outer_iter() {
            for b in mu.x.outer_iter() {
                spread = spread.max((&a - &b).iter().map(|t| t * t).sum::<f64>().sqrt());
            }
        }
        assert!(
            spread > 0.05,
            "{kind}: noise injection did not separate the Dirac (spread {spread})"
        );
    }
}

#[test]
fn noise_schedule_levels() {
    let s = NoiseSchedule {
        beta0: 0.8,
        half_life: Some(10),
        off_after: Some(35),
    };
    assert_eq!(s.level(0), 0.8);
    assert!((s.level(10) - 0.4).abs() < 1e-15);
    assert!((s.level(30) - 0.1).abs() < 1e-15);
    assert!((s.level(5) - 0.8 * 0.5f64.sqrt()).abs() < 1e-15);
    assert_eq!(s.level(35), 0.0);
    assert_eq!(s.level(1000), 0.0);
    let c = NoiseSchedule {
        beta0: 0.3,
        half_life: None,
        off_after: None,
    };
    assert_eq!(c.level(12345), 0.3);
    assert!(Wasserstein::new(1.0)
        .unwrap()
        .with_noise(NoiseSchedule {
            beta0: -1.0,
            half_life: None,
            off_after: None
        })
        .is_err());
}

/// The inclusive KL `KL(p | w) = sum p_i log(p_i / w_i)` on fixed atoms (positive-measure
/// form `+ sum w - sum p`), first variation `1 - p_i / w_i`.
struct InclusiveKl {
    p: Vec<f64>,
}

impl Energy for InclusiveKl {
    fn name(&self) -> String {
        "kl(p|w)".into()
    }
    fn value(&self, mu: &Particles) -> Result<f64> {
        let w = mu.weights();
        Ok(self
            .p
            .iter()
            .zip(&w)
            .map(|(p, w)| if *p > 0.0 { p * (p / w).ln() } else { 0.0 } - p + w)
            .sum())
    }
    fn first_variation_at(
        &self,
        mu: &Particles,
        _at: &[f64],
        with_grad: bool,
    ) -> Result<FirstVariation> {
        let w = mu.weights();
        Ok(FirstVariation {
            g: self.p.iter().zip(&w).map(|(p, w)| 1.0 - p / w).collect(),
            grad: with_grad.then(|| vec![0.0; mu.len() * mu.dim()]),
        })
    }
}

/// Fact 4: the FR flow of `KL(p | w)` on a common support is
/// `w_t = e^{-t} w_0 + (1 - e^{-t}) p`; the mirror step converges to it at first order in
/// `tau`, and `KL(p | w_t) <= e^{-t} KL(p | w_0)` along the exact solution.
#[test]
fn fisher_rao_flow_of_inclusive_kl_follows_closed_form() {
    let mut rng = StdRng::seed_from_u64(41);
    let n = 7;
    let x = rand_matrix(&mut rng, n, 1, 1.0, 0.0);
    let w0 = rand_simplex(&mut rng, n);
    let p = rand_simplex(&mut rng, n);
    let e = InclusiveKl { p: p.clone() };
    let t: f64 = 1.0;
    let closed: Vec<f64> = w0
        .iter()
        .zip(&p)
        .map(|(a, b)| (-t).exp() * a + (1.0 - (-t).exp()) * b)
        .collect();
    let mut errs = Vec::new();
    for steps in [500usize, 1000, 2000] {
        let tau = t / steps as f64;
        let mut mu = Particles::with_weights(x.clone(), &w0).unwrap();
        let mut ex = Executor::new(
            FlowParams::new(steps, tau)
                .trace_every(steps / 10)
                .check()
                .unwrap(),
        )
        .unwrap();
        let r = ex
            .run(&mut mu, &e, &mut FisherRao::new(1.0).unwrap())
            .unwrap();
        let err = mu
            .weights()
            .iter()
            .zip(&closed)
            .fold(0.0f64, |a, (u, v)| a.max((u - v).abs()));
        assert!(err < 2.0 * tau, "steps = {steps}: error {err}");
        assert_simplex(&mu, "fr of KL");
        // KL decays at least like e^{-t} (up to the O(tau) discretisation error).
        let kl0 = r.trace[0].energy;
        for rec in &r.trace {
            let tt = rec.step as f64 * tau;
            assert!(
                rec.energy <= (-tt).exp() * kl0 * (1.0 + 10.0 * tau),
                "KL bound at t = {tt}"
            );
        }
        errs.push(err);
    }
    // First order: halving tau halves the error.
    for k in 0..2 {
        let ratio = errs[k] / errs[k + 1];
        assert!(
            (1.8..2.2).contains(&ratio),
            "error ratio {ratio} ({errs:?})"
        );
    }
    // The exact solution satisfies the KL bound.
    let kl = |w: &[f64]| p.iter().zip(w).map(|(a, b)| a * (a / b).ln()).sum::<f64>();
    for tt in [0.1f64, 0.5, 1.0, 3.0] {
        let wt: Vec<f64> = w0
            .iter()
            .zip(&p)
            .map(|(a, b)| (-tt).exp() * a + (1.0 - (-tt).exp()) * b)
            .collect();
        assert!(kl(&wt) <= (-tt).exp() * kl(&w0) + 1e-15);
    }
}

/// Fact 5: on a common support, `K_mu(1 - p/w)(z) = f(z)`, the MMD witness.
#[test]
fn kernelised_inclusive_kl_force_is_the_mmd_witness() {
    let mut rng = StdRng::seed_from_u64(51);
    for kind in KINDS {
        let (n, d) = (8, 2);
        let x = rand_matrix(&mut rng, n, d, 2.0, 0.0);
        let w = rand_simplex(&mut rng, n);
        let p = rand_simplex(&mut rng, n);
        let k = Kernel::new(kind, 0.9).unwrap();
        let mu = Particles::with_weights(x.clone(), &w).unwrap();
        let e = MmdEnergy::new(k, Particles::with_weights(x.clone(), &p).unwrap()).unwrap();
        let z: Vec<f64> = rand_matrix(&mut rng, 12, d, 3.0, 0.0)
            .into_raw_vec_and_offset()
            .0;
        let f = e.first_variation_at(&mu, &z, false).unwrap().g;
        // (K_mu h)(z) = sum_i w_i k(z, x_i) h(x_i) with h = 1 - p/w.
        let wh: Vec<f64> = w
            .iter()
            .zip(&p)
            .map(|(wi, pi)| wi * (1.0 - pi / wi))
            .collect();
        let kh = kernel_sums(&k, &z, mu.x_slice(), &wh, d).unwrap();
        for (a, b) in f.iter().zip(&kh) {
            assert!(
                (a - b).abs() <= 1e-14,
                "{kind}: witness {a} vs K_mu(1 - p/w) {b}"
            );
        }
    }
}

/// Kernel FR: the smoothed force equals the dense formula `K W (K W + lambda I)^{-1} g`, and
/// tends to `g` (linearly in `lambda`) as `lambda -> 0` on a fixed support with invertible K;
/// the step then tends to the FR step.
#[test]
fn kernel_fr_force_tends_to_fr_force() {
    let mut rng = StdRng::seed_from_u64(61);
    let (n, d) = (6, 2);
    let x = rand_matrix(&mut rng, n, d, 2.0, 0.0);
    let w = rand_simplex(&mut rng, n);
    let mu = Particles::with_weights(x.clone(), &w).unwrap();
    let k = Kernel::gaussian(0.8).unwrap();
    let g: Vec<f64> = (0..n)
        .map(|_| rng.sample::<f64, _>(StandardNormal))
        .collect();
    let kxx = gram(&k, mu.x_slice(), mu.x_slice(), d).unwrap();
    let gnorm = g.iter().fold(0.0f64, |a, b| a.max(b.abs()));
    let mut prev = f64::INFINITY;
    for lam in [1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6] {
        let kfr = KernelFr::new(k, lam, 1.0).unwrap();
        let gl = kfr.smoothed_force(&mu, &g).unwrap();
        // Dense reference.
        let mut a = Array2::<f64>::zeros((n, n));
        for i in 0..n {
            for j in 0..n {
                a[[i, j]] = kxx[[i, j]] * w[j] + if i == j { lam } else { 0.0 };
            }
        }
        let u = solve(&a, &g).unwrap();
        for i in 0..n {
            let r: f64 = (0..n).map(|j| kxx[[i, j]] * w[j] * u[j]).sum();
            assert!(
                (gl[i] - r).abs() <= 1e-8 * gnorm,
                "lambda {lam}: CG {} vs dense {r}",
                gl[i]
            );
        }
        let err = gl
            .iter()
            .zip(&g)
            .fold(0.0f64, |a, (p, q)| a.max((p - q).abs()));
        assert!(err < prev, "lambda {lam}: error {err} did not decrease");
        prev = err;
    }
    assert!(
        prev < 1e-3 * gnorm,
        "lambda = 1e-6: |g_lambda - g| = {prev}"
    );
    // The step with a tiny ridge is the FR step.
    let (mu0, e) = problem(62, n, 5, d, KernelKind::Gaussian);
    let mut a = mu0.clone();
    let mut b = mu0.clone();
    one_step(
        &mut KernelFr::new(e.kernel, 1e-8, 1.0).unwrap(),
        &mut a,
        &e,
        0.5,
        0,
    )
    .unwrap();
    one_step(&mut FisherRao::new(1.0).unwrap(), &mut b, &e, 0.5, 0).unwrap();
    for (p, q) in a.weights().iter().zip(b.weights()) {
        assert!(
            (p - q).abs() < 1e-5,
            "kernel FR with lambda -> 0: {p} vs FR {q}"
        );
    }
}

/// SVGD on a Gaussian target: one particle follows `x += tau k(x,x) s(x)` (gradient ascent
/// of log pi, fixed at the mean); the particle mean moves towards the target mean while the
/// particles sit on one side of it, and ends near it; the target mean is a fixed point of
/// one particle.
#[test]
fn svgd_on_a_gaussian_target() {
    let mut rng = StdRng::seed_from_u64(71);
    for trial in 0..5 {
        let m = Array1::from(vec![rng.random::<f64>() - 0.5, rng.random::<f64>() - 0.5]);
        let s = 0.7 + rng.random::<f64>();
        let target = Arc::new(Gaussian::isotropic(m.clone(), s).unwrap());
        let (_, e) = problem(72, 3, 3, 2, KernelKind::Gaussian);
        // One particle: gradient ascent, and the mean is a fixed point.
        for kind in [KernelKind::Gaussian, KernelKind::Imq] {
            let mut svgd = Svgd::new(target.clone(), kind, Bandwidth::Fixed(1.0));
            let x0 = vec![2.0, -1.0];
            let mut mu =
                Particles::uniform(Array2::from_shape_vec((1, 2), x0.clone()).unwrap()).unwrap();
            one_step(&mut svgd, &mut mu, &e, 0.1, 0).unwrap();
            let kd = Kernel::new(kind, 1.0).unwrap().diag();
            let mut sc = vec![0.0; 2];
            target.score(&x0, &mut sc);
            for a in 0..2 {
                assert!((mu.x[[0, a]] - (x0[a] + 0.1 * kd * sc[a])).abs() < 1e-14);
            }
            let mut at_mean =
                Particles::uniform(Array2::from_shape_vec((1, 2), m.to_vec()).unwrap()).unwrap();
            one_step(&mut svgd, &mut at_mean, &e, 0.1, 0).unwrap();
            assert!(
                (&at_mean.x.row(0) - &m).iter().all(|t| t.abs() < 1e-15),
                "mean is not a fixed point"
            );
        }
        // A cloud on one side of the mean: the mean moves towards the target mean.
        let dir = rng.random::<f64>() * std::f64::consts::TAU;
        let c = [m[0] + 3.0 * s * dir.cos(), m[1] + 3.0 * s * dir.sin()];
        let x = Array2::from_shape_fn((50, 2), |(_, j)| {
            c[j] + 0.3 * s * rng.sample::<f64, _>(StandardNormal)
        });
        let mut mu = Particles::uniform(x).unwrap();
        let dist = |mu: &Particles| {
            mu.mean()
                .iter()
                .zip(m.iter())
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt()
        };
        let mut svgd = Svgd::new(target.clone(), KernelKind::Gaussian, Bandwidth::Median);
        let d0 = dist(&mu);
        let tau = 0.05 * s * s;
        for k in 0..20 {
            let before = dist(&mu);
            one_step(&mut svgd, &mut mu, &e, tau, k).unwrap();
            assert!(
                dist(&mu) < before,
                "trial {trial}: SVGD mean moved away at step {k}"
            );
        }
        for k in 20..600 {
            one_step(&mut svgd, &mut mu, &e, tau, k).unwrap();
        }
        assert!(
            dist(&mu) < 0.05 * d0,
            "trial {trial}: SVGD mean ended {} from the target mean",
            dist(&mu)
        );
    }
}

/// Langevin on `N(m, S)`: in the long run the particles match the target moments, within the
/// Monte-Carlo error and the `O(tau)` bias of the unadjusted scheme (its stationary law is
/// `N(m, S (I - tau S^{-1} / 2)^{-1})`, used here).
#[test]
fn langevin_matches_gaussian_moments() {
    let m = Array1::from(vec![1.0, -2.0]);
    let s = ndarray::array![[1.0, 0.5], [0.5, 1.0]];
    let target = Arc::new(Gaussian::new(m.clone(), s.clone()).unwrap());
    let mut rng = StdRng::seed_from_u64(81);
    let n = 2000;
    let x0 = Array2::from_shape_fn((n, 2), |(_, j)| {
        [5.0, 5.0][j] + rng.sample::<f64, _>(StandardNormal)
    });
    let mut mu = Particles::uniform(x0).unwrap();
    let samples = Gaussian::new(m.clone(), s.clone())
        .unwrap()
        .sample(100, &mut rng);
    let e = MmdEnergy::new(
        Kernel::gaussian(1.0).unwrap(),
        Particles::uniform(samples).unwrap(),
    )
    .unwrap();
    let tau = 0.02;
    let steps = 500;
    let mut ex = Executor::new(
        FlowParams::new(steps, tau)
            .seed(5)
            .trace_every(steps)
            .check()
            .unwrap(),
    )
    .unwrap();
    let r = ex.run(&mut mu, &e, &mut Langevin::new(target)).unwrap();
    assert!(
        r.final_energy < 0.05 * r.trace[0].energy,
        "{} -> {}",
        r.trace[0].energy,
        r.final_energy
    );
    // Stationary covariance of ULA: S (I - tau P / 2)^{-1}, P = S^{-1}; with S = [[1, .5], [.5, 1]]
    // its eigenvalues are 1.5 and 0.5 along (1, 1) and (1, -1).
    let lam = |l: f64| l / (1.0 - tau / (2.0 * l));
    let (a, b) = (lam(1.5), lam(0.5));
    let cinf = [
        [(a + b) / 2.0, (a - b) / 2.0],
        [(a - b) / 2.0, (a + b) / 2.0],
    ];
    let mean = mu.mean();
    let cov = mu.cov();
    let se = 1.0 / (n as f64).sqrt();
    for i in 0..2 {
        assert!((mean[i] - m[i]).abs() < 5.0 * se * 1.3, "mean {mean:?}");
        for j in 0..2 {
            assert!(
                (cov[[i, j]] - cinf[i][j]).abs() < 5.0 * se * 1.5 * 1.3,
                "cov {cov:?} vs {cinf:?}"
            );
        }
    }
    assert_eq!(
        mu.weights(),
        vec![1.0 / n as f64; n]
            .iter()
            .map(|w| (w.ln()).exp())
            .collect::<Vec<_>>()
    );
}

/// A step that writes a NaN into particle 2 at step 3.
struct Poison;
impl FlowStep for Poison {
    fn name(&self) -> String {
        "poison".into()
    }
    fn step(
        &mut self,
        mu: &mut Particles,
        _e: &dyn Energy,
        ctx: &mut StepContext,
    ) -> Result<StepInfo> {
        if ctx.step == 3 {
            mu.x[[2, 0]] = f64::NAN;
        }
        Ok(StepInfo::default())
    }
}

/// An observer that stops the run once the energy falls below a level.
struct StopBelow(f64);
impl Observer for StopBelow {
    fn observe(&mut self, rec: &TraceRecord, _mu: &Particles) -> Result<Control> {
        Ok(if rec.energy < self.0 {
            Control::Stop(format!("energy below {}", self.0))
        } else {
            Control::Continue
        })
    }
}

#[test]
fn executor_divergence_guard_names_the_step() {
    let (mut mu, e) = problem(91, 5, 5, 2, KernelKind::Gaussian);
    let mut ex = Executor::new(FlowConfig::new(10, 0.1).unwrap()).unwrap();
    match ex.run(&mut mu, &e, &mut Poison) {
        Err(Error::Diverged { step, detail }) => {
            assert_eq!(step, 3);
            assert!(detail.contains("particle 2"), "{detail}");
            let msg = Error::Diverged { step, detail }.to_string();
            assert!(msg.contains("step 3"), "{msg}");
        }
        other => panic!("expected Diverged, got {other:?}"),
    }
}

/// The trace has one record per `trace_every` steps plus the last, with the documented
/// fields: updates = step * updates_per_step, mmd2 = 2 F for the MMD energy, mass 1 for
/// spherical flows, ESS in [1, n], time non-decreasing; the tolerance rule and observers stop
/// the run early with a reason.
#[test]
fn executor_trace_records_and_stopping_rules() {
    let (mu0, e) = problem(92, 12, 20, 2, KernelKind::Gaussian);
    let n = mu0.len() as f64;
    let steps: Vec<Box<dyn FlowStep>> = vec![
        Box::new(Wasserstein::new(1.0).unwrap()),
        Box::new(FisherRao::new(1.0).unwrap()),
        Box::new(Wfr::new(1.0, 1.0).unwrap()),
        Box::new(Ift::new(1.0, 1.0).unwrap()),
        Box::new(MmdProx::new(1.0).unwrap()),
    ];
    for mut st in steps {
        let mut mu = mu0.clone();
        let mut ex =
            Executor::new(FlowParams::new(10, 0.3).trace_every(3).check().unwrap()).unwrap();
        let r = ex.run(&mut mu, &e, &mut st).unwrap();
        let ups = st.updates_per_step();
        let at: Vec<usize> = r.trace.iter().map(|t| t.step).collect();
        assert_eq!(at, vec![0, 3, 6, 9, 10]);
        assert_eq!(r.steps, 10);
        assert_eq!(r.updates, 10 * ups);
        let mut t = 0.0;
        for rec in &r.trace {
            assert_eq!(rec.flow, st.name());
            assert_eq!(rec.updates, rec.step * ups);
            assert!(
                (rec.mmd2.unwrap() - 2.0 * rec.energy).abs() <= 1e-15,
                "mmd2 != 2F"
            );
            assert!(
                (rec.mass - 1.0).abs() <= 1e-12,
                "{}: mass {}",
                rec.flow,
                rec.mass
            );
            assert!(
                rec.ess >= 1.0 - 1e-12 && rec.ess <= n + 1e-9,
                "ess {}",
                rec.ess
            );
            assert!(rec.time_s >= t);
            t = rec.time_s;
        }
        assert_eq!(r.final_energy, r.trace.last().unwrap().energy);
        assert_eq!(r.final_energy, e.value(&mu).unwrap());
        assert!(r.final_energy < r.trace[0].energy, "{}", st.name());
        assert_eq!(r.trace[0].energy, e.value(&mu0).unwrap());
        assert_eq!(r.trace[0].ess, mu0.ess());
    }
    // Tolerance stop: the exact prox with a huge step converges at once.
    let mut mu = mu0.clone();
    let mut ex = Executor::new(FlowParams::new(100, 1e6).tol(1e-6).check().unwrap()).unwrap();
    let r = ex
        .run(&mut mu, &e, &mut MmdProx::new(1.0).unwrap())
        .unwrap();
    assert!(r.steps < 100, "tolerance rule did not stop the run");
    assert!(r.stop_reason.contains("tol"), "{}", r.stop_reason);
    let n_rec = r.trace.len();
    let (a, b) = (r.trace[n_rec - 2].energy, r.trace[n_rec - 1].energy);
    assert!((a - b).abs() <= 1e-6 * a.abs());
    // Observer stop.
    let mut mu = mu0.clone();
    let f0 = e.value(&mu).unwrap();
    let mut ex = Executor::new(FlowConfig::new(1000, 0.3).unwrap())
        .unwrap()
        .observe(StopBelow(0.5 * f0));
    let r = ex
        .run(&mut mu, &e, &mut Ift::new(1.0, 1.0).unwrap())
        .unwrap();
    assert!(r.steps < 1000 && r.final_energy < 0.5 * f0);
    assert!(r.stop_reason.contains("energy below"), "{}", r.stop_reason);
    // Trace CSV has the documented header and one row per record.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.csv");
    robustflow::flow::driver::write_trace_csv(&path, &r.trace).unwrap();
    let mut rdr = csv::Reader::from_path(&path).unwrap();
    let header: Vec<String> = rdr
        .headers()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        header,
        vec!["flow", "step", "updates", "energy", "mmd2", "mass", "ess", "time_s"]
    );
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), r.trace.len());
    for (row, rec) in rows.iter().zip(&r.trace) {
        assert_eq!(row[1].parse::<usize>().unwrap(), rec.step);
        assert_eq!(row[3].parse::<f64>().unwrap(), rec.energy);
    }
}

/// Unbalanced FR changes the mass (positive measures) and its ESS stays in [1, n].
#[test]
fn unbalanced_fisher_rao_changes_mass() {
    let (mu0, e) = problem(93, 6, 6, 2, KernelKind::Gaussian);
    let mut mu = mu0.clone();
    let st = FisherRao::unbalanced(1.0).unwrap();
    assert!(!st.keeps_simplex());
    let mut ex = Executor::new(FlowConfig::new(50, 0.5).unwrap()).unwrap();
    let r = ex.run(&mut mu, &e, &mut st.clone()).unwrap();
    assert!((mu.mass() - 1.0).abs() > 1e-6);
    assert!(r.final_energy < r.trace[0].energy);
    for rec in &r.trace {
        assert!(rec.ess >= 1.0 - 1e-12 && rec.ess <= 6.0 + 1e-12);
    }
    assert_eq!(mu.x, mu0.x);
}

/// Records what it saw and whether it was finished.
struct Spy {
    seen: Arc<std::sync::Mutex<Vec<usize>>>,
    finished: Arc<std::sync::atomic::AtomicBool>,
}
impl Observer for Spy {
    fn observe(&mut self, rec: &TraceRecord, _mu: &Particles) -> Result<Control> {
        self.seen.lock().unwrap().push(rec.step);
        Ok(Control::Continue)
    }
    fn finish(&mut self) {
        self.finished
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Every observer sees every record, including the one at which another observer stops the
/// run, and observers are finished (progress bars cleared) also when the run fails.
#[test]
fn observers_see_every_record_and_are_finished_on_errors() {
    let (mu0, e) = problem(94, 8, 8, 2, KernelKind::Gaussian);
    let f0 = e.value(&mu0).unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spy = Spy {
        seen: seen.clone(),
        finished: finished.clone(),
    };
    let mut mu = mu0.clone();
    let mut ex = Executor::new(FlowConfig::new(1000, 0.3).unwrap())
        .unwrap()
        .observe(StopBelow(0.5 * f0))
        .observe(spy);
    let r = ex
        .run(&mut mu, &e, &mut Ift::new(1.0, 1.0).unwrap())
        .unwrap();
    let steps: Vec<usize> = r.trace.iter().map(|t| t.step).collect();
    assert_eq!(
        *seen.lock().unwrap(),
        steps,
        "the second observer missed records"
    );
    assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
    // A failing run still finishes its observers.
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spy = Spy {
        seen: Arc::new(std::sync::Mutex::new(Vec::new())),
        finished: finished.clone(),
    };
    let mut mu = mu0.clone();
    let mut ex = Executor::new(FlowConfig::new(10, 0.1).unwrap())
        .unwrap()
        .observe(spy);
    assert!(ex.run(&mut mu, &e, &mut Poison).is_err());
    assert!(
        finished.load(std::sync::atomic::Ordering::SeqCst),
        "observer not finished after an error"
    );
}

/// The exact and affine MMD-prox solvers need an energy quadratic in the weights: other
/// energies get an error naming the alternative; the projected-gradient variant works for
/// any energy (here the inclusive KL, whose minimiser on the atoms is `p`).
#[test]
fn mmd_prox_on_a_non_quadratic_energy() {
    let mut rng = StdRng::seed_from_u64(95);
    let x = rand_matrix(&mut rng, 5, 1, 1.0, 0.0);
    let p = rand_simplex(&mut rng, 5);
    let e = InclusiveKl { p: p.clone() };
    for solver in [ProxSolver::Exact(Default::default()), ProxSolver::Affine] {
        let mut mu = Particles::uniform(x.clone()).unwrap();
        let mut st = MmdProx::new(1.0).unwrap().with_solver(solver).unwrap();
        match one_step(&mut st, &mut mu, &e, 0.1, 0) {
            Err(Error::Other(msg)) => assert!(
                msg.contains("not quadratic") && msg.contains("projected-gradient"),
                "{msg}"
            ),
            other => panic!("expected an error, got {other:?}"),
        }
    }
    let mut mu = Particles::uniform(x).unwrap();
    let mut st = MmdProx::new(1.0)
        .unwrap()
        .with_solver(ProxSolver::ProjectedGradient)
        .unwrap();
    let mut ex = Executor::new(FlowConfig::new(400, 0.01).unwrap()).unwrap();
    let r = ex.run(&mut mu, &e, &mut st).unwrap();
    assert!(
        r.final_energy < 1e-6 * r.trace[0].energy.max(1e-300) + 1e-12,
        "{}",
        r.final_energy
    );
    for (a, b) in mu.weights().iter().zip(&p) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

/// Mass-weighted velocity (the IFT reference code's form): zero-mass particles do not move
/// (papers.md section 9 item 3); the others move as `-tau alpha n w_i grad f(x_i)`.
#[test]
fn mass_weighted_velocity_leaves_empty_particles_in_place() {
    let (mu0, e) = problem(96, 6, 6, 2, KernelKind::Gaussian);
    let mut w = mu0.weights();
    w[2] = 0.0;
    w[4] = 0.0;
    let mu0 = Particles::with_weights(mu0.x.clone(), &w).unwrap();
    let grad = e.first_variation(&mu0, true).unwrap().grad.unwrap();
    let mut mu = mu0.clone();
    let (tau, alpha) = (0.3, 1.5);
    let mut st = Wasserstein::new(alpha)
        .unwrap()
        .with_velocity(Velocity::MassWeighted);
    one_step(&mut st, &mut mu, &e, tau, 0).unwrap();
    for i in 0..6 {
        for a in 0..2 {
            let expect = mu0.x[[i, a]] - tau * alpha * 6.0 * w[i] * grad[i * 2 + a];
            assert!((mu.x[[i, a]] - expect).abs() < 1e-15);
        }
    }
    assert_eq!(mu.x.row(2), mu0.x.row(2));
    assert_eq!(mu.x.row(4), mu0.x.row(4));
    assert!(
        grad[4] != 0.0 || grad[5] != 0.0,
        "test needs a non-zero force on the empty particle"
    );
}

/// Unbalanced FR: `dmu/dt = -beta mu g`, so the energy drops at the rate
/// `beta sum_i w_i g_i^2` (no centring) and positions stay.
#[test]
fn unbalanced_fisher_rao_dissipation_rate() {
    for seed in 0..10 {
        let (mu0, e) = problem(97 + seed, 5, 7, 2, KINDS[seed as usize % 3]);
        let g = e.first_variation(&mu0, false).unwrap().g;
        let w = mu0.weights();
        let rate: f64 = w.iter().zip(&g).map(|(a, b)| a * b * b).sum();
        let f0 = e.value(&mu0).unwrap();
        let mut mu = mu0.clone();
        let (tau, beta) = (1e-6, 0.8);
        one_step(
            &mut FisherRao::unbalanced(beta).unwrap(),
            &mut mu,
            &e,
            tau,
            0,
        )
        .unwrap();
        let observed = (f0 - e.value(&mu).unwrap()) / tau;
        assert!(
            (observed - beta * rate).abs() <= 1e-3 * beta * rate + 1e-10,
            "{observed} vs {}",
            beta * rate
        );
        assert_eq!(mu.x, mu0.x);
    }
}

/// Kernel FR on positive measures (unbalanced): it does not claim to keep the simplex, the
/// raw force is regressed, and the energy drops at the rate `beta <g, g_lambda>_{L2(mu)}`.
#[test]
fn unbalanced_kernel_fr_descends() {
    for seed in 0..10 {
        let (mu0, e) = problem(120 + seed, 6, 5, 2, KINDS[seed as usize % 3]);
        let mut st = KernelFr {
            kernel: e.kernel,
            lambda: 0.1,
            fr: FisherRao::unbalanced(1.0).unwrap(),
        };
        assert!(!st.keeps_simplex());
        assert!(KernelFr::new(e.kernel, 0.1, 1.0).unwrap().keeps_simplex());
        let g = e.first_variation(&mu0, false).unwrap().g;
        let gl = st.smoothed_force(&mu0, &g).unwrap();
        let rate: f64 = mu0
            .weights()
            .iter()
            .zip(&g)
            .zip(&gl)
            .map(|((w, a), b)| w * a * b)
            .sum();
        assert!(rate >= 0.0);
        let f0 = e.value(&mu0).unwrap();
        let mut mu = mu0.clone();
        let tau = 1e-6;
        one_step(&mut st, &mut mu, &e, tau, 0).unwrap();
        let observed = (f0 - e.value(&mu).unwrap()) / tau;
        assert!(
            (observed - rate).abs() <= 1e-3 * rate + 1e-10,
            "{observed} vs {rate}"
        );
    }
}

// ---- the geometry registry and the step diagnostics ----

/// One name table: every canonical name and alias parses (any case) to its geometry,
/// `Display` and serde give the canonical name back, and unknown names are errors naming
/// the parameter.
#[test]
fn registry_name_table_round_trips() {
    use robustflow::flow::Geometry;
    let mut seen = Vec::new();
    for (g, name, aliases) in Geometry::TABLE {
        assert!(!seen.contains(&g), "{g:?} has two rows");
        seen.push(g);
        assert_eq!(name.parse::<Geometry>().unwrap(), g);
        assert_eq!(name.to_ascii_uppercase().parse::<Geometry>().unwrap(), g);
        assert_eq!(g.to_string(), name);
        assert_eq!(Geometry::from_canonical(name), Some(g));
        for a in aliases {
            assert_eq!(a.parse::<Geometry>().unwrap(), g, "alias {a}");
            assert_eq!(
                Geometry::from_canonical(a),
                None,
                "alias {a} is not canonical"
            );
        }
        let js = serde_json::to_string(&g).unwrap();
        assert_eq!(js, format!("\"{name}\""));
        assert_eq!(serde_json::from_str::<Geometry>(&js).unwrap(), g);
    }
    for bad in ["", "ifft", "mmd_ift"] {
        match bad.parse::<Geometry>() {
            Err(Error::InvalidParameter { name, .. }) => assert_eq!(name, "flow"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert!(Geometry::EXPERIMENT.iter().all(|g| seen.contains(g)));
}

/// The registry builds the same steps as constructing them by hand (the factories it
/// replaced): five seeded steps of each give bit-identical particles, the steps' names are
/// the registry's (the W step on its own is `w`), and IFT / WFR count two updates.
#[test]
fn registry_builds_the_hand_built_steps() {
    use robustflow::flow::{Geometry, GeometryParams, QpOptions};
    let gauss = Gaussian::new(Array1::zeros(2), Array2::eye(2)).unwrap();
    let density: Arc<dyn LogDensity> = Arc::new(gauss);
    let (mu0, e) = problem(7, 12, 15, 2, KernelKind::Gaussian);
    let kernel = Kernel::new(KernelKind::Gaussian, 1.3).unwrap();
    let noise = NoiseSchedule {
        beta0: 0.3,
        half_life: Some(2),
        off_after: Some(4),
    };
    let qp = QpOptions {
        tol: 1e-8,
        max_iter: 50,
        power_iters: 30,
        ..QpOptions::default()
    };
    let p = GeometryParams {
        alpha: 0.7,
        velocity: Velocity::MassWeighted,
        beta: 1.5,
        beta_fr: 2.0,
        beta_pg: 3.0,
        particles: mu0.len(),
        lambda: 1e-2,
        kernel: Some(kernel),
        noise,
        qp,
        svgd_kernel: KernelKind::Gaussian,
        svgd_step: Some(0.05),
        langevin_step: Some(0.01),
        density: Some(density.clone()),
    };
    let w = || {
        Wasserstein::new(0.7)
            .unwrap()
            .with_velocity(Velocity::MassWeighted)
    };
    let exact = || {
        MmdProx::new(1.5)
            .unwrap()
            .with_solver(ProxSolver::Exact(qp))
            .unwrap()
    };
    let by_hand: Vec<(Geometry, Box<dyn FlowStep>, &str, usize)> = vec![
        (
            Geometry::Mmd,
            Box::new(Wasserstein::new(0.7).unwrap()),
            "w",
            1,
        ),
        (
            Geometry::MmdNoise,
            Box::new(Wasserstein::new(0.7).unwrap().with_noise(noise).unwrap()),
            "w-noise",
            1,
        ),
        (
            Geometry::W,
            Box::new(Wasserstein::new(0.7).unwrap()),
            "w",
            1,
        ),
        (
            Geometry::Fr,
            Box::new(FisherRao::new(2.0).unwrap()),
            "fr",
            1,
        ),
        (
            Geometry::Wfr,
            Box::new(Wfr {
                w: w(),
                fr: FisherRao::new(2.0).unwrap(),
            }),
            "wfr",
            2,
        ),
        (Geometry::MmdProx, Box::new(exact()), "mmd-prox", 1),
        (
            Geometry::Ift,
            Box::new(Ift {
                w: w(),
                prox: exact(),
            }),
            "ift",
            2,
        ),
        (
            Geometry::IftPg,
            Box::new(Ift {
                w: w(),
                prox: MmdProx::new(3.0 / 12.0)
                    .unwrap()
                    .with_solver(ProxSolver::ProjectedGradient)
                    .unwrap(),
            }),
            "ift-pg",
            2,
        ),
        (
            Geometry::Kfr,
            Box::new(KernelFr::new(kernel, 1e-2, 2.0).unwrap()),
            "kfr",
            1,
        ),
        (
            Geometry::Svgd,
            Box::new(
                Svgd::new(density.clone(), KernelKind::Gaussian, Bandwidth::Median)
                    .with_step_size(0.05),
            ),
            "svgd",
            1,
        ),
        (
            Geometry::Langevin,
            Box::new(Langevin::new(density.clone()).with_step_size(0.01)),
            "langevin",
            1,
        ),
    ];
    assert_eq!(by_hand.len(), Geometry::TABLE.len());
    for (g, mut hand, name, ups) in by_hand {
        let mut built = g.build(&p).unwrap();
        assert_eq!(built.name(), name, "{g}");
        assert_eq!(built.updates_per_step(), ups, "{g}");
        let run = |s: &mut dyn FlowStep| {
            let mut mu = mu0.clone();
            let cfg = FlowConfig::new(5, 0.2).unwrap().seed(3);
            Executor::new(cfg).unwrap().run(&mut mu, &e, s).unwrap();
            mu
        };
        let a = run(built.as_mut());
        let b = run(hand.as_mut());
        assert_eq!(a.x_slice(), b.x_slice(), "{g}: positions");
        assert_eq!(a.weights(), b.weights(), "{g}: weights");
    }
    // the density steps need a density, and the error names the flag
    let no_density = GeometryParams {
        density: None,
        ..p.clone()
    };
    for g in [Geometry::Svgd, Geometry::Langevin] {
        assert!(g.needs_density());
        match g.build(&no_density) {
            Err(Error::InvalidParameter { name, .. }) => assert_eq!(name, "flow"),
            Err(other) => panic!("{g}: {other:?}"),
            Ok(_) => panic!("{g}: built without a density"),
        }
    }
    // bad weights are errors naming the parameter
    let bad = GeometryParams {
        alpha: -1.0,
        ..p.clone()
    };
    match Geometry::Ift.build(&bad) {
        Err(Error::InvalidParameter { name, .. }) => assert_eq!(name, "alpha"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("built with alpha < 0"),
    }
}

/// The exact MMD-prox and IFT steps hand their QP report to the driver, which passes it to
/// every observer at every iteration: the report is certified (Frank-Wolfe gap within the
/// tolerance) and its support is the number of non-zero weights the step left; steps
/// without a QP report none.
#[test]
fn steps_return_their_diagnostics_to_the_observers() {
    use robustflow::flow::{Geometry, GeometryParams, QpOptions, StepLog};
    use std::sync::Mutex;
    struct Shared(Arc<Mutex<StepLog>>);
    impl Observer for Shared {
        fn observe(&mut self, r: &TraceRecord, mu: &Particles) -> Result<Control> {
            self.0.lock().unwrap().observe(r, mu)
        }
        fn step_info(&mut self, k: usize, info: &robustflow::flow::StepInfo) {
            self.0.lock().unwrap().step_info(k, info)
        }
    }
    let (mu0, e) = problem(11, 20, 25, 2, KernelKind::Gaussian);
    let steps = 6;
    for g in [
        Geometry::MmdProx,
        Geometry::Ift,
        Geometry::Wfr,
        Geometry::IftPg,
    ] {
        let p = GeometryParams {
            beta: 2.0,
            particles: mu0.len(),
            qp: QpOptions {
                tol: 1e-9,
                ..QpOptions::default()
            },
            ..GeometryParams::default()
        };
        let mut step = g.build(&p).unwrap();
        // the last step's report against the weights it left: run steps - 1, then one more
        let log = Arc::new(Mutex::new(StepLog::default()));
        let mut mu = mu0.clone();
        let cfg = FlowConfig::new(steps, 0.3).unwrap();
        Executor::new(cfg)
            .unwrap()
            .observe(Shared(log.clone()))
            .run(&mut mu, &e, step.as_mut())
            .unwrap();
        let log = log.lock().unwrap();
        assert_eq!(
            log.steps.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            (0..steps).collect::<Vec<_>>(),
            "{g}: one report per iteration, in order"
        );
        let exact = g.needs_exact_prox();
        for (k, info) in &log.steps {
            assert_eq!(info.qp.is_some(), exact, "{g} step {k}");
            if let Some(q) = info.qp {
                assert!(q.fw_gap <= 1e-7, "{g} step {k}: gap {}", q.fw_gap);
                assert!(q.support >= 1 && q.support <= mu0.len());
            }
        }
        if exact {
            let last = log.steps.last().unwrap().1.qp.unwrap();
            let nonzero = mu.weights().iter().filter(|w| **w > 0.0).count();
            assert_eq!(last.support, nonzero, "{g}: support of the last step");
        }
    }
}
