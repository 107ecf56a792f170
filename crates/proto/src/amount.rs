//! amount
