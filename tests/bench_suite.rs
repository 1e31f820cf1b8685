//! The benchmark suite end to end: the `quick` grid's outputs (every cell present,
//! accuracies in [0, 1], ERM above 0.9 on breast cancer, the regression task's losses
//! finite and positive), resume (a rerun computes nothing), sharding (shards 0/2 and 1/2
//! merged equal one unsharded run), seeded generators, and the robust least-squares
//! solvers and their validation-split selection.

use robustflow::bench::generators::{circles, gaussian_shift, subpopulation, RobustLeastSquares};
use robustflow::bench::report::{merge, run_suite};
use robustflow::bench::suite::{read_results, synthetic, Row, SuiteConfig};
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets")
}

type Numbers = (
    String,
    String,
    String,
    String,
    u64,
    Option<f64>,
    f64,
    String,
);

/// Rows without the wall time, sorted by key (the numbers a rerun must reproduce); a `NaN`
/// accuracy (the regression task) is `None`.
fn numbers(rows: &[Row]) -> Vec<Numbers> {
    let mut v: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.dataset.clone(),
                r.method.clone(),
                r.condition.clone(),
                r.budget.clone(),
                r.seed,
                (!r.accuracy.is_nan()).then_some(r.accuracy),
                r.loss,
                r.chosen.clone(),
            )
        })
        .collect();
    v.sort_by(|a, b| (&a.0, &a.1, &a.2, &a.3, a.4).cmp(&(&b.0, &b.1, &b.2, &b.3, b.4)));
    v
}

