//! The `train --select` glue between the flags of `robustflow train` and
//! [`crate::train::select`]: which flag holds a list, the rules on the flags, the
//! candidates' parameters, the printed table and the saved `report.json` key `selection`.
//!
//! Rules (each broken rule is an error naming the flag):
//! - `--radius` / `--penalty` with one value and no `--select`: plain training, unchanged;
//! - a list of two or more values needs `--select val` or `--select cv:K`;
//! - `--select` needs a list (with one value there is nothing to choose);
//! - `--select-by` needs `--select`; `--patience` cannot be combined with `--select` (the
//!   refit trains on every training row, leaving no validation part to stop on);
//! - `--select val` uses `--val-fraction` (> 0) of the training part as its one held-out
//!   part; `--select cv:K` folds the whole training part, so `--val-fraction` must be 0.
//!
//! With `--select` the data are loaded without a validation part, so the refit is exactly
//! `robustflow train` with the chosen single value and `--val-fraction 0`.

use super::train::TrainArgs;
use super::GlobalOpts;
use crate::data::{LoadOptions, TabularData};
use crate::error::{Error, Result};
use crate::model::ModelKind;
use crate::train::select::{Criterion, Method, SelectionTable, Selector, ValueList};
use crate::train::{TrainedModel, Trainer, ValidParams};
use std::path::Path;

/// The selection asked for by the flags, if any (see the module documentation).
pub fn selector(args: &TrainArgs) -> Result<Option<(&'static str, Selector)>> {
    let list = |v: &Option<ValueList>| v.as_ref().is_some_and(|l| l.len() > 1);
    let show = |v: &ValueList| {
        v.0.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let parameter = match (&args.ambiguity.radius, &args.ambiguity.penalty) {
        (Some(r), _) if list(&args.ambiguity.radius) => Some(("radius", r)),
        (_, Some(p)) if list(&args.ambiguity.penalty) => Some(("penalty", p)),
        _ => None,
    };
    let Some(method) = &args.select else {
        if let Some((flag, v)) = parameter {
            return Err(Error::param(
                flag,
                show(v),
                "a list of values needs --select val (on --val-fraction) or --select cv:K (stratified K-fold) to choose among them",
            ));
        }
        if let Some(by) = &args.select_by {
            return Err(Error::param("select-by", by, "needs --select val or cv:K"));
        }
        return Ok(None);
    };
    let Some((flag, _)) = parameter else {
        return Err(Error::param(
            "select",
            method,
            "nothing to select: give --radius or --penalty a comma-separated list, e.g. --radius 0.01,0.1,1",
        ));
    };
    let method: Method = method.parse()?;
    let criterion: Criterion = args.select_by.as_deref().unwrap_or("loss").parse()?;
    if let Some(p) = args.patience {
        return Err(Error::param(
            "patience",
            p,
            "cannot be combined with --select: the refit trains on every training row, leaving no validation part to stop on",
        ));
    }
    if matches!(method, Method::Cv(_)) && args.data.val_fraction != 0.0 {
        return Err(Error::param(
            "val-fraction",
            args.data.val_fraction,
            "--select cv:K folds the whole training part; give --val-fraction 0 (or use --select val)",
        ));
    }
    Ok(Some((
        flag,
        Selector {
            method,
            val_fraction: args.data.val_fraction,
            criterion,
            seed: args.seed,
        },
    )))
}

/// The data loading options: those of `train`, without a validation part when selecting
/// (the held-out parts are made from the training part).
pub fn load_options(
    args: &TrainArgs,
    sel: Option<&(&'static str, Selector)>,
    model: ModelKind,
) -> Result<LoadOptions> {
    let mut o = args.load_options(model)?;
    if sel.is_some() {
        o.val_fraction = 0.0;
    }
    Ok(o)
}

/// The arguments with the selected flag set to the single value `v`.
fn with_value(args: &TrainArgs, flag: &str, v: f64) -> TrainArgs {
    let mut a = args.clone();
    let one = Some(ValueList(vec![v]));
    match flag {
        "radius" => a.ambiguity.radius = one,
        _ => a.ambiguity.penalty = one,
    }
    a
}

/// The validated parameters of each candidate value of the selected flag (`quiet`: no
/// progress bars, as for the fits on the held-out parts).
pub fn candidates(args: &TrainArgs, quiet: bool, flag: &str) -> Result<Vec<(f64, ValidParams)>> {
    let values = match flag {
        "radius" => args.ambiguity.radius.clone(),
        _ => args.ambiguity.penalty.clone(),
    }
    .map(|v| v.0)
    .unwrap_or_default();
    values
        .into_iter()
        .map(|v| Ok((v, with_value(args, flag, v).params(quiet)?.check()?)))
        .collect()
}

/// Fit: plainly (no selection), or select, print the table and refit with the chosen value.
pub fn fit(
    args: &TrainArgs,
    g: &GlobalOpts,
    sel: Option<&(&'static str, Selector)>,
    params: ValidParams,
    data: &TabularData,
) -> Result<(TrainedModel, Option<SelectionTable>)> {
    let Some((flag, s)) = sel else {
        return Ok((Trainer::new(params).fit(data)?, None));
    };
    let cands = candidates(args, true, flag)?;
    let table = s.score(data, flag, &cands)?;
    for c in &table.candidates {
        for w in &c.warnings {
            eprintln!("warning: selection, --{flag} {}, {w}", c.value);
        }
    }
    print!("{}", table.render(&s.criterion.describe()));
    // The refit: `train` with the chosen single value (progress bar as asked).
    let chosen = with_value(args, flag, table.chosen)
        .params(g.quiet)?
        .check()?;
    let model = Trainer::new(chosen).fit(data)?;
    Ok((model, Some(table)))
}

/// Save the model directory (with the table under `selection` in `report.json`).
pub fn save(model: &TrainedModel, table: Option<&SelectionTable>, out: &Path) -> Result<()> {
    match table {
        None => model.save(out),
        Some(t) => t.save_with_model(model, out),
    }
}
