//! The exact full-batch solver: optimality conditions checked with candle's autodiff,
//! agreement with independent algorithms (proximal gradient, 1-D duals, brute-force inner
//! sups), no worse than long AdamW, separable data detected; minibatch training reports its
//! gradient norm; a diverging run stops with a message and saves nothing.

use rand::{Rng, SeedableRng};
use robustflow::data::{load, LoadOptions, TabularData};
use robustflow::dro::{AmbiguityConfig, Batch, Erm, InnerMax, Norm, SetKind};
use robustflow::model::{Head, ModelKind};
use robustflow::solve::{ExactProblem, ExactSet, Status};
use robustflow::train::{outer_gradient, SolverKind, TrainParams, Trainer};

fn dataset(name: &str, model: ModelKind) -> TabularData {
    let path = format!("{}/datasets/{name}", env!("CARGO_MANIFEST_DIR"));
    let task = (model == ModelKind::Linear).then_some(robustflow::data::Task::Regression);
    load(
        path,
        &LoadOptions {
            seed: 2,
            task,
            ..Default::default()
        },
    )
    .unwrap()
}

fn w1(norm: Norm, r: f64) -> AmbiguityConfig {
    AmbiguityConfig {
        norm: Some(norm),
        ..AmbiguityConfig::constrained(SetKind::Wasserstein, r)
    }
}

/// Gradient of the mean loss (candle autodiff, independent of the solver's derivatives).
fn mean_loss_grad(t: &robustflow::train::TrainedModel, data: &TabularData) -> Vec<f64> {
    let idx: Vec<usize> = (0..data.train.len()).collect();
    let b = Batch {
        x: &data.train.x,
        y: &data.train.y,
        d: data.train.d,
        idx: &idx,
    };
    let wc = Erm.solve(&t.model, &b).unwrap();
    outer_gradient(&t.model, &wc, 0.0).unwrap()
}

#[test]
fn w1_logistic_fit_satisfies_the_subgradient_condition() {
    let data = dataset("breast_cancer.csv", ModelKind::Logistic);
    let d = data.train.d;
    for (norm, r) in [
        (Norm::L2, 0.05),
        (Norm::L2, 1.0),
        (Norm::Linf, 0.01),
        (Norm::L1, 0.05),
    ] {
        let p = TrainParams::default()
            .model(ModelKind::Logistic)
            .solver(SolverKind::Exact)
            .ambiguity(w1(norm, r))
            .validate()
            .unwrap();
        let t = Trainer::new(p).fit(&data).unwrap();
        let rep = &t.report;
        assert_eq!(rep.solver, "exact");
        assert_eq!(rep.status.as_deref(), Some("converged"));
        assert!(rep.optimality.unwrap() <= 1e-9, "{:?}", rep.optimality);
        let g = mean_loss_grad(&t, &data);
        let theta = t.model.params_flat().unwrap();
        let w = &theta[..d];
        // The intercept is not penalised: its derivative vanishes.
        assert!(g[d].abs() < 1e-6, "{norm:?} {r}: d/db = {}", g[d]);
        // 0 in grad + r * subdifferential of the dual norm at w.
        let dual_sub_dist = match norm {
            Norm::L2 => {
                let nw = w.iter().map(|v| v * v).sum::<f64>().sqrt();
                assert!(nw > 1e-6);
                (0..d)
                    .map(|j| (g[j] + r * w[j] / nw).powi(2))
                    .sum::<f64>()
                    .sqrt()
            }
            // cost linf -> dual l1: coordinate-wise sign(w_j) or [-1, 1] at 0.
            Norm::Linf => (0..d)
                .map(|j| {
                    if w[j].abs() > 1e-7 {
                        (g[j] + r * w[j].signum()).abs()
                    } else {
                        (g[j].abs() - r).max(0.0)
                    }
                })
                .fold(0.0, f64::max),
            // cost l1 -> dual linf: -g / r lies in the l1 unit ball, supported on the
            // coordinates where |w_j| is maximal, with the signs of w.
            Norm::L1 => {
                let m = w.iter().fold(0.0f64, |a, v| a.max(v.abs()));
                let mut off = 0.0f64;
                let mut l1 = 0.0;
                for j in 0..d {
                    if (w[j].abs() - m).abs() > 1e-6 * m {
                        off = off.max(g[j].abs());
                    } else {
                        off = off.max((g[j] * w[j].signum()).max(0.0));
                    }
                    l1 += g[j].abs();
                }
                off.max((l1 - r).abs())
            }
        };
        assert!(
            dual_sub_dist < 1e-6,
            "{norm:?} r = {r}: subgradient residual {dual_sub_dist}"
        );
    }
}

