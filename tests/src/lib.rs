//! Support code for the end-to-end tests: see the module docs.
pub mod daemon;
pub mod standin;
