//! Website chat: visitors talk to the assistant through the widget
//! (`GET /web/widget.js`) over a WebSocket (`GET /web/{integration}/ws`).
//! This folder is the channel's part: its limits, the frames that travel on
//! the socket (`frames.rs`), who a visitor is (`identity.rs`) and the hub
//! through which replies reach the sockets open on this instance
//! (`hub.rs`). The socket itself is served by `ingest::web`.

pub mod frames;
pub mod hub;
pub mod identity;

use serde_json::{json, Value};

use super::platform::{AfterWindow, OutboundPart, Platform};
use crate::config::ChannelKind;
use crate::event::SendTag;

pub struct Web;

pub static WEB: Web = Web;

impl Platform for Web {
    fn channel(&self) -> ChannelKind {
        ChannelKind::Web
    }

    fn text_limit(&self) -> usize {
        4000
    }

    /// Frames go to this instance's sockets: no platform quota.
    fn send_rate(&self) -> u32 {
        10_000
    }

    fn plain_text(&self) -> bool {
        true
    }

    /// The widget shows "typing" until the reply or this long.
    fn typing_lasts(&self) -> std::time::Duration {
        std::time::Duration::from_secs(30)
    }

    fn choices_text_limit(&self) -> usize {
        self.text_limit()
    }

    fn attachment_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("image", "image"),
            ("video", "video"),
            ("audio", "audio"),
            ("file", "file"),
        ]
    }

    /// The visitor is on the page: no messaging window.
    fn after_window(&self) -> AfterWindow {
        AfterWindow::Open
    }

    /// A `message` frame (its `seq` and author are set by the sender).
    fn message_body(&self, _to: &str, part: &OutboundPart<'_>, _tag: SendTag) -> Value {
        let mut frame = json!({
            "type": "message",
            "text": part.text,
            "part": part.part_id,
        });
        if let Some((kind, url)) = part.media {
            frame["attachment"] = json!({"type": kind, "url": url});
        }
        if !part.choices.is_empty() {
            frame["choices"] = json!(part.choices);
        }
        frame
    }

    fn id_pointer(&self) -> &'static str {
        "/id"
    }

    fn typing_body(&self, _to: &str, _last_mid: Option<&str>) -> Option<Value> {
        Some(json!({"type": "typing", "on": true}))
    }
}
