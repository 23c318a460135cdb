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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cursor {
    pub history_id: u64,
    /// The mailbox it is of (an integration may be pointed at another).
    #[serde(default)]
    pub account: String,
    /// When the mailbox was last read (ms): where a resync starts.
    pub read_at_ms: u64,
}

/// Why a message was not answered (the `kind` of
/// `switchboard_webhook_items_skipped_total{channel="gmail"}`).
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
    /// Failed reads of a message, by its id.
    failures: Mutex<HashMap<String, u32>>,
}

/// Reads of one message that may fail by its own fault before it is left
/// out.
const MESSAGE_ATTEMPTS: u32 = 3;

/// How an answer Gmail sent that cannot be read starts (see `api.rs`).
const UNREADABLE: &str = "unreadable answer";

/// The longest text of an email put on the bus (a whole email thread
/// quoted in HTML can be megabytes; the bus takes about 1 MB).
const MAX_TEXT_CHARS: usize = 20_000;

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
            failures: Mutex::new(HashMap::new()),
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

    async fn save_cursor(
        &self,
        integration: &str,
        account: &str,
        history_id: u64,
    ) -> Result<(), GmailError> {
        let cursor = Cursor {
            history_id,
            account: account.to_ascii_lowercase(),
            read_at_ms: now_ms(),
        };
        let bytes = serde_json::to_vec(&cursor).unwrap_or_default();
        self.store
            .put_record(RecordKind::Mailboxes, integration, bytes)
            .await
            .map_err(|e| GmailError::Server(format!("the cursor cannot be stored: {e}")))
    }

    async fn read(&self, config: &IntegrationConfig, fence: &Fence) -> Result<(), GmailError> {
        let cursor = self.cursor(&config.id).await.map_err(GmailError::Server)?;
        let account = config.account_id.to_ascii_lowercase();
        let cursor = cursor.filter(|c| c.account.is_empty() || c.account == account);
        let Some(c) = cursor.filter(|c| c.history_id > 0) else {
            // Never read: the last minutes of mail, bounded like a resync.
            return self.resync(config, None, fence).await;
        };
        match self.history(config, c.history_id, fence).await {
            Err(GmailError::HistoryGone) => self.resync(config, Some(c), fence).await,
            other => other,
        }
    }

    /// Reads the history after `start`, page by page; after each page the
    /// cursor moves to the newest record read (every message up to it is on
    /// the bus), after the last to the mailbox's history id.
    async fn history(
        &self,
        config: &IntegrationConfig,
        start: u64,
        fence: &Fence,
    ) -> Result<(), GmailError> {
        let mut page: Option<String> = None;
        let mut cursor = start;
        loop {
            let p = self
                .api
                .history(config, start, page.as_deref(), fence)
                .await?;
            self.take(config, &p.added, fence).await?;
            let reached = match &p.next_page {
                Some(_) => p.last_record,
                None => p.history_id.max(p.last_record),
            };
            if reached > cursor {
                self.save_cursor(&config.id, &config.account_id, reached)
                    .await?;
                cursor = reached;
            }
            match p.next_page {
                Some(next) => page = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// Reads the mailbox's recent messages again (the cursor was too old,
    /// or there was none); those already handled are recognised by their
    /// ids. The mailbox's history id is taken first, so mail that arrives
    /// meanwhile is read from the history next time.
    async fn resync(
        &self,
        config: &IntegrationConfig,
        cursor: Option<Cursor>,
        fence: &Fence,
    ) -> Result<(), GmailError> {
        // Only this id is safe to move the cursor to: a message read below
        // may carry a later history id (changed since it came) than mail
        // that arrives while this runs.
        let current = self.api.current_history(config, fence).await?;
        let now = now_ms();
        // Never further back than the conversations remember ids: what
        // is read again must be recognised.
        let window = self.google.resync_window.min(config.dedup_window);
        let oldest = now.saturating_sub(window.as_millis() as u64);
        // An hour before the last read, for clocks that disagree; a
        // mailbox never read goes back a quarter of an hour only (its older
        // mail is not the engine's to answer).
        let from = cursor
            .as_ref()
            .map_or(now.saturating_sub(900_000), |c| {
                c.read_at_ms.saturating_sub(3_600_000)
            })
            .max(oldest);
        if cursor.is_some() {
            tracing::warn!(integration = %config.id, "Mailbox history id too old for Gmail; reading its mail again since the last read");
            telemetry::mailbox_resync();
        }
        let (mut ids, more) = self
            .api
            .messages_since(config, from / 1000, self.google.resync_max, fence)
            .await?;
        if more {
            tracing::warn!(integration = %config.id, read = ids.len(), "More mail since the last read than google.resync_max: the oldest is not read");
        }
        // Oldest first, as they came.
        ids.reverse();
        self.take(config, &ids, fence).await?;
        if current > 0 {
            self.save_cursor(&config.id, &config.account_id, current)
                .await?;
        }
        Ok(())
    }

    /// Fetches `ids` and puts the customer emails and the mailbox's own
    /// sent mail on the bus. A message that Gmail answers for with
    /// something unreadable or a refusal of that message (not throttling,
    /// an outage or the token) a few reads running is left out (counted),
    /// so one message cannot hold up the mailbox.
    async fn take(
        &self,
        config: &IntegrationConfig,
        ids: &[String],
        fence: &Fence,
    ) -> Result<(), GmailError> {
        let mut events = Vec::new();
        for id in ids {
            let read = match self.api.message(config, id, fence).await {
                Ok(Some(message)) => {
                    let email = Email::read(&message);
                    self.event(config, &email, fence).await
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            match read {
                Ok(event) => {
                    self.forget_failures(id);
                    events.extend(event);
                }
                Err(e) if self.keeps_failing(id, &e) => {
                    tracing::warn!(integration = %config.id, error = %e, "An email could not be read after several tries; left out");
                    telemetry::item_skipped(
                        "gmail",
                        Skip("unreadable"),
                        "an email that could not be read",
                    );
                }
                Err(e) => return Err(e),
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
        Ok(())
    }

    /// Counts a failed read of message `id` when the failure is the
    /// message's own (an answer that cannot be read, a 400 or 404 for it):
    /// whether to give up on it. Throttling, outages, the token and the
    /// ownership are never the message's: the read is tried again.
    fn keeps_failing(&self, id: &str, e: &GmailError) -> bool {
        let own = match e {
            GmailError::Server(m) => m.starts_with(UNREADABLE),
            GmailError::Rejected(m) => m.starts_with("400") || m.starts_with("404"),
            _ => false,
        };
        own && self.counted_out(id)
    }

    /// Counts one more failure of `key` (a message, or a message's file):
    /// whether that was the last one it is given.
    fn counted_out(&self, id: &str) -> bool {
        let mut failures = crate::sync::lock(&self.failures);
        let n = failures.entry(id.to_string()).or_insert(0);
        *n += 1;
        if *n >= MESSAGE_ATTEMPTS {
            failures.remove(id);
            return true;
        }
        false
    }

    fn forget_failures(&self, id: &str) {
        let mut failures = crate::sync::lock(&self.failures);
        if !failures.is_empty() {
            // The message's, and its files'.
            let files = format!("{id}/");
            failures.retain(|k, _| k != id && !k.starts_with(&files));
        }
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
                let Some((address, name)) = email.customer(&config.account_id) else {
                    return Ok(None);
                };
                let attachments = self.keep_files(config, email, fence).await?;
                let kind = EventKind::Message {
                    mid: email.id.clone(),
                    text: Some(capped(&email.text)).filter(|t| !t.trim().is_empty()),
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
                    text: Some(capped(&email.text)).filter(|t| !t.trim().is_empty()),
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
                crate::clock::event_time(email.internal_date_ms, now)
            } else {
                now
            },
            received_at_ms: now,
            customer_name: name,
            kind,
        }))
    }

    /// Keeps the email's files (up to 25 MB each) and lists them all; a
    /// file that cannot be fetched for good, or kept, is listed without an
    /// id (the email is still answered).
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
            if file.size > MAX_KEPT_ATTACHMENT {
                telemetry::item_skipped(
                    "gmail",
                    Skip("attachment_too_large"),
                    "an attachment over 25 MB, listed and not kept",
                );
                listed.push(a);
                continue;
            }
            let bytes = match (&file.data, &file.attachment_id) {
                (Some(d), _) => Some(d.clone()),
                (None, Some(att)) => match self.api.attachment(config, &email.id, att, fence).await
                {
                    Ok(b) => Some(b),
                    // Cut short in its tries, read after read (a slow link, a
                    // proxy that cuts large answers): listed without it,
                    // the email answered. Until then the email is read
                    // again later, its file with it.
                    Err(e) if e.cut() => {
                        if !self.counted_out(&format!("{}/{att}", email.id)) {
                            return Err(e);
                        }
                        tracing::warn!(integration = %config.id, error = %e, "An attachment could not be fetched; listed without it");
                        None
                    }
                    // A spent limit passes: the mail is read again later,
                    // its attachment with it.
                    Err(e)
                        if e.retryable()
                            || matches!(
                                e,
                                GmailError::Expired(_)
                                    | GmailError::Fenced
                                    | GmailError::OverLimit(_)
                            ) =>
                    {
                        return Err(e)
                    }
                    Err(e) => {
                        tracing::warn!(integration = %config.id, error = %e, "An attachment could not be fetched; listed without it");
                        None
                    }
                },
                (None, None) => None,
            };
            if let Some(bytes) = bytes {
                let key = files::key(&email.id, index);
                let info = files::FileInfo {
                    name: file.name.clone(),
                    mime_type: file.mime_type.clone(),
                    size: bytes.len() as u64,
                };
                match files::keep(&self.files, &config.id, &key, &info, &bytes).await {
                    Ok(()) => a.id = Some(key),
                    Err(e) => {
                        tracing::warn!(integration = %config.id, error = %e, "An attachment could not be kept; listed without it");
                    }
                }
            }
            listed.push(a);
        }
        Ok(listed)
    }
}

/// `text`, at most [`MAX_TEXT_CHARS`] characters.
fn capped(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[async_trait::async_trait]
impl MailboxSync for Mailboxes {
    async fn sync(&self, integration: &str, fence: &Fence) -> Result<(), String> {
        let lock = self.lock_for(integration);
        let _one = lock.lock().await;
        if self.integrations.get(integration).is_none() {
            // Perhaps created on another instance a moment ago.
            self.integrations.look_again().await;
        }
        let Some(config) = self
            .integrations
            .get(integration)
            .filter(|c| c.channel == ChannelKind::Gmail)
        else {
            // Deleted meanwhile.
            return Ok(());
        };
        match self.read(&config, fence).await {
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
