//! The hand-written forward / backward passes (`robustflow::model::fast`) against candle's
//! autodiff (the reference) and finite differences, and the trainer's outer step against
//! the candle graph it replaced.

use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use robustflow::data::{load, LoadOptions, TabularData};
use robustflow::dro::{PointLoss, WorstCase};
use robustflow::model::{Activation, Architecture, Model, ModelKind};
use robustflow::train::{outer_gradient, outer_objective, OptimizerKind, TrainParams, Trainer};

fn cases() -> Vec<(Model, Option<usize>)> {
    let mut out = Vec::new();
    let mut seed = 0;
    for (kind, k, hidden) in [
        (ModelKind::Logistic, Some(2), vec![]),
        (ModelKind::Softmax, Some(3), vec![]),
        (ModelKind::Linear, None, vec![]),
        (ModelKind::Mlp, Some(2), vec![7, 5]),
        (ModelKind::Mlp, Some(4), vec![6]),
        (ModelKind::Mlp, None, vec![5, 3]),
    ] {
        for act in [Activation::Elu, Activation::Relu, Activation::Tanh] {
            if kind != ModelKind::Mlp && act != Activation::Elu {
                continue;
            }
            seed += 1;
            let a = Architecture::new(kind, 4, k, &hidden, act).unwrap();
            let m = Model::new(a, seed).unwrap();
            // Non-zero biases so every path is exercised.
            let mut th = m.params_flat().unwrap();
            let mut r = StdRng::seed_from_u64(seed + 100);
            th.iter_mut().for_each(|v| *v += r.random_range(-0.3..0.3));
            m.set_params_flat(&th).unwrap();
            out.push((m, k));
        }
    }
    out
}

