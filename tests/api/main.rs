//! The conformance suite: every test runs against the real server over HTTP,
//! once on SQLite and once on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly by design")]

mod corpus;
mod helpers;
mod node;

mod access;
mod auth;
mod bench;
mod cli;
mod cluster;
mod envelope;
mod messages;
mod openapi;
mod pagination;
mod plans;
mod realtime;
mod sessions;
mod stream;
mod strict;
mod typescript;
