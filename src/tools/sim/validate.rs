//! Checks a Graph API call against the shapes Meta documents and says what
//! it is, or answers the way Meta refuses a malformed call: HTTP 400 with
//! `{"error": {"message", "type": "OAuthException", "code": 100, ...}}`.
//!
//! Shapes: Messenger / Instagram Send API (`/{id}/messages`: a message or a
//! sender action), WhatsApp Cloud API (`/{phone_number_id}/messages` with
//! `messaging_product = "whatsapp"`: a message, or a read status with an
//! optional typing indicator), comment replies (`/{comment_id}/replies` for
//! Instagram, `/{comment_id}/comments` for Page comments) and the Messenger
//! Profile API (`/{page_id}/messenger_profile`, also `/me/...`).

mod interactive;

use interactive::{interactive, quick_replies};
use serde::Serialize;
use serde_json::Value;

/// Messenger and Instagram refuse text longer than this (characters).
pub const MESSENGER_TEXT_LIMIT: usize = 2000;
/// WhatsApp text bodies are limited to this many characters.
pub const WHATSAPP_TEXT_LIMIT: usize = 4096;

/// What an accepted call was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    /// Send API message (text or attachment) to a PSID / IGSID.
    Message,
    /// Send API sender action (`typing_on`, `typing_off`, `mark_seen`).
    SenderAction,
    /// WhatsApp Cloud API message to a `wa_id`.
    WhatsappMessage,
    /// WhatsApp read status, with or without a typing indicator.
    WhatsappRead,
    /// Public reply to an Instagram comment.
    CommentReply,
    /// Public reply to a Facebook Page comment.
    PageCommentReply,
    /// Messenger Profile API settings (greeting, Get Started, ...).
    MessengerProfile,
}

impl CallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::SenderAction => "sender_action",
            Self::WhatsappMessage => "whatsapp_message",
            Self::WhatsappRead => "whatsapp_read",
            Self::CommentReply => "comment_reply",
            Self::PageCommentReply => "page_comment_reply",
            Self::MessengerProfile => "messenger_profile",
        }
    }

    /// Whether the call puts a message in front of the customer (the calls
    /// a load run counts as replies).
    pub fn is_reply(self) -> bool {
        matches!(
            self,
            Self::Message | Self::WhatsappMessage | Self::CommentReply | Self::PageCommentReply
        )
    }
}

/// A call that passed validation.
#[derive(Debug, Clone)]
pub struct ValidCall {
    pub kind: CallKind,
    /// The object the call was made on: Page / IG account / phone number id,
    /// or the comment id for comment replies.
    pub account: String,
    /// PSID, IGSID or `wa_id` for messages and actions.
    pub recipient: Option<String>,
    /// The text shown to the customer, when there is one.
    pub text: Option<String>,
    /// `messaging_type` and `tag` of a Send API message.
    pub messaging_type: Option<String>,
    pub tag: Option<String>,
    /// The sender's own id for the message: Send API `message.metadata`
    /// (returned in its echo), WhatsApp `biz_opaque_callback_data`
    /// (returned in its statuses).
    pub part_id: Option<String>,
}

/// A refusal in Meta's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub code: i64,
    pub subcode: Option<i64>,
    pub message: String,
    pub transient: bool,
}

impl Refusal {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            code: 100,
            subcode: None,
            message: format!("(#100) {}", message.into()),
            transient: false,
        }
    }

    /// The JSON body Meta answers with.
    pub fn body(&self, trace: u64) -> Value {
        let mut error = serde_json::json!({
            "message": self.message,
            "type": "OAuthException",
            "code": self.code,
            "fbtrace_id": format!("Sim{trace:012x}"),
        });
        if let Some(sub) = self.subcode {
            error["error_subcode"] = sub.into();
        }
        if self.transient {
            error["is_transient"] = true.into();
        }
        serde_json::json!({ "error": error })
    }
}