#[test]
fn quick_suite_outputs_resume_and_shards() {
    let cfg = SuiteConfig::preset("quick").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    let t0 = std::time::Instant::now();
    let s = run_suite(&cfg, (0, 1), &full, &data_dir(), true).unwrap();
    let wall = t0.elapsed().as_secs_f64();
    let cells = cfg.cells();
    assert_eq!(s.cells, cells.len());
    assert_eq!(s.computed, cells.len());
    let rows = read_results(&full.join("results.csv")).unwrap();

    // every cell's rows present, exactly once
    let expected: usize = cells.iter().map(|c| cfg.row_keys(c).len()).sum();
    assert_eq!(rows.len(), expected);
    for c in &cells {
        for (cond, b) in cfg.row_keys(c) {
            let n = rows
                .iter()
                .filter(|r| {
                    r.dataset == c.dataset
                        && r.method == c.method
                        && r.seed == c.seed
                        && r.condition == cond
                        && r.budget == b
                })
                .count();
            assert_eq!(n, 1, "{c} {cond}@{b}");
        }
    }
    for r in &rows {
        if r.dataset == "rls" {
            // the regression task: no accuracy, a finite positive loss
            assert!(r.accuracy.is_nan(), "{r:?}");
            assert!(r.loss.is_finite() && r.loss > 0.0, "{r:?}");
            assert_eq!(r.condition, "xi_shift");
        } else {
            assert!((0.0..=1.0).contains(&r.accuracy), "{r:?}");
            assert!(r.loss.is_finite() && r.loss >= 0.0, "{r:?}");
        }
        assert!(r.time_s >= 0.0);
    }
    // the regression task ran every applicable method at every Delta, with a grid label
    for m in ["erm", "wrm", "cvar", "ro", "kdro"] {
        let n = rows
            .iter()
            .filter(|r| r.dataset == "rls" && r.method == m)
            .count();
        assert_eq!(n, cfg.rls_deltas.len(), "rls/{m}");
    }
    assert!(rows
        .iter()
        .filter(|r| r.dataset == "rls" && r.method == "kdro")
        .all(|r| r.chosen.starts_with("penalty=")));
    // rls-only methods did not run on the classification tasks
    assert!(rows
        .iter()
        .all(|r| r.dataset == "rls" || !matches!(r.method.as_str(), "ro" | "kdro")));
    let erm_clean = rows
        .iter()
        .find(|r| r.dataset == "breast_cancer" && r.method == "erm" && r.condition == "clean")
        .unwrap();
    assert!(
        erm_clean.accuracy > 0.9,
        "ERM clean accuracy {}",
        erm_clean.accuracy
    );
    // attacks only hurt: PGD accuracy never above clean accuracy for the same model
    for r in rows.iter().filter(|r| r.condition.starts_with("pgd")) {
        let clean = rows
            .iter()
            .find(|q| {
                q.dataset == r.dataset
                    && q.method == r.method
                    && q.seed == r.seed
                    && q.condition == "clean"
            })
            .unwrap();
        assert!(
            r.accuracy <= clean.accuracy + 1e-12,
            "{r:?} vs clean {}",
            clean.accuracy
        );
        assert!(
            r.loss >= clean.loss - 1e-9,
            "{r:?} vs clean loss {}",
            clean.loss
        );
    }

    // the other outputs
    let summary = std::fs::read_to_string(full.join("summary.md")).unwrap();
    assert!(summary.contains("## breast_cancer: test accuracy"));
    assert!(summary.contains("## circles: test accuracy"));
    assert!(summary.contains("## rls: test loss"));
    assert!(
        !summary.contains("## rls: test accuracy"),
        "no accuracy table for a regression"
    );
    assert!(summary.contains("**"), "best of each column marked");
    let prov: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(full.join("results.json")).unwrap()).unwrap();
    assert_eq!(prov["crate_version"], env!("CARGO_PKG_VERSION"));
    assert!(prov["git_commit"].is_string());
    assert!(prov["machine"]["cores"].as_u64().unwrap() >= 1);
    assert_eq!(prov["config"]["suite"], "quick");
    for f in [
        "breast_cancer_accuracy_l2.png",
        "circles_loss_shift.png",
        "rls_loss_delta.png",
    ] {
        let b = std::fs::read(full.join(f)).unwrap();
        assert_eq!(&b[1..4], b"PNG", "{f}");
    }

    // rerun: nothing computed, numbers unchanged
    let again = run_suite(&cfg, (0, 1), &full, &data_dir(), true).unwrap();
    assert_eq!(again.computed, 0);
    assert_eq!(again.skipped, cells.len());
    assert_eq!(
        numbers(&read_results(&full.join("results.csv")).unwrap()),
        numbers(&rows)
    );

    // shards 0/2 and 1/2, merged, equal the unsharded run
    let (a, b, m) = (
        tmp.path().join("s0"),
        tmp.path().join("s1"),
        tmp.path().join("merged"),
    );
    let s0 = run_suite(&cfg, (0, 2), &a, &data_dir(), true).unwrap();
    let s1 = run_suite(&cfg, (1, 2), &b, &data_dir(), true).unwrap();
    assert_eq!(s0.cells + s1.cells, cells.len());
    assert!(s0.cells > 0 && s1.cells > 0);
    let merged = merge(&[a, b], &m).unwrap();
    assert_eq!(numbers(&merged), numbers(&rows));
    assert_eq!(
        numbers(&read_results(&m.join("results.csv")).unwrap()),
        numbers(&rows)
    );
    assert!(m.join("summary.md").exists());
    eprintln!(
        "quick suite: {} cells, {} rows, {wall:.1} s",
        cells.len(),
        rows.len()
    );
}

