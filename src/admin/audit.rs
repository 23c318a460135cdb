//! The audit log: every change made through the admin API (any method but
//! GET), by whom (`admin` or `key:{id}` of a tenant key), when, on what
//! and with what status, kept in the store and listed by
//! `GET /api/v1/audit` (a tenant key sees its own tenant's entries).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::Method;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::keys::Caller;
use super::AdminError;
use crate::clock::now_ms;
use crate::conversation::EngineContext;
use crate::store::{RecordKind, StoreError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at_ms: u64,
    /// `admin`, or `key:{id}` for a tenant key.
    pub who: String,
    /// The tenant of the key (none for the admin token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// The id of the tenant key a request came with (a request extension).
#[derive(Debug, Clone)]
pub struct KeyId(pub String);

/// Keeps an entry for a request that changed something.
pub async fn record(
    ctx: &EngineContext,
    caller: &Caller,
    key: Option<&KeyId>,
    method: &Method,
    path: &str,
    status: u16,
) {
    if *method == Method::GET || *method == Method::HEAD {
        return;
    }
    let (who, tenant) = match (caller, key) {
        (Caller::Admin, _) => ("admin".to_string(), None),
        (Caller::Tenant(t), Some(k)) => (format!("key:{}", k.0), Some(t.clone())),
        (Caller::Tenant(t), None) => ("key".to_string(), Some(t.clone())),
    };
    let entry = AuditEntry {
        at_ms: now_ms(),
        who,
        tenant,
        method: method.to_string(),
        path: path.to_string(),
        status,
    };
    let id = format!("{:015}-{:08x}", entry.at_ms, rand::random::<u32>());
    let stored = match serde_json::to_vec(&entry) {
        Ok(bytes) => ctx.store.put_record(RecordKind::Audit, &id, bytes).await,
        Err(e) => Err(crate::store::StoreError::Corrupt(e.to_string())),
    };
    if let Err(e) = stored {
        tracing::error!(error = %e, who = %entry.who, path, "Audit entry not kept");
    }
}

/// Deletes the entries older than `before_ms` (`store.audit_retention`);
/// returns how many.
pub async fn purge(store: &dyn crate::store::Store, before_ms: u64) -> Result<u64, StoreError> {
    let mut removed = 0;
    for (key, _) in store.records(RecordKind::Audit).await? {
        // Keys start with the entry's time in ms.
        let at = key
            .split('-')
            .next()
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        if at < before_ms && store.delete_record(RecordKind::Audit, &key).await? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// `GET /audit?limit=` (newest first, 100 by default, at most 1000).
pub async fn list(
    State(ctx): State<Arc<EngineContext>>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AdminError> {
    let limit = match params.get("limit") {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| AdminError::BadRequest("limit must be between 1 and 1000".into()))?,
    };
    let mut records = ctx.store.records(RecordKind::Audit).await?;
    records.sort_by(|a, b| b.0.cmp(&a.0));
    let entries: Vec<AuditEntry> = records
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice::<AuditEntry>(&v).ok())
        .filter(|e| match &caller {
            Caller::Admin => true,
            Caller::Tenant(t) => e.tenant.as_deref() == Some(t.as_str()),
        })
        .take(limit)
        .collect();
    Ok(Json(json!({ "entries": entries })))
}
