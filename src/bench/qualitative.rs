//! The two qualitative checks of the benchmark issue: the robust least-squares loss
//! against `Delta` ([`super::rls`]: kernel DRO below ERM at large `Delta`, below worst-case
//! RO at small `Delta`) and the decision boundaries of ERM and WRM on the circles task
//! (Sinha, Namkoong, Duchi 2018: WRM keeps a margin around the inner disk). Writes
//! `qualitative.md`, `qualitative.json` and PNGs.
//!
//! Both checks run over several seeds and report means and spreads; every hyper-parameter
//! that is not fixed by the task is either chosen on a validation split (the `rls`
//! penalties, exactly as in the grid) or swept and shown in full (the WRM penalty `gamma`
//! on circles).

use super::generators::circles;
use super::rls::{run_rls, RlsData};
use super::suite::{bench_data, SuiteConfig};
use crate::dro::{AmbiguityConfig, SetKind};
use crate::error::{Error, Result};
use crate::model::ModelKind;
use crate::plot::{line_chart, scatter_weighted, Series, WeightedPoints};
use crate::stats::mean_std;
use crate::train::{TrainParams, TrainedModel, Trainer};
use serde::Serialize;
use std::path::Path;

/// The inner radius of the training gap of the circles task, `sqrt 2 / 1.3`.
pub const GAP_INNER: f64 = std::f64::consts::SQRT_2 / 1.3;
/// The outer radius of the training gap, `1.3 sqrt 2`.
pub const GAP_OUTER: f64 = std::f64::consts::SQRT_2 * 1.3;

/// Settings of [`run_qualitative`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualitativeConfig {
    /// Seeds of both checks.
    pub seeds: Vec<u64>,
    /// `rls`: the shifts `Delta` (middle entry: the validation shift).
    pub deltas: Vec<f64>,
    /// `rls`: training draws.
    pub rls_n_train: usize,
    /// `rls`: validation draws, one kernel-DRO curve each (the first is the grid's
    /// protocol, the others show how much the choice depends on the validation size).
    pub rls_n_vals: Vec<usize>,
    /// `rls`: test draws.
    pub rls_n_test: usize,
    /// Circles: WRM penalties `gamma` (all shown).
    pub gammas: Vec<f64>,
    /// Circles: training epochs.
    pub epochs: usize,
    /// Circles: MLP hidden widths.
    pub hidden: Vec<usize>,
    /// Circles: WRM inner steps.
    pub inner_steps: usize,
    /// Circles: points in the training and test sets.
    pub n_points: usize,
}

impl Default for QualitativeConfig {
    fn default() -> Self {
        QualitativeConfig {
            seeds: vec![0, 1, 2, 3, 4],
            deltas: (0..=10).map(|k| 0.5 * k as f64).collect(),
            rls_n_train: 10,
            rls_n_vals: vec![10, 100],
            rls_n_test: 1000,
            gammas: vec![2.0, 1.0, 0.5, 0.25],
            epochs: 60,
            hidden: vec![32, 32],
            inner_steps: 15,
            n_points: 600,
        }
    }
}

impl QualitativeConfig {
    /// Check the settings; errors name the flag.
    pub fn validate(&self) -> Result<()> {
        if self.seeds.is_empty() {
            return Err(Error::param("seeds", "", "need at least one seed"));
        }
        if self.deltas.is_empty() || self.deltas.iter().any(|d| !(d.is_finite() && *d >= 0.0)) {
            return Err(Error::param(
                "deltas",
                format!("{:?}", self.deltas),
                "need at least one finite, non-negative Delta",
            ));
        }
        if self.rls_n_train < 2 {
            return Err(Error::param("rls-n-train", self.rls_n_train, "need >= 2"));
        }
        crate::error::check_count("rls-n-test", self.rls_n_test)?;
        if self.rls_n_vals.is_empty() || self.rls_n_vals.contains(&0) {
            return Err(Error::param(
                "rls-n-vals",
                format!("{:?}", self.rls_n_vals),
                "need at least one positive validation size",
            ));
        }
        if self.gammas.is_empty() {
            return Err(Error::param("gammas", "", "need at least one WRM penalty"));
        }
        for &g in &self.gammas {
            crate::error::check_positive("gammas", g)?;
        }
        crate::error::check_count("epochs", self.epochs)?;
        crate::error::check_count("inner-steps", self.inner_steps)?;
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return Err(Error::param(
                "hidden",
                format!("{:?}", self.hidden),
                "need positive widths",
            ));
        }
        if self.n_points < 20 {
            return Err(Error::param("n-points", self.n_points, "need >= 20"));
        }
        Ok(())
    }
}

