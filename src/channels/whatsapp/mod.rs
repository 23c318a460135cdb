//! WhatsApp Cloud API: `whatsapp_business_account` webhooks in (messages,
//! contacts, statuses), `POST /{phone_number_id}/messages` out (text, media
//! by link, templates, the typing indicator), and the channel's facts (4096
//! characters a part, 80 messages/s per number, a template for a person
//! after 24 hours).

mod inbound;
mod outbound;

use serde_json::Value;

pub(crate) use inbound::parse_entry;
pub use outbound::{
    media_body, message_body, template_body, text_body, typing_body, with_part_id, ID_POINTER,
};

use super::platform::{AfterWindow, OutboundPart, Platform};
use crate::config::ChannelKind;
use crate::event::SendTag;

pub struct Whatsapp;

pub static WHATSAPP: Whatsapp = Whatsapp;

impl Platform for Whatsapp {
    fn channel(&self) -> ChannelKind {
        ChannelKind::Whatsapp
    }
    fn text_limit(&self) -> usize {
        4096
    }
    fn send_rate(&self) -> u32 {
        80
    }
    fn plain_text(&self) -> bool {
        false
    }
    fn typing_lasts(&self) -> std::time::Duration {
        // WhatsApp's indicator shows for up to 25 seconds or until the reply.
        std::time::Duration::from_secs(25)
    }
    fn choices_text_limit(&self) -> usize {
        // An interactive message's body.
        1024
    }
    fn attachment_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("image", "image"),
            ("video", "video"),
            ("audio", "audio"),
            ("file", "document"),
            ("document", "document"),
        ]
    }
    fn after_window(&self) -> AfterWindow {
        AfterWindow::Template
    }
    fn message_body(&self, to: &str, part: &OutboundPart<'_>, tag: SendTag) -> Value {
        message_body(to, part, tag)
    }
    fn id_pointer(&self) -> &'static str {
        ID_POINTER
    }
    /// WhatsApp's indicator names the customer's last message (and marks
    /// it read): none before they wrote.
    fn typing_body(&self, _to: &str, last_mid: Option<&str>) -> Option<Value> {
        last_mid.map(typing_body)
    }
}
