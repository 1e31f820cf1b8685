//! A small, stable embedding API: in-memory data in, trained models and reports out.
//!
//! The Python package (`python/`, the `robustflow` module built by maturin) calls only this
//! module, so that the internals can change behind it: when they do, this file is the one
//! to fix. Every option is given by the name of the corresponding command-line flag (e.g.
//! `["--ambiguity", "wasserstein", "--radius", "0.1"]`) and parsed by the CLI's own clap
//! structures, so the names, defaults and validation are exactly those of `robustflow
//! train`, `certify`, `mmd`, `flow` and `fit-kl`.
//!
//! Tables ([`Frame`]) hold numeric or text columns. They become the CSV loader's
//! [`RawTable`] ([`RawTable::from_columns`]: numbers as numbers, NaN as missing, text
//! cells typed as when reading a file), so that typing (a column with a non-numeric cell
//! is one-hot encoded), missing values, the standardisation and the error messages are
//! those of the CLI reading the same data from a file; the messages name the table
//! `<memory>`.
//!
//! ```
//! use robustflow::api::{train, Column, Frame};
//! let x = Frame::numeric(&["a", "b"], &[0.0, 1.0, 1.0, 0.5, 2.0, 0.1, 3.0, -1.0], 4).unwrap();
//! let y = Column::Numeric(vec![0.0, 0.0, 1.0, 1.0]);
//! let m = train(&x, &y, "label", &["--ambiguity", "wasserstein", "--w1-norm", "l2",
//!                                  "--radius", "0.1"]).unwrap();
//! assert_eq!(m.predict(&x).unwrap().len(), 4);
//! ```

use crate::app::GlobalOpts;
use crate::data::table::ColumnData;
use crate::data::RawTable;
use crate::dro::{certify_full, Batch, CertifyRow};
use crate::error::{Error, Result};
use crate::train::{TrainedModel, Trainer};
use std::path::{Path, PathBuf};

/// The name given to in-memory tables in error messages.
pub const MEMORY: &str = "<memory>";

/// How the embedding API runs a command: no progress bars, nothing printed (the results are
/// returned), the process's thread pool.
const LIBRARY_OPTS: GlobalOpts = GlobalOpts {
    quiet: true,
    threads: None,
    silent: true,
};

/// One column of an in-memory table.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Numbers (NaN is a missing value).
    Numeric(Vec<f64>),
    /// Text cells (`None` is a missing value). A text column is categorical unless every
    /// non-missing cell is a number, exactly as in a CSV file.
    Text(Vec<Option<String>>),
}

impl Column {
    /// Number of cells.
    pub fn len(&self) -> usize {
        match self {
            Column::Numeric(v) => v.len(),
            Column::Text(v) => v.len(),
        }
    }
    /// True when the column has no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An in-memory table: named columns of equal length.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Column names (distinct).
    pub names: Vec<String>,
    /// The columns.
    pub columns: Vec<Column>,
}

impl Frame {
    /// A table of numeric columns from a row-major `n x names.len()` matrix.
    pub fn numeric(names: &[&str], x: &[f64], n: usize) -> Result<Frame> {
        let d = names.len();
        if x.len() != n * d {
            return Err(Error::Shape(format!(
                "{} values for {n} rows x {d} columns",
                x.len()
            )));
        }
        Ok(Frame {
            names: names.iter().map(|s| s.to_string()).collect(),
            columns: (0..d)
                .map(|j| Column::Numeric((0..n).map(|i| x[i * d + j]).collect()))
                .collect(),
        })
    }

