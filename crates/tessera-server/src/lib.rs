//! The Tessera authentication server: HTTP → flow → store.
//!
//! - [`config`]: typed, layered configuration;
//! - [`startup`]: build, bind (port 0 in tests), serve, shut down gracefully;
//! - [`routes`] and [`http`]: the HTTP surface, one [`error::ApiError`]; [`pages`]:
//!   the hosted login, consent and logout pages;
//! - [`flows`]: what each route does, in the store's vocabulary, never SQL;
//! - [`store`]: the storage trait and its SQLite implementation;
//! - [`keys`], [`tokens`], [`denylist`]: signing keys, access tokens, revocation.
#![forbid(unsafe_code)]

pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod denylist;
pub mod domain;
pub mod error;
pub mod flows;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod pages;
pub mod password;
pub mod proxy;
pub mod ratelimit;
pub mod redact;
pub mod routes;
pub mod startup;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tokens;

pub use config::Config;
pub use startup::{Running, spawn};
