//! Quick replies and WhatsApp interactive messages, checked against
//! Meta's documented limits.

use serde_json::Value;

use super::{required, str_at, Refusal};

/// Messenger / Instagram `message.quick_replies`: at most 13; a text one
/// has a title of at most 20 characters and a payload of at most 1000.
pub(super) fn quick_replies(replies: &Value) -> Result<(), Refusal> {
    let Some(replies) = replies.as_array() else {
        return Err(Refusal::invalid(
            "Param message[quick_replies] must be an array",
        ));
    };
    if replies.is_empty() || replies.len() > 13 {
        return Err(Refusal::invalid(
            "Param message[quick_replies] must have between 1 and 13 items",
        ));
    }
    for r in replies {
        match str_at(r, "/content_type") {
            Some("text") => {
                let title = required(r, "/title", "message[quick_replies][title]")?;
                let payload = required(r, "/payload", "message[quick_replies][payload]")?;
                if title.is_empty() || title.chars().count() > 20 {
                    return Err(Refusal::invalid(
                        "Param message[quick_replies][title] must be 1 to 20 characters",
                    ));
                }
                if payload.chars().count() > 1000 {
                    return Err(Refusal::invalid(
                        "Param message[quick_replies][payload] must be at most 1000 characters",
                    ));
                }
            }
            Some("user_phone_number" | "user_email") => {}
            _ => {
                return Err(Refusal::invalid(
                    "Param message[quick_replies][content_type] must be one of {text, user_phone_number, user_email}",
                ))
            }
        }
    }
    Ok(())
}

/// WhatsApp interactive `button` (1-3 reply buttons, titles of at most 20
/// characters, ids of at most 256, body of at most 1024) or `list` (up to
/// 10 rows in all, titles of at most 24, ids of at most 200, descriptions
/// of at most 72, a button label of at most 20, body of at most 4096).
/// Returns the body text.
pub(super) fn interactive(body: &Value) -> Result<String, Refusal> {
    let text = required(body, "/interactive/body/text", "interactive[body][text]")?;
    let too_long = |what: &str, max: usize| {
        Refusal::invalid(format!("Param {what} must be at most {max} characters"))
    };
    let check = |v: &Value, pointer: &str, what: &str, max: usize| -> Result<(), Refusal> {
        let s = required(v, pointer, what)?;
        if s.is_empty() {
            return Err(Refusal::invalid(format!("Param {what} must be non-empty")));
        }
        if s.chars().count() > max {
            return Err(too_long(what, max));
        }
        Ok(())
    };
    match str_at(body, "/interactive/type") {
        Some("button") => {
            if text.chars().count() > 1024 {
                return Err(too_long("interactive[body][text]", 1024));
            }
            let buttons = body
                .pointer("/interactive/action/buttons")
                .and_then(Value::as_array)
                .filter(|b| (1..=3).contains(&b.len()))
                .ok_or_else(|| {
                    Refusal::invalid("Param interactive[action][buttons] must have 1 to 3 buttons")
                })?;
            let mut ids = std::collections::HashSet::new();
            for b in buttons {
                if str_at(b, "/type") != Some("reply") {
                    return Err(Refusal::invalid("Param buttons[type] must be 'reply'"));
                }
                check(b, "/reply/id", "buttons[reply][id]", 256)?;
                check(b, "/reply/title", "buttons[reply][title]", 20)?;
                if !ids.insert(str_at(b, "/reply/id")) {
                    return Err(Refusal::invalid("Button ids must be unique"));
                }
            }
        }
        Some("list") => {
            if text.chars().count() > 4096 {
                return Err(too_long("interactive[body][text]", 4096));
            }
            check(
                body,
                "/interactive/action/button",
                "interactive[action][button]",
                20,
            )?;
            let sections = body
                .pointer("/interactive/action/sections")
                .and_then(Value::as_array)
                .filter(|s| (1..=10).contains(&s.len()))
                .ok_or_else(|| {
                    Refusal::invalid(
                        "Param interactive[action][sections] must have 1 to 10 sections",
                    )
                })?;
            let mut rows = 0;
            for section in sections {
                let section_rows = section["rows"]
                    .as_array()
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| Refusal::invalid("Param sections[rows] must not be empty"))?;
                for row in section_rows {
                    check(row, "/id", "rows[id]", 200)?;
                    check(row, "/title", "rows[title]", 24)?;
                    if let Some(d) = str_at(row, "/description") {
                        if d.chars().count() > 72 {
                            return Err(too_long("rows[description]", 72));
                        }
                    }
                }
                rows += section_rows.len();
            }
            if rows > 10 {
                return Err(Refusal::invalid(
                    "A list message has at most 10 rows in all",
                ));
            }
        }
        other => {
            return Err(Refusal::invalid(format!(
                "Param interactive[type] must be one of {{button, list}}, got '{}'",
                other.unwrap_or_default()
            )))
        }
    }
    Ok(text.to_string())
}
