//! Running a grid (with sharding, resume and a progress bar) and writing its outputs:
//! `results.csv`, `summary.md` (mean and standard deviation over seeds, best of each
//! column in bold), PNG plots and `results.json` (provenance).
//!
//! Resume is keyed by the settings: `settings.json` records every setting that changes
//! results (all of [`SuiteConfig`] but the cell lists `datasets`, `methods`, `seeds` and the
//! preset's name) and their hash ([`settings_key`]). Rerunning into a directory whose
//! `results.csv` was produced with other settings is an error naming the settings that
//! differ; adding datasets, methods or seeds with the same settings resumes.

use super::suite::{
    done_keys, read_results, run_cell, shard_cells, write_results, Row, SuiteConfig,
};
use crate::error::{Error, Result};
use crate::plot::{line_chart, Series};
pub use crate::stats::mean_std;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Cells of this shard.
    pub cells: usize,
    /// Cells computed now.
    pub computed: usize,
    /// Cells skipped because their rows were already in `results.csv`.
    pub skipped: usize,
    /// Rows in `results.csv` after the run.
    pub rows: usize,
    /// Wall time in seconds.
    pub wall_s: f64,
}

/// Run the grid of `cfg` (shard `(i, n)`) into `out_dir`, skipping cells whose rows are
/// already in `out_dir/results.csv`; `results.csv` is rewritten after every cell.
pub fn run_suite(
    cfg: &SuiteConfig,
    shard: (usize, usize),
    out_dir: &Path,
    data_dir: &Path,
    quiet: bool,
) -> Result<RunSummary> {
    cfg.validate()?;
    if shard.1 == 0 || shard.0 >= shard.1 {
        return Err(Error::param(
            "shard",
            format!("{}/{}", shard.0, shard.1),
            "expected i/n with 0 <= i < n",
        ));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    check_settings(cfg, out_dir)?;
    // the commit of the code that runs (read now: HEAD may move during a long run)
    let commit = git_commit();
    let t0 = Instant::now();
    let path = out_dir.join("results.csv");
    let mut rows = read_results(&path)?;
    let mine = shard_cells(cfg.cells(), shard);
    let done = done_keys(&rows);
    let todo: Vec<_> = mine
        .iter()
        .filter(|(_, c)| {
            !cfg.row_keys(c).into_iter().all(|(cond, b)| {
                done.contains(&(c.dataset.clone(), c.method.clone(), cond, b, c.seed))
            })
        })
        .cloned()
        .collect();
    let bar = crate::progress::bar(
        todo.len() as u64,
        "bench [{bar:30}] {pos}/{len} cells, {msg} (elapsed {elapsed}, eta {eta})",
        quiet,
    );
    for (_, cell) in &todo {
        bar.set_message(cell.to_string());
        let new = run_cell(cfg, cell, data_dir)?;
        let keys: BTreeSet<_> = new.iter().map(Row::key).collect();
        rows.retain(|r| !keys.contains(&r.key()));
        rows.extend(new);
        write_results(&path, &rows)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    write_results(&path, &rows)?;
    let wall = t0.elapsed().as_secs_f64();
    let summary = RunSummary {
        cells: mine.len(),
        computed: todo.len(),
        skipped: mine.len() - todo.len(),
        rows: rows.len(),
        wall_s: wall,
    };
    write_outputs(out_dir, &rows, Some(cfg), Some(shard), &summary, commit)?;
    Ok(summary)
}

/// The settings of `cfg` that change results (everything but the cell lists and the preset
/// name) as JSON, and their 64-bit FNV-1a hash (`fnv1a64:` and 16 hex digits).
pub fn settings_key(cfg: &SuiteConfig) -> Result<(serde_json::Value, String)> {
    let mut v = serde_json::to_value(cfg)?;
    if let Some(m) = v.as_object_mut() {
        for k in ["suite", "datasets", "methods", "seeds"] {
            m.remove(k);
        }
    }
    let text = serde_json::to_string(&v)?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok((v, format!("fnv1a64:{h:016x}")))
}

/// The settings recorded in `dir` (`settings.json`, or the `config` of an older
/// `results.json`), if any.
fn recorded_settings(dir: &Path) -> Result<Option<(serde_json::Value, String)>> {
    let read = |p: PathBuf| -> Result<Option<serde_json::Value>> {
        match std::fs::read_to_string(&p) {
            Ok(t) => serde_json::from_str(&t).map(Some).map_err(|e| Error::Data {
                path: p.clone(),
                row: None,
                col: None,
                msg: format!("not valid JSON: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&p, e)),
        }
    };
    if let Some(v) = read(dir.join("settings.json"))? {
        let hash = v["settings_hash"].as_str().unwrap_or("").to_string();
        return Ok(Some((v["settings"].clone(), hash)));
    }
    if let Some(v) = read(dir.join("results.json"))? {
        if let Ok(c) = serde_json::from_value::<SuiteConfig>(v["config"].clone()) {
            return settings_key(&c).map(Some);
        }
    }
    Ok(None)
}

/// Refuse to resume into `out_dir` when its results came from other settings; record the
/// settings otherwise.
fn check_settings(cfg: &SuiteConfig, out_dir: &Path) -> Result<()> {
    let (settings, hash) = settings_key(cfg)?;
    let have_rows = !read_results(&out_dir.join("results.csv"))?.is_empty();
    match recorded_settings(out_dir)? {
        Some((old, old_hash)) if old_hash != hash => {
            let mut diff: Vec<String> = Vec::new();
            if let (Some(a), Some(b)) = (old.as_object(), settings.as_object()) {
                for k in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
                    if a.get(k) != b.get(k) {
                        diff.push(format!(
                            "{k}: {} then, {} now",
                            a.get(k).map(|v| v.to_string()).unwrap_or("-".into()),
                            b.get(k).map(|v| v.to_string()).unwrap_or("-".into())
                        ));
                    }
                }
            }
            return Err(Error::param(
                "out-dir",
                out_dir.display(),
                &format!(
                    "holds results of other settings ({}); use a new --out-dir (or delete it) to run with these settings",
                    if diff.is_empty() { format!("settings hash {old_hash} vs {hash}") } else { diff.join("; ") }
                ),
            ));
        }
        None if have_rows => {
            return Err(Error::param(
                "out-dir",
                out_dir.display(),
                "holds a results.csv without a record of its settings (no settings.json); use a new --out-dir",
            ))
        }
        _ => {}
    }
    crate::io::write_json_atomic(
        out_dir.join("settings.json"),
        &serde_json::json!({ "settings_hash": hash, "settings": settings }),
    )
}

/// Merge the `results.csv` of several directories into `out_dir` (rows deduplicated by
/// key; the same key with different numbers is an error naming both directories).
pub fn merge(dirs: &[PathBuf], out_dir: &Path) -> Result<Vec<Row>> {
    let mut by_key: BTreeMap<_, (Row, PathBuf)> = BTreeMap::new();
    let mut cfg: Option<SuiteConfig> = None;
    let mut first_settings: Option<(String, PathBuf)> = None;
    for d in dirs {
        if let Some((_, h)) = recorded_settings(d)? {
            match &first_settings {
                Some((h0, d0)) if *h0 != h => {
                    return Err(Error::param(
                        "merge",
                        d.display(),
                        &format!(
                            "was run with other settings than {} ({h} vs {h0}); only shards of one configuration can be merged",
                            d0.display()
                        ),
                    ))
                }
                None => first_settings = Some((h, d.clone())),
                _ => {}
            }
        }
        let p = d.join("results.csv");
        if !p.exists() {
            return Err(Error::param(
                "merge",
                p.display(),
                "no results.csv in this directory",
            ));
        }
        for r in read_results(&p)? {
            if let Some((old, from)) = by_key.get(&r.key()) {
                if !same(old.accuracy, r.accuracy) || !same(old.loss, r.loss) {
                    return Err(Error::param(
                        "merge",
                        format!("{:?}", r.key()),
                        &format!("row differs between {} and {}", from.display(), d.display()),
                    ));
                }
                continue;
            }
            by_key.insert(r.key(), (r, d.clone()));
        }
        if cfg.is_none() {
            if let Ok(t) = std::fs::read_to_string(d.join("results.json")) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) {
                    cfg = serde_json::from_value(v["config"].clone()).ok();
                }
            }
        }
    }
    let rows: Vec<Row> = by_key.into_values().map(|(r, _)| r).collect();
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    if let Some(c) = &cfg {
        let (settings, hash) = settings_key(c)?;
        crate::io::write_json_atomic(
            out_dir.join("settings.json"),
            &serde_json::json!({ "settings_hash": hash, "settings": settings }),
        )?;
    }
    write_results(&out_dir.join("results.csv"), &rows)?;
    let s = RunSummary {
        cells: 0,
        computed: 0,
        skipped: 0,
        rows: rows.len(),
        wall_s: 0.0,
    };
    write_outputs(out_dir, &rows, cfg.as_ref(), None, &s, git_commit())?;
    Ok(rows)
}

/// Equal numbers, `NaN` equal to `NaN` (the accuracy of the regression rows).
fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// `git rev-parse HEAD`, or "unknown".
pub fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[derive(Serialize)]
struct Provenance<'a> {
    config: Option<&'a SuiteConfig>,
    shard: Option<String>,
    run: &'a RunSummary,
    crate_version: &'static str,
    git_commit: String,
    machine: Machine,
    rows: usize,
}

#[derive(Serialize)]
struct Machine {
    cores: usize,
    os: &'static str,
    arch: &'static str,
    rayon_threads: usize,
}

type Agg = BTreeMap<String, BTreeMap<(String, String), BTreeMap<String, Vec<(f64, f64)>>>>;

/// dataset -> (condition, budget) -> method -> [(accuracy, loss)] over seeds.
fn aggregate(rows: &[Row]) -> Agg {
    let mut a: Agg = BTreeMap::new();
    for r in rows {
        a.entry(r.dataset.clone())
            .or_default()
            .entry((r.condition.clone(), r.budget.clone()))
            .or_default()
            .entry(r.method.clone())
            .or_default()
            .push((r.accuracy, r.loss));
    }
    a
}

fn cond_order(c: &str) -> usize {
    [
        "clean",
        "pgd_l2",
        "pgd_linf",
        "covariate_shift",
        "subpopulation",
        "label_noise",
        "xi_shift",
    ]
    .iter()
    .position(|x| *x == c)
    .unwrap_or(9)
}

/// The `summary.md` text: per dataset, a table of test accuracy (mean ± std over seeds)
/// with methods as rows and condition@budget as columns, the best mean of each column in
/// bold; then the same for the loss (best = lowest). A dataset without accuracies (the
/// regression task `rls`) has only the loss table.
pub fn summary_markdown(rows: &[Row]) -> String {
    let agg = aggregate(rows);
    let mut s = String::from("# Benchmark summary\n\nMean ± standard deviation over seeds; the best mean of each column is in **bold**.\n");
    for (ds, conds) in &agg {
        let mut cols: Vec<&(String, String)> = conds.keys().collect();
        cols.sort_by(|a, b| {
            cond_order(&a.0).cmp(&cond_order(&b.0)).then(
                a.1.parse::<f64>()
                    .unwrap_or(0.0)
                    .total_cmp(&b.1.parse::<f64>().unwrap_or(0.0)),
            )
        });
        let methods: BTreeSet<&String> = conds.values().flat_map(|m| m.keys()).collect();
        let has_accuracy = conds
            .values()
            .flat_map(|m| m.values())
            .flatten()
            .any(|p| !p.0.is_nan());
        for (what, idx, higher) in [("accuracy", 0usize, true), ("loss", 1usize, false)] {
            if idx == 0 && !has_accuracy {
                continue;
            }
            s.push_str(&format!("\n## {ds}: test {what}\n\n| method |"));
            for c in &cols {
                s.push_str(&format!(" {}@{} |", c.0, c.1));
            }
            s.push_str("\n|---|");
            for _ in &cols {
                s.push_str("---|");
            }
            s.push('\n');
            let best: Vec<f64> = cols
                .iter()
                .map(|c| {
                    let it = conds[*c].values().map(|v| {
                        mean_std(
                            &v.iter()
                                .map(|p| if idx == 0 { p.0 } else { p.1 })
                                .collect::<Vec<_>>(),
                        )
                        .0
                    });
                    if higher {
                        it.fold(f64::NEG_INFINITY, f64::max)
                    } else {
                        it.fold(f64::INFINITY, f64::min)
                    }
                })
                .collect();
            for m in &methods {
                s.push_str(&format!("| {m} |"));
                for (c, b) in cols.iter().zip(&best) {
                    match conds[*c].get(*m) {
                        Some(v) => {
                            let vals: Vec<f64> =
                                v.iter().map(|p| if idx == 0 { p.0 } else { p.1 }).collect();
                            let (mu, sd) = mean_std(&vals);
                            let cell = format!("{mu:.3} ± {sd:.3}");
                            if mu == *b {
                                s.push_str(&format!(" **{cell}** |"));
                            } else {
                                s.push_str(&format!(" {cell} |"));
                            }
                        }
                        None => s.push_str(" - |"),
                    }
                }
                s.push('\n');
            }
        }
    }
    s
}

/// Plots: per dataset, accuracy against the PGD budget (L2 and Linf, budget 0 = clean)
/// and loss against the covariate shift (0 = clean); for `rls`, loss against Delta
/// (`{ds}_loss_delta.png`) and the loss relative to ERM's against Delta
/// (`{ds}_loss_ratio_delta.png`). Returns the files written.
pub fn write_plots(out_dir: &Path, rows: &[Row]) -> Result<Vec<PathBuf>> {
    let agg = aggregate(rows);
    let mut files = Vec::new();
    for (ds, conds) in &agg {
        let plots: [(&str, &str, usize, &str, &str); 4] = [
            ("pgd_l2", "accuracy_l2", 0, "PGD-L2 budget", "test accuracy"),
            (
                "pgd_linf",
                "accuracy_linf",
                0,
                "PGD-Linf budget",
                "test accuracy",
            ),
            (
                "covariate_shift",
                "loss_shift",
                1,
                "covariate shift",
                "test loss",
            ),
            ("xi_shift", "loss_delta", 1, "Delta", "mean test loss"),
        ];
        for (cond, stem, idx, xl, yl) in plots {
            let mut by_m: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
            for ((c, b), ms) in conds {
                if c != cond && c != "clean" {
                    continue;
                }
                let x: f64 = b.parse().unwrap_or(0.0);
                for (m, v) in ms {
                    let vals: Vec<f64> =
                        v.iter().map(|p| if idx == 0 { p.0 } else { p.1 }).collect();
                    by_m.entry(m.clone())
                        .or_default()
                        .push((x, mean_std(&vals).0));
                }
            }
            if !conds.keys().any(|(c, _)| c == cond) {
                continue;
            }
            let series: Vec<Series> = by_m
                .into_iter()
                .map(|(name, mut points)| {
                    points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    Series { name, points }
                })
                .collect();
            let f = out_dir.join(format!("{ds}_{stem}.png"));
            line_chart(&f, &format!("{ds}: {yl} vs {xl}"), xl, yl, &series, false)?;
            files.push(f);
            // the regression curves differ by a few percent on a steep common trend:
            // also plot each method's loss relative to ERM's at the same Delta
            if cond == "xi_shift" {
                if let Some(erm) = series.iter().find(|s| s.name == "erm") {
                    let base: BTreeMap<u64, f64> =
                        erm.points.iter().map(|p| (p.0.to_bits(), p.1)).collect();
                    let rel: Vec<Series> = series
                        .iter()
                        .map(|s| Series {
                            name: s.name.clone(),
                            points: s
                                .points
                                .iter()
                                .filter_map(|p| base.get(&p.0.to_bits()).map(|b| (p.0, p.1 / b)))
                                .collect(),
                        })
                        .collect();
                    let f = out_dir.join(format!("{ds}_loss_ratio_delta.png"));
                    line_chart(
                        &f,
                        &format!("{ds}: test loss / ERM's test loss vs {xl}"),
                        xl,
                        "test loss relative to ERM",
                        &rel,
                        false,
                    )?;
                    files.push(f);
                }
            }
        }
    }
    Ok(files)
}

fn write_outputs(
    out_dir: &Path,
    rows: &[Row],
    cfg: Option<&SuiteConfig>,
    shard: Option<(usize, usize)>,
    run: &RunSummary,
    commit: String,
) -> Result<()> {
    crate::io::write_atomic(
        out_dir.join("summary.md"),
        summary_markdown(rows).as_bytes(),
    )?;
    write_plots(out_dir, rows)?;
    let prov = Provenance {
        config: cfg,
        shard: shard.map(|(i, n)| format!("{i}/{n}")),
        run,
        crate_version: env!("CARGO_PKG_VERSION"),
        git_commit: commit,
        machine: Machine {
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            rayon_threads: rayon::current_num_threads(),
        },
        rows: rows.len(),
    };
    crate::io::write_json_atomic(out_dir.join("results.json"), &prov)
}
