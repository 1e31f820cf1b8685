//! `robustflow certify`: for a trained model, the worst-case risk over an ambiguity set at
//! each radius, bracketed by the value of a feasible distribution (a lower bound) and a
//! valid upper bound where theory gives one, `null` with the reason otherwise: the exact
//! dual with globally solved inner sups for `wasserstein` (squared cost) on linear,
//! logistic and softmax models ([`crate::dro::w2exact`]), Sinha's certificate with a proven
//! smoothness constant for MLPs, the duals for `kl` / `chi2` / `cvar`, none for `mmd`;
//! with the exact closed form where one exists (the 1-Wasserstein ball with a norm cost for
//! logistic regression: `--ambiguity wasserstein --norm l2`). The mathematics is in
//! [`crate::dro::certify`](mod@crate::dro::certify); radii are those of [`crate::dro::AmbiguityConfig`], in the
//! standardised feature space the model sees. A diverging inner solve is an error naming
//! `--inner-step-size`; nothing is written then.
//!
//! Outputs: a table on stdout; `--report FILE.json` with `rows` (one object per radius:
//! `ambiguity, radius, lower_bound, upper_bound, upper_bound_note, closed_form,
//! radius_reached, multiplier, empirical_risk`, `null` where there is none); `--dump-worst FILE.csv` with the
//! worst-case particles (`radius`, the standardised features, `label`, `weight`).

use super::args::{InnerArgs, InnerDefaults, ModelDataArgs, Radii, SetArgs};
use super::GlobalOpts;
use crate::data::RawTable;
use crate::dro::certify::write_worst_csv;
use crate::dro::{certify_full, AmbiguityConfig, Batch, CertifyRow, Norm, SetKind};
use crate::error::{Error, Result};
use crate::train::TrainedModel;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Arguments of `robustflow certify`.
#[derive(Debug, Clone, clap::Args)]
pub struct CertifyArgs {
    /// The model and the CSV to certify on.
    #[command(flatten)]
    pub io: ModelDataArgs,
    /// The ambiguity set: wasserstein, kl, chi2, cvar, mmd.
    #[arg(long)]
    pub ambiguity: SetKind,
    /// Radii, comma separated (wasserstein: mean squared transport cost, or eps with
    /// --norm; kl / chi2: the divergence; cvar: ln(1/alpha); mmd: the MMD).
    #[arg(long)]
    pub radius: Radii,
    /// wasserstein: use the 1-Wasserstein ball with this norm as cost (l2, l1, linf).
    #[arg(long)]
    pub norm: Option<Norm>,
    /// Options of particular sets.
    #[command(flatten)]
    pub set: SetArgs,
    /// The inner solver's effort (certify's defaults: `InnerDefaults::certify`).
    #[command(flatten)]
    pub inner: InnerArgs,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the worst-case particles to this CSV.
    #[arg(long)]
    pub dump_worst: Option<PathBuf>,
    /// Write the rows as JSON.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// The `certify` report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertifyReport {
    /// The model directory.
    pub model: String,
    /// The data file.
    pub data: String,
    /// Number of rows.
    pub n: usize,
    /// Units of the radii.
    pub units: String,
    /// One row per radius.
    pub rows: Vec<CertifyRow>,
}

/// Parse a comma-separated list of non-negative radii (at least one; see [`Radii`]).
pub fn parse_radii(s: &str) -> Result<Vec<f64>> {
    Ok(s.parse::<Radii>()?.0)
}

