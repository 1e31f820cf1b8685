//! `robustflow info`: what a saved model is — architecture, features and schema (columns,
//! categories, standardisation), training settings, the selected radius or penalty (if
//! `train --select` chose one) and the metrics saved in `report.json`.
//!
//! The directory is loaded and validated as `eval` and `predict` load it (format
//! version, architecture, schema and weights: [`crate::model::check`]); a path that is not
//! a model directory is an error saying so. `--json` prints one JSON object:
//! `model_dir`, `format`, `crate_version`, `architecture` (with `n_params`), `schema` and
//! `training` (as saved in `model.json`), `selected` (`{parameter, value, method,
//! criterion}` or null), `selection` (the whole table of `report.json`, or null) and
//! `metrics` (the report's sizes, solver, objective, test metrics and last epoch, or null
//! without a `report.json`).

use super::GlobalOpts;
use crate::data::{ColumnEncoder, Impute, Schema, Task};
use crate::error::{Error, Result};
use crate::model::Head;
use crate::train::TrainedModel;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Arguments of `robustflow info`.
#[derive(Debug, Clone, clap::Args)]
pub struct InfoArgs {
    /// The model directory written by `robustflow train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Load and validate a model directory, with a clear error for a path that is not one
/// (missing, a file, or a directory without `model.json`).
pub fn load_model_dir(dir: &Path) -> Result<TrainedModel> {
    let hint = "give the directory written by `robustflow train --out DIR`";
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Other(format!(
                "{}: no such model directory; {hint}",
                dir.display()
            )))
        }
        Err(e) => return Err(Error::io(dir, e)),
        Ok(m) if !m.is_dir() => {
            return Err(Error::Other(format!(
                "{}: is a file, not a model directory; {hint}",
                dir.display()
            )))
        }
        Ok(_) => {}
    }
    if !dir.join("model.json").exists() {
        return Err(Error::Other(format!(
            "{}: not a robustflow model directory (no model.json); {hint} (model.json, model.safetensors, report.json)",
            dir.display()
        )));
    }
    TrainedModel::load(dir)
}

/// The `report.json` of `dir` as JSON (None when absent).
fn raw_report(dir: &Path) -> Result<Option<Value>> {
    let p = dir.join("report.json");
    match std::fs::read(&p) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).map_err(|e| {
            Error::Data {
                path: p.clone(),
                row: None,
                col: None,
                msg: format!("{e}"),
            }
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&p, e)),
    }
}

/// The description of a saved model printed by `info --json`.
pub fn describe(dir: &Path) -> Result<Value> {
    describe_loaded(dir, &load_model_dir(dir)?)
}

/// [`describe`] for the model `m` loaded from `dir`.
pub fn describe_loaded(dir: &Path, m: &TrainedModel) -> Result<Value> {
    let meta: Value = {
        let p = dir.join("model.json");
        let b = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
        serde_json::from_slice(&b)?
    };
    let report = raw_report(dir)?;
    let arch = &m.model.arch;
    let selection = report
        .as_ref()
        .and_then(|r| r.get("selection"))
        .filter(|s| !s.is_null())
        .cloned();
    let selected = selection.as_ref().map(|s| {
        json!({
            "parameter": s["parameter"],
            "value": s["chosen"],
            "method": s["method"],
            "criterion": s["criterion"],
        })
    });
    let metrics = report.as_ref().map(|r| {
        let mut o = serde_json::Map::new();
        for k in [
            "ambiguity",
            "n_train",
            "n_val",
            "n_test",
            "solver",
            "status",
            "iterations",
            "objective",
            "optimality",
            "optimality_measure",
            "grad_norm",
            "best_epoch",
            "stopped_early",
            "test",
            "warnings",
            "fit_time_s",
        ] {
            if let Some(v) = r.get(k) {
                o.insert(k.into(), v.clone());
            }
        }
        let last = r
            .get("epochs")
            .and_then(|e| e.as_array())
            .and_then(|e| e.last())
            .cloned()
            .unwrap_or(Value::Null);
        o.insert(
            "epochs".into(),
            json!(r
                .get("epochs")
                .and_then(|e| e.as_array())
                .map_or(0, |e| e.len())),
        );
        o.insert("last_epoch".into(), last);
        Value::Object(o)
    });
    let mut a = serde_json::to_value(arch)?;
    a["n_params"] = json!(m.model.n_params());
    a["n_outputs"] = json!(arch.head.n_out());
    Ok(json!({
        "model_dir": dir.display().to_string(),
        "format": meta["format"],
        "crate_version": meta["crate_version"],
        "architecture": a,
        "schema": meta["schema"],
        "training": meta["training"],
        "selected": selected,
        "selection": selection,
        "metrics": metrics,
    }))
}

