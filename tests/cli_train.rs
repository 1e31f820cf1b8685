//! `robustflow train` then `robustflow eval` end to end through the binary.

mod common;

use std::path::Path;

use common::bin;

/// A small two-class CSV with a categorical column and string labels.
fn write_csv(path: &Path, n: usize, seed: u64) {
    let mut s = String::from("x1,x2,shape,label\n");
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut u = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64) / ((1u64 << 53) as f64)
    };
    for i in 0..n {
        let c = i % 2;
        let x1 = u() * 2.0 - 1.0 + if c == 1 { 1.2 } else { -1.2 };
        let x2 = u() * 2.0 - 1.0;
        let shape = ["round", "square", "star"][i % 3];
        let label = if c == 1 { "pos" } else { "neg" };
        s.push_str(&format!("{x1},{x2},{shape},{label}\n"));
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn train_then_eval_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.csv");
    let test = dir.path().join("new.csv");
    write_csv(&data, 80, 1);
    write_csv(&test, 30, 2);
    let out = dir.path().join("model");
    let o = bin()
        .args(["--quiet", "train", "--data"])
        .arg(&data)
        .args([
            "--model", "mlp", "--hidden", "8", "--epochs", "15", "--lr", "0.05", "--seed", "3",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["model.safetensors", "model.json", "report.json"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(meta["schema"]["classes"], serde_json::json!(["neg", "pos"]));
    assert_eq!(meta["crate_version"], env!("CARGO_PKG_VERSION"));
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(rep["epochs"].as_array().unwrap().len(), 15);

    let preds = dir.path().join("pred.csv");
    let report = dir.path().join("eval.json");
    let table = dir.path().join("eval.csv");
    let o = bin()
        .args(["eval", "--model"])
        .arg(&out)
        .arg("--data")
        .arg(&test)
        .args([
            "--attack", "pgd", "--norm", "linf", "--eps", "0.1,0.5", "--shift", "*+0.5",
        ])
        .arg("--predictions")
        .arg(&preds)
        .arg("--report")
        .arg(&report)
        .arg("--csv")
        .arg(&table)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("clean") && stdout.contains("pgd"),
        "{stdout}"
    );
    let ev: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let rows = ev["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "clean, 2 budgets, shift");
    let acc: Vec<f64> = rows
        .iter()
        .map(|r| r["accuracy"].as_f64().unwrap())
        .collect();
    assert!(acc[0] > 0.8, "clean accuracy {}", acc[0]);
    assert!(acc[2] <= acc[0], "a stronger attack does not help");
    let loss: Vec<f64> = rows.iter().map(|r| r["loss"].as_f64().unwrap()).collect();
    assert!(
        loss[1] >= loss[0] && loss[2] >= loss[1],
        "attacked loss grows with eps: {loss:?}"
    );

    let mut rdr = csv::Reader::from_path(&preds).unwrap();
    let h: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        h,
        vec!["row", "label", "predicted", "p_neg", "p_pos", "loss"]
    );
    let recs: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(recs.len(), 30, "one row per input row");
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r[0].parse::<usize>().unwrap(), i + 1);
        let p: f64 = r[3].parse::<f64>().unwrap() + r[4].parse::<f64>().unwrap();
        assert!((p - 1.0).abs() < 1e-12);
        assert!(r[5].parse::<f64>().unwrap() >= 0.0);
    }
    let t = std::fs::read_to_string(&table).unwrap();
    assert_eq!(t.lines().count(), 5);
}

#[test]
fn eval_reports_a_missing_column_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.csv");
    write_csv(&data, 40, 1);
    let out = dir.path().join("m");
    let o = bin()
        .args(["--quiet", "train", "--data"])
        .arg(&data)
        .args(["--epochs", "2"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "x1,x2,form,label\n0.1,0.2,round,pos\n").unwrap();
    let o = bin()
        .args(["eval", "--model"])
        .arg(&out)
        .arg("--data")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("bad.csv") && e.contains("shape") && e.contains("missing"),
        "{e}"
    );
}

#[test]
fn train_rejects_a_bad_flag_value() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.csv");
    write_csv(&data, 20, 1);
    let o = bin()
        .args(["--quiet", "train", "--data"])
        .arg(&data)
        .args(["--lr=-1", "--out"])
        .arg(dir.path().join("m"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("lr"));
}

