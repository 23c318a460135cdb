//! Messenger (and Instagram DMs, which share its webhook and Send API
//! shapes): `messaging` webhook events in, Send API calls out.

mod inbound;
mod outbound;
pub mod profiles;

pub(crate) use inbound::{parse_entry, RawEntry};
pub use outbound::{send_text, text_body, typing_body, typing_on};
