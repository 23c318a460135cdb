//! The frames of the web chat socket (JSON text frames, `type` first).
//!
//! From the widget: `hello` (first, within 10 s: `visitor`, or `user_id` +
//! `user_hash`, and `last_seq`, the newest line it has shown), `message`
//! (`client_id`, unique per message and kept across reconnects, and
//! `text`), `read` (`seq`) and `ping`.
//!
//! To the widget: `welcome` (`visitor`, `conversation`, the widget's
//! settings, and `history`: every line after `last_seq`), `message` (`seq`,
//! `text`, `author` `ai` / `agent` / `visitor`, `client_id` on the visitor's
//! own, `attachment`, `choices`, `time`), `ack` (`client_id`: the message
//! is durably taken and will be answered once), `typing`
//! (`on`), `error` (`reason`; `client_id` and `retry` when a message was not
//! taken) and `pong`.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::store::{Direction, MessageRecord, MessageStatus};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Hello {
        #[serde(default)]
        visitor: Option<String>,
        #[serde(default)]
        user_id: Option<String>,
        #[serde(default)]
        user_hash: Option<String>,
        #[serde(default)]
        last_seq: u64,
    },
    Message {
        client_id: String,
        text: String,
    },
    Read {
        seq: u64,
    },
    Ping,
}

/// The message id of a visitor's message: its client id, so a message
/// sent again after a reconnect is recognised.
pub fn mid_of(client_id: &str) -> String {
    format!("web.{client_id}")
}

/// Whether a client id is one the widget makes (1-64 of `A-Za-z0-9_-`).
pub fn valid_client_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A message-log line as the widget shows it, if it is one to show (an
/// inbound line, or an outbound one that went out).
pub fn line(m: &MessageRecord) -> Option<Value> {
    let author = match m.direction {
        Direction::In => "visitor",
        Direction::Out => match m.status {
            MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read => {
                m.author.map_or("ai", |a| match a {
                    crate::store::Author::Ai => "ai",
                    _ => "agent",
                })
            }
            _ => return None,
        },
    };
    let mut frame = json!({
        "type": "message",
        "seq": m.seq,
        "text": m.text.clone().unwrap_or_default(),
        "author": author,
        "time": m.time_ms,
    });
    if let Some(client_id) = m.mid.as_deref().and_then(|mid| mid.strip_prefix("web.")) {
        if m.direction == Direction::In {
            frame["client_id"] = json!(client_id);
        }
    }
    if let Some(a) = m.attachments.first() {
        frame["attachment"] = json!({"type": a.kind, "url": a.url});
    }
    Some(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_and_unknown_or_broken_ones_are_errors() {
        let f: ClientFrame =
            serde_json::from_str(r#"{"type":"message","client_id":"c-1","text":"hi"}"#).unwrap();
        assert_eq!(
            f,
            ClientFrame::Message {
                client_id: "c-1".into(),
                text: "hi".into()
            }
        );
        let h: ClientFrame = serde_json::from_str(r#"{"type":"hello"}"#).unwrap();
        assert!(matches!(h, ClientFrame::Hello { last_seq: 0, .. }));
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"nope"}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"message"}"#).is_err());
        assert!(valid_client_id("c-1_x"));
        assert!(!valid_client_id(""));
        assert!(!valid_client_id("a b"));
        assert!(!valid_client_id(&"x".repeat(65)));
    }
}
