//! The two-sample MMD test in one set of kernel sums (Gretton et al. 2012, "A kernel
//! two-sample test", JMLR 13; eqs. 3 and 5, and section 5 for the permutation null).
//!
//! With `X` (`n` points), `Y` (`m` points), the pooled sample `Z = [X; Y]` (`N = n + m`)
//! and its Gram matrix `K`, every quantity of the test is a quadratic form `q(s) = s' K s`:
//!
//! - `S_xx = q(1_x)`, `S_yy = q(1_y)` (block sums with their diagonals), and with
//!   `s_obs = 1_x / n - 1_y / m` the biased statistic
//!   `MMD_b^2 = q(s_obs) = S_xx / n^2 + S_yy / m^2 - 2 S_xy / (n m)`,
//!   so `S_xy = (S_xx / n^2 + S_yy / m^2 - MMD_b^2) n m / 2`;
//! - the unbiased statistic drops the diagonals (`k(z, z) = k_0`):
//!   `MMD_u^2 = MMD_b^2 + (S_xx / n^2 - k_0) / (n - 1) + (S_yy / m^2 - k_0) / (m - 1)`;
//! - the permutation statistic of a relabelling `pi` is `q(s_pi)` with `s_pi` the signed
//!   labels (`+1/n` on the `n` points labelled `X`, `-1/m` on the others); the observed
//!   statistic is `q(s_obs)`, the same quantity.
//!
//! So the columns `V = [1_x, 1_y, s_obs, s_1, ..., s_B]` (`N x p`) are swept in **one pass**
//! over the pairs of `Z`: the pooled sample is cut into blocks of [`TILE`] points; for every
//! block pair `I <= J` (symmetry halves the kernel evaluations) the tile `K_IJ` is formed
//! (a `gemm` for the cross term `z_i . z_j` when `d >= 8`, the engine's vectorised profile),
//! `W = K_IJ V_J` by `gemm`, and `q_c += (2 - [I = J]) sum_r V_I[r, c] W[r, c]`. Per-block
//! partial sums are reduced in block order, so results do not depend on the thread count.
//!
//! **Permutation methods** ([`PermutationMethod`]): the columns come in batches of at most
//! `batch_columns`; with one batch the single streamed pass is the cheapest exact method.
//! With several batches the Gram matrix is *held* (its upper-triangular tiles, about
//! `4 N^2` bytes) when that fits `gram_budget_bytes` (default [`DEFAULT_GRAM_BUDGET`],
//! 2 GiB): the first pass stores the tiles and later batches are `gemm`s on them; otherwise
//! every batch streams the kernel sums again. Both give the same bits (same tiles, same
//! products, same order). The p-value is
//! `p = (1 + #{b : q(s_b) >= q(s_obs)}) / (1 + B)` (Phipson and Smyth 2010), in
//! `[1 / (B + 1), 1]`, with a relative tolerance of `1e-12` so that relabellings equal to
//! the observed one count.
//!
//! **Approximate test** ([`mmd_test_features`]): with a finite feature map `phi` of
//! dimension `F` (random Fourier features or Nystrom, see [`super::rff`]),
//! `q(s) ~ |Phi' s|^2`, so each permutation costs `O(N F)` after the features, never
//! `O(N^2)`; the embeddings `Phi' V` are accumulated tile by tile, the `N x F` feature matrix
//! is never held.

use super::engine::{gemm_into, kernel_column, phi_in_place};
use super::rff::{Nystrom, RandomFourierFeatures};
use super::{Kernel, KernelKind};
use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::Serialize;

/// Points per block of the pooled sample.
pub const TILE: usize = 256;
/// Default memory budget for holding the pooled Gram matrix: 2 GiB.
pub const DEFAULT_GRAM_BUDGET: u64 = 2 << 30;
/// Default upper bound on the bytes of one batch of label columns (`N x p` f64).
const BATCH_BYTES: usize = 64 << 20;

/// How the permutation test was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PermutationMethod {
    /// No permutation test (`--permutations 0`).
    None,
    /// Exact; the pooled Gram matrix held once (upper-triangular tiles).
    Gram,
    /// Exact; kernel sums streamed in one pass per batch of permutations.
    Streamed,
    /// Approximate; statistics of random Fourier features.
    RandomFeatures,
    /// Approximate; statistics of Nystrom features.
    Nystrom,
}

