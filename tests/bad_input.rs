//! Bad input gives a clear error, never a panic or a silent NaN: CSV problems name the file,
//! the row and the column; bad settings name the parameter; a diverging flow stops with
//! `Error::Diverged` naming the step.

use ndarray::{array, Array1, Array2};
use robustflow::energy::{Energy, MmdEnergy};
use robustflow::error::{check_count, check_nonneg, check_positive};
use robustflow::flow::{
    Executor, FisherRao, FlowConfig, FlowParams, Ift, KernelFr, Langevin, MmdProx, ProxSolver,
    QpOptions, Svgd, Wasserstein,
};
use robustflow::io::{read_numeric_csv, write_atomic, write_points_csv};
use robustflow::kernel::{Bandwidth, Kernel, KernelKind};
use robustflow::measure::{Gaussian, GaussianMixture, LogDensity, Particles};
use robustflow::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Read `text` as a CSV file and return the error and its message; the message must name
/// the file.
fn csv_error(text: &str) -> (Error, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad_input.csv", text);
    let e = read_numeric_csv(&p).expect_err(&format!("accepted {text:?}"));
    let msg = e.to_string();
    assert!(
        msg.contains("bad_input.csv"),
        "message does not name the file: {msg}"
    );
    (e, msg)
}

fn assert_data(e: &Error, row: Option<usize>, col_prefix: Option<&str>) {
    match e {
        Error::Data { row: r, col: c, .. } => {
            assert_eq!(*r, row, "row of {e}");
            match col_prefix {
                Some(pre) => assert!(
                    c.as_deref().is_some_and(|c| c.starts_with(pre)),
                    "column of {e}: {c:?}"
                ),
                None => assert!(c.is_none(), "unexpected column in {e}"),
            }
        }
        other => panic!("expected Error::Data, got {other:?}"),
    }
}

#[test]
fn good_csv_is_read_with_and_without_header() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "ok.csv", "a, b\n1, 2.5\n\n-3e-1,4\n");
    let t = read_numeric_csv(&p).unwrap();
    assert_eq!(t.columns, vec!["a", "b"]);
    assert_eq!(t.values, array![[1.0, 2.5], [-0.3, 4.0]]);
    let p = write(dir.path(), "noheader.csv", "1,2,3\n4,5,6\n");
    let t = read_numeric_csv(&p).unwrap();
    assert_eq!(t.columns, vec!["x1", "x2", "x3"]);
    assert_eq!(t.values.dim(), (2, 3));
    // Round trip through the atomic writer.
    let x = array![[0.1, -2.0], [3.5, 1e-12]];
    let q = dir.path().join("sub").join("points.csv");
    write_points_csv(&q, &x, Some(&[0.25, 0.75])).unwrap();
    let t = read_numeric_csv(&q).unwrap();
    assert_eq!(t.columns, vec!["x1", "x2", "weight"]);
    assert_eq!(t.values.column(0).to_vec(), vec![0.1, 3.5]);
    assert_eq!(t.values.column(1).to_vec(), vec![-2.0, 1e-12]);
    assert_eq!(t.values.column(2).to_vec(), vec![0.25, 0.75]);
    // Weights that do not match the points: an error, not a panic.
    assert!(matches!(
        write_points_csv(dir.path().join("w.csv"), &x, Some(&[1.0])),
        Err(Error::Shape(_))
    ));
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path().join("sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, vec!["points.csv"]);
}

#[test]
fn ragged_row_names_file_row_and_column() {
    // Short row: column 3 is missing in data row 2.
    let (e, msg) = csv_error("x,y,z\n1,2,3\n4,5\n6,7,8\n");
    assert_data(&e, Some(2), Some("3"));
    assert!(
        msg.contains("row 2") && msg.contains("column 3") && msg.contains("ragged"),
        "{msg}"
    );
    // Long row without a header: extra column 3 in row 1.
    let (e, msg) = csv_error("1,2\n1,2,3\n");
    assert_data(&e, Some(2), Some("3"));
    assert!(msg.contains("row 2") && msg.contains("column 3"), "{msg}");
}

#[test]
fn non_numeric_cell_names_file_row_and_column() {
    let (e, msg) = csv_error("x,y\n1,2\n3,abc\n");
    assert_data(&e, Some(2), Some("2"));
    assert!(
        msg.contains("row 2")
            && msg.contains("column 2")
            && msg.contains("abc")
            && msg.contains("line 3"),
        "{msg}"
    );
    // Without a header.
    let (e, msg) = csv_error("1,2\n3,4\n5,six\n");
    assert_data(&e, Some(3), Some("2"));
    assert!(msg.contains("row 3") && msg.contains("six"), "{msg}");
    // A first row that mixes numbers and text is not a header: an error, not a dropped row.
    let (e, msg) = csv_error("1,oops\n3,4\n");
    assert_data(&e, Some(1), Some("2"));
    assert!(msg.contains("oops"), "{msg}");
    // The line of the file is named too (blank lines are skipped in the row count).
    let (_, msg) = csv_error("x,y\n\n1,2\n\n3,?\n");
    assert!(msg.contains("row 2") && msg.contains("line 5"), "{msg}");
}

#[test]
fn nan_and_infinite_cells_are_errors() {
    for cell in ["NaN", "nan", "inf", "-inf", "1e400"] {
        let (e, msg) = csv_error(&format!("a,b\n1,2\n{cell},3\n"));
        assert_data(&e, Some(2), Some("1"));
        assert!(
            msg.contains("row 2") && msg.contains("column 1") && msg.contains("not finite"),
            "{cell}: {msg}"
        );
    }
    // In the first row (no header).
    let (e, _) = csv_error("1,NaN\n");
    assert_data(&e, Some(1), Some("2"));
}

#[test]
fn empty_file_and_header_only_are_errors() {
    for text in ["", "\n\n", "  \n"] {
        let (e, msg) = csv_error(text);
        assert_data(&e, None, None);
        assert!(msg.contains("no rows"), "{msg}");
    }
    let (e, msg) = csv_error("x,y\n");
    assert_data(&e, None, None);
    assert!(msg.contains("no data rows"), "{msg}");
    // A missing file is an I/O error naming the path.
    let e = read_numeric_csv("/nonexistent/dir/missing.csv").unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
    assert!(e.to_string().contains("missing.csv"));
    // Not UTF-8.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("binary.csv");
    std::fs::write(&p, [0xff, 0xfe, 0x00, 0x31]).unwrap();
    assert!(read_numeric_csv(&p)
        .unwrap_err()
        .to_string()
        .contains("binary.csv"));
    // Writing into a path whose parent is a file fails with an error naming it.
    let f = write(dir.path(), "plain", "x");
    let e = write_atomic(f.join("out.json"), b"{}").unwrap_err();
    assert!(e.to_string().contains("plain"), "{e}");
}

/// `e` is `InvalidParameter` for `name`, and its message names it.
fn assert_param<T: std::fmt::Debug>(r: robustflow::Result<T>, name: &str) {
    match r {
        Err(e @ Error::InvalidParameter { .. }) => {
            let Error::InvalidParameter { name: n, .. } = &e else {
                unreachable!()
            };
            assert_eq!(n, name);
            assert!(e.to_string().contains(name), "{e}");
        }
        other => panic!("expected InvalidParameter `{name}`, got {other:?}"),
    }
}

