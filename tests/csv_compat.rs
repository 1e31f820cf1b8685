//! The streaming CSV readers give the same tables and the same error positions as the
//! readers they replaced (the `csv`-crate based `parse_numeric_csv` and `RawTable::parse`,
//! kept here verbatim as references) on the existing cases, blank lines, CRLF, quoted
//! fields and random byte soups of CSV punctuation. The only deliberate difference, an
//! unterminated quote now being an error, is checked separately.

use ndarray::Array2;
use proptest::prelude::*;
use robustflow::data::RawTable;
use robustflow::io::parse_numeric_csv;
use robustflow::Error;
use std::path::Path;

/// The numeric reader before the rewrite (src/io.rs at 3079ebd), unchanged.
fn old_numeric(text: &str, path: &Path) -> Result<(Vec<String>, Array2<f64>), Error> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let data_err = |row: Option<usize>, col: Option<String>, msg: String| Error::Data {
        path: path.into(),
        row,
        col,
        msg,
    };
    let line_of = |byte: u64| {
        let bytes = text.as_bytes();
        let mut start = (byte as usize).min(bytes.len());
        while start < bytes.len() && (bytes[start] == b'\n' || bytes[start] == b'\r') {
            start += 1;
        }
        1 + bytes[..start].iter().filter(|b| **b == b'\n').count()
    };
    let mut records = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e
                .position()
                .map(|p| format!(" (line {})", line_of(p.byte())))
                .unwrap_or_default();
            data_err(None, None, format!("{e}{line}"))
        })?;
        if rec.iter().all(|c| c.is_empty()) {
            continue;
        }
        let line = rec.position().map(|p| line_of(p.byte())).unwrap_or(0);
        records.push((line, rec));
    }
    if records.is_empty() {
        return Err(data_err(None, None, "no rows: the file is empty".into()));
    }
    let (first_line, first) = &records[0];
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
    let d = columns.len();
    let data_rows = if has_header {
        &records[1..]
    } else {
        &records[..]
    };
    if data_rows.is_empty() {
        return Err(data_err(
            None,
            None,
            format!("header ({}) but no data rows", columns.join(",")),
        ));
    }
    let mut values = Array2::<f64>::zeros((data_rows.len(), d));
    for (i, (line, rec)) in data_rows.iter().enumerate() {
        let row = i + 1;
        if rec.len() != d {
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
        for (j, cell) in rec.iter().enumerate() {
            let col = Some(format!("{} ({})", j + 1, columns[j]));
            let v: f64 = cell.parse().map_err(|_| {
                data_err(
                    Some(row),
                    col.clone(),
                    format!("not a number: {cell:?} (line {line})"),
                )
            })?;
            if !v.is_finite() {
                return Err(data_err(
                    Some(row),
                    col,
                    format!("value {cell:?} is not finite (line {line})"),
                ));
            }
            values[[i, j]] = v;
        }
    }
    Ok((columns, values))
}

/// The text-table reader before the rewrite (src/data/mod.rs at 3079ebd): header and rows.
#[allow(clippy::type_complexity)]
fn old_raw(text: &str) -> Result<(Vec<String>, Vec<Vec<String>>), (Option<usize>, Option<String>)> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let columns: Vec<String> = rdr
        .headers()
        .map_err(|_| (None, None))?
        .iter()
        .map(|s| s.to_string())
        .collect();
    if columns.is_empty() || columns.iter().all(|c| c.is_empty()) {
        return Err((None, None));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (j, c) in columns.iter().enumerate() {
        if !seen.insert(c.clone()) {
            return Err((Some(0), Some(format!("{} ({c})", j + 1))));
        }
    }
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|_| (None, None))?;
        if rec.iter().all(|c| c.is_empty()) {
            continue;
        }
        let row = rows.len() + 1;
        if rec.len() != columns.len() {
            return Err((Some(row), None));
        }
        rows.push(rec.iter().map(|s| s.to_string()).collect());
    }
    if rows.is_empty() {
        return Err((None, None));
    }
    Ok((columns, rows))
}

fn is_unterminated(e: &Error) -> bool {
    e.to_string().contains("unterminated quoted field")
}

/// New numeric reader == old one (same table, or the same error message).
fn check_numeric(text: &str) {
    let p = Path::new("compat.csv");
    let new = parse_numeric_csv(text, p);
    let old = old_numeric(text, p);
    match (new, old) {
        (Ok(t), Ok((c, v))) => {
            assert_eq!(t.columns, c, "{text:?}");
            assert_eq!(t.values, v, "{text:?}");
        }
        (Err(e), _) if is_unterminated(&e) => {}
        (Err(a), Err(b)) => {
            // Same message; a semicolon- or tab-separated file adds a hint at the end.
            let (a, b) = (a.to_string(), b.to_string());
            assert!(
                a == b || (a.starts_with(&b) && a[b.len()..].starts_with("; the header holds")),
                "{text:?}: new {a:?}, old {b:?}"
            )
        }
        (a, b) => panic!("{text:?}: new {a:?}, old {b:?}"),
    }
}