#[test]
fn generators_reproducible_from_seed() {
    assert_eq!(circles(50, true, 3), circles(50, true, 3));
    assert_ne!(circles(50, true, 3), circles(50, true, 4));
    assert_eq!(
        gaussian_shift(40, 3, 2.0, 1.0, 1.0, 5),
        gaussian_shift(40, 3, 2.0, 1.0, 1.0, 5)
    );
    assert_eq!(subpopulation(40, 0.3, 9), subpopulation(40, 0.3, 9));
    assert_eq!(
        RobustLeastSquares::new(2, 0.5),
        RobustLeastSquares::new(2, 0.5)
    );
    assert_eq!(
        RobustLeastSquares::sample_xi(10, 1.0, 1),
        RobustLeastSquares::sample_xi(10, 1.0, 1)
    );
    let cfg = SuiteConfig::preset("standard").unwrap();
    for name in ["circles", "gaussian", "subpop"] {
        let (a, b, c) = synthetic(name, &cfg, 1).unwrap();
        let (a2, b2, c2) = synthetic(name, &cfg, 1).unwrap();
        assert_eq!((a, b), (a2, b2), "{name}");
        assert_eq!(c, c2, "{name}");
    }
    // the training circles have the gap, the test circles do not
    let r0 = std::f64::consts::SQRT_2;
    let tr = circles(500, true, 0);
    assert!(tr.x.outer_iter().all(|r| {
        let n = (r[0] * r[0] + r[1] * r[1]).sqrt();
        n <= r0 / 1.3 || n >= 1.3 * r0
    }));
}

#[test]
fn bad_configuration_is_a_clear_error() {
    assert!(SuiteConfig::preset("huge")
        .unwrap_err()
        .to_string()
        .contains("suite"));
    let mut c = SuiteConfig::preset("quick").unwrap();
    c.datasets.push("mnist".into());
    assert!(c.validate().unwrap_err().to_string().contains("mnist"));
    let mut c = SuiteConfig::preset("quick").unwrap();
    c.methods = vec!["sgd".into()];
    assert!(c.validate().unwrap_err().to_string().contains("sgd"));
    assert!(robustflow::app::bench::parse_shard("2/2").is_err());
    assert!(robustflow::app::bench::parse_shard("x").is_err());
    assert_eq!(robustflow::app::bench::parse_shard("1/3").unwrap(), (1, 3));
    let tmp = tempfile::tempdir().unwrap();
    let e = merge(&[tmp.path().join("nope")], &tmp.path().join("m")).unwrap_err();
    assert!(e.to_string().contains("results.csv"));
    let mut c = SuiteConfig::preset("quick").unwrap();
    c.rls_deltas = vec![0.0, -1.0];
    assert!(c.validate().unwrap_err().to_string().contains("rls-deltas"));
    for bad in [1.5, -0.1, f64::NAN] {
        let mut c = SuiteConfig::preset("standard").unwrap();
        c.subpop_minority = vec![0.5, bad];
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("subpop-minority"));
    }
    let mut c = SuiteConfig::preset("quick").unwrap();
    c.rls_n_train = 1;
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("rls-n-train"));
}

#[test]
fn methods_run_where_they_are_defined() {
    use robustflow::bench::suite::{applies, method_grid, ALL_METHODS};
    let cfg = SuiteConfig::preset("standard").unwrap();
    let cells = cfg.cells();
    for c in &cells {
        assert!(applies(&c.dataset, &c.method), "{c}");
        assert!(!(c.dataset == "rls" && c.noise.is_some()), "{c}");
    }
    assert!(!applies("rls", "w1") && !applies("circles", "w1") && applies("wine", "w1"));
    assert!(applies("rls", "kdro") && !applies("breast_cancer", "kdro"));
    assert!(applies("rls", "mmd_ift") && applies("circles", "mmd_wfr"));
    // every method that is not rls-only has a grid; the DRO methods have three points
    for m in ALL_METHODS {
        if matches!(m, "ro" | "kdro") {
            assert!(method_grid(m, 5, 0).is_err());
            continue;
        }
        let g = method_grid(m, 5, 0).unwrap();
        assert_eq!(g.len(), if m == "erm" { 1 } else { 3 }, "{m}");
        for (_, a) in &g {
            a.check_ref().unwrap();
        }
    }
    // the MMD methods use the penalty form (no bisection on the multiplier)
    for m in ["mmd_ift", "mmd_wfr"] {
        assert!(method_grid(m, 5, 0)
            .unwrap()
            .iter()
            .all(|(l, a)| a.penalty.is_some() && a.radius.is_none() && l.starts_with("penalty=")));
    }
}

