//! Support code for the end-to-end tests: see the module docs.
pub mod standin;