/// New text table == old one: same header, same rows (numbers compared by value, text
/// exactly), or an error at the same row and column.
fn check_raw(text: &str) {
    let p = Path::new("compat.csv");
    let new = RawTable::parse(p, text);
    let old = old_raw(text);
    match (new, old) {
        (Ok(t), Ok((c, rows))) => {
            assert_eq!(t.columns, c, "{text:?}");
            assert_eq!(t.n_rows(), rows.len(), "{text:?}");
            for (i, r) in rows.iter().enumerate() {
                for (j, cell) in r.iter().enumerate() {
                    let got = t.cell(i, j);
                    match cell.parse::<f64>() {
                        Ok(v) if !v.is_nan() => {
                            assert_eq!(got.parse::<f64>().ok(), Some(v), "{text:?} ({i},{j})")
                        }
                        _ => assert_eq!(&*got, cell, "{text:?} ({i},{j})"),
                    }
                }
            }
        }
        (Err(e), _) if is_unterminated(&e) => {}
        // Deliberate: a one-column header holding `;`, a tab or `|` is named as such.
        (Err(e), _) if e.to_string().contains("-separated file") => {}
        (Err(Error::Data { row, col, .. }), Err((r, c))) => {
            assert_eq!((row, col), (r, c), "{text:?}")
        }
        (a, b) => panic!("{text:?}: new {a:?}, old {b:?}"),
    }
}

/// The cases of tests/bad_input.rs, tests/data.rs and friends, plus blank lines, CRLF,
/// quoted fields, BOM and white space.
const CASES: &[&str] = &[
    "a, b\n1, 2.5\n\n-3e-1,4\n",
    "1,2,3\n4,5,6\n",
    "x1,x2,weight\n0.1,-2,0.25\n3.5,1e-12,0.75\n",
    "x,y,z\n1,2,3\n4,5\n6,7,8\n",
    "1,2\n1,2,3\n",
    "x,y\n1,2\n3,abc\n",
    "1,2\n3,4\n5,six\n",
    "1,oops\n3,4\n",
    "x,y\n\n1,2\n\n3,?\n",
    "a,b\n1,2\nNaN,3\n",
    "a,b\n1,2\ninf,3\n",
    "a,b\n1,2\n1e400,3\n",
    "1,NaN\n",
    "",
    "\n\n",
    "  \n",
    "x,y\n",
    "x1,x2\n1,2\n3\n4,5\n",
    "a,b\n0,0\n1\n",
    // CRLF, CR only, blank lines with CR, trailing blank lines, no final newline
    "a,b\r\n1,2\r\n\r\n3,4\r\n",
    "a,b\r1,2\r\r3,x\r",
    "a,b\r\n1,2\r\n\r\n3,x\r\n",
    "a,b\n1,2\n\n\n\n3,4",
    "\n\n\na,b\n\n1,2\n5,\n",
    // quoted fields, escaped quotes, line breaks inside quotes
    "\"a\",\"b\"\n\"1\",\"2\"\n",
    "\"a,1\",b\n1,2\n",
    "a,b\n\"1\n\",2\n3,\"4\"\"\"\n",
    "a,b\n\"1\",\"2\"x\n",
    "a,b\n\"1,5\",2\n",
    "a,b\n  \"1\"  ,2\n",
    "a,\"b\nc\"\n1,2\n\n3,q\n",
    "a,b\n\"\",2\n",
    // BOM, white space, commas only
    "\u{feff}a,b\n1,2\n",
    "\u{feff}1,2\n3,4\n",
    "a,b\n,\n1,2\n , \n",
    "a,b\n\t1\t,\u{a0}2\u{3000}\n",
    "a;b\n1;2\n",
    "a\tb\n1\t2\n",
    "ä,ü\n1,2\n",
    "a,a\n1,2\n",
    "a,b\n1,2,\n",
];

#[test]
fn numeric_reader_matches_the_old_one_on_every_case() {
    for text in CASES {
        check_numeric(text);
    }
}

#[test]
fn text_table_reader_matches_the_old_one_on_every_case() {
    for text in CASES {
        check_raw(text);
    }
}

#[test]
fn unterminated_quote_is_an_error_naming_its_line() {
    for (text, line) in [
        ("a,b\n1,2\n3,\"4\n5,6\n", 3),
        ("a,b\n1,\"2\"\n\n\"3,4\n", 4),
        ("\"a,b\n1,2\n", 1),
    ] {
        let e = parse_numeric_csv(text, Path::new("q.csv")).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("q.csv")
                && m.contains("unterminated")
                && m.contains(&format!("line {line}")),
            "{text:?}: {m}"
        );
        let e = RawTable::parse(Path::new("q.csv"), text).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("q.csv")
                && m.contains("unterminated")
                && m.contains(&format!("line {line}")),
            "{text:?}: {m}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    /// Random texts over the CSV punctuation, digits, text and white space.
    #[test]
    fn readers_match_the_old_ones_on_random_text(
        parts in proptest::collection::vec(
            prop_oneof![
                Just(","), Just("\n"), Just("\r\n"), Just("\r"), Just("\""), Just(" "),
                Just("1"), Just("2.5"), Just("-3e2"), Just("x"), Just("NaN"), Just("inf"),
                Just("é"), Just("\t"), Just("a,b\n"), Just("1,2\n"),
            ],
            0..40,
        )
    ) {
        let text: String = parts.concat();
        check_numeric(&text);
        check_raw(&text);
    }
}
