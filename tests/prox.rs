//! The MMD-geometry weight step (docs/DESIGN.md §3, facts 3 and 7; research/papers.md
//! section 9, items 1-3) and the linear algebra behind it.
//!
//! - Affine prox (sum-to-one only) on fixed atoms: the excess energy contracts by exactly
//!   `1/(1 + tau beta)^2`, with `F_min` from the affine-constrained minimiser computed here
//!   by an independent dense KKT solve.
//! - Exact simplex QP (FISTA): the solution satisfies the KKT conditions, matches a
//!   brute-force active-set enumeration, never raises the prox objective nor the energy,
//!   and is the same with the matrix-free Gram operator.
//! - Target on the atoms: `MMD^2_k = (1 + tau beta)^{-2k} MMD^2_0`, so the discrete IFT
//!   weight-step bound `MMD^2_k <= (1 + tau beta)^{-2k} MMD^2_0` holds (with equality).
//! - `project_simplex`, `power_iteration`, `solve`, `cholesky`, `cg_solve`, `logsumexp`
//!   against their definitions.

use ndarray::Array2;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use robustflow::energy::{Energy, MmdEnergy, WeightQuadratic};
use robustflow::flow::mmd_prox::{solve_prox_affine, solve_prox_qp};
use robustflow::flow::{
    Executor, FlowConfig, FlowStep, MmdProx, ProxSolver, QpMethod, QpOptions, StepContext,
};
use robustflow::kernel::{gram, kernel_sums, GramOp, Kernel, KernelKind};
use robustflow::linalg::{
    cg_solve, cholesky, logsumexp, power_iteration, project_simplex, solve, LinOp,
};
use robustflow::measure::Particles;
use robustflow::Error;
use std::sync::Arc;

const KINDS: [KernelKind; 3] = [KernelKind::Gaussian, KernelKind::Imq, KernelKind::Laplace];

fn rand_simplex(rng: &mut StdRng, n: usize) -> Vec<f64> {
    let w: Vec<f64> = (0..n).map(|_| 0.05 + rng.random::<f64>()).collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|a| a / s).collect()
}

/// Points on a jittered grid (well separated, so the Gram matrix is well conditioned).
fn spread_points(rng: &mut StdRng, n: usize, d: usize) -> Array2<f64> {
    Array2::from_shape_fn((n, d), |(i, j)| {
        let c = match (d, j) {
            (1, _) => i as f64,
            (_, 0) => (i % 3) as f64,
            _ => (i / 3) as f64 + j as f64 - 1.0,
        };
        1.5 * c + 0.4 * (rng.random::<f64>() - 0.5)
    })
}

/// A fixed-atom MMD problem with everything dense: `K_xx`, `b = K_xy v`, `c = 1/2 v'K_yy v`.
struct Dense {
    mu: Particles,
    energy: MmdEnergy,
    k: Array2<f64>,
    b: Vec<f64>,
    c: f64,
}

