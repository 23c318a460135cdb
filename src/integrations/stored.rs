//! How a run-time integration is kept in the store: its settings as JSON,
//! without its secrets, and each secret sealed beside them
//! (`{"config": {...}, "sealed": {"access_token": "..."}}`). A store file
//! read without the key ring shows no token.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::sealed::{key_id_of, Binding, KeyRing, SealError};
use crate::config::{IntegrationConfig, Secret};
use crate::store::StoreError;

#[derive(Serialize, Deserialize)]
struct Record {
    config: serde_json::Map<String, serde_json::Value>,
    sealed: BTreeMap<String, String>,
}

/// The integration's secret fields, by name.
fn secrets(c: &IntegrationConfig) -> Vec<(&'static str, &Secret)> {
    vec![
        ("access_token", &c.access_token),
        ("oauth_client_secret", &c.oauth_client_secret),
        ("refresh_token", &c.refresh_token),
        ("identity_secret", &c.identity_secret),
    ]
}

fn binding<'a>(tenant: &'a str, id: &'a str, field: &'a str) -> Binding<'a> {
    Binding {
        tenant,
        integration: id,
        field,
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("stored integration: {e}"))
}

/// The record to store for `config`, its secrets sealed with `keys`.
pub(super) fn seal(
    config: &IntegrationConfig,
    keys: &KeyRing,
) -> Result<Vec<u8>, super::IntegrationError> {
    let serde_json::Value::Object(mut fields) = serde_json::to_value(config).map_err(corrupt)?
    else {
        return Err(corrupt("not an object").into());
    };
    let mut sealed = BTreeMap::new();
    for (name, secret) in secrets(config) {
        fields.remove(name);
        if !secret.is_empty() {
            let b = binding(&config.tenant, &config.id, name);
            sealed.insert(name.to_string(), keys.seal(secret.expose(), b)?);
        }
    }
    Ok(serde_json::to_vec(&Record {
        config: fields,
        sealed,
    })
    .map_err(corrupt)?)
}

/// The integration a record holds, its secrets opened.
pub(super) fn open(
    bytes: &[u8],
    keys: Option<&KeyRing>,
) -> Result<IntegrationConfig, super::IntegrationError> {
    let mut record: Record = serde_json::from_slice(bytes).map_err(corrupt)?;
    let field = |name: &str| {
        record
            .config
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let (tenant, id) = (field("tenant"), field("id"));
    for (name, sealed) in &record.sealed {
        let keys = keys.ok_or(SealError::NoKeys)?;
        let secret = keys.open(sealed, binding(&tenant, &id, name))?;
        record.config.insert(
            name.clone(),
            serde_json::Value::String(secret.expose().to_string()),
        );
    }
    // A secret that was empty is stored as none.
    record
        .config
        .entry("access_token")
        .or_insert_with(|| serde_json::Value::String(String::new()));
    Ok(serde_json::from_value(serde_json::Value::Object(record.config)).map_err(corrupt)?)
}

/// Whether every secret of a record is sealed with the newest key.
pub(super) fn sealed_with_newest(
    bytes: &[u8],
    keys: &KeyRing,
) -> Result<bool, super::IntegrationError> {
    let record: Record = serde_json::from_slice(bytes).map_err(corrupt)?;
    for sealed in record.sealed.values() {
        if key_id_of(sealed)? != keys.newest() {
            return Ok(false);
        }
    }
    Ok(true)
}
