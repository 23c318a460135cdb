//! The embedded store's engine, redb, against an LSM engine, fjall, on the
//! same stream of turns: many conversations answered concurrently, every
//! turn group-committed by one writer thread, fsynced per group (`sync`)
//! or not (`interval`: one sync at the end).
//!
//! The redb side is the engine's own `EmbeddedStore`. The fjall side writes
//! the same records with the same encoding (JSON state and lines, the same
//! indexes, analytics summed per day) to one keyspace per table, one write
//! batch per group. The turns are built before the clock starts, so the
//! figures are the store's alone: turns per second, CPU per turn (both
//! processes' threads, fjall's flushes and compactions included: the run
//! waits for them), bytes written to the disk per turn, and the size on
//! disk at the end.
//!
//!   cargo bench --features fjall-bench --bench store_engines
//!   STORE_ENGINES_CONVERSATIONS=100000 STORE_ENGINES_TURNS=4 cargo bench ...

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use switchboard::conversation::turn::Conversation;
use switchboard::store::embedded::EmbeddedStore;
use switchboard::store::{MessageRecord, Mode, Store, TurnWrite};
use tokio::sync::oneshot;

#[path = "support/fixtures.rs"]
mod fixtures;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Conversations answered at once (the actors with a turn in flight).
const CONCURRENCY: usize = 512;
/// Turns one fjall group takes at most.
const GROUP: usize = 1024;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The turns of `conversations` conversations, `turns` each, in the order
/// they are committed: every conversation's first turn, then every
/// second one, and so on, split over the concurrent writers.
fn turns(conversations: usize, turns: u64) -> Vec<Vec<Arc<TurnWrite>>> {
    let mut convs: Vec<Conversation> = (0..conversations)
        .map(|n| {
            let customer = (6_543_210_000u64 + n as u64).to_string();
            let id = format!("acme-fb:{customer}");
            Conversation::new(fixtures::integration(), &id, &customer, None, fixtures::NOW)
        })
        .collect();
    let mut lanes = vec![Vec::new(); CONCURRENCY];
    for i in 0..turns {
        for (n, conv) in convs.iter_mut().enumerate() {
            if let Some(w) = fixtures::answered(conv, i) {
                lanes[n % CONCURRENCY].push(Arc::new(w));
            }
        }
    }
    lanes
}

/// This process's CPU time (user + system) and bytes written to the disk.
fn usage() -> (Duration, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime, fields 14 and 15 of the line (11 and 12 after the name).
    let cpu = Duration::from_millis((ticks(11) + ticks(12)) * 10);
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let written = io
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (cpu, written)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// One group-committing writer over a fjall database: the tables of the
/// embedded store as keyspaces.
struct FjallStore {
    tx: std::sync::mpsc::SyncSender<Queued>,
}

/// A turn waiting for its group, and who waits for its outcome.
type Queued = (Arc<TurnWrite>, oneshot::Sender<Result<(), String>>);

struct Tables {
    db: Database,
    conversations: Keyspace,
    messages: Keyspace,
    dedup: Keyspace,
    timers: Keyspace,
    takeovers: Keyspace,
    analytics: Keyspace,
}

fn key(id: &str, tail: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.len() + 1 + tail.len());
    k.extend_from_slice(id.as_bytes());
    k.push(0);
    k.extend_from_slice(tail);
    k
}

impl Tables {
    fn open(dir: &Path, cache_bytes: u64) -> Result<Self, fjall::Error> {
        let db = Database::builder(dir).cache_size(cache_bytes).open()?;
        let ks = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
        Ok(Self {
            conversations: ks("conversations")?,
            messages: ks("messages")?,
            dedup: ks("dedup")?,
            timers: ks("timers")?,
            takeovers: ks("takeovers")?,
            analytics: ks("analytics")?,
            db,
        })
    }

