//! What a channel is, behind one trait: its limits and pacing, what a
//! person may still send once Meta's 24-hour window has closed, the file
//! types it takes, and the shapes of its messages and typing indicator.
//! Each platform folder implements it for its channel; adding a channel is
//! a new folder and one line in [`platform`].

use serde_json::Value;

use crate::config::ChannelKind;
use crate::event::SendTag;

/// What a person may still send once the 24-hour window has closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterWindow {
    /// Messenger and Instagram: a message tagged `HUMAN_AGENT`, up to 7
    /// days after the customer's last message.
    HumanAgentTag,
    /// WhatsApp: only an approved template.
    Template,
    /// Email: no window; anyone may answer at any time.
    Open,
}

/// One reply part, as a platform sends it.
#[derive(Debug, Clone, Copy)]
pub struct OutboundPart<'a> {
    pub text: &'a str,
    /// A file by link: the platform's type for it (see
    /// [`Platform::attachment_types`]) and the link.
    pub media: Option<(&'static str, &'a str)>,
    /// The engine's id for the part, returned in its echo or statuses.
    pub part_id: &'a str,
    /// WhatsApp: the template (name, language) a person's message goes out
    /// as after the window.
    pub template: Option<(&'a str, &'a str)>,
    /// Quick replies offered with the text.
    pub choices: &'a [String],
}

pub trait Platform: Sync {
    fn channel(&self) -> ChannelKind;

    /// Longest text part, in characters.
    fn text_limit(&self) -> usize;

    /// Calls per second per account the platform allows (the default of
    /// `send_rate_per_second`).
    fn send_rate(&self) -> u32;

    /// Whether the channel shows text as it is (markdown is stripped).
    fn plain_text(&self) -> bool;

    /// How long a typing indicator shows unless refreshed.
    fn typing_lasts(&self) -> std::time::Duration;

    /// Longest text of a part that carries quick replies.
    fn choices_text_limit(&self) -> usize;

    /// File types a person may send: (the engine's name, the platform's).
    fn attachment_types(&self) -> &'static [(&'static str, &'static str)];

    /// What a person may send after the 24-hour window.
    fn after_window(&self) -> AfterWindow;

    /// Whether the channel shows quick replies (else they become numbered
    /// lines).
    fn quick_replies(&self) -> bool {
        true
    }

    /// Whether typing indicators and response delays apply (a chat); an
    /// email is answered as soon as it is ready.
    fn live(&self) -> bool {
        true
    }

    /// The body of a direct message carrying `part` to `to`, sent as `tag`
    /// allows.
    fn message_body(&self, to: &str, part: &OutboundPart<'_>, tag: SendTag) -> Value;

    /// Where the platform's answer carries the message's id.
    fn id_pointer(&self) -> &'static str;

    /// The typing indicator for `to` (WhatsApp names the customer's last
    /// message), if the channel can show one now.
    fn typing_body(&self, to: &str, last_mid: Option<&str>) -> Option<Value>;

    /// The platform's name for a file type a person may send, or why not.
    fn attachment_type(&self, kind: &str) -> Result<&'static str, String> {
        let allowed = self.attachment_types();
        allowed
            .iter()
            .find(|(name, _)| *name == kind)
            .map(|(_, platform)| *platform)
            .ok_or_else(|| {
                let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
                format!(
                    "{} does not take a {kind:?} attachment; it takes {}",
                    self.channel().as_str(),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )
            })
    }
}

/// The platform of a channel, where this build has one.
pub fn platform(channel: ChannelKind) -> Option<&'static dyn Platform> {
    match channel {
        ChannelKind::Messenger => Some(&super::messenger::MESSENGER),
        ChannelKind::Instagram => Some(&super::instagram::INSTAGRAM),
        ChannelKind::Whatsapp => Some(&super::whatsapp::WHATSAPP),
        ChannelKind::Gmail => Some(&super::gmail::GMAIL),
        ChannelKind::Web => Some(&super::web::WEB),
    }
}

/// Longest text part on `channel` (channels without a platform yet take
/// long texts).
pub fn text_limit(channel: ChannelKind) -> usize {
    platform(channel).map_or(100_000, |p| p.text_limit())
}

/// Longest text of a part carrying quick replies on `channel`; `None`
/// where the channel has no quick replies (they become numbered lines).
pub fn choices_text_limit(channel: ChannelKind) -> Option<usize> {
    platform(channel)
        .filter(|p| p.quick_replies())
        .map(|p| p.choices_text_limit())
}

/// Whether the AI's answers on `channel` wait for the configured delay
/// with a typing indicator (chats), or go out when ready (email).
pub fn live(channel: ChannelKind) -> bool {
    platform(channel).is_none_or(|p| p.live())
}

/// Whether Meta's messaging windows apply on `channel`.
pub fn has_windows(channel: ChannelKind) -> bool {
    platform(channel).is_none_or(|p| p.after_window() != AfterWindow::Open)
}

/// How often a typing indicator is refreshed on `channel`: every
/// `configured`, or sooner where the platform's indicator would expire
/// first (5 s before it does).
pub fn typing_refresh(
    channel: ChannelKind,
    configured: std::time::Duration,
) -> std::time::Duration {
    platform(channel).map_or(configured, |p| {
        let lasts = p.typing_lasts();
        configured.min(
            lasts
                .saturating_sub(std::time::Duration::from_secs(5))
                .max(lasts / 2),
        )
    })
}

/// The default calls per second per account on `channel`.
pub fn send_rate(channel: ChannelKind) -> u32 {
    platform(channel).map_or(300, |p| p.send_rate())
}
