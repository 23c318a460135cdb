//! Reads of the rows that belong to some integrations (keys are
//! conversation ids, `{integration}:{customer}`).

use super::storage;
use crate::store::StoreError;

/// The key prefixes of these integrations' conversations, in key order
/// (one empty prefix for all of them).
pub(super) fn prefixes(integrations: Option<&[String]>) -> Vec<String> {
    match integrations {
        None => vec![String::new()],
        Some(ids) => {
            let mut p: Vec<String> = ids.iter().map(|i| format!("{i}:")).collect();
            p.sort();
            p.dedup();
            p
        }
    }
}

/// Visits the rows of a table keyed by conversation id that belong to
/// these integrations, in key order.
pub(super) fn rows_of<V: redb::Value + 'static>(
    table: &redb::ReadOnlyTable<&'static str, V>,
    integrations: &[String],
    mut visit: impl FnMut(&str, redb::AccessGuard<'_, V>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for prefix in prefixes(Some(integrations)) {
        for row in table.range(prefix.as_str()..).map_err(storage)? {
            let (k, v) = row.map_err(storage)?;
            if !k.value().starts_with(prefix.as_str()) {
                break;
            }
            visit(k.value(), v)?;
        }
    }
    Ok(())
}
