//! `/api/v1/conversations`: list, read, takeover, resume, a person's
//! message.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::bodies;
use super::views::{ConversationDetail, ConversationView, QuarantineView};
use super::AdminError;
use crate::channels;
use crate::clock::now_ms;
use crate::config::ChannelKind;
use crate::conversation::commands::CommandOutcome;
use crate::conversation::turn::{BY_AGENT, BY_ASSISTANT, BY_INBOX, BY_KEYWORD};
use crate::conversation::{window, EngineContext};
use crate::event::{AgentAction, ConversationId, EventKind, InboundEvent};
use crate::store::{ConversationFilter, ConversationRecord, Mode};
use crate::telemetry;

/// How long a caller waits for its command to be applied.
const COMMAND_WAIT: Duration = Duration::from_secs(5);
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;
const MESSAGES_SHOWN: usize = 200;

type Params = Query<HashMap<String, String>>;

/// `GET /conversations?tenant=&integration=&channel=&mode=&order=&limit=&after=`
pub async fn list(
    State(ctx): State<Arc<EngineContext>>,
    Query(params): Params,
) -> Result<Response, AdminError> {
    let integrations = super::analytics::integrations_of(
        &ctx,
        params.get("tenant").map(String::as_str),
        params.get("integration").map(String::as_str),
    )?;
    let channel = params
        .get("channel")
        .map(|c| {
            serde_json::from_value::<ChannelKind>(json!(c)).map_err(|_| {
                AdminError::BadRequest(format!(
                    "channel must be messenger, instagram, whatsapp, gmail or web, not {c:?}"
                ))
            })
        })
        .transpose()?;
    let mode = match params.get("mode").map(String::as_str) {
        None => None,
        Some("ai") => Some(Mode::Ai),
        Some("human") => Some(Mode::Human),
        Some(other) => {
            return Err(AdminError::BadRequest(format!(
                "mode must be \"ai\" or \"human\", not {other:?}"
            )))
        }
    };
    let limit = match params.get("limit") {
        None => DEFAULT_PAGE,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| {
                AdminError::BadRequest(format!("limit must be between 1 and {MAX_PAGE}"))
            })?,
    };
    let filter = ConversationFilter {
        integrations,
        channel,
        mode,
    };
    match params.get("order").map(String::as_str) {
        None | Some("id") => {}
        Some("recent") => {
            let after = params
                .get("after")
                .map(|a| super::recent::Cursor::parse(a))
                .transpose()?;
            let page = super::recent::page(&ctx, &filter, after.as_ref(), limit).await?;
            let conversations: Vec<ConversationView> = page
                .conversations
                .iter()
                .map(ConversationView::from)
                .collect();
            return Ok(Json(json!({
                "conversations": conversations,
                "next": page.next,
                "partial": page.partial,
            }))
            .into_response());
        }
        Some(other) => {
            return Err(AdminError::BadRequest(format!(
                "order must be \"id\" or \"recent\", not {other:?}"
            )))
        }
    }
    let page = ctx
        .store
        .list_conversations(&filter, params.get("after").map(String::as_str), limit)
        .await?;
    let next = (page.len() == limit)
        .then(|| page.last().map(|c| c.id.clone()))
        .flatten();
    let conversations: Vec<ConversationView> = page.iter().map(ConversationView::from).collect();
    Ok(Json(json!({ "conversations": conversations, "next": next })).into_response())
}

