//! A streaming CSV tokenizer shared by every CSV reader of the crate
//! ([`crate::io::read_numeric_csv`] and [`super::RawTable`]).
//!
//! It reads the dialect of RFC 4180 exactly as the `csv` crate's default reader does (the
//! readers used it before; `tests/csv_compat.rs` checks both give the same tables):
//! fields separated by `,`, records terminated by `\n`, `\r\n` or `\r`, blank lines
//! skipped, a field that *starts* with `"` is quoted (it may hold delimiters and line
//! breaks; `""` inside it is one quote; text after the closing quote is appended), a quote
//! anywhere else is literal, and a UTF-8 byte-order mark at the start of the file is
//! dropped. Two things differ from the `csv` crate, both on purpose:
//!
//! * a quoted field still open at the end of the file is an error naming the line where
//!   the quote opened ([`TokError::UnterminatedQuote`]), not a silently merged field;
//! * each record carries the 1-based line of the file where it starts (its first byte
//!   that is not a line break), tracked incrementally while reading, so naming the line
//!   of an error costs nothing (the old reader rescanned the file from the start for every
//!   record, which made reading quadratic).
//!
//! Input is read in blocks of [`BLOCK`] bytes; one [`Record`] is reused for every record,
//! so reading allocates nothing per cell. Fields are returned untrimmed as bytes; the
//! readers trim them (Unicode white space, as `str::trim`) and check UTF-8 per field.

use std::io::Read;

/// Bytes read from the source at a time.
pub const BLOCK: usize = 1 << 18;

/// One record: the unescaped bytes of its fields, concatenated, and where each ends.
#[derive(Debug, Default, Clone)]
pub struct Record {
    data: Vec<u8>,
    ends: Vec<usize>,
    /// 1-based line of the file where the record starts.
    pub line: usize,
}

