//! Connected accounts. The integrations of the config file and those
//! created at run time (through the admin API or the Meta connect flow,
//! kept in the store with their secrets sealed) in one registry that every
//! part of the engine reads: the webhook routes find an account's
//! integration here, the actors their settings, the senders their tokens.
//!
//! A change made on any instance is seen by every other within
//! `engine.integrations_poll` (the store's revision is polled), and at once
//! when a webhook or an event names an integration this instance does not
//! know yet.

pub mod check;
pub mod health;
pub mod sealed;
mod stored;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::config::{Config, IntegrationConfig};
use crate::store::{RecordKind, Store, StoreError};
pub use health::{TokenHealth, TokenStatus};
pub use sealed::{KeyRing, SealError};

/// Where an integration is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `[[integrations]]` in the config file.
    Config,
    /// Created through the API or the connect flow; kept in the store.
    Api,
}

#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("integration '{0}' is defined in the config file; change it there")]
    FromConfig(String),
}

impl IntegrationError {
    /// Worth trying again later (the store did not answer).
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Store(e) if e.retryable())
    }
}

#[derive(Clone)]
pub struct Entry {
    pub config: Arc<IntegrationConfig>,
    pub origin: Origin,
}

#[derive(Default)]
struct Snapshot {
    by_id: HashMap<String, Entry>,
    /// (app, account id) -> integration.
    by_account: HashMap<(String, String), Arc<IntegrationConfig>>,
    /// (app, account id) of stored integrations this instance cannot use
    /// until its config names what they need.
    aside: std::collections::HashSet<(String, String)>,
    /// Stored integrations that could not be read (a key missing here):
    /// whose accounts they are is not known.
    unreadable: bool,
    /// The ids of stored integrations set aside or unreadable here.
    unusable: std::collections::HashSet<String>,
    /// Whether the store's integrations were read (always, without a store).
    complete: bool,
}

impl Snapshot {
    fn build(entries: impl IntoIterator<Item = Entry>) -> Self {
        let mut s = Self::default();
        for e in entries {
            s.by_account.insert(
                (e.config.app.clone(), e.config.account_id.clone()),
                e.config.clone(),
            );
            s.by_id.insert(e.config.id.clone(), e);
        }
        s
    }
}

/// Every integration this instance knows, kept fresh from the store.
pub struct Integrations {
    config: Arc<Config>,
    from_config: Vec<Arc<IntegrationConfig>>,
    snapshot: RwLock<Arc<Snapshot>>,
    store: Option<Arc<dyn Store>>,
    keys: Option<KeyRing>,
    /// The store revision the snapshot was built from.
    seen: tokio::sync::Mutex<Option<u64>>,
    pub tokens: TokenHealth,
}

impl Integrations {
    /// The config file's integrations only (tools, unit tests).
    pub fn from_config(config: Arc<Config>) -> Self {
        Self::new(config, None, None)
    }