impl std::fmt::Display for PermutationMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PermutationMethod::None => "none",
            PermutationMethod::Gram => "gram",
            PermutationMethod::Streamed => "streamed",
            PermutationMethod::RandomFeatures => "random-features",
            PermutationMethod::Nystrom => "nystrom",
        })
    }
}

/// Settings of the test.
#[derive(Debug, Clone, Copy)]
pub struct TestOptions {
    /// Number of random relabellings `B` (0: statistics only).
    pub permutations: usize,
    /// Seed of the relabellings.
    pub seed: u64,
    /// Largest number of bytes the held Gram matrix may take.
    pub gram_budget_bytes: u64,
    /// Columns per batch (`None`: as many as fit 64 MB, between 8 and 256).
    pub batch_columns: Option<usize>,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            permutations: 0,
            seed: 0,
            gram_budget_bytes: DEFAULT_GRAM_BUDGET,
            batch_columns: None,
        }
    }
}

/// Statistics and p-value of the two-sample test.
#[derive(Debug, Clone, Serialize)]
pub struct TwoSampleResult {
    /// Biased (V-statistic) `MMD^2`, clamped at 0 against round-off.
    pub mmd2_biased: f64,
    /// Unbiased (U-statistic) `MMD^2` (may be negative).
    pub mmd2_unbiased: f64,
    /// `S_xx = sum_{i,j} k(x_i, x_j)` (diagonal included).
    pub s_xx: f64,
    /// `S_yy = sum_{i,j} k(y_i, y_j)`.
    pub s_yy: f64,
    /// `S_xy = sum_{i,j} k(x_i, y_j)`.
    pub s_xy: f64,
    /// Permutation p-value (`None` without permutations).
    pub p_value: Option<f64>,
    /// Number of relabellings `B`.
    pub permutations: usize,
    /// How the test was computed.
    pub method: PermutationMethod,
    /// Batches of columns (passes over the data or the held matrix).
    pub batches: usize,
    /// Bytes of the held Gram matrix (0 when not held).
    pub gram_bytes: u64,
}

/// The label columns in batches: first `[1_x, 1_y, s_obs]`, then one signed column per
/// relabelling, drawn in order from one seeded generator (each a uniform shuffle).
struct Columns {
    n: usize,
    m: usize,
    labels: Vec<bool>,
    rng: StdRng,
    left: usize,
    first: bool,
    per_batch: usize,
}

impl Columns {
    fn new(n: usize, m: usize, permutations: usize, seed: u64, per_batch: usize) -> Self {
        Columns {
            n,
            m,
            labels: (0..n + m).map(|i| i < n).collect(),
            rng: StdRng::seed_from_u64(seed),
            left: permutations,
            first: true,
            per_batch: per_batch.max(4),
        }
    }
    fn batches(n_perm: usize, per_batch: usize) -> usize {
        let per_batch = per_batch.max(4);
        if n_perm + 3 <= per_batch {
            1
        } else {
            1 + (n_perm + 3 - per_batch).div_ceil(per_batch)
        }
    }
    /// The next batch (row-major `N x p`) and its width, or `None` when done.
    fn next(&mut self) -> Option<(Vec<f64>, usize)> {
        if !self.first && self.left == 0 {
            return None;
        }
        let nt = self.n + self.m;
        let fixed = if self.first { 3 } else { 0 };
        let perms = self.left.min(self.per_batch - fixed);
        let p = fixed + perms;
        let (a, b) = (1.0 / self.n as f64, -1.0 / self.m as f64);
        let mut v = vec![0.0; nt * p];
        if self.first {
            for i in 0..nt {
                let is_x = i < self.n;
                v[i * p] = if is_x { 1.0 } else { 0.0 };
                v[i * p + 1] = if is_x { 0.0 } else { 1.0 };
                v[i * p + 2] = if is_x { a } else { b };
            }
        }
        for c in fixed..p {
            self.labels.shuffle(&mut self.rng);
            for (i, &is_x) in self.labels.iter().enumerate() {
                v[i * p + c] = if is_x { a } else { b };
            }
        }
        self.left -= perms;
        self.first = false;
        Some((v, p))
    }
}

