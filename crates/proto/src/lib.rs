pub mod amount;
pub mod canonical;
pub mod control;
pub mod sig;
