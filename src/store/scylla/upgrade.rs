//! The upgrade of a keyspace written by an earlier release, run once after
//! the schema is applied (at start and by `switchboard migrate`): every
//! conversation gets its row in `conversation_index`, and the rows of the
//! old `timers` and `takeovers` tables move to `timer_shards` and
//! `takeovers_by_integration`. Each step is idempotent, so an interrupted
//! upgrade is simply run again; a marker in `control_revision` tells a
//! finished index, so later starts do not read `conversations` again (the
//! old timer and takeover tables are looked at every start: empty, once
//! moved).

use futures_util::TryStreamExt;
use scylla::client::session::Session;

use super::{corrupt, ms, timer_shard, unavailable};
use crate::event::ConversationId;
use crate::store::{ConversationRecord, StoreError};

/// The `control_revision` row marking this upgrade done.
const MARKER: &str = "schema";
const VERSION: i64 = 2;

/// What the upgrade moved.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Upgraded {
    pub conversations: u64,
    pub timers: u64,
    pub takeovers: u64,
}

/// Runs the upgrade unless the keyspace is marked upgraded.
pub async fn upgrade(session: &Session, ks: &str) -> Result<Upgraded, StoreError> {
    let marker = session
        .query_unpaged(
            format!("SELECT revision FROM {ks}.control_revision WHERE kind = ?"),
            (MARKER,),
        )
        .await
        .map_err(unavailable)?
        .into_rows_result()
        .map_err(corrupt)?
        .maybe_first_row::<(Option<i64>,)>()
        .map_err(corrupt)?
        .and_then(|(v,)| v);
    let indexed = marker.is_some_and(|v| v >= VERSION);
    let done = Upgraded {
        conversations: if indexed {
            0
        } else {
            index_conversations(session, ks).await?
        },
        // At every start (the old tables are empty once moved): rows an
        // instance of the earlier release wrote meanwhile move too.
        timers: move_timers(session, ks).await?,
        takeovers: move_takeovers(session, ks).await?,
    };
    if !indexed {
        session
            .query_unpaged(
                format!("INSERT INTO {ks}.control_revision (kind, revision) VALUES (?, ?)"),
                (MARKER, VERSION),
            )
            .await
            .map_err(unavailable)?;
    }
    if done != Upgraded::default() {
        tracing::info!(
            conversations = done.conversations,
            timers = done.timers,
            takeovers = done.takeovers,
            "ScyllaDB keyspace upgraded: conversation index written, timers and takeovers moved"
        );
    }
    Ok(done)
}

async fn index_conversations(session: &Session, ks: &str) -> Result<u64, StoreError> {
    let insert = session
        .prepare(format!(
            "INSERT INTO {ks}.conversation_index (integration, id, last_activity_ms) VALUES (?, ?, ?)"
        ))
        .await
        .map_err(unavailable)?;
    let mut rows = session
        .query_iter(
            format!("SELECT id, integration, state FROM {ks}.conversations"),
            (),
        )
        .await
        .map_err(unavailable)?
        .rows_stream::<(String, Option<String>, Option<Vec<u8>>)>()
        .map_err(corrupt)?;
    let mut n = 0;
    while let Some((id, integration, state)) = rows.try_next().await.map_err(unavailable)? {
        let integration =
            integration.unwrap_or_else(|| ConversationId::integration_of(&id).to_string());
        // A state that cannot be read still gets listed (as idle).
        let last = state
            .and_then(|s| serde_json::from_slice::<ConversationRecord>(&s).ok())
            .map_or(0, |r| r.last_activity_ms);
        session
            .execute_unpaged(&insert, (integration, id, ms(last)))
            .await
            .map_err(unavailable)?;
        n += 1;
    }
    Ok(n)
}

async fn move_timers(session: &Session, ks: &str) -> Result<u64, StoreError> {
    let mut rows = session
        .query_iter(
            format!("SELECT bucket, due_ms, conversation FROM {ks}.timers"),
            (),
        )
        .await
        .map_err(unavailable)?
        .rows_stream::<(i64, i64, String)>()
        .map_err(corrupt)?;
    let mut n = 0;
    while let Some((bucket, due, id)) = rows.try_next().await.map_err(unavailable)? {
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.timer_shards (shard, conversation, due_ms) VALUES (?, ?, ?)"
                ),
                (timer_shard(&id), id.as_str(), due),
            )
            .await
            .map_err(unavailable)?;
        session
            .query_unpaged(
                format!(
                    "DELETE FROM {ks}.timers WHERE bucket = ? AND due_ms = ? AND conversation = ?"
                ),
                (bucket, due, id.as_str()),
            )
            .await
            .map_err(unavailable)?;
        n += 1;
    }
    Ok(n)
}

async fn move_takeovers(session: &Session, ks: &str) -> Result<u64, StoreError> {
    let mut rows = session
        .query_iter(
            format!("SELECT conversation, resume_ms FROM {ks}.takeovers"),
            (),
        )
        .await
        .map_err(unavailable)?
        .rows_stream::<(String, Option<i64>)>()
        .map_err(corrupt)?;
    let mut n = 0;
    while let Some((id, resume)) = rows.try_next().await.map_err(unavailable)? {
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.takeovers_by_integration (integration, conversation, resume_ms) \
                     VALUES (?, ?, ?)"
                ),
                (
                    ConversationId::integration_of(&id),
                    id.as_str(),
                    resume.unwrap_or(0),
                ),
            )
            .await
            .map_err(unavailable)?;
        session
            .query_unpaged(
                format!("DELETE FROM {ks}.takeovers WHERE conversation = ?"),
                (id.as_str(),),
            )
            .await
            .map_err(unavailable)?;
        n += 1;
    }
    Ok(n)
}
