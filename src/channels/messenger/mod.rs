//! Messenger (and Instagram DMs, which share its webhook and Send API
//! shapes): `messaging` webhook events in, Send API calls out.

mod inbound;
mod outbound;
pub mod profiles;

pub(crate) use inbound::parse_entry;
pub use outbound::{media_body, text_body, typing_body, typing_on, with_part_id, ID_POINTER};