impl Record {
    /// Number of fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    /// The raw (untrimmed, unescaped) bytes of field `j`.
    pub fn field(&self, j: usize) -> &[u8] {
        // `data` holds one separator byte after every field but the last.
        let start = if j == 0 { 0 } else { self.ends[j - 1] + 1 };
        &self.data[start..self.ends[j]]
    }
    /// Field `j` as trimmed text; `Err(())` when it is not valid UTF-8.
    pub fn text(&self, j: usize) -> Result<&str, ()> {
        let b = self.field(j);
        if b.is_ascii() {
            // ASCII white space is what `str::trim` removes from ASCII text.
            let ws = |c: &u8| matches!(c, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ');
            let start = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
            let end = b.iter().rposition(|c| !ws(c)).map_or(start, |k| k + 1);
            // SAFETY: ASCII bytes are valid UTF-8.
            return Ok(unsafe { std::str::from_utf8_unchecked(&b[start..end]) });
        }
        let s = std::str::from_utf8(b).map_err(|_| ())?;
        Ok(s.trim())
    }
    /// True when every field is empty after trimming (the readers skip such records,
    /// e.g. a line holding only spaces or only commas).
    pub fn is_blank(&self) -> bool {
        (0..self.len()).all(|j| match self.text(j) {
            Ok(s) => s.is_empty(),
            Err(()) => false,
        })
    }
}

/// A tokenizer failure.
#[derive(Debug)]
pub enum TokError {
    /// Reading the source failed.
    Io(std::io::Error),
    /// A quoted field opened on `line` is still open at the end of the file.
    UnterminatedQuote {
        /// 1-based line of the opening quote.
        line: usize,
    },
}

impl TokError {
    /// The user-facing error: I/O errors name the file; an unterminated quote names the
    /// file, the data row being read (`row`) and the line where the quote opened.
    pub fn into_error(self, path: &std::path::Path, row: Option<usize>) -> crate::Error {
        match self {
            TokError::Io(e) => crate::Error::io(path, e),
            TokError::UnterminatedQuote { line } => crate::Error::Data {
                path: path.to_path_buf(),
                row,
                col: None,
                msg: format!(
                    "unterminated quoted field: the quote opened on line {line} is never closed"
                ),
            },
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum St {
    StartField,
    InField,
    InQuoted,
    AfterQuote,
}

/// The streaming tokenizer over any byte source.
pub struct Tokenizer<R> {
    src: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    /// 1-based line of the byte at `pos`.
    line: usize,
    started: bool,
    delimiter: u8,
    /// Bytes that end an unquoted field: the delimiter and line breaks.
    stop: [bool; 256],
}

impl<R: Read> Tokenizer<R> {
    /// A comma-separated tokenizer over `src`.
    pub fn new(src: R) -> Self {
        Tokenizer {
            src,
            buf: vec![0; BLOCK],
            pos: 0,
            end: 0,
            eof: false,
            line: 1,
            started: false,
            delimiter: b',',
            stop: std::array::from_fn(|c| c == b',' as usize || c == 10 || c == 13),
        }
    }

    /// Read more input at `end` (the buffer is compacted first). Returns false at the end
    /// of the input.
    fn refill(&mut self) -> Result<bool, TokError> {
        if self.eof {
            return Ok(false);
        }
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(TokError::Io(e)),
            }
        }
    }

    /// Read the next record into `rec`; `Ok(false)` at the end of the input.
    pub fn next_record(&mut self, rec: &mut Record) -> Result<bool, TokError> {
        rec.data.clear();
        rec.ends.clear();
        if !self.started {
            self.started = true;
            while self.end < 3 && self.refill()? {}
            if self.buf[..self.end].starts_with(b"\xef\xbb\xbf") {
                self.pos = 3;
            }
        }
        // Skip line breaks before the record.
        loop {
            if self.pos == self.end && !self.refill()? {
                return Ok(false);
            }
            match self.buf[self.pos] {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b'\r' => self.pos += 1,
                _ => break,
            }
        }
        rec.line = self.line;
        let delim = self.delimiter;
        debug_assert!(self.stop[delim as usize]);
        // Fast path: the whole line is in the buffer and holds no quote, so every field is
        // unquoted: copy the line once and find the delimiters with SIMD.
        {
            let s = &self.buf[self.pos..self.end];
            if let Some(k) = memchr::memchr2(b'\n', b'\r', s) {
                let line = &s[..k];
                if memchr::memchr(b'"', line).is_none() {
                    rec.data.extend_from_slice(line);
                    rec.ends.extend(memchr::memchr_iter(delim, line));
                    rec.ends.push(k);
                    if s[k] == b'\n' {
                        self.line += 1;
                    }
                    self.pos += k + 1;
                    return Ok(true);
                }
            }
        }
        let mut st = St::StartField;
        let mut quote_line = 0;
        loop {
            if self.pos == self.end && !self.refill()? {
                if st == St::InQuoted {
                    return Err(TokError::UnterminatedQuote { line: quote_line });
                }
                rec.ends.push(rec.data.len());
                return Ok(true);
            }
            match st {
                St::StartField => {
                    if self.buf[self.pos] == b'"' {
                        st = St::InQuoted;
                        quote_line = self.line;
                        self.pos += 1;
                    } else {
                        st = St::InField;
                    }
                }
                St::AfterQuote => {
                    if self.buf[self.pos] == b'"' {
                        rec.data.push(b'"');
                        self.pos += 1;
                        st = St::InQuoted;
                    } else {
                        st = St::InField;
                    }
                }
                St::InField => {
                    let s = &self.buf[self.pos..self.end];
                    let stop = &self.stop;
                    match s.iter().position(|&c| stop[c as usize]) {
                        None => {
                            rec.data.extend_from_slice(s);
                            self.pos = self.end;
                        }
                        Some(k) => {
                            rec.data.extend_from_slice(&s[..k]);
                            let c = s[k];
                            self.pos += k + 1;
                            rec.ends.push(rec.data.len());
                            if c == delim {
                                rec.data.push(delim);
                                st = St::StartField;
                            } else {
                                if c == b'\n' {
                                    self.line += 1;
                                }
                                return Ok(true);
                            }
                        }
                    }
                }
                St::InQuoted => {
                    let s = &self.buf[self.pos..self.end];
                    let k = s.iter().position(|&c| c == b'"');
                    let part = &s[..k.unwrap_or(s.len())];
                    self.line += part.iter().filter(|&&c| c == b'\n').count();
                    rec.data.extend_from_slice(part);
                    match k {
                        None => self.pos = self.end,
                        Some(k) => {
                            self.pos += k + 1;
                            st = St::AfterQuote;
                        }
                    }
                }
            }
        }
    }
}

/// The delimiter a one-column header suggests, when it holds `;`, a tab or `|` (the file is
/// probably not comma-separated): `(character, name)`.
pub fn foreign_delimiter(cell: &str) -> Option<(char, &'static str)> {
    [(';', "semicolon"), ('\t', "tab"), ('|', "pipe")]
        .into_iter()
        .find(|(c, _)| cell.contains(*c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &[u8]) -> Result<Vec<(usize, Vec<String>)>, usize> {
        // A tiny source that returns one byte per read, to exercise refills.
        struct Slow<'a>(&'a [u8]);
        impl Read for Slow<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() || out.is_empty() {
                    return Ok(0);
                }
                out[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let mut out = Vec::new();
        for slow in [false, true] {
            let mut t: Tokenizer<Box<dyn Read>> = Tokenizer::new(if slow {
                Box::new(Slow(text))
            } else {
                Box::new(text)
            });
            let mut rec = Record::default();
            let mut v = Vec::new();
            loop {
                match t.next_record(&mut rec) {
                    Ok(true) => v.push((
                        rec.line,
                        (0..rec.len())
                            .map(|j| String::from_utf8_lossy(rec.field(j)).into_owned())
                            .collect(),
                    )),
                    Ok(false) => break,
                    Err(TokError::UnterminatedQuote { line }) => return Err(line),
                    Err(TokError::Io(e)) => panic!("{e}"),
                }
            }
            if slow {
                assert_eq!(v, out, "block boundaries change nothing");
            } else {
                out = v;
            }
        }
        Ok(out)
    }

    fn rec(line: usize, f: &[&str]) -> (usize, Vec<String>) {
        (line, f.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn dialect() {
        assert_eq!(
            toks(b"\xef\xbb\xbfa,b\r\n\r\n1,\"x,\"\"y\"\"\nz\"\r\n3,4").unwrap(),
            vec![
                rec(1, &["a", "b"]),
                rec(3, &["1", "x,\"y\"\nz"]),
                rec(5, &["3", "4"])
            ]
        );
        assert_eq!(
            toks(b"a\"b,\"c\"d,\n\n\n,").unwrap(),
            vec![rec(1, &["a\"b", "cd", ""]), rec(4, &["", ""])]
        );
        assert_eq!(toks(b"\r\r\n\n").unwrap(), vec![]);
        assert_eq!(toks(b"a,\"b\n\nc").unwrap_err(), 1);
        assert_eq!(toks(b"x\n1,2\n3,\"").unwrap_err(), 3);
    }
}