    /// One group: every turn's rows in one batch, then one sync if asked.
    fn commit(&self, group: &[Arc<TurnWrite>], sync: bool) -> Result<(), Failure> {
        let mut batch = self.db.batch();
        let mut lines: HashMap<Vec<u8>, MessageRecord> = HashMap::new();
        let mut sums: HashMap<Vec<u8>, [u64; 4]> = HashMap::new();
        for w in group {
            let id = w.state.id.as_str();
            batch.insert(&self.conversations, id, serde_json::to_vec(&w.state)?);
            if w.deadline_changed {
                match w.state.next_deadline() {
                    Some(due) => batch.insert(&self.timers, id, due.to_be_bytes().to_vec()),
                    None => batch.remove(&self.timers, id),
                }
            }
            if w.takeover_changed {
                if w.state.mode == Mode::Human {
                    let resume = w.state.auto_resume_ms.unwrap_or(0);
                    batch.insert(&self.takeovers, id, resume.to_be_bytes().to_vec());
                } else {
                    batch.remove(&self.takeovers, id);
                }
            }
            for c in &w.counts {
                let k = key(&w.state.integration, &c.day.to_be_bytes());
                let sum = sums.entry(k).or_default();
                for (s, add) in sum
                    .iter_mut()
                    .zip([c.inbound, c.outbound, c.delivered, c.read])
                {
                    *s += add;
                }
            }
            for (mid, expires) in &w.dedup {
                let mut tail = expires.to_be_bytes().to_vec();
                tail.extend_from_slice(mid.as_bytes());
                batch.insert(&self.dedup, key(id, &tail), Vec::new());
            }
            for m in &w.messages {
                lines.insert(key(id, &m.seq.to_be_bytes()), m.clone());
            }
            for (seq, status, error) in w.line_changes() {
                let k = key(id, &seq.to_be_bytes());
                let current = match lines.remove(&k) {
                    Some(line) => Some(line),
                    None => match self.messages.get(&k)? {
                        Some(v) => serde_json::from_slice::<MessageRecord>(&v).ok(),
                        None => None,
                    },
                };
                if let Some(mut line) = current {
                    line.status = status;
                    if let Some(why) = error {
                        line.error = Some(why.clone());
                    }
                    lines.insert(k, line);
                }
            }
        }
        for (k, line) in lines {
            batch.insert(&self.messages, k, serde_json::to_vec(&line)?);
        }
        for (k, add) in sums {
            let mut sum = [0u64; 4];
            if let Some(v) = self.analytics.get(&k)? {
                for (s, chunk) in sum.iter_mut().zip(v.chunks_exact(8)) {
                    let mut b = [0; 8];
                    b.copy_from_slice(chunk);
                    *s = u64::from_be_bytes(b);
                }
            }
            let bytes: Vec<u8> = sum
                .iter()
                .zip(add)
                .flat_map(|(s, a)| (s + a).to_be_bytes())
                .collect();
            batch.insert(&self.analytics, k, bytes);
        }
        batch.commit()?;
        if sync {
            self.db.persist(PersistMode::SyncData)?;
        }
        Ok(())
    }

    /// Waits for the flushes and compactions the writes started.
    fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while (self.db.outstanding_flushes() > 0 || self.db.active_compactions() > 0)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl FjallStore {
    fn start(tables: Arc<Tables>, sync: bool) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Queued>(GROUP);
        std::thread::spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut group = vec![first];
                while group.len() < GROUP {
                    match rx.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                let writes: Vec<Arc<TurnWrite>> = group.iter().map(|(w, _)| w.clone()).collect();
                let outcome = tables.commit(&writes, sync).map_err(|e| e.to_string());
                for (_, done) in group {
                    let _ = done.send(outcome.clone());
                }
            }
        });
        Self { tx }
    }

    async fn commit_turn(&self, w: Arc<TurnWrite>) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.tx.send((w, done)).map_err(|e| e.to_string())?;
        wait.await.map_err(|e| e.to_string())?
    }
}

