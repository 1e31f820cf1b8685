//! Summaries of seeded experiment runs (the library side of `robustflow flow`'s reports).
//!
//! Per flow, over seeds: quantiles ([`Quantiles`]) of the final held-out `MMD^2(mu, pi')`
//! and of the final training `MMD^2 = 2 F(mu)` the flows minimise, the wall time, and the
//! median over seeds of the seed-by-seed ratio to the plain MMD flow (`flow / mmd`, when
//! `mmd` ran). The per-flow outcome of the first seed and the median curves against the
//! number of updates feed `report.json` and the plots.

use super::{ExperimentRun, Quantiles};
use crate::error::Result;
use crate::flow::Geometry;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A number as JSON, or `null` when it is not finite.
pub fn finite_or_null(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

/// One flow's results over seeds.
#[derive(Debug, Clone)]
pub struct FlowSummary {
    /// The flow's name.
    pub flow: String,
    /// Final held-out `MMD^2`, over seeds.
    pub final_mmd2: Quantiles,
    /// Final training `MMD^2 = 2 F(mu)`, over seeds.
    pub final_train_mmd2: Quantiles,
    /// Wall time, over seeds.
    pub time_s: Quantiles,
    /// Median over seeds of `final_mmd2(flow) / final_mmd2(mmd)` (when `mmd` ran).
    pub median_ratio_to_mmd: Option<f64>,
    /// The same for the training `MMD^2`.
    pub median_train_ratio_to_mmd: Option<f64>,
    /// Final held-out `MMD^2` per seed.
    pub per_seed_final_mmd2: Vec<f64>,
    /// Final training `MMD^2` per seed.
    pub per_seed_final_train_mmd2: Vec<f64>,
}

/// Final values of `name` in every run (`None` when a run lacks the flow or the value):
/// the held-out `MMD^2`, or with `train` the training `MMD^2 = 2 F`.
fn finals_of(runs: &[ExperimentRun], name: &str, train: bool) -> Option<Vec<f64>> {
    runs.iter()
        .map(|r| {
            r.flows.iter().find(|(n, _)| n == name).and_then(|(_, o)| {
                if train {
                    Some(2.0 * o.result.final_energy)
                } else {
                    o.result.final_mmd2
                }
            })
        })
        .collect()
}

/// Median over seeds of the seed-by-seed ratio `a / b`.
fn median_ratio(a: &[f64], b: &Option<Vec<f64>>) -> Option<f64> {
    b.as_ref().map(|b| {
        let r: Vec<f64> = a.iter().zip(b).map(|(a, c)| a / c).collect();
        Quantiles::of(&r).map(|q| q.median).unwrap_or(f64::NAN)
    })
}

impl FlowSummary {
    /// The summaries of `flows` (in that order) over the seeded `runs`; flows without a
    /// final value in some run are left out.
    pub fn over_seeds(runs: &[ExperimentRun], flows: &[Geometry]) -> Result<Vec<FlowSummary>> {
        let base = finals_of(runs, "mmd", false);
        let base_train = finals_of(runs, "mmd", true);
        let mut out = Vec::new();
        for name in flows.iter().map(|g| g.to_string()) {
            let finals = finals_of(runs, &name, false).unwrap_or_default();
            let train = finals_of(runs, &name, true).unwrap_or_default();
            let times: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.flows.iter().find(|(n, _)| *n == name))
                .map(|(_, o)| o.result.time_s)
                .collect();
            if finals.is_empty() || train.is_empty() {
                continue;
            }
            out.push(FlowSummary {
                final_mmd2: Quantiles::of(&finals)?,
                final_train_mmd2: Quantiles::of(&train)?,
                time_s: Quantiles::of(&times)?,
                median_ratio_to_mmd: median_ratio(&finals, &base),
                median_train_ratio_to_mmd: median_ratio(&train, &base_train),
                per_seed_final_mmd2: finals,
                per_seed_final_train_mmd2: train,
                flow: name,
            });
        }
        Ok(out)
    }

    /// The `summary.<flow>` entry of `report.json`.
    pub fn to_json(&self) -> Value {
        json!({
            "final_mmd2": self.final_mmd2,
            "final_train_mmd2": self.final_train_mmd2,
            "time_s": self.time_s,
            "median_ratio_to_mmd": self.median_ratio_to_mmd.map(finite_or_null),
            "median_train_ratio_to_mmd": self.median_train_ratio_to_mmd.map(finite_or_null),
            "per_seed_final_mmd2": self.per_seed_final_mmd2,
            "per_seed_final_train_mmd2": self.per_seed_final_train_mmd2,
        })
    }

    /// Header of `summary.csv` (matches [`FlowSummary::csv_row`]).
    pub fn csv_header() -> Vec<String> {
        [
            "flow",
            "seeds",
            "median_mmd2",
            "q25_mmd2",
            "q75_mmd2",
            "min_mmd2",
            "max_mmd2",
            "median_ratio_to_mmd",
            "median_time_s",
            "median_train_mmd2",
            "q25_train_mmd2",
            "q75_train_mmd2",
            "median_train_ratio_to_mmd",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// The row of `summary.csv` (ratios empty when `mmd` did not run).
    pub fn csv_row(&self) -> Vec<String> {
        let (q, qtr) = (&self.final_mmd2, &self.final_train_mmd2);
        let opt = |r: Option<f64>| r.map(|r| format!("{r:e}")).unwrap_or_default();
        vec![
            self.flow.clone(),
            q.n.to_string(),
            format!("{:e}", q.median),
            format!("{:e}", q.q25),
            format!("{:e}", q.q75),
            format!("{:e}", q.min),
            format!("{:e}", q.max),
            opt(self.median_ratio_to_mmd),
            format!("{:.3}", self.time_s.median),
            format!("{:e}", qtr.median),
            format!("{:e}", qtr.q25),
            format!("{:e}", qtr.q75),
            opt(self.median_train_ratio_to_mmd),
        ]
    }
}

impl ExperimentRun {
    /// The `flows` entry of `report.json` for this run: per flow its final held-out and
    /// training values, iterations, updates, time, stop reason, mass, effective sample size
    /// and the number of particles with weight above `1e-3 / n`.
    pub fn flows_json(&self) -> Map<String, Value> {
        let mut flows = Map::new();
        for (name, o) in &self.flows {
            let r = &o.result;
            let w = o.particles.weights();
            let nonzero = w.iter().filter(|&&a| a > 1e-3 / w.len() as f64).count();
            flows.insert(
                name.clone(),
                json!({
                    "final_mmd2": r.final_mmd2.map(finite_or_null),
                    "final_energy": finite_or_null(r.final_energy),
                    "steps": r.steps,
                    "updates": r.updates,
                    "time_s": r.time_s,
                    "stop_reason": r.stop_reason,
                    "mass": o.particles.mass(),
                    "ess": o.particles.ess(),
                    "nonzero": nonzero,
                }),
            );
        }
        flows
    }

    /// A box around the target sample, the initial and the final particles of every flow
    /// (first two coordinates), with a 5% margin: `((x0, x1), (y0, y1))`.
    pub fn plot_bounds(&self) -> ((f64, f64), (f64, f64)) {
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        let finals = self
            .flows
            .iter()
            .flat_map(|(_, o)| o.particles.x.outer_iter());
        for r in self
            .target_sample
            .outer_iter()
            .chain(self.init.x.outer_iter())
            .chain(finals)
        {
            x0 = x0.min(r[0]);
            x1 = x1.max(r[0]);
            y0 = y0.min(r[1]);
            y1 = y1.max(r[1]);
        }
        let (px, py) = (0.05 * (x1 - x0), 0.05 * (y1 - y0));
        ((x0 - px, x1 + px), (y0 - py, y1 + py))
    }
}

/// The median over seeds of flow `name`'s trace at each recorded number of updates: the
/// held-out `MMD^2`, or with `train` the training `MMD^2 = 2 F`.
pub fn median_curve(runs: &[ExperimentRun], name: &str, train: bool) -> Vec<(f64, f64)> {
    let mut by_up: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for r in runs {
        if let Some((_, o)) = r.flows.iter().find(|(n, _)| n == name) {
            for rec in &o.result.trace {
                let v = if train {
                    Some(2.0 * rec.energy)
                } else {
                    rec.mmd2
                };
                if let Some(v) = v {
                    by_up.entry(rec.updates).or_default().push(v);
                }
            }
        }
    }
    by_up
        .into_iter()
        .filter_map(|(u, v)| Quantiles::of(&v).ok().map(|q| (u as f64, q.median)))
        .collect()
}
