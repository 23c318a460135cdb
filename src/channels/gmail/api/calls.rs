//! The Gmail API calls the channel makes, each with its quota cost.

use serde::Deserialize;
use serde_json::Value;

use super::super::email::{number_or_text, GmailMessage, BASE64URL};
use super::GmailError;
use super::{path_segment, units, GmailApi};
use crate::config::IntegrationConfig;
use crate::fence::Fence;
use base64::Engine;

/// A page of `users.history.list`.
#[derive(Debug, Default)]
pub struct HistoryPage {
    /// Ids of messages added, in history order.
    pub added: Vec<String>,
    pub next_page: Option<String>,
    /// The mailbox's history id when the page was read.
    pub history_id: u64,
    /// The newest history record on the page (0: none).
    pub last_record: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryAnswer {
    #[serde(default)]
    history: Vec<HistoryRecord>,
    #[serde(default)]
    next_page_token: Option<String>,
    #[serde(default, deserialize_with = "number_or_text")]
    history_id: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryRecord {
    #[serde(default, deserialize_with = "number_or_text")]
    id: u64,
    #[serde(default)]
    messages_added: Vec<Added>,
}

#[derive(Deserialize)]
struct Added {
    message: IdOnly,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListAnswer {
    #[serde(default)]
    messages: Vec<IdOnly>,
    #[serde(default)]
    next_page_token: Option<String>,
}

impl GmailApi {
    /// One page of the mailbox's history after `start` (messages added).
    pub async fn history(
        &self,
        integration: &IntegrationConfig,
        start: u64,
        page: Option<&str>,
        fence: &Fence,
    ) -> Result<HistoryPage, GmailError> {
        let mut query = vec![
            ("startHistoryId", start.to_string()),
            ("historyTypes", "messageAdded".to_string()),
            ("maxResults", "500".to_string()),
        ];
        if let Some(p) = page {
            query.push(("pageToken", p.to_string()));
        }
        let answer: HistoryAnswer = match self
            .get_json(integration, units::HISTORY, "/history", &query, fence)
            .await
        {
            Err(GmailError::Rejected(m)) if m.starts_with("404") => {
                return Err(GmailError::HistoryGone)
            }
            other => other?,
        };
        let mut added = Vec::new();
        let mut last_record = 0;
        for record in answer.history {
            last_record = last_record.max(record.id);
            for a in record.messages_added {
                if !added.contains(&a.message.id) {
                    added.push(a.message.id);
                }
            }
        }
        Ok(HistoryPage {
            added,
            next_page: answer.next_page_token.filter(|t| !t.is_empty()),
            history_id: answer.history_id,
            last_record,
        })
    }

    /// A message with its headers, bodies and attachment ids (`format=full`).
    /// `None` when it is gone (deleted since).
    pub async fn message(
        &self,
        integration: &IntegrationConfig,
        id: &str,
        fence: &Fence,
    ) -> Result<Option<GmailMessage>, GmailError> {
        let path = format!("/messages/{}", path_segment(id)?);
        gone_is_none(
            self.get_json(
                integration,
                units::GET,
                &path,
                &[("format", "full".into())],
                fence,
            )
            .await,
        )
    }

    /// A message's reply headers (`format=metadata`).
    pub async fn metadata(
        &self,
        integration: &IntegrationConfig,
        id: &str,
        fence: &Fence,
    ) -> Result<Option<GmailMessage>, GmailError> {
        let path = format!("/messages/{}", path_segment(id)?);
        let query = [
            ("format", "metadata".to_string()),
            ("metadataHeaders", "Subject".to_string()),
            ("metadataHeaders", "Message-ID".to_string()),
            ("metadataHeaders", "References".to_string()),
            ("metadataHeaders", "From".to_string()),
        ];
        gone_is_none(
            self.get_json(integration, units::GET, &path, &query, fence)
                .await,
        )
    }

    /// An attachment's bytes.
    pub async fn attachment(
        &self,
        integration: &IntegrationConfig,
        message: &str,
        attachment: &str,
        fence: &Fence,
    ) -> Result<Vec<u8>, GmailError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            data: String,
        }
        let path = format!(
            "/messages/{}/attachments/{}",
            path_segment(message)?,
            path_segment(attachment)?
        );
        let answer: Answer = self
            .get_json(integration, units::GET, &path, &[], fence)
            .await?;
        super::super::email::decode_base64(&answer.data)
            .ok_or_else(|| GmailError::Server("the attachment's data is not base64url".into()))
    }

    /// The id of the mailbox's message whose `Message-ID` is `rfc822_id`
    /// (without angle brackets), if there is one.
    pub async fn find_by_message_id(
        &self,
        integration: &IntegrationConfig,
        rfc822_id: &str,
        fence: &Fence,
    ) -> Result<Option<String>, GmailError> {
        let query = [
            ("q", format!("rfc822msgid:{rfc822_id}")),
            ("maxResults", "1".to_string()),
        ];
        let answer: ListAnswer = self
            .get_json(integration, units::LIST, "/messages", &query, fence)
            .await?;
        Ok(answer.messages.into_iter().next().map(|m| m.id))
    }

    /// The mailbox's messages newer than `after_secs` (epoch seconds; spam
    /// and trash left out, as Gmail does by default), newest first, at most
    /// `max`, and whether there were more: what a resync looks at again.
    pub async fn messages_since(
        &self,
        integration: &IntegrationConfig,
        after_secs: u64,
        max: usize,
        fence: &Fence,
    ) -> Result<(Vec<String>, bool), GmailError> {
        let mut ids = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut query = vec![
                ("q", format!("after:{after_secs}")),
                ("maxResults", max.min(500).to_string()),
            ];
            if let Some(p) = &page {
                query.push(("pageToken", p.clone()));
            }
            let answer: ListAnswer = self
                .get_json(integration, units::LIST, "/messages", &query, fence)
                .await?;
            ids.extend(answer.messages.into_iter().map(|m| m.id));
            page = answer.next_page_token.filter(|t| !t.is_empty());
            if page.is_none() || ids.len() >= max {
                let more = page.is_some() || ids.len() > max;
                ids.truncate(max);
                return Ok((ids, more));
            }
        }
    }

