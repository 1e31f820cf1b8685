//! Models: input gradients vs finite differences, the stable BCE, save/load, attacks.

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use robustflow::data::{attack, Attack, Norm};
use robustflow::dro::PointLoss;
use robustflow::model::{bce_with_logits, Activation, Architecture, Model, ModelFile, ModelKind};

fn random_data(n: usize, d: usize, k: Option<usize>, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut r = StdRng::seed_from_u64(seed);
    let x: Vec<f64> = (0..n * d).map(|_| r.random_range(-1.5..1.5)).collect();
    let y: Vec<f64> = (0..n)
        .map(|_| match k {
            Some(k) => r.random_range(0..k) as f64,
            None => r.random_range(-2.0..2.0),
        })
        .collect();
    (x, y)
}

fn models() -> Vec<(String, Model)> {
    let d = 4;
    let mut out = Vec::new();
    let mk = |kind, k, hidden: &[usize], act| {
        let a = Architecture::new(kind, d, k, hidden, act).unwrap();
        Model::new(a, 7).unwrap()
    };
    out.push((
        "logistic".into(),
        mk(ModelKind::Logistic, Some(2), &[], Activation::Elu),
    ));
    out.push((
        "softmax".into(),
        mk(ModelKind::Softmax, Some(3), &[], Activation::Elu),
    ));
    out.push((
        "linear".into(),
        mk(ModelKind::Linear, None, &[], Activation::Elu),
    ));
    for act in [Activation::Elu, Activation::Tanh, Activation::Relu] {
        out.push((
            format!("mlp-bin-{act:?}"),
            mk(ModelKind::Mlp, Some(2), &[8, 5], act),
        ));
        out.push((
            format!("mlp-multi-{act:?}"),
            mk(ModelKind::Mlp, Some(4), &[6], act),
        ));
        out.push((
            format!("mlp-reg-{act:?}"),
            mk(ModelKind::Mlp, None, &[6], act),
        ));
    }
    // Non-trivial biases and larger weights so the losses are not near-linear.
    for (_, m) in &out {
        let mut r = StdRng::seed_from_u64(11);
        let p: Vec<f64> = m
            .params_flat()
            .unwrap()
            .iter()
            .map(|v| 1.5 * v + r.random_range(-0.3..0.3))
            .collect();
        m.set_params_flat(&p).unwrap();
    }
    out
}

#[test]
fn input_gradients_equal_central_finite_differences() {
    for (name, m) in models() {
        let (x, y) = random_data(6, m.dim(), m.n_classes(), 3);
        let (l, g) = m.losses_and_grads(&x, &y).unwrap();
        assert_eq!(l, m.losses(&x, &y).unwrap(), "{name}: losses agree");
        let h = 1e-5;
        let d = m.dim();
        for i in 0..6 {
            for j in 0..d {
                let mut xp = x.clone();
                let mut xm = x.clone();
                xp[i * d + j] += h;
                xm[i * d + j] -= h;
                // Only sample i moves: its own loss changes (row i of the gradient).
                let lp = m.losses(&xp, &y).unwrap()[i];
                let lm = m.losses(&xm, &y).unwrap()[i];
                let fd = (lp - lm) / (2.0 * h);
                let a = g[i * d + j];
                assert!(
                    (a - fd).abs() <= 1e-6 * a.abs().max(1.0),
                    "{name}: sample {i} coord {j}: autodiff {a} vs fd {fd}"
                );
            }
        }
    }
}

#[test]
fn stable_bce_matches_naive_and_stays_finite() {
    let dev = Device::Cpu;
    let zs: Vec<f64> = (-60..=60).map(|k| k as f64 * 0.5).collect();
    for y in [0.0, 1.0, 0.3] {
        let z = Tensor::from_slice(&zs, zs.len(), &dev).unwrap();
        let yt = Tensor::full(y, zs.len(), &dev).unwrap();
        let l: Vec<f64> = bce_with_logits(&z, &yt).unwrap().to_vec1().unwrap();
        for (k, &zk) in zs.iter().enumerate() {
            let s = 1.0 / (1.0 + (-zk).exp());
            let naive = -y * s.ln() - (1.0 - y) * (1.0 - s).ln();
            // Where the naive formula is finite and well conditioned (beyond |z| ~ 15,
            // `1 - sigmoid(z)` loses digits to cancellation).
            if naive.is_finite() && zk.abs() <= 15.0 {
                assert!(
                    (l[k] - naive).abs() <= 1e-9 * naive.abs().max(1.0),
                    "z {zk} y {y}: {} vs naive {naive}",
                    l[k]
                );
            }
        }
    }
    let z = Tensor::from_slice(&[1000.0, -1000.0, 1000.0, -1000.0], 4, &dev).unwrap();
    let yt = Tensor::from_slice(&[0.0, 1.0, 1.0, 0.0], 4, &dev).unwrap();
    let l: Vec<f64> = bce_with_logits(&z, &yt).unwrap().to_vec1().unwrap();
    assert_eq!(l, vec![1000.0, 1000.0, 0.0, 0.0]);
    // The naive formula is not finite there: the point of the stable form.
    let s: f64 = 1.0 / (1.0 + (1000.0f64).exp());
    assert!(!(-(s.ln())).is_finite());
}