/// Commits every lane's turns in order, the lanes concurrently.
async fn drive<F, Fut>(lanes: &[Vec<Arc<TurnWrite>>], commit: F) -> Result<usize, String>
where
    F: Fn(Arc<TurnWrite>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let mut tasks = tokio::task::JoinSet::new();
    for lane in lanes.iter().cloned() {
        let commit = commit.clone();
        tasks.spawn(async move {
            for w in lane {
                commit(w).await?;
            }
            Ok::<_, String>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(lanes.iter().map(Vec::len).sum())
}

struct Figures {
    turns: usize,
    wall: Duration,
    cpu: Duration,
    written: u64,
    on_disk: u64,
}

fn report(engine: &str, mode: &str, f: &Figures) {
    let turns = f.turns.max(1) as f64;
    println!(
        "| {engine} | {mode} | {:.0} | {:.1} | {:.0} | {:.0} |",
        turns / f.wall.as_secs_f64(),
        f.cpu.as_secs_f64() * 1e6 / turns,
        f.written as f64 / turns,
        f.on_disk as f64 / turns,
    );
}

/// Times `work` (every commit, up to the last one durable), then lets
/// `settle` finish what the engine does in the background, and measures
/// both.
async fn measure(
    dir: &Path,
    work: impl std::future::Future<Output = Result<usize, Failure>>,
    settle: impl FnOnce(),
) -> Result<Figures, Failure> {
    let (cpu0, written0) = usage();
    let start = Instant::now();
    let turns = work.await?;
    let wall = start.elapsed();
    settle();
    let (cpu1, written1) = usage();
    Ok(Figures {
        turns,
        wall,
        cpu: cpu1 - cpu0,
        written: written1 - written0,
        on_disk: dir_bytes(dir),
    })
}

async fn run_redb(
    lanes: &[Vec<Arc<TurnWrite>>],
    dir: &Path,
    cache: usize,
    sync: bool,
) -> Result<Figures, Failure> {
    let store = EmbeddedStore::open(dir, cache)?;
    let store = Arc::new(if sync { store } else { store.sync_later() });
    let s = store.clone();
    let work = async {
        let turns = drive(lanes, move |w| {
            let s = s.clone();
            async move { s.commit_turn(w).await.map_err(|e| e.to_string()) }
        })
        .await?;
        store.sync().await?;
        Ok(turns)
    };
    let figures = measure(dir, work, || ()).await;
    drop(store);
    figures
}

async fn run_fjall(
    lanes: &[Vec<Arc<TurnWrite>>],
    dir: &Path,
    cache: usize,
    sync: bool,
) -> Result<Figures, Failure> {
    let tables = Arc::new(Tables::open(dir, cache as u64)?);
    let store = Arc::new(FjallStore::start(tables.clone(), sync));
    let work = async {
        let turns = drive(lanes, move |w| {
            let s = store.clone();
            async move { s.commit_turn(w).await }
        })
        .await?;
        tables.db.persist(PersistMode::SyncData)?;
        Ok(turns)
    };
    measure(dir, work, || tables.settle()).await
}

fn main() -> Result<(), Failure> {
    let conversations = setting("STORE_ENGINES_CONVERSATIONS", 50_000);
    let per_conversation = setting("STORE_ENGINES_TURNS", 4) as u64;
    let cache = setting("STORE_ENGINES_CACHE_MB", 256) << 20;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let lanes = turns(conversations, per_conversation);
    println!(
        "{conversations} conversations x {per_conversation} answered turns, {CONCURRENCY} at once, \
         cache {} MiB",
        cache >> 20
    );
    println!("| engine | durability | turns/s | CPU µs/turn | disk bytes written/turn | bytes on disk/turn |");
    println!("|---|---|---:|---:|---:|---:|");
    for sync in [true, false] {
        let mode = if sync { "sync" } else { "interval" };
        let dir = tempfile::tempdir()?;
        let f = rt.block_on(run_redb(&lanes, dir.path(), cache, sync))?;
        report("redb", mode, &f);
        let dir = tempfile::tempdir()?;
        let f = rt.block_on(run_fjall(&lanes, dir.path(), cache, sync))?;
        report("fjall", mode, &f);
    }
    Ok(())
}