fn data(n: usize, k: Option<usize>, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut r = StdRng::seed_from_u64(seed);
    let x: Vec<f64> = (0..n * 4).map(|_| r.random_range(-2.0..2.0)).collect();
    let y: Vec<f64> = (0..n)
        .map(|_| match k {
            Some(k) => r.random_range(0..k) as f64,
            None => r.random_range(-1.0..1.0),
        })
        .collect();
    (x, y)
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn losses_and_input_gradients_match_candle_autodiff() {
    for (m, k) in cases() {
        // 2500 rows: more than one block of the blocked (parallel) path.
        for n in [1, 9, 2500] {
            let (x, y) = data(n, k, n as u64);
            let (l, g) = m.losses_and_grads(&x, &y).unwrap();
            let l2 = m.losses(&x, &y).unwrap();
            let xv = Var::from_tensor(&m.input(&x).unwrap()).unwrap();
            let lt = m.loss_tensor(xv.as_tensor(), &y).unwrap();
            let gr = lt.sum_all().unwrap().backward().unwrap();
            let lc = lt.to_vec1::<f64>().unwrap();
            let gc = gr
                .get(xv.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            for i in 0..n {
                assert!(close(l[i], lc[i], 1e-12), "{:?} loss {i}", m.arch);
                assert_eq!(l[i], l2[i], "losses() and losses_and_grads() agree");
            }
            for i in 0..n * 4 {
                assert!(
                    close(g[i], gc[i], 1e-11),
                    "{:?} grad {i}: {} vs {}",
                    m.arch,
                    g[i],
                    gc[i]
                );
            }
            let out = m.outputs(&x).unwrap();
            let zc = m
                .forward(&m.input(&x).unwrap())
                .unwrap()
                .to_vec2::<f64>()
                .unwrap();
            for (a, b) in out.iter().flatten().zip(zc.iter().flatten()) {
                assert!(close(*a, *b, 1e-12));
            }
        }
    }
}

#[test]
fn input_gradients_match_finite_differences() {
    for (m, k) in cases() {
        let (x, y) = data(6, k, 3);
        let (_, g) = m.losses_and_grads(&x, &y).unwrap();
        let h = 1e-6;
        for j in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[j] += h;
            xm[j] -= h;
            let fp: f64 = m.losses(&xp, &y).unwrap().iter().sum();
            let fm: f64 = m.losses(&xm, &y).unwrap().iter().sum();
            let fd = (fp - fm) / (2.0 * h);
            // ReLU kinks: a coordinate within h of a kink gives a one-sided difference.
            let tol = if m.arch.activation == Activation::Relu {
                1e-3
            } else {
                1e-6
            };
            assert!(
                close(g[j], fd, tol),
                "{:?} x[{j}]: {} vs fd {fd}",
                m.arch,
                g[j]
            );
        }
    }
}

#[test]
fn outer_gradient_matches_candle_backward_of_outer_objective() {
    for (m, k) in cases() {
        for l2 in [0.0, 0.3] {
            let n = 1500; // two blocks of the accumulating path
            let (x, y) = data(n, k, 11);
            let mut r = StdRng::seed_from_u64(5);
            let mut w: Vec<f64> = (0..n).map(|_| r.random_range(0.0..1.0)).collect();
            let s: f64 = w.iter().sum();
            w.iter_mut().for_each(|v| *v /= s);
            let wc = WorstCase {
                x,
                y,
                w,
                ..Default::default()
            };
            let fast = outer_gradient(&m, &wc, l2).unwrap();
            let j = outer_objective(&m, &wc, l2).unwrap();
            let gs = j.backward().unwrap();
            let mut reference = Vec::new();
            for v in m.vars() {
                reference.extend(
                    gs.get(v.as_tensor())
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f64>()
                        .unwrap(),
                );
            }
            assert_eq!(fast.len(), reference.len());
            for (i, (a, b)) in fast.iter().zip(&reference).enumerate() {
                assert!(
                    close(*a, *b, 1e-11),
                    "{:?} l2 {l2} param {i}: {a} vs {b}",
                    m.arch
                );
            }
        }
    }
}

fn tabular(n: usize, dir: &std::path::Path) -> TabularData {
    let (x, _) = data(n, Some(2), 21);
    // A learnable rule so the loss moves.
    let mut csv = String::from("x0,x1,x2,x3,y\n");
    for r in x.chunks(4) {
        let y = if r[0] - 0.5 * r[2] > 0.0 { 1 } else { 0 };
        csv += &format!("{},{},{},{},{y}\n", r[0], r[1], r[2], r[3]);
    }
    let p = dir.join("d.csv");
    std::fs::write(&p, csv).unwrap();
    load(
        &p,
        &LoadOptions {
            test_fraction: 0.0,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn trainer_matches_the_candle_graph_and_optimiser_step_for_step() {
    // One batch per epoch: the shuffle only permutes the rows inside the batch, so the
    // old path (candle forward / backward of the outer objective, candle AdamW) can be
    // replayed here and compared epoch by epoch.
    let dir = tempfile::tempdir().unwrap();
    let data = tabular(40, dir.path());
    let params = TrainParams::default()
        .model(ModelKind::Mlp)
        .hidden(vec![8])
        .activation(Activation::Tanh)
        .epochs(6)
        .lr(0.05)
        .batch_size(64)
        .optimizer(OptimizerKind::AdamW)
        .seed(4)
        .validate()
        .unwrap();
    let trained = Trainer::new(params).fit(&data).unwrap();
    let a = Architecture::new(ModelKind::Mlp, 4, Some(2), &[8], Activation::Tanh).unwrap();
    let m = Model::new(a, 4).unwrap();
    let mut opt = AdamW::new(
        m.vars(),
        ParamsAdamW {
            lr: 0.05,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        },
    )
    .unwrap();
    let n = data.train.len();
    for e in 0..6 {
        let clean = m.losses(&data.train.x, &data.train.y).unwrap();
        let mean = clean.iter().sum::<f64>() / n as f64;
        assert!(
            close(mean, trained.report.epochs[e].loss, 1e-12),
            "epoch {e}: {mean} vs trainer {}",
            trained.report.epochs[e].loss
        );
        let wc = WorstCase {
            x: data.train.x.clone(),
            y: data.train.y.clone(),
            w: vec![1.0 / n as f64; n],
            ..Default::default()
        };
        let j = outer_objective(&m, &wc, 0.0).unwrap();
        opt.step(&j.backward().unwrap()).unwrap();
    }
    let a = m.params_flat().unwrap();
    let b = trained.model.params_flat().unwrap();
    for (u, v) in a.iter().zip(&b) {
        assert!(close(*u, *v, 1e-10), "{u} vs {v}");
    }
}

#[test]
fn model_new_pins_candles_thread_count() {
    let a = Architecture::new(ModelKind::Logistic, 3, Some(2), &[], Activation::Elu).unwrap();
    let _m = Model::new(a, 0).unwrap();
    let v: usize = std::env::var("RAYON_NUM_THREADS")
        .expect("Model::new sets RAYON_NUM_THREADS when it is unset")
        .parse()
        .unwrap();
    assert!(v >= 1);
    // candle now answers from the variable instead of parsing /proc/cpuinfo.
    assert_eq!(candle_core::utils::get_num_threads(), v);
}

#[test]
fn flat_adamw_is_bit_identical_to_candles_adamw() {
    use robustflow::train::FlatAdamW;
    let a = Architecture::new(ModelKind::Mlp, 4, Some(3), &[5], Activation::Elu).unwrap();
    let m1 = Model::new(a.clone(), 7).unwrap();
    let m2 = Model::new(a, 7).unwrap();
    let cfg = ParamsAdamW {
        lr: 0.03,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    let mut ours = FlatAdamW::new(m1.vars(), cfg.clone()).unwrap();
    let mut theirs = AdamW::new(m2.vars(), cfg).unwrap();
    let mut r = StdRng::seed_from_u64(9);
    for _ in 0..25 {
        let grads: Vec<Vec<f64>> = m1
            .vars()
            .iter()
            .map(|v| {
                (0..v.elem_count())
                    .map(|_| r.random_range(-2.0..2.0))
                    .collect()
            })
            .collect();
        ours.step(&grads).unwrap();
        let mut store = candle_core::backprop::GradStore::default();
        for (v, g) in m2.vars().iter().zip(&grads) {
            store.insert(
                v.as_tensor(),
                Tensor::from_slice(g, v.shape(), v.device()).unwrap(),
            );
        }
        theirs.step(&store).unwrap();
        assert_eq!(m1.params_flat().unwrap(), m2.params_flat().unwrap());
    }
}
