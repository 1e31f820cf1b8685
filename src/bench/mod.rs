//! The kernel-DRO benchmark suite: seeded data generators and (with the trainer) the
//! datasets x methods x conditions x seeds grid.

pub mod generators;