#[test]
fn save_load_predicts_bitwise_identically() {
    let dir = tempfile::tempdir().unwrap();
    for (name, m) in models() {
        let p = dir.path().join(&name);
        let meta = ModelFile::new(m.arch.clone(), None, serde_json::json!({"note": name}));
        m.save(&p, &meta).unwrap();
        assert!(p.join("model.safetensors").exists() && p.join("model.json").exists());
        let (m2, meta2) = Model::load(&p).unwrap();
        assert_eq!(meta2, meta);
        let (x, y) = random_data(20, m.dim(), m.n_classes(), 5);
        let a = m.outputs(&x).unwrap();
        let b = m2.outputs(&x).unwrap();
        for (ra, rb) in a.iter().zip(&b) {
            for (u, v) in ra.iter().zip(rb) {
                assert_eq!(u.to_bits(), v.to_bits(), "{name}");
            }
        }
        assert_eq!(m.predict(&x).unwrap(), m2.predict(&x).unwrap());
        assert_eq!(m.losses(&x, &y).unwrap(), m2.losses(&x, &y).unwrap());
    }
}

#[test]
fn bad_labels_are_an_error_not_a_panic() {
    let (_, m) = models().into_iter().find(|(n, _)| n == "softmax").unwrap();
    let (x, _) = random_data(2, 4, None, 1);
    let e = m.losses(&x, &[0.0, 3.0]).unwrap_err();
    assert!(format!("{e}").contains("class index"), "{e}");
    assert!(Architecture::new(ModelKind::Logistic, 3, Some(3), &[], Activation::Elu).is_err());
    assert!(Architecture::new(ModelKind::Linear, 3, Some(2), &[], Activation::Elu).is_err());
}

#[test]
fn pgd_stays_in_the_ball_and_increases_the_loss() {
    for (name, m) in models() {
        let (x, y) = random_data(15, m.dim(), m.n_classes(), 9);
        let d = m.dim();
        let clean = m.losses(&x, &y).unwrap();
        for norm in [Norm::Linf, Norm::L2] {
            let eps = 0.3;
            let xa = attack(&m, &x, &y, &Attack::pgd(norm, eps)).unwrap();
            let la = m.losses(&xa, &y).unwrap();
            for i in 0..15 {
                let dx: Vec<f64> = (0..d).map(|j| xa[i * d + j] - x[i * d + j]).collect();
                match norm {
                    Norm::Linf => assert!(dx.iter().all(|v| v.abs() <= eps + 1e-12), "{name}"),
                    Norm::L2 => {
                        let n = dx.iter().map(|v| v * v).sum::<f64>().sqrt();
                        assert!(n <= eps + 1e-12, "{name}: {n}")
                    }
                }
                assert!(
                    la[i] >= clean[i],
                    "{name} {norm:?}: {} < {}",
                    la[i],
                    clean[i]
                );
            }
            // On average the attack strictly increases the loss.
            assert!(la.iter().sum::<f64>() > clean.iter().sum::<f64>(), "{name}");
        }
    }
}

#[test]
fn fgsm_linf_on_logistic_equals_closed_form() {
    let a = Architecture::new(ModelKind::Logistic, 5, Some(2), &[], Activation::Elu).unwrap();
    let m = Model::new(a, 0).unwrap();
    let w = [0.8, -1.3, 0.2, 0.0, 2.1];
    let b = -0.4;
    let mut p = w.to_vec();
    p.push(b);
    m.set_params_flat(&p).unwrap();
    let (x, y) = random_data(30, 5, Some(2), 4);
    let w1: f64 = w.iter().map(|v: &f64| v.abs()).sum();
    for eps in [0.05, 0.3, 1.0] {
        let xa = attack(&m, &x, &y, &Attack::fgsm(Norm::Linf, eps)).unwrap();
        let la = m.losses(&xa, &y).unwrap();
        for i in 0..30 {
            let s = 2.0 * y[i] - 1.0; // labels +-1
            let z: f64 = (0..5).map(|j| w[j] * x[i * 5 + j]).sum::<f64>() + b;
            let closed = (1.0 + (-s * z + eps * w1).exp()).ln();
            assert!(
                (la[i] - closed).abs() <= 1e-12 * closed.max(1.0),
                "eps {eps} sample {i}: {} vs {closed}",
                la[i]
            );
        }
    }
}
