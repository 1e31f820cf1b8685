//! The kernel-sum engine: fused, SIMD-dispatched, multi-threaded sums in `f64` and `f32`.
//!
//! For evaluation points `x_i` (`n x d`), sources `y_j` (`m x d`) and weights `v_j`, with a
//! radial kernel `k(x, y) = phi(||x - y||^2)`:
//!
//! - values `s_i = sum_j v_j phi(r2_ij)` (the product `K_xy v`),
//! - gradients `G_i = sum_j v_j 2 phi'(r2_ij) (x_i - y_j)`,
//! - vector-valued sums `S_i = sum_j phi(r2_ij) V_j` (`V` is `m x p`).
//!
//! Two paths, chosen automatically ([`PathChoice::Auto`]):
//!
//! - **streamed** (small `d`, every kernel): rows of `x` in register blocks of
//!   [`ROWS_PER_REG_BLOCK`], sources in structure-of-arrays chunks, the squared distance,
//!   a branch-free polynomial `exp` (Cody-Waite reduction, Taylor polynomial of degree 12 in
//!   `f64` and 7 in `f32`, relative error below `2e-16` / `1e-7`) and the accumulation
//!   fused in registers; dimensions 1 to 4 are compiled with a constant `d`.
//! - **tiled** (`d >= `[`TILED_MIN_D`], Gaussian and IMQ): the cross term `X Y'` of a
//!   `TILE_ROWS x TILE_COLS` tile by `gemm` (`Parallelism::None`, one tile per rayon task),
//!   `r2 = |x|^2 + |y|^2 - 2 x.y` clamped at 0, then the kernel, the weights and the row
//!   sums in a fused epilogue that overwrites the tile with `v_j phi'_ij` (or `phi_ij`), and
//!   a second `gemm` accumulates `C Y` (or `C V`), so that
//!   `G_i = 2 (x_i sum_j c_ij - sum_j c_ij y_j)`. The Laplace kernel stays on the streamed
//!   path: its `sqrt(r2)` is ill-conditioned near 0 under the expansion.
//!
//! The instruction set is chosen at run time ([`SimdLevel`]): AVX-512F, AVX2 + FMA, or
//! baseline x86-64 (SSE2), by `is_x86_feature_detected!` and `#[target_feature]` functions;
//! [`EngineOptions::simd`] forces a level (tests use it). The `gemm` crate dispatches its
//! own micro-kernels at run time. Memory is `O((n + m) d)` plus one tile per thread.
//!
//! **Determinism.** Every row `i` is computed by one task, in a fixed order over the
//! sources (fixed chunks, fixed lanes, lanes summed left to right at the end); row tiles
//! are fixed by `n`, never by the number of threads. So the result does not depend on the
//! thread count. (It does depend on the SIMD level: the lane count changes the summation
//! order, within round-off.)

use super::{Kernel, KernelKind};
use crate::error::{Error, Result};
pub use crate::simd::SimdLevel;
use rayon::prelude::*;
use std::fmt::Debug;
use std::ops::{Add, Mul, Neg, Sub};

/// Rows per register block in the streamed path.
pub const ROWS_PER_REG_BLOCK: usize = 4;
/// Rows per rayon task in the streamed path.
const STREAM_TASK_ROWS: usize = 64;
/// Sources per cache chunk in the streamed path.
const STREAM_CHUNK: usize = 2048;
/// Source padding (a multiple of every lane count).
const PAD: usize = 16;
/// Rows per tile (one rayon task) in the tiled path.
pub const TILE_ROWS: usize = 128;
/// Sources per tile in the tiled path.
pub const TILE_COLS: usize = 512;
/// Smallest dimension for which [`PathChoice::Auto`] takes the tiled path.
pub const TILED_MIN_D: usize = 8;

/// The floating-point types the engine runs in (`f64` and `f32`).
pub trait Real:
    Copy
    + Send
    + Sync
    + Debug
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Neg<Output = Self>
    + std::ops::Div<Output = Self>
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Conversion from `f64` (rounding for `f32`).
    fn from_f64(v: f64) -> Self;
    /// Conversion to `f64`.
    fn to_f64(self) -> f64;
    /// Square root.
    fn sqrt_(self) -> Self;
    /// `a * b + c`, fused when `F` (only use `F = true` inside FMA-enabled code).
    fn madd<const F: bool>(a: Self, b: Self, c: Self) -> Self;
    /// `exp(x)` by the branch-free vectorisable polynomial (NaN propagates; underflow is 0).
    fn exp_poly<const F: bool>(x: Self) -> Self;
    /// Run one streamed task at the given SIMD level (the lane count depends on the type
    /// and the level).
    #[doc(hidden)]
    fn streamed_task<P: Profile<Self>, const D: usize, const GRAD: bool>(
        level: SimdLevel,
        job: &StreamJob<'_, Self>,
        i0: usize,
        vals: &mut [Self],
        grads: &mut [Self],
    );
    /// The tiled epilogue over one tile row at the given SIMD level.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    fn epilogue<P: Profile<Self>, const MODE: u8>(
        level: SimdLevel,
        prm: &KParams<Self>,
        c: &mut [Self],
        yn: &[Self],
        v: &[Self],
        xn: Self,
        s_out: &mut Self,
        csum_out: &mut Self,
    );
}

/// Kernel constants in the working precision.
#[derive(Debug, Clone, Copy)]
#[doc(hidden)]
pub struct KParams<T> {
    /// `1 / (2 h^2)` (Gaussian).
    pub a: T,
    /// `h^2` (IMQ).
    pub h2: T,
    /// `1 / h` (Laplace).
    pub inv_h: T,
}

impl<T: Real> KParams<T> {
    fn of(k: &Kernel) -> Self {
        KParams {
            a: T::from_f64(1.0 / (2.0 * k.h * k.h)),
            h2: T::from_f64(k.h * k.h),
            inv_h: T::from_f64(1.0 / k.h),
        }
    }
}

