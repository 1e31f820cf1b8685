//! Divergence stops with a message naming the setting to lower, exits non-zero and saves
//! nothing: the inner DRO solvers (`train`, `certify`), `flow` and `fit-kl`.

mod common;

use std::path::Path;

use common::bin;

fn write_csv(path: &Path, n: usize) {
    let mut s = String::from("a,b,c,label\n");
    let mut u = common::uniform(777);
    for i in 0..n {
        let c = i % 2;
        let a = 2.0 * u() - 1.0 + if c == 1 { 0.7 } else { -0.7 };
        s.push_str(&format!("{a},{},{},{c}\n", 2.0 * u() - 1.0, u()));
    }
    std::fs::write(path, s).unwrap();
}

fn dir_is_empty_or_missing(p: &Path) -> bool {
    !p.exists() || std::fs::read_dir(p).unwrap().next().is_none()
}

#[test]
fn inner_step_blow_ups_stop_training_and_certify() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.csv");
    write_csv(&data, 60);
    for (model, form) in [
        ("logistic", ["--radius", "0.1"]),
        ("logistic", ["--penalty", "1"]),
        ("mlp", ["--radius", "0.1"]),
    ] {
        let out = dir.path().join(format!("m_{model}_{}", form[0]));
        let o = bin()
            .args(["--quiet", "train", "--data"])
            .arg(&data)
            .args([
                "--model",
                model,
                "--epochs",
                "2",
                "--ambiguity",
                "wasserstein",
                // the minibatch path (with `auto` the concave squared-cost penalty of a
                // logistic model is solved exactly and has no inner step size)
                "--solver",
                "adamw",
            ])
            .args(form)
            .args(["--inner-step-size", "1e6", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{model} {form:?} exited 0: {e}");
        assert!(e.contains("--inner-step-size"), "{model} {form:?}: {e}");
        assert!(
            dir_is_empty_or_missing(&out),
            "{model} {form:?}: saved a model"
        );
    }
    // certify an MLP (the flow is used; affine models are solved exactly)
    let model = dir.path().join("mlp");
    let o = bin()
        .args(["--quiet", "train", "--data"])
        .arg(&data)
        .args(["--model", "mlp", "--hidden", "8", "--epochs", "2", "--out"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = dir.path().join("r.json");
    let o = bin()
        .args(["--quiet", "certify", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .args([
            "--ambiguity",
            "wasserstein",
            "--radius",
            "0.1",
            "--inner-step-size",
            "1e6",
        ])
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "certify exited 0: {e}");
    assert!(e.contains("--inner-step-size"), "{e}");
    assert!(!report.exists());
}

#[test]
fn flow_and_fit_kl_stop_when_the_energy_climbs_back() {
    let dir = tempfile::tempdir().unwrap();
    // `flow`: WFR with a step 10x too large oscillates above its start.
    let out = dir.path().join("flow");
    let o = bin()
        .args([
            "--quiet", "flow", "--target", "mixture", "--flow", "wfr", "--steps", "400",
        ])
        .args(["--particles", "100", "--step-size", "30", "--out-dir"])
        .arg(&out)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "flow exited 0");
    assert!(e.contains("diverged") && e.contains("--step-size"), "{e}");
    assert!(!out.exists(), "flow wrote outputs");
    // the same run at the default step converges and writes them
    let o = bin()
        .args([
            "--quiet", "flow", "--target", "mixture", "--flow", "wfr", "--steps", "100",
        ])
        .args(["--particles", "100", "--out-dir"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("report.json").exists());
    // `fit-kl`
    let out = dir.path().join("fitkl");
    let o = bin()
        .args([
            "--quiet", "fit-kl", "--target", "mixture", "--method", "wfr",
        ])
        .args([
            "--particles",
            "100",
            "--steps",
            "300",
            "--step-size",
            "30",
            "--out-dir",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "fit-kl exited 0");
    assert!(e.contains("diverged") && e.contains("--step-size"), "{e}");
    assert!(dir_is_empty_or_missing(&out), "fit-kl wrote outputs");
}
