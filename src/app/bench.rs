//! `robustflow bench`: run the benchmark grid of [`crate::bench`] (`--suite
//! quick|standard|full`, optionally restricted by `--datasets`, `--methods`, `--seeds`,
//! split with `--shard i/n`), and `robustflow bench merge DIR... --out-dir OUT` to join
//! shards. A rerun into the same `--out-dir` skips the rows already in `results.csv`.

use super::GlobalOpts;
use crate::bench::report::{merge, run_suite, RunSummary};
use crate::bench::suite::{synthetic, SuiteConfig};
use crate::error::{Error, Result};
use std::path::PathBuf;

/// Arguments of `robustflow bench`.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// `merge DIR... --out-dir OUT`: join the results of shards.
    #[command(subcommand)]
    pub cmd: Option<BenchCmd>,
    /// The preset: quick, standard or full.
    #[arg(long, default_value = "quick")]
    pub suite: String,
    /// Datasets, comma separated (default: the suite's).
    #[arg(long)]
    pub datasets: Option<String>,
    /// Methods, comma separated (default: the suite's).
    #[arg(long)]
    pub methods: Option<String>,
    /// Seeds, comma separated (default: the suite's).
    #[arg(long)]
    pub seeds: Option<String>,
    /// Epochs of every model (default: the suite's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Run only shard `i/n` of the cells (cell index mod n == i).
    #[arg(long, default_value = "0/1")]
    pub shard: String,
    /// Directory of the bundled CSVs.
    #[arg(long, default_value = "datasets")]
    pub data_dir: PathBuf,
    /// Also write the synthetic tasks' CSVs (seed 0) to OUT/data.
    #[arg(long)]
    pub write_data: bool,
    /// Output directory.
    #[arg(long, default_value = "out/bench")]
    pub out_dir: PathBuf,
}

/// Subcommands of `robustflow bench`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchCmd {
    /// Merge the results of several output directories (shards).
    Merge {
        /// The shard directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// The merged output directory.
        #[arg(long, default_value = "out/bench")]
        out_dir: PathBuf,
    },
    /// The qualitative checks: robust least squares (ERM vs worst-case RO vs kernel DRO
    /// against Delta) and the circles decision boundaries of ERM and WRM.
    Qualitative {
        /// Output directory.
        #[arg(long, default_value = "out/bench-qualitative")]
        out_dir: PathBuf,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// Parse `i/n`.
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let bad = || Error::param("shard", s, "expected i/n with 0 <= i < n, e.g. 0/4");
    let (a, b) = s.split_once('/').ok_or_else(bad)?;
    let i: usize = a.trim().parse().map_err(|_| bad())?;
    let n: usize = b.trim().parse().map_err(|_| bad())?;
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

impl BenchArgs {
    /// The suite configuration after the overrides.
    pub fn config(&self) -> Result<SuiteConfig> {
        let mut c = SuiteConfig::preset(&self.suite)?;
        if let Some(d) = &self.datasets {
            c.datasets = list(d);
        }
        if let Some(m) = &self.methods {
            c.methods = list(m);
        }
        if let Some(s) = &self.seeds {
            c.seeds = list(s)
                .iter()
                .map(|t| {
                    t.parse::<u64>()
                        .map_err(|_| Error::param("seeds", t, "expected non-negative integers"))
                })
                .collect::<Result<_>>()?;
        }
        if let Some(e) = self.epochs {
            c.epochs = e;
        }
        c.validate()?;
        Ok(c)
    }
}

/// Run `robustflow bench` (or `bench merge`).
pub fn run(args: &BenchArgs, g: &GlobalOpts) -> Result<Option<RunSummary>> {
    if let Some(BenchCmd::Merge { dirs, out_dir }) = &args.cmd {
        let rows = merge(dirs, out_dir)?;
        println!("merged {} rows into {}", rows.len(), out_dir.display());
        return Ok(None);
    }
    if let Some(BenchCmd::Qualitative { out_dir, seed }) = &args.cmd {
        let s = crate::bench::qualitative::run_qualitative(out_dir, *seed)?;
        println!("{s}\nwrote {}", out_dir.display());
        return Ok(None);
    }
    let cfg = args.config()?;
    let shard = parse_shard(&args.shard)?;
    if args.write_data {
        let dir = args.out_dir.join("data");
        for name in ["circles", "gaussian", "subpop"] {
            let (tr, te, extra) = synthetic(name, &cfg, 0)?;
            tr.write_csv(dir.join(format!("{name}_train.csv")))?;
            te.write_csv(dir.join(format!("{name}_test.csv")))?;
            for (c, b, d) in extra {
                d.write_csv(dir.join(format!("{name}_test_{c}_{b}.csv")))?;
            }
        }
    }
    let s = run_suite(&cfg, shard, &args.out_dir, &args.data_dir, g.quiet)?;
    println!(
        "bench {} shard {}: {} cells ({} computed, {} already done), {} rows, {:.1} s; wrote {}",
        cfg.suite,
        args.shard,
        s.cells,
        s.computed,
        s.skipped,
        s.rows,
        s.wall_s,
        args.out_dir.display()
    );
    Ok(Some(s))
}