/// A radial profile `phi` evaluated branch-free (so that lane loops vectorise).
#[doc(hidden)]
pub trait Profile<T: Real>: Send + Sync + 'static {
    /// `phi(r2)`.
    fn val<const F: bool>(r2: T, p: &KParams<T>) -> T;
    /// `(phi(r2), phi'(r2))`.
    fn val_der<const F: bool>(r2: T, p: &KParams<T>) -> (T, T);
}

/// Gaussian profile.
#[doc(hidden)]
pub struct Gauss;
/// IMQ profile.
#[doc(hidden)]
pub struct Imq;
/// Laplace profile.
#[doc(hidden)]
pub struct Lap;

impl<T: Real> Profile<T> for Gauss {
    #[inline(always)]
    fn val<const F: bool>(r2: T, p: &KParams<T>) -> T {
        T::exp_poly::<F>(-(r2 * p.a))
    }
    #[inline(always)]
    fn val_der<const F: bool>(r2: T, p: &KParams<T>) -> (T, T) {
        let e = T::exp_poly::<F>(-(r2 * p.a));
        (e, -(p.a * e))
    }
}

impl<T: Real> Profile<T> for Imq {
    #[inline(always)]
    fn val<const F: bool>(r2: T, p: &KParams<T>) -> T {
        T::ONE / (p.h2 + r2).sqrt_()
    }
    #[inline(always)]
    fn val_der<const F: bool>(r2: T, p: &KParams<T>) -> (T, T) {
        let s = p.h2 + r2;
        let v = T::ONE / s.sqrt_();
        let half = T::from_f64(0.5);
        (v, -(half * v / s))
    }
}

impl<T: Real> Profile<T> for Lap {
    #[inline(always)]
    fn val<const F: bool>(r2: T, p: &KParams<T>) -> T {
        T::exp_poly::<F>(-(r2.sqrt_() * p.inv_h))
    }
    #[inline(always)]
    fn val_der<const F: bool>(r2: T, p: &KParams<T>) -> (T, T) {
        let r = r2.sqrt_();
        let v = T::exp_poly::<F>(-(r * p.inv_h));
        let half = T::from_f64(0.5);
        let dv = -(half * p.inv_h * v / r);
        // phi'(0) = 0 (the subgradient convention of `Kernel::phi_dphi`); a NaN stays NaN.
        (v, if r == T::ZERO { T::ZERO } else { dv })
    }
}

#[inline(always)]
fn fma<T: Real, const F: bool>(a: T, b: T, c: T) -> T {
    T::madd::<F>(a, b, c)
}

/// Which path computes the sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathChoice {
    /// Tiled for `d >= TILED_MIN_D` and a smooth kernel (Gaussian, IMQ), streamed otherwise.
    #[default]
    Auto,
    /// Always the streamed fused loop.
    Streamed,
    /// The GEMM-tiled path (Gaussian and IMQ only; the Laplace kernel is an error).
    Tiled,
}

/// Engine overrides. The default (`Auto`, detected SIMD) is what every crate function uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineOptions {
    /// Path choice.
    pub path: PathChoice,
    /// SIMD level; `None` = the best this CPU supports. Forcing an unavailable level is an
    /// error.
    pub simd: Option<SimdLevel>,
}

