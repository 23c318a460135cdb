//! One Gmail message as `users.messages.get` (`format=full`) returns it,
//! read into what the engine needs: who wrote, in which thread, the text
//! a customer typed (HTML converted, quoted history trimmed), the files,
//! and whether it is a customer email at all (not the mailbox's own sent
//! mail, a draft, an auto-reply or bulk mail).

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde::Deserialize;

/// Base64url with or without padding (Gmail bodies, Pub/Sub data).
pub const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes base64url or standard base64, padded or not.
pub fn decode_base64(data: &str) -> Option<Vec<u8>> {
    let url: String = data
        .trim()
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    BASE64URL.decode(url.as_bytes()).ok()
}

/// The header the engine puts on every reply it sends: its part id, read
/// back when the sent message shows in the mailbox's history.
pub const PART_HEADER: &str = "X-Switchboard-Part";

/// Largest attachment kept (Gmail's own limit per message is 25 MB).
pub const MAX_KEPT_ATTACHMENT: u64 = 25 * 1024 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GmailMessage {
    pub id: String,
    #[serde(default)]
    pub thread_id: String,
    #[serde(default)]
    pub label_ids: Vec<String>,
    #[serde(default, deserialize_with = "number_or_text")]
    pub history_id: u64,
    #[serde(default, deserialize_with = "number_or_text")]
    pub internal_date: u64,
    #[serde(default)]
    pub payload: Option<Part>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    #[serde(default)]
    pub mime_type: String,
    #[serde(default)]
    pub filename: String,
    #[serde(default)]
    pub headers: Vec<Header>,
    #[serde(default)]
    pub body: Body,
    #[serde(default)]
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Body {
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub attachment_id: Option<String>,
}

/// Gmail writes ids and dates as strings of digits; numbers are taken too.
pub fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Number(u64),
        Text(String),
    }
    match N::deserialize(d)? {
        N::Number(n) => Ok(n),
        N::Text(t) => t.trim().parse().map_err(serde::de::Error::custom),
    }
}

/// A file of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailFile {
    pub name: String,
    pub mime_type: String,
    pub size: u64,
    /// Fetched with `users.messages.attachments.get`.
    pub attachment_id: Option<String>,
    /// Small files come inline in the message.
    pub data: Option<Vec<u8>>,
}

/// What a message is to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailKind {
    /// A customer wrote: answered in its thread.
    Customer,
    /// The mailbox's own sent mail; `part` when this engine sent it.
    OwnSent { part: Option<String> },
    /// Not answered, with the reason (a metric label: `draft`,
    /// `from_mailbox` (sent to itself, or a forged sender), `no_sender`,
    /// `bounce`, `no_reply`, `auto_submitted`, `bulk`, `list`, `auto_reply`,
    /// `spam`, `not_inbox`).
    Skipped(&'static str),
}

/// A message read.
#[derive(Debug, Clone)]
pub struct Email {
    pub id: String,
    pub thread_id: String,
    pub labels: Vec<String>,
    pub history_id: u64,
    pub internal_date_ms: u64,
    /// (address, lower-cased; display name).
    pub from: Option<(String, Option<String>)>,
    /// Where the sender asks replies to go (a web form's mail: the
    /// customer who filled it in), the first address.
    pub reply_to: Option<(String, Option<String>)>,
    /// The first `To` address (a sent message's recipient).
    pub to: Option<String>,
    pub subject: String,
    pub text: String,
    pub files: Vec<EmailFile>,
    headers: Vec<Header>,
}

