//! WhatsApp Cloud API: `whatsapp_business_account` webhooks in (messages,
//! contacts, statuses), `POST /{phone_number_id}/messages` out (text, media
//! by link, templates, the typing indicator).

mod inbound;
mod outbound;

pub(crate) use inbound::parse_entry;
pub use outbound::{
    media_body, template_body, text_body, typing_body, typing_on, with_part_id, ID_POINTER,
};
