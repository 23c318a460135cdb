//! Who is calling the admin API: the admin token sees everything; a
//! tenant's API key (created and revoked with the admin token, stored as
//! its SHA-256) sees and acts on its own tenant only. What belongs to
//! another tenant is answered 404, exactly as if it did not exist, so ids
//! cannot be probed.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri};
use axum::Json;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::AdminError;
use crate::clock::now_ms;
use crate::conversation::EngineContext;
use crate::event::ConversationId;
use crate::store::TenantKeyRecord;

/// The caller of a request (a request extension set by `authorize`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Tenant(String),
}

/// The hash of the tenant key a request came with (a long stream checks
/// that the key is still there).
#[derive(Debug, Clone)]
pub struct KeyHash(pub String);

/// Hex SHA-256 of a key.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The tenant key `given` is, if it is one.
pub(super) async fn key_of(
    ctx: &EngineContext,
    given: &str,
) -> Result<Option<TenantKeyRecord>, AdminError> {
    if !given.starts_with("sbk_") {
        return Ok(None);
    }
    Ok(ctx.store.tenant_key(&hash(given)).await?)
}

fn not_found() -> AdminError {
    AdminError::NotFound("no such admin API route".into())
}

/// Narrows a tenant key's request to its tenant: ids of other tenants are
/// 404, listings and analytics are filtered to it (a `tenant` asked for
/// must be its own), admin-only routes do not exist for it.
pub(super) fn scope(
    ctx: &EngineContext,
    tenant: &str,
    mut request: Request,
) -> Result<Request, AdminError> {
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let owns_integration = |id: &str| ctx.integrations.get(id).is_some_and(|i| i.tenant == tenant);
    match segments.as_slice() {
        ["conversations", id, ..] => {
            let id = path_decode(id);
            if !owns_integration(ConversationId::integration_of(&id)) {
                return Err(AdminError::NotFound(format!("no conversation {id:?}")));
            }
        }
        ["integrations", id, ..] => {
            let id = path_decode(id);
            if !owns_integration(&id) {
                return Err(AdminError::NotFound(format!("no integration {id:?}")));
            }
        }
        ["integrations"] if request.method() == axum::http::Method::POST => {}
        ["assistants", id, "documents", ..] => {
            let id = path_decode(id);
            if ctx.knowledge.tenant_of(&id) != Some(tenant) {
                return Err(AdminError::NotFound(format!("no assistant {id:?}")));
            }
        }
        ["audit"] => {}
        ["tenants", t, "connect"] if path_decode(t) == tenant => {}
        ["conversations"] | ["analytics"] | ["integrations"] | ["stream"] => {
            let query = request.uri().query().unwrap_or_default().to_string();
            let mut kept = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let value = percent_decode(v);
                // Keys are compared decoded, as the handlers read them.
                match percent_decode(k).as_str() {
                    "tenant" if value != tenant => {
                        return Err(AdminError::NotFound(format!("no tenant {value:?}")))
                    }
                    "tenant" => {}
                    "integration" if !value.is_empty() && !owns_integration(&value) => {
                        return Err(AdminError::NotFound(format!("no integration {value:?}")))
                    }
                    _ => kept.push(pair.to_string()),
                }
            }
            kept.push(format!("tenant={}", percent_encode(tenant)));
            let uri: Uri = format!("{path}?{}", kept.join("&"))
                .parse()
                .map_err(|_| AdminError::BadRequest("the query is not valid".into()))?;
            *request.uri_mut() = uri;
        }
        _ => return Err(not_found()),
    }
    Ok(request)
}

/// A path segment decoded as the handlers' `Path` reads it (`+` is a plus).
fn path_decode(s: &str) -> String {
    decode(s, false)
}

/// A query key or value decoded as the handlers' `Query` reads it (`+` is a
/// space).
fn percent_decode(s: &str) -> String {
    decode(s, true)
}

fn decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(a), Some(b)) => {
                    out.push((a * 16 + b) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `POST /tenants/{tenant}/keys` (admin token only): a new key, shown once.
pub(super) async fn create(
    State(ctx): State<Arc<EngineContext>>,
    Path(tenant): Path<String>,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    if !ctx.config.tenants.iter().any(|t| t.id == tenant) {
        return Err(AdminError::NotFound(format!("no tenant {tenant:?}")));
    }
    let key = format!("sbk_{}", hex::encode(rand::random::<[u8; 32]>()));
    let id = format!("key_{}", hex::encode(rand::random::<[u8; 8]>()));
    ctx.store
        .put_tenant_key(TenantKeyRecord {
            id: id.clone(),
            tenant: tenant.clone(),
            hash: hash(&key),
            created_ms: now_ms(),
        })
        .await?;
    tracing::info!(tenant = %tenant, key = %id, "Tenant API key created");
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "tenant": tenant, "key": key})),
    ))
}

/// `DELETE /tenants/{tenant}/keys/{id}` (admin token only).
pub(super) async fn revoke(
    State(ctx): State<Arc<EngineContext>>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    if ctx.store.delete_tenant_key(&tenant, &id).await? {
        tracing::info!(tenant = %tenant, key = %id, "Tenant API key revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AdminError::NotFound(format!(
            "tenant {tenant:?} has no key {id:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_round_trip() {
        assert_eq!(percent_decode("acme%20corp"), "acme corp");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        // In a path a plus is a plus, as the handlers read it.
        assert_eq!(percent_decode("x+y"), "x y");
        assert_eq!(path_decode("x+y"), "x+y");
        assert_eq!(path_decode("x%20y"), "x y");
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }
}