#[test]
fn bad_parameters_name_the_parameter() {
    for h in [0.0, -1.0, f64::NAN] {
        assert_param(Kernel::gaussian(h), "bandwidth");
        assert_param(Kernel::imq(h), "bandwidth");
        assert_param(Kernel::laplace(h), "bandwidth");
        assert_param(
            Kernel::with_bandwidth(KernelKind::Gaussian, Bandwidth::Fixed(h), &[0.0, 1.0], 1),
            "bandwidth",
        );
    }
    assert_param("-0.5".parse::<Bandwidth>(), "bandwidth");
    assert_param("fast".parse::<KernelKind>(), "kernel");
    for tau in [0.0, -0.1, f64::NAN, f64::INFINITY] {
        assert_param(FlowConfig::new(10, tau), "step-size");
    }
    assert_param(FlowConfig::new(0, 0.1), "steps");
    assert_param(
        FlowParams {
            trace_every: 0,
            ..Default::default()
        }
        .check()
        .map(|_| ()),
        "trace-every",
    );
    assert_param(
        FlowParams {
            tol: -1.0,
            ..Default::default()
        }
        .check()
        .map(|_| ()),
        "tol",
    );
    assert_param(
        FlowParams {
            step_size: 0.0,
            ..Default::default()
        }
        .check()
        .map(|_| ()),
        "step-size",
    );
    assert_param(
        FlowParams {
            max_time_s: Some(0.0),
            ..Default::default()
        }
        .check()
        .map(|_| ()),
        "max-time",
    );
    assert_param(Particles::uniform(Array2::zeros((0, 2))), "particles");
    assert_param(
        Particles::with_weights(Array2::zeros((0, 2)), &[]),
        "particles",
    );
    assert_param(
        Particles::with_weights(Array2::zeros((2, 2)), &[0.5, -0.1]),
        "weights",
    );
    assert_param(
        Particles::with_weights(Array2::zeros((2, 2)), &[0.5, f64::NAN]),
        "weights",
    );
    let mut p = Particles::uniform(Array2::zeros((2, 1))).unwrap();
    assert_param(p.set_weights(&[f64::INFINITY, 1.0]), "weights");
    assert!(matches!(p.set_weights(&[1.0]), Err(Error::Shape(_))));
    assert!(matches!(
        Particles::with_weights(Array2::zeros((2, 2)), &[1.0]),
        Err(Error::Shape(_))
    ));
    assert_param(Wasserstein::new(0.0), "alpha");
    assert_param(FisherRao::new(-1.0), "beta");
    assert_param(FisherRao::unbalanced(f64::NAN), "beta");
    assert_param(MmdProx::new(0.0), "beta");
    assert_param(Ift::new(1.0, 0.0), "beta");
    assert_param(Ift::new(0.0, 1.0), "alpha");
    assert_param(
        MmdProx::new(1.0)
            .unwrap()
            .with_solver(ProxSolver::Exact(QpOptions {
                tol: 0.0,
                ..Default::default()
            })),
        "qp-tol",
    );
    assert_param(
        MmdProx::new(1.0)
            .unwrap()
            .with_solver(ProxSolver::Exact(QpOptions {
                max_iter: 0,
                ..Default::default()
            })),
        "qp-max-iter",
    );
    assert_param(
        KernelFr::new(Kernel::gaussian(1.0).unwrap(), 0.0, 1.0),
        "lambda",
    );
    assert_param(Gaussian::isotropic(Array1::zeros(2), 0.0), "std");
    let g = Gaussian::isotropic(Array1::zeros(2), 1.0).unwrap();
    assert_param(
        GaussianMixture::new(vec![1.0, -1.0], vec![g.clone(), g.clone()]),
        "mixture-weights",
    );
    assert!(matches!(
        GaussianMixture::new(vec![1.0], vec![g.clone(), g]),
        Err(Error::Shape(_))
    ));
    assert!(Gaussian::new(Array1::zeros(2), array![[1.0, 2.0], [2.0, 1.0]]).is_err());
    assert!(matches!(
        Gaussian::new(Array1::zeros(3), Array2::eye(2)),
        Err(Error::Shape(_))
    ));
    assert_param(check_positive("eps", -1.0), "eps");
    assert_param(check_nonneg("noise", f64::NAN), "noise");
    assert_param(check_count("permutations", 0), "permutations");
}

#[test]
fn dimension_mismatch_is_a_shape_error() {
    let target = Particles::uniform(array![[0.0, 0.0], [1.0, 1.0]]).unwrap();
    let e = MmdEnergy::new(Kernel::gaussian(1.0).unwrap(), target).unwrap();
    let mu = Particles::uniform(array![[0.0], [1.0]]).unwrap();
    assert!(matches!(e.value(&mu), Err(Error::Shape(_))));
    assert!(matches!(e.first_variation(&mu, true), Err(Error::Shape(_))));
    let mut mu2 = mu.clone();
    let mut ex = Executor::new(FlowConfig::new(3, 0.1).unwrap()).unwrap();
    assert!(matches!(
        ex.run(&mut mu2, &e, &mut Wasserstein::new(1.0).unwrap()),
        Err(Error::Shape(_))
    ));
}

/// A huge step size on a problem that blows up (Langevin on a Gaussian: the linear drift
/// overshoots and grows geometrically) stops with `Diverged` naming the step.
#[test]
fn huge_step_size_diverges_with_the_step_named() {
    let target = Arc::new(Gaussian::isotropic(Array1::zeros(2), 1.0).unwrap());
    let y = Particles::uniform(array![[0.0, 0.0], [1.0, 0.0]]).unwrap();
    let energy = MmdEnergy::new(Kernel::gaussian(1.0).unwrap(), y).unwrap();
    let mut mu = Particles::uniform(array![[1.0, 1.0], [2.0, -1.0], [0.5, 0.0]]).unwrap();
    let mut ex = Executor::new(FlowConfig::new(10_000, 50.0).unwrap().seed(1)).unwrap();
    let e = ex
        .run(&mut mu, &energy, &mut Langevin::new(target.clone()))
        .unwrap_err();
    match &e {
        Error::Diverged { step, detail } => {
            assert!(*step > 0 && *step < 10_000, "step {step}");
            // a non-finite particle, or (earlier) the energy climbing back above its start
            assert!(
                detail.contains("particle") || detail.contains("rose above its start"),
                "{detail}"
            );
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("step {step}")) && msg.contains("step size"),
                "{msg}"
            );
        }
        other => panic!("expected Diverged, got {other:?}"),
    }
    // SVGD with a huge step on the same target.
    let mut mu = Particles::uniform(array![[1.0, 1.0], [2.0, -1.0], [0.5, 0.0]]).unwrap();
    let mut ex = Executor::new(FlowConfig::new(10_000, 50.0).unwrap()).unwrap();
    let r = ex.run(
        &mut mu,
        &energy,
        &mut Svgd::new(target, KernelKind::Gaussian, Bandwidth::Fixed(1.0)),
    );
    assert!(matches!(r, Err(Error::Diverged { .. })), "{r:?}");
    // Unbalanced FR with a huge step: the mass overflows.
    let mut mu = Particles::uniform(array![[1.0, 1.0], [2.0, -1.0], [0.5, 0.0]]).unwrap();
    let mut ex = Executor::new(FlowConfig::new(100, 1e300).unwrap()).unwrap();
    let r = ex.run(&mut mu, &energy, &mut FisherRao::unbalanced(1.0).unwrap());
    match r {
        Err(Error::Diverged { step, detail }) => assert!(step <= 2, "step {step}: {detail}"),
        other => panic!("expected Diverged, got {other:?}"),
    }
}

