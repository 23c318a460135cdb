//! Public comments: Instagram comments on the account's media
//! (`changes[].field = "comments"`) and Facebook Page comments on its posts
//! (`field = "feed"`, `item = "comment"`, `verb = "add"`), answered publicly
//! under the comment (`POST /{comment_id}/replies` on Instagram,
//! `POST /{comment_id}/comments` on a Page; text only). The business's own
//! comments are never events, so they are never answered.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::webhook::{id_string, PlatformEvent, RawChange, SkipKind, WebhookObject};
use crate::event::{CommentSurface, EventKind};

#[derive(Deserialize)]
struct From {
    #[serde(deserialize_with = "id_string")]
    id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// `value` of an Instagram `comments` change.
#[derive(Deserialize)]
struct InstagramComment {
    #[serde(deserialize_with = "id_string")]
    id: String,
    from: From,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    media: Option<Media>,
}

#[derive(Deserialize)]
struct Media {
    #[serde(deserialize_with = "id_string")]
    id: String,
}

/// `value` of a Page `feed` change.
#[derive(Deserialize)]
struct FeedItem {
    item: String,
    #[serde(default)]
    verb: Option<String>,
    #[serde(default)]
    comment_id: Option<String>,
    #[serde(default)]
    post_id: Option<String>,
    #[serde(default)]
    from: Option<From>,
    #[serde(default)]
    message: Option<String>,
    /// Seconds since the epoch.
    #[serde(default)]
    created_time: Option<u64>,
}

/// `changes[]` fields of Page and Instagram webhooks the engine knowingly
/// leaves alone (it does not subscribe to them, but an app may).
const IGNORED_FIELDS: &[&str] = &[
    "mentions",
    "live_comments",
    "story_insights",
    "ratings",
    "mention",
    "messages",
    "message_reactions",
];

/// The comment a change describes, if it is one someone else wrote; a
/// change that cannot be read is skipped by the caller.
pub(crate) fn parse_change(
    object: WebhookObject,
    account_id: &str,
    raw: &RawValue,
    entry_time: u64,
) -> Result<Option<PlatformEvent>, (SkipKind, String)> {
    let malformed = |why: String| (SkipKind::MalformedItem, why);
    let change: RawChange<'_> =
        serde_json::from_str(raw.get()).map_err(|e| malformed(e.to_string()))?;
    let value = change.value.map_or("null", RawValue::get);
    match (object, change.field.as_ref()) {
        (WebhookObject::Instagram, "comments") => {
            let c: InstagramComment = serde_json::from_str(value)
                .map_err(|e| malformed(format!("comments value: {e}")))?;
            if c.from.id == account_id {
                return Ok(None);
            }
            Ok(Some(PlatformEvent {
                customer: c.from.id,
                timestamp_ms: entry_time,
                customer_name: c.from.username,
                kind: EventKind::Comment {
                    comment_id: c.id,
                    surface: CommentSurface::Instagram,
                    text: c.text.unwrap_or_default(),
                    post_id: c.media.map(|m| m.id),
                },
            }))
        }
        (WebhookObject::Page, "feed") => {
            let f: FeedItem =
                serde_json::from_str(value).map_err(|e| malformed(format!("feed value: {e}")))?;
            if f.item != "comment" || f.verb.as_deref() != Some("add") {
                return Ok(None);
            }
            let from = f
                .from
                .ok_or_else(|| malformed("feed comment without from".into()))?;
            if from.id == account_id {
                return Ok(None);
            }
            let comment_id = f
                .comment_id
                .ok_or_else(|| malformed("feed comment without comment_id".into()))?;
            Ok(Some(PlatformEvent {
                customer: from.id,
                timestamp_ms: f
                    .created_time
                    .and_then(|s| s.checked_mul(1000))
                    .unwrap_or(entry_time),
                customer_name: from.name,
                kind: EventKind::Comment {
                    comment_id,
                    surface: CommentSurface::Page,
                    text: f.message.unwrap_or_default(),
                    post_id: f.post_id,
                },
            }))
        }
        (_, field) if IGNORED_FIELDS.contains(&field) => Ok(None),
        (_, field) => Err((
            SkipKind::UnknownField,
            format!("field {:?}", field.chars().take(40).collect::<String>()),
        )),
    }
}

/// Where a comment reply's answer carries the new comment's id.
pub const ID_POINTER: &str = "/id";

/// The public reply's path and body.
pub fn reply_call(surface: CommentSurface, comment_id: &str, text: &str) -> (String, Value) {
    let edge = match surface {
        CommentSurface::Instagram => "replies",
        CommentSurface::Page => "comments",
    };
    (format!("{comment_id}/{edge}"), json!({ "message": text }))
}

/// Where a comment's replies are read, and the fields asked for.
pub fn replies_call(surface: CommentSurface, comment_id: &str) -> (String, &'static str) {
    match surface {
        CommentSurface::Instagram => (format!("{comment_id}/replies"), "id,text,from"),
        CommentSurface::Page => (format!("{comment_id}/comments"), "id,message,from"),
    }
}

/// The listing's order and size: newest first where the API can be told
/// (Page comments come oldest first otherwise), few enough to read whole.
pub fn replies_query(surface: CommentSurface) -> &'static [(&'static str, &'static str)] {
    match surface {
        CommentSurface::Instagram => &[("limit", "50")],
        CommentSurface::Page => &[("limit", "50"), ("order", "reverse_chronological")],
    }
}