/// Validates a POST to `segments` (the path without the version prefix).
pub fn validate(segments: &[&str], body: &Value) -> Result<ValidCall, Refusal> {
    let [object, edge] = segments else {
        return Err(Refusal::invalid(format!(
            "Unsupported post request: /{}",
            segments.join("/")
        )));
    };
    if object.is_empty() {
        return Err(Refusal::invalid("The object id is missing from the path"));
    }
    let account = (*object).to_string();
    match *edge {
        "messages" if body.get("messaging_product").is_some() => whatsapp(account, body),
        "messages" => send_api(account, body),
        "replies" => comment(account, body, CallKind::CommentReply),
        "comments" => comment(account, body, CallKind::PageCommentReply),
        "messenger_profile" => profile(account, body),
        other => Err(Refusal::invalid(format!(
            "Unsupported post request: unknown edge '{other}'"
        ))),
    }
}

fn str_at<'a>(body: &'a Value, pointer: &str) -> Option<&'a str> {
    body.pointer(pointer).and_then(Value::as_str)
}

fn required<'a>(body: &'a Value, pointer: &str, name: &str) -> Result<&'a str, Refusal> {
    match str_at(body, pointer) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(Refusal::invalid(format!(
            "The parameter {name} is required"
        ))),
    }
}

/// An optional string parameter of at most `max` characters.
fn optional_id(
    body: &Value,
    pointer: &str,
    name: &str,
    max: usize,
) -> Result<Option<String>, Refusal> {
    match body.pointer(pointer) {
        None => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(_) => Err(Refusal::invalid(format!(
            "Param {name} must be a string of at most {max} characters"
        ))),
    }
}

fn send_api(account: String, body: &Value) -> Result<ValidCall, Refusal> {
    let recipient = required(body, "/recipient/id", "recipient")?.to_string();
    if let Some(action) = body.get("sender_action") {
        let action = action.as_str().unwrap_or_default();
        if !matches!(action, "typing_on" | "typing_off" | "mark_seen") {
            return Err(Refusal::invalid(format!(
                "Param sender_action must be one of {{typing_on, typing_off, mark_seen}}, got '{action}'"
            )));
        }
        if body.get("message").is_some() {
            return Err(Refusal::invalid(
                "sender_action cannot be sent with message in the same request",
            ));
        }
        return Ok(ValidCall {
            kind: CallKind::SenderAction,
            account,
            recipient: Some(recipient),
            text: Some(action.to_string()),
            messaging_type: None,
            tag: None,
            part_id: None,
        });
    }
    let Some(message) = body.get("message") else {
        return Err(Refusal::invalid("The parameter message is required"));
    };
    let text = message.get("text").and_then(Value::as_str);
    match (text, message.get("attachment")) {
        (Some(t), None) => {
            if t.is_empty() {
                return Err(Refusal::invalid("Param message[text] must be non-empty"));
            }
            if t.chars().count() > MESSENGER_TEXT_LIMIT {
                return Err(Refusal::invalid(format!(
                    "Param message[text] must be a UTF-8 encoded string of at most {MESSENGER_TEXT_LIMIT} characters"
                )));
            }
        }
        (None, Some(att)) => {
            let kind = str_at(att, "/type").unwrap_or_default();
            if !matches!(kind, "image" | "video" | "audio" | "file" | "template") {
                return Err(Refusal::invalid(format!(
                    "Param message[attachment][type] must be one of image, video, audio, file, template; got '{kind}'"
                )));
            }
        }
        (Some(_), Some(_)) => {
            return Err(Refusal::invalid(
                "message must have either text or attachment, not both",
            ))
        }
        (None, None) => {
            return Err(Refusal::invalid(
                "The parameter message must contain text or attachment",
            ))
        }
    }
    if let Some(replies) = message.get("quick_replies") {
        quick_replies(replies)?;
    }
    let messaging_type = str_at(body, "/messaging_type").unwrap_or("RESPONSE");
    if !matches!(messaging_type, "RESPONSE" | "UPDATE" | "MESSAGE_TAG") {
        return Err(Refusal::invalid(format!(
            "Param messaging_type must be one of {{RESPONSE, UPDATE, MESSAGE_TAG}}, got '{messaging_type}'"
        )));
    }
    let tag = str_at(body, "/tag").map(str::to_string);
    if messaging_type == "MESSAGE_TAG" && tag.is_none() {
        return Err(Refusal::invalid(
            "The parameter tag is required when messaging_type is MESSAGE_TAG",
        ));
    }
    Ok(ValidCall {
        kind: CallKind::Message,
        account,
        recipient: Some(recipient),
        text: text.map(str::to_string),
        messaging_type: Some(messaging_type.to_string()),
        tag,
        part_id: optional_id(message, "/metadata", "message[metadata]", 1000)?,
    })
}

