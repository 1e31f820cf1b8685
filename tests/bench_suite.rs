//! The benchmark suite end to end: the `quick` grid's outputs (every cell present,
//! accuracies in [0, 1], ERM above 0.9 on breast cancer), resume (a rerun computes
//! nothing), sharding (shards 0/2 and 1/2 merged equal one unsharded run), and seeded
//! generators.

use robustflow::bench::generators::{circles, gaussian_shift, subpopulation, RobustLeastSquares};
use robustflow::bench::report::{merge, run_suite};
use robustflow::bench::suite::{read_results, synthetic, Row, SuiteConfig};
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets")
}

/// Rows without the wall time, sorted by key (the numbers a rerun must reproduce).
fn numbers(rows: &[Row]) -> Vec<(String, String, String, String, u64, f64, f64, String)> {
    let mut v: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.dataset.clone(),
                r.method.clone(),
                r.condition.clone(),
                r.budget.clone(),
                r.seed,
                r.accuracy,
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
        assert!((0.0..=1.0).contains(&r.accuracy), "{r:?}");
        assert!(r.loss.is_finite() && r.loss >= 0.0, "{r:?}");
        assert!(r.time_s >= 0.0);
    }
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
    assert!(summary.contains("**"), "best of each column marked");
    let prov: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(full.join("results.json")).unwrap()).unwrap();
    assert_eq!(prov["crate_version"], env!("CARGO_PKG_VERSION"));
    assert!(prov["git_commit"].is_string());
    assert!(prov["machine"]["cores"].as_u64().unwrap() >= 1);
    assert_eq!(prov["config"]["suite"], "quick");
    for f in ["breast_cancer_accuracy_l2.png", "circles_loss_shift.png"] {
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
