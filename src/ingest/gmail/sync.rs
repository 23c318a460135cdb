//! Reading a Gmail mailbox's new mail onto the bus. The mailbox's cursor
//! (the history id read up to) is kept in the store, and history is read
//! from it, never from a push's id: `users.history.list` page by page, each
//! new message fetched with `users.messages.get`, each customer email put on
//! the bus as an event of its thread's conversation, and the cursor moved
//! only once every message up to it is on the bus. A crash in between reads
//! the same messages again; conversations recognise them by their ids.
//!
//! A cursor too old for Gmail (404) is replaced by a bounded resync: the
//! inbox's messages since the last read (at most `google.resync_window`
//! back, `google.resync_max` of them) are looked at again, and the ones
//! already answered are recognised by their ids. A refused refresh token
//! marks the integration expired and alerts; its mail waits, unread, for a
//! new token.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::alerts::Alerts;
use crate::bus::Bus;
use crate::channels::gmail::api::{GmailApi, GmailError};
use crate::channels::gmail::email::{Email, EmailKind, MAX_KEPT_ATTACHMENT};
use crate::channels::gmail::{customer_id, files};
use crate::clock::now_ms;
use crate::config::{ChannelKind, GoogleConfig, IntegrationConfig};
use crate::conversation::MailboxSync;
use crate::event::{Attachment, ConversationId, EventKind, InboundEvent};
use crate::fence::Fence;
use crate::integrations::Integrations;
use crate::store::{RecordKind, Store};
use crate::telemetry::{self, Label};

/// Where a mailbox has been read up to.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Cursor {
    pub history_id: u64,
    /// When the mailbox was last read (ms): where a resync starts.
    pub read_at_ms: u64,
}

/// Why a message was not answered (the `kind` of
/// `switchboard_items_skipped_total{channel="gmail"}`).
#[derive(Clone, Copy)]
struct Skip(&'static str);

impl Label for Skip {
    fn label(self) -> &'static str {
        self.0
    }
}