fn synthetic(n: usize, d: usize, seed: u64, head: Head) -> (Vec<f64>, Vec<f64>) {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let x: Vec<f64> = (0..n * d).map(|_| r.random_range(-1.5..1.5)).collect();
    let y = (0..n)
        .map(|i| {
            let s = x[i * d] - 0.5 * x[i * d + 1] + r.random_range(-1.5..1.5);
            match head {
                Head::Binary => (s > 0.0) as u8 as f64,
                Head::Multi(k) => ((s + 1.5).max(0.0) as usize).min(k - 1) as f64,
                Head::Regression => s,
            }
        })
        .collect();
    (x, y)
}

/// `mean l + r ||w||_1` (the 1-Wasserstein set with linf cost) by proximal gradient
/// (ISTA with soft thresholding): an independent algorithm.
#[test]
fn w1_l1_penalty_agrees_with_proximal_gradient() {
    let (n, d) = (80, 3);
    let (x, y) = synthetic(n, d, 5, Head::Binary);
    let r = 0.05;
    let p = ExactProblem {
        x: &x,
        y: &y,
        d,
        head: Head::Binary,
        wd: 0.0,
        set: ExactSet::W1 {
            norm: Norm::Linf,
            eps: r,
        },
        tol: 1e-9,
        max_iter: 500,
    };
    let fit = p.solve().unwrap();
    assert_eq!(fit.status, Status::Converged);
    // ISTA: step 1/L with L = max eigenvalue bound of X~^T X~ / (4 n).
    let lip = (0..n)
        .map(|i| 1.0 + x[i * d..(i + 1) * d].iter().map(|v| v * v).sum::<f64>())
        .sum::<f64>()
        / (4.0 * n as f64);
    let step = 1.0 / lip;
    let mut th = vec![0.0; d + 1];
    for _ in 0..200_000 {
        let mut g = vec![0.0; d + 1];
        for i in 0..n {
            let xi = &x[i * d..(i + 1) * d];
            let s = th[d] + (0..d).map(|j| xi[j] * th[j]).sum::<f64>();
            let e = 1.0 / (1.0 + (-s).exp()) - y[i];
            for j in 0..d {
                g[j] += e * xi[j] / n as f64;
            }
            g[d] += e / n as f64;
        }
        for j in 0..=d {
            th[j] -= step * g[j];
        }
        for v in th.iter_mut().take(d) {
            *v = v.signum() * (v.abs() - step * r).max(0.0);
        }
    }
    let ista = p.objective(&th).unwrap();
    assert!(
        (fit.objective - ista).abs() < 1e-6 && fit.objective <= ista + 1e-9 * ista.max(1.0),
        "exact {} vs ISTA {ista}",
        fit.objective
    );
}