fn check_samples(x: &[f64], y: &[f64], d: usize) -> Result<(usize, usize)> {
    if d == 0 || !x.len().is_multiple_of(d) || !y.len().is_multiple_of(d) {
        return Err(Error::Shape(format!(
            "two-sample test: {} and {} values are not rows of d = {d}",
            x.len(),
            y.len()
        )));
    }
    let (n, m) = (x.len() / d, y.len() / d);
    if n < 2 || m < 2 {
        return Err(Error::param(
            "samples",
            n.min(m),
            "the two-sample test needs at least 2 points per sample",
        ));
    }
    Ok((n, m))
}

fn per_batch(opts: &TestOptions, nt: usize) -> usize {
    opts.batch_columns
        .unwrap_or_else(|| (BATCH_BYTES / (8 * nt.max(1))).clamp(8, 256))
        .max(4)
}

/// Counts and statistics from the quadratic forms of the batches.
struct Tally {
    n: usize,
    m: usize,
    s_xx: f64,
    s_yy: f64,
    observed: f64,
    count: usize,
    seen: usize,
}

impl Tally {
    fn new(n: usize, m: usize) -> Self {
        Tally {
            n,
            m,
            s_xx: 0.0,
            s_yy: 0.0,
            observed: 0.0,
            count: 0,
            seen: 0,
        }
    }
    fn add(&mut self, q: &[f64], first: bool) {
        let perms = if first {
            self.s_xx = q[0];
            self.s_yy = q[1];
            self.observed = q[2];
            &q[3..]
        } else {
            q
        };
        let thr = self.observed - 1e-12 * self.observed.abs();
        self.count += perms.iter().filter(|&&s| s >= thr).count();
        self.seen += perms.len();
    }
    fn finish(
        &self,
        k0: f64,
        method: PermutationMethod,
        batches: usize,
        gram_bytes: u64,
    ) -> TwoSampleResult {
        let (n, m) = (self.n as f64, self.m as f64);
        let biased = self.observed;
        let unbiased = biased
            + (self.s_xx / (n * n) - k0) / (n - 1.0)
            + (self.s_yy / (m * m) - k0) / (m - 1.0);
        let s_xy = (self.s_xx / (n * n) + self.s_yy / (m * m) - biased) * n * m / 2.0;
        let b = self.seen;
        TwoSampleResult {
            mmd2_biased: if biased < 0.0 { 0.0 } else { biased },
            mmd2_unbiased: unbiased,
            s_xx: self.s_xx,
            s_yy: self.s_yy,
            s_xy,
            p_value: (b > 0).then(|| (1 + self.count) as f64 / (1 + b) as f64),
            permutations: b,
            method: if b == 0 {
                PermutationMethod::None
            } else {
                method
            },
            batches,
            gram_bytes,
        }
    }
}

// ------------------------------------------------------------------ exact, blocked

/// The held upper-triangular tiles: `tiles[I][J - I]` is `K_IJ` (row-major) for `J >= I`.
type HeldTiles = Vec<Vec<Vec<f64>>>;

/// The pooled sample cut into blocks, with what the tiles need.
struct Pooled<'a> {
    k: Kernel,
    z: &'a [f64],
    d: usize,
    nt: usize,
    nb: usize,
    norms: Vec<f64>,
    gemm: bool,
}

impl<'a> Pooled<'a> {
    fn new(k: &Kernel, z: &'a [f64], d: usize) -> Self {
        let nt = z.len() / d;
        let gemm = k.kind != KernelKind::Laplace && d >= super::engine::TILED_MIN_D;
        let norms = if gemm {
            z.chunks_exact(d)
                .map(|r| r.iter().map(|a| a * a).sum())
                .collect()
        } else {
            Vec::new()
        };
        Pooled {
            k: *k,
            z,
            d,
            nt,
            nb: nt.div_ceil(TILE),
            norms,
            gemm,
        }
    }
    fn range(&self, b: usize) -> (usize, usize) {
        (b * TILE, ((b + 1) * TILE).min(self.nt))
    }
    /// The tile `K_IJ` (row-major `rows(I) x rows(J)`) into `out`.
    fn tile(&self, bi: usize, bj: usize, out: &mut [f64]) {
        let (i0, i1) = self.range(bi);
        let (j0, j1) = self.range(bj);
        let (ri, cj) = (i1 - i0, j1 - j0);
        self.tile_rect(i0, i1, j0, j1, out);
        if bi == bj {
            // the diagonal is k(z, z) = k_0 exactly (the expansion leaves round-off there)
            let k0 = self.k.diag();
            for r in 0..ri {
                out[r * cj + r] = k0;
            }
        }
    }

