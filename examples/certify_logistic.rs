//! Certify a logistic-regression model with the library API: worst-case risks over the
//! 1-Wasserstein (norm cost, exact closed form), WRM, KL and chi-square sets at a few
//! radii, with their lower and upper bounds.
//!
//! `cargo run --release --example certify_logistic`

use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use robustflow::dro::{certify, AmbiguityConfig, Batch, Norm, PointLoss, SetKind};
use robustflow::Result;

/// `l = log(1 + exp(-s (w.x + b)))`, `s = 2y - 1`.
struct Logistic {
    w: Vec<f64>,
    b: f64,
}

impl Logistic {
    fn margin(&self, x: &[f64], y: f64) -> f64 {
        (2.0 * y - 1.0) * (x.iter().zip(&self.w).map(|(a, b)| a * b).sum::<f64>() + self.b)
    }
}

fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
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
        let (mut l, mut g) = (Vec::new(), Vec::new());
        for (r, y) in x.chunks_exact(d).zip(y) {
            let m = self.margin(r, *y);
            l.push(softplus(-m));
            let c = -(2.0 * y - 1.0) / (1.0 + m.exp());
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

fn main() -> Result<()> {
    let model = Logistic {
        w: vec![1.5, -1.0],
        b: 0.1,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        let r: [f64; 2] = [rng.sample(StandardNormal), rng.sample(StandardNormal)];
        let s = 1.5 * r[0] - r[1] + 0.1 + 0.5 * rng.sample::<f64, _>(StandardNormal);
        y.push(if s > 0.0 { 1.0 } else { 0.0 });
        x.extend(r);
    }
    let idx: Vec<usize> = (0..200).collect();
    let batch = Batch {
        x: &x,
        y: &y,
        d: 2,
        idx: &idx,
    };
    let radii = [0.0, 0.05, 0.2];
    let mut w1 = AmbiguityConfig::constrained(SetKind::Wasserstein, 0.0);
    w1.norm = Some(Norm::L2);
    let mut wrm = AmbiguityConfig::constrained(SetKind::Wasserstein, 0.0);
    wrm.inner_steps = 100;
    wrm.inner_step_size = 0.5;
    let sets = [
        w1,
        wrm,
        AmbiguityConfig::constrained(SetKind::Kl, 0.0),
        AmbiguityConfig::constrained(SetKind::Chi2, 0.0),
    ];
    println!(
        "{:<14} {:>7} {:>10} {:>10} {:>10}",
        "set", "radius", "lower", "upper", "closed"
    );
    for cfg in &sets {
        for r in certify(&model, &batch, cfg, &radii)? {
            let f = |v: Option<f64>| v.map(|v| format!("{v:.5}")).unwrap_or("-".into());
            println!(
                "{:<14} {:>7} {:>10.5} {:>10} {:>10}",
                r.ambiguity,
                r.radius,
                r.lower_bound,
                f(r.upper_bound),
                f(r.closed_form)
            );
        }
    }
    Ok(())
}
