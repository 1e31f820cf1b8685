//! Ambiguity sets of `robustflow::dro` against closed forms, duals, KKT conditions,
//! monotonicity and Danskin's theorem, on an analytic logistic-regression `PointLoss`.

#![allow(clippy::needless_range_loop)]

use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use robustflow::dro::weights::{chi2_divergence, kl_divergence};
use robustflow::dro::*;
use robustflow::energy::Energy;
use robustflow::flow::{FisherRao, FlowStep, StepContext, Wasserstein};
use robustflow::kernel::{gram, Kernel};
use robustflow::Result;

/// Binary logistic regression `l = softplus(-s (w.x + b))`, `s = 2y - 1`, labels in {0, 1}.
#[derive(Clone)]
struct Logistic {
    w: Vec<f64>,
    b: f64,
}

fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}
fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Logistic {
    fn margin(&self, x: &[f64], y: f64) -> f64 {
        let s = 2.0 * y - 1.0;
        s * (x.iter().zip(&self.w).map(|(a, b)| a * b).sum::<f64>() + self.b)
    }
    fn norm(&self) -> f64 {
        self.w.iter().map(|a| a * a).sum::<f64>().sqrt()
    }
    /// Gradient of `l(theta, x)` in `theta = (w, b)`.
    fn grad_theta(&self, x: &[f64], y: f64) -> Vec<f64> {
        let s = 2.0 * y - 1.0;
        let c = -s * sigmoid(-self.margin(x, y));
        let mut g: Vec<f64> = x.iter().map(|a| c * a).collect();
        g.push(c);
        g
    }
    fn with_theta(&self, th: &[f64]) -> Logistic {
        let d = self.w.len();
        Logistic {
            w: th[..d].to_vec(),
            b: th[d],
        }
    }
    fn theta(&self) -> Vec<f64> {
        let mut t = self.w.clone();
        t.push(self.b);
        t
    }
}

impl PointLoss for Logistic {
    fn dim(&self) -> usize {
        self.w.len()
    }
    fn n_classes(&self) -> Option<usize> {
        Some(2)
    }
    fn losses(&self, x: &[f64], y: &[f64]) -> Result<Vec<f64>> {
        let d = self.w.len();
        Ok(x.chunks_exact(d)
            .zip(y)
            .map(|(r, y)| softplus(-self.margin(r, *y)))
            .collect())
    }
    fn losses_and_grads(&self, x: &[f64], y: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        let d = self.w.len();
        let mut l = Vec::new();
        let mut g = Vec::new();
        for (r, y) in x.chunks_exact(d).zip(y) {
            let m = self.margin(r, *y);
            l.push(softplus(-m));
            let s = 2.0 * y - 1.0;
            let c = -s * sigmoid(-m);
            g.extend(self.w.iter().map(|w| c * w));
        }
        Ok((l, g))
    }
    fn linear_weights(&self) -> Option<(Vec<f64>, f64)> {
        Some((self.w.clone(), self.b))
    }
    fn score_lipschitz(&self) -> Option<f64> {
        Some(1.0)
    }
}

struct Data {
    x: Vec<f64>,
    y: Vec<f64>,
    idx: Vec<usize>,
    d: usize,
}
impl Data {
    fn batch(&self) -> Batch<'_> {
        Batch {
            x: &self.x,
            y: &self.y,
            d: self.d,
            idx: &self.idx,
        }
    }
}