    /// Quadratic forms `q_c = V[:, c]' K V[:, c]` of the `p` columns of `v` (`N x p`),
    /// from the held tiles when given, else computing them (and returning them when
    /// `keep`).
    fn quad_forms(
        &self,
        v: &[f64],
        p: usize,
        held: Option<&HeldTiles>,
        keep: bool,
    ) -> (Vec<f64>, Option<HeldTiles>) {
        let parts: Vec<(Vec<f64>, Vec<Vec<f64>>)> = (0..self.nb)
            .into_par_iter()
            .map(|bi| {
                let (i0, i1) = self.range(bi);
                let ri = i1 - i0;
                let mut acc = vec![0.0; p];
                let mut w = vec![0.0; ri * p];
                let mut buf = if held.is_some() {
                    Vec::new()
                } else {
                    vec![0.0; ri * TILE]
                };
                let mut kept = Vec::new();
                for bj in bi..self.nb {
                    let (j0, j1) = self.range(bj);
                    let cj = j1 - j0;
                    let t: &[f64] = match held {
                        Some(h) => &h[bi][bj - bi],
                        None => {
                            self.tile(bi, bj, &mut buf);
                            &buf[..ri * cj]
                        }
                    };
                    gemm_into(ri, p, cj, &mut w, p, false, t, cj, &v[j0 * p..], p, 1);
                    let f = if bi == bj { 1.0 } else { 2.0 };
                    let vi = &v[i0 * p..i1 * p];
                    let mut part = vec![0.0; p];
                    for (vr, wr) in vi.chunks_exact(p).zip(w.chunks_exact(p)) {
                        for c in 0..p {
                            part[c] += vr[c] * wr[c];
                        }
                    }
                    for c in 0..p {
                        acc[c] += f * part[c];
                    }
                    if keep {
                        kept.push(t.to_vec());
                    }
                }
                (acc, kept)
            })
            .collect();
        let mut q = vec![0.0; p];
        let mut tiles = Vec::with_capacity(if keep { self.nb } else { 0 });
        for (acc, kept) in parts {
            for c in 0..p {
                q[c] += acc[c];
            }
            if keep {
                tiles.push(kept);
            }
        }
        (q, keep.then_some(tiles))
    }

    /// Bytes of the upper-triangular tiles.
    fn gram_bytes(&self) -> u64 {
        let mut b = 0u64;
        for bi in 0..self.nb {
            let (i0, i1) = self.range(bi);
            let (j0, _) = self.range(bi);
            b += ((i1 - i0) * (self.nt - j0)) as u64 * 8;
        }
        b
    }
}

/// The exact test: statistics and (when `opts.permutations > 0`) the permutation p-value,
/// from one pass over the pooled pairs per batch of columns (see the module doc).
pub fn mmd_test_exact(
    k: &Kernel,
    x: &[f64],
    y: &[f64],
    d: usize,
    opts: &TestOptions,
) -> Result<TwoSampleResult> {
    let (n, m) = check_samples(x, y, d)?;
    let mut z = Vec::with_capacity(x.len() + y.len());
    z.extend_from_slice(x);
    z.extend_from_slice(y);
    let pooled = Pooled::new(k, &z, d);
    let per = per_batch(opts, n + m);
    let batches = Columns::batches(opts.permutations, per);
    let gram_bytes = pooled.gram_bytes();
    let hold = batches > 1 && gram_bytes <= opts.gram_budget_bytes;
    let mut cols = Columns::new(n, m, opts.permutations, opts.seed, per);
    let mut tally = Tally::new(n, m);
    let mut held: Option<HeldTiles> = None;
    let mut first = true;
    while let Some((v, p)) = cols.next() {
        let (q, kept) = pooled.quad_forms(&v, p, held.as_ref(), hold && held.is_none());
        if kept.is_some() {
            held = kept;
        }
        tally.add(&q, first);
        first = false;
    }
    let method = if hold {
        PermutationMethod::Gram
    } else {
        PermutationMethod::Streamed
    };
    Ok(tally.finish(k.diag(), method, batches, if hold { gram_bytes } else { 0 }))
}

