//! One module per CLI verb.

pub mod run;