/// `GET /conversations/{id}`: the conversation and its latest messages.
pub async fn show(
    State(ctx): State<Arc<EngineContext>>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    // History stays readable after its integration left the config.
    let record = ctx
        .store
        .conversation(&id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no conversation {id:?}")))?;
    Ok(Json(detail(&ctx, &record).await?).into_response())
}

/// `GET /conversations/{id}/attachments/{key}`: a file a customer emailed
/// (kept by the Gmail channel), with its type and name.
pub async fn attachment(
    State(ctx): State<Arc<EngineContext>>,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let missing = || AdminError::NotFound(format!("no attachment {key:?} in conversation {id:?}"));
    let record = ctx.store.conversation(&id).await?.ok_or_else(missing)?;
    let listed = ctx
        .store
        .messages(&record.id, MESSAGES_SHOWN)
        .await?
        .iter()
        .any(|m| {
            m.attachments
                .iter()
                .any(|a| a.id.as_deref() == Some(key.as_str()))
        });
    if !listed {
        return Err(missing());
    }
    let dir = ctx.config.attachments_dir();
    let (info, bytes) = channels::gmail::files::open(&dir, &record.integration, &key)
        .await
        .ok_or_else(missing)?;
    let mime = if info.mime_type.is_empty() {
        "application/octet-stream".to_string()
    } else {
        info.mime_type
    };
    let name: String = info
        .name
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect();
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, mime),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            // The type is the sender's word: never sniffed into a page.
            (
                axum::http::header::X_CONTENT_TYPE_OPTIONS,
                "nosniff".to_string(),
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn detail(
    ctx: &EngineContext,
    record: &ConversationRecord,
) -> Result<ConversationDetail, AdminError> {
    let messages = ctx.store.messages(&record.id, MESSAGES_SHOWN).await?;
    let quarantine = ctx.store.quarantine(&record.id).await?;
    Ok(ConversationDetail {
        conversation: ConversationView::from(record),
        messages: messages.into_iter().map(Into::into).collect(),
        quarantine: quarantine.as_ref().map(QuarantineView::from),
    })
}

/// `GET /quarantine`: conversations taken out of service after repeated
/// failures, each with its reason; `POST /conversations/{id}/resume` lifts
/// one.
pub async fn quarantined(State(ctx): State<Arc<EngineContext>>) -> Result<Response, AdminError> {
    let all = ctx.store.quarantines().await?;
    let views: Vec<QuarantineView> = all.iter().map(QuarantineView::from).collect();
    Ok(Json(json!({ "quarantined": views })).into_response())
}

/// `POST /conversations/{id}/takeover` with an optional
/// `{"auto_resume_minutes": 5..10080, "by": "name"}`.
pub async fn takeover(
    State(ctx): State<Arc<EngineContext>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let body = bodies::takeover(&body)?;
    let by = body
        .by
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| BY_AGENT.to_string());
    // The engine's own names for takeovers nobody asked for (a keyword,
    // the inbox, the assistant) are not a person's.
    if [BY_KEYWORD, BY_INBOX, BY_ASSISTANT].contains(&by.as_str()) {
        return Err(AdminError::Unprocessable(format!(
            "by: {by:?} is the engine's name for a takeover nobody asked for; name the person"
        )));
    }
    let record = find(&ctx, &id).await?;
    let action = AgentAction::Takeover {
        by,
        auto_resume_minutes: body.auto_resume_minutes,
    };
    command(&ctx, &record, action).await
}

/// `POST /conversations/{id}/resume`
pub async fn resume(
    State(ctx): State<Arc<EngineContext>>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    // A quarantined conversation may have no readable state at all: its
    // resume goes to the bus regardless, where the supervisor lifts the
    // quarantine.
    if let Some(q) = ctx.store.quarantine(&id).await? {
        let record = match ctx.store.conversation(&id).await {
            Ok(Some(record)) => record,
            _ => placeholder_record(&ctx, &q.conversation)?,
        };
        return command(&ctx, &record, AgentAction::Resume).await;
    }
    let record = find(&ctx, &id).await?;
    command(&ctx, &record, AgentAction::Resume).await
}

/// The identity of a conversation whose state cannot be read, from its id
/// and its integration's config (enough to address a command to it).
fn placeholder_record(ctx: &EngineContext, id: &str) -> Result<ConversationRecord, AdminError> {
    let (integration, customer) = ConversationId::split(id)
        .ok_or_else(|| AdminError::NotFound(format!("no conversation {id:?}")))?;
    let config = ctx.integrations.get(integration).ok_or_else(|| {
        AdminError::Conflict(format!(
            "integration {integration:?} is no longer configured"
        ))
    })?;
    Ok(ConversationRecord::new(
        id,
        integration,
        config.channel,
        customer,
        now_ms(),
    ))
}

/// `POST /conversations/{id}/messages` with `{"text": "..."}`, and/or
/// `"attachment": {"type": "image", "url": "https://..."}` where the
/// channel takes that type (422 otherwise).
pub async fn message(
    State(ctx): State<Arc<EngineContext>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AdminError> {
    let key = idempotency_key(&headers)?;
    let body = bodies::message(&body)?;
    let record = find(&ctx, &id).await?;
    if let Some(a) = &body.attachment {
        channels::attachment_type(record.channel, &a.kind).map_err(AdminError::Unprocessable)?;
    }
    let template = ctx
        .integrations
        .get(&record.integration)
        .is_some_and(|i| i.whatsapp_template.is_some());
    // Refused here already when the window is closed; the actor checks
    // again when it sends.
    window::agent_send(record.channel, record.last_inbound_ms, now_ms(), template)
        .map_err(|closed| AdminError::Conflict(closed.to_string()))?;
    let action = AgentAction::Message {
        text: body.text,
        attachment: body.attachment,
    };
    match key {
        Some(key) => {
            let command_id = idempotent_command_id(&record.id, &key);
            command_with_id(&ctx, &record, action, command_id).await
        }
        None => command(&ctx, &record, action).await,
    }
}

/// A conversation a command may act on: stored, and its integration still
/// configured.
async fn find(ctx: &EngineContext, id: &str) -> Result<ConversationRecord, AdminError> {
    let record = ctx
        .store
        .conversation(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no conversation {id:?}")))?;
    if !ctx.integrations.contains_key(&record.integration) {
        return Err(AdminError::Conflict(format!(
            "integration {:?} is no longer configured",
            record.integration
        )));
    }
    Ok(record)
}

/// Publishes an operator's command for the conversation's actor and waits
/// for what came of it.
async fn command(
    ctx: &EngineContext,
    record: &ConversationRecord,
    action: AgentAction,
) -> Result<Response, AdminError> {
    let id = format!("cmd-{}-{:016x}", now_ms(), rand::random::<u64>());
    command_with_id(ctx, record, action, id).await
}

/// The command id of a request with an `Idempotency-Key`: the same key on
/// the same conversation names the same command, which the conversation
/// applies once (and whose first outcome it keeps for retries).
fn idempotent_command_id(conversation: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{conversation}\0{key}").as_bytes());
    format!("idem-{}", hex::encode(&digest[..16]))
}

/// The request's `Idempotency-Key`, if any: 1 to 255 visible ASCII
/// characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, AdminError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k.to_string()))
        }
        _ => Err(AdminError::BadRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        )),
    }
}