/// The id of a reply in `listing` (a comment's replies as the Graph API
/// lists them) with this `text`, from `account` when the listing says who
/// wrote it.
pub fn find_reply(listing: &Value, account: &str, text: &str) -> Option<String> {
    listing["data"].as_array()?.iter().find_map(|r| {
        let said = r["text"].as_str().or_else(|| r["message"].as_str())?;
        let by = r["from"]["id"].as_str();
        (said.trim() == text.trim() && by.is_none_or(|by| by == account))
            .then(|| r["id"].as_str().map(str::to_string))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::find_reply;
    use crate::channels::webhook::parse;
    use crate::event::{CommentSurface, EventKind};

    // Instagram webhooks reference, `comments` field.
    const IG_COMMENT: &str = r#"{"object":"instagram","entry":[{"id":"17841405793187218","time":1699999999,"changes":[{"field":"comments","value":{"from":{"id":"232323232","username":"test_user"},"media":{"id":"123123123","media_product_type":"FEED"},"id":"17865799348089039","parent_id":"1231231234","text":"Do you ship to Canada?"}}]}]}"#;

    #[test]
    fn instagram_comment() {
        let w = parse(IG_COMMENT.as_bytes(), 0).expect("parses");
        let e = &w.entries[0].events[0];
        assert_eq!(e.customer, "232323232");
        assert_eq!(e.customer_name.as_deref(), Some("test_user"));
        assert_eq!(
            e.kind,
            EventKind::Comment {
                comment_id: "17865799348089039".into(),
                surface: CommentSurface::Instagram,
                text: "Do you ship to Canada?".into(),
                post_id: Some("123123123".into())
            }
        );
    }

    #[test]
    fn the_accounts_own_comments_are_not_events() {
        let own = IG_COMMENT.replace(r#""id":"232323232""#, r#""id":"17841405793187218""#);
        let w = parse(own.as_bytes(), 0).expect("parses");
        assert!(w.entries[0].events.is_empty());
        let page_own = r#"{"object":"page","entry":[{"id":"PAGE","time":1,"changes":[{"field":"feed","value":{"from":{"id":"PAGE","name":"Acme"},"item":"comment","verb":"add","comment_id":"1_2","post_id":"PAGE_1","message":"Thanks all!","created_time":1700000000}}]}]}"#;
        assert!(parse(page_own.as_bytes(), 0).expect("parses").entries[0]
            .events
            .is_empty());
    }

    #[test]
    fn page_feed_comment_and_other_feed_items() {
        // Page webhooks reference, `feed` field.
        let body = r#"{"object":"page","entry":[{"id":"PAGE","time":1,"changes":[
          {"field":"feed","value":{"from":{"id":"U1","name":"Ana"},"post_id":"PAGE_77","comment_id":"77_88","item":"comment","verb":"add","created_time":1700000000,"message":"Is this in stock?"}},
          {"field":"feed","value":{"from":{"id":"U2","name":"Ben"},"post_id":"PAGE_77","item":"reaction","verb":"add","reaction_type":"like","created_time":1700000001}},
          {"field":"feed","value":{"from":{"id":"U1","name":"Ana"},"post_id":"PAGE_77","comment_id":"77_88","item":"comment","verb":"edited","created_time":1700000002,"message":"edited"}}]}]}"#;
        let w = parse(body.as_bytes(), 0).expect("parses");
        let events = &w.entries[0].events;
        assert_eq!(events.len(), 1, "reactions and edits are not answered");
        assert_eq!(events[0].timestamp_ms, 1_700_000_000_000);
        assert_eq!(
            events[0].kind,
            EventKind::Comment {
                comment_id: "77_88".into(),
                surface: CommentSurface::Page,
                text: "Is this in stock?".into(),
                post_id: Some("PAGE_77".into())
            }
        );
    }

    #[test]
    fn replies_go_to_the_documented_edges() {
        let (path, body) = super::reply_call(CommentSurface::Instagram, "178", "Yes!");
        assert_eq!(path, "178/replies");
        assert_eq!(body, serde_json::json!({"message": "Yes!"}));
        let (path, _) = super::reply_call(CommentSurface::Page, "77_88", "Yes!");
        assert_eq!(path, "77_88/comments");
    }

    #[test]
    fn a_reply_is_the_account_s_with_the_same_text() {
        let page = serde_json::json!({"data": [
            {"id": "9_5", "message": "We're open 9-5.", "from": {"id": "USER_2", "name": "Bo"}},
            {"id": "9_6", "message": " We're open 9-5. ", "from": {"id": "PAGE_1", "name": "Acme"}}
        ]});
        assert_eq!(
            find_reply(&page, "PAGE_1", "We're open 9-5.").as_deref(),
            Some("9_6")
        );
        assert_eq!(find_reply(&page, "PAGE_1", "Another text"), None);
        assert_eq!(
            find_reply(&page, "PAGE_2", "We're open 9-5."),
            None,
            "another author"
        );
        let ig = serde_json::json!({"data": [{"id": "17_1", "text": "Hi!", "from": {"id": "IG_1", "username": "acme"}}]});
        assert_eq!(find_reply(&ig, "IG_1", "Hi!").as_deref(), Some("17_1"));
        assert_eq!(
            find_reply(&serde_json::json!({"error": {}}), "IG_1", "Hi!"),
            None
        );
    }
}