/// A JSON value as text: numbers as written (shortest round-trip form), strings bare.
fn num(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A metric: 6 decimals.
fn met(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if v.is_f64() => format!("{f:.6}"),
        _ => num(v),
    }
}

/// Flatten a JSON object into `key=value` pairs (nested keys joined with `.`; nulls
/// left out).
fn flatten(prefix: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        Value::Null => {}
        Value::String(s) => out.push(format!("{prefix}={s}")),
        other => out.push(format!("{prefix}={other}")),
    }
}

fn schema_text(s: &Schema, out: &mut String) {
    let task = match s.task {
        Task::Classification => format!(
            "classification of {:?}, {} classes: {}",
            s.target,
            s.classes.len(),
            s.classes.join(", ")
        ),
        Task::Regression => format!(
            "regression of {:?}{}",
            s.target,
            s.target_scale
                .map(|(m, sd)| format!(
                    " (standardised: mean {m}, std {sd}; predictions in original units)"
                ))
                .unwrap_or_default()
        ),
    };
    out.push_str(&format!("task:          {task}\n"));
    out.push_str(&format!(
        "missing cells: {}\n",
        match s.impute {
            None => "an error (trained without --impute)".to_string(),
            Some(Impute::Mean) =>
                "filled (--impute mean: numeric columns the training mean, categorical ones the most frequent category)"
                    .to_string(),
            Some(Impute::Drop) => "rows dropped (--impute drop)".to_string(),
        }
    ));
    out.push_str(&format!(
        "columns:       {} input columns -> {} features, each standardised (x - mean) / std with the training part's mean and std\n",
        s.columns.len(),
        s.dim()
    ));
    if !s.dropped.is_empty() {
        out.push_str(&format!(
            "dropped:       {} (constant in training)\n",
            s.dropped.join(", ")
        ));
    }
    out.push_str(&format!(
        "  {:<28} {:<12} {:<28} {:>14} {:>14}\n",
        "column", "type", "feature", "mean", "std"
    ));
    let mut k = 0;
    for c in &s.columns {
        match &c.encoder {
            ColumnEncoder::Numeric { fill } => {
                out.push_str(&format!(
                    "  {:<28} {:<12} {:<28} {:>14.6} {:>14.6}{}\n",
                    c.name,
                    "numeric",
                    s.features.get(k).map(String::as_str).unwrap_or(""),
                    s.mean.get(k).copied().unwrap_or(f64::NAN),
                    s.std.get(k).copied().unwrap_or(f64::NAN),
                    fill.map(|f| format!("  (missing -> {f})"))
                        .unwrap_or_default()
                ));
                k += 1;
            }
            ColumnEncoder::OneHot { categories, fill } => {
                for (r, cat) in categories.iter().enumerate() {
                    let (name, ty) = if r == 0 {
                        (c.name.as_str(), "categorical")
                    } else {
                        ("", "")
                    };
                    out.push_str(&format!(
                        "  {:<28} {:<12} {:<28} {:>14.6} {:>14.6}{}\n",
                        name,
                        ty,
                        format!("{}={cat}", c.name),
                        s.mean.get(k).copied().unwrap_or(f64::NAN),
                        s.std.get(k).copied().unwrap_or(f64::NAN),
                        if r == 0 {
                            fill.as_ref()
                                .map(|f| format!("  (missing -> {f})"))
                                .unwrap_or_default()
                        } else {
                            String::new()
                        }
                    ));
                    k += 1;
                }
            }
        }
    }
}

