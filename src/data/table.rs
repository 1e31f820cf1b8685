//! [`RawTable`]: a CSV file with a header, stored by column with typed cells.
//!
//! Every cell is classified once, while the file is streamed (module `reader`):
//!
//! * **missing** when it is one of the NA tokens of [`super::is_missing`] (empty, `NA`,
//!   `N/A`, `#N/A`, `NaN` with any sign, `null`, `?`; case-insensitive, after trimming);
//! * a **number** when Rust's `f64` parser accepts it (`1`, `-2.5e3`, `.5`, `inf`; a
//!   quoted `"1.5"` is a number, `"1,5"` is not);
//! * **text** otherwise.
//!
//! A column is a `Vec<u64>` with one word per cell: a number is its `f64` bit pattern (never
//! a NaN), text and missing cells are NaN-boxed indices into the column's dictionary of
//! distinct strings (each distinct string is stored once). A numeric file of `n` rows and
//! `d` columns thus takes `8 n d` bytes, the size of the data as `f64`, and reading it
//! allocates nothing per cell. Numbers are kept by value: [`RawTable::cell`] writes them
//! back in shortest form (`1.50` reads back as `1.5`, `1.0` as `1`).

use super::is_missing;
use super::reader::{foreign_delimiter, Record, Tokenizer};
use crate::error::{Error, Result};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Bits of a NaN-boxed text cell (dictionary index in the low 32 bits). Numbers are
/// stored as their `f64` bits and are never NaN, so the two cannot collide.
const TEXT_TAG: u64 = 0x7ff4_0000_0000_0000;
const TAG_MASK: u64 = 0xffff_ffff_0000_0000;

/// One cell of a [`RawTable`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// A number (finite or infinite, never NaN).
    Number(f64),
    /// An NA token (the text as written, trimmed).
    Missing(&'a str),
    /// Any other text (trimmed).
    Text(&'a str),
}

impl Cell<'_> {
    /// True for a missing cell.
    pub fn is_missing(&self) -> bool {
        matches!(self, Cell::Missing(_))
    }
}

/// Write a number the way [`RawTable`] gives it back: integers (below 1e15 in magnitude)
/// without a decimal point, others in Rust's shortest round-trip form (`0.5`, `1e300`).
/// `-0` is written `0`.
pub fn fmt_number(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{v:?}")
    }
}

/// The bits used to compare numbers by value (`-0` and `0` are one value).
pub(crate) fn number_key(v: f64) -> u64 {
    if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

/// One column: packed cells and the dictionary of its text and missing cells.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawColumn {
    cells: Vec<u64>,
    dict: Vec<Box<str>>,
    /// Per dictionary entry: an NA token.
    na: Vec<bool>,
    /// Number of cells that are numbers / non-missing text.
    pub(crate) n_number: usize,
    pub(crate) n_text: usize,
}

impl RawColumn {
    #[inline]
    fn get(&self, i: usize) -> Cell<'_> {
        let b = self.cells[i];
        if b & TAG_MASK == TEXT_TAG {
            let k = (b & 0xffff_ffff) as usize;
            if self.na[k] {
                Cell::Missing(&self.dict[k])
            } else {
                Cell::Text(&self.dict[k])
            }
        } else {
            Cell::Number(f64::from_bits(b))
        }
    }
    /// The dictionary index of a text or missing cell.
    #[inline]
    pub(crate) fn text_index(&self, i: usize) -> Option<usize> {
        let b = self.cells[i];
        (b & TAG_MASK == TEXT_TAG).then_some((b & 0xffff_ffff) as usize)
    }
    pub(crate) fn dict(&self) -> &[Box<str>] {
        &self.dict
    }
}

/// Builds a column, interning text.
#[derive(Default)]
struct ColumnBuilder {
    col: RawColumn,
    index: HashMap<Box<str>, u32>,
}

impl ColumnBuilder {
    #[inline]
    fn push(&mut self, s: &str) -> std::result::Result<(), &'static str> {
        if let Ok(v) = s.parse::<f64>() {
            if !v.is_nan() {
                self.col.cells.push(v.to_bits());
                self.col.n_number += 1;
                return Ok(());
            }
        }
        let k = match self.index.get(s) {
            Some(&k) => k,
            None => {
                let k = u32::try_from(self.col.dict.len())
                    .map_err(|_| "more than 2^32 distinct texts in one column")?;
                self.col.dict.push(s.into());
                self.col.na.push(is_missing(s));
                self.index.insert(s.into(), k);
                k
            }
        };
        if !self.col.na[k as usize] {
            self.col.n_text += 1;
        }
        self.col.cells.push(TEXT_TAG | k as u64);
        Ok(())
    }
}

