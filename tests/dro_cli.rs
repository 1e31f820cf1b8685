//! `robustflow certify` end to end: train a logistic model through the binary, certify it,
//! check that the bounds bracket the closed form and that bad arguments give clear errors.

mod common;

use std::path::Path;

use common::bin;

fn write_csv(path: &Path, n: usize) {
    let mut s = String::from("a,b,label\n");
    let mut u = common::uniform(12345);
    for i in 0..n {
        let c = i % 2;
        let a = 2.0 * u() - 1.0 + if c == 1 { 0.8 } else { -0.8 };
        let b = 2.0 * u() - 1.0;
        s.push_str(&format!("{a},{b},{}\n", if c == 1 { "yes" } else { "no" }));
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn certify_brackets_the_closed_form_and_rejects_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.csv");
    write_csv(&data, 80);
    let model = dir.path().join("m");
    let o = bin()
        .args(["--quiet", "train", "--data"])
        .arg(&data)
        .args([
            "--model", "logistic", "--epochs", "5", "--seed", "1", "--out",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (set, extra) in [
        ("wasserstein", vec!["--norm", "l2"]),
        ("wasserstein", vec![]),
        ("kl", vec![]),
        ("mmd", vec!["--inner-steps", "5"]),
    ] {
        let report = dir.path().join(format!("r_{set}_{}.json", extra.len()));
        let worst = dir.path().join("worst.csv");
        let o = bin()
            .args(["--quiet", "certify", "--model"])
            .arg(&model)
            .arg("--data")
            .arg(&data)
            .args(["--ambiguity", set, "--radius", "0,0.05,0.2"])
            .args(&extra)
            .arg("--report")
            .arg(&report)
            .arg("--dump-worst")
            .arg(&worst)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            stdout.contains("lower") && stdout.contains("upper"),
            "{stdout}"
        );
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        let rows = j["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 3);
        for r in rows {
            let lb = r["lower_bound"].as_f64().unwrap();
            // mmd has no valid upper bound off the support points: null, with the reason.
            let ub = match r["upper_bound"].as_f64() {
                Some(u) => u,
                None => {
                    assert_eq!(set, "mmd", "{r}");
                    assert!(r["upper_bound_note"]
                        .as_str()
                        .unwrap()
                        .contains("no upper bound"));
                    f64::INFINITY
                }
            };
            assert!(lb <= ub + 1e-9, "{r}");
            if let Some(c) = r["closed_form"].as_f64() {
                assert!(lb <= c + 1e-9 && c <= ub + 1e-9, "{r}");
            }
            assert!(r["radius_reached"].as_f64().unwrap() <= r["radius"].as_f64().unwrap() + 1e-12);
            assert!(r.get("multiplier").is_some() && r.get("empirical_risk").is_some());
        }
        if set == "wasserstein" && !extra.is_empty() {
            assert!(
                rows[1]["closed_form"].as_f64().is_some(),
                "logistic: W1 closed form"
            );
        }
        let csv = std::fs::read_to_string(&worst).unwrap();
        assert!(csv.starts_with("radius,a,b,label,weight"), "{csv}");
    }
    for (args, needle) in [
        (vec!["--ambiguity", "nope", "--radius", "0.1"], "ambiguity"),
        (vec!["--ambiguity", "kl", "--radius", "-1"], "radius"),
        (vec!["--ambiguity", "kl", "--radius", "x"], "radius"),
        (
            vec![
                "--ambiguity",
                "wasserstein",
                "--radius",
                "0.1",
                "--norm",
                "l7",
            ],
            "norm",
        ),
    ] {
        let o = bin()
            .args(["--quiet", "certify", "--model"])
            .arg(&model)
            .arg("--data")
            .arg(&data)
            .args(&args)
            .output()
            .unwrap();
        assert!(!o.status.success());
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(needle), "{args:?}: {e}");
    }
}

#[test]
fn train_mmd_set_with_a_kernel_approximation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.csv");
    write_csv(&data, 80);
    for approx in ["rff:64", "nystrom:16"] {
        let model = dir.path().join(format!("m_{}", approx.replace(':', "_")));
        let o = bin()
            .args(["--quiet", "train", "--data"])
            .arg(&data)
            .args([
                "--model",
                "logistic",
                "--epochs",
                "3",
                "--seed",
                "1",
                "--ambiguity",
                "mmd",
                "--penalty",
                "1",
                "--inner-flow",
                "wfr",
                "--inner-steps",
                "3",
                "--approx",
                approx,
                "--out",
            ])
            .arg(&model)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // the choice is recorded with the model
        let text = std::fs::read_to_string(model.join("model.json")).unwrap();
        assert!(
            text.contains(&format!("\"approx\": \"{approx}\""))
                || text.contains(&format!("\"approx\":\"{approx}\"")),
            "{approx} not recorded in model.json"
        );
    }
    // the MMD-prox inner flows need the exact kernel: a named error
    let o = bin()
        .args(["--quiet", "train", "--data"])
        .arg(&data)
        .args([
            "--model",
            "logistic",
            "--epochs",
            "1",
            "--ambiguity",
            "mmd",
            "--penalty",
            "1",
            "--approx",
            "rff:64",
            "--out",
        ])
        .arg(dir.path().join("bad"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("approx") && err.contains("inner-flow"),
        "{err}"
    );
}
