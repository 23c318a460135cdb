//! A reply email: `Re:` the customer's subject, `In-Reply-To` and
//! `References` naming their message, in their Gmail thread, so it threads
//! in every mail client; plain text with a simple HTML alternative; the
//! engine's part id in an `X-Switchboard-Part` header. Sent with
//! `users.messages.send`.

use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::Message;
use serde_json::Value;

use super::api::{GmailApi, GmailError};
use super::email::{Email, PART_HEADER};
use crate::channels::meta_error::{SendError, SendErrorKind};
use crate::channels::Sent;
use crate::config::IntegrationConfig;
use crate::fence::Fence;

/// What the reply answers: the customer's message headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answering {
    pub subject: String,
    pub message_id: Option<String>,
    pub references: Option<String>,
}

impl Answering {
    pub fn of(email: &Email) -> Self {
        Self {
            subject: email.subject.clone(),
            message_id: email
                .header("Message-ID")
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            references: email
                .header("References")
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
        }
    }
}

#[derive(Clone)]
struct PartHeader(String);

impl Header for PartHeader {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str(PART_HEADER)
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.trim().to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// The reply's subject: the customer's, with one `Re:`.
pub fn subject(original: &str) -> String {
    let s = original.trim();
    if s.is_empty() {
        "Re: your message".to_string()
    } else if s.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("re:")) {
        s.to_string()
    } else {
        format!("Re: {s}")
    }
}

/// The text as simple HTML: paragraphs at blank lines, line breaks kept.
pub fn html(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let paragraphs: Vec<String> = escaped
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("<p>{}</p>", p.trim().replace('\n', "<br>\n")))
        .collect();
    format!(
        "<!DOCTYPE html><html><body style=\"font-family:sans-serif\">\n{}\n</body></html>",
        paragraphs.join("\n")
    )
}

/// The `Message-ID` (without angle brackets) of part `part` sent from
/// `mailbox`: the same for every attempt, so a send whose answer was lost
/// is found in the mailbox before it is sent again.
pub fn message_id(mailbox: &str, part: &str) -> String {
    let domain = mailbox.rsplit('@').next().unwrap_or("switchboard.invalid");
    let token: String = part
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        .collect();
    format!("sb-{token}@{domain}")
}

/// The MIME message of a reply from `mailbox` to `to`.
pub fn build(
    mailbox: &str,
    to: &str,
    answering: &Answering,
    text: &str,
    part: &str,
) -> Result<Vec<u8>, String> {
    let from: Mailbox = mailbox
        .parse()
        .map_err(|e| format!("the mailbox address: {e}"))?;
    let to: Mailbox = to
        .parse()
        .map_err(|e| format!("the customer's address: {e}"))?;
    let mut builder = Message::builder()
        .from(from)
        .to(to)
        .subject(subject(&answering.subject))
        .message_id(Some(format!("<{}>", message_id(mailbox, part))))
        .header(PartHeader(part.to_string()));
    if let Some(id) = &answering.message_id {
        let references = match &answering.references {
            Some(r) => format!("{r} {id}"),
            None => id.clone(),
        };
        builder = builder.in_reply_to(id.clone()).references(references);
    }
    let message = builder
        .multipart(MultiPart::alternative_plain_html(
            text.to_string(),
            html(text),
        ))
        .map_err(|e| format!("the reply cannot be built: {e}"))?;
    Ok(message.formatted())
}

/// `raw` marked `Auto-Submitted: auto-replied` (RFC 3834): mail systems
/// and other responders do not answer it back, so two of them never write
/// to each other without end.
pub fn auto_submitted(raw: Vec<u8>) -> Vec<u8> {
    let mut out = b"Auto-Submitted: auto-replied\r\n".to_vec();
    out.extend_from_slice(&raw);
    out
}