fn whatsapp(account: String, body: &Value) -> Result<ValidCall, Refusal> {
    if str_at(body, "/messaging_product") != Some("whatsapp") {
        return Err(Refusal::invalid(
            "Param messaging_product is required and must be 'whatsapp'",
        ));
    }
    if let Some(status) = str_at(body, "/status") {
        if status != "read" {
            return Err(Refusal::invalid("Param status must be 'read'"));
        }
        required(body, "/message_id", "message_id")?;
        if let Some(kind) = body.pointer("/typing_indicator/type") {
            if kind.as_str() != Some("text") {
                return Err(Refusal::invalid(
                    "Param typing_indicator[type] must be 'text'",
                ));
            }
        }
        return Ok(ValidCall {
            kind: CallKind::WhatsappRead,
            account,
            recipient: None,
            text: None,
            messaging_type: None,
            tag: None,
            part_id: None,
        });
    }
    let to = required(body, "/to", "to")?.to_string();
    let kind = str_at(body, "/type").unwrap_or("text");
    let text = match kind {
        "text" => {
            let t = required(body, "/text/body", "text[body]")?;
            if t.chars().count() > WHATSAPP_TEXT_LIMIT {
                return Err(Refusal::invalid(format!(
                    "Param text[body] must be at most {WHATSAPP_TEXT_LIMIT} characters"
                )));
            }
            Some(t.to_string())
        }
        "template" => Some(required(body, "/template/name", "template[name]")?.to_string()),
        "interactive" => Some(interactive(body)?),
        "image" | "audio" | "video" | "document" | "sticker" => {
            let link = body.pointer(&format!("/{kind}/link"));
            let id = body.pointer(&format!("/{kind}/id"));
            if link.is_none() && id.is_none() {
                return Err(Refusal::invalid(format!(
                    "Param {kind} must have a link or an id"
                )));
            }
            None
        }
        other => {
            return Err(Refusal::invalid(format!(
                "Param type '{other}' is not a supported message type"
            )))
        }
    };
    Ok(ValidCall {
        kind: CallKind::WhatsappMessage,
        account,
        recipient: Some(to),
        text,
        messaging_type: None,
        tag: None,
        part_id: optional_id(
            body,
            "/biz_opaque_callback_data",
            "biz_opaque_callback_data",
            512,
        )?,
    })
}

fn comment(account: String, body: &Value, kind: CallKind) -> Result<ValidCall, Refusal> {
    let text = required(body, "/message", "message")?;
    if body.get("attachment_url").is_some() || body.get("attachment").is_some() {
        return Err(Refusal::invalid("Comment replies are text only"));
    }
    Ok(ValidCall {
        kind,
        account,
        recipient: None,
        text: Some(text.to_string()),
        messaging_type: None,
        tag: None,
        part_id: None,
    })
}