/// A user density whose score is NaN somewhere: the error names the particle and the step.
struct Broken;
impl LogDensity for Broken {
    fn dim(&self) -> usize {
        1
    }
    fn log_density(&self, x: &[f64]) -> f64 {
        -0.5 * x[0] * x[0]
    }
    fn score(&self, x: &[f64], out: &mut [f64]) {
        out[0] = if x[0] > 3.0 { f64::NAN } else { -x[0] + 1.0 };
    }
    fn name(&self) -> String {
        "broken".into()
    }
}

#[test]
fn nan_score_names_particle_and_step() {
    let y = Particles::uniform(array![[0.0], [1.0]]).unwrap();
    let energy = MmdEnergy::new(Kernel::gaussian(1.0).unwrap(), y).unwrap();
    let mut mu = Particles::uniform(array![[0.0], [2.5], [2.9]]).unwrap();
    let mut ex = Executor::new(FlowConfig::new(100, 0.1).unwrap()).unwrap();
    // The drift -x + 1 pushes particle 2 (at 2.9) below 3 ... unless we start it above.
    let r = ex.run(
        &mut mu,
        &energy,
        &mut Svgd::new(Arc::new(Broken), KernelKind::Gaussian, Bandwidth::Median),
    );
    assert!(r.is_ok(), "{r:?}");
    let mut mu = Particles::uniform(array![[0.0], [2.5], [3.5]]).unwrap();
    match ex.run(&mut mu, &energy, &mut Langevin::new(Arc::new(Broken))) {
        Err(Error::Diverged { step, detail }) => {
            assert_eq!(step, 0);
            assert!(
                detail.contains("particle 2") && detail.contains("broken"),
                "{detail}"
            );
        }
        other => panic!("expected Diverged, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// CSV dialects and the training loader (issues 15 and 16): table-driven cases. Every error
// names the file, and the row and column where they are known.

use robustflow::data::{load, LoadOptions, RawTable, Task};

/// One bad input: the text, the expected data row and column prefix of the error (`None`:
/// not named), and words the message must contain.
struct Bad {
    text: &'static str,
    row: Option<usize>,
    col: Option<&'static str>,
    words: &'static [&'static str],
}

const fn bad(
    text: &'static str,
    row: Option<usize>,
    col: Option<&'static str>,
    words: &'static [&'static str],
) -> Bad {
    Bad {
        text,
        row,
        col,
        words,
    }
}

fn check_bad(case: &Bad, e: &Error, msg: &str) {
    assert_data(e, case.row, case.col);
    for w in case.words {
        assert!(msg.contains(w), "{:?}: {msg:?} lacks {w:?}", case.text);
    }
}

/// Bad inputs of the numeric reader (`mmd`, `flow --target`, `fit-kl --samples`).
const NUMERIC_BAD: &[Bad] = &[
    bad(
        "a,b\n1,2\n3,\"4\n5,6\n",
        Some(2),
        None,
        &["unterminated", "line 3"],
    ),
    bad("\"a,b\n1,2\n", Some(1), None, &["unterminated", "line 1"]),
    bad(
        "a,b\n1,\"2\"\n\n\"3,4\n",
        Some(2),
        None,
        &["unterminated", "line 4"],
    ),
    bad(
        "a;b\n1;2\n",
        Some(1),
        Some("1"),
        &["not a number", "semicolon", "line 2"],
    ),
    bad("a\tb\n1\t2\n", Some(1), Some("1"), &["not a number", "tab"]),
    bad(
        "x,y\n1,\"1,5\"\n",
        Some(1),
        Some("2"),
        &["\"1,5\"", "line 2"],
    ),
    bad("x,y\n1,1.2.3\n", Some(1), Some("2"), &["\"1.2.3\""]),
    bad("x,y\n1,\n", Some(1), Some("2 (y)"), &["not a number: \"\""]),
    bad("x,y\n1,NA\n", Some(1), Some("2 (y)"), &["\"NA\""]),
    bad(
        "x,y\r\n1,2\r\n\r\n3\r\n",
        Some(2),
        Some("2 (y)"),
        &["ragged", "line 4"],
    ),
    bad(
        "x,y\r1,2\r3,z\r",
        Some(2),
        Some("2 (y)"),
        &["\"z\"", "line 1"],
    ),
    bad(
        "\"x\ny\",z\n1,2\n3,w\n",
        Some(2),
        Some("2 (z)"),
        &["\"w\"", "line 4"],
    ),
    bad(
        "\u{feff}x,y\n1,2\n3,q\n",
        Some(2),
        Some("2 (y)"),
        &["\"q\"", "line 3"],
    ),
    bad("größe,β\n1,2\n3,nope\n", Some(2), Some("2 (β)"), &["nope"]),
    bad("x,y\n1,2,3\n", Some(1), Some("3"), &["ragged", "3 fields"]),
    bad("x,y\n1,-inf\n", Some(1), Some("2 (y)"), &["not finite"]),
    bad("x,y\n1,+nan\n", Some(1), Some("2 (y)"), &["\"+nan\""]),
    bad("1,2\n3,\"\n", Some(2), None, &["unterminated", "line 2"]),
];

#[test]
fn numeric_reader_dialect_errors_name_file_row_column_and_line() {
    for case in NUMERIC_BAD {
        let (e, msg) = csv_error(case.text);
        check_bad(case, &e, &msg);
    }
    // Not UTF-8 inside a cell: the row, the column and the line.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("latin1.csv");
    std::fs::write(&p, b"x,y\n1,2\n3,caf\xe9\n").unwrap();
    let e = read_numeric_csv(&p).unwrap_err();
    assert_data(&e, Some(2), Some("2"));
    let m = e.to_string();
    assert!(
        m.contains("latin1.csv") && m.contains("UTF-8") && m.contains("line 3"),
        "{m}"
    );
}

#[test]
fn numeric_reader_dialects_give_the_exact_table() {
    let dir = tempfile::tempdir().unwrap();
    let want = array![[1.0, 2.5], [-3.0, 4e-3]];
    for (i, text) in [
        "a,b\n1,2.5\n-3,4e-3\n",
        "a,b\r\n1,2.5\r\n-3,4e-3\r\n",
        "a,b\r1,2.5\r-3,4e-3",
        "\u{feff}a,b\n1,2.5\n-3,4e-3\n",
        "\"a\",\"b\"\n\"1\",\"2.5\"\n\"-3\",\"4e-3\"\n",
        "  a , b \n\n 1 ,\t2.5\n,\n-3,4e-3\n\n\n",
        "a,b\n1,2.5\n \n-3,4e-3",
    ]
    .into_iter()
    .enumerate()
    {
        let p = write(dir.path(), &format!("ok{i}.csv"), text);
        let t = read_numeric_csv(&p).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(t.columns, vec!["a", "b"], "{text:?}");
        assert_eq!(t.values, want, "{text:?}");
    }
    let p = write(dir.path(), "uni.csv", "größe,\"β,γ\"\n1,2\n");
    let t = read_numeric_csv(&p).unwrap();
    assert_eq!(t.columns, vec!["größe", "β,γ"]);
}

/// Write `text` as `train.csv` and load it for training with `opts`.
fn load_text(text: &[u8], opts: &LoadOptions) -> robustflow::Result<robustflow::data::TabularData> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("train.csv");
    std::fs::write(&p, text).unwrap();
    load(&p, opts)
}

