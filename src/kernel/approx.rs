//! The `--approx` choice shared by every command that uses a kernel: the exact kernel,
//! `D` random Fourier features (Rahimi, Recht 2007; Gaussian kernel) or a Nystrom
//! approximation on `M` landmarks (Williams, Seeger 2001; any kernel). See [`super::rff`]
//! for the feature maps and `docs/PERFORMANCE.md` for their measured error against the
//! exact statistic.

use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How kernel sums are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Approx {
    /// Exact kernel sums (`O(n m)` per sum).
    #[default]
    Exact,
    /// `D` random Fourier features (`rff:D`; feature dimension `2 D`).
    Rff(usize),
    /// Nystrom on `M` landmarks (`nystrom:M`), drawn (seeded) from the data.
    Nystrom(usize),
}

impl Approx {
    /// Whether the kernel is approximated.
    pub fn is_exact(&self) -> bool {
        matches!(self, Approx::Exact)
    }
}

impl std::str::FromStr for Approx {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        if t == "exact" || t == "none" {
            return Ok(Approx::Exact);
        }
        let bad = |why: &str| Error::param("approx", s, why);
        let (kind, num) = t
            .split_once(':')
            .ok_or_else(|| bad("expected exact, rff:D or nystrom:M"))?;
        let v: usize = num
            .trim()
            .parse()
            .map_err(|_| bad("the size after `:` must be a positive integer"))?;
        if v == 0 {
            return Err(bad("the size after `:` must be a positive integer"));
        }
        match kind.trim() {
            "rff" => Ok(Approx::Rff(v)),
            "nystrom" => Ok(Approx::Nystrom(v)),
            _ => Err(bad("expected exact, rff:D or nystrom:M")),
        }
    }
}

impl std::fmt::Display for Approx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Approx::Exact => f.write_str("exact"),
            Approx::Rff(d) => write!(f, "rff:{d}"),
            Approx::Nystrom(m) => write!(f, "nystrom:{m}"),
        }
    }
}

impl Serialize for Approx {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Approx {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        for s in ["exact", "rff:1024", "nystrom:300"] {
            let a: Approx = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        assert_eq!("none".parse::<Approx>().unwrap(), Approx::Exact);
        for bad in ["rff", "rff:0", "rff:x", "svd:3", ""] {
            let e = bad.parse::<Approx>().unwrap_err().to_string();
            assert!(e.contains("approx"), "{e}");
        }
    }
}
