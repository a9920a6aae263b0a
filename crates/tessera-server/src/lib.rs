//! The Tessera authentication server.
#![forbid(unsafe_code)]