fn no_split() -> LoadOptions {
    LoadOptions {
        test_fraction: 0.0,
        ..Default::default()
    }
}

/// Bad inputs of the training loader (`train`, `bench`, and `eval` for the dialect).
const TRAIN_BAD: &[Bad] = &[
    bad(
        "a;b;y\n1;2;0\n3;4;1\n",
        Some(0),
        Some("1 ("),
        &["semicolon", "comma-separated"],
    ),
    bad(
        "a\tb\ty\n1\t2\t0\n",
        Some(0),
        Some("1 ("),
        &["tab-separated"],
    ),
    bad("a|b|y\n1|2|0\n", Some(0), Some("1 ("), &["pipe-separated"]),
    bad(
        "5.1,3.5,0\n4.9,3.0,1\n",
        Some(0),
        Some("1 (5.1)"),
        &["not a header", "is a number"],
    ),
    bad(
        "a,2020,y\n1,2,0\n",
        Some(0),
        Some("2 (2020)"),
        &["not a header"],
    ),
    bad(
        "a,b,y\n1,2,0\n3,\"4\n5,6,1\n",
        Some(2),
        None,
        &["unterminated", "line 3"],
    ),
    bad(
        "a,b,y\n1,2,0\n3,4\n",
        Some(2),
        None,
        &["ragged", "2 fields", "line 3"],
    ),
    bad(
        "a,b,y\r\n1,2,0\r\n\r\n3,4,1,9\r\n",
        Some(2),
        None,
        &["ragged", "line 4"],
    ),
    bad("a,a,y\n1,2,0\n", Some(0), Some("2 (a)"), &["duplicate"]),
    bad("", None, None, &["no header row"]),
    bad("\n\n", None, None, &["no header row"]),
    bad("a,b,y\n", None, None, &["no data rows"]),
    bad("a,b,y\n\n \n,,\n", None, None, &["no data rows"]),
    bad(
        "a,b,y\n1,2,0\n3,abc,1\n4,5,0\n",
        Some(2),
        Some("2 (b)"),
        &["\"abc\"", "--categorical b"],
    ),
    bad(
        "a,b,y\n1,2,0\n3,1.2.3,1\n4,5,0\n",
        Some(2),
        Some("2 (b)"),
        &["\"1.2.3\"", "row 2"],
    ),
    bad(
        "a,b,y\n1,2,0\n3,\"1,5\",1\n4,5,0\n",
        Some(2),
        Some("2 (b)"),
        &["\"1,5\""],
    ),
    bad(
        "a,b,y\n1,x,0\n3,4,1\n4,5,0\n",
        Some(1),
        Some("2 (b)"),
        &["2 cell(s) are numbers but 1 are not"],
    ),
    bad(
        "a,b,y\n1,2,0\n3,NA,1\n4,5,0\n",
        Some(2),
        Some("2 (b)"),
        &["1 missing", "--impute"],
    ),
    bad(
        "a,b,y\n1,2,0\n3,N/A,1\n4,#N/A,0\n",
        Some(2),
        Some("2 (b)"),
        &["2 missing"],
    ),
    bad(
        "a,b,y\n1,2,0\n3,-nan,1\n4,null,0\n5,?,1\n",
        Some(2),
        Some("2 (b)"),
        &["3 missing"],
    ),
    bad(
        "a,b,y\n1,2,0\n3,inf,1\n4,5,0\n",
        Some(2),
        Some("2 (b)"),
        &["not finite"],
    ),
    bad(
        "a,b,y\n1,2,0\n3,4,1\n5,6,\n",
        Some(3),
        Some("3 (y)"),
        &["missing"],
    ),
    bad(
        "a,b,y\n1,2,cat\n3,4,cat\n",
        None,
        Some("3 (y)"),
        &["one class"],
    ),
    bad(
        "a,b,y\n1,2,1\n3,4,1.0\n5,6,01\n",
        None,
        Some("3 (y)"),
        &["one class", "\"1\""],
    ),
    bad(
        "a,k,y\n1,7,0\n2,7,1\n3,7,0\n",
        None,
        Some("2 (k)"),
        &["constant"],
    ),
    bad(
        "a,k,y\n1,u,0\n2,u,1\n3,u,0\n",
        None,
        Some("2 (k)"),
        &["constant"],
    ),
];

#[test]
fn training_loader_errors_name_file_row_and_column() {
    for case in TRAIN_BAD {
        let e = load_text(case.text.as_bytes(), &no_split())
            .err()
            .unwrap_or_else(|| panic!("accepted {:?}", case.text));
        let msg = e.to_string();
        assert!(msg.contains("train.csv"), "{:?}: {msg}", case.text);
        check_bad(case, &e, &msg);
    }
    // Not UTF-8 in a cell.
    let e = load_text(b"a,b,y\n1,2,0\n3,caf\xe9,1\n", &no_split()).unwrap_err();
    assert_data(&e, Some(2), Some("2"));
    assert!(e.to_string().contains("UTF-8"), "{e}");
}

#[test]
fn a_few_non_numbers_in_569_rows_are_an_error_naming_the_rows() {
    let mut s = String::from("a,b,y\n");
    for i in 0..569 {
        let b = match i {
            4 => "abc".to_string(),
            16 => "1.2.3".to_string(),
            199 => "\"1,5\"".to_string(),
            _ => format!("{}", (i * 7 % 13) as f64 / 3.0),
        };
        s.push_str(&format!("{i},{b},{}\n", i % 2));
    }
    let e = load_text(s.as_bytes(), &no_split()).unwrap_err();
    assert_data(&e, Some(5), Some("2 (b)"));
    let m = e.to_string();
    for w in [
        "row 5: \"abc\"",
        "row 17: \"1.2.3\"",
        "row 200: \"1,5\"",
        "566 cell(s) are numbers but 3",
    ] {
        assert!(m.contains(w), "{m} lacks {w}");
    }
    // Declared categorical, the same file trains: one indicator per distinct value.
    let d = load_text(
        s.as_bytes(),
        &LoadOptions {
            categorical: vec!["b".into()],
            ..no_split()
        },
    )
    .unwrap();
    let distinct = d
        .schema
        .features
        .iter()
        .filter(|f| f.starts_with("b="))
        .count();
    assert_eq!(distinct, 13 + 3);
}