impl EngineOptions {
    fn level(&self) -> Result<SimdLevel> {
        match self.simd {
            None => Ok(SimdLevel::detect()),
            Some(l) if l.available() => Ok(l),
            Some(l) => Err(Error::param(
                "simd",
                l,
                "this CPU does not support that instruction set",
            )),
        }
    }
    /// The path that will be used for kernel `k` in dimension `d`.
    pub fn resolve_path(&self, k: &Kernel, d: usize) -> Result<PathChoice> {
        let smooth = k.kind != KernelKind::Laplace;
        match self.path {
            PathChoice::Auto => Ok(if smooth && d >= TILED_MIN_D {
                PathChoice::Tiled
            } else {
                PathChoice::Streamed
            }),
            PathChoice::Tiled if !smooth => Err(Error::param(
                "path",
                "tiled",
                "the tiled path supports the Gaussian and IMQ kernels only",
            )),
            p => Ok(p),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Scalar building blocks for f64 / f32.

macro_rules! exp_impl {
    (f64, $x:ident, $F:ident) => {{
        const LOG2E: f64 = std::f64::consts::LOG2_E;
        const MAGIC: f64 = 6755399441055744.0; // 1.5 * 2^52
        const LN2_HI: f64 = 6.931_471_803_691_238e-1;
        const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
        const LO: f64 = -708.0;
        const HI: f64 = 709.0;
        // NaN-preserving clamps (comparisons with NaN are false).
        let xc = if $x < LO { LO } else { $x };
        let xc = if xc > HI { HI } else { xc };
        let t = f64::madd::<$F>(xc, LOG2E, MAGIC);
        let nf = t - MAGIC;
        let r = f64::madd::<$F>(nf, -LN2_HI, xc);
        let r = f64::madd::<$F>(nf, -LN2_LO, r);
        let mut p = 1.0 / 479001600.0;
        p = f64::madd::<$F>(p, r, 1.0 / 39916800.0);
        p = f64::madd::<$F>(p, r, 1.0 / 3628800.0);
        p = f64::madd::<$F>(p, r, 1.0 / 362880.0);
        p = f64::madd::<$F>(p, r, 1.0 / 40320.0);
        p = f64::madd::<$F>(p, r, 1.0 / 5040.0);
        p = f64::madd::<$F>(p, r, 1.0 / 720.0);
        p = f64::madd::<$F>(p, r, 1.0 / 120.0);
        p = f64::madd::<$F>(p, r, 1.0 / 24.0);
        p = f64::madd::<$F>(p, r, 1.0 / 6.0);
        p = f64::madd::<$F>(p, r, 0.5);
        p = f64::madd::<$F>(p, r, 1.0);
        p = f64::madd::<$F>(p, r, 1.0);
        let ni = (t.to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64);
        let scale = f64::from_bits((ni.wrapping_add(1023) << 52) as u64);
        let res = p * scale;
        if $x < LO {
            0.0
        } else {
            res
        }
    }};
    (f32, $x:ident, $F:ident) => {{
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        const MAGIC: f32 = 12582912.0; // 1.5 * 2^23
        const LN2_HI: f32 = 0.693_145_75;
        const LN2_LO: f32 = 1.428_606_8e-6;
        const LO: f32 = -87.0;
        const HI: f32 = 88.0;
        let xc = if $x < LO { LO } else { $x };
        let xc = if xc > HI { HI } else { xc };
        let t = f32::madd::<$F>(xc, LOG2E, MAGIC);
        let nf = t - MAGIC;
        let r = f32::madd::<$F>(nf, -LN2_HI, xc);
        let r = f32::madd::<$F>(nf, -LN2_LO, r);
        let mut p: f32 = 1.0 / 5040.0;
        p = f32::madd::<$F>(p, r, 1.0 / 720.0);
        p = f32::madd::<$F>(p, r, 1.0 / 120.0);
        p = f32::madd::<$F>(p, r, 1.0 / 24.0);
        p = f32::madd::<$F>(p, r, 1.0 / 6.0);
        p = f32::madd::<$F>(p, r, 0.5);
        p = f32::madd::<$F>(p, r, 1.0);
        p = f32::madd::<$F>(p, r, 1.0);
        let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
        let scale = f32::from_bits((ni.wrapping_add(127) << 23) as u32);
        let res = p * scale;
        if $x < LO {
            0.0
        } else {
            res
        }
    }};
}

macro_rules! isa_entries {
    ($t:ident, $w512:literal, $w256:literal, $w128:literal) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn sqrt_(self) -> Self {
                self.sqrt()
            }
            #[inline(always)]
            fn madd<const F: bool>(a: Self, b: Self, c: Self) -> Self {
                if F {
                    a.mul_add(b, c)
                } else {
                    a * b + c
                }
            }
            #[inline(always)]
            fn exp_poly<const F: bool>(x: Self) -> Self {
                exp_impl!($t, x, F)
            }
            fn streamed_task<P: Profile<Self>, const D: usize, const GRAD: bool>(
                level: SimdLevel,
                job: &StreamJob<'_, Self>,
                i0: usize,
                vals: &mut [Self],
                grads: &mut [Self],
            ) {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    unsafe fn t512<P: Profile<$t>, const D: usize, const GRAD: bool>(
                        job: &StreamJob<'_, $t>,
                        i0: usize,
                        vals: &mut [$t],
                        grads: &mut [$t],
                    ) {
                        stream_task::<$t, P, D, $w512, GRAD, true>(job, i0, vals, grads)
                    }
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn t256<P: Profile<$t>, const D: usize, const GRAD: bool>(
                        job: &StreamJob<'_, $t>,
                        i0: usize,
                        vals: &mut [$t],
                        grads: &mut [$t],
                    ) {
                        stream_task::<$t, P, D, $w256, GRAD, true>(job, i0, vals, grads)
                    }
                    match level {
                        // SAFETY: the level was checked available (`EngineOptions::level`).
                        SimdLevel::Avx512 => unsafe { t512::<P, D, GRAD>(job, i0, vals, grads) },
                        SimdLevel::Avx2Fma => unsafe { t256::<P, D, GRAD>(job, i0, vals, grads) },
                        SimdLevel::Baseline => {
                            stream_task::<$t, P, D, $w128, GRAD, false>(job, i0, vals, grads)
                        }
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    let _ = level;
                    stream_task::<$t, P, D, $w128, GRAD, false>(job, i0, vals, grads)
                }
            }
            fn epilogue<P: Profile<Self>, const MODE: u8>(
                level: SimdLevel,
                prm: &KParams<Self>,
                c: &mut [Self],
                yn: &[Self],
                v: &[Self],
                xn: Self,
                s_out: &mut Self,
                csum_out: &mut Self,
            ) {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    unsafe fn e512<P: Profile<$t>, const MODE: u8>(
                        prm: &KParams<$t>,
                        c: &mut [$t],
                        yn: &[$t],
                        v: &[$t],
                        xn: $t,
                        s_out: &mut $t,
                        csum_out: &mut $t,
                    ) {
                        epilogue_row::<$t, P, $w512, MODE, true>(prm, c, yn, v, xn, s_out, csum_out)
                    }
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn e256<P: Profile<$t>, const MODE: u8>(
                        prm: &KParams<$t>,
                        c: &mut [$t],
                        yn: &[$t],
                        v: &[$t],
                        xn: $t,
                        s_out: &mut $t,
                        csum_out: &mut $t,
                    ) {
                        epilogue_row::<$t, P, $w256, MODE, true>(prm, c, yn, v, xn, s_out, csum_out)
                    }
                    match level {
                        // SAFETY: the level was checked available.
                        SimdLevel::Avx512 => unsafe {
                            e512::<P, MODE>(prm, c, yn, v, xn, s_out, csum_out)
                        },
                        SimdLevel::Avx2Fma => unsafe {
                            e256::<P, MODE>(prm, c, yn, v, xn, s_out, csum_out)
                        },
                        SimdLevel::Baseline => epilogue_row::<$t, P, $w128, MODE, false>(
                            prm, c, yn, v, xn, s_out, csum_out,
                        ),
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    let _ = level;
                    epilogue_row::<$t, P, $w128, MODE, false>(prm, c, yn, v, xn, s_out, csum_out)
                }
            }
        }
    };
}

isa_entries!(f64, 8, 4, 2);
isa_entries!(f32, 16, 8, 4);

// ---------------------------------------------------------------------------------------
// Streamed path.

/// Inputs of the streamed path: evaluation points and sources in structure-of-arrays form.
#[doc(hidden)]
pub struct StreamJob<'a, T> {
    prm: KParams<T>,
    x: &'a [T],
    n: usize,
    d: usize,
    /// Sources transposed: `yt[k * mp + j]`, zero-padded to `mp` (a multiple of `PAD`).
    yt: Vec<T>,
    /// Weights zero-padded to `mp`.
    v: Vec<T>,
    mp: usize,
}