async fn command_with_id(
    ctx: &EngineContext,
    record: &ConversationRecord,
    action: AgentAction,
    id: String,
) -> Result<Response, AdminError> {
    let now = now_ms();
    let event = InboundEvent {
        conversation: ConversationId::from(record.id.as_str()),
        integration: record.integration.clone(),
        channel: record.channel,
        customer: record.customer.clone(),
        timestamp_ms: now,
        received_at_ms: now,
        customer_name: None,
        kind: EventKind::Agent {
            command: id.clone(),
            action,
        },
    };
    let waiter = ctx.commands.wait_for(&id);
    if let Err(e) = ctx.bus.publish(std::slice::from_ref(&event)).await {
        drop(waiter);
        ctx.commands.forget(&id);
        return Err(e.into());
    }
    telemetry::event_accepted(record.channel, &event.kind);
    let outcome = tokio::time::timeout(COMMAND_WAIT, waiter).await;
    ctx.commands.forget(&id);
    match outcome {
        Ok(Ok(CommandOutcome::Applied)) => {
            let record = find(ctx, &record.id).await?;
            Ok(Json(ConversationView::from(&record)).into_response())
        }
        Ok(Ok(CommandOutcome::Sent { message_id })) => Ok(Json(json!({
            "status": "sent",
            "message_id": message_id,
        }))
        .into_response()),
        Ok(Ok(CommandOutcome::Refused { reason })) => Err(AdminError::Conflict(reason)),
        Ok(Ok(CommandOutcome::Failed { reason })) => Err(AdminError::Platform(reason)),
        Ok(Ok(CommandOutcome::Queued)) => Ok(accepted(
            "queued",
            "the platform is failing; the message waits in the outbox and is retried",
        )),
        Ok(Ok(CommandOutcome::Unconfirmed)) => Ok(accepted(
            "unconfirmed",
            "the platform's answer was lost; the message is confirmed by its echo or sent again later",
        )),
        // Handled by another instance, or slower than the wait.
        Ok(Err(_)) | Err(_) => Ok(accepted(
            "accepted",
            "the command is on the bus and will be applied in order",
        )),
    }
}

fn accepted(status: &str, detail: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "status": status, "detail": detail })),
    )
        .into_response()
}