// ------------------------------------------------------------------ approximate

/// A finite feature map `phi` with `k(x, y) ~ phi(x) . phi(y)`, giving the weighted
/// embeddings `Phi' V` of several weight columns at once.
pub trait FeatureMap: Sync {
    /// Dimension `F` of the features.
    fn dim_features(&self) -> usize;
    /// `E = Phi' V` as `p` rows of length `F` (row-major `p x F`), for the points `x`
    /// (`N x d`) and the columns of `v` (`N x p`).
    fn embeddings(&self, x: &[f64], v: &[f64], p: usize) -> Result<Vec<f64>>;
    /// The feature map's approximation of `k(x, x)` for the unbiased statistic (`k_0` when
    /// the map reproduces the diagonal exactly, as random Fourier features do).
    fn diag(&self) -> f64;
    /// Which method this is.
    fn method(&self) -> PermutationMethod;
}

impl FeatureMap for RandomFourierFeatures {
    fn dim_features(&self) -> usize {
        RandomFourierFeatures::dim_features(self)
    }
    fn embeddings(&self, x: &[f64], v: &[f64], p: usize) -> Result<Vec<f64>> {
        self.embeddings_multi(x, v, p)
    }
    fn diag(&self) -> f64 {
        1.0
    }
    fn method(&self) -> PermutationMethod {
        PermutationMethod::RandomFeatures
    }
}

impl FeatureMap for Nystrom {
    fn dim_features(&self) -> usize {
        Nystrom::dim_features(self)
    }
    fn embeddings(&self, x: &[f64], v: &[f64], p: usize) -> Result<Vec<f64>> {
        self.embeddings_multi(x, v, p)
    }
    fn diag(&self) -> f64 {
        self.kernel.diag()
    }
    fn method(&self) -> PermutationMethod {
        PermutationMethod::Nystrom
    }
}

/// The approximate test: every quadratic form `q(s) = s' K s` replaced by `|Phi' s|^2`
/// for the feature map `phi` (`O(N F)` per permutation). The unbiased statistic drops the
/// diagonal `phi.diag()` (exact for random Fourier features; `k_0` for Nystrom).
pub fn mmd_test_features(
    phi: &dyn FeatureMap,
    x: &[f64],
    y: &[f64],
    d: usize,
    opts: &TestOptions,
) -> Result<TwoSampleResult> {
    let (n, m) = check_samples(x, y, d)?;
    let mut z = Vec::with_capacity(x.len() + y.len());
    z.extend_from_slice(x);
    z.extend_from_slice(y);
    let per = per_batch(opts, n + m);
    let batches = Columns::batches(opts.permutations, per);
    let mut cols = Columns::new(n, m, opts.permutations, opts.seed, per);
    let mut tally = Tally::new(n, m);
    let f = phi.dim_features();
    let mut first = true;
    while let Some((v, p)) = cols.next() {
        let e = phi.embeddings(&z, &v, p)?;
        let q: Vec<f64> = e
            .chunks_exact(f)
            .map(|r| r.iter().map(|a| a * a).sum())
            .collect();
        tally.add(&q, first);
        first = false;
    }
    Ok(tally.finish(phi.diag(), phi.method(), batches, 0))
}

