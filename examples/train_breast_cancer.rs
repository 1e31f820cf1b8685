//! Train ERM and (when the Wasserstein inner solver is available) a Wasserstein-robust
//! logistic model on the bundled breast-cancer data, then compare them clean and under a
//! PGD-L2 attack. Run: `cargo run --release --example train_breast_cancer`.

use robustflow::data::{attack, load, Attack, LoadOptions, Norm};
use robustflow::dro::{build_inner, AmbiguityConfig, SetKind};
use robustflow::model::ModelKind;
use robustflow::train::{TrainParams, TrainedModel, Trainer};

fn main() -> robustflow::Result<()> {
    let data = load(
        "datasets/breast_cancer.csv",
        &LoadOptions {
            seed: 0,
            ..Default::default()
        },
    )?;
    let base = TrainParams::default()
        .model(ModelKind::Logistic)
        .epochs(60)
        .lr(0.05)
        .batch_size(64)
        .seed(0);
    let robust = AmbiguityConfig {
        set: SetKind::Wasserstein,
        penalty: Some(1.0),
        ..AmbiguityConfig::default()
    };
    let mut sets = vec![("none", AmbiguityConfig::default())];
    if build_inner(&robust).is_ok() {
        sets.push(("wasserstein", robust));
    } else {
        println!("(Wasserstein inner solver not available in this build: ERM only)");
    }
    for (name, cfg) in sets {
        let trained = Trainer::new(base.clone().ambiguity(cfg).validate()?).fit(&data)?;
        let clean = trained.evaluate(&data.test)?.accuracy.unwrap_or(f64::NAN);
        let xa = attack(
            &trained.model,
            &data.test.x,
            &data.test.y,
            &Attack::pgd(Norm::L2, 1.0),
        )?;
        let pred = trained.predict(&xa)?;
        let adv = pred
            .iter()
            .zip(&data.test.y)
            .filter(|(p, y)| p == y)
            .count() as f64
            / data.test.len() as f64;
        println!("{name:<12} clean accuracy {clean:.4}  PGD-L2 eps=1 accuracy {adv:.4}");
        let dir = format!("out/example/{name}");
        trained.save(&dir)?;
        let back = TrainedModel::load(&dir)?;
        assert_eq!(back.predict(&data.test.x)?, trained.predict(&data.test.x)?);
    }
    Ok(())
}