    /// Number of rows (0 for a table without columns).
    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, Column::len)
    }

    /// The table as the CSV loader's [`RawTable`], with `extra` (e.g. the target column)
    /// appended; errors name the table [`MEMORY`].
    pub fn to_table(&self, extra: Option<(&str, &Column)>) -> Result<RawTable> {
        let mut names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let mut cols: Vec<&Column> = self.columns.iter().collect();
        if let Some((name, c)) = extra {
            names.push(name);
            cols.push(c);
        }
        if names.len() != cols.len() {
            return Err(Error::Shape(format!(
                "{} column names for {} columns",
                names.len(),
                cols.len()
            )));
        }
        if cols.is_empty() {
            return Err(Error::Shape("a table without columns".into()));
        }
        let n = cols[0].len();
        for (name, c) in names.iter().zip(&cols) {
            if c.len() != n {
                return Err(Error::Shape(format!(
                    "column {name:?} has {} rows, the first column {n}",
                    c.len()
                )));
            }
        }
        let data: Vec<ColumnData<'_>> = cols
            .iter()
            .map(|c| match c {
                Column::Numeric(v) => ColumnData::Numbers(v),
                Column::Text(v) => ColumnData::Text(v),
            })
            .collect();
        RawTable::from_columns(
            Path::new(MEMORY),
            names.iter().map(|s| s.to_string()).collect(),
            &data,
        )
    }
}

/// Parse `flags` (a subcommand's flags, without the subcommand) with the clap structure
/// `A` of that subcommand.
fn parse_args<A: clap::Args + clap::FromArgMatches>(cmd: &str, flags: &[String]) -> Result<A> {
    #[derive(clap::Parser)]
    struct W<A: clap::Args> {
        #[command(flatten)]
        a: A,
    }
    use clap::Parser;
    let argv = std::iter::once(cmd.to_string()).chain(flags.iter().cloned());
    W::<A>::try_parse_from(argv)
        .map(|w| w.a)
        .map_err(|e| Error::Other(e.render().to_string().trim().to_string()))
}

fn strings(flags: &[&str]) -> Vec<String> {
    flags.iter().map(|s| s.to_string()).collect()
}

/// A trained model: the CLI's model directory in memory.
#[derive(Debug, Clone)]
pub struct Model {
    /// The trained model, its schema and its training report.
    pub inner: TrainedModel,
}

/// Train on `x` with labels or responses `y` (named `target` in the model's schema), with
/// the flags of `robustflow train` (`--data`, `--out`, `--test`, `--target` and
/// `--test-fraction` are set here: every row is used for training). Same code path as the
/// CLI: a model trained here on a table equals the one `robustflow train --test-fraction 0`
/// fits on the same rows written to a CSV file.
pub fn train(x: &Frame, y: &Column, target: &str, flags: &[&str]) -> Result<Model> {
    train_flags(x, y, target, &strings(flags))
}

/// [`train`] with owned flags.
pub fn train_flags(x: &Frame, y: &Column, target: &str, flags: &[String]) -> Result<Model> {
    for f in flags {
        let name = f.split('=').next().unwrap_or("");
        if ["--data", "--out", "--test", "--target", "--test-fraction"].contains(&name) {
            return Err(Error::param(
                name.trim_start_matches('-'),
                f,
                "set by the embedding API (every row given is used for training)",
            ));
        }
    }
    let mut argv = strings(&["--data", MEMORY, "--out", MEMORY, "--test-fraction", "0"]);
    argv.extend(["--target".to_string(), target.to_string()]);
    argv.extend(flags.iter().cloned());
    let args: crate::app::train::TrainArgs = parse_args("train", &argv)?;
    let params = args.params(true)?.validate()?;
    let opts = args.load_options(params.model)?;
    if x.names.iter().any(|n| n == target) {
        return Err(Error::param(
            "target",
            target,
            "is also the name of a feature column",
        ));
    }
    let table = x.to_table(Some((target, y)))?;
    let data = crate::data::load_tables(&table, None, &opts)?;
    let inner = Trainer::new(params).fit(&data)?;
    Ok(Model { inner })
}