/// Kernel DRO on the robust least-squares task with its penalty chosen on a validation
/// split of a given size.
#[derive(Debug, Clone, Serialize)]
pub struct KdroCurve {
    /// Validation draws.
    pub n_val: usize,
    /// Mean (over seeds) test loss per Delta.
    pub loss: Vec<f64>,
    /// The penalty chosen per seed.
    pub chosen: Vec<String>,
}

/// Robust least squares over seeds: mean test loss per `Delta` of ERM, RO and the paper's
/// kernel DRO (its penalty chosen on the validation split, per seed).
#[derive(Debug, Clone, Serialize)]
pub struct RlsCheck {
    /// The shifts.
    pub deltas: Vec<f64>,
    /// Mean (over seeds) test loss of ERM, per Delta.
    pub erm: Vec<f64>,
    /// Mean test loss of worst-case RO.
    pub ro: Vec<f64>,
    /// Kernel DRO, one curve per validation size (the first: the grid's protocol).
    pub kdro: Vec<KdroCurve>,
    /// With the grid's protocol: kernel DRO below ERM at the largest Delta (mean over seeds).
    pub kdro_below_erm_at_large_delta: bool,
    /// With the grid's protocol: kernel DRO below RO at the smallest Delta.
    pub kdro_below_ro_at_small_delta: bool,
}

/// Run the robust least-squares check (the grid's `rls` cells for `erm`, `ro`, `kdro`).
pub fn rls_check(cfg: &QualitativeConfig) -> Result<RlsCheck> {
    let k = cfg.deltas.len();
    let ns = cfg.seeds.len() as f64;
    let (mut erm, mut ro) = (vec![0.0; k], vec![0.0; k]);
    let mut kdro: Vec<KdroCurve> = cfg
        .rls_n_vals
        .iter()
        .map(|&n_val| KdroCurve {
            n_val,
            loss: vec![0.0; k],
            chosen: vec![],
        })
        .collect();
    let add = |acc: &mut [f64], r: &super::rls::RlsResult| {
        for (a, (_, l)) in acc.iter_mut().zip(&r.losses) {
            *a += l / ns;
        }
    };
    for &seed in &cfg.seeds {
        for (j, c) in kdro.iter_mut().enumerate() {
            let data = RlsData::new(cfg.rls_n_train, c.n_val, cfg.rls_n_test, seed)?;
            if j == 0 {
                add(&mut erm, &run_rls("erm", &data, &cfg.deltas, 10, seed)?);
                add(&mut ro, &run_rls("ro", &data, &cfg.deltas, 10, seed)?);
            }
            let r = run_rls("kdro", &data, &cfg.deltas, 10, seed)?;
            add(&mut c.loss, &r);
            c.chosen.push(r.chosen);
        }
    }
    Ok(RlsCheck {
        kdro_below_erm_at_large_delta: kdro[0].loss[k - 1] < erm[k - 1],
        kdro_below_ro_at_small_delta: kdro[0].loss[0] < ro[0],
        deltas: cfg.deltas.clone(),
        erm,
        ro,
        kdro,
    })
}

