//! Quick replies on each channel: Messenger and Instagram `quick_replies`
//! (a 20-character title, the whole choice as payload), WhatsApp
//! interactive `button` (up to 3, 20-character titles) or `list` (up to 10
//! rows, 24-character titles), and numbered lines where a channel has
//! neither (comments, email). The customer's pick comes back as a message
//! whose text is the title and whose payload (`quick_reply`) is the choice.

use serde_json::{json, Value};

/// `text` with `choices` as numbered lines under it.
pub fn numbered(text: &str, choices: &[String]) -> String {
    if choices.is_empty() {
        return text.to_string();
    }
    let lines: Vec<String> = choices
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{}. {c}", i + 1))
        .collect();
    format!("{}\n\n{}", text.trim_end(), lines.join("\n"))
}

/// `choice` cut to `max` characters (with an ellipsis when cut).
pub fn title(choice: &str, max: usize) -> String {
    let choice = choice.trim();
    if choice.chars().count() <= max {
        return choice.to_string();
    }
    let mut out: String = choice.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Messenger / Instagram `message.quick_replies`.
pub fn quick_replies(choices: &[String]) -> Value {
    Value::Array(
        choices
            .iter()
            .take(13)
            .map(|c| {
                json!({
                    "content_type": "text",
                    "title": title(c, 20),
                    "payload": title(c, 1000),
                })
            })
            .collect(),
    )
}

/// WhatsApp's `interactive` object for `text` with `choices`: reply
/// buttons for up to 3 choices whose titles fit, else a list.
pub fn whatsapp_interactive(text: &str, choices: &[String]) -> Value {
    // The same choice twice would give two buttons or rows with one id,
    // which the Cloud API refuses (and the answer would never arrive).
    let mut seen = std::collections::HashSet::new();
    let choices: Vec<&String> = choices
        .iter()
        .filter(|c| seen.insert(c.trim().to_lowercase()))
        .collect();
    let fits = |max: usize| choices.iter().all(|c| c.trim().chars().count() <= max);
    if choices.len() <= 3 && fits(20) {
        let buttons: Vec<Value> = choices
            .iter()
            .map(
                |c| json!({"type": "reply", "reply": {"id": title(c, 256), "title": title(c, 20)}}),
            )
            .collect();
        return json!({
            "type": "button",
            "body": {"text": text},
            "action": {"buttons": buttons},
        });
    }
    let rows: Vec<Value> = choices
        .iter()
        .take(10)
        .map(|c| {
            let mut row = json!({"id": title(c, 200), "title": title(c, 24)});
            if c.trim().chars().count() > 24 {
                row["description"] = json!(title(c, 72));
            }
            row
        })
        .collect();
    json!({
        "type": "list",
        "body": {"text": text},
        "action": {"button": "Choose", "sections": [{"title": "Options", "rows": rows}]},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn titles_are_cut_to_the_platform_limit() {
        assert_eq!(title("Opening hours", 20), "Opening hours");
        let long = title("Talk to someone about my order", 20);
        assert_eq!(long.chars().count(), 20);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn whatsapp_uses_buttons_up_to_three_then_a_list() {
        let b = whatsapp_interactive("Pick", &list(&["Yes", "No"]));
        assert_eq!(b["type"], "button");
        assert_eq!(b["action"]["buttons"][1]["reply"]["title"], "No");
        let l = whatsapp_interactive("Pick", &list(&["A", "B", "C", "D"]));
        assert_eq!(l["type"], "list");
        assert_eq!(l["action"]["sections"][0]["rows"][3]["id"], "D");
        let long = whatsapp_interactive("Pick", &list(&["A choice far too long for a button"]));
        assert_eq!(long["type"], "list");
        assert!(long["action"]["sections"][0]["rows"][0]["description"].is_string());
    }

    #[test]
    fn a_choice_given_twice_is_one_button() {
        let b = whatsapp_interactive("Pick", &list(&["Yes", "yes ", "No", "Yes"]));
        let titles: Vec<&str> = b["action"]["buttons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["reply"]["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, ["Yes", "No"]);
    }

    #[test]
    fn numbered_lines_follow_the_text() {
        assert_eq!(
            numbered("Pick one:", &list(&["A", "B"])),
            "Pick one:\n\n1. A\n2. B"
        );
        assert_eq!(numbered("Hi", &[]), "Hi");
    }
}