/// `K(a, b) V` (row-major `rows(a) x p`) for points `a`, `b` (row-major, `d` columns) and
/// the columns of `v` (`rows(b) x p`), by kernel tiles and `gemm`: parallel over blocks of
/// `b`, partial products reduced in block order (deterministic in the thread count).
pub fn kernel_matmul(
    k: &Kernel,
    a: &[f64],
    b: &[f64],
    v: &[f64],
    d: usize,
    p: usize,
) -> Result<Vec<f64>> {
    let (na, nb) = super::engine::check_shapes(a, b, v, d, p)?;
    if na == 0 || nb == 0 || p == 0 {
        return Ok(vec![0.0; na * p]);
    }
    // both point sets in one buffer so that the tile code (rows of one sample) applies
    let mut z = Vec::with_capacity(a.len() + b.len());
    z.extend_from_slice(a);
    z.extend_from_slice(b);
    let pooled = Pooled::new(k, &z, d);
    let a_blocks = na.div_ceil(TILE);
    // blocks of `b` grouped into chunks of 16 (fixed, so the reduction order is fixed)
    const GROUP: usize = 16;
    let b_blocks = nb.div_ceil(TILE);
    let groups = b_blocks.div_ceil(GROUP);
    let parts: Vec<Vec<f64>> = (0..groups)
        .into_par_iter()
        .map(|g| {
            let mut out = vec![0.0; na * p];
            let mut buf = vec![0.0; TILE * TILE];
            let mut w = vec![0.0; TILE * p];
            for bb in g * GROUP..((g + 1) * GROUP).min(b_blocks) {
                let j0 = bb * TILE;
                let j1 = (j0 + TILE).min(nb);
                let cj = j1 - j0;
                for ab in 0..a_blocks {
                    let i0 = ab * TILE;
                    let i1 = (i0 + TILE).min(na);
                    let ri = i1 - i0;
                    pooled.tile_rect(i0, i1, na + j0, na + j1, &mut buf);
                    gemm_into(ri, p, cj, &mut w, p, false, &buf, cj, &v[j0 * p..], p, 1);
                    for (o, x) in out[i0 * p..i1 * p].iter_mut().zip(&w[..ri * p]) {
                        *o += x;
                    }
                }
            }
            out
        })
        .collect();
    let mut out = vec![0.0; na * p];
    for part in parts {
        for (o, x) in out.iter_mut().zip(&part) {
            *o += x;
        }
    }
    Ok(out)
}

