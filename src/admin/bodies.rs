//! The admin API's JSON request bodies, read and checked before a handler
//! does anything with them. Public so the fuzz targets (`fuzz/`) read them
//! exactly as the routes do.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::AdminError;
use crate::config::{ChannelKind, IntegrationConfig};
use crate::event::OutboundAttachment;

/// `auto_resume_minutes` bounds: 5 minutes to 7 days.
const RESUME_MINUTES: std::ops::RangeInclusive<u32> = 5..=10_080;

/// The JSON body, or `None` when there is none.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Option<T>, AdminError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| AdminError::BadRequest(format!("the body is not valid JSON here: {e}")))
}

/// `POST /conversations/{id}/takeover`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Takeover {
    pub auto_resume_minutes: Option<u32>,
    /// Who takes over (shown on the conversation).
    pub by: Option<String>,
}

pub fn takeover(body: &[u8]) -> Result<Takeover, AdminError> {
    let body: Takeover = parse_body(body)?.unwrap_or_default();
    if let Some(m) = body.auto_resume_minutes {
        if !RESUME_MINUTES.contains(&m) {
            return Err(AdminError::BadRequest(
                "auto_resume_minutes must be between 5 and 10080 (7 days)".into(),
            ));
        }
    }
    Ok(body)
}

/// `POST /conversations/{id}/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub attachment: Option<OutboundAttachment>,
}

pub fn message(body: &[u8]) -> Result<Message, AdminError> {
    let body: Message = parse_body(body)?
        .ok_or_else(|| AdminError::BadRequest("the body must be {\"text\": \"...\"}".into()))?;
    if body.text.trim().is_empty() && body.attachment.is_none() {
        return Err(AdminError::BadRequest(
            "text must not be empty (or send an attachment)".into(),
        ));
    }
    if let Some(a) = &body.attachment {
        let url = a.url.trim();
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2048 {
            return Err(AdminError::BadRequest(
                "attachment.url must be an http(s) URL the platform can fetch".into(),
            ));
        }
    }
    Ok(body)
}

fn object(body: Option<Value>) -> Result<Map<String, Value>, AdminError> {
    match body {
        Some(Value::Object(fields)) => Ok(fields),
        _ => Err(AdminError::BadRequest(
            "the body must be a JSON object of integration settings".into(),
        )),
    }
}

/// `POST /integrations`: every setting of `[[integrations]]`.
pub fn integration(body: &[u8]) -> Result<IntegrationConfig, AdminError> {
    integration_of(object(parse_body(body)?)?)
}

/// The settings of an integration, as a whole (a patch applied to the
/// stored ones is read back here).
pub fn integration_of(fields: Map<String, Value>) -> Result<IntegrationConfig, AdminError> {
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| AdminError::Unprocessable(format!("integration: {e}")))
}

/// `PATCH /integrations/{id}`: the settings that change.
pub fn integration_patch(body: &[u8]) -> Result<Map<String, Value>, AdminError> {
    object(parse_body(body)?)
}

/// `POST /tenants/{tenant}/connect`.
#[derive(Deserialize)]
pub struct Link {
    pub assistant: String,
    #[serde(default = "default_channels")]
    pub channels: Vec<ChannelKind>,
}

fn default_channels() -> Vec<ChannelKind> {
    vec![ChannelKind::Messenger, ChannelKind::Instagram]
}

pub fn link(body: &[u8]) -> Result<Link, AdminError> {
    parse_body(body)?
        .ok_or_else(|| AdminError::BadRequest("the body must be {\"assistant\": \"...\"}".into()))
}

/// `POST /assistants/{id}/documents` as JSON.
#[derive(Deserialize)]
pub struct Document {
    pub title: String,
    pub text: String,
}

pub fn document(body: &[u8]) -> Result<Document, AdminError> {
    serde_json::from_slice(body).map_err(|e| {
        AdminError::BadRequest(format!(
            "the body must be {{\"title\": \"...\", \"text\": \"...\"}}: {e}"
        ))
    })
}
