//! Reply shaping: markdown stripped for channels that show text as it is
//! (their platform says so: Messenger, Instagram), then text split under the
//! channel's limit at
//! paragraph, then sentence, then word boundaries. Limits count characters.

use crate::channels::platform::platform;
use crate::event::Channel;

/// Parts of one answer of the assistant, at most: a longer text (a model
/// repeating itself until its token limit) is cut after this many, never
/// sent as dozens of messages. A person's message is sent whole.
pub const MAX_PARTS: usize = 10;

/// The parts to send, in order: at most [`MAX_PARTS`] when `capped`.
pub fn shape(text: &str, channel: Channel, max_len: usize, capped: bool) -> Vec<String> {
    // Only what can make the parts kept is looked at (a text of megabytes
    // is not split whole).
    let room = max_len.max(1).saturating_mul(MAX_PARTS + 1);
    let text = match text.char_indices().nth(room).filter(|_| capped) {
        Some((end, _)) => &text[..end],
        None => text,
    };
    let text = if platform(channel).is_some_and(|p| p.plain_text()) {
        strip_markdown(text)
    } else {
        text.to_string()
    };
    let mut parts = split(&text, max_len);
    if capped && parts.len() > MAX_PARTS {
        tracing::warn!(
            parts = parts.len(),
            kept = MAX_PARTS,
            "A message longer than the parts one message may take; the rest is not sent"
        );
        parts.truncate(MAX_PARTS);
    }
    parts
}

/// Removes markdown emphasis, headings, code fences and link syntax,
/// keeping the words (a link keeps its URL in parentheses).
pub fn strip_markdown(text: &str) -> String {
    let mut lines = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            continue;
        }
        let mut l = if trimmed.starts_with('#') {
            trimmed.trim_start_matches('#').trim_start().to_string()
        } else {
            trimmed.to_string()
        };
        if let Some(rest) = l.strip_prefix("* ").or_else(|| l.strip_prefix("- ")) {
            l = format!("• {rest}");
        }
        lines.push(strip_inline(&l));
    }
    lines.join("\n")
}

fn strip_inline(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // [text](url) -> text (url)
        if c == '[' {
            if let Some(close) = chars[i..].iter().position(|&x| x == ']').map(|p| p + i) {
                if chars.get(close + 1) == Some(&'(') {
                    if let Some(end) = chars[close..]
                        .iter()
                        .position(|&x| x == ')')
                        .map(|p| p + close)
                    {
                        let label: String = chars[i + 1..close].iter().collect();
                        let url: String = chars[close + 2..end].iter().collect();
                        out.push_str(&format!("{label} ({url})"));
                        i = end + 1;
                        continue;
                    }
                }
            }
        }
        let prev = if i == 0 { ' ' } else { chars[i - 1] };
        let next = chars.get(i + 1).copied().unwrap_or(' ');
        let is_marker = match c {
            '*' | '`' | '~' => true,
            // An underscore inside a word (snake_case) is kept.
            '_' => !(prev.is_alphanumeric() && next.is_alphanumeric()),
            _ => false,
        };
        // A lone '*' between spaces ("2 * 3") is kept.
        if is_marker && !(c == '*' && prev == ' ' && next == ' ') {
            i += 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Splits `text` into parts of at most `max_len` characters, preferring a
/// paragraph break, then a sentence end, then a space; a run with none of
/// them is cut hard. Empty parts are dropped.
pub fn split(text: &str, max_len: usize) -> Vec<String> {
    let max_len = max_len.max(1);
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if rest.chars().count() <= max_len {
            parts.push(rest.to_string());
            break;
        }
        // Byte index just past the first `max_len` characters.
        let limit = rest
            .char_indices()
            .nth(max_len)
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let window = &rest[..limit];
        let cut = last_break(window, &["\n\n"])
            .or_else(|| last_sentence_end(window))
            .or_else(|| last_break(window, &["\n", " "]))
            .unwrap_or(limit);
        let (head, tail) = rest.split_at(cut);
        let head = head.trim();
        if !head.is_empty() {
            parts.push(head.to_string());
        }
        rest = tail.trim_start();
    }
    parts
}

/// End of the last separator in `window`, if it leaves a non-empty head.
fn last_break(window: &str, seps: &[&str]) -> Option<usize> {
    seps.iter()
        .filter_map(|sep| window.rfind(sep).map(|i| i + sep.len()))
        .filter(|&i| !window[..i].trim().is_empty())
        .max()
}

fn last_sentence_end(window: &str) -> Option<usize> {
    let bytes = window.as_bytes();
    (1..bytes.len()).rev().find(|&i| {
        matches!(bytes[i - 1], b'.' | b'!' | b'?')
            && matches!(bytes[i], b' ' | b'\n')
            && !window[..i].trim().is_empty()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runaway_text_is_cut_after_the_parts_a_message_may_take() {
        let text = "The same sentence again. ".repeat(200_000);
        let parts = shape(&text, Channel::Messenger, 2000, true);
        assert_eq!(parts.len(), MAX_PARTS);
        assert!(
            parts.iter().all(|p| p.ends_with("again.")),
            "cut at sentences"
        );
        // A person's long message goes whole.
        let text = "Paragraph of a person. ".repeat(1000);
        assert_eq!(shape(&text, Channel::Messenger, 2000, false).len(), 12);
    }

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split("Hello there.", 2000), vec!["Hello there."]);
        assert!(split("   ", 10).is_empty());
    }

    #[test]
    fn prefers_paragraphs_then_sentences_then_words() {
        let text = "First paragraph here.\n\nSecond one is longer than that.";
        assert_eq!(
            split(text, 40),
            vec!["First paragraph here.", "Second one is longer than that."]
        );
        let text = "One sentence. Two sentence. Three sentence.";
        assert_eq!(
            split(text, 30),
            vec!["One sentence. Two sentence.", "Three sentence."]
        );
        let text = "alpha beta gamma delta epsilon";
        assert_eq!(
            split(text, 12),
            vec!["alpha beta", "gamma delta", "epsilon"]
        );
    }

    #[test]
    fn hard_cut_without_boundaries_and_counts_chars_not_bytes() {
        let text = "ééééééééé"; // 9 chars, 18 bytes
        assert_eq!(split(text, 4), vec!["éééé", "éééé", "é"]);
    }

    #[test]
    fn every_part_fits_and_nothing_is_lost() {
        let text = "Lorem ipsum dolor sit amet. ".repeat(200);
        for limit in [50, 2000, 640] {
            let parts = split(&text, limit);
            assert!(parts.iter().all(|p| p.chars().count() <= limit));
            let joined: String = parts.join(" ");
            assert_eq!(
                joined.split_whitespace().count(),
                text.split_whitespace().count()
            );
        }
    }

    #[test]
    fn strips_markdown_for_messenger() {
        let md = "# Hours\n**Open** 9-5, _Mon_-Fri.\n- see [site](https://x.example)\n```\ncode\n```\nuse snake_case and 2 * 3";
        assert_eq!(
            strip_markdown(md),
            "Hours\nOpen 9-5, Mon-Fri.\n• see site (https://x.example)\ncode\nuse snake_case and 2 * 3"
        );
        assert_eq!(
            shape("**hi**", Channel::Whatsapp, 100, true),
            vec!["**hi**"]
        );
        assert_eq!(shape("**hi**", Channel::Messenger, 100, true), vec!["hi"]);
    }
}
