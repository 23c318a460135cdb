//! Send API calls: `POST {graph_base_url}/{account_id}/messages` with the
//! documented bodies for a text reply and for `typing_on`.

use serde_json::{json, Value};

use crate::channels::graph::GraphClient;
use crate::channels::meta_error::SendError;
use crate::channels::Sent;
use crate::config::IntegrationConfig;
use crate::conversation::window::SendTag;

/// A text message: a standard response inside the 24-hour window, or a
/// person's message with the `HUMAN_AGENT` tag after it.
pub fn text_body(psid: &str, text: &str, tag: SendTag) -> Value {
    match tag {
        SendTag::Response => json!({
            "recipient": { "id": psid },
            "messaging_type": "RESPONSE",
            "message": { "text": text },
        }),
        SendTag::HumanAgent => json!({
            "recipient": { "id": psid },
            "messaging_type": "MESSAGE_TAG",
            "tag": "HUMAN_AGENT",
            "message": { "text": text },
        }),
    }
}

pub fn typing_body(psid: &str) -> Value {
    json!({ "recipient": { "id": psid }, "sender_action": "typing_on" })
}

fn path(integration: &IntegrationConfig) -> String {
    format!("{}/messages", integration.account_id)
}

pub async fn send_text(
    graph: &GraphClient,
    integration: &IntegrationConfig,
    psid: &str,
    text: &str,
    tag: SendTag,
) -> Result<Sent, SendError> {
    let answer = graph
        .post(
            integration.channel,
            &path(integration),
            &integration.access_token,
            &text_body(psid, text, tag),
        )
        .await?;
    let message_id = answer
        .get("message_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(Sent { message_id })
}

pub async fn typing_on(
    graph: &GraphClient,
    integration: &IntegrationConfig,
    psid: &str,
) -> Result<(), SendError> {
    graph
        .post_best_effort(
            integration.channel,
            &path(integration),
            &integration.access_token,
            &typing_body(psid),
        )
        .await
        .map(|_| ())
}