impl<'a, T: Real> StreamJob<'a, T> {
    fn new(k: &Kernel, x: &'a [T], y: &[T], v: &[T], d: usize) -> Self {
        let m = v.len();
        let mp = m.div_ceil(PAD) * PAD;
        let mut yt = vec![T::ZERO; d * mp];
        for j in 0..m {
            for kk in 0..d {
                yt[kk * mp + j] = y[j * d + kk];
            }
        }
        let mut vp = vec![T::ZERO; mp];
        vp[..m].copy_from_slice(v);
        StreamJob {
            prm: KParams::of(k),
            x,
            n: x.len() / d,
            d,
            yt,
            v: vp,
            mp,
        }
    }
}

/// One task: rows `i0 .. i0 + vals.len()`; `grads` is `vals.len() x d` (or empty).
#[inline(always)]
fn stream_task<
    T: Real,
    P: Profile<T>,
    const D: usize,
    const W: usize,
    const GRAD: bool,
    const F: bool,
>(
    job: &StreamJob<'_, T>,
    i0: usize,
    vals: &mut [T],
    grads: &mut [T],
) {
    const R: usize = ROWS_PER_REG_BLOCK;
    let d = job.d;
    let rows = vals.len();
    let nb = rows.div_ceil(R);
    // Per register block: the rows (padded by repeating the last row) and the lane
    // accumulators, kept across source chunks.
    let mut xb = vec![T::ZERO; nb * R * d];
    for b in 0..nb {
        for r in 0..R {
            let i = (i0 + (b * R + r).min(rows - 1)).min(job.n - 1);
            xb[(b * R + r) * d..(b * R + r + 1) * d].copy_from_slice(&job.x[i * d..(i + 1) * d]);
        }
    }
    let mut s_acc = vec![[T::ZERO; W]; nb * R];
    let mut g_acc = vec![[T::ZERO; W]; if GRAD { nb * R * d } else { 0 }];
    let mut j0 = 0;
    while j0 < job.mp {
        let j1 = (j0 + STREAM_CHUNK).min(job.mp);
        for b in 0..nb {
            let xs = &xb[b * R * d..(b + 1) * R * d];
            let sa = &mut s_acc[b * R..(b + 1) * R];
            let ga = if GRAD {
                &mut g_acc[b * R * d..(b + 1) * R * d]
            } else {
                &mut g_acc[..]
            };
            if D > 0 {
                block_const::<T, P, D, R, W, GRAD, F>(job, xs, j0, j1, sa, ga);
            } else {
                block_dyn::<T, P, R, W, GRAD, F>(job, xs, j0, j1, sa, ga);
            }
        }
        j0 = j1;
    }
    for (r, o) in vals.iter_mut().enumerate() {
        let mut s = T::ZERO;
        for l in 0..W {
            s = s + s_acc[r][l];
        }
        *o = s;
        if GRAD {
            let two = T::from_f64(2.0);
            for kk in 0..d {
                let mut g = T::ZERO;
                for l in 0..W {
                    g = g + g_acc[r * d + kk][l];
                }
                grads[r * d + kk] = two * g;
            }
        }
    }
}

/// `R` rows of constant dimension `D` against sources `j0 .. j1` (multiples of `W`).
#[inline(always)]
fn block_const<
    T: Real,
    P: Profile<T>,
    const D: usize,
    const R: usize,
    const W: usize,
    const GRAD: bool,
    const F: bool,
>(
    job: &StreamJob<'_, T>,
    xs: &[T],
    j0: usize,
    j1: usize,
    s_acc: &mut [[T; W]],
    g_acc: &mut [[T; W]],
) {
    let mut xr = [[T::ZERO; D]; R];
    for r in 0..R {
        xr[r].copy_from_slice(&xs[r * D..(r + 1) * D]);
    }
    let mut sa = [[T::ZERO; W]; R];
    sa.copy_from_slice(&s_acc[..R]);
    let mut ga = [[[T::ZERO; W]; D]; R];
    if GRAD {
        for r in 0..R {
            ga[r].copy_from_slice(&g_acc[r * D..(r + 1) * D]);
        }
    }
    let prm = &job.prm;
    let mp = job.mp;
    let mut j = j0;
    while j < j1 {
        let mut yv = [[T::ZERO; W]; D];
        for k in 0..D {
            yv[k].copy_from_slice(&job.yt[k * mp + j..k * mp + j + W]);
        }
        let mut vv = [T::ZERO; W];
        vv.copy_from_slice(&job.v[j..j + W]);
        for r in 0..R {
            let mut diff = [[T::ZERO; W]; D];
            let mut r2 = [T::ZERO; W];
            for k in 0..D {
                for l in 0..W {
                    let t = xr[r][k] - yv[k][l];
                    diff[k][l] = t;
                    r2[l] = fma::<T, F>(t, t, r2[l]);
                }
            }
            if GRAD {
                for l in 0..W {
                    let (e, de) = P::val_der::<F>(r2[l], prm);
                    sa[r][l] = fma::<T, F>(vv[l], e, sa[r][l]);
                    let c = vv[l] * de;
                    for k in 0..D {
                        ga[r][k][l] = fma::<T, F>(c, diff[k][l], ga[r][k][l]);
                    }
                }
            } else {
                for l in 0..W {
                    let e = P::val::<F>(r2[l], prm);
                    sa[r][l] = fma::<T, F>(vv[l], e, sa[r][l]);
                }
            }
        }
        j += W;
    }
    s_acc[..R].copy_from_slice(&sa);
    if GRAD {
        for r in 0..R {
            g_acc[r * D..(r + 1) * D].copy_from_slice(&ga[r]);
        }
    }
}

/// `R` rows of run-time dimension against sources `j0 .. j1`.
#[inline(always)]
fn block_dyn<
    T: Real,
    P: Profile<T>,
    const R: usize,
    const W: usize,
    const GRAD: bool,
    const F: bool,
