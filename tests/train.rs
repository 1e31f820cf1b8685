//! Trainer: ERM accuracy on breast cancer, the Danskin outer step, reproducibility,
//! divergence, parameter validation.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use robustflow::data::{load, LoadOptions, TabularData};
use robustflow::dro::{Batch, InnerMax, PointLoss, WorstCase};
use robustflow::model::{Activation, Architecture, Model, ModelKind};
use robustflow::train::{
    outer_gradient, EpochRecord, OptimizerKind, TrainParams, TrainedModel, Trainer,
};
use robustflow::{Error, Result};

fn breast_cancer() -> TabularData {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/breast_cancer.csv");
    load(
        path,
        &LoadOptions {
            seed: 1,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn erm_logistic_on_breast_cancer_is_accurate() {
    let data = breast_cancer();
    let p = TrainParams::default()
        .model(ModelKind::Logistic)
        .epochs(15)
        .lr(0.05)
        .batch_size(64)
        .seed(1)
        .validate()
        .unwrap();
    let t = Trainer::new(p).fit(&data).unwrap();
    let acc = t.evaluate(&data.test).unwrap().accuracy.unwrap();
    assert!(acc > 0.93, "test accuracy {acc}");
    assert_eq!(t.report.epochs.len(), 15);
    let last = &t.report.epochs[14];
    assert!(
        last.loss < t.report.epochs[0].loss,
        "training loss decreases"
    );
    // ERM: the robust loss is the clean loss.
    for e in &t.report.epochs {
        assert!((e.loss - e.robust_loss).abs() < 1e-12);
        assert_eq!(e.radius, 0.0);
    }
}

/// A test inner solver that moves the particles (a few ascent steps on the loss with a
/// quadratic pull back to the data) and puts non-uniform weights on them.
struct AscentInner;

impl InnerMax for AscentInner {
    fn name(&self) -> String {
        "test-ascent".into()
    }
    fn solve(&mut self, loss: &dyn PointLoss, b: &Batch) -> Result<WorstCase> {
        let mut x = b.x.to_vec();
        for _ in 0..5 {
            let (_, g) = loss.losses_and_grads(&x, b.y)?;
            for k in 0..x.len() {
                x[k] += 0.1 * (g[k] - (x[k] - b.x[k]));
            }
        }
        let l = loss.losses(&x, b.y)?;
        let m = l.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = l.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        let w: Vec<f64> = e.iter().map(|v| v / s).collect();
        let value = w.iter().zip(&l).map(|(a, b)| a * b).sum();
        Ok(WorstCase {
            x,
            y: b.y.to_vec(),
            w,
            value,
            radius: 0.0,
            multiplier: 1.0,
            ..WorstCase::default()
        })
    }
}

fn fd_check(model: &Model, wc: &WorstCase, l2: f64, f: impl Fn(&Model) -> f64, tol: f64) {
    let g = outer_gradient(model, wc, l2).unwrap();
    let theta = model.params_flat().unwrap();
    let h = 1e-5;
    for k in 0..theta.len() {
        let mut tp = theta.clone();
        tp[k] += h;
        model.set_params_flat(&tp).unwrap();
        let fp = f(model);
        tp[k] -= 2.0 * h;
        model.set_params_flat(&tp).unwrap();
        let fm = f(model);
        model.set_params_flat(&theta).unwrap();
        let fd = (fp - fm) / (2.0 * h);
        assert!(
            (g[k] - fd).abs() <= tol * g[k].abs().max(1.0),
            "param {k}: trainer gradient {} vs fd {fd}",
            g[k]
        );
    }
}

#[test]
fn outer_step_is_danskin_with_particles_fixed() {
    for (kind, k, hidden) in [
        (ModelKind::Logistic, Some(2), vec![]),
        (ModelKind::Softmax, Some(3), vec![]),
        (ModelKind::Mlp, Some(2), vec![5]),
        (ModelKind::Linear, None, vec![]),
    ] {
        let a = Architecture::new(kind, 3, k, &hidden, Activation::Tanh).unwrap();
        let m = Model::new(a, 2).unwrap();
        let mut r = StdRng::seed_from_u64(1);
        let n = 12;
        let x: Vec<f64> = (0..n * 3).map(|_| r.random_range(-1.0..1.0)).collect();
        let y: Vec<f64> = (0..n)
            .map(|_| match k {
                Some(k) => r.random_range(0..k) as f64,
                None => r.random_range(-1.0..1.0),
            })
            .collect();
        let idx: Vec<usize> = (0..n).collect();
        let b = Batch {
            x: &x,
            y: &y,
            d: 3,
            idx: &idx,
        };
        let wc = AscentInner.solve(&m, &b).unwrap();
        assert!(wc.x != x, "the particles moved");
        // J(theta) = sum_i w_i l(theta, x_i*) with x*, w frozen (plus SGD weight decay).
        for l2 in [0.0, 0.3] {
            let f = |mm: &Model| {
                let l = mm.losses(&wc.x, &wc.y).unwrap();
                let mut j: f64 = wc.w.iter().zip(&l).map(|(a, b)| a * b).sum();
                let th = mm.params_flat().unwrap();
                // Weight matrices only (not biases) are decayed.
                let mut k0 = 0;
                for (li, v) in mm.vars().iter().enumerate() {
                    let c = v.elem_count();
                    if li % 2 == 0 {
                        j += 0.5 * l2 * th[k0..k0 + c].iter().map(|t| t * t).sum::<f64>();
                    }
                    k0 += c;
                }
                j
            };
            fd_check(&m, &wc, l2, f, 1e-6);
        }
    }
}

/// KL penalty, closed form: w_i = softmax(l_i / lambda) at the data. The robust objective
/// is `R(theta) = lambda log mean_i exp(l_i(theta) / lambda)`, and Danskin says its gradient
/// is the trainer's step `sum_i w_i grad l_i` at this exact inner optimum.
struct KlExact(f64);

impl InnerMax for KlExact {
    fn name(&self) -> String {
        "kl-exact".into()
    }
    fn solve(&mut self, loss: &dyn PointLoss, b: &Batch) -> Result<WorstCase> {
        let l = loss.losses(b.x, b.y)?;
        let m = l.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = l.iter().map(|v| ((v - m) / self.0).exp()).collect();
        let s: f64 = e.iter().sum();
        let w: Vec<f64> = e.iter().map(|v| v / s).collect();
        Ok(WorstCase {
            x: b.x.to_vec(),
            y: b.y.to_vec(),
            value: w.iter().zip(&l).map(|(a, b)| a * b).sum(),
            w,
            radius: 0.0,
            multiplier: self.0,
            ..WorstCase::default()
        })
    }
}

#[test]
fn outer_gradient_at_exact_inner_optimum_is_robust_gradient() {
    let lambda = 0.7;
    let a = Architecture::new(ModelKind::Mlp, 3, Some(2), &[4], Activation::Elu).unwrap();
    let m = Model::new(a, 5).unwrap();
    let mut r = StdRng::seed_from_u64(2);
    let n = 10;
    let x: Vec<f64> = (0..n * 3).map(|_| r.random_range(-1.0..1.0)).collect();
    let y: Vec<f64> = (0..n).map(|_| r.random_range(0..2) as f64).collect();
    let idx: Vec<usize> = (0..n).collect();
    let b = Batch {
        x: &x,
        y: &y,
        d: 3,
        idx: &idx,
    };
    let wc = KlExact(lambda).solve(&m, &b).unwrap();
    let robust = |mm: &Model| {
        let l = mm.losses(&x, &y).unwrap();
        lambda * (l.iter().map(|v| (v / lambda).exp()).sum::<f64>() / n as f64).ln()
    };
    fd_check(&m, &wc, 0.0, robust, 1e-6);
}

fn strip_time(r: &[EpochRecord]) -> Vec<EpochRecord> {
    r.iter()
        .cloned()
        .map(|mut e| {
            e.time_s = 0.0;
            e
        })
        .collect()
}

#[test]
fn same_seed_gives_identical_report_and_save_load_predicts_identically() {
    let data = breast_cancer();
    let p = TrainParams::default()
        .model(ModelKind::Mlp)
        .hidden(vec![8])
        .epochs(3)
        .lr(0.01)
        .batch_size(50)
        .seed(4)
        .validate()
        .unwrap();
    let t1 = Trainer::new(p.clone())
        .fit_with(&data, Box::new(AscentInner))
        .unwrap();
    let t2 = Trainer::new(p)
        .fit_with(&data, Box::new(AscentInner))
        .unwrap();
    assert_eq!(strip_time(&t1.report.epochs), strip_time(&t2.report.epochs));
    assert_eq!(
        t1.model.params_flat().unwrap(),
        t2.model.params_flat().unwrap()
    );
    assert!(t1.report.epochs.iter().all(|e| e.robust_loss > e.loss));
    let dir = tempfile::tempdir().unwrap();
    t1.save(dir.path()).unwrap();
    let back = TrainedModel::load(dir.path()).unwrap();
    // report.json round trip (serde_json parses floats to within one ulp).
    assert_eq!(back.report.epochs.len(), t1.report.epochs.len());
    assert_eq!(back.report.params, t1.report.params);
    for (a, b) in back.report.epochs.iter().zip(&t1.report.epochs) {
        assert!((a.loss - b.loss).abs() <= 1e-15 * b.loss.abs());
        assert!((a.test_accuracy.unwrap() - b.test_accuracy.unwrap()).abs() <= 1e-15);
    }
    let a = t1.predict_proba(&data.test.x).unwrap();
    let b = back.predict_proba(&data.test.x).unwrap();
    for (u, v) in a.iter().flatten().zip(b.iter().flatten()) {
        assert_eq!(u.to_bits(), v.to_bits());
    }
}

#[test]
fn early_stopping_restores_the_best_validation_epoch() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/breast_cancer.csv");
    let data = load(
        path,
        &LoadOptions {
            val_fraction: 0.2,
            seed: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let p = TrainParams::default()
        .model(ModelKind::Mlp)
        .hidden(vec![32])
        .epochs(60)
        .lr(0.05)
        .patience(Some(3))
        .seed(1)
        .validate()
        .unwrap();
    let t = Trainer::new(p).fit(&data).unwrap();
    let r = &t.report;
    let best = r
        .epochs
        .iter()
        .map(|e| e.val_loss.unwrap())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(r.epochs[r.best_epoch - 1].val_loss.unwrap(), best);
    let now = t.evaluate(&data.val).unwrap().loss;
    assert!(
        (now - best).abs() < 1e-12,
        "restored parameters have the best val loss"
    );
    if r.stopped_early {
        assert_eq!(r.epochs.len(), r.best_epoch + 3);
    }
}

#[test]
fn divergence_stops_with_an_error_naming_the_step() {
    let data = breast_cancer();
    let p = TrainParams::default()
        .model(ModelKind::Mlp)
        .hidden(vec![16])
        .activation(Activation::Relu)
        .optimizer(OptimizerKind::Sgd)
        .epochs(20)
        .lr(1e30)
        .validate()
        .unwrap();
    match Trainer::new(p).fit(&data) {
        Err(Error::Diverged { detail, .. }) => assert!(detail.contains("epoch"), "{detail}"),
        other => panic!(
            "expected divergence, got {:?}",
            other.map(|t| t.report.epochs)
        ),
    }
}

#[test]
fn invalid_hyper_parameters_are_named() {
    for (p, name) in [
        (TrainParams::default().epochs(0), "epochs"),
        (TrainParams::default().lr(-1.0), "lr"),
        (TrainParams::default().lr(f64::NAN), "lr"),
        (TrainParams::default().batch_size(0), "batch-size"),
        (TrainParams::default().weight_decay(-0.1), "weight-decay"),
        (
            TrainParams::default().model(ModelKind::Mlp).hidden(vec![]),
            "hidden",
        ),
    ] {
        let e = format!("{}", p.validate().unwrap_err());
        assert!(e.contains(name), "{e}");
    }
}

/// Danskin with the crate's WRM solver (penalty form, squared cost): at the inner fixed
/// point `x* = x0 + grad_x l(x*) / (2 gamma)`, the trainer's step equals the gradient of the
/// robust surrogate `phi(theta) = mean_i sup_x [l(theta, x) - gamma ||x - x0_i||^2]`,
/// computed here by re-solving the inner problem at each perturbed theta.
#[test]
fn wrm_outer_gradient_is_gradient_of_the_robust_surrogate() {
    use robustflow::dro::{build_inner, AmbiguityConfig, SetKind};
    let gamma = 1.0;
    let cfg = AmbiguityConfig {
        set: SetKind::Wasserstein,
        penalty: Some(gamma),
        inner_steps: 200,
        inner_step_size: 1.0,
        ..AmbiguityConfig::default()
    };
    let mut inner = build_inner(&cfg).unwrap();
    let a = Architecture::new(ModelKind::Logistic, 4, Some(2), &[], Activation::Elu).unwrap();
    let m = Model::new(a, 3).unwrap();
    let mut r = StdRng::seed_from_u64(8);
    let n = 16;
    let x: Vec<f64> = (0..n * 4).map(|_| r.random_range(-1.0..1.0)).collect();
    let y: Vec<f64> = (0..n).map(|_| r.random_range(0..2) as f64).collect();
    let idx: Vec<usize> = (0..n).collect();
    let b = Batch {
        x: &x,
        y: &y,
        d: 4,
        idx: &idx,
    };
    let wc = inner.solve(&m, &b).unwrap();
    assert!(wc.x != x, "the particles moved");
    // The fixed point holds (the inner problem is solved exactly).
    let (_, g) = m.losses_and_grads(&wc.x, &wc.y).unwrap();
    for k in 0..x.len() {
        assert!((wc.x[k] - x[k] - g[k] / (2.0 * gamma)).abs() < 1e-9);
    }
    let mut inner2 = build_inner(&cfg).unwrap();
    let phi = |mm: &Model| {
        let w = inner2.solve(mm, &b).unwrap();
        let l = mm.losses(&w.x, &w.y).unwrap();
        (0..n)
            .map(|i| {
                let c: f64 = (0..4)
                    .map(|j| (w.x[i * 4 + j] - x[i * 4 + j]).powi(2))
                    .sum();
                w.w[i] * (l[i] - gamma * c)
            })
            .sum::<f64>()
    };
    let phi = std::cell::RefCell::new(phi);
    fd_check(&m, &wc, 0.0, |mm| (phi.borrow_mut())(mm), 1e-6);
}

#[test]
fn wasserstein_training_reports_robust_loss_above_clean_loss() {
    use robustflow::dro::{AmbiguityConfig, SetKind};
    let data = breast_cancer();
    let p = TrainParams::default()
        .model(ModelKind::Logistic)
        .epochs(3)
        .lr(0.05)
        .seed(1)
        .ambiguity(AmbiguityConfig {
            set: SetKind::Wasserstein,
            penalty: Some(0.5),
            inner_steps: 10,
            inner_step_size: 0.5,
            ..AmbiguityConfig::default()
        })
        .validate()
        .unwrap();
    let t = Trainer::new(p).fit(&data).unwrap();
    assert_eq!(t.report.ambiguity, "wasserstein");
    for e in &t.report.epochs {
        assert!(e.robust_loss > e.loss, "{e:?}");
        assert!(e.radius > 0.0);
        assert_eq!(e.multiplier, Some(0.5));
    }
}

#[test]
fn certify_brackets_the_w1_closed_form_of_a_trained_logistic_model() {
    use robustflow::dro::{AmbiguityConfig, Norm, SetKind};
    let data = breast_cancer();
    let p = TrainParams::default()
        .model(ModelKind::Logistic)
        .epochs(5)
        .lr(0.05)
        .seed(1)
        .validate()
        .unwrap();
    let t = Trainer::new(p).fit(&data).unwrap();
    let cfg = AmbiguityConfig {
        set: SetKind::Wasserstein,
        norm: Some(Norm::L2),
        ..AmbiguityConfig::default()
    };
    let rows = t.certify(&data.test, &cfg, &[0.0, 0.05, 0.2]).unwrap();
    assert_eq!(rows.len(), 3);
    let emp = t.evaluate(&data.test).unwrap().loss;
    for r in &rows {
        assert!((r.empirical_risk - emp).abs() < 1e-12);
        let c = r
            .closed_form
            .expect("closed form for a logistic model under W1");
        assert!(
            r.lower_bound <= c + 1e-9 && r.lower_bound >= emp - 1e-12,
            "{r:?}"
        );
        if let Some(u) = r.upper_bound {
            assert!(u >= c - 1e-9, "{r:?}");
        }
    }
    assert!(
        (rows[0].closed_form.unwrap() - emp).abs() < 1e-12,
        "radius 0: ERM"
    );
}

/// After minibatch ERM the reported objective is the mean training loss and the gradient
/// norm is the norm of the full-data gradient (ERM's per-batch objectives average to the
/// full-data one), computed batch by batch.
#[test]
fn reported_objective_and_gradient_norm_are_the_full_data_ones_for_erm() {
    let data = breast_cancer();
    let p = TrainParams::default()
        .model(ModelKind::Logistic)
        .epochs(3)
        .lr(0.05)
        .batch_size(50)
        .seed(2)
        .validate()
        .unwrap();
    let t = Trainer::new(p).fit(&data).unwrap();
    let full = t.evaluate(&data.train).unwrap().loss;
    let obj = t.report.objective.unwrap();
    assert!(
        (obj - full).abs() <= 1e-12 * full.max(1.0),
        "{obj} vs {full}"
    );
    let n = data.train.len();
    let wc = WorstCase {
        x: data.train.x.clone(),
        y: data.train.y.clone(),
        w: vec![1.0 / n as f64; n],
        value: full,
        radius: 0.0,
        multiplier: 0.0,
        upper_bound: None,
        closed_form: None,
    };
    let g = outer_gradient(&t.model, &wc, 0.0).unwrap();
    let gn = g.iter().map(|v| v * v).sum::<f64>().sqrt();
    let rep = t.report.grad_norm.unwrap();
    assert!((gn - rep).abs() <= 1e-10 * gn.max(1e-12), "{gn} vs {rep}");
}
