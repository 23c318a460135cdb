//! Website chat's routes: `GET /web/widget.js` (the widget, embedded in
//! the binary) and `GET /web/{integration}/ws` (its WebSocket). A socket
//! is accepted only from a page of one of the integration's
//! `allowed_origins`; its first frame says who the visitor is
//! (`channels::web::identity`); each message the visitor sends is put on
//! the bus as an event of their conversation and acknowledged only then,
//! and a message sent again with the same `client_id` (after a reconnect)
//! is recognised by the conversation like a redelivered Meta message.
//! Replies come from the hub (this instance) or from the store (lines the
//! socket has not shown yet, checked every few seconds: the conversation
//! may be handled by another instance).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use crate::channels::web::frames::{self, ClientFrame};
use crate::channels::web::identity;
use crate::clock::now_ms;
use crate::config::{ChannelKind, IntegrationConfig};
use crate::conversation::EngineContext;
use crate::event::{ConversationId, EventKind, InboundEvent};
use crate::telemetry::{self, WebhookOutcome};

mod shown;
mod slots;

use shown::{lines_after, ReadMarks, Shown};

/// The widget's script.
const WIDGET_JS: &str = include_str!("widget.js");

/// The first frame must come within this.
const HELLO_WITHIN: Duration = Duration::from_secs(10);
/// A socket with no frame from its widget for this long is closed.
const IDLE: Duration = Duration::from_secs(600);
/// How often a socket looks in the store for lines it has not shown.
const CATCH_UP_EVERY: Duration = Duration::from_secs(3);
/// The longest text a visitor may send, in characters.
const MAX_TEXT: usize = 2000;
/// Messages a socket may send per 10 seconds.
const BURST: u32 = 10;
/// Lines of history a widget is sent at most.
const HISTORY: usize = 200;
/// Lines a socket's store check reads (the newest).
const CATCH_UP_LINES: usize = 20;
/// A frame the widget does not take within this closes the socket.
const SEND_WITHIN: Duration = Duration::from_secs(10);
/// Read marks a socket passes on, at most one per this.
const READ_EVERY: Duration = Duration::from_secs(5);

static SLOTS: slots::Slots = slots::Slots::new(slots::MAX_SOCKETS);

/// Sockets opened and messages sent per client IP address: each limited to
/// `server.web_per_ip_per_minute`.
struct PerIp {
    opens: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    messages: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
}

fn per_ip(per_minute: u32) -> &'static PerIp {
    static LIMITS: std::sync::OnceLock<PerIp> = std::sync::OnceLock::new();
    LIMITS.get_or_init(|| {
        let n = std::num::NonZeroU32::new(per_minute).unwrap_or(std::num::NonZeroU32::MIN);
        let quota = governor::Quota::per_minute(n);
        PerIp {
            opens: governor::RateLimiter::keyed(quota),
            messages: governor::RateLimiter::keyed(quota),
        }
    })
}

pub fn router(ctx: Arc<EngineContext>) -> Router {
    Router::new()
        .route("/web/widget.js", get(widget))
        .route("/web/{integration}/ws", get(socket))
        .with_state(ctx)
}

async fn widget() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        WIDGET_JS,
    )
        .into_response()
}

fn refuse(status: StatusCode, outcome: WebhookOutcome, why: &'static str) -> Response {
    super::answer("web", outcome, status, why)
}

