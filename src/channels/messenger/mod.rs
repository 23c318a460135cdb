//! Messenger: `messaging` webhook events in, Send API calls out, and the
//! channel's facts (2000 characters a part, 300 calls/s per Page, the
//! `HUMAN_AGENT` tag for a person up to 7 days, files by link). Instagram
//! DMs share its webhook and Send API shapes (see `channels::instagram`).

mod inbound;
mod outbound;
pub mod profiles;

use serde_json::Value;

pub(crate) use inbound::parse_entry;
pub use outbound::{media_body, message_body, text_body, typing_body, with_part_id, ID_POINTER};

use super::platform::{AfterWindow, OutboundPart, Platform};
use crate::config::ChannelKind;
use crate::event::SendTag;

pub struct Messenger;

pub static MESSENGER: Messenger = Messenger;

impl Platform for Messenger {
    fn channel(&self) -> ChannelKind {
        ChannelKind::Messenger
    }
    fn text_limit(&self) -> usize {
        2000
    }
    fn send_rate(&self) -> u32 {
        300
    }
    fn plain_text(&self) -> bool {
        true
    }
    fn typing_lasts(&self) -> std::time::Duration {
        // Messenger's typing indicator turns off after 20 seconds.
        std::time::Duration::from_secs(20)
    }
    fn choices_text_limit(&self) -> usize {
        2000
    }
    fn attachment_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("image", "image"),
            ("video", "video"),
            ("audio", "audio"),
            ("file", "file"),
        ]
    }
    fn after_window(&self) -> AfterWindow {
        AfterWindow::HumanAgentTag
    }
    fn message_body(&self, to: &str, part: &OutboundPart<'_>, tag: SendTag) -> Value {
        message_body(to, part, tag)
    }
    fn id_pointer(&self) -> &'static str {
        ID_POINTER
    }
    fn typing_body(&self, to: &str, _last_mid: Option<&str>) -> Option<Value> {
        Some(typing_body(to))
    }
}