/// KL ball: the solver's objective is the 1-D dual at its losses (robustflow's golden
/// section, a different code path) and no point nearby does better; chi2 and CVaR the same
/// with their closed forms.
#[test]
fn phi_divergence_fits_match_their_closed_forms_and_are_minimal() {
    for head in [Head::Binary, Head::Multi(3), Head::Regression] {
        let (n, d) = (60, 3);
        let (x, y) = synthetic(n, d, 11, head);
        for set in [
            ExactSet::KlRadius(0.2),
            ExactSet::KlPenalty(0.5),
            ExactSet::Chi2Radius(0.3),
            ExactSet::Chi2Penalty(0.5),
            ExactSet::Cvar(0.4),
            ExactSet::Erm,
        ] {
            let p = ExactProblem {
                x: &x,
                y: &y,
                d,
                head,
                wd: 0.01,
                set,
                tol: 1e-9,
                max_iter: 500,
            };
            let fit = p.solve().unwrap();
            assert_eq!(fit.status, Status::Converged, "{head:?} {set:?}");
            assert!(fit.optimality <= 1e-9);
            // Independent value of the objective at theta*.
            let indep = p.objective(&fit.theta).unwrap();
            assert!(
                (fit.objective - indep).abs() < 1e-7,
                "{head:?} {set:?}: {} vs {indep}",
                fit.objective
            );
            // Local minimality against random perturbations.
            let mut rng = rand::rngs::StdRng::seed_from_u64(3);
            for _ in 0..20 {
                let th: Vec<f64> = fit
                    .theta
                    .iter()
                    .map(|v| v + rng.random_range(-1e-3..1e-3))
                    .collect();
                assert!(
                    p.objective(&th).unwrap() >= fit.objective - 1e-10,
                    "{head:?} {set:?}"
                );
            }
        }
    }
}

/// The squared-cost penalty: the solver's objective equals the brute-force inner sups
/// (a dense search along the weight direction) at its parameters.
#[test]
fn squared_cost_penalty_matches_brute_force_inner_sups() {
    let (n, d) = (50, 3);
    for head in [Head::Binary, Head::Regression] {
        let (x, y) = synthetic(n, d, 17, head);
        let gamma = 2.0;
        let p = ExactProblem {
            x: &x,
            y: &y,
            d,
            head,
            wd: 0.0,
            set: ExactSet::W2Penalty(gamma),
            tol: 1e-9,
            max_iter: 500,
        };
        let fit = p.solve().unwrap();
        assert_eq!(fit.status, Status::Converged, "{head:?}");
        let w = &fit.theta[..d];
        let a: f64 = w.iter().map(|v| v * v).sum();
        let mut brute = 0.0;
        for i in 0..n {
            let s = fit.theta[d] + (0..d).map(|j| x[i * d + j] * w[j]).sum::<f64>();
            let mut best = f64::NEG_INFINITY;
            // x = x_i + t w / ||w||: score s + t ||w||, cost t^2.
            for k in -200_000..=200_000 {
                let t = k as f64 * 1e-5;
                let z = s + t * a.sqrt();
                let l = match head {
                    Head::Regression => (z - y[i]).powi(2),
                    _ => z.max(0.0) + (-z.abs()).exp().ln_1p() - z * y[i],
                };
                best = best.max(l - gamma * t * t);
            }
            brute += best / n as f64;
        }
        assert!(
            (brute - fit.objective).abs() < 1e-6,
            "{head:?}: brute {brute} vs {}",
            fit.objective
        );
    }
}

#[test]
fn exact_is_no_worse_than_long_adamw() {
    let data = dataset("breast_cancer.csv", ModelKind::Logistic);
    let cfg = w1(Norm::L2, 0.1);
    let exact = Trainer::new(
        TrainParams::default()
            .solver(SolverKind::Exact)
            .ambiguity(cfg.clone())
            .validate()
            .unwrap(),
    )
    .fit(&data)
    .unwrap();
    let adam = Trainer::new(
        TrainParams::default()
            .ambiguity(cfg)
            .epochs(300)
            .lr(0.01)
            .batch_size(10_000)
            .validate()
            .unwrap(),
    )
    .fit(&data)
    .unwrap();
    let p = ExactProblem {
        x: &data.train.x,
        y: &data.train.y,
        d: data.train.d,
        head: Head::Binary,
        wd: 0.0,
        set: ExactSet::W1 {
            norm: Norm::L2,
            eps: 0.1,
        },
        tol: 1e-9,
        max_iter: 500,
    };
    let fe = p.objective(&exact.model.params_flat().unwrap()).unwrap();
    let fa = p.objective(&adam.model.params_flat().unwrap()).unwrap();
    assert!((fe - exact.report.objective.unwrap()).abs() < 1e-12);
    assert!(fe <= fa, "exact {fe} vs AdamW {fa}");
    assert!(adam.report.grad_norm.unwrap().is_finite());
    assert_eq!(adam.report.solver, "adamw");
}

