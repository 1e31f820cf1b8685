//! Random Fourier features (Gaussian kernel) and the Nystrom approximation (any kernel)
//! for the MMD energy and its witness gradient in `O((n + m) D)`.
//!
//! **Random Fourier features** (Rahimi, Recht 2007). By Bochner's theorem the Gaussian
//! kernel is `k(x, y) = E_omega cos(omega . (x - y))` with `omega ~ N(0, I / h^2)`. With
//! `D` seeded frequencies and the feature map
//! `phi(x) = D^{-1/2} [cos(omega_l . x)]_l ++ [sin(omega_l . x)]_l` (length `2 D`),
//! `phi(x) . phi(y) = 1/D sum_l cos(omega_l . (x - y))` is an unbiased estimate of
//! `k(x, y)` with standard deviation `O(1 / sqrt D)`. The mean embeddings
//! `z_mu = sum_i w_i phi(x_i)`, `z_pi = sum_j v_j phi(y_j)` give
//! `MMD^2 ~ |z_mu - z_pi|^2`, the witness `f(x) = phi(x) . delta` with `delta = z_mu - z_pi`
//! and its gradient
//! `grad f(x) = D^{-1/2} sum_l (b_l cos(omega_l . x) - a_l sin(omega_l . x)) omega_l`
//! (`delta = (a, b)`). The products `X Omega'` and `G Omega` run through `gemm` in row
//! tiles (one per rayon task) and `sin`/`cos` through a vectorised polynomial (reduction to
//! `[-pi/4, pi/4]`, Taylor polynomials of degree 15/14, two double-angle steps; absolute
//! error below `1e-13`), with the SIMD level chosen at run time.
//!
//! **Nystrom** (Williams, Seeger 2001). With `M` landmarks `z` and `K_zz = L L'`
//! (Cholesky, with a jitter of `1e-10 k(0,0)` on the diagonal),
//! `k(x, y) ~ k_z(x)' K_zz^{-1} k_z(y)`; features `L^{-1} k_z(x)`, embedding
//! `L^{-1} K_zx w` (one engine sum), witness `f(x) = sum_m alpha_m k(x, z_m)` with
//! `alpha = L^{-T} delta`, i.e. another engine sum with `M` sources, gradients included.
//!
//! Everything is seeded (`rand` 0.9 `StdRng`) and deterministic in the thread count
//! (tile partial sums are reduced in tile order).

use super::engine::{gemm_into, SimdLevel};
use super::{gram, kernel_sums, kernel_sums_with_grad, Kernel, KernelKind};
use crate::error::{Error, Result};
use crate::linalg::{cholesky, solve_lower, solve_upper_t};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rayon::prelude::*;

/// Rows per task in the feature computations.
const RFF_TILE: usize = 128;

