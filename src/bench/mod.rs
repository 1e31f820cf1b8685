//! The kernel-DRO benchmark suite: seeded data generators ([`generators`]), the
//! datasets x methods x conditions x seeds grid ([`suite`]) and its runner and reports
//! ([`report`]): `results.csv`, `summary.md`, PNG plots and `results.json`; the robust
//! least-squares comparison ([`rls`]) and the circles decision boundaries
//! ([`qualitative`]).

pub mod generators;
pub mod kdro_rls;
pub mod methods;
pub mod qualitative;
pub mod report;
pub mod rls;
pub mod suite;