/// Where one circles model's decision boundary lies.
#[derive(Debug, Clone, Serialize)]
pub struct Boundary {
    /// `erm` or `wrm`.
    pub method: String,
    /// The WRM penalty (`None` for ERM).
    pub gamma: Option<f64>,
    /// The seed.
    pub seed: u64,
    /// Clean accuracy on the (gap-free) test set.
    pub test_accuracy: f64,
    /// Accuracy on the test points inside the training gap.
    pub gap_accuracy: f64,
    /// Boundary radius (first radius predicted as ring) along 360 directions: mean.
    pub mean_radius: f64,
    /// Smallest boundary radius.
    pub min_radius: f64,
    /// Largest boundary radius.
    pub max_radius: f64,
    /// The margin around the inner disk: `min_radius - GAP_INNER` (the distance from the
    /// inner training class's edge to the nearest point of the boundary, along rays).
    pub disk_margin: f64,
    /// The fraction of directions in which this boundary lies farther from the origin
    /// (by more than one radial grid step, 0.005) than the ERM boundary of the same seed
    /// (0 for ERM itself).
    pub farther_than_erm: f64,
    /// The boundary radius per direction.
    #[serde(skip)]
    pub radii: Vec<f64>,
    /// The boundary as `(x, y)` points, one per direction (for the plot).
    #[serde(skip)]
    pub curve: Vec<(f64, f64)>,
}

fn boundary(
    m: &TrainedModel,
    method: &str,
    gamma: Option<f64>,
    seed: u64,
    test_acc: f64,
    gap_acc: f64,
) -> Result<Boundary> {
    let (mu, sd) = (&m.schema.mean, &m.schema.std);
    let mut radii = Vec::new();
    let mut curve = Vec::new();
    const DIRS: usize = 360;
    let rs: Vec<f64> = (0..=600).map(|i| 3.0 * i as f64 / 600.0).collect();
    for k in 0..DIRS {
        let a = k as f64 * std::f64::consts::TAU / DIRS as f64;
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
        curve.push((r * a.cos(), r * a.sin()));
    }
    let min_radius = radii.iter().cloned().fold(f64::INFINITY, f64::min);
    Ok(Boundary {
        method: method.into(),
        gamma,
        seed,
        test_accuracy: test_acc,
        gap_accuracy: gap_acc,
        mean_radius: radii.iter().sum::<f64>() / radii.len() as f64,
        min_radius,
        max_radius: radii.iter().cloned().fold(0.0, f64::max),
        disk_margin: min_radius - GAP_INNER,
        farther_than_erm: 0.0,
        radii,
        curve,
    })
}

