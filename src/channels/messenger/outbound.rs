//! Send API calls: `POST {graph_base_url}/{account_id}/messages` with the
//! documented bodies for a text reply, a file by link and `typing_on`.

use serde_json::{json, Value};

use crate::event::SendTag;

/// `messaging_type` (and `tag`) of a message sent as `tag` allows.
fn messaging(tag: SendTag, body: &mut Value) {
    match tag {
        SendTag::HumanAgent => {
            body["messaging_type"] = json!("MESSAGE_TAG");
            body["tag"] = json!("HUMAN_AGENT");
        }
        SendTag::Response | SendTag::Template => body["messaging_type"] = json!("RESPONSE"),
    }
}

/// A text message: a standard response inside the 24-hour window, or a
/// person's message with the `HUMAN_AGENT` tag after it.
pub fn text_body(psid: &str, text: &str, tag: SendTag) -> Value {
    let mut body = json!({
        "recipient": { "id": psid },
        "message": { "text": text },
    });
    messaging(tag, &mut body);
    body
}

/// A file by link (`kind`: image, video, audio, file).
pub fn media_body(psid: &str, kind: &str, url: &str, tag: SendTag) -> Value {
    let mut body = json!({
        "recipient": { "id": psid },
        "message": { "attachment": { "type": kind, "payload": { "url": url, "is_reusable": true } } },
    });
    messaging(tag, &mut body);
    body
}

/// Carries the engine's part id in `message.metadata`: the echo of the
/// message returns it, which confirms the send and marks it as the
/// engine's own.
pub fn with_part_id(mut body: Value, part_id: &str) -> Value {
    if !part_id.is_empty() {
        body["message"]["metadata"] = json!(part_id);
    }
    body
}

pub fn typing_body(psid: &str) -> Value {
    json!({ "recipient": { "id": psid }, "sender_action": "typing_on" })
}

/// Where the Send API's answer carries the message's `mid`.
pub const ID_POINTER: &str = "/message_id";

/// A direct message on the Send API (Messenger, and Instagram which shares
/// its shapes): text or a file by link, with the part id.
pub fn message_body(
    to: &str,
    part: &crate::channels::platform::OutboundPart<'_>,
    tag: SendTag,
) -> Value {
    let body = match part.media {
        Some((kind, url)) => media_body(to, kind, url, tag),
        None => {
            let mut body = text_body(to, part.text, tag);
            if !part.choices.is_empty() {
                body["message"]["quick_replies"] =
                    crate::channels::choices::quick_replies(part.choices);
            }
            body
        }
    };
    with_part_id(body, part.part_id)
}
