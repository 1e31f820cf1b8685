//! `robustflow predict` through the binary: its output is `eval --predictions` on the
//! same rows, with or without the target column, and bad rows are errors naming the
//! file, row and column.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::bin;

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = bin();
    c.arg("--quiet");
    for a in args {
        c.arg(a);
    }
    c.output().unwrap()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn err(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure");
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// `n` rows of `x1,x2,shape,label` (three classes for `classes = 3`, else two), with a
/// categorical column; labels are strings.
fn rows(n: usize, seed: u64, classes: usize) -> Vec<[String; 4]> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut u = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64) / ((1u64 << 53) as f64)
    };
    (0..n)
        .map(|i| {
            let c = i % classes;
            let x1 = u() * 2.0 - 1.0 + c as f64 * 1.1;
            let x2 = u() * 2.0 - 1.0 - c as f64 * 0.4;
            let shape = ["round", "square", "star"][(i / 2) % 3];
            [
                format!("{x1}"),
                format!("{x2}"),
                shape.to_string(),
                ["neg", "pos", "mid"][c].to_string(),
            ]
        })
        .collect()
}

/// Write the rows with the columns `cols` (indices into `x1,x2,shape,label`) in order.
fn write(path: &Path, rows: &[[String; 4]], cols: &[usize]) {
    let names = ["x1", "x2", "shape", "label"];
    let mut s = cols.iter().map(|&j| names[j]).collect::<Vec<_>>().join(",");
    s.push('\n');
    for r in rows {
        s.push_str(
            &cols
                .iter()
                .map(|&j| r[j].as_str())
                .collect::<Vec<_>>()
                .join(","),
        );
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

fn read_csv(p: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// The columns of `table` named in `names`, in that order (header included).
fn columns(table: &[Vec<String>], names: &[String]) -> Vec<Vec<String>> {
    let idx: Vec<usize> = names
        .iter()
        .map(|n| {
            table[0]
                .iter()
                .position(|h| h == n)
                .unwrap_or_else(|| panic!("{n}"))
        })
        .collect();
    table
        .iter()
        .map(|r| idx.iter().map(|&j| r[j].clone()).collect())
        .collect()
}

fn train(dir: &Path, data: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join(format!("model{}", extra.len()));
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"train", &"--data", &data];
    for e in extra {
        args.push(e);
    }
    args.push(&"--out");
    args.push(&out);
    ok(&run(&args));
    out
}

#[test]
fn predict_equals_eval_with_and_without_the_target() {
    for (classes, model) in [(2, "logistic"), (3, "softmax")] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let train_csv = d.join("train.csv");
        write(&train_csv, &rows(90, 1, classes), &[0, 1, 2, 3]);
        let m = train(d, &train_csv, &["--model", model, "--weight-decay", "0.01"]);
        let new = rows(37, 2, classes);
        let labelled = d.join("labelled.csv");
        let unlabelled = d.join("unlabelled.csv");
        // The unlabelled file also reorders the columns: columns are found by name.
        write(&labelled, &new, &[0, 1, 2, 3]);
        write(&unlabelled, &new, &[2, 1, 0]);
        let ev = d.join("eval.csv");
        ok(&run(&[
            &"eval",
            &"--model",
            &m,
            &"--data",
            &labelled,
            &"--predictions",
            &ev,
        ]));
        let p1 = d.join("p1.csv");
        let p2 = d.join("p2.csv");
        ok(&run(&[
            &"predict",
            &"--model",
            &m,
            &"--data",
            &unlabelled,
            &"--out",
            &p1,
        ]));
        ok(&run(&[
            &"predict", &"--model", &m, &"--data", &labelled, &"--out", &p2,
        ]));
        let pred = read_csv(&p1);
        assert_eq!(pred.len(), new.len() + 1, "one output row per input row");
        let mut want = vec!["row".to_string(), "predicted".into()];
        let classes_names: &[&str] = if classes == 2 {
            &["neg", "pos"]
        } else {
            &["mid", "neg", "pos"]
        };
        want.extend(classes_names.iter().map(|c| format!("p_{c}")));
        assert_eq!(pred[0], want);
        assert_eq!(
            pred,
            columns(&read_csv(&ev), &want),
            "predict = eval --predictions"
        );
        assert_eq!(
            std::fs::read(&p1).unwrap(),
            std::fs::read(&p2).unwrap(),
            "the target column is ignored"
        );
        // Probabilities sum to one and the predicted class is the most probable one.
        for r in &pred[1..] {
            let p: Vec<f64> = r[2..].iter().map(|v| v.parse().unwrap()).collect();
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            let best = (0..p.len()).fold(0, |b, j| if p[j] > p[b] { j } else { b });
            assert_eq!(r[1], classes_names[best]);
        }
        // A label never seen in training is ignored too (eval refuses it).
        let mut odd = new.clone();
        odd[3][3] = "unseen".into();
        let odd_csv = d.join("odd.csv");
        write(&odd_csv, &odd, &[0, 1, 2, 3]);
        let p3 = d.join("p3.csv");
        ok(&run(&[
            &"predict", &"--model", &m, &"--data", &odd_csv, &"--out", &p3,
        ]));
        assert_eq!(std::fs::read(&p1).unwrap(), std::fs::read(&p3).unwrap());
        let e = err(&run(&[&"eval", &"--model", &m, &"--data", &odd_csv]));
        assert!(e.contains("unseen"), "{e}");
    }
}

#[test]
fn regression_predictions_are_in_original_units_as_in_eval() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut s = String::from("a,b,y\n");
    let mut t = String::from("a,b\n");
    let mut tl = String::from("a,b,y\n");
    for i in 0..60 {
        let a = (i as f64 * 0.37).sin() * 3.0;
        let b = (i as f64 * 0.11).cos() + 10.0;
        let y = 100.0 + 5.0 * a - 2.0 * b + (i as f64 * 1.7).sin();
        s.push_str(&format!("{a},{b},{y}\n"));
        if i % 3 == 0 {
            t.push_str(&format!("{a},{b}\n"));
            tl.push_str(&format!("{a},{b},{y}\n"));
        }
    }
    let train_csv = d.join("train.csv");
    std::fs::write(&train_csv, s).unwrap();
    std::fs::write(d.join("new.csv"), t).unwrap();
    std::fs::write(d.join("new_l.csv"), tl).unwrap();
    let m = train(d, &train_csv, &["--model", "linear"]);
    let p = d.join("p.csv");
    let ev = d.join("ev.csv");
    ok(&run(&[
        &"predict",
        &"--model",
        &m,
        &"--data",
        &d.join("new.csv"),
        &"--out",
        &p,
    ]));
    ok(&run(&[
        &"eval",
        &"--model",
        &m,
        &"--data",
        &d.join("new_l.csv"),
        &"--predictions",
        &ev,
    ]));
    let pred = read_csv(&p);
    assert_eq!(pred[0], vec!["row".to_string(), "predicted".into()]);
    assert_eq!(pred, columns(&read_csv(&ev), &pred[0]));
    // Original units: close to the (nearly linear) response.
    let truth: Vec<f64> = read_csv(&d.join("new_l.csv"))[1..]
        .iter()
        .map(|r| r[2].parse().unwrap())
        .collect();
    for (r, y) in pred[1..].iter().zip(&truth) {
        let v: f64 = r[1].parse().unwrap();
        assert!((v - y).abs() < 3.0, "{v} vs {y}");
    }
}

