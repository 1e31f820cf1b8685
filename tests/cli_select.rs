//! `robustflow train --radius/--penalty LIST --select ...` through the binary: the chosen
//! value is the best of the reported table, the refit is the plain single-value model,
//! the folds are stratified, seeded partitions, and the flag rules are errors.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/breast_cancer.csv");
const DIABETES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/diabetes.csv");

fn train(args: &[&str], out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_robustflow"))
        .args(["--quiet", "train"])
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn err(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure");
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

/// Check the table's arithmetic and that `chosen` is its best mean (lower or higher, the
/// first on ties).
fn check_table(sel: &Value, values: &[f64]) -> usize {
    let cands = sel["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), values.len());
    let k = sel["folds"].as_array().unwrap().len();
    for (c, v) in cands.iter().zip(values) {
        assert_eq!(f(&c["value"]), *v);
        let per: Vec<f64> = c["folds"].as_array().unwrap().iter().map(f).collect();
        assert_eq!(per.len(), k);
        let m = per.iter().sum::<f64>() / k as f64;
        assert!((f(&c["mean"]) - m).abs() <= 1e-12 * m.abs().max(1.0));
        let sd = if k > 1 {
            (per.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (k - 1) as f64).sqrt()
        } else {
            0.0
        };
        assert!((f(&c["std"]) - sd).abs() <= 1e-12 * sd.max(1.0));
    }
    let means: Vec<f64> = cands.iter().map(|c| f(&c["mean"])).collect();
    let lower = sel["better"] == "lower";
    let mut best = 0;
    for i in 1..means.len() {
        if (lower && means[i] < means[best]) || (!lower && means[i] > means[best]) {
            best = i;
        }
    }
    assert_eq!(sel["chosen_index"].as_u64().unwrap() as usize, best);
    assert_eq!(f(&sel["chosen"]), values[best]);
    best
}

/// Every report number equal, the timings and the table aside; and the same weights.
fn same_model(a: &Path, b: &Path) {
    let (mut ra, mut rb) = (report(a), report(b));
    for r in [&mut ra, &mut rb] {
        let o = r.as_object_mut().unwrap();
        o.remove("selection");
        o.remove("fit_time_s");
        for e in o.get_mut("epochs").unwrap().as_array_mut().unwrap() {
            e.as_object_mut().unwrap().remove("time_s");
        }
    }
    assert_eq!(ra, rb, "report.json of the refit vs the plain model");
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap()
    );
    assert_eq!(
        std::fs::read(a.join("model.json")).unwrap(),
        std::fs::read(b.join("model.json")).unwrap()
    );
}

fn tmp(d: &tempfile::TempDir, name: &str) -> PathBuf {
    d.path().join(name)
}

#[test]
fn cv_chooses_the_best_radius_and_refits_the_plain_model() {
    let d = tempfile::tempdir().unwrap();
    let values = [0.01, 0.05, 0.2, 1.0];
    let base = [
        "--data",
        BC,
        "--ambiguity",
        "wasserstein",
        "--w1-norm",
        "l2",
        "--seed",
        "4",
    ];
    let sel_args: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--radius", "0.01,0.05,0.2,1", "--select", "cv:4"])
        .collect();
    let out = ok(&train(&sel_args, &tmp(&d, "sel")));
    let rep = report(&tmp(&d, "sel"));
    let sel = &rep["selection"];
    assert_eq!(sel["parameter"], "radius");
    assert_eq!(sel["method"], "cv:4");
    assert_eq!(sel["criterion"], "loss");
    assert_eq!(sel["better"], "lower");
    let best = check_table(sel, &values);
    assert!(
        out.contains(&format!("chose --radius {}", values[best])),
        "{out}"
    );
    assert_eq!(f(&rep["params"]["ambiguity"]["radius"]), values[best]);

    // The folds: a partition of the training part, stratified, seeded.
    let folds = sel["folds"].as_array().unwrap();
    let n_train = sel["n_train"].as_u64().unwrap() as usize;
    assert_eq!(n_train, rep["n_train"].as_u64().unwrap() as usize);
    let mut rows: Vec<u64> = folds
        .iter()
        .flat_map(|f| {
            f["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_u64().unwrap())
        })
        .collect();
    rows.sort_unstable();
    rows.dedup();
    assert_eq!(
        rows.len(),
        n_train,
        "the held-out parts partition the training rows"
    );
    let counts: Vec<Vec<u64>> = folds
        .iter()
        .map(|f| {
            f["class_counts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap())
                .collect()
        })
        .collect();
    for c in 0..2 {
        let total: u64 = counts.iter().map(|v| v[c]).sum();
        for v in &counts {
            assert!(
                v[c] == total / 4 || v[c] == total.div_ceil(4),
                "class {c}: {counts:?}"
            );
        }
    }
    for fo in folds {
        assert_eq!(
            fo["n_fit"].as_u64().unwrap() + fo["n_held_out"].as_u64().unwrap(),
            n_train as u64
        );
    }

    // The refit equals `train --radius <chosen>`.
    let chosen = format!("{}", values[best]);
    let plain: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--radius", chosen.as_str()])
        .collect();
    ok(&train(&plain, &tmp(&d, "plain")));
    assert!(report(&tmp(&d, "plain")).get("selection").is_none());
    same_model(&tmp(&d, "sel"), &tmp(&d, "plain"));

    // Seeded: the same table twice; another seed, other folds.
    ok(&train(&sel_args, &tmp(&d, "again")));
    assert_eq!(report(&tmp(&d, "again"))["selection"], *sel);
    let other: Vec<&str> = sel_args
        .iter()
        .map(|a| if *a == "4" { "5" } else { a })
        .collect();
    ok(&train(&other, &tmp(&d, "other")));
    assert_ne!(
        report(&tmp(&d, "other"))["selection"]["folds"],
        sel["folds"]
    );
}

#[test]
fn val_with_an_attack_criterion_and_a_penalty_list() {
    let d = tempfile::tempdir().unwrap();
    // Accuracy under PGD-L2: higher is better.
    let args = [
        "--data",
        BC,
        "--ambiguity",
        "wasserstein",
        "--w1-norm",
        "l2",
        "--radius",
        "0.05,0.3,1.5",
        "--select",
        "val",
        "--val-fraction",
        "0.3",
        "--select-by",
        "attack:l2:0.5",
    ];
    ok(&train(&args, &tmp(&d, "att")));
    let rep = report(&tmp(&d, "att"));
    let sel = &rep["selection"];
    assert_eq!(sel["criterion"], "attack:l2:0.5:20");
    assert_eq!(sel["better"], "higher");
    let best = check_table(sel, &[0.05, 0.3, 1.5]);
    let folds = sel["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 1);
    // The validation part is round(0.3 n_c) rows of each class.
    let counts = folds[0]["class_counts"].as_array().unwrap();
    assert_eq!(rep["n_val"], 0, "the refit has no validation part");
    let n_train = rep["n_train"].as_u64().unwrap() as f64;
    let held: u64 = counts.iter().map(|c| c.as_u64().unwrap()).sum();
    assert!((held as f64 - 0.3 * n_train).abs() <= 1.0);
    for c in sel["candidates"].as_array().unwrap() {
        let a = f(&c["mean"]);
        assert!((0.0..=1.0).contains(&a));
        // An accuracy on the part: a multiple of 1 / size.
        assert!((a * held as f64 - (a * held as f64).round()).abs() < 1e-9);
    }
    // The refit is the plain model at the chosen radius.
    let chosen = ["0.05", "0.3", "1.5"][best];
    ok(&train(
        &[
            "--data",
            BC,
            "--ambiguity",
            "wasserstein",
            "--w1-norm",
            "l2",
            "--radius",
            chosen,
        ],
        &tmp(&d, "plain"),
    ));
    same_model(&tmp(&d, "att"), &tmp(&d, "plain"));

    // A penalty list (kl set), regression with the loss criterion.
    ok(&train(
        &[
            "--data",
            DIABETES,
            "--model",
            "linear",
            "--ambiguity",
            "chi2",
            "--penalty",
            "2,8",
            "--select",
            "cv:3",
        ],
        &tmp(&d, "pen"),
    ));
    let rep = report(&tmp(&d, "pen"));
    assert_eq!(rep["selection"]["parameter"], "penalty");
    assert!(rep["selection"]["folds"][0]["class_counts"].is_null());
    let best = check_table(&rep["selection"], &[2.0, 8.0]);
    assert_eq!(f(&rep["params"]["ambiguity"]["penalty"]), [2.0, 8.0][best]);
}

#[test]
fn flag_rules_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let out = tmp(&d, "m");
    let w = [
        "--data",
        BC,
        "--ambiguity",
        "wasserstein",
        "--w1-norm",
        "l2",
    ];
    let with = |extra: &[&str]| -> String {
        let a: Vec<&str> = w.iter().chain(extra).copied().collect();
        err(&train(&a, &out))
    };
    let e = with(&["--radius", "0.1,0.2"]);
    assert!(e.contains("`radius`") && e.contains("--select"), "{e}");
    let e = with(&["--radius", "0.1", "--select", "cv:3"]);
    assert!(e.contains("nothing to select"), "{e}");
    let e = with(&["--radius", "0.1,0.2", "--select", "val"]);
    assert!(e.contains("val-fraction"), "{e}");
    let e = with(&[
        "--radius",
        "0.1,0.2",
        "--select",
        "cv:3",
        "--val-fraction",
        "0.2",
    ]);
    assert!(e.contains("val-fraction"), "{e}");
    let e = with(&["--radius", "0.1,0.2", "--select", "cv:1"]);
    assert!(e.contains("K >= 2"), "{e}");
    let e = with(&["--radius", "0.1,0.1", "--select", "cv:3"]);
    assert!(e.contains("listed twice"), "{e}");
    let e = with(&["--radius", "0.1,-1", "--select", "cv:3"]);
    assert!(e.contains("`radius` = -1"), "{e}");
    let e = with(&["--radius", "0.1", "--select-by", "loss"]);
    assert!(e.contains("select-by"), "{e}");
    let e = with(&["--radius", "0.1,0.2", "--select", "cv:3", "--patience", "2"]);
    assert!(e.contains("patience"), "{e}");
    let e = with(&["--radius", "0.1,0.2", "--select", "kfold"]);
    assert!(e.contains("cv:K"), "{e}");
    let e = err(&train(
        &[
            "--data",
            DIABETES,
            "--model",
            "linear",
            "--ambiguity",
            "chi2",
            "--penalty",
            "2,8",
            "--select",
            "cv:3",
            "--select-by",
            "attack:l2:0.5",
        ],
        &out,
    ));
    assert!(e.contains("classifier"), "{e}");
    assert!(!out.exists(), "nothing written on error");
}