    /// The mailbox's current history id (`users.getProfile`).
    pub async fn current_history(
        &self,
        integration: &IntegrationConfig,
        fence: &Fence,
    ) -> Result<u64, GmailError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Profile {
            #[serde(deserialize_with = "number_or_text")]
            history_id: u64,
        }
        let p: Profile = self
            .get_json(integration, units::PROFILE, "/profile", &[], fence)
            .await?;
        Ok(p.history_id)
    }

    /// `users.watch` on the inbox, publishing to `topic`: the history id
    /// it starts from and when it lapses (ms).
    pub async fn watch(
        &self,
        integration: &IntegrationConfig,
        topic: &str,
    ) -> Result<(u64, u64), GmailError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(rename = "historyId", deserialize_with = "number_or_text")]
            history_id: u64,
            #[serde(default, deserialize_with = "number_or_text")]
            expiration: u64,
        }
        let body = serde_json::json!({"topicName": topic, "labelIds": ["INBOX"]});
        let bytes = self
            .call(
                integration,
                units::WATCH,
                |http, base| http.post(format!("{base}/watch")).json(&body),
                true,
                &Fence::none(),
            )
            .await?;
        let a: Answer = serde_json::from_slice(&bytes)
            .map_err(|e| GmailError::Server(format!("unreadable answer to /watch: {e}")))?;
        Ok((a.history_id, a.expiration))
    }

    /// `users.messages.send` of a MIME message in `thread`: Gmail's id for
    /// it (empty when the answer was cut after a 2xx).
    pub async fn send(
        &self,
        integration: &IntegrationConfig,
        raw: &[u8],
        thread: Option<&str>,
        fence: &Fence,
    ) -> Result<String, GmailError> {
        let mut body = serde_json::json!({ "raw": BASE64URL.encode(raw) });
        if let Some(t) = thread.filter(|t| !t.is_empty()) {
            body["threadId"] = Value::String(t.to_string());
        }
        let bytes = self
            .call(
                integration,
                units::SEND,
                |http, base| http.post(format!("{base}/messages/send")).json(&body),
                false,
                fence,
            )
            .await?;
        Ok(serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default())
    }
}

/// A message Gmail no longer has (404) is none, not an error.
fn gone_is_none(
    answer: Result<GmailMessage, GmailError>,
) -> Result<Option<GmailMessage>, GmailError> {
    match answer {
        Ok(m) => Ok(Some(m)),
        Err(GmailError::Rejected(m)) if m.starts_with("404") => Ok(None),
        Err(e) => Err(e),
    }
}
