//! The conformance suite: every test runs against the real server over HTTP,
//! once on SQLite and once on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly by design")]

mod corpus;
mod fuzz_corpus;
mod helpers;
mod node;

mod access;
mod auth;
mod bench;
mod browser;
mod cli;
mod cluster;
mod connections;
mod crash;
mod envelope;
mod faults;
mod headers;
mod messages;
mod metrics;
mod model;
mod openapi;
mod operations;
mod pagination;
mod pgproxy;
mod plans;
mod realtime;
mod sessions;
mod stream;
mod strict;
mod typescript;
mod webhooks;