/// The flag groups are declared once (`robustflow::app::args`) but each command keeps its
/// own defaults: train solves many cheap inner problems (20 steps of 0.1), certify few
/// accurate ones (100 steps of 0.5; 20 steps, 12 bisections at tolerance 1e-2 for mmd).
#[test]
fn shared_flag_groups_keep_each_commands_defaults() {
    use clap::Parser;
    use robustflow::app::{certify::CertifyArgs, train::TrainArgs};
    use robustflow::dro::SetKind;
    #[derive(Parser)]
    struct Train {
        #[command(flatten)]
        a: TrainArgs,
    }
    #[derive(Parser)]
    struct Certify {
        #[command(flatten)]
        a: CertifyArgs,
    }
    let t = Train::try_parse_from(["t", "--data", "d.csv", "--out", "o"])
        .unwrap()
        .a;
    let c = t.ambiguity_config().unwrap();
    assert_eq!(
        (c.set, c.inner_steps, c.inner_step_size),
        (SetKind::None, 20, 0.1)
    );
    assert_eq!((c.tune_iters, c.tune_tol), (30, 1e-3));
    assert_eq!(c, robustflow::dro::AmbiguityConfig::default());
    let cert = |set: &str, extra: &[&str]| {
        let mut a = vec!["c", "--model", "m", "--data", "d.csv", "--ambiguity", set];
        a.extend_from_slice(&["--radius", "0,0.1"]);
        a.extend_from_slice(extra);
        Certify::try_parse_from(a).unwrap().a
    };
    let k = cert("kl", &[]);
    assert_eq!(k.radius.0, vec![0.0, 0.1]);
    let c = k.config().unwrap();
    assert_eq!(
        (c.inner_steps, c.inner_step_size, c.tune_iters, c.tune_tol),
        (100, 0.5, 30, 1e-3)
    );
    let c = cert("mmd", &[]).config().unwrap();
    assert_eq!(
        (c.inner_steps, c.inner_step_size, c.tune_iters, c.tune_tol),
        (20, 0.5, 12, 1e-2)
    );
    // A value given wins in both commands.
    let c = cert("mmd", &["--inner-steps", "7", "--inner-step-size", "0.2"])
        .config()
        .unwrap();
    assert_eq!((c.inner_steps, c.inner_step_size), (7, 0.2));
    let t = Train::try_parse_from(["t", "--data", "d", "--out", "o", "--inner-step-size", "0.3"]);
    assert_eq!(
        t.unwrap().a.ambiguity_config().unwrap().inner_step_size,
        0.3
    );
    // Typed flags: a bad value is a usage error naming the flag and the accepted values.
    for (args, needle) in [
        (vec!["--ambiguity", "nope"], "expected none, wasserstein"),
        (vec!["--inner-flow", "zz"], "expected ift, wfr, w or prox"),
        (vec!["--w1-norm", "l7"], "expected l2, l1 or linf"),
        (
            vec!["--solver", "newtonish"],
            "expected auto, exact, adamw or sgd",
        ),
        (vec!["--hidden", "0"], "positive integers"),
    ] {
        let mut a = vec!["t", "--data", "d", "--out", "o"];
        a.extend_from_slice(&args);
        let e = Train::try_parse_from(a).err().unwrap().to_string();
        assert!(e.contains(args[0]) && e.contains(needle), "{e}");
    }
    // One list parser: radii need at least one value, budgets may be empty; both reject
    // negative values naming their flag.
    use robustflow::app::args::{Budgets, Radii};
    assert!(""
        .parse::<Radii>()
        .unwrap_err()
        .to_string()
        .contains("at least one radius"));
    assert_eq!("".parse::<Budgets>().unwrap().0, Vec::<f64>::new());
    assert!("0.1,-1"
        .parse::<Radii>()
        .unwrap_err()
        .to_string()
        .contains("`radius`"));
    assert!("0.1,-1"
        .parse::<Budgets>()
        .unwrap_err()
        .to_string()
        .contains("`eps`"));
    assert!("1e308"
        .parse::<Budgets>()
        .unwrap_err()
        .to_string()
        .contains("overflows"));
    assert_eq!(
        " 0.5, 1 ,,2".parse::<Budgets>().unwrap().0,
        vec![0.5, 1.0, 2.0]
    );
}
