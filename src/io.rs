//! File input and output: numeric CSV matrices with precise error messages, and atomic
//! writes (temporary file in the same directory, then rename), so that a crash never
//! leaves a half-written report or model behind.

use crate::error::{Error, Result};
use ndarray::Array2;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Write `bytes` to `path` atomically: write a temporary sibling file, flush and sync it,
/// then rename it over `path`. Parent directories are created.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let fname = path
        .file_name()
        .ok_or_else(|| Error::Other(format!("{}: not a file path", path.display())))?
        .to_string_lossy()
        .to_string();
    let tmp = dir.join(format!(".{fname}.tmp{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(())
}

/// Serialise `value` as pretty JSON and write it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: impl AsRef<Path>, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    write_atomic(path, s.as_bytes())
}

/// Write a CSV (header + rows of already formatted cells) atomically.
pub fn write_csv_atomic(
    path: impl AsRef<Path>,
    header: &[String],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> Result<()> {
    let path = path.as_ref();
    let mut w = csv::Writer::from_writer(Vec::new());
    let map = |e: csv::Error| Error::Other(format!("{}: {e}", path.display()));
    w.write_record(header).map_err(map)?;
    for r in rows {
        w.write_record(&r).map_err(map)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    write_atomic(path, &bytes)
}

/// Write a matrix of positions (with an optional extra weight column) as CSV atomically.
/// Columns are named `x1..xd` (and `weight`).
pub fn write_points_csv(
    path: impl AsRef<Path>,
    x: &Array2<f64>,
    weights: Option<&[f64]>,
) -> Result<()> {
    if let Some(w) = weights.filter(|w| w.len() != x.nrows()) {
        return Err(Error::Shape(format!(
            "{}: {} weights for {} points",
            path.as_ref().display(),
            w.len(),
            x.nrows()
        )));
    }
    let d = x.ncols();
    let mut header: Vec<String> = (1..=d).map(|j| format!("x{j}")).collect();
    if weights.is_some() {
        header.push("weight".into());
    }
    let rows = x.outer_iter().enumerate().map(|(i, r)| {
        let mut v: Vec<String> = r.iter().map(|a| format!("{a}")).collect();
        if let Some(w) = weights {
            v.push(format!("{}", w[i]));
        }
        v
    });
    write_csv_atomic(path, &header, rows)
}

/// A numeric table read from CSV: column names and an `n x d` matrix.
#[derive(Debug, Clone)]
pub struct NumericTable {
    /// Column names (from the header, or `x1..xd` when the file has none).
    pub columns: Vec<String>,
    /// The values, one row per data row.
    pub values: Array2<f64>,
}

/// Read an all-numeric CSV file. The first row is a header when none of its cells is a
/// number (a first row mixing numbers and text is an error, not a silently dropped data
/// row). Blank lines are skipped. Errors name the file, the 1-based data row (the header is
/// row 0), the column (1-based index and name) and the line of the file for ragged rows,
/// non-numeric cells, NaN or infinite values; a file without data rows is an error.
///
/// The dialect is the one of [`crate::data::RawTable`]: comma-separated, quoted fields,
/// `\n`, `\r\n` or `\r` line ends, a UTF-8 byte-order mark dropped, cells trimmed; an
/// unterminated quote is an error naming its line. The file is streamed (never held whole
/// in memory) and parsed in one pass, straight into the flat `n x d` matrix: time is
/// linear in the file size and no memory is allocated per cell.
pub fn read_numeric_csv(path: impl AsRef<Path>) -> Result<NumericTable> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    parse_numeric_reader(file, path)
}

/// Parse numeric CSV text (see [`read_numeric_csv`]); `path` is used in error messages.
pub fn parse_numeric_csv(text: &str, path: &Path) -> Result<NumericTable> {
    parse_numeric_reader(text.as_bytes(), path)
}

/// Parse numeric CSV from any byte source (see [`read_numeric_csv`]); `path` is used in
/// error messages.
pub fn parse_numeric_reader<R: std::io::Read>(src: R, path: &Path) -> Result<NumericTable> {
    use crate::data::reader::{foreign_delimiter, Record, Tokenizer};
    let data_err = |row: Option<usize>, col: Option<String>, msg: String| Error::Data {
        path: path.into(),
        row,
        col,
        msg,
    };
    let mut tok = Tokenizer::new(src);
    let mut rec = Record::default();
    // The next non-blank record (`row` names the data row being read, for errors).
    let mut next = |rec: &mut Record, row: Option<usize>| -> Result<bool> {
        loop {
            match tok.next_record(rec) {
                Ok(false) => return Ok(false),
                Ok(true) if rec.is_blank() => continue,
                Ok(true) => return Ok(true),
                Err(e) => return Err(e.into_error(path, row)),
            }
        }
    };
    let utf8_err = |row: usize, j: usize, line: usize| {
        data_err(
            Some(row),
            Some(format!("{}", j + 1)),
            format!("not valid UTF-8 text (line {line})"),
        )
    };
    if !next(&mut rec, Some(1))? {
        return Err(data_err(None, None, "no rows: the file is empty".into()));
    }
    let first_line = rec.line;
    let mut first: Vec<&str> = Vec::with_capacity(rec.len());
    for j in 0..rec.len() {
        first.push(rec.text(j).map_err(|_| utf8_err(1, j, first_line))?);
    }
    let numeric: Vec<bool> = first.iter().map(|c| c.parse::<f64>().is_ok()).collect();
    let has_header = !numeric.iter().any(|&b| b);
    if !has_header {
        if let Some(j) = numeric.iter().position(|&b| !b) {
            return Err(data_err(
                Some(1),
                Some(format!("{}", j + 1)),
                format!(
                    "not a number: {:?} (line {first_line}; the first row mixes numbers and text, so it is not a header)",
                    &first[j]
                ),
            ));
        }
    }
    let columns: Vec<String> = if has_header {
        first.iter().map(|s| s.to_string()).collect()
    } else {
        (1..=first.len()).map(|j| format!("x{j}")).collect()
    };
    drop(first);
    let d = columns.len();
    let mut values: Vec<f64> = Vec::new();
    let mut n = 0usize;
    // A header of one column holding `;` or a tab: name the delimiter in cell errors.
    let hint = match (d, has_header) {
        (1, true) => foreign_delimiter(&columns[0])
            .map(|(c, name)| {
                format!("; the header holds {c:?}: this looks like a {name}-separated file, robustflow reads comma-separated CSV")
            })
            .unwrap_or_default(),
        _ => String::new(),
    };
    let mut have = !has_header;
    loop {
        if !have && !next(&mut rec, Some(n + 1))? {
            break;
        }
        have = false;
        let row = n + 1;
        let line = rec.line;
        if rec.len() != d {
            // Name the first missing or the first extra column.
            let col = if rec.len() < d {
                format!("{} ({})", rec.len() + 1, columns[rec.len()])
            } else {
                format!("{}", d + 1)
            };
            return Err(data_err(
                Some(row),
                Some(col),
                format!(
                    "ragged row: {} fields, expected {d} (line {line})",
                    rec.len()
                ),
            ));
        }
        for (j, name) in columns.iter().enumerate() {
            let cell = rec.text(j).map_err(|_| utf8_err(row, j, line))?;
            let v: f64 = match cell.parse() {
                Ok(v) => v,
                Err(_) => {
                    return Err(data_err(
                        Some(row),
                        Some(format!("{} ({name})", j + 1)),
                        format!("not a number: {cell:?} (line {line}){hint}"),
                    ))
                }
            };
            if !v.is_finite() {
                return Err(data_err(
                    Some(row),
                    Some(format!("{} ({name})", j + 1)),
                    format!("value {cell:?} is not finite (line {line})"),
                ));
            }
            values.push(v);
        }
        n += 1;
    }
    if n == 0 {
        return Err(data_err(
            None,
            None,
            format!("header ({}) but no data rows", columns.join(",")),
        ));
    }
    values.shrink_to_fit();
    let values = Array2::from_shape_vec((n, d), values)
        .map_err(|e| Error::Shape(format!("{}: {e}", path.display())))?;
    Ok(NumericTable { columns, values })
}
