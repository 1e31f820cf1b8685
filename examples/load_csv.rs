//! Read a CSV with robustflow's readers and print one JSON line: rows, columns, seconds.
//! `examples/bench_loader.py` runs it under `/usr/bin/time -v` for throughput and peak
//! memory against `pandas.read_csv` on the same file.
//!
//! ```text
//! cargo run --release --example load_csv -- FILE.csv [load|table|numeric]
//! ```
//!
//! * `load` (default): the training loader, [`robustflow::data::load`] (typed columns,
//!   schema, stratified 75/25 split, standardised train and test matrices);
//! * `table`: only [`robustflow::data::RawTable::read`] (the typed columns);
//! * `numeric`: the numeric reader of `mmd` and `flow --target`,
//!   [`robustflow::io::read_numeric_csv`].

use robustflow::data::{load, LoadOptions, RawTable};
use robustflow::io::read_numeric_csv;
use std::time::Instant;

fn main() -> robustflow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| {
        eprintln!("usage: load_csv FILE.csv [load|table|numeric]");
        std::process::exit(2)
    });
    let mode = args.next().unwrap_or_else(|| "load".into());
    let t0 = Instant::now();
    let (rows, cols) = match mode.as_str() {
        "load" => {
            let d = load(&path, &LoadOptions::default())?;
            (d.train.len() + d.test.len(), d.train.d)
        }
        "table" => {
            let t = RawTable::read(&path)?;
            (t.n_rows(), t.columns.len())
        }
        "numeric" => {
            let t = read_numeric_csv(&path)?;
            t.values.dim()
        }
        other => {
            eprintln!("unknown mode {other:?}: expected load, table or numeric");
            std::process::exit(2)
        }
    };
    println!(
        "{{\"mode\": \"{mode}\", \"rows\": {rows}, \"cols\": {cols}, \"seconds\": {:.6}}}",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