/// The defaults of `robustflow train`'s flags, as (flag name without dashes, default
/// text), including the inner solver's per-command defaults of `train`
/// ([`crate::app::args::InnerDefaults::TRAIN`]); flags without a default are absent.
pub fn train_defaults() -> Vec<(String, String)> {
    use clap::CommandFactory;
    #[derive(clap::Parser)]
    struct W {
        #[command(flatten)]
        a: crate::app::train::TrainArgs,
    }
    let mut v: Vec<(String, String)> = W::command()
        .get_arguments()
        .filter_map(|a| {
            let d = a.get_default_values();
            (!d.is_empty()).then(|| {
                (
                    a.get_long().unwrap_or("").to_string(),
                    d[0].to_string_lossy().into_owned(),
                )
            })
        })
        .collect();
    // The inner solver's effort flags have per-command defaults (they differ between
    // `train` and `certify`), resolved at run time rather than declared to clap.
    let d = crate::app::args::InnerDefaults::TRAIN;
    for (flag, value) in [
        ("inner-steps", d.inner_steps.to_string()),
        ("inner-step-size", d.inner_step_size.to_string()),
        ("tune-iters", d.tune_iters.to_string()),
        ("tune-tol", d.tune_tol.to_string()),
    ] {
        if !v.iter().any(|(f, _)| f == flag) {
            v.push((flag.to_string(), value));
        }
    }
    v
}

impl Model {
    /// Load a model directory written by `robustflow train` or [`Model::save`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Model> {
        Ok(Model {
            inner: TrainedModel::load(dir)?,
        })
    }

    /// Build from the bytes of `model.json`, `model.safetensors` and (optionally)
    /// `report.json`; everything is validated.
    pub fn from_bytes(
        model_json: &[u8],
        safetensors: &[u8],
        report_json: Option<&[u8]>,
    ) -> Result<Model> {
        Ok(Model {
            inner: TrainedModel::from_bytes(
                model_json,
                safetensors,
                report_json,
                Path::new(MEMORY),
            )?,
        })
    }

    /// Save as a model directory (`model.safetensors`, `model.json`, `report.json`) that
    /// `robustflow eval`, `certify` and `predict` read; written as a unit.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        self.inner.save(dir)
    }

    /// The feature columns of the schema (before one-hot encoding), in order.
    pub fn columns(&self) -> Vec<String> {
        self.inner
            .schema
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// The target column's name.
    pub fn target(&self) -> &str {
        &self.inner.schema.target
    }

    /// The class names in the order of the model's outputs (empty for a regression).
    pub fn classes(&self) -> Vec<String> {
        match self.inner.schema.n_classes() {
            Some(_) => self.inner.schema.classes.clone(),
            None => Vec::new(),
        }
    }

    /// Encode `x` with the model's schema (every schema column present by name; unknown
    /// categories are errors), returning the standardised row-major features.
    fn encode(&self, x: &Frame) -> Result<Vec<f64>> {
        let table = x.to_table(None)?;
        // the encoding of `robustflow predict` (a row with a missing cell under
        // `--impute drop` is an error naming it, never silently dropped)
        let data = crate::data::unlabeled::encode_features(&self.inner.schema, &table)?;
        if data.len() != table.n_rows() {
            return Err(Error::Data {
                path: PathBuf::from(MEMORY),
                row: None,
                col: None,
                msg: format!(
                    "{} of {} rows have missing values and were dropped (the model was trained with --impute drop); remove them first",
                    table.n_rows() - data.len(),
                    table.n_rows()
                ),
            });
        }
        Ok(data.x)
    }

    /// Predictions, one per row: the class index (into [`Model::classes`]) or the
    /// response in original units.
    pub fn predict(&self, x: &Frame) -> Result<Vec<f64>> {
        let z = self.encode(x)?;
        self.inner.predict(&z)
    }

    /// Class probabilities, one row per input row (empty rows for a regression).
    pub fn predict_proba(&self, x: &Frame) -> Result<Vec<Vec<f64>>> {
        let z = self.encode(x)?;
        self.inner.predict_proba(&z)
    }

    /// The model's raw outputs per row: the logit (binary), the class logits (softmax),
    /// or the standardised response (regression).
    pub fn decision_function(&self, x: &Frame) -> Result<Vec<Vec<f64>>> {
        let z = self.encode(x)?;
        self.inner.model.outputs(&z)
    }

    /// Mean loss and accuracy (classification) or RMSE (regression) on labelled rows.
    pub fn evaluate(&self, x: &Frame, y: &Column) -> Result<crate::train::Metrics> {
        let table = x.to_table(Some((self.target(), y)))?;
        let data = self.inner.schema.apply(&table)?;
        self.inner.evaluate(&data)
    }

    /// `robustflow certify` on labelled rows: the worst-case risk over an ambiguity set
    /// at each radius with its bounds; `flags` are those of `certify` (`--ambiguity`,
    /// `--radius` as a comma list, `--norm`, ...; not `--model`, `--data`).
    pub fn certify(&self, x: &Frame, y: &Column, flags: &[String]) -> Result<Vec<CertifyRow>> {
        let mut argv = strings(&["--model", MEMORY, "--data", MEMORY]);
        argv.extend(flags.iter().cloned());
        let args: crate::app::certify::CertifyArgs = parse_args("certify", &argv)?;
        let cfg = args.config()?;
        let radii = args.radius.0.clone();
        let table = x.to_table(Some((self.target(), y)))?;
        let data = self.inner.schema.apply(&table)?;
        if data.is_empty() {
            return Err(Error::param("data", 0, "no rows to certify on"));
        }
        let idx: Vec<usize> = (0..data.len()).collect();
        let batch = Batch {
            x: &data.x,
            y: &data.y,
            d: data.d,
            idx: &idx,
        };
        Ok(certify_full(&self.inner.model, &batch, &cfg, &radii)?
            .into_iter()
            .map(|(r, _)| r)
            .collect())
    }

    /// The training report (`report.json`) as JSON.
    pub fn report_json(&self) -> Result<String> {
        Ok(serde_json::to_string(&self.inner.report)?)
    }

    /// The schema (features after encoding, scaler, classes, encoders) as JSON.
    pub fn schema_json(&self) -> Result<String> {
        Ok(serde_json::to_string(&self.inner.schema)?)
    }

    /// The training hyper-parameters as JSON.
    pub fn params_json(&self) -> Result<String> {
        Ok(serde_json::to_string(&self.inner.params)?)
    }
}