#[inline(always)]
fn madd<const F: bool>(a: f64, b: f64, c: f64) -> f64 {
    if F {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `(sin u, cos u)` by range reduction to `[-pi, pi]`, a quarter angle and two
/// double-angle steps.
#[inline(always)]
fn sincos<const F: bool>(u: f64) -> (f64, f64) {
    const INV_2PI: f64 = 1.0 / std::f64::consts::TAU;
    const MAGIC: f64 = 6755399441055744.0;
    // Cody-Waite split: TAU = HI + LO with HI the nearest double to 2 pi.
    const TWO_PI_HI: f64 = std::f64::consts::TAU;
    const TWO_PI_LO: f64 = 2.449_293_598_294_706_4e-16;
    let t = madd::<F>(u, INV_2PI, MAGIC);
    let kf = t - MAGIC;
    let r = madd::<F>(kf, -TWO_PI_HI, u);
    let r = madd::<F>(kf, -TWO_PI_LO, r);
    let q = 0.25 * r;
    let q2 = q * q;
    let mut sp = -1.0 / 1_307_674_368_000.0;
    sp = madd::<F>(sp, q2, 1.0 / 6_227_020_800.0);
    sp = madd::<F>(sp, q2, -1.0 / 39_916_800.0);
    sp = madd::<F>(sp, q2, 1.0 / 362_880.0);
    sp = madd::<F>(sp, q2, -1.0 / 5040.0);
    sp = madd::<F>(sp, q2, 1.0 / 120.0);
    sp = madd::<F>(sp, q2, -1.0 / 6.0);
    sp = madd::<F>(sp, q2, 1.0);
    let s = sp * q;
    let mut cp = -1.0 / 87_178_291_200.0;
    cp = madd::<F>(cp, q2, 1.0 / 479_001_600.0);
    cp = madd::<F>(cp, q2, -1.0 / 3_628_800.0);
    cp = madd::<F>(cp, q2, 1.0 / 40320.0);
    cp = madd::<F>(cp, q2, -1.0 / 720.0);
    cp = madd::<F>(cp, q2, 1.0 / 24.0);
    cp = madd::<F>(cp, q2, -0.5);
    let c = madd::<F>(cp, q2, 1.0);
    // two double-angle steps: (s, c) of 2q, then of 4q = r
    let s1 = 2.0 * s * c;
    let c1 = madd::<F>(-2.0 * s, s, 1.0);
    let s2 = 2.0 * s1 * c1;
    let c2 = madd::<F>(-2.0 * s1, s1, 1.0);
    (s2, c2)
}

/// In place: `c[i] <- cos(c[i])`, `s[i] <- sin(c[i])`.
#[inline(always)]
fn sincos_slice_impl<const F: bool>(c: &mut [f64], s: &mut [f64]) {
    for (ci, si) in c.iter_mut().zip(s.iter_mut()) {
        let (sn, cs) = sincos::<F>(*ci);
        *ci = cs;
        *si = sn;
    }
}

fn sincos_slice(level: SimdLevel, c: &mut [f64], s: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn s512(c: &mut [f64], s: &mut [f64]) {
            sincos_slice_impl::<true>(c, s)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn s256(c: &mut [f64], s: &mut [f64]) {
            sincos_slice_impl::<true>(c, s)
        }
        match level {
            // SAFETY: levels are checked available before use.
            SimdLevel::Avx512 => unsafe { s512(c, s) },
            SimdLevel::Avx2Fma => unsafe { s256(c, s) },
            SimdLevel::Baseline => sincos_slice_impl::<false>(c, s),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = level;
        sincos_slice_impl::<false>(c, s)
    }
}

fn check_rows(name: &str, x: &[f64], d: usize, w: Option<&[f64]>) -> Result<usize> {
    if !x.len().is_multiple_of(d) {
        return Err(Error::Shape(format!(
            "{name}: {} values are not rows of d = {d}",
            x.len()
        )));
    }
    let n = x.len() / d;
    if let Some(w) = w {
        if w.len() != n {
            return Err(Error::Shape(format!(
                "{name}: {} weights for {n} points",
                w.len()
            )));
        }
    }
    Ok(n)
}

/// Random Fourier features of a Gaussian kernel.
#[derive(Debug, Clone)]
pub struct RandomFourierFeatures {
    /// Dimension of the points.
    pub d: usize,
    /// Number of random frequencies `D` (the feature vector has length `2 D`).
    pub n_freq: usize,
    /// Frequencies `omega_l ~ N(0, I / h^2)`, row-major `D x d`.
    pub omega: Vec<f64>,
    level: SimdLevel,
}

impl RandomFourierFeatures {
    /// `n_freq` seeded frequencies for the Gaussian `kernel` in dimension `d`. Errors for
    /// another kernel, `d = 0` or `n_freq = 0`.
    pub fn new(kernel: &Kernel, d: usize, n_freq: usize, seed: u64) -> Result<Self> {
        if kernel.kind != KernelKind::Gaussian {
            return Err(Error::param(
                "kernel",
                kernel.kind,
                "random Fourier features are implemented for the Gaussian kernel (use Nystrom)",
            ));
        }
        crate::error::check_count("features", n_freq)?;
        crate::error::check_count("dimension", d)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let omega = (0..n_freq * d)
            .map(|_| rng.sample::<f64, _>(StandardNormal) / kernel.h)
            .collect();
        Ok(RandomFourierFeatures {
            d,
            n_freq,
            omega,
            level: SimdLevel::detect(),
        })
    }

    /// Force a SIMD level for the `sin`/`cos` loop (errors if unavailable).
    pub fn with_simd(mut self, level: SimdLevel) -> Result<Self> {
        if !level.available() {
            return Err(Error::param("simd", level, "not supported by this CPU"));
        }
        self.level = level;
        Ok(self)
    }

    /// Length of the feature vector, `2 D`.
    pub fn dim_features(&self) -> usize {
        2 * self.n_freq
    }

    /// For the row tile `xt` (`rows x d`): `(cos U, sin U)` with `U = xt Omega'`.
    fn tile_features(&self, xt: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let rows = xt.len() / self.d;
        let nf = self.n_freq;
        let mut c = vec![0.0; rows * nf];
        let mut s = vec![0.0; rows * nf];
        gemm_into(
            rows,
            nf,
            self.d,
            &mut c,
            nf,
            false,
            xt,
            self.d,
            &self.omega,
            1,
            self.d,
        );
        sincos_slice(self.level, &mut c, &mut s);
        (c, s)
    }

    /// The weighted mean embedding `sum_i w_i phi(x_i)` (length `2 D`).
    pub fn embedding(&self, x: &[f64], w: &[f64]) -> Result<Vec<f64>> {
        check_rows("rff embedding", x, self.d, Some(w))?;
        let nf = self.n_freq;
        let d = self.d;
        let parts: Vec<Vec<f64>> = x
            .par_chunks(RFF_TILE * d)
            .zip(w.par_chunks(RFF_TILE))
            .map(|(xt, wt)| {
                let (c, s) = self.tile_features(xt);
                let mut z = vec![0.0; 2 * nf];
                let (zc, zs) = z.split_at_mut(nf);
                for (r, &wr) in wt.iter().enumerate() {
                    let cr = &c[r * nf..(r + 1) * nf];
                    let sr = &s[r * nf..(r + 1) * nf];
                    for l in 0..nf {
                        zc[l] += wr * cr[l];
                        zs[l] += wr * sr[l];
                    }
                }
                z
            })
            .collect();
        let scale = 1.0 / (nf as f64).sqrt();
        let mut z = vec![0.0; 2 * nf];
        for p in &parts {
            for (a, b) in z.iter_mut().zip(p) {
                *a += b;
            }
        }
        z.iter_mut().for_each(|a| *a *= scale);
        Ok(z)
    }

    /// Witness values `f(x_i) = phi(x_i) . delta` and, when `grad`, their gradients
    /// (`n x d`; empty otherwise).
    pub fn witness(&self, x: &[f64], delta: &[f64], grad: bool) -> Result<(Vec<f64>, Vec<f64>)> {
        let n = check_rows("rff witness", x, self.d, None)?;
        let nf = self.n_freq;
        let d = self.d;
        if delta.len() != 2 * nf {
            return Err(Error::Shape(format!(
                "rff witness: delta has {} entries, expected {}",
                delta.len(),
                2 * nf
            )));
        }
        let scale = 1.0 / (nf as f64).sqrt();
        let (a, b) = delta.split_at(nf);
        let mut vals = vec![0.0; n];
        let mut grads = vec![0.0; if grad { n * d } else { 0 }];
        let task = |xt: &[f64], vc: &mut [f64], gc: &mut [f64]| {
            let rows = vc.len();
            let (mut c, s) = self.tile_features(xt);
            for r in 0..rows {
                let cr = &mut c[r * nf..(r + 1) * nf];
                let sr = &s[r * nf..(r + 1) * nf];
                let mut f = 0.0;
                for l in 0..nf {
                    f += a[l] * cr[l] + b[l] * sr[l];
                }
                vc[r] = scale * f;
                if grad {
                    // overwrite the cosines with the gradient coefficients
                    for l in 0..nf {
                        cr[l] = scale * (b[l] * cr[l] - a[l] * sr[l]);
                    }
                }
            }
            if grad {
                gemm_into(rows, d, nf, gc, d, false, &c, nf, &self.omega, d, 1);
            }
        };
        if grad {
            x.par_chunks(RFF_TILE * d)
                .zip(vals.par_chunks_mut(RFF_TILE))
                .zip(grads.par_chunks_mut(RFF_TILE * d))
                .for_each(|((xt, vc), gc)| task(xt, vc, gc));
        } else {
            x.par_chunks(RFF_TILE * d)
                .zip(vals.par_chunks_mut(RFF_TILE))
                .for_each(|(xt, vc)| task(xt, vc, &mut []));
        }
        Ok((vals, grads))
    }

    /// The embeddings of several weight columns at once: for `V` (`n x p`, row-major),
    /// `E = Phi' V` returned as `p` rows of length `2 D` (row-major `p x 2D`). Rows are
    /// processed in tiles (features of one tile at a time, `gemm` for `V_t' [cos, sin]`),
    /// tiles grouped in fixed chunks whose partial sums are reduced in order; the
    /// `n x 2D` feature matrix is never held.
    pub fn embeddings_multi(&self, x: &[f64], v: &[f64], p: usize) -> Result<Vec<f64>> {
        let n = check_rows("rff embeddings", x, self.d, None)?;
        if v.len() != n * p {
            return Err(Error::Shape(format!(
                "rff embeddings: {} weights for {n} points and {p} columns",
                v.len()
            )));
        }
        let nf = self.n_freq;
        let d = self.d;
        const GROUP: usize = 32;
        let parts: Vec<Vec<f64>> = x
            .par_chunks(RFF_TILE * GROUP * d)
            .zip(v.par_chunks(RFF_TILE * GROUP * p.max(1)))
            .map(|(xg, vg)| {
                let mut e = vec![0.0; p * 2 * nf];
                let mut vt = vec![0.0; p * RFF_TILE];
                for (xt, vtile) in xg.chunks(RFF_TILE * d).zip(vg.chunks(RFF_TILE * p.max(1))) {
                    let rows = xt.len() / d;
                    let (c, s) = self.tile_features(xt);
                    // V_t' (p x rows)
                    for r in 0..rows {
                        for col in 0..p {
                            vt[col * rows + r] = vtile[r * p + col];
                        }
                    }
                    // E[:, :nf] += V_t' cos, E[:, nf:] += V_t' sin
                    gemm_into(p, nf, rows, &mut e, 2 * nf, true, &vt, rows, &c, nf, 1);
                    gemm_into(
                        p,
                        nf,
                        rows,
                        &mut e[nf..],
                        2 * nf,
                        true,
                        &vt,
                        rows,
                        &s,
                        nf,
                        1,
                    );
                }
                e
            })
            .collect();
        let scale = 1.0 / (nf as f64).sqrt();
        let mut e = vec![0.0; p * 2 * nf];
        for part in &parts {
            for (a, b) in e.iter_mut().zip(part) {
                *a += b;
            }
        }
        e.iter_mut().for_each(|a| *a *= scale);
        Ok(e)
    }

    /// The approximate `MMD^2 = |z_mu - z_pi|^2`.
    pub fn mmd2(&self, x: &[f64], w: &[f64], y: &[f64], v: &[f64]) -> Result<f64> {
        let zx = self.embedding(x, w)?;
        let zy = self.embedding(y, v)?;
        Ok(zx.iter().zip(&zy).map(|(a, b)| (a - b) * (a - b)).sum())
    }
}

/// The Nystrom approximation of a kernel on `M` landmarks.
#[derive(Debug, Clone)]
pub struct Nystrom {
    /// The kernel.
    pub kernel: Kernel,
    /// Dimension.
    pub d: usize,
    /// Landmarks, row-major `M x d`.
    pub landmarks: Vec<f64>,
    chol: Array2<f64>,
}

impl Nystrom {
    /// The approximation on the given landmarks (Cholesky of `K_zz + 1e-10 k(0,0) I`).
    pub fn new(kernel: &Kernel, landmarks: &[f64], d: usize) -> Result<Self> {
        let m = check_rows("nystrom landmarks", landmarks, d, None)?;
        crate::error::check_count("landmarks", m)?;
        let mut kzz = gram(kernel, landmarks, landmarks, d)?;
        let jitter = 1e-10 * kernel.diag();
        for i in 0..m {
            kzz[[i, i]] += jitter;
        }
        let chol = cholesky(&kzz)?;
        Ok(Nystrom {
            kernel: *kernel,
            d,
            landmarks: landmarks.to_vec(),
            chol,
        })
    }

    /// `n_landmarks` landmarks drawn without replacement (seeded) from the rows of `pts`.
    pub fn from_sample(
        kernel: &Kernel,
        pts: &[f64],
        d: usize,
        n_landmarks: usize,
        seed: u64,
    ) -> Result<Self> {
        let n = check_rows("nystrom sample", pts, d, None)?;
        crate::error::check_count("landmarks", n_landmarks)?;
        if n_landmarks > n {
            return Err(Error::param(
                "landmarks",
                n_landmarks,
                "more landmarks than points to draw them from",
            ));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut idx = sample(&mut rng, n, n_landmarks).into_vec();
        idx.sort_unstable();
        let z: Vec<f64> = idx
            .iter()
            .flat_map(|&i| pts[i * d..(i + 1) * d].iter().copied())
            .collect();
        Self::new(kernel, &z, d)
    }

    /// Number of landmarks `M` (the feature dimension).
    pub fn dim_features(&self) -> usize {
        self.landmarks.len() / self.d
    }

    /// The mean embedding `L^{-1} K_zx w` (length `M`).
    pub fn embedding(&self, x: &[f64], w: &[f64]) -> Result<Vec<f64>> {
        check_rows("nystrom embedding", x, self.d, Some(w))?;
        let kzx_w = kernel_sums(&self.kernel, &self.landmarks, x, w, self.d)?;
        Ok(solve_lower(&self.chol, &kzx_w))
    }

    /// Witness values `f(x_i) = k_z(x_i)' L^{-T} delta` and, when `grad`, their gradients.
    pub fn witness(&self, x: &[f64], delta: &[f64], grad: bool) -> Result<(Vec<f64>, Vec<f64>)> {
        if delta.len() != self.dim_features() {
            return Err(Error::Shape(format!(
                "nystrom witness: delta has {} entries, expected {}",
                delta.len(),
                self.dim_features()
            )));
        }
        let alpha = solve_upper_t(&self.chol, delta);
        if grad {
            kernel_sums_with_grad(&self.kernel, x, &self.landmarks, &alpha, self.d)
        } else {
            Ok((
                kernel_sums(&self.kernel, x, &self.landmarks, &alpha, self.d)?,
                Vec::new(),
            ))
        }
    }

    /// The embeddings of several weight columns at once: `E = L^{-1} K_zx V` for `V`
    /// (`n x p`, row-major), returned as `p` rows of length `M` (row-major `p x M`).
    pub fn embeddings_multi(&self, x: &[f64], v: &[f64], p: usize) -> Result<Vec<f64>> {
        let n = check_rows("nystrom embeddings", x, self.d, None)?;
        if v.len() != n * p {
            return Err(Error::Shape(format!(
                "nystrom embeddings: {} weights for {n} points and {p} columns",
                v.len()
            )));
        }
        let mm = self.dim_features();
        let kv = super::two_sample::kernel_matmul(&self.kernel, &self.landmarks, x, v, self.d, p)?;
        let mut e = vec![0.0; p * mm];
        let mut col = vec![0.0; mm];
        for c in 0..p {
            for (i, o) in col.iter_mut().enumerate() {
                *o = kv[i * p + c];
            }
            e[c * mm..(c + 1) * mm].copy_from_slice(&solve_lower(&self.chol, &col));
        }
        Ok(e)
    }

    /// The approximate `MMD^2 = |z_mu - z_pi|^2`.
    pub fn mmd2(&self, x: &[f64], w: &[f64], y: &[f64], v: &[f64]) -> Result<f64> {
        let zx = self.embedding(x, w)?;
        let zy = self.embedding(y, v)?;
        Ok(zx.iter().zip(&zy).map(|(a, b)| (a - b) * (a - b)).sum())
    }
}

/// A finite feature map `phi` with `k(x, y) ~ phi(x) . phi(y)` (random Fourier features,
/// Nystrom): what the feature-map MMD energies ([`crate::energy::MmdRffEnergy`],
/// [`crate::energy::MmdNystromEnergy`]) need of it.
pub trait FeatureMap {
    /// The input dimension `d`.
    fn input_dim(&self) -> usize;
    /// The weighted mean embedding `sum_i w_i phi(x_i)`.
    fn mean_embedding(&self, x: &[f64], w: &[f64]) -> Result<Vec<f64>>;
    /// The witness `f(x_i) = phi(x_i) . delta` at the rows of `x` and, when `grad`, its
    /// gradients (row-major `n x d`; empty otherwise).
    fn witness_of(&self, x: &[f64], delta: &[f64], grad: bool) -> Result<(Vec<f64>, Vec<f64>)>;
}

impl FeatureMap for RandomFourierFeatures {
    fn input_dim(&self) -> usize {
        self.d
    }
    fn mean_embedding(&self, x: &[f64], w: &[f64]) -> Result<Vec<f64>> {
        self.embedding(x, w)
    }
    fn witness_of(&self, x: &[f64], delta: &[f64], grad: bool) -> Result<(Vec<f64>, Vec<f64>)> {
        self.witness(x, delta, grad)
    }
}

impl FeatureMap for Nystrom {
    fn input_dim(&self) -> usize {
        self.d
    }
    fn mean_embedding(&self, x: &[f64], w: &[f64]) -> Result<Vec<f64>> {
        self.embedding(x, w)
    }
    fn witness_of(&self, x: &[f64], delta: &[f64], grad: bool) -> Result<(Vec<f64>, Vec<f64>)> {
        self.witness(x, delta, grad)
    }
}
