//! WhatsApp Cloud API calls: `POST {graph_base_url}/{phone_number_id}/messages`
//! with the documented bodies for text, media by link, a template (the only
//! message allowed after the 24-hour window), and the typing indicator
//! (which also marks the customer's message read).

use serde_json::{json, Value};

use crate::channels::platform::OutboundPart;
use crate::event::SendTag;

pub fn text_body(wa_id: &str, text: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": wa_id,
        "type": "text",
        "text": { "body": text },
    })
}

/// Text with quick replies: reply buttons or a list.
pub fn interactive_body(wa_id: &str, text: &str, choices: &[String]) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": wa_id,
        "type": "interactive",
        "interactive": crate::channels::choices::whatsapp_interactive(text, choices),
    })
}

/// Media by link: `kind` is `image`, `video`, `audio` or `document`.
pub fn media_body(wa_id: &str, kind: &str, url: &str) -> Value {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": wa_id,
        "type": kind,
    });
    body[kind] = json!({ "link": url });
    body
}

/// A template whose body has one variable, filled with `text`.
pub fn template_body(wa_id: &str, name: &str, language: &str, text: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": wa_id,
        "type": "template",
        "template": {
            "name": name,
            "language": { "code": language },
            "components": [
                { "type": "body", "parameters": [ { "type": "text", "text": text } ] }
            ],
        },
    })
}

/// Carries the engine's part id in `biz_opaque_callback_data`: the
/// message's status webhooks return it, which confirms the send.
pub fn with_part_id(mut body: Value, part_id: &str) -> Value {
    if !part_id.is_empty() {
        body["biz_opaque_callback_data"] = json!(part_id);
    }
    body
}

/// Shows "typing..." and marks the customer's message `wamid` read.
pub fn typing_body(wamid: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": wamid,
        "typing_indicator": { "type": "text" },
    })
}

/// Where the Send API's answer carries the message's `wamid`.
pub const ID_POINTER: &str = "/messages/0/id";

/// A message carrying `part` to `wa_id`: after the window (`Template`)
/// the configured template with the text as its variable, else a file by
/// link or the text; with the part id.
pub fn message_body(wa_id: &str, part: &OutboundPart<'_>, tag: SendTag) -> Value {
    let body = match (tag, part.media, part.template) {
        (SendTag::Template, _, Some((name, language))) => {
            template_body(wa_id, name, language, part.text)
        }
        (_, Some((kind, url)), _) => media_body(wa_id, kind, url),
        _ if !part.choices.is_empty() => interactive_body(wa_id, part.text, part.choices),
        _ => text_body(wa_id, part.text),
    };
    with_part_id(body, part.part_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_follow_the_cloud_api_reference() {
        assert_eq!(
            text_body("16505551234", "Hi"),
            json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234","type":"text","text":{"body":"Hi"}})
        );
        assert_eq!(
            media_body("1", "image", "https://x.test/a.jpg")["image"],
            json!({"link": "https://x.test/a.jpg"})
        );
        let t = template_body("1", "follow_up", "en_US", "Your order shipped");
        assert_eq!(t["template"]["language"]["code"], "en_US");
        assert_eq!(
            t["template"]["components"][0]["parameters"][0]["text"],
            "Your order shipped"
        );
        assert_eq!(
            typing_body("wamid.X"),
            json!({"messaging_product":"whatsapp","status":"read","message_id":"wamid.X","typing_indicator":{"type":"text"}})
        );
    }
}