#[test]
fn rls_loss_gradient_matches_finite_differences() {
    use robustflow::bench::rls::RlsLoss;
    use robustflow::dro::PointLoss;
    let p = RobustLeastSquares::new(1, 1.0);
    let theta: Vec<f64> = (0..10).map(|j| 0.1 * j as f64 - 0.3).collect();
    let (mu, sigma) = (0.05, 0.3);
    let loss = RlsLoss::new(&p, &theta, mu, sigma).unwrap();
    let z = [-1.5, -0.2, 0.0, 0.7, 2.0];
    let y = [0.0; 5];
    let (l, g) = loss.losses_and_grads(&z, &y).unwrap();
    for k in 0..z.len() {
        // the loss is the task's loss at xi = mu + sigma z
        let direct = p.loss(&theta, mu + sigma * z[k]);
        assert!((l[k] - direct).abs() <= 1e-9 * direct.max(1.0));
        let h = 1e-5;
        let fd = (p.loss(&theta, mu + sigma * (z[k] + h))
            - p.loss(&theta, mu + sigma * (z[k] - h)))
            / (2.0 * h);
        assert!(
            (g[k] - fd).abs() <= 1e-5 * fd.abs().max(1.0),
            "{} vs {fd}",
            g[k]
        );
    }
    assert!(RlsLoss::new(&p, &theta[..3], mu, sigma).is_err());
    assert!(RlsLoss::new(&p, &theta, mu, 0.0).is_err());
    assert!(loss.losses(&z, &y[..2]).is_err());
}

#[test]
fn rls_dro_solutions_are_saddle_points_and_lower_the_worst_case() {
    use robustflow::bench::rls::{fit_dro, weighted_ls, RlsLoss};
    use robustflow::dro::{build_inner, AmbiguityConfig, Batch, SetKind};
    let p = RobustLeastSquares::new(0, 1.0);
    let train = RobustLeastSquares::sample_xi(10, 0.0, 11);
    let erm = p.erm(&train).unwrap();
    let n = train.len();
    let mu = train.iter().sum::<f64>() / n as f64;
    let sigma = (train.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / n as f64).sqrt();
    let z: Vec<f64> = train.iter().map(|v| (v - mu) / sigma).collect();
    let (y, idx) = (vec![0.0; n], (0..n).collect::<Vec<_>>());
    let batch = Batch {
        x: &z,
        y: &y,
        d: 1,
        idx: &idx,
    };
    // ERM is returned as is
    let none = fit_dro(&p, &train, &AmbiguityConfig::default()).unwrap();
    assert_eq!(none, erm);
    for cfg in [
        AmbiguityConfig::constrained(SetKind::Kl, 0.2),
        AmbiguityConfig::constrained(SetKind::Chi2, 0.5),
        AmbiguityConfig::constrained(SetKind::Cvar, 2f64.ln()),
    ] {
        let th = fit_dro(&p, &train, &cfg).unwrap();
        let mut inner = build_inner(&cfg).unwrap();
        let worst = |t: &[f64], inner: &mut Box<dyn robustflow::dro::InnerMax>| {
            let l = RlsLoss::new(&p, t, mu, sigma).unwrap();
            inner.solve(&l, &batch).unwrap()
        };
        let wc = worst(&th, &mut inner);
        let wc_erm = worst(&erm, &mut inner);
        // the robust solution has a lower worst-case risk than ERM ...
        assert!(
            wc.value <= wc_erm.value * (1.0 + 1e-6),
            "{:?}: {} vs ERM {}",
            cfg.set,
            wc.value,
            wc_erm.value
        );
        // ... and its own worst case's best response is itself (a saddle point), up to
        // the slack of a non-unique worst case (CVaR's top fraction)
        let xis: Vec<f64> = wc.x.iter().map(|z| mu + sigma * z).collect();
        let br = weighted_ls(&p, &xis, &wc.w).unwrap();
        let gap: f64 = br
            .iter()
            .zip(&th)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = th.iter().map(|a| a * a).sum::<f64>().sqrt();
        let tol = if cfg.set == SetKind::Cvar { 0.1 } else { 1e-4 };
        assert!(gap <= tol * norm, "{:?}: best-response gap {gap}", cfg.set);
    }
    // a Wasserstein penalty moves the solution off ERM, finitely
    let w = fit_dro(
        &p,
        &train,
        &AmbiguityConfig::penalized(SetKind::Wasserstein, 1.0),
    )
    .unwrap();
    assert!(w.iter().all(|v| v.is_finite()));
    assert_ne!(w, erm);
    // bad input is a clear error
    assert!(fit_dro(&p, &train[..1], &AmbiguityConfig::default()).is_err());
}

