//! `robustflow fit-kl` end to end through the binary, on tiny runs: every documented output
//! (docs/FIT_KL.md) exists and parses with the documented keys and columns, for a mixture
//! (all seven methods, two seeds), a sample CSV, the logistic posterior on
//! `datasets/breast_cancer.csv` and a 3-D banana (marginal plots); runs are reproducible
//! from the seed; bad input stops with a named error and a non-zero exit code.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_robustflow"))
        .arg("--quiet")
        .arg("fit-kl")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run robustflow")
}

fn ok(args: &[&str]) {
    let o = run(args);
    assert!(
        o.status.success(),
        "fit-kl {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn read_csv(p: &Path) -> (Vec<String>, Vec<Vec<f64>>, Vec<String>) {
    let mut r = csv::Reader::from_path(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let h: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    let mut rows = Vec::new();
    let mut first = Vec::new();
    for rec in r.records() {
        let rec = rec.unwrap();
        first.push(rec[0].to_string());
        rows.push(
            rec.iter()
                .map(|v| v.parse::<f64>().unwrap_or(f64::NAN))
                .collect(),
        );
    }
    (h, rows, first)
}

fn is_png(p: &Path) -> bool {
    std::fs::read(p)
        .map(|b| b.starts_with(&[0x89, b'P', b'N', b'G']))
        .unwrap_or(false)
}

fn report(dir: &Path) -> Value {
    let t = std::fs::read_to_string(dir.join("report.json")).unwrap();
    serde_json::from_str(&t).unwrap()
}

/// Checks the files of one method and its `methods.<name>` entry; returns the entry.
fn check_method(dir: &Path, rep: &Value, m: &str, d: usize, n: usize) -> Value {
    let (h, rows, _) = read_csv(&dir.join(format!("particles_{m}.csv")));
    let mut want: Vec<String> = (1..=d).map(|k| format!("x{k}")).collect();
    want.push("weight".into());
    assert_eq!(h, want, "{m}: particles header");
    assert_eq!(rows.len(), n, "{m}: one row per particle");
    let s: f64 = rows.iter().map(|r| r[d]).sum();
    assert!((s - 1.0).abs() < 1e-9, "{m}: weights sum to {s}");
    assert!(rows.iter().flatten().all(|v| v.is_finite()));
    assert!(is_png(&dir.join(format!("particles_{m}.png"))), "{m}: png");
    let e = rep["methods"][m].clone();
    assert!(e.is_object(), "{m}: no methods.{m} in report");
    assert_eq!(e["mean"].as_array().unwrap().len(), d, "{m}: mean");
    let cov = e["cov"].as_array().unwrap();
    assert_eq!(cov.len(), d);
    assert!(cov.iter().all(|r| r.as_array().unwrap().len() == d));
    let ess = e["ess"].as_f64().unwrap();
    assert!(
        ess >= 1.0 - 1e-9 && ess <= n as f64 + 1e-9,
        "{m}: ess {ess}"
    );
    assert!(e["time_s"].as_f64().unwrap() >= 0.0);
    for k in [
        "energy",
        "steps",
        "step_size",
        "final_energy",
        "stop_reason",
    ] {
        assert!(!e[k].is_null(), "{m}: no {k}");
    }
    assert!(
        e["ksd"].as_f64().is_some() || e["mmd2"].as_f64().is_some(),
        "{m}: neither ksd nor mmd2"
    );
    e
}

fn check_trace(dir: &Path, methods: &[&str]) {
    let (h, rows, flows) = read_csv(&dir.join("trace.csv"));
    assert_eq!(
        h,
        ["flow", "step", "updates", "energy", "mmd2", "mass", "ess", "time_s"]
    );
    for m in methods {
        assert!(flows.iter().any(|f| f == m), "trace has no rows of {m}");
    }
    assert!(rows.iter().all(|r| r[1].is_finite() && r[3].is_finite()));
    assert!(is_png(&dir.join("trace.png")));
}

const ALL: [&str; 7] = ["ift", "wfr", "mmd", "ksd", "fr", "svgd", "langevin"];

#[test]
fn mixture_all_methods_two_seeds_writes_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    ok(&[
        "--target",
        "mixture",
        "--method",
        "all",
        "--particles",
        "30",
        "--steps",
        "12",
        "--target-samples",
        "100",
        "--trace-every",
        "4",
        "--seeds",
        "2",
        "--out-dir",
        out,
    ]);
    let rep = report(dir.path());
    assert_eq!(rep["target"]["kind"], "mixture");
    assert_eq!(rep["target"]["weights"], serde_json::json!([0.25, 0.75]));
    for k in [
        "command",
        "particles",
        "steps",
        "seed",
        "energy",
        "fr_beta",
        "kernels",
    ] {
        assert!(!rep[k].is_null(), "report has no {k}");
    }
    for m in ALL {
        let e = check_method(dir.path(), &rep, m, 2, 30);
        let cm: Vec<f64> = e["component_mass"]
            .as_array()
            .unwrap_or_else(|| panic!("{m}: no component_mass"))
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(cm.len(), 2);
        assert!((cm.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
    check_trace(dir.path(), &ALL);
    let s = &rep["seeds"];
    assert_eq!(s["seeds"], serde_json::json!([0, 1]));
    for m in ALL {
        assert_eq!(s["mass_error"][m].as_array().unwrap().len(), 2, "{m}");
        let q: Vec<f64> = s["mass_error_quantiles"][m]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(q.len(), 5);
        assert!(q.windows(2).all(|w| w[0] <= w[1]), "{m}: quantiles {q:?}");
        assert_eq!(s["median_mass_error"][m].as_f64().unwrap(), q[2]);
        assert_eq!(s["component_mass"][m].as_array().unwrap().len(), 2);
        assert_eq!(s["discrepancy"][m].as_array().unwrap().len(), 2);
    }
}

/// `--mixture-weights`, `--mixture-means`, `--mixture-std` change the mixture: three
/// unequal components in 3-D.
#[test]
fn custom_mixture_in_three_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    ok(&[
        "--mixture-weights",
        "1,2,5",
        "--mixture-means",
        "0,0,0;5,0,1;0,5,-1",
        "--mixture-std",
        "0.7",
        "--method",
        "ift,langevin",
        "--particles",
        "24",
        "--steps",
        "6",
        "--target-samples",
        "80",
        "--plot-dims",
        "2,3",
        "--init",
        "normal:1,0,0:2",
        "--step-size",
        "ift=0.5,langevin=0.01",
        "--out-dir",
        dir.path().to_str().unwrap(),
    ]);
    let rep = report(dir.path());
    assert_eq!(rep["methods"]["ift"]["step_size"], 0.5);
    assert_eq!(rep["methods"]["langevin"]["step_size"], 0.01);
    // --init FILE: the particles of this run as the start of another (weights kept)
    let again = dir.path().join("again");
    ok(&[
        "--mixture-weights",
        "1,2,5",
        "--mixture-means",
        "0,0,0;5,0,1;0,5,-1",
        "--method",
        "fr",
        "--steps",
        "3",
        "--target-samples",
        "80",
        "--init",
        dir.path().join("particles_ift.csv").to_str().unwrap(),
        "--out-dir",
        again.to_str().unwrap(),
    ]);
    let (_, rows, _) = read_csv(&again.join("particles_fr.csv"));
    let (_, start, _) = read_csv(&dir.path().join("particles_ift.csv"));
    assert_eq!(rows.len(), 24);
    for (r, s0) in rows.iter().zip(&start) {
        // FR keeps positions
        for k in 0..3 {
            assert!((r[k] - s0[k]).abs() <= 1e-12 * (1.0 + s0[k].abs()));
        }
    }
    let w: Vec<f64> = rep["target"]["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for (a, b) in w.iter().zip([0.125, 0.25, 0.625]) {
        assert!((a - b).abs() < 1e-12, "weights normalised: {w:?}");
    }
    assert_eq!(rep["target"]["std"], 0.7);
    for m in ["ift", "langevin"] {
        let e = check_method(dir.path(), &rep, m, 3, 24);
        assert_eq!(e["component_mass"].as_array().unwrap().len(), 3);
    }
}

#[test]
fn sample_csv_target_and_reproducibility() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("samples.csv");
    let mut text = String::from("a,b,c,weight\n");
    for i in 0..40 {
        let t = i as f64 / 40.0;
        text.push_str(&format!(
            "{},{},{},{}\n",
            (6.0 * t).sin(),
            t,
            (3.0 * t).cos(),
            1 + i % 3
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let mut outs = Vec::new();
    for r in ["r1", "r2"] {
        let out = dir.path().join(r);
        ok(&[
            "--samples",
            csv.to_str().unwrap(),
            "--particles",
            "25",
            "--steps",
            "10",
            "--plot-dims",
            "1,3",
            "--seed",
            "7",
            "--out-dir",
            out.to_str().unwrap(),
        ]);
        outs.push(out);
    }
    let rep = report(&outs[0]);
    assert_eq!(rep["target"]["kind"], "samples");
    assert_eq!(rep["target"]["dim"], 3);
    // the default methods without the baselines, which need a density
    let names: Vec<&String> = rep["methods"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["ift", "wfr"]);
    for m in ["ift", "wfr"] {
        let e = check_method(&outs[0], &rep, m, 3, 25);
        assert!(e["mmd2"].as_f64().unwrap() >= 0.0 && e["ksd"].is_null());
        assert!(e["component_mass"].is_null());
    }
    check_trace(&outs[0], &["ift", "wfr"]);
    // same seed, same particles
    for m in ["ift", "wfr"] {
        let a = std::fs::read(outs[0].join(format!("particles_{m}.csv"))).unwrap();
        let b = std::fs::read(outs[1].join(format!("particles_{m}.csv"))).unwrap();
        assert_eq!(a, b, "{m}: not reproducible");
    }
}

#[test]
fn logistic_posterior_and_banana_density_targets() {
    let dir = tempfile::tempdir().unwrap();
    let lo = dir.path().join("logistic");
    ok(&[
        "--target",
        "logistic-posterior",
        "--data",
        "datasets/breast_cancer.csv",
        "--target-col",
        "target",
        "--features",
        "mean_radius,mean_texture",
        "--method",
        "ift,wfr,svgd,langevin",
        "--particles",
        "20",
        "--steps",
        "10",
        "--out-dir",
        lo.to_str().unwrap(),
    ]);
    let rep = report(&lo);
    assert_eq!(rep["target"]["kind"], "logistic-posterior");
    assert_eq!(
        rep["target"]["coefficients"],
        serde_json::json!(["mean_radius", "mean_texture"])
    );
    assert!(rep["target"]["whitened"]["laplace_mode"].is_array());
    for m in ["ift", "wfr", "svgd", "langevin"] {
        let e = check_method(&lo, &rep, m, 2, 20);
        assert!(e["ksd"].as_f64().unwrap() >= 0.0);
    }
    check_trace(&lo, &["ift", "wfr", "svgd", "langevin"]);

    let ba = dir.path().join("banana");
    ok(&[
        "--target",
        "banana",
        "--dim",
        "3",
        "--method",
        "ift,ksd,svgd",
        "--plot-dims",
        "1,2",
        "--particles",
        "20",
        "--steps",
        "8",
        "--out-dir",
        ba.to_str().unwrap(),
    ]);
    let rep = report(&ba);
    assert_eq!(rep["target"]["kind"], "banana");
    for m in ["ift", "ksd", "svgd"] {
        let e = check_method(&ba, &rep, m, 3, 20);
        // a density target with exact reference samples: both discrepancies
        assert!(e["ksd"].as_f64().is_some() && e["mmd2"].as_f64().is_some());
    }
}

#[test]
fn sample_target_with_kernel_approximations() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("samples.csv");
    let mut text = String::from("a,b\n");
    for i in 0..60 {
        let t = i as f64 / 60.0;
        text.push_str(&format!("{},{}\n", (6.0 * t).sin(), t));
    }
    std::fs::write(&csv, text).unwrap();
    for approx in ["rff:128", "nystrom:30"] {
        let out = dir.path().join(approx.replace(':', "_"));
        ok(&[
            "--samples",
            csv.to_str().unwrap(),
            "--method",
            "wfr",
            "--particles",
            "20",
            "--steps",
            "10",
            "--approx",
            approx,
            "--out-dir",
            out.to_str().unwrap(),
        ]);
        let rep = report(&out);
        assert_eq!(rep["approx"], approx);
        let e = check_method(&out, &rep, "wfr", 2, 20);
        assert!(e["mmd2"].as_f64().unwrap() >= 0.0);
    }
    // ift's exact MMD-prox weight step refuses an approximated kernel, naming the flag
    fails(
        &[
            "--samples",
            csv.to_str().unwrap(),
            "--approx",
            "rff:64",
            "--out-dir",
            dir.path().join("bad").to_str().unwrap(),
        ],
        &["approx"],
    );
}

fn fails(args: &[&str], needles: &[&str]) {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "fit-kl {args:?} should fail");
    for n in needles {
        assert!(err.contains(n), "fit-kl {args:?}: `{n}` not in:\n{err}");
    }
}

#[test]
fn bad_input_gives_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let out = out.to_str().unwrap();
    let ragged = dir.path().join("ragged.csv");
    std::fs::write(&ragged, "x1,x2\n1,2\n3\n").unwrap();
    fails(
        &["--samples", ragged.to_str().unwrap(), "--out-dir", out],
        &["ragged.csv", "row 2"],
    );
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    fails(
        &["--samples", empty.to_str().unwrap(), "--out-dir", out],
        &["empty.csv"],
    );
    fails(
        &[
            "--mixture-weights",
            "0.2,0.3,0.5",
            "--mixture-means",
            "0,0;4,0",
            "--out-dir",
            out,
        ],
        &["mixture-weights", "3 weights for 2 means"],
    );
    fails(&["--mixture-std=-1", "--out-dir", out], &["mixture-std"]);
    fails(&["--method", "nuts", "--out-dir", out], &["method", "nuts"]);
    fails(
        &["--target", "logistic-posterior", "--out-dir", out],
        &["--data"],
    );
    fails(
        &[
            "--target",
            "logistic-posterior",
            "--data",
            "datasets/breast_cancer.csv",
            "--target-col",
            "no_such",
            "--out-dir",
            out,
        ],
        &["breast_cancer.csv", "no_such"],
    );
    fails(
        &["--stein-kernel", "laplace", "--out-dir", out],
        &["stein-kernel"],
    );
}
