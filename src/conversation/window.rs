//! Meta's messaging windows, as one pure policy: the AI answers only within
//! 24 hours of the customer's message; a person may answer within 24 hours
//! as a standard response, and on Messenger and Instagram up to 7 days with
//! the `HUMAN_AGENT` tag; nothing is sent after that. Checked before any
//! API call, so a violation is refused with its reason instead of an error
//! from the platform.

use crate::channels::platform::{has_windows, platform, AfterWindow};
use crate::config::ChannelKind;

/// The standard messaging window.
pub const STANDARD_MS: u64 = 24 * 3_600_000;
/// How long the `HUMAN_AGENT` tag extends the window for a person.
pub const HUMAN_AGENT_MS: u64 = 7 * 24 * 3_600_000;

pub use crate::event::SendTag;

/// Why a message may not be sent now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowClosed {
    #[error("the customer has not written yet, so nothing can be sent to them")]
    NeverOpened,
    #[error("the customer's last message is more than 24 hours old; only a person may answer, with the HUMAN_AGENT tag")]
    AiWindow,
    #[error("the customer's last message is more than 7 days old; Meta allows no message until they write again")]
    HumanAgentWindow,
    #[error("the customer's last message is more than 24 hours old; WhatsApp needs a message template after that (set whatsapp_template)")]
    NeedsTemplate,
}

/// Whether the AI may answer on `channel` a customer message sent at
/// `message_ms` (email has no window).
pub fn ai_may_answer(
    channel: ChannelKind,
    message_ms: u64,
    now_ms: u64,
) -> Result<SendTag, WindowClosed> {
    if now_ms.saturating_sub(message_ms) < STANDARD_MS || !has_windows(channel) {
        Ok(SendTag::Response)
    } else {
        Err(WindowClosed::AiWindow)
    }
}

/// How a person's message to a customer whose last message was at
/// `last_inbound_ms` may be sent at `now_ms` (`template`: WhatsApp has one
/// configured for after the window).
pub fn agent_send(
    channel: ChannelKind,
    last_inbound_ms: Option<u64>,
    now_ms: u64,
    template: bool,
) -> Result<SendTag, WindowClosed> {
    let last = last_inbound_ms.ok_or(WindowClosed::NeverOpened)?;
    let age = now_ms.saturating_sub(last);
    if age < STANDARD_MS {
        return Ok(SendTag::Response);
    }
    match platform(channel).map(|p| p.after_window()) {
        Some(AfterWindow::HumanAgentTag) if age < HUMAN_AGENT_MS => Ok(SendTag::HumanAgent),
        Some(AfterWindow::HumanAgentTag) => Err(WindowClosed::HumanAgentWindow),
        Some(AfterWindow::Template) if template => Ok(SendTag::Template),
        Some(AfterWindow::Template) | None => Err(WindowClosed::NeedsTemplate),
        Some(AfterWindow::Open) => Ok(SendTag::Response),
    }
}

/// When the customer's standard window closes (RFC 3339 in the API).
pub fn expires_at(last_inbound_ms: Option<u64>) -> Option<u64> {
    last_inbound_ms.map(|t| t + STANDARD_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;

    #[test]
    fn ai_answers_inside_24_hours_only() {
        let m = ChannelKind::Messenger;
        assert_eq!(ai_may_answer(m, 0, 23 * H), Ok(SendTag::Response));
        assert_eq!(ai_may_answer(m, 0, 24 * H), Err(WindowClosed::AiWindow));
        assert_eq!(ai_may_answer(m, 0, 25 * H), Err(WindowClosed::AiWindow));
    }

    #[test]
    fn email_has_no_window() {
        let g = ChannelKind::Gmail;
        assert_eq!(ai_may_answer(g, 0, 30 * 24 * H), Ok(SendTag::Response));
        assert_eq!(
            agent_send(g, Some(0), 30 * 24 * H, false),
            Ok(SendTag::Response)
        );
        assert_eq!(
            agent_send(g, None, 0, false),
            Err(WindowClosed::NeverOpened)
        );
    }

    #[test]
    fn a_person_gets_the_human_agent_tag_up_to_7_days() {
        let m = ChannelKind::Messenger;
        assert_eq!(agent_send(m, Some(0), H, false), Ok(SendTag::Response));
        assert_eq!(
            agent_send(m, Some(0), 25 * H, false),
            Ok(SendTag::HumanAgent)
        );
        assert_eq!(
            agent_send(ChannelKind::Instagram, Some(0), 6 * 24 * H, false),
            Ok(SendTag::HumanAgent)
        );
        assert_eq!(
            agent_send(m, Some(0), 8 * 24 * H, false),
            Err(WindowClosed::HumanAgentWindow)
        );
        assert_eq!(
            agent_send(m, None, 0, false),
            Err(WindowClosed::NeverOpened)
        );
    }

    #[test]
    fn whatsapp_needs_a_template_after_24_hours() {
        let w = ChannelKind::Whatsapp;
        assert_eq!(agent_send(w, Some(0), H, false), Ok(SendTag::Response));
        assert_eq!(
            agent_send(w, Some(0), 25 * H, false),
            Err(WindowClosed::NeedsTemplate)
        );
        assert_eq!(agent_send(w, Some(0), 25 * H, true), Ok(SendTag::Template));
    }
}
