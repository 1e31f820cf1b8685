//! Smoke test: the crate links and a tiny MMD flow runs.
use ndarray::array;
use robustflow::energy::MmdEnergy;
use robustflow::flow::{Executor, FlowConfig, Wasserstein};
use robustflow::kernel::Kernel;
use robustflow::measure::Particles;

#[test]
fn tiny_mmd_flow_decreases_energy() {
    let y = Particles::uniform(array![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).unwrap();
    let mut mu = Particles::uniform(array![[2.0, 2.0], [2.5, 1.5]]).unwrap();
    let e = MmdEnergy::new(Kernel::gaussian(1.0).unwrap(), y).unwrap();
    let mut ex = Executor::new(FlowConfig::new(50, 0.5).unwrap()).unwrap();
    let r = ex.run(&mut mu, &e, &mut Wasserstein::new(1.0).unwrap()).unwrap();
    assert!(r.final_energy < r.trace[0].energy);
}
