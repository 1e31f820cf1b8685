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
