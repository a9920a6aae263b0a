//! The HTTP integration cases of `api.rs` on PostgreSQL: each app in a schema of
//! its own in the database `TESSERA_TEST_POSTGRES` names; every case says SKIPPED
//! on stderr when it is unset.

mod common;

const BACKEND: common::Backend = common::Backend::Postgres;

include!("api/cases.rs");
