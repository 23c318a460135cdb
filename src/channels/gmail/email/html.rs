//! An email's HTML body as text: the converter for ordinary mail, and
//! for markup too deep or too long for it, the text between the tags.

/// HTML this deep or this long is read by dropping its tags: the
/// converter's table layout recurses as deep as the markup, and an email
/// built to be deep would exhaust a worker's stack.
pub(super) const MAX_HTML_DEPTH: usize = 200;
const MAX_HTML_BYTES: usize = 1 << 20;

/// An HTML body as text.
pub(super) fn html_text(h: &str) -> String {
    if h.len() > MAX_HTML_BYTES || html_deeper_than(h, MAX_HTML_DEPTH) {
        return strip_tags(h);
    }
    html2text::from_read(h.as_bytes(), 100).unwrap_or_else(|_| strip_tags(h))
}

/// Elements without content, never open.
const VOID: [&str; 14] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Elements whose end tag may be left out: a parent's end tag closes them.
const OPTIONAL_END: [&str; 11] = [
    "p", "li", "td", "th", "tr", "dt", "dd", "option", "tbody", "thead", "tfoot",
];

/// Whether the markup's elements may nest deeper than `limit`, counted
/// high rather than low (too high only means reading by dropping tags):
/// `<div/>` opens a div like `<div>` (only void elements close
/// themselves); an end tag closes only the element open last (after those
/// whose end tag may be left out), never one further down, as a parser
/// may not; a `p`, `li`, `td`, `tr`, `dt`, `dd` or `option` closes the one
/// of its kind it follows; comments and what `script`, `style`,
/// `textarea` and `title` hold are not markup.
pub(super) fn html_deeper_than(h: &str, limit: usize) -> bool {
    let mut open: Vec<String> = Vec::new();
    let mut rest = h;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        if let Some(comment) = rest.strip_prefix("!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..end];
        rest = &rest[end..];
        let (closing, tag) = match tag.strip_prefix('/') {
            Some(t) => (true, t),
            None => (false, tag),
        };
        if !tag.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        let name = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>()
            .to_ascii_lowercase();
        if closing {
            while open
                .last()
                .is_some_and(|top| *top != name && OPTIONAL_END.contains(&top.as_str()))
            {
                open.pop();
            }
            if open.last() == Some(&name) {
                open.pop();
            }
            continue;
        }
        if VOID.contains(&name.as_str()) {
            continue;
        }
        if matches!(name.as_str(), "script" | "style" | "textarea" | "title") {
            // Its text runs to its own end tag.
            rest = end_tag(rest, &name).map_or("", |at| &rest[at..]);
            continue;
        }
        let sibling = matches!(
            name.as_str(),
            "p" | "li" | "td" | "tr" | "dt" | "dd" | "option"
        );
        if sibling && open.last() == Some(&name) {
            open.pop();
        }
        open.push(name);
        if open.len() > limit {
            return true;
        }
    }
    false
}

/// Where the end tag of `name` (any case) starts in `rest`.
fn end_tag(rest: &str, name: &str) -> Option<usize> {
    rest.match_indices("</").map(|(at, _)| at).find(|&at| {
        rest.get(at + 2..at + 2 + name.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(name))
    })
}

/// The text between the tags, a line for each block, with the common
/// entities read; what `<style>`, `<script>` and `<title>` hold is left
/// out.
pub(super) fn strip_tags(h: &str) -> String {
    let mut out = String::with_capacity(h.len().min(1 << 16));
    let mut rest = h;
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        // `<` not followed by a name, `/` or `!` is text.
        if !rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!') {
            out.push('<');
            continue;
        }
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = rest[..end].to_ascii_lowercase();
        rest = rest.get(end + 1..).unwrap_or_default();
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        let hides = matches!(name.as_str(), "style" | "script" | "title");
        if hides && !closing && !tag.ends_with('/') {
            // Up to its end tag (one left open hides nothing).
            if let Some(close) = end_tag(rest, &name) {
                rest = &rest[close..];
                continue;
            }
        }
        if matches!(
            name.as_str(),
            "br" | "p" | "div" | "tr" | "li" | "blockquote" | "h1" | "h2" | "h3" | "table"
        ) {
            out.push('\n');
        } else {
            out.push(' ');
        }
    }
    out.push_str(rest);
    let out = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let mut text = String::new();
    for line in out.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        // At most one blank line in a row.
        if line.is_empty() && (text.is_empty() || text.ends_with("\n\n")) {
            continue;
        }
        text.push_str(&line);
        text.push('\n');
    }
    text.trim().to_string()
}
