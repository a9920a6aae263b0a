//! The tessera binary.
#![forbid(unsafe_code)]
fn main() {}