#[test]
fn rls_cell_keeps_the_grid_point_with_the_best_validation_score() {
    use robustflow::bench::rls::{fit, rls_grid, run_rls, RlsData, KDRO_LAMBDAS};
    let data = RlsData::new(10, 10, 200, 3).unwrap();
    assert_eq!(data, RlsData::new(10, 10, 200, 3).unwrap(), "seeded");
    let deltas = [0.0, 1.0, 2.0, 4.0];
    for m in ["kdro", "kl", "erm"] {
        let r = run_rls(m, &data, &deltas, 5, 3).unwrap();
        assert_eq!(r.losses.len(), deltas.len());
        assert!(r.losses.iter().all(|(_, l)| l.is_finite() && *l > 0.0));
        // recompute every grid point's validation score: the chosen one is the lowest
        let p = &data.problem;
        let mid: Vec<f64> = data.val.iter().map(|x| 3.0 * x).collect(); // 1 + deltas[2]
        let scores: Vec<(String, f64)> = rls_grid(m, 5, 3)
            .unwrap()
            .into_iter()
            .map(|(l, f)| {
                let t = fit(p, &data.train, &f).unwrap();
                (
                    l,
                    0.5 * (p.mean_loss(&t, &data.val) + p.mean_loss(&t, &mid)),
                )
            })
            .collect();
        let best = scores.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
        assert_eq!(r.chosen, best.0, "{m}: {scores:?}");
    }
    assert_eq!(rls_grid("kdro", 5, 0).unwrap().len(), KDRO_LAMBDAS.len());
    assert!(rls_grid("w1", 5, 0).is_err());
    assert!(run_rls("erm", &data, &[], 5, 0).is_err());
    assert!(run_rls("erm", &data, &[0.0, -1.0], 5, 0).is_err());
    assert!(RlsData::new(1, 10, 10, 0).is_err());
}

