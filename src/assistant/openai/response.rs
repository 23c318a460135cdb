//! Reading a chat-completions answer: a JSON body, or server-sent events
//! (`data: {chunk}` lines, ending with `data: [DONE]`). Chunks carry
//! `choices[0].delta.content` and tool-call argument pieces; the last may
//! carry only `usage` with empty or null `choices` (vLLM, OpenAI with
//! `include_usage`). Errors keep the OpenAI shape `{"error": {"message",
//! "type", "code"}}`.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::time::Instant;

use crate::assistant::AssistantError;

/// Longest error body read (a misconfigured URL may answer a large page).
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest answer read, in bytes.
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// What the model answered.
#[derive(Debug, Default)]
pub struct Reply {
    pub content: String,
    /// The arguments of its `offer_choices` call, if it made one.
    pub tool_arguments: Option<String>,
    /// (prompt, completion) tokens.
    pub usage: Option<(u64, u64)>,
}

/// Reads `response` within `deadline`, a stream also within `chunk_timeout`
/// between chunks.
pub async fn read(
    response: reqwest::Response,
    deadline: Instant,
    timeout: Duration,
    chunk_timeout: Duration,
) -> Result<Reply, AssistantError> {
    let status = response.status().as_u16();
    if status != 200 {
        let retry_after = retry_after(response.headers());
        let body = read_capped(response, deadline, timeout, MAX_ERROR_BODY).await?;
        return Err(error(status, &body, retry_after));
    }
    let streamed = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !streamed {
        // Not streamed (asked so, or the server ignored `stream`).
        let body = read_capped(response, deadline, timeout, MAX_ANSWER).await?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| AssistantError::BadAnswer(format!("not JSON: {e}")))?;
        return whole(&v);
    }
    let mut stream = response.bytes_stream();
    let mut events = Events::default();
    let mut reply = Reply::default();
    let mut tool = String::new();
    let mut finished = false;
    // The last chunk's `finish_reason`: why the model stopped.
    let mut finish: Option<String> = None;
    loop {
        let next = Instant::now() + chunk_timeout;
        let stalled = next < deadline;
        let chunk = match tokio::time::timeout_at(next.min(deadline), stream.next()).await {
            Err(_) if stalled => return Err(AssistantError::Stalled(chunk_timeout)),
            Err(_) => return Err(AssistantError::Timeout(timeout)),
            Ok(None) => None,
            Ok(Some(Err(e))) => {
                return Err(AssistantError::BadAnswer(format!(
                    "the stream was cut: {}",
                    e.without_url()
                )))
            }
            Ok(Some(Ok(bytes))) => Some(bytes),
        };
        // At the end, an event without its closing blank line counts too.
        let completed = match &chunk {
            Some(bytes) => events.push(bytes),
            None => events.finish(),
        };
        for data in completed {
            if data == "[DONE]" {
                finished = true;
                break;
            }
            let v: Value = serde_json::from_str(&data)
                .map_err(|e| AssistantError::BadAnswer(format!("a chunk is not JSON: {e}")))?;
            if v.get("error").is_some() {
                return Err(error(500, data.as_bytes(), None));
            }
            if let Some(usage) = usage(&v) {
                reply.usage = Some(usage);
            }
            // `choices` may be missing, null or empty (a usage chunk).
            let Some(choice) = v["choices"].as_array().and_then(|c| c.first()) else {
                continue;
            };
            if let Some(reason) = choice["finish_reason"].as_str() {
                finish = Some(reason.to_string());
            }
            let delta = &choice["delta"];
            if let Some(text) = delta["content"].as_str() {
                reply.content.push_str(text);
            }
            if let Some(calls) = delta["tool_calls"].as_array() {
                for call in calls {
                    if let Some(piece) = call["function"]["arguments"].as_str() {
                        tool.push_str(piece);
                    }
                }
            }
            if reply.content.len() + tool.len() > MAX_ANSWER {
                return Err(AssistantError::BadAnswer("the answer is too long".into()));
            }
        }
        if finished || chunk.is_none() {
            break;
        }
        if events.pending() > MAX_ANSWER {
            return Err(AssistantError::BadAnswer("an event is too long".into()));
        }
    }
    if !finished && finish.is_none() {
        // The body ended as if whole (a close-delimited body, a gateway
        // ending the response on its own error) with neither `[DONE]` nor a
        // finish reason: what came may be half an answer, never sent as one.
        return Err(AssistantError::BadAnswer(
            "the stream ended before the answer was complete".into(),
        ));
    }
    if !tool.is_empty() {
        reply.tool_arguments = Some(tool);
    }
    settle(reply, finish.as_deref())
}

/// `reply` as the model's `finish_reason` leaves it: cut at the token limit
/// (`length`), its text ends at its last whole sentence (tool arguments cut
/// short no longer parse and are dropped by the reader); filtered by the
/// server (`content_filter`), it is no answer.
fn settle(mut reply: Reply, finish: Option<&str>) -> Result<Reply, AssistantError> {
    match finish {
        Some("content_filter") => Err(AssistantError::Refused {
            status: 200,
            message: "the model server filtered the answer (content_filter)".into(),
        }),
        Some("length") => {
            if let Some(end) = last_sentence_end(&reply.content) {
                reply.content.truncate(end);
            }
            Ok(reply)
        }
        _ => Ok(reply),
    }
}

