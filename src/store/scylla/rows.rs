//! Small reads shared by the ScyllaDB store's statements.

use scylla::client::session::Session;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;

use super::{corrupt, unavailable};
use crate::store::StoreError;

/// Whether `statement` (a `SELECT` of one text column) returns a row whose
/// column is `expected` (compared here too: a server that ignores the key
/// restriction must not make another row count).
pub(super) async fn has_row(
    session: &Session,
    statement: &PreparedStatement,
    values: impl SerializeRow,
    expected: &str,
) -> Result<bool, StoreError> {
    Ok(session
        .execute_unpaged(statement, values)
        .await
        .map_err(unavailable)?
        .into_rows_result()
        .map_err(corrupt)?
        .rows::<(String,)>()
        .map_err(corrupt)?
        .any(|row| row.is_ok_and(|(found,)| found == expected)))
}

/// The revision `statement` (a `SELECT revision ...`) reads; 0 when none.
pub(super) async fn read_revision(
    session: &Session,
    statement: &PreparedStatement,
    values: impl SerializeRow,
) -> Result<u64, StoreError> {
    let row = session
        .execute_unpaged(statement, values)
        .await
        .map_err(unavailable)?
        .into_rows_result()
        .map_err(corrupt)?
        .maybe_first_row::<(Option<i64>,)>()
        .map_err(corrupt)?;
    Ok(row
        .and_then(|(r,)| r)
        .and_then(|r| u64::try_from(r).ok())
        .unwrap_or(0))
}
