//! livechat: a multi-tenant livechat API server.
//!
//! Dependencies point one way: transports → use cases → rules and storage.
//!
//! - [`http`]: where requests enter (router, extractors, handlers, the stream endpoints).
//! - [`realtime`]: the real-time engine (hub, fan-out, the per-connection actor, presence upkeep).
//! - [`service`]: the use cases, shared by every transport.
//! - [`domain`]: the rules, independent of HTTP and SQL.
//! - [`store`]: storage, one trait per aggregate over SQLite and PostgreSQL.
//! - [`wire`]: the JSON shapes both transports send.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod realtime;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod wire;