async fn socket(
    State(ctx): State<Arc<EngineContext>>,
    Path(integration): Path<String>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(config) = ctx
        .integrations
        .get(&integration)
        .filter(|c| c.channel == ChannelKind::Web)
    else {
        return refuse(
            StatusCode::NOT_FOUND,
            WebhookOutcome::UnknownAccount,
            "no web chat with this id",
        );
    };
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if !config.allowed_origins.contains(&origin) {
        return refuse(
            StatusCode::FORBIDDEN,
            WebhookOutcome::Unauthorized,
            "origin not allowed",
        );
    }
    let limits = per_ip(ctx.config.server.web_per_ip_per_minute);
    // Addresses not seen for a while are forgotten now and then.
    static CHECKS: AtomicUsize = AtomicUsize::new(0);
    if CHECKS.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
        limits.opens.retain_recent();
        limits.messages.retain_recent();
    }
    if limits.opens.check_key(&slots::client(peer.ip())).is_err() {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            WebhookOutcome::Overloaded,
            "too many chat connections from this address; retry later",
        );
    }
    let slot = match SLOTS.take(peer.ip(), ctx.config.server.web_sockets_per_ip) {
        Ok(slot) => slot,
        Err(slots::Full::Address) => {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                WebhookOutcome::Overloaded,
                "too many open chat connections from this address; close some or retry later",
            );
        }
        Err(slots::Full::Instance) => {
            telemetry::webhook_request("web", WebhookOutcome::Overloaded);
            return super::overloaded();
        }
    };
    telemetry::webhook_request("web", WebhookOutcome::Accepted);
    let open = ctx.sockets.token();
    // Small buffers: the frames are small, and the library's defaults
    // (128 KiB each way) would be most of an open socket's memory.
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(16 * 1024)
        .max_frame_size(16 * 1024)
        .on_upgrade(move |ws| async move {
            let _slot = slot;
            session(ctx, config, origin, ws, slots::client(peer.ip())).await;
            drop(open);
        })
}

/// Sends a frame; `false` when the socket is gone or the widget has not
/// read for [`SEND_WITHIN`] (the socket is then closed).
async fn send(ws: &mut WebSocket, frame: &Value) -> bool {
    let sent = ws.send(WsMessage::Text(frame.to_string().into()));
    matches!(tokio::time::timeout(SEND_WITHIN, sent).await, Ok(Ok(())))
}

/// Closes a socket because the engine stops: 1012 (service restart) tells
/// the widget to reconnect (to this instance once it runs again, or another).
async fn restarting(ws: &mut WebSocket) {
    let bye = WsMessage::Close(Some(axum::extract::ws::CloseFrame {
        code: 1012,
        reason: "the engine is restarting".into(),
    }));
    let _ = tokio::time::timeout(SEND_WITHIN, ws.send(bye)).await;
}

/// Who the first frame says the visitor is: (visitor id to keep, customer
/// id, newest line shown), or the reason to close.
fn identify(config: &IntegrationConfig, first: &str) -> Result<(String, String, u64), String> {
    let Ok(ClientFrame::Hello {
        visitor,
        user_id,
        user_hash,
        last_seq,
    }) = serde_json::from_str::<ClientFrame>(first)
    else {
        return Err("the first frame must be a hello".into());
    };
    if let (Some(user), Some(hash)) = (&user_id, &user_hash) {
        let customer = identity::user_customer(config.identity_secret.expose(), user, hash)
            .map_err(|e| e.to_string())?;
        return Ok((String::new(), customer, last_seq));
    }
    let visitor = visitor
        .filter(|v| identity::valid_visitor(v))
        .unwrap_or_else(identity::new_visitor);
    let customer = identity::visitor_customer(&config.id, &visitor).map_err(|e| e.to_string())?;
    Ok((visitor, customer, last_seq))
}

async fn session(
    ctx: Arc<EngineContext>,
    config: Arc<IntegrationConfig>,
    origin: String,
    mut ws: WebSocket,
    ip: std::net::IpAddr,
) {
    let mut stopping = ctx.stopping.subscribe();
    let first = tokio::select! {
        () = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
            restarting(&mut ws).await;
            return;
        }
        first = tokio::time::timeout(HELLO_WITHIN, ws.recv()) => match first {
            Ok(Some(Ok(WsMessage::Text(t)))) => t.to_string(),
            _ => return,
        },
    };
    let (visitor, customer, shown) = match identify(&config, &first) {
        Ok(who) => who,
        Err(reason) => {
            let _ = send(&mut ws, &json!({"type": "error", "reason": reason})).await;
            return;
        }
    };
    let conversation = ConversationId::new(&config.id, &customer);
    let (socket_id, mut replies) = ctx.outbound.web.register(&conversation);
    let history = lines_after(&ctx, &conversation, shown, HISTORY).await;
    let mut sent = Shown::new(shown);
    for line in &history {
        sent.add(line["seq"].as_u64());
    }
    let welcome = json!({
        "type": "welcome",
        "visitor": visitor,
        "conversation": conversation.as_str(),
        "title": config.widget_title,
        "color": config.widget_color,
        "greeting": config.widget_greeting,
        "position": config.widget_position,
        "history": history,
    });
    if send(&mut ws, &welcome).await {
        let of = SocketOf {
            config: &config,
            origin: &origin,
            signed_in: visitor.is_empty(),
            conversation: &conversation,
            customer: &customer,
            ip,
        };
        converse(&ctx, &of, &mut ws, &mut replies, sent).await;
    }
    ctx.outbound.web.unregister(&conversation, socket_id);
}

