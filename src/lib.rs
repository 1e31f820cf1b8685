//! # robustflow
//!
//! Distributionally robust learning on kernelized gradient flows over probability
//! measures. A weighted particle measure `mu = sum_i w_i delta_{x_i}` ([`measure`]) is
//! evolved by the gradient flow of an energy ([`energy`]) in a geometry ([`flow`]):
//! Wasserstein (particles move), Fisher-Rao (weights change), Wasserstein-Fisher-Rao,
//! the MMD geometry, Interaction-Force Transport, and the baselines SVGD and Langevin.
//! Kernel sums are fused and streamed ([`kernel`]).
//!
//! The mathematics is summarised in `docs/DESIGN.md` (which the module docs cite as
//! `docs/DESIGN.md §N`) and in each module's documentation, with references to the
//! papers; the layers and how to extend them are in `docs/ARCHITECTURE.md`.

#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod bench;
pub mod data;
pub mod dro;
pub mod energy;
pub mod error;
pub mod experiments;
pub mod flow;
pub mod inference;
pub mod io;
pub mod kernel;
pub mod linalg;
pub mod measure;
pub mod model;
pub mod outputs;
pub mod plot;
pub mod progress;
pub mod simd;
pub mod simplex;
pub mod solve;
pub mod stats;
pub mod train;

pub use error::{Error, Result};
