//! tessera-jose
#![forbid(unsafe_code)]

pub mod alg;
mod b64;
pub mod error;
mod json;
pub mod jwk;

pub use alg::{Algorithm, ContentEncryption, KeyManagement};
pub use error::{Error, ErrorKind, Result};
pub use jwk::{Curve, Jwk, JwkSet, KeySource, KeyType};
pub mod jws;
pub mod jwt;
pub mod dangerous;