>(
    job: &StreamJob<'_, T>,
    xs: &[T],
    j0: usize,
    j1: usize,
    s_acc: &mut [[T; W]],
    g_acc: &mut [[T; W]],
) {
    let d = job.d;
    let prm = &job.prm;
    let mp = job.mp;
    let mut sa = [[T::ZERO; W]; R];
    sa.copy_from_slice(&s_acc[..R]);
    let mut j = j0;
    while j < j1 {
        let mut vv = [T::ZERO; W];
        vv.copy_from_slice(&job.v[j..j + W]);
        let mut r2 = [[T::ZERO; W]; R];
        for k in 0..d {
            let yk = &job.yt[k * mp + j..k * mp + j + W];
            for r in 0..R {
                let xk = xs[r * d + k];
                for l in 0..W {
                    let t = xk - yk[l];
                    r2[r][l] = fma::<T, F>(t, t, r2[r][l]);
                }
            }
        }
        if GRAD {
            let mut c = [[T::ZERO; W]; R];
            for r in 0..R {
                for l in 0..W {
                    let (e, de) = P::val_der::<F>(r2[r][l], prm);
                    sa[r][l] = fma::<T, F>(vv[l], e, sa[r][l]);
                    c[r][l] = vv[l] * de;
                }
            }
            for k in 0..d {
                let yk = &job.yt[k * mp + j..k * mp + j + W];
                for r in 0..R {
                    let xk = xs[r * d + k];
                    let g = &mut g_acc[r * d + k];
                    for l in 0..W {
                        g[l] = fma::<T, F>(c[r][l], xk - yk[l], g[l]);
                    }
                }
            }
        } else {
            for r in 0..R {
                for l in 0..W {
                    let e = P::val::<F>(r2[r][l], prm);
                    sa[r][l] = fma::<T, F>(vv[l], e, sa[r][l]);
                }
            }
        }
        j += W;
    }
    s_acc[..R].copy_from_slice(&sa);
}

fn stream_run<T: Real, P: Profile<T>, const D: usize, const GRAD: bool>(
    level: SimdLevel,
    job: &StreamJob<'_, T>,
    vals: &mut [T],
    grads: &mut [T],
) {
    let d = job.d;
    if GRAD {
        vals.par_chunks_mut(STREAM_TASK_ROWS)
            .zip(grads.par_chunks_mut(STREAM_TASK_ROWS * d))
            .enumerate()
            .for_each(|(b, (vc, gc))| {
                T::streamed_task::<P, D, GRAD>(level, job, b * STREAM_TASK_ROWS, vc, gc)
            });
    } else {
        vals.par_chunks_mut(STREAM_TASK_ROWS)
            .enumerate()
            .for_each(|(b, vc)| {
                T::streamed_task::<P, D, GRAD>(level, job, b * STREAM_TASK_ROWS, vc, &mut [])
            });
    }
}

fn stream_by_d<T: Real, P: Profile<T>, const GRAD: bool>(
    level: SimdLevel,
    job: &StreamJob<'_, T>,
    vals: &mut [T],
    grads: &mut [T],
) {
    match job.d {
        1 => stream_run::<T, P, 1, GRAD>(level, job, vals, grads),
        2 => stream_run::<T, P, 2, GRAD>(level, job, vals, grads),
        3 => stream_run::<T, P, 3, GRAD>(level, job, vals, grads),
        4 => stream_run::<T, P, 4, GRAD>(level, job, vals, grads),
        _ => stream_run::<T, P, 0, GRAD>(level, job, vals, grads),
    }
}

fn streamed<T: Real>(
    k: &Kernel,
    level: SimdLevel,
    x: &[T],
    y: &[T],
    v: &[T],
    d: usize,
    grad: bool,
) -> (Vec<T>, Vec<T>) {
    let job = StreamJob::new(k, x, y, v, d);
    let n = job.n;
    // In f64 LLVM vectorises some value-only loops poorly: the Gaussian with a constant-`d`
    // kernel (d <= 4) and the Laplace kernel were measured 1.4-3.6x slower than the loop
    // that also accumulates gradients (n = 6000, AVX-512; the Gaussian run-time-`d` loop and
    // the IMQ kernel are not affected). The value accumulation of both loops is the same
    // (same operations, same order), so there run the gradient loop and drop the gradients.
    let grad_loop = grad
        || (std::mem::size_of::<T>() == 8
            && match k.kind {
                KernelKind::Gaussian => d <= 4,
                KernelKind::Laplace => true,
                KernelKind::Imq => false,
            });
    let mut vals = vec![T::ZERO; n];
    let mut grads = vec![T::ZERO; if grad_loop { n * d } else { 0 }];
    if n == 0 {
        grads.truncate(if grad { n * d } else { 0 });
        return (vals, grads);
    }
    macro_rules! go {
        ($p:ty) => {
            if grad_loop {
                stream_by_d::<T, $p, true>(level, &job, &mut vals, &mut grads)
            } else {
                stream_by_d::<T, $p, false>(level, &job, &mut vals, &mut grads)
            }
        };
    }
    match k.kind {
        KernelKind::Gaussian => go!(Gauss),
        KernelKind::Imq => go!(Imq),
        KernelKind::Laplace => go!(Lap),
    }
    if !grad {
        grads = Vec::new();
    }
    (vals, grads)
}

// ---------------------------------------------------------------------------------------
// Tiled path.

/// Epilogue modes.
const MODE_VALUES: u8 = 0;
const MODE_GRAD: u8 = 1;
const MODE_PHI: u8 = 2;