fn setup(n: usize, seed: u64) -> (Logistic, Data) {
    let d = 3;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let model = Logistic {
        w: vec![1.0, -0.8, 0.5],
        b: 0.2,
    };
    let mut x = Vec::new();
    let mut y = Vec::new();
    for _ in 0..n {
        let r: Vec<f64> = (0..d).map(|_| rng.sample(StandardNormal)).collect();
        let s: f64 = r.iter().zip(&model.w).map(|(a, b)| a * b).sum::<f64>() + model.b;
        let noise: f64 = rng.sample(StandardNormal);
        y.push(if s + 0.8 * noise > 0.0 { 1.0 } else { 0.0 });
        x.extend(r);
    }
    (
        model,
        Data {
            x,
            y,
            idx: (0..n).collect(),
            d,
        },
    )
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}
fn dotp(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn solve(cfg: &AmbiguityConfig, loss: &dyn PointLoss, data: &Data) -> WorstCase {
    build_inner(cfg)
        .unwrap()
        .solve(loss, &data.batch())
        .unwrap()
}

fn tight(mut c: AmbiguityConfig) -> AmbiguityConfig {
    c.tune_iters = 300;
    c.tune_tol = 1e-12;
    c
}

// ---------------------------------------------------------------- KL, chi2, CVaR

#[test]
fn kl_penalty_weights_are_softmax_and_fr_flow_converges_to_them() {
    let (m, data) = setup(40, 1);
    let l = m.losses(&data.x, &data.y).unwrap();
    let lam = 0.7;
    let mx = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = l.iter().map(|v| ((v - mx) / lam).exp()).sum();
    let soft: Vec<f64> = l.iter().map(|v| ((v - mx) / lam).exp() / z).collect();
    let cfg = AmbiguityConfig::penalized(SetKind::Kl, lam);
    let wc = solve(&cfg, &m, &data);
    for (a, b) in wc.w.iter().zip(&soft) {
        assert!((a - b).abs() < 1e-14);
    }
    // The core's Fisher-Rao flow as the solver: log-weight error contracts by (1 - tau).
    let mut cf = cfg.clone();
    cf.weight_flow = true;
    cf.inner_steps = 120;
    cf.inner_step_size = 0.3;
    let wf = solve(&cf, &m, &data);
    for (a, b) in wf.w.iter().zip(&soft) {
        assert!((a / b - 1.0).abs() < 1e-12, "{a} vs {b}");
    }
    // The value is lambda log mean exp(l / lambda) - penalty: check the identity.
    let pen = wc.value - lam * kl_divergence(&wc.w);
    let closed = lam * ((z / l.len() as f64).ln() + mx / lam);
    assert!((pen - closed).abs() < 1e-12);
}

/// `inf_lambda lambda log mean exp(l / lambda) + lambda rho` by a log grid then golden section.
fn kl_dual_in_test(l: &[f64], rho: f64) -> f64 {
    let n = l.len() as f64;
    let f = |t: f64| {
        let lam = t.exp();
        let mx = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = l.iter().map(|v| ((v - mx) / lam).exp()).sum();
        lam * ((s / n).ln()) + mx + lam * rho
    };
    let grid: Vec<f64> = (0..=2000)
        .map(|k| -10.0 + 20.0 * k as f64 / 2000.0)
        .collect();
    let k = (0..grid.len())
        .min_by(|a, b| f(grid[*a]).total_cmp(&f(grid[*b])))
        .unwrap();
    let (mut a, mut b) = (grid[k.saturating_sub(1)], grid[(k + 1).min(2000)]);
    for _ in 0..200 {
        let c = a + (b - a) / 3.0;
        let d = b - (b - a) / 3.0;
        if f(c) < f(d) {
            b = d
        } else {
            a = c
        }
    }
    f(0.5 * (a + b))
}

#[test]
fn kl_constrained_value_equals_the_one_dimensional_dual() {
    let (m, data) = setup(40, 2);
    let l = m.losses(&data.x, &data.y).unwrap();
    for rho in [0.02, 0.1, 0.5] {
        let wc = solve(
            &tight(AmbiguityConfig::constrained(SetKind::Kl, rho)),
            &m,
            &data,
        );
        let dual = kl_dual_in_test(&l, rho);
        assert!(wc.radius <= rho + 1e-12);
        assert!(
            (wc.value - dual).abs() < 1e-7,
            "rho {rho}: {} vs {dual}",
            wc.value
        );
        let ub = wc.upper_bound.unwrap();
        assert!(ub >= wc.value - 1e-12 && (ub - dual).abs() < 1e-7);
        assert!((wc.closed_form.unwrap() - dual).abs() < 1e-7);
        // Worst case is a softmax of l / lambda at the tuned multiplier.
        let s = robustflow::dro::weights::kl_penalty_weights(&l, wc.multiplier);
        for (a, b) in wc.w.iter().zip(&s) {
            assert!((a - b).abs() < 1e-12);
        }
    }
}

#[test]
fn chi2_matches_its_closed_form_and_kkt_when_clipped() {
    let (m, data) = setup(40, 3);
    let l = m.losses(&data.x, &data.y).unwrap();
    let n = l.len() as f64;
    let mu = mean(&l);
    let var = l.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / n;
    // Small radius: no weight clipped, value mean + sqrt(rho var).
    let rho = 0.05;
    let wc = solve(
        &tight(AmbiguityConfig::constrained(SetKind::Chi2, rho)),
        &m,
        &data,
    );
    assert!(wc.w.iter().all(|w| *w > 0.0));
    let cf = mu + (rho * var).sqrt();
    assert!((wc.value - cf).abs() < 1e-8, "{} vs {cf}", wc.value);
    assert!(wc.upper_bound.unwrap() >= wc.value - 1e-12);
    assert!((wc.upper_bound.unwrap() - cf).abs() < 1e-7);
    // Large radius: weights clipped. KKT: w = (l - nu)_+ / (2 lambda n), chi2(w) = rho.
    let rho = 3.0;
    let wc = solve(
        &tight(AmbiguityConfig::constrained(SetKind::Chi2, rho)),
        &m,
        &data,
    );
    assert!(wc.w.contains(&0.0));
    assert!((chi2_divergence(&wc.w) - rho).abs() < 1e-8);
    let c = 2.0 * wc.multiplier * n;
    let i = (0..l.len()).find(|i| wc.w[*i] > 0.0).unwrap();
    let nu = l[i] - c * wc.w[i];
    for j in 0..l.len() {
        assert!((wc.w[j] - ((l[j] - nu) / c).max(0.0)).abs() < 1e-12);
    }
    assert!(wc.upper_bound.unwrap() >= wc.value - 1e-12);
    assert!(wc.upper_bound.unwrap() - wc.value < 1e-6);
    // The projected flow of the core converges to the penalised closed form.
    let mut cfg = AmbiguityConfig::penalized(SetKind::Chi2, 0.3);
    let exact = solve(&cfg, &m, &data);
    cfg.weight_flow = true;
    cfg.inner_steps = 300;
    cfg.inner_step_size = 0.5;
    let flow = solve(&cfg, &m, &data);
    for (a, b) in flow.w.iter().zip(&exact.w) {
        assert!((a - b).abs() < 1e-12);
    }
}

#[test]
fn cvar_is_the_mean_of_the_top_fraction() {
    let (m, data) = setup(40, 4);
    let l = m.losses(&data.x, &data.y).unwrap();
    let mut s = l.clone();
    s.sort_by(|a, b| b.total_cmp(a));
    for (alpha, k) in [(0.25, 10usize), (0.1, 4), (0.5, 20)] {
        let wc = solve(
            &AmbiguityConfig::constrained(SetKind::Cvar, (1.0f64 / alpha).ln()),
            &m,
            &data,
        );
        let top = mean(&s[..k]);
        assert!((wc.value - top).abs() < 1e-12);
        assert!((wc.upper_bound.unwrap() - top).abs() < 1e-12);
        assert!(wc.w.iter().all(|w| *w <= 1.0 / (alpha * 40.0) + 1e-15));
    }
    // Non-integer alpha n: partial weight on the next loss.
    let alpha = 0.1125; // alpha n = 4.5
    let wc = solve(
        &AmbiguityConfig::constrained(SetKind::Cvar, (1.0f64 / alpha).ln()),
        &m,
        &data,
    );
    let v = (s[..4].iter().sum::<f64>() + 0.5 * s[4]) / 4.5;
    assert!((wc.value - v).abs() < 1e-12 && (wc.upper_bound.unwrap() - v).abs() < 1e-12);
}

// ---------------------------------------------------------------- MMD

#[test]
fn mmd_weights_only_solution_satisfies_the_qp_kkt_conditions() {
    let (m, data) = setup(30, 5);
    let mut cfg = AmbiguityConfig::penalized(SetKind::Mmd, 2.0);
    cfg.inner_flow = InnerFlow::Prox;
    cfg.inner_steps = 60;
    cfg.inner_step_size = 1.0;
    cfg.extra_support = 10;
    let wc = solve(&cfg, &m, &data);
    let n = 30;
    let na = wc.w.len();
    assert_eq!(na, 40);
    // Atoms did not move; the data part is the data.
    assert_eq!(&wc.x[..n * 3], &data.x[..]);
    let h = robustflow::kernel::median_heuristic(&data.x, 3).unwrap();
    let k = gram(&Kernel::gaussian(h).unwrap(), &wc.x, &data.x, 3).unwrap();
    let kk = gram(&Kernel::gaussian(h).unwrap(), &wc.x, &wc.x, 3).unwrap();
    let l = m.losses(&wc.x, &wc.y).unwrap();
    // grad of F(w) = lambda/2 (w'Kw - 2 w'K_xd 1/n) - w.l
    let g: Vec<f64> = (0..na)
        .map(|i| {
            let kw: f64 = (0..na).map(|j| kk[[i, j]] * wc.w[j]).sum();
            let kv: f64 = (0..n).map(|j| k[[i, j]] / n as f64).sum();
            2.0 * (kw - kv) - l[i]
        })
        .collect();
    let supp: Vec<usize> = (0..na).filter(|i| wc.w[*i] > 1e-9).collect();
    let nu = -g[supp[0]];
    for &i in &supp {
        assert!((g[i] + nu).abs() < 1e-6, "support {i}: {}", g[i] + nu);
    }
    for i in 0..na {
        assert!(g[i] + nu > -1e-6, "off support {i}: {}", g[i] + nu);
    }
    assert!((wc.w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
}

#[test]
fn mmd_flows_give_feasible_points_below_the_kdro_dual() {
    let (m, data) = setup(30, 6);
    for flow in [
        InnerFlow::Wfr,
        InnerFlow::Ift,
        InnerFlow::W,
        InnerFlow::Prox,
    ] {
        let mut cfg = AmbiguityConfig::constrained(SetKind::Mmd, 0.1);
        cfg.inner_flow = flow;
        cfg.inner_steps = 8;
        cfg.inner_step_size = 0.5;
        cfg.extra_support = 6;
        cfg.tune_iters = 8;
        cfg.tune_tol = 0.05;
        let full =
            robustflow::dro::certify_full(&m, &data.batch(), &cfg, &[0.0, 0.05, 0.1, 0.2]).unwrap();
        let rows: Vec<_> = full.iter().map(|(r, _)| r.clone()).collect();
        let emp = rows[0].empirical_risk;
        assert!((rows[0].lower_bound - emp).abs() < 1e-12);
        for (r, wc) in &full {
            assert!(r.radius_reached <= r.radius + 1e-12, "{flow:?} {r:?}");
            // The KDRO dual on the support points bounds the worst case found; it is not
            // an upper bound on the sup over the whole ball, so the row has none.
            let ub = wc.upper_bound.unwrap();
            assert!(r.lower_bound <= ub + 1e-9, "{flow:?} {r:?}");
            if r.radius > 0.0 {
                assert!(r.upper_bound.is_none(), "{flow:?} {r:?}");
                assert!(r
                    .upper_bound_note
                    .as_deref()
                    .unwrap()
                    .contains("no upper bound"));
            }
        }
        for w in rows.windows(2) {
            assert!(
                w[1].lower_bound >= w[0].lower_bound - 1e-9,
                "{flow:?} {w:?}"
            );
            assert!(w[1].lower_bound > emp, "{flow:?}");
        }
    }
}

// ---------------------------------------------------------------- all sets

#[test]
fn radius_zero_gives_erm_and_risk_is_monotone_with_bracketing_bounds() {
    let (m, data) = setup(30, 7);
    let l = m.losses(&data.x, &data.y).unwrap();
    let erm = mean(&l);
    let mut w1 = AmbiguityConfig::constrained(SetKind::Wasserstein, 0.0);
    w1.norm = Some(Norm::L2);
    let mut wrm = AmbiguityConfig::constrained(SetKind::Wasserstein, 0.0);
    wrm.inner_steps = 60;
    wrm.inner_step_size = 1.0;
    let mut mmd = AmbiguityConfig::constrained(SetKind::Mmd, 0.0);
    mmd.inner_steps = 5;
    mmd.tune_iters = 8;
    mmd.tune_tol = 0.05;
    let sets = [
        (wrm, vec![0.0, 0.05, 0.2, 0.5]),
        (w1, vec![0.0, 0.05, 0.2, 0.5]),
        (
            AmbiguityConfig::constrained(SetKind::Kl, 0.0),
            vec![0.0, 0.05, 0.2, 1.0, 5.0],
        ),
        (
            AmbiguityConfig::constrained(SetKind::Chi2, 0.0),
            vec![0.0, 0.05, 0.2, 1.0, 50.0],
        ),
        (
            AmbiguityConfig::constrained(SetKind::Cvar, 0.0),
            vec![0.0, 0.1, 0.7, 2.0, 5.0],
        ),
        (mmd, vec![0.0, 0.05, 0.1, 0.3]),
    ];
    for (cfg, radii) in sets {
        let rows = certify(&m, &data.batch(), &cfg, &radii).unwrap();
        assert!((rows[0].lower_bound - erm).abs() < 1e-12, "{cfg:?}");
        for r in &rows {
            assert!((r.empirical_risk - erm).abs() < 1e-12);
            if let Some(ub) = r.upper_bound {
                assert!(r.lower_bound <= ub + 1e-9, "{r:?}");
            }
            if let Some(c) = r.closed_form {
                assert!(
                    r.lower_bound <= c + 1e-9 && c <= r.upper_bound.unwrap() + 1e-9,
                    "{r:?}"
                );
            }
        }
        for w in rows.windows(2) {
            assert!(
                w[1].lower_bound >= w[0].lower_bound - 1e-9,
                "{}: not monotone {w:?}",
                w[0].ambiguity
            );
        }
        let json = serde_json::to_value(&rows).unwrap();
        for key in [
            "ambiguity",
            "radius",
            "lower_bound",
            "upper_bound",
            "closed_form",
            "radius_reached",
            "multiplier",
            "empirical_risk",
        ] {
            assert!(json[0].get(key).is_some(), "missing {key}");
        }
    }
}

// ---------------------------------------------------------------- Wasserstein

/// The per-point WRM sup for logistic regression along `u = -s w / ||w||`:
/// `h(t) = softplus(-(m0 - t ||w||)) - gamma t^2`, root of `h'(t)` by bisection.
fn wrm_1d(m: &Logistic, x0: &[f64], y: f64, gamma: f64) -> (Vec<f64>, f64) {
    let nw = m.norm();
    let m0 = m.margin(x0, y);
    let hp = |t: f64| nw * sigmoid(-(m0 - t * nw)) - 2.0 * gamma * t;
    let (mut a, mut b) = (0.0, nw / (2.0 * gamma) + 1.0);
    for _ in 0..200 {
        let c = 0.5 * (a + b);
        if hp(c) > 0.0 {
            a = c
        } else {
            b = c
        }
    }
    let t = 0.5 * (a + b);
    let s = 2.0 * y - 1.0;
    let x: Vec<f64> = x0
        .iter()
        .zip(&m.w)
        .map(|(a, w)| a - t * s * w / nw)
        .collect();
    (x, softplus(-(m0 - t * nw)) - gamma * t * t)
}

#[test]
fn wrm_flow_optimum_matches_the_one_dimensional_problem() {
    let (m, data) = setup(30, 8);
    let gamma = 0.6; // > L_zz / 2 = ||w||^2 / 8
    let mut cfg = AmbiguityConfig::penalized(SetKind::Wasserstein, gamma);
    cfg.inner_steps = 200;
    cfg.inner_step_size = 0.7;
    let wc = solve(&cfg, &m, &data);
    let l = m.losses(&wc.x, &wc.y).unwrap();
    for i in 0..30 {
        let (xs, phi) = wrm_1d(&m, &data.x[i * 3..i * 3 + 3], data.y[i], gamma);
        for k in 0..3 {
            assert!((wc.x[i * 3 + k] - xs[k]).abs() < 1e-6);
        }
        let c: f64 = (0..3)
            .map(|k| (wc.x[i * 3 + k] - data.x[i * 3 + k]).powi(2))
            .sum();
        assert!((l[i] - gamma * c - phi).abs() < 1e-9);
    }
}

#[test]
fn sinha_identity_and_certificate_in_the_constraint_form() {
    let (m, data) = setup(30, 9);
    let rho = 0.3;
    let mut cfg = AmbiguityConfig::constrained(SetKind::Wasserstein, rho);
    cfg.inner_steps = 150;
    cfg.inner_step_size = 1.0;
    cfg.tune_tol = 1e-6;
    cfg.tune_iters = 80;
    let wc = solve(&cfg, &m, &data);
    let g = wc.multiplier;
    assert!(
        g > m.norm().powi(2) / 8.0,
        "gamma {g} in the concave regime"
    );
    let l = m.losses(&wc.x, &wc.y).unwrap();
    let c: Vec<f64> = (0..30)
        .map(|i| {
            (0..3)
                .map(|k| (wc.x[i * 3 + k] - data.x[i * 3 + k]).powi(2))
                .sum()
        })
        .collect();
    let rho_n = mean(&c);
    assert!((wc.radius - rho_n).abs() < 1e-12 && rho_n <= rho && rho - rho_n <= 1e-6 * rho);
    let phi: Vec<f64> = (0..30).map(|i| l[i] - g * c[i]).collect();
    // Sinha: mean l(x*) = mean phi_gamma + gamma rho_n.
    assert!((mean(&l) - (mean(&phi) + g * rho_n)).abs() < 1e-12);
    assert!((wc.value - mean(&l)).abs() < 1e-12);
    // Certificate gamma rho + mean phi >= value, tight up to the radius gap.
    let ub = wc.upper_bound.unwrap();
    assert!(ub >= wc.value - 1e-12);
    assert!(ub <= g * rho + mean(&phi) + 1e-12);
    assert!(ub - wc.value < 1e-5);
    // phi is the exact per-point sup (1-D problem).
    for i in 0..30 {
        let (_, p) = wrm_1d(&m, &data.x[i * 3..i * 3 + 3], data.y[i], g);
        assert!((phi[i] - p).abs() < 1e-9);
    }
}

#[test]
fn w1_closed_form_equals_direct_split_mass_computation() {
    let (m, data) = setup(30, 10);
    let n = 30.0;
    let l = m.losses(&data.x, &data.y).unwrap();
    let emp = mean(&l);
    for (norm, dual) in [
        (Norm::L2, m.norm()),
        (Norm::Linf, m.w.iter().map(|a| a.abs()).sum::<f64>()),
        (Norm::L1, m.w.iter().fold(0.0f64, |a, b| a.max(b.abs()))),
    ] {
        let eps = 0.2;
        let cf = w1_closed_form(&m, &data.batch(), eps, norm)
            .unwrap()
            .unwrap();
        assert!((cf - (emp + eps * dual)).abs() < 1e-12);
        // Direct: move mass q/n of point 0 a distance eps n / q along the direction u
        // with ||u|| = 1 and w.u = -s ||w||_* (the loss grows at rate ||w||_*).
        let s = 2.0 * data.y[0] - 1.0;
        let u: Vec<f64> = match norm {
            Norm::L2 => m.w.iter().map(|w| -s * w / m.norm()).collect(),
            Norm::Linf => m.w.iter().map(|w| -s * w.signum()).collect(),
            Norm::L1 => {
                let k = (0..3)
                    .max_by(|a, b| m.w[*a].abs().total_cmp(&m.w[*b].abs()))
                    .unwrap();
                (0..3)
                    .map(|j| if j == k { -s * m.w[k].signum() } else { 0.0 })
                    .collect()
            }
        };
        assert!((norm.of(&u) - 1.0).abs() < 1e-12);
        let mut last = f64::NEG_INFINITY;
        for q in [1.0, 1e-2, 1e-4, 1e-8] {
            let t = eps * n / q;
            let xm: Vec<f64> = (0..3).map(|k| data.x[k] + t * u[k]).collect();
            let lm = m.losses(&xm, &data.y[..1]).unwrap()[0];
            let v = emp + q / n * (lm - l[0]);
            assert!(v <= cf + 1e-12 && v >= last - 1e-12);
            last = v;
        }
        assert!(cf - last < 1e-6, "{norm:?}: {last} vs {cf}");
        // The solver's feasible point: below the closed form and close to it.
        let mut cfg = AmbiguityConfig::constrained(SetKind::Wasserstein, eps);
        cfg.norm = Some(norm);
        let wc = solve(&cfg, &m, &data);
        assert!(wc.value <= cf + 1e-12 && cf - wc.value < 1e-4, "{norm:?}");
        assert!((wc.w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Its transport cost is eps: sum over moved mass of the distance moved.
        let moved = wc.w.len() - 1;
        let j = (0..30)
            .find(|j| (wc.w[*j] - 1.0 / n).abs() > 1e-15)
            .unwrap();
        let dist = norm.of(&(0..3)
            .map(|k| wc.x[moved * 3 + k] - data.x[j * 3 + k])
            .collect::<Vec<_>>());
        assert!((wc.w[moved] * dist - eps).abs() < 1e-9 * eps.max(1.0) * 1e3);
    }
}

#[test]
fn label_cost_switches_labels_only_when_cheap() {
    let (m, data) = setup(30, 11);
    let mut fixed = AmbiguityConfig::penalized(SetKind::Wasserstein, 1.0);
    fixed.inner_steps = 100;
    fixed.inner_step_size = 1.0;
    let wf = solve(&fixed, &m, &data);
    let mut huge = fixed.clone();
    huge.label_cost = Some(1e6);
    let wh = solve(&huge, &m, &data);
    assert_eq!(wh.y, data.y);
    for (a, b) in wh.x.iter().zip(&wf.x) {
        assert!((a - b).abs() < 1e-12);
    }
    let mut cheap = fixed.clone();
    cheap.label_cost = Some(0.05);
    let wcheap = solve(&cheap, &m, &data);
    let flips = wcheap.y.iter().zip(&data.y).filter(|(a, b)| a != b).count();
    assert!(flips > 0);
    assert!(wcheap.value >= wf.value);
    // Flipped points are those whose flipped phi beats the kept one.
    let lf = m.losses(&wcheap.x, &wcheap.y).unwrap();
    for i in 0..30 {
        if wcheap.y[i] != data.y[i] {
            let c: f64 = (0..3)
                .map(|k| (wcheap.x[i * 3 + k] - data.x[i * 3 + k]).powi(2))
                .sum();
            let (_, keep) = wrm_1d(&m, &data.x[i * 3..i * 3 + 3], data.y[i], 1.0);
            assert!(lf[i] - c - 0.05 >= keep - 1e-9);
        }
    }
}

#[test]
fn warm_start_continues_the_flow_per_training_index() {
    let (m, data) = setup(20, 12);
    let mut cfg = AmbiguityConfig::penalized(SetKind::Wasserstein, 0.6);
    cfg.inner_step_size = 0.3;
    cfg.inner_steps = 10;
    let ten = solve(&cfg, &m, &data);
    cfg.inner_steps = 5;
    cfg.warm_start = true;
    let mut s = build_inner(&cfg).unwrap();
    let first = s.solve(&m, &data.batch()).unwrap();
    let second = s.solve(&m, &data.batch()).unwrap();
    let md = (0..ten.x.len())
        .map(|k| (ten.x[k] - first.x[k]).abs())
        .fold(0.0, f64::max);
    assert!(md > 1e-6, "5 steps differ from 10");
    for (a, b) in second.x.iter().zip(&ten.x) {
        assert!((a - b).abs() < 1e-12);
    }
}

// ---------------------------------------------------------------- WFR

#[test]
fn wfr_reduces_to_wrm_and_to_kl_and_reaches_the_exact_solution() {
    let (m, data) = setup(20, 13);
    let (gamma, lam) = (0.7, 0.4);
    let x0 = data.x.clone();
    let energy = WfrEnergy {
        transport: WassersteinEnergy {
            loss: &m,
            x0: &x0,
            y: &data.y,
            offset: &[],
            gamma,
        },
        lambda: lam,
    };
    let wrm = WassersteinEnergy {
        loss: &m,
        x0: &x0,
        y: &data.y,
        offset: &[],
        gamma,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    // Frozen weights (non-uniform): the W step of WFR is the WRM step.
    let w0: Vec<f64> = (0..20).map(|i| 1.0 + i as f64).collect();
    let s0: f64 = w0.iter().sum();
    let w0: Vec<f64> = w0.iter().map(|v| v / s0).collect();
    let a = ndarray::Array2::from_shape_vec((20, 3), x0.clone()).unwrap();
    let mut mu1 = robustflow::measure::Particles::with_weights(a.clone(), &w0).unwrap();
    let mut mu2 = mu1.clone();
    let mut ws = Wasserstein::new(1.0 / (2.0 * gamma)).unwrap();
    for k in 0..20 {
        let mut ctx = StepContext {
            step: k,
            tau: 0.5,
            rng: &mut rng,
        };
        ws.step(&mut mu1, &energy, &mut ctx).unwrap();
        let mut ctx = StepContext {
            step: k,
            tau: 0.5,
            rng: &mut rng,
        };
        ws.step(&mut mu2, &wrm, &mut ctx).unwrap();
    }
    assert_eq!(mu1.x, mu2.x);
    // Frozen positions (at the data): the FR step of WFR is the KL-DRO FR step.
    let l = m.losses(&x0, &data.y).unwrap();
    let kl = KlEnergy { l: &l, lambda: lam };
    let mut p1 = robustflow::measure::Particles::uniform(a).unwrap();
    let mut p2 = p1.clone();
    let mut fr = FisherRao::new(1.0 / lam).unwrap();
    for k in 0..15 {
        let mut ctx = StepContext {
            step: k,
            tau: 0.4,
            rng: &mut rng,
        };
        fr.step(&mut p1, &energy, &mut ctx).unwrap();
        let mut ctx = StepContext {
            step: k,
            tau: 0.4,
            rng: &mut rng,
        };
        fr.step(&mut p2, &kl, &mut ctx).unwrap();
    }
    for (a, b) in p1.weights().iter().zip(&p2.weights()) {
        assert!((a - b).abs() < 1e-14);
    }
    assert!((energy.value(&p1).unwrap() - kl.value(&p2).unwrap()).abs() < 1e-12);
    // The full WFR flow: x* = WRM optimum, w = softmax(phi / lambda).
    let mut cfg = AmbiguityConfig::penalized(SetKind::Wfr, gamma);
    cfg.kl_penalty = Some(lam);
    cfg.inner_steps = 300;
    cfg.inner_step_size = 0.5;
    let wc = solve(&cfg, &m, &data);
    let mut phis = Vec::new();
    for i in 0..20 {
        let (xs, phi) = wrm_1d(&m, &data.x[i * 3..i * 3 + 3], data.y[i], gamma);
        for k in 0..3 {
            assert!((wc.x[i * 3 + k] - xs[k]).abs() < 1e-6);
        }
        phis.push(phi);
    }
    let mx = phis.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = phis.iter().map(|p| ((p - mx) / lam).exp()).sum();
    for i in 0..20 {
        let w = ((phis[i] - mx) / lam).exp() / z;
        assert!((wc.w[i] - w).abs() < 1e-6, "{i}: {} vs {w}", wc.w[i]);
    }
    assert!(wc.upper_bound.unwrap() >= wc.value - 1e-9);
}

// ---------------------------------------------------------------- Danskin

fn robust_kl(m: &Logistic, data: &Data, lam: f64) -> (f64, Vec<f64>) {
    let wc = solve(&AmbiguityConfig::penalized(SetKind::Kl, lam), m, data);
    let r = wc.value - lam * kl_divergence(&wc.w);
    let mut g = vec![0.0; 4];
    for i in 0..wc.w.len() {
        let gi = m.grad_theta(&wc.x[i * 3..i * 3 + 3], wc.y[i]);
        g.iter_mut().zip(&gi).for_each(|(a, b)| *a += wc.w[i] * b);
    }
    (r, g)
}

fn robust_kl_constrained(m: &Logistic, data: &Data, rho: f64) -> (f64, Vec<f64>) {
    let wc = solve(
        &tight(AmbiguityConfig::constrained(SetKind::Kl, rho)),
        m,
        data,
    );
    let mut g = vec![0.0; 4];
    for i in 0..wc.w.len() {
        let gi = m.grad_theta(&wc.x[i * 3..i * 3 + 3], wc.y[i]);
        g.iter_mut().zip(&gi).for_each(|(a, b)| *a += wc.w[i] * b);
    }
    (wc.upper_bound.unwrap(), g)
}

fn robust_wrm(m: &Logistic, data: &Data, gamma: f64) -> (f64, Vec<f64>) {
    let mut cfg = AmbiguityConfig::penalized(SetKind::Wasserstein, gamma);
    cfg.inner_steps = 200;
    cfg.inner_step_size = 1.0;
    let wc = solve(&cfg, m, data);
    let l = m.losses(&wc.x, &wc.y).unwrap();
    let n = l.len();
    let mut r = 0.0;
    let mut g = vec![0.0; 4];
    for i in 0..n {
        let c: f64 = (0..3)
            .map(|k| (wc.x[i * 3 + k] - data.x[i * 3 + k]).powi(2))
            .sum();
        r += (l[i] - gamma * c) / n as f64;
        let gi = m.grad_theta(&wc.x[i * 3..i * 3 + 3], wc.y[i]);
        g.iter_mut().zip(&gi).for_each(|(a, b)| *a += b / n as f64);
    }
    (r, g)
}

fn check_danskin(m: &Logistic, f: impl Fn(&Logistic) -> (f64, Vec<f64>), tol: f64) {
    let th = m.theta();
    let (_, g) = f(m);
    let h = 1e-5;
    for k in 0..th.len() {
        let mut tp = th.clone();
        tp[k] += h;
        let mut tm = th.clone();
        tm[k] -= h;
        let fd = (f(&m.with_theta(&tp)).0 - f(&m.with_theta(&tm)).0) / (2.0 * h);
        assert!(
            (fd - g[k]).abs() < tol,
            "coordinate {k}: FD {fd} vs Danskin {}",
            g[k]
        );
    }
}

#[test]
fn danskin_outer_gradient_matches_finite_differences() {
    let (m, data) = setup(25, 14);
    check_danskin(&m, |mm| robust_kl(mm, &data, 0.5), 1e-7);
    check_danskin(&m, |mm| robust_wrm(mm, &data, 0.8), 1e-7);
    check_danskin(&m, |mm| robust_kl_constrained(mm, &data, 0.2), 1e-6);
}

// ---------------------------------------------------------------- bad input

struct NanLoss;
impl PointLoss for NanLoss {
    fn dim(&self) -> usize {
        3
    }
    fn n_classes(&self) -> Option<usize> {
        None
    }
    fn losses(&self, x: &[f64], _y: &[f64]) -> Result<Vec<f64>> {
        Ok(vec![f64::NAN; x.len() / 3])
    }
    fn losses_and_grads(&self, x: &[f64], y: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        Ok((self.losses(x, y)?, vec![f64::NAN; x.len()]))
    }
}

#[test]
fn bad_configurations_and_losses_give_clear_errors() {
    let (m, data) = setup(10, 15);
    let mut both = AmbiguityConfig::constrained(SetKind::Kl, 0.1);
    both.penalty = Some(1.0);
    let e = build_inner(&both).err().unwrap().to_string();
    assert!(e.contains("penalty"), "{e}");
    let neither = AmbiguityConfig {
        set: SetKind::Chi2,
        ..Default::default()
    };
    assert!(build_inner(&neither)
        .err()
        .unwrap()
        .to_string()
        .contains("radius"));
    let e = build_inner(&AmbiguityConfig::penalized(SetKind::Cvar, 1.0))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cvar"), "{e}");
    let e = build_inner(&AmbiguityConfig::constrained(SetKind::Kl, -1.0))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("radius"), "{e}");
    let mut lc = AmbiguityConfig::penalized(SetKind::Kl, 1.0);
    lc.label_cost = Some(1.0);
    assert!(build_inner(&lc)
        .err()
        .unwrap()
        .to_string()
        .contains("label-cost"));
    for cfg in [
        AmbiguityConfig::penalized(SetKind::Wasserstein, 1.0),
        AmbiguityConfig::penalized(SetKind::Kl, 1.0),
        AmbiguityConfig::constrained(SetKind::Cvar, 1.0),
        AmbiguityConfig::penalized(SetKind::Mmd, 1.0),
        AmbiguityConfig::penalized(SetKind::Wfr, 1.0),
    ] {
        let r = build_inner(&cfg).unwrap().solve(&NanLoss, &data.batch());
        let e = r.err().unwrap();
        assert!(
            matches!(e, robustflow::Error::Diverged { .. }),
            "{cfg:?}: {e}"
        );
    }
    // Shape mismatch between the batch and the model.
    let bad = Batch {
        x: &data.x[..9],
        y: &data.y,
        d: 3,
        idx: &[],
    };
    assert!(build_inner(&AmbiguityConfig::penalized(SetKind::Kl, 1.0))
        .unwrap()
        .solve(&m, &bad)
        .is_err());
    let _ = dotp(&[1.0], &[1.0]);
}

/// The constraint form carries the multiplier from one minibatch to the next as a starting
/// hint. A minibatch whose largest divergence stays below the radius (here three nearly
/// coincident points) used to leave a multiplier divided by `4^60` behind, and a few such
/// batches made the next binding batch fail ("no multiplier up to 1e-253"). The hint is now
/// kept only when the constraint was active.
#[test]
fn constraint_form_recovers_after_batches_that_never_reach_the_radius() {
    let (m, data) = setup(30, 7);
    for flow in [InnerFlow::Prox, InnerFlow::Wfr] {
        let mut cfg = AmbiguityConfig::constrained(SetKind::Mmd, 0.3);
        cfg.inner_flow = flow;
        cfg.bandwidth = robustflow::kernel::Bandwidth::Fixed(1.0);
        cfg.inner_steps = 8;
        cfg.inner_step_size = 0.5;
        cfg.tune_iters = 8;
        cfg.tune_tol = 0.05;
        cfg.warm_start = false;
        let mut solver = build_inner(&cfg).unwrap();
        let tiny = Data {
            x: vec![0.0, 0.0, 0.0, 0.001, 0.0, 0.0, 0.0, 0.001, 0.0],
            y: vec![1.0, 0.0, 1.0],
            idx: vec![],
            d: 3,
        };
        for _ in 0..4 {
            let wc = solver.solve(&m, &tiny.batch()).unwrap();
            assert!(wc.radius <= 0.3, "{flow:?}: {}", wc.radius);
        }
        let wc = solver.solve(&m, &data.batch()).unwrap();
        let emp = mean(&m.losses(&data.x, &data.y).unwrap());
        assert!(wc.radius <= 0.3 + 1e-12, "{flow:?}: radius {}", wc.radius);
        assert!(
            wc.radius >= 0.1,
            "{flow:?}: the constraint should bind, radius {}",
            wc.radius
        );
        assert!(
            wc.value > emp,
            "{flow:?}: worst case {} <= empirical {emp}",
            wc.value
        );
        assert!(
            wc.multiplier.is_finite() && wc.multiplier > 1e-6,
            "{flow:?}: {}",
            wc.multiplier
        );
    }
}

/// `AmbiguityConfig::check` turns the flat record into one variant per set carrying only
/// that set's fields: two records differing only in fields another set uses check to the
/// same `Ambiguity` and give the same worst case; the strength, the options and the
/// solver's name come through.
#[test]
fn checked_sets_carry_only_their_own_fields() {
    let (m, data) = setup(12, 21);
    let kl = AmbiguityConfig::constrained(SetKind::Kl, 0.2);
    let kl_noise = AmbiguityConfig {
        kernel: robustflow::kernel::KernelKind::Laplace,
        inner_flow: InnerFlow::W,
        bandwidth: robustflow::kernel::Bandwidth::Fixed(3.0),
        ..kl.clone()
    };
    let (a, b) = (kl.check_ref().unwrap(), kl_noise.check().unwrap());
    assert_eq!(a, b);
    assert_eq!(
        a.set(),
        &AmbiguitySet::Kl {
            strength: Strength::Radius(0.2),
            weight_flow: false
        }
    );
    let (wa, wb) = (
        a.build().solve(&m, &data.batch()).unwrap(),
        b.build().solve(&m, &data.batch()).unwrap(),
    );
    assert_eq!((wa.value, wa.radius, wa.w), (wb.value, wb.radius, wb.w));
    let cases: Vec<(AmbiguityConfig, &str, Option<Strength>)> = vec![
        (AmbiguityConfig::default(), "none", None),
        (
            AmbiguityConfig::penalized(SetKind::Wasserstein, 2.0),
            "wasserstein",
            Some(Strength::Penalty(2.0)),
        ),
        (
            AmbiguityConfig {
                norm: Some(Norm::L1),
                ..AmbiguityConfig::constrained(SetKind::Wasserstein, 0.3)
            },
            "wasserstein-1",
            Some(Strength::Radius(0.3)),
        ),
        (
            AmbiguityConfig::penalized(SetKind::Chi2, 0.5),
            "chi2",
            Some(Strength::Penalty(0.5)),
        ),
        (
            AmbiguityConfig::constrained(SetKind::Cvar, 0.7),
            "cvar",
            Some(Strength::Radius(0.7)),
        ),
        (
            AmbiguityConfig::constrained(SetKind::Mmd, 0.1),
            "mmd",
            Some(Strength::Radius(0.1)),
        ),
        (
            AmbiguityConfig::penalized(SetKind::Wfr, 1.5),
            "wfr",
            Some(Strength::Penalty(1.5)),
        ),
    ];
    for (cfg, name, strength) in cases {
        let c = cfg.check_ref().unwrap();
        assert_eq!(c.kind(), cfg.set);
        assert_eq!(c.name(), name);
        assert_eq!(c.build().name(), name);
        assert_eq!(c.strength(), strength);
        let o = c.inner();
        assert_eq!(
            (o.steps(), o.step_size(), o.tune_iters(), o.tune_tol()),
            (
                cfg.inner_steps,
                cfg.inner_step_size,
                cfg.tune_iters,
                cfg.tune_tol
            )
        );
    }
}

/// Every cross-field rule of the flat record is an error naming the flag at fault.
#[test]
fn every_cross_field_rule_names_its_flag() {
    let k = |c: AmbiguityConfig| c;
    let pen = AmbiguityConfig::penalized;
    let rad = AmbiguityConfig::constrained;
    let rff = robustflow::kernel::Approx::Rff(16);
    let cases: Vec<(AmbiguityConfig, &str, &str)> = vec![
        (
            k(AmbiguityConfig {
                inner_steps: 0,
                ..pen(SetKind::Kl, 1.0)
            }),
            "inner-steps",
            ">= 1",
        ),
        (
            k(AmbiguityConfig {
                inner_step_size: -1.0,
                ..pen(SetKind::Kl, 1.0)
            }),
            "inner-step-size",
            "> 0",
        ),
        (
            k(AmbiguityConfig {
                label_cost: Some(1.0),
                ..pen(SetKind::Kl, 1.0)
            }),
            "label-cost",
            "only the wasserstein",
        ),
        (
            k(AmbiguityConfig {
                kl_penalty: Some(1.0),
                ..pen(SetKind::Wasserstein, 1.0)
            }),
            "kl-penalty",
            "wfr",
        ),
        (
            k(AmbiguityConfig {
                weight_flow: true,
                ..pen(SetKind::Mmd, 1.0)
            }),
            "weight-flow",
            "kl and chi2",
        ),
        (
            k(AmbiguityConfig {
                penalty: Some(1.0),
                ..rad(SetKind::Kl, 0.1)
            }),
            "penalty",
            "not both",
        ),
        (
            k(AmbiguityConfig {
                set: SetKind::Chi2,
                ..Default::default()
            }),
            "radius",
            "needs --radius or --penalty",
        ),
        (
            pen(SetKind::Cvar, 1.0),
            "penalty",
            "cvar has only the constraint form",
        ),
        (
            k(AmbiguityConfig {
                norm: Some(Norm::L2),
                ..pen(SetKind::Wasserstein, 1.0)
            }),
            "norm",
            "constraint form",
        ),
        (
            k(AmbiguityConfig {
                norm: Some(Norm::L2),
                ..rad(SetKind::Kl, 0.1)
            }),
            "norm",
            "wasserstein set",
        ),
        (
            k(AmbiguityConfig {
                norm: Some(Norm::L2),
                label_cost: Some(1.0),
                ..rad(SetKind::Wasserstein, 0.1)
            }),
            "label-cost",
            "keeps labels fixed",
        ),
        (
            rad(SetKind::Wfr, 0.1),
            "radius",
            "wfr has only the penalty form",
        ),
        (
            k(AmbiguityConfig {
                approx: rff,
                ..rad(SetKind::Kl, 0.1)
            }),
            "approx",
            "for the mmd set",
        ),
        (
            k(AmbiguityConfig {
                approx: rff,
                ..pen(SetKind::Mmd, 1.0)
            }),
            "approx",
            "needs the exact kernel",
        ),
        (
            k(AmbiguityConfig {
                extra_support: 3,
                ..rad(SetKind::Chi2, 0.1)
            }),
            "extra-support",
            "for the mmd set",
        ),
        (
            k(AmbiguityConfig {
                extra_support: 200_000,
                ..pen(SetKind::Mmd, 1.0)
            }),
            "extra-support",
            "at most",
        ),
        (
            k(AmbiguityConfig {
                warm_start: true,
                ..Default::default()
            }),
            "warm-start",
            "without an ambiguity set",
        ),
        (
            k(AmbiguityConfig {
                radius: Some(0.1),
                ..Default::default()
            }),
            "radius",
            "without an ambiguity set",
        ),
    ];
    for (cfg, flag, words) in cases {
        let e = cfg
            .check_ref()
            .err()
            .unwrap_or_else(|| panic!("{cfg:?} passed"))
            .to_string();
        assert!(e.contains(&format!("`{flag}`")), "{flag}: {e}");
        assert!(e.contains(words), "{words}: {e}");
        assert_eq!(build_inner(&cfg).err().unwrap().to_string(), e);
    }
    // The mmd set with an approximation and a flow without the prox step is accepted.
    let ok = AmbiguityConfig {
        approx: rff,
        inner_flow: InnerFlow::Wfr,
        ..pen(SetKind::Mmd, 1.0)
    };
    assert!(
        matches!(ok.check().unwrap().set(), AmbiguitySet::Mmd { approx, .. } if *approx == rff)
    );
}