impl Pooled<'_> {
    /// The tile of rows `i0..i1` against rows `j0..j1` of the pooled points (no diagonal
    /// fix-up).
    fn tile_rect(&self, i0: usize, i1: usize, j0: usize, j1: usize, out: &mut [f64]) {
        let d = self.d;
        let (ri, cj) = (i1 - i0, j1 - j0);
        let out = &mut out[..ri * cj];
        let zj = &self.z[j0 * d..j1 * d];
        if self.gemm {
            gemm_into(
                ri,
                cj,
                d,
                out,
                cj,
                false,
                &self.z[i0 * d..i1 * d],
                d,
                zj,
                1,
                d,
            );
            for r in 0..ri {
                let ni = self.norms[i0 + r];
                let nj = &self.norms[j0..j1];
                for (o, &b) in out[r * cj..(r + 1) * cj].iter_mut().zip(nj) {
                    let r2 = ni + b - 2.0 * *o;
                    *o = if r2 > 0.0 { r2 } else { 0.0 };
                }
            }
            phi_in_place(&self.k, out);
        } else {
            for r in 0..ri {
                let zi = &self.z[(i0 + r) * d..(i0 + r + 1) * d];
                kernel_column(&self.k, zj, zi, d, &mut out[r * cj..(r + 1) * cj])
                    .expect("shapes checked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{mmd2, mmd2_unbiased};
    use rand::Rng;
    use rand_distr::StandardNormal;

    fn sample(n: usize, d: usize, shift: f64, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n * d)
            .map(|i| rng.sample::<f64, _>(StandardNormal) + if i % d == 0 { shift } else { 0.0 })
            .collect()
    }

    /// The naive O(N^2) formulas, pair by pair.
    fn naive(k: &Kernel, x: &[f64], y: &[f64], d: usize) -> (f64, f64) {
        let (n, m) = (x.len() / d, y.len() / d);
        let row = |s: &[f64], i: usize| s[i * d..(i + 1) * d].to_vec();
        let mut sxx = 0.0;
        let mut sxx_off = 0.0;
        for i in 0..n {
            for j in 0..n {
                let v = k.eval(&row(x, i), &row(x, j));
                sxx += v;
                if i != j {
                    sxx_off += v;
                }
            }
        }
        let (mut syy, mut syy_off) = (0.0, 0.0);
        for i in 0..m {
            for j in 0..m {
                let v = k.eval(&row(y, i), &row(y, j));
                syy += v;
                if i != j {
                    syy_off += v;
                }
            }
        }
        let mut sxy = 0.0;
        for i in 0..n {
            for j in 0..m {
                sxy += k.eval(&row(x, i), &row(y, j));
            }
        }
        let (nf, mf) = (n as f64, m as f64);
        let b = sxx / (nf * nf) + syy / (mf * mf) - 2.0 * sxy / (nf * mf);
        let u = sxx_off / (nf * (nf - 1.0)) + syy_off / (mf * (mf - 1.0)) - 2.0 * sxy / (nf * mf);
        (b, u)
    }

    #[test]
    fn fused_statistics_equal_the_naive_formula() {
        // several block counts, small and large d (gemm tiles), all three kernels
        for &(n, m, d) in &[(40usize, 30usize, 2usize), (300, 290, 3), (270, 250, 12)] {
            let x = sample(n, d, 0.4, 1);
            let y = sample(m, d, 0.0, 2);
            for k in [
                Kernel::gaussian(1.3).unwrap(),
                Kernel::imq(1.0).unwrap(),
                Kernel::laplace(2.0).unwrap(),
            ] {
                let r = mmd_test_exact(&k, &x, &y, d, &TestOptions::default()).unwrap();
                let (b, u) = naive(&k, &x, &y, d);
                assert!(
                    (r.mmd2_biased - b).abs() <= 1e-10 * b.abs() + 1e-13,
                    "{r:?} {b}"
                );
                assert!(
                    (r.mmd2_unbiased - u).abs() <= 1e-10 * u.abs() + 1e-13,
                    "{r:?} {u}"
                );
                // and the crate's separate streamed estimators
                let (wx, wy) = (vec![1.0 / n as f64; n], vec![1.0 / m as f64; m]);
                let b2 = mmd2(&k, &x, &wx, &y, &wy, d).unwrap();
                let u2 = mmd2_unbiased(&k, &x, &wx, &y, &wy, d).unwrap();
                assert!((r.mmd2_biased - b2).abs() <= 1e-10 * b2.abs() + 1e-13);
                assert!((r.mmd2_unbiased - u2).abs() <= 1e-10 * u2.abs() + 1e-13);
                assert_eq!(r.p_value, None);
                assert_eq!(r.method, PermutationMethod::None);
            }
        }
    }

    #[test]
    fn gram_and_streamed_permutations_agree_bit_for_bit() {
        for &(d, shift) in &[(2usize, 0.0), (2, 0.3), (10, 0.2)] {
            let x = sample(300, d, shift, 3);
            let y = sample(280, d, 0.0, 4);
            let k = Kernel::gaussian(1.5).unwrap();
            let base = TestOptions {
                permutations: 37,
                seed: 9,
                batch_columns: Some(8),
                ..TestOptions::default()
            };
            let held = mmd_test_exact(&k, &x, &y, d, &base).unwrap();
            let streamed = mmd_test_exact(
                &k,
                &x,
                &y,
                d,
                &TestOptions {
                    gram_budget_bytes: 0,
                    ..base
                },
            )
            .unwrap();
            let one_pass = mmd_test_exact(
                &k,
                &x,
                &y,
                d,
                &TestOptions {
                    batch_columns: Some(64),
                    ..base
                },
            )
            .unwrap();
            assert_eq!(held.method, PermutationMethod::Gram);
            assert!(held.gram_bytes > 0);
            assert_eq!(streamed.method, PermutationMethod::Streamed);
            assert_eq!(one_pass.method, PermutationMethod::Streamed);
            assert_eq!(one_pass.batches, 1);
            assert!(held.batches > 1);
            assert_eq!(held.p_value, streamed.p_value);
            assert_eq!(held.p_value, one_pass.p_value);
            assert_eq!(held.mmd2_biased.to_bits(), streamed.mmd2_biased.to_bits());
            let p = held.p_value.unwrap();
            assert!((1.0 / 38.0..=1.0).contains(&p), "{p}");
            if shift > 0.25 {
                assert!(p <= 0.05, "a shifted sample is detected, p = {p}");
            }
        }
    }

    #[test]
    fn p_value_matches_a_direct_permutation_loop() {
        let d = 2;
        let (n, m) = (60, 50);
        let x = sample(n, d, 0.2, 5);
        let y = sample(m, d, 0.0, 6);
        let k = Kernel::gaussian(1.0).unwrap();
        let b = 25;
        let r = mmd_test_exact(
            &k,
            &x,
            &y,
            d,
            &TestOptions {
                permutations: b,
                seed: 4,
                ..TestOptions::default()
            },
        )
        .unwrap();
        // the same relabellings drawn directly, the statistic by the naive formula
        let mut z = x.clone();
        z.extend_from_slice(&y);
        let mut labels: Vec<bool> = (0..n + m).map(|i| i < n).collect();
        let mut rng = StdRng::seed_from_u64(4);
        let obs = naive(&k, &x, &y, d).0;
        let mut count = 0;
        for _ in 0..b {
            labels.shuffle(&mut rng);
            let (mut xs, mut ys) = (Vec::new(), Vec::new());
            for (i, &l) in labels.iter().enumerate() {
                if l { &mut xs } else { &mut ys }.extend_from_slice(&z[i * d..(i + 1) * d]);
            }
            if naive(&k, &xs, &ys, d).0 >= obs - 1e-12 * obs {
                count += 1;
            }
        }
        assert_eq!(r.p_value, Some((1 + count) as f64 / (1 + b) as f64));
        assert_eq!(r.permutations, b);
    }

    #[test]
    fn random_features_converge_to_the_exact_statistics() {
        let d = 3;
        let x = sample(400, d, 0.5, 7);
        let y = sample(400, d, 0.0, 8);
        let k = Kernel::gaussian(1.2).unwrap();
        let exact = mmd_test_exact(&k, &x, &y, d, &TestOptions::default()).unwrap();
        let err = |r: &TwoSampleResult| {
            (r.mmd2_biased - exact.mmd2_biased).abs()
                + (r.mmd2_unbiased - exact.mmd2_unbiased).abs()
        };
        // mean error over a few feature seeds, for growing D
        let mut errs = Vec::new();
        for nf in [16usize, 256, 4096] {
            let mut e = 0.0;
            for seed in 0..4 {
                let rff = RandomFourierFeatures::new(&k, d, nf, seed).unwrap();
                e += err(&mmd_test_features(&rff, &x, &y, d, &TestOptions::default()).unwrap());
            }
            errs.push(e / 4.0);
        }
        assert!(errs[1] < errs[0] && errs[2] < errs[1], "{errs:?}");
        assert!(
            errs[2] < 0.05 * exact.mmd2_biased,
            "{errs:?} vs {}",
            exact.mmd2_biased
        );
        // Nystrom with all points as landmarks is exact up to the jitter
        let mut z = x.clone();
        z.extend_from_slice(&y);
        let mut nerrs = Vec::new();
        for lm in [20usize, 200, 800] {
            let ny = Nystrom::from_sample(&k, &z, d, lm, 1).unwrap();
            let r = mmd_test_features(&ny, &x, &y, d, &TestOptions::default()).unwrap();
            nerrs.push((r.mmd2_biased - exact.mmd2_biased).abs());
        }
        assert!(nerrs[1] < nerrs[0] && nerrs[2] < nerrs[1], "{nerrs:?}");
        assert!(nerrs[2] < 1e-6 * exact.mmd2_biased.max(1.0), "{nerrs:?}");
    }

    #[test]
    fn approximate_p_values_are_valid_and_detect_a_shift() {
        let d = 2;
        let x = sample(500, d, 0.6, 10);
        let y = sample(500, d, 0.0, 11);
        let k = Kernel::gaussian(1.0).unwrap();
        let rff = RandomFourierFeatures::new(&k, d, 256, 3).unwrap();
        let opts = TestOptions {
            permutations: 19,
            seed: 2,
            ..TestOptions::default()
        };
        let r = mmd_test_features(&rff, &x, &y, d, &opts).unwrap();
        assert_eq!(r.method, PermutationMethod::RandomFeatures);
        assert_eq!(r.p_value, Some(1.0 / 20.0));
        let same = mmd_test_features(&rff, &x, &sample(500, d, 0.6, 12), d, &opts).unwrap();
        let p = same.p_value.unwrap();
        assert!((1.0 / 20.0..=1.0).contains(&p));
    }

    #[test]
    fn kernel_matmul_matches_streamed_sums() {
        for d in [2usize, 9] {
            let a = sample(300, d, 0.0, 1);
            let b = sample(700, d, 0.1, 2);
            let p = 3;
            let v: Vec<f64> = sample(700, p, 0.0, 3);
            let k = Kernel::gaussian(1.1).unwrap();
            let got = kernel_matmul(&k, &a, &b, &v, d, p).unwrap();
            let want = crate::kernel::kernel_sums_multi(&k, &a, &b, &v, d, p).unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-10, "{g} {w}");
            }
        }
    }
}
