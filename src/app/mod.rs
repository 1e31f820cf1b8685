//! Command implementations behind the `robustflow` binary. Each submodule holds the clap
//! arguments of one subcommand and a `run` function, so the library API and the CLI
//! share one code path and `src/main.rs` stays a thin front end. Flag groups used by
//! several subcommands (`--model/--data`, the ambiguity set, the inner solver's effort) are
//! declared once in [`args`] and flattened into the commands; the domain logic (training,
//! certificates, evaluation, the demo) lives in the library.

pub mod args;
pub mod fit_kl;

/// Options every subcommand accepts.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GlobalOpts {
    /// Hide progress bars (they are also hidden when stderr is not a terminal).
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Number of worker threads (default: RAYON_NUM_THREADS or the number of cores; more
    /// than 4 per core is capped there with a warning).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Library callers (the embedding API): no summary printed to stdout; the results are
    /// returned. Not a command-line flag.
    #[arg(skip)]
    pub silent: bool,
}

/// At most this many worker threads per core (`--threads` above is capped, with a warning).
pub const MAX_THREADS_PER_CORE: usize = 4;

/// The thread count to use for `--threads t`: `t >= 1`, capped at
/// [`MAX_THREADS_PER_CORE`] times the cores available (the warning says so).
pub fn thread_count(t: usize) -> crate::Result<(usize, Option<String>)> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    thread_count_for(t, cores)
}

/// [`thread_count`] for a machine with `cores` cores.
pub fn thread_count_for(t: usize, cores: usize) -> crate::Result<(usize, Option<String>)> {
    crate::error::check_count("threads", t)?;
    let cap = cores.max(1).saturating_mul(MAX_THREADS_PER_CORE);
    if t > cap {
        Ok((
            cap,
            Some(format!(
                "--threads {t} is more than {MAX_THREADS_PER_CORE} per core on this machine ({cores} cores); using {cap}"
            )),
        ))
    } else {
        Ok((t, None))
    }
}

pub mod bench;
pub mod certify;
pub mod eval;
pub mod flow;
pub mod info;
pub mod mmd;
pub mod predict;
pub mod select;
pub mod train;
