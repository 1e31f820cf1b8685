//! Tabular data: CSV loading with a schema, encoders, standardisation, splits, shifts.
