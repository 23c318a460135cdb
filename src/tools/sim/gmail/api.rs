//! The fake Gmail's API routes, in Google's shapes and with Google's
//! refusals: 401 without a token it issued, 404 for a history id older
//! than the mailbox keeps, 400 for a send without a recipient.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

use super::{oidc, GmailSim, Message};
use crate::channels::gmail::email::{decode_base64, BASE64URL};
use crate::clock::now_ms;
use crate::sync::lock;

pub(super) fn routes() -> Router<Arc<GmailSim>> {
    let me = "/gmail/v1/users/me";
    Router::new()
        .route("/oauth2/token", post(token))
        .route("/oauth2/v3/certs", get(|| async { Json(oidc::jwks()) }))
        .route(&format!("{me}/profile"), get(profile))
        .route(&format!("{me}/history"), get(history))
        .route(&format!("{me}/messages"), get(list))
        .route(&format!("{me}/messages/send"), post(send))
        .route(&format!("{me}/messages/{{id}}"), get(message))
        .route(
            &format!("{me}/messages/{{id}}/attachments/{{att}}"),
            get(attachment),
        )
        .route(&format!("{me}/watch"), post(watch))
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": "ERROR"}});
    (status, Json(body)).into_response()
}

/// Query pairs, repeated keys kept.
type Pairs = Query<Vec<(String, String)>>;

fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The mailbox the bearer token is for.
/// The mailbox the bearer token is for; a revoked grant
/// (`refuse_refresh`) ends its access tokens too.
fn mailbox_of(s: &GmailSim, headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| lock(&s.access).get(t).cloned())
        .filter(|m| {
            lock(&s.mailboxes)
                .get(m)
                .is_some_and(|b| !b.faults.refuse_refresh)
        })
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "Request had invalid authentication credentials.",
    )
}

async fn token(
    State(s): State<Arc<GmailSim>>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    s.count("token");
    let refresh = form.get("refresh_token").cloned().unwrap_or_default();
    if form.get("grant_type").map(String::as_str) != Some("refresh_token")
        || form.get("client_id").is_none_or(|c| c.is_empty())
        || form.get("client_secret").is_none_or(|c| c.is_empty())
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request"})),
        )
            .into_response();
    }
    let mailbox = lock(&s.mailboxes)
        .iter()
        .find(|(_, b)| b.refresh_token == refresh && !b.faults.refuse_refresh)
        .map(|(a, _)| a.clone());
    let Some(mailbox) = mailbox else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})),
        )
            .into_response();
    };
    let access = format!("ya29.sim-{}", s.next_id());
    lock(&s.access).insert(access.clone(), mailbox);
    Json(
        json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/gmail.modify"}),
    )
    .into_response()
}

async fn profile(State(s): State<Arc<GmailSim>>, headers: HeaderMap) -> Response {
    s.count("profile");
    let Some(mailbox) = mailbox_of(&s, &headers) else {
        return unauthorized();
    };
    let total = lock(&s.mailboxes)
        .get(&mailbox)
        .map_or(0, |b| b.messages.len());
    Json(
        json!({"emailAddress": mailbox, "messagesTotal": total, "threadsTotal": total,
                "historyId": s.history_id().to_string()}),
    )
    .into_response()
}

async fn history(State(s): State<Arc<GmailSim>>, headers: HeaderMap, Query(q): Pairs) -> Response {
    s.count("history");
    let Some(mailbox) = mailbox_of(&s, &headers) else {
        return unauthorized();
    };
    let Some(start) = param(&q, "startHistoryId").and_then(|v| v.parse::<u64>().ok()) else {
        return error(StatusCode::BAD_REQUEST, "Invalid startHistoryId");
    };
    let offset: usize = param(&q, "pageToken")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let boxes = lock(&s.mailboxes);
    let Some(b) = boxes.get(&mailbox) else {
        return error(StatusCode::NOT_FOUND, "Mailbox not found");
    };
    if start < b.faults.history_from {
        return error(StatusCode::NOT_FOUND, "Requested entity was not found.");
    }
    let max: usize = param(&q, "maxResults")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let size = b.faults.page_size.unwrap_or(max).clamp(1, 500);
    let newer: Vec<&Message> = b.messages.iter().filter(|m| m.history_id > start).collect();
    let page: Vec<Value> = newer
        .iter()
        .skip(offset)
        .take(size)
        .map(|m| {
            let short = json!({"id": m.id, "threadId": m.thread});
            json!({"id": m.history_id.to_string(), "messages": [short],
                   "messagesAdded": [{"message": {"id": m.id, "threadId": m.thread, "labelIds": m.labels}}]})
        })
        .collect();
    let mut answer = json!({"historyId": s.history_id().to_string()});
    if !page.is_empty() {
        answer["history"] = Value::Array(page);
    }
    if newer.len() > offset + size {
        answer["nextPageToken"] = json!((offset + size).to_string());
    }
    Json(answer).into_response()
}

