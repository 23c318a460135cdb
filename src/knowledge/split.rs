//! Documents into passages: HTML is turned into text first (headings kept
//! as Markdown `#` lines); text is cut at headings, then paragraphs are
//! gathered up to [`TARGET`] characters, each passage starting with the
//! end of the one before ([`OVERLAP`]) so an answer that straddles a cut
//! is still found whole in one of them. A section whose heading is a
//! question, or a `Q:` / `A:` pair, is an FAQ entry: its answer is kept so
//! an assistant without a model can give it as it is.

/// Characters a passage aims at (a paragraph longer than this is cut at
/// sentences).
pub const TARGET: usize = 700;
/// Characters carried over from the end of the previous passage.
pub const OVERLAP: usize = 150;

/// One passage of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    /// The headings above it (the document title when none).
    pub heading: String,
    pub text: String,
    /// The answer, when the passage is an FAQ entry.
    pub faq_answer: Option<String>,
}

/// The text of an uploaded HTML page.
pub fn html_to_text(html: &str) -> String {
    html2text::from_read(html.as_bytes(), 100).unwrap_or_else(|_| html.to_string())
}

/// `text` (plain or Markdown) as passages.
pub fn passages(title: &str, text: &str) -> Vec<Passage> {
    let mut out = Vec::new();
    for section in sections(text) {
        let heading = if section.heading.is_empty() {
            title.to_string()
        } else {
            section.heading.clone()
        };
        let faq = faq_answer(&section.heading, &section.paragraphs);
        for (i, text) in chunks(&section.paragraphs).into_iter().enumerate() {
            out.push(Passage {
                heading: heading.clone(),
                faq_answer: if i == 0 { faq.clone() } else { None },
                text,
            });
        }
    }
    out
}

struct Section {
    heading: String,
    paragraphs: Vec<String>,
}

fn sections(text: &str) -> Vec<Section> {
    let mut out = vec![Section {
        heading: String::new(),
        paragraphs: Vec::new(),
    }];
    let mut paragraph = String::new();
    let flush = |paragraph: &mut String, out: &mut Vec<Section>| {
        let p = paragraph.trim();
        if !p.is_empty() {
            if let Some(last) = out.last_mut() {
                last.paragraphs.push(p.to_string());
            }
        }
        paragraph.clear();
    };
    for line in text.lines() {
        let trimmed = line.trim();
        let heading = trimmed.trim_start_matches('#');
        if trimmed.starts_with('#') && heading.starts_with(' ') {
            flush(&mut paragraph, &mut out);
            out.push(Section {
                heading: heading.trim().to_string(),
                paragraphs: Vec::new(),
            });
        } else if trimmed.is_empty() {
            flush(&mut paragraph, &mut out);
        } else {
            if !paragraph.is_empty() {
                paragraph.push('\n');
            }
            paragraph.push_str(trimmed);
        }
    }
    flush(&mut paragraph, &mut out);
    out.retain(|s| !s.paragraphs.is_empty());
    out
}

/// The answer of an FAQ entry: a question heading's text, or a paragraph
/// `Q: ... A: ...`.
fn faq_answer(heading: &str, paragraphs: &[String]) -> Option<String> {
    if heading.trim_end().ends_with('?') {
        return Some(paragraphs.join("\n\n"));
    }
    let first = paragraphs.first()?;
    let rest = first.strip_prefix("Q:")?;
    let (_, answer) = rest.split_once("\nA:")?;
    Some(answer.trim().to_string())
}

/// Paragraphs gathered into passages of about [`TARGET`] characters.
fn chunks(paragraphs: &[String]) -> Vec<String> {
    let pieces: Vec<String> = paragraphs
        .iter()
        .flat_map(|p| {
            if p.len() <= TARGET {
                vec![p.clone()]
            } else {
                sentences(p)
            }
        })
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for piece in pieces {
        if !current.is_empty() && current.len() + piece.len() > TARGET {
            let carried = tail(&current, OVERLAP);
            out.push(std::mem::take(&mut current));
            current = carried;
        }
        if !current.is_empty() {
            current.push_str("\n\n");
        }
        current.push_str(&piece);
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// A long paragraph cut into runs of sentences of at most [`TARGET`]
/// characters (a sentence longer than that is cut at words).
fn sentences(p: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for word in p.split_inclusive(char::is_whitespace) {
        current.push_str(word);
        let ends = word.trim_end().ends_with(['.', '!', '?']);
        if (ends && current.len() >= TARGET / 2) || current.len() >= TARGET {
            out.push(current.trim().to_string());
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

/// The last `n` characters or so of `text`, from a word boundary.
fn tail(text: &str, n: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= n {
        return text.to_string();
    }
    let start: String = chars[chars.len() - n..].iter().collect();
    match start.split_once(char::is_whitespace) {
        Some((_, rest)) => rest.trim_start().to_string(),
        None => start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_cut_sections_and_questions_are_faq_entries() {
        let text = "Intro line.\n\n# Shipping\nWe ship in 2 days.\n\n## How do I return an item?\nSend it back within 30 days.\n\nQ: Do you gift wrap?\nA: Yes, for 2 euros.";
        let p = passages("Policies", text);
        assert_eq!(p[0].heading, "Policies");
        assert_eq!(p[1].heading, "Shipping");
        assert_eq!(p[2].heading, "How do I return an item?");
        assert_eq!(
            p[2].faq_answer.as_deref(),
            Some("Send it back within 30 days.\n\nQ: Do you gift wrap?\nA: Yes, for 2 euros.")
        );
        assert!(p[1].faq_answer.is_none());
        let qa = passages("FAQ", "Q: Do you gift wrap?\nA: Yes, for 2 euros.");
        assert_eq!(qa[0].faq_answer.as_deref(), Some("Yes, for 2 euros."));
    }

    #[test]
    fn long_text_is_cut_with_overlap_and_nothing_lost() {
        let sentence = "The lamp uses a warm LED bulb that lasts for years. ";
        let text = sentence.repeat(60);
        let p = passages("Lamp", &text);
        assert!(p.len() > 2);
        assert!(p.iter().all(|x| x.text.len() <= TARGET + OVERLAP + 60));
        let words: usize = text.split_whitespace().count();
        let covered: usize = p.iter().map(|x| x.text.split_whitespace().count()).sum();
        assert!(covered >= words, "every word is in a passage");
    }

    #[test]
    fn html_headings_become_sections() {
        let text = html_to_text(
            "<h1>Returns</h1><p>Within 30 days.</p><h2>Refunds</h2><p>To your card.</p>",
        );
        let p = passages("Help", &text);
        assert!(p
            .iter()
            .any(|x| x.heading.contains("Refunds") && x.text.contains("card")));
    }
}