#[test]
fn column_type_flags_are_checked() {
    let text = b"a,b,y\n1,x,0\n2,y,1\n3,x,0\n4,y,1\n";
    let param = |opts: LoadOptions, name: &str| {
        assert_param(load_text(text, &opts).map(|_| ()), name);
    };
    param(
        LoadOptions {
            categorical: vec!["nope".into()],
            ..no_split()
        },
        "categorical",
    );
    param(
        LoadOptions {
            numeric: vec!["y".into()],
            ..no_split()
        },
        "numeric",
    );
    param(
        LoadOptions {
            categorical: vec!["a".into()],
            numeric: vec!["a".into()],
            ..no_split()
        },
        "numeric",
    );
    // --numeric on a text column: an error naming the rows.
    let e = load_text(
        text,
        &LoadOptions {
            numeric: vec!["b".into()],
            ..no_split()
        },
    )
    .unwrap_err();
    assert_data(&e, Some(1), Some("2 (b)"));
    assert!(
        e.to_string().contains("--numeric") && e.to_string().contains("row 1: \"x\""),
        "{e}"
    );
    // A regression target that is text.
    let e = load_text(
        b"a,y\n1,2\n2,three\n",
        &LoadOptions {
            task: Some(Task::Regression),
            ..no_split()
        },
    )
    .unwrap_err();
    assert_data(&e, Some(2), Some("2 (y)"));
    assert!(e.to_string().contains("\"three\""), "{e}");
}

#[test]
fn huge_finite_values_standardise_without_overflow() {
    // 1e160 squared overflows; the scaler must still be finite and the z-scores exact.
    for big in [1e160, 1e300, f64::MAX, -f64::MAX] {
        let text = format!("a,b,y\n1,0,0\n2,{big:e},1\n3,0,0\n4,0,1\n");
        let d = load_text(text.as_bytes(), &no_split()).unwrap_or_else(|e| panic!("{big}: {e}"));
        let s = &d.schema;
        assert!(
            s.mean.iter().chain(&s.std).all(|v| v.is_finite()),
            "{big}: {s:?}"
        );
        assert!(d.train.x.iter().all(|v| v.is_finite()), "{big}");
        // b = (0, big, 0, 0): z-score of big is sqrt(3), of 0 is -1/sqrt(3).
        let z: Vec<f64> = d.train.x.chunks(2).map(|r| r[1] * big.signum()).collect();
        assert!((z[1] - 3f64.sqrt()).abs() < 1e-12, "{big}: {z:?}");
        assert!((z[0] + 1.0 / 3f64.sqrt()).abs() < 1e-12, "{big}: {z:?}");
        // The schema survives JSON (no `null`).
        let js = serde_json::to_string(s).unwrap();
        let back: robustflow::data::Schema = serde_json::from_str(&js).unwrap();
        for (a, b) in back
            .mean
            .iter()
            .chain(&back.std)
            .zip(s.mean.iter().chain(&s.std))
        {
            assert!(a.is_finite() && (a - b).abs() <= 1e-15 * b.abs(), "{js}");
        }
    }
    // Values of both signs at the edge of f64: still finite.
    let text = format!("a,b,y\n1,{:e},0\n2,{:e},1\n3,0,0\n", f64::MAX, -f64::MAX);
    let d = load_text(text.as_bytes(), &no_split()).unwrap();
    assert!(d.train.x.iter().all(|v| v.is_finite()));
    // At prediction time a value far outside the training range that overflows the z-score
    // is an error naming the row, not an infinite input.
    let d = load_text(b"a,b,y\n1,1e-11,0\n2,2e-11,1\n3,3e-11,0\n", &no_split()).unwrap();
    let t = RawTable::parse(std::path::Path::new("new.csv"), "a,b,y\n1,1e300,0\n").unwrap();
    let e = d.schema.apply(&t).unwrap_err();
    assert_data(&e, Some(1), Some("2 (b)"));
    assert!(e.to_string().contains("cannot be standardised"), "{e}");
}

// ======================================================================================
// Issue 16, models, flags and outputs. Every loaded model is validated before use, sizes
// are checked against the memory budget before allocating, model directories are written
// as a unit, outputs never overwrite inputs, counts and seeds are bounded or wrap. (The
// CSV-dialect cases of issue 16 are in their own section.)
// ======================================================================================

mod models_flags_outputs {
    use robustflow::model::check::{MAX_ACTIVATIONS, MAX_PARAMS};
    use robustflow::model::{Architecture, Model, ModelFile, ModelKind};
    use robustflow::outputs::{AtomicDir, OutputGuard, FAULT_ENV};
    use robustflow::train::TrainedModel;
    use robustflow::Error;
    use serde_json::Value;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    fn bin() -> Command {
        Command::new(env!("CARGO_BIN_EXE_robustflow"))
    }

    fn run(args: &[&str]) -> Output {
        bin().arg("--quiet").args(args).output().unwrap()
    }

    fn stderr(o: &Output) -> String {
        String::from_utf8_lossy(&o.stderr).to_string()
    }

    /// The command fails with exit code 1 (an error, not a panic (101) or an abort), and
    /// its message contains every one of `needles`.
    fn fails_with(o: &Output, needles: &[&str]) -> String {
        let e = stderr(o);
        assert_eq!(
            o.status.code(),
            Some(1),
            "expected a clean error, got {:?}: {e}",
            o.status
        );
        assert!(e.starts_with("error: "), "{e}");
        assert!(!e.contains("panicked"), "{e}");
        for n in needles {
            assert!(e.contains(n), "{n:?} not in: {e}");
        }
        e
    }

    fn p(path: &Path) -> &str {
        path.to_str().unwrap()
    }

