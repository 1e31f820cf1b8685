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
    /// Kernel approximation of the MMD sets (mmd_wfr): exact, rff:D or nystrom:M.
    #[arg(long, default_value = "exact")]
    pub approx: crate::kernel::Approx,
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
    /// against Delta, the kernel-DRO penalty chosen on a validation split) and the circles
    /// decision boundaries of ERM and WRM (a sweep of the WRM penalty), over several seeds.
    Qualitative {
        /// Output directory.
        #[arg(long, default_value = "out/bench-qualitative")]
        out_dir: PathBuf,
        /// Seeds, comma separated.
        #[arg(long, default_value = "0,1,2,3,4")]
        seeds: String,
        /// Circles: WRM penalties gamma, comma separated (every one is shown).
        #[arg(long, default_value = "2,1,0.5,0.25")]
        gammas: String,
        /// Circles: training epochs.
        #[arg(long, default_value_t = 60)]
        epochs: usize,
        /// Circles: MLP hidden widths, comma separated.
        #[arg(long, default_value = "32,32")]
        hidden: String,
    },
    /// The kernel-DRO robust least-squares experiment of Zhu et al. (AISTATS 2021): ERM,
    /// worst-case RO over |xi| <= 1 and kernel DRO (MMD radius 0.1), solved exactly by an
    /// interior-point method, against the test shift Delta; writes OUT/kdro_rls.csv and
    /// OUT/kdro_rls.png.
    KdroRls {
        /// The instance directory (A.csv, B.csv, b.csv).
        #[arg(long, default_value = "datasets/robls_6_15")]
        instance: PathBuf,
        /// Output directory.
        #[arg(long, default_value = "out/kdro-rls")]
        out_dir: PathBuf,
        /// Number of runs.
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// Test draws per shift.
        #[arg(long, default_value_t = 500)]
        n_test: usize,
        /// MMD radius.
        #[arg(long, default_value_t = 0.1)]
        eps: f64,
        /// Base seed (run r uses seed + r).
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

fn parse_list<T: std::str::FromStr>(flag: &str, s: &str) -> Result<Vec<T>> {
    list(s)
        .iter()
        .map(|t| {
            t.parse::<T>()
                .map_err(|_| Error::param(flag, t, "not a valid number"))
        })
        .collect()
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
        c.approx = self.approx;
        c.validate()?;
        Ok(c)
    }
}

/// Write the `rls` task of seed 0: the instance (`rls_instance.csv`: the rows of `A`, `B`
/// and `b`) and the draws of `xi` (`rls_{train,val,test}.csv`; the test set at Delta is the
/// test draws times `1 + Delta`).
fn write_rls_data(dir: &std::path::Path, cfg: &SuiteConfig) -> Result<()> {
    let d = crate::bench::rls::RlsData::new(cfg.rls_n_train, cfg.rls_n_val, cfg.rls_n_test, 0)?;
    let p = &d.problem;
    let k = p.a.ncols();
    let mut header: Vec<String> = (1..=k).map(|j| format!("a{j}")).collect();
    header.extend((1..=k).map(|j| format!("bmat{j}")));
    header.push("b".into());
    crate::io::write_csv_atomic(
        dir.join("rls_instance.csv"),
        &header,
        (0..p.b.len()).map(|i| {
            let mut r: Vec<String> = (0..k).map(|j| format!("{}", p.a[[i, j]])).collect();
            r.extend((0..k).map(|j| format!("{}", p.b_mat[[i, j]])));
            r.push(format!("{}", p.b[i]));
            r
        }),
    )?;
    for (name, v) in [("train", &d.train), ("val", &d.val), ("test", &d.test)] {
        crate::io::write_csv_atomic(
            dir.join(format!("rls_{name}.csv")),
            &["xi".to_string()],
            v.iter().map(|x| vec![format!("{x}")]),
        )?;
    }
    Ok(())
}

/// Run `robustflow bench` (or `bench merge`).
pub fn run(args: &BenchArgs, g: &GlobalOpts) -> Result<Option<RunSummary>> {
    if let Some(BenchCmd::Merge { dirs, out_dir }) = &args.cmd {
        let rows = merge(dirs, out_dir)?;
        println!("merged {} rows into {}", rows.len(), out_dir.display());
        return Ok(None);
    }
    if let Some(BenchCmd::Qualitative {
        out_dir,
        seeds,
        gammas,
        epochs,
        hidden,
    }) = &args.cmd
    {
        let q = crate::bench::qualitative::QualitativeConfig {
            seeds: parse_list("seeds", seeds)?,
            gammas: parse_list("gammas", gammas)?,
            epochs: *epochs,
            hidden: parse_list("hidden", hidden)?,
            ..Default::default()
        };
        let s = crate::bench::qualitative::run_qualitative(out_dir, &q)?;
        println!("{s}\nwrote {}", out_dir.display());
        return Ok(None);
    }
    if let Some(BenchCmd::KdroRls {
        instance,
        out_dir,
        runs,
        n_test,
        eps,
        seed,
    }) = &args.cmd
    {
        use crate::bench::kdro_rls::{read_instance, run_kdro_rls, write_kdro_rls, KdroRlsConfig};
        let cfg = KdroRlsConfig {
            runs: *runs,
            n_test: *n_test,
            eps: *eps,
            seed: *seed,
            ..Default::default()
        };
        cfg.validate()?;
        let prob = read_instance(instance, cfg.rows)?;
        let rows = run_kdro_rls(&prob, &cfg)?;
        write_kdro_rls(out_dir, &rows)?;
        println!("{:>6} {:>12} {:>12} {:>12}", "delta", "erm", "ro", "kdro");
        for c in rows.chunks(3) {
            if (c[0].delta * 5.0).round() as i64 % 5 == 0 {
                println!(
                    "{:>6.1} {:>12.4} {:>12.4} {:>12.4}",
                    c[0].delta, c[0].mean_loss, c[1].mean_loss, c[2].mean_loss
                );
            }
        }
        println!("wrote {}", out_dir.display());
        return Ok(None);
    }
    let cfg = args.config()?;
    let shard = parse_shard(&args.shard)?;
    // The bundled CSVs are inputs: no output may land on one of them.
    let mut guard = crate::outputs::OutputGuard::new();
    if let Ok(rd) = std::fs::read_dir(&args.data_dir) {
        for e in rd.flatten() {
            guard = guard.input("data-dir", e.path());
        }
    }
    guard.files_in(
        "out-dir",
        &args.out_dir,
        &[
            ("results", ".csv"),
            ("results", ".json"),
            ("settings", ".json"),
            ("summary", ".md"),
            ("", ".png"),
        ],
    )?;
    if args.write_data {
        guard.files_in("out-dir", args.out_dir.join("data"), &[("", ".csv")])?;
    }
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
        write_rls_data(&dir, &cfg)?;
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