fn profile(account: String, body: &Value) -> Result<ValidCall, Refusal> {
    const FIELDS: [&str; 5] = [
        "greeting",
        "get_started",
        "persistent_menu",
        "ice_breakers",
        "whitelisted_domains",
    ];
    let Some(map) = body.as_object() else {
        return Err(Refusal::invalid("The request body must be a JSON object"));
    };
    if map.is_empty() {
        return Err(Refusal::invalid("At least one profile field is required"));
    }
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Refusal::invalid(format!(
            "Param {unknown} is not a Messenger Profile field"
        )));
    }
    if let Some(gs) = map.get("get_started") {
        if str_at(gs, "/payload").is_none_or(str::is_empty) {
            return Err(Refusal::invalid("Param get_started[payload] is required"));
        }
    }
    if let Some(greeting) = map.get("greeting") {
        let ok = greeting.as_array().is_some_and(|items| {
            !items.is_empty()
                && items
                    .iter()
                    .all(|g| str_at(g, "/locale").is_some() && str_at(g, "/text").is_some())
        });
        if !ok {
            return Err(Refusal::invalid(
                "Param greeting must be a list of {locale, text}",
            ));
        }
    }
    Ok(ValidCall {
        kind: CallKind::MessengerProfile,
        account,
        recipient: None,
        text: None,
        messaging_type: None,
        tag: None,
        part_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn send_api_text_and_typing_are_accepted() {
        let call = validate(
            &["PAGE", "messages"],
            &json!({"recipient":{"id":"P1"},"messaging_type":"RESPONSE","message":{"text":"hi"}}),
        )
        .unwrap();
        assert_eq!(call.kind, CallKind::Message);
        assert_eq!(call.recipient.as_deref(), Some("P1"));
        let typing = validate(
            &["PAGE", "messages"],
            &json!({"recipient":{"id":"P1"},"sender_action":"typing_on"}),
        )
        .unwrap();
        assert_eq!(typing.kind, CallKind::SenderAction);
    }

    #[test]
    fn malformed_send_api_calls_get_code_100() {
        let cases = [
            json!({"message":{"text":"hi"}}),
            json!({"recipient":{"id":"P1"}}),
            json!({"recipient":{"id":"P1"},"message":{"text":""}}),
            json!({"recipient":{"id":"P1"},"message":{"text":"x".repeat(2001)}}),
            json!({"recipient":{"id":"P1"},"messaging_type":"MESSAGE_TAG","message":{"text":"hi"}}),
            json!({"recipient":{"id":"P1"},"sender_action":"dance"}),
        ];
        for body in cases {
            let refusal = validate(&["PAGE", "messages"], &body).unwrap_err();
            assert_eq!((refusal.status, refusal.code), (400, 100), "{body}");
            assert_eq!(refusal.body(1)["error"]["type"], "OAuthException");
        }
    }

    #[test]
    fn whatsapp_shapes() {
        let text = json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"15550001","type":"text","text":{"body":"hello"}});
        let call = validate(&["PNID", "messages"], &text).unwrap();
        assert_eq!(call.kind, CallKind::WhatsappMessage);
        let typing = json!({"messaging_product":"whatsapp","status":"read","message_id":"wamid.X","typing_indicator":{"type":"text"}});
        assert_eq!(
            validate(&["PNID", "messages"], &typing).unwrap().kind,
            CallKind::WhatsappRead
        );
        let long = json!({"messaging_product":"whatsapp","to":"1","type":"text","text":{"body":"x".repeat(4097)}});
        assert!(validate(&["PNID", "messages"], &long).is_err());
        let no_to = json!({"messaging_product":"whatsapp","type":"text","text":{"body":"x"}});
        assert!(validate(&["PNID", "messages"], &no_to).is_err());
    }

    #[test]
    fn comments_are_text_only_and_profile_fields_are_checked() {
        assert_eq!(
            validate(&["C1", "replies"], &json!({"message":"thanks"}))
                .unwrap()
                .kind,
            CallKind::CommentReply
        );
        assert!(validate(&["C1", "comments"], &json!({"attachment_url":"http://x"})).is_err());
        let profile = json!({"get_started":{"payload":"GET_STARTED"},"greeting":[{"locale":"default","text":"Hi"}]});
        assert_eq!(
            validate(&["PAGE", "messenger_profile"], &profile)
                .unwrap()
                .kind,
            CallKind::MessengerProfile
        );
        assert!(validate(&["PAGE", "messenger_profile"], &json!({"colour":"red"})).is_err());
        assert!(validate(&["PAGE", "unknown"], &json!({})).is_err());
    }
}