    /// A two-class CSV with three numeric features (deterministic).
    fn write_data(path: &Path, n: usize, seed: u64) {
        let mut s = String::from("a,b,c,label\n");
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(7);
        let mut u = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64) / ((1u64 << 53) as f64)
        };
        for i in 0..n {
            let c = i % 2;
            let shift = if c == 1 { 1.0 } else { -1.0 };
            s.push_str(&format!(
                "{},{},{},{c}\n",
                u() + shift,
                u() - 0.5,
                2.0 * u() + 0.5 * shift
            ));
        }
        std::fs::write(path, s).unwrap();
    }

    /// A tiny trained model in `dir/model` (and its data in `dir/data.csv`).
    fn trained(dir: &Path, seed: u64) -> (PathBuf, PathBuf) {
        let data = dir.join("data.csv");
        if !data.exists() {
            write_data(&data, 60, 1);
        }
        let out = dir.join("model");
        let s = seed.to_string();
        let o = run(&[
            "train",
            "--data",
            p(&data),
            "--epochs",
            "3",
            "--seed",
            &s,
            "--out",
            p(&out),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        (data, out)
    }

    fn edit_json(dir: &Path, f: impl FnOnce(&mut Value)) {
        let path = dir.join("model.json");
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
    }

    /// Load the edited model through the library (an `Error::Data` naming `file` whose
    /// message contains `needle`) and through `eval` (exit 1, same message).
    fn load_fails(model: &Path, data: &Path, file: &str, needle: &str) {
        match TrainedModel::load(model) {
            Err(e @ Error::Data { .. }) => {
                let m = e.to_string();
                assert!(m.contains(file) && m.contains(needle), "{m}");
            }
            Err(e) => panic!("expected Error::Data about {file}, got {e:?}"),
            Ok(_) => panic!("a broken model ({needle}) was accepted"),
        }
        let o = run(&["eval", "--model", p(model), "--data", p(data)]);
        fails_with(&o, &[file, needle]);
    }

    /// Each edit of a valid model.json gives a clear error naming model.json.
    #[test]
    fn broken_model_json_fields_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (data, model) = trained(dir.path(), 0);
        let original = std::fs::read(model.join("model.json")).unwrap();
        type Edit = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Edit)> = vec![
            // 1-3: schema lengths shorter than the features (was an index panic)
            (
                "std has 2 entries",
                Box::new(|v| {
                    v["schema"]["std"].as_array_mut().unwrap().pop();
                }),
            ),
            (
                "mean has 2 entries",
                Box::new(|v| {
                    v["schema"]["mean"].as_array_mut().unwrap().pop();
                }),
            ),
            (
                "features has 2 entries",
                Box::new(|v| {
                    v["schema"]["features"].as_array_mut().unwrap().pop();
                }),
            ),
            // 4-5: huge dimensions (was "memory allocation failed", an abort)
            (
                "memory budget",
                Box::new(|v| v["arch"]["input_dim"] = Value::from(1u64 << 40)),
            ),
            (
                "memory budget",
                Box::new(|v| {
                    v["arch"]["kind"] = "mlp".into();
                    v["arch"]["hidden"] = serde_json::json!([100000000]);
                }),
            ),
            // 6: zero dimension
            (
                "input_dim is 0",
                Box::new(|v| v["arch"]["input_dim"] = Value::from(0)),
            ),
            // 7-8: non-positive standard deviation, non-finite mean
            (
                "std of feature 2",
                Box::new(|v| v["schema"]["std"][1] = Value::from(0.0)),
            ),
            (
                "std of feature 1",
                Box::new(|v| v["schema"]["std"][0] = Value::from(-1.0)),
            ),
            (
                "not a robustflow model.json",
                Box::new(|v| v["schema"]["mean"][0] = Value::Null),
            ),
            // 10-11: format version
            ("reads format 1", Box::new(|v| v["format"] = Value::from(2))),
            (
                "no numeric `format`",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("format");
                }),
            ),
            // 12: family and head disagree
            (
                "cannot have a",
                Box::new(|v| v["arch"]["head"] = serde_json::json!({"multi": 3})),
            ),
            // 13: classes vs head
            (
                "classes, the model's head has 2",
                Box::new(|v| {
                    v["schema"]["classes"]
                        .as_array_mut()
                        .unwrap()
                        .push("2".into());
                }),
            ),
            // 14: task vs head
            (
                "does not match the model's head",
                Box::new(|v| v["schema"]["task"] = "regression".into()),
            ),
            // 15: encoded widths vs input dimension
            (
                "the columns encode 2 features",
                Box::new(|v| {
                    v["schema"]["columns"].as_array_mut().unwrap().pop();
                }),
            ),
            // 16: an unknown model kind
            (
                "not a robustflow model.json",
                Box::new(|v| v["arch"]["kind"] = "transformer".into()),
            ),
        ];
        for (needle, f) in cases {
            std::fs::write(model.join("model.json"), &original).unwrap();
            edit_json(&model, f);
            load_fails(&model, &data, "model.json", needle);
        }
        // 17-19: not JSON, empty, not UTF-8
        for bytes in [
            &b"{\"format\": 1, "[..],
            &b""[..],
            &[0xff, 0xfe, 0x00, 0x80][..],
        ] {
            std::fs::write(model.join("model.json"), bytes).unwrap();
            load_fails(&model, &data, "model.json", "not a robustflow model.json");
        }
        // 20: missing model.json: an I/O error naming the path
        std::fs::remove_file(model.join("model.json")).unwrap();
        let e = TrainedModel::load(&model).unwrap_err();
        assert!(
            matches!(e, Error::Io { .. }) && e.to_string().contains("model.json"),
            "{e}"
        );
    }

    /// Truncated, random, mis-shaped, non-finite and oversized `model.safetensors`: errors
    /// naming the file's path.
    #[test]
    fn broken_safetensors_are_errors_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let (data, model) = trained(dir.path(), 0);
        let st = model.join("model.safetensors");
        let good = std::fs::read(&st).unwrap();
        let path = st.to_str().unwrap().to_string();
        // 21-22: truncated at several lengths (was "candle: invalid header length", no path)
        for len in [0, 3, 8, 20, good.len() / 2, good.len() - 1] {
            std::fs::write(&st, &good[..len]).unwrap();
            load_fails(&model, &data, &path, "not a valid safetensors file");
        }
        // 23: random bytes
        let random: Vec<u8> = (0..good.len()).map(|i| (i * 7919 % 251) as u8).collect();
        std::fs::write(&st, &random).unwrap();
        load_fails(&model, &data, &path, "safetensors");
        // 24: the weights of another architecture (wrong shapes)
        let other = tempfile::tempdir().unwrap();
        let arch = Architecture::new(
            ModelKind::Logistic,
            5,
            Some(2),
            &[],
            robustflow::model::Activation::Elu,
        )
        .unwrap_or_else(|_| unreachable!());
        let m = Model::new(arch.clone(), 0).unwrap();
        m.save(
            other.path().join("m"),
            &ModelFile::new(arch, None, Value::Null),
        )
        .unwrap();
        std::fs::copy(other.path().join("m/model.safetensors"), &st).unwrap();
        load_fails(&model, &data, &path, "expected [3, 1] f64");
        // 25: a NaN weight
        let (m0, _) = Model::load(other.path().join("m")).unwrap();
        let mut w = m0.params_flat().unwrap();
        w[2] = f64::NAN;
        m0.set_params_flat(&w).unwrap();
        let meta = ModelFile::new(m0.arch.clone(), None, Value::Null);
        m0.save(other.path().join("m"), &meta).unwrap();
        let e = Model::load(other.path().join("m")).unwrap_err().to_string();
        assert!(
            e.contains("model.safetensors") && e.contains("l0.weight") && e.contains("NaN"),
            "{e}"
        );
        // 26: a huge file is refused before it is read
        std::fs::write(&st, &good).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&st).unwrap();
        f.set_len(1 << 40).unwrap();
        drop(f);
        load_fails(&model, &data, &path, "bytes, more than");
        // 27: a corrupt report.json is an error naming it
        std::fs::write(&st, &good).unwrap();
        assert!(TrainedModel::load(&model).is_ok());
        std::fs::write(model.join("report.json"), "{").unwrap();
        let e = TrainedModel::load(&model).unwrap_err().to_string();
        assert!(e.contains("report.json"), "{e}");
    }

    #[test]
    fn sizes_from_flags_are_checked_against_the_memory_budget() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d.csv");
        write_data(&data, 40, 2);
        let out = dir.path().join("m");
        // 28: --hidden 100000000 (was an abort)
        let o = run(&[
            "train",
            "--data",
            p(&data),
            "--model",
            "mlp",
            "--hidden",
            "100000000",
            "--out",
            p(&out),
        ]);
        fails_with(&o, &["`hidden`", "memory budget"]);
        // 29: two wide layers: the product exceeds the budget
        let o = run(&[
            "train",
            "--data",
            p(&data),
            "--model",
            "mlp",
            "--hidden",
            "10000,10000",
            "--out",
            p(&out),
        ]);
        fails_with(&o, &["`hidden`", "memory budget"]);
        // 30: --extra-support 100000000 (was an abort)
        let o = run(&[
            "train",
            "--data",
            p(&data),
            "--ambiguity",
            "mmd",
            "--penalty",
            "1",
            "--extra-support",
            "100000000",
            "--out",
            p(&out),
        ]);
        fails_with(&o, &["`extra-support`", "at most 100000"]);
        assert!(!out.exists(), "nothing written on error");
        // Library: the architecture's parameter count is checked with overflow-safe math.
        let e = Architecture::new(
            ModelKind::Mlp,
            usize::MAX / 2,
            Some(2),
            &[3],
            robustflow::model::Activation::Elu,
        )
        .unwrap_err();
        assert!(e.to_string().contains("memory budget"), "{e}");
        assert!(Architecture::new(
            ModelKind::Logistic,
            MAX_PARAMS - 1,
            Some(2),
            &[],
            robustflow::model::Activation::Elu
        )
        .is_ok());
        assert!(Architecture::new(
            ModelKind::Logistic,
            MAX_PARAMS,
            Some(2),
            &[],
            robustflow::model::Activation::Elu
        )
        .is_err());
        // A forward pass bigger than the activation budget is an error, not an abort.
        let arch = Architecture::new(
            ModelKind::Mlp,
            1,
            Some(2),
            &[1 << 12],
            robustflow::model::Activation::Elu,
        )
        .unwrap();
        let m = Model::new(arch, 0).unwrap();
        let rows = MAX_ACTIVATIONS / (1 << 12) + 1;
        let e = m.input(&vec![0.0; rows]).unwrap_err();
        assert!(e.to_string().contains("memory budget"), "{e}");
    }

    #[test]
    fn thread_counts_are_bounded() {
        use robustflow::app::{thread_count_for, MAX_THREADS_PER_CORE};
        // 31: --threads 100000 is capped at 4 per core, with a warning
        let (t, w) = thread_count_for(100_000, 2).unwrap();
        assert_eq!(t, 2 * MAX_THREADS_PER_CORE);
        assert!(w.unwrap().contains("--threads 100000"));
        assert_eq!(thread_count_for(3, 2).unwrap(), (3, None));
        assert!(thread_count_for(0, 2).is_err());
        let dir = tempfile::tempdir().unwrap();
        let x = dir.path().join("x.csv");
        std::fs::write(&x, "a\n1\n2\n3\n").unwrap();
        let o = bin()
            .args([
                "--threads",
                "100000",
                "mmd",
                "--x",
                p(&x),
                "--y",
                p(&x),
                "--permutations",
                "5",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("warning: --threads 100000"),
            "{}",
            stderr(&o)
        );
        // 32: --threads 0 is a usage error (exit 2)
        let o = bin()
            .args(["--threads", "0", "mmd", "--x", p(&x), "--y", p(&x)])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("`threads`"));
    }

    /// 33: `demo --seed 2^64-1 --seeds 2` wraps to seed 0 instead of overflowing (which ran
    /// no seed and printed an all-NaN table).
    #[test]
    fn largest_seed_wraps_around() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d.csv");
        write_data(&data, 60, 3);
        let out = dir.path().join("demo");
        let o = run(&[
            "demo",
            "--data",
            p(&data),
            "--out",
            p(&out),
            "--sets",
            "none",
            "--epochs",
            "2",
            "--eps",
            "0.5",
            "--seeds",
            "2",
            "--seed",
            "18446744073709551615",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("comparison.json")).unwrap())
                .unwrap();
        let seeds: Vec<u64> = v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seed"].as_u64().unwrap())
            .collect();
        assert_eq!(seeds, vec![u64::MAX, 0]);
        for s in v["summary"].as_array().unwrap() {
            let m = s["mean"].as_f64().expect("a finite mean");
            assert!((0.0..=1.0).contains(&m), "{s}");
        }
        assert!(out.join("none/model.json").exists());
    }

    #[test]
    fn flags_that_would_be_ignored_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (data, model) = trained(dir.path(), 0);
        let out = dir.path().join("m2");
        let train = |extra: &[&str]| {
            let mut a = vec![
                "train",
                "--data",
                p(&data),
                "--epochs",
                "1",
                "--out",
                p(&out),
            ];
            a.extend_from_slice(extra);
            run(&a)
        };
        // 34-37: ambiguity flags without an ambiguity set
        fails_with(
            &train(&["--radius", "0.1"]),
            &["`radius`", "without an ambiguity set"],
        );
        fails_with(
            &train(&["--penalty", "1"]),
            &["`penalty`", "without an ambiguity set"],
        );
        fails_with(&train(&["--extra-support", "5"]), &["`extra-support`"]);
        fails_with(&train(&["--warm-start"]), &["`warm-start`"]);
        // 38-39: flags of another ambiguity set
        fails_with(
            &train(&[
                "--ambiguity",
                "wasserstein",
                "--penalty",
                "1",
                "--kl-penalty",
                "1",
            ]),
            &["`kl-penalty`", "wfr"],
        );
        fails_with(
            &train(&[
                "--ambiguity",
                "wasserstein",
                "--penalty",
                "1",
                "--weight-flow",
            ]),
            &["`weight-flow`"],
        );
        assert!(!out.exists());
        // 40-41: attack settings without --attack
        let eval = |extra: &[&str]| {
            let mut a = vec!["eval", "--model", p(&model), "--data", p(&data)];
            a.extend_from_slice(extra);
            run(&a)
        };
        fails_with(&eval(&["--eps", "0.3"]), &["`eps`", "--attack"]);
        fails_with(
            &eval(&["--attack-steps", "5"]),
            &["`attack-steps`", "--attack"],
        );
        // 42: --eps 1e308 blames eps, not a flag the user never set
        let e = fails_with(&eval(&["--attack", "pgd", "--eps", "1e308"]), &["`eps`"]);
        assert!(!e.contains("attack-step-size"), "{e}");
        // and the defaults still work with --attack
        let o = eval(&["--attack", "fgsm"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }

    #[test]
    fn outputs_never_overwrite_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let (data, model) = trained(dir.path(), 0);
        let before = std::fs::read(&data).unwrap();
        let mj = model.join("model.json");
        let eval = |extra: &[&str]| {
            let mut a = vec!["eval", "--model", p(&model), "--data", p(&data)];
            a.extend_from_slice(extra);
            run(&a)
        };
        // 43: eval --predictions over --data (was: the data file overwritten)
        fails_with(
            &eval(&["--predictions", p(&data)]),
            &["`predictions`", "would overwrite", "`--data`"],
        );
        // 44: the same file through another spelling of the path
        let odd = format!(
            "{}/./../{}/data.csv",
            p(dir.path()),
            dir.path().file_name().unwrap().to_str().unwrap()
        );
        fails_with(&eval(&["--report", &odd]), &["`report`", "`--data`"]);
        // 45: over a file of the model directory
        fails_with(&eval(&["--csv", p(&mj)]), &["`csv`", "`--model`"]);
        // 46: a symlink to the data
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&data, &link).unwrap();
        fails_with(&eval(&["--predictions", p(&link)]), &["`predictions`"]);
        // 47: a hard link to the data
        let hard = dir.path().join("hard.csv");
        std::fs::hard_link(&data, &hard).unwrap();
        fails_with(&eval(&["--predictions", p(&hard)]), &["`predictions`"]);
        // 48: two outputs on one path
        let r = dir.path().join("r.out");
        fails_with(
            &eval(&["--report", p(&r), "--csv", p(&r)]),
            &["`csv`", "also the output"],
        );
        // 49: certify --report over the data
        let o = run(&[
            "certify",
            "--model",
            p(&model),
            "--data",
            p(&data),
            "--ambiguity",
            "kl",
            "--radius",
            "0.1",
            "--report",
            p(&data),
        ]);
        fails_with(&o, &["`report`", "`--data`"]);
        // 50: mmd --report over --x
        let o = run(&[
            "mmd",
            "--x",
            p(&data),
            "--y",
            p(&data),
            "--report",
            p(&data),
        ]);
        fails_with(&o, &["`report`", "`--x`"]);
        // 51: train --out a directory holding the training data (it would be replaced)
        let o = run(&[
            "train",
            "--data",
            p(&data),
            "--epochs",
            "1",
            "--out",
            p(dir.path()),
        ]);
        fails_with(
            &o,
            &["`out`", "would replace a directory holding", "`--data`"],
        );
        // 52: train --out an existing directory with the user's own files
        let user = dir.path().join("notes");
        std::fs::create_dir(&user).unwrap();
        std::fs::write(user.join("todo.txt"), "keep me").unwrap();
        let o = run(&[
            "train",
            "--data",
            p(&data),
            "--epochs",
            "1",
            "--out",
            p(&user),
        ]);
        fails_with(&o, &["notes", "todo.txt", "new or empty directory"]);
        assert_eq!(
            std::fs::read_to_string(user.join("todo.txt")).unwrap(),
            "keep me"
        );
        // 53: train --out a file
        let plain = dir.path().join("plain.txt");
        std::fs::write(&plain, "x").unwrap();
        let o = run(&[
            "train",
            "--data",
            p(&data),
            "--epochs",
            "1",
            "--out",
            p(&plain),
        ]);
        fails_with(&o, &["not a directory"]);
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "x");
        // 54: fit-kl with --out-dir holding its --samples as trace.csv
        let fk = dir.path().join("fk");
        std::fs::create_dir(&fk).unwrap();
        std::fs::write(fk.join("trace.csv"), "x1,x2\n0,0\n1,1\n2,0\n").unwrap();
        let o = run(&[
            "fit-kl",
            "--samples",
            p(&fk.join("trace.csv")),
            "--out-dir",
            p(&fk),
        ]);
        fails_with(&o, &["`out-dir`", "`--samples`"]);
        // Nothing was touched.
        assert_eq!(std::fs::read(&data).unwrap(), before);
        assert!(TrainedModel::load(&model).is_ok());
        // The guard on its own: a new file in a new directory is fine.
        let g = OutputGuard::new().input("data", &data);
        assert!(g.file("report", dir.path().join("new/dir/r.json")).is_ok());
    }

    /// Predictions of `model` on `data` (the CSV written by eval).
    fn predictions(model: &Path, data: &Path, out: &Path) -> String {
        let o = run(&[
            "eval",
            "--model",
            p(model),
            "--data",
            p(data),
            "--predictions",
            p(out),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read_to_string(out).unwrap()
    }

    fn siblings(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with(".model."))
            .collect();
        v.sort();
        v
    }

    /// 55-57: a save killed at any point leaves the old model or no model, never new
    /// weights beside an old schema; the next save cleans up; modes are consistent.
    #[test]
    fn interrupted_save_never_leaves_a_loadable_wrong_model() {
        let dir = tempfile::tempdir().unwrap();
        let (data, model) = trained(dir.path(), 0);
        let pred_a = predictions(&model, &data, &dir.path().join("a.csv"));
        let other = dir.path().join("other.csv");
        write_data(&other, 60, 9);
        let train_b = |fault: Option<&str>| {
            let mut c = bin();
            c.args([
                "--quiet",
                "train",
                "--data",
                p(&other),
                "--epochs",
                "4",
                "--seed",
                "5",
                "--out",
                p(&model),
            ]);
            if let Some(f) = fault {
                c.env(FAULT_ENV, f);
            }
            c.output().unwrap()
        };
        // Killed after writing every new file, before any rename: the old model is intact.
        let o = train_b(Some("after-files"));
        assert!(!o.status.success());
        assert_eq!(
            predictions(&model, &data, &dir.path().join("a2.csv")),
            pred_a
        );
        assert_eq!(siblings(dir.path()).len(), 1, "{:?}", siblings(dir.path()));
        // Killed after moving the old directory aside: no model at all (an error), not a
        // mix of files.
        let o = train_b(Some("after-aside"));
        assert!(!o.status.success());
        let o = run(&["eval", "--model", p(&model), "--data", p(&data)]);
        fails_with(&o, &["model.json"]);
        // A half-written temporary directory of a dead process is ignored, then cleaned.
        let half = dir.path().join(".model.tmp-99999999-1");
        std::fs::create_dir(&half).unwrap();
        std::fs::write(half.join("model.json"), "{\"format\": 1").unwrap();
        // The next save succeeds and removes every stale temporary.
        let o = train_b(None);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(siblings(dir.path()), Vec::<String>::new());
        let pred_b = predictions(&model, &data, &dir.path().join("b.csv"));
        assert_ne!(pred_b, pred_a, "the new model is in place");
        // Exactly the model files, all with the same mode as any file this process creates.
        use std::os::unix::fs::PermissionsExt;
        let mut names: Vec<String> = std::fs::read_dir(&model)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["model.json", "model.safetensors", "report.json"]);
        let probe = dir.path().join("probe");
        std::fs::write(&probe, "x").unwrap();
        let want = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
        for n in &names {
            let m = std::fs::metadata(model.join(n))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(m, want, "{n}: {m:o} vs {want:o}");
        }
    }

    /// 58: the atomic directory on its own: an uncommitted unit leaves nothing behind and
    /// the target untouched.
    #[test]
    fn uncommitted_atomic_dir_leaves_the_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("unit");
        let u = AtomicDir::begin(&t, &["a.txt"]).unwrap();
        u.write("a.txt", b"one").unwrap();
        u.commit().unwrap();
        let u = AtomicDir::begin(&t, &["a.txt"]).unwrap();
        u.write("a.txt", b"two").unwrap();
        drop(u);
        assert_eq!(std::fs::read_to_string(t.join("a.txt")).unwrap(), "one");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    /// 59-60: `bench` resume is keyed by the settings: other settings into the same
    /// --out-dir are an error naming what changed; the same settings resume.
    #[test]
    fn bench_resume_refuses_other_settings() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("bench");
        let bench = |epochs: &str| {
            run(&[
                "bench",
                "--suite",
                "quick",
                "--datasets",
                "circles",
                "--methods",
                "erm",
                "--seeds",
                "0",
                "--epochs",
                epochs,
                "--out-dir",
                p(&out),
            ])
        };
        let o = bench("2");
        assert!(o.status.success(), "{}", stderr(&o));
        let results = std::fs::read(out.join("results.csv")).unwrap();
        let o = bench("3");
        fails_with(
            &o,
            &["`out-dir`", "other settings", "epochs: 2 then, 3 now"],
        );
        assert_eq!(std::fs::read(out.join("results.csv")).unwrap(), results);
        let prov: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap())
                .unwrap();
        assert_eq!(
            prov["config"]["epochs"], 2,
            "provenance still says what produced the rows"
        );
        let o = bench("2");
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("0 computed"),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
}
