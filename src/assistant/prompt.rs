//! What a model is asked: the business's system prompt plus the channel's
//! guidelines, the conversation's recent messages as history (within a
//! size budget), and the customer's coalesced messages as one turn with
//! their attachments described in text. And how its answer is read: plain
//! text, or the documented JSON form `{"text": "...", "choices": [...]}`.

use serde_json::{json, Value};

use super::{Answer, ReplyRequest};
use crate::channels::platform;
use crate::event::{Attachment, Channel};
use crate::knowledge::Retrieval;

/// Who said an earlier message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    Customer,
    /// The business: the assistant or a person answering for it.
    Business,
}

/// One earlier message of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryLine {
    pub speaker: Speaker,
    pub text: String,
}

/// How answers should look on `channel`.
pub fn guidelines(channel: Channel) -> String {
    let name = match channel {
        Channel::Messenger => "Facebook Messenger",
        Channel::Instagram => "Instagram Direct",
        Channel::Whatsapp => "WhatsApp",
        Channel::Gmail => "email",
        Channel::Web => "the website chat",
    };
    let limit = platform::text_limit(channel);
    let plain = matches!(
        channel,
        Channel::Messenger | Channel::Instagram | Channel::Whatsapp
    );
    let mut out = format!("You are answering a customer on {name}. ");
    if plain {
        out.push_str(
            "Write plain text only: no markdown, no asterisks, no headings, no tables. \
             Keep it short, like a chat message: a few sentences, ",
        );
        out.push_str(&format!("never more than {limit} characters."));
    } else if channel == Channel::Gmail {
        out.push_str(
            "Write a polite, complete email reply in plain text, without a subject line: \
             open with a short greeting that uses the customer's name when you know it, \
             answer in short paragraphs, and close with a sign-off from the support team. \
             No markdown. The whole answer is one email: do not split it.",
        );
    } else {
        out.push_str("Keep answers short: a few sentences.");
    }
    out
}

/// The knowledge-base part of the system prompt: the passages found for
/// the turn, numbered with their titles, or word that nothing fits.
pub fn knowledge(retrieval: &Retrieval) -> String {
    if retrieval.passages.is_empty() {
        return "Nothing in the business's knowledge base answers the customer's latest message. \
                Do not guess: say that you do not know and offer to connect them with a person."
            .to_string();
    }
    let mut out = String::from(
        "Answer from these passages of the business's knowledge base. If they do not answer \
         the question, say that you do not know and offer to connect the customer with a \
         person. You may name the source you used by its title.",
    );
    for (i, p) in retrieval.passages.iter().enumerate() {
        out.push_str(&format!("\n\n[{}] {}\n{}", i + 1, p.title, p.text.trim()));
    }
    out
}

/// The customer's turn as one message: their messages in order, then the
/// files they sent, described.
pub fn customer_turn(messages: &[String], attachments: &[Attachment]) -> String {
    let mut lines: Vec<String> = messages
        .iter()
        .map(|m| m.trim())
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    lines.extend(attachments.iter().map(describe));
    lines.join("\n")
}

/// A file as the model reads it: its type and where it is.
fn describe(a: &Attachment) -> String {
    let mut out = format!("[The customer sent {}", article(&a.kind));
    if let Some(caption) = a.caption.as_deref().filter(|c| !c.is_empty()) {
        out.push_str(&format!(" ({caption})"));
    }
    if let Some(url) = &a.url {
        out.push_str(&format!(": {url}"));
    } else if let Some(mime) = &a.mime_type {
        out.push_str(&format!(" of type {mime}"));
    }
    out.push(']');
    out
}

