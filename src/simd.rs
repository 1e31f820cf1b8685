//! Run-time choice of the instruction set (a leaf module: no dependency on the rest of the
//! crate).
//!
//! The fused kernel loops ([`crate::kernel::engine`]), the random-feature maps
//! ([`crate::kernel::rff`]) and the dense helpers of [`crate::linalg`] are written once as
//! portable `#[inline(always)]` bodies and instantiated under `#[target_feature]` for
//! AVX-512F and AVX2 + FMA; [`SimdLevel::detect`] picks the best level this CPU supports
//! (`is_x86_feature_detected!`), and a caller may force one ([`SimdLevel::available`]
//! checks it). Results depend on the level only through the summation order (lane count),
//! within round-off.

/// An instruction-set level of the fused loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimdLevel {
    /// AVX-512F (512-bit vectors, FMA).
    Avx512,
    /// AVX2 + FMA (256-bit vectors).
    Avx2Fma,
    /// Baseline x86-64 (SSE2) or any other architecture: portable code.
    Baseline,
}

impl std::fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SimdLevel::Avx512 => "avx512",
            SimdLevel::Avx2Fma => "avx2+fma",
            SimdLevel::Baseline => "baseline",
        })
    }
}

impl SimdLevel {
    /// Whether this CPU can run the level.
    pub fn available(self) -> bool {
        match self {
            SimdLevel::Baseline => true,
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2Fma => {
                is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
    /// The best level this CPU supports.
    pub fn detect() -> SimdLevel {
        [SimdLevel::Avx512, SimdLevel::Avx2Fma]
            .into_iter()
            .find(|l| l.available())
            .unwrap_or(SimdLevel::Baseline)
    }
    /// All levels this CPU supports, best first.
    pub fn all_available() -> Vec<SimdLevel> {
        [SimdLevel::Avx512, SimdLevel::Avx2Fma, SimdLevel::Baseline]
            .into_iter()
            .filter(|l| l.available())
            .collect()
    }
}