/// One tile row: `c[j]` holds `x_i . y_j` on entry; on exit `v_j phi'_ij` (MODE_GRAD) or
/// `phi_ij` (MODE_PHI); `s_out += sum_j v_j phi_ij`, `csum_out += sum_j v_j phi'_ij`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn epilogue_row<T: Real, P: Profile<T>, const W: usize, const MODE: u8, const F: bool>(
    prm: &KParams<T>,
    c: &mut [T],
    yn: &[T],
    v: &[T],
    xn: T,
    s_out: &mut T,
    csum_out: &mut T,
) {
    let two = T::from_f64(2.0);
    let mut sa = [T::ZERO; W];
    let mut ca = [T::ZERO; W];
    let len = c.len();
    debug_assert!(len.is_multiple_of(W));
    let mut j = 0;
    while j < len {
        let cj: &mut [T] = &mut c[j..j + W];
        let ynj = &yn[j..j + W];
        let vj = if MODE == MODE_PHI {
            &v[..0]
        } else {
            &v[j..j + W]
        };
        for l in 0..W {
            let r2 = xn + ynj[l] - two * cj[l];
            let r2 = if r2 > T::ZERO { r2 } else { T::ZERO };
            match MODE {
                MODE_GRAD => {
                    let (e, de) = P::val_der::<F>(r2, prm);
                    sa[l] = fma::<T, F>(vj[l], e, sa[l]);
                    let cc = vj[l] * de;
                    ca[l] = ca[l] + cc;
                    cj[l] = cc;
                }
                MODE_PHI => {
                    cj[l] = P::val::<F>(r2, prm);
                }
                _ => {
                    let e = P::val::<F>(r2, prm);
                    sa[l] = fma::<T, F>(vj[l], e, sa[l]);
                }
            }
        }
        j += W;
    }
    let mut s = T::ZERO;
    let mut cs = T::ZERO;
    for l in 0..W {
        s = s + sa[l];
        cs = cs + ca[l];
    }
    *s_out = *s_out + s;
    *csum_out = *csum_out + cs;
}