async fn list(State(s): State<Arc<GmailSim>>, headers: HeaderMap, Query(q): Pairs) -> Response {
    s.count("list");
    let Some(mailbox) = mailbox_of(&s, &headers) else {
        return unauthorized();
    };
    let label = param(&q, "labelIds");
    let search = param(&q, "q").unwrap_or_default();
    let after_ms = search
        .strip_prefix("after:")
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |secs| secs * 1000);
    let message_id = search
        .strip_prefix("rfc822msgid:")
        .map(|id| format!("<{id}>"));
    let boxes = lock(&s.mailboxes);
    let ids: Vec<Value> = boxes
        .get(&mailbox)
        .map(|b| {
            b.messages
                .iter()
                .rev()
                .filter(|m| m.internal_date >= after_ms)
                .filter(|m| label.is_none_or(|l| m.labels.iter().any(|x| x == l)))
                .filter(|m| {
                    message_id.as_ref().is_none_or(|id| {
                        m.headers
                            .iter()
                            .any(|(k, v)| k.eq_ignore_ascii_case("Message-ID") && v == id)
                    })
                })
                .map(|m| json!({"id": m.id, "threadId": m.thread}))
                .collect()
        })
        .unwrap_or_default();
    Json(json!({"messages": ids, "resultSizeEstimate": ids.len()})).into_response()
}

fn part(mime: &str, text: &str) -> Value {
    json!({"mimeType": mime, "headers": [{"name": "Content-Type", "value": format!("{mime}; charset=\"UTF-8\"")}],
           "body": {"size": text.len(), "data": BASE64URL.encode(text)}})
}

/// A message in `format=full` (or `metadata`, headers only).
fn render(m: &Message, format: &str, wanted: &[&str]) -> Value {
    let headers: Vec<Value> = m
        .headers
        .iter()
        .filter(|(k, _)| {
            format != "metadata"
                || wanted.is_empty()
                || wanted.iter().any(|w| w.eq_ignore_ascii_case(k))
        })
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    let mut payload = json!({"partId": "", "mimeType": "multipart/mixed", "filename": "", "headers": headers, "body": {"size": 0}});
    if format != "metadata" {
        let mut alternative = Vec::new();
        if let Some(t) = &m.text {
            alternative.push(part("text/plain", t));
        }
        if let Some(h) = &m.html {
            alternative.push(part("text/html", h));
        }
        let mut parts = vec![
            json!({"mimeType": "multipart/alternative", "body": {"size": 0}, "parts": alternative}),
        ];
        for (att, f, bytes) in &m.files {
            parts.push(json!({"mimeType": f.mime_type, "filename": f.name,
                "headers": [{"name": "Content-Disposition", "value": format!("attachment; filename=\"{}\"", f.name)}],
                "body": {"attachmentId": att, "size": bytes.len()}}));
        }
        payload["parts"] = Value::Array(parts);
    }
    json!({"id": m.id, "threadId": m.thread, "labelIds": m.labels, "snippet": "",
           "historyId": m.history_id.to_string(), "internalDate": m.internal_date.to_string(),
           "payload": payload, "sizeEstimate": 1000})
}

async fn message(
    State(s): State<Arc<GmailSim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Pairs,
) -> Response {
    s.count("get");
    let Some(mailbox) = mailbox_of(&s, &headers) else {
        return unauthorized();
    };
    let format = param(&q, "format").unwrap_or("full");
    let wanted: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "metadataHeaders")
        .map(|(_, v)| v.as_str())
        .collect();
    let boxes = lock(&s.mailboxes);
    let Some(b) = boxes.get(&mailbox) else {
        return error(StatusCode::NOT_FOUND, "Requested entity was not found.");
    };
    let garbled = |m: &Message| {
        m.headers
            .iter()
            .any(|(k, v)| k == "Subject" && b.faults.garbled_subjects.contains(v))
    };
    match b.messages.iter().find(|m| m.id == id) {
        Some(m) if garbled(m) => (StatusCode::OK, "{\"id\": \"garbled").into_response(),
        Some(m) => Json(render(m, format, &wanted)).into_response(),
        None => error(StatusCode::NOT_FOUND, "Requested entity was not found."),
    }
}

