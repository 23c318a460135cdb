//! A fake Gmail for tests and load runs: mailboxes with messages, threads,
//! labels and a history, answered in the Gmail API's shapes under
//! `/gmail/v1/users/me/...` (`profile`, `history`, `messages`,
//! `messages/{id}` in `full` and `metadata` formats,
//! `messages/{id}/attachments/{id}`, `messages/send`, `watch`), Google's
//! OAuth token endpoint at `/oauth2/token` and its keys at
//! `/oauth2/v3/certs` (see [`oidc`]). The access token a call carries says
//! which mailbox `me` is.
//!
//! Control routes: `POST /_sim/gmail/mailboxes` (`{"address",
//! "refresh_token"}`), `POST /_sim/gmail/mail` (a [`NewMail`]; answers
//! `{"id","threadId","historyId"}`), `GET /_sim/gmail/sent?mailbox=`,
//! `POST /_sim/gmail/faults` (a [`GmailFaults`]).

mod api;
pub mod oidc;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::clock::now_ms;
use crate::sync::lock;

/// A file of a message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimFile {
    pub name: String,
    pub mime_type: String,
    /// The file's bytes, given as a size of filler bytes.
    #[serde(default)]
    pub size: usize,
}

/// An email arriving in a mailbox (`POST /_sim/gmail/mail`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewMail {
    /// The mailbox it arrives in.
    pub mailbox: String,
    pub from: String,
    /// The mailbox when unset.
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    /// Other headers (`Auto-Submitted`, `Precedence`, ...).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// `INBOX` and `UNREAD` when empty.
    #[serde(default)]
    pub labels: Vec<String>,
    /// The thread it joins; a new one when unset.
    #[serde(default)]
    pub thread: Option<String>,
    #[serde(default)]
    pub files: Vec<SimFile>,
}

/// Faults of one mailbox (`POST /_sim/gmail/faults`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GmailFaults {
    pub mailbox: String,
    /// The refresh token is refused (`invalid_grant`).
    #[serde(default)]
    pub refuse_refresh: bool,
    /// History before this id is gone (404 for an older start).
    #[serde(default)]
    pub history_from: u64,
    /// Records per history page.
    #[serde(default)]
    pub page_size: Option<usize>,
    /// A send is kept, and answered this late (after the caller gave up).
    #[serde(default)]
    pub late_send_ms: u64,
    /// Messages (by subject) answered with a body that is not JSON.
    #[serde(default)]
    pub garbled_subjects: Vec<String>,
    /// Attachments answered with a 200 whose connection drops mid-body.
    #[serde(default)]
    pub cut_attachments: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub id: String,
    pub thread: String,
    pub labels: Vec<String>,
    pub history_id: u64,
    pub internal_date: u64,
    pub headers: Vec<(String, String)>,
    pub text: Option<String>,
    pub html: Option<String>,
    /// (attachment id, file, bytes).
    pub files: Vec<(String, SimFile, Vec<u8>)>,
}

#[derive(Default)]
pub(crate) struct Mailbox {
    pub refresh_token: String,
    pub messages: Vec<Message>,
    pub faults: GmailFaults,
    pub watches: u64,
}

/// Every mailbox of the fake Gmail.
#[derive(Default)]
pub struct GmailSim {
    pub(crate) mailboxes: Mutex<HashMap<String, Mailbox>>,
    /// Access token -> mailbox.
    pub(crate) access: Mutex<HashMap<String, String>>,
    /// The mailbox-wide history counter (shared: ids only grow).
    pub(crate) history: AtomicU64,
    pub(crate) ids: AtomicU64,
    /// Calls by route name.
    pub(crate) calls: Mutex<HashMap<&'static str, u64>>,
    /// Told of every email a mailbox sends.
    pub(crate) tap: std::sync::OnceLock<SentTap>,
}

/// Sees every email sent: (mailbox, recipient address, when).
pub type SentTap = Arc<dyn Fn(&str, &str, std::time::Instant) + Send + Sync>;