/// `dst (rows x cols, row stride ld) [+]= A (rows x k, row stride lda) B`, where `B`'s
/// element `(kk, j)` is at `b[kk * b_rs + j * b_cs]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_into<T: Real>(
    rows: usize,
    cols: usize,
    kdim: usize,
    dst: &mut [T],
    ld: usize,
    accumulate: bool,
    a: &[T],
    lda: usize,
    b: &[T],
    b_rs: usize,
    b_cs: usize,
) {
    if rows == 0 || cols == 0 || kdim == 0 {
        return;
    }
    debug_assert!(dst.len() >= (rows - 1) * ld + cols);
    debug_assert!(a.len() >= (rows - 1) * lda + kdim);
    debug_assert!(b.len() > (kdim - 1) * b_rs + (cols - 1) * b_cs);
    // SAFETY: the slices cover every index gemm touches (checked above in debug builds
    // and by construction of the callers); T is f32 or f64, both supported by gemm.
    unsafe {
        gemm::gemm::<T>(
            rows,
            cols,
            kdim,
            dst.as_mut_ptr(),
            1,
            ld as isize,
            accumulate,
            a.as_ptr(),
            1,
            lda as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[allow(clippy::too_many_arguments)] // the tile loop's operands, passed down unchanged
fn tiled<T: Real>(
    k: &Kernel,
    level: SimdLevel,
    x: &[T],
    y: &[T],
    v: &[T],
    d: usize,
    p: usize,
    mode: u8,
) -> (Vec<T>, Vec<T>) {
    match k.kind {
        KernelKind::Gaussian => tiled_p::<T, Gauss>(k, level, x, y, v, d, p, mode),
        KernelKind::Imq => tiled_p::<T, Imq>(k, level, x, y, v, d, p, mode),
        KernelKind::Laplace => unreachable!("the tiled path rejects the Laplace kernel"),
    }
}

/// Tiled sums. `mode`: values (`v` has `m` entries, returns `(s, [])`), gradient (returns
/// `(s, G)`), or multi (`v` is `m x p`, returns `(S, [])` with `S` of `n x p`).
#[allow(clippy::too_many_arguments)]
fn tiled_p<T: Real, P: Profile<T>>(
    k: &Kernel,
    level: SimdLevel,
    x: &[T],
    y: &[T],
    v: &[T],
    d: usize,
    p: usize,
    mode: u8,
) -> (Vec<T>, Vec<T>) {
    let prm = KParams::<T>::of(k);
    let n = x.len() / d;
    let m = y.len() / d;
    let mp = m.div_ceil(PAD) * PAD;
    // Padded sources (zero rows, zero weights), their squared norms.
    let mut yp = vec![T::ZERO; mp * d];
    yp[..m * d].copy_from_slice(y);
    let sq = |r: &[T]| r.iter().fold(T::ZERO, |a, &b| fma::<T, false>(b, b, a));
    let yn: Vec<T> = yp.chunks_exact(d).map(sq).collect();
    let (vp, pp) = if mode == MODE_PHI {
        let mut vp = vec![T::ZERO; mp * p];
        vp[..m * p].copy_from_slice(v);
        (vp, p)
    } else {
        let mut vp = vec![T::ZERO; mp];
        vp[..m].copy_from_slice(v);
        (vp, 1)
    };
    let out_w = match mode {
        MODE_PHI => p,
        MODE_GRAD => d,
        _ => 0,
    };
    let mut vals = vec![T::ZERO; if mode == MODE_PHI { 0 } else { n }];
    let mut outs = vec![T::ZERO; n * out_w];
    let task = |t: usize, vc: &mut [T], oc: &mut [T]| {
        let i0 = t * TILE_ROWS;
        let rows = if mode == MODE_PHI {
            oc.len() / p
        } else {
            vc.len()
        };
        let xt = &x[i0 * d..(i0 + rows) * d];
        let xn: Vec<T> = xt.chunks_exact(d).map(sq).collect();
        // The tile is as wide as the sources need (at most TILE_COLS): a minibatch-sized
        // problem (m = 128) zeroes 128 KB per call instead of 512 KB.
        let tw = TILE_COLS.min(mp);
        let mut ctile = vec![T::ZERO; rows * tw];
        let mut csum = vec![T::ZERO; rows];
        let mut s = vec![T::ZERO; rows];
        let mut j0 = 0;
        while j0 < mp {
            let cols = (mp - j0).min(tw);
            // C = X_t Y_c'
            gemm_into(
                rows,
                cols,
                d,
                &mut ctile,
                tw,
                false,
                xt,
                d,
                &yp[j0 * d..],
                1,
                d,
            );
            let vj = if mode == MODE_PHI {
                &vp[..0]
            } else {
                &vp[j0..j0 + cols]
            };
            for r in 0..rows {
                let crow = &mut ctile[r * tw..r * tw + cols];
                let ynj = &yn[j0..j0 + cols];
                match mode {
                    MODE_GRAD => T::epilogue::<P, MODE_GRAD>(
                        level,
                        &prm,
                        crow,
                        ynj,
                        vj,
                        xn[r],
                        &mut s[r],
                        &mut csum[r],
                    ),
                    MODE_PHI => T::epilogue::<P, MODE_PHI>(
                        level,
                        &prm,
                        crow,
                        ynj,
                        vj,
                        xn[r],
                        &mut s[r],
                        &mut csum[r],
                    ),
                    _ => T::epilogue::<P, MODE_VALUES>(
                        level,
                        &prm,
                        crow,
                        ynj,
                        vj,
                        xn[r],
                        &mut s[r],
                        &mut csum[r],
                    ),
                }
            }
            match mode {
                // G += C Y_c
                MODE_GRAD => gemm_into(rows, d, cols, oc, d, true, &ctile, tw, &yp[j0 * d..], d, 1),
                // S += Phi V_c
                MODE_PHI => gemm_into(
                    rows,
                    pp,
                    cols,
                    oc,
                    pp,
                    true,
                    &ctile,
                    tw,
                    &vp[j0 * pp..],
                    pp,
                    1,
                ),
                _ => {}
            }
            j0 += cols;
        }
        if mode != MODE_PHI {
            vc.copy_from_slice(&s);
        }
        if mode == MODE_GRAD {
            let two = T::from_f64(2.0);
            for r in 0..rows {
                for kk in 0..d {
                    let g = &mut oc[r * d + kk];
                    *g = two * (xt[r * d + kk] * csum[r] - *g);
                }
            }
        }
    };
    if n == 0 {
        return (vals, outs);
    }
    match mode {
        MODE_PHI => outs
            .par_chunks_mut(TILE_ROWS * p)
            .enumerate()
            .for_each(|(t, oc)| task(t, &mut [], oc)),
        MODE_GRAD => vals
            .par_chunks_mut(TILE_ROWS)
            .zip(outs.par_chunks_mut(TILE_ROWS * d))
            .enumerate()
            .for_each(|(t, (vc, oc))| task(t, vc, oc)),
        _ => vals
            .par_chunks_mut(TILE_ROWS)
            .enumerate()
            .for_each(|(t, vc)| task(t, vc, &mut [])),
    }
    (vals, outs)
}

// ---------------------------------------------------------------------------------------
// Public entry points.

/// Check that `x` (`n x d`) and `y` (`m x d`) are row-major point arrays and `v` holds `m x p`
/// source weights; returns `(n, m)`.
pub(crate) fn check_shapes<T>(
    x: &[T],
    y: &[T],
    v: &[T],
    d: usize,
    p: usize,
) -> Result<(usize, usize)> {
    if d == 0 {
        return Err(Error::Shape("dimension d = 0".into()));
    }
    if !x.len().is_multiple_of(d) || !y.len().is_multiple_of(d) {
        return Err(Error::Shape(format!(
            "point arrays of length {} and {} are not rows of d = {d}",
            x.len(),
            y.len()
        )));
    }
    let m = y.len() / d;
    if v.len() != m * p {
        return Err(Error::Shape(format!(
            "{} source weights for {m} sources (p = {p})",
            v.len()
        )));
    }
    Ok((x.len() / d, m))
}

/// Whether f64 value-only sums of kernel `k` in dimension `d` (default options) cost as
/// much as values and gradients together: the streamed path runs the gradient loop for
/// the Gaussian with `d <= 4` and for the Laplace kernel (see `streamed`), so there the
/// gradients come for free with the values and a caller that may need them later should
/// ask for them now.
pub fn gradients_come_free(k: &Kernel, d: usize) -> bool {
    let streamed = matches!(
        EngineOptions::default().resolve_path(k, d),
        Ok(PathChoice::Streamed)
    );
    streamed
        && match k.kind {
            KernelKind::Gaussian => d <= 4,
            KernelKind::Laplace => true,
            KernelKind::Imq => false,
        }
}

/// Values `s_i = sum_j v_j k(x_i, y_j)` and, when `grad`, gradients
/// `G_i = sum_j v_j grad_x k(x_i, y_j)` (`n x d` row-major; empty otherwise), in `f64` or
/// `f32`, with explicit engine options.
pub fn sums_with<T: Real>(
    k: &Kernel,
    x: &[T],
    y: &[T],
    v: &[T],
    d: usize,
    grad: bool,
    opts: &EngineOptions,
) -> Result<(Vec<T>, Vec<T>)> {
    check_shapes(x, y, v, d, 1)?;
    let level = opts.level()?;
    let n = x.len() / d;
    if v.is_empty() {
        return Ok((
            vec![T::ZERO; n],
            vec![T::ZERO; if grad { n * d } else { 0 }],
        ));
    }
    Ok(match opts.resolve_path(k, d)? {
        PathChoice::Tiled => tiled(
            k,
            level,
            x,
            y,
            v,
            d,
            1,
            if grad { MODE_GRAD } else { MODE_VALUES },
        ),
        _ => streamed(k, level, x, y, v, d, grad),
    })
}

/// Vector-valued sums `S_i = sum_j k(x_i, y_j) V_j` (`V` is `m x p` row-major; returns
/// `n x p`), in `f64` or `f32`, with explicit engine options. The streamed path runs one
/// pass per column of `V`.
pub fn sums_multi_with<T: Real>(
    k: &Kernel,
    x: &[T],
    y: &[T],
    vmat: &[T],
    d: usize,
    p: usize,
    opts: &EngineOptions,
) -> Result<Vec<T>> {
    let (n, m) = check_shapes(x, y, vmat, d, p)?;
    let level = opts.level()?;
    if m == 0 || p == 0 || n == 0 {
        return Ok(vec![T::ZERO; n * p]);
    }
    match opts.resolve_path(k, d)? {
        PathChoice::Tiled => Ok(tiled(k, level, x, y, vmat, d, p, MODE_PHI).1),
        _ => {
            let mut out = vec![T::ZERO; n * p];
            let mut col = vec![T::ZERO; m];
            for c in 0..p {
                for j in 0..m {
                    col[j] = vmat[j * p + c];
                }
                let (s, _) = streamed(k, level, x, y, &col, d, false);
                for i in 0..n {
                    out[i * p + c] = s[i];
                }
            }
            Ok(out)
        }
    }
}

// ------------------------------------------------------------------ single columns

/// `out_i = phi(r2_i)` in place over a buffer of squared distances, for one profile.
#[inline(always)]
fn profile_in_place<P: Profile<f64>, const F: bool>(prm: &KParams<f64>, buf: &mut [f64]) {
    for v in buf.iter_mut() {
        *v = P::val::<F>(*v, prm);
    }
}

/// Squared distances `out_i = ||x_i - y||^2` (row-major `x`, `d` columns).
#[inline(always)]
fn sq_dists_into(x: &[f64], y: &[f64], d: usize, out: &mut [f64]) {
    match d {
        1 => {
            for (o, xi) in out.iter_mut().zip(x) {
                let t = xi - y[0];
                *o = t * t;
            }
        }
        2 => {
            for (o, xi) in out.iter_mut().zip(x.chunks_exact(2)) {
                let (a, b) = (xi[0] - y[0], xi[1] - y[1]);
                *o = a * a + b * b;
            }
        }
        _ => {
            for (o, xi) in out.iter_mut().zip(x.chunks_exact(d)) {
                *o = xi.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum();
            }
        }
    }
}

fn column_level<P: Profile<f64>>(
    level: SimdLevel,
    prm: &KParams<f64>,
    x: &[f64],
    y: &[f64],
    d: usize,
    out: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn c512<P: Profile<f64>>(
            prm: &KParams<f64>,
            x: &[f64],
            y: &[f64],
            d: usize,
            out: &mut [f64],
        ) {
            sq_dists_into(x, y, d, out);
            profile_in_place::<P, true>(prm, out);
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn c256<P: Profile<f64>>(
            prm: &KParams<f64>,
            x: &[f64],
            y: &[f64],
            d: usize,
            out: &mut [f64],
        ) {
            sq_dists_into(x, y, d, out);
            profile_in_place::<P, true>(prm, out);
        }
        match level {
            // SAFETY: the level was checked with `SimdLevel::available` by the caller.
            SimdLevel::Avx512 => return unsafe { c512::<P>(prm, x, y, d, out) },
            // SAFETY: as above.
            SimdLevel::Avx2Fma => return unsafe { c256::<P>(prm, x, y, d, out) },
            SimdLevel::Baseline => {}
        }
    }
    let _ = level;
    sq_dists_into(x, y, d, out);
    profile_in_place::<P, false>(prm, out);
}

/// One column of the Gram matrix: `out_i = k(x_i, y)` for the rows `x_i` of `x`
/// (`n x d`, row-major) and one point `y` (length `d`). Vectorised with the best SIMD
/// level of this CPU (the engine's branch-free `exp`); `O(n d)` time, no allocation.
/// Used by the active-set MMD-prox solver, which needs single columns on demand, and by
/// [`super::gram`].
pub fn kernel_column(k: &Kernel, x: &[f64], y: &[f64], d: usize, out: &mut [f64]) -> Result<()> {
    if d == 0 || !x.len().is_multiple_of(d) || y.len() != d || out.len() != x.len() / d {
        return Err(Error::Shape(format!(
            "kernel_column: x has {} entries, y {}, out {}, d = {d}",
            x.len(),
            y.len(),
            out.len()
        )));
    }
    let level = SimdLevel::detect();
    let prm = KParams::<f64>::of(k);
    match k.kind {
        KernelKind::Gaussian => column_level::<Gauss>(level, &prm, x, y, d, out),
        KernelKind::Imq => column_level::<Imq>(level, &prm, x, y, d, out),
        KernelKind::Laplace => column_level::<Lap>(level, &prm, x, y, d, out),
    }
    Ok(())
}

fn phi_level<P: Profile<f64>>(level: SimdLevel, prm: &KParams<f64>, buf: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn p512<P: Profile<f64>>(prm: &KParams<f64>, buf: &mut [f64]) {
            profile_in_place::<P, true>(prm, buf);
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn p256<P: Profile<f64>>(prm: &KParams<f64>, buf: &mut [f64]) {
            profile_in_place::<P, true>(prm, buf);
        }
        match level {
            // SAFETY: the level comes from `SimdLevel::detect`.
            SimdLevel::Avx512 => return unsafe { p512::<P>(prm, buf) },
            // SAFETY: as above.
            SimdLevel::Avx2Fma => return unsafe { p256::<P>(prm, buf) },
            SimdLevel::Baseline => {}
        }
    }
    let _ = level;
    profile_in_place::<P, false>(prm, buf);
}

/// In place over a buffer of squared distances: `buf_i <- phi(buf_i)` (the engine's
/// vectorised branch-free profile, best SIMD level of this CPU). Used by the blocked
/// two-sample sums of [`super::two_sample`].
pub(crate) fn phi_in_place(k: &Kernel, buf: &mut [f64]) {
    let level = SimdLevel::detect();
    let prm = KParams::<f64>::of(k);
    match k.kind {
        KernelKind::Gaussian => phi_level::<Gauss>(level, &prm, buf),
        KernelKind::Imq => phi_level::<Imq>(level, &prm, buf),
        KernelKind::Laplace => phi_level::<Lap>(level, &prm, buf),
    }
}