/// The byte end of the last whole sentence of `text` (its stop and any
/// closing quote or bracket), if a sentence ends before its last words.
fn last_sentence_end(text: &str) -> Option<usize> {
    let mut end = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？' | '\n') {
            let mut stop = i + c.len_utf8();
            while let Some(&(j, q)) = chars.peek() {
                if !matches!(q, '"' | '\'' | ')' | '”' | '’' | '»') {
                    break;
                }
                stop = j + q.len_utf8();
                chars.next();
            }
            // A full stop inside a word ("3.5", "example.com") is not a
            // sentence's end; a CJK stop has no space after it.
            if c != '.' || chars.peek().is_none_or(|&(_, next)| next.is_whitespace()) {
                end = Some(stop);
            }
        }
    }
    end.filter(|&e| !text[..e].trim().is_empty())
}

/// A non-streamed answer.
fn whole(v: &Value) -> Result<Reply, AssistantError> {
    let message = &v["choices"][0]["message"];
    if message.is_null() {
        return Err(AssistantError::BadAnswer("no choices[0].message".into()));
    }
    let tool_arguments = message["tool_calls"]
        .as_array()
        .and_then(|calls| calls.first())
        .and_then(|c| c["function"]["arguments"].as_str())
        .map(str::to_string);
    let reply = Reply {
        content: message["content"].as_str().unwrap_or_default().to_string(),
        tool_arguments,
        usage: usage(v),
    };
    settle(reply, v["choices"][0]["finish_reason"].as_str())
}

fn usage(v: &Value) -> Option<(u64, u64)> {
    let u = v.get("usage")?;
    Some((
        u["prompt_tokens"].as_u64().unwrap_or(0),
        u["completion_tokens"].as_u64().unwrap_or(0),
    ))
}

/// The error an unsuccessful answer stands for.
fn error(status: u16, body: &[u8], retry_after: Option<Duration>) -> AssistantError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let e = &v["error"];
    let code = e["code"].as_str().unwrap_or_default();
    let kind = e["type"].as_str().unwrap_or_default();
    let message = e["message"]
        .as_str()
        .or_else(|| e.as_str())
        .unwrap_or_default();
    if code == "insufficient_quota" || kind == "insufficient_quota" {
        return AssistantError::QuotaExceeded;
    }
    if code == "context_length_exceeded"
        || message.contains("maximum context length")
        || message.contains("exceeds the available context")
        || message.contains("context window")
    {
        return AssistantError::ContextTooLong;
    }
    match status {
        401 => AssistantError::Unauthorized,
        429 => AssistantError::RateLimited { retry_after },
        408 | 409 | 500..=599 => AssistantError::Server { status },
        _ => AssistantError::Refused {
            status,
            message: message.chars().take(300).collect(),
        },
    }
}

/// `Retry-After` in seconds (or `retry-after-ms`, which OpenAI also sends).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    // Any length fits: a pause is capped later, and a value too large for a
    // `Duration` must not panic.
    let seconds = value("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| value("retry-after"))?;
    Some(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
}

/// A body, at most `cap` bytes, within `deadline`.
async fn read_capped(
    response: reqwest::Response,
    deadline: Instant,
    timeout: Duration,
    cap: usize,
) -> Result<Vec<u8>, AssistantError> {
    let mut stream = response.bytes_stream();
    let mut body = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Err(AssistantError::Timeout(timeout)),
            Ok(None) => return Ok(body),
            Ok(Some(Err(e))) => {
                return Err(AssistantError::BadAnswer(format!(
                    "the answer was cut: {}",
                    e.without_url()
                )))
            }
            Ok(Some(Ok(bytes))) => {
                body.extend_from_slice(&bytes);
                if body.len() > cap {
                    body.truncate(cap);
                    return Ok(body);
                }
            }
        }
    }
}

/// Server-sent events from arbitrary byte chunks: the `data` of each event
/// (its `data:` lines joined), comments and other fields ignored.
#[derive(Default)]
struct Events {
    /// The unfinished line (no newline in it yet).
    buffer: Vec<u8>,
    data: Vec<String>,
}

