//! What the simulator answers besides accepting calls: the replies
//! under a comment (`GET /{comment_id}/replies`, Instagram, `text`; `GET
//! /{comment_id}/comments`, Pages, `message`), as the engine reads them to
//! confirm a public reply whose answer was lost, and a 200 cut mid-body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::validate::CallKind;
use super::SimState;
use crate::sync::lock;

/// The accepted replies under comment `[comment_id, edge]`, newest first,
/// for a GET of that edge; `None` for any other path.
pub(super) fn comment_replies(state: &SimState, segments: &[&str]) -> Option<Response> {
    let [comment, edge] = segments else {
        return None;
    };
    let (kind, field) = match *edge {
        "replies" => (CallKind::CommentReply, "text"),
        "comments" => (CallKind::PageCommentReply, "message"),
        _ => return None,
    };
    let data: Vec<Value> = lock(&state.calls)
        .iter()
        .rev()
        .filter(|c| c.status == 200 && c.kind == Some(kind))
        .filter(|c| c.account.as_deref() == Some(*comment))
        .map(|c| json!({"id": c.response["id"], field: c.text}))
        .collect();
    Some((StatusCode::OK, Json(json!({ "data": data }))).into_response())
}

/// A 200 whose status line and headers arrive (announcing the whole JSON
/// body) and whose connection then drops after half the body.
pub(super) fn cut_answer(status: StatusCode, response: &Value) -> Response {
    let bytes = response.to_string().into_bytes();
    let half = bytes::Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(half),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection cut mid-body",
        )),
    ];
    // The cut comes a moment after the first half (which then reaches
    // the caller with the status line), as on a real network.
    let chunks = futures_util::StreamExt::then(futures_util::stream::iter(chunks), |c| async {
        if c.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        c
    });
    let body = axum::body::Body::from_stream(chunks);
    let mut out = Response::new(body);
    *out.status_mut() = status;
    out.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    out.headers_mut().insert(
        axum::http::header::CONTENT_LENGTH,
        axum::http::HeaderValue::from(bytes.len()),
    );
    out
}
