//! `robustflow mmd`: the two-sample maximum mean discrepancy test (Gretton et al. 2012).
//!
//! Given samples `X` (`n x d`) and `Y` (`m x d`) it computes
//! - the biased (V-statistic) `MMD_b^2 = 1/n^2 sum k(x_i,x_j) + 1/m^2 sum k(y_i,y_j) - 2/(nm) sum k(x_i,y_j)`,
//! - the unbiased (U-statistic) `MMD_u^2` (diagonals dropped, eq. 3 of Gretton et al.),
//! - a permutation-test p-value for `H0: P = Q`: the pooled sample is relabelled `B` times
//!   at random (seeded) and `p = (1 + #{b : MMD_b^2(perm_b) >= MMD_b^2(observed)}) / (1 + B)`.
//!   The test statistic is the biased `MMD_b^2`. `--permutations 0` skips the test (the
//!   report's `p_value` is `null`).
//!
//! Both statistics and the observed permutation statistic come from one set of kernel
//! sums, and the relabellings are swept in batches in the same pass over the pooled pairs
//! (see [`crate::kernel::two_sample`] for the equations): exactly, by kernel sums streamed
//! once per batch of permutations, or with the pooled Gram matrix held once when more than
//! one batch is needed and its upper-triangular tiles (`~4 (n+m)^2` bytes) fit
//! `--gram-budget-mb` (default 2048 MB); or approximately with `--approx rff:D` (random
//! Fourier features, Gaussian kernel) or `--approx nystrom:M` (`M` landmarks drawn from the
//! pooled sample), where each permutation costs `O((n + m) F)`. The report records the
//! method (`method`: `none`, `streamed`, `gram`, `random-features`, `nystrom`) and the
//! approximation (`approx`).
//!
//! The kernel bandwidth is fixed or given by the median heuristic on the pooled sample
//! (`h^2 = median ||z_i - z_j||^2 / 2`, see [`crate::kernel`]).

use super::GlobalOpts;
use crate::error::{Error, Result};
use crate::kernel::rff::{Nystrom, RandomFourierFeatures};
use crate::kernel::two_sample::{
    mmd_test_exact, mmd_test_features, PermutationMethod, TestOptions, TwoSampleResult,
};
use crate::kernel::{Approx, Bandwidth, Kernel, KernelKind};
use serde::Serialize;
use std::path::PathBuf;