#[test]
fn bad_rows_are_errors_naming_file_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train_csv = d.join("train.csv");
    write(&train_csv, &rows(60, 3, 2), &[0, 1, 2, 3]);
    let m = train(d, &train_csv, &[]);
    let new = rows(10, 4, 2);
    let out = d.join("p.csv");
    let predict = |f: &Path| run(&[&"predict", &"--model", &m, &"--data", &f, &"--out", &out]);

    let no_x2 = d.join("no_x2.csv");
    write(&no_x2, &new, &[0, 2]);
    let e = err(&predict(&no_x2));
    assert!(
        e.contains("no_x2.csv") && e.contains("column x2") && e.contains("missing"),
        "{e}"
    );

    let mut bad = new.clone();
    bad[4][2] = "hexagon".into();
    let f = d.join("cat.csv");
    write(&f, &bad, &[0, 1, 2]);
    let e = err(&predict(&f));
    assert!(
        e.contains("cat.csv: row 5, column 3 (shape)") && e.contains("hexagon"),
        "{e}"
    );

    let mut bad = new.clone();
    bad[6][1] = "NA".into();
    let f = d.join("na.csv");
    write(&f, &bad, &[0, 1, 2]);
    let e = err(&predict(&f));
    assert!(
        e.contains("na.csv: row 7, column 2 (x2)") && e.contains("missing"),
        "{e}"
    );

    let mut bad = new.clone();
    bad[2][0] = "abc".into();
    let f = d.join("text.csv");
    write(&f, &bad, &[0, 1, 2]);
    let e = err(&predict(&f));
    assert!(e.contains("text.csv: row 3, column 1 (x1)"), "{e}");
    assert!(!out.exists(), "no output written on error");

    // The output may not overwrite an input.
    let ok_csv = d.join("ok.csv");
    write(&ok_csv, &new, &[0, 1, 2]);
    let e = err(&run(&[
        &"predict", &"--model", &m, &"--data", &ok_csv, &"--out", &ok_csv,
    ]));
    assert!(e.contains("would overwrite"), "{e}");
    let e = err(&run(&[
        &"predict",
        &"--model",
        &m,
        &"--data",
        &ok_csv,
        &"--out",
        &m.join("model.json"),
    ]));
    assert!(e.contains("would overwrite"), "{e}");
    // Not a model directory.
    let e = err(&run(&[
        &"predict", &"--model", &d, &"--data", &ok_csv, &"--out", &out,
    ]));
    assert!(e.contains("not a robustflow model directory"), "{e}");
}

