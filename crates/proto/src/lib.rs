pub mod amount;
pub mod canonical;
pub mod control;
pub mod model;
pub mod pow;
pub mod sig;