/// Train ERM and WRM (every penalty of `cfg.gammas`) MLPs on the circles task for every
/// seed and measure their decision boundaries; plots the boundaries of the first seed
/// (`circles_boundaries.png`) with the training points.
pub fn circles_boundaries(out_dir: &Path, cfg: &QualitativeConfig) -> Result<Vec<Boundary>> {
    let mut sc = SuiteConfig::preset("standard")?;
    sc.n_synthetic = cfg.n_points;
    let mut out = Vec::new();
    for &seed in &cfg.seeds {
        let bd = bench_data("circles", &sc, seed, Path::new("datasets"))?;
        let test = &bd.data.test;
        // the test points inside the training gap, in raw units
        let (mu, sd) = (&bd.data.schema.mean, &bd.data.schema.std);
        let gap_rows: Vec<usize> = (0..test.len())
            .filter(|&i| {
                let a = test.x[i * 2] * sd[0] + mu[0];
                let b = test.x[i * 2 + 1] * sd[1] + mu[1];
                let r = (a * a + b * b).sqrt();
                r > GAP_INNER && r < GAP_OUTER
            })
            .collect();
        let base = TrainParams::default()
            .model(ModelKind::Mlp)
            .hidden(cfg.hidden.clone())
            .epochs(cfg.epochs)
            .lr(0.02)
            .batch_size(64)
            .seed(seed);
        let mut runs: Vec<(&str, Option<f64>, AmbiguityConfig)> =
            vec![("erm", None, AmbiguityConfig::default())];
        for &g in &cfg.gammas {
            runs.push((
                "wrm",
                Some(g),
                AmbiguityConfig {
                    set: SetKind::Wasserstein,
                    penalty: Some(g),
                    inner_steps: cfg.inner_steps,
                    inner_step_size: 0.1,
                    seed,
                    ..AmbiguityConfig::default()
                },
            ));
        }
        for (name, gamma, amb) in runs {
            let m = Trainer::new(base.clone().ambiguity(amb).validate()?).fit(&bd.data)?;
            let acc = m.evaluate(test)?.accuracy.unwrap_or(f64::NAN);
            let p = m.predict(&test.x)?;
            let hits = gap_rows.iter().filter(|&&i| p[i] == test.y[i]).count();
            let gap_acc = hits as f64 / gap_rows.len().max(1) as f64;
            out.push(boundary(&m, name, gamma, seed, acc, gap_acc)?);
        }
        let first_wrm = out.len() - cfg.gammas.len();
        let (erm, rest) = out.split_at_mut(first_wrm);
        let erm = &erm[erm.len() - 1];
        for b in rest {
            let n = b.radii.len().max(1) as f64;
            let k = b
                .radii
                .iter()
                .zip(&erm.radii)
                .filter(|(w, e)| **w > **e + 0.005)
                .count();
            b.farther_than_erm = k as f64 / n;
        }
    }
    // the plot: first seed, every model's boundary over the training points
    let seed = cfg.seeds[0];
    let train = circles(cfg.n_points, true, seed.wrapping_mul(1000).wrapping_add(1));
    let pts = |c: f64| -> Vec<(f64, f64, f64)> {
        train
            .x
            .outer_iter()
            .zip(&train.y)
            .filter(|(_, y)| **y == c)
            .map(|(r, _)| (r[0], r[1], 1.0))
            .collect()
    };
    let circle = |r: f64| -> Vec<(f64, f64, f64)> {
        (0..360)
            .map(|k| {
                let a = k as f64 * std::f64::consts::TAU / 360.0;
                (r * a.cos(), r * a.sin(), 1.0)
            })
            .collect()
    };
    let mut sets = vec![
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
        WeightedPoints {
            name: "true boundary r = sqrt 2".into(),
            points: circle(std::f64::consts::SQRT_2),
            fixed_size: true,
        },
    ];
    for b in out.iter().filter(|b| b.seed == seed) {
        sets.push(WeightedPoints {
            name: match b.gamma {
                None => "ERM boundary".into(),
                Some(g) => format!("WRM boundary, gamma = {g}"),
            },
            points: b.curve.iter().map(|&(x, y)| (x, y, 1.0)).collect(),
            fixed_size: true,
        });
    }
    scatter_weighted(
        out_dir.join("circles_boundaries.png"),
        &format!("circles (seed {seed}): decision boundaries; training gap removed"),
        &sets,
        None,
        Some(((-3.0, 3.0), (-3.0, 3.0))),
    )?;
    Ok(out)
}

/// Mean and standard deviation over seeds of the circles measures, per model.
#[derive(Debug, Clone, Serialize)]
pub struct BoundarySummary {
    /// `erm` or `wrm, gamma = g`.
    pub model: String,
    /// Seeds.
    pub n: usize,
    /// `(mean, std)` of the test accuracy.
    pub test_accuracy: (f64, f64),
    /// `(mean, std)` of the accuracy inside the gap.
    pub gap_accuracy: (f64, f64),
    /// `(mean, std)` of the mean boundary radius.
    pub mean_radius: (f64, f64),
    /// `(mean, std)` of the margin around the inner disk.
    pub disk_margin: (f64, f64),
    /// `(mean, std)` of the largest boundary radius.
    pub max_radius: (f64, f64),
    /// `(mean, std)` of the fraction of directions farther out than ERM's boundary.
    pub farther_than_erm: (f64, f64),
}

/// Summarise [`circles_boundaries`] per model (ERM first, then WRM by penalty as given).
pub fn summarise_boundaries(b: &[Boundary], gammas: &[f64]) -> Vec<BoundarySummary> {
    let mut models: Vec<(String, Option<f64>)> = vec![("erm".into(), None)];
    for &g in gammas {
        models.push((format!("wrm, gamma = {g}"), Some(g)));
    }
    models
        .into_iter()
        .map(|(name, g)| {
            let sel: Vec<&Boundary> = b.iter().filter(|x| x.gamma == g).collect();
            let f = |h: &dyn Fn(&Boundary) -> f64| {
                mean_std(&sel.iter().map(|x| h(x)).collect::<Vec<_>>())
            };
            BoundarySummary {
                model: name,
                n: sel.len(),
                test_accuracy: f(&|x| x.test_accuracy),
                gap_accuracy: f(&|x| x.gap_accuracy),
                mean_radius: f(&|x| x.mean_radius),
                disk_margin: f(&|x| x.disk_margin),
                max_radius: f(&|x| x.max_radius),
                farther_than_erm: f(&|x| x.farther_than_erm),
            }
        })
        .collect()
}

