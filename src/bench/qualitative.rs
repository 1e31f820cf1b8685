//! The two qualitative checks of the benchmark issue: the robust least-squares loss
//! against `Delta` ([`super::rls`]) and the decision boundaries of ERM and WRM on the
//! circles task (Sinha, Namkoong, Duchi 2018, figure 1: WRM keeps a margin around the inner
//! disk). Writes `qualitative.md`, `qualitative.json` and PNGs.

use super::generators::circles;
use super::rls::{compare, RlsPoint};
use super::suite::{bench_data, SuiteConfig};
use crate::dro::{AmbiguityConfig, SetKind};
use crate::error::Result;
use crate::model::ModelKind;
use crate::plot::{line_chart, scatter_weighted, Background, Series, WeightedPoints};
use crate::train::{TrainParams, TrainedModel, Trainer};
use serde::Serialize;
use std::path::Path;

/// Where a circles model's decision boundary lies.
#[derive(Debug, Clone, Serialize)]
pub struct Boundary {
    /// The method.
    pub method: String,
    /// Clean accuracy on the (gap-free) test set.
    pub test_accuracy: f64,
    /// Boundary radius along 72 directions (first radius predicted as ring): mean.
    pub mean_radius: f64,
    /// Smallest boundary radius.
    pub min_radius: f64,
    /// Largest boundary radius.
    pub max_radius: f64,
}

fn boundary(m: &TrainedModel, name: &str, acc: f64) -> Result<Boundary> {
    let (mu, sd) = (&m.schema.mean, &m.schema.std);
    let mut radii = Vec::new();
    for k in 0..72 {
        let a = k as f64 * std::f64::consts::TAU / 72.0;
        let rs: Vec<f64> = (0..=300).map(|i| 3.0 * i as f64 / 300.0).collect();
        let x: Vec<f64> = rs
            .iter()
            .flat_map(|r| [(r * a.cos() - mu[0]) / sd[0], (r * a.sin() - mu[1]) / sd[1]])
            .collect();
        let p = m.predict(&x)?;
        let r = rs
            .iter()
            .zip(&p)
            .find(|(_, c)| **c == 1.0)
            .map(|(r, _)| *r)
            .unwrap_or(3.0);
        radii.push(r);
    }
    Ok(Boundary {
        method: name.into(),
        test_accuracy: acc,
        mean_radius: radii.iter().sum::<f64>() / radii.len() as f64,
        min_radius: radii.iter().cloned().fold(f64::INFINITY, f64::min),
        max_radius: radii.iter().cloned().fold(0.0, f64::max),
    })
}

/// Train ERM and WRM (penalty `gamma`) MLPs on the circles task and plot both decision
/// regions (shaded: predicted probability of the ring) with the training points.
pub fn circles_boundaries(
    out_dir: &Path,
    seed: u64,
    epochs: usize,
    gamma: f64,
) -> Result<Vec<Boundary>> {
    let mut cfg = SuiteConfig::preset("standard")?;
    cfg.n_synthetic = 600;
    let bd = bench_data("circles", &cfg, seed, Path::new("datasets"))?;
    let base = TrainParams::default()
        .model(ModelKind::Mlp)
        .hidden(vec![32, 32])
        .epochs(epochs)
        .lr(0.02)
        .batch_size(64)
        .seed(seed);
    let wrm = AmbiguityConfig {
        set: SetKind::Wasserstein,
        penalty: Some(gamma),
        inner_steps: 15,
        inner_step_size: 0.1,
        seed,
        ..AmbiguityConfig::default()
    };
    let train = circles(600, true, seed.wrapping_mul(1000) + 1);
    let pts = |c: f64| -> Vec<(f64, f64, f64)> {
        train
            .x
            .outer_iter()
            .zip(&train.y)
            .filter(|(_, y)| **y == c)
            .map(|(r, _)| (r[0], r[1], 1.0))
            .collect()
    };
    let mut out = Vec::new();
    for (name, amb) in [("erm", AmbiguityConfig::default()), ("wrm", wrm)] {
        let m = Trainer::new(base.clone().ambiguity(amb).validate()?).fit(&bd.data)?;
        let acc = m.evaluate(&bd.data.test)?.accuracy.unwrap_or(f64::NAN);
        out.push(boundary(&m, name, acc)?);
        let (mu, sd) = (m.schema.mean.clone(), m.schema.std.clone());
        let f = |a: f64, b: f64| -> f64 {
            let x = [(a - mu[0]) / sd[0], (b - mu[1]) / sd[1]];
            m.predict_proba(&x)
                .ok()
                .and_then(|p| p.first().and_then(|q| q.get(1).copied()))
                .unwrap_or(0.0)
        };
        scatter_weighted(
            out_dir.join(format!("circles_boundary_{name}.png")),
            &format!("circles, {name}: shaded = P(ring); gap removed from training"),
            &[
                WeightedPoints {
                    name: "inner disk (train)".into(),
                    points: pts(0.0),
                    fixed_size: true,
                },
                WeightedPoints {
                    name: "ring (train)".into(),
                    points: pts(1.0),
                    fixed_size: true,
                },
            ],
            Some(Background {
                f: &f,
                resolution: 120,
            }),
            Some(((-3.0, 3.0), (-3.0, 3.0))),
        )?;
    }
    Ok(out)
}

