//! The assistants' knowledge bases: documents stored per assistant (in
//! its tenant's store), split into passages ([`split`]) and indexed for
//! full-text search in memory ([`index`]: tantivy, BM25, the assistant's
//! language). The best passages for a customer's turn go into the model's
//! prompt; when none scores `knowledge_min_score`, the assistant is told
//! nothing fits. Every instance keeps its indexes in step with the store:
//! a change made here applies at once, one made elsewhere within
//! [`REFRESH`] (the store's knowledge revision is polled).

pub mod embed;
pub mod index;
pub mod split;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use index::Hit;
use index::{language, AssistantIndex};

use crate::clock::now_ms;
use crate::config::Config;
use crate::store::{DocumentRecord, Store, StoreError};
use crate::telemetry;

/// How often another instance's changes are looked for.
pub const REFRESH: Duration = Duration::from_secs(2);

/// Longest document text taken, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 2 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("no assistant {0:?}")]
    UnknownAssistant(String),
    #[error("{0}")]
    Invalid(String),
    /// Integrations of several tenants use the assistant: documents would
    /// be shared between them.
    #[error("assistant {assistant:?} answers for several tenants ({tenants}); a knowledge base belongs to one: give each tenant its own assistant")]
    Shared { assistant: String, tenants: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("knowledge index failed: {0}")]
    Index(String),
    #[error("embeddings failed: {0}")]
    Embeddings(String),
}

impl KnowledgeError {
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Store(e) if e.retryable())
    }
}

/// What the search found for one turn.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Retrieval {
    /// The passages scoring at least the assistant's minimum, best first
    /// (empty: nothing in the knowledge base fits).
    pub passages: Vec<Hit>,
}

/// A document as listed.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentSummary {
    pub id: String,
    pub title: String,
    pub characters: usize,
    pub created: String,
}

struct Settings {
    language: tantivy::tokenizer::Language,
    passages: usize,
    min_score: f32,
    tenant: Option<String>,
    handover_on_miss: bool,
    embedder: Option<Arc<embed::Embedder>>,
    min_similarity: f32,
    /// The tenants whose integrations use it.
    used_by: Vec<String>,
}

