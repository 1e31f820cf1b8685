//! The `flow` and `mmd` subcommands through their library `run` functions, on tiny
//! settings: every output exists and parses, runs are reproducible from the seed, IFT
//! beats the plain MMD flow on a small 2-D problem, the permutation test separates equal
//! from shifted distributions, and bad parameters give named errors.

use robustflow::app::flow::{self, FlowArgs};
use robustflow::app::mmd::{self, MmdArgs};
use robustflow::app::GlobalOpts;
use robustflow::Error;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn quiet() -> GlobalOpts {
    GlobalOpts {
        quiet: true,
        threads: None,
        silent: false,
    }
}

fn tiny(out: &Path) -> FlowArgs {
    FlowArgs {
        particles: 30,
        steps: 20,
        trace_every: Some(4),
        out_dir: out.to_path_buf(),
        ..FlowArgs::default()
    }
}

fn read_csv(p: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let h = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(String::from).collect())
        .collect();
    (h, rows)
}

fn is_png(p: &Path) -> bool {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    b.starts_with(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a])
}

#[test]
fn flow_writes_every_output_for_every_flow() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = tiny(dir.path());
    a.flow = "all".into();
    let report = flow::run(&a, &quiet()).unwrap();
    let names = [
        "mmd",
        "mmd-noise",
        "fr",
        "wfr",
        "mmd-prox",
        "ift",
        "ift-pg",
        "kfr",
        "svgd",
        "langevin",
    ];
    // trace.csv: the documented columns and rows for every flow, ending at the budget
    let (h, rows) = read_csv(&dir.path().join("trace.csv"));
    assert_eq!(
        h,
        ["flow", "step", "updates", "energy", "mmd2", "mass", "ess", "time_s", "seed"]
    );
    for n in names {
        let r: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == n).collect();
        assert!(r.len() >= 2, "trace rows of {n}");
        let last = r.last().unwrap();
        assert_eq!(last[2], "20", "{n} ends at the update budget");
        let mmd2: f64 = last[4].parse().unwrap();
        let mass: f64 = last[5].parse().unwrap();
        assert!(mmd2.is_finite() && mmd2 >= 0.0);
        assert!((mass - 1.0).abs() < 1e-9, "{n} keeps mass one: {mass}");
    }
    // report.json: keys per flow, read back from disk
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk["config"], report["config"]);
    assert_eq!(
        on_disk["flows"]["ift"]["steps"],
        report["flows"]["ift"]["steps"]
    );
    for n in names {
        let f = &on_disk["flows"][n];
        for k in [
            "final_mmd2",
            "steps",
            "updates",
            "time_s",
            "stop_reason",
            "mass",
            "ess",
        ] {
            assert!(!f[k].is_null(), "flows.{n}.{k} missing");
        }
        let ups = f["updates"].as_u64().unwrap();
        assert_eq!(ups, 20, "{n}: equal numbers of updates");
        assert!(on_disk["summary"][n]["final_mmd2"]["median"].is_number());
        // particles: d + 1 columns, weights on the simplex
        let (ph, prow) = read_csv(&dir.path().join(format!("particles_{n}.csv")));
        assert_eq!(ph, ["x1", "x2", "weight"]);
        assert_eq!(prow.len(), 30);
        let s: f64 = prow.iter().map(|r| r[2].parse::<f64>().unwrap()).sum();
        assert!((s - 1.0).abs() < 1e-9);
        assert!(is_png(&dir.path().join(format!("particles_{n}.png"))));
    }
    // two-update flows ran half as many iterations
    assert_eq!(on_disk["flows"]["ift"]["steps"], 10);
    assert_eq!(on_disk["flows"]["mmd"]["steps"], 20);
    assert!(is_png(&dir.path().join("mmd2.png")));
    assert!(is_png(&dir.path().join("mmd2_train.png")));
    let (sh, srows) = read_csv(&dir.path().join("summary.csv"));
    assert_eq!(sh[0], "flow");
    assert_eq!(srows.len(), names.len());
    // the training column is 2 * final energy of the (single) seed, the held-out one final_mmd2
    let col = |c: &str| sh.iter().position(|h| h == c).unwrap();
    for row in &srows {
        let f = &on_disk["flows"][row[0].as_str()];
        let e = f["final_energy"].as_f64().unwrap();
        let t: f64 = row[col("median_train_mmd2")].parse().unwrap();
        assert!(
            (t - 2.0 * e).abs() <= 1e-12 * t.abs().max(1e-300),
            "{}",
            row[0]
        );
        let m: f64 = row[col("median_mmd2")].parse().unwrap();
        assert!((m - f["final_mmd2"].as_f64().unwrap()).abs() <= 1e-12 * m.abs());
    }
    let mmd_row = srows.iter().find(|r| r[0] == "mmd").unwrap();
    assert_eq!(
        mmd_row[col("median_train_ratio_to_mmd")]
            .parse::<f64>()
            .unwrap(),
        1.0
    );
}