impl Dense {
    fn new(seed: u64, n: usize, m: usize, d: usize, kind: KernelKind) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let h = 0.8 + 0.6 * rng.random::<f64>();
        let x = spread_points(&mut rng, n, d);
        let y = Array2::from_shape_fn((m, d), |_| 3.0 * rng.random::<f64>() - 0.5);
        let w = rand_simplex(&mut rng, n);
        let v = rand_simplex(&mut rng, m);
        let kern = Kernel::new(kind, h).unwrap();
        Self::from_parts(kern, x, &w, y, &v)
    }
    fn from_parts(kern: Kernel, x: Array2<f64>, w: &[f64], y: Array2<f64>, v: &[f64]) -> Self {
        let d = x.ncols();
        let mu = Particles::with_weights(x, w).unwrap();
        let target = Particles::with_weights(y, v).unwrap();
        let k = gram(&kern, mu.x_slice(), mu.x_slice(), d).unwrap();
        let b = kernel_sums(&kern, mu.x_slice(), target.x_slice(), v, d).unwrap();
        let kyy = gram(&kern, target.x_slice(), target.x_slice(), d).unwrap();
        let c = 0.5
            * v.iter()
                .enumerate()
                .map(|(i, a)| {
                    a * v
                        .iter()
                        .enumerate()
                        .map(|(j, b)| kyy[[i, j]] * b)
                        .sum::<f64>()
                })
                .sum::<f64>();
        let energy = MmdEnergy::new(kern, target).unwrap();
        Dense {
            mu,
            energy,
            k,
            b,
            c,
        }
    }
    fn n(&self) -> usize {
        self.b.len()
    }
    fn kv(&self, w: &[f64]) -> Vec<f64> {
        (0..self.n())
            .map(|i| (0..self.n()).map(|j| self.k[[i, j]] * w[j]).sum())
            .collect()
    }
    /// `F(w) = 1/2 w'Kw - b'w + c`.
    fn f(&self, w: &[f64]) -> f64 {
        0.5 * dot(w, &self.kv(w)) - dot(&self.b, w) + self.c
    }
    /// `1/2 (u - v)' K (u - v)`.
    fn half_knorm2(&self, u: &[f64], v: &[f64]) -> f64 {
        let diff: Vec<f64> = u.iter().zip(v).map(|(a, b)| a - b).collect();
        0.5 * dot(&diff, &self.kv(&diff))
    }
    /// The prox objective `F(w) + 1/(2 eta) (w - w0)'K(w - w0)`.
    fn prox_obj(&self, w: &[f64], w0: &[f64], eta: f64) -> f64 {
        self.f(w) + self.half_knorm2(w, w0) / eta
    }
    /// Its gradient `K w - b + K (w - w0) / eta`.
    fn prox_grad(&self, w: &[f64], w0: &[f64], eta: f64) -> Vec<f64> {
        let kw = self.kv(w);
        let kw0 = self.kv(w0);
        (0..self.n())
            .map(|i| kw[i] - self.b[i] + (kw[i] - kw0[i]) / eta)
            .collect()
    }
    /// The minimiser of `F` over `sum w = 1` (weights may be negative), by the dense KKT
    /// system `[K 1; 1' 0] [w; nu] = [b; 1]`.
    fn affine_min(&self) -> Vec<f64> {
        let n = self.n();
        let mut a = Array2::<f64>::zeros((n + 1, n + 1));
        let mut rhs = self.b.clone();
        rhs.push(1.0);
        for i in 0..n {
            for j in 0..n {
                a[[i, j]] = self.k[[i, j]];
            }
            a[[i, n]] = 1.0;
            a[[n, i]] = 1.0;
        }
        solve(&a, &rhs).unwrap()[..n].to_vec()
    }
    /// The quadratic as the energy exposes it.
    fn quadratic(&self) -> WeightQuadratic {
        self.energy.weight_quadratic(&self.mu).unwrap().unwrap()
    }
    /// Exact simplex QP by enumerating the supports (n <= 8): for each support solve the
    /// equality-constrained KKT system, keep the feasible points satisfying the sign
    /// conditions off the support, return the best.
    fn brute_force_prox(&self, w0: &[f64], eta: f64) -> Vec<f64> {
        let n = self.n();
        let s = 1.0 + 1.0 / eta;
        let kw0 = self.kv(w0);
        let lin: Vec<f64> = (0..n).map(|i| self.b[i] + kw0[i] / eta).collect();
        let mut best: Option<(f64, Vec<f64>)> = None;
        for mask in 1u32..(1 << n) {
            let idx: Vec<usize> = (0..n).filter(|i| mask >> i & 1 == 1).collect();
            let p = idx.len();
            let mut a = Array2::<f64>::zeros((p + 1, p + 1));
            let mut rhs = vec![0.0; p + 1];
            for (r, &i) in idx.iter().enumerate() {
                for (c, &j) in idx.iter().enumerate() {
                    a[[r, c]] = s * self.k[[i, j]];
                }
                a[[r, p]] = 1.0;
                a[[p, r]] = 1.0;
                rhs[r] = lin[i];
            }
            rhs[p] = 1.0;
            let Ok(sol) = solve(&a, &rhs) else { continue };
            if sol[..p].iter().any(|v| *v < -1e-12) {
                continue;
            }
            let mut w = vec![0.0; n];
            for (r, &i) in idx.iter().enumerate() {
                w[i] = sol[r].max(0.0);
            }
            let obj = self.prox_obj(&w, w0, eta);
            if best.as_ref().is_none_or(|(o, _)| obj < *o) {
                best = Some((obj, w));
            }
        }
        best.unwrap().1
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn step_once(
    st: &mut dyn FlowStep,
    mu: &mut Particles,
    e: &dyn Energy,
    tau: f64,
) -> robustflow::Result<()> {
    let mut rng = StdRng::seed_from_u64(0);
    let mut ctx = StepContext {
        step: 0,
        tau,
        rng: &mut rng,
    };
    st.step(mu, e, &mut ctx).map(|_| ())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(16), .. ProptestConfig::default() })]

    /// Fact 3: with only `sum w = 1`, `F(w_new) - F_min = (F(w_old) - F_min) / (1 + eta)^2`,
    /// `F_min` from the independently computed affine minimiser; the weights move on the
    /// segment towards it: `w_new = (w0 + eta w*) / (1 + eta)`.
    #[test]
    fn prop_affine_prox_contracts_excess_energy_exactly(seed in 0u64..1_000_000, n in 2usize..8, m in 1usize..8, d in 1usize..3, kind in 0usize..3, log_eta in -2.0f64..1.5) {
        let p = Dense::new(seed, n, m, d, KINDS[kind]);
        let eta = 10f64.powf(log_eta);
        let w0 = p.mu.weights();
        let wstar = p.affine_min();
        let q = p.quadratic();
        let w1 = solve_prox_affine(&q, &w0, eta).unwrap();
        prop_assert!((w1.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        for i in 0..n {
            let expect = (w0[i] + eta * wstar[i]) / (1.0 + eta);
            prop_assert!((w1[i] - expect).abs() <= 1e-8 * (1.0 + wstar[i].abs()), "w1[{i}] = {} vs {expect}", w1[i]);
        }
        // The excess over F_min is 1/2 ||w - w*||_K^2 on the affine set.
        let ex0 = p.half_knorm2(&w0, &wstar);
        let ex1 = p.half_knorm2(&w1, &wstar);
        let ratio = ex1 / ex0;
        let expect = 1.0 / (1.0 + eta).powi(2);
        prop_assert!((ratio - expect).abs() <= 1e-6 * expect, "ratio {ratio} vs {expect}");
        // The same with energies: F(w) - F(w*).
        let fmin = p.f(&wstar);
        let r2 = (p.f(&w1) - fmin) / (p.f(&w0) - fmin);
        prop_assume!(p.f(&w0) - fmin > 1e-6);
        prop_assert!((r2 - expect).abs() <= 1e-5 * expect, "energy ratio {r2} vs {expect}");
    }

    /// The exact simplex QP: KKT conditions (`nu = -min_i G_i`: `G_i + nu >= 0` everywhere,
    /// `= 0` on the support), equal to the brute-force active-set solution, prox objective not
    /// above its value at `w0`, energy not raised, simplex kept.
    #[test]
    fn prop_exact_prox_is_the_qp_solution(seed in 0u64..1_000_000, n in 2usize..8, m in 1usize..8, d in 1usize..3, kind in 0usize..3, log_eta in -2.0f64..2.0) {
        let p = Dense::new(seed, n, m, d, KINDS[kind]);
        let eta = 10f64.powf(log_eta);
        let w0 = p.mu.weights();
        let q = p.quadratic();
        let opts = QpOptions { tol: 1e-11, max_iter: 100_000, power_iters: 100, ..QpOptions::default() };
        let (w, rep) = solve_prox_qp(&q, &w0, eta, &opts);
        prop_assert!(rep.kkt_residual <= opts.tol, "not converged: residual {} after {} iterations", rep.kkt_residual, rep.iterations);
        prop_assert!((w.iter().sum::<f64>() - 1.0).abs() <= 1e-12);
        prop_assert!(w.iter().all(|a| *a >= 0.0));
        let g = p.prox_grad(&w, &w0, eta);
        let gmin = g.iter().cloned().fold(f64::INFINITY, f64::min);
        let scale = 1.0 + g.iter().fold(0.0f64, |a, b| a.max(b.abs()));
        for i in 0..n {
            prop_assert!(g[i] - gmin >= -1e-12);
            if w[i] > 1e-7 {
                prop_assert!(g[i] - gmin <= 1e-7 * scale, "complementarity: w[{i}] = {} but G_i + nu = {}", w[i], g[i] - gmin);
            }
        }
        let wb = p.brute_force_prox(&w0, eta);
        let (ob, oq) = (p.prox_obj(&wb, &w0, eta), p.prox_obj(&w, &w0, eta));
        prop_assert!(oq <= ob + 1e-10 * (1.0 + ob.abs()), "FISTA objective {oq} > brute force {ob}");
        prop_assert!((rep.objective - oq).abs() <= 1e-10 * (1.0 + oq.abs()), "reported objective {} vs {oq}", rep.objective);
        prop_assert!(oq <= p.f(&w0) + 1e-14);
        prop_assert!(p.f(&w) <= p.f(&w0) + 1e-14);
        // The energy exposes the same quadratic as the MMD energy's value.
        let mut mu = p.mu.clone();
        mu.set_weights(&w).unwrap();
        prop_assert!((p.energy.value(&mu).unwrap() - q.value(&w)).abs() <= 1e-13);
        prop_assert!((q.value(&w) - p.f(&w)).abs() <= 1e-13);
    }
}

/// The default solver settings reach the KKT tolerance on typical small problems, and the
/// matrix-free Gram operator gives the same weights as the dense one.
#[test]
fn default_qp_converges_and_matrix_free_matches_dense() {
    for (s, kind) in KINDS.iter().enumerate() {
        for eta in [0.1, 1.0, 10.0] {
            let p = Dense::new(100 + s as u64, 7, 9, 2, *kind);
            let w0 = p.mu.weights();
            let q = p.quadratic();
            let opts = QpOptions::default();
            let (w, rep) = solve_prox_qp(&q, &w0, eta, &opts);
            assert!(
                rep.kkt_residual <= opts.tol,
                "{kind} eta={eta}: residual {} after {} iterations",
                rep.kkt_residual,
                rep.iterations
            );
            let gop: Arc<dyn LinOp + Send> =
                Arc::new(GramOp::streamed(&p.energy.kernel, p.mu.x_slice(), 2));
            let qs = WeightQuadratic {
                h: gop.clone(),
                h_scale: 1.0,
                b: q.b.clone(),
                c: q.c,
                metric: gop,
            };
            let (ws, _) = solve_prox_qp(&qs, &w0, eta, &opts);
            for (a, b) in w.iter().zip(&ws) {
                assert!(
                    (a - b).abs() <= 1e-8,
                    "{kind}: dense {a} vs matrix-free {b}"
                );
            }
            // FISTA's Lipschitz constant bounds the Hessian (1 + 1/eta) K of the prox
            // objective, and FISTA and the active set agree.
            let fo = QpOptions {
                method: QpMethod::Fista,
                tol: 1e-11,
                max_iter: 100_000,
                ..QpOptions::default()
            };
            let (wf, rf) = solve_prox_qp(&q, &w0, eta, &fo);
            assert!(rf.used_fista && !rep.used_fista);
            let lmax = jacobi_max_eig(&p.k) * (1.0 + 1.0 / eta);
            assert!(
                rf.lipschitz >= lmax * (1.0 - 1e-9),
                "L = {} < lambda_max = {lmax}",
                rf.lipschitz
            );
            let (oa, of) = (p.prox_obj(&w, &w0, eta), p.prox_obj(&wf, &w0, eta));
            assert!(
                (oa - of).abs() <= 1e-10 * (1.0 + oa.abs()),
                "{kind} eta={eta}: active set {oa} vs FISTA {of}"
            );
        }
    }
}

/// Through the step: the `Affine` solver contracts the excess energy as in fact 3 when the
/// new weights stay non-negative, and reports an error (not a panic) when they would not.
#[test]
fn affine_step_contracts_and_reports_negative_weights() {
    let mut found_negative = false;
    for seed in 0..20 {
        let p = Dense::new(200 + seed, 6, 4, 2, KernelKind::Gaussian);
        let w0 = p.mu.weights();
        let wstar = p.affine_min();
        // Largest eta that keeps (w0 + eta w*) / (1 + eta) >= 0, halved, capped at 2.
        let mut eta: f64 = 2.0;
        for i in 0..6 {
            if wstar[i] < 0.0 {
                eta = eta.min(0.5 * w0[i] / -wstar[i]);
            }
        }
        let fmin = p.f(&wstar);
        let mut mu = p.mu.clone();
        let f0 = p.energy.value(&mu).unwrap();
        let mut st = MmdProx::new(1.0)
            .unwrap()
            .with_solver(ProxSolver::Affine)
            .unwrap();
        step_once(&mut st, &mut mu, &p.energy, eta).unwrap();
        let f1 = p.energy.value(&mu).unwrap();
        let ratio = (f1 - fmin) / (f0 - fmin);
        assert!(
            (ratio - 1.0 / (1.0 + eta).powi(2)).abs() <= 1e-6,
            "seed {seed}: ratio {ratio}, eta {eta}"
        );
        if wstar.iter().any(|a| *a < -1e-3) {
            found_negative = true;
            let mut mu = p.mu.clone();
            match step_once(&mut st, &mut mu, &p.energy, 1e6) {
                Err(Error::Other(msg)) => assert!(msg.contains("negative weight"), "{msg}"),
                other => panic!("expected an error for negative weights, got {other:?}"),
            }
            assert_eq!(mu, p.mu, "a failed step must not change the particles");
        }
    }
    assert!(
        found_negative,
        "no test case with a negative affine minimiser"
    );
}

/// papers.md section 9 item 2: when the target lies on the atoms (equal weights on a subset of
/// them, so `F_min = 0` inside the simplex), the exact simplex weight step gives
/// `MMD^2_k = (1 + tau beta)^{-2k} MMD^2_0` (so the bound `<=` holds), for several `tau beta`.
#[test]
fn weight_step_contraction_with_target_on_atoms() {
    let mut rng = StdRng::seed_from_u64(300);
    for kind in KINDS {
        for &(tau, beta) in &[(0.5, 1.0), (0.1, 3.0), (2.0, 1.0)] {
            let n = 8;
            let x = spread_points(&mut rng, n, 2);
            let subset = [1usize, 4, 6];
            let y = Array2::from_shape_fn((3, 2), |(i, j)| x[[subset[i], j]]);
            let w0 = rand_simplex(&mut rng, n);
            let p = Dense::from_parts(Kernel::new(kind, 1.0).unwrap(), x, &w0, y, &[1.0 / 3.0; 3]);
            let k = 6;
            let mut ex = Executor::new(FlowConfig::new(k, tau).unwrap()).unwrap();
            // Solved tightly, the contraction is an equality; with the default solver
            // settings (KKT residual 1e-9) it holds up to the solver's accuracy.
            let tight = QpOptions {
                tol: 1e-13,
                max_iter: 100_000,
                power_iters: 100,
                ..QpOptions::default()
            };
            for (opts, abs_tol) in [(tight, 1e-15), (QpOptions::default(), 1e-10)] {
                let mut mu = p.mu.clone();
                let mut st = MmdProx::new(beta)
                    .unwrap()
                    .with_solver(ProxSolver::Exact(opts))
                    .unwrap();
                let r = ex.run(&mut mu, &p.energy, &mut st).unwrap();
                let m0 = r.trace[0].mmd2.unwrap();
                for rec in &r.trace {
                    let bound = (1.0 + tau * beta).powi(-2 * rec.step as i32) * m0;
                    let got = rec.mmd2.unwrap();
                    assert!(
                        got <= bound * (1.0 + 1e-6) + abs_tol,
                        "{kind} step {}: {got} > {bound}",
                        rec.step
                    );
                    assert!(
                        got >= bound * (1.0 - 1e-6) - abs_tol,
                        "{kind} step {}: {got} well below {bound} (should be equal)",
                        rec.step
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Linear algebra.

/// Largest eigenvalue of a symmetric matrix by cyclic Jacobi rotations.
fn jacobi_max_eig(a: &Array2<f64>) -> f64 {
    let n = a.nrows();
    let mut m = a.clone();
    for _ in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |j| *j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[[i, j]].powi(2))
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..n {
            for q in (p + 1)..n {
                if m[[p, q]].abs() < 1e-300 {
                    continue;
                }
                let theta = (m[[q, q]] - m[[p, p]]) / (2.0 * m[[p, q]]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[[k, p]], m[[k, q]]);
                    m[[k, p]] = c * mkp - s * mkq;
                    m[[k, q]] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[[p, k]], m[[q, k]]);
                    m[[p, k]] = c * mpk - s * mqk;
                    m[[q, k]] = s * mpk + c * mqk;
                }
            }
        }
    }
    (0..n).map(|i| m[[i, i]]).fold(f64::NEG_INFINITY, f64::max)
}

#[test]
fn power_iteration_bounds_the_top_eigenvalue_of_gram_matrices() {
    let mut rng = StdRng::seed_from_u64(400);
    for kind in KINDS {
        for n in [1, 2, 5, 20, 60] {
            let x: Vec<f64> = (0..n * 3).map(|_| 4.0 * rng.random::<f64>()).collect();
            let k = gram(
                &Kernel::new(kind, 0.3 + rng.random::<f64>()).unwrap(),
                &x,
                &x,
                3,
            )
            .unwrap();
            let lmax = jacobi_max_eig(&k);
            let est = power_iteration(&k, 50);
            assert!(
                est >= lmax * (1.0 - 1e-9),
                "{kind} n={n}: power iteration {est} < lambda_max {lmax}"
            );
            assert!(
                est <= 1.011 * lmax,
                "{kind} n={n}: power iteration {est} far above {lmax}"
            );
        }
    }
    // Check of the reference itself: eigenvalues of [[2, 1], [1, 2]] are 1 and 3.
    assert!((jacobi_max_eig(&ndarray::array![[2.0, 1.0], [1.0, 2.0]]) - 3.0).abs() < 1e-12);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// `project_simplex(v)` lies in the simplex, has the form `max(v - theta, 0)`, and is
    /// closer to `v` than random points of the simplex (it is the Euclidean projection).
    #[test]
    fn prop_project_simplex_is_the_euclidean_projection(v in proptest::collection::vec(-3.0f64..3.0, 1..12), seed in 0u64..1000) {
        let w = project_simplex(&v);
        prop_assert!((w.iter().sum::<f64>() - 1.0).abs() <= 1e-12);
        prop_assert!(w.iter().all(|a| *a >= 0.0));
        // Common threshold on the support.
        let th: Vec<f64> = v.iter().zip(&w).filter(|(_, wi)| **wi > 0.0).map(|(vi, wi)| vi - wi).collect();
        for t in &th {
            prop_assert!((t - th[0]).abs() <= 1e-12);
        }
        for (vi, wi) in v.iter().zip(&w) {
            if *wi == 0.0 {
                prop_assert!(*vi <= th[0] + 1e-12);
            }
        }
        let dist = |u: &[f64]| u.iter().zip(&v).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..50 {
            let u = rand_simplex(&mut rng, v.len());
            prop_assert!(dist(&w) <= dist(&u) + 1e-12);
        }
        // Points of the simplex are fixed.
        let u = rand_simplex(&mut rng, v.len());
        let pu = project_simplex(&u);
        for (a, b) in u.iter().zip(&pu) {
            prop_assert!((a - b).abs() <= 1e-15);
        }
    }

    /// `solve`, `cholesky` and `cg_solve` solve their systems.
    #[test]
    fn prop_dense_solvers(seed in 0u64..100_000, n in 1usize..9) {
        let mut rng = StdRng::seed_from_u64(seed);
        let b: Vec<f64> = (0..n).map(|_| rng.random::<f64>() - 0.5).collect();
        let a = Array2::from_shape_fn((n, n), |_| rng.random::<f64>() - 0.5) + Array2::<f64>::eye(n) * 2.0;
        let x = solve(&a, &b).unwrap();
        for i in 0..n {
            let r: f64 = (0..n).map(|j| a[[i, j]] * x[j]).sum();
            prop_assert!((r - b[i]).abs() <= 1e-12);
        }
        let spd = a.t().dot(&a) + Array2::<f64>::eye(n) * 0.1;
        let l = cholesky(&spd).unwrap();
        let llt = l.dot(&l.t());
        for (p, q) in llt.iter().zip(spd.iter()) {
            prop_assert!((p - q).abs() <= 1e-12);
        }
        for i in 0..n {
            for j in (i + 1)..n {
                prop_assert_eq!(l[[i, j]], 0.0);
            }
        }
        let lam = 0.3;
        let z = cg_solve(&spd, lam, &b, 1e-13, 1000);
        for i in 0..n {
            let r: f64 = (0..n).map(|j| spd[[i, j]] * z[j]).sum::<f64>() + lam * z[i];
            prop_assert!((r - b[i]).abs() <= 1e-10, "cg residual {}", r - b[i]);
        }
    }
}

#[test]
fn linear_algebra_errors_and_edge_cases() {
    // Singular and non-square systems are errors.
    assert!(solve(&ndarray::array![[1.0, 2.0], [2.0, 4.0]], &[1.0, 2.0]).is_err());
    assert!(matches!(
        solve(&Array2::zeros((2, 3)), &[1.0, 2.0]),
        Err(Error::Shape(_))
    ));
    assert!(cholesky(&ndarray::array![[1.0, 2.0], [2.0, 1.0]]).is_err());
    // logsumexp: stable for large and tiny arguments, -inf for empty / all -inf.
    assert!((logsumexp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-12);
    assert!((logsumexp(&[-1000.0, -1000.0 + 3f64.ln()]) - (-1000.0 + 4f64.ln())).abs() < 1e-12);
    assert_eq!(logsumexp(&[]), f64::NEG_INFINITY);
    assert_eq!(
        logsumexp(&[f64::NEG_INFINITY, f64::NEG_INFINITY]),
        f64::NEG_INFINITY
    );
    assert!((logsumexp(&[0.5, f64::NEG_INFINITY]) - 0.5).abs() < 1e-15);
    // Projection of one entry, and of equal entries.
    assert_eq!(project_simplex(&[-7.0]), vec![1.0]);
    assert_eq!(project_simplex(&[3.0, 3.0]), vec![0.5, 0.5]);
    assert_eq!(power_iteration(&Array2::<f64>::zeros((0, 0)), 10), 0.0);
    assert_eq!(power_iteration(&Array2::<f64>::zeros((3, 3)), 10), 0.0);
}

/// A larger, rank-deficient problem (Gaussian atoms drawn from one cloud, so the Gram
/// matrix has a low numerical rank): the active set, the hand-over to FISTA and a tightly
/// solved FISTA agree on the objective; the active-set result is certified by its
/// Frank-Wolfe gap, is sparse, and never raises the prox objective or the energy.
#[test]
fn active_set_matches_fista_on_rank_deficient_problems() {
    let mut rng = StdRng::seed_from_u64(7);
    for &(n, eta) in &[(60usize, 0.1), (60, 1.0), (120, 0.3)] {
        let x = Array2::from_shape_fn((n, 2), |_| rng.random::<f64>() * 3.0);
        let y = Array2::from_shape_fn((40, 2), |_| rng.random::<f64>() * 3.0 + 1.0);
        let w0 = vec![1.0 / n as f64; n];
        let p = Dense::from_parts(Kernel::gaussian(1.0).unwrap(), x, &w0, y, &[1.0 / 40.0; 40]);
        let q = p.quadratic();
        let (wa, ra) = solve_prox_qp(&q, &w0, eta, &QpOptions::default());
        assert!(
            !ra.used_fista,
            "n={n}: the default handed over (support {})",
            ra.support
        );
        assert!(ra.fw_gap <= 1e-9, "n={n}: FW gap {}", ra.fw_gap);
        assert!(
            ra.support < n,
            "n={n}: expected a sparse solution, support {}",
            ra.support
        );
        assert_eq!(ra.support, wa.iter().filter(|a| **a > 0.0).count());
        let fo = QpOptions {
            method: QpMethod::Fista,
            tol: 1e-12,
            max_iter: 20_000,
            ..QpOptions::default()
        };
        let (wf, _) = solve_prox_qp(&q, &w0, eta, &fo);
        let ho = QpOptions {
            max_support: 4,
            ..fo
        };
        let ho = QpOptions {
            method: QpMethod::Auto,
            ..ho
        };
        let (wh, rh) = solve_prox_qp(&q, &w0, eta, &ho);
        assert!(rh.used_fista, "max_support 4 must hand over to FISTA");
        let (oa, of, oh, o0) = (
            p.prox_obj(&wa, &w0, eta),
            p.prox_obj(&wf, &w0, eta),
            p.prox_obj(&wh, &w0, eta),
            p.prox_obj(&w0, &w0, eta),
        );
        // The active set is exact: FISTA (first order, slow on this conditioning) cannot
        // beat it, and gets within its own accuracy of it.
        assert!(oa <= of + 1e-12, "n={n}: active set {oa} > FISTA {of}");
        assert!(
            of - oa <= 1e-3 * (o0 - oa),
            "n={n}: FISTA {of} far from {oa}"
        );
        assert!(
            oh <= o0 && oh - oa <= 1e-3 * (o0 - oa),
            "n={n}: hand-over {oh}"
        );
        assert!((ra.objective - oa).abs() <= 1e-12 * (1.0 + oa.abs()));
        for w in [&wa, &wh] {
            assert!(w.iter().all(|a| *a >= 0.0));
            assert!((w.iter().sum::<f64>() - 1.0).abs() <= 1e-12);
            assert!(p.f(w) <= p.f(&w0) + 1e-14);
        }
        // Warm start: from the solution, a second step on the same atoms starts on its
        // support and is optimal again (same objective as a cold solve of that problem).
        let (w2, r2) = solve_prox_qp(&q, &wa, eta, &QpOptions::default());
        let cold = QpOptions {
            max_support: 2 * n + 2, // the support of wa (< n) is used as the start
            ..QpOptions::default()
        };
        let (w2c, _) = solve_prox_qp(&q, &wa, eta, &cold);
        assert!(r2.fw_gap <= 1e-9);
        assert!((p.prox_obj(&w2, &wa, eta) - p.prox_obj(&w2c, &wa, eta)).abs() <= 1e-12);
    }
}

/// Every atom at the same point (the Gram matrix is all ones, rank one): the solver must not
/// break down, keeps the simplex, and leaves the energy unchanged (it cannot depend on the
/// weights).
#[test]
fn active_set_survives_a_rank_one_gram_matrix() {
    let n = 12;
    let x = Array2::from_shape_fn((n, 2), |(_, j)| j as f64);
    let y = Array2::from_shape_fn((5, 2), |(i, j)| i as f64 * 0.3 + j as f64);
    let mut rng = StdRng::seed_from_u64(3);
    let w0 = rand_simplex(&mut rng, n);
    let p = Dense::from_parts(Kernel::gaussian(1.0).unwrap(), x, &w0, y, &[0.2; 5]);
    let q = p.quadratic();
    for method in [QpMethod::Auto, QpMethod::ActiveSet, QpMethod::Fista] {
        let o = QpOptions {
            method,
            ..QpOptions::default()
        };
        let (w, rep) = solve_prox_qp(&q, &w0, 0.5, &o);
        assert!(w.iter().all(|a| a.is_finite() && *a >= 0.0), "{method:?}");
        assert!((w.iter().sum::<f64>() - 1.0).abs() <= 1e-12, "{method:?}");
        assert!((p.f(&w) - p.f(&w0)).abs() <= 1e-12, "{method:?}");
        assert!(rep.fw_gap <= 1e-9, "{method:?}: gap {}", rep.fw_gap);
    }
}

/// Candidate-set pricing (column generation) at a size where it runs (`n = 1200`, the
/// candidate set a fraction of the atoms): a cold step and warm steps along an IFT-like
/// flow (W moves between the weight steps) are certified optimal by the Frank-Wolfe gap
/// computed here on all atoms from the dense Gram matrix, take several pricing rounds on
/// candidate sets of fewer than half the atoms, are
/// sparse, and never raise the prox objective.
#[test]
fn candidate_pricing_is_certified_on_all_atoms() {
    use rand_distr::StandardNormal;
    let mut rng = StdRng::seed_from_u64(11);
    let (n, m, eta) = (1200usize, 300usize, 0.1);
    let mut x = Array2::from_shape_fn((n, 2), |_| rng.sample::<f64, _>(StandardNormal));
    let y = Array2::from_shape_fn((m, 2), |_| rng.sample::<f64, _>(StandardNormal) + 1.0);
    let v = vec![1.0 / m as f64; m];
    let mut w = vec![1.0 / n as f64; n];
    let mut multi_round = 0;
    for step in 0..6 {
        let p = Dense::from_parts(Kernel::gaussian(1.0).unwrap(), x.clone(), &w, y.clone(), &v);
        let q = p.quadratic();
        let (w1, rep) = solve_prox_qp(&q, &w, eta, &QpOptions::default());
        assert!(!rep.used_fista, "step {step}: handed over to FISTA");
        let g = p.prox_grad(&w1, &w, eta);
        let gmin = g.iter().cloned().fold(f64::INFINITY, f64::min);
        let gap = dot(&w1, &g) - gmin;
        assert!(gap <= 2e-9, "step {step}: FW gap on all atoms {gap}");
        assert!(
            (rep.fw_gap - gap.max(0.0)).abs() <= 1e-10,
            "step {step}: reported gap {} vs {gap}",
            rep.fw_gap
        );
        assert!(w1.iter().all(|a| *a >= 0.0));
        assert!((w1.iter().sum::<f64>() - 1.0).abs() <= 1e-12);
        assert!(p.prox_obj(&w1, &w, eta) <= p.prox_obj(&w, &w, eta) + 1e-15);
        assert!(rep.support < n / 4, "step {step}: support {}", rep.support);
        assert!(rep.rounds >= 1);
        if rep.rounds >= 2 && rep.candidates < n / 2 {
            multi_round += 1;
        }
        // Move the atoms down the witness gradient at the new weights (a W step).
        let mu = Particles::with_weights(x.clone(), &w1).unwrap();
        let grad = p.energy.first_variation(&mu, true).unwrap().grad.unwrap();
        for (xi, gi) in x.iter_mut().zip(&grad) {
            *xi -= 0.1 * gi;
        }
        w = w1;
    }
    assert!(
        multi_round >= 3,
        "only {multi_round} steps re-priced a candidate set"
    );
}
