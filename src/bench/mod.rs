//! The kernel-DRO benchmark suite: seeded data generators ([`generators`]), the
//! datasets x methods x conditions x seeds grid ([`suite`]) and its runner and reports
//! ([`report`]): `results.csv`, `summary.md`, PNG plots and `results.json`.

pub mod generators;
pub mod report;
pub mod suite;