impl CertifyArgs {
    /// The ambiguity configuration these arguments describe (checked; the radius is set
    /// per row by [`certify_full`]).
    pub fn config(&self) -> Result<AmbiguityConfig> {
        let set = self.ambiguity;
        if set == SetKind::None || set == SetKind::Wfr {
            return Err(Error::param(
                "ambiguity",
                set,
                "certify supports wasserstein, kl, chi2, cvar and mmd",
            ));
        }
        let inner = self.inner.resolve(InnerDefaults::certify(set));
        let cfg = AmbiguityConfig {
            set,
            radius: Some(0.0),
            penalty: None,
            inner_steps: inner.inner_steps,
            inner_step_size: inner.inner_step_size,
            label_cost: self.set.label_cost,
            inner_flow: self.set.inner_flow,
            kernel: self.set.kernel,
            bandwidth: self.set.bandwidth,
            // the certificate bounds are for the exact kernel
            approx: crate::kernel::Approx::Exact,
            extra_support: self.set.extra_support,
            warm_start: false,
            seed: self.seed,
            norm: self.norm,
            kl_penalty: None,
            weight_flow: false,
            certificate: true,
            tune_iters: inner.tune_iters,
            tune_tol: inner.tune_tol,
        };
        cfg.check_ref()?;
        Ok(cfg)
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|a| format!("{a:.6}")).unwrap_or_else(|| "-".into())
}

/// Format the rows as a text table.
pub fn table(rows: &[CertifyRow]) -> String {
    let mut s = format!(
        "{:<14} {:>9} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11}\n",
        "ambiguity", "radius", "lower", "upper", "closed", "reached", "multiplier", "empirical"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<14} {:>9} {:>11.6} {:>11} {:>11} {:>11.4e} {:>11} {:>11.6}\n",
            r.ambiguity,
            r.radius,
            r.lower_bound,
            fmt_opt(r.upper_bound),
            fmt_opt(r.closed_form),
            r.radius_reached,
            r.multiplier
                .map(|m| format!("{m:.4e}"))
                .unwrap_or_else(|| "inf".into()),
            r.empirical_risk
        ));
    }
    s
}

/// Run `robustflow certify`.
pub fn run(args: &CertifyArgs, _g: &GlobalOpts) -> Result<CertifyReport> {
    let ModelDataArgs {
        model: model_dir,
        data: data_path,
    } = &args.io;
    let guard = crate::outputs::OutputGuard::new()
        .input("data", data_path)
        .model_dir("model", model_dir);
    let outs: Vec<(&str, &std::path::Path)> = [
        ("dump-worst", args.dump_worst.as_deref()),
        ("report", args.report.as_deref()),
    ]
    .into_iter()
    .filter_map(|(f, p)| p.map(|p| (f, p)))
    .collect();
    guard.files(&outs)?;
    let cfg = args.config()?;
    let radii = &args.radius.0;
    let model = TrainedModel::load(model_dir)?;
    let table_in = RawTable::read(data_path)?;
    let data = model.encode(&table_in)?;
    if data.is_empty() {
        return Err(Error::Data {
            path: data_path.clone(),
            row: None,
            col: None,
            msg: "no rows to certify on".into(),
        });
    }
    let idx: Vec<usize> = (0..data.len()).collect();
    let batch = Batch {
        x: &data.x,
        y: &data.y,
        d: data.d,
        idx: &idx,
    };
    let out = certify_full(&model.model, &batch, &cfg, radii)?;
    let rows: Vec<CertifyRow> = out.iter().map(|(r, _)| r.clone()).collect();
    println!(
        "model {} on {} ({} rows; radii in the standardised feature space)",
        model_dir.display(),
        data_path.display(),
        data.len()
    );
    print!("{}", table(&rows));
    if let Some(p) = &args.dump_worst {
        let cases: Vec<(f64, &crate::dro::WorstCase)> =
            out.iter().map(|(r, w)| (r.radius, w)).collect();
        write_worst_csv(p, data.d, Some(&model.schema.features), &cases)?;
    }
    let report = CertifyReport {
        model: model_dir.display().to_string(),
        data: data_path.display().to_string(),
        n: data.len(),
        units: "standardised (training z-scores)".into(),
        rows,
    };
    if let Some(p) = &args.report {
        crate::io::write_json_atomic(p, &report)?;
    }
    Ok(report)
}
