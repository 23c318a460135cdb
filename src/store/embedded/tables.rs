//! The tables of the embedded store: one fjall keyspace each, keys as
//! [`super::keys`] writes them, values JSON unless said.

use std::path::Path;

use fjall::{KeyspaceCreateOptions, SingleWriterTxDatabase, SingleWriterTxKeyspace};

pub struct Tables {
    /// Conversation id -> state.
    pub conversations: SingleWriterTxKeyspace,
    /// (conversation, seq) -> message-log line.
    pub messages: SingleWriterTxKeyspace,
    /// (conversation, expiry ms, mid) -> nothing. In expiry order within a
    /// conversation, so rehydration reads only the live ones and the
    /// retention sweep only the ones it forgets.
    pub remembered: SingleWriterTxKeyspace,
    /// Conversation id -> next deadline ms (u64).
    pub timers: SingleWriterTxKeyspace,
    /// Number (u64, in the order they came) -> dead letter.
    pub dead_letters: SingleWriterTxKeyspace,
    /// Conversations a person has: id -> auto-resume ms (u64, 0: none).
    pub takeovers: SingleWriterTxKeyspace,
    /// Quarantined conversations: id -> record.
    pub quarantine: SingleWriterTxKeyspace,
    /// Daily rollups: (integration, day u32) -> inbound, outbound,
    /// delivered, read (four u64).
    pub analytics: SingleWriterTxKeyspace,
    /// Knowledge-base documents: (assistant, id) -> record.
    pub documents: SingleWriterTxKeyspace,
    /// Revision counters (u64): "knowledge", "control:{kind}".
    pub revisions: SingleWriterTxKeyspace,
    /// Tenants' API keys: key hash -> record.
    pub tenant_keys: SingleWriterTxKeyspace,
    /// Control records: (kind, key) -> bytes.
    pub control: SingleWriterTxKeyspace,
}

impl Tables {
    /// Opens (or creates) every table; a table created now holds at most
    /// `memtable_bytes` of new writes in memory before they are written
    /// out (a table keeps the size it was created with).
    pub fn open(db: &SingleWriterTxDatabase, memtable_bytes: u64) -> Result<Self, fjall::Error> {
        let options = || KeyspaceCreateOptions::default().max_memtable_size(memtable_bytes);
        let ks = |name: &str| db.keyspace(name, options);
        Ok(Self {
            conversations: ks("conversations")?,
            messages: ks("messages")?,
            remembered: ks("remembered_ids")?,
            timers: ks("timers")?,
            dead_letters: ks("dead_letters")?,
            takeovers: ks("takeovers")?,
            quarantine: ks("quarantine")?,
            analytics: ks("analytics")?,
            documents: ks("documents")?,
            revisions: ks("revisions")?,
            tenant_keys: ks("tenant_keys")?,
            control: ks("control")?,
        })
    }

    /// Every table, for compaction.
    pub fn all(&self) -> [&SingleWriterTxKeyspace; 12] {
        [
            &self.conversations,
            &self.messages,
            &self.remembered,
            &self.timers,
            &self.dead_letters,
            &self.takeovers,
            &self.quarantine,
            &self.analytics,
            &self.documents,
            &self.revisions,
            &self.tenant_keys,
            &self.control,
        ]
    }
}

/// The memory a table keeps new writes in before they are flushed to its
/// files, for a block cache of `cache_bytes`: an eighth of it, from 8 to
/// 64 MiB (a bounded buffer, not a cost per conversation, but at the
/// default cache it is kept small beside the conversations themselves).
pub fn memtable_bytes(cache_bytes: u64) -> u64 {
    (cache_bytes / 8).clamp(8 << 20, 64 << 20)
}

/// Opens (or creates) the store's database in `dir`, with a block cache of
/// `cache_bytes` and `threads` background threads for flushes and
/// compactions (0: the store engine's default, one per core up to 4).
pub fn open_db(
    dir: &Path,
    cache_bytes: u64,
    threads: usize,
) -> Result<SingleWriterTxDatabase, fjall::Error> {
    let builder = SingleWriterTxDatabase::builder(dir).cache_size(cache_bytes);
    if threads > 0 {
        builder.worker_threads(threads).open()
    } else {
        builder.open()
    }
}

/// Four counters as stored.
pub fn sums_bytes(sums: [u64; 4]) -> Vec<u8> {
    sums.iter().flat_map(|n| n.to_be_bytes()).collect()
}

/// Four counters read back (`None`: not four u64).
pub fn sums_of(v: &[u8]) -> Option<[u64; 4]> {
    if v.len() != 32 {
        return None;
    }
    let mut out = [0u64; 4];
    for (o, chunk) in out.iter_mut().zip(v.chunks_exact(8)) {
        *o = u64::from_be_bytes(chunk.try_into().ok()?);
    }
    Some(out)
}