#[test]
fn imputation_follows_training_and_drop_is_refused_per_row() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut r = rows(60, 5, 2);
    r[3][0] = "NA".into();
    let train_csv = d.join("train.csv");
    write(&train_csv, &r, &[0, 1, 2, 3]);
    let new = {
        let mut n = rows(8, 6, 2);
        n[2][0] = String::new();
        n
    };
    let f = d.join("new.csv");
    write(&f, &new, &[0, 1, 2]);
    let fl = d.join("new_l.csv");
    write(&fl, &new, &[0, 1, 2, 3]);
    // --impute mean: the missing cell gets the training mean, as in eval.
    let m = train(d, &train_csv, &["--impute", "mean"]);
    let out = d.join("p.csv");
    let ev = d.join("ev.csv");
    ok(&run(&[
        &"predict", &"--model", &m, &"--data", &f, &"--out", &out,
    ]));
    ok(&run(&[
        &"eval",
        &"--model",
        &m,
        &"--data",
        &fl,
        &"--predictions",
        &ev,
    ]));
    let pred = read_csv(&out);
    assert_eq!(pred.len(), 9);
    assert_eq!(pred, columns(&read_csv(&ev), &pred[0]));
    // --impute drop: eval drops the row; predict writes one row per input row, so the
    // row is an error naming it.
    let m2 = train(d, &train_csv, &["--impute", "drop", "--seed", "1"]);
    let e = err(&run(&[
        &"predict", &"--model", &m2, &"--data", &f, &"--out", &out,
    ]));
    assert!(
        e.contains("new.csv: row 3, column 1 (x1)") && e.contains("--impute drop"),
        "{e}"
    );
}