/// A temporary directory removed on drop (for the commands whose inputs and outputs are
/// files).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "robustflow-api-{}-{}-{t}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_matrix(path: &Path, x: &[f64], d: usize) -> Result<()> {
    if d == 0 || !x.len().is_multiple_of(d) {
        return Err(Error::Shape(format!(
            "{} values is not a multiple of the dimension {d}",
            x.len()
        )));
    }
    let names: Vec<String> = (1..=d).map(|j| format!("x{j}")).collect();
    let rows = x
        .chunks_exact(d)
        .map(|r| r.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>());
    crate::io::write_csv_atomic(path, &names, rows)
}

/// `robustflow mmd` on two row-major samples with `d` columns; `flags` are those of `mmd`
/// (`--kernel`, `--bandwidth`, `--permutations`, ...; not `--x`, `--y`). Returns the JSON
/// report.
pub fn mmd(x: &[f64], y: &[f64], d: usize, flags: &[String]) -> Result<serde_json::Value> {
    // the samples stay in memory; the paths only name them in messages
    let mut argv = strings(&["--x", "<memory: x>", "--y", "<memory: y>"]);
    argv.extend(flags.iter().cloned());
    let args: crate::app::mmd::MmdArgs = parse_args("mmd", &argv)?;
    Ok(serde_json::to_value(crate::app::mmd::compute_samples(
        &args, x, y, d,
    )?)?)
}

/// The outputs of a file-writing command: its JSON report and its CSV files (name, text).
#[derive(Debug, Clone)]
pub struct CommandOutput {
    /// `report.json`.
    pub report: serde_json::Value,
    /// The CSV files written (`trace.csv`, `particles_<name>.csv`, ...), by file name.
    pub csv: Vec<(String, String)>,
}

