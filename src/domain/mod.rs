//! The rules of livechat, independent of HTTP and of storage.

pub mod access;
pub mod event;
pub mod ids;
pub mod message;
pub mod page;
pub mod session;
pub mod time;
pub mod webhook;
