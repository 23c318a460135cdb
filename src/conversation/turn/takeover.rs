//! Human takeover, as part of the conversation policy: a person steps in
//! (admin API, an escalation keyword, or an echo of a message this engine
//! did not send: someone answering from the platform's inbox), the AI stays
//! silent, and comes back when resumed or when the takeover timer
//! (`auto_resume_ms`, a persisted deadline) fires. Operators' commands
//! arrive as bus events, so they are ordered with the customer's messages
//! and applied once.

use super::confirm;
use super::{take_first, CommandResult, Conversation, EventOutcome, Planned};
use crate::event::{AgentAction, Attachment, InboundEvent, OutboundAttachment};
use crate::store::{Author, Direction, MessageStatus, Mode, OutboxItem};

/// Who took over, when nobody named a person.
pub const BY_KEYWORD: &str = "keyword";
pub const BY_INBOX: &str = "inbox";
pub const BY_AGENT: &str = "agent";
/// The assistant gave no answer and its `on_failure` is `"handover"`.
pub const BY_ASSISTANT: &str = "assistant";

impl Conversation {
    /// Applies an operator's command once (its id is remembered).
    pub(in crate::conversation) fn agent_command(
        &mut self,
        command: &str,
        action: &AgentAction,
        now_ms: u64,
    ) -> EventOutcome {
        if !self.first_time(command, now_ms) {
            // A retried request: its callers get the first outcome (or the
            // one still to come).
            if let Some(first) = self.recorded_outcome(command) {
                self.command_outcome(command, first);
            }
            return EventOutcome::Duplicate;
        }
        let result = match action {
            AgentAction::Takeover {
                by,
                auto_resume_minutes,
            } => {
                let resume_at = match auto_resume_minutes {
                    Some(m) => Some(now_ms + u64::from(*m) * 60_000),
                    None => self.default_resume_at(now_ms),
                };
                self.take_over(by, resume_at, now_ms);
                CommandResult::Applied
            }
            AgentAction::Resume => {
                if self.record.mode == Mode::Human {
                    self.end_takeover();
                }
                CommandResult::Applied
            }
            AgentAction::Message { text, attachment } => match self.agent_tag(now_ms) {
                Err(closed) => CommandResult::Refused(closed.to_string()),
                Ok(_) => {
                    self.person_writes(BY_AGENT, now_ms);
                    self.plan_agent_message(text, attachment.as_ref(), command, now_ms);
                    CommandResult::Queued
                }
            },
        };
        self.dirty = true;
        EventOutcome::Command(result)
    }

    /// A person's text (split for the channel) and file, in that order;
    /// the caller waits for the last part.
    fn plan_agent_message(
        &mut self,
        text: &str,
        attachment: Option<&OutboundAttachment>,
        command: &str,
        now_ms: u64,
    ) {
        // An email carries the text and the file's link in one message.
        let one_message =
            attachment.is_some() && !crate::channels::platform::live(self.record.channel);
        let text_command = attachment.is_none().then_some(command);
        if !text.trim().is_empty() && !one_message {
            let planned = Planned {
                author: Author::Agent,
                key: command,
                command: text_command,
                received_at_ms: now_ms,
            };
            self.plan_parts(text, planned, now_ms);
        }
        let Some(file) = attachment else {
            return;
        };
        let file_text = if one_message {
            text.trim().to_string()
        } else {
            String::new()
        };
        let seq = self.log(
            Direction::Out,
            Some(file_text.clone()).filter(|t| !t.is_empty()),
            now_ms,
            MessageStatus::Pending,
            None,
            vec![Attachment::from(file)],
        );
        if let Some(line) = self.unsaved.messages.iter_mut().find(|m| m.seq == seq) {
            line.author = Some(Author::Agent);
        }
        self.record.outbox.push(OutboxItem {
            seq,
            text: file_text,
            author: Author::Agent,
            command: Some(command.to_string()),
            attachment: Some(file.clone()),
            comment: None,
            received_at_ms: now_ms,
            delay_ms: 0,
            first_of_turn: false,
            part_id: confirm::part_id(&self.record.id, &format!("{command}#file"), 0),
            unconfirmed_until_ms: self.hold_until,
            choices: Vec::new(),
        });
    }

    /// An echo of a message this engine did not send: a person answered
    /// from the platform's inbox. Logged, and the AI steps back.
    pub(in crate::conversation) fn inbox_echo(
        &mut self,
        event: &InboundEvent,
        mid: &str,
        text: Option<String>,
        now_ms: u64,
    ) -> EventOutcome {
        let seq = self.log(
            Direction::Out,
            text,
            event.timestamp_ms,
            MessageStatus::Sent,
            Some(mid.to_string()),
            Vec::new(),
        );
        if let Some(line) = self.unsaved.messages.iter_mut().find(|m| m.seq == seq) {
            line.author = Some(Author::Inbox);
        }
        self.remember(mid.to_string(), now_ms);
        self.count(event.timestamp_ms, |c| c.outbound += 1);
        self.person_writes(BY_INBOX, now_ms);
        EventOutcome::Recorded
    }

    /// A person wrote to the customer: the conversation becomes theirs (as
    /// `by`), or, already a person's, its timer is pushed so that at least
    /// the takeover's own span (`auto_resume_after` at most) is left from
    /// now: the AI does not speak up in the middle of their exchange, and a
    /// short takeover stays short (a takeover without a timer keeps none).
    fn person_writes(&mut self, by: &str, now_ms: u64) {
        if self.record.mode == Mode::Ai {
            self.take_over(by, self.default_resume_at(now_ms), now_ms);
            return;
        }
        let Some(at) = self.record.auto_resume_ms else {
            return;
        };
        let mut span = at.saturating_sub(self.record.takeover_since_ms.unwrap_or(at));
        if let Some(default) = self.default_resume_at(now_ms) {
            span = span.min(default.saturating_sub(now_ms));
        }
        let later = now_ms.saturating_add(span);
        if later > at {
            self.record.auto_resume_ms = Some(later);
            self.unsaved.takeover_changed = true;
            self.dirty = true;
        }
    }

