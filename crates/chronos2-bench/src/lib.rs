//! Benchmark support for chronos2-rs: synthetic full-size models and inputs.