/// Whose a socket is.
struct SocketOf<'a> {
    config: &'a IntegrationConfig,
    /// The page's origin the socket was opened from.
    origin: &'a str,
    /// The visitor is a user the site signed in (`user_hash`).
    signed_in: bool,
    conversation: &'a ConversationId,
    customer: &'a str,
    ip: std::net::IpAddr,
}

async fn converse(
    ctx: &Arc<EngineContext>,
    of: &SocketOf<'_>,
    ws: &mut WebSocket,
    replies: &mut tokio::sync::mpsc::Receiver<Value>,
    mut shown: Shown,
) {
    let mut catch_up = tokio::time::interval(CATCH_UP_EVERY);
    let mut window = (tokio::time::Instant::now(), 0u32);
    let idle = tokio::time::sleep(IDLE);
    tokio::pin!(idle);
    let mut reads = ReadMarks::default();
    let mut stopping = ctx.stopping.subscribe();
    loop {
        tokio::select! {
            () = &mut idle => return,
            // The engine stops: the widget is told to reconnect (to this
            // instance once it runs again, or another), and nothing more is
            // taken from this socket.
            () = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
                restarting(ws).await;
                return;
            }
            incoming = ws.recv() => {
                let text = match incoming {
                    Some(Ok(WsMessage::Text(t))) => t.to_string(),
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                    // Closed, broken or binary.
                    _ => return,
                };
                idle.as_mut().reset(tokio::time::Instant::now() + IDLE);
                if window.0.elapsed() > Duration::from_secs(10) {
                    window = (tokio::time::Instant::now(), 0);
                }
                if changed_under(ctx, of, ws).await {
                    return;
                }
                let answer = match serde_json::from_str::<ClientFrame>(&text) {
                    // A message sent again because the engine was busy
                    // spends none of the visitor's or the address's quota.
                    Ok(ClientFrame::Message { client_id, .. }) if behind(ctx) => busy(&client_id),
                    Ok(ClientFrame::Message { client_id, text }) => {
                        window.1 += 1;
                        let limits = per_ip(ctx.config.server.web_per_ip_per_minute);
                        if window.1 > BURST || limits.messages.check_key(&of.ip).is_err() {
                            json!({"type": "error", "client_id": client_id, "retry": true,
                                   "reason": "too many messages; wait a few seconds"})
                        } else {
                            take(ctx, of, &client_id, &text).await
                        }
                    }
                    Ok(ClientFrame::Read { seq }) => {
                        reads.said(seq);
                        reads.pass(ctx, of).await;
                        continue;
                    }
                    Ok(ClientFrame::Ping) => json!({"type": "pong"}),
                    Ok(ClientFrame::Hello { .. }) => json!({"type": "error", "reason": "already said hello"}),
                    Err(e) => json!({"type": "error", "reason": format!("not a frame this socket takes: {e}")}),
                };
                if !send(ws, &answer).await {
                    return;
                }
            }
            Some(frame) = replies.recv() => {
                // A reply shown already (from the store) is not shown twice.
                if !shown.add(frame["seq"].as_u64()) {
                    continue;
                }
                if !send(ws, &frame).await {
                    return;
                }
            }
            _ = catch_up.tick() => {
                if changed_under(ctx, of, ws).await {
                    return;
                }
                reads.pass(ctx, of).await;
                for line in lines_after(ctx, of.conversation, shown.floor, CATCH_UP_LINES).await {
                    if shown.add(line["seq"].as_u64()) && !send(ws, &line).await {
                        return;
                    }
                }
            }
        }
    }
}