fn collect_outputs(dir: &Path) -> Result<CommandOutput> {
    let rp = dir.join("report.json");
    let text = std::fs::read_to_string(&rp).map_err(|e| Error::io(&rp, e))?;
    let report = serde_json::from_str(&text)?;
    let mut csv = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".csv") {
            let t = std::fs::read_to_string(e.path()).map_err(|er| Error::io(e.path(), er))?;
            csv.push((name, t));
        }
    }
    csv.sort();
    Ok(CommandOutput { report, csv })
}

/// A sample given in memory (row-major, `d` columns) or by the name of a built-in target.
#[derive(Debug, Clone)]
pub enum Sample {
    /// A built-in name (`gaussian`, `mixture`, ...).
    Named(String),
    /// Points, row-major, with their dimension.
    Points(Vec<f64>, usize),
}

/// `robustflow flow` with the target (and optionally the initial particles) in memory;
/// `flags` are those of `flow` (not `--target`, `--init`, `--out-dir`). Returns
/// `report.json` and the CSV outputs (`trace.csv`, `particles_<flow>.csv`, `summary.csv`).
pub fn flow(target: &Sample, init: Option<&Sample>, flags: &[String]) -> Result<CommandOutput> {
    let tmp = TempDir::new()?;
    let out = tmp.0.join("out");
    let mut argv = vec!["--out-dir".to_string(), out.display().to_string()];
    for (flag, s) in [("--target", Some(target)), ("--init", init)] {
        match s {
            None => {}
            Some(Sample::Named(n)) => argv.extend([flag.to_string(), n.clone()]),
            Some(Sample::Points(x, d)) => {
                let p = tmp.0.join(format!("{}.csv", flag.trim_start_matches('-')));
                write_matrix(&p, x, *d)?;
                argv.extend([flag.to_string(), p.display().to_string()]);
            }
        }
    }
    argv.extend(flags.iter().cloned());
    let args: crate::app::flow::FlowArgs = parse_args("flow", &argv)?;
    crate::app::flow::run(&args, &LIBRARY_OPTS)?;
    collect_outputs(&out)
}

/// Sample points (row-major), their dimension and optional weights.
pub type WeightedSample<'a> = (&'a [f64], usize, Option<&'a [f64]>);