/// A CSV file with a header, read into typed columns (see the module documentation).
#[derive(Debug, Clone)]
pub struct RawTable {
    /// The file it came from (for error messages).
    pub path: PathBuf,
    /// Column names from the header (trimmed).
    pub columns: Vec<String>,
    cols: Vec<RawColumn>,
    n: usize,
}

impl RawTable {
    /// Read a CSV file with a header row, streaming it (the file is never held whole in
    /// memory). Ragged rows, an unterminated quote, duplicate column names and text that
    /// is not UTF-8 are errors naming the file, the row and the line.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Self::from_reader(path, file)
    }

    /// Parse CSV text (the `path` is only used in error messages).
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        Self::from_reader(path, text.as_bytes())
    }

    /// Parse CSV from any byte source (the `path` is only used in error messages).
    pub fn from_reader<R: Read>(path: &Path, src: R) -> Result<Self> {
        let err = |row: Option<usize>, col: Option<String>, msg: String| Error::Data {
            path: path.to_path_buf(),
            row,
            col,
            msg,
        };
        let mut tok = Tokenizer::new(src);
        let mut rec = Record::default();
        let mut next = |rec: &mut Record, row: Option<usize>| -> Result<bool> {
            match tok.next_record(rec) {
                Ok(b) => Ok(b),
                Err(e) => Err(e.into_error(path, row)),
            }
        };
        let utf8 = |row: usize, j: usize, line: usize| {
            err(
                Some(row),
                Some(format!("{}", j + 1)),
                format!("not valid UTF-8 text (line {line})"),
            )
        };
        if !next(&mut rec, Some(0))? {
            return Err(err(None, None, "no header row: the file is empty".into()));
        }
        let mut columns = Vec::with_capacity(rec.len());
        for j in 0..rec.len() {
            columns.push(rec.text(j).map_err(|_| utf8(0, j, rec.line))?.to_string());
        }
        if columns.iter().all(|c| c.is_empty()) {
            return Err(err(None, None, "no header row: the file is empty".into()));
        }
        if columns.len() == 1 {
            if let Some((c, name)) = foreign_delimiter(&columns[0]) {
                return Err(err(
                    Some(0),
                    Some(format!("1 ({})", columns[0])),
                    format!(
                        "the header has one column and holds {c:?}: this looks like a {name}-separated file; robustflow reads comma-separated CSV (convert it, e.g. with `tr '{}' ','` when no cell holds a comma)",
                        c.escape_default()
                    ),
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for (j, c) in columns.iter().enumerate() {
            if !seen.insert(c.as_str()) {
                return Err(err(
                    Some(0),
                    Some(format!("{} ({c})", j + 1)),
                    "duplicate column name in the header".into(),
                ));
            }
        }
        let d = columns.len();
        let mut builders: Vec<ColumnBuilder> = (0..d).map(|_| ColumnBuilder::default()).collect();
        let mut n = 0usize;
        while next(&mut rec, Some(n + 1))? {
            if rec.is_blank() {
                continue;
            }
            let row = n + 1;
            if rec.len() != d {
                return Err(err(
                    Some(row),
                    None,
                    format!(
                        "ragged row: {} fields, expected {d} ({}) (line {})",
                        rec.len(),
                        columns.join(","),
                        rec.line
                    ),
                ));
            }
            for (j, b) in builders.iter_mut().enumerate() {
                let s = rec.text(j).map_err(|_| utf8(row, j, rec.line))?;
                b.push(s).map_err(|m| {
                    err(
                        Some(row),
                        Some(format!("{} ({})", j + 1, columns[j])),
                        m.into(),
                    )
                })?;
            }
            n += 1;
        }
        if n == 0 {
            return Err(err(
                None,
                None,
                format!("header ({}) but no data rows", columns.join(",")),
            ));
        }
        let cols = builders
            .into_iter()
            .map(|b| {
                let mut c = b.col;
                c.cells.shrink_to_fit();
                c
            })
            .collect();
        Ok(RawTable {
            path: path.to_path_buf(),
            columns,
            cols,
            n,
        })
    }

    /// Number of data rows.
    pub fn n_rows(&self) -> usize {
        self.n
    }

    /// The index of the column named `name`.
    pub fn col_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The cell of 0-based data row `i` and column `j`.
    ///
    /// # Panics
    /// When `i` or `j` is out of range.
    #[inline]
    pub fn get(&self, i: usize, j: usize) -> Cell<'_> {
        self.cols[j].get(i)
    }

    /// The cell as text: text and NA tokens as written (trimmed), numbers by
    /// [`fmt_number`].
    ///
    /// # Panics
    /// When `i` or `j` is out of range.
    pub fn cell(&self, i: usize, j: usize) -> Cow<'_, str> {
        match self.get(i, j) {
            Cell::Number(v) => Cow::Owned(fmt_number(v)),
            Cell::Missing(s) | Cell::Text(s) => Cow::Borrowed(s),
        }
    }

    /// Replace column `j` by new cells (one per row, classified as when reading).
    pub fn set_column<S: AsRef<str>>(
        &mut self,
        j: usize,
        cells: impl IntoIterator<Item = S>,
    ) -> Result<()> {
        let mut b = ColumnBuilder::default();
        for s in cells {
            b.push(s.as_ref().trim())
                .map_err(|m| Error::Other(format!("{}: {m}", self.path.display())))?;
        }
        if b.col.cells.len() != self.n || j >= self.cols.len() {
            return Err(Error::Shape(format!(
                "{}: set_column({j}) with {} cells for {} rows and {} columns",
                self.path.display(),
                b.col.cells.len(),
                self.n,
                self.cols.len()
            )));
        }
        self.cols[j] = b.col;
        Ok(())
    }

    /// A table from in-memory columns (the embedding API, [`crate::api`]): numbers (NaN is
    /// a missing cell) or text cells (`None` is missing; typed and trimmed as when
    /// reading). Duplicate names, unequal lengths and no rows are errors naming `path`.
    pub fn from_columns(
        path: &Path,
        columns: Vec<String>,
        data: &[ColumnData<'_>],
    ) -> Result<Self> {
        let err = |msg: String| Error::Data {
            path: path.to_path_buf(),
            row: None,
            col: None,
            msg,
        };
        let mut seen = BTreeSet::new();
        if let Some(c) = columns.iter().find(|c| !seen.insert(c.as_str())) {
            return Err(err(format!("duplicate column name {c:?}")));
        }
        let n = data.first().map_or(0, ColumnData::len);
        if columns.len() != data.len() || data.iter().any(|c| c.len() != n) {
            return Err(err(format!(
                "{} names for {} columns of unequal or mismatched lengths",
                columns.len(),
                data.len()
            )));
        }
        if n == 0 {
            return Err(err(format!(
                "header ({}) but no data rows",
                columns.join(",")
            )));
        }
        let mut cols = Vec::with_capacity(data.len());
        for (j, c) in data.iter().enumerate() {
            let mut b = ColumnBuilder::default();
            let m = |m: &str| err(format!("column {} ({}): {m}", j + 1, columns[j]));
            match c {
                ColumnData::Numbers(v) => {
                    for &x in *v {
                        if x.is_nan() {
                            b.push("NA").map_err(m)?;
                        } else {
                            b.col.cells.push(x.to_bits());
                            b.col.n_number += 1;
                        }
                    }
                }
                ColumnData::Text(v) => {
                    for s in *v {
                        b.push(s.as_deref().unwrap_or("").trim()).map_err(m)?;
                    }
                }
            }
            cols.push(b.col);
        }
        Ok(RawTable {
            path: path.to_path_buf(),
            columns,
            cols,
            n,
        })
    }

    pub(crate) fn column(&self, j: usize) -> &RawColumn {
        &self.cols[j]
    }
}

/// One in-memory column for [`RawTable::from_columns`].
#[derive(Debug, Clone, Copy)]
pub enum ColumnData<'a> {
    /// Numbers (NaN is a missing cell).
    Numbers(&'a [f64]),
    /// Text cells (`None` is a missing cell), typed as when reading a CSV file.
    Text(&'a [Option<String>]),
}

impl ColumnData<'_> {
    /// Number of cells.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Numbers(v) => v.len(),
            ColumnData::Text(v) => v.len(),
        }
    }
    /// True without cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
