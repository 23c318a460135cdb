//! Reads of the rows that belong to some integrations (keys are
//! conversation ids, `{integration}:{customer}`).

use fjall::{Readable, SingleWriterTxKeyspace, Snapshot};

use super::keys::{Key, Parts};
use super::{bad_key, row};
use crate::store::StoreError;

/// The id prefixes of these integrations' conversations, in key order
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
pub(super) fn rows_of(
    snap: &Snapshot,
    table: &SingleWriterTxKeyspace,
    integrations: &[String],
    mut visit: impl FnMut(String, &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for prefix in prefixes(Some(integrations)) {
        let start = Key::new().str_start(&prefix).done();
        for g in snap.prefix(table, start) {
            let (k, v) = row(g)?;
            let id = Parts::new(&k)
                .str()
                .ok_or_else(|| bad_key("of conversations"))?;
            visit(id, &v)?;
        }
    }
    Ok(())
}