    /// The assistant has no answer for the waiting messages (nothing in the
    /// knowledge base fits, or it failed, and it hands over): a person takes
    /// the conversation, for `auto_resume_after`. False when nothing waits.
    pub(in crate::conversation) fn assistant_hands_over(&mut self, now_ms: u64) -> bool {
        if self.newest_pending().is_none() {
            return false;
        }
        let resume = self.default_resume_at(now_ms);
        self.take_over(BY_ASSISTANT, resume, now_ms);
        true
    }

    /// When a takeover started now ends by itself, by the integration's
    /// `auto_resume_after`.
    pub(in crate::conversation) fn default_resume_at(&self, now_ms: u64) -> Option<u64> {
        self.integration()
            .auto_resume_after
            .map(|d| now_ms + d.as_millis() as u64)
    }

    /// A person has the conversation from now: the AI's pending turn and
    /// unsent parts are dropped (the parts stay in the log, cancelled).
    pub(in crate::conversation) fn take_over(
        &mut self,
        by: &str,
        resume_at: Option<u64>,
        now_ms: u64,
    ) {
        let automatic = [BY_KEYWORD, BY_INBOX, BY_ASSISTANT].contains(&by);
        if self.record.mode == Mode::Ai {
            self.record.takeover_since_ms = Some(now_ms);
            self.record.takeover_by = Some(by.to_string());
            self.record.auto_resume_ms = resume_at;
        } else if automatic {
            // Already a person's: a customer asking again, or the assistant
            // or the inbox handing over again, keeps who has it and never
            // brings the AI back sooner (a takeover without a timer keeps
            // none; a later timer is kept).
            self.record.auto_resume_ms = match (self.record.auto_resume_ms, resume_at) {
                (Some(now), Some(new)) => Some(now.max(new)),
                (kept, _) => kept,
            };
        } else {
            // A person's own takeover command sets both.
            self.record.takeover_by = Some(by.to_string());
            self.record.auto_resume_ms = resume_at;
        }
        self.record.mode = Mode::Human;
        self.record.pending = Vec::new();
        self.record.comments = Vec::new();
        self.record.reply_due_ms = None;
        self.record.typing_refresh_ms = None;
        self.record.reply_delay_ms = 0;
        let mut kept = Vec::new();
        while !self.record.outbox.is_empty() {
            let item = take_first(&mut self.record.outbox);
            if item.author == Author::Ai {
                self.settle(&item, MessageStatus::Cancelled, None, None, now_ms);
            } else {
                kept.push(item);
            }
        }
        self.record.outbox = kept;
        if self.record.outbox.is_empty() {
            self.record.outbox_retry_ms = None;
        }
        self.unsaved.takeover_changed = true;
        self.dirty = true;
    }

    /// The integration was deleted: the pending turn and every unsent part
    /// (a person's too) are cancelled. `true` when anything was.
    pub(in crate::conversation) fn integration_gone(&mut self, now_ms: u64) -> bool {
        let anything = !self.record.pending.is_empty() || !self.record.outbox.is_empty();
        self.record.pending = Vec::new();
        self.record.comments = Vec::new();
        self.record.reply_due_ms = None;
        self.record.typing_refresh_ms = None;
        while !self.record.outbox.is_empty() {
            let item = take_first(&mut self.record.outbox);
            self.settle(&item, MessageStatus::Cancelled, None, None, now_ms);
        }
        self.record.outbox_retry_ms = None;
        if anything {
            self.dirty = true;
        }
        anything
    }

    /// The AI answers again.
    pub(in crate::conversation) fn end_takeover(&mut self) {
        self.record.mode = Mode::Ai;
        self.record.takeover_by = None;
        self.record.takeover_since_ms = None;
        self.record.auto_resume_ms = None;
        self.unsaved.takeover_changed = true;
        self.dirty = true;
    }

    /// Whether the takeover timer has fired.
    pub fn resume_due(&self, now_ms: u64) -> bool {
        self.record.mode == Mode::Human && self.record.auto_resume_ms.is_some_and(|t| t <= now_ms)
    }

    /// Ends a takeover whose timer fired.
    pub fn auto_resume(&mut self, now_ms: u64) -> bool {
        if !self.resume_due(now_ms) {
            return false;
        }
        self.end_takeover();
        true
    }

    /// Whether the customer asked for a person (a configured escalation
    /// keyword or phrase, as whole words, any case).
    pub(in crate::conversation) fn escalates(&self, text: &str) -> bool {
        let keywords = &self.integration().escalation_keywords;
        if keywords.is_empty() || text.is_empty() {
            return false;
        }
        let text = words(text);
        keywords
            .iter()
            .map(|k| words(k))
            .any(|k| !k.trim().is_empty() && text.contains(&k))
    }
}

/// Lower-case words separated by single spaces, with a space on each side,
/// so `contains` matches whole words and phrases only.
fn words(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        out.push_str(&word.to_lowercase());
        out.push(' ');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::words;

    #[test]
    fn keywords_match_whole_words_in_any_case() {
        let text = words("Can I talk to a HUMAN, please?");
        assert!(text.contains(&words("human")));
        assert!(text.contains(&words("talk to")));
        assert!(!words("inhumane service").contains(&words("human")));
    }
}