/// Every Gmail mailbox's reader.
pub struct Mailboxes {
    pub(super) api: Arc<GmailApi>,
    pub(super) store: Arc<dyn Store>,
    pub(super) bus: Arc<dyn Bus>,
    pub(super) integrations: Arc<Integrations>,
    pub(super) alerts: Arc<Alerts>,
    pub(super) google: GoogleConfig,
    /// Where attachments are kept.
    pub(super) files: PathBuf,
    /// One read at a time per mailbox.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Mailboxes {
    pub fn new(
        api: Arc<GmailApi>,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        integrations: Arc<Integrations>,
        alerts: Arc<Alerts>,
        google: GoogleConfig,
        files: PathBuf,
    ) -> Self {
        Self {
            api,
            store,
            bus,
            integrations,
            alerts,
            google,
            files,
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn lock_for(&self, integration: &str) -> Arc<tokio::sync::Mutex<()>> {
        crate::sync::lock(&self.locks)
            .entry(integration.to_string())
            .or_default()
            .clone()
    }

    /// The mailbox's cursor, if it has been read before.
    pub async fn cursor(&self, integration: &str) -> Result<Option<Cursor>, String> {
        let records = self
            .store
            .records(RecordKind::Mailboxes)
            .await
            .map_err(|e| e.to_string())?;
        Ok(records
            .into_iter()
            .find(|(k, _)| k == integration)
            .and_then(|(_, v)| serde_json::from_slice(&v).ok()))
    }

    async fn save_cursor(&self, integration: &str, history_id: u64) -> Result<(), GmailError> {
        let cursor = Cursor {
            history_id,
            read_at_ms: now_ms(),
        };
        let bytes = serde_json::to_vec(&cursor).unwrap_or_default();
        self.store
            .put_record(RecordKind::Mailboxes, integration, bytes)
            .await
            .map_err(|e| GmailError::Server(format!("the cursor cannot be stored: {e}")))
    }

    async fn read(
        &self,
        config: &IntegrationConfig,
        history_id: u64,
        fence: &Fence,
    ) -> Result<(), GmailError> {
        let cursor = self.cursor(&config.id).await.map_err(GmailError::Server)?;
        let start = match (cursor, history_id) {
            (Some(c), _) => c.history_id,
            // Never read: from now on.
            (None, 0) => {
                let now = self.api.current_history(config, fence).await?;
                return self.save_cursor(&config.id, now).await;
            }
            // Never read, and told of a change: from just before it.
            (None, h) => h.saturating_sub(1),
        };
        match self.history(config, start, fence).await {
            Err(GmailError::HistoryGone) => self.resync(config, cursor, history_id, fence).await,
            other => other,
        }
    }

    /// Reads the history after `start`, page by page; the cursor moves
    /// once every page is on the bus.
    async fn history(
        &self,
        config: &IntegrationConfig,
        start: u64,
        fence: &Fence,
    ) -> Result<(), GmailError> {
        let mut page: Option<String> = None;
        let mut newest = start;
        loop {
            let p = self
                .api
                .history(config, start, page.as_deref(), fence)
                .await?;
            newest = newest.max(p.history_id);
            self.take(config, &p.added, fence).await?;
            match p.next_page {
                Some(next) => page = Some(next),
                None => break,
            }
        }
        if newest != start {
            self.save_cursor(&config.id, newest).await?;
        }
        Ok(())
    }

    /// The cursor was too old: the inbox's recent messages are looked at
    /// again (those already handled are recognised by their ids).
    async fn resync(
        &self,
        config: &IntegrationConfig,
        cursor: Option<Cursor>,
        history_id: u64,
        fence: &Fence,
    ) -> Result<(), GmailError> {
        let now = now_ms();
        let oldest = now.saturating_sub(self.google.resync_window.as_millis() as u64);
        // An hour before the last read, for clocks that disagree; a
        // mailbox never read goes back a quarter of an hour only (its older
        // mail is not the engine's to answer).
        let from = cursor
            .map_or(now.saturating_sub(900_000), |c| {
                c.read_at_ms.saturating_sub(3_600_000)
            })
            .max(oldest);
        tracing::warn!(integration = %config.id, "Mailbox history id too old for Gmail; reading the inbox again since the last read");
        telemetry::mailbox_resync();
        let mut ids = self
            .api
            .inbox_since(config, from / 1000, self.google.resync_max, fence)
            .await?;
        // Oldest first, as they came.
        ids.reverse();
        let newest = self.take(config, &ids, fence).await?;
        let current = match self.api.current_history(config, fence).await {
            Ok(h) => h,
            Err(e) if e.retryable() => return Err(e),
            Err(_) => 0,
        };
        self.save_cursor(&config.id, current.max(newest).max(history_id))
            .await
    }

    /// Fetches `ids` and puts the customer emails and the mailbox's own
    /// sent mail on the bus; returns the newest history id among them.
    async fn take(
        &self,
        config: &IntegrationConfig,
        ids: &[String],
        fence: &Fence,
    ) -> Result<u64, GmailError> {
        let mut events = Vec::new();
        let mut newest = 0;
        for id in ids {
            let Some(message) = self.api.message(config, id, fence).await? else {
                continue;
            };
            newest = newest.max(message.history_id);
            let email = Email::read(&message);
            if let Some(e) = self.event(config, &email, fence).await? {
                events.push(e);
            }
        }
        if !events.is_empty() {
            self.bus
                .publish(&events)
                .await
                .map_err(|e| GmailError::Server(format!("the bus did not take the mail: {e}")))?;
            for e in &events {
                telemetry::event_accepted(e.channel, &e.kind);
            }
        }
        Ok(newest)
    }

    /// The event a message makes, if any.
    async fn event(
        &self,
        config: &IntegrationConfig,
        email: &Email,
        fence: &Fence,
    ) -> Result<Option<InboundEvent>, GmailError> {
        let (customer, name, kind) = match email.kind(&config.account_id) {
            EmailKind::Customer => {
                let Some((address, name)) = email.from.clone() else {
                    return Ok(None);
                };
                let attachments = self.keep_files(config, email, fence).await?;
                let kind = EventKind::Message {
                    mid: email.id.clone(),
                    text: Some(email.text.clone()).filter(|t| !t.trim().is_empty()),
                    attachments,
                    quick_reply: None,
                };
                (customer_id(&email.thread_id, &address), name, kind)
            }
            // The engine's own reply (its part id confirms the send) or a
            // person's, written in Gmail (the AI then stays out of it).
            EmailKind::OwnSent { part } => {
                let Some(to) = email.to.clone() else {
                    return Ok(None);
                };
                let kind = EventKind::Echo {
                    mid: email.id.clone(),
                    text: Some(email.text.clone()).filter(|t| !t.trim().is_empty()),
                    app_id: None,
                    own_app: part.is_some(),
                    metadata: part,
                };
                (customer_id(&email.thread_id, &to), None, kind)
            }
            EmailKind::Skipped(reason) => {
                telemetry::item_skipped("gmail", Skip(reason), "an email that is not answered");
                return Ok(None);
            }
        };
        let now = now_ms();
        Ok(Some(InboundEvent {
            conversation: ConversationId::new(&config.id, &customer),
            integration: config.id.clone(),
            channel: ChannelKind::Gmail,
            customer,
            timestamp_ms: if email.internal_date_ms > 0 {
                email.internal_date_ms
            } else {
                now
            },
            received_at_ms: now,
            customer_name: name,
            kind,
        }))
    }

    /// Keeps the email's files (up to 25 MB each) and lists them all.
    async fn keep_files(
        &self,
        config: &IntegrationConfig,
        email: &Email,
        fence: &Fence,
    ) -> Result<Vec<Attachment>, GmailError> {
        let mut listed = Vec::new();
        for (index, file) in email.files.iter().enumerate() {
            let mut a = Attachment {
                kind: files::kind_of(&file.mime_type).to_string(),
                url: None,
                id: None,
                mime_type: Some(file.mime_type.clone()).filter(|m| !m.is_empty()),
                caption: Some(file.name.clone()),
            };
            if file.size <= MAX_KEPT_ATTACHMENT {
                let bytes = match (&file.data, &file.attachment_id) {
                    (Some(d), _) => Some(d.clone()),
                    (None, Some(att)) => {
                        Some(self.api.attachment(config, &email.id, att, fence).await?)
                    }
                    (None, None) => None,
                };
                if let Some(bytes) = bytes {
                    let key = files::key(&email.id, index);
                    let info = files::FileInfo {
                        name: file.name.clone(),
                        mime_type: file.mime_type.clone(),
                        size: bytes.len() as u64,
                    };
                    files::keep(&self.files, &config.id, &key, &info, &bytes)
                        .await
                        .map_err(|e| {
                            GmailError::Server(format!("an attachment cannot be kept: {e}"))
                        })?;
                    a.id = Some(key);
                }
            } else {
                telemetry::item_skipped(
                    "gmail",
                    Skip("attachment_too_large"),
                    "an attachment over 25 MB, listed and not kept",
                );
            }
            listed.push(a);
        }
        Ok(listed)
    }
}

#[async_trait::async_trait]
impl MailboxSync for Mailboxes {
    async fn sync(&self, integration: &str, history_id: u64, fence: &Fence) -> Result<(), String> {
        let lock = self.lock_for(integration);
        let _one = lock.lock().await;
        let Some(config) = self
            .integrations
            .get(integration)
            .filter(|c| c.channel == ChannelKind::Gmail)
        else {
            // Deleted meanwhile.
            return Ok(());
        };
        match self.read(&config, history_id, fence).await {
            Ok(()) => {
                self.integrations.tokens.accepted(&config.id);
                Ok(())
            }
            Err(GmailError::Expired(reason)) => {
                self.alerts
                    .token_refused(&self.integrations.tokens, &config, &reason);
                Ok(())
            }
            Err(GmailError::Fenced) => Ok(()),
            Err(e) if e.retryable() => Err(e.to_string()),
            // Read again at the next check, from the same cursor.
            Err(e) => {
                tracing::warn!(integration = %config.id, error = %e, "Mailbox not read");
                Ok(())
            }
        }
    }
}