async fn attachment(
    State(s): State<Arc<GmailSim>>,
    headers: HeaderMap,
    Path((id, att)): Path<(String, String)>,
) -> Response {
    s.count("attachment");
    let Some(mailbox) = mailbox_of(&s, &headers) else {
        return unauthorized();
    };
    let boxes = lock(&s.mailboxes);
    let cut = boxes
        .get(&mailbox)
        .is_some_and(|b| b.faults.cut_attachments);
    let found = boxes
        .get(&mailbox)
        .and_then(|b| b.messages.iter().find(|m| m.id == id))
        .and_then(|m| m.files.iter().find(|(a, _, _)| *a == att));
    match found {
        Some((_, _, bytes)) => {
            let answer = json!({"size": bytes.len(), "data": BASE64URL.encode(bytes)});
            if cut {
                return super::super::reads::cut_answer(StatusCode::OK, &answer);
            }
            Json(answer).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "Requested entity was not found."),
    }
}

async fn send(
    State(s): State<Arc<GmailSim>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    s.count("send");
    let Some(mailbox) = mailbox_of(&s, &headers) else {
        return unauthorized();
    };
    let Some(raw) = body
        .get("raw")
        .and_then(Value::as_str)
        .and_then(decode_base64)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
        );
    };
    let Some(parsed) = mail_parser::MessageParser::default().parse(&raw) else {
        return error(StatusCode::BAD_REQUEST, "Invalid RFC822 message");
    };
    let to = parsed
        .to()
        .and_then(|t| t.first())
        .and_then(|a| a.address())
        .map(str::to_string);
    let Some(to) = to else {
        return error(StatusCode::BAD_REQUEST, "Invalid To header");
    };
    let mut kept = vec![
        ("To".to_string(), to.clone()),
        ("From".to_string(), mailbox.clone()),
    ];
    // The subject decoded (RFC 2047), the ids as written.
    if let Some(subject) = parsed.subject() {
        kept.push(("Subject".to_string(), subject.to_string()));
    }
    for name in [
        "In-Reply-To",
        "References",
        "Message-ID",
        "X-Switchboard-Part",
        "Auto-Submitted",
    ] {
        if let Some(v) = parsed.header_raw(name) {
            kept.push((name.to_string(), v.trim().to_string()));
        }
    }
    let text = parsed
        .body_text(0)
        .map(|t| t.replace("\r\n", "\n").trim_end().to_string());
    let html = parsed.body_html(0).map(|t| t.to_string());
    let id = s.next_id();
    let thread = body
        .get("threadId")
        .and_then(Value::as_str)
        .map_or_else(|| id.clone(), str::to_string);
    let message_id = id.clone();
    let thread_id = thread.clone();
    let to_address = to.clone();
    let added = s.add(&mailbox, |history_id| Message {
        id: message_id,
        thread: thread_id,
        labels: vec!["SENT".to_string()],
        history_id,
        internal_date: now_ms(),
        headers: kept,
        text,
        html,
        files: Vec::new(),
    });
    if added.is_none() {
        return error(StatusCode::NOT_FOUND, "Mailbox not found");
    }
    if let Some(tap) = s.tap.get() {
        tap(
            &mailbox,
            &to_address.to_ascii_lowercase(),
            std::time::Instant::now(),
        );
    }
    let late = lock(&s.mailboxes)
        .get(&mailbox)
        .map_or(0, |b| b.faults.late_send_ms);
    if late > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(late)).await;
    }
    Json(json!({"id": id, "threadId": thread, "labelIds": ["SENT"]})).into_response()
}

async fn watch(
    State(s): State<Arc<GmailSim>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    s.count("watch");
    let Some(mailbox) = mailbox_of(&s, &headers) else {
        return unauthorized();
    };
    if body
        .get("topicName")
        .and_then(Value::as_str)
        .is_none_or(|t| !t.starts_with("projects/"))
    {
        return error(StatusCode::BAD_REQUEST, "Invalid topicName");
    }
    if let Some(b) = lock(&s.mailboxes).get_mut(&mailbox) {
        b.watches += 1;
    }
    let expiration = now_ms() + 7 * 86_400_000;
    Json(json!({"historyId": s.history_id().to_string(), "expiration": expiration.to_string()}))
        .into_response()
}
