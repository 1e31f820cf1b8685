//! Regression benchmark for the training step's fixed costs (issue 19).
//!
//! 1. candle's thread count: candle 0.11 calls `get_num_threads()` on every CPU matmul,
//!    which parses `/proc/cpuinfo` unless `RAYON_NUM_THREADS` is set. `Model::new` pins
//!    the variable ([`robustflow::model::pin_candle_threads`]); this measures the per-call
//!    cost after building a model and **fails** (exit 1) if it is back above 5 us (the
//!    parse costs tens of microseconds; reading the variable well under one).
//! 2. Per-call costs of a 128-row minibatch (MLP 20-64-64-1, ReLU): a candle matmul, the
//!    hand-written losses + input gradients (one WRM inner step), the same through
//!    candle's autodiff, and the hand-written outer gradient.
//!
//! Run it without `RAYON_NUM_THREADS` in the environment:
//!
//! ```sh
//! env -u RAYON_NUM_THREADS cargo run --release --example bench_train_step
//! ```

use candle_core::{Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use robustflow::dro::{PointLoss, WorstCase};
use robustflow::model::{Activation, Architecture, Model, ModelKind};
use std::time::Instant;

fn per_call(n: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() / n as f64 * 1e6
}

fn main() -> robustflow::Result<()> {
    let preset = std::env::var("RAYON_NUM_THREADS").ok();
    let a = Architecture::new(ModelKind::Mlp, 20, Some(2), &[64, 64], Activation::Relu)?;
    let model = Model::new(a, 0)?;
    let threads_us = per_call(2000, || {
        std::hint::black_box(candle_core::utils::get_num_threads());
    });
    let mut r = StdRng::seed_from_u64(0);
    let n = 128;
    let x: Vec<f64> = (0..n * 20).map(|_| r.random_range(-2.0..2.0)).collect();
    let y: Vec<f64> = (0..n).map(|_| r.random_range(0..2) as f64).collect();
    let xt = model.input(&x)?;
    let w = Tensor::from_slice(&vec![0.01; 20 * 64], (20, 64), &candle_core::Device::Cpu)?;
    let matmul_us = per_call(2000, || {
        std::hint::black_box(xt.matmul(&w).unwrap());
    });
    let fast_us = per_call(2000, || {
        std::hint::black_box(model.losses_and_grads(&x, &y).unwrap());
    });
    let candle_us = per_call(500, || {
        let xv = Var::from_tensor(&xt).unwrap();
        let l = model.loss_tensor(xv.as_tensor(), &y).unwrap();
        let g = l.sum_all().unwrap().backward().unwrap();
        std::hint::black_box(g.get(xv.as_tensor()).unwrap().to_vec2::<f64>().unwrap());
    });
    let wc = WorstCase {
        x: x.clone(),
        y: y.clone(),
        w: vec![1.0 / n as f64; n],
        ..Default::default()
    };
    let outer_us = per_call(2000, || {
        std::hint::black_box(robustflow::train::outer_gradient(&model, &wc, 0.0).unwrap());
    });
    println!(
        "RAYON_NUM_THREADS before start: {:?}, after Model::new: {:?}",
        preset,
        std::env::var("RAYON_NUM_THREADS").ok()
    );
    println!("candle get_num_threads():            {threads_us:8.2} us/call");
    println!("candle matmul 128x20 @ 20x64:        {matmul_us:8.2} us/call");
    println!("losses + input grads, hand-written:  {fast_us:8.2} us/call (128 rows)");
    println!("losses + input grads, candle:        {candle_us:8.2} us/call (128 rows)");
    println!("outer gradient, hand-written:        {outer_us:8.2} us/call (128 rows)");
    if threads_us > 5.0 {
        eprintln!(
            "REGRESSION: candle's thread count costs {threads_us:.1} us per matmul \
             (it is parsing /proc/cpuinfo again; see docs/PERFORMANCE.md, Training loop)"
        );
        std::process::exit(1);
    }
    Ok(())
}
