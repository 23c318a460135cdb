//! The offline assistant: keyword rules from config, a fallback otherwise.
//! A rule matches when one of its keywords appears in a message as a whole
//! word (case-insensitive); several messages answered in one turn get the
//! distinct answers of their rules, in order.

use async_trait::async_trait;

use super::{Assistant, AssistantError, ReplyRequest};
use crate::config::AssistantConfig;

pub struct RulesAssistant {
    rules: Vec<(Vec<Vec<String>>, String)>,
    fallback: String,
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

impl RulesAssistant {
    pub fn new(config: &AssistantConfig) -> Self {
        let rules = config
            .rules
            .iter()
            .map(|r| {
                let keywords = r
                    .keywords
                    .iter()
                    .map(|k| words(k))
                    .filter(|k| !k.is_empty())
                    .collect();
                (keywords, r.reply.clone())
            })
            .collect();
        Self {
            rules,
            fallback: config.fallback.clone(),
        }
    }

    fn answer_one(&self, text: &str) -> Option<&str> {
        let ws = words(text);
        self.rules.iter().find_map(|(keywords, reply)| {
            keywords
                .iter()
                .any(|k| ws.windows(k.len()).any(|w| w == k.as_slice()))
                .then_some(reply.as_str())
        })
    }

    /// The answer for the given messages (synchronous core of [`Assistant::reply`]).
    pub fn answer(&self, request: &ReplyRequest<'_>) -> String {
        let mut answers: Vec<&str> = Vec::new();
        for m in request.messages {
            if let Some(a) = self.answer_one(m) {
                if !answers.contains(&a) {
                    answers.push(a);
                }
            }
        }
        let mut out = if answers.is_empty() {
            self.fallback.clone()
        } else {
            answers.join("\n\n")
        };
        if !request.attachments.is_empty() {
            let kinds: Vec<&str> = request
                .attachments
                .iter()
                .map(|a| a.kind.as_str())
                .collect();
            out = format!(
                "Thanks for the {} — a teammate will take a look.\n\n{out}",
                kinds.join(", ")
            );
        }
        out
    }
}

#[async_trait]
impl Assistant for RulesAssistant {
    async fn reply(&self, request: &ReplyRequest<'_>) -> Result<String, AssistantError> {
        Ok(self.answer(request))
    }

    fn is_instant(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AssistantKind, ChannelKind, RuleConfig};

    fn assistant() -> RulesAssistant {
        RulesAssistant::new(&AssistantConfig {
            id: "a".into(),
            kind: AssistantKind::Rules,
            fallback: "A teammate will reply.".into(),
            rules: vec![
                RuleConfig {
                    keywords: vec!["hours".into(), "open".into()],
                    reply: "We're open 9-5.".into(),
                },
                RuleConfig {
                    keywords: vec!["refund policy".into()],
                    reply: "Refunds within 30 days.".into(),
                },
            ],
            base_url: None,
            model: None,
            api_key_env: None,
            system_prompt: None,
        })
    }

    fn ask(a: &RulesAssistant, msgs: &[&str]) -> String {
        let messages: Vec<String> = msgs.iter().map(|s| s.to_string()).collect();
        a.answer(&ReplyRequest {
            channel: ChannelKind::Messenger,
            customer: "c",
            messages: &messages,
            attachments: &[],
        })
    }

    #[test]
    fn matches_whole_words_case_insensitively() {
        let a = assistant();
        assert_eq!(ask(&a, &["What are your HOURS?"]), "We're open 9-5.");
        assert_eq!(ask(&a, &["Are you opening soon"]), "A teammate will reply.");
        assert_eq!(
            ask(&a, &["what's the Refund  Policy?"]),
            "Refunds within 30 days."
        );
    }

    #[test]
    fn coalesced_messages_get_distinct_answers_in_order() {
        let a = assistant();
        assert_eq!(
            ask(&a, &["hours?", "refund policy?", "open today?"]),
            "We're open 9-5.\n\nRefunds within 30 days."
        );
    }
}
