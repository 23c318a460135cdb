//! Listing by integration (the conversation index, paged) and by scan,
//! and the timer shards.

use futures_util::TryStreamExt;

use super::{corrupt, unavailable, ScyllaStore};
use crate::store::Store;
use crate::store::{ConversationFilter, ConversationRecord, StoreError};

/// Each integration once, in the order of their ids' prefixes (`fb2:`
/// sorts before `fb:`).
pub(super) fn distinct(integrations: &[String]) -> Vec<String> {
    let mut out = integrations.to_vec();
    out.sort_by_key(|i| format!("{i}:"));
    out.dedup();
    out
}

/// Shards of the timer index.
pub const TIMER_SHARDS: i32 = 64;

/// The timer shard of a conversation: a stable hash of its id (FNV-1a), so
/// every instance and release puts it in the same one.
pub(super) fn timer_shard(id: &str) -> i32 {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % TIMER_SHARDS as u64) as i32
}

impl ScyllaStore {
    /// The whole table, paged, sorted by id: the listing of every
    /// integration's conversations.
    pub(super) async fn list_by_scan(
        &self,
        filter: &ConversationFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let mut rows = self
            .session
            .execute_iter(self.st.select_conversations.clone(), ())
            .await
            .map_err(unavailable)?
            .rows_stream::<(String, Option<String>, Option<Vec<u8>>)>()
            .map_err(corrupt)?;
        let mut all = Vec::new();
        while let Some((id, _, state)) = rows.try_next().await.map_err(unavailable)? {
            if after.is_some_and(|a| id.as_str() <= a) {
                continue;
            }
            let Some(bytes) = state else { continue };
            let record: ConversationRecord = serde_json::from_slice(&bytes).map_err(corrupt)?;
            if filter.matches(&record) {
                all.push(record);
            }
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all.truncate(limit);
        Ok(all)
    }

    /// An integration's index rows (id, last activity) in id order, after
    /// `after` when given, paged by the driver.
    pub(super) async fn index_rows(
        &self,
        integration: &str,
        after: Option<&str>,
    ) -> Result<
        impl futures_util::Stream<Item = Result<(String, Option<i64>), scylla::errors::NextRowError>>,
        StoreError,
    > {
        let pager = match after {
            Some(a) => {
                self.session
                    .execute_iter(self.st.select_index_after.clone(), (integration, a))
                    .await
            }
            None => {
                self.session
                    .execute_iter(self.st.select_index.clone(), (integration,))
                    .await
            }
        };
        pager
            .map_err(unavailable)?
            .rows_stream::<(String, Option<i64>)>()
            .map_err(corrupt)
    }

    /// Per integration, its partition of the conversation index, paged in
    /// id order from `after`, each listed conversation's state read by key.
    pub(super) async fn list_by_index(
        &self,
        integrations: &[String],
        filter: &ConversationFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let integrations = distinct(integrations);
        let mut out = Vec::new();
        for integration in &integrations {
            // Ids are `{integration}:{customer}`: an integration's ids sort
            // together, in the same order as the integrations.
            let from = after.filter(|a| *a >= format!("{integration}:").as_str());
            if after.is_some_and(|a| a >= format!("{integration};").as_str()) {
                continue;
            }
            let mut ids = self.index_rows(integration, from).await?;
            while let Some((id, _)) = ids.try_next().await.map_err(unavailable)? {
                if from.is_some_and(|a| id.as_str() <= a) {
                    continue;
                }
                let Some(record) = self.conversation(&id).await? else {
                    continue;
                };
                if filter.matches(&record) {
                    out.push(record);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }
}
