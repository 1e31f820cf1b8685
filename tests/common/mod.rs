//! Helpers shared by the command-line test files (`mod common;` in each).
#![allow(dead_code)] // each test file uses a subset

use std::process::Command;

/// The `robustflow` binary built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_robustflow"))
}

/// A seeded uniform draw on `[0, 1)` (a 64-bit LCG, top 53 bits): the same stream on
/// every platform, so the generated test files are byte-identical run to run.
pub fn uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64) / ((1u64 << 53) as f64)
    }
}