pub struct Knowledge {
    store: Arc<dyn Store>,
    settings: HashMap<String, Settings>,
    indexes: RwLock<HashMap<String, Arc<AssistantIndex>>>,
    /// The store's revision the indexes were built from (`u64::MAX`: never).
    revision: AtomicU64,
    /// Whether the documents were ever read from the store: until then no
    /// index is "no documents" only as far as this instance knows.
    loaded: AtomicBool,
    /// When a turn last tried to read them (ms): at most once a second, so
    /// turns do not queue behind a store that does not answer.
    tried_ms: AtomicU64,
    /// Held while documents are read and indexes built and swapped, so a
    /// refresh that read the store before a change here cannot put back
    /// what the change removed.
    changing: tokio::sync::Mutex<()>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl Knowledge {
    pub fn new(config: &Config, store: Arc<dyn Store>) -> Self {
        let settings = config
            .assistants
            .iter()
            .map(|a| {
                let tenant = a.tenant.clone().or_else(|| {
                    config
                        .integrations
                        .iter()
                        .find(|i| i.assistant == a.id)
                        .map(|i| i.tenant.clone())
                });
                let settings = Settings {
                    language: language(&a.language)
                        .unwrap_or(tantivy::tokenizer::Language::English),
                    passages: a.knowledge_passages,
                    min_score: a.knowledge_min_score,
                    tenant,
                    handover_on_miss: a.on_no_match == crate::config::OnNoMatch::Handover,
                    embedder: embedder(a),
                    min_similarity: a.knowledge_min_similarity,
                    used_by: {
                        let mut t: Vec<String> = config
                            .integrations
                            .iter()
                            .filter(|i| i.assistant == a.id)
                            .map(|i| i.tenant.clone())
                            .collect();
                        t.sort();
                        t.dedup();
                        t
                    },
                };
                (a.id.clone(), settings)
            })
            .collect();
        Self {
            store,
            settings,
            indexes: RwLock::new(HashMap::new()),
            revision: AtomicU64::new(u64::MAX),
            loaded: AtomicBool::new(false),
            tried_ms: AtomicU64::new(0),
            changing: tokio::sync::Mutex::new(()),
        }
    }

    /// The tenant an assistant's documents belong to.
    pub fn tenant_of(&self, assistant: &str) -> Option<&str> {
        self.settings
            .get(assistant)
            .and_then(|s| s.tenant.as_deref())
    }

    fn settings(&self, assistant: &str) -> Result<&Settings, KnowledgeError> {
        self.settings
            .get(assistant)
            .ok_or_else(|| KnowledgeError::UnknownAssistant(assistant.to_string()))
    }

    /// Rebuilds every index from the store if its revision moved.
    pub async fn refresh(&self) -> Result<(), KnowledgeError> {
        let _changing = self.changing.lock().await;
        let revision = self.store.knowledge_revision().await?;
        if revision == self.revision.load(Ordering::Acquire) {
            return Ok(());
        }
        let documents = self.store.documents().await?;
        let mut by_assistant: HashMap<String, Vec<DocumentRecord>> = HashMap::new();
        for d in documents {
            by_assistant.entry(d.assistant.clone()).or_default().push(d);
        }
        let mut built = HashMap::new();
        let mut failed = None;
        for (assistant, docs) in by_assistant {
            let Ok(settings) = self.settings(&assistant) else {
                continue;
            };
            match build(docs, settings.language).await {
                Ok(index) => {
                    built.insert(assistant, index);
                }
                // One assistant's index that cannot be built keeps its last
                // one; the others are rebuilt all the same.
                Err(e) => {
                    tracing::error!(assistant = %assistant, error = %e, "Knowledge index not rebuilt; the last one is kept");
                    if let Some(last) = read(&self.indexes).get(&assistant).cloned() {
                        built.insert(assistant, last);
                    }
                    failed = Some(e);
                }
            }
        }
        *write(&self.indexes) = built;
        self.loaded.store(true, Ordering::Release);
        match failed {
            // The revision is not taken: the next refresh tries again.
            Some(e) => Err(e),
            None => {
                self.revision.store(revision, Ordering::Release);
                Ok(())
            }
        }
    }

    async fn documents_of(&self, assistant: &str) -> Result<Vec<DocumentRecord>, KnowledgeError> {
        Ok(self
            .store
            .documents()
            .await?
            .into_iter()
            .filter(|d| d.assistant == assistant)
            .collect())
    }

    /// Rebuilds one assistant's index from the store (after a change here).
    async fn rebuild(&self, assistant: &str) -> Result<(), KnowledgeError> {
        let lang = self.settings(assistant)?.language;
        let docs = self.documents_of(assistant).await?;
        if docs.is_empty() {
            write(&self.indexes).remove(assistant);
            return Ok(());
        }
        let index = build(docs, lang).await?;
        write(&self.indexes).insert(assistant.to_string(), index);
        Ok(())
    }

    /// Adds a document to an assistant's knowledge base.
    pub async fn add(
        &self,
        assistant: &str,
        title: &str,
        text: &str,
    ) -> Result<DocumentRecord, KnowledgeError> {
        let settings = self.settings(assistant)?;
        if settings.used_by.len() > 1 {
            return Err(KnowledgeError::Shared {
                assistant: assistant.to_string(),
                tenants: settings.used_by.join(", "),
            });
        }
        let title = title.trim();
        if title.is_empty() || title.chars().count() > 300 {
            return Err(KnowledgeError::Invalid(
                "title must be 1 to 300 characters".into(),
            ));
        }
        if text.trim().is_empty() {
            return Err(KnowledgeError::Invalid("text must not be empty".into()));
        }
        if text.len() > MAX_DOCUMENT_BYTES {
            return Err(KnowledgeError::Invalid(format!(
                "text is longer than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        let vectors = match &settings.embedder {
            Some(embedder) => {
                let texts: Vec<String> = split::passages(title, text)
                    .into_iter()
                    .map(|p| format!("{}\n{}", index::passage_title(title, &p.heading), p.text))
                    .collect();
                embedder.embed(&texts).await?
            }
            None => Vec::new(),
        };
        let doc = DocumentRecord {
            assistant: assistant.to_string(),
            id: format!("doc_{:016x}", rand::random::<u64>()),
            tenant: settings.tenant.clone(),
            title: title.to_string(),
            text: text.to_string(),
            created_ms: now_ms(),
            vectors,
        };
        let _changing = self.changing.lock().await;
        self.store.put_document(doc.clone()).await?;
        self.rebuild(assistant).await?;
        Ok(doc)
    }

    /// An assistant's documents, oldest first.
    pub async fn list(&self, assistant: &str) -> Result<Vec<DocumentSummary>, KnowledgeError> {
        self.settings(assistant)?;
        let mut docs = self.documents_of(assistant).await?;
        docs.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(docs
            .into_iter()
            .map(|d| DocumentSummary {
                characters: d.text.chars().count(),
                created: crate::clock::rfc3339(d.created_ms),
                id: d.id,
                title: d.title,
            })
            .collect())
    }

    /// Removes a document; false if the assistant has none with that id.
    pub async fn delete(&self, assistant: &str, id: &str) -> Result<bool, KnowledgeError> {
        self.settings(assistant)?;
        let _changing = self.changing.lock().await;
        let removed = self.store.delete_document(assistant, id).await?;
        if removed {
            self.rebuild(assistant).await?;
        }
        Ok(removed)
    }

    /// The passages for `query` from an assistant's knowledge base; `None`
    /// when it has no documents. BM25 alone, or fused with the nearest
    /// passages by embedding (reciprocal rank fusion) when the assistant
    /// has an embeddings model; a passage fits when its BM25 score reaches
    /// `knowledge_min_score` or its similarity `knowledge_min_similarity`.
    pub async fn retrieve(&self, assistant: &str, query: &str) -> Option<Retrieval> {
        let settings = self.settings.get(assistant)?;
        let index = read(&self.indexes).get(assistant).cloned()?;
        let started = Instant::now();
        let wanted = settings.passages.max(1);
        let pool = (wanted * 5).max(20);
        let lexical: Vec<Hit> = match index.search(query, pool) {
            Ok(hits) => hits
                .into_iter()
                .filter(|h| h.score >= settings.min_score)
                .collect(),
            Err(e) => {
                tracing::warn!(assistant, error = %e, "Knowledge search failed; answering without it");
                Vec::new()
            }
        };
        let semantic: Vec<Hit> = match &settings.embedder {
            Some(embedder) if index.has_vectors() => {
                match embedder.embed(&[query.to_string()]).await {
                    Ok(v) => v
                        .first()
                        .map(|q| index.nearest(q, pool))
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|h| h.score >= settings.min_similarity)
                        .collect(),
                    Err(e) => {
                        tracing::warn!(assistant, error = %e, "Question not embedded; full-text search only");
                        Vec::new()
                    }
                }
            }
            _ => Vec::new(),
        };
        let passages = fuse(&[lexical, semantic], wanted);
        telemetry::knowledge_retrieval(
            assistant,
            !passages.is_empty(),
            started.elapsed().as_secs_f64(),
        );
        Some(Retrieval { passages })
    }

    /// Whether a turn nothing fits goes to a person without an answer.
    pub fn hands_over_on_miss(&self, assistant: &str) -> bool {
        self.settings
            .get(assistant)
            .is_some_and(|s| s.handover_on_miss)
    }

    /// What the knowledge base has for a turn, and whether the turn must
    /// go to a person instead ([`crate::assistant::AssistantError::NoMatch`]).
    ///
    /// Until the documents were read from the store once (it did not answer
    /// at start), the turn tries to read them; failing that, it is answered as
    /// one nothing in the knowledge base fits (the model is told not to
    /// guess, a handover assistant hands over), never as if the assistant had
    /// no documents.
    pub async fn for_turn(&self, assistant: &str, query: &str) -> (Option<Retrieval>, bool) {
        if !self.loaded.load(Ordering::Acquire) {
            let now = now_ms();
            let last = self.tried_ms.load(Ordering::Acquire);
            let mine = now >= last.saturating_add(1000)
                && self
                    .tried_ms
                    .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
            if mine {
                if let Err(e) = self.refresh().await {
                    tracing::debug!(error = %e, "Knowledge base not read yet");
                }
            }
            if !self.loaded.load(Ordering::Acquire) {
                let unknown = Retrieval {
                    passages: Vec::new(),
                };
                return (Some(unknown), self.hands_over_on_miss(assistant));
            }
        }
        let found = self.retrieve(assistant, query).await;
        let miss = found.as_ref().is_some_and(|r| r.passages.is_empty());
        let handover = miss && self.hands_over_on_miss(assistant);
        (found, handover)
    }

    /// Passages indexed for an assistant.
    pub fn passages(&self, assistant: &str) -> usize {
        read(&self.indexes).get(assistant).map_or(0, |i| i.passages)
    }

    /// Keeps the indexes in step with changes other instances make.
    pub fn spawn_refresh(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                if let Err(e) = self.refresh().await {
                    tracing::debug!(error = %e, "Knowledge base not refreshed; trying again");
                }
            }
        })
    }
}