impl GmailSim {
    /// Adds a mailbox whose owner's refresh token is `refresh_token`.
    pub fn add_mailbox(&self, address: &str, refresh_token: &str) {
        lock(&self.mailboxes).insert(
            address.to_string(),
            Mailbox {
                refresh_token: refresh_token.to_string(),
                ..Mailbox::default()
            },
        );
        // History ids start well above zero, as Gmail's do.
        let _ = self
            .history
            .compare_exchange(0, 1000, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn next_id(&self) -> String {
        format!(
            "{:016x}",
            0x18c0_0000_0000_0000u64 + self.ids.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Delivers `mail` into its mailbox: (message id, thread id, history id).
    pub fn deliver(&self, mail: NewMail) -> Option<(String, String, u64)> {
        let id = self.next_id();
        let thread = mail.thread.clone().unwrap_or_else(|| id.clone());
        let mut headers = vec![
            ("From".to_string(), mail.from.clone()),
            (
                "To".to_string(),
                mail.to.clone().unwrap_or_else(|| mail.mailbox.clone()),
            ),
            ("Subject".to_string(), mail.subject.clone()),
            ("Message-ID".to_string(), format!("<{id}@mail.example>")),
            ("Date".to_string(), crate::clock::rfc3339(now_ms())),
        ];
        headers.extend(mail.headers.iter().cloned());
        let files = mail
            .files
            .iter()
            .map(|f| {
                let bytes: Vec<u8> = (0..f.size).map(|i| (i % 251) as u8).collect();
                (format!("att-{}", self.next_id()), f.clone(), bytes)
            })
            .collect();
        let labels = if mail.labels.is_empty() {
            vec!["INBOX".to_string(), "UNREAD".to_string()]
        } else {
            mail.labels.clone()
        };
        self.add(&mail.mailbox, |history_id| Message {
            id: id.clone(),
            thread: thread.clone(),
            labels,
            history_id,
            internal_date: now_ms(),
            headers,
            text: mail.text.clone(),
            html: mail.html.clone(),
            files,
        })
        .map(|h| (id, thread, h))
    }

    /// Adds a message made with its history id; returns that id.
    pub(crate) fn add(&self, mailbox: &str, make: impl FnOnce(u64) -> Message) -> Option<u64> {
        let mut boxes = lock(&self.mailboxes);
        let b = boxes.get_mut(mailbox)?;
        let history_id = self.history.fetch_add(1, Ordering::Relaxed) + 1;
        b.messages.push(make(history_id));
        Some(history_id)
    }

    /// Calls `tap` with every email a mailbox sends from now on (once).
    pub fn set_tap(&self, tap: SentTap) {
        let _ = self.tap.set(tap);
    }

    /// The mailbox's current history id.
    pub fn history_id(&self) -> u64 {
        self.history.load(Ordering::Relaxed)
    }

    pub fn set_faults(&self, faults: GmailFaults) {
        if let Some(b) = lock(&self.mailboxes).get_mut(&faults.mailbox) {
            b.faults = faults;
        }
    }

    /// Mail the mailbox sent, oldest first: headers, text, thread.
    pub fn sent(&self, mailbox: &str) -> Vec<Value> {
        lock(&self.mailboxes)
            .get(mailbox)
            .map(|b| {
                b.messages
                    .iter()
                    .filter(|m| m.labels.iter().any(|l| l == "SENT"))
                    .map(|m| {
                        let headers: serde_json::Map<String, Value> = m
                            .headers
                            .iter()
                            .map(|(k, v)| (k.clone(), json!(v)))
                            .collect();
                        json!({"id": m.id, "threadId": m.thread, "headers": headers,
                               "text": m.text, "html": m.html})
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Calls made to one route (`history`, `get`, `send`, `watch`, `token`,
    /// `attachment`, `list`, `profile`).
    pub fn calls(&self, route: &str) -> u64 {
        lock(&self.calls).get(route).copied().unwrap_or(0)
    }

    pub(crate) fn count(&self, route: &'static str) {
        *lock(&self.calls).entry(route).or_insert(0) += 1;
    }
}

impl super::Sim {
    /// The fake Gmail (its API under [`Sim::root_url`]).
    pub fn gmail(&self) -> &GmailSim {
        &self.state.gmail
    }

    /// The fake Gmail, shared.
    pub fn gmail_handle(&self) -> Arc<GmailSim> {
        self.state.gmail.clone()
    }

    /// `http://{addr}`: the engine's `google.gmail_base_url`, and the root
    /// of `/oauth2/token` and `/oauth2/v3/certs`.
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The fake Gmail's routes.
pub fn routes(state: Arc<GmailSim>) -> Router {
    api::routes()
        .route("/_sim/gmail/mailboxes", post(control_mailbox))
        .route("/_sim/gmail/mail", post(control_mail))
        .route("/_sim/gmail/sent", get(control_sent))
        .route("/_sim/gmail/faults", post(control_faults))
        .with_state(state)
}

#[derive(Deserialize)]
struct NewMailbox {
    address: String,
    refresh_token: String,
}

async fn control_mailbox(State(s): State<Arc<GmailSim>>, Json(m): Json<NewMailbox>) -> Json<Value> {
    s.add_mailbox(&m.address, &m.refresh_token);
    Json(json!({"address": m.address, "historyId": s.history_id()}))
}

async fn control_mail(State(s): State<Arc<GmailSim>>, Json(m): Json<NewMail>) -> Json<Value> {
    match s.deliver(m) {
        Some((id, thread, h)) => Json(json!({"id": id, "threadId": thread, "historyId": h})),
        None => Json(json!({"error": "no such mailbox"})),
    }
}

async fn control_sent(
    State(s): State<Arc<GmailSim>>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let mailbox = q.get("mailbox").cloned().unwrap_or_default();
    Json(Value::Array(s.sent(&mailbox)))
}

async fn control_faults(State(s): State<Arc<GmailSim>>, Json(f): Json<GmailFaults>) -> Json<Value> {
    s.set_faults(f);
    Json(json!({"ok": true}))
}