#[test]
fn flow_is_reproducible_from_the_seed() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let d3 = tempfile::tempdir().unwrap();
    let mut a = tiny(d1.path());
    a.flow = "mmd-noise,ift-pg,langevin".into();
    let r1 = flow::run(&a, &quiet()).unwrap();
    a.out_dir = d2.path().to_path_buf();
    let r2 = flow::run(&a, &quiet()).unwrap();
    a.out_dir = d3.path().to_path_buf();
    a.seed = 1;
    let r3 = flow::run(&a, &quiet()).unwrap();
    for n in ["mmd-noise", "ift-pg", "langevin"] {
        let f = format!("particles_{n}.csv");
        let p1 = std::fs::read(d1.path().join(&f)).unwrap();
        assert_eq!(p1, std::fs::read(d2.path().join(&f)).unwrap(), "{n}");
        assert_ne!(p1, std::fs::read(d3.path().join(&f)).unwrap(), "{n}");
        assert_eq!(
            r1["flows"][n]["final_mmd2"], r2["flows"][n]["final_mmd2"],
            "{n}"
        );
        assert_ne!(r1["flows"][n]["final_mmd2"], r3["flows"][n]["final_mmd2"]);
    }
}

#[test]
fn ift_ends_below_the_plain_mmd_flow_on_a_small_2d_problem() {
    // Particles start at N((5,5), I) with a unit bandwidth: the plain MMD flow leaves most
    // of them stuck far from the target, IFT moves their mass to the particles that arrive.
    let dir = tempfile::tempdir().unwrap();
    let a = FlowArgs {
        particles: 80,
        steps: 300,
        flow: "mmd,ift,ift-pg".into(),
        seeds: Some("0..2".into()),
        out_dir: dir.path().to_path_buf(),
        ..FlowArgs::default()
    };
    let r = flow::run(&a, &quiet()).unwrap();
    for s in 0..2 {
        let m = r["summary"]["mmd"]["per_seed_final_mmd2"][s]
            .as_f64()
            .unwrap();
        for f in ["ift", "ift-pg"] {
            let i = r["summary"][f]["per_seed_final_mmd2"][s].as_f64().unwrap();
            assert!(i < 0.5 * m, "seed {s}: {f} {i} vs mmd {m}");
        }
    }
    // the weight step moved mass: IFT's effective sample size fell below n
    assert!(r["flows"]["ift"]["ess"].as_f64().unwrap() < 80.0 * 0.9);
}