#[test]
fn separable_data_is_detected_and_reported() {
    let (n, d) = (40, 2);
    let mut r = rand::rngs::StdRng::seed_from_u64(1);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let c = (i % 2) as f64;
        x.push(r.random_range(0.5..2.0) * (2.0 * c - 1.0));
        x.push(r.random_range(-1.0..1.0));
        y.push(c);
    }
    for set in [
        ExactSet::Erm,
        ExactSet::KlRadius(0.1),
        ExactSet::Chi2Radius(0.2),
        ExactSet::Cvar(0.5),
    ] {
        let p = ExactProblem {
            x: &x,
            y: &y,
            d,
            head: Head::Binary,
            wd: 0.0,
            set,
            tol: 1e-9,
            max_iter: 500,
        };
        let fit = p.solve().unwrap();
        assert_eq!(fit.status, Status::Separable, "{set:?}");
        assert!(fit.warnings[0].contains("--weight-decay"));
        // With weight decay a minimiser exists.
        let p = ExactProblem { wd: 0.01, ..p };
        assert_eq!(p.solve().unwrap().status, Status::Converged, "{set:?}");
    }
    // Non-separable data never trigger it.
    let (x, y) = synthetic(80, 3, 5, Head::Binary);
    let p = ExactProblem {
        x: &x,
        y: &y,
        d: 3,
        head: Head::Binary,
        wd: 0.0,
        set: ExactSet::Erm,
        tol: 1e-9,
        max_iter: 500,
    };
    assert_eq!(p.solve().unwrap().status, Status::Converged);
}

#[test]
fn auto_picks_exact_for_convex_and_minibatch_for_mlp() {
    let data = dataset("wine.csv", ModelKind::Softmax);
    let t = Trainer::new(
        TrainParams::default()
            .model(ModelKind::Softmax)
            .solver(SolverKind::Auto)
            .ambiguity(w1(Norm::L2, 0.05))
            .validate()
            .unwrap(),
    )
    .fit(&data)
    .unwrap();
    assert_eq!(t.report.solver, "exact");
    let t = Trainer::new(
        TrainParams::default()
            .model(ModelKind::Mlp)
            .hidden(vec![8])
            .epochs(30)
            .lr(0.02)
            .solver(SolverKind::Auto)
            .lr_schedule(robustflow::train::LrSchedule::Cosine)
            .validate()
            .unwrap(),
    )
    .fit(&data)
    .unwrap();
    assert_eq!(t.report.solver, "adamw");
    assert!(t.report.warnings[0].contains("MLP"));
    let g = t.report.grad_norm.unwrap();
    assert!(g.is_finite() && g >= 0.0);
    let e = Trainer::new(
        TrainParams::default()
            .model(ModelKind::Mlp)
            .solver(SolverKind::Exact)
            .validate()
            .unwrap(),
    )
    .fit(&data);
    assert!(e.is_err());
}

#[test]
fn diverging_sgd_exits_non_zero_and_saves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_robustflow"))
        .args(["--quiet", "train", "--data"])
        .arg(format!(
            "{}/datasets/diabetes.csv",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args([
            "--model",
            "linear",
            "--optimizer",
            "sgd",
            "--lr",
            "0.5",
            "--epochs",
            "20",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("diverged") && err.contains("--lr"), "{err}");
    assert!(!out.join("model.safetensors").exists());
    assert!(!out.join("report.json").exists());
}

#[test]
fn exact_solver_names_the_minibatch_settings_it_does_not_use() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str], out: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_robustflow"))
            .args(["--quiet", "train", "--data", "datasets/breast_cancer.csv"])
            .args(["--model", "logistic", "--ambiguity", "wasserstein"])
            .args(["--w1-norm", "l2", "--radius", "0.1"])
            .args(extra)
            .arg("--out")
            .arg(dir.path().join(out))
            .output()
            .unwrap()
    };
    let o = run(&["--epochs", "7", "--lr", "0.3"], "a");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("does not use --epochs 7, --lr 0.3") && e.contains("--solver adamw"),
        "{e}"
    );
    // with the defaults nothing is said about them
    let o = run(&[], "b");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(!e.contains("does not use"), "{e}");
}