/// `robustflow fit-kl` with a sample target in memory (`samples`, row-major with `d`
/// columns; `weights` optional) or a built-in target (`None`: `--target`); `flags` are
/// those of `fit-kl` (not `--samples`, `--out-dir`). Returns `report.json` and the CSV
/// outputs.
pub fn fit_kl(samples: Option<WeightedSample<'_>>, flags: &[String]) -> Result<CommandOutput> {
    let tmp = TempDir::new()?;
    let out = tmp.0.join("out");
    let mut argv = vec!["--out-dir".to_string(), out.display().to_string()];
    if let Some((x, d, w)) = samples {
        if d == 0 || !x.len().is_multiple_of(d) {
            return Err(Error::Shape(format!(
                "{} values is not a multiple of the dimension {d}",
                x.len()
            )));
        }
        let n = x.len() / d;
        let mut names: Vec<String> = (1..=d).map(|j| format!("x{j}")).collect();
        if let Some(w) = w {
            if w.len() != n {
                return Err(Error::Shape(format!("{} weights for {n} samples", w.len())));
            }
            names.push("weight".into());
        }
        let p = tmp.0.join("samples.csv");
        let rows = (0..n).map(|i| {
            let mut r: Vec<String> = x[i * d..(i + 1) * d]
                .iter()
                .map(|v| format!("{v:?}"))
                .collect();
            if let Some(w) = w {
                r.push(format!("{:?}", w[i]));
            }
            r
        });
        crate::io::write_csv_atomic(&p, &names, rows)?;
        argv.extend(["--samples".to_string(), p.display().to_string()]);
    }
    argv.extend(flags.iter().cloned());
    let args: crate::app::fit_kl::FitKlArgs = parse_args("fit-kl", &argv)?;
    crate::app::fit_kl::run(&args, &LIBRARY_OPTS)?;
    collect_outputs(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory table is read exactly as the same cells written to a CSV file: same
    /// typing (text column one-hot encoded, numbers in a text column numeric), missing
    /// values, schema and encoded rows; and a model trained on it equals the CLI's.
    #[test]
    fn frame_loads_like_the_csv_file() {
        let x1 = vec![0.5, -1.25, 3.0, f64::NAN, 2.0, 0.1, -0.7, 1.5];
        let color: Vec<Option<String>> = [
            "red", "blue", "red", "green", " blue ", "red", "green", "blue",
        ]
        .iter()
        .map(|s| Some(s.to_string()))
        .collect();
        let num_text: Vec<Option<String>> = ["1", "2.5", "3", "4", "5", "6", "7", "8"]
            .iter()
            .map(|s| Some(s.to_string()))
            .collect();
        let y = Column::Text(
            ["a", "b", "a", "b", "b", "a", "b", "a"]
                .iter()
                .map(|s| Some(s.to_string()))
                .collect(),
        );
        let f = Frame {
            names: vec!["x1".into(), "color".into(), "n".into()],
            columns: vec![
                Column::Numeric(x1),
                Column::Text(color),
                Column::Text(num_text),
            ],
        };
        let csv = "x1,color,n,label\n0.5,red,1,a\n-1.25,blue,2.5,b\n3.0,red,3,a\nNA,green,4,b\n2.0, blue ,5,b\n0.1,red,6,a\n-0.7,green,7,b\n1.5,blue,8,a\n";
        let from_csv = RawTable::parse(Path::new(MEMORY), csv).unwrap();
        let mem = f.to_table(Some(("label", &y))).unwrap();
        let opts = crate::data::LoadOptions {
            test_fraction: 0.0,
            impute: Some(crate::data::Impute::Mean),
            ..Default::default()
        };
        let a = crate::data::load_tables(&from_csv, None, &opts).unwrap();
        let b = crate::data::load_tables(&mem, None, &opts).unwrap();
        assert_eq!(
            serde_json::to_string(&a.schema).unwrap(),
            serde_json::to_string(&b.schema).unwrap()
        );
        assert_eq!(a.schema.features.len(), 5); // x1, color=blue/green/red, n
        assert_eq!(a.train.x, b.train.x);
        assert_eq!(a.train.y, b.train.y);
        // training through the API = `robustflow train` on the file
        let m = train(
            &f,
            &y,
            "label",
            &["--ambiguity", "kl", "--radius", "0.1", "--impute", "mean"],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d.csv");
        std::fs::write(&data, csv).unwrap();
        let argv: Vec<String> = [
            "--data",
            data.to_str().unwrap(),
            "--out",
            dir.path().join("m").to_str().unwrap(),
            "--test-fraction",
            "0",
            "--ambiguity",
            "kl",
            "--radius",
            "0.1",
            "--impute",
            "mean",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let args: crate::app::train::TrainArgs = parse_args("train", &argv).unwrap();
        let cli = crate::app::train::run(&args, &LIBRARY_OPTS).unwrap();
        assert!(m.inner.report.objective.is_some());
        assert_eq!(m.inner.report.objective, cli.report.objective);
        assert_eq!(m.predict(&f).unwrap(), cli.predict(&a.train.x).unwrap());
    }

    #[test]
    fn errors_name_the_flag_or_the_table() {
        let f = Frame::numeric(&["a"], &[0.0, 1.0, 2.0, 3.0], 4).unwrap();
        let y = Column::Numeric(vec![0.0, 1.0, 0.0, 1.0]);
        let e = train(&f, &y, "t", &["--ambiguity", "nope"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ambiguity"), "{e}");
        let e = train(&f, &y, "t", &["--data", "x.csv"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("data"), "{e}");
        let e = train(&f, &y, "a", &[]).unwrap_err().to_string();
        assert!(e.contains("feature column"), "{e}");
        let dup = Frame {
            names: vec!["a".into(), "a".into()],
            columns: vec![Column::Numeric(vec![1.0]), Column::Numeric(vec![2.0])],
        };
        let e = dup.to_table(None).unwrap_err().to_string();
        assert!(e.contains("<memory>") && e.contains("duplicate"), "{e}");
    }
}