/// The text printed by `info` (without `--json`) for the model `m` loaded from `dir`
/// and its description `d` ([`describe_loaded`]).
pub fn text(dir: &Path, m: &TrainedModel, d: &Value) -> Result<String> {
    let arch = &m.model.arch;
    let mut s = String::new();
    s.push_str(&format!(
        "model:         {} (model.json format {}, written by robustflow {})\n",
        dir.display(),
        num(&d["format"]),
        num(&d["crate_version"])
    ));
    let head = match arch.head {
        Head::Binary => "binary head (1 logit, cross-entropy)".to_string(),
        Head::Multi(k) => format!("softmax head ({k} logits, cross-entropy)"),
        Head::Regression => "regression head (1 output, squared loss)".to_string(),
    };
    let hidden = if arch.hidden.is_empty() {
        String::new()
    } else {
        format!(
            " -> hidden {} ({:?})",
            arch.hidden
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join("-"),
            arch.activation
        )
        .to_lowercase()
    };
    s.push_str(&format!(
        "architecture:  {}, {} inputs{hidden} -> {head}; {} parameters\n",
        format!("{:?}", arch.kind).to_lowercase(),
        arch.input_dim,
        m.model.n_params()
    ));
    schema_text(&m.schema, &mut s);
    let p = &m.params;
    let mut settings = Vec::new();
    flatten("", &d["training"], &mut settings);
    let amb = &d["training"]["ambiguity"];
    let form = match (amb.get("radius"), amb.get("penalty")) {
        (Some(r), _) if !r.is_null() => format!(", radius {}", num(r)),
        (_, Some(q)) if !q.is_null() => format!(", penalty {}", num(q)),
        _ => String::new(),
    };
    s.push_str(&format!(
        "training:      {} model, ambiguity {}{form}, solver {} (used: {}), seed {}\n",
        format!("{:?}", p.model).to_lowercase(),
        m.report.ambiguity,
        num(&d["training"]["solver"]),
        if m.report.solver.is_empty() {
            "-"
        } else {
            &m.report.solver
        },
        p.seed
    ));
    // The settings, wrapped at about 100 characters.
    let mut line = String::new();
    let mut label = "  settings:    ";
    for kv in settings {
        if !line.is_empty() && line.len() + kv.len() > 84 {
            s.push_str(&format!("{label}{line}\n"));
            label = "               ";
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&kv);
    }
    if !line.is_empty() {
        s.push_str(&format!("{label}{line}\n"));
    }
    match &d["selected"] {
        Value::Null => s.push_str("selected:      none (trained with the value given)\n"),
        sel => {
            s.push_str(&format!(
                "selected:      --{} {} by --select {} on {}\n",
                num(&sel["parameter"]),
                num(&sel["value"]),
                num(&sel["method"]),
                num(&sel["criterion"])
            ));
            if let Ok(t) = serde_json::from_value::<crate::train::select::SelectionTable>(
                d["selection"].clone(),
            ) {
                let how = t
                    .criterion
                    .parse::<crate::train::select::Criterion>()
                    .map(|c| c.describe())
                    .unwrap_or_else(|_| t.criterion.clone());
                for line in t.render(&how).lines() {
                    s.push_str(&format!("  {line}\n"));
                }
            }
        }
    }
    match &d["metrics"] {
        Value::Null => s.push_str("metrics:       none (no report.json)\n"),
        r => {
            s.push_str(&format!(
                "metrics:       {} train / {} validation / {} test rows; solver {}",
                num(&r["n_train"]),
                num(&r["n_val"]),
                num(&r["n_test"]),
                num(&r["solver"])
            ));
            if !r["objective"].is_null() {
                s.push_str(&format!(", objective {}", met(&r["objective"])));
            }
            if !r["status"].is_null() {
                s.push_str(&format!(
                    " ({}, {} iterations)",
                    num(&r["status"]),
                    num(&r["iterations"])
                ));
            }
            if r["epochs"].as_u64().unwrap_or(0) > 0 {
                s.push_str(&format!(
                    ", {} epochs (best {})",
                    num(&r["epochs"]),
                    num(&r["best_epoch"])
                ));
            }
            s.push('\n');
            let t = &r["test"];
            if !t.is_null() {
                s.push_str(&format!(
                    "  test:        loss {}, accuracy {}, rmse {}\n",
                    met(&t["loss"]),
                    met(&t["accuracy"]),
                    met(&t["rmse"])
                ));
            }
            let e = &r["last_epoch"];
            if !e.is_null() {
                s.push_str(&format!(
                    "  last epoch:  loss {}, robust loss {}, radius {}, train accuracy {}\n",
                    met(&e["loss"]),
                    met(&e["robust_loss"]),
                    met(&e["radius"]),
                    met(&e["train_accuracy"])
                ));
            }
            if let Some(w) = r["warnings"].as_array().filter(|w| !w.is_empty()) {
                for x in w {
                    s.push_str(&format!("  warning:     {}\n", num(x)));
                }
            }
        }
    }
    Ok(s)
}

/// Run `robustflow info`; returns the JSON description.
pub fn run(args: &InfoArgs, _g: &GlobalOpts) -> Result<Value> {
    let m = load_model_dir(&args.model)?;
    let d = describe_loaded(&args.model, &m)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", text(&args.model, &m, &d)?);
    }
    Ok(d)
}
