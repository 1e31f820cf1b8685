//! Command implementations behind the `robustflow` binary. Each submodule holds the clap
//! arguments of one subcommand and a `run` function, so the library API and the CLI
//! share one code path and `src/main.rs` stays a thin front end.

pub mod fit_kl;

/// Options every subcommand accepts.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GlobalOpts {
    /// Hide progress bars (they are also hidden when stderr is not a terminal).
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Number of worker threads (default: RAYON_NUM_THREADS or the number of cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
}

pub mod bench;
pub mod certify;
pub mod eval;
pub mod flow;
pub mod mmd;
pub mod train;
