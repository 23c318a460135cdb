//! The offline assistant: keyword rules from config, a fallback otherwise.
//! A rule matches when one of its keywords appears in a message as a whole
//! word (case-insensitive); several messages answered in one turn get the
//! distinct answers of their rules, in order.

use async_trait::async_trait;

use super::{Answer, Assistant, AssistantError, FailurePolicy, ReplyRequest};
use crate::config::AssistantConfig;

struct Rule {
    keywords: Vec<Vec<String>>,
    reply: String,
    choices: Vec<String>,
}

pub struct RulesAssistant {
    id: String,
    /// Its knowledge base is searched with embeddings (a network call per
    /// turn): not instant then.
    embeds: bool,
    rules: Vec<Rule>,
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
                Rule {
                    keywords,
                    reply: r.reply.clone(),
                    choices: r.choices.clone(),
                }
            })
            .collect();
        Self {
            id: config.id.clone(),
            embeds: config.embeddings_model.is_some(),
            rules,
            fallback: config.fallback.clone(),
        }
    }

    fn answer_one(&self, text: &str) -> Option<&Rule> {
        let ws = words(text);
        self.rules.iter().find(|rule| {
            rule.keywords
                .iter()
                .any(|k| ws.windows(k.len()).any(|w| w == k.as_slice()))
        })
    }

    /// The answer for the given messages (synchronous core of [`Assistant::reply`]):
    /// the matched rules' replies, with their choices.
    pub fn answer(&self, request: &ReplyRequest) -> Answer {
        let mut answers: Vec<&str> = Vec::new();
        let mut choices: Vec<String> = Vec::new();
        for m in &request.messages {
            if let Some(rule) = self.answer_one(m) {
                if !answers.contains(&rule.reply.as_str()) {
                    answers.push(&rule.reply);
                }
                for c in &rule.choices {
                    if !choices.contains(c) {
                        choices.push(c.clone());
                    }
                }
            }
        }
        choices.truncate(super::prompt::MAX_CHOICES);
        let faq = request
            .knowledge
            .as_ref()
            .and_then(|k| k.passages.iter().find_map(|p| p.faq_answer.clone()));
        let mut out = if answers.is_empty() {
            // No rule: the knowledge base's FAQ entry that fits, if any.
            faq.unwrap_or_else(|| self.fallback.clone())
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
        Answer { text: out, choices }
    }
}

#[async_trait]
impl Assistant for RulesAssistant {
    fn id(&self) -> &str {
        &self.id
    }

    async fn reply(&self, request: &ReplyRequest) -> Result<Answer, AssistantError> {
        Ok(self.answer(request))
    }

    fn is_instant(&self) -> bool {
        !self.embeds
    }

    fn on_failure(&self) -> FailurePolicy {
        FailurePolicy::Fallback(self.fallback.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AssistantKind, ChannelKind, RuleConfig};

    fn assistant() -> RulesAssistant {
        let mut config = AssistantConfig::new("a", AssistantKind::Rules);
        config.fallback = "A teammate will reply.".into();
        config.rules = vec![
            RuleConfig {
                keywords: vec!["hours".into(), "open".into()],
                reply: "We're open 9-5.".into(),
                choices: vec!["Book a visit".into(), "Prices".into()],
            },
            RuleConfig {
                keywords: vec!["refund policy".into()],
                reply: "Refunds within 30 days.".into(),
                choices: vec!["Prices".into(), "Start a refund".into()],
            },
        ];
        RulesAssistant::new(&config)
    }

    fn ask(a: &RulesAssistant, msgs: &[&str]) -> String {
        answer(a, msgs).text
    }

    fn answer(a: &RulesAssistant, msgs: &[&str]) -> Answer {
        a.answer(&ReplyRequest {
            channel: ChannelKind::Messenger,
            customer: "c".into(),
            messages: msgs.iter().map(|s| s.to_string()).collect(),
            attachments: Vec::new(),
            history: Vec::new(),
            knowledge: None,
        })
    }

    #[test]
    fn matched_rules_offer_their_choices_once_in_order() {
        let a = assistant();
        assert_eq!(
            answer(&a, &["hours?", "refund policy?"]).choices,
            ["Book a visit", "Prices", "Start a refund"]
        );
        assert!(answer(&a, &["hello"]).choices.is_empty());
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