/// Sends a reply part (the body `Gmail::message_body` made), answering the
/// customer's message `answering_mid` when known. A part that `maybe_sent`
/// (an earlier attempt's answer was lost) is first looked for in the
/// mailbox by its `Message-ID`, and not sent again when found.
pub async fn send(
    api: &GmailApi,
    integration: &IntegrationConfig,
    body: &Value,
    answering_mid: Option<&str>,
    maybe_sent: bool,
    fence: &Fence,
) -> Result<Sent, SendError> {
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
    let (to, thread, text, part) = (field("to"), field("threadId"), field("text"), field("part"));
    let automatic = body.get("auto").and_then(Value::as_bool) == Some(true);
    if maybe_sent && !part.is_empty() {
        let id = message_id(&integration.account_id, part);
        if let Some(found) = api
            .find_by_message_id(integration, &id, fence)
            .await
            .map_err(send_error)?
        {
            return Ok(Sent {
                message_id: found,
                at_ms: crate::clock::now_ms(),
                recording: Default::default(),
            });
        }
    }
    let answering = match answering_mid {
        Some(mid) => match api.metadata(integration, mid, fence).await {
            Ok(Some(m)) => Answering::of(&Email::read(&m)),
            // Deleted since: the reply still goes in the thread.
            Ok(None) => Answering::default(),
            Err(e) => return Err(send_error(e)),
        },
        None => Answering::default(),
    };
    let raw = build(&integration.account_id, to, &answering, text, part)
        .map(|raw| if automatic { auto_submitted(raw) } else { raw })
        .map_err(SendError::refused)?;
    let at_ms = crate::clock::now_ms();
    // A write place from before the send until its mark is written: a
    // revoke between the two would refuse the mark, and the next owner
    // would send the email again.
    let Ok(write) = fence.enter_write() else {
        return Err(SendError::fenced());
    };
    let id = match api.send(integration, &raw, Some(thread), fence).await {
        Ok(id) => id,
        // Gmail may have taken it before failing: confirmed, not repeated.
        Err(GmailError::Server(m)) => return Err(send_error(GmailError::Ambiguous(m))),
        Err(e) => return Err(send_error(e)),
    };
    Ok(Sent {
        message_id: id,
        at_ms,
        recording: crate::fence::Recording::held(write),
    })
}

/// A Gmail failure as the send loop knows failures.
pub fn send_error(e: GmailError) -> SendError {
    let kind = match &e {
        GmailError::Expired(_) => SendErrorKind::TokenExpired,
        GmailError::Throttled | GmailError::OverLimit(_) => SendErrorKind::Throttled,
        GmailError::Server(_) => SendErrorKind::Server,
        GmailError::Transport(_) => SendErrorKind::Transport,
        GmailError::Ambiguous(_) => SendErrorKind::Ambiguous,
        GmailError::Fenced => SendErrorKind::Fenced,
        GmailError::HistoryGone | GmailError::Rejected(_) => SendErrorKind::Rejected,
    };
    let mut err = SendError::refused(e.to_string());
    err.kind = kind;
    if matches!(e, GmailError::OverLimit(_)) {
        err.retry_after = Some(super::error::OVER_LIMIT_WAIT);
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(raw: &[u8]) -> String {
        String::from_utf8_lossy(raw).replace("\r\n", "\n")
    }

    #[test]
    fn a_reply_threads_with_the_customers_message() {
        let answering = Answering {
            subject: "Lamp broken".into(),
            message_id: Some("<abc@example.com>".into()),
            references: Some("<first@example.com>".into()),
        };
        let raw = build(
            "support@acme.example",
            "ann@example.com",
            &answering,
            "Sorry to hear that.\n\nA new lamp is on its way.",
            "p-1",
        )
        .unwrap();
        let t = text_of(&raw);
        assert!(t.contains("Subject: Re: Lamp broken\n"), "{t}");
        assert!(t.contains("In-Reply-To: <abc@example.com>\n"), "{t}");
        assert!(
            t.contains("References: <first@example.com> <abc@example.com>\n"),
            "{t}"
        );
        assert!(t.contains("X-Switchboard-Part: p-1\n"), "{t}");
        assert!(t.contains("To: ann@example.com\n"), "{t}");
        assert!(t.contains("multipart/alternative"), "{t}");
        assert!(t.contains("text/plain") && t.contains("text/html"), "{t}");
        assert!(!t.contains("Auto-Submitted"), "a person's reply: {t}");
        let automatic = text_of(&auto_submitted(raw));
        assert!(
            automatic.starts_with("Auto-Submitted: auto-replied\n") && automatic.ends_with(&t),
            "{automatic}"
        );
    }

    #[test]
    fn subjects_get_one_re_and_html_is_escaped() {
        assert_eq!(subject("Hello"), "Re: Hello");
        assert_eq!(subject("RE: Hello"), "RE: Hello");
        assert_eq!(subject(" "), "Re: your message");
        // Not ASCII: no byte slicing inside a character.
        assert_eq!(subject("Привет"), "Re: Привет");
        assert_eq!(subject("éé"), "Re: éé");
        assert_eq!(subject("RE: Ünïcode"), "RE: Ünïcode");
        let h = html("a < b\n\nc & d");
        assert!(
            h.contains("<p>a &lt; b</p>") && h.contains("<p>c &amp; d</p>"),
            "{h}"
        );
    }

    #[test]
    fn a_bad_customer_address_is_refused_not_sent() {
        let e = build(
            "support@acme.example",
            "not an address",
            &Answering::default(),
            "x",
            "p",
        );
        assert!(e.unwrap_err().contains("customer's address"));
    }
}
