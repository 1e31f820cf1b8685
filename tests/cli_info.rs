//! `robustflow info` through the binary: the text names the architecture, every column,
//! category and class, the settings, the selected radius and the metrics; `--json`
//! parses and carries the saved files' contents; non-model directories are clear errors.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const BC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/breast_cancer.csv");

fn rf(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_robustflow"));
    c.arg("--quiet");
    for a in args {
        c.arg(a);
    }
    c.output().unwrap()
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

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A CSV with numeric, categorical and missing cells and three string classes.
fn write_csv(path: &Path) {
    let mut s = String::from("size,colour,weight,kind\n");
    for i in 0..90 {
        let c = i % 3;
        let size = (i as f64 * 0.7).sin() + c as f64;
        let colour = ["red", "green", "blue", "teal"][(i / 3) % 4];
        let weight = if i == 17 {
            "NA".to_string()
        } else {
            format!("{}", (i as f64 * 0.3).cos() * 2.0 - c as f64)
        };
        s.push_str(&format!(
            "{size},{colour},{weight},{}\n",
            ["ant", "bee", "cat"][c]
        ));
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn info_describes_a_model_and_json_carries_the_saved_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("d.csv");
    write_csv(&data);
    let m = d.join("mlp");
    ok(&rf(&[
        &"train",
        &"--data",
        &data,
        &"--model",
        &"mlp",
        &"--hidden",
        &"6,5",
        &"--epochs",
        &"4",
        &"--impute",
        &"mean",
        &"--out",
        &m,
    ]));
    let text = ok(&rf(&[&"info", &"--model", &m]));
    for want in [
        "mlp, 6 inputs -> hidden 6-5 (elu)",
        "softmax head (3 logits",
        "classification of \"kind\", 3 classes: ant, bee, cat",
        "filled (--impute mean",
        "3 input columns -> 6 features",
        "colour=blue",
        "colour=teal",
        "weight",
        "selected:      none",
        "epochs=4",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    // Parameter count (6+1)*6 + (6+1)*5 + (5+1)*3.
    assert!(text.contains("; 95 parameters"), "{text}");

    let o = ok(&rf(&[&"info", &"--model", &m, &"--json"]));
    let j: Value = serde_json::from_str(&o).unwrap();
    let meta = json(&m.join("model.json"));
    let rep = json(&m.join("report.json"));
    assert_eq!(j["schema"], meta["schema"]);
    assert_eq!(j["training"], meta["training"]);
    assert_eq!(j["format"], meta["format"]);
    assert_eq!(j["architecture"]["n_params"], 95);
    assert_eq!(j["architecture"]["hidden"], serde_json::json!([6, 5]));
    assert_eq!(j["metrics"]["test"], rep["test"]);
    assert_eq!(j["metrics"]["n_train"], rep["n_train"]);
    assert_eq!(j["metrics"]["epochs"], 4);
    assert_eq!(j["metrics"]["last_epoch"], rep["epochs"][3]);
    assert!(j["selected"].is_null() && j["selection"].is_null());
    // The test metrics printed are the report's.
    let acc = rep["test"]["accuracy"].as_f64().unwrap();
    assert!(text.contains(&format!("accuracy {acc:.6}")), "{text}");
}

#[test]
fn info_shows_the_selected_radius() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("sel");
    ok(&rf(&[
        &"train",
        &"--data",
        &BC,
        &"--ambiguity",
        &"wasserstein",
        &"--w1-norm",
        &"l2",
        &"--radius",
        &"0.02,0.2",
        &"--select",
        &"cv:3",
        &"--out",
        &m,
    ]));
    let rep = json(&m.join("report.json"));
    let chosen = rep["selection"]["chosen"].as_f64().unwrap();
    let j: Value = serde_json::from_str(&ok(&rf(&[&"info", &"--model", &m, &"--json"]))).unwrap();
    assert_eq!(j["selected"]["parameter"], "radius");
    assert_eq!(j["selected"]["value"].as_f64().unwrap(), chosen);
    assert_eq!(j["selected"]["method"], "cv:3");
    assert_eq!(j["selection"], rep["selection"]);
    let text = ok(&rf(&[&"info", &"--model", &m]));
    assert!(
        text.contains(&format!(
            "selected:      --radius {chosen} by --select cv:3 on loss"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("radius {chosen}, solver auto (used: exact)")),
        "{text}"
    );
    assert!(text.contains("mean_radius") && text.contains("worst_fractal_dimension"));
}

#[test]
fn non_model_directories_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let e = err(&rf(&[&"info", &"--model", &d.join("absent")]));
    assert!(e.contains("absent: no such model directory"), "{e}");
    let file = d.join("f.csv");
    std::fs::write(&file, "a,b\n1,2\n").unwrap();
    let e = err(&rf(&[&"info", &"--model", &file]));
    assert!(e.contains("is a file, not a model directory"), "{e}");
    let e = err(&rf(&[&"info", &"--model", &d]));
    assert!(
        e.contains("not a robustflow model directory (no model.json)"),
        "{e}"
    );
    // A model.json of another format, and one that is not JSON: the validation of
    // `eval` names the file.
    let m = d.join("m");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("model.json"), r#"{"format": 99}"#).unwrap();
    let e = err(&rf(&[&"info", &"--model", &m, &"--json"]));
    assert!(e.contains("model.json: format 99"), "{e}");
    std::fs::write(m.join("model.json"), "not json").unwrap();
    let e = err(&rf(&[&"info", &"--model", &m]));
    assert!(e.contains("model.json: not a robustflow model.json"), "{e}");
}
