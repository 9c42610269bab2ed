//! Webhooks, free of HTTP and SQL. (docs/API.md §14; the worker that
//! sends them is `crate::webhooks`.)
//!
//! - `url`: target URLs and the SSRF rules on them ([`UrlRules`],
//!   [`CheckedUrl`], [`WebhookUrl`], [`Host`]);
//! - `address`: which IP addresses a receiver may not be at
//!   ([`forbidden_address`]);
//! - `events`: the event catalogue ([`EventType`], [`EventTypes`]);
//! - `subscription`: whose ([`Owner`]), signing secrets, states, the stored
//!   [`Webhook`] and a [`WebhookPatch`];
//! - `delivery`: the outbox event, deliveries and their states, claims and
//!   attempt outcomes, and the [`RetrySchedule`].

mod address;
mod delivery;
mod events;
mod subscription;
mod url;

pub use self::url::{CheckedUrl, Host, MAX_URL_CHARS, UrlRules, WebhookUrl};
pub use address::forbidden_address;
pub use delivery::{
    AttemptOutcome, AttemptResult, ClaimedDelivery, Delivery, DeliveryKey, DeliveryState, OutboxEvent, RetrySchedule,
};
pub use events::{EventType, EventTypes};
pub use subscription::{
    MAX_DESCRIPTION_CHARS, Owner, SECRET_PREFIX, SigningSecret, Webhook, WebhookPatch, WebhookState, parse_description,
};