/// Arguments of `robustflow mmd`.
#[derive(Debug, Clone, clap::Args)]
pub struct MmdArgs {
    /// First sample: CSV, rows = points (a header row is optional).
    #[arg(long)]
    pub x: PathBuf,
    /// Second sample: CSV with the same number of columns.
    #[arg(long)]
    pub y: PathBuf,
    /// Kernel: gaussian, imq or laplace.
    #[arg(long, default_value = "gaussian")]
    pub kernel: String,
    /// Bandwidth h (number) or `median` (median heuristic on the pooled sample).
    #[arg(long, default_value = "median")]
    pub bandwidth: String,
    /// Number of random permutations of the test (0: statistics only, no p-value).
    #[arg(long, default_value_t = 500)]
    pub permutations: usize,
    /// Seed of the permutations (and of the random features / Nystrom landmarks).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Kernel approximation: exact, rff:D (D random Fourier features, Gaussian kernel) or
    /// nystrom:M (M landmarks from the pooled sample).
    #[arg(long, default_value = "exact")]
    pub approx: String,
    /// Memory budget (MB) for holding the pooled Gram matrix in the exact permutation test.
    #[arg(long, default_value_t = 2048)]
    pub gram_budget_mb: u64,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

impl Default for MmdArgs {
    fn default() -> Self {
        MmdArgs {
            x: PathBuf::new(),
            y: PathBuf::new(),
            kernel: "gaussian".into(),
            bandwidth: "median".into(),
            permutations: 500,
            seed: 0,
            approx: "exact".into(),
            gram_budget_mb: 2048,
            report: None,
        }
    }
}

/// The result of `robustflow mmd` (the JSON report).
#[derive(Debug, Clone, Serialize)]
pub struct MmdReport {
    /// Biased (V-statistic) `MMD^2`.
    pub mmd2_biased: f64,
    /// Unbiased (U-statistic) `MMD^2` (may be negative).
    pub mmd2_unbiased: f64,
    /// Permutation-test p-value (`null` with `--permutations 0`).
    pub p_value: Option<f64>,
    /// Kernel profile.
    pub kernel: String,
    /// Bandwidth used.
    pub bandwidth: f64,
    /// Whether the bandwidth came from the median heuristic.
    pub median_heuristic: bool,
    /// Size of `X`.
    pub n: usize,
    /// Size of `Y`.
    pub m: usize,
    /// Dimension.
    pub d: usize,
    /// Number of permutations.
    pub permutations: usize,
    /// Seed of the permutations.
    pub seed: u64,
    /// The test statistic (biased `MMD^2`).
    pub statistic: String,
    /// Kernel approximation (`exact`, `rff:D`, `nystrom:M`).
    pub approx: Approx,
    /// How the test was computed (`none`, `streamed`, `gram`, `random-features`,
    /// `nystrom`).
    pub method: PermutationMethod,
    /// Batches of permutation columns (passes over the pooled pairs or the held matrix).
    pub batches: usize,
    /// Bytes of the held Gram matrix (0 when not held).
    pub gram_bytes: u64,
    /// The Gram-matrix budget in bytes.
    pub gram_budget_bytes: u64,
    /// Block sums `S_xx`, `S_yy`, `S_xy` (diagonals included; of the approximate kernel
    /// with `--approx`).
    pub block_sums: [f64; 3],
}

/// The permutation test on the pooled row-major sample `z` (`n + m` rows, the first `n`
/// are `X`), exact: returns the full result (statistics, p-value, method).
pub fn permutation_test(
    k: &Kernel,
    z: &[f64],
    n: usize,
    d: usize,
    opts: &TestOptions,
) -> Result<TwoSampleResult> {
    mmd_test_exact(k, &z[..n * d], &z[n * d..], d, opts)
}

/// The kernel, bandwidth rule and approximation the flags ask for (checked together).
fn kernel_flags(args: &MmdArgs) -> Result<(KernelKind, Bandwidth, Approx)> {
    let kind: KernelKind = args.kernel.parse()?;
    let bw: Bandwidth = args.bandwidth.parse()?;
    let approx: Approx = args.approx.parse()?;
    if matches!(approx, Approx::Rff(_)) && kind != KernelKind::Gaussian {
        return Err(Error::param(
            "approx",
            &args.approx,
            "random Fourier features need the Gaussian kernel (use nystrom:M)",
        ));
    }
    Ok((kind, bw, approx))
}

/// Compute the two-sample statistics and p-value of the samples in `args.x` and `args.y`.
pub fn compute(args: &MmdArgs) -> Result<MmdReport> {
    kernel_flags(args)?; // flag errors before reading any file
    let x = crate::io::read_numeric_csv(&args.x)?.values;
    let y = crate::io::read_numeric_csv(&args.y)?.values;
    let d = x.ncols();
    if y.ncols() != d {
        return Err(Error::Data {
            path: args.y.clone(),
            row: None,
            col: None,
            msg: format!("{} columns, but {} has {d}", y.ncols(), args.x.display()),
        });
    }
    let xs = x.as_standard_layout();
    let ys = y.as_standard_layout();
    compute_samples(
        args,
        xs.as_slice().expect("standard"),
        ys.as_slice().expect("standard"),
        d,
    )
}

/// The test of [`compute`] on samples in memory: `x` (`n x d`) and `y` (`m x d`),
/// row-major; `args.x` / `args.y` only name the samples in error messages (the embedding
/// API passes arrays here, with no file round trip).
pub fn compute_samples(args: &MmdArgs, xsl: &[f64], ysl: &[f64], d: usize) -> Result<MmdReport> {
    let (kind, bw, approx) = kernel_flags(args)?;
    if d == 0 || !xsl.len().is_multiple_of(d) || !ysl.len().is_multiple_of(d) {
        return Err(Error::param(
            "d",
            d,
            "the samples' lengths must be multiples of the dimension (at least 1)",
        ));
    }
    if let Some(v) = xsl.iter().chain(ysl).find(|v| !v.is_finite()) {
        return Err(Error::param("x", v, "the samples must be finite"));
    }
    let (n, m) = (xsl.len() / d, ysl.len() / d);
    for (p, rows) in [(&args.x, n), (&args.y, m)] {
        if rows < 2 {
            return Err(Error::Data {
                path: p.clone(),
                row: None,
                col: None,
                msg: format!("{rows} row(s): the unbiased MMD needs at least 2 points per sample"),
            });
        }
    }
    let kernel = match bw {
        Bandwidth::Fixed(h) => Kernel::new(kind, h)?,
        Bandwidth::Median => {
            // the median heuristic reads at most 1000 evenly strided pooled points: build
            // just those rather than a copy of the pooled sample
            let nt = n + m;
            let take = nt.min(1000);
            let mut sub = Vec::with_capacity(take * d);
            for i in (0..take).map(|i| i * nt / take) {
                let row = if i < n {
                    &xsl[i * d..(i + 1) * d]
                } else {
                    &ysl[(i - n) * d..(i - n + 1) * d]
                };
                sub.extend_from_slice(row);
            }
            // (the same points `median_heuristic` would pick from the pooled sample)
            Kernel::new(kind, crate::kernel::median_heuristic(&sub, d)?)?
        }
    };
    let opts = TestOptions {
        permutations: args.permutations,
        seed: args.seed,
        gram_budget_bytes: args.gram_budget_mb.saturating_mul(1 << 20),
        batch_columns: None,
    };
    // a seed for the features independent of the permutations' stream
    let feature_seed = args.seed ^ 0x5EED_F00D_CAFE_BEEF;
    let r = match approx {
        Approx::Exact => mmd_test_exact(&kernel, xsl, ysl, d, &opts)?,
        Approx::Rff(nf) => {
            let rff = RandomFourierFeatures::new(&kernel, d, nf, feature_seed)?;
            mmd_test_features(&rff, xsl, ysl, d, &opts)?
        }
        Approx::Nystrom(lm) => {
            let nt = n + m;
            if lm > nt {
                return Err(Error::param(
                    "approx",
                    &args.approx,
                    &format!("more landmarks than the {nt} pooled points"),
                ));
            }
            // landmarks drawn without replacement from the pooled sample
            use rand::SeedableRng;
            let mut rng = rand::rngs::StdRng::seed_from_u64(feature_seed);
            let mut idx = rand::seq::index::sample(&mut rng, nt, lm).into_vec();
            idx.sort_unstable();
            let mut z = Vec::with_capacity(lm * d);
            for i in idx {
                z.extend_from_slice(if i < n {
                    &xsl[i * d..(i + 1) * d]
                } else {
                    &ysl[(i - n) * d..(i - n + 1) * d]
                });
            }
            let ny = Nystrom::new(&kernel, &z, d)?;
            mmd_test_features(&ny, xsl, ysl, d, &opts)?
        }
    };
    Ok(MmdReport {
        mmd2_biased: r.mmd2_biased,
        mmd2_unbiased: r.mmd2_unbiased,
        p_value: r.p_value,
        kernel: kind.to_string(),
        bandwidth: kernel.h,
        median_heuristic: matches!(bw, Bandwidth::Median),
        n,
        m,
        d,
        permutations: args.permutations,
        seed: args.seed,
        statistic: "mmd2_biased".into(),
        approx,
        method: r.method,
        batches: r.batches,
        gram_bytes: r.gram_bytes,
        gram_budget_bytes: opts.gram_budget_bytes,
        block_sums: [r.s_xx, r.s_yy, r.s_xy],
    })
}

/// Run `robustflow mmd`: print the result and write the JSON report when asked.
pub fn run(args: &MmdArgs, _global: &GlobalOpts) -> Result<MmdReport> {
    if let Some(p) = &args.report {
        crate::outputs::OutputGuard::new()
            .input("x", &args.x)
            .input("y", &args.y)
            .file("report", p)?;
    }
    let r = compute(args)?;
    let p = match r.p_value {
        Some(p) => format!(
            "permutation p-value = {p:.4} ({} permutations, {})",
            r.permutations, r.method
        ),
        None => "no permutation test".to_string(),
    };
    println!(
        "MMD^2 biased = {:.17e}, unbiased = {:.17e}, {p}; {} kernel{}, h = {:.4}{}; n = {}, m = {}, d = {}",
        r.mmd2_biased,
        r.mmd2_unbiased,
        r.kernel,
        if r.approx.is_exact() { String::new() } else { format!(" ({})", r.approx) },
        r.bandwidth,
        if r.median_heuristic { " by the median heuristic" } else { "" },
        r.n,
        r.m,
        r.d
    );
    if let Some(path) = &args.report {
        crate::io::write_json_atomic(path, &r)?;
    }
    Ok(r)
}