fn article(kind: &str) -> String {
    let kind = if kind.is_empty() { "file" } else { kind };
    match kind.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

/// The newest `turns` lines of `history` whose texts fit in `chars`.
pub fn budget(history: &[HistoryLine], turns: usize, chars: usize) -> &[HistoryLine] {
    let mut used = 0;
    let mut start = history.len();
    for (i, line) in history.iter().enumerate().rev() {
        if history.len() - i > turns || used + line.text.len() > chars {
            break;
        }
        used += line.text.len();
        start = i;
    }
    &history[start..]
}

/// The chat-completions `messages`: system, history (consecutive lines of
/// one speaker merged, as some servers' chat templates require), and the
/// customer's turn.
pub fn messages(system: &str, request: &ReplyRequest, history: &[HistoryLine]) -> Vec<Value> {
    let mut out = vec![json!({"role": "system", "content": system})];
    let mut push = |role: &str, text: &str| {
        if let Some(last) = out.last_mut() {
            if last["role"] == role && role != "system" {
                let merged = format!("{}\n{text}", last["content"].as_str().unwrap_or(""));
                last["content"] = json!(merged);
                return;
            }
        }
        out.push(json!({"role": role, "content": text}));
    };
    for line in history {
        let role = match line.speaker {
            Speaker::Customer => "user",
            Speaker::Business => "assistant",
        };
        push(role, &line.text);
    }
    push(
        "user",
        &customer_turn(&request.messages, &request.attachments),
    );
    out
}

/// The tool a model may call to attach quick replies to its answer.
pub fn choices_tool() -> Value {
    json!({
        "type": "function",
        "function": {
            "name": CHOICES_TOOL,
            "description": "Offer the customer a few short options to tap as quick replies, \
                            together with your answer.",
            "parameters": {
                "type": "object",
                "properties": {
                    "text": {"type": "string", "description": "Your answer to the customer."},
                    "choices": {
                        "type": "array",
                        "items": {"type": "string", "maxLength": 20},
                        "maxItems": 10,
                        "description": "The options, each a few words."
                    }
                },
                "required": ["choices"]
            }
        }
    })
}

pub const CHOICES_TOOL: &str = "offer_choices";

/// Choices offered with one answer, at most.
pub const MAX_CHOICES: usize = 10;

/// An answer from the model's text and the arguments of its
/// `offer_choices` call, if any. Text that is a JSON object with a
/// `"text"` string (optionally in a ```json fence) is the structured form.
pub fn read_answer(content: &str, tool_arguments: Option<&str>) -> Answer {
    let mut answer = structured(content).unwrap_or_else(|| Answer::text(content.trim()));
    if let Some(args) = tool_arguments.and_then(|a| serde_json::from_str::<Value>(a).ok()) {
        if answer.text.is_empty() {
            if let Some(text) = args["text"].as_str() {
                answer.text = text.trim().to_string();
            }
        }
        if answer.choices.is_empty() {
            answer.choices = strings(&args["choices"]);
        }
    }
    answer.choices.truncate(MAX_CHOICES);
    answer
}

fn structured(content: &str) -> Option<Answer> {
    let trimmed = content.trim();
    let body = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|b| b.trim_end().strip_suffix("```"))
        .unwrap_or(trimmed)
        .trim();
    if !body.starts_with('{') {
        return None;
    }
    let v: Value = serde_json::from_str(body).ok()?;
    let text = v.get("text")?.as_str()?.trim().to_string();
    Some(Answer {
        text,
        choices: strings(&v["choices"]),
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|c| c.as_str().or_else(|| c["title"].as_str()))
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .fold(Vec::<String>::new(), |mut unique, c| {
                    if !unique.iter().any(|u| u.eq_ignore_ascii_case(&c)) {
                        unique.push(c);
                    }
                    unique
                })
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(speaker: Speaker, text: &str) -> HistoryLine {
        HistoryLine {
            speaker,
            text: text.into(),
        }
    }

    #[test]
    fn history_keeps_the_newest_lines_within_both_budgets() {
        let h = vec![
            line(Speaker::Customer, "aaaa"),
            line(Speaker::Business, "bbbb"),
            line(Speaker::Customer, "cc"),
        ];
        assert_eq!(budget(&h, 10, 100).len(), 3);
        assert_eq!(budget(&h, 2, 100), &h[1..]);
        assert_eq!(budget(&h, 10, 6), &h[1..]);
        assert!(budget(&h, 10, 1).is_empty());
        assert!(budget(&h, 0, 100).is_empty());
    }

    #[test]
    fn messages_alternate_and_end_with_the_coalesced_turn() {
        let request = ReplyRequest {
            channel: Channel::Messenger,
            customer: "c".into(),
            messages: vec!["first".into(), "second".into()],
            attachments: vec![Attachment {
                kind: "image".into(),
                url: Some("https://cdn.test/p.jpg".into()),
                id: None,
                mime_type: None,
                caption: None,
            }],
            history: Vec::new(),
            knowledge: None,
        };
        let h = vec![
            line(Speaker::Customer, "hi"),
            line(Speaker::Customer, "anyone?"),
            line(Speaker::Business, "Hello!"),
        ];
        let m = messages("sys", &request, &h);
        let roles: Vec<&str> = m.iter().filter_map(|v| v["role"].as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(m[1]["content"], "hi\nanyone?");
        assert_eq!(
            m[3]["content"],
            "first\nsecond\n[The customer sent an image: https://cdn.test/p.jpg]"
        );
    }

    #[test]
    fn answers_are_read_as_text_json_or_a_tool_call() {
        assert_eq!(read_answer("  Hello  ", None), Answer::text("Hello"));
        let a = read_answer(
            "```json\n{\"text\": \"Pick one\", \"choices\": [\"Hours\", \"Prices\"]}\n```",
            None,
        );
        assert_eq!(a.text, "Pick one");
        assert_eq!(a.choices, ["Hours", "Prices"]);
        let a = read_answer(
            "",
            Some(r#"{"text":"Which size?","choices":["S","M","L"]}"#),
        );
        assert_eq!(a.text, "Which size?");
        assert_eq!(a.choices, ["S", "M", "L"]);
        // A choice given twice is offered once.
        let a = read_answer(r#"{"text":"Sure?","choices":["Yes","yes","No"]}"#, None);
        assert_eq!(a.choices, ["Yes", "No"]);
        // Braces in a normal answer are text.
        assert_eq!(read_answer("{not json", None).text, "{not json");
    }

    #[test]
    fn plain_text_channels_are_told_their_length() {
        assert!(guidelines(Channel::Messenger).contains("2000"));
        assert!(guidelines(Channel::Whatsapp).contains("no markdown"));
    }
}
