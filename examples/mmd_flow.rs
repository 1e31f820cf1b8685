//! The library API of a flow run: build a target, particles and the MMD energy, then run
//! the plain MMD (Wasserstein) flow and IFT from the same particles with the `Executor`,
//! and compare them at equal numbers of updates.
//!
//! Run with `cargo run --release --example mmd_flow` (a few seconds).

use rand::rngs::StdRng;
use rand::SeedableRng;
use robustflow::energy::{Energy, MmdEnergy};
use robustflow::experiments::mixture_target;
use robustflow::flow::{
    Executor, FlowParams, FlowStep, Ift, MmdProx, ProxSolver, QpOptions, Trace, Wasserstein,
};
use robustflow::kernel::Kernel;
use robustflow::measure::{Distribution, Gaussian, Particles};

fn main() -> robustflow::Result<()> {
    let mut rng = StdRng::seed_from_u64(0);
    // target: the 2-D three-component mixture, represented by 200 samples
    let target = mixture_target()?;
    let y = Particles::uniform(target.sample(200, &mut rng))?;
    // particles: 200 draws from N((5,5), I)
    let x0 = Gaussian::isotropic(ndarray::array![5.0, 5.0], 1.0)?.sample(200, &mut rng);
    let mu0 = Particles::uniform(x0)?;
    // energy: 1/2 MMD^2 with a Gaussian kernel of bandwidth 1
    let energy = MmdEnergy::new(Kernel::gaussian(1.0)?, y)?;
    println!("initial MMD^2 = {:.4e}", 2.0 * energy.value(&mu0)?);

    let updates = 600;
    let flows: Vec<Box<dyn FlowStep>> = vec![
        Box::new(Wasserstein::new(1.0)?), // plain MMD flow, x <- x - tau grad f
        // IFT: W step, then the MMD-prox weight step (simplex QP, solved to a KKT residual of 1e-6)
        Box::new(Ift {
            w: Wasserstein::new(1.0)?,
            prox: MmdProx::new(1.0)?.with_solver(ProxSolver::Exact(QpOptions {
                tol: 1e-6,
                max_iter: 100,
                power_iters: 30,
                ..QpOptions::default()
            }))?,
        }),
    ];
    for mut step in flows {
        // compare at equal numbers of updates: IFT makes two per iteration
        let iters = updates / step.updates_per_step();
        let cfg = FlowParams::new(iters, 1.0)
            .seed(0)
            .trace_every(iters / 6)
            .check()?;
        let mut ex = Executor::new(cfg)?.observe(Trace::default());
        let mut mu = mu0.clone();
        let res = ex.run(&mut mu, &energy, &mut step)?;
        println!(
            "\n{} ({} iterations, {} updates, {:.2} s)",
            res.flow, res.steps, res.updates, res.time_s
        );
        for r in &res.trace {
            println!(
                "  updates {:>4}  MMD^2 {:.4e}  ESS {:>6.1}",
                r.updates,
                r.mmd2.unwrap_or(f64::NAN),
                r.ess
            );
        }
        let empty = mu.weights().iter().filter(|&&w| w < 1e-6).count();
        println!("  particles with (almost) no mass: {empty} of {}", mu.len());
    }
    Ok(())
}
