//! Error type shared by the whole crate.
//!
//! Every user-facing failure names what went wrong and where: the file, row and column
//! of a bad CSV cell, the parameter and value of a bad setting, the step at which a flow
//! diverged. Nothing in the library is supposed to panic on bad input.

use std::path::PathBuf;

/// The crate's error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A hyper-parameter or argument is outside its valid range.
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// Name of the parameter as the user sees it (CLI flag or field name).
        name: String,
        /// The offending value, formatted.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A data file could not be parsed. Rows are 1-based data rows (the header is row 0),
    /// columns are 1-based.
    #[error("{}: {}{}{}", path.display(), row.map(|r| format!("row {r}, ")).unwrap_or_default(), col.as_ref().map(|c| format!("column {c}: ")).unwrap_or_default(), msg)]
    Data {
        /// The file.
        path: PathBuf,
        /// 1-based data row (header excluded), when known.
        row: Option<usize>,
        /// Column (1-based index and name), when known.
        col: Option<String>,
        /// What is wrong.
        msg: String,
    },
    /// An I/O failure, with the path involved.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A flow or optimiser produced a NaN or infinite value.
    #[error("diverged at step {step}: {detail} (try a smaller step size)")]
    Diverged {
        /// The step (0-based iteration of the driver) at which the value became non-finite.
        step: usize,
        /// Which quantity, and for which particle if known.
        detail: String,
    },
    /// Arrays of incompatible shapes were combined.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// An error from candle (models, autodiff, safetensors).
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// JSON (de)serialisation failure.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Anything else, with a message.
    #[error("{0}")]
    Other(String),
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Build an [`Error::InvalidParameter`].
    pub fn param(name: &str, value: impl std::fmt::Display, reason: &str) -> Self {
        Error::InvalidParameter {
            name: name.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }
    /// Build an [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Check that a floating-point parameter is finite and strictly positive.
pub fn check_positive(name: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(Error::param(name, v, "must be finite and > 0"))
    }
}

/// Check that a floating-point parameter is finite and non-negative.
pub fn check_nonneg(name: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(Error::param(name, v, "must be finite and >= 0"))
    }
}

/// Check that a count parameter is at least one.
pub fn check_count(name: &str, v: usize) -> Result<usize> {
    if v >= 1 {
        Ok(v)
    } else {
        Err(Error::param(name, v, "must be >= 1"))
    }
}
