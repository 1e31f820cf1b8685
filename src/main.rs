//! The `robustflow` command-line tool: a thin clap front end over `robustflow::app`.

use clap::{Parser, Subcommand};
use robustflow::app::GlobalOpts;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Distributionally robust learning on kernelized gradient flows.
#[derive(Parser)]
#[command(name = "robustflow", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compare MMD-minimising flows (MMD, noise, FR, WFR, MMD-prox, IFT, ...) on a target.
    Flow(robustflow::app::flow::FlowArgs),
    /// Two-sample MMD (biased, unbiased) with a permutation-test p-value.
    Mmd(robustflow::app::mmd::MmdArgs),
    /// Forward-KL (inclusive) particle approximation of a target vs reverse-KL baselines.
    FitKl(robustflow::app::fit_kl::FitKlArgs),
    /// Train a (distributionally robust) model on a CSV.
    Train(robustflow::app::train::TrainArgs),
    /// Evaluate a trained model: clean, under attack (FGSM/PGD) and under covariate shift.
    Eval(robustflow::app::eval::EvalArgs),
    /// Predict with a trained model on rows without labels (class or value, and class probabilities).
    Predict(robustflow::app::predict::PredictArgs),
    /// Describe a saved model: architecture, features and schema, training settings, selected radius, metrics.
    Info(robustflow::app::info::InfoArgs),
    /// Certify a trained model: worst-case risk over an ambiguity set, with lower and upper bounds.
    Certify(robustflow::app::certify::CertifyArgs),
    /// ERM versus a robust model on the bundled breast-cancer data, under PGD-L2 attacks.
    Demo(robustflow::app::train::DemoArgs),
    /// The benchmark grid: datasets x methods x attacks and shifts x seeds (`bench merge` joins shards).
    Bench(robustflow::app::bench::BenchArgs),
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `println!` to a closed pipe (`robustflow train ... | head`)
    // panics; restore the default action so the process ends quietly, like other Unix
    // tools.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists; `signal` with
    // SIG_DFL installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // The thread count, capped (with a warning) at a few per core.
    let threads = match cli.global.threads.map(robustflow::app::thread_count) {
        None => None,
        Some(Ok((t, warning))) => {
            if let Some(w) = warning {
                eprintln!("warning: {w}");
            }
            Some(t)
        }
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // candle re-reads its thread count on every matmul (from /proc/cpuinfo unless
    // RAYON_NUM_THREADS is set): pin it once, before any other thread starts.
    robustflow::model::pin_candle_threads(
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    );
    if let Some(t) = threads {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global();
    }
    let res: robustflow::Result<()> = match cli.cmd {
        Cmd::Flow(a) => robustflow::app::flow::run(&a, &cli.global).map(|_| ()),
        Cmd::Mmd(a) => robustflow::app::mmd::run(&a, &cli.global).map(|_| ()),
        Cmd::FitKl(a) => robustflow::app::fit_kl::run(&a, &cli.global),
        Cmd::Train(a) => robustflow::app::train::run(&a, &cli.global).map(|_| ()),
        Cmd::Eval(a) => robustflow::app::eval::run(&a, &cli.global).map(|_| ()),
        Cmd::Predict(a) => robustflow::app::predict::run(&a, &cli.global).map(|_| ()),
        Cmd::Info(a) => robustflow::app::info::run(&a, &cli.global).map(|_| ()),
        Cmd::Certify(a) => robustflow::app::certify::run(&a, &cli.global).map(|_| ()),
        Cmd::Demo(a) => robustflow::app::train::run_demo(&a, &cli.global).map(|_| ()),
        Cmd::Bench(a) => robustflow::app::bench::run(&a, &cli.global).map(|_| ()),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
