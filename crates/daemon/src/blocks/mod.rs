//! Blocks found by the pool's wallet and how they pay (issue 14). Owns
//! `blocks`, `block_parts`, `block_window` (migration 0010).

pub mod db;
pub mod split;