impl Events {
    /// The events completed by `chunk`. Each byte is looked at once, and
    /// the finished lines are dropped from the buffer at once (a long line
    /// or a chunk of many lines costs no more than its length).
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let searched = self.buffer.len();
        self.buffer.extend_from_slice(chunk);
        let buffer = std::mem::take(&mut self.buffer);
        let mut out = Vec::new();
        let mut start = 0;
        let mut from = searched;
        while let Some(at) = buffer[from..].iter().position(|b| *b == b'\n') {
            let end = from + at;
            self.line(&buffer[start..=end], &mut out);
            start = end + 1;
            from = start;
        }
        self.buffer = buffer;
        self.buffer.drain(..start);
        out
    }

    /// Takes one line (its newline included), adding a finished event to
    /// `out`.
    fn line(&mut self, line: &[u8], out: &mut Vec<String>) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches(['\n', '\r']);
        if line.is_empty() {
            if !self.data.is_empty() {
                out.push(std::mem::take(&mut self.data).join("\n"));
            }
        } else if let Some(value) = line.strip_prefix("data:") {
            let value = value.strip_prefix(' ').unwrap_or(value);
            // `[DONE]` ends the stream even without a blank line after it.
            if value == "[DONE]" && self.data.is_empty() {
                out.push(value.to_string());
            } else {
                self.data.push(value.to_string());
            }
        }
    }

    /// The events the end of the body completes: a last line without its
    /// newline, an event without its blank line.
    fn finish(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let rest = std::mem::take(&mut self.buffer);
        if !rest.is_empty() {
            self.line(&rest, &mut out);
        }
        if !self.data.is_empty() {
            out.push(std::mem::take(&mut self.data).join("\n"));
        }
        out
    }

    fn pending(&self) -> usize {
        self.buffer.len() + self.data.iter().map(String::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_any_chunking() {
        let text =
            "data: {\"a\":1}\n\n: keep-alive\n\ndata: {\"b\":\r\ndata: 2}\r\n\r\ndata: [DONE]\n";
        for split in 1..text.len() {
            let mut e = Events::default();
            let (a, b) = text.as_bytes().split_at(split);
            let mut got = e.push(a);
            got.extend(e.push(b));
            assert_eq!(
                got,
                ["{\"a\":1}", "{\"b\":\n2}", "[DONE]"],
                "split at {split}"
            );
        }
    }

    #[test]
    fn the_body_s_end_completes_its_last_event() {
        let mut e = Events::default();
        assert!(e.push(b"data: {\"a\":1}\n").is_empty());
        assert_eq!(e.finish(), ["{\"a\":1}"]);
        let mut e = Events::default();
        assert!(e.push(b"data: [DONE]").is_empty());
        assert_eq!(e.finish(), ["[DONE]"]);
        assert!(Events::default().finish().is_empty());
    }

    #[test]
    fn many_lines_in_one_chunk_or_one_long_line_cost_their_length() {
        // 200,000 lines in one chunk: each byte looked at once (this took
        // minutes when each line was drained from the front).
        let chunk = "data: x\n\n".repeat(200_000);
        let mut e = Events::default();
        let started = std::time::Instant::now();
        assert_eq!(e.push(chunk.as_bytes()).len(), 200_000);
        // A long line fed a byte at a time is searched once.
        let mut e = Events::default();
        for _ in 0..200_000 {
            assert!(e.push(b"y").is_empty());
        }
        assert_eq!(e.push(b"\n\n").len(), 0, "not a data line");
        eprintln!("took {:?}", started.elapsed());
    }

    #[test]
    fn any_retry_after_is_read_without_panicking() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "1e20".parse().unwrap());
        assert!(retry_after(&h).is_some_and(|d| d > Duration::from_secs(3600)));
        h.insert("retry-after-ms", "1e300".parse().unwrap());
        assert!(retry_after(&h).is_some_and(|d| d > Duration::from_secs(3600)));
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn a_cut_answer_ends_at_its_last_whole_sentence() {
        let cut = |text: &str| {
            let reply = Reply {
                content: text.into(),
                ..Reply::default()
            };
            settle(reply, Some("length")).unwrap().content
        };
        assert_eq!(
            cut("We ship in 2.5 days. Returns are"),
            "We ship in 2.5 days."
        );
        assert_eq!(
            cut("Yes! (See \"Returns.\") And"),
            "Yes! (See \"Returns.\")"
        );
        assert_eq!(cut("First line\nsecond"), "First line\n");
        assert_eq!(cut("no stop at all"), "no stop at all");
        assert_eq!(cut("营业时间为九点。周"), "营业时间为九点。");
    }

    #[test]
    fn errors_follow_the_openai_shapes() {
        let quota = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert!(matches!(
            error(429, quota, None),
            AssistantError::QuotaExceeded
        ));
        let ctx = br#"{"error":{"message":"This model's maximum context length is 4096 tokens","type":"invalid_request_error","code":"context_length_exceeded"}}"#;
        assert!(matches!(
            error(400, ctx, None),
            AssistantError::ContextTooLong
        ));
        assert!(matches!(
            error(429, b"{}", Some(Duration::from_secs(2))),
            AssistantError::RateLimited {
                retry_after: Some(_)
            }
        ));
        assert!(matches!(
            error(401, b"", None),
            AssistantError::Unauthorized
        ));
        assert!(matches!(
            error(503, b"<html>", None),
            AssistantError::Server { status: 503 }
        ));
        assert!(matches!(
            error(404, br#"{"error":{"message":"model not found"}}"#, None),
            AssistantError::Refused { status: 404, .. }
        ));
    }
}
