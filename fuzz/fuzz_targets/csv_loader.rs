//! Arbitrary bytes as a CSV file: the numeric reader, the table reader and the whole
//! training loader (column typing, split, standardisation) return `Ok` or `Err`, never
//! panic or abort.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| std::env::temp_dir().join(format!("robustflow-fuzz-{}.csv", std::process::id())))
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.csv");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = robustflow::io::parse_numeric_csv(text, path);
        let _ = robustflow::data::RawTable::parse(path, text);
    }
    // The file-level entry points (they also see non-UTF-8 bytes).
    let p = scratch();
    if std::fs::write(p, data).is_ok() {
        let _ = robustflow::io::read_numeric_csv(p);
        if let Ok(d) = robustflow::data::load(p, &robustflow::data::LoadOptions::default()) {
            // whatever was accepted is usable: finite standardised features
            assert!(d.train.x.iter().all(|v| v.is_finite()));
        }
    }
});