    pub fn new(config: Arc<Config>, store: Option<Arc<dyn Store>>, keys: Option<KeyRing>) -> Self {
        let from_config: Vec<Arc<IntegrationConfig>> =
            config.integrations.iter().cloned().map(Arc::new).collect();
        let snapshot = Snapshot::build(from_config.iter().map(|c| Entry {
            config: c.clone(),
            origin: Origin::Config,
        }));
        let tokens = TokenHealth::default();
        for c in &from_config {
            tokens.known(&c.id);
        }
        Self {
            config,
            from_config,
            snapshot: RwLock::new(Arc::new(snapshot)),
            store,
            keys,
            seen: tokio::sync::Mutex::new(None),
            tokens,
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<IntegrationConfig>> {
        self.snapshot().by_id.get(id).map(|e| e.config.clone())
    }

    pub fn entry(&self, id: &str) -> Option<Entry> {
        self.snapshot().by_id.get(id).cloned()
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.snapshot().by_id.contains_key(id)
    }

    /// Every integration, by id.
    pub fn entries(&self) -> Vec<Entry> {
        let mut all: Vec<Entry> = self.snapshot().by_id.values().cloned().collect();
        all.sort_by(|a, b| a.config.id.cmp(&b.config.id));
        all
    }

    pub fn values(&self) -> Vec<Arc<IntegrationConfig>> {
        self.entries().into_iter().map(|e| e.config).collect()
    }

    /// The integration of `account` on `app`.
    pub fn by_account(&self, app: &str, account: &str) -> Option<Arc<IntegrationConfig>> {
        self.snapshot()
            .by_account
            .get(&(app.to_string(), account.to_string()))
            .cloned()
    }

    /// Whether `account` on `app`, which no integration here has, may still
    /// be one this instance cannot tell now: a stored integration names what
    /// the config does not have (an assistant, app or tenant taken out), one
    /// cannot be read (a key missing here), or the store's were never read
    /// (it did not answer). Its webhooks are refused so that Meta brings
    /// them again, never taken and dropped.
    pub fn doubtful(&self, app: &str, account: &str) -> bool {
        let s = self.snapshot();
        (self.store.is_some() && !s.complete)
            || s.unreadable
            || s.aside.contains(&(app.to_string(), account.to_string()))
    }

    /// Whether integration `id`, which this instance does not have, may
    /// still exist: its stored record is set aside or unreadable here, or
    /// the store's were never read. Its conversations' events wait; they
    /// are never taken for a deleted integration's and dropped.
    pub fn doubtful_id(&self, id: &str) -> bool {
        let s = self.snapshot();
        (self.store.is_some() && !s.complete) || s.unusable.contains(id)
    }

    /// The key ring, when one is set.
    pub fn keys(&self) -> Option<&KeyRing> {
        self.keys.as_ref()
    }

    /// Reloads the stored integrations when the store's revision moved.
    pub async fn refresh(&self) -> Result<bool, IntegrationError> {
        let Some(store) = &self.store else {
            return Ok(false);
        };
        let mut seen = self.seen.lock().await;
        let revision = store.records_revision(RecordKind::Integrations).await?;
        if *seen == Some(revision) {
            return Ok(false);
        }
        let records = store.records(RecordKind::Integrations).await?;
        // A record that cannot be used now (a key or an assistant missing on
        // this instance) keeps the entry it had: it is not taken for deleted.
        let previous = self.snapshot();
        let kept = |id: &str| previous.by_id.get(id).cloned();
        let mut aside = std::collections::HashSet::new();
        let mut unreadable = false;
        let mut unusable = std::collections::HashSet::new();
        let mut entries: HashMap<String, Entry> = self
            .from_config
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    Entry {
                        config: c.clone(),
                        origin: Origin::Config,
                    },
                )
            })
            .collect();
        for (id, bytes) in records {
            match stored::open(&bytes, self.keys.as_ref()) {
                Ok(config) if config.id == id => {
                    if let Some(missing) = self.missing_reference(&config) {
                        tracing::error!(integration = %id, missing, "A stored integration names what the config no longer has; ignored until it does");
                        aside.insert((config.app.clone(), config.account_id.clone()));
                        unusable.insert(id.clone());
                        if let Some(entry) = kept(&id) {
                            entries.insert(id, entry);
                        }
                        continue;
                    }
                    self.tokens.known(&id);
                    // A stored copy of a config integration overrides it
                    // (changed through the API); it still says where it
                    // came from.
                    let origin = entries.get(&id).map_or(Origin::Api, |e| e.origin);
                    entries.insert(
                        id,
                        Entry {
                            config: Arc::new(config),
                            origin,
                        },
                    );
                }
                Ok(_) => {
                    tracing::error!(integration = %id, "A stored integration names another id; ignored")
                }
                Err(e) => {
                    tracing::error!(integration = %id, error = %e, "A stored integration cannot be read; ignored");
                    unusable.insert(id.clone());
                    match kept(&id) {
                        Some(entry) => {
                            entries.insert(id, entry);
                        }
                        None => unreadable = true,
                    }
                }
            }
        }
        let mut snapshot = Snapshot::build(entries.into_values());
        snapshot.aside = aside;
        snapshot.unreadable = unreadable;
        snapshot.unusable = unusable;
        snapshot.complete = true;
        let snapshot = Arc::new(snapshot);
        // Deleted or disabled since: their token status is no longer said.
        for (id, before) in &previous.by_id {
            let now_off = snapshot.by_id.get(id).is_none_or(|e| !e.config.enabled);
            if before.config.enabled && now_off {
                self.tokens.forget(id);
            }
        }
        match self.snapshot.write() {
            Ok(mut s) => *s = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
        *seen = Some(revision);
        Ok(true)
    }