/// Puts a visitor's message on the bus: its acknowledgement, or why not.
async fn take(ctx: &EngineContext, of: &SocketOf<'_>, client_id: &str, text: &str) -> Value {
    if !frames::valid_client_id(client_id) {
        return json!({"type": "error", "reason": "client_id must be 1-64 letters, digits, - or _"});
    }
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_TEXT {
        return json!({"type": "error", "client_id": client_id,
                      "reason": format!("a message is 1 to {MAX_TEXT} characters")});
    }
    // (Not taken while the engine is behind: `converse` answers busy.)
    // As a webhook of this tenant would get 503: not taken while its
    // conversations cannot be handled.
    if !ctx.health.serves(&of.config.id) {
        telemetry::webhook_request("web", WebhookOutcome::Unavailable);
        return json!({"type": "error", "client_id": client_id, "retry": true, "reason": "temporarily unavailable; sending again"});
    }
    let kind = EventKind::Message {
        mid: frames::mid_of(client_id),
        text: Some(text.to_string()),
        attachments: Vec::new(),
        quick_reply: None,
    };
    let event = event(of, kind);
    match ctx.bus.publish(std::slice::from_ref(&event)).await {
        Ok(()) => {
            telemetry::event_accepted(event.channel, &event.kind);
            json!({"type": "ack", "client_id": client_id})
        }
        Err(e) => {
            tracing::warn!(error = %e, "Web chat message not taken: bus unavailable");
            json!({"type": "error", "client_id": client_id, "retry": true, "reason": "temporarily unavailable; sending again"})
        }
    }
}

/// The engine is behind: the message is to be sent again later.
fn busy(client_id: &str) -> Value {
    telemetry::webhook_request("web", WebhookOutcome::Overloaded);
    json!({"type": "error", "client_id": client_id, "retry": true, "reason": "busy; sending again"})
}

/// Why a socket is closed when its chat changed under it.
const GONE: &str = "this chat has changed; reconnecting";

/// Ends the socket with a reason when its chat no longer takes it (see
/// [`still_allowed`]): whether it did.
async fn changed_under(ctx: &EngineContext, of: &SocketOf<'_>, ws: &mut WebSocket) -> bool {
    if still_allowed(ctx, of) {
        return false;
    }
    let _ = send(ws, &json!({"type": "error", "reason": GONE})).await;
    true
}

/// Whether the socket's chat still takes it as it was opened: the
/// integration is there, still takes its page's origin, and, for a
/// signed-in user, signs users with the same key (a deleted integration
/// stops at once; a removed origin or a rotated identity key ends its
/// sockets: the first are refused from then on, the others must come back
/// with a hash of the new key).
fn still_allowed(ctx: &EngineContext, of: &SocketOf<'_>) -> bool {
    ctx.integrations.get(&of.config.id).is_some_and(|now| {
        now.channel == ChannelKind::Web
            && now.allowed_origins.iter().any(|o| o == of.origin)
            && (!of.signed_in || now.identity_secret.expose() == of.config.identity_secret.expose())
    })
}

fn event(of: &SocketOf<'_>, kind: EventKind) -> InboundEvent {
    let now = now_ms();
    InboundEvent {
        conversation: of.conversation.clone(),
        integration: of.config.id.clone(),
        channel: ChannelKind::Web,
        customer: of.customer.to_string(),
        timestamp_ms: now,
        received_at_ms: now,
        customer_name: None,
        kind,
    }
}

/// Whether the bus is further behind than the webhooks' bound.
fn behind(ctx: &EngineContext) -> bool {
    let server = &ctx.config.server;
    super::over_bound(
        ctx.bus.backlog(),
        server.max_backlog_events,
        server.max_backlog_age,
    )
}
