//! `bench kdro-rls`: the interior-point programs against independent solutions (normal
//! equations, the golden-section RO of `bench::rls`, the two limits of kernel DRO), and the
//! command end to end on the shipped instance (few runs, to stay fast).

use robustflow::bench::kdro_rls::{
    erm, gram, kdro, median_distance, read_instance, ro, run_kdro_rls, KdroRlsConfig,
};
use robustflow::bench::rls::robust_opt;
use std::path::Path;
use std::process::Command;

fn instance() -> robustflow::bench::generators::RobustLeastSquares {
    read_instance(Path::new("datasets/robls_6_15"), 10).unwrap()
}

fn support(seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut s = seed.wrapping_add(99);
    let mut u = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64) / ((1u64 << 53) as f64)
    };
    let train: Vec<f64> = (0..10).map(|_| u() - 0.5).collect();
    let mut sup = train.clone();
    sup.extend((0..50).map(|_| 2.0 * u() - 1.0));
    (train, sup)
}

fn grad_norm(
    p: &robustflow::bench::generators::RobustLeastSquares,
    th: &[f64],
    xis: &[f64],
) -> f64 {
    // gradient of sum_k ||(A + xi_k B) th - b||^2
    let (m, d) = p.a.dim();
    let mut g = vec![0.0; d];
    for &xi in xis {
        for i in 0..m {
            let mut r = -p.b[i];
            for j in 0..d {
                r += (p.a[[i, j]] + xi * p.b_mat[[i, j]]) * th[j];
            }
            for j in 0..d {
                g[j] += 2.0 * r * (p.a[[i, j]] + xi * p.b_mat[[i, j]]);
            }
        }
    }
    g.iter().map(|v| v * v).sum::<f64>().sqrt()
}

#[test]
fn erm_is_the_least_squares_solution() {
    let p = instance();
    let (train, _) = support(1);
    let th = erm(&p, &train).unwrap();
    assert!(
        grad_norm(&p, &th, &train) < 1e-6,
        "{}",
        grad_norm(&p, &th, &train)
    );
}

#[test]
fn ro_matches_the_max_of_the_two_endpoints_and_an_independent_solver() {
    let p = instance();
    let (th, obj) = ro(&p, &[-1.0, 1.0]).unwrap();
    let at = p.loss(&th, -1.0).max(p.loss(&th, 1.0));
    assert!((obj - at).abs() <= 1e-7 * at, "{obj} vs {at}");
    // the convex loss in xi peaks at an endpoint of [-1, 1]
    for k in 0..=100 {
        let xi = -1.0 + 0.02 * k as f64;
        assert!(p.loss(&th, xi) <= at * (1.0 + 1e-9));
    }
    // the golden-section dual of bench::rls on the same problem
    let th2 = robust_opt(&p, 1.0).unwrap();
    let v2 = p.loss(&th2, -1.0).max(p.loss(&th2, 1.0));
    assert!(at <= v2 * (1.0 + 1e-9), "{at} vs {v2}");
    assert!((at - v2).abs() <= 1e-5 * v2, "{at} vs {v2}");
}

#[test]
fn kdro_limits_erm_at_eps_zero_and_support_ro_at_large_eps() {
    let p = instance();
    let (train, sup) = support(2);
    let h = median_distance(&sup);
    assert!(h > 0.0);
    let k = gram(&sup, h);
    assert!((k[[0, 0]] - 1.0).abs() < 1e-15);
    // eps = 0: f interpolates the losses on the support, the program is ERM.
    let s0 = kdro(&p, &sup, train.len(), 0.0, h).unwrap();
    let th_erm = erm(&p, &train).unwrap();
    let erm_val = train.iter().map(|&x| p.loss(&th_erm, x)).sum::<f64>() / train.len() as f64;
    assert!(
        (s0.objective - erm_val).abs() <= 1e-4 * erm_val,
        "eps=0: {} vs ERM {erm_val}",
        s0.objective
    );
    // feasibility at every support point, and the objective is what the variables give
    for eps in [0.0, 0.1, 1.0] {
        let s = kdro(&p, &sup, train.len(), eps, h).unwrap();
        for (l, &z) in sup.iter().enumerate() {
            let v = p.loss(&s.theta, z);
            assert!(
                v <= s.f0 + s.f[l] + 1e-6 * (1.0 + v),
                "eps {eps} point {l}: {v} > {}",
                s.f0 + s.f[l]
            );
        }
        let obj =
            s.f0 + s.f[..train.len()].iter().sum::<f64>() / train.len() as f64 + eps * s.f_norm;
        assert!(
            (obj - s.objective).abs() <= 1e-6 * (1.0 + obj.abs()),
            "{obj} vs {}",
            s.objective
        );
        // f = 0, f0 = max loss at the ERM solution is feasible: the optimum is below it
        let feas = sup.iter().map(|&z| p.loss(&th_erm, z)).fold(0.0, f64::max);
        assert!(s.objective <= feas * (1.0 + 1e-8));
        assert!(s.objective >= erm_val * (1.0 - 1e-6), "eps {eps}");
    }
    // eps large: f = 0 is optimal, the program is RO over the support points.
    let (_, ro_sup) = ro(&p, &sup).unwrap();
    let sl = kdro(&p, &sup, train.len(), 1e4, h).unwrap();
    assert!(
        (sl.objective - ro_sup).abs() <= 1e-4 * ro_sup,
        "{} vs {ro_sup}",
        sl.objective
    );
}

#[test]
fn the_experiment_runs_and_writes_its_table() {
    let p = instance();
    let cfg = KdroRlsConfig {
        runs: 2,
        n_test: 100,
        deltas: vec![0.0, 2.0, 5.0],
        ..Default::default()
    };
    let rows = run_kdro_rls(&p, &cfg).unwrap();
    assert_eq!(rows.len(), 9);
    let again = run_kdro_rls(&p, &cfg).unwrap();
    assert_eq!(rows, again, "seeded runs are reproducible");
    for r in &rows {
        assert!(r.mean_loss.is_finite() && r.mean_loss > 0.0 && r.std_loss >= 0.0);
    }
    // through the binary, on the default instance (2 runs)
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_robustflow"))
        .args([
            "--quiet",
            "bench",
            "kdro-rls",
            "--runs",
            "2",
            "--n-test",
            "50",
            "--out-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(dir.path().join("kdro_rls.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "delta,method,mean_loss,std_loss");
    assert_eq!(lines.len(), 1 + 26 * 3);
    let png = std::fs::read(dir.path().join("kdro_rls.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    // a bad instance names the file
    let bad = tempfile::tempdir().unwrap();
    for f in ["A.csv", "B.csv", "b.csv"] {
        std::fs::copy(Path::new("datasets/robls_6_15").join(f), bad.path().join(f)).unwrap();
    }
    let mut a = std::fs::read_to_string(bad.path().join("B.csv")).unwrap();
    a = a.replacen("0.", "x.", 1);
    std::fs::write(bad.path().join("B.csv"), a).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_robustflow"))
        .args(["--quiet", "bench", "kdro-rls", "--runs", "1", "--instance"])
        .arg(bad.path())
        .arg("--out-dir")
        .arg(dir.path().join("bad"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("B.csv") && e.contains("row 1"), "{e}");
    assert!(!dir.path().join("bad").join("kdro_rls.csv").exists());
}
