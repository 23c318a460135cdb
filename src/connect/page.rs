//! The connect flow's small HTML pages: pick the Pages to connect, the
//! outcome, and errors. Everything from outside (Page names, ids) is
//! escaped.

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// What a connect page may load and do: its own inline style, a form posted
/// back here; never framed (the pick page holds the session), never cached,
/// never named in a referrer.
const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A connect page with `status`, with the headers every one carries.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Html(document(title, body)),
    )
        .into_response()
}

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\
         label{{display:block;margin:.5rem 0}}button{{font-size:1rem;padding:.5rem 1rem}}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    )
}

/// An error page with `status`.
pub fn error(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Connecting your account did not work",
        &format!("<p role=\"alert\">{}</p>", escape(message)),
    )
}

/// One Page the person may connect.
pub struct Choice<'a> {
    /// The form field: `page` or `number`.
    pub field: &'static str,
    pub id: &'a str,
    pub name: &'a str,
    pub instagram: Option<&'a str>,
}

/// The form to pick Pages.
pub fn pick(tenant: &str, session: &str, choices: &[Choice<'_>]) -> Response {
    if choices.is_empty() {
        return error(
            StatusCode::OK,
            "Your Facebook account manages no Page or WhatsApp number this app may use. Check what you chose in Facebook's dialog, then start again.",
        );
    }
    let mut items = String::new();
    for c in choices {
        let ig = c
            .instagram
            .map(|i| format!(" (and its Instagram account {})", escape(i)))
            .unwrap_or_default();
        items.push_str(&format!(
            "<label><input type=\"checkbox\" name=\"{field}\" value=\"{id}\" checked> {name}{ig}</label>",
            field = c.field,
            id = escape(c.id),
            name = escape(c.name)
        ));
    }
    page(
        StatusCode::OK,
        "Choose what to connect",
        &format!(
            "<p>These Pages will be answered by {tenant}'s assistant.</p>\
             <form method=\"post\" action=\"/connect/meta/pages\">\
             <input type=\"hidden\" name=\"session\" value=\"{session}\">\
             <fieldset><legend>Pages and numbers</legend>{items}</fieldset>\
             <button type=\"submit\">Connect</button></form>",
            tenant = escape(tenant),
            session = escape(session)
        ),
    )
}

/// What was connected (and what was not, with why).
pub fn done(connected: &[String], failed: &[String]) -> Response {
    let list = |items: &[String]| {
        items
            .iter()
            .map(|i| format!("<li>{}</li>", escape(i)))
            .collect::<String>()
    };
    let mut body = String::new();
    if !connected.is_empty() {
        body.push_str(&format!("<p>Connected:</p><ul>{}</ul>", list(connected)));
    }
    if !failed.is_empty() {
        body.push_str(&format!(
            "<p role=\"alert\">Not connected:</p><ul>{}</ul>",
            list(failed)
        ));
    }
    if body.is_empty() {
        body.push_str("<p>No Page was chosen; nothing changed.</p>");
    }
    page(StatusCode::OK, "Your accounts", &body)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_page_forbids_framing_scripts_and_caching() {
        let r = super::done(&[], &[]);
        let h = r.headers();
        assert!(h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["referrer-policy"], "no-referrer");
    }

    #[test]
    fn names_from_outside_are_escaped() {
        let page = super::escape("<script>alert('x')</script> & \"co\"");
        assert_eq!(
            page,
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;"
        );
    }
}