/// Both checks; returns the markdown report (also written to `out_dir/qualitative.md`).
pub fn run_qualitative(out_dir: &Path, seed: u64) -> Result<String> {
    std::fs::create_dir_all(out_dir).map_err(|e| crate::error::Error::io(out_dir, e))?;
    let deltas: Vec<f64> = (0..=10).map(|k| 0.5 * k as f64).collect();
    let lambdas = [1.0, 10.0, 100.0];
    let pts: Vec<RlsPoint> = compare(seed, 10, 2000, &deltas, &lambdas)?;
    let mut series = vec![
        Series {
            name: "ERM".into(),
            points: pts.iter().map(|p| (p.delta, p.erm)).collect(),
        },
        Series {
            name: "worst-case RO".into(),
            points: pts.iter().map(|p| (p.delta, p.ro)).collect(),
        },
    ];
    for (k, l) in lambdas.iter().enumerate() {
        series.push(Series {
            name: format!("kernel DRO, lambda={l}"),
            points: pts.iter().map(|p| (p.delta, p.kdro[k])).collect(),
        });
    }
    line_chart(
        out_dir.join("rls_loss_vs_delta.png"),
        "robust least squares: test loss vs Delta",
        "Delta",
        "mean test loss",
        &series,
        true,
    )?;
    let mut s = String::from(
        "## Robust least squares: mean test loss against Delta\n\n| Delta | ERM | RO |",
    );
    for l in &lambdas {
        s.push_str(&format!(" KDRO lambda={l} |"));
    }
    s.push_str("\n|---|---|---|");
    for _ in &lambdas {
        s.push_str("---|");
    }
    s.push('\n');
    for p in &pts {
        s.push_str(&format!("| {} | {:.3} | {:.3} |", p.delta, p.erm, p.ro));
        for v in &p.kdro {
            s.push_str(&format!(" {v:.3} |"));
        }
        s.push('\n');
    }
    let b = circles_boundaries(out_dir, seed, 60, 1.0)?;
    s.push_str("\n## Circles: decision boundary radius (true boundary sqrt 2 = 1.414; training gap 1.088..1.838)\n\n| method | test accuracy | mean radius | min radius | max radius |\n|---|---|---|---|---|\n");
    for r in &b {
        s.push_str(&format!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            r.method, r.test_accuracy, r.mean_radius, r.min_radius, r.max_radius
        ));
    }
    crate::io::write_atomic(out_dir.join("qualitative.md"), s.as_bytes())?;
    #[derive(Serialize)]
    struct Q<'a> {
        rls: &'a [RlsPoint],
        lambdas: &'a [f64],
        circles: &'a [Boundary],
    }
    crate::io::write_json_atomic(
        out_dir.join("qualitative.json"),
        &Q {
            rls: &pts,
            lambdas: &lambdas,
            circles: &b,
        },
    )?;
    Ok(s)
}
