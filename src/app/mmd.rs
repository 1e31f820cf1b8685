//! `robustflow mmd`: the two-sample maximum mean discrepancy test (Gretton et al. 2012).
//!
//! Given samples `X` (`n x d`) and `Y` (`m x d`) it computes
//! - the biased (V-statistic) `MMD_b^2 = 1/n^2 sum k(x_i,x_j) + 1/m^2 sum k(y_i,y_j) - 2/(nm) sum k(x_i,y_j)`,
//! - the unbiased (U-statistic) `MMD_u^2` (diagonals dropped, eq. 3 of Gretton et al.),
//! - a permutation-test p-value for `H0: P = Q`: the pooled sample is relabelled `P` times
//!   at random (seeded) and `p = (1 + #{b : MMD_b^2(perm_b) >= MMD_b^2(observed)}) / (1 + P)`.
//!   The test statistic is the biased `MMD_b^2`.
//!
//! The kernel bandwidth is fixed or given by the median heuristic on the pooled sample
//! (`h^2 = median ||z_i - z_j||^2 / 2`, see [`crate::kernel`]). With `n + m <= 4000` the
//! pooled Gram matrix is formed once (at most 128 MB); beyond that every permutation
//! streams the kernel sums (no `(n+m)^2` memory).

use super::GlobalOpts;
use crate::error::{check_count, Error, Result};
use crate::kernel::{gram, kernel_sums, mmd2, mmd2_unbiased, Bandwidth, Kernel, KernelKind};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
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
    /// Number of random permutations of the test.
    #[arg(long, default_value_t = 500)]
    pub permutations: usize,
    /// Seed of the permutations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// The result of `robustflow mmd` (the JSON report).
#[derive(Debug, Clone, Serialize)]
pub struct MmdReport {
    /// Biased (V-statistic) `MMD^2`.
    pub mmd2_biased: f64,
    /// Unbiased (U-statistic) `MMD^2` (may be negative).
    pub mmd2_unbiased: f64,
    /// Permutation-test p-value.
    pub p_value: f64,
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
}

/// The permutation test on the pooled row-major sample `z` (`n + m` rows, the first `n`
/// are `X`): returns the observed biased statistic and the p-value.
pub fn permutation_test(
    k: &Kernel,
    z: &[f64],
    n: usize,
    m: usize,
    d: usize,
    permutations: usize,
    seed: u64,
) -> Result<(f64, f64)> {
    check_count("permutations", permutations)?;
    let nt = n + m;
    let g = if nt <= 4000 {
        Some(gram(k, z, z, d)?)
    } else {
        None
    };
    let stat = |labels: &[bool]| -> Result<f64> {
        let s: Vec<f64> = labels
            .iter()
            .map(|&is_x| {
                if is_x {
                    1.0 / n as f64
                } else {
                    -1.0 / m as f64
                }
            })
            .collect();
        let ks = match &g {
            Some(g) => g.dot(&ndarray::ArrayView1::from(&s)).to_vec(),
            None => kernel_sums(k, z, z, &s, d)?,
        };
        Ok(s.iter().zip(&ks).map(|(a, b)| a * b).sum::<f64>())
    };
    let mut labels: Vec<bool> = (0..nt).map(|i| i < n).collect();
    let observed = stat(&labels)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut count = 0usize;
    for _ in 0..permutations {
        labels.shuffle(&mut rng);
        // a relative tolerance so that relabellings equal to the observed one count
        if stat(&labels)? >= observed - 1e-12 * observed.abs() {
            count += 1;
        }
    }
    Ok((
        observed.max(0.0),
        (1 + count) as f64 / (1 + permutations) as f64,
    ))
}

/// Compute the two-sample statistics and p-value.
pub fn compute(args: &MmdArgs) -> Result<MmdReport> {
    let kind: KernelKind = args.kernel.parse()?;
    let bw: Bandwidth = args.bandwidth.parse()?;
    check_count("permutations", args.permutations)?;
    let x = crate::io::read_numeric_csv(&args.x)?.values;
    let y = crate::io::read_numeric_csv(&args.y)?.values;
    let (n, m, d) = (x.nrows(), y.nrows(), x.ncols());
    if y.ncols() != d {
        return Err(Error::Data {
            path: args.y.clone(),
            row: None,
            col: None,
            msg: format!("{} columns, but {} has {d}", y.ncols(), args.x.display()),
        });
    }
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
    let xs = x.as_standard_layout().to_owned();
    let ys = y.as_standard_layout().to_owned();
    let mut z = xs.as_slice().expect("standard").to_vec();
    z.extend_from_slice(ys.as_slice().expect("standard"));
    let kernel = Kernel::with_bandwidth(kind, bw, &z, d)?;
    let wx = vec![1.0 / n as f64; n];
    let wy = vec![1.0 / m as f64; m];
    let xsl = xs.as_slice().expect("standard");
    let ysl = ys.as_slice().expect("standard");
    let biased = mmd2(&kernel, xsl, &wx, ysl, &wy, d)?;
    let unbiased = mmd2_unbiased(&kernel, xsl, &wx, ysl, &wy, d)?;
    let (_, p) = permutation_test(&kernel, &z, n, m, d, args.permutations, args.seed)?;
    Ok(MmdReport {
        mmd2_biased: biased,
        mmd2_unbiased: unbiased,
        p_value: p,
        kernel: kind.to_string(),
        bandwidth: kernel.h,
        median_heuristic: matches!(bw, Bandwidth::Median),
        n,
        m,
        d,
        permutations: args.permutations,
        seed: args.seed,
        statistic: "mmd2_biased".into(),
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
    println!(
        "MMD^2 biased = {:.6e}, unbiased = {:.6e}, permutation p-value = {:.4} ({} permutations; {} kernel, h = {:.4}{}; n = {}, m = {}, d = {})",
        r.mmd2_biased,
        r.mmd2_unbiased,
        r.p_value,
        r.permutations,
        r.kernel,
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