#[test]
fn robust_least_squares_solutions_are_optimal() {
    use rand::{Rng, SeedableRng};
    use robustflow::bench::rls::{kernel_dro, robust_opt};
    let p = RobustLeastSquares::new(3, 1.0);
    let train = RobustLeastSquares::sample_xi(10, 0.0, 4);
    let erm = p.erm(&train).unwrap();
    let ro = robust_opt(&p, 0.5).unwrap();
    let worst = |t: &[f64]| p.loss(t, -0.5).max(p.loss(t, 0.5));
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    for _ in 0..50 {
        let d: Vec<f64> = (0..erm.len())
            .map(|_| 1e-3 * (rng.random::<f64>() - 0.5))
            .collect();
        let pe: Vec<f64> = erm.iter().zip(&d).map(|(a, b)| a + b).collect();
        let pr: Vec<f64> = ro.iter().zip(&d).map(|(a, b)| a + b).collect();
        // ERM minimises the training average, RO the worst case over [-0.5, 0.5]
        assert!(p.mean_loss(&erm, &train) <= p.mean_loss(&pe, &train) + 1e-12);
        assert!(
            worst(&ro) <= worst(&pr) + 1e-9,
            "{} vs {}",
            worst(&ro),
            worst(&pr)
        );
    }
    assert!(worst(&ro) <= worst(&erm) + 1e-12);
    // the worst case over the interval is at an endpoint (the loss is convex in xi)
    for k in 0..=20 {
        let xi = -0.5 + k as f64 / 20.0;
        assert!(p.loss(&ro, xi) <= worst(&ro) + 1e-9);
    }
    // a huge MMD penalty pins the worst case to the data: kernel DRO -> ERM
    let kd = kernel_dro(&p, &train, 0.5, 11, 1e6, 0.2).unwrap();
    let dist: f64 = kd
        .iter()
        .zip(&erm)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = erm.iter().map(|a| a * a).sum::<f64>().sqrt();
    assert!(
        dist < 1e-3 * norm.max(1.0),
        "kernel DRO at lambda=1e6 is {dist} from ERM"
    );
    // a finite penalty gives a different, finite solution (the worst case moved off the data)
    let kd1 = kernel_dro(&p, &train, 0.5, 11, 1.0, 0.2).unwrap();
    assert!(kd1.iter().all(|v| v.is_finite()));
    let moved: f64 = kd1
        .iter()
        .zip(&erm)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(
        moved > 1e-3 * norm.max(1.0),
        "kernel DRO at lambda=1 equals ERM"
    );
}

#[test]
fn qualitative_checks_measure_what_they_report() {
    use robustflow::bench::qualitative::{
        circles_boundaries, rls_check, summarise_boundaries, QualitativeConfig, GAP_INNER,
    };
    let cfg = QualitativeConfig {
        seeds: vec![0],
        deltas: vec![0.0, 2.0, 5.0],
        rls_n_test: 200,
        rls_n_vals: vec![10, 50],
        gammas: vec![1.0],
        epochs: 3,
        hidden: vec![8],
        n_points: 120,
        ..Default::default()
    };
    cfg.validate().unwrap();
    let r = rls_check(&cfg).unwrap();
    assert_eq!(r.kdro.len(), 2);
    assert_eq!(r.erm.len(), 3);
    assert_eq!(
        r.kdro_below_erm_at_large_delta,
        r.kdro[0].loss[2] < r.erm[2]
    );
    assert_eq!(r.kdro_below_ro_at_small_delta, r.kdro[0].loss[0] < r.ro[0]);
    assert!(r.kdro.iter().all(|c| c.chosen.len() == 1));
    let tmp = tempfile::tempdir().unwrap();
    let b = circles_boundaries(tmp.path(), &cfg).unwrap();
    assert_eq!(b.len(), 2);
    assert_eq!((b[0].method.as_str(), b[0].gamma), ("erm", None));
    assert_eq!(b[0].farther_than_erm, 0.0);
    for x in &b {
        assert!(x.min_radius <= x.mean_radius && x.mean_radius <= x.max_radius);
        assert!((0.0..=3.0).contains(&x.min_radius) && x.max_radius <= 3.0);
        assert!((x.disk_margin - (x.min_radius - GAP_INNER)).abs() < 1e-12);
        assert!((0.0..=1.0).contains(&x.farther_than_erm));
        assert!((0.0..=1.0).contains(&x.test_accuracy));
    }
    let s = summarise_boundaries(&b, &cfg.gammas);
    assert_eq!(s.len(), 2);
    assert!(s.iter().all(|x| x.n == 1));
    let png = std::fs::read(tmp.path().join("circles_boundaries.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // bad settings are clear errors
    for bad in [
        QualitativeConfig {
            seeds: vec![],
            ..cfg.clone()
        },
        QualitativeConfig {
            gammas: vec![0.0],
            ..cfg.clone()
        },
        QualitativeConfig {
            rls_n_vals: vec![],
            ..cfg.clone()
        },
        QualitativeConfig {
            hidden: vec![0],
            ..cfg.clone()
        },
    ] {
        assert!(bad.validate().is_err());
    }
}