#[test]
fn flow_multi_seed_summary_has_quantiles() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = tiny(dir.path());
    a.flow = "mmd,wfr".into();
    a.seeds = Some("3..6".into());
    let r = flow::run(&a, &quiet()).unwrap();
    let q = &r["summary"]["wfr"]["final_mmd2"];
    assert_eq!(q["n"], 3);
    let (lo, med, hi) = (
        q["min"].as_f64().unwrap(),
        q["median"].as_f64().unwrap(),
        q["max"].as_f64().unwrap(),
    );
    assert!(lo <= med && med <= hi);
    let per: Vec<f64> = r["summary"]["wfr"]["per_seed_final_mmd2"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mut s = per.clone();
    s.sort_by(|a, b| a.total_cmp(b));
    assert_eq!(med, s[1]);
    assert_eq!(r["summary"]["mmd"]["median_ratio_to_mmd"], 1.0);
    let (_, rows) = read_csv(&dir.path().join("trace.csv"));
    for seed in ["3", "4", "5"] {
        assert!(rows.iter().any(|r| r[8] == seed));
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn expect_param(r: robustflow::Result<impl std::fmt::Debug>, name: &str) {
    match r {
        Err(Error::InvalidParameter { name: n, .. }) => assert_eq!(n, name),
        other => panic!("expected an invalid `{name}`, got {other:?}"),
    }
}

#[test]
fn flow_bad_parameters_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let g = quiet();
    let base = tiny(dir.path());
    expect_param(
        flow::run(
            &FlowArgs {
                particles: 0,
                ..base.clone()
            },
            &g,
        ),
        "particles",
    );
    for s in [0.0, -1.0, f64::NAN] {
        expect_param(
            flow::run(
                &FlowArgs {
                    step_size: s,
                    ..base.clone()
                },
                &g,
            ),
            "step-size",
        );
    }
    for b in ["0", "-2", "abc"] {
        expect_param(
            flow::run(
                &FlowArgs {
                    bandwidth: b.into(),
                    ..base.clone()
                },
                &g,
            ),
            "bandwidth",
        );
    }
    expect_param(
        flow::run(
            &FlowArgs {
                steps: 0,
                ..base.clone()
            },
            &g,
        ),
        "steps",
    );
    expect_param(
        flow::run(
            &FlowArgs {
                flow: "mmd,warp".into(),
                ..base.clone()
            },
            &g,
        ),
        "flow",
    );
    expect_param(
        flow::run(
            &FlowArgs {
                target: "banana".into(),
                ..base.clone()
            },
            &g,
        ),
        "target",
    );
    expect_param(
        flow::run(
            &FlowArgs {
                init: Some("gaussian:1,2,3:1".into()),
                ..base.clone()
            },
            &g,
        ),
        "init",
    );
    expect_param(
        flow::run(
            &FlowArgs {
                init: Some("uniform:0:1".into()),
                ..base.clone()
            },
            &g,
        ),
        "init",
    );
    expect_param(
        flow::run(
            &FlowArgs {
                beta: -1.0,
                ..base.clone()
            },
            &g,
        ),
        "beta",
    );
    expect_param(
        flow::run(
            &FlowArgs {
                seeds: Some("5..5".into()),
                ..base.clone()
            },
            &g,
        ),
        "seeds",
    );
    // a sample file target has no density: svgd is refused, naming the flow
    let ok = write(dir.path(), "t.csv", "a,b\n0,0\n1,0\n0,1\n1,1\n");
    expect_param(
        flow::run(
            &FlowArgs {
                target: ok.display().to_string(),
                flow: "svgd".into(),
                ..base.clone()
            },
            &g,
        ),
        "flow",
    );
    // a bad target file: file, row and column
    let bad = write(dir.path(), "bad.csv", "a,b\n0,0\n1,x\n");
    match flow::run(
        &FlowArgs {
            target: bad.display().to_string(),
            ..base.clone()
        },
        &g,
    ) {
        Err(Error::Data { path, row, col, .. }) => {
            assert_eq!(path, bad);
            assert_eq!(row, Some(2));
            assert!(col.unwrap().starts_with("2"));
        }
        other => panic!("expected a data error, got {other:?}"),
    }
    // a sample-file target and a CSV init work
    let init = write(dir.path(), "init.csv", "3,3\n4,3\n3,4\n");
    let out = dir.path().join("file_run");
    let r = flow::run(
        &FlowArgs {
            target: ok.display().to_string(),
            init: Some(init.display().to_string()),
            flow: "mmd,ift".into(),
            out_dir: out.clone(),
            ..base.clone()
        },
        &g,
    )
    .unwrap();
    assert_eq!(r["config"]["particles"], 3);
    assert!(out.join("particles_ift.png").exists());
}

#[test]
fn file_target_is_subsampled_with_an_independent_held_out_part() {
    let dir = tempfile::tempdir().unwrap();
    let target = gauss_csv(dir.path(), "t.csv", 3000, 0.0, 11);
    let g = quiet();
    let go = |seed: u64, out: &str, ts: usize| {
        flow::run(
            &FlowArgs {
                target: target.display().to_string(),
                target_samples: Some(ts),
                flow: "mmd".into(),
                seed,
                out_dir: dir.path().join(out),
                ..tiny(dir.path())
            },
            &g,
        )
        .unwrap()
    };
    let a = go(0, "a", 200);
    let b = go(0, "b", 200);
    let c = go(1, "c", 200);
    let floor = |r: &Value| r["floor_mmd2"]["median"].as_f64().unwrap();
    assert_eq!(a["config"]["target_training_rows"], 200);
    // two disjoint samples of the same law: a positive floor, of the order of the
    // V-statistic's bias (2 k(0) / m here), reproducible with the seed, another seed
    // draws other rows
    assert!(floor(&a) > 0.0 && floor(&a) < 0.1, "{}", floor(&a));
    assert_eq!(floor(&a), floor(&b));
    assert_ne!(floor(&a), floor(&c));
    let pa = std::fs::read(dir.path().join("a/particles_mmd.csv")).unwrap();
    let pb = std::fs::read(dir.path().join("b/particles_mmd.csv")).unwrap();
    assert_eq!(pa, pb);
    // a small file: at most half its rows are held out, the rest train
    let small = gauss_csv(dir.path(), "s.csv", 50, 0.0, 12);
    let r = flow::run(
        &FlowArgs {
            target: small.display().to_string(),
            target_samples: Some(200),
            flow: "mmd".into(),
            out_dir: dir.path().join("s"),
            ..tiny(dir.path())
        },
        &g,
    )
    .unwrap();
    assert_eq!(r["config"]["target_training_rows"], 25);
    assert!(floor(&r) > 0.0);
}

#[test]
fn flow_with_kernel_approximations_descends_and_records_the_choice() {
    let dir = tempfile::tempdir().unwrap();
    let g = quiet();
    for approx in ["rff:512", "nystrom:60"] {
        let r = flow::run(
            &FlowArgs {
                flow: "mmd,ift-pg".into(),
                particles: 60,
                steps: 100,
                init: Some("gaussian:2:1".into()),
                bandwidth: "median".into(),
                approx: approx.into(),
                out_dir: dir.path().join(approx.replace(':', "_")),
                ..FlowArgs::default()
            },
            &g,
        )
        .unwrap();
        assert_eq!(r["approx"], approx);
        assert_eq!(r["config"]["approx"], approx);
        // the held-out (exact) MMD^2 falls from the initial particles far from the target
        let (_, rows) = read_csv(&dir.path().join(approx.replace(':', "_")).join("trace.csv"));
        let first: f64 = rows[0][4].parse().unwrap();
        let last = r["flows"]["mmd"]["final_mmd2"].as_f64().unwrap();
        assert!(last < 0.5 * first, "{approx}: {first} -> {last}");
    }
    // the exact MMD-prox step refuses an approximated kernel, naming the flag
    expect_param(
        flow::run(
            &FlowArgs {
                flow: "mmd,ift".into(),
                approx: "rff:64".into(),
                out_dir: dir.path().join("bad"),
                ..tiny(dir.path())
            },
            &g,
        ),
        "approx",
    );
}

fn gauss_csv(dir: &Path, name: &str, n: usize, shift: f64, seed: u64) -> PathBuf {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut s = String::from("u,v\n");
    for _ in 0..n {
        let a: f64 = rng.sample(rand_distr::StandardNormal);
        let b: f64 = rng.sample(rand_distr::StandardNormal);
        s.push_str(&format!("{},{}\n", a + shift, b));
    }
    write(dir, name, &s)
}

fn mmd_args(x: PathBuf, y: PathBuf) -> MmdArgs {
    MmdArgs {
        x,
        y,
        kernel: "gaussian".into(),
        bandwidth: "median".into(),
        permutations: 200,
        seed: 0,
        report: None,
        ..MmdArgs::default()
    }
}

#[test]
fn mmd_test_separates_equal_from_shifted_samples() {
    let dir = tempfile::tempdir().unwrap();
    let x = gauss_csv(dir.path(), "x.csv", 150, 0.0, 1);
    let y_same = gauss_csv(dir.path(), "y.csv", 120, 0.0, 2);
    let y_shift = gauss_csv(dir.path(), "z.csv", 120, 1.0, 3);
    let same = mmd::run(&mmd_args(x.clone(), y_same.clone()), &quiet()).unwrap();
    let p_same = same.p_value.unwrap();
    assert!(p_same > 0.05, "same law: p = {p_same}");
    let mut a = mmd_args(x.clone(), y_shift);
    let report = dir.path().join("sub/report.json");
    a.report = Some(report.clone());
    let shifted = mmd::run(&a, &quiet()).unwrap();
    // with 200 permutations the smallest possible p-value is 1/201
    assert!((shifted.p_value.unwrap() - 1.0 / 201.0).abs() < 1e-12);
    assert!(shifted.mmd2_biased > same.mmd2_biased);
    assert!(shifted.mmd2_unbiased > 0.0);
    // U-statistic below V-statistic here (the V-statistic adds positive diagonal terms)
    assert!(same.mmd2_unbiased < same.mmd2_biased);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for k in [
        "mmd2_biased",
        "mmd2_unbiased",
        "p_value",
        "kernel",
        "bandwidth",
        "n",
        "m",
        "permutations",
        "approx",
        "method",
    ] {
        assert!(!v[k].is_null(), "key {k}");
    }
    assert_eq!(v["approx"], "exact");
    assert_eq!(v["method"], "streamed");
    assert_eq!(v["n"], 150);
    assert_eq!(v["m"], 120);
    // reproducible from the seed
    let again = mmd::run(&mmd_args(x, y_same), &quiet()).unwrap();
    assert_eq!(again.p_value, same.p_value);
}

#[test]
fn mmd_p_value_is_the_permutation_fraction() {
    // tiny case: X = {0, 1}, Y = {10, 11} in 1-D; of the C(4,2) = 6 labellings only the
    // observed one and its swap reach the observed statistic, so p -> (1 + P/3) / (1 + P).
    let dir = tempfile::tempdir().unwrap();
    let x = write(dir.path(), "x.csv", "0\n1\n");
    let y = write(dir.path(), "y.csv", "10\n11\n");
    let mut a = mmd_args(x, y);
    a.bandwidth = "1".into();
    a.permutations = 3000;
    let r = mmd::compute(&a).unwrap();
    let p = r.p_value.unwrap();
    assert!((p - 1.0 / 3.0).abs() < 0.03, "p = {p}");
    // the biased statistic by hand: k(0,1) = k(10,11) = e^{-1/2}, cross terms ~ 0
    let e = (-0.5f64).exp();
    let kxx = (2.0 + 2.0 * e) / 4.0;
    let cross: f64 = [10.0f64, 11.0, 9.0, 10.0]
        .iter()
        .map(|d| (-d * d / 2.0).exp())
        .sum::<f64>()
        / 4.0;
    assert!((r.mmd2_biased - (2.0 * kxx - 2.0 * cross)).abs() < 1e-12);
    // unbiased: off-diagonal terms only
    assert!((r.mmd2_unbiased - (2.0 * e - 2.0 * cross)).abs() < 1e-12);
}

#[test]
fn mmd_without_permutations_reports_statistics_and_a_null_p_value() {
    let dir = tempfile::tempdir().unwrap();
    let x = gauss_csv(dir.path(), "x.csv", 80, 0.0, 1);
    let y = gauss_csv(dir.path(), "y.csv", 70, 0.5, 2);
    let mut a = mmd_args(x.clone(), y.clone());
    a.permutations = 0;
    let report = dir.path().join("r.json");
    a.report = Some(report.clone());
    let r = mmd::run(&a, &quiet()).unwrap();
    assert_eq!(r.p_value, None);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(v["p_value"].is_null());
    assert_eq!(v["method"], "none");
    // the same statistics as with a test
    let with = mmd::compute(&mmd_args(x.clone(), y.clone())).unwrap();
    assert_eq!(with.mmd2_biased, r.mmd2_biased);
    assert_eq!(with.mmd2_unbiased, r.mmd2_unbiased);
    // --approx: recorded, close to the exact statistic with many features
    for (ap, method) in [("rff:4096", "random-features"), ("nystrom:150", "nystrom")] {
        let mut b = mmd_args(x.clone(), y.clone());
        b.approx = ap.into();
        b.permutations = 9;
        b.report = Some(report.clone());
        let s = mmd::run(&b, &quiet()).unwrap();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(v["approx"], ap);
        assert_eq!(v["method"], method);
        assert!(
            (s.mmd2_biased - r.mmd2_biased).abs() < 0.1 * r.mmd2_biased + 1e-3,
            "{ap}: {} vs {}",
            s.mmd2_biased,
            r.mmd2_biased
        );
        let p = s.p_value.unwrap();
        assert!((0.1..=1.0).contains(&p));
    }
}

#[test]
fn mmd_bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let x = write(dir.path(), "x.csv", "a,b\n0,0\n1,1\n2,0\n");
    let ragged = write(dir.path(), "r.csv", "a,b\n0,0\n1\n");
    match mmd::compute(&mmd_args(x.clone(), ragged.clone())) {
        Err(Error::Data { path, row, .. }) => {
            assert_eq!(path, ragged);
            assert_eq!(row, Some(2));
        }
        other => panic!("{other:?}"),
    }
    let nan = write(dir.path(), "n.csv", "a,b\n0,0\n1,NaN\n");
    match mmd::compute(&mmd_args(nan.clone(), x.clone())) {
        Err(Error::Data { path, row, col, .. }) => {
            assert_eq!(path, nan);
            assert_eq!(row, Some(2));
            assert!(col.unwrap().contains('b'));
        }
        other => panic!("{other:?}"),
    }
    let wide = write(dir.path(), "w.csv", "1,2,3\n4,5,6\n");
    assert!(matches!(
        mmd::compute(&mmd_args(x.clone(), wide)),
        Err(Error::Data { .. })
    ));
    let empty = write(dir.path(), "e.csv", "");
    assert!(matches!(
        mmd::compute(&mmd_args(x.clone(), empty)),
        Err(Error::Data { .. })
    ));
    let mut a = mmd_args(x.clone(), x.clone());
    a.bandwidth = "-1".into();
    expect_param(mmd::compute(&a), "bandwidth");
    let mut a = mmd_args(x.clone(), x.clone());
    a.approx = "rff:0".into();
    expect_param(mmd::compute(&a), "approx");
    let mut a = mmd_args(x.clone(), x.clone());
    a.kernel = "imq".into();
    a.approx = "rff:16".into();
    expect_param(mmd::compute(&a), "approx");
    let mut a = mmd_args(x.clone(), x);
    a.kernel = "cosine".into();
    expect_param(mmd::compute(&a), "kernel");
}

/// One initial-law parser: `normal:` is an alias of `gaussian:` (any case), both draw the
/// same positions from the same seed, and a malformed law names `init`.
#[test]
fn init_law_aliases_draw_the_same_particles() {
    use rand::SeedableRng;
    use robustflow::experiments::InitSpec;
    let draw = |s: &str| {
        let spec: InitSpec = s.parse().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        spec.positions(7, 3, &mut rng).unwrap()
    };
    let g = draw("gaussian:1,2,3:0.5");
    assert_eq!(g, draw("normal:1,2,3:0.5"));
    assert_eq!(g, draw("Normal:1,2,3:0.5"));
    assert_ne!(g, draw("gaussian:1,2,3:0.6"));
    assert_eq!(draw("normal:0:1"), draw("gaussian"));
    for bad in ["normal:1:0", "uniform:0:1", "normal:a:1", "gaussian:0:1:2"] {
        match bad.parse::<InitSpec>() {
            Err(robustflow::Error::InvalidParameter { name, .. }) => assert_eq!(name, "init"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}