impl Email {
    pub fn read(message: &GmailMessage) -> Self {
        let payload = message.payload.clone().unwrap_or_default();
        let headers = payload.headers.clone();
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value.clone())
        };
        let mut plain = None;
        let mut html = None;
        let mut files = Vec::new();
        walk(&payload, &mut plain, &mut html, &mut files);
        let text = match (plain, html) {
            (Some(t), _) => t,
            (None, Some(h)) => html_text(&h),
            (None, None) => String::new(),
        };
        Self {
            id: message.id.clone(),
            thread_id: message.thread_id.clone(),
            labels: message.label_ids.clone(),
            history_id: message.history_id,
            internal_date_ms: message.internal_date,
            from: header("From").and_then(|v| parse_address(&v)),
            reply_to: header("Reply-To")
                .and_then(|v| address_list(&v).into_iter().find_map(parse_address)),
            to: header("To")
                .and_then(|v| address_list(&v).into_iter().find_map(parse_address))
                .map(|(a, _)| a),
            subject: header("Subject").unwrap_or_default(),
            text: trim_quoted(&text),
            files,
            headers,
        }
    }

    /// A header's value (the first of that name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Who is answered: the `Reply-To` address when there is one (other
    /// than the mailbox), else the sender.
    pub fn customer(&self, mailbox: &str) -> Option<(String, Option<String>)> {
        self.reply_to
            .clone()
            .filter(|(a, _)| !a.eq_ignore_ascii_case(mailbox))
            .or_else(|| self.from.clone())
    }

    fn has_label(&self, label: &str) -> bool {
        self.labels.iter().any(|l| l == label)
    }

    /// Whether this is a customer's email to `mailbox`, the mailbox's own
    /// sent mail, or something not to answer.
    pub fn kind(&self, mailbox: &str) -> EmailKind {
        if self.has_label("DRAFT") {
            return EmailKind::Skipped("draft");
        }
        // Only Gmail's own label says the mailbox sent it: a `From` header
        // can be anyone's.
        if self.has_label("SENT") && !self.has_label("INBOX") {
            return EmailKind::OwnSent {
                part: self.header(PART_HEADER).map(|p| p.trim().to_string()),
            };
        }
        // Sent to itself, or a forged sender; a form the mailbox mails to
        // itself names the customer in `Reply-To`.
        let Some((customer, _)) = self.customer(mailbox) else {
            return EmailKind::Skipped("no_sender");
        };
        if customer.eq_ignore_ascii_case(mailbox) {
            return EmailKind::Skipped("from_mailbox");
        }
        // A delivery failure (an empty return path, the mail system's own
        // sender) or an address that takes no answers.
        let local = customer.split('@').next().unwrap_or_default();
        if self.header("Return-Path").is_some_and(|v| v.trim() == "<>")
            || matches!(local, "mailer-daemon" | "postmaster")
        {
            return EmailKind::Skipped("bounce");
        }
        if matches!(
            local.replace(['-', '_', '.'], "").as_str(),
            "noreply" | "donotreply" | "dontreply"
        ) {
            return EmailKind::Skipped("no_reply");
        }
        if self
            .header("Auto-Submitted")
            .is_some_and(|v| !v.trim().eq_ignore_ascii_case("no"))
        {
            return EmailKind::Skipped("auto_submitted");
        }
        if self.header("Precedence").is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "bulk" | "list" | "junk" | "auto_reply"
            )
        }) {
            return EmailKind::Skipped("bulk");
        }
        if self.header("List-Id").is_some() || self.header("List-Unsubscribe").is_some() {
            return EmailKind::Skipped("list");
        }
        if self.header("X-Autoreply").is_some() || self.header("X-Autorespond").is_some() {
            return EmailKind::Skipped("auto_reply");
        }
        if self.has_label("SPAM") || self.has_label("TRASH") {
            return EmailKind::Skipped("spam");
        }
        if !self.has_label("INBOX") {
            return EmailKind::Skipped("not_inbox");
        }
        EmailKind::Customer
    }
}

/// Collects the first text/plain and text/html bodies and the files.
fn walk(
    part: &Part,
    plain: &mut Option<String>,
    html: &mut Option<String>,
    files: &mut Vec<EmailFile>,
) {
    let mime = part.mime_type.to_ascii_lowercase();
    let disposition = part
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("Content-Disposition"))
        .map(|h| h.value.to_ascii_lowercase())
        .unwrap_or_default();
    let is_file = !part.filename.is_empty()
        || disposition.starts_with("attachment")
        || (part.body.attachment_id.is_some() && !mime.starts_with("text/"));
    if is_file && !mime.starts_with("multipart/") {
        files.push(EmailFile {
            name: if part.filename.is_empty() {
                "attachment".to_string()
            } else {
                part.filename.clone()
            },
            mime_type: part.mime_type.clone(),
            size: part.body.size,
            attachment_id: part.body.attachment_id.clone(),
            data: part.body.data.as_deref().and_then(decode_base64),
        });
        return;
    }
    let body = || {
        part.body
            .data
            .as_deref()
            .and_then(decode_base64)
            .map(|b| decode_text(&b, &charset(part)))
    };
    match mime.as_str() {
        "text/plain" if plain.is_none() => *plain = body(),
        "text/html" if html.is_none() => *html = body(),
        _ => {}
    }
    for p in &part.parts {
        walk(p, plain, html, files);
    }
}

