//! Instagram direct messages: the same webhook (`object = "instagram"`)
//! and Send API shapes as Messenger, with Instagram's own facts: 1000
//! characters a part, images, videos and audio only, the `HUMAN_AGENT` tag
//! for a person up to 7 days. (Its comments are in `channels::comments`.)

use serde_json::Value;

use super::messenger;
use super::platform::{AfterWindow, OutboundPart, Platform};
use crate::config::ChannelKind;
use crate::event::SendTag;

pub struct Instagram;

pub static INSTAGRAM: Instagram = Instagram;

impl Platform for Instagram {
    fn channel(&self) -> ChannelKind {
        ChannelKind::Instagram
    }
    fn text_limit(&self) -> usize {
        1000
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
        1000
    }
    fn attachment_types(&self) -> &'static [(&'static str, &'static str)] {
        &[("image", "image"), ("video", "video"), ("audio", "audio")]
    }
    fn after_window(&self) -> AfterWindow {
        AfterWindow::HumanAgentTag
    }
    fn message_body(&self, to: &str, part: &OutboundPart<'_>, tag: SendTag) -> Value {
        messenger::message_body(to, part, tag)
    }
    fn id_pointer(&self) -> &'static str {
        messenger::ID_POINTER
    }
    fn typing_body(&self, to: &str, _last_mid: Option<&str>) -> Option<Value> {
        Some(messenger::typing_body(to))
    }
}
