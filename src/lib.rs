//! livechat: a multi-tenant livechat API server.
//!
//! - [`http`]: where requests enter (router, extractors, handlers).
//! - [`service`]: the use cases.
//! - [`domain`]: the rules, independent of HTTP and SQL.
//! - [`store`]: storage, one trait over SQLite and PostgreSQL.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod realtime;
pub mod service;
pub mod store;
pub mod telemetry;
