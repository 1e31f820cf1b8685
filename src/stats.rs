//! Summary statistics shared by the loaders, the reports and the commands (a leaf module:
//! it depends on nothing in the crate but [`crate::error`]).
//!
//! - [`mean_std`]: the mean `m = (sum_i v_i) / n` and the **sample** standard deviation
//!   `s = sqrt(sum_i (v_i - m)^2 / (n - 1))` (0 for one value), the spread over seeds that
//!   the summaries report.
//! - [`population_mean_std`]: the mean and the **population** standard deviation
//!   `sqrt(sum_i (v_i - m)^2 / n)` of the z-score scaler, summed term by term as
//!   `sum v_i / n`, with a rescaled second pass when that overflows (values beyond ~1e154),
//!   so every finite column gets finite statistics.
//! - [`quantile`] / [`Quantiles`]: order statistics with linear interpolation, the
//!   "type 7" rule of Hyndman and Fan (1996), the default of R and numpy: at
//!   `h = p (n - 1)`, `q(p) = s_floor(h) + (h - floor(h)) (s_ceil(h) - s_floor(h))` on the
//!   sorted values `s`; the median of an even count is the mean of the two middle values.
//!
//! The formulas and their order of summation are the ones the callers used before they
//! shared this module, so reported numbers are unchanged to the last bit.

use crate::error::{Error, Result};
use serde::Serialize;

/// Mean and sample standard deviation (`n - 1` denominator; 0 for one value). An empty
/// slice gives `(0, 0)`.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n.max(1.0);
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, s)
}

/// Mean and standard deviation of `vals` (population, `1/n`), computed as `sum v/n` and
/// `sum (v - m)^2 / n` and, when that overflows (values beyond ~1e154), again on
/// `v / max|v|` and scaled back, which is finite for every finite input.
pub fn population_mean_std(vals: &[f64]) -> (f64, f64) {
    let n = vals.len() as f64;
    let mut m = 0.0;
    for v in vals {
        m += v / n;
    }
    let mut var = 0.0;
    for v in vals {
        var += (v - m).powi(2) / n;
    }
    if m.is_finite() && var.is_finite() {
        return (m, var.sqrt());
    }
    let a = vals.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let mut m1 = 0.0;
    for v in vals {
        m1 += (v / a) / n;
    }
    let mut var1 = 0.0;
    for v in vals {
        var1 += (v / a - m1).powi(2) / n;
    }
    (m1 * a, var1.sqrt() * a)
}

/// Quantile `p` in `[0, 1]` of **sorted**, non-empty values by linear interpolation between
/// order statistics (the median of an even count is the mean of the two middle values).
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    let h = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Median and quartiles of a sample (linear interpolation between order statistics,
/// [`quantile`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quantiles {
    /// Number of values.
    pub n: usize,
    /// Minimum.
    pub min: f64,
    /// First quartile.
    pub q25: f64,
    /// Median.
    pub median: f64,
    /// Third quartile.
    pub q75: f64,
    /// Maximum.
    pub max: f64,
}

impl Quantiles {
    /// Quantiles of `v` (must be non-empty and free of NaN): an error for an empty sample.
    pub fn of(v: &[f64]) -> Result<Self> {
        Self::try_of(v).ok_or_else(|| Error::Other("quantiles of an empty sample".into()))
    }

    /// Quantiles of `v` (any order; NaN sorts last by [`f64::total_cmp`]). `None` for an
    /// empty sample.
    pub fn try_of(v: &[f64]) -> Option<Self> {
        if v.is_empty() {
            return None;
        }
        let mut s = v.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        Some(Quantiles {
            n: s.len(),
            min: s[0],
            q25: quantile(&s, 0.25),
            median: quantile(&s, 0.5),
            q75: quantile(&s, 0.75),
            max: s[s.len() - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_sample(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
        (m, var.sqrt())
    }

    fn sample(n: usize, seed: u64) -> Vec<f64> {
        // A small LCG: values in (-50, 50) with a few large ones.
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..n)
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (s >> 11) as f64 / (1u64 << 53) as f64;
                (u - 0.5) * if i % 7 == 0 { 1e3 } else { 100.0 }
            })
            .collect()
    }

    #[test]
    fn mean_std_matches_the_naive_formula() {
        for (n, seed) in [(2, 1), (3, 2), (10, 3), (257, 4)] {
            let v = sample(n, seed);
            let (m, s) = mean_std(&v);
            let (m0, s0) = naive_sample(&v);
            assert!((m - m0).abs() <= 1e-12 * m0.abs().max(1.0), "{m} vs {m0}");
            assert!((s - s0).abs() <= 1e-12 * s0, "{s} vs {s0}");
        }
        assert_eq!(mean_std(&[4.5]), (4.5, 0.0));
        assert_eq!(mean_std(&[]), (0.0, 0.0));
        // [1, 2, 3, 4]: mean 2.5, sample variance 5/3.
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        assert!((s - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn population_mean_std_matches_the_naive_formula_and_survives_overflow() {
        for (n, seed) in [(1, 5), (4, 6), (100, 7)] {
            let v = sample(n, seed);
            let (m, s) = population_mean_std(&v);
            let nf = n as f64;
            let m0 = v.iter().sum::<f64>() / nf;
            let s0 = (v.iter().map(|x| (x - m0).powi(2)).sum::<f64>() / nf).sqrt();
            assert!((m - m0).abs() <= 1e-12 * m0.abs().max(1.0));
            assert!((s - s0).abs() <= 1e-12 * s0.max(1e-300));
        }
        // Squares overflow: the rescaled pass gives the exact answer for (a, -a).
        let a = 1e300;
        let (m, s) = population_mean_std(&[a, -a, a, -a]);
        assert_eq!(m, 0.0);
        assert!((s - a).abs() <= 1e-12 * a, "{s}");
        // Scaling the data scales the statistics.
        let v = sample(50, 8);
        let big: Vec<f64> = v.iter().map(|x| x * 1e200).collect();
        let (m1, s1) = population_mean_std(&v);
        let (m2, s2) = population_mean_std(&big);
        assert!(m2.is_finite() && s2.is_finite());
        assert!((m2 / 1e200 - m1).abs() <= 1e-10 * s1);
        assert!((s2 / 1e200 - s1).abs() <= 1e-10 * s1);
    }

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        // Against the definition by brute force: q(p) is the piecewise-linear interpolant
        // of the points (k / (n - 1), s_k).
        let v = sample(11, 9);
        let mut s = v.clone();
        s.sort_by(|a, b| a.total_cmp(b));
        for k in 0..s.len() {
            let p = k as f64 / (s.len() - 1) as f64;
            assert_eq!(quantile(&s, p), s[k]);
        }
        let mid = quantile(&s, 0.05); // halfway between s_0 and s_1 (h = 0.5)
        assert!((mid - 0.5 * (s[0] + s[1])).abs() < 1e-12);
        // Even count: the median is the mean of the middle two.
        assert_eq!(quantile(&[1.0, 2.0, 4.0, 10.0], 0.5), 3.0);
        let q = Quantiles::try_of(&[3.0, 1.0, 2.0, 5.0, 4.0]).unwrap();
        assert_eq!(
            (q.n, q.min, q.q25, q.median, q.q75, q.max),
            (5, 1.0, 2.0, 3.0, 4.0, 5.0)
        );
        assert!(Quantiles::try_of(&[]).is_none());
        assert!(Quantiles::of(&[]).is_err());
    }
}
