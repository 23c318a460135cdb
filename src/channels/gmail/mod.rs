//! Gmail: a mailbox answered in its threads. Pub/Sub pushes say the
//! mailbox changed (`push.rs` checks their OIDC token and reads them); the
//! mailbox's history is read through the Gmail API (`api.rs`) and each new
//! customer email (`email.rs`: what counts as one, its text and files)
//! becomes an event of the conversation of its thread and sender. Replies
//! go out with `users.messages.send` in the same thread (`reply.rs`).
//!
//! A conversation's customer id is `{threadId}/{address}`: the Gmail
//! thread with one customer address. Meta's windows, typing indicators and
//! response delays do not apply to email.

pub mod api;
pub mod email;
mod error;
pub mod files;
pub mod push;
pub mod reply;

use serde_json::{json, Value};

use super::platform::{AfterWindow, OutboundPart, Platform};
use crate::config::ChannelKind;
use crate::event::SendTag;

pub struct Gmail;

pub static GMAIL: Gmail = Gmail;

/// The customer id of `address` in the Gmail thread `thread`.
pub fn customer_id(thread: &str, address: &str) -> String {
    format!("{thread}/{}", address.to_ascii_lowercase())
}

/// (thread id, address) of a Gmail customer id.
pub fn split_customer(customer: &str) -> Option<(&str, &str)> {
    customer
        .split_once('/')
        .filter(|(t, a)| !t.is_empty() && a.contains('@'))
}

/// The customer part of a mailbox's own conversation id, which carries
/// its notifications (never a customer: those contain `/`).
pub const MAILBOX: &str = "mailbox";

impl Platform for Gmail {
    fn channel(&self) -> ChannelKind {
        ChannelKind::Gmail
    }

    /// An email is one message, however long the answer.
    fn text_limit(&self) -> usize {
        100_000
    }

    /// Sends are paced by the mailbox's Gmail quota (see `api.rs`).
    fn send_rate(&self) -> u32 {
        250
    }

    fn plain_text(&self) -> bool {
        true
    }

    fn typing_lasts(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    fn choices_text_limit(&self) -> usize {
        self.text_limit()
    }

    fn quick_replies(&self) -> bool {
        false
    }

    /// A person's email carries files by link, in its text.
    fn attachment_types(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("image", "image"),
            ("video", "video"),
            ("audio", "audio"),
            ("file", "file"),
        ]
    }

    fn after_window(&self) -> AfterWindow {
        AfterWindow::Open
    }

    fn live(&self) -> bool {
        false
    }

    /// What `reply.rs` turns into the MIME message: the recipient and
    /// thread (from the customer id), the text (a file's link on a line of
    /// its own) and the part id (an `X-Switchboard-Part` header, read back
    /// when the sent message appears in the mailbox's history).
    fn message_body(&self, to: &str, part: &OutboundPart<'_>, _tag: SendTag) -> Value {
        let (thread, address) = split_customer(to).unwrap_or(("", to));
        let text = match part.media {
            Some((_, url)) if part.text.is_empty() => url.to_string(),
            Some((_, url)) => format!("{}\n\n{url}", part.text),
            None => part.text.to_string(),
        };
        json!({
            "to": address,
            "threadId": thread,
            "text": text,
            "part": part.part_id,
        })
    }

    fn id_pointer(&self) -> &'static str {
        "/id"
    }

    fn typing_body(&self, _to: &str, _last_mid: Option<&str>) -> Option<Value> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_is_a_thread_and_an_address() {
        let c = customer_id("18c2f", "Ann@Example.COM");
        assert_eq!(c, "18c2f/ann@example.com");
        assert_eq!(split_customer(&c), Some(("18c2f", "ann@example.com")));
        assert_eq!(split_customer(MAILBOX), None);
        assert_eq!(split_customer("/a@b"), None);
    }

    #[test]
    fn a_file_by_link_goes_in_the_text() {
        let part = OutboundPart {
            text: "Here is the invoice.",
            media: Some(("file", "https://files.example/inv.pdf")),
            part_id: "p1",
            template: None,
            choices: &[],
        };
        let body = GMAIL.message_body("t1/ann@example.com", &part, SendTag::Response);
        assert_eq!(body["to"], "ann@example.com");
        assert_eq!(body["threadId"], "t1");
        assert_eq!(
            body["text"],
            "Here is the invoice.\n\nhttps://files.example/inv.pdf"
        );
    }
}
