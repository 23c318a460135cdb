//! One assistant's passages in a tantivy index held in memory: BM25 over
//! the heading (boosted) and the text, analysed for the assistant's
//! language (lower-cased, stop words removed, stemmed).

use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{doc, Index, IndexReader, ReloadPolicy, TantivyDocument};

use super::split::{self, Passage};
use super::KnowledgeError;
use crate::store::DocumentRecord;

const ANALYZER: &str = "kb";
/// Indexing memory (tantivy's smallest per-thread budget).
const WRITER_BYTES: usize = 15_000_000;

/// A passage found for a question.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Its number in the assistant's index.
    pub position: usize,
    pub document: String,
    /// The document's title, and the heading above the passage.
    pub title: String,
    pub text: String,
    pub faq_answer: Option<String>,
    pub score: f32,
}

pub struct AssistantIndex {
    index: Index,
    reader: IndexReader,
    document: Field,
    heading: Field,
    text: Field,
    answer: Field,
    position: Field,
    /// Each passage's embedding with the passage, by position (empty when
    /// the documents carry none).
    vectors: Vec<(Vec<f32>, Hit)>,
    pub passages: usize,
}

/// The analyser for `language` (`english`, `french`, `german`, ...).
pub fn language(name: &str) -> Option<Language> {
    Some(match name.to_ascii_lowercase().as_str() {
        "arabic" => Language::Arabic,
        "danish" => Language::Danish,
        "dutch" => Language::Dutch,
        "english" => Language::English,
        "finnish" => Language::Finnish,
        "french" => Language::French,
        "german" => Language::German,
        "greek" => Language::Greek,
        "hungarian" => Language::Hungarian,
        "italian" => Language::Italian,
        "norwegian" => Language::Norwegian,
        "portuguese" => Language::Portuguese,
        "romanian" => Language::Romanian,
        "russian" => Language::Russian,
        "spanish" => Language::Spanish,
        "swedish" => Language::Swedish,
        "tamil" => Language::Tamil,
        "turkish" => Language::Turkish,
        _ => return None,
    })
}

/// English words that carry no topic in a customer's question (pronouns,
/// auxiliaries, question words), beyond the classic stop-word list: a
/// question shares them with every FAQ entry, so they must not make a
/// passage "fit".
const ENGLISH_QUESTION_WORDS: &[&str] = &[
    "a", "about", "am", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by", "can",
    "could", "did", "do", "does", "for", "from", "had", "has", "have", "hello", "hi", "how", "i",
    "if", "im", "in", "into", "is", "it", "its", "just", "me", "my", "no", "not", "of", "on", "or",
    "our", "please", "should", "so", "such", "thank", "thanks", "that", "the", "their", "then",
    "there", "these", "they", "this", "to", "us", "was", "we", "what", "when", "where", "which",
    "who", "why", "will", "with", "would", "you", "your",
];

fn analyzer(lang: Language) -> TextAnalyzer {
    let builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .dynamic();
    let stop = if lang == Language::English {
        Some(StopWordFilter::remove(
            ENGLISH_QUESTION_WORDS.iter().map(|w| w.to_string()),
        ))
    } else {
        StopWordFilter::new(lang)
    };
    let builder = match stop {
        Some(stop) => builder.filter_dynamic(stop),
        None => builder,
    };
    builder.filter_dynamic(Stemmer::new(lang)).build()
}

/// `{document title} — {heading}`, or the title alone.
pub fn passage_title(title: &str, heading: &str) -> String {
    if heading == title {
        heading.to_string()
    } else {
        format!("{title} — {heading}")
    }
}

fn failed(e: tantivy::TantivyError) -> KnowledgeError {
    KnowledgeError::Index(e.to_string())
}

impl AssistantIndex {
    /// Indexes every passage of `documents`.
    pub fn build(documents: &[DocumentRecord], lang: Language) -> Result<Self, KnowledgeError> {
        let mut schema = Schema::builder();
        let indexed = TextOptions::default()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(ANALYZER)
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            )
            .set_stored();
        let document = schema.add_text_field("document", STRING | STORED);
        let heading = schema.add_text_field("heading", indexed.clone());
        let text = schema.add_text_field("text", indexed);
        let answer = schema.add_text_field("answer", STORED);
        let position = schema.add_u64_field("position", STORED);
        let index = Index::create_in_ram(schema.build());
        index.tokenizers().register(ANALYZER, analyzer(lang));
        let mut writer = index
            .writer_with_num_threads::<TantivyDocument>(1, WRITER_BYTES)
            .map_err(failed)?;
        let mut passages = 0;
        let mut vectors = Vec::new();
        for d in documents {
            let parts = split::passages(&d.title, &d.text);
            let embedded = d.vectors.len() == parts.len();
            for (
                i,
                Passage {
                    heading: h,
                    text: t,
                    faq_answer,
                },
            ) in parts.into_iter().enumerate()
            {
                let title = passage_title(&d.title, &h);
                if embedded {
                    vectors.push((
                        d.vectors[i].clone(),
                        Hit {
                            position: passages,
                            document: d.id.clone(),
                            title: title.clone(),
                            text: t.clone(),
                            faq_answer: faq_answer.clone(),
                            score: 0.0,
                        },
                    ));
                }
                let mut doc = doc!(
                    document => d.id.as_str(),
                    heading => title,
                    text => t,
                    position => passages as u64
                );
                if let Some(a) = faq_answer {
                    doc.add_text(answer, a);
                }
                writer.add_document(doc).map_err(failed)?;
                passages += 1;
            }
        }
        writer.commit().map_err(failed)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(failed)?;
        Ok(Self {
            index,
            reader,
            document,
            heading,
            text,
            answer,
            position,
            vectors,
            passages,
        })
    }

    /// Whether its passages have embeddings.
    pub fn has_vectors(&self) -> bool {
        !self.vectors.is_empty()
    }

    /// The `k` passages nearest to `query` (a normalised vector), by cosine.
    pub fn nearest(&self, query: &[f32], k: usize) -> Vec<Hit> {
        let mut scored: Vec<(f32, &Hit)> = self
            .vectors
            .iter()
            .map(|(v, hit)| (super::embed::dot(v, query), hit))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored
            .into_iter()
            .take(k)
            .map(|(score, hit)| Hit {
                score,
                ..hit.clone()
            })
            .collect()
    }

    /// The best `k` passages for `query` (BM25), best first.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, KnowledgeError> {
        let mut parser = QueryParser::for_index(&self.index, vec![self.heading, self.text]);
        parser.set_field_boost(self.heading, 1.5);
        // Free text from customers: quotes, colons and the like are words.
        let cleaned: String = query
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { ' ' })
            .collect();
        let (parsed, _) = parser.parse_query_lenient(&cleaned);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&parsed, &TopDocs::with_limit(k.max(1)))
            .map_err(failed)?;
        let mut out = Vec::with_capacity(top.len());
        for (score, address) in top {
            let d: TantivyDocument = searcher.doc(address).map_err(failed)?;
            let text_of = |f: Field| d.get_first(f).and_then(|v| v.as_str()).map(str::to_string);
            let position = d
                .get_first(self.position)
                .and_then(|v| v.as_u64())
                .unwrap_or_default() as usize;
            out.push(Hit {
                position,
                document: text_of(self.document).unwrap_or_default(),
                title: text_of(self.heading).unwrap_or_default(),
                text: text_of(self.text).unwrap_or_default(),
                faq_answer: text_of(self.answer),
                score,
            });
        }
        Ok(out)
    }
}