fn charset(part: &Part) -> String {
    part.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("Content-Type"))
        .and_then(|h| {
            let lower = h.value.to_ascii_lowercase();
            let at = lower.find("charset=")?;
            let rest = &lower[at + 8..];
            Some(
                rest.trim_start_matches('"')
                    .split(['"', ';', ' '])
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .unwrap_or_else(|| "utf-8".to_string())
}

/// The part's text in its charset (the single-byte ones and the CJK
/// ones mail uses, windows-1251, KOI8-R, ISO-2022-JP, GBK, Shift_JIS,
/// EUC-KR among them); UTF-8 when it names none or one not known.
fn decode_text(bytes: &[u8], charset: &str) -> String {
    match charset {
        "" | "utf-8" | "utf8" => String::from_utf8_lossy(bytes).into_owned(),
        // Latin-1 as mail means it: Windows-1252 (its € and quotes).
        "iso-8859-1" | "latin1" | "us-ascii" => decode_text(bytes, "windows-1252"),
        other => match mail_parser::decoders::charsets::map::charset_decoder(other.as_bytes()) {
            Some(decode) => decode(bytes),
            None => String::from_utf8_lossy(bytes).into_owned(),
        },
    }
}

/// The addresses of an address header, split at the commas between them
/// (not those inside a quoted name or `<...>`).
pub fn address_list(value: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted, mut angle) = (Vec::new(), 0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

/// `"Ann Lee" <ann@example.com>` or `ann@example.com`: (lower-cased
/// address, name).
pub fn parse_address(value: &str) -> Option<(String, Option<String>)> {
    let value = value.trim();
    let (name, address) = match (value.rfind('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => (
            Some(value[..open].trim().trim_matches('"').trim().to_string()),
            &value[open + 1..close],
        ),
        _ => (None, value),
    };
    let address = address.trim();
    let (local, domain) = address.split_once('@')?;
    if local.is_empty()
        || domain.is_empty()
        || address.contains(|c: char| c.is_whitespace() || matches!(c, ',' | '<' | '>' | '"'))
    {
        return None;
    }
    Some((address.to_ascii_lowercase(), name.filter(|n| !n.is_empty())))
}

/// The customer's own words: quoted history (`> ` lines, "On ... wrote:"
/// and what follows, Outlook's "-----Original Message-----" and `From:`
/// blocks) and trailing blank lines removed. Words written below or
/// between `> ` quoted lines are kept.
pub fn trim_quoted(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let lines: Vec<&str> = text.lines().collect();
    let mut kept: Vec<&str> = Vec::new();
    let mut i = 0;
    while let Some(line) = lines.get(i) {
        let t = line.trim();
        let next = lines.get(i + 1).map(|l| l.trim()).unwrap_or_default();
        let two_lines = !t.ends_with("wrote:") && !t.contains("wrote") && next.ends_with("wrote:");
        let attribution = t.starts_with("On ") && (t.ends_with("wrote:") || two_lines);
        let outlook = t.starts_with("-----Original Message-----")
            || t.starts_with("________________________________")
            || (t.starts_with("From:") && next.starts_with("Sent:"));
        if attribution {
            // A quote marked with `>` may have answers below it; one that
            // is not marked runs to the end.
            let after = i + if two_lines { 2 } else { 1 };
            let marked = lines
                .iter()
                .skip(after)
                .map(|l| l.trim())
                .find(|l| !l.is_empty())
                .is_some_and(|l| l.starts_with('>'));
            if !marked {
                break;
            }
            i = after;
            continue;
        }
        if outlook {
            break;
        }
        if !t.starts_with('>') {
            kept.push(line.trim_end());
        }
        i += 1;
    }
    while kept.last().is_some_and(|l| l.is_empty()) {
        kept.pop();
    }
    while kept.first().is_some_and(|l| l.is_empty()) {
        kept.remove(0);
    }
    kept.join("\n")
}

mod html;
#[cfg(test)]
mod tests;

use html::html_text;
#[cfg(test)]
use html::{html_deeper_than, strip_tags, MAX_HTML_DEPTH};
