//! Bad input gives a clear error, never a panic or a silent NaN: CSV problems name the file,
//! the row and the column; bad settings name the parameter; a diverging flow stops with
//! `Error::Diverged` naming the step.

use ndarray::{array, Array1, Array2};
use robustflow::energy::{Energy, MmdEnergy};
use robustflow::error::{check_count, check_nonneg, check_positive};
use robustflow::flow::{
    Executor, FisherRao, FlowConfig, Ift, KernelFr, Langevin, MmdProx, ProxSolver, QpOptions, Svgd,
    Wasserstein,
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
        Executor::new(FlowConfig {
            trace_every: 0,
            ..Default::default()
        })
        .map(|_| ()),
        "trace-every",
    );
    assert_param(
        Executor::new(FlowConfig {
            tol: -1.0,
            ..Default::default()
        })
        .map(|_| ()),
        "tol",
    );
    assert_param(
        Executor::new(FlowConfig {
            step_size: 0.0,
            ..Default::default()
        })
        .map(|_| ()),
        "step-size",
    );
    assert_param(
        Executor::new(FlowConfig {
            max_time_s: Some(0.0),
            ..Default::default()
        })
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
