//! `robustflow eval`: accuracy and loss of a trained model on a CSV, clean, under white-box
//! attacks (FGSM / PGD, L2 / Linf, against the model itself) and under covariate shift.
//!
//! Attack budgets and shifts are in **standardised units** (the z-scored features the
//! model sees, scaled with the training means and standard deviations saved in the
//! model): Linf `eps = 0.1` moves every feature by at most 0.1 training standard
//! deviations; L2 `eps = 1` is a perturbation of Euclidean norm 1 in that space.
//!
//! Outputs: a table on stdout; `--report FILE.json` (`rows`: one object per condition),
//! `--csv FILE.csv` (the same table), `--predictions FILE.csv` (one row per input row:
//! `row,label,predicted,p_<class>...,loss`, on the clean data).

use super::args::{Budgets, ModelDataArgs};
use super::GlobalOpts;
use crate::data::{AttackKind, Norm, RawTable, Shift};
use crate::dro::PointLoss;
use crate::error::{Error, Result};
use crate::train::TrainedModel;
pub use crate::train::{evaluate, EvalRow};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Arguments of `robustflow eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// The model and the CSV to evaluate.
    #[command(flatten)]
    pub io: ModelDataArgs,
    /// White-box attack: fgsm or pgd.
    #[arg(long)]
    pub attack: Option<AttackKind>,
    /// Norm of the attack budget: l2 or linf.
    #[arg(long, default_value = "l2")]
    pub norm: Norm,
    /// Attack budgets, comma separated, in standardised units (default 0.1,0.5,1; needs
    /// --attack).
    #[arg(long)]
    pub eps: Option<String>,
    /// PGD iterations (default 20; needs --attack).
    #[arg(long)]
    pub attack_steps: Option<usize>,
    /// Covariate shift of the standardised features: `COL+D`, `COL-D`, `COL*F`, comma
    /// separated; `*` = every feature (e.g. `'*+0.5'`).
    #[arg(long)]
    pub shift: Option<String>,
    /// Write per-row predictions (clean data) to this CSV.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// Write the results as JSON.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the results table as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

/// The `eval` report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The model directory.
    pub model: String,
    /// The data file.
    pub data: String,
    /// Number of rows evaluated.
    pub n: usize,
    /// Units of attack budgets and shifts.
    pub units: String,
    /// One row per condition.
    pub rows: Vec<EvalRow>,
}

/// Parse a comma-separated list of non-negative budgets (see [`Budgets`]).
pub fn parse_eps(s: &str) -> Result<Vec<f64>> {
    Ok(s.parse::<Budgets>()?.0)
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|a| format!("{a:.4}")).unwrap_or_else(|| "-".into())
}

/// Format the rows as a text table.
pub fn table(rows: &[EvalRow]) -> String {
    let mut s = format!(
        "{:<28} {:>6} {:>8} {:>10} {:>10} {:>10}\n",
        "condition", "norm", "eps", "accuracy", "loss", "rmse"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<28} {:>6} {:>8} {:>10} {:>10.4} {:>10}\n",
            r.condition,
            r.norm.clone().unwrap_or_else(|| "-".into()),
            r.eps.map(|e| format!("{e}")).unwrap_or_else(|| "-".into()),
            fmt_opt(r.accuracy),
            r.loss,
            fmt_opt(r.rmse)
        ));
    }
    s
}

/// Run `robustflow eval`.
pub fn run(args: &EvalArgs, _g: &GlobalOpts) -> Result<EvalReport> {
    let ModelDataArgs {
        model: model_dir,
        data: data_path,
    } = &args.io;
    let guard = crate::outputs::OutputGuard::new()
        .input("data", data_path)
        .model_dir("model", model_dir);
    let outs: Vec<(&str, &std::path::Path)> = [
        ("predictions", args.predictions.as_deref()),
        ("report", args.report.as_deref()),
        ("csv", args.csv.as_deref()),
    ]
    .into_iter()
    .filter_map(|(f, p)| p.map(|p| (f, p)))
    .collect();
    guard.files(&outs)?;
    if args.attack.is_none() {
        for (flag, given) in [
            ("eps", args.eps.is_some()),
            ("attack-steps", args.attack_steps.is_some()),
        ] {
            if given {
                return Err(Error::param(
                    flag,
                    "given",
                    "has no effect without --attack fgsm|pgd",
                ));
            }
        }
    }
    let attack_steps = args.attack_steps.unwrap_or(20);
    let model = TrainedModel::load(model_dir)?;
    let table_in = RawTable::read(data_path)?;
    let data = model.encode(&table_in)?;
    if data.is_empty() {
        return Err(Error::Data {
            path: data_path.clone(),
            row: None,
            col: None,
            msg: "no rows to evaluate".into(),
        });
    }
    let (kind, norm) = (args.attack, args.norm);
    // Parsed here, after the output checks: a bad list is an error of the run (exit code 1).
    let eps = parse_eps(args.eps.as_deref().unwrap_or("0.1,0.5,1"))?;
    crate::error::check_count("attack-steps", attack_steps)?;
    let shift = args
        .shift
        .as_deref()
        .map(|s| Shift::parse(s, &model.schema.features))
        .transpose()?;
    let rows = evaluate(
        &model,
        &data.x,
        &data.y,
        kind,
        norm,
        &eps,
        attack_steps,
        shift.as_ref(),
    )?;
    println!(
        "model {} on {} ({} rows; attack budgets and shifts in standardised units)",
        model_dir.display(),
        data_path.display(),
        data.len()
    );
    print!("{}", table(&rows));
    let report = EvalReport {
        model: model_dir.display().to_string(),
        data: data_path.display().to_string(),
        n: data.len(),
        units: "standardised (training z-scores)".into(),
        rows: rows.clone(),
    };
    if let Some(p) = &args.report {
        crate::io::write_json_atomic(p, &report)?;
    }
    if let Some(p) = &args.csv {
        let header: Vec<String> = ["condition", "norm", "eps", "accuracy", "loss", "rmse"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let opt = |v: Option<f64>| v.map(|a| format!("{a}")).unwrap_or_default();
        crate::io::write_csv_atomic(
            p,
            &header,
            rows.iter().map(|r| {
                vec![
                    r.condition.clone(),
                    r.norm.clone().unwrap_or_default(),
                    opt(r.eps),
                    opt(r.accuracy),
                    format!("{}", r.loss),
                    opt(r.rmse),
                ]
            }),
        )?;
    }
    if let Some(p) = &args.predictions {
        write_predictions(p, &model, &data)?;
    }
    Ok(report)
}

/// Write `row,label,predicted,p_<class>...,loss`, one line per row of `data` (clean).
pub fn write_predictions(
    path: &std::path::Path,
    model: &TrainedModel,
    data: &crate::data::Dataset,
) -> Result<()> {
    let pred = model.predict(&data.x)?;
    let proba = model.predict_proba(&data.x)?;
    let loss = model.model.losses(&data.x, &data.y)?;
    let mut header = vec!["row".to_string(), "label".into(), "predicted".into()];
    for c in &model.schema.classes {
        header.push(format!("p_{c}"));
    }
    header.push("loss".into());
    let s = &model.schema;
    let rows = (0..data.len()).map(|i| {
        let mut r = vec![
            format!("{}", data.rows[i]),
            s.label_name(data.y[i]),
            match s.n_classes() {
                Some(_) => s.label_name(pred[i]),
                None => format!("{}", pred[i]),
            },
        ];
        r.extend(proba[i].iter().map(|p| format!("{p}")));
        r.push(format!("{}", loss[i]));
        r
    });
    crate::io::write_csv_atomic(path, &header, rows)
}
