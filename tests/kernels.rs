//! Kernels and kernel sums against their definitions (docs/DESIGN.md §1).
//!
//! - the fused, streamed sums (`kernel_sums`, `kernel_sums_with_grad`, `kernel_sums_multi`,
//!   `gram`, `GramOp`) equal the naive double loop written from the closed-form kernels, to
//!   1e-10 relative in f64, for the three kernels, odd sizes and `n` or `m` = 1;
//! - gradients (`grad_x`, the sum gradients, the witness gradient of the MMD energy) equal
//!   central finite differences;
//! - `grad_lipschitz` bounds the Lipschitz constant of `grad_x k`;
//! - MMD^2 (V-statistic) is the full weighted quadratic form, is symmetric, zero for equal
//!   measures and matches closed forms on two 1-D points; the U-statistic is the classical
//!   i != j formula;
//! - the median heuristic matches its definition; bad bandwidths are rejected.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use robustflow::kernel::{
    gram, kernel_column, kernel_sums, kernel_sums_multi, kernel_sums_with_grad, median_heuristic,
    mmd2, mmd2_unbiased, mmd_terms, Bandwidth, GramOp, Kernel, KernelKind,
};
use robustflow::linalg::LinOp;
use robustflow::Error;

const KINDS: [KernelKind; 3] = [KernelKind::Gaussian, KernelKind::Imq, KernelKind::Laplace];

/// The kernels written out from their definitions (docs/DESIGN.md §1), independently of
/// `Kernel::phi`.
fn naive_k(kind: KernelKind, h: f64, x: &[f64], y: &[f64]) -> f64 {
    let r2: f64 = x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum();
    match kind {
        KernelKind::Gaussian => (-r2 / (2.0 * h * h)).exp(),
        KernelKind::Imq => (h * h + r2).powf(-0.5),
        KernelKind::Laplace => (-r2.sqrt() / h).exp(),
    }
}

/// `grad_x k(x, y)` written out from the definitions.
fn naive_grad(kind: KernelKind, h: f64, x: &[f64], y: &[f64]) -> Vec<f64> {
    let r2: f64 = x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum();
    let r = r2.sqrt();
    x.iter()
        .zip(y)
        .map(|(a, b)| {
            let u = a - b;
            match kind {
                KernelKind::Gaussian => -u / (h * h) * (-r2 / (2.0 * h * h)).exp(),
                KernelKind::Imq => -u * (h * h + r2).powf(-1.5),
                KernelKind::Laplace => {
                    if r > 0.0 {
                        -u / (h * r) * (-r / h).exp()
                    } else {
                        0.0
                    }
                }
            }
        })
        .collect()
}

fn rand_points(rng: &mut StdRng, n: usize, d: usize, scale: f64, offset: f64) -> Vec<f64> {
    (0..n * d)
        .map(|_| offset + scale * (2.0 * rng.random::<f64>() - 1.0))
        .collect()
}

fn rand_signed(rng: &mut StdRng, n: usize) -> Vec<f64> {
    (0..n).map(|_| 2.0 * rng.random::<f64>() - 1.0).collect()
}

fn rand_simplex(rng: &mut StdRng, n: usize) -> Vec<f64> {
    let w: Vec<f64> = (0..n).map(|_| 0.05 + rng.random::<f64>()).collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|a| a / s).collect()
}

/// `|a - b| <= tol * scale`, with a message.
fn close(a: f64, b: f64, scale: f64, tol: f64, what: &str) {
    assert!(
        (a - b).abs() <= tol * scale.max(f64::MIN_POSITIVE),
        "{what}: {a} vs {b} (diff {:e}, scale {scale:e})",
        (a - b).abs()
    );
}

