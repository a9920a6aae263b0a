//! The resource-server side of Tessera.
#![forbid(unsafe_code)]
