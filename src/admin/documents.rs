//! `/api/v1/assistants/{id}/documents`: an assistant's knowledge base.
//! A document is posted as JSON `{"title", "text"}`, or as a file: the
//! body with `Content-Type: text/plain`, `text/markdown` or `text/html`
//! and the title in `?title=`. Effective at once here, within seconds on
//! every other instance.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::AdminError;
use crate::conversation::EngineContext;
use crate::knowledge::{split, KnowledgeError};

impl From<KnowledgeError> for AdminError {
    fn from(e: KnowledgeError) -> Self {
        match e {
            KnowledgeError::UnknownAssistant(_) => Self::NotFound(e.to_string()),
            KnowledgeError::Invalid(m) => Self::Unprocessable(m),
            KnowledgeError::Shared { .. } => Self::Conflict(e.to_string()),
            KnowledgeError::Store(s) => Self::Store(s),
            KnowledgeError::Index(m) => Self::Unprocessable(m),
            KnowledgeError::Embeddings(m) => {
                Self::Upstream(format!("the embeddings server failed: {m}"))
            }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct TitleQuery {
    title: Option<String>,
}

pub(super) async fn add(
    State(ctx): State<Arc<EngineContext>>,
    Path(assistant): Path<String>,
    Query(query): Query<TitleQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let (title, text) = match kind.as_str() {
        "application/json" => {
            let doc = super::bodies::document(&body)?;
            (doc.title, doc.text)
        }
        "text/plain" | "text/markdown" | "text/html" => {
            let text = std::str::from_utf8(&body)
                .map_err(|_| AdminError::BadRequest("the file is not UTF-8 text".into()))?;
            let title = query.title.ok_or_else(|| {
                AdminError::BadRequest("a file needs its title in ?title=".into())
            })?;
            let text = if kind == "text/html" {
                split::html_to_text(text)
            } else {
                text.to_string()
            };
            (title, text)
        }
        other => {
            return Err(AdminError::Unsupported(format!(
                "documents are JSON, text/plain, text/markdown or text/html, not {other:?}"
            )))
        }
    };
    let doc = ctx.knowledge.add(&assistant, &title, &text).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": doc.id, "title": doc.title})),
    ))
}

pub(super) async fn list(
    State(ctx): State<Arc<EngineContext>>,
    Path(assistant): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let documents = ctx.knowledge.list(&assistant).await?;
    Ok(Json(json!({
        "documents": documents,
        "passages": ctx.knowledge.passages(&assistant),
    })))
}

pub(super) async fn delete(
    State(ctx): State<Arc<EngineContext>>,
    Path((assistant, doc)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    if ctx.knowledge.delete(&assistant, &doc).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AdminError::NotFound(format!(
            "assistant {assistant:?} has no document {doc:?}"
        )))
    }
}