/// The fused sums equal the naive double loop, for all kernels, odd sizes, n or m = 1, and
/// points away from the origin (translation must not cost precision beyond 1e-10).
#[test]
fn kernel_sums_equal_naive_double_loop() {
    let mut rng = StdRng::seed_from_u64(1);
    let sizes = [(1, 1), (1, 7), (7, 1), (17, 33), (33, 17), (65, 3)];
    for kind in KINDS {
        for &(n, m) in &sizes {
            for d in [1, 3, 5] {
                for offset in [0.0, 7.5] {
                    let h = 0.4 + rng.random::<f64>();
                    let k = Kernel::new(kind, h).unwrap();
                    let x = rand_points(&mut rng, n, d, 1.5, offset);
                    let y = rand_points(&mut rng, m, d, 1.5, offset);
                    let v = rand_signed(&mut rng, m);
                    let s = kernel_sums(&k, &x, &y, &v, d).unwrap();
                    let (s2, g) = kernel_sums_with_grad(&k, &x, &y, &v, d).unwrap();
                    assert_eq!(s.len(), n);
                    assert_eq!(g.len(), n * d);
                    for i in 0..n {
                        let xi = &x[i * d..(i + 1) * d];
                        let mut val = 0.0;
                        let mut scale = 0.0;
                        let mut grad = vec![0.0; d];
                        let mut gscale = 0.0;
                        for j in 0..m {
                            let yj = &y[j * d..(j + 1) * d];
                            let kij = naive_k(kind, h, xi, yj);
                            val += v[j] * kij;
                            scale += (v[j] * kij).abs();
                            let gij = naive_grad(kind, h, xi, yj);
                            for a in 0..d {
                                grad[a] += v[j] * gij[a];
                            }
                            gscale += v[j].abs() * gij.iter().map(|t| t * t).sum::<f64>().sqrt();
                        }
                        let what = format!("{kind} n={n} m={m} d={d} offset={offset} i={i}");
                        close(s[i], val, scale, 1e-10, &format!("value {what}"));
                        close(
                            s2[i],
                            val,
                            scale,
                            1e-10,
                            &format!("value (with grad) {what}"),
                        );
                        for a in 0..d {
                            close(
                                g[i * d + a],
                                grad[a],
                                gscale,
                                1e-10,
                                &format!("gradient {what} a={a}"),
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn kernel_sums_multi_equal_naive() {
    let mut rng = StdRng::seed_from_u64(2);
    for kind in KINDS {
        for &(n, m, d, p) in &[(1, 1, 1, 1), (13, 1, 2, 3), (1, 9, 3, 2), (31, 19, 2, 5)] {
            let h = 0.5 + rng.random::<f64>();
            let k = Kernel::new(kind, h).unwrap();
            let x = rand_points(&mut rng, n, d, 2.0, 0.0);
            let y = rand_points(&mut rng, m, d, 2.0, 0.0);
            let vm = rand_signed(&mut rng, m * p);
            let s = kernel_sums_multi(&k, &x, &y, &vm, d, p).unwrap();
            assert_eq!(s.len(), n * p);
            for i in 0..n {
                for c in 0..p {
                    let mut val = 0.0;
                    let mut scale = 0.0;
                    for j in 0..m {
                        let t = naive_k(kind, h, &x[i * d..(i + 1) * d], &y[j * d..(j + 1) * d])
                            * vm[j * p + c];
                        val += t;
                        scale += t.abs();
                    }
                    close(
                        s[i * p + c],
                        val,
                        scale,
                        1e-10,
                        &format!("multi {kind} n={n} m={m} i={i} c={c}"),
                    );
                }
            }
            // Column c of the multi sum is the scalar sum with weights V[:, c].
            for c in 0..p {
                let col: Vec<f64> = (0..m).map(|j| vm[j * p + c]).collect();
                let sc = kernel_sums(&k, &x, &y, &col, d).unwrap();
                for i in 0..n {
                    close(
                        s[i * p + c],
                        sc[i],
                        sc[i].abs().max(1e-300),
                        1e-12,
                        "multi column vs scalar",
                    );
                }
            }
        }
    }
}

#[test]
fn gram_and_gram_operator_equal_naive() {
    let mut rng = StdRng::seed_from_u64(3);
    for kind in KINDS {
        let (n, m, d) = (11, 6, 3);
        let h = 1.3;
        let k = Kernel::new(kind, h).unwrap();
        let x = rand_points(&mut rng, n, d, 2.0, 0.0);
        let y = rand_points(&mut rng, m, d, 2.0, 0.0);
        let g = gram(&k, &x, &y, d).unwrap();
        assert_eq!(g.dim(), (n, m));
        for i in 0..n {
            for j in 0..m {
                close(
                    g[[i, j]],
                    naive_k(kind, h, &x[i * d..(i + 1) * d], &y[j * d..(j + 1) * d]),
                    1.0,
                    1e-14,
                    "gram",
                );
            }
        }
        let v = rand_signed(&mut rng, n);
        let kxx = gram(&k, &x, &x, d).unwrap();
        let expect: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| kxx[[i, j]] * v[j]).sum())
            .collect();
        // A sparse vector (2 non-zeros of 11) takes the operators' sparse paths.
        let mut vs = vec![0.0; n];
        for j in [1usize, 9] {
            vs[j] = v[j];
        }
        let expect_s: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| kxx[[i, j]] * vs[j]).sum())
            .collect();
        for op in [
            GramOp::new(&k, &x, d).unwrap(),
            GramOp::streamed(&k, &x, d),
            GramOp::dense(&k, &x, d).unwrap(),
        ] {
            assert_eq!(op.dim(), n);
            let mut out = vec![0.0; n];
            // The lazy operator streams the first two products and materialises on the third.
            for rep in 0..4 {
                op.apply(&v, &mut out);
                for i in 0..n {
                    close(
                        out[i],
                        expect[i],
                        1.0,
                        1e-12,
                        &format!("GramOp apply #{rep}"),
                    );
                }
                op.apply(&vs, &mut out);
                for i in 0..n {
                    close(out[i], expect_s[i], 1.0, 1e-12, "GramOp sparse apply");
                }
            }
            let mut col = vec![0.0; n];
            for j in 0..n {
                op.column(j, &mut col);
                for i in 0..n {
                    close(col[i], kxx[[i, j]], 1.0, 1e-14, "GramOp column");
                }
            }
            op.diagonal(&mut col);
            for i in 0..n {
                close(col[i], kxx[[i, i]], 1.0, 1e-14, "GramOp diagonal");
            }
        }
        // The trait's default column/diagonal (through `apply`) agree with the overrides.
        struct Plain<'a>(&'a GramOp);
        impl LinOp for Plain<'_> {
            fn dim(&self) -> usize {
                self.0.dim()
            }
            fn apply(&self, v: &[f64], out: &mut [f64]) {
                self.0.apply(v, out)
            }
        }
        let op = GramOp::streamed(&k, &x, d);
        let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
        for j in [0, n / 2, n - 1] {
            op.column(j, &mut a);
            Plain(&op).column(j, &mut b);
            for i in 0..n {
                close(a[i], b[i], 1.0, 1e-12, "default column");
            }
        }
        Plain(&op).diagonal(&mut b);
        for i in 0..n {
            close(b[i], k.diag(), 1.0, 1e-12, "default diagonal");
        }
    }
}

/// One Gram column by the vectorised path equals the definition, in every dimension the
/// column code specialises (1, 2) and a general one, including a single atom.
#[test]
fn kernel_column_equals_naive() {
    let mut rng = StdRng::seed_from_u64(11);
    for kind in KINDS {
        for &(n, d) in &[(1usize, 1usize), (37, 1), (1, 2), (129, 2), (64, 7)] {
            let h = 0.9;
            let k = Kernel::new(kind, h).unwrap();
            let x = rand_points(&mut rng, n, d, 3.0, 0.0);
            let y = rand_points(&mut rng, 1, d, 3.0, 0.0);
            let mut out = vec![f64::NAN; n];
            kernel_column(&k, &x, &y, d, &mut out).unwrap();
            for i in 0..n {
                close(
                    out[i],
                    naive_k(kind, h, &x[i * d..(i + 1) * d], &y),
                    1.0,
                    1e-14,
                    "column",
                );
            }
            assert!(kernel_column(&k, &x, &y[..d - 1], d, &mut out).is_err());
            let mut short = vec![0.0; n + 1];
            assert!(kernel_column(&k, &x, &y, d, &mut short).is_err());
        }
    }
}

/// `phi_dphi` is the value and the r2-derivative of `phi`; `grad_x` and `eval` match the
/// definitions; `grad_x k = -grad_y k`.
#[test]
fn pointwise_kernel_functions_match_definitions_and_finite_differences() {
    let mut rng = StdRng::seed_from_u64(4);
    for kind in KINDS {
        for _ in 0..50 {
            let d = 1 + rng.random_range(0..4);
            let h = 0.3 + 2.0 * rng.random::<f64>();
            let k = Kernel::new(kind, h).unwrap();
            let x = rand_points(&mut rng, 1, d, 2.0, 0.0);
            let y = rand_points(&mut rng, 1, d, 2.0, 0.0);
            close(k.eval(&x, &y), naive_k(kind, h, &x, &y), 1.0, 1e-14, "eval");
            let r2: f64 = x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
            let (p, dp) = k.phi_dphi(r2);
            close(p, k.phi(r2), 1.0, 1e-15, "phi_dphi value");
            let e = 1e-6 * r2.max(1e-3);
            let fd = (k.phi(r2 + e) - k.phi(r2 - e)) / (2.0 * e);
            close(dp, fd, dp.abs().max(1e-8), 1e-6, &format!("phi' {kind}"));
            let mut gx = vec![0.0; d];
            k.grad_x(&x, &y, &mut gx);
            let mut gy = vec![0.0; d];
            k.grad_x(&y, &x, &mut gy);
            let ng = naive_grad(kind, h, &x, &y);
            for a in 0..d {
                close(gx[a], ng[a], 1.0, 1e-13, "grad_x vs closed form");
                close(gy[a], -gx[a], 1.0, 1e-15, "grad_y = -grad_x");
                let mut xp = x.clone();
                let mut xm = x.clone();
                let eps = 1e-6;
                xp[a] += eps;
                xm[a] -= eps;
                let fd = (k.eval(&xp, &y) - k.eval(&xm, &y)) / (2.0 * eps);
                close(
                    gx[a],
                    fd,
                    1.0,
                    1e-7,
                    &format!("grad_x vs finite difference {kind}"),
                );
            }
        }
        // Bounded by the diagonal value.
        let k = Kernel::new(kind, 0.7).unwrap();
        assert_eq!(k.diag(), naive_k(kind, 0.7, &[0.0], &[0.0]));
    }
}

/// The gradients of the fused sums are the gradients of the fused values.
#[test]
fn sum_gradients_equal_finite_differences_of_sums() {
    let mut rng = StdRng::seed_from_u64(5);
    for kind in KINDS {
        let (n, m, d) = (5, 9, 3);
        let h = 0.9;
        let k = Kernel::new(kind, h).unwrap();
        let x = rand_points(&mut rng, n, d, 1.5, 0.0);
        let y = rand_points(&mut rng, m, d, 1.5, 0.0);
        let v = rand_signed(&mut rng, m);
        let (_, g) = kernel_sums_with_grad(&k, &x, &y, &v, d).unwrap();
        let eps = 1e-6;
        for i in 0..n {
            for a in 0..d {
                let mut xp = x[i * d..(i + 1) * d].to_vec();
                let mut xm = xp.clone();
                xp[a] += eps;
                xm[a] -= eps;
                let sp = kernel_sums(&k, &xp, &y, &v, d).unwrap()[0];
                let sm = kernel_sums(&k, &xm, &y, &v, d).unwrap()[0];
                close(
                    g[i * d + a],
                    (sp - sm) / (2.0 * eps),
                    1.0,
                    1e-7,
                    &format!("sum gradient {kind} i={i} a={a}"),
                );
            }
        }
    }
}

/// `||grad_x k(x, y) - grad_x k(x', y)|| <= L ||x - x'||` with `L = grad_lipschitz()`
/// (the constant the Wasserstein step-size rule relies on), and the bound is nearly attained
/// at `x = y` (it is the Hessian norm there).
#[test]
fn grad_lipschitz_bounds_gradient_differences() {
    let mut rng = StdRng::seed_from_u64(6);
    for kind in [KernelKind::Gaussian, KernelKind::Imq] {
        let h = 0.8;
        let k = Kernel::new(kind, h).unwrap();
        let lip = k.grad_lipschitz().unwrap();
        for _ in 0..2000 {
            let d = 1 + rng.random_range(0..3);
            let x = rand_points(&mut rng, 1, d, 3.0, 0.0);
            let x2 = rand_points(&mut rng, 1, d, 3.0, 0.0);
            let y = rand_points(&mut rng, 1, d, 3.0, 0.0);
            let (mut g1, mut g2) = (vec![0.0; d], vec![0.0; d]);
            k.grad_x(&x, &y, &mut g1);
            k.grad_x(&x2, &y, &mut g2);
            let dg: f64 = g1
                .iter()
                .zip(&g2)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt();
            let dx: f64 = x
                .iter()
                .zip(&x2)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt();
            assert!(
                dg <= lip * dx * (1.0 + 1e-12),
                "{kind}: |dgrad| {dg} > L |dx| = {}",
                lip * dx
            );
        }
        let (mut g1, mut g2) = (vec![0.0; 1], vec![0.0; 1]);
        k.grad_x(&[1e-4], &[0.0], &mut g1);
        k.grad_x(&[-1e-4], &[0.0], &mut g2);
        let ratio = (g1[0] - g2[0]).abs() / 2e-4;
        assert!(
            ratio > 0.99 * lip,
            "{kind}: L = {lip} is loose: Hessian norm at 0 is {ratio}"
        );
    }
    assert!(Kernel::laplace(1.0).unwrap().grad_lipschitz().is_none());
}

/// The V-statistic is the weighted quadratic form `[w; -v]' K_zz [w; -v]` over the stacked
/// points, is symmetric in its arguments and zero for equal measures.
#[test]
fn mmd2_is_the_weighted_quadratic_form_symmetric_and_zero_on_equal_measures() {
    let mut rng = StdRng::seed_from_u64(7);
    for kind in KINDS {
        for &(n, m, d) in &[(1, 1, 1), (1, 6, 2), (7, 3, 2), (12, 15, 4)] {
            let h = 0.5 + rng.random::<f64>();
            let k = Kernel::new(kind, h).unwrap();
            let x = rand_points(&mut rng, n, d, 2.0, 0.0);
            let y = rand_points(&mut rng, m, d, 2.0, 0.0);
            let w = rand_simplex(&mut rng, n);
            let v = rand_simplex(&mut rng, m);
            let mut z = x.clone();
            z.extend_from_slice(&y);
            let mut c = w.clone();
            c.extend(v.iter().map(|a| -a));
            let nz = n + m;
            let mut q = 0.0;
            for a in 0..nz {
                for b in 0..nz {
                    q += c[a]
                        * c[b]
                        * naive_k(kind, h, &z[a * d..(a + 1) * d], &z[b * d..(b + 1) * d]);
                }
            }
            let got = mmd2(&k, &x, &w, &y, &v, d).unwrap();
            close(
                got,
                q.max(0.0),
                k.diag(),
                1e-12,
                &format!("mmd2 quadratic form {kind}"),
            );
            let back = mmd2(&k, &y, &v, &x, &w, d).unwrap();
            close(got, back, k.diag(), 1e-13, "mmd2 symmetry");
            let (txx, txy, tyy) = mmd_terms(&k, &x, &w, &y, &v, d).unwrap();
            close(txx - 2.0 * txy + tyy, q, k.diag(), 1e-12, "mmd terms");
            // Equal measures (the same points in another order, same weights).
            let perm: Vec<usize> = (0..n).rev().collect();
            let xp: Vec<f64> = perm
                .iter()
                .flat_map(|&i| x[i * d..(i + 1) * d].to_vec())
                .collect();
            let wp: Vec<f64> = perm.iter().map(|&i| w[i]).collect();
            assert!(
                mmd2(&k, &x, &w, &xp, &wp, d).unwrap() <= 1e-14,
                "MMD^2(mu, mu) != 0"
            );
            // A particle split in two halves is the same measure.
            let mut xs = x.clone();
            xs.extend_from_slice(&x[0..d]);
            let mut ws = w.clone();
            ws[0] *= 0.5;
            ws.push(w[0] * 0.5);
            assert!(
                mmd2(&k, &x, &w, &xs, &ws, d).unwrap() <= 1e-14,
                "split particle changes MMD"
            );
        }
    }
}

/// Two 1-D points `x = 0`, `y = a` (unit weights): `MMD^2 = k(0,0) + k(a,a) - 2 k(0,a)`,
/// written out for each kernel.
#[test]
fn mmd2_closed_form_on_two_points() {
    for &(a, h) in &[(1.0f64, 1.0f64), (0.3, 2.0), (2.5, 0.7)] {
        let g = 2.0 - 2.0 * (-(a * a) / (2.0 * h * h)).exp();
        let i = 2.0 / h - 2.0 / (h * h + a * a).sqrt();
        let l = 2.0 - 2.0 * (-a / h).exp();
        for (kind, expect) in [
            (KernelKind::Gaussian, g),
            (KernelKind::Imq, i),
            (KernelKind::Laplace, l),
        ] {
            let k = Kernel::new(kind, h).unwrap();
            let got = mmd2(&k, &[0.0], &[1.0], &[a], &[1.0], 1).unwrap();
            close(
                got,
                expect,
                1.0,
                1e-14,
                &format!("two-point MMD^2 {kind} a={a} h={h}"),
            );
        }
    }
    // Gaussian, h = 1, a = 1: 2 - 2 exp(-1/2) = 0.786938680574733...
    let k = Kernel::gaussian(1.0).unwrap();
    close(
        mmd2(&k, &[0.0], &[1.0], &[1.0], &[1.0], 1).unwrap(),
        0.786_938_680_574_733,
        1.0,
        1e-14,
        "numeric value",
    );
    // Two points each side, uniform weights: x = {0, 1}, y = {0, 3}, Gaussian h = 1.
    let (k01, k03, k13) = ((-0.5f64).exp(), (-4.5f64).exp(), (-2.0f64).exp());
    let expect =
        0.25 * (2.0 + 2.0 * k01) + 0.25 * (2.0 + 2.0 * k03) - 2.0 * 0.25 * (1.0 + k03 + k01 + k13);
    let got = mmd2(&k, &[0.0, 1.0], &[0.5, 0.5], &[0.0, 3.0], &[0.5, 0.5], 1).unwrap();
    close(got, expect, 1.0, 1e-14, "four-point MMD^2");
}

/// The U-statistic with equal weights is Gretton's classical formula with `i != j` sums; with
/// general weights it is the documented renormalised form.
#[test]
fn mmd2_unbiased_is_the_classical_u_statistic() {
    let mut rng = StdRng::seed_from_u64(8);
    for kind in KINDS {
        for &(n, m, d) in &[(2, 2, 1), (5, 8, 2), (13, 7, 3)] {
            let h = 0.6 + rng.random::<f64>();
            let k = Kernel::new(kind, h).unwrap();
            let x = rand_points(&mut rng, n, d, 2.0, 0.0);
            let y = rand_points(&mut rng, m, d, 2.0, 0.5);
            let kk = |p: &[f64], i: usize, q: &[f64], j: usize| {
                naive_k(kind, h, &p[i * d..(i + 1) * d], &q[j * d..(j + 1) * d])
            };
            let mut sxx = 0.0;
            for i in 0..n {
                for j in 0..n {
                    if i != j {
                        sxx += kk(&x, i, &x, j);
                    }
                }
            }
            let mut syy = 0.0;
            for i in 0..m {
                for j in 0..m {
                    if i != j {
                        syy += kk(&y, i, &y, j);
                    }
                }
            }
            let mut sxy = 0.0;
            for i in 0..n {
                for j in 0..m {
                    sxy += kk(&x, i, &y, j);
                }
            }
            let (nf, mf) = (n as f64, m as f64);
            let expect = sxx / (nf * (nf - 1.0)) + syy / (mf * (mf - 1.0)) - 2.0 * sxy / (nf * mf);
            let w = vec![1.0 / nf; n];
            let v = vec![1.0 / mf; m];
            let got = mmd2_unbiased(&k, &x, &w, &y, &v, d).unwrap();
            close(
                got,
                expect,
                k.diag(),
                1e-12,
                &format!("U-statistic {kind} n={n} m={m}"),
            );
            // General weights: (w'Kw - sum w^2 k_ii) / (1 - sum w^2) + same for y - 2 w'K v.
            let w = rand_simplex(&mut rng, n);
            let v = rand_simplex(&mut rng, m);
            let (mut qxx, mut qyy, mut qxy) = (0.0, 0.0, 0.0);
            for i in 0..n {
                for j in 0..n {
                    if i != j {
                        qxx += w[i] * w[j] * kk(&x, i, &x, j);
                    }
                }
            }
            for i in 0..m {
                for j in 0..m {
                    if i != j {
                        qyy += v[i] * v[j] * kk(&y, i, &y, j);
                    }
                }
            }
            for i in 0..n {
                for j in 0..m {
                    qxy += w[i] * v[j] * kk(&x, i, &y, j);
                }
            }
            let sw2: f64 = w.iter().map(|a| a * a).sum();
            let sv2: f64 = v.iter().map(|a| a * a).sum();
            let expect = qxx / (1.0 - sw2) + qyy / (1.0 - sv2) - 2.0 * qxy;
            let got = mmd2_unbiased(&k, &x, &w, &y, &v, d).unwrap();
            close(got, expect, k.diag(), 1e-12, "weighted U-statistic");
        }
    }
    // A single point has no i != j pair: an error, not a NaN.
    let k = Kernel::gaussian(1.0).unwrap();
    assert!(matches!(
        mmd2_unbiased(&k, &[0.0], &[1.0], &[1.0, 2.0], &[0.5, 0.5], 1),
        Err(Error::InvalidParameter { .. })
    ));
}

/// `h^2 = median_{i<j} ||x_i - x_j||^2 / 2`, checked on small sets with an odd and an even
/// number of pairs (the median of an even count is the mean of the two middle values).
#[test]
fn median_heuristic_matches_definition() {
    // 1-D points 0, 1, 3: squared distances 1, 9, 4 -> median 4 -> h = sqrt(2).
    let h = median_heuristic(&[0.0, 1.0, 3.0], 1).unwrap();
    close(h, 2f64.sqrt(), 1.0, 1e-15, "median of 3 pairs");
    // 1-D points 0, 1, 3, 7: r2 = 1, 9, 49, 4, 36, 16 -> sorted 1 4 9 16 36 49 -> median 12.5.
    let h = median_heuristic(&[0.0, 1.0, 3.0, 7.0], 1).unwrap();
    close(h, (12.5f64 / 2.0).sqrt(), 1.0, 1e-15, "median of 6 pairs");
    // Random 2-D sets against a sort-based reference.
    let mut rng = StdRng::seed_from_u64(9);
    for n in [2, 5, 6, 11] {
        let d = 2;
        let x = rand_points(&mut rng, n, d, 3.0, 0.0);
        let mut r2 = Vec::new();
        for i in 0..n {
            for j in (i + 1)..n {
                r2.push(
                    (0..d)
                        .map(|a| (x[i * d + a] - x[j * d + a]).powi(2))
                        .sum::<f64>(),
                );
            }
        }
        r2.sort_by(|a, b| a.total_cmp(b));
        let p = r2.len();
        let med = if p % 2 == 1 {
            r2[p / 2]
        } else {
            0.5 * (r2[p / 2 - 1] + r2[p / 2])
        };
        let h = median_heuristic(&x, d).unwrap();
        close(
            h,
            (med / 2.0).sqrt(),
            1.0,
            1e-14,
            &format!("median heuristic n={n}"),
        );
        // Through the bandwidth rule, the Gaussian kernel becomes exp(-r2 / median r2).
        let k = Kernel::with_bandwidth(KernelKind::Gaussian, Bandwidth::Median, &x, d).unwrap();
        close(
            k.phi(med),
            (-1.0f64).exp(),
            1.0,
            1e-14,
            "Gaussian at the median distance",
        );
    }
    // Fewer than two points, or coincident points: errors naming the bandwidth.
    for bad in [vec![1.0, 2.0], vec![1.0, 1.0, 1.0, 1.0]] {
        match median_heuristic(&bad, 2) {
            Err(Error::InvalidParameter { name, .. }) => assert_eq!(name, "bandwidth"),
            other => panic!("expected InvalidParameter, got {other:?}"),
        }
    }
}

#[test]
fn bad_bandwidths_are_rejected() {
    for kind in KINDS {
        for h in [0.0, -1.0, f64::NAN, f64::INFINITY, -0.0] {
            match Kernel::new(kind, h) {
                Err(Error::InvalidParameter { name, .. }) => assert_eq!(name, "bandwidth"),
                other => panic!("h = {h}: expected InvalidParameter, got {other:?}"),
            }
        }
    }
    for s in ["0", "-2", "nan", "inf", "abc", ""] {
        match s.parse::<Bandwidth>() {
            Err(Error::InvalidParameter { name, .. }) => assert_eq!(name, "bandwidth"),
            other => panic!("{s:?}: expected InvalidParameter, got {other:?}"),
        }
    }
    assert_eq!("median".parse::<Bandwidth>().unwrap(), Bandwidth::Median);
    assert_eq!("0.5".parse::<Bandwidth>().unwrap(), Bandwidth::Fixed(0.5));
    assert!(
        Kernel::with_bandwidth(KernelKind::Gaussian, Bandwidth::Fixed(0.0), &[0.0, 1.0], 1)
            .is_err()
    );
}

#[test]
fn shape_errors_not_panics() {
    let k = Kernel::gaussian(1.0).unwrap();
    assert!(matches!(
        kernel_sums(&k, &[0.0; 3], &[0.0; 4], &[1.0; 2], 2),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        kernel_sums(&k, &[0.0; 4], &[0.0; 4], &[1.0; 3], 2),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        kernel_sums(&k, &[0.0; 4], &[0.0; 4], &[1.0; 2], 0),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        kernel_sums_with_grad(&k, &[0.0; 4], &[0.0; 4], &[1.0; 3], 2),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        kernel_sums_multi(&k, &[0.0; 4], &[0.0; 4], &[1.0; 3], 2, 2),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        gram(&k, &[0.0; 3], &[0.0; 4], 2),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        mmd2(&k, &[0.0; 4], &[1.0], &[0.0; 4], &[0.5, 0.5], 2),
        Err(Error::Shape(_))
    ));
    // Empty inputs are fine: no rows, nothing to sum.
    assert!(kernel_sums(&k, &[], &[0.0; 2], &[1.0], 2)
        .unwrap()
        .is_empty());
    assert_eq!(kernel_sums(&k, &[0.0; 2], &[], &[], 2).unwrap(), vec![0.0]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Randomised: the witness-style signed sum `K_x[x;y] [w; -v]` equals the naive loop,
    /// its gradient equals the central finite difference, for any kernel.
    #[test]
    fn prop_signed_sums_and_gradients(seed in 0u64..1_000_000, n in 1usize..20, m in 1usize..20, d in 1usize..5, kind in 0usize..3) {
        let kind = KINDS[kind];
        let mut rng = StdRng::seed_from_u64(seed);
        let h = 0.3 + 2.0 * rng.random::<f64>();
        let k = Kernel::new(kind, h).unwrap();
        let x = rand_points(&mut rng, n, d, 2.0, 0.0);
        let y = rand_points(&mut rng, m, d, 2.0, 1.0);
        let w = rand_simplex(&mut rng, n);
        let v = rand_simplex(&mut rng, m);
        let mut src = x.clone();
        src.extend_from_slice(&y);
        let mut sw = w.clone();
        sw.extend(v.iter().map(|a| -a));
        let at = rand_points(&mut rng, 3, d, 2.5, 0.5);
        let (s, g) = kernel_sums_with_grad(&k, &at, &src, &sw, d).unwrap();
        for i in 0..3 {
            let p = &at[i * d..(i + 1) * d];
            let naive: f64 = (0..n + m).map(|j| sw[j] * naive_k(kind, h, p, &src[j * d..(j + 1) * d])).sum();
            prop_assert!((s[i] - naive).abs() <= 1e-10 * k.diag() * 2.0);
            for a in 0..d {
                let eps = 1e-6;
                let mut pp = p.to_vec();
                let mut pm = p.to_vec();
                pp[a] += eps;
                pm[a] -= eps;
                let fd = (kernel_sums(&k, &pp, &src, &sw, d).unwrap()[0] - kernel_sums(&k, &pm, &src, &sw, d).unwrap()[0]) / (2.0 * eps);
                prop_assert!((g[i * d + a] - fd).abs() <= 1e-6 * (1.0 + fd.abs()), "grad {} vs fd {}", g[i * d + a], fd);
            }
        }
    }
}