/// Reciprocal rank fusion (k = 60) of ranked lists, best `n` first; a
/// passage's score becomes its fused score.
fn fuse(lists: &[Vec<Hit>], n: usize) -> Vec<Hit> {
    if let [only] = lists {
        return only.iter().take(n).cloned().collect();
    }
    let mut scores: HashMap<usize, (f32, Hit)> = HashMap::new();
    for list in lists {
        for (rank, hit) in list.iter().enumerate() {
            let add = 1.0 / (60.0 + rank as f32 + 1.0);
            scores
                .entry(hit.position)
                .or_insert_with(|| (0.0, hit.clone()))
                .0 += add;
        }
    }
    let mut fused: Vec<(f32, Hit)> = scores.into_values().collect();
    fused.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.position.cmp(&b.1.position)));
    fused
        .into_iter()
        .take(n)
        .map(|(score, hit)| Hit { score, ..hit })
        .collect()
}

/// The embedder an assistant's config asks for.
fn embedder(a: &crate::config::AssistantConfig) -> Option<Arc<embed::Embedder>> {
    let model = a.embeddings_model.as_deref()?;
    let base = a.base_url.as_deref()?;
    let key = a.api_key_env.as_ref().and_then(|v| std::env::var(v).ok());
    match embed::Embedder::new(base, model, key, a.timeout) {
        Ok(e) => Some(Arc::new(e)),
        Err(e) => {
            tracing::error!(assistant = %a.id, error = %e, "Embeddings disabled");
            None
        }
    }
}

/// Indexes `docs` on a blocking thread.
async fn build(
    docs: Vec<DocumentRecord>,
    lang: tantivy::tokenizer::Language,
) -> Result<Arc<AssistantIndex>, KnowledgeError> {
    let index = tokio::task::spawn_blocking(move || AssistantIndex::build(&docs, lang))
        .await
        .map_err(|e| KnowledgeError::Index(e.to_string()))??;
    Ok(Arc::new(index))
}