    /// Looks in the store again, at most once a second, when a webhook or
    /// an event names something this instance does not know: a change made
    /// on another instance applies at once.
    /// False when the store could not be read (what it holds is not known).
    pub async fn look_again(&self) -> bool {
        // Never skipped: a caller that found a refresh in flight waits for
        // it (they are one at a time) and then reads the revision itself,
        // one small read when nothing changed.
        match self.refresh().await {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(error = %e, "Integrations not reloaded");
                false
            }
        }
    }

    /// Keeps the registry fresh until the task is aborted.
    pub fn spawn_refresh(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        let every = self.config.engine.integrations_poll;
        tokio::spawn(async move {
            let mut logged = false;
            loop {
                tokio::time::sleep(every).await;
                match self.refresh().await {
                    Ok(_) => logged = false,
                    Err(e) if !logged => {
                        logged = true;
                        tracing::warn!(error = %e, "Integrations not reloaded from the store");
                    }
                    Err(_) => {}
                }
            }
        })
    }

    /// Checks `candidate` against the config and every other integration.
    pub fn validate(&self, candidate: &IntegrationConfig) -> Result<(), IntegrationError> {
        let mut config = (*self.config).clone();
        config.integrations = self
            .values()
            .into_iter()
            .filter(|i| i.id != candidate.id)
            .map(|i| (*i).clone())
            .collect();
        if let Some(e) = self.assistant_of_another_tenant(candidate) {
            return Err(IntegrationError::Invalid(vec![e]));
        }
        let at = config.integrations.len();
        config.integrations.push(candidate.clone());
        let prefix = format!("integrations[{at}].");
        let Err(errors) = crate::config::validate(&config) else {
            return Ok(());
        };
        let mine: Vec<String> = errors
            .into_iter()
            .filter(|e| e.starts_with(&prefix) || e.starts_with("integrations:"))
            .map(|e| e.trim_start_matches(&prefix).to_string())
            // Another tenant is never named.
            .map(|e| match e.find("belongs to tenant") {
                Some(at) => format!("{}belongs to another tenant", &e[..at]),
                None => e,
            })
            .collect();
        if mine.is_empty() {
            Ok(())
        } else {
            Err(IntegrationError::Invalid(mine))
        }
    }

    /// What a stored integration names that the config does not have (the
    /// config changed since it was stored).
    fn missing_reference(&self, c: &IntegrationConfig) -> Option<String> {
        let config = &self.config;
        if config.assistant(&c.assistant).is_none() {
            return Some(format!("assistant \"{}\"", c.assistant));
        }
        // Only Meta's channels come through an app (Gmail and web chat
        // have none).
        if c.channel.is_meta() && !config.apps.iter().any(|a| a.id == c.app) {
            return Some(format!("app \"{}\"", c.app));
        }
        if !config.tenants.iter().any(|t| t.id == c.tenant) {
            return Some(format!("tenant \"{}\"", c.tenant));
        }
        None
    }

    /// An assistant answers for one tenant (its knowledge base is that
    /// tenant's): one used by another tenant's integration is refused.
    fn assistant_of_another_tenant(&self, candidate: &IntegrationConfig) -> Option<String> {
        self.values()
            .into_iter()
            .filter(|i| i.id != candidate.id && i.assistant == candidate.assistant)
            .find(|i| i.tenant != candidate.tenant)
            .map(|_| {
                format!(
                    "assistant: \"{}\" answers for another tenant; give tenant \"{}\" an assistant of its own",
                    candidate.assistant, candidate.tenant
                )
            })
    }

    /// Stores `config` (created or changed) with its secrets sealed, and
    /// applies it here at once.
    pub async fn put(&self, config: &IntegrationConfig) -> Result<(), IntegrationError> {
        let store = self.store.as_ref().ok_or_else(|| {
            StoreError::Unavailable("integrations cannot be stored without a store".into())
        })?;
        self.validate(config)?;
        let keys = self.keys.as_ref().ok_or(SealError::NoKeys)?;
        let bytes = stored::seal(config, keys)?;
        // An earlier integration of this id whose purge a stop cut short
        // is purged first: what is left of it is not the new one's.
        store.finish_purge(&config.id).await?;
        store
            .put_record(RecordKind::Integrations, &config.id, bytes)
            .await?;
        self.refresh().await?;
        Ok(())
    }

    /// Forgets a stored integration (a config one cannot be deleted, only
    /// disabled; a stored change to it is undone). `false` when unknown.
    pub async fn delete(&self, id: &str) -> Result<bool, IntegrationError> {
        let Some(store) = &self.store else {
            return Ok(false);
        };
        let removed = store.delete_record(RecordKind::Integrations, id).await?;
        if !removed && self.from_config.iter().any(|c| c.id == id) {
            return Err(IntegrationError::FromConfig(id.to_string()));
        }
        self.refresh().await?;
        Ok(removed)
    }

    /// Seals every stored secret again under the newest key; returns how
    /// many records changed.
    pub async fn rotate_keys(&self) -> Result<usize, IntegrationError> {
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("no store to rotate keys in".into()))?;
        let keys = self.keys.as_ref().ok_or(SealError::NoKeys)?;
        let mut changed = 0;
        for (id, bytes) in store.records(RecordKind::Integrations).await? {
            if stored::sealed_with_newest(&bytes, keys)? {
                continue;
            }
            let config = stored::open(&bytes, Some(keys))?;
            store
                .put_record(RecordKind::Integrations, &id, stored::seal(&config, keys)?)
                .await?;
            changed += 1;
        }
        Ok(changed)
    }
}

/// `switchboard rotate-keys`: opens the store of `config` and seals every
/// stored secret again under the newest key; returns how many records
/// changed and that key's id.
pub async fn rotate_keys(config: Config) -> Result<(usize, String), anyhow::Error> {
    let keys = KeyRing::from_env()?.ok_or(SealError::NoKeys)?;
    let newest = keys.newest().to_string();
    let store = crate::app::open_stores(&config).await?;
    let registry = Integrations::new(Arc::new(config), Some(store), Some(keys));
    let n = registry.rotate_keys().await?;
    Ok((n, newest))
}

/// `"****" + last 4` of a secret (all stars when it is short).
pub fn masked(secret: &crate::config::Secret) -> String {
    let s = secret.expose();
    if s.is_empty() {
        return String::new();
    }
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 8 {
        return "****".into();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("****{tail}")
}