/// Both checks; returns the markdown report (also written to `out_dir/qualitative.md`).
pub fn run_qualitative(out_dir: &Path, cfg: &QualitativeConfig) -> Result<String> {
    cfg.validate()?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let rls = rls_check(cfg)?;
    let pick = |v: &[f64]| -> Vec<(f64, f64)> {
        rls.deltas.iter().cloned().zip(v.iter().cloned()).collect()
    };
    let mut series = vec![
        Series {
            name: "ERM".into(),
            points: pick(&rls.erm),
        },
        Series {
            name: "worst-case RO".into(),
            points: pick(&rls.ro),
        },
    ];
    for c in &rls.kdro {
        series.push(Series {
            name: format!("kernel DRO (lambda chosen on {} validation draws)", c.n_val),
            points: pick(&c.loss),
        });
    }
    line_chart(
        out_dir.join("rls_loss_vs_delta.png"),
        "robust least squares: mean test loss vs Delta",
        "Delta",
        "mean test loss",
        &series,
        false,
    )?;
    let seeds: Vec<String> = cfg.seeds.iter().map(|s| s.to_string()).collect();
    let mut s = format!(
        "## Robust least squares: mean test loss against Delta (mean over seeds {})\n\n",
        seeds.join(", ")
    );
    for c in &rls.kdro {
        s.push_str(&format!(
            "Kernel DRO penalty chosen on {} validation draws, per seed: {}.\n",
            c.n_val,
            c.chosen.join(", ")
        ));
    }
    s.push_str("\n| Delta | ERM | RO |");
    for c in &rls.kdro {
        s.push_str(&format!(" KDRO (val {}) |", c.n_val));
    }
    s.push_str("\n|---|---|---|");
    for _ in &rls.kdro {
        s.push_str("---|");
    }
    s.push('\n');
    for (i, d) in rls.deltas.iter().enumerate() {
        s.push_str(&format!("| {d} | {:.3} | {:.3} |", rls.erm[i], rls.ro[i]));
        for c in &rls.kdro {
            s.push_str(&format!(" {:.3} |", c.loss[i]));
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "\nWith {} validation draws: KDRO below ERM at the largest Delta: {}; KDRO below RO at the smallest Delta: {}.\n",
        cfg.rls_n_vals[0],
        rls.kdro_below_erm_at_large_delta, rls.kdro_below_ro_at_small_delta
    ));
    let b = circles_boundaries(out_dir, cfg)?;
    let sum = summarise_boundaries(&b, &cfg.gammas);
    s.push_str(&format!(
        "\n## Circles: decision boundaries (MLP {:?}, {} epochs, seeds {}; mean ± std)\n\n\
         True boundary sqrt 2 = 1.414; training gap {GAP_INNER:.3}..{GAP_OUTER:.3}. Disk margin = \
         smallest boundary radius - {GAP_INNER:.3}.\n\n\
         | model | test accuracy | accuracy in the gap | mean radius | disk margin | max radius | directions farther out than ERM |\n\
         |---|---|---|---|---|---|---|\n",
        cfg.hidden,
        cfg.epochs,
        seeds.join(", ")
    ));
    let pm = |v: (f64, f64)| format!("{:.3} ± {:.3}", v.0, v.1);
    for r in &sum {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.model,
            pm(r.test_accuracy),
            pm(r.gap_accuracy),
            pm(r.mean_radius),
            pm(r.disk_margin),
            pm(r.max_radius),
            pm(r.farther_than_erm)
        ));
    }
    crate::io::write_atomic(out_dir.join("qualitative.md"), s.as_bytes())?;
    #[derive(Serialize)]
    struct Q<'a> {
        config: &'a QualitativeConfig,
        rls: &'a RlsCheck,
        circles: &'a [Boundary],
        circles_summary: &'a [BoundarySummary],
    }
    crate::io::write_json_atomic(
        out_dir.join("qualitative.json"),
        &Q {
            config: cfg,
            rls: &rls,
            circles: &b,
            circles_summary: &sum,
        },
    )?;
    Ok(s)
}
